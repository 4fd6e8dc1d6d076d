//! `apply`: plan file -> validation -> store under lock -> the same sync
//! function -> writes, compared before the commit, all in one transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ApplyArgs;
use crate::error::{Error, ErrorKind, ExitStatus, Result};
use crate::plan::{self, ChangeSpool, Loaded, Spooled};
use crate::render;
use crate::signing::policy::{self, Flags, Policy};
use crate::store::{Access, HistoryRecord, Hold, ReadMode, Store};
use crate::sync::{
    created_group_lists, into_writes, removals_for, revert, Change, ListPrior, MissingUser,
    Snapshot, Writes,
};

enum Attempt {
    /// Written and recorded in the open transaction: only COMMIT is left.
    Written {
        rows: usize,
    },
    AlreadyApplied(Box<HistoryRecord>),
}

/// How long an interrupted apply waits for its rollback before it closes
/// the connection instead (the server then rolls back on its own).
const ROLLBACK_WAIT: Duration = Duration::from_secs(2);

pub async fn run(args: &ApplyArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    // Flags and policy first: a usage error needs no plan read.
    let policy = Policy::from_flags(&Flags {
        policy: args.policy.clone(),
        allowed_signers: args.allowed_signers.clone(),
        require_approvals: args.require_approvals,
        four_eyes: args.four_eyes,
    })?;
    // From here on, Ctrl-C and SIGTERM end the apply cleanly: rolled back,
    // and said so.
    let mut signals = Signals::install()?;
    let progress = super::Progress::on_terminal();
    progress.phase("reading the plan");
    // What apply compares is the digest of the approved changes: the
    // changes themselves (a million of them are hundreds of megabytes) are
    // checked and hashed as they are read from the file, never kept, nor
    // the file's bytes; they are read again only to show a diff. The
    // members around them are read first: the check of the rest runs on a
    // thread of its own while the store is opened, locked and read, and
    // must pass before anything is written or said (issue 15).
    let reading = plan::start_reading(path)?;
    let (plan, undone, mut check) = if reading.plan.reverts.is_some() {
        // A revert is re-derived from the additions its removals undo
        // (docs/revert.md §4): its changes are read, and kept, as
        // additions. Read whole, they are read from bytes that hash to
        // what was checked.
        let scanned = reading.finish()?;
        let refuse = |why: String| Error::refused(format!("{}: {why}", path.display()));
        let mut whole = plan::parse(&plan::read_bytes(path)?).map_err(refuse)?;
        if whole.computed_digest != scanned.loaded.computed_digest {
            return Err(refuse(
                "the file changed while it was read; nothing was applied".into(),
            ));
        }
        let undone: Vec<Change> = std::mem::take(&mut whole.plan.changes)
            .into_iter()
            .map(Change::addition)
            .collect();
        let checked = Checked::of(whole, scanned.changes_digest, path, &policy)?;
        (
            checked.loaded.plan.clone(),
            undone,
            PlanCheck::Passed(Box::new(checked)),
        )
    } else {
        let plan = reading.plan.clone();
        (plan, Vec::new(), PlanCheck::start(reading, path, &policy)?)
    };
    let opened = open_and_apply(args, &plan, &mut check, undone, &mut signals, &progress).await;
    match opened {
        // The plan's refusal comes first, whatever the store said.
        Err(e) => Err(check.refusal_or(e).await),
        Ok(status) => Ok(status),
    }
}

/// The plan's check ([`validate`] of what [`plan::Reading::finish`]
/// reads), passed: the plan, the digest of its approved changes and the
/// approvals that count.
struct Checked {
    loaded: Loaded,
    /// The digest of the approved changes (`plan::changes_digest`).
    approved: String,
    verdict: policy::Verdict,
}

impl Checked {
    fn of(loaded: Loaded, approved: String, path: &Path, policy: &Policy) -> Result<Checked> {
        let verdict = validate(&loaded, path, policy)?;
        Ok(Checked {
            loaded,
            approved,
            verdict,
        })
    }
}

/// The check of the plan file, running on a thread of its own while the
/// store is opened, locked and read: its changes are read and hashed, its
/// digest and approvals checked. Nothing is written, and nothing said of
/// the store, before it passes ([`PlanCheck::pass`]); a refusal is told
/// at once, even while the apply waits for the lock.
enum PlanCheck {
    Running {
        result: tokio::sync::oneshot::Receiver<Result<Checked>>,
        /// Told when the check refuses the plan.
        refused: std::sync::Arc<tokio::sync::Notify>,
    },
    Passed(Box<Checked>),
    /// Refused, and told so.
    Told,
}

impl PlanCheck {
    fn start(reading: plan::Reading, path: &Path, policy: &Policy) -> Result<PlanCheck> {
        let (send, result) = tokio::sync::oneshot::channel();
        let refused = std::sync::Arc::new(tokio::sync::Notify::new());
        let (tell, path, policy) = (refused.clone(), path.to_path_buf(), policy.clone());
        std::thread::Builder::new()
            .name("plan-check".into())
            .spawn(move || {
                yield_to_the_derivation();
                let checked = reading.finish().and_then(|scanned| {
                    Checked::of(scanned.loaded, scanned.changes_digest, &path, &policy)
                });
                if checked.is_err() {
                    tell.notify_one();
                }
                let _ = send.send(checked);
            })
            .map_err(|e| Error::io_on("a thread to check the plan", e))?;
        Ok(PlanCheck::Running { result, refused })
    }

    /// What is told when the check refuses the plan; never, once it passed.
    fn refusal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        match self {
            PlanCheck::Running { refused, .. } => Some(refused.clone()),
            _ => None,
        }
    }

    /// What to tell of an apply that failed with `e`: the plan's refusal,
    /// when the check refuses it (or did), comes first.
    async fn refusal_or(&mut self, e: Error) -> Error {
        match self {
            PlanCheck::Told => e,
            _ => self.pass().await.err().unwrap_or(e),
        }
    }

    /// Waits for the check: the plan checked, or why it is refused.
    async fn pass(&mut self) -> Result<&Checked> {
        if let PlanCheck::Running { result, .. } = self {
            let checked = result.await.unwrap_or_else(|_| {
                Err(Error::io_on(
                    "the plan's check",
                    std::io::Error::other("it stopped before it ended"),
                ))
            });
            *self = match checked {
                Ok(checked) => {
                    tracing::info!(
                        changes = checked.loaded.plan.summary.changes(),
                        "checked the plan"
                    );
                    PlanCheck::Passed(Box::new(checked))
                }
                Err(e) => {
                    *self = PlanCheck::Told;
                    return Err(e);
                }
            };
        }
        match self {
            PlanCheck::Passed(checked) => Ok(checked),
            _ => Err(Error::refused(
                "the plan was refused; nothing was applied".to_string(),
            )),
        }
    }
}

/// Lowers the calling thread's priority, and so that of the threads it
/// starts (they inherit it), as far as it goes. The check of the plan runs
/// beside the derivation, which is what the apply waits for: on two cores,
/// a check at the same priority took half of the derivation's core and
/// gained nothing (SQLite, 1M bindings: derivation 4.3 -> 5.2 s); at the
/// lowest it takes what the derivation leaves. Best effort: a system that
/// refuses leaves it as it was.
fn yield_to_the_derivation() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    }
}

/// Waits until `refused` is told, or forever when there is nothing to tell.
async fn told(refused: &Option<std::sync::Arc<tokio::sync::Notify>>) {
    match refused {
        Some(refused) => refused.notified().await,
        None => std::future::pending().await,
    }
}

/// The apply once the plan's members are read: the store opened, locked,
/// read and written, the plan's check passed before anything is written.
async fn open_and_apply(
    args: &ApplyArgs,
    plan: &plan::Plan,
    check: &mut PlanCheck,
    undone: Vec<Change>,
    signals: &mut Signals,
    progress: &super::Progress,
) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    // A plan refused is told so before a usage error of the apply.
    let applied_by = match super::who(args.applied_by.as_deref(), "--applied-by", None) {
        Ok(name) => name,
        Err(e) => return Err(check.refusal_or(e).await),
    };
    let refused = check.refusal();
    let (target, mut store) = tokio::select! {
        biased;
        kind = signals.recv() => return Err(interrupted(path, kind)),
        () = told(&refused) => return Err(refused_meanwhile(check).await),
        opened = super::open_store_for_plan(
            &args.connection,
            Access::ReadWrite,
            path,
            &plan.source,
        ) => opened?,
    };
    let identity = store.identity().await?;
    if identity != plan.source.identity {
        return Err(not_applied(
            path,
            Error::stale(format!(
                "made against another database ({} at {}); this is {} at {}",
                // What the file says is untrusted: no password, no escapes.
                render::clean(&crate::connect::redact(&plan.source.identity)),
                render::clean(&crate::connect::redact(&plan.source.database)),
                identity,
                target.display()
            )),
        ));
    }
    let not_applied = |e: Error| not_applied(path, e);
    let connect_timeout = super::connect_timeout(&args.connection, &target);
    // Beginning an apply may create or alter the history table, which on
    // MySQL and MariaDB commits at once. A missing table is created on a
    // second connection before the first write, by when the plan has
    // passed; otherwise the plan passes first. Either way, a refused plan
    // never changes the database.
    let mut history_maker = None;
    if store.begin_apply_commits_ddl().await? {
        history_maker = store.history_maker(&target, connect_timeout).await?;
        if history_maker.is_none() {
            check.pass().await?;
        }
    }
    progress.phase("waiting for the lock");
    let outcome = tokio::select! {
        biased;
        kind = signals.recv() => {
            progress.finish();
            roll_back_or_close(store).await;
            return Err(interrupted(path, kind));
        }
        () = told(&refused) => {
            progress.finish();
            roll_back_or_close(store).await;
            return Err(refused_meanwhile(check).await);
        }
        outcome = async {
            let lock_timeout = Duration::from_secs(args.lock_timeout);
            match history_maker {
                Some(maker) => store.begin_apply_with_history_on(lock_timeout, maker).await,
                None => store.begin_apply(lock_timeout).await,
            }
            .map_err(not_applied)?;
            let run = Run {
                plan,
                path,
                progress,
                target: &target,
                connect_timeout,
            };
            attempt(&mut store, &run, check, undone, &applied_by).await
        } => outcome,
    };
    // Whatever came of it, the plan's check passed before it is said.
    let outcome = match outcome {
        Err(e) => Err(check.refusal_or(e).await),
        Ok(attempt) => check.pass().await.map(|_| attempt),
    };
    match outcome {
        Ok(Attempt::Written { rows }) => {
            progress.phase("committing");
            let verdict = &check.pass().await?.verdict;
            let notes = Notes {
                unsigned_names: verdict.unsigned_names(),
                not_counted: verdict.not_counted.clone(),
            };
            commit(store, signals, plan, path, rows, &target, progress, &notes).await
        }
        Ok(Attempt::AlreadyApplied(record)) => {
            progress.finish();
            store.rollback().await.map_err(not_applied)?;
            super::report_done(&format!(
                "Plan {} was already applied at {} by {} (approved by {}); nothing to do.\n",
                render::clean(&record.digest),
                render::clean(&record.applied_at),
                render::clean(&record.applied_by),
                render::clean(&render::approvers_text(&record.approvers))
            ));
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            progress.finish();
            // The transaction is rolled back; on a lost connection the
            // server rolls it back itself.
            let _ = store.rollback().await;
            Err(e)
        }
    }
}

/// The refusal of the plan, told while the apply was opening the store or
/// waiting for its lock.
async fn refused_meanwhile(check: &mut PlanCheck) -> Error {
    match check.pass().await {
        Err(e) => e,
        Ok(_) => Error::io_on(
            "the plan's check",
            std::io::Error::other("it said it refused the plan, then passed it"),
        ),
    }
}

/// What the approval check found that does not stop the apply, said once
/// the plan is applied, so that a refusal stays one line.
struct Notes {
    /// Approvals that did not count, and why.
    not_counted: Vec<String>,
    /// The approvals that counted are names without a verified signature.
    unsigned_names: bool,
}

/// COMMIT, which a signal cannot stop half-way: once it is sent, the
/// apply waits for its answer, and says what became of the plan.
#[allow(clippy::too_many_arguments)]
async fn commit(
    mut store: Store,
    signals: &mut Signals,
    plan: &plan::Plan,
    path: &Path,
    rows: usize,
    target: &crate::connect::Target,
    progress: &super::Progress,
    notes: &Notes,
) -> Result<ExitStatus> {
    let mut signalled = None;
    let committed = {
        let commit = store.commit();
        tokio::pin!(commit);
        loop {
            tokio::select! {
                result = &mut commit => break result,
                kind = signals.recv(), if signalled.is_none() => {
                    signalled = Some(kind);
                    crate::say!("interrupted during the commit: waiting for the database to finish it");
                }
            }
        }
    };
    progress.finish();
    match committed {
        Ok(()) if plan.reverts.is_some() => {
            let s = &plan.summary;
            super::report_done(&format!(
                "Reverted plan {} with plan {} in tenant `{}` on {}: removed {} binding(s), {} membership(s), {} group(s), {} role(s){} ({rows} row(s) written).\n",
                render::clean(plan.reverts.as_deref().unwrap_or_default()),
                plan.digest,
                render::clean(&plan.tenant),
                target.display(),
                s.remove_binding,
                s.remove_membership,
                s.remove_group,
                s.remove_role,
                if s.remove_tenant > 0 { ", and the tenant" } else { "" },
            ));
            crate::say!(
                "next: sync-access verify {}; sync-access history",
                path.display()
            );
            Ok(ExitStatus::Success)
        }
        Ok(()) => {
            let s = &plan.summary;
            super::report_done(&format!(
                "Applied plan {} to tenant `{}` on {}: {} role(s), {} group(s), {} membership(s), {} binding(s){} ({rows} row(s) written).\n",
                plan.digest,
                render::clean(&plan.tenant),
                target.display(),
                s.add_role,
                s.add_group,
                s.add_membership,
                s.add_binding,
                if s.create_tenant > 0 { ", and the tenant created" } else { "" },
            ));
            if signalled.is_some() {
                crate::say!(
                    "the interruption came after the commit had started: the plan IS applied"
                );
            }
            for why in &notes.not_counted {
                crate::say!("note: not counted: {}", render::clean(why));
            }
            if notes.unsigned_names {
                crate::say!(
                    "warning: {}: the approvals that counted are unsigned names, which anyone who can edit the plan file can type; give --allowed-signers FILE or --policy FILE to require signatures",
                    path.display()
                );
            }
            crate::say!(
                "next: sync-access verify {}; sync-access history",
                path.display()
            );
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            let refused_before_commit = e.kind() == ErrorKind::Locked;
            let _ = store.rollback().await;
            match signalled {
                Some(kind) if refused_before_commit => Err(interrupted(path, kind)),
                _ if refused_before_commit => Err(not_applied(path, e)),
                _ => Err(e.reworded(|why| {
                    format!(
                        "{}: the commit failed, so the plan is most likely not applied; `sync-access history` tells for sure: {why}",
                        path.display()
                    )
                })),
            }
        }
    }
}

/// Ends the apply abandoned mid-statement: nothing was committed
/// (Store::abandon).
async fn roll_back_or_close(store: Store) {
    store.abandon(ROLLBACK_WAIT).await;
}

fn interrupted(path: &Path, kind: ErrorKind) -> Error {
    Error::new(
        kind,
        format!(
            "{}: interrupted: rolled back, nothing written",
            path.display()
        ),
    )
}

/// SIGINT (Ctrl-C) and SIGTERM, caught instead of ending the process, so
/// that an apply can roll back and say so.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install =
                |kind| signal(kind).map_err(|e| Error::io_on("installing a signal handler", e));
            Ok(Signals {
                interrupt: install(SignalKind::interrupt())?,
                terminate: install(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for a signal: which one, as the kind of error it ends with.
    async fn recv(&mut self) -> ErrorKind {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => ErrorKind::Interrupted { terminated: false },
                _ = self.terminate.recv() => ErrorKind::Interrupted { terminated: true },
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ErrorKind::Interrupted { terminated: false }
        }
    }
}

/// The plan file first, then why: the exit code of `err` is kept.
fn not_applied(path: &Path, err: Error) -> Error {
    err.reworded(|why| {
        format!(
            "{}: not applied, nothing was written: {why}",
            path.display()
        )
    })
}

/// The checks that need no database: intact, applyable, approved. A plan
/// with conflicts can never be approved, so that is what it is told.
/// The approvals that count are returned: they are what the history records.
fn validate(loaded: &Loaded, path: &Path, policy: &Policy) -> Result<policy::Verdict> {
    loaded.require_intact(path)?;
    let plan = &loaded.plan;
    if !plan.applyable {
        return Err(Error::not_applyable(format!(
            "{}: not applyable: it has {} conflict(s); resolve them and plan again, or plan with --skip-conflicts",
            path.display(),
            plan.conflicts.len()
        )));
    }
    policy::check(plan, policy, path, super::now_secs())
}

/// The plan being applied, and what was approved of it.
struct Run<'a> {
    plan: &'a plan::Plan,
    path: &'a Path,
    progress: &'a super::Progress,
    /// Where the store is, for a second connection
    /// ([`Store::reader_beside_apply`]), and how long connecting may take.
    target: &'a crate::connect::Target,
    connect_timeout: Duration,
}

impl Run<'_> {
    fn not_applied(&self, e: Error) -> Error {
        not_applied(self.path, e)
    }

    fn stale(&self, why: String) -> Error {
        self.not_applied(Error::stale(format!("stale: {why}")))
    }

    /// Why changes could not be read back into rows, as a refusal.
    fn batch_error(&self, e: BatchError) -> Error {
        match e {
            BatchError::Spool(e) => self.not_applied(super::plan::spool_error(e)),
            BatchError::Stale(e) => self.sync_stale(&e),
        }
    }

    /// What the sync rules say quotes the plan's tenant or the store's
    /// documents: escaped, on one line.
    fn sync_stale(&self, e: &dyn std::fmt::Display) -> Error {
        self.stale(crate::escape::field(&e.to_string()).into_owned())
    }

    /// Refuses as stale, with a diff, when the changes derived under the
    /// lock are not the approved ones (whose digest is `approved`).
    fn compare(&self, now: &[Change], approved: &str) -> Result<()> {
        // Documents are canonical text: equal changes are equal bytes.
        if plan::changes_digest(now) == approved {
            return Ok(());
        }
        Err(self.differs(now))
    }

    /// Stale, with a diff: the changes derived under the lock, `now`, are
    /// not the approved ones.
    fn differs(&self, now: &[Change]) -> Error {
        // The file passed its digest check: read its changes again for the
        // diff (a changed file now is refused as altered).
        let reread = match plan::load(self.path) {
            Ok(reread) => reread,
            Err(e) => return e,
        };
        if let Err(e) = reread.require_intact(self.path) {
            return e;
        }
        let diff = render::changes_diff(&reread.plan.changes, now);
        self.stale(format!(
            "the database no longer needs exactly the approved changes; plan, review and approve again\n\
             --- approved\n+++ needed now\n{}",
            diff.trim_end()
        ))
    }
}

async fn attempt(
    store: &mut Store,
    run: &Run<'_>,
    check: &mut PlanCheck,
    undone: Vec<Change>,
    applied_by: &str,
) -> Result<Attempt> {
    let plan = run.plan;
    let not_applied = |e: Error| run.not_applied(e);
    if let Some(record) = store
        .find_applied(&plan.digest)
        .await
        .map_err(not_applied)?
    {
        if let Some(by) = &record.reverted_by {
            // Applying it again would put back what the revert took away
            // without a review of today's database (docs/revert.md §6).
            return Err(not_applied(Error::stale(format!(
                "plan {} was applied at {} by {}, then reverted by plan {}; it is not applied again: plan again, review and approve the new plan",
                render::clean(&record.digest),
                render::clean(&record.applied_at),
                render::clean(&record.applied_by),
                render::clean(by)
            ))));
        }
        return Ok(Attempt::AlreadyApplied(Box::new(record)));
    }
    // The original of a revert must still be applied and not reverted.
    let original = match &plan.reverts {
        None => None,
        Some(digest) => {
            let record = store.find_applied(digest).await.map_err(not_applied)?;
            match record {
                None => {
                    return Err(run.stale(format!(
                        "plan {}, which this plan reverts, is not in this database's history",
                        render::clean(digest)
                    )))
                }
                Some(r) if r.reverted_by.is_some() => {
                    return Err(run.stale(format!(
                        "plan {} was already reverted, by plan {}",
                        render::clean(digest),
                        render::clean(r.reverted_by.as_deref().unwrap_or_default())
                    )))
                }
                Some(r) => Some(r),
            }
        }
    };
    let (rows, created_lists) = match &original {
        None => write_sync(store, run, check).await?,
        Some(original) => {
            run.progress.counted(
                "re-reading the store under the lock",
                super::Counter::RowsRead,
                None,
            );
            let snapshot = store
                .read_snapshot(&plan.tenant, ReadMode::InApply)
                .await
                .map_err(not_applied)?;
            tracing::info!("read the snapshot under the lock");
            run.progress
                .phase("re-deriving the changes and comparing them with the approved ones");
            let approved = &check.pass().await?.approved;
            write_revert(store, run, snapshot, undone, original, approved).await?
        }
    };
    let approvers = &check.pass().await?.verdict.counted;
    // Each counted approver: the principal (`by`), when, the comment, the
    // key's fingerprint and whether allowed signers vouched for it. Older
    // rows hold `{by, at, signed}`: readers take both.
    let approvers: Vec<serde_json::Value> = approvers
        .iter()
        .map(|c| {
            serde_json::json!({
                "by": c.approval.by,
                "at": c.approval.at,
                "comment": c.approval.comment,
                "fingerprint": c.fingerprint,
                "signed": c.fingerprint.is_some(),
                "verified": c.verified,
            })
        })
        .collect();
    let record = HistoryRecord {
        digest: plan.digest.clone(),
        tenant: plan.tenant.clone(),
        plan_created_at: plan.created_at.clone(),
        plan_created_by: plan.created_by.clone(),
        approvers: serde_json::Value::Array(approvers).to_string(),
        applied_at: plan::now_rfc3339().map_err(not_applied)?,
        applied_by: applied_by.to_string(),
        summary: serde_json::to_string(&plan.summary).expect("a summary always serialises"),
        reverted_by: None,
        created_group_lists: created_lists,
    };
    store.record(&record).await.map_err(not_applied)?;
    if let Some(original) = &original {
        store
            .mark_reverted(&original.digest, &plan.digest)
            .await
            .map_err(not_applied)?;
    }
    Ok(Attempt::Written { rows })
}

/// An ordinary plan: the sync rules again, written as they are derived,
/// and compared before the commit. Returns the rows written and the
/// `groupList`s created (JSON, for the history: what a revert restores).
///
/// Nothing of the store's size is held but the binding rows, within
/// [`HOLD_BINDINGS`] (issue 15): the changes go to a temporary file
/// (src/plan/spool.rs), read back as they are written, turned into rows
/// and written in batches, while the derivation goes on. Their digest is
/// compared with the approved one once they are all derived, before the
/// commit: a difference rolls the writes back with the rest
/// (docs/store.md §3). Where the store can share the apply's snapshot with
/// a second connection (PostgreSQL), the derivation reads there
/// ([`write_sync_beside`]); elsewhere it reads the bindings on this
/// connection first, and its second pass judges the rows it held while
/// this connection writes.
async fn write_sync(
    store: &mut Store,
    run: &Run<'_>,
    check: &mut PlanCheck,
) -> Result<(usize, Option<String>)> {
    let reader = store
        .reader_beside_apply(run.target, run.connect_timeout)
        .await
        .map_err(|e| run.not_applied(e))?;
    if let Some(reader) = reader {
        // The writes start with the derivation: the plan passes first.
        let approved = check.pass().await?.approved.clone();
        return write_sync_beside(store, reader, run, &approved).await;
    }
    let plan = run.plan;
    let spool_error = |e| run.not_applied(super::plan::spool_error(e));
    let (spool, tail) = ChangeSpool::tailed(&std::env::temp_dir()).map_err(spool_error)?;
    run.progress.counted(
        "re-reading the store under the lock and re-deriving the changes",
        super::Counter::RowsRead,
        None,
    );
    let (snapshot, deriving) = store
        .derive_on_thread(
            &plan.sync_options(),
            ReadMode::InApply,
            hold_bindings(),
            spool,
            // The digest is taken while the last batches are written.
            |spool: ChangeSpool| {
                spool.finish().and_then(|spooled| {
                    let digest = spooled.changes_digest()?;
                    Ok((spooled, digest))
                })
            },
        )
        .await
        .map_err(|e| run.not_applied(e))?;
    tracing::info!("read the bindings under the lock; writing beside the second pass");
    // Nothing is written before the plan passes.
    let approved = check.pass().await?.approved.clone();
    run.progress.counted(
        "re-deriving the changes and writing them",
        super::Counter::RowsWritten,
        None,
    );
    let (batcher, mut ready) = spawn_batcher(tail, snapshot, &plan.tenant, run)?;
    let written = write_ready(store, &mut ready, run).await;
    drop(ready);
    let batched = batcher.join();
    // The derivation's end: the tail ended with it, unless the writes
    // stopped first.
    let (derived, finished) = deriving.join().map_err(|e| run.not_applied(e))?;
    compared(run, derived, finished, &approved, batched, written)
}

/// [`write_sync`] where the store can share the apply's snapshot with a
/// second connection (PostgreSQL): the changes are derived on `reader`
/// while they are written on `store`, as each leaves the derivation.
/// On PostgreSQL the server's inserts take twice the derivation's time:
/// side by side, the derivation costs nothing more.
async fn write_sync_beside(
    store: &mut Store,
    mut reader: Store,
    run: &Run<'_>,
    approved: &str,
) -> Result<(usize, Option<String>)> {
    let plan = run.plan;
    let spool_error = |e| run.not_applied(super::plan::spool_error(e));
    // The writes need the user documents the memberships go to: read on
    // the writing connection, before it writes anything.
    let snapshot = store
        .read_tables(&plan.tenant, ReadMode::InApply)
        .await
        .map_err(|e| run.not_applied(e))?;
    let (mut spool, tail) = ChangeSpool::tailed(&std::env::temp_dir()).map_err(spool_error)?;
    run.progress.counted(
        "re-deriving the changes under the lock, and writing them",
        super::Counter::RowsWritten,
        None,
    );
    tracing::info!("deriving on a second connection at the apply's snapshot, beside the writes");
    let (batcher, mut ready) = spawn_batcher(tail, Arc::new(snapshot), &plan.tenant, run)?;
    let options = plan.sync_options();
    let derive = async {
        let derived = reader
            .derive(&options, ReadMode::ReadOnly, Hold::Nothing, &mut spool)
            .await;
        // Joins the spool's writer: the tail hears its last changes. The
        // digest is taken while the last batches are still being written.
        let finished = spool.finish().and_then(|spooled| {
            let digest = spooled.changes_digest()?;
            Ok((spooled, digest))
        });
        (derived, finished)
    };
    let ((derived, finished), written) = tokio::join!(derive, write_ready(store, &mut ready, run));
    drop(ready);
    let batched = batcher.join();
    drop(reader);
    let (_, derived) = derived.map_err(|e| run.not_applied(e))?;
    compared(run, derived, finished, approved, batched, written)
}

/// The binding rows `apply` keeps between its two passes, in bytes, where
/// the second pass goes on beside the writes: what `plan` keeps
/// (src/commands/plan.rs), about 1.2 million rows; a larger table is read
/// twice, and written once both passes are read.
const HOLD_BINDINGS: usize = 192 << 20;

/// [`HOLD_BINDINGS`], or fewer bytes when the environment variable
/// `SYNC_ACCESS_APPLY_HOLD` says so: the tests hold nothing, to read the
/// bindings twice.
fn hold_bindings() -> Hold {
    let bytes = std::env::var("SYNC_ACCESS_APPLY_HOLD")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(HOLD_BINDINGS, |n| n.min(HOLD_BINDINGS));
    Hold::UpTo(bytes)
}

/// What the writes came to: rows written, changes written, and the
/// `groupList`s created.
type Written = (usize, usize, BTreeMap<String, ListPrior>);

/// The batches of rows a [`spawn_batcher`] thread makes, as they are ready.
type Ready = tokio::sync::mpsc::Receiver<Result<Batch, BatchError>>;

/// A thread that reads the changes back from `tail` as they are spooled
/// and turns them into rows, batch by batch, while the database writes
/// the batch before; `true` from it when every change was sent.
fn spawn_batcher(
    tail: plan::SpoolTail,
    snapshot: Arc<Snapshot>,
    tenant: &str,
    run: &Run<'_>,
) -> Result<(std::thread::JoinHandle<bool>, Ready)> {
    let tenant = tenant.to_string();
    let (batches, ready) = tokio::sync::mpsc::channel(1);
    let batcher = std::thread::Builder::new()
        .name("apply-batches".into())
        .spawn(move || {
            send_batches(tail, &snapshot, &tenant, &mut |batch| {
                batches.blocking_send(batch).is_ok()
            })
        })
        .map_err(|e| run.not_applied(Error::io_on("a thread to read the changes back", e)))?;
    Ok((batcher, ready))
}

/// Writes the batches as they come, until they end or one fails.
async fn write_ready(store: &mut Store, ready: &mut Ready, run: &Run<'_>) -> Result<Written> {
    let mut created = BTreeMap::new();
    let (mut rows, mut changes) = (0, 0);
    while let Some(batch) = ready.recv().await {
        let (writes, lists, n) = batch.map_err(|e| run.batch_error(e))?;
        store.write(&writes).await.map_err(|e| run.not_applied(e))?;
        rows += writes.len();
        changes += n;
        created.extend(lists);
    }
    Ok((rows, changes, created))
}

/// The end of [`write_sync`]: the derivation's word first (a database that
/// changed since the plan is stale, whatever the writes met), then the
/// derived changes against the approved ones, then the writes: all of
/// them, or why not.
fn compared(
    run: &Run<'_>,
    derived: std::result::Result<crate::sync::SyncResult, crate::sync::SyncError>,
    finished: std::io::Result<(Spooled, String)>,
    approved: &str,
    batched: std::thread::Result<bool>,
    written: Result<Written>,
) -> Result<(usize, Option<String>)> {
    let spool_error = |e| run.not_applied(super::plan::spool_error(e));
    derived.map_err(|e| run.sync_stale(&e))?;
    let (spooled, digest) = finished.map_err(spool_error)?;
    tracing::info!(changes = spooled.len(), "re-derived the changes");
    if digest != approved {
        let now = spooled
            .changes()
            .collect::<std::io::Result<Vec<Change>>>()
            .map_err(spool_error)?;
        return Err(run.differs(&now));
    }
    if batched.is_err() {
        return Err(run.not_applied(Error::io_on(
            "the changes' temporary file",
            std::io::Error::other("reading the changes back stopped short"),
        )));
    }
    let (rows, changes, created) = written?;
    if changes != spooled.len() {
        return Err(run.not_applied(Error::io_on(
            "the changes' temporary file",
            std::io::Error::other(format!(
                "{changes} change(s) written of {} derived",
                spooled.len()
            )),
        )));
    }
    tracing::info!(rows, "wrote the changes");
    let created = serde_json::to_string(&created).expect("a map of strings serialises");
    Ok((rows, Some(created)))
}

fn membership_key(change: &Change) -> Option<&str> {
    match change {
        Change::AddMembership { key, .. } => Some(key),
        _ => None,
    }
}

fn same_user(a: &Change, b: &Change) -> bool {
    matches!((membership_key(a), membership_key(b)), (Some(a), Some(b)) if a == b)
}

/// Changes read back and written at a time: enough for the backends' batched
/// writes, a few megabytes of memory.
const WRITE_BATCH: usize = 50_000;

/// Why the changes could not be read back into rows.
enum BatchError {
    Spool(std::io::Error),
    Stale(MissingUser),
}

/// A batch's rows, the `groupList`s it creates, and how many changes it
/// holds.
type Batch = (Writes, BTreeMap<String, ListPrior>, usize);

/// Turns changes, given a few at a time, into rows, in batches of
/// [`write_batch`] changes, and hands each to `send` until the first
/// failure or until `send` says nobody listens; `true` when every change
/// was sent. A user's memberships are one update of their document, made
/// from the snapshot's: a batch ends between users, never inside one, and
/// a user whose memberships come apart (the derivation hands them on
/// together; a plan orders them so) is a failure, not a second update.
fn send_batches(
    changes: impl Iterator<Item = std::io::Result<Vec<Change>>>,
    snapshot: &Snapshot,
    tenant: &str,
    send: &mut dyn FnMut(Result<Batch, BatchError>) -> bool,
) -> bool {
    let batch_size = write_batch();
    let mut changes = changes.fuse();
    let mut pending: Vec<Change> = Vec::new();
    let mut users_written = std::collections::HashSet::new();
    let mut open = true;
    while open || !pending.is_empty() {
        if open {
            match changes.next() {
                Some(Ok(more)) => pending.extend(more),
                Some(Err(e)) => {
                    send(Err(BatchError::Spool(e)));
                    return false;
                }
                None => open = false,
            }
        }
        while pending.len() >= batch_size || (!open && !pending.is_empty()) {
            let mut cut = batch_size.min(pending.len());
            while cut < pending.len() && same_user(&pending[cut - 1], &pending[cut]) {
                cut += 1;
            }
            // The last user's memberships may go on in what comes next.
            if open && cut == pending.len() && membership_key(&pending[cut - 1]).is_some() {
                break;
            }
            let batch: Vec<Change> = pending.drain(..cut).collect();
            let users: Vec<&str> = batch.iter().filter_map(membership_key).collect();
            if let Some(user) = users.iter().find(|u| users_written.contains(**u)) {
                send(Err(BatchError::Spool(std::io::Error::other(format!(
                    "internal: the memberships of user `{}` came apart",
                    crate::escape::field(user)
                )))));
                return false;
            }
            users_written.extend(users.into_iter().map(str::to_string));
            let lists = created_group_lists(snapshot, &batch);
            let n = batch.len();
            let sent = match into_writes(snapshot, tenant, batch) {
                Ok(writes) => send(Ok((writes, lists, n))),
                Err(e) => {
                    send(Err(BatchError::Stale(e)));
                    return false;
                }
            };
            if !sent {
                return false;
            }
        }
    }
    true
}

/// [`WRITE_BATCH`], or less when the environment variable
/// `SYNC_ACCESS_WRITE_BATCH` says so: the tests make batches of a few
/// changes, to write a small plan in many of them.
fn write_batch() -> usize {
    std::env::var("SYNC_ACCESS_WRITE_BATCH")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(WRITE_BATCH, |n| n.clamp(1, WRITE_BATCH))
}

/// A revert plan: the revert rules again over the additions its removals
/// undo, compared, then the deletions and user documents.
async fn write_revert(
    store: &mut Store,
    run: &Run<'_>,
    snapshot: Snapshot,
    undone: Vec<Change>,
    original: &HistoryRecord,
    approved: &str,
) -> Result<(usize, Option<String>)> {
    let plan = run.plan;
    let now = revert(
        &undone,
        &snapshot,
        &plan.tenant,
        plan.options.skip_conflicts,
    );
    drop(undone);
    tracing::info!(changes = now.changes.len(), "re-derived the removals");
    run.compare(&now.changes, approved)?;
    // Rows of older releases did not record the lists their apply created:
    // a list left empty then stays, as `[]`.
    let prior_lists = original
        .created_group_lists
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let removals = removals_for(&snapshot, &plan.tenant, &now.changes, &prior_lists)
        .map_err(|e| run.sync_stale(&e))?;
    drop(snapshot);
    run.progress.counted(
        "writing",
        super::Counter::RowsWritten,
        Some(removals.len() as u64),
    );
    store
        .remove(&removals)
        .await
        .map_err(|e| run.not_applied(e))?;
    tracing::info!(
        rows = removals.len(),
        "removed what the reverted plan wrote"
    );
    Ok((removals.len(), None))
}
