//! The one error type of the library: a kind (which decides the exit code,
//! docs/exit-codes.md), a one-line message for the operator, and the cause
//! it came from, so that `-v` can walk the chain down to the driver's own
//! words. Commands never decide exit codes by matching strings, and
//! rewording an error never loses its kind or its cause.

use std::fmt;

/// The process's exit codes (docs/exit-codes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    Error = 1,
    ChangesPlanned = 2,
    Conflicts = 3,
    Refused = 4,
    Stale = 5,
    Locked = 6,
    /// SIGINT (Ctrl-C), as shells report it: 128 + 2.
    Interrupted = 130,
    /// SIGTERM: 128 + 15.
    Terminated = 143,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What kind of failure an error is; each kind has one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A flag, an argument, a configuration file: exit 1.
    Usage,
    /// The database could not be reached or the connection was lost: exit 1.
    Connection,
    /// A file or stream could not be read or written: exit 1.
    Io,
    /// The store is not what docs/store.md describes, or it failed: exit 1.
    Store,
    /// The plan has conflicts: exit 3.
    NotApplyable,
    /// Not a valid plan, digest mismatch, not approved, bad signature: exit 4.
    Refused,
    /// The database changed, or it is another database: exit 5.
    Stale,
    /// Another apply holds the lock: exit 6.
    Locked,
    /// A signal ended the command (Ctrl-C: 130, SIGTERM: 143).
    Interrupted { terminated: bool },
}

impl ErrorKind {
    pub fn exit_status(self) -> ExitStatus {
        match self {
            ErrorKind::Usage | ErrorKind::Connection | ErrorKind::Io | ErrorKind::Store => {
                ExitStatus::Error
            }
            ErrorKind::NotApplyable => ExitStatus::Conflicts,
            ErrorKind::Refused => ExitStatus::Refused,
            ErrorKind::Stale => ExitStatus::Stale,
            ErrorKind::Locked => ExitStatus::Locked,
            ErrorKind::Interrupted { terminated: false } => ExitStatus::Interrupted,
            ErrorKind::Interrupted { terminated: true } => ExitStatus::Terminated,
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Usage, message.to_string())
    }

    pub fn connection(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Connection, message.to_string())
    }

    pub fn store(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Store, message.to_string())
    }

    pub fn not_applyable(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::NotApplyable, message.to_string())
    }

    pub fn refused(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Refused, message.to_string())
    }

    pub fn stale(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Stale, message.to_string())
    }

    pub fn locked(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Locked, message.to_string())
    }

    /// An I/O failure on `path`, naming it; the OS error is kept as the cause.
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{}: {err}", path.display())).with_source(err)
    }

    /// An I/O failure on something that is not a file (stdout, a pipe).
    pub fn io_on(what: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{what}: {err}")).with_source(err)
    }

    /// Keeps `source` as the cause, shown by [`Error::causes`].
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with where it happened (`plan.json: ...`);
    /// the kind and the cause are kept.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Rewrites the message; the kind and the cause are kept.
    pub fn reworded(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn exit_status(&self) -> ExitStatus {
        self.kind.exit_status()
    }

    /// The cause chain, outermost first, each as its own message. What
    /// these say may come from a driver or a server: print it only through
    /// the escaping function, as every other untrusted text.
    pub fn causes(&self) -> impl Iterator<Item = String> + '_ {
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        std::iter::from_fn(move || {
            let current = next?;
            next = current.source();
            Some(current.to_string())
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Context for results: `store.read().await.context("reading roles")?`.
pub trait Context<T> {
    /// Prefixes the error's message with `what`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// Prefixes the error's message with what `what` returns, computed
    /// only on failure.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(what))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.context(what()))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_and_rewording_keep_the_kind_and_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = Error::io(std::path::Path::new("plan.json"), io)
            .context("reading the plan")
            .reworded(|m| format!("{m}; nothing was written"));
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(err.exit_status(), ExitStatus::Error);
        assert_eq!(
            err.to_string(),
            "reading the plan: plan.json: gone; nothing was written"
        );
        assert_eq!(err.causes().collect::<Vec<_>>(), vec!["gone".to_string()]);
    }

    #[test]
    fn each_kind_has_its_exit_code() {
        let codes: Vec<u8> = [
            ErrorKind::Usage,
            ErrorKind::Connection,
            ErrorKind::Io,
            ErrorKind::Store,
            ErrorKind::NotApplyable,
            ErrorKind::Refused,
            ErrorKind::Stale,
            ErrorKind::Locked,
            ErrorKind::Interrupted { terminated: false },
            ErrorKind::Interrupted { terminated: true },
        ]
        .iter()
        .map(|k| k.exit_status().code())
        .collect();
        assert_eq!(codes, vec![1, 1, 1, 1, 3, 4, 5, 6, 130, 143]);
    }
}
