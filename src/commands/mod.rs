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

/// Who runs the command: the flag, else `$USER`/`$LOGNAME`.
pub fn whoami(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Writes `bytes` to `path` atomically: see [`write_atomically_with`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically: `write` fills a temporary file beside it, which
/// is synced, then renamed over it, so a reader never sees half a plan and a
/// failure leaves the old file as it was.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        // An existing file keeps its permissions.
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
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
