//! The store: the one place that talks SQL. One file per backend; this
//! module is the seam the commands use, dispatching on the backend.
//!
//! Reads return a consistent [`Snapshot`]; writes take [`Writes`] and run
//! inside the apply transaction that [`Store::begin_apply`] opened under the
//! backend's lock.

mod mysql;
mod postgres;
mod sqlite;

use std::time::Duration;

use crate::connect::{Backend, Target};
use crate::error::{Error, Result};
use sqlx::Row;

use crate::sync::{RawDoc, Snapshot, Writes};

/// The IAM tables of SPEC §2, in the order they are checked and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Tenants,
    Users,
    Groups,
    Roles,
    Bindings,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Tenants,
        Table::Users,
        Table::Groups,
        Table::Roles,
        Table::Bindings,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Users => "users",
            Table::Groups => "groups",
            Table::Roles => "roles",
            Table::Bindings => "bindings",
        }
    }
}

pub const HISTORY_TABLE: &str = "sync_access_history";

/// How the connection will be used: `plan` must not be able to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    /// Create the database file if it is missing (SQLite, `demo` only).
    Create,
}

/// Whether a snapshot is read in its own read-only transaction or inside the
/// apply transaction, under its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    ReadOnly,
    InApply,
}

/// One applied plan, as `sync_access_history` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    pub digest: String,
    pub tenant: String,
    pub plan_created_at: String,
    pub plan_created_by: String,
    /// JSON array of `{by, at}`.
    pub approvers: String,
    pub applied_at: String,
    pub applied_by: String,
    /// JSON object of the plan's summary counts.
    pub summary: String,
}

pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
    MySql(mysql::MySqlStore),
}

macro_rules! dispatch {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
            Store::MySql($store) => $call,
        }
    };
}

impl Store {
    /// Connects within `timeout`; errors name the database without password.
    pub async fn connect(target: &Target, access: Access, timeout: Duration) -> Result<Store> {
        let connecting = async {
            Ok::<_, Error>(match target.backend {
                Backend::Sqlite => {
                    Store::Sqlite(sqlite::SqliteStore::connect(target, access).await?)
                }
                Backend::Postgres => {
                    Store::Postgres(postgres::PgStore::connect(target, access).await?)
                }
                Backend::MySql => Store::MySql(mysql::MySqlStore::connect(target, access).await?),
            })
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(store) => store,
            Err(_) => Err(Error::connection(format!(
                "could not connect to {} within {}: {}",
                target.display(),
                humantime::format_duration(timeout),
                match target.backend {
                    // A MySQL server speaks first; PostgreSQL and most other
                    // services wait for the client.
                    Backend::MySql => "no MySQL greeting came (is the port that of another kind of server, such as PostgreSQL?)",
                    _ => "no answer came (is the host reachable and the port right?)",
                }
            ))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
            Store::MySql(_) => Backend::MySql,
        }
    }

    /// The most stable identity of the database the backend offers (SPEC §4).
    pub async fn identity(&mut self) -> Result<String> {
        dispatch!(self, s => s.identity().await)
    }

    /// Fails with "not an IAM store" when one of the five tables is missing,
    /// saying where it looked and how to point elsewhere.
    pub async fn check_schema(&mut self) -> Result<()> {
        let present = dispatch!(self, s => s.table_names().await)?;
        for table in Table::ALL {
            if !present.iter().any(|t| t == table.name()) {
                let location = dispatch!(self, s => s.location().await);
                return Err(Error::store(format!(
                    "not an IAM store: table `{}` is missing ({location})",
                    table.name()
                )));
            }
        }
        Ok(())
    }

    pub async fn history_table_exists(&mut self) -> Result<bool> {
        Ok(dispatch!(self, s => s.table_names().await)?
            .iter()
            .any(|t| t == HISTORY_TABLE))
    }

    /// Reads every row [`crate::sync::sync`] needs for `tenant`, in one
    /// consistent snapshot.
    pub async fn read_snapshot(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot> {
        dispatch!(self, s => s.read_snapshot(tenant, mode).await)
    }

    /// Opens the apply transaction under the backend's lock, waiting at most
    /// `lock_timeout` for another apply ([`Error::Locked`] then).
    pub async fn begin_apply(&mut self, lock_timeout: Duration) -> Result<()> {
        dispatch!(self, s => s.begin_apply(lock_timeout).await)
    }

    /// Whether the history table can be written inside the open transaction.
    /// MySQL commits implicitly on DDL, so there it must exist beforehand:
    /// see [`Store::create_history_table`].
    pub async fn history_ready(&mut self) -> Result<bool> {
        match self {
            Store::MySql(_) => self.history_table_exists().await,
            _ => Ok(true),
        }
    }

    /// The only DDL the tool runs on a store it did not create.
    pub async fn create_history_table(&mut self) -> Result<()> {
        dispatch!(self, s => s.create_history_table().await)
    }

    pub async fn find_applied(&mut self, digest: &str) -> Result<Option<HistoryRecord>> {
        if !self.history_table_exists().await? {
            return Ok(None);
        }
        dispatch!(self, s => s.find_applied(digest).await)
    }

    pub async fn history(&mut self) -> Result<Vec<HistoryRecord>> {
        if !self.history_table_exists().await? {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.history().await)
    }

    /// Writes inside the apply transaction; any failure leaves it to be
    /// rolled back.
    pub async fn write(&mut self, writes: &Writes) -> Result<()> {
        for (table, rows) in [
            (Table::Tenants, &writes.tenants),
            (Table::Roles, &writes.roles),
            (Table::Groups, &writes.groups),
            (Table::Bindings, &writes.bindings),
        ] {
            if !rows.is_empty() {
                dispatch!(self, s => s.insert(table, rows).await)?;
            }
        }
        if !writes.users.is_empty() {
            dispatch!(self, s => s.update_users(&writes.users).await)?;
        }
        Ok(())
    }

    pub async fn record(&mut self, record: &HistoryRecord) -> Result<()> {
        dispatch!(self, s => s.record(record).await)
    }

    pub async fn commit(&mut self) -> Result<()> {
        dispatch!(self, s => s.commit().await)
    }

    pub async fn rollback(&mut self) -> Result<()> {
        dispatch!(self, s => s.rollback().await)
    }

    /// Creates the five IAM tables with the reference DDL (demo and tests).
    pub async fn create_iam_tables(&mut self) -> Result<()> {
        dispatch!(self, s => s.create_iam_tables().await)
    }

    /// Inserts rows outside any plan, in one transaction (demo and tests).
    pub async fn load(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        dispatch!(self, s => s.load(table, rows).await)
    }

    /// Drops the five IAM tables and the history table (demo --reset).
    pub async fn drop_all(&mut self) -> Result<()> {
        dispatch!(self, s => s.drop_all().await)
    }
}

/// Splits rows into batches of at most `max_rows` rows and about `max_bytes`
/// bytes of values, so that multi-row statements stay within the backend's
/// bind-parameter and packet limits.
pub(crate) fn batches(rows: &[RawDoc], max_rows: usize, max_bytes: usize) -> Vec<&[RawDoc]> {
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
pub(crate) fn ddl_statements(ddl: &str) -> Vec<String> {
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

/// Maps a failed connection to an error that says what to do; the driver's
/// error is kept as the cause, for `-v`.
pub(crate) fn connect_error(target: &Target, err: sqlx::Error) -> Error {
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
    let detail = match (&err, tls_hint) {
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
        _ => text,
    };
    Error::connection(format!(
        "could not connect to {}: {detail}",
        target.display()
    ))
    .with_source(err)
}

/// Maps a driver error to ours, with what was being done; never includes the
/// statement's arguments (they may hold user documents). The driver's error
/// is kept as the cause, for `-v`.
pub(crate) fn db_error(doing: &str, err: sqlx::Error) -> Error {
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

/// A planned row that collides with a row already in the table by the time
/// of the write (put there by a trigger, say): the database changed, so the
/// plan is stale.
pub(crate) fn key_taken(table: Table, key: &str) -> Error {
    Error::stale(format!(
        "inserting into {}: `{key}` collides with a row that is already there",
        table.name()
    ))
}

/// The first row of `batch` whose key is not among the `inserted` ones.
pub(crate) fn first_not_inserted<'a>(batch: &'a [RawDoc], inserted: &[String]) -> &'a str {
    let inserted: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
    batch
        .iter()
        .map(|row| row.key.as_str())
        .find(|key| !inserted.contains(key))
        .unwrap_or("?")
}

/// Reads a history row selected as the eight columns in table order.
pub(crate) fn history_record<R: Row>(row: &R) -> std::result::Result<HistoryRecord, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(HistoryRecord {
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
