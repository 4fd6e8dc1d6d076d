//! The store: the one place that talks SQL.
//!
//! [`Store`] is the seam the commands use; `driver::Driver` is the
//! contract behind it; `sql.rs` holds the algorithm every backend shares,
//! once, over sqlx; and one file per backend (`sqlite.rs`, `postgres.rs`,
//! `mysql.rs`) holds only its `sql::Dialect`: SQL text, connecting and
//! identity, locks, fast write paths, and what its error codes mean.
//!
//! Reads return a consistent [`Snapshot`]; writes take [`Writes`] and run
//! inside the apply transaction that [`Store::begin_apply`] opened under the
//! backend's lock.

mod driver;
mod held;
mod mysql;
mod postgres;
mod sql;
mod sqlite;
mod sqlite_rows;

use std::sync::Arc;
use std::time::Duration;

use crate::connect::{Backend, Target};
use crate::error::{Error, Result};
use crate::sync::{
    ChangeSink, Derivation, RawDoc, Removals, Snapshot, SyncError, SyncOptions, SyncResult, Writes,
};
use driver::Driver;
use held::HeldRows;
use sql::SqlStore;

/// The IAM tables of docs/store.md §1, in the order they are checked and read.
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
    /// The digest of the revert plan that undid this one (docs/revert.md);
    /// `None` when it was not reverted, or in a table of an older release.
    pub reverted_by: Option<String>,
    /// JSON object of user key -> `"absent"` or `"null"`: the `groupList`s
    /// this apply created, and what was there before, for a revert.
    /// `None` in rows of older releases and of revert plans.
    pub created_group_lists: Option<String>,
}

/// The seam the commands use: one connection to one backend, behind the
/// `Driver` contract (`driver.rs`).
pub struct Store {
    driver: Box<dyn Driver>,
    /// A second connection that creates the history table before the
    /// apply's first write ([`Store::begin_apply_with_history_on`]).
    history_maker: Option<Box<dyn Driver>>,
}

impl Store {
    /// Connects within `timeout`; errors name the database without password.
    /// With [`Access::ReadOnly`], the database itself refuses writes.
    pub async fn connect(target: &Target, access: Access, timeout: Duration) -> Result<Store> {
        let connecting = async {
            Ok::<Box<dyn Driver>, Error>(match target.backend {
                Backend::Sqlite => {
                    Box::new(SqlStore::<sqlite::Sqlite>::connect(target, access).await?)
                }
                Backend::Postgres => {
                    Box::new(SqlStore::<postgres::Postgres>::connect(target, access).await?)
                }
                Backend::MySql => {
                    Box::new(SqlStore::<mysql::MySql>::connect(target, access).await?)
                }
            })
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(driver) => Ok(Store {
                driver: driver?,
                history_maker: None,
            }),
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
        self.driver.backend()
    }

    /// The most stable identity of the database the backend offers (docs/store.md §7).
    pub async fn identity(&mut self) -> Result<String> {
        self.driver.identity().await
    }

    /// Fails with "not an IAM store" when one of the five tables is missing,
    /// saying where it looked and how to point elsewhere.
    pub async fn check_schema(&mut self) -> Result<()> {
        let present = self.driver.table_names().await?;
        for table in Table::ALL {
            if !present.iter().any(|t| t == table.name()) {
                let location = self.driver.location().await;
                return Err(Error::store(format!(
                    "not an IAM store: table `{}` is missing ({location})",
                    table.name()
                )));
            }
        }
        Ok(())
    }

    async fn history_table_exists(&mut self) -> Result<bool> {
        Ok(self
            .driver
            .table_names()
            .await?
            .iter()
            .any(|t| t == HISTORY_TABLE))
    }

    /// Reads every row [`crate::sync::sync`] needs for `tenant`, in one
    /// consistent snapshot.
    pub async fn read_snapshot(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot> {
        let mut snapshot = self.driver.begin_read(tenant, mode).await?;
        let bindings = &mut snapshot.bindings;
        self.driver
            .visit_bindings(tenant, mode, &mut |raw| bindings.push(raw))
            .await?;
        self.driver.end_read(mode).await?;
        Ok(snapshot)
    }

    /// Every table but the bindings, as [`Store::read_snapshot`] reads
    /// them: what the writes of memberships start from.
    pub async fn read_tables(&mut self, tenant: &str, mode: ReadMode) -> Result<Snapshot> {
        let snapshot = self.driver.begin_read(tenant, mode).await?;
        self.driver.end_read(mode).await?;
        Ok(snapshot)
    }

    /// Derives the changes of `options` as [`crate::sync::sync`] does, in
    /// one consistent snapshot, in two passes over the bindings
    /// (src/sync/bindings.rs): the second judges the rows the first held,
    /// when `hold` let it keep them all, else reads them all again. Every
    /// change goes to `sink`, in no particular order. Returns the snapshot
    /// of every table but the bindings, and the result without its
    /// changes, or why the rules refused to make any.
    pub async fn derive(
        &mut self,
        options: &SyncOptions,
        mode: ReadMode,
        hold: Hold,
        sink: &mut dyn ChangeSink,
    ) -> Result<(Snapshot, std::result::Result<SyncResult, SyncError>)> {
        let tenant = options.tenant.as_str();
        let snapshot = self.driver.begin_read(tenant, mode).await?;
        read_all_but_the_bindings(&snapshot, mode);
        let mut derivation = match Derivation::new(&snapshot, options) {
            Ok(derivation) => derivation,
            Err(e) => {
                self.driver.end_read(mode).await?;
                return Ok((snapshot, Err(e)));
            }
        };
        // The rows the first pass read, while they fit in `hold`: the
        // second pass then judges them without reading them again.
        let mut held = (hold.bytes() > 0).then(HeldRows::default);
        self.driver
            .visit_bindings(tenant, mode, &mut |raw| {
                derivation.index_binding(&raw);
                HeldRows::keep(&mut held, &raw, hold.bytes());
            })
            .await?;
        tracing::info!(
            held = held.as_ref().map_or(0, HeldRows::len),
            "indexed the bindings (first pass)"
        );
        let mut judging = derivation.judge(sink);
        match held {
            Some(rows) => rows.drain(&mut |raw| judging.binding(raw)),
            None => {
                self.driver
                    .visit_bindings(tenant, mode, &mut |raw| judging.binding(raw))
                    .await?
            }
        }
        let result = judging.finish();
        self.driver.end_read(mode).await?;
        Ok((snapshot, Ok(result)))
    }

    /// [`Store::derive`] on a thread of its own, which takes `sink` along
    /// and ends with `finish(sink)`, its result the thread's (a spool's
    /// tail, say, ends only when the spool is finished):
    /// this connection reads the rows and hands them over, and is free
    /// again once both passes are read, while the derivation may still be
    /// judging the rows the first pass held. `apply` writes on it then,
    /// where no second connection can share its snapshot (SQLite, MySQL,
    /// MariaDB): its second pass, from memory, goes on beside the writes.
    /// The reading and the rules also run side by side, on two cores.
    pub async fn derive_on_thread<S, F, R>(
        &mut self,
        options: &SyncOptions,
        mode: ReadMode,
        hold: Hold,
        sink: S,
        finish: F,
    ) -> Result<(Arc<Snapshot>, Deriving<R>)>
    where
        S: ChangeSink + Send + 'static,
        F: FnOnce(S) -> R + Send + 'static,
        R: Send + 'static,
    {
        let tenant = options.tenant.as_str();
        let snapshot = Arc::new(self.driver.begin_read(tenant, mode).await?);
        read_all_but_the_bindings(&snapshot, mode);
        let (rows, passes) = std::sync::mpsc::sync_channel(ROW_CHUNKS_WAITING);
        let (tell_second_pass, second_pass_needed) = std::sync::mpsc::sync_channel(1);
        // The first pass's chunks come back once read, to be freed and
        // filled again on this thread, which made their rows
        // (crate::handback).
        let (give_back, chunks) = crate::handback::channel(ROW_CHUNK);
        let thread = {
            let (snapshot, options) = (Arc::clone(&snapshot), options.clone());
            std::thread::Builder::new()
                .name("derive".into())
                .spawn(move || {
                    let (derived, sink) = derive_passes(
                        &snapshot,
                        &options,
                        hold,
                        &passes,
                        &give_back,
                        &tell_second_pass,
                        sink,
                    )?;
                    Some((derived, finish(sink)))
                })
                .map_err(|e| Error::io_on("a thread to derive the changes", e))?
        };
        let mut rows = RowSender::new(rows, chunks);
        self.driver
            .visit_bindings(tenant, mode, &mut |raw| rows.send(raw))
            .await?;
        rows.end_of_pass();
        // No answer: the rules refused before the first row, and the
        // derivation has ended (`Deriving::join` says why).
        if second_pass_needed.recv() == Ok(true) {
            self.driver
                .visit_bindings(tenant, mode, &mut |raw| rows.send(raw))
                .await?;
            rows.end_of_pass();
        }
        self.driver.end_read(mode).await?;
        Ok((snapshot, Deriving { thread }))
    }

    /// Whether [`Store::begin_apply`] would change the schema outside the
    /// apply transaction: the history table created, or a column added to
    /// it, on MySQL and MariaDB, where DDL commits at once.
    pub async fn begin_apply_commits_ddl(&mut self) -> Result<bool> {
        Ok(!self.driver.transactional_ddl() && !self.driver.history_is_current().await?)
    }

    /// Opens the apply transaction under the backend's lock, waiting at most
    /// `lock_timeout` for another apply (locked, exit 6, then). The history
    /// table is ready to be written in it.
    pub async fn begin_apply(&mut self, lock_timeout: Duration) -> Result<()> {
        self.driver.begin_apply(lock_timeout).await
    }

    /// Where [`Store::begin_apply`] would create the history table outside
    /// the apply transaction (MySQL and MariaDB, where DDL commits) because
    /// it is missing: a second connection to `target` to create it on
    /// instead, before the apply's first write. The apply then need not
    /// wait for the plan's check before it reads: a plan refused still
    /// leaves the database as it was. `None` where DDL is transactional,
    /// the table is there (an older one is altered by `begin_apply`, after
    /// the check), or a second connection cannot be had.
    pub async fn history_maker(
        &mut self,
        target: &Target,
        timeout: Duration,
    ) -> Result<Option<Store>> {
        if self.driver.transactional_ddl() || self.history_table_exists().await? {
            return Ok(None);
        }
        match Store::connect(target, Access::ReadWrite, timeout).await {
            Ok(maker) => Ok(Some(maker)),
            Err(e) => {
                tracing::info!(error = %e, "no second connection for the history table: the plan passes first");
                Ok(None)
            }
        }
    }

    /// [`Store::begin_apply`] without the history table, which `maker`
    /// ([`Store::history_maker`]) creates before the first write: the
    /// caller writes nothing before the plan has passed.
    pub async fn begin_apply_with_history_on(
        &mut self,
        lock_timeout: Duration,
        maker: Store,
    ) -> Result<()> {
        self.driver
            .begin_apply_without_history(lock_timeout)
            .await?;
        // Another apply may have made it while this one waited for the lock.
        if !self.history_table_exists().await? {
            self.history_maker = Some(maker.driver);
        }
        Ok(())
    }

    /// Creates the history table on its own connection, if it was left to
    /// one, before the apply transaction's first write.
    async fn make_history(&mut self) -> Result<()> {
        if let Some(mut maker) = self.history_maker.take() {
            maker.create_history_table().await?;
            tracing::info!("created the history table on a second connection");
        }
        Ok(())
    }

    /// A second connection to `target` whose read-only transaction sees
    /// exactly what this one's open apply transaction saw when it took its
    /// locks, and never its writes: the apply derives the changes on it
    /// while it writes them on this one (docs/store.md §3). `None` where
    /// the backend cannot share a snapshot (SQLite, MySQL and MariaDB), or
    /// when the second connection cannot be had (the apply then derives
    /// on its one connection, [`Store::derive_on_thread`]).
    pub async fn reader_beside_apply(
        &mut self,
        target: &Target,
        timeout: Duration,
    ) -> Result<Option<Store>> {
        let Some(id) = self.driver.export_snapshot().await? else {
            return Ok(None);
        };
        let mut reader = match Store::connect(target, Access::ReadOnly, timeout).await {
            Ok(reader) => reader,
            Err(e) => {
                tracing::info!(error = %e, "no second connection: deriving on this one");
                return Ok(None);
            }
        };
        match reader.driver.begin_read_at(&id).await {
            Ok(()) => Ok(Some(reader)),
            // A pooler that sends the second connection to another server,
            // say.
            Err(e) => {
                tracing::info!(error = %e, "the second connection cannot read the apply's snapshot: deriving before writing");
                Ok(None)
            }
        }
    }

    pub async fn find_applied(&mut self, digest: &str) -> Result<Option<HistoryRecord>> {
        if !self.history_table_exists().await? {
            return Ok(None);
        }
        self.driver.find_applied(digest).await
    }

    pub async fn history(&mut self) -> Result<Vec<HistoryRecord>> {
        if !self.history_table_exists().await? {
            return Ok(Vec::new());
        }
        self.driver.history().await
    }

    /// Writes inside the apply transaction; any failure leaves it to be
    /// rolled back.
    pub async fn write(&mut self, writes: &Writes) -> Result<()> {
        self.make_history().await?;
        for (table, rows) in [
            (Table::Tenants, &writes.tenants),
            (Table::Roles, &writes.roles),
            (Table::Groups, &writes.groups),
            (Table::Bindings, &writes.bindings),
        ] {
            if !rows.is_empty() {
                self.driver.insert(table, rows).await?;
            }
        }
        if !writes.users.is_empty() {
            self.driver.update_users(&writes.users).await?;
        }
        Ok(())
    }

    pub async fn record(&mut self, record: &HistoryRecord) -> Result<()> {
        self.make_history().await?;
        self.driver.record(record).await
    }

    /// A revert's writes inside the apply transaction: bindings, then user
    /// documents, groups, roles and the tenant, the reverse of `write`.
    pub async fn remove(&mut self, removals: &Removals) -> Result<()> {
        self.make_history().await?;
        if !removals.bindings.is_empty() {
            self.driver
                .delete(Table::Bindings, &removals.bindings)
                .await?;
        }
        if !removals.users.is_empty() {
            self.driver.update_users(&removals.users).await?;
        }
        for (table, keys) in [
            (Table::Groups, &removals.groups),
            (Table::Roles, &removals.roles),
            (Table::Tenants, &removals.tenants),
        ] {
            if !keys.is_empty() {
                self.driver.delete(table, keys).await?;
            }
        }
        Ok(())
    }

    /// Marks the plan `digest` as reverted by `reverted_by`, inside the
    /// apply transaction.
    pub async fn mark_reverted(&mut self, digest: &str, reverted_by: &str) -> Result<()> {
        self.driver.mark_reverted(digest, reverted_by).await
    }

    pub async fn commit(&mut self) -> Result<()> {
        self.driver.commit().await
    }

    pub async fn rollback(&mut self) -> Result<()> {
        self.driver.rollback().await
    }

    /// Ends a session whose statement in flight was abandoned (its future
    /// dropped: an apply interrupted, or refused while it ran), nothing
    /// committed. sqlx's MySQL connection does not know where the answer
    /// to an abandoned statement ends: the next statement's reply reads
    /// the rest of it, and sqlx panics decoding it (seen here: ROLLBACK
    /// after a refusal; sqlx issues 2512, 4139). That connection is
    /// closed, and the server rolls back and frees the lock itself. The
    /// others (SQLite's worker, PostgreSQL's protocol) finish the abandoned
    /// statement first: they roll back, within `wait`; a connection busy
    /// with a statement that does not end is closed instead.
    pub async fn abandon(mut self, wait: Duration) {
        if self.backend() == Backend::MySql {
            tracing::info!("closing the connection: the server rolls back");
            return;
        }
        if tokio::time::timeout(wait, self.rollback()).await.is_err() {
            tracing::info!("the rollback did not answer in time: closing the connection");
        }
    }

    /// Creates the five IAM tables with the reference DDL (demo and tests).
    pub async fn create_iam_tables(&mut self) -> Result<()> {
        self.driver.create_iam_tables().await
    }

    /// Inserts rows outside any plan, in one transaction (demo and tests).
    pub async fn load(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        self.driver.load(table, rows).await
    }

    /// Drops the five IAM tables and the history table (demo --reset).
    pub async fn drop_all(&mut self) -> Result<()> {
        self.driver.drop_all(true).await
    }

    /// Which of the five IAM tables the database holds.
    pub async fn iam_tables(&mut self) -> Result<Vec<Table>> {
        let present = self.driver.table_names().await?;
        Ok(Table::ALL
            .into_iter()
            .filter(|table| present.iter().any(|t| t == table.name()))
            .collect())
    }

    /// Opens the one transaction `demo` builds its store in, the IAM tables
    /// created (after dropping them and the history, `reset`) in it. MySQL
    /// commits DDL at once: there the tables are made first, and
    /// [`Store::abandon_demo`] drops them again.
    pub async fn begin_demo(&mut self, reset: bool) -> Result<()> {
        if self.driver.transactional_ddl() {
            self.driver.begin().await?;
        }
        if reset {
            self.driver.drop_all(true).await?;
        }
        self.driver.create_iam_tables().await?;
        if !self.driver.transactional_ddl() {
            self.driver.begin().await?;
        }
        Ok(())
    }

    /// Inserts rows in the transaction [`Store::begin_demo`] opened.
    pub async fn insert_rows(&mut self, table: Table, rows: &[RawDoc]) -> Result<()> {
        self.driver.insert(table, rows).await
    }

    /// Leaves nothing of a demo that failed: rolls its transaction back
    /// and, where DDL committed at once, drops the tables it made.
    pub async fn abandon_demo(&mut self) {
        // Best effort: the failure being reported is the one that counts.
        let _ = self.driver.rollback().await;
        if !self.driver.transactional_ddl() {
            let _ = self.driver.drop_all(false).await;
        }
    }
}

/// How much of the bindings table [`Store::derive`] may hold between its
/// two passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Nothing: the second pass reads every row again.
    Nothing,
    /// The rows the first pass read, while they take at most this many
    /// bytes; past that, none of them (freed at once), and the second pass
    /// reads them all again. Memory stays bounded whatever the table's
    /// size, and a table that fits is read from the database once.
    UpTo(usize),
}

impl Hold {
    fn bytes(self) -> usize {
        match self {
            Hold::Nothing => 0,
            Hold::UpTo(bytes) => bytes,
        }
    }
}

/// The log line of a snapshot read but for its bindings.
fn read_all_but_the_bindings(snapshot: &Snapshot, mode: ReadMode) {
    tracing::info!(
        users = snapshot.users.len(),
        groups = snapshot.groups.len(),
        roles = snapshot.roles.len(),
        ?mode,
        "read every table but the bindings"
    );
}

/// Chunks of binding rows on their way to the derivation's thread, and how
/// many may wait for it: a few thousand rows in flight, never the table.
const ROW_CHUNK: usize = 1024;
const ROW_CHUNKS_WAITING: usize = 4;

/// What the reading connection tells the derivation's thread.
enum Pass {
    Rows(Vec<RawDoc>),
    /// Every row of this pass was sent.
    End,
}

/// The reading end of [`Store::derive_on_thread`]: rows in chunks, until
/// the derivation stops listening (the rules refused before the first row).
struct RowSender {
    to: std::sync::mpsc::SyncSender<Pass>,
    /// The next chunk to fill: one the derivation has read, or a new one.
    chunks: crate::handback::Batches<RawDoc>,
    chunk: Vec<RawDoc>,
    listening: bool,
}

impl RowSender {
    fn new(
        to: std::sync::mpsc::SyncSender<Pass>,
        chunks: crate::handback::Batches<RawDoc>,
    ) -> Self {
        RowSender {
            to,
            chunk: chunks.next(),
            chunks,
            listening: true,
        }
    }

    fn send(&mut self, raw: RawDoc) {
        if !self.listening {
            return;
        }
        self.chunk.push(raw);
        if self.chunk.len() == ROW_CHUNK {
            let chunk = std::mem::replace(&mut self.chunk, self.chunks.next());
            self.listening = self.to.send(Pass::Rows(chunk)).is_ok();
        }
    }

    fn end_of_pass(&mut self) {
        if self.listening && !self.chunk.is_empty() {
            let chunk = std::mem::take(&mut self.chunk);
            self.listening = self.to.send(Pass::Rows(chunk)).is_ok();
        }
        if self.listening {
            self.listening = self.to.send(Pass::End).is_ok();
        }
    }
}

/// What the derivation's thread gives back: the rules' result, or why they
/// refused, and the sink (or what was made of it); `None` when the rows
/// stopped coming before the end of a pass (the read failed, and its
/// error is the one told).
type Derived<S> = Option<(std::result::Result<SyncResult, SyncError>, S)>;

/// A derivation that [`Store::derive_on_thread`] left running.
pub struct Deriving<S> {
    thread: std::thread::JoinHandle<Derived<S>>,
}

impl<S> Deriving<S> {
    /// Waits for the derivation's end: the rules' result, or why they
    /// refused, and what `finish` made of the sink.
    pub fn join(self) -> Result<(std::result::Result<SyncResult, SyncError>, S)> {
        match self.thread.join() {
            Ok(Some(derived)) => Ok(derived),
            // Both passes were read to their end before this was handed out.
            Ok(None) => Err(Error::io_on(
                "the derivation's thread",
                std::io::Error::other("the binding rows stopped short"),
            )),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The derivation's thread of [`Store::derive_on_thread`]: the two passes
/// of [`Store::derive`] over the rows `passes` brings, the second from the
/// rows held when they all fit in `hold` (`second_pass_needed` hears
/// which), then the result and the sink.
fn derive_passes<S: ChangeSink>(
    snapshot: &Snapshot,
    options: &SyncOptions,
    hold: Hold,
    passes: &std::sync::mpsc::Receiver<Pass>,
    give_back: &crate::handback::GiveBack<RawDoc>,
    second_pass_needed: &std::sync::mpsc::SyncSender<bool>,
    mut sink: S,
) -> Derived<S> {
    let mut derivation = match Derivation::new(snapshot, options) {
        Ok(derivation) => derivation,
        Err(e) => return Some((Err(e), sink)),
    };
    let mut held = (hold.bytes() > 0).then(HeldRows::default);
    while let Pass::Rows(rows) = passes.recv().ok()? {
        for raw in &rows {
            derivation.index_binding(raw);
            HeldRows::keep(&mut held, raw, hold.bytes());
        }
        give_back.give_back(rows);
    }
    tracing::info!(
        held = held.as_ref().map_or(0, HeldRows::len),
        "indexed the bindings (first pass)"
    );
    // The reader waits for this answer: it cannot fail but by its end.
    let _ = second_pass_needed.send(held.is_none());
    let mut judging = derivation.judge(&mut sink);
    match held {
        Some(rows) => rows.drain(&mut |raw| judging.binding(raw)),
        None => each_row_of_a_pass(passes, &mut |raw| judging.binding(raw))?,
    }
    let result = judging.finish();
    Some((Ok(result), sink))
}

/// Gives `visit` each row of one pass; `None` when the rows stop before
/// the pass's end.
fn each_row_of_a_pass(
    passes: &std::sync::mpsc::Receiver<Pass>,
    visit: &mut dyn FnMut(RawDoc),
) -> Option<()> {
    loop {
        match passes.recv().ok()? {
            Pass::Rows(rows) => rows.into_iter().for_each(&mut *visit),
            Pass::End => return Some(()),
        }
    }
}
