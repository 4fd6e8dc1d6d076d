//! `plan`: read a snapshot, run the sync rules, write the plan.

use std::io::IsTerminal;

use crate::cli::PlanArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::plan::{now_rfc3339, ChangeSpool, Plan, Provenance, Source, Spooled};
use crate::plan_file;
use crate::signing::{self, key::SigningKey};
use crate::store::{Access, Hold, ReadMode};
use crate::sync::SyncOptions;

/// The bindings `plan` keeps between its two passes over them, at most
/// (src/store/mod.rs, `Hold`; packed, src/store/held.rs): about 1.2
/// million rows of the documents Kestra writes (a million take 156 MiB),
/// read from the database once; a larger table is read twice, the rows
/// kept so far freed when the budget runs out. The budget is what a
/// larger table's peak carries on top of its index at that moment
/// (BENCHMARKS.md, round 10: 2M bindings peak 75 MiB above 1M).
const HOLD_BINDINGS: Hold = Hold::UpTo(192 << 20);

/// Rows of "Needs attention" that `plan` shows on a terminal.
const ATTENTION_ROWS: usize = 10;

pub async fn run(args: &PlanArgs) -> Result<ExitStatus> {
    if let Some(applied) = &args.revert {
        return super::revert::run(args, applied).await;
    }
    // Before anything is read: a tenant Kestra would refuse, or one that
    // only looks like another, is never planned.
    if !crate::plan::is_valid_tenant_id(&args.tenant) {
        return Err(Error::usage(format!(
            "--tenant `{}`: not a tenant id: {}",
            crate::escape::field(&args.tenant),
            crate::plan::TENANT_ID_RULE
        )));
    }
    let options = SyncOptions {
        tenant: args.tenant.clone(),
        create_tenant: args.create_tenant,
        tenant_name: args.tenant_name.clone(),
        skip_conflicts: args.skip_conflicts,
    };
    // The key is read first: a wrong path fails before the store is read.
    let key = args.key.as_deref().map(SigningKey::load).transpose()?;
    let created_at = now_rfc3339()?;
    // A plan of a million changes on a terminal helps nobody: without -o,
    // a terminal gets the review's top and how to save the plan.
    let to_terminal = args.out.is_none() && std::io::stdout().is_terminal();
    // Before the long read: the changes will have somewhere to go.
    let spool = new_spool()?;
    let progress = super::Progress::on_terminal();
    progress.phase("connecting");
    let (target, mut store) = super::open_store(&args.connection, Access::ReadOnly).await?;
    let identity = store.identity().await?;
    // Before the long read: a plan is never made by nobody.
    let provenance = Provenance {
        created_at,
        created_by: super::who(args.created_by.as_deref(), "--created-by", key.as_ref())?,
    };
    // The bindings are passed over twice, held between the passes only
    // within `HOLD_BINDINGS` (src/sync/bindings.rs): the changes are
    // derived while the store is read.
    progress.counted(
        "reading the store and deriving the changes",
        super::Counter::RowsRead,
        None,
    );
    // On a thread of its own: the connection decodes the rows while the
    // rules index and judge them, on the other core.
    let (_, deriving) = store
        .derive_on_thread(
            &options,
            ReadMode::ReadOnly,
            HOLD_BINDINGS,
            spool,
            finish_spool,
        )
        .await?;
    let (derived, spooled) = deriving.join()?;
    // A malformed tenant document is quoted: escaped.
    let result = derived.map_err(|e| Error::usage(crate::escape::field(&e.to_string())))?;
    let spooled = spooled?;
    tracing::info!(changes = spooled.len(), "derived the changes");
    let source = Source {
        backend: store.backend().as_str().to_string(),
        database: target.display(),
        identity,
    };
    let plan = Plan::spooled(result, &spooled, &options, None, source, provenance);
    finish(plan, &spooled, args, key.as_ref(), progress, to_terminal)
}

/// Where a plan's changes wait, in the temporary directory (`TMPDIR`),
/// until the plan is sealed and written: not in memory.
pub(super) fn new_spool() -> Result<ChangeSpool> {
    ChangeSpool::new(&std::env::temp_dir()).map_err(spool_error)
}

pub(super) fn finish_spool(spool: ChangeSpool) -> Result<Spooled> {
    spool.finish().map_err(spool_error)
}

pub(super) fn spool_error(e: std::io::Error) -> Error {
    Error::io_on(
        format!(
            "the changes' temporary files in {} (TMPDIR)",
            std::env::temp_dir().display()
        ),
        e,
    )
}

/// Seals the plan, signs it when asked, writes it, and says what it holds
/// and what to do next: for plans and revert plans alike. The plan holds no
/// changes: they are `spooled`, which seals the plan as it writes them.
pub(super) fn finish(
    mut plan: Plan,
    spooled: &Spooled,
    args: &PlanArgs,
    key: Option<&SigningKey>,
    progress: super::Progress,
    to_terminal: bool,
) -> Result<ExitStatus> {
    // Once the digest is known; a failure to sign is told as itself, not
    // as a failure to write.
    let mut failed_to_sign = None;
    let mut seal = |plan: &mut Plan| -> std::io::Result<()> {
        tracing::info!(digest = %plan.digest, "sealed the plan");
        if let Some(key) = key {
            match key.sign(&signing::author_message(plan)) {
                Ok(signature) => plan.author_signature = Some(signature),
                Err(e) => {
                    failed_to_sign = Some(e);
                    return Err(std::io::Error::other("the plan could not be signed"));
                }
            }
            tracing::info!(key = %key.fingerprint(), "signed the plan as its author");
        }
        Ok(())
    };
    let phase = format!("sealing and writing {} changes", spooled.len());
    let written = match &args.out {
        Some(path) => {
            progress.phase(&phase);
            plan_file::write(path, args.force, |file| {
                spooled.seal_and_write(&mut plan, &mut seal, file)
            })
            .map(Some)
        }
        None if to_terminal => {
            progress.phase(&format!("sealing {} changes", spooled.len()));
            spooled
                .digest(&plan)
                .map_err(spool_error)
                .and_then(|digest| {
                    plan.digest = digest;
                    seal(&mut plan).map_err(spool_error)
                })
                .map(|()| None)
        }
        None => {
            progress.phase(&phase);
            super::stream_stdout(|out| spooled.seal_and_write(&mut plan, &mut seal, out)).and_then(
                |()| {
                    // A reader gone before the changes were all written
                    // (`| head`) stopped the seal: what is said of the plan
                    // still names its digest.
                    if plan.digest.is_empty() {
                        plan.digest = spooled.digest(&plan).map_err(spool_error)?;
                    }
                    Ok(None)
                },
            )
        }
    };
    let written = match (written, failed_to_sign) {
        (_, Some(e)) => return Err(e),
        (written, None) => written?,
    };
    progress.finish();
    drop(progress);
    if let (Some(written), Some(path)) = (written, &args.out) {
        if let Some(note) = written.note(path) {
            crate::say!("{}", crate::render::clean(&note));
        }
    }
    tracing::info!("wrote the plan");
    if to_terminal {
        let style = super::show::terminal_style(None, super::show::Stream::Stdout);
        let review = crate::render::plan_summary_table(&plan, spooled, style, Some(ATTENTION_ROWS))
            .map_err(spool_error)?;
        super::stream_stdout(|out| {
            write!(
                out,
                "{review}\nThis is a summary; the plan itself was not saved. Save it with\n  sync-access plan -o plan.json      (or: sync-access plan > plan.json)\nthen review it with `sync-access show plan.json`.\n"
            )
        })?;
    } else if std::io::stderr().is_terminal() {
        let style = super::show::terminal_style(None, super::show::Stream::Stderr);
        let review =
            crate::render::plan_summary_table(&plan, spooled, style, None).map_err(spool_error)?;
        super::say(format_args!("{review}"));
    } else {
        super::say(format_args!(
            "{}",
            crate::render::plan_summary_for_stderr(&plan)
        ));
    }
    if let Some(path) = &args.out {
        let path = path.display();
        if plan.applyable {
            crate::say!("next: sync-access show {path}, then sync-access approve {path} --by YOU");
        } else {
            crate::say!(
                "next: sync-access show {path} to see the conflicts; resolve them and plan again, or plan with --skip-conflicts"
            );
        }
    }
    Ok(if !plan.applyable {
        ExitStatus::Conflicts
    } else if args.detailed_exitcode && plan.summary.changes() > 0 {
        ExitStatus::ChangesPlanned
    } else {
        ExitStatus::Success
    })
}
