//! SQLite: one connection, opened read-only for the commands that only
//! read; `BEGIN` for a read snapshot, `BEGIN IMMEDIATE` (the database's
//! write lock, waited for up to the lock timeout) to apply.
//!
//! Once the apply holds the write lock, nothing waits but COMMIT, once, for
//! the readers to finish (in rollback-journal mode a reader keeps a writer
//! out of the database file): a busy timeout left in place would be waited
//! afresh by every spill of the page cache, and a reader that never ends
//! would hang a big apply for hours.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Connection, Executor, Row};

use super::sql::{
    add_revert_columns, connect_error, db_error, execute, insert_values, Dialect, Failure,
};
use super::{Access, Table};
use crate::connect::{Backend, Target};
use crate::error::{Error, Result};
use crate::sync::RawDoc;

pub(super) struct Sqlite {
    path: String,
    /// While an apply transaction is open: how long its COMMIT may wait for
    /// readers.
    commit_wait: Option<Duration>,
}

/// SQLITE_BUSY and SQLITE_LOCKED, the primary result codes under the
/// extended ones (SQLITE_BUSY_SNAPSHOT, ...) that the driver reports.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

fn busy(e: &dyn DatabaseError) -> bool {
    Sqlite::classify(e) == Failure::LockTimeout
}

/// SQLITE_READONLY_ROLLBACK: a hot journal that this connection cannot
/// roll back, the file (or its folder) not being writable.
const SQLITE_READONLY_ROLLBACK: i32 = 776;

/// The hot journal of `path` when `err` is SQLite refusing to read because
/// it cannot roll that journal back.
fn hot_journal(path: &str, err: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(e) = err else {
        return None;
    };
    let code = e.code().and_then(|code| code.parse::<i32>().ok());
    let journal = format!("{path}-journal");
    let readonly = code == Some(SQLITE_READONLY_ROLLBACK)
        || (code.map(|c| c & 0xff) == Some(8) && Path::new(&journal).exists());
    readonly.then_some(journal)
}

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    /// Two parameters a row, well under SQLite's 32,766 bind parameters.
    const BATCH_ROWS: usize = 4000;
    const BATCH_BYTES: usize = 8 << 20;
    const IAM_DDL: &'static str = include_str!("ddl/sqlite.sql");
    const HISTORY_DDL: &'static str = "CREATE TABLE IF NOT EXISTS sync_access_history (\
         digest TEXT NOT NULL PRIMARY KEY, tenant TEXT NOT NULL, \
         plan_created_at TEXT NOT NULL, plan_created_by TEXT NOT NULL, \
         approvers TEXT NOT NULL, applied_at TEXT NOT NULL, applied_by TEXT NOT NULL, \
         summary TEXT NOT NULL, reverted_by TEXT, created_group_lists TEXT)";
    const TABLE_NAMES: &'static str = "SELECT name FROM sqlite_master WHERE type = 'table'";
    const HISTORY_COLUMN_NAMES: &'static str =
        "SELECT name FROM pragma_table_info('sync_access_history')";
    const HISTORY_REVERT_COLUMNS: [(&'static str, &'static str); 2] = [
        (
            "reverted_by",
            "ALTER TABLE sync_access_history ADD COLUMN reverted_by TEXT",
        ),
        (
            "created_group_lists",
            "ALTER TABLE sync_access_history ADD COLUMN created_group_lists TEXT",
        ),
    ];
    /// A deferred transaction holds one read lock over all five reads.
    const BEGIN_SNAPSHOT: &'static [&'static str] = &["BEGIN"];
    const BEGIN: &'static str = "BEGIN";

    async fn connect(target: &Target, access: Access) -> Result<(SqliteConnection, Self)> {
        let path = target.sqlite_path().to_string();
        if path.is_empty() || path == ":memory:" {
            return Err(Error::usage(
                "sqlite: a database file path is needed, as in sqlite:./kestra.db",
            ));
        }
        if access != Access::Create && !Path::new(&path).exists() {
            return Err(Error::connection(format!("no SQLite database at `{path}`")));
        }
        let mut options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(access == Access::Create)
            // The store's own foreign-key settings are not ours to change.
            .foreign_keys(false);
        if access == Access::ReadOnly {
            // Opened read-write, with every write refused by SQLite itself
            // (`query_only`): a connection opened read-only cannot roll
            // back the hot journal an interrupted write (an apply killed)
            // leaves, and SQLite then refuses to read at all, saying
            // "attempt to write a readonly database". Read-write, the
            // first read rolls the journal back, as any open would.
            options = options.pragma("query_only", "ON");
        }
        let unreadable = |e: sqlx::Error| {
            match hot_journal(&path, &e) {
            Some(journal) => Error::connection(format!(
                "`{path}` has a hot journal (`{journal}`): a write to it was interrupted (an apply killed, say) and must be rolled back before anything can read it, which needs write access to the file and its folder, and this user has none; run `sync-access history --database-url sqlite:{path}` once as a user who can write them (it rolls the journal back and writes nothing else), then run this again"
            ))
            .with_source(e),
            None => connect_error(target, e),
        }
        };
        super::sqlite_rows::without_memory_statistics();
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(unreadable)?;
        // The first read is where SQLite rolls a hot journal back, or
        // finds that it cannot: say so here, not as a failed query later.
        conn.execute("SELECT count(*) FROM sqlite_master")
            .await
            .map_err(unreadable)?;
        Ok((
            conn,
            Sqlite {
                path,
                commit_wait: None,
            },
        ))
    }

    /// The database file's canonical path.
    async fn identity(&mut self, _conn: &mut SqliteConnection) -> Result<String> {
        let canonical =
            std::fs::canonicalize(&self.path).map_err(|e| Error::io(Path::new(&self.path), e))?;
        Ok(format!("sqlite:{}", canonical.display()))
    }

    async fn location(&mut self, _conn: &mut SqliteConnection) -> String {
        format!(
            "searched the SQLite file `{}`; point at another with --database-url sqlite:PATH",
            self.path
        )
    }

    fn quote(name: &str) -> String {
        format!("\"{name}\"")
    }

    fn text(column: &str) -> String {
        Self::quote(column)
    }

    /// SQLite stores whatever bytes it is given as TEXT: read them as
    /// bytes, so that a row that is not UTF-8 is named, not fatal.
    fn raw_doc(row: &SqliteRow) -> std::result::Result<RawDoc, sqlx::Error> {
        Ok(RawDoc::from_bytes(row.try_get(0)?, row.try_get(1)?))
    }

    /// On this thread, through SQLite itself: not a row at a time through
    /// sqlx's thread (`sqlite_rows.rs`).
    async fn visit_rows(
        conn: &mut SqliteConnection,
        sql: &str,
        binds: &[&str],
        visit: &mut dyn FnMut(RawDoc),
    ) -> Option<std::result::Result<(), sqlx::Error>> {
        Some(super::sqlite_rows::visit(conn, sql, binds, visit).await)
    }

    fn param(_n: usize) -> String {
        "?".to_string()
    }

    fn key_starts_with(_first: usize) -> (String, usize) {
        ("substr(\"key\", 1, length(?)) = ?".to_string(), 2)
    }

    async fn begin_apply(
        &mut self,
        conn: &mut SqliteConnection,
        lock_timeout: Duration,
    ) -> Result<()> {
        execute(
            conn,
            &format!("PRAGMA busy_timeout = {}", lock_timeout.as_millis()),
            "setting the lock timeout",
        )
        .await?;
        match conn.execute("BEGIN IMMEDIATE").await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if busy(e.as_ref()) => {
                return Err(Error::locked(format!(
                    "another writer holds the database lock (waited {}s)",
                    lock_timeout.as_secs()
                ))
                .with_source(sqlx::Error::Database(e)))
            }
            Err(e) => return Err(db_error("taking the write lock", e)),
        }
        self.commit_wait = Some(lock_timeout);
        // A spill of the page cache that cannot have the database file
        // (readers hold it) is skipped: the pages stay in memory until COMMIT.
        execute(conn, "PRAGMA busy_timeout = 0", "setting the lock timeout").await?;
        execute(conn, Self::HISTORY_DDL, "creating the history table").await?;
        add_revert_columns(
            conn,
            Self::HISTORY_COLUMN_NAMES,
            &Self::HISTORY_REVERT_COLUMNS,
        )
        .await
    }

    async fn execute_counting(
        conn: &mut SqliteConnection,
        sql: &str,
        binds: &[&str],
    ) -> std::result::Result<u64, sqlx::Error> {
        let query = binds
            .iter()
            .fold(sqlx::query(sql), |query, value| query.bind(*value));
        Ok(query.execute(&mut *conn).await?.rows_affected())
    }

    async fn insert_batch(
        conn: &mut SqliteConnection,
        table: Table,
        batch: &[RawDoc],
    ) -> std::result::Result<(), sqlx::Error> {
        insert_values::<Self>(conn, table, batch).await
    }

    async fn update_users_batch(
        conn: &mut SqliteConnection,
        batch: &[RawDoc],
    ) -> std::result::Result<u64, sqlx::Error> {
        // One statement a batch: each statement is a round trip through
        // sqlx's SQLite worker thread, which cost more than the update
        // itself when it was one a row. Full batches are one SQL text, so
        // the driver's statement cache prepares it once for all of them.
        let mut sql =
            String::from("UPDATE \"users\" SET \"value\" = \"new\".\"column2\" FROM (VALUES ");
        for i in 0..batch.len() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        }
        sql.push_str(") AS \"new\" WHERE \"users\".\"key\" = \"new\".\"column1\"");
        let query = batch.iter().fold(sqlx::query(&sql), |query, user| {
            query.bind(user.key.as_str()).bind(user.value.as_str())
        });
        Ok(query.execute(&mut *conn).await?.rows_affected())
    }

    /// Commits, waiting for readers up to the apply's lock timeout: a
    /// COMMIT refused as busy leaves the transaction open, to be retried.
    async fn commit(&mut self, conn: &mut SqliteConnection) -> Result<()> {
        let Some(wait) = self.commit_wait.take() else {
            return execute(conn, "COMMIT", "committing").await;
        };
        let deadline = Instant::now() + wait;
        loop {
            match conn.execute("COMMIT").await {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e)) if busy(e.as_ref()) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(sqlx::Error::Database(e)) if busy(e.as_ref()) => {
                    return Err(Error::locked(format!(
                        "other connections hold read locks on the database and did not let go, so the changes could not be committed (waited {}s)",
                        wait.as_secs()
                    )).with_source(sqlx::Error::Database(e)))
                }
                Err(e) => return Err(db_error("committing", e)),
            }
        }
    }

    async fn rollback(&mut self, conn: &mut SqliteConnection) -> Result<()> {
        self.commit_wait = None;
        execute(conn, "ROLLBACK", "rolling back").await
    }

    fn classify(error: &dyn DatabaseError) -> Failure {
        let primary = error
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        match primary {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => Failure::LockTimeout,
            _ if error.is_unique_violation() => Failure::KeyTaken,
            _ => Failure::Other,
        }
    }
}
