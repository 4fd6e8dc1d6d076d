//! `plan --revert APPLIED_PLAN`: the applied plan (validated as any plan
//! file) -> its history row in this database -> a snapshot -> the revert
//! rules (`sync::revert`) -> a revert plan, written as `plan` writes one
//! (docs/revert.md).

use std::io::IsTerminal;
use std::path::Path;

use crate::cli::PlanArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::plan::{self, now_rfc3339, Plan, Provenance, Source};
use crate::render;
use crate::signing::key::SigningKey;
use crate::store::{Access, ReadMode};
use crate::sync::{revert, SyncOptions};

pub async fn run(args: &PlanArgs, applied_path: &Path) -> Result<ExitStatus> {
    let key = args.key.as_deref().map(SigningKey::load).transpose()?;
    let created_at = now_rfc3339()?;
    let to_terminal = args.out.is_none() && std::io::stdout().is_terminal();
    let progress = super::Progress::on_terminal();
    progress.phase("reading the applied plan");
    let loaded = plan::load(applied_path)?;
    loaded.require_intact(applied_path)?;
    let applied = loaded.plan;
    let name = applied_path.display();
    if let Some(original) = &applied.reverts {
        return Err(Error::usage(format!(
            "{name}: a revert plan (of plan {}); a revert is not reverted: to restore what it removed, plan again",
            render::clean(original)
        )));
    }
    progress.phase("connecting");
    let (target, mut store) = super::open_store_for_plan(
        &args.connection,
        Access::ReadOnly,
        applied_path,
        &applied.source,
    )
    .await?;
    let identity = store.identity().await?;
    if identity != applied.source.identity {
        return Err(Error::stale(format!(
            "{name}: not reverted: made against another database ({} at {}); this is {} at {}",
            render::clean(&crate::connect::redact(&applied.source.identity)),
            render::clean(&crate::connect::redact(&applied.source.database)),
            identity,
            target.display()
        )));
    }
    let digest = render::clean(&applied.digest);
    let record = store.find_applied(&applied.digest).await?.ok_or_else(|| {
        Error::usage(format!(
            "{name}: plan {digest} is not in this database's history (sync_access_history): it was never applied here, so there is nothing to revert"
        ))
    })?;
    if let Some(by) = &record.reverted_by {
        return Err(Error::usage(format!(
            "{name}: plan {digest} was already reverted, by plan {}: nothing is left to revert",
            render::clean(by)
        )));
    }
    let provenance = Provenance {
        created_at,
        created_by: super::who(args.created_by.as_deref(), "--created-by", key.as_ref())?,
    };
    progress.counted("reading the store", super::Counter::RowsRead, None);
    let snapshot = store
        .read_snapshot(&applied.tenant, ReadMode::ReadOnly)
        .await?;
    progress.phase(&format!(
        "deriving the removals of {} changes",
        applied.changes.len()
    ));
    let mut spool = super::plan::new_spool()?;
    let mut result = revert(
        &applied.changes,
        &snapshot,
        &applied.tenant,
        args.skip_conflicts,
    );
    drop(snapshot);
    for change in std::mem::take(&mut result.changes) {
        spool.push(change);
    }
    let spooled = super::plan::finish_spool(spool)?;
    tracing::info!(changes = spooled.len(), "derived the removals");
    let source = Source {
        backend: store.backend().as_str().to_string(),
        database: target.display(),
        identity,
    };
    let mut options = SyncOptions::new(&applied.tenant);
    options.skip_conflicts = args.skip_conflicts;
    let plan = Plan::spooled(
        result,
        &spooled,
        &options,
        Some(&applied.digest),
        source,
        provenance,
    );
    super::plan::finish(plan, &spooled, args, key.as_ref(), progress, to_terminal)
}
