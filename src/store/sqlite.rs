//! SQLite: one connection; `BEGIN` for a read snapshot, `BEGIN IMMEDIATE`
//! (the database's write lock, waited for up to the lock timeout) to apply.
//!
//! Once the apply holds the write lock, nothing waits but COMMIT, once, for
//! the readers to finish (in rollback-journal mode a reader keeps a writer
//! out of the database file): a busy timeout left in place would be waited
//! afresh by every spill of the page cache, and a reader that never ends
//! would hang a big apply for hours.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor, QueryBuilder, Row, Sqlite};

use super::{
    batches, db_error, ddl_statements, first_not_inserted, history_record, key_taken, Access,
    HistoryRecord, ReadMode, Table, HISTORY_TABLE,
};
use crate::connect::Target;
use crate::error::{Error, Result};
use crate::sync::{RawDoc, Snapshot};

pub struct SqliteStore {
    conn: SqliteConnection,
    path: String,
    /// While an apply transaction is open: how long its COMMIT may wait for
    /// readers.
    commit_wait: Option<Duration>,
}

/// Rows per multi-row INSERT: two parameters each, well under SQLite's
/// 32,766 bind parameters.
const INSERT_ROWS: usize = 4000;
const BATCH_BYTES: usize = 8 << 20;

fn quoted(table: Table) -> String {
    format!("\"{}\"", table.name())
}

/// SQLITE_BUSY: another connection holds a lock this one needs.
fn busy(e: &dyn DatabaseError) -> bool {
    e.code().as_deref() == Some("5") || e.message().contains("locked")
}

impl SqliteStore {
    pub async fn connect(target: &Target, access: Access) -> Result<Self> {
        let path = target.sqlite_path().to_string();
        if path.is_empty() || path == ":memory:" {
            return Err(Error::usage(
                "sqlite: a database file path is needed, as in sqlite:./kestra.db",
            ));
        }
        if access != Access::Create && !Path::new(&path).exists() {
            return Err(Error::connection(format!("no SQLite database at `{path}`")));
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(access == Access::Create)
            .read_only(access == Access::ReadOnly)
            // The store's own foreign-key settings are not ours to change.
            .foreign_keys(false);
        let conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| Error::connection(format!("could not open {}: {e}", target.display())))?;
        Ok(SqliteStore {
            conn,
            path,
            commit_wait: None,
        })
    }

    /// Where the IAM tables were looked for, for "not an IAM store".
    pub async fn location(&mut self) -> String {
        format!(
            "searched the SQLite file `{}`; point at another with --database-url sqlite:PATH",
            self.path
        )
    }

    pub async fn identity(&mut self) -> Result<String> {
        let canonical =
            std::fs::canonicalize(&self.path).map_err(|e| Error::io(Path::new(&self.path), e))?;
        Ok(format!("sqlite:{}", canonical.display()))
    }

    pub async fn table_names(&mut self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| db_error("listing tables", e))
    }

    async fn execute(&mut self, sql: &str, doing: &str) -> Result<()> {
        self.conn
            .execute(sql)
            .await
            .map(|_| ())
            .map_err(|e| db_error(doing, e))
    }

    async fn fetch_docs(&mut self, sql: &str, tenant: &str, doing: &str) -> Result<Vec<RawDoc>> {
        let prefix = format!("{tenant}_");
        let mut rows = sqlx::query(sql)
            .bind(tenant)
            .bind(&prefix)
            .fetch(&mut self.conn);
        let mut docs = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(|e| db_error(doing, e))? {
            docs.push(RawDoc {
                key: row.try_get(0).map_err(|e| db_error(doing, e))?,
                value: row.try_get(1).map_err(|e| db_error(doing, e))?,
            });
        }
        Ok(docs)
    }

    pub async fn read_snapshot(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot> {
        if mode == ReadMode::ReadOnly {
            // A deferred transaction holds one read lock over all five reads.
            self.execute("BEGIN", "starting the read transaction")
                .await?;
        }
        let scoped = |table: &str| {
            format!(
                "SELECT \"key\", \"value\" FROM \"{table}\" \
                 WHERE \"tenant_id\" IS NULL OR \"tenant_id\" = ?1 OR substr(\"key\", 1, length(?2)) = ?2"
            )
        };
        let snapshot = Snapshot {
            tenants: self
                .fetch_docs(
                    "SELECT \"key\", \"value\" FROM \"tenants\" WHERE \"key\" = ?1 AND ?2 = ?2",
                    tenant,
                    "reading tenants",
                )
                .await?,
            users: self
                .fetch_docs(
                    "SELECT \"key\", \"value\" FROM \"users\" WHERE ?1 = ?1 AND ?2 = ?2",
                    tenant,
                    "reading users",
                )
                .await?,
            groups: self
                .fetch_docs(&scoped("groups"), tenant, "reading groups")
                .await?,
            roles: self
                .fetch_docs(&scoped("roles"), tenant, "reading roles")
                .await?,
            bindings: self
                .fetch_docs(&scoped("bindings"), tenant, "reading bindings")
                .await?,
        };
        if mode == ReadMode::ReadOnly {
            self.execute("COMMIT", "ending the read transaction")
                .await?;
        }
        Ok(snapshot)
    }

    pub async fn begin_apply(&mut self, lock_timeout: Duration) -> Result<()> {
        self.execute(
            &format!("PRAGMA busy_timeout = {}", lock_timeout.as_millis()),
            "setting the lock timeout",
        )
        .await?;
        match self.conn.execute("BEGIN IMMEDIATE").await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if busy(e.as_ref()) => {
                return Err(Error::locked(format!(
                    "another writer holds the database lock (waited {}s)",
                    lock_timeout.as_secs()
                )))
            }
            Err(e) => return Err(db_error("taking the write lock", e)),
        }
        self.commit_wait = Some(lock_timeout);
        // A spill of the page cache that cannot have the database file
        // (readers hold it) is skipped: the pages stay in memory until COMMIT.
        self.execute("PRAGMA busy_timeout = 0", "setting the lock timeout")
            .await?;
        self.create_history_table().await
    }

    pub async fn create_history_table(&mut self) -> Result<()> {
        self.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\
                 digest TEXT NOT NULL PRIMARY KEY, tenant TEXT NOT NULL, \
                 plan_created_at TEXT NOT NULL, plan_created_by TEXT NOT NULL, \
                 approvers TEXT NOT NULL, applied_at TEXT NOT NULL, applied_by TEXT NOT NULL, \
                 summary TEXT NOT NULL)"
            ),
            "creating the history table",
        )
        .await
    }

    async fn history_rows(&mut self, digest: Option<&str>) -> Result<Vec<HistoryRecord>> {
        let sql = format!(
            "SELECT digest, tenant, plan_created_at, plan_created_by, approvers, applied_at, applied_by, summary \
             FROM {HISTORY_TABLE} WHERE ?1 IS NULL OR digest = ?1 ORDER BY applied_at DESC, digest"
        );
        let rows = sqlx::query(&sql)
            .bind(digest)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| db_error("reading the history", e))?;
        rows.iter()
            .map(|row| history_record(row).map_err(|e| db_error("reading the history", e)))
            .collect()
    }

    pub async fn find_applied(&mut self, digest: &str) -> Result<Option<HistoryRecord>> {
        Ok(self.history_rows(Some(digest)).await?.into_iter().next())
    }

    pub async fn history(&mut self) -> Result<Vec<HistoryRecord>> {
        self.history_rows(None).await
    }

    pub async fn insert(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        let doing = format!("inserting into {}", table.name());
        for batch in batches(rows, INSERT_ROWS, BATCH_BYTES) {
            let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "INSERT INTO {} (\"key\", \"value\") ",
                quoted(table)
            ));
            query.push_values(batch, |mut b, row| {
                b.push_bind(&row.key).push_bind(&row.value);
            });
            // A collision is reported by key rather than as a bare
            // constraint error.
            query.push(" ON CONFLICT DO NOTHING RETURNING \"key\"");
            let inserted: Vec<String> = query
                .build_query_scalar()
                .fetch_all(&mut self.conn)
                .await
                .map_err(|e| db_error(&doing, e))?;
            if inserted.len() != batch.len() {
                return Err(key_taken(table, first_not_inserted(batch, &inserted)));
            }
        }
        Ok(())
    }

    pub async fn update_users(&mut self, users: &[RawDoc]) -> Result<()> {
        // Local and prepared once: a statement per row is SQLite's fast path.
        for user in users {
            let done = sqlx::query("UPDATE \"users\" SET \"value\" = ?1 WHERE \"key\" = ?2")
                .bind(&user.value)
                .bind(&user.key)
                .execute(&mut self.conn)
                .await
                .map_err(|e| db_error("updating users", e))?;
            if done.rows_affected() != 1 {
                return Err(Error::stale(format!(
                    "user `{}` vanished during apply",
                    user.key
                )));
            }
        }
        Ok(())
    }

    pub async fn record(&mut self, r: &HistoryRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO {HISTORY_TABLE} (digest, tenant, plan_created_at, plan_created_by, approvers, applied_at, applied_by, summary) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .bind(&r.digest)
        .bind(&r.tenant)
        .bind(&r.plan_created_at)
        .bind(&r.plan_created_by)
        .bind(&r.approvers)
        .bind(&r.applied_at)
        .bind(&r.applied_by)
        .bind(&r.summary)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(|e| db_error("recording the plan in the history", e))
    }

    /// Commits, waiting for readers up to the apply's lock timeout: a
    /// COMMIT refused as busy leaves the transaction open, to be retried.
    pub async fn commit(&mut self) -> Result<()> {
        let Some(wait) = self.commit_wait.take() else {
            return self.execute("COMMIT", "committing").await;
        };
        let deadline = Instant::now() + wait;
        loop {
            match self.conn.execute("COMMIT").await {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e)) if busy(e.as_ref()) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(sqlx::Error::Database(e)) if busy(e.as_ref()) => {
                    return Err(Error::locked(format!(
                        "other connections hold read locks on the database and did not let go, so the changes could not be committed (waited {}s)",
                        wait.as_secs()
                    )))
                }
                Err(e) => return Err(db_error("committing", e)),
            }
        }
    }

    pub async fn rollback(&mut self) -> Result<()> {
        self.commit_wait = None;
        self.execute("ROLLBACK", "rolling back").await
    }

    pub async fn create_iam_tables(&mut self) -> Result<()> {
        for statement in ddl_statements(include_str!("ddl/sqlite.sql")) {
            self.execute(&statement, "creating the IAM tables").await?;
        }
        Ok(())
    }

    pub async fn load(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        self.execute("BEGIN", "loading rows").await?;
        self.insert(table, rows).await?;
        self.commit().await
    }

    pub async fn drop_all(&mut self) -> Result<()> {
        for table in Table::ALL.iter().map(|t| t.name()).chain([HISTORY_TABLE]) {
            self.execute(
                &format!("DROP TABLE IF EXISTS \"{table}\""),
                "dropping tables",
            )
            .await?;
        }
        Ok(())
    }
}
