//! `verify`: is every change of the plan in the database now?

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::plan;
use crate::store::{Access, ReadMode};
use crate::sync::{unmet_changes, Unmet};

pub async fn run(global: &GlobalArgs, args: &VerifyArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let loaded = plan::load(path)?;
    loaded.require_intact(path)?;
    let plan = &loaded.plan;
    let (target, mut store) =
        super::open_store_for_plan(global, Access::ReadOnly, path, &plan.source).await?;
    let identity = store.identity().await?;
    if identity != plan.source.identity {
        // Not a refusal: checking a restored copy is a fair use of verify.
        tracing::warn!(
            "{} was made against another database ({} at {}); this is {} at {}",
            path.display(),
            crate::connect::redact(&plan.source.identity),
            crate::connect::redact(&plan.source.database),
            identity,
            target.display()
        );
    }
    let snapshot = store
        .read_snapshot(&plan.tenant, ReadMode::ReadOnly)
        .await?;
    let unmet = unmet_changes(&snapshot, &plan.tenant, &plan.changes);
    if unmet.is_empty() {
        println!(
            "All {} change(s) of plan {} are in the database.",
            plan.changes.len(),
            plan.digest
        );
        return Ok(ExitStatus::Success);
    }
    let mut text = String::new();
    for (change, why) in &unmet {
        let what = match why {
            Unmet::Missing => "missing",
            Unmet::Differs => "differs",
        };
        text.push_str(&format!(
            "  {what}: {} {}{}\n",
            change.op().as_str(),
            crate::render::clean(change.key()),
            change
                .group_id()
                .map(|g| format!(" group {}", crate::render::clean(g)))
                .unwrap_or_default()
        ));
    }
    Err(Error::stale(format!(
        "{}: {} of {} change(s) are not in the database:\n{}",
        path.display(),
        unmet.len(),
        plan.changes.len(),
        text.trim_end()
    )))
}
