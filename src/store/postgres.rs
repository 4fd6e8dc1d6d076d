//! PostgreSQL: one connection. `plan` reads in a `REPEATABLE READ, READ ONLY`
//! transaction; `apply` takes `pg_advisory_xact_lock` (one apply at a time)
//! and a `SHARE ROW EXCLUSIVE` lock on the IAM tables (nobody writes them
//! between its re-read and its writes), then writes with `UNNEST`, one
//! statement per table and batch.

use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor, Row};

use super::{
    batches, db_error, ddl_statements, history_record, key_taken, Access, HistoryRecord, ReadMode,
    Table, HISTORY_TABLE,
};
use crate::connect::Target;
use crate::error::{Error, Result};
use crate::sync::{RawDoc, Snapshot};

/// The advisory lock every sync-access apply takes: "syncacce" in ASCII.
const LOCK_KEY: i64 = 0x7379_6e63_6163_6365;
/// Rows per UNNEST statement: bounds the size of one request.
const BATCH_ROWS: usize = 50_000;
const BATCH_BYTES: usize = 64 << 20;

pub struct PgStore {
    conn: PgConnection,
    access: Access,
    /// The schemas of the search path, in order, as the connection found
    /// them: for "not an IAM store" to say where it looked.
    searched: Vec<String>,
}

fn quoted(table: Table) -> String {
    format!("\"{}\"", table.name())
}

impl PgStore {
    pub async fn connect(target: &Target, access: Access) -> Result<Self> {
        let attempts = target.pg_attempts()?;
        let mut conn = None;
        for (i, options) in attempts.iter().enumerate() {
            match PgConnection::connect_with(options).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                // `allow` and `prefer`: the server refused this way
                // (pg_hba.conf); try the other, as libpq does.
                Err(sqlx::Error::Database(e)) if i + 1 < attempts.len() => {
                    tracing::debug!(
                        "the server refused sslmode={:?} ({}); trying the next",
                        options.get_ssl_mode(),
                        e.message()
                    );
                }
                Err(e) => return Err(super::connect_error(target, e)),
            }
        }
        let conn = conn.expect("one attempt at least");
        let mut store = PgStore {
            conn,
            access,
            searched: Vec::new(),
        };
        store.pin_schema().await?;
        Ok(store)
    }

    /// The IAM tables live in the first schema of the search path that
    /// holds one of them (`currentSchema`, `options=-csearch_path=...`);
    /// the search path is then narrowed to that schema alone, so that every
    /// unqualified name (the history table's too) resolves there and
    /// nowhere else.
    async fn pin_schema(&mut self) -> Result<()> {
        self.searched = sqlx::query_scalar("SELECT unnest(current_schemas(false))::text")
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| db_error("reading the search path", e))?;
        let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        let found: Option<String> = sqlx::query_scalar(
            "SELECT s::text FROM unnest(current_schemas(false)) WITH ORDINALITY AS t(s, i) \
             WHERE EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                           WHERE n.nspname = t.s AND c.relname = ANY($1) AND c.relkind IN ('r', 'p', 'v')) \
             ORDER BY i LIMIT 1",
        )
        .bind(&names)
        .fetch_optional(&mut self.conn)
        .await
        .map_err(|e| db_error("finding the IAM tables", e))?;
        if let Some(schema) = found {
            sqlx::query("SELECT set_config('search_path', quote_ident($1), false)")
                .bind(&schema)
                .execute(&mut self.conn)
                .await
                .map_err(|e| db_error("setting the search path", e))?;
        }
        Ok(())
    }

    /// Where the IAM tables were looked for, for "not an IAM store".
    pub async fn location(&mut self) -> String {
        let db: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut self.conn)
            .await
            .unwrap_or_else(|_| "?".into());
        let schemas = if self.searched.is_empty() {
            "no existing schema".to_string()
        } else {
            self.searched
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "searched database `{db}`, schema(s) {schemas} of the search path; point at another with currentSchema=SCHEMA (JDBC), options=-csearch_path=SCHEMA (postgres:// URL) or another database in the URL"
        )
    }

    pub async fn identity(&mut self) -> Result<String> {
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| db_error("reading the current schema", e))?;
        let schema = schema.unwrap_or_default();
        // pg_control_system() may be denied (some managed services): fall
        // back to the server address.
        let system: std::result::Result<(String, String), _> = sqlx::query_as(
            "SELECT system_identifier::text, current_database()::text FROM pg_control_system()",
        )
        .fetch_one(&mut self.conn)
        .await;
        match system {
            Ok((id, db)) => Ok(format!("postgres:{id}/{db}/{schema}")),
            Err(_) => {
                let (addr, db): (String, String) = sqlx::query_as(
                    "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port()::text, ''), \
                     current_database()::text",
                )
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| db_error("reading the server identity", e))?;
                Ok(format!("postgres:{addr}/{db}/{schema}"))
            }
        }
    }

    pub async fn table_names(&mut self) -> Result<Vec<String>> {
        // Tables of the schema the IAM tables were found in.
        sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname = current_schema()",
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
            self.execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                "starting the read transaction",
            )
            .await?;
        }
        let scoped = |table: &str| {
            format!(
                "SELECT \"key\"::text, \"value\"::text FROM \"{table}\" \
                 WHERE \"tenant_id\" IS NULL OR \"tenant_id\" = $1 OR starts_with(\"key\", $2)"
            )
        };
        let snapshot = Snapshot {
            tenants: self
                .fetch_docs(
                    "SELECT \"key\"::text, \"value\"::text FROM \"tenants\" WHERE \"key\" = $1 AND $2::text IS NOT NULL",
                    tenant,
                    "reading tenants",
                )
                .await?,
            users: self
                .fetch_docs(
                    "SELECT \"key\"::text, \"value\"::text FROM \"users\" WHERE $1::text IS NOT NULL AND $2::text IS NOT NULL",
                    tenant,
                    "reading users",
                )
                .await?,
            groups: self.fetch_docs(&scoped("groups"), tenant, "reading groups").await?,
            roles: self.fetch_docs(&scoped("roles"), tenant, "reading roles").await?,
            bindings: self.fetch_docs(&scoped("bindings"), tenant, "reading bindings").await?,
        };
        if mode == ReadMode::ReadOnly {
            self.execute("COMMIT", "ending the read transaction")
                .await?;
        }
        Ok(snapshot)
    }

    pub async fn begin_apply(&mut self, lock_timeout: Duration) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::usage("internal: apply on a read-only connection"));
        }
        self.execute("BEGIN", "starting the apply transaction")
            .await?;
        self.execute(
            &format!(
                "SET LOCAL lock_timeout = '{}ms'",
                lock_timeout.as_millis().max(1)
            ),
            "setting the lock timeout",
        )
        .await?;
        let locked = sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut self.conn)
            .await;
        match locked {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                return Err(Error::locked(format!(
                    "another sync-access apply holds the lock on this database (waited {}s)",
                    lock_timeout.as_secs()
                )))
            }
            Err(e) => return Err(db_error("taking the apply lock", e)),
        }
        // Even with IF NOT EXISTS, CREATE TABLE needs the CREATE privilege
        // on the schema: ask only when the table is really missing.
        if !self.table_names().await?.iter().any(|t| t == HISTORY_TABLE) {
            self.create_history_table().await?;
        }
        // Writers other than sync-access (Kestra itself) wait until commit;
        // readers do not.
        match self
            .conn
            .execute("LOCK TABLE \"tenants\", \"users\", \"groups\", \"roles\", \"bindings\" IN SHARE ROW EXCLUSIVE MODE")
            .await
        {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => Err(Error::locked(format!(
                "another session is writing the IAM tables (waited {}s)",
                lock_timeout.as_secs()
            ))),
            Err(e) => Err(db_error("locking the IAM tables", e)),
        }
    }

    pub async fn create_history_table(&mut self) -> Result<()> {
        self.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\
                 digest VARCHAR(80) NOT NULL PRIMARY KEY, tenant VARCHAR(250) NOT NULL, \
                 plan_created_at VARCHAR(40) NOT NULL, plan_created_by VARCHAR(250) NOT NULL, \
                 approvers TEXT NOT NULL, applied_at VARCHAR(40) NOT NULL, applied_by VARCHAR(250) NOT NULL, \
                 summary TEXT NOT NULL)"
            ),
            "creating the history table",
        )
        .await
    }

    async fn history_rows(&mut self, digest: Option<&str>) -> Result<Vec<HistoryRecord>> {
        let sql = format!(
            "SELECT digest::text, tenant::text, plan_created_at::text, plan_created_by::text, approvers, \
             applied_at::text, applied_by::text, summary \
             FROM {HISTORY_TABLE} WHERE $1::text IS NULL OR digest = $1 ORDER BY applied_at DESC, digest"
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

    fn columns(rows: &[RawDoc]) -> (Vec<&str>, Vec<&str>) {
        rows.iter()
            .map(|r| (r.key.as_str(), r.value.as_str()))
            .unzip()
    }

    pub async fn insert(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        let doing = format!("inserting into {}", table.name());
        // A plain INSERT: nothing comes back for a million rows, and a
        // collision is a unique violation whose detail names the key.
        let sql = format!(
            "INSERT INTO {} (\"key\", \"value\") SELECT k, v::jsonb FROM UNNEST($1::text[], $2::text[]) AS u(k, v)",
            quoted(table)
        );
        for batch in batches(rows, BATCH_ROWS, BATCH_BYTES) {
            let (keys, values) = Self::columns(batch);
            match sqlx::query(&sql)
                .bind(keys)
                .bind(values)
                .execute(&mut self.conn)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                    // "Key (key)=(default_b-1) already exists."
                    let detail = e
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .and_then(|pg| pg.detail())
                        .unwrap_or("");
                    let key = detail
                        .split_once("=(")
                        .and_then(|(_, rest)| rest.rsplit_once(") already exists"))
                        .map_or("?", |(key, _)| key);
                    return Err(key_taken(table, key));
                }
                Err(e) => return Err(db_error(&doing, e)),
            }
        }
        Ok(())
    }

    pub async fn update_users(&mut self, users: &[RawDoc]) -> Result<()> {
        let sql = "UPDATE \"users\" SET \"value\" = u.v::jsonb FROM UNNEST($1::text[], $2::text[]) AS u(k, v) \
                   WHERE \"users\".\"key\" = u.k";
        for batch in batches(users, BATCH_ROWS, BATCH_BYTES) {
            let (keys, values) = Self::columns(batch);
            let done = sqlx::query(sql)
                .bind(keys)
                .bind(values)
                .execute(&mut self.conn)
                .await
                .map_err(|e| db_error("updating users", e))?;
            if done.rows_affected() != batch.len() as u64 {
                return Err(Error::stale("a user vanished during apply"));
            }
        }
        Ok(())
    }

    pub async fn record(&mut self, r: &HistoryRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO {HISTORY_TABLE} (digest, tenant, plan_created_at, plan_created_by, approvers, applied_at, applied_by, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
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
        self.execute("COMMIT", "committing").await
    }

    pub async fn rollback(&mut self) -> Result<()> {
        self.execute("ROLLBACK", "rolling back").await
    }

    pub async fn create_iam_tables(&mut self) -> Result<()> {
        for statement in ddl_statements(include_str!("ddl/postgres.sql")) {
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
