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
use std::path::Path;
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::connect::kestra::{self, Origin, Request};
use crate::connect::Target;
use crate::error::{Error, Result};
use crate::signing::key::SigningKey;
use crate::store::{Access, Store};

/// The database named by `-c`, `--database-url`, `DATABASE_URL`,
/// `KESTRA_CONFIGURATION`, Kestra's default config path or the demo
/// default (see [`kestra::resolve`]); a Kestra configuration is named on
/// stderr, with the datasource and the environment variables that
/// overrode it.
pub fn resolve(global: &GlobalArgs) -> Result<kestra::Resolved> {
    resolve_request(Request {
        config: global.config.clone(),
        database_url: global.database_url.clone(),
        datasource: global.datasource.clone(),
        explicit_only: false,
    })
}

/// As [`resolve`], for `demo`: only a database named on the command line or
/// in `DATABASE_URL`, else the demo default.
pub fn resolve_explicit(global: &GlobalArgs) -> Result<kestra::Resolved> {
    resolve_request(Request {
        config: global.config.clone(),
        database_url: global.database_url.clone(),
        datasource: global.datasource.clone(),
        explicit_only: true,
    })
}

fn resolve_request(request: Request) -> Result<kestra::Resolved> {
    // Only the names of DATASOURCES_* variables and their values are used.
    let env_vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("DATASOURCES_"))
        .collect();
    let resolved = kestra::resolve(&request, &kestra::process_env, &env_vars)?;
    if let Origin::Kestra(how) = &resolved.origin {
        eprintln!(
            "sync-access: database from the Kestra configuration in {}",
            crate::render::clean(how)
        );
    }
    resolved.target.log_ignored();
    Ok(resolved)
}

/// The database the command line and the environment name.
pub fn target(global: &GlobalArgs) -> Result<Target> {
    Ok(resolve(global)?.target)
}

/// `--connect-timeout`, else the URL's, else 10 seconds.
pub fn connect_timeout(global: &GlobalArgs, target: &Target) -> Duration {
    global
        .connect_timeout
        .map(Duration::from_secs)
        .or_else(|| target.connect_timeout())
        .unwrap_or(Duration::from_secs(10))
}

/// Connects and checks that the database is an IAM store.
pub async fn open_store(global: &GlobalArgs, access: Access) -> Result<(Target, Store)> {
    let target = target(global)?;
    connect_checked(global, target, access).await
}

/// As [`open_store`], for a command that works on a plan: when no database
/// was given and the plan was made on another one than the demo default,
/// says which and how to pass it, instead of failing on the demo file.
pub async fn open_store_for_plan(
    global: &GlobalArgs,
    access: Access,
    plan_path: &Path,
    source: &crate::plan::Source,
) -> Result<(Target, Store)> {
    let resolved = resolve(global)?;
    if resolved.origin == Origin::Default
        && (source.backend != "sqlite" || source.database != resolved.target.display())
    {
        return Err(Error::usage(format!(
            "no database was given, and {} was made on {} ({}), not on the demo store {}: pass that database with --database-url URL (or DATABASE_URL), or -c FILE for a Kestra configuration",
            plan_path.display(),
            // What the file says is untrusted: no password, no escapes.
            crate::render::clean(&crate::connect::redact(&source.database)),
            crate::render::clean(&source.backend),
            resolved.target.display(),
        )));
    }
    connect_checked(global, resolved.target, access).await
}

async fn connect_checked(
    global: &GlobalArgs,
    target: Target,
    access: Access,
) -> Result<(Target, Store)> {
    tracing::info!(database = %target.display(), "connecting");
    let timeout = connect_timeout(global, &target);
    let mut store = Store::connect(&target, access, timeout).await?;
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
