//! `apply`: plan file -> validation -> store under lock -> the same sync
//! function -> comparison -> writes, all in one transaction.

use std::path::Path;
use std::time::Duration;

use crate::cli::{ApplyArgs, GlobalArgs};
use crate::error::{Error, ErrorKind, ExitStatus, Result};
use crate::plan::{self, Loaded};
use crate::render;
use crate::signing::policy::{self, Counted, Flags, Policy};
use crate::store::{Access, HistoryRecord, ReadMode, Store};
use crate::sync::{into_writes, sync};

enum Attempt {
    Applied { rows: usize },
    AlreadyApplied(HistoryRecord),
}

pub async fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    // Flags and policy first: a usage error needs no plan read.
    let policy = Policy::from_flags(&Flags {
        policy: args.policy.clone(),
        allowed_signers: args.allowed_signers.clone(),
        require_approvals: args.require_approvals,
        four_eyes: args.four_eyes,
    })?;
    let progress = super::Progress::on_terminal();
    progress.phase("reading the plan");
    let loaded = plan::load(path)?;
    tracing::info!(changes = loaded.plan.changes.len(), "loaded the plan");
    let verdict = validate(&loaded, path, &policy)?;
    let unsigned_names = verdict.unsigned_names();
    let not_counted = verdict.not_counted;
    let approvers = verdict.counted;
    let applied_by = super::who(args.applied_by.as_deref(), "--applied-by", None)?;
    // What apply compares is the digest of the approved changes: the
    // changes themselves (a million of them are hundreds of megabytes) are
    // freed before the store is read, and read again only to show a diff.
    let mut loaded = loaded;
    let approved = plan::changes_digest(&loaded.plan.changes);
    loaded.plan.changes = Vec::new();
    let plan = &loaded.plan;
    let (target, mut store) =
        super::open_store_for_plan(global, Access::ReadWrite, path, &plan.source).await?;
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
    progress.phase("waiting for the lock, re-reading and comparing; then writing");
    store
        .begin_apply(Duration::from_secs(args.lock_timeout))
        .await
        .map_err(not_applied)?;
    let attempt = attempt(&mut store, plan, &approved, path, &applied_by, &approvers).await;
    progress.finish();
    match attempt {
        Ok(Attempt::Applied { rows }) => {
            let s = &plan.summary;
            println!(
                "Applied plan {} to tenant `{}` on {}: {} role(s), {} group(s), {} membership(s), {} binding(s){} ({rows} row(s) written).",
                plan.digest,
                plan.tenant,
                target.display(),
                s.add_role,
                s.add_group,
                s.add_membership,
                s.add_binding,
                if s.create_tenant > 0 { ", and the tenant created" } else { "" },
            );
            // Said once the outcome is known, so that a refusal stays one
            // line.
            for why in &not_counted {
                eprintln!("note: not counted: {}", render::clean(why));
            }
            if unsigned_names {
                eprintln!(
                    "warning: {}: the approvals that counted are unsigned names, which anyone who can edit the plan file can type; give --allowed-signers FILE or --policy FILE to require signatures",
                    path.display()
                );
            }
            Ok(ExitStatus::Success)
        }
        Ok(Attempt::AlreadyApplied(record)) => {
            store.rollback().await.map_err(not_applied)?;
            println!(
                "Plan {} was already applied at {} by {} (approved by {}); nothing to do.",
                render::clean(&record.digest),
                render::clean(&record.applied_at),
                render::clean(&record.applied_by),
                render::clean(&render::approvers_text(&record.approvers))
            );
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            // The transaction is rolled back; on a lost connection the
            // server rolls it back itself.
            let _ = store.rollback().await;
            Err(e)
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

async fn attempt(
    store: &mut Store,
    plan: &plan::Plan,
    approved: &str,
    path: &Path,
    applied_by: &str,
    approvers: &[Counted],
) -> Result<Attempt> {
    let not_applied = |e: Error| not_applied(path, e);
    let stale = |why: String| not_applied(Error::stale(format!("stale: {why}")));
    if let Some(record) = store
        .find_applied(&plan.digest)
        .await
        .map_err(not_applied)?
    {
        return Ok(Attempt::AlreadyApplied(record));
    }
    let snapshot = store
        .read_snapshot(&plan.tenant, ReadMode::InApply)
        .await
        .map_err(not_applied)?;
    tracing::info!("read the snapshot under the lock");
    let now = sync(&snapshot, &plan.sync_options()).map_err(|e| stale(e.to_string()))?;
    tracing::info!(changes = now.changes.len(), "re-derived the changes");
    // Documents are canonical text: equal changes are equal bytes.
    if plan::changes_digest(&now.changes) != approved {
        // The file passed its digest check: read its changes again for the
        // diff (a changed file now is refused as altered).
        let reread = plan::load(path)?;
        reread.require_intact(path)?;
        let diff = render::changes_diff(&reread.plan.changes, &now.changes);
        return Err(stale(format!(
            "the database no longer needs exactly the approved changes; plan, review and approve again\n\
             --- approved\n+++ needed now\n{}",
            diff.trim_end()
        )));
    }
    let writes =
        into_writes(&snapshot, &plan.tenant, now.changes).map_err(|e| stale(e.to_string()))?;
    drop(snapshot);
    store.write(&writes).await.map_err(not_applied)?;
    tracing::info!(rows = writes.len(), "wrote the changes");
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
    };
    store.record(&record).await.map_err(not_applied)?;
    store.commit().await.map_err(|e| match e.kind() {
        // Refused before anything was committed (SQLite readers that never
        // let go): the transaction is rolled back next.
        ErrorKind::Locked => not_applied(e),
        _ => e.reworded(|why| {
            format!(
                "{}: the commit failed, so the plan is most likely not applied; `sync-access history` tells for sure: {why}",
                path.display()
            )
        }),
    })?;
    Ok(Attempt::Applied { rows: writes.len() })
}
