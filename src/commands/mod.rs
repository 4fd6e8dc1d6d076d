//! One file per subcommand, gluing store, sync, plan and render together.

pub mod apply;
pub mod approve;
pub mod completions;
pub mod demo;
pub mod history;
pub mod keygen;
pub mod man;
pub mod plan;
pub mod revert;
pub mod show;
pub mod verify;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::cli::ConnectionArgs;
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

/// Streams a command's output to stdout. A closed stdout (`| head`,
/// `| true`) ends it quietly: the reader wanted no more, which is no error.
pub fn stream_stdout(
    write: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>,
) -> Result<()> {
    // Not locked: a lock stays with its thread, and `plan` writes from a
    // thread of its own (Spooled::seal_and_write).
    let mut out = std::io::stdout();
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
