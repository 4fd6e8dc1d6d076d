//! `plan`: read a snapshot, run the sync rules, write the plan.

use std::io::IsTerminal;

use crate::cli::{GlobalArgs, PlanArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::plan::{now_rfc3339, Plan, Provenance, Source};
use crate::plan_file;
use crate::signing::{self, key::SigningKey};
use crate::store::{Access, ReadMode};
use crate::sync::{sync, SyncOptions};

pub async fn run(global: &GlobalArgs, args: &PlanArgs) -> Result<ExitStatus> {
    let options = SyncOptions {
        tenant: args.tenant.clone(),
        create_tenant: args.create_tenant,
        tenant_name: args.tenant_name.clone(),
        skip_conflicts: args.skip_conflicts,
    };
    // The key is read first: a wrong path fails before the store is read.
    let key = args.key.as_deref().map(SigningKey::load).transpose()?;
    let created_at = now_rfc3339()?;
    let progress = super::Progress::on_terminal();
    progress.phase("connecting");
    let (target, mut store) = super::open_store(global, Access::ReadOnly).await?;
    let identity = store.identity().await?;
    // Before the long read: a plan is never made by nobody.
    let provenance = Provenance {
        created_at,
        created_by: super::who(args.created_by.as_deref(), "--created-by", key.as_ref())?,
    };
    progress.phase("reading the store");
    let snapshot = store
        .read_snapshot(&options.tenant, ReadMode::ReadOnly)
        .await?;
    tracing::info!(
        users = snapshot.users.len(),
        groups = snapshot.groups.len(),
        roles = snapshot.roles.len(),
        bindings = snapshot.bindings.len(),
        "read snapshot"
    );
    progress.phase("deriving the changes");
    let result = sync(&snapshot, &options).map_err(|e| Error::usage(e.to_string()))?;
    drop(snapshot);
    tracing::info!(changes = result.changes.len(), "derived the changes");
    let source = Source {
        backend: store.backend().as_str().to_string(),
        database: target.display(),
        identity,
    };
    progress.phase("sealing and writing the plan");
    let mut plan = Plan::new(result, &options, source, provenance);
    tracing::info!(digest = %plan.digest, "sealed the plan");
    if let Some(key) = &key {
        progress.phase("signing the plan");
        plan.author_signature = Some(key.sign(&signing::author_message(&plan))?);
        tracing::info!(key = %key.fingerprint(), "signed the plan as its author");
    }
    let written = match &args.out {
        Some(path) => Some(plan_file::write(path, args.force, |file| {
            plan.write_pretty(file)
        })?),
        None => {
            super::stream_stdout(|out| plan.write_pretty(out))?;
            None
        }
    };
    progress.finish();
    if let (Some(written), Some(path)) = (written, &args.out) {
        if let Some(note) = written.note(path) {
            eprintln!("{}", crate::render::clean(&note));
        }
    }
    tracing::info!("wrote the plan");
    if std::io::stderr().is_terminal() {
        let style = super::show::terminal_style(None, super::show::Stream::Stderr);
        eprint!("{}", crate::render::plan_summary_table(&plan, style));
    } else {
        eprint!("{}", crate::render::plan_summary_for_stderr(&plan));
    }
    Ok(if !plan.applyable {
        ExitStatus::Conflicts
    } else if args.detailed_exitcode && !plan.changes.is_empty() {
        ExitStatus::ChangesPlanned
    } else {
        ExitStatus::Success
    })
}
