//! `apply`: plan file -> validation -> store under lock -> the same sync
//! function -> comparison -> writes, all in one transaction.

use std::path::Path;
use std::time::Duration;

use crate::cli::{ApplyArgs, GlobalArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::plan::{self, Loaded};
use crate::render;
use crate::store::{Access, HistoryRecord, ReadMode, Store};
use crate::sync::{sync, writes_for};

enum Attempt {
    Applied {
        rows: usize,
    },
    AlreadyApplied(HistoryRecord),
    /// MySQL only: DDL commits implicitly, so the history table is created
    /// outside the transaction and the attempt starts over.
    NeedHistoryTable,
}

pub async fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let loaded = plan::load(path)?;
    let plan = validate(&loaded, path)?;
    let (target, mut store) = super::open_store(global, Access::ReadWrite).await?;
    let identity = store.identity().await?;
    if identity != plan.source.identity {
        return Err(Error::Stale(format!(
            "{}: made against another database ({} at {}); this is {} at {}",
            path.display(),
            plan.source.identity,
            plan.source.database,
            identity,
            target.display()
        )));
    }
    let applied_by = super::whoami(args.applied_by.as_deref());
    loop {
        store
            .begin_apply(Duration::from_secs(args.lock_timeout))
            .await?;
        let attempt = attempt(&mut store, &loaded, path, &applied_by).await;
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
                return Ok(ExitStatus::Success);
            }
            Ok(Attempt::AlreadyApplied(record)) => {
                store.rollback().await?;
                println!(
                    "Plan {} was already applied at {} by {} (approved by {}); nothing to do.",
                    record.digest,
                    record.applied_at,
                    record.applied_by,
                    render::approvers_text(&record.approvers)
                );
                return Ok(ExitStatus::Success);
            }
            Ok(Attempt::NeedHistoryTable) => {
                store.rollback().await?;
                store.create_history_table().await?;
            }
            Err(e) => {
                // The transaction is rolled back; on a lost connection the
                // server rolls it back itself.
                let _ = store.rollback().await;
                return Err(e);
            }
        }
    }
}

/// The checks that need no database: intact, approved, applyable.
fn validate<'a>(loaded: &'a Loaded, path: &Path) -> Result<&'a plan::Plan> {
    loaded.require_intact(path)?;
    let plan = &loaded.plan;
    if plan.matching_approvals().next().is_none() {
        return Err(Error::Refused(format!(
            "{}: not approved: no approval matches its digest {} (run `sync-access approve`)",
            path.display(),
            plan.digest
        )));
    }
    if !plan.applyable {
        return Err(Error::NotApplyable(format!(
            "{}: not applyable: it has {} conflict(s); resolve them and plan again, or plan with --skip-conflicts",
            path.display(),
            plan.conflicts.len()
        )));
    }
    Ok(plan)
}

async fn attempt(
    store: &mut Store,
    loaded: &Loaded,
    path: &Path,
    applied_by: &str,
) -> Result<Attempt> {
    let plan = &loaded.plan;
    if let Some(record) = store.find_applied(&plan.digest).await? {
        return Ok(Attempt::AlreadyApplied(record));
    }
    let snapshot = store.read_snapshot(&plan.tenant, ReadMode::InApply).await?;
    let stale = |why: String| Error::Stale(format!("{}: stale: {why}", path.display()));
    let now = sync(&snapshot, &plan.sync_options()).map_err(|e| stale(e.to_string()))?;
    let needed = serde_json::to_value(&now.changes).expect("changes always serialise");
    let approved = &loaded.raw["changes"];
    if &needed != approved {
        let diff = render::changes_diff(approved, &needed);
        return Err(stale(format!(
            "the database no longer needs exactly the approved changes; nothing was written.\n\
             --- approved\n+++ needed now\n{diff}"
        )));
    }
    if !store.history_ready().await? {
        return Ok(Attempt::NeedHistoryTable);
    }
    let writes =
        writes_for(&snapshot, &plan.tenant, &now.changes).map_err(|e| stale(e.to_string()))?;
    drop(snapshot);
    store.write(&writes).await?;
    let approvers: Vec<serde_json::Value> = plan
        .matching_approvals()
        .map(|a| serde_json::json!({"by": a.by, "at": a.at}))
        .collect();
    store
        .record(&HistoryRecord {
            digest: plan.digest.clone(),
            tenant: plan.tenant.clone(),
            plan_created_at: plan.created_at.clone(),
            plan_created_by: plan.created_by.clone(),
            approvers: serde_json::Value::Array(approvers).to_string(),
            applied_at: plan::now_rfc3339()?,
            applied_by: applied_by.to_string(),
            summary: serde_json::to_string(&plan.summary).expect("a summary always serialises"),
        })
        .await?;
    store.commit().await?;
    Ok(Attempt::Applied { rows: writes.len() })
}
