//! One file per subcommand, gluing store, sync, plan and render together.

pub mod apply;
pub mod approve;
pub mod completions;
pub mod demo;
pub mod history;
pub mod keygen;
pub mod man;
pub mod plan;
pub mod show;
pub mod verify;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::cli::ConnectionArgs;
use crate::connect::kestra::{self, Origin, Request};
use crate::connect::Target;
use crate::error::{Error, Result};
use crate::store::{Access, Store};

/// The database named by `-c`, `--database-url`, `DATABASE_URL`,
/// `KESTRA_CONFIGURATION`, Kestra's default config path or the demo
/// default (see [`kestra::resolve`]); a Kestra configuration is named on
/// stderr, with the datasource and the environment variables that
/// overrode it.
pub fn resolve(connection: &ConnectionArgs) -> Result<kestra::Resolved> {
    resolve_request(Request {
        config: connection.config.clone(),
        database_url: connection.database_url.clone(),
        datasource: connection.datasource.clone(),
        explicit_only: false,
    })
}

/// As [`resolve`], for `demo`: only a database named on the command line or
/// in `DATABASE_URL`, else the demo default.
pub fn resolve_explicit(connection: &ConnectionArgs) -> Result<kestra::Resolved> {
    resolve_request(Request {
        config: connection.config.clone(),
        database_url: connection.database_url.clone(),
        datasource: connection.datasource.clone(),
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
        crate::say!(
            "sync-access: database from the Kestra configuration in {}",
            crate::render::clean(how)
        );
    }
    resolved.target.log_ignored();
    Ok(resolved)
}

/// The database the command line and the environment name.
pub fn target(connection: &ConnectionArgs) -> Result<Target> {
    Ok(resolve(connection)?.target)
}

/// `--connect-timeout`, else the URL's, else 10 seconds.
pub fn connect_timeout(connection: &ConnectionArgs, target: &Target) -> Duration {
    connection
        .connect_timeout
        .map(Duration::from_secs)
        .or_else(|| target.connect_timeout())
        .unwrap_or(Duration::from_secs(10))
}

/// Connects and checks that the database is an IAM store.
pub async fn open_store(connection: &ConnectionArgs, access: Access) -> Result<(Target, Store)> {
    let target = target(connection)?;
    connect_checked(connection, target, access).await
}

/// As [`open_store`], for a command that works on a plan: when no database
/// was given and the plan was made on another one than the demo default,
/// says which and how to pass it, instead of failing on the demo file.
pub async fn open_store_for_plan(
    connection: &ConnectionArgs,
    access: Access,
    plan_path: &Path,
    source: &crate::plan::Source,
) -> Result<(Target, Store)> {
    let resolved = resolve(connection)?;
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
    connect_checked(connection, resolved.target, access).await
}

async fn connect_checked(
    connection: &ConnectionArgs,
    target: Target,
    access: Access,
) -> Result<(Target, Store)> {
    tracing::info!(database = %target.display(), "connecting");
    let timeout = connect_timeout(connection, &target);
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

/// Streams a command's output to stdout. A closed stdout (`| head`,
/// `| true`) ends it quietly: the reader wanted no more, which is no error.
pub fn stream_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io_on("stdout", e)),
    }
}

/// Writes to stdout what a command says after its work is done for good
/// (a committed apply): no failure to print may change the exit code or
/// suggest that the work failed, so a failure is said on stderr instead.
pub fn report_done(text: &str) {
    use std::io::ErrorKind;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => {}
        Err(e) => {
            let why = if e.kind() == ErrorKind::BrokenPipe {
                "stdout was closed".to_string()
            } else {
                format!("stdout: {e}")
            };
            say(format_args!(
                "note: done, but this report could not be printed ({why}):\n{text}"
            ));
        }
    }
}

/// Writes to stderr. A closed or broken stderr is not worth a panic, nor an
/// error: what was said there is lost, the command's result is not.
pub fn say(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `say!("...")`: [`say`] with `format!` arguments and a final newline.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::commands::say(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub use crate::progress::{Counter, Progress};
