//! MySQL and MariaDB: one connection, a read-only session for the commands
//! that only read. `plan` reads in `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT, READ ONLY`; `apply` holds `GET_LOCK` on its own connection (one
//! apply at a time), reads with `LOCK IN SHARE MODE` (nobody writes the rows
//! it read until commit) and writes multi-row statements.

use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError, MySqlRow};
use sqlx::{Connection, Executor, QueryBuilder, Row};

use super::sql::{
    connect_error, db_error, ensure_history_table, execute, insert_values, Dialect, Failure,
};
use super::{Access, Table};
use crate::connect::{Backend, Target};
use crate::error::{Error, Result};
use crate::sync::{KeyRules, RawDoc, StoreKeys};

pub(super) struct MySql {
    holds_lock: bool,
}

/// `GET_LOCK` names are server-wide: the database name scopes ours.
const LOCK_NAME: &str = "LEFT(CONCAT('sync-access:', DATABASE()), 64)";
/// ER_LOCK_WAIT_TIMEOUT: `innodb_lock_wait_timeout` ran out.
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;

impl MySql {
    async fn release_lock(&mut self, conn: &mut MySqlConnection) {
        if self.holds_lock {
            // The lock also ends with the session; a failure here is harmless.
            let _ = conn
                .execute(format!("DO RELEASE_LOCK({LOCK_NAME})").as_str())
                .await;
            self.holds_lock = false;
        }
    }

    /// `begin_apply`: the apply lock, then the transaction.
    async fn lock_and_begin(
        &mut self,
        conn: &mut MySqlConnection,
        lock_timeout: Duration,
        with_history: bool,
    ) -> Result<()> {
        let secs = lock_timeout.as_secs().max(1);

        let got: Option<i64> = sqlx::query_scalar(&format!("SELECT GET_LOCK({LOCK_NAME}, ?)"))
            .bind(secs as i64)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error("taking the apply lock", e))?;
        if got != Some(1) {
            return Err(Error::locked(format!(
                "another sync-access apply holds the lock on this database (waited {secs}s)"
            )));
        }
        self.holds_lock = true;
        let started = Self::start_apply_transaction(conn, secs, with_history).await;
        if started.is_err() {
            self.release_lock(conn).await;
        }
        started
    }

    /// What `begin_apply` does once it holds the apply lock. DDL commits
    /// implicitly here, so the history table is created before the
    /// transaction starts (`with_history`), or by another connection
    /// later; under the lock, no other apply races for it.
    async fn start_apply_transaction(
        conn: &mut MySqlConnection,
        secs: u64,
        with_history: bool,
    ) -> Result<()> {
        if with_history {
            // DDL commits here: under the lock, before the transaction.
            ensure_history_table(
                conn,
                Self::TABLE_NAMES,
                Self::HISTORY_DDL,
                Self::HISTORY_COLUMN_NAMES,
                &Self::HISTORY_REVERT_COLUMNS,
            )
            .await?;
        }
        execute(
            conn,
            &format!("SET SESSION innodb_lock_wait_timeout = {secs}"),
            "setting the lock timeout",
        )
        .await?;
        execute(
            conn,
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "setting the isolation level",
        )
        .await?;
        execute(conn, "START TRANSACTION", "starting the apply transaction").await
    }
}

/// How a MariaDB or MySQL collation compares keys.
fn collation_rules(collation: &str) -> KeyRules {
    let collation = collation.to_ascii_lowercase();
    KeyRules {
        pad_space: collation != "binary"
            && !collation.contains("nopad")
            && !collation.contains("_0900_"),
        case_insensitive: collation.contains("_ci"),
    }
}

impl Dialect for MySql {
    type Db = sqlx::MySql;
    const BACKEND: Backend = Backend::MySql;
    /// Two parameters a row, under the 65,535 limit; bytes under the
    /// default `max_allowed_packet`.
    const BATCH_ROWS: usize = 2000;
    const BATCH_BYTES: usize = 4 << 20;
    const IAM_DDL: &'static str = include_str!("ddl/mysql.sql");
    const HISTORY_DDL: &'static str = "CREATE TABLE IF NOT EXISTS sync_access_history (\
         digest VARCHAR(80) NOT NULL PRIMARY KEY, tenant VARCHAR(250) NOT NULL, \
         plan_created_at VARCHAR(40) NOT NULL, plan_created_by VARCHAR(250) NOT NULL, \
         approvers TEXT NOT NULL, applied_at VARCHAR(40) NOT NULL, applied_by VARCHAR(250) NOT NULL, \
         summary TEXT NOT NULL, reverted_by VARCHAR(80) NULL, created_group_lists LONGTEXT NULL) \
         ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";
    const HISTORY_COLUMN_NAMES: &'static str =
        "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = 'sync_access_history'";
    const HISTORY_REVERT_COLUMNS: [(&'static str, &'static str); 2] = [
        (
            "reverted_by",
            "ALTER TABLE sync_access_history ADD COLUMN reverted_by VARCHAR(80) NULL",
        ),
        (
            "created_group_lists",
            "ALTER TABLE sync_access_history ADD COLUMN created_group_lists LONGTEXT NULL",
        ),
    ];
    const TABLE_NAMES: &'static str =
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE()";
    const BEGIN_SNAPSHOT: &'static [&'static str] = &[
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ];
    const BEGIN: &'static str = "START TRANSACTION";
    /// DDL commits the transaction it is in.
    const TRANSACTIONAL_DDL: bool = false;
    const LOCKING_READ: &'static str = " LOCK IN SHARE MODE";

    async fn connect(target: &Target, access: Access) -> Result<(MySqlConnection, Self)> {
        let options = target.mysql_options()?;
        let mut conn = MySqlConnection::connect_with(&options)
            .await
            .map_err(|e| connect_error(target, e))?;
        let db: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_error("reading the database name", e))?;
        if db.is_none() {
            return Err(Error::usage(format!(
                "database URL `{}` names no database",
                target.display()
            )));
        }
        if access == Access::ReadOnly {
            // Every transaction of this session, and every statement outside
            // one (DDL included), is refused a write.
            execute(
                &mut conn,
                "SET SESSION TRANSACTION READ ONLY",
                "making the connection read-only",
            )
            .await?;
        }
        Ok((conn, MySql { holds_lock: false }))
    }

    /// MySQL: `@@server_uuid`, made once per data directory (auto.cnf).
    /// MariaDB has none: `@@server_uid` (a hash of a MAC address of the
    /// machine and the server's port), with the host name and port beside
    /// it, so that two servers that merely share a host name differ.
    async fn identity(&mut self, conn: &mut MySqlConnection) -> Result<String> {
        let (version, db): (String, String) =
            sqlx::query_as("SELECT CAST(VERSION() AS CHAR), CAST(DATABASE() AS CHAR)")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| db_error("reading the server identity", e))?;
        if !version.contains("MariaDB") {
            let uuid: String = sqlx::query_scalar("SELECT CAST(@@server_uuid AS CHAR)")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| db_error("reading the server identity", e))?;
            return Ok(format!("mysql:{uuid}/{db}"));
        }
        let (uid, host, port): (String, String, String) = sqlx::query_as(
            "SELECT CAST(@@server_uid AS CHAR), CAST(@@hostname AS CHAR), CAST(@@port AS CHAR)",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            db_error(
                "reading the server identity (@@server_uid, MariaDB 10.3 and later)",
                e,
            )
        })?;
        Ok(format!("mariadb:{uid}/{host}:{port}/{db}"))
    }

    async fn location(&mut self, conn: &mut MySqlConnection) -> String {
        let db: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or(None);
        format!(
            "searched database `{}`; point at another with the database in the URL (mysql://HOST:PORT/DATABASE)",
            db.unwrap_or_default()
        )
    }

    fn quote(name: &str) -> String {
        format!("`{name}`")
    }

    fn text(column: &str) -> String {
        format!("CAST({} AS CHAR)", Self::quote(column))
    }

    /// The column itself, not `CAST(... AS CHAR)`: the cast was a third
    /// of the server's time sending the bindings (MariaDB 10.11, 1M rows:
    /// 1.24 s against 0.81 s). The reference layout's `utf8mb4_bin`
    /// columns carry the BINARY flag, which sqlx's `String` refuses:
    /// [`MySql::raw_doc`] reads their bytes instead.
    fn doc_column(column: &str) -> String {
        Self::quote(column)
    }

    /// The bytes the server sends (text in the connection's character
    /// set, utf8mb4; a JSON column's text on MySQL 8; a binary column's
    /// bytes as they are), checked as UTF-8 here: a row that is not is
    /// named as malformed ([`RawDoc::from_bytes`]), as on SQLite.
    fn raw_doc(row: &MySqlRow) -> std::result::Result<RawDoc, sqlx::Error> {
        Ok(RawDoc::from_bytes(
            row.try_get_unchecked::<&[u8], _>(0)?.to_vec(),
            row.try_get_unchecked::<&[u8], _>(1)?.to_vec(),
        ))
    }

    fn param(_n: usize) -> String {
        "?".to_string()
    }

    /// The collation of each table's `key` column: PAD SPACE unless NO PAD
    /// (MariaDB's `*_nopad_*`, MySQL 8's `*_0900_*`), case-insensitive when
    /// `_ci`. The reference DDL's `utf8mb4_bin` is PAD SPACE and case-exact.
    async fn key_rules(&mut self, conn: &mut MySqlConnection) -> Result<StoreKeys> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT CAST(table_name AS CHAR), CAST(collation_name AS CHAR) \
             FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND column_name = 'key' \
             AND table_name IN ('tenants', 'roles', 'groups', 'bindings')",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error("reading the collations of the keys", e))?;
        let mut keys = StoreKeys::default();
        for (table, collation) in rows {
            // No collation: a binary column, compared by bytes.
            let rules = collation.map_or(KeyRules::EXACT, |c| collation_rules(&c));
            match table.as_str() {
                "tenants" => keys.tenants = rules,
                "roles" => keys.roles = rules,
                "groups" => keys.groups = rules,
                "bindings" => keys.bindings = rules,
                _ => {}
            }
        }
        Ok(keys)
    }

    /// Key prefixes compare by bytes on the reference tables (`utf8mb4_bin`).
    fn key_starts_with(_first: usize) -> (String, usize) {
        ("LEFT(`key`, CHAR_LENGTH(?)) = ?".to_string(), 2)
    }

    async fn begin_apply(
        &mut self,
        conn: &mut MySqlConnection,
        lock_timeout: Duration,
    ) -> Result<()> {
        self.lock_and_begin(conn, lock_timeout, true).await
    }

    async fn begin_apply_without_history(
        &mut self,
        conn: &mut MySqlConnection,
        lock_timeout: Duration,
    ) -> Result<()> {
        self.lock_and_begin(conn, lock_timeout, false).await
    }

    async fn insert_batch(
        conn: &mut MySqlConnection,
        table: Table,
        batch: &[RawDoc],
    ) -> std::result::Result<(), sqlx::Error> {
        insert_values::<Self>(conn, table, batch).await
    }

    async fn update_users_batch(
        conn: &mut MySqlConnection,
        batch: &[RawDoc],
    ) -> std::result::Result<u64, sqlx::Error> {
        let mut query: QueryBuilder<sqlx::MySql> = QueryBuilder::new("UPDATE `users` JOIN (");
        for (i, user) in batch.iter().enumerate() {
            query.push(if i == 0 {
                "SELECT "
            } else {
                " UNION ALL SELECT "
            });
            query
                .push_bind(&user.key)
                .push(" AS k, ")
                .push_bind(&user.value)
                .push(" AS v");
        }
        query.push(") AS u ON `users`.`key` = u.k SET `users`.`value` = u.v");
        // The driver asks for found rows: a row counts even when unchanged.
        Ok(query.build().execute(&mut *conn).await?.rows_affected())
    }

    async fn commit(&mut self, conn: &mut MySqlConnection) -> Result<()> {
        let committed = execute(conn, "COMMIT", "committing").await;
        self.release_lock(conn).await;
        committed
    }

    async fn rollback(&mut self, conn: &mut MySqlConnection) -> Result<()> {
        let rolled_back = execute(conn, "ROLLBACK", "rolling back").await;
        self.release_lock(conn).await;
        rolled_back
    }

    fn classify(error: &dyn DatabaseError) -> Failure {
        let number = error
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number);
        if number == Some(ER_LOCK_WAIT_TIMEOUT) {
            Failure::LockTimeout
        } else if error.is_unique_violation() {
            Failure::KeyTaken
        } else {
            Failure::Other
        }
    }

    async fn execute_counting(
        conn: &mut MySqlConnection,
        sql: &str,
        binds: &[&str],
    ) -> std::result::Result<u64, sqlx::Error> {
        let query = binds
            .iter()
            .fold(sqlx::query::<sqlx::MySql>(sql), |query, value| {
                query.bind(*value)
            });
        Ok(query.execute(&mut *conn).await?.rows_affected())
    }
}
