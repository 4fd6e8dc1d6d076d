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

use crate::cli::{ConnectionArgs, DEFAULT_DATABASE_URL};
use crate::connect::{self, Target};
use crate::error::{Error, Result};
use crate::store::{Access, Store};

/// The database named by `-c`, `--database-url`/`DATABASE_URL`, or the demo
/// default, in that order of precedence.
pub fn target(connection: &ConnectionArgs) -> Result<Target> {
    match (&connection.config, &connection.database_url) {
        (Some(config), _) => connect::from_kestra_config(config, connection.datasource.as_deref()),
        (None, Some(url)) => Target::parse(url),
        (None, None) => Target::parse(DEFAULT_DATABASE_URL),
    }
}

/// Connects and checks that the database is an IAM store.
pub async fn open_store(connection: &ConnectionArgs, access: Access) -> Result<(Target, Store)> {
    let target = target(connection)?;
    tracing::info!(database = %target.display(), "connecting");
    let mut store = Store::connect(
        &target,
        access,
        Duration::from_secs(connection.connect_timeout),
    )
    .await?;
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
