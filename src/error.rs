//! The one error type of the library. Every error knows the exit code it maps
//! to (SPEC §6), so commands never decide exit codes by matching strings.

use std::fmt;

/// Exit codes of SPEC §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    Error = 1,
    ChangesPlanned = 2,
    Conflicts = 3,
    Refused = 4,
    Stale = 5,
    Locked = 6,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Usage, configuration, connection, I/O: exit 1.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Connection(String),
    #[error("{0}")]
    Io(String),
    /// The store is not what SPEC §2 describes (a table is missing, say).
    #[error("{0}")]
    Store(String),
    /// The plan cannot be applied because it has conflicts: exit 3.
    #[error("{0}")]
    NotApplyable(String),
    /// Not a valid plan, digest mismatch, no matching approval: exit 4.
    #[error("{0}")]
    Refused(String),
    /// The database changed, or is another database: exit 5.
    #[error("{0}")]
    Stale(String),
    /// Another apply holds the lock: exit 6.
    #[error("{0}")]
    Locked(String),
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) | Error::Connection(_) | Error::Io(_) | Error::Store(_) => {
                ExitStatus::Error
            }
            Error::NotApplyable(_) => ExitStatus::Conflicts,
            Error::Refused(_) => ExitStatus::Refused,
            Error::Stale(_) => ExitStatus::Stale,
            Error::Locked(_) => ExitStatus::Locked,
        }
    }

    pub fn usage(msg: impl fmt::Display) -> Self {
        Error::Usage(msg.to_string())
    }

    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        Error::Io(format!("{}: {err}", path.display()))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
