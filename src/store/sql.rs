//! The algorithm every backend shares, written once over sqlx's `Database`:
//! [`SqlStore`] implements the [`Driver`] contract for any [`Dialect`], and
//! a dialect (one file per backend) says only what differs: its SQL, how it
//! connects and who it is, its locks, its fast write paths, and what its
//! error codes mean.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::error::DatabaseError;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::driver::Driver;
use super::{Access, HistoryRecord, ReadMode, Table, HISTORY_TABLE};
use crate::connect::{Backend, Target};
use crate::error::{Error, Result};
use crate::sync::{RawDoc, Snapshot, StoreKeys};

/// A dialect's connection.
pub(super) type Conn<D> = <<D as Dialect>::Db as Database>::Connection;

/// What a driver error means, told by the backend's own code for it
/// (SQLSTATE, error number, result code), never by its message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A lock was not granted within the lock timeout.
    LockTimeout,
    /// A primary or unique key is already taken.
    KeyTaken,
    Other,
}

/// What differs between backends. Everything else is [`SqlStore`]'s.
pub(super) trait Dialect: Sized + 'static {
    type Db: Database;
    const BACKEND: Backend;

    /// Rows and bytes per multi-row statement: under the backend's limits
    /// on bind parameters and packet size.
    const BATCH_ROWS: usize;
    const BATCH_BYTES: usize;

    /// The reference DDL of the five IAM tables (demo and tests).
    const IAM_DDL: &'static str;
    /// `CREATE TABLE IF NOT EXISTS` of the history table.
    const HISTORY_DDL: &'static str;
    /// Lists the tables that unqualified names resolve to, one name a row.
    const TABLE_NAMES: &'static str;
    /// Lists the columns of the history table, one name a row.
    const HISTORY_COLUMN_NAMES: &'static str;
    /// Each column that revert added to the history table (docs/store.md
    /// §5), with the `ALTER TABLE` that adds it to an older table.
    const HISTORY_REVERT_COLUMNS: [(&'static str, &'static str); 2];
    /// Starts the read-only, consistent transaction of a snapshot read.
    const BEGIN_SNAPSHOT: &'static [&'static str];
    /// Starts a read-write transaction (`load`).
    const BEGIN: &'static str;
    /// Whether DDL takes part in a transaction (else it commits at once).
    const TRANSACTIONAL_DDL: bool = true;
    /// Appended to each read of a snapshot taken inside the apply.
    const LOCKING_READ: &'static str = "";

    /// Opens the one connection. With [`Access::ReadOnly`] the database
    /// itself must refuse every write on it.
    async fn connect(target: &Target, access: Access) -> Result<(Conn<Self>, Self)>;

    /// The most stable identity of the database the backend offers.
    async fn identity(&mut self, conn: &mut Conn<Self>) -> Result<String>;

    /// Where the IAM tables were looked for, and how to point elsewhere,
    /// for "not an IAM store".
    async fn location(&mut self, conn: &mut Conn<Self>) -> String;

    /// An identifier, quoted.
    fn quote(name: &str) -> String;

    /// A column read as text.
    fn text(column: &str) -> String;

    /// A column of `SELECT key, value` as [`Dialect::raw_doc`] reads it:
    /// by default, as text.
    fn doc_column(column: &str) -> String {
        Self::text(column)
    }

    /// A row of `SELECT key, value`: read as text, or where the backend
    /// keeps bytes that are not UTF-8 (SQLite), as bytes, so that one bad
    /// row is named as malformed instead of failing the read
    /// ([`RawDoc::from_bytes`]).
    fn raw_doc(row: &<Self::Db as Database>::Row) -> std::result::Result<RawDoc, sqlx::Error>;

    /// Each row `sql` selects (its parameters bound to `binds` as text, in
    /// order), given to `visit` as [`Dialect::raw_doc`] reads it and counted
    /// for the progress line, by a faster way than sqlx's stream of rows;
    /// `None` when the backend has none.
    async fn visit_rows(
        _conn: &mut Conn<Self>,
        _sql: &str,
        _binds: &[&str],
        _visit: &mut dyn FnMut(RawDoc),
    ) -> Option<std::result::Result<(), sqlx::Error>> {
        None
    }

    /// The `n`th (from 1) bind parameter.
    fn param(n: usize) -> String;

    /// A condition true when `key` starts with the text of parameter
    /// `first`, and how many parameters it binds (each one to the prefix).
    fn key_starts_with(first: usize) -> (String, usize);

    /// How the tables that copies go to compare their keys; by bytes
    /// unless the backend's collations say otherwise.
    async fn key_rules(&mut self, _conn: &mut Conn<Self>) -> Result<StoreKeys> {
        Ok(StoreKeys::default())
    }

    /// Takes the backend's apply lock and opens the apply transaction, with
    /// the history table created when it is missing.
    async fn begin_apply(&mut self, conn: &mut Conn<Self>, lock_timeout: Duration) -> Result<()>;

    /// [`Dialect::begin_apply`] with the history table left to another
    /// connection ([`super::Store::history_maker`]): only where creating
    /// it would commit the transaction (MySQL, MariaDB).
    async fn begin_apply_without_history(
        &mut self,
        _conn: &mut Conn<Self>,
        _lock_timeout: Duration,
    ) -> Result<()> {
        Err(Error::usage(
            "internal: this backend creates the history table in the apply transaction",
        ))
    }

    /// The apply transaction's snapshot, exported for a second connection
    /// to read in ([`super::Store::reader_beside_apply`]), or `None` where
    /// the backend cannot share one.
    async fn export_snapshot(&mut self, _conn: &mut Conn<Self>) -> Result<Option<String>> {
        Ok(None)
    }

    /// The statements that begin a read-only transaction at a snapshot
    /// [`Dialect::export_snapshot`] gave (checked to be one).
    fn begin_at_snapshot(_id: &str) -> Vec<String> {
        Vec::new()
    }

    /// Inserts one batch; a key already taken is [`Failure::KeyTaken`], and
    /// leaves the transaction usable for reads.
    async fn insert_batch(
        conn: &mut Conn<Self>,
        table: Table,
        batch: &[RawDoc],
    ) -> std::result::Result<(), sqlx::Error>;

    /// Replaces the value of each user of `batch` by key; returns how many
    /// rows matched.
    async fn update_users_batch(
        conn: &mut Conn<Self>,
        batch: &[RawDoc],
    ) -> std::result::Result<u64, sqlx::Error>;

    async fn commit(&mut self, conn: &mut Conn<Self>) -> Result<()>;

    async fn rollback(&mut self, conn: &mut Conn<Self>) -> Result<()>;

    fn classify(error: &dyn DatabaseError) -> Failure;

    /// Runs one statement whose parameters are all strings; returns how
    /// many rows it changed (matched, for an `UPDATE`).
    async fn execute_counting(
        conn: &mut Conn<Self>,
        sql: &str,
        binds: &[&str],
    ) -> std::result::Result<u64, sqlx::Error>;
}

/// The [`Driver`] of every backend: one connection and its dialect.
pub(super) struct SqlStore<D: Dialect> {
    conn: Conn<D>,
    dialect: D,
    access: Access,
    /// A read transaction begun at another connection's snapshot
    /// ([`Driver::begin_read_at`]): the next read is in it.
    read_begun: bool,
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn connect(target: &Target, access: Access) -> Result<Self> {
        let (conn, dialect) = D::connect(target, access).await?;
        Ok(SqlStore {
            conn,
            dialect,
            access,
            read_begun: false,
        })
    }
}

/// Rows a read visits between two turns of the other tasks of the runtime.
pub(super) const YIELD_EVERY_ROWS: usize = 256;

/// Runs one statement without parameters.
pub(super) async fn execute<C>(conn: &mut C, sql: &str, doing: &str) -> Result<()>
where
    for<'c> &'c mut C: Executor<'c>,
{
    conn.execute(sql)
        .await
        .map(|_| ())
        .map_err(|e| db_error(doing, e))
}

/// Runs a query whose parameters are all strings; returns its rows' first
/// columns.
pub(super) async fn strings<C, DB: Database>(
    conn: &mut C,
    sql: &str,
    binds: &[&str],
) -> std::result::Result<Vec<String>, sqlx::Error>
where
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let query = binds
        .iter()
        .fold(sqlx::query::<DB>(sql), |query, value| query.bind(*value));
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

/// Adds to an older history table the columns of [`Dialect::HISTORY_REVERT_COLUMNS`]
/// it lacks (`list` lists its columns), inside the apply transaction where
/// the backend allows DDL there.
pub(super) async fn add_revert_columns<C, DB: Database>(
    conn: &mut C,
    list: &str,
    columns: &[(&str, &str)],
) -> Result<()>
where
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let present = strings(conn, list, &[])
        .await
        .map_err(|e| db_error("listing the columns of the history table", e))?;
    for (name, ddl) in columns {
        if !present.iter().any(|c| c == name) {
            execute(conn, ddl, "adding a column to the history table").await?;
        }
    }
    Ok(())
}

/// Creates the history table (`ddl`) when `tables`, a query listing the
/// schema's tables, does not name it, then adds the revert columns it
/// lacks ([`add_revert_columns`]). Even with `IF NOT EXISTS`, `CREATE
/// TABLE` needs the CREATE privilege on the schema: it is asked for only
/// when the table is really missing.
pub(super) async fn ensure_history_table<C, DB: Database>(
    conn: &mut C,
    tables: &str,
    ddl: &str,
    columns: &str,
    revert_columns: &[(&str, &str)],
) -> Result<()>
where
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let present = strings(conn, tables, &[])
        .await
        .map_err(|e| db_error("listing tables", e))?;
    if !present.iter().any(|t| t == HISTORY_TABLE) {
        execute(conn, ddl, "creating the history table").await?;
    }
    add_revert_columns(conn, columns, revert_columns).await
}

/// Inserts a batch with one multi-row `INSERT ... VALUES`.
pub(super) async fn insert_values<D: Dialect>(
    conn: &mut Conn<D>,
    table: Table,
    batch: &[RawDoc],
) -> std::result::Result<(), sqlx::Error>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
{
    let mut sql = format!(
        "INSERT INTO {} ({}, {}) VALUES ",
        D::quote(table.name()),
        D::quote("key"),
        D::quote("value")
    );
    for i in 0..batch.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "({}, {})",
            D::param(2 * i + 1),
            D::param(2 * i + 2)
        ));
    }
    let query = batch.iter().fold(sqlx::query::<D::Db>(&sql), |query, row| {
        query.bind(row.key.as_str()).bind(row.value.as_str())
    });
    query.execute(conn).await.map(|_| ())
}

/// Splits rows into batches of at most `max_rows` rows and about `max_bytes`
/// bytes of values, so that multi-row statements stay within the backend's
/// bind-parameter and packet limits.
pub(super) fn batches(rows: &[RawDoc], max_rows: usize, max_bytes: usize) -> Vec<&[RawDoc]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, row) in rows.iter().enumerate() {
        let size = row.key.len() + row.value.len();
        if i > start && (i - start >= max_rows || bytes + size > max_bytes) {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// The reference DDL's statements, comments removed.
pub(super) fn ddl_statements(ddl: &str) -> Vec<String> {
    let without_comments: String = ddl
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Maps a driver error to ours, with what was being done; never includes the
/// statement's arguments (they may hold user documents). The driver's error
/// is kept as the cause, for `-v`.
pub(super) fn db_error(doing: &str, err: sqlx::Error) -> Error {
    let error = match &err {
        sqlx::Error::Database(e) => Error::store(format!("{doing}: {}", e.message())),
        sqlx::Error::Io(e) => Error::connection(format!("{doing}: connection lost: {e}")),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            Error::connection(format!("{doing}: connection lost"))
        }
        sqlx::Error::ColumnDecode { index, source } => Error::store(format!(
            "{doing}: column {index} could not be read: {source}"
        )),
        other => Error::store(format!("{doing}: {other}")),
    };
    error.with_source(err)
}

/// How a dialect's failure to connect reads: the database without its
/// password, why in short, and what to do about it; the driver's own error
/// is the cause (`-v`).
pub(super) fn connect_error(target: &Target, err: sqlx::Error) -> Error {
    let text = match &err {
        sqlx::Error::Database(e) => e.message().to_string(),
        sqlx::Error::Io(e) => e.to_string(),
        other => other.to_string(),
    };
    // rustls's verdicts reach us as I/O or TLS errors: name the problem.
    let tls_hint = if text.contains("UnknownIssuer") {
        Some("the server's certificate is not signed by a CA trusted here: name the CA's PEM file with sslrootcert= (PostgreSQL) or ssl-ca= (MySQL, MariaDB)")
    } else if text.contains("NotValidForName") {
        Some("the server's certificate does not name the host connected to: connect by a name it holds, or ask only for verify-ca")
    } else if text.contains("Expired") {
        Some("the server's certificate has expired")
    } else if text.contains("does not support TLS") {
        Some("the server does not offer TLS, and the URL demands it (sslmode / ssl-mode)")
    } else {
        None
    };
    let why = match (&err, tls_hint) {
        (_, Some(hint)) => format!("TLS: {text}: {hint}"),
        (sqlx::Error::Tls(_), None) => format!("TLS: {text}"),
        (sqlx::Error::Protocol(_), None) => format!(
            "the server did not answer as {} does ({text}); is the port that of another kind of server?",
            match target.backend {
                Backend::MySql => "MySQL",
                _ => "PostgreSQL",
            }
        ),
        (sqlx::Error::Io(e), None) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running, and is this its port?)".to_string()
        }
        (sqlx::Error::Io(e), None) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection (is the port that of another kind of server, or does it demand TLS?)".to_string()
        }
        // Another I/O error may be a TLS verdict rustls gave in words not
        // matched above: its whole text.
        _ => text,
    };
    Error::connection(format!("could not connect to {}: {why}", target.display())).with_source(err)
}

/// The `Failure` of a driver error, when it comes from the database.
fn failure<D: Dialect>(err: &sqlx::Error) -> Failure {
    match err {
        sqlx::Error::Database(e) => D::classify(e.as_ref()),
        _ => Failure::Other,
    }
}

/// The history table's columns, in the order [`history_record`] reads them.
const HISTORY_COLUMNS: [&str; 8] = [
    "digest",
    "tenant",
    "plan_created_at",
    "plan_created_by",
    "approvers",
    "applied_at",
    "applied_by",
    "summary",
];

/// The columns revert added, after [`HISTORY_COLUMNS`]: absent from the
/// history tables of older releases until an apply adds them.
const REVERT_COLUMNS: [&str; 2] = ["reverted_by", "created_group_lists"];

/// Reads a history row selected as [`HISTORY_COLUMNS`], then
/// [`REVERT_COLUMNS`] when `with_revert`.
fn history_record<R: Row>(
    row: &R,
    with_revert: bool,
) -> std::result::Result<HistoryRecord, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database>,
{
    let (reverted_by, created_group_lists) = if with_revert {
        (row.try_get(8)?, row.try_get(9)?)
    } else {
        (None, None)
    };
    Ok(HistoryRecord {
        reverted_by,
        created_group_lists,
        digest: row.try_get(0)?,
        tenant: row.try_get(1)?,
        plan_created_at: row.try_get(2)?,
        plan_created_by: row.try_get(3)?,
        approvers: row.try_get(4)?,
        applied_at: row.try_get(5)?,
        applied_by: row.try_get(6)?,
        summary: row.try_get(7)?,
    })
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn execute(&mut self, sql: &str, doing: &str) -> Result<()> {
        execute(&mut self.conn, sql, doing).await
    }

    /// The `key` and `value` of every row `sql` selects, its parameters
    /// bound to `binds` in order, given to `visit` as they come: none is
    /// kept here. Inside the apply, a lock wait that timed out is refused
    /// as locked, as on every other step of the apply.
    async fn visit_docs(
        &mut self,
        sql: &str,
        binds: &[&str],
        mode: ReadMode,
        doing: &str,
        visit: &mut dyn FnMut(RawDoc),
    ) -> Result<()> {
        let read_error = |e: sqlx::Error| {
            match failure::<D>(&e) {
            Failure::LockTimeout if mode == ReadMode::InApply => Error::locked(format!(
                "{doing}: another session is writing the IAM tables and did not finish within the lock timeout"
            ))
            .with_source(e),
            _ => db_error(doing, e),
        }
        };
        if let Some(read) = D::visit_rows(&mut self.conn, sql, binds, &mut *visit).await {
            return read.map_err(read_error);
        }
        let query = binds
            .iter()
            .fold(sqlx::query::<D::Db>(sql), |query, value| query.bind(*value));
        let mut rows = query.fetch(&mut self.conn);
        let mut read = 0usize;
        while let Some(row) = rows.try_next().await.map_err(read_error)? {
            // Counted for the progress line (a relaxed atomic add).
            crate::progress::rows_read(1);
            visit(D::raw_doc(&row).map_err(|e| db_error(doing, e))?);
            read += 1;
            // Rows come many to a socket read, and the runtime has one
            // thread: an apply that writes on another connection meanwhile
            // (`Store::reader_beside_apply`) gets its turn this often, not
            // only when the socket runs dry.
            if read % YIELD_EVERY_ROWS == 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// The rows of `table` that `sync` needs for `tenant`: the tenant's own
    /// row; every user; the legacy scope, the tenant's documents and every
    /// key the copies would take (`<tenant>_...`) of the other tables.
    async fn read_table(
        &mut self,
        table: Table,
        tenant: &str,
        mode: ReadMode,
    ) -> Result<Vec<RawDoc>> {
        let mut docs = Vec::new();
        self.visit_table(table, tenant, mode, &mut |doc| docs.push(doc))
            .await?;
        Ok(docs)
    }

    async fn visit_table(
        &mut self,
        table: Table,
        tenant: &str,
        mode: ReadMode,
        visit: &mut dyn FnMut(RawDoc),
    ) -> Result<()> {
        let mut sql = format!(
            "SELECT {}, {} FROM {}",
            D::doc_column("key"),
            D::doc_column("value"),
            D::quote(table.name())
        );
        let prefix = format!("{tenant}_");
        let mut binds: Vec<&str> = Vec::new();
        match table {
            Table::Tenants => {
                sql.push_str(&format!(" WHERE {} = {}", D::quote("key"), D::param(1)));
                binds.push(tenant);
            }
            Table::Users => {}
            Table::Groups | Table::Roles | Table::Bindings => {
                let tenant_id = D::quote("tenant_id");
                let (starts_with, prefix_binds) = D::key_starts_with(2);
                sql.push_str(&format!(
                    " WHERE {tenant_id} IS NULL OR {tenant_id} = {} OR {starts_with}",
                    D::param(1)
                ));
                binds.push(tenant);
                binds.extend(std::iter::repeat(prefix.as_str()).take(prefix_binds));
            }
        }
        if mode == ReadMode::InApply {
            sql.push_str(D::LOCKING_READ);
        }
        let doing = format!("reading {}", table.name());
        self.visit_docs(&sql, &binds, mode, &doing, visit).await
    }

    /// The keys of `rows` that `table` holds now, in the order of `rows`.
    async fn existing_keys<'r>(
        &mut self,
        table: Table,
        rows: &'r [RawDoc],
    ) -> Result<Vec<&'r str>> {
        let params: Vec<String> = (1..=rows.len()).map(D::param).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} IN ({})",
            D::text("key"),
            D::quote(table.name()),
            D::quote("key"),
            params.join(", ")
        );
        let binds: Vec<&str> = rows.iter().map(|row| row.key.as_str()).collect();
        let found: std::collections::HashSet<String> = strings(&mut self.conn, &sql, &binds)
            .await
            .map_err(|e| db_error(&format!("reading {}", table.name()), e))?
            .into_iter()
            .collect();
        Ok(binds
            .into_iter()
            .filter(|key| found.contains(*key))
            .collect())
    }

    fn history_select(with_revert: bool) -> String {
        let extra: &[&str] = if with_revert { &REVERT_COLUMNS } else { &[] };
        let columns: Vec<String> = HISTORY_COLUMNS
            .iter()
            .chain(extra)
            .map(|c| D::text(c))
            .collect();
        format!("SELECT {} FROM {HISTORY_TABLE}", columns.join(", "))
    }

    /// Whether the history table has the columns revert added (a table of
    /// an older release has not, until an apply adds them).
    async fn history_has_revert_columns(&mut self) -> Result<bool> {
        let present = strings(&mut self.conn, D::HISTORY_COLUMN_NAMES, &[])
            .await
            .map_err(|e| db_error("listing the columns of the history table", e))?;
        Ok(REVERT_COLUMNS
            .iter()
            .all(|c| present.iter().any(|p| p == c)))
    }

    async fn history_rows(&mut self, filter: &str, binds: &[&str]) -> Result<Vec<HistoryRecord>> {
        let doing = "reading the history";
        let with_revert = self.history_has_revert_columns().await?;
        let sql = format!("{}{filter}", Self::history_select(with_revert));
        let query = binds
            .iter()
            .fold(sqlx::query::<D::Db>(&sql), |query, value| {
                query.bind(*value)
            });
        let rows = query
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| db_error(doing, e))?;
        rows.iter()
            .map(|row| history_record(row, with_revert).map_err(|e| db_error(doing, e)))
            .collect()
    }
}

#[async_trait(?Send)]
impl<D: Dialect> Driver for SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    fn backend(&self) -> Backend {
        D::BACKEND
    }

    async fn identity(&mut self) -> Result<String> {
        self.dialect.identity(&mut self.conn).await
    }

    async fn table_names(&mut self) -> Result<Vec<String>> {
        strings(&mut self.conn, D::TABLE_NAMES, &[])
            .await
            .map_err(|e| db_error("listing tables", e))
    }

    async fn location(&mut self) -> String {
        self.dialect.location(&mut self.conn).await
    }

    async fn begin_read(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot> {
        if mode == ReadMode::ReadOnly && !std::mem::take(&mut self.read_begun) {
            for statement in D::BEGIN_SNAPSHOT {
                self.execute(statement, "starting the read transaction")
                    .await?;
            }
        }
        Ok(Snapshot {
            tenants: self.read_table(Table::Tenants, tenant, mode).await?,
            users: self.read_table(Table::Users, tenant, mode).await?,
            groups: self.read_table(Table::Groups, tenant, mode).await?,
            roles: self.read_table(Table::Roles, tenant, mode).await?,
            bindings: Vec::new(),
            keys: self.dialect.key_rules(&mut self.conn).await?,
        })
    }

    async fn visit_bindings(
        &mut self,
        tenant: &str,
        mode: ReadMode,
        visit: &mut dyn FnMut(RawDoc),
    ) -> Result<()> {
        self.visit_table(Table::Bindings, tenant, mode, visit).await
    }

    async fn end_read(&mut self, mode: ReadMode) -> Result<()> {
        if mode == ReadMode::ReadOnly {
            self.execute("COMMIT", "ending the read transaction")
                .await?;
        }
        Ok(())
    }

    async fn export_snapshot(&mut self) -> Result<Option<String>> {
        self.dialect.export_snapshot(&mut self.conn).await
    }

    async fn begin_read_at(&mut self, id: &str) -> Result<()> {
        // The id came from the server; it is still written into SQL only
        // when it is nothing but a snapshot id's characters.
        let plain = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let statements = D::begin_at_snapshot(id);
        if !plain || statements.is_empty() {
            return Err(Error::usage(
                "internal: no snapshot to begin a read at".to_string(),
            ));
        }
        for statement in &statements {
            self.execute(statement, "starting the read at the apply's snapshot")
                .await?;
        }
        self.read_begun = true;
        Ok(())
    }

    async fn begin_apply(&mut self, lock_timeout: Duration) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::usage("internal: apply on a read-only connection"));
        }
        self.dialect.begin_apply(&mut self.conn, lock_timeout).await
    }

    async fn begin_apply_without_history(&mut self, lock_timeout: Duration) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::usage("internal: apply on a read-only connection"));
        }
        self.dialect
            .begin_apply_without_history(&mut self.conn, lock_timeout)
            .await
    }

    async fn create_history_table(&mut self) -> Result<()> {
        execute(&mut self.conn, D::HISTORY_DDL, "creating the history table").await
    }

    async fn insert(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        let doing = format!("inserting into {}", table.name());
        for batch in batches(rows, D::BATCH_ROWS, D::BATCH_BYTES) {
            match D::insert_batch(&mut self.conn, table, batch).await {
                Ok(()) => crate::progress::rows_written(batch.len()),
                Err(e) if failure::<D>(&e) == Failure::KeyTaken => {
                    // A planned key taken by the time of the write (by a
                    // trigger, say): the database changed, the plan is stale.
                    let taken = self.existing_keys(table, batch).await?;
                    let key = taken.first().copied().unwrap_or("?");
                    return Err(Error::stale(format!(
                        "{doing}: `{key}` collides with a row that is already there"
                    ))
                    .with_source(e));
                }
                Err(e) => return Err(db_error(&doing, e)),
            }
        }
        Ok(())
    }

    async fn update_users(&mut self, users: &[RawDoc]) -> Result<()> {
        for batch in batches(users, D::BATCH_ROWS, D::BATCH_BYTES) {
            let matched = D::update_users_batch(&mut self.conn, batch)
                .await
                .map_err(|e| db_error("updating users", e))?;
            if matched != batch.len() as u64 {
                let present = self.existing_keys(Table::Users, batch).await?;
                let gone = batch
                    .iter()
                    .map(|user| user.key.as_str())
                    .find(|key| !present.contains(key))
                    .unwrap_or("?");
                return Err(Error::stale(format!("user `{gone}` vanished during apply")));
            }
            crate::progress::rows_written(batch.len());
        }
        Ok(())
    }

    async fn find_applied(&mut self, digest: &str) -> Result<Option<HistoryRecord>> {
        let filter = format!(" WHERE digest = {}", D::param(1));
        Ok(self
            .history_rows(&filter, &[digest])
            .await?
            .into_iter()
            .next())
    }

    async fn history(&mut self) -> Result<Vec<HistoryRecord>> {
        self.history_rows(" ORDER BY applied_at DESC, digest", &[])
            .await
    }

    async fn record(&mut self, r: &HistoryRecord) -> Result<()> {
        // begin_apply added the revert columns to an older table. A column
        // without a value is a NULL literal: only strings are bound.
        let optional = [r.reverted_by.as_deref(), r.created_group_lists.as_deref()];
        let mut binds: Vec<&str> = vec![
            &r.digest,
            &r.tenant,
            &r.plan_created_at,
            &r.plan_created_by,
            &r.approvers,
            &r.applied_at,
            &r.applied_by,
            &r.summary,
        ];
        let mut values: Vec<String> = (1..=binds.len()).map(D::param).collect();
        for value in optional {
            match value {
                Some(text) => {
                    binds.push(text);
                    values.push(D::param(binds.len()));
                }
                None => values.push("NULL".into()),
            }
        }
        let columns: Vec<&str> = HISTORY_COLUMNS
            .iter()
            .chain(&REVERT_COLUMNS)
            .copied()
            .collect();
        let sql = format!(
            "INSERT INTO {HISTORY_TABLE} ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        );
        binds
            .iter()
            .fold(sqlx::query::<D::Db>(&sql), |query, value| {
                query.bind(*value)
            })
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| db_error("recording the plan in the history", e))
    }

    async fn delete(&mut self, table: Table, keys: &[String]) -> Result<()> {
        let doing = format!("deleting from {}", table.name());
        for batch in keys.chunks(D::BATCH_ROWS) {
            let params: Vec<String> = (1..=batch.len()).map(D::param).collect();
            let sql = format!(
                "DELETE FROM {} WHERE {} IN ({})",
                D::quote(table.name()),
                D::quote("key"),
                params.join(", ")
            );
            let binds: Vec<&str> = batch.iter().map(String::as_str).collect();
            let deleted = D::execute_counting(&mut self.conn, &sql, &binds)
                .await
                .map_err(|e| db_error(&doing, e))?;
            if deleted != batch.len() as u64 {
                // Under the lock this cannot happen unless a trigger or
                // another writer did it: the database changed.
                return Err(Error::stale(format!(
                    "{doing}: {} of {} row(s) were no longer there",
                    batch.len() as u64 - deleted.min(batch.len() as u64),
                    batch.len()
                )));
            }
            crate::progress::rows_written(batch.len());
        }
        Ok(())
    }

    async fn mark_reverted(&mut self, digest: &str, reverted_by: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {HISTORY_TABLE} SET reverted_by = {} WHERE digest = {} AND reverted_by IS NULL",
            D::param(1),
            D::param(2)
        );
        let marked = D::execute_counting(&mut self.conn, &sql, &[reverted_by, digest])
            .await
            .map_err(|e| db_error("marking the reverted plan in the history", e))?;
        if marked != 1 {
            return Err(Error::stale(format!(
                "plan {digest} is no longer recorded as applied and not reverted"
            )));
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        self.dialect.commit(&mut self.conn).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.dialect.rollback(&mut self.conn).await
    }

    async fn create_iam_tables(&mut self) -> Result<()> {
        for statement in ddl_statements(D::IAM_DDL) {
            self.execute(&statement, "creating the IAM tables").await?;
        }
        Ok(())
    }

    async fn load(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        self.execute(D::BEGIN, "loading rows").await?;
        self.insert(table, rows).await?;
        self.commit().await
    }

    async fn begin(&mut self) -> Result<()> {
        self.execute(D::BEGIN, "starting a transaction").await
    }

    fn transactional_ddl(&self) -> bool {
        D::TRANSACTIONAL_DDL
    }

    async fn history_is_current(&mut self) -> Result<bool> {
        let tables = self.table_names().await?;
        Ok(tables.iter().any(|t| t == HISTORY_TABLE) && self.history_has_revert_columns().await?)
    }

    async fn drop_all(&mut self, with_history: bool) -> Result<()> {
        let history = with_history.then_some(HISTORY_TABLE);
        for table in Table::ALL.iter().map(|t| t.name()).chain(history) {
            let sql = format!("DROP TABLE IF EXISTS {}", D::quote(table));
            self.execute(&sql, "dropping tables").await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_rows_and_bytes() {
        let rows: Vec<RawDoc> = (0..10)
            .map(|i| RawDoc::new(format!("k{i}"), "x".repeat(8)))
            .collect();
        let sizes: Vec<usize> = batches(&rows, 4, 1000).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let sizes: Vec<usize> = batches(&rows, 100, 25).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2]);
        assert!(batches(&[], 4, 10).is_empty());
    }

    #[test]
    fn ddl_is_split_into_statements() {
        let stmts = ddl_statements(include_str!("ddl/sqlite.sql"));
        assert_eq!(stmts.len(), 8);
        assert!(stmts.iter().all(|s| s.starts_with("CREATE")));
    }
}
