//! One file per subcommand, gluing store, sync, plan and render together.

pub mod apply;
pub mod approve;
pub mod demo;
pub mod history;
pub mod keygen;
pub mod plan;
pub mod show;
pub mod verify;

use std::io::Write;
use std::time::Duration;

use crate::cli::{GlobalArgs, DEFAULT_DATABASE_URL};
use crate::connect::{self, Target};
use crate::error::{Error, Result};
use crate::signing::key::SigningKey;
use crate::store::{Access, Store};

/// The database named by `-c`, `--database-url`/`DATABASE_URL`, or the demo
/// default, in that order of precedence.
pub fn target(global: &GlobalArgs) -> Result<Target> {
    match (&global.config, &global.database_url) {
        (Some(config), _) => connect::from_kestra_config(config, global.datasource.as_deref()),
        (None, Some(url)) => Target::parse(url),
        (None, None) => Target::parse(DEFAULT_DATABASE_URL),
    }
}

/// Connects and checks that the database is an IAM store.
pub async fn open_store(global: &GlobalArgs, access: Access) -> Result<(Target, Store)> {
    let target = target(global)?;
    tracing::info!(database = %target.display(), "connecting");
    let mut store =
        Store::connect(&target, access, Duration::from_secs(global.connect_timeout)).await?;
    store.check_schema().await?;
    Ok((target, store))
}

/// Who runs the command: the flag (or `SYNC_ACCESS_USER`), else the
/// signing key's comment, else `$USER`/`$LOGNAME`; without any, a usage
/// error saying how to give one (no record is ever anonymous).
pub fn who(flag: Option<&str>, flag_name: &str, key: Option<&SigningKey>) -> Result<String> {
    let env = std::env::var("SYNC_ACCESS_USER")
        .ok()
        .filter(|name| !name.is_empty());
    crate::signing::principal::resolve(
        flag.or(env.as_deref()),
        flag_name,
        key.and_then(SigningKey::principal),
    )
}

/// Seconds since the epoch, now: when allowed_signers validity is checked.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Streams to stdout; a closed pipe (`| head`) ends quietly.
pub fn stream_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io_on("stdout", e)),
    }
}

/// Progress on stderr for long runs: a spinner naming the phase, only when
/// stderr is a terminal (never in pipes, logs or CI).
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A spinner on a terminal; nothing otherwise.
    pub fn on_terminal() -> Progress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// Names the phase now under way.
    pub fn phase(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(what.to_string());
        }
    }

    /// Clears the spinner before the command prints its result.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
