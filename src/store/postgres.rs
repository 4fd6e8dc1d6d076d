//! PostgreSQL: one connection, whose transactions are read-only by default
//! for the commands that only read, and whose search path is narrowed at
//! connect to the schema holding the IAM tables (`pin_schema`). `plan` reads in a `REPEATABLE READ, READ
//! ONLY` transaction; `apply` takes `pg_advisory_xact_lock` (one apply at a
//! time) and a `SHARE ROW EXCLUSIVE` lock on the IAM tables (nobody writes
//! them between its re-read and its writes), then inserts with `COPY ...
//! FROM STDIN` and updates with `UNNEST`, one statement per table and batch.

use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection, Executor, Row};

use super::sql::{connect_error, db_error, ensure_history_table, execute, Dialect, Failure};
use super::{Access, Table};
use crate::connect::{Backend, Target};
use crate::error::{Error, Result};
use crate::sync::RawDoc;

pub(super) struct Postgres {
    /// The schemas of the search path, in order, as the connection found
    /// them: for "not an IAM store" to say where it looked.
    searched: Vec<String>,
}

/// The advisory lock every sync-access apply takes: "syncacce" in ASCII.
const LOCK_KEY: i64 = 0x7379_6e63_6163_6365;
/// SQLSTATE lock_not_available: `lock_timeout` ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

fn lock_timed_out(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if Postgres::classify(e.as_ref()) == Failure::LockTimeout)
}

/// `text` as a column of COPY's text format: backslash, tab, newline and
/// carriage return escaped; every other byte as it is.
fn copy_text(out: &mut Vec<u8>, text: &str) {
    for &byte in text.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(byte),
        }
    }
}

/// Each row `sql` selects, read through `COPY (sql) TO STDOUT`: the rows
/// come as lines of text, split here, instead of one `PgRow` each through
/// sqlx's stream, whose decoding was a sixth of `plan` on PostgreSQL
/// (perf). The rows are those of the same statement in the same
/// transaction: COPY reads the transaction's snapshot.
async fn copy_rows(
    conn: &mut PgConnection,
    sql: &str,
    binds: &[&str],
    visit: &mut dyn FnMut(RawDoc),
) -> std::result::Result<(), sqlx::Error> {
    use futures_util::TryStreamExt;
    let statement = format!("COPY ({}) TO STDOUT", with_constants(sql, binds)?);
    let mut copy = conn.copy_out_raw(&statement).await?;
    // What has come of a line not yet ended.
    let mut partial: Vec<u8> = Vec::new();
    let mut read = 0usize;
    while let Some(data) = copy.try_next().await? {
        let mut rest: &[u8] = &data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = if partial.is_empty() {
                &rest[..end]
            } else {
                partial.extend_from_slice(&rest[..end]);
                &partial[..]
            };
            let row = copy_row(line)?;
            partial.clear();
            rest = &rest[end + 1..];
            crate::progress::rows_read(1);
            visit(row);
            read += 1;
            // As the stream of rows does (`SqlStore::visit_docs`).
            if read % super::sql::YIELD_EVERY_ROWS == 0 {
                tokio::task::yield_now().await;
            }
        }
        partial.extend_from_slice(rest);
    }
    if !partial.is_empty() {
        return Err(copy_error("a row without its end"));
    }
    Ok(())
}

/// `sql` with each parameter `$n` replaced by `binds[n - 1]` as a string
/// constant: COPY takes no parameters. The escape string syntax (`E'...'`)
/// reads the same whatever `standard_conforming_strings` says.
fn with_constants(sql: &str, binds: &[&str]) -> std::result::Result<String, sqlx::Error> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let bind = rest[at + 1..at + 1 + digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| binds.get(n.checked_sub(1)?))
            .ok_or_else(|| copy_error("a parameter without its value"))?;
        out.push_str("E'");
        for c in bind.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("''"),
                _ => out.push(c),
            }
        }
        out.push('\'');
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One line of COPY's text format, of two columns: the key and the value.
/// A tab in a column is written escaped, so the first tab ends the key.
fn copy_row(line: &[u8]) -> std::result::Result<RawDoc, sqlx::Error> {
    let tab = line
        .iter()
        .position(|&b| b == b'\t')
        .ok_or_else(|| copy_error("a row of one column"))?;
    Ok(RawDoc::new(
        copy_column(&line[..tab])?,
        copy_column(&line[tab + 1..])?,
    ))
}

/// A column of COPY's text format, its escapes undone (those COPY TO
/// writes: a backslash, and `\b \f \n \r \t \v`; `\N` is NULL, which
/// neither column can be).
fn copy_column(text: &[u8]) -> std::result::Result<String, sqlx::Error> {
    let bytes = if !text.contains(&b'\\') {
        if text.contains(&b'\t') {
            return Err(copy_error("a row of more than two columns"));
        }
        text.to_vec()
    } else {
        let mut out = Vec::with_capacity(text.len());
        let mut bytes = text.iter();
        while let Some(&b) = bytes.next() {
            out.push(match b {
                b'\t' => return Err(copy_error("a row of more than two columns")),
                b'\\' => match bytes.next() {
                    Some(b'\\') => b'\\',
                    Some(b'b') => 0x08,
                    Some(b'f') => 0x0c,
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b't') => b'\t',
                    Some(b'v') => 0x0b,
                    Some(b'N') => return Err(copy_error("a NULL key or value")),
                    _ => return Err(copy_error("an escape COPY does not write")),
                },
                b => b,
            });
        }
        out
    };
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn copy_error(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("reading rows through COPY: {what}"))
}

fn columns(rows: &[RawDoc]) -> (Vec<&str>, Vec<&str>) {
    rows.iter()
        .map(|r| (r.key.as_str(), r.value.as_str()))
        .unzip()
}

/// The IAM tables live in the first schema of the search path that holds
/// one of them (`currentSchema`, `options=-csearch_path=...`); the search
/// path is then narrowed to that schema alone, so that every unqualified
/// name (the history table's too) resolves there and nowhere else. Returns
/// the schemas of the search path as found, for "not an IAM store".
async fn pin_schema(conn: &mut PgConnection) -> Result<Vec<String>> {
    let searched: Vec<String> = sqlx::query_scalar("SELECT unnest(current_schemas(false))::text")
        .fetch_all(&mut *conn)
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
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| db_error("finding the IAM tables", e))?;
    if let Some(schema) = found {
        // A session setting, not a write: allowed on a read-only session.
        sqlx::query("SELECT set_config('search_path', quote_ident($1), false)")
            .bind(&schema)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error("setting the search path", e))?;
    }
    Ok(searched)
}

impl Dialect for Postgres {
    type Db = sqlx::Postgres;
    const BACKEND: Backend = Backend::Postgres;
    /// Rows per UNNEST statement: bounds the size of one request.
    const BATCH_ROWS: usize = 50_000;
    const BATCH_BYTES: usize = 64 << 20;
    const IAM_DDL: &'static str = include_str!("ddl/postgres.sql");
    const HISTORY_DDL: &'static str = "CREATE TABLE IF NOT EXISTS sync_access_history (\
         digest VARCHAR(80) NOT NULL PRIMARY KEY, tenant VARCHAR(250) NOT NULL, \
         plan_created_at VARCHAR(40) NOT NULL, plan_created_by VARCHAR(250) NOT NULL, \
         approvers TEXT NOT NULL, applied_at VARCHAR(40) NOT NULL, applied_by VARCHAR(250) NOT NULL, \
         summary TEXT NOT NULL, reverted_by VARCHAR(80), created_group_lists TEXT)";
    const HISTORY_COLUMN_NAMES: &'static str =
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'sync_access_history'";
    const HISTORY_REVERT_COLUMNS: [(&'static str, &'static str); 2] = [
        (
            "reverted_by",
            "ALTER TABLE sync_access_history ADD COLUMN reverted_by VARCHAR(80)",
        ),
        (
            "created_group_lists",
            "ALTER TABLE sync_access_history ADD COLUMN created_group_lists TEXT",
        ),
    ];
    /// Tables of the schema the IAM tables were found in (the search path
    /// is narrowed to it at connect), as unqualified names resolve.
    const TABLE_NAMES: &'static str = "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname = current_schema()";
    const BEGIN_SNAPSHOT: &'static [&'static str] =
        &["BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"];
    const BEGIN: &'static str = "BEGIN";

    async fn connect(target: &Target, access: Access) -> Result<(PgConnection, Self)> {
        let attempts = target.pg_attempts()?;
        let mut connected = None;
        for (i, options) in attempts.iter().enumerate() {
            match PgConnection::connect_with(options).await {
                Ok(c) => {
                    connected = Some(c);
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
                Err(e) => return Err(connect_error(target, e)),
            }
        }
        let mut conn = connected.expect("one attempt at least");
        let searched = pin_schema(&mut conn).await?;
        if access == Access::ReadOnly {
            // Every transaction of this session is read-only unless it says
            // otherwise, and none of ours does.
            execute(
                &mut conn,
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                "making the connection read-only",
            )
            .await?;
        }
        Ok((conn, Postgres { searched }))
    }

    /// The cluster's system identifier, the database and the schema the
    /// IAM tables were found in.
    async fn identity(&mut self, conn: &mut PgConnection) -> Result<String> {
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error("reading the current schema", e))?;
        let schema = schema.unwrap_or_default();
        // pg_control_system() may be denied (some managed services): fall
        // back to the server address.
        let system: std::result::Result<(String, String), _> = sqlx::query_as(
            "SELECT system_identifier::text, current_database()::text FROM pg_control_system()",
        )
        .fetch_one(&mut *conn)
        .await;
        match system {
            Ok((id, db)) => Ok(format!("postgres:{id}/{db}/{schema}")),
            Err(_) => {
                let (addr, db): (String, String) = sqlx::query_as(
                    "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port()::text, ''), \
                     current_database()::text",
                )
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| db_error("reading the server identity", e))?;
                Ok(format!("postgres:{addr}/{db}/{schema}"))
            }
        }
    }

    async fn location(&mut self, conn: &mut PgConnection) -> String {
        let db: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut *conn)
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

    fn quote(name: &str) -> String {
        format!("\"{name}\"")
    }

    fn text(column: &str) -> String {
        format!("{}::text", Self::quote(column))
    }

    fn raw_doc(row: &PgRow) -> std::result::Result<RawDoc, sqlx::Error> {
        Ok(RawDoc::new(
            row.try_get::<String, _>(0)?,
            row.try_get::<String, _>(1)?,
        ))
    }

    /// Through `COPY (...) TO STDOUT` ([`copy_rows`]).
    async fn visit_rows(
        conn: &mut PgConnection,
        sql: &str,
        binds: &[&str],
        visit: &mut dyn FnMut(RawDoc),
    ) -> Option<std::result::Result<(), sqlx::Error>> {
        Some(copy_rows(conn, sql, binds, visit).await)
    }

    fn param(n: usize) -> String {
        format!("${n}")
    }

    fn key_starts_with(first: usize) -> (String, usize) {
        (format!("starts_with(\"key\", ${first})"), 1)
    }

    async fn begin_apply(&mut self, conn: &mut PgConnection, lock_timeout: Duration) -> Result<()> {
        execute(conn, "BEGIN", "starting the apply transaction").await?;
        execute(
            conn,
            &format!(
                "SET LOCAL lock_timeout = '{}ms'",
                lock_timeout.as_millis().max(1)
            ),
            "setting the lock timeout",
        )
        .await?;
        let locked = sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await;
        match locked {
            Ok(_) => {}
            Err(e) if lock_timed_out(&e) => {
                return Err(Error::locked(format!(
                    "another sync-access apply holds the lock on this database (waited {}s)",
                    lock_timeout.as_secs()
                ))
                .with_source(e))
            }
            Err(e) => return Err(db_error("taking the apply lock", e)),
        }
        ensure_history_table(
            conn,
            Self::TABLE_NAMES,
            Self::HISTORY_DDL,
            Self::HISTORY_COLUMN_NAMES,
            &Self::HISTORY_REVERT_COLUMNS,
        )
        .await?;
        // Writers other than sync-access (Kestra itself) wait until commit;
        // readers do not.
        match conn
            .execute("LOCK TABLE \"tenants\", \"users\", \"groups\", \"roles\", \"bindings\" IN SHARE ROW EXCLUSIVE MODE")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if lock_timed_out(&e) => Err(Error::locked(format!(
                "another session is writing the IAM tables (waited {}s)",
                lock_timeout.as_secs()
            ))
            .with_source(e)),
            Err(e) => Err(db_error("locking the IAM tables", e)),
        }
    }

    /// Taken after the apply's locks: what the second connection reads is
    /// what this transaction sees, and nobody else can change it until the
    /// apply ends.
    async fn export_snapshot(&mut self, conn: &mut PgConnection) -> Result<Option<String>> {
        let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_error("exporting the apply's snapshot", e))?;
        Ok(Some(id))
    }

    /// The five tables are locked at once (`ACCESS SHARE`, which the
    /// apply's lock lets through), waiting a few seconds at most: a session
    /// that asked for a stronger lock meanwhile (an `ALTER TABLE` queued
    /// behind the apply) would otherwise make the reads wait for it, and it
    /// waits for the apply, which waits for the reads. A lock not had in
    /// time leaves the apply to derive on its own connection.
    fn begin_at_snapshot(id: &str) -> Vec<String> {
        vec![
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY".to_string(),
            format!("SET TRANSACTION SNAPSHOT '{id}'"),
            "SET LOCAL lock_timeout = '5s'".to_string(),
            "LOCK TABLE \"tenants\", \"users\", \"groups\", \"roles\", \"bindings\" IN ACCESS SHARE MODE"
                .to_string(),
        ]
    }

    /// `COPY ... FROM STDIN`: the server's bulk path (rows inserted many
    /// at a time), where an INSERT from arrays inserts them one by one.
    /// It runs under a savepoint so that a key already taken leaves the
    /// transaction usable, to find which key it was.
    async fn insert_batch(
        conn: &mut PgConnection,
        table: Table,
        batch: &[RawDoc],
    ) -> std::result::Result<(), sqlx::Error> {
        let sql = format!(
            "COPY {} (\"key\", \"value\") FROM STDIN",
            Self::quote(table.name())
        );
        let mut data =
            Vec::with_capacity(batch.iter().map(|r| r.key.len() + r.value.len() + 2).sum());
        for row in batch {
            copy_text(&mut data, &row.key);
            data.push(b'\t');
            copy_text(&mut data, &row.value);
            data.push(b'\n');
        }
        conn.execute("SAVEPOINT sync_access_batch").await?;
        let copied = async {
            let mut copy = conn.copy_in_raw(&sql).await?;
            if let Err(e) = copy.send(data).await {
                let _ = copy.abort("sync-access: sending failed").await;
                return Err(e);
            }
            copy.finish().await
        }
        .await;
        match copied {
            Ok(_) => {
                conn.execute("RELEASE SAVEPOINT sync_access_batch").await?;
                Ok(())
            }
            Err(e) => {
                conn.execute("ROLLBACK TO SAVEPOINT sync_access_batch")
                    .await?;
                Err(e)
            }
        }
    }

    async fn update_users_batch(
        conn: &mut PgConnection,
        batch: &[RawDoc],
    ) -> std::result::Result<u64, sqlx::Error> {
        let (keys, values) = columns(batch);
        let done = sqlx::query(
            "UPDATE \"users\" SET \"value\" = u.v::jsonb FROM UNNEST($1::text[], $2::text[]) AS u(k, v) \
             WHERE \"users\".\"key\" = u.k",
        )
        .bind(keys)
        .bind(values)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    async fn commit(&mut self, conn: &mut PgConnection) -> Result<()> {
        execute(conn, "COMMIT", "committing").await
    }

    async fn rollback(&mut self, conn: &mut PgConnection) -> Result<()> {
        execute(conn, "ROLLBACK", "rolling back").await
    }

    fn classify(error: &dyn DatabaseError) -> Failure {
        if error.code().as_deref() == Some(LOCK_NOT_AVAILABLE) {
            Failure::LockTimeout
        } else if error.is_unique_violation() {
            Failure::KeyTaken
        } else {
            Failure::Other
        }
    }

    async fn execute_counting(
        conn: &mut PgConnection,
        sql: &str,
        binds: &[&str],
    ) -> std::result::Result<u64, sqlx::Error> {
        let query = binds
            .iter()
            .fold(sqlx::query::<sqlx::Postgres>(sql), |query, value| {
                query.bind(*value)
            });
        Ok(query.execute(&mut *conn).await?.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(key: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        copy_text(&mut out, key);
        out.push(b'\t');
        copy_text(&mut out, value);
        out
    }

    proptest! {
        /// What COPY's text format says of a row is the row.
        #[test]
        fn a_copy_line_reads_back_as_its_row(key in any::<String>(), value in any::<String>()) {
            let row = copy_row(&line(&key, &value)).unwrap();
            prop_assert_eq!((row.key, row.value), (key, value));
        }
    }

    #[test]
    fn the_escapes_copy_writes_are_undone_and_others_refused() {
        let row = copy_row(b"k\\b\\f\\v\\\\\tv\\n\\r\\t").unwrap();
        assert_eq!(row.key, "k\u{8}\u{c}\u{b}\\");
        assert_eq!(row.value, "v\n\r\t");
        for bad in [
            &b"no tab"[..],
            b"a\tb\tc",
            b"a\t\\N",
            b"\\N\tb",
            b"a\t\\x41",
            b"a\tb\\",
            b"a\t\xff",
        ] {
            assert!(copy_row(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parameters_become_escaped_constants() {
        let sql = "SELECT 1 WHERE a = $1 OR b = $2 OR c = $10";
        let binds: Vec<&str> = vec!["t", "it's \\ $1", "3", "4", "5", "6", "7", "8", "9", "ten"];
        assert_eq!(
            with_constants(sql, &binds).unwrap(),
            "SELECT 1 WHERE a = E't' OR b = E'it''s \\\\ $1' OR c = E'ten'"
        );
        assert!(with_constants("SELECT $2", &["a"]).is_err());
        assert!(with_constants("SELECT $", &["a"]).is_err());
        assert_eq!(with_constants("SELECT 1", &[]).unwrap(), "SELECT 1");
    }
}
