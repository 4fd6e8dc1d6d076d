//! MySQL and MariaDB: one connection. `plan` reads in `START TRANSACTION
//! WITH CONSISTENT SNAPSHOT, READ ONLY`; `apply` holds `GET_LOCK` on its own
//! connection (one apply at a time), reads with `LOCK IN SHARE MODE` (nobody
//! writes the rows it read until commit) and writes multi-row statements.

use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};
use sqlx::{Connection, Executor, MySql, QueryBuilder, Row};

use super::{
    batches, db_error, ddl_statements, history_record, Access, HistoryRecord, ReadMode, Table,
    HISTORY_TABLE,
};
use crate::connect::Target;
use crate::error::{Error, Result};
use crate::sync::{RawDoc, Snapshot};

/// Rows per multi-row statement (two parameters each, under the 65,535
/// limit) and bytes per statement, under the default `max_allowed_packet`.
const BATCH_ROWS: usize = 2000;
const BATCH_BYTES: usize = 4 << 20;
/// `GET_LOCK` names are server-wide: the database name scopes ours.
const LOCK_NAME: &str = "LEFT(CONCAT('sync-access:', DATABASE()), 64)";

pub struct MySqlStore {
    conn: MySqlConnection,
    holds_lock: bool,
}

/// A locking read that waited `innodb_lock_wait_timeout` for another
/// session's row locks is refused as locked (exit 6), as on the other
/// backends.
fn read_error(doing: &str, err: sqlx::Error) -> Error {
    const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
    match &err {
        sqlx::Error::Database(e)
            if e.try_downcast_ref::<MySqlDatabaseError>()
                .is_some_and(|e| e.number() == ER_LOCK_WAIT_TIMEOUT) =>
        {
            Error::locked(format!(
                "{doing}: another session is writing the IAM tables and did not finish within the lock timeout"
            ))
        }
        _ => db_error(doing, err),
    }
}

fn quoted(table: Table) -> String {
    format!("`{}`", table.name())
}

impl MySqlStore {
    pub async fn connect(target: &Target, _access: Access) -> Result<Self> {
        let options = target.mysql_options()?;
        let mut conn = MySqlConnection::connect_with(&options)
            .await
            .map_err(|e| super::connect_error(target, e))?;
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
        Ok(MySqlStore {
            conn,
            holds_lock: false,
        })
    }

    /// Where the IAM tables were looked for, for "not an IAM store".
    pub async fn location(&mut self) -> String {
        let db: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(&mut self.conn)
            .await
            .unwrap_or(None);
        format!(
            "searched database `{}`; point at another with the database in the URL (mysql://HOST:PORT/DATABASE)",
            db.unwrap_or_default()
        )
    }

    /// MySQL: `@@server_uuid`, made once per data directory (auto.cnf).
    /// MariaDB has none: `@@server_uid` (a hash of a MAC address of the
    /// machine and the server's port), with the host name and port beside
    /// it, so that two servers that merely share a host name differ.
    pub async fn identity(&mut self) -> Result<String> {
        let (version, db): (String, String) =
            sqlx::query_as("SELECT CAST(VERSION() AS CHAR), CAST(DATABASE() AS CHAR)")
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| db_error("reading the server identity", e))?;
        if !version.contains("MariaDB") {
            let uuid: String = sqlx::query_scalar("SELECT CAST(@@server_uuid AS CHAR)")
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| db_error("reading the server identity", e))?;
            return Ok(format!("mysql:{uuid}/{db}"));
        }
        let (uid, host, port): (String, String, String) = sqlx::query_as(
            "SELECT CAST(@@server_uid AS CHAR), CAST(@@hostname AS CHAR), CAST(@@port AS CHAR)",
        )
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| {
            db_error(
                "reading the server identity (@@server_uid, MariaDB 10.3 and later)",
                e,
            )
        })?;
        Ok(format!("mariadb:{uid}/{host}:{port}/{db}"))
    }

    pub async fn table_names(&mut self) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
        )
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
            .bind(&prefix)
            .fetch(&mut self.conn);
        let mut docs = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(|e| read_error(doing, e))? {
            docs.push(RawDoc {
                key: row.try_get(0).map_err(|e| db_error(doing, e))?,
                value: row.try_get(1).map_err(|e| db_error(doing, e))?,
            });
        }
        Ok(docs)
    }

    pub async fn read_snapshot(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot> {
        let lock = match mode {
            ReadMode::ReadOnly => {
                self.execute(
                    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                    "setting the isolation level",
                )
                .await?;
                self.execute(
                    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
                    "starting the read transaction",
                )
                .await?;
                ""
            }
            ReadMode::InApply => " LOCK IN SHARE MODE",
        };
        // Keys compare by bytes: the reference tables use utf8mb4_bin.
        let scoped = |table: &str| {
            format!(
                "SELECT CAST(`key` AS CHAR), CAST(`value` AS CHAR) FROM `{table}` \
                 WHERE `tenant_id` IS NULL OR `tenant_id` = ? OR LEFT(`key`, CHAR_LENGTH(?)) = ?{lock}"
            )
        };
        let snapshot = Snapshot {
            tenants: self
                .fetch_docs(
                    &format!(
                        "SELECT CAST(`key` AS CHAR), CAST(`value` AS CHAR) FROM `tenants` \
                         WHERE `key` = ? AND ? IS NOT NULL AND ? IS NOT NULL{lock}"
                    ),
                    tenant,
                    "reading tenants",
                )
                .await?,
            users: self
                .fetch_docs(
                    &format!(
                        "SELECT CAST(`key` AS CHAR), CAST(`value` AS CHAR) FROM `users` \
                         WHERE ? IS NOT NULL AND ? IS NOT NULL AND ? IS NOT NULL{lock}"
                    ),
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
        let secs = lock_timeout.as_secs().max(1);
        let got: Option<i64> = sqlx::query_scalar(&format!("SELECT GET_LOCK({LOCK_NAME}, ?)"))
            .bind(secs as i64)
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| db_error("taking the apply lock", e))?;
        if got != Some(1) {
            return Err(Error::locked(format!(
                "another sync-access apply holds the lock on this database (waited {secs}s)"
            )));
        }
        self.holds_lock = true;
        let started = async {
            self.execute(
                &format!("SET SESSION innodb_lock_wait_timeout = {secs}"),
                "setting the lock timeout",
            )
            .await?;
            self.execute(
                "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                "setting the isolation level",
            )
            .await?;
            self.execute("START TRANSACTION", "starting the apply transaction")
                .await
        }
        .await;
        if started.is_err() {
            self.release_lock().await;
        }
        started
    }

    async fn release_lock(&mut self) {
        if self.holds_lock {
            // The lock also ends with the session; a failure here is harmless.
            let _ = self
                .conn
                .execute(format!("DO RELEASE_LOCK({LOCK_NAME})").as_str())
                .await;
            self.holds_lock = false;
        }
    }

    pub async fn create_history_table(&mut self) -> Result<()> {
        self.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\
                 digest VARCHAR(80) NOT NULL PRIMARY KEY, tenant VARCHAR(250) NOT NULL, \
                 plan_created_at VARCHAR(40) NOT NULL, plan_created_by VARCHAR(250) NOT NULL, \
                 approvers TEXT NOT NULL, applied_at VARCHAR(40) NOT NULL, applied_by VARCHAR(250) NOT NULL, \
                 summary TEXT NOT NULL) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
            ),
            "creating the history table",
        )
        .await
    }

    async fn history_rows(&mut self, digest: Option<&str>) -> Result<Vec<HistoryRecord>> {
        let sql = format!(
            "SELECT CAST(digest AS CHAR), CAST(tenant AS CHAR), CAST(plan_created_at AS CHAR), \
             CAST(plan_created_by AS CHAR), CAST(approvers AS CHAR), CAST(applied_at AS CHAR), \
             CAST(applied_by AS CHAR), CAST(summary AS CHAR) \
             FROM {HISTORY_TABLE} WHERE ? IS NULL OR digest = ? ORDER BY applied_at DESC, digest"
        );
        let rows = sqlx::query(&sql)
            .bind(digest)
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
        for batch in batches(rows, BATCH_ROWS, BATCH_BYTES) {
            let mut query: QueryBuilder<MySql> =
                QueryBuilder::new(format!("INSERT INTO {} (`key`, `value`) ", quoted(table)));
            query.push_values(batch, |mut b, row| {
                b.push_bind(&row.key).push_bind(&row.value);
            });
            match query.build().execute(&mut self.conn).await {
                Ok(_) => {}
                // ER_DUP_ENTRY: its message names the key.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(Error::stale(format!(
                        "{doing}: a planned row collides with a row that is already there: {}",
                        e.message()
                    )))
                }
                Err(e) => return Err(db_error(&doing, e)),
            }
        }
        Ok(())
    }

    pub async fn update_users(&mut self, users: &[RawDoc]) -> Result<()> {
        for batch in batches(users, BATCH_ROWS, BATCH_BYTES) {
            let mut query: QueryBuilder<MySql> = QueryBuilder::new("UPDATE `users` JOIN (");
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
            let done = query
                .build()
                .execute(&mut self.conn)
                .await
                .map_err(|e| db_error("updating users", e))?;
            if done.rows_affected() != batch.len() as u64 {
                return Err(Error::stale(
                    "a user vanished or did not change during apply",
                ));
            }
        }
        Ok(())
    }

    pub async fn record(&mut self, r: &HistoryRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO {HISTORY_TABLE} (digest, tenant, plan_created_at, plan_created_by, approvers, applied_at, applied_by, summary) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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

    pub async fn commit(&mut self) -> Result<()> {
        let committed = self.execute("COMMIT", "committing").await;
        self.release_lock().await;
        committed
    }

    pub async fn rollback(&mut self) -> Result<()> {
        let rolled_back = self.execute("ROLLBACK", "rolling back").await;
        self.release_lock().await;
        rolled_back
    }

    pub async fn create_iam_tables(&mut self) -> Result<()> {
        for statement in ddl_statements(include_str!("ddl/mysql.sql")) {
            self.execute(&statement, "creating the IAM tables").await?;
        }
        Ok(())
    }

    pub async fn load(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        self.execute("START TRANSACTION", "loading rows").await?;
        self.insert(table, rows).await?;
        self.commit().await
    }

    pub async fn drop_all(&mut self) -> Result<()> {
        for table in Table::ALL.iter().map(|t| t.name()).chain([HISTORY_TABLE]) {
            self.execute(
                &format!("DROP TABLE IF EXISTS `{table}`"),
                "dropping tables",
            )
            .await?;
        }
        Ok(())
    }
}
