//! `show`: render a plan for review; with `--live`, beside the tenant's
//! current access, read from the database.

use std::io::{self, IsTerminal};
use std::path::Path;

use crate::cli::{OpArg, ShowArgs, ShowFormat};
use crate::error::{Error, ExitStatus, Result};
use crate::plan;
use crate::render::{self, Filter, Format, ShowOptions, Style, Tenant};
use crate::store::{Access, ReadMode};
use crate::sync::Op;

/// Rows per table when `--limit` is not given, for the human formats.
const DEFAULT_LIMIT: usize = 50;

pub async fn run(args: &ShowArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let started = std::time::Instant::now();
    let name = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let options = options(args, &name);
    let (lean, counted) = if path == Path::new("-") {
        (plan::load_lean_stdin()?, None)
    } else {
        check(path, &options, args.live)?
    };
    let changes = lean.changes()?;
    let loaded = &lean.loaded;
    tracing::info!(elapsed = ?started.elapsed(), changes = loaded.plan.summary.changes(), "plan loaded");
    let tenant = if args.live {
        Some(live_tenant(args, &name, &loaded.plan).await?)
    } else {
        None
    };
    let mut changed = None;
    let shown = super::stream_stdout(|out| {
        let shown = match counted {
            Some(counted) => render::show_counted(
                out,
                &loaded.plan,
                &*changes,
                &loaded.computed_digest,
                &options,
                counted,
            ),
            None => render::show_changes(
                out,
                &loaded.plan,
                &*changes,
                &loaded.computed_digest,
                &options,
                tenant.as_ref(),
            ),
        };
        // A file that no longer holds what was checked is the plan's
        // fault, not stdout's.
        shown.map_err(|e| match e.get_ref().and_then(|e| e.downcast_ref()) {
            Some(plan::ChangedSinceChecked { bytes }) => {
                changed = Some(bytes.clone());
                io::Error::other("the plan file changed")
            }
            None => e,
        })
    });
    if let Some(bytes) = changed {
        return Err(Error::refused(format!(
            "{name}: changed while it was shown (bytes {}..{} no longer hold what was checked): what was printed is not a review of any plan; show it again",
            bytes.start, bytes.end
        )));
    }
    shown?;
    tracing::info!(elapsed = ?started.elapsed(), "plan rendered");
    if !loaded.digest_matches() {
        return Err(Error::refused(format!(
            "{name}: WARNING: digest mismatch: this plan was altered after it was made; do not approve it"
        )));
    }
    Ok(ExitStatus::Success)
}

/// The plan file at `path`, checked as `load` checks it, without keeping
/// its changes: they are read again from the file when rendered (issue
/// 15). A file's are counted for the review while they are checked, where
/// the review allows ([`render::counts_while_checking`]).
fn check(
    path: &Path,
    options: &ShowOptions,
    live: bool,
) -> Result<(plan::Lean, Option<render::CountedEarly>)> {
    let split = match plan::split_plan_file(path)? {
        Ok(split) => split,
        // Not laid out as the tool writes a plan (or not a regular file):
        // read whole, which says what is wrong.
        Err(file) => return Ok((plan::lean_of(path, plan::read_bytes_of(path, file)?)?, None)),
    };
    let header = split.header().clone();
    let (checked, counted) = if render::counts_while_checking(options, live) {
        render::count_while_checking(&header, options, |watch| split.check_watching(watch))
    } else {
        (split.check_watching(&mut Some), None)
    };
    match checked.map_err(|e| Error::io(path, e))? {
        Some(lean) => Ok((lean, counted)),
        // Not surely fine read so: read whole, which says what is wrong.
        None => Ok((plan::load_lean(path)?, None)),
    }
}

/// The tenant's current access, read in one read-only snapshot.
async fn live_tenant(args: &ShowArgs, name: &str, plan: &plan::Plan) -> Result<Tenant> {
    // As apply and verify: no database given for a plan made elsewhere
    // is told how to pass it, not read from the demo file.
    let (target, mut store) = super::open_store_for_plan(
        &args.connection,
        Access::ReadOnly,
        Path::new(name),
        &plan.source,
    )
    .await?;
    let identity = store.identity().await?;
    if identity != plan.source.identity {
        crate::say!(
            "warning: the plan was made against another database ({} at {}); this is {} at {}: the \"before\" side is this database's",
            render::clean(&crate::connect::redact(&plan.source.identity)),
            render::clean(&crate::connect::redact(&plan.source.database)),
            identity,
            target.display()
        );
    }
    let snapshot = store
        .read_snapshot(&plan.tenant, ReadMode::ReadOnly)
        .await?;
    Ok(Tenant::of(&snapshot, &plan.tenant))
}

fn options(args: &ShowArgs, name: &str) -> ShowOptions {
    let format = match args.format {
        ShowFormat::Table => Format::Table,
        ShowFormat::Markdown => Format::Markdown,
        ShowFormat::Json => Format::Json,
    };
    let limit = match (args.limit, format) {
        (Some(0), _) | (None, Format::Json) => None,
        (Some(n), _) => Some(n),
        (None, _) => Some(DEFAULT_LIMIT),
    };
    let shell_name = if name == "stdin" { "-" } else { name };
    ShowOptions {
        format,
        diff: args.diff,
        limit,
        filter: Filter {
            user: args.user.clone(),
            role: args.role.clone(),
            namespace: args.namespace.clone(),
            op: args.op.map(op),
        },
        style: terminal_style(args.width, Stream::Stdout),
        // The default markdown is for a pull-request comment; asked for
        // with --limit, it is whatever size that makes.
        fit_comment: args.limit.is_none(),
        everything: format!(
            "sync-access show {shell_name} --format markdown --limit 0 > review.md"
        ),
    }
}

fn op(arg: OpArg) -> Op {
    match arg {
        OpArg::CreateTenant => Op::CreateTenant,
        OpArg::AddRole => Op::AddRole,
        OpArg::AddGroup => Op::AddGroup,
        OpArg::AddMembership => Op::AddMembership,
        OpArg::AddBinding => Op::AddBinding,
        OpArg::RemoveBinding => Op::RemoveBinding,
        OpArg::RemoveMembership => Op::RemoveMembership,
        OpArg::RemoveGroup => Op::RemoveGroup,
        OpArg::RemoveRole => Op::RemoveRole,
        OpArg::RemoveTenant => Op::RemoveTenant,
    }
}

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Terminal conventions: the terminal's width, and colour as anstream
/// decides it (a terminal, `NO_COLOR` unset or empty, `CLICOLOR`,
/// `CLICOLOR_FORCE`, `TERM=dumb`); no wrapping when piped. `width`
/// overrides the width either way.
pub fn terminal_style(width: Option<u16>, stream: Stream) -> Style {
    let (is_terminal, choice, size) = match stream {
        Stream::Stdout => (
            std::io::stdout().is_terminal(),
            anstream::AutoStream::choice(&std::io::stdout()),
            console::Term::stdout().size_checked(),
        ),
        Stream::Stderr => (
            std::io::stderr().is_terminal(),
            anstream::AutoStream::choice(&std::io::stderr()),
            console::Term::stderr().size_checked(),
        ),
    };
    // A pseudo-terminal may report no size (0 columns): do not squeeze
    // tables into nothing.
    let detected = size.map(|(_, columns)| columns).filter(|w| *w >= 20);
    Style {
        width: width
            .map(|w| w.max(20))
            .or(if is_terminal { detected } else { None }),
        color: choice != anstream::ColorChoice::Never,
    }
}
