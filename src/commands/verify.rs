//! `verify`: is every change of the plan in the database now?

use serde_json::json;

use crate::cli::{ReportFormat, VerifyArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::plan;
use crate::render;
use crate::store::{Access, ReadMode};
use crate::sync::{unmet_changes, Unmet};

pub async fn run(args: &VerifyArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let loaded = plan::load(path)?;
    loaded.require_intact(path)?;
    let plan = &loaded.plan;
    let (target, mut store) =
        super::open_store_for_plan(&args.connection, Access::ReadOnly, path, &plan.source).await?;
    let identity = store.identity().await?;
    let same_database = identity == plan.source.identity;
    if !same_database {
        // Not a refusal: checking a restored copy is a fair use of verify.
        tracing::warn!(
            "{} was made against another database ({} at {}); this is {} at {}",
            path.display(),
            render::clean(&crate::connect::redact(&plan.source.identity)),
            render::clean(&crate::connect::redact(&plan.source.database)),
            identity,
            target.display()
        );
    }
    let snapshot = store
        .read_snapshot(&plan.tenant, ReadMode::ReadOnly)
        .await?;
    let unmet = unmet_changes(&snapshot, &plan.tenant, &plan.changes);
    let why = |u: &Unmet| match u {
        Unmet::Missing => "missing",
        Unmet::Differs => "differs",
        Unmet::Present => "still there",
    };
    if args.format == ReportFormat::Json {
        let unmet_rows: Vec<_> = unmet
            .iter()
            .map(|(change, u)| {
                json!({"op": change.op().as_str(), "key": change.key(),
                       "group_id": change.group_id(), "why": why(u)})
            })
            .collect();
        let report = json!({
            "plan": plan.digest,
            "tenant": plan.tenant,
            "database": target.display(),
            "same_database": same_database,
            "changes": plan.changes.len(),
            "in_database": plan.changes.len() - unmet.len(),
            "unmet": unmet_rows,
            "ok": unmet.is_empty(),
        });
        super::stream_stdout(|out| render::write_json_line(out, &report))?;
    }
    if unmet.is_empty() {
        if args.format == ReportFormat::Text {
            super::stream_stdout(|out| {
                writeln!(
                    out,
                    "All {} change(s) of plan {} are {}.",
                    plan.changes.len(),
                    render::clean(&plan.digest),
                    if plan.reverts.is_some() {
                        "done: what they remove is gone from the database"
                    } else {
                        "in the database"
                    }
                )
            })?;
        }
        return Ok(ExitStatus::Success);
    }
    let mut text = String::new();
    for (change, u) in &unmet {
        text.push_str(&format!(
            "  {}: {} {}{}\n",
            why(u),
            change.op().as_str(),
            render::clean(change.key()),
            change
                .group_id()
                .map(|g| format!(" group {}", render::clean(g)))
                .unwrap_or_default()
        ));
    }
    Err(Error::stale(format!(
        "{}: {} of {} change(s) are not {}:\n{}",
        path.display(),
        unmet.len(),
        plan.changes.len(),
        if plan.reverts.is_some() {
            "done (what they remove is still there)"
        } else {
            "in the database"
        },
        text.trim_end()
    )))
}
