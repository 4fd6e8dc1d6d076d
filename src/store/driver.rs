//! The contract between the commands and a database backend.
//!
//! [`Store`](super::Store) holds one `Box<dyn Driver>`; every backend gets
//! its implementation from [`SqlStore`](super::sql::SqlStore), which writes
//! the shared algorithm once over sqlx and asks the backend's
//! [`Dialect`](super::sql::Dialect) only for what differs.

use std::time::Duration;

use async_trait::async_trait;

use super::{HistoryRecord, ReadMode, Table};
use crate::connect::Backend;
use crate::error::Result;
use crate::sync::{RawDoc, Snapshot};

/// What a backend does for the commands. One connection, used by one
/// command at a time; none of these futures need to be `Send` (the runtime
/// has one thread).
#[async_trait(?Send)]
pub(crate) trait Driver {
    fn backend(&self) -> Backend;

    /// The most stable identity of the database the backend offers.
    async fn identity(&mut self) -> Result<String>;

    /// The names of the tables that unqualified names resolve to.
    async fn table_names(&mut self) -> Result<Vec<String>>;

    /// Where the IAM tables were looked for, and how to point elsewhere,
    /// for "not an IAM store".
    async fn location(&mut self) -> String;

    /// Starts reading the rows [`crate::sync::sync`] needs for `tenant`,
    /// in one consistent snapshot: in a read-only transaction of its own,
    /// or inside the apply transaction under its locks. Returns every table
    /// but `bindings`, which [`Driver::visit_bindings`] reads in the same
    /// snapshot, as often as asked, until [`Driver::end_read`].
    async fn begin_read(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot>;

    /// The snapshot's bindings, one row at a time.
    async fn visit_bindings(
        &mut self,
        tenant: &str,
        mode: ReadMode,
        visit: &mut dyn FnMut(RawDoc),
    ) -> Result<()>;

    /// Ends a read [`Driver::begin_read`] started.
    async fn end_read(&mut self, mode: ReadMode) -> Result<()>;

    /// The open apply transaction's snapshot, for another connection to
    /// read in with [`Driver::begin_read_at`]; `None` where the backend
    /// cannot share one.
    async fn export_snapshot(&mut self) -> Result<Option<String>>;

    /// Begins this connection's read-only transaction at the snapshot
    /// `id` another connection exported: the next [`Driver::begin_read`]
    /// with [`ReadMode::ReadOnly`] reads in it.
    async fn begin_read_at(&mut self, id: &str) -> Result<()>;

    /// Opens the apply transaction under the backend's lock (one apply at
    /// a time; nobody else writes the IAM tables until it ends), with the
    /// history table ready to be written in it. Waits at most
    /// `lock_timeout`, then fails as locked.
    async fn begin_apply(&mut self, lock_timeout: Duration) -> Result<()>;

    /// [`Driver::begin_apply`] without the history table, which
    /// [`Driver::create_history_table`] makes on another connection: only
    /// where DDL commits (MySQL, MariaDB).
    async fn begin_apply_without_history(&mut self, lock_timeout: Duration) -> Result<()>;

    /// Creates the history table, as this release writes it, when it is
    /// missing; outside any transaction.
    async fn create_history_table(&mut self) -> Result<()>;

    /// Inserts rows in batches, inside the apply transaction. A key that is
    /// already taken fails as stale, naming the key.
    async fn insert(&mut self, table: Table, rows: &[RawDoc]) -> Result<()>;

    /// Replaces whole user documents, by key, in batches. A user that is
    /// gone fails as stale, naming the key.
    async fn update_users(&mut self, users: &[RawDoc]) -> Result<()>;

    /// The history row of the plan with `digest`; the table exists.
    async fn find_applied(&mut self, digest: &str) -> Result<Option<HistoryRecord>>;

    /// Every history row, newest first; the table exists.
    async fn history(&mut self) -> Result<Vec<HistoryRecord>>;

    /// Records an applied plan, inside the apply transaction.
    async fn record(&mut self, record: &HistoryRecord) -> Result<()>;

    /// Deletes rows by key in batches, inside the apply transaction (a
    /// revert). A row that is gone fails as stale.
    async fn delete(&mut self, table: Table, keys: &[String]) -> Result<()>;

    /// Marks the history row of `digest` as reverted by the plan with
    /// digest `reverted_by`, inside the apply transaction; a row that is
    /// missing or already reverted fails as stale.
    async fn mark_reverted(&mut self, digest: &str, reverted_by: &str) -> Result<()>;

    async fn commit(&mut self) -> Result<()>;

    async fn rollback(&mut self) -> Result<()>;

    /// Creates the five IAM tables with the reference DDL (demo and tests).
    async fn create_iam_tables(&mut self) -> Result<()>;

    /// Inserts rows outside any plan, in one transaction (demo and tests).
    async fn load(&mut self, table: Table, rows: &[RawDoc]) -> Result<()>;

    /// Drops the five IAM tables and, `with_history`, the history table
    /// (demo --reset).
    async fn drop_all(&mut self, with_history: bool) -> Result<()>;

    /// Starts a read-write transaction (demo).
    async fn begin(&mut self) -> Result<()>;

    /// Whether `CREATE TABLE` takes part in a transaction (SQLite,
    /// PostgreSQL) or commits at once (MySQL, MariaDB).
    fn transactional_ddl(&self) -> bool;

    /// Whether the history table is there with every column this release
    /// writes (an apply then creates or alters nothing).
    async fn history_is_current(&mut self) -> Result<bool>;
}
