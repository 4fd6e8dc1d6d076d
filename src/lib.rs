//! sync-access: plan, review, approve and apply the migration of a Kestra
//! store's legacy global access into a tenant.
//!
//! Flow: the store reads a consistent snapshot, the pure [`sync::sync`]
//! turns it into changes, [`plan`] seals them, `render` shows them; apply
//! goes plan file -> validation -> store under lock -> the same sync ->
//! comparison -> writes.

// Output goes through `commands::stream_stdout`, `report_done` and `say!`,
// which neither panic on a closed pipe nor let a failed report change the
// exit code of a committed apply: print!/eprint! would do both.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub(crate) mod commands;
pub mod connect;
pub mod demo;
pub mod error;
pub mod escape;
pub(crate) mod handback;
pub mod plan;
pub(crate) mod plan_file;
pub(crate) mod progress;
pub(crate) mod render;
pub(crate) mod signing;
pub mod store;
pub mod sync;

pub use error::{Error, ExitStatus, Result};

use cli::{Cli, Command, LogLevel};

/// Runs a parsed command line; the caller maps the result to an exit code.
pub fn run(cli: Cli) -> Result<ExitStatus> {
    init_logging(&cli.global);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io_on("starting the runtime", e))?;
    runtime.block_on(async {
        match &cli.command {
            Command::Plan(args) => commands::plan::run(args).await,
            Command::Show(args) => commands::show::run(args).await,
            Command::Approve(args) => commands::approve::run(args),
            Command::Apply(args) => commands::apply::run(args).await,
            Command::Verify(args) => commands::verify::run(args).await,
            Command::History(args) => commands::history::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Keygen(args) => commands::keygen::run(args),
            Command::Completions(args) => commands::completions::run(args),
            Command::Man => commands::man::run(),
        }
    })
}

/// Prints an error on stderr: its message, and with `-v` the causes it
/// came from (a driver's or the server's own words). Both may quote a plan
/// file or the store, so both go through [`escape`]: the message's
/// untrusted parts were escaped where they were formatted in, and this is
/// the net for what was not (a driver's text, a path).
pub fn report(err: &Error, verbose: bool) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    // Messages may span lines (a stale plan's diff): each line is escaped
    // on its own, so the tool's line breaks survive and nothing else does.
    // A plan's own line breaks never get here raw: they were escaped where
    // the plan's text was formatted into the message.
    // Secrets the run knew are scrubbed first: a driver's error text is
    // not ours to trust.
    let clean_lines = |text: &str| escape::lines(&connect::secrets::scrub(text)).into_owned();
    let _ = writeln!(stderr, "error: {}", clean_lines(err.message()));
    if verbose {
        for cause in err.causes() {
            let _ = writeln!(stderr, "  caused by: {}", clean_lines(&cause));
        }
    }
}

/// Logs go to stderr: `-l` sets the level, each `-v` raises it; the driver's
/// own logs only with `--internal-log`. Every line is scrubbed of the
/// secrets the run knows, then escaped: one event is one line, and no
/// field of it (a plan's text, a driver's) writes a control character.
fn init_logging(global: &cli::GlobalArgs) {
    let base = match global.log_level {
        Some(LogLevel::Trace) => 4,
        Some(LogLevel::Debug) => 3,
        Some(LogLevel::Info) => 2,
        Some(LogLevel::Warn) | None => 1,
        Some(LogLevel::Error) => 0,
    };
    let level = match (base + global.verbose as usize).min(4) {
        0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let driver = if global.internal_log { level } else { "off" };
    let filter =
        tracing_subscriber::EnvFilter::new(format!("warn,sync_access={level},sqlx={driver}"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| connect::secrets::LogStderr)
        .with_target(false)
        .try_init();
}
