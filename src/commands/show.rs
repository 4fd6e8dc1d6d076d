//! `show`: render a plan for review.

use std::io::IsTerminal;

use crate::cli::{OpArg, ShowArgs, ShowFormat};
use crate::error::{Error, ExitStatus, Result};
use crate::plan;
use crate::render::{self, Filter, Format, ShowOptions, Style};
use crate::sync::Op;

/// Rows per table when `--limit` is not given, for the human formats.
const DEFAULT_LIMIT: usize = 50;

pub fn run(args: &ShowArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let started = std::time::Instant::now();
    let loaded = plan::load(path)?;
    tracing::info!(elapsed = ?started.elapsed(), changes = loaded.plan.changes.len(), "plan loaded");
    let options = options(args);
    let text = render::show(&loaded.plan, &loaded.computed_digest, &options);
    tracing::info!(elapsed = ?started.elapsed(), "plan rendered");
    super::stream_stdout(|out| out.write_all(text.as_bytes()))?;
    if !loaded.digest_matches() {
        return Err(Error::refused(format!(
            "{}: WARNING: digest mismatch: this plan was altered after it was made; do not approve it",
            path.display()
        )));
    }
    Ok(ExitStatus::Success)
}

fn options(args: &ShowArgs) -> ShowOptions {
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
    }
}

fn op(arg: OpArg) -> Op {
    match arg {
        OpArg::CreateTenant => Op::CreateTenant,
        OpArg::AddRole => Op::AddRole,
        OpArg::AddGroup => Op::AddGroup,
        OpArg::AddMembership => Op::AddMembership,
        OpArg::AddBinding => Op::AddBinding,
    }
}

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Terminal conventions: the terminal's width and colour when the stream is
/// a terminal (colour unless `NO_COLOR` is set and not empty); no wrapping
/// and no colour when piped. `width` overrides the width either way.
pub fn terminal_style(width: Option<u16>, stream: Stream) -> Style {
    let is_terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let detected = || {
        let mut probe = comfy_table::Table::new();
        if let Stream::Stderr = stream {
            probe.use_stderr();
        }
        probe.width()
    };
    // A pseudo-terminal may report no size (0 columns): do not squeeze
    // tables into nothing.
    let usable = |w: &u16| *w >= 20;
    Style {
        width: width.map(|w| w.max(20)).or_else(|| {
            if is_terminal {
                detected().filter(usable)
            } else {
                None
            }
        }),
        color: is_terminal && !no_color,
    }
}
