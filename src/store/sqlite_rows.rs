//! Reading a query's rows on our own thread, through SQLite's C API (issue
//! 15). sqlx runs SQLite on a thread of its own and hands every row over a
//! channel: reading a million bindings twice spent a third of `plan`'s time
//! waking one thread for the other's every row. sqlx lends the connection's
//! handle for this ([`SqliteConnection::lock_handle`]); the statement is
//! prepared, stepped and finalized here while its worker waits, inside
//! whatever transaction the connection has open.
//!
//! The same C API turns SQLite's memory statistics off before the first
//! connection ([`without_memory_statistics`]).
//!
//! The only unsafe code of the tool. Every call follows SQLite's contract:
//! the handle is valid and ours while the lock is held; the statement is
//! finalized on every path; a column's bytes are copied before the next
//! step invalidates them.

use std::ffi::{c_int, CStr};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

use crate::sync::RawDoc;

/// Turns off SQLite's memory statistics for the process, once, before its
/// first connection (issue 15): with them on (the bundled library's
/// default), every allocation SQLite makes takes a global mutex and asks
/// the allocator for the block's size, to keep counts the tool never reads
/// (`sqlite3_memory_used`, a soft heap limit). Once SQLite is initialised
/// (a connection was opened earlier in the process), the call is refused
/// and changes nothing.
pub(super) fn without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; SQLite checks that
        // it is not initialised yet (SQLITE_MISUSE then, and nothing
        // changes), and nothing else of the tool calls it meanwhile (this
        // runs once, before the tool's first connection).
        let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        tracing::debug!(code, "SQLite's memory statistics turned off");
    });
}

/// The `(key, value)` rows `sql` selects, `binds` bound as text in order,
/// each given to `visit` as bytes ([`RawDoc::from_bytes`]).
pub(super) async fn visit(
    conn: &mut SqliteConnection,
    sql: &str,
    binds: &[&str],
    visit: &mut dyn FnMut(RawDoc),
) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    let statement = Statement::prepare(db, sql)?;
    for (i, value) in binds.iter().enumerate() {
        statement.bind_text(i + 1, value)?;
    }
    while statement.step()? {
        crate::progress::rows_read(1);
        visit(RawDoc::from_bytes(
            statement.column(0)?,
            statement.column(1)?,
        ));
    }
    Ok(())
}

/// A prepared statement, finalized when dropped.
struct Statement {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement {
    fn prepare(db: NonNull<ffi::sqlite3>, sql: &str) -> Result<Statement, sqlx::Error> {
        let len = c_int::try_from(sql.len()).map_err(|_| protocol("a query over 2 GiB"))?;
        let mut raw = ptr::null_mut();
        // SAFETY: `db` is the open connection sqlx lent us; `sql` is valid
        // for `len` bytes (SQLite copies what it needs); `raw` receives the
        // statement or null.
        let code = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut raw,
                ptr::null_mut(),
            )
        };
        match NonNull::new(raw) {
            Some(raw) if code == ffi::SQLITE_OK => Ok(Statement { db, raw }),
            Some(raw) => {
                let error = error(db, code);
                // SAFETY: a statement SQLite made and nobody else holds.
                unsafe { ffi::sqlite3_finalize(raw.as_ptr()) };
                Err(error)
            }
            None => Err(error(db, code)),
        }
    }

    /// Binds parameter `index` (from 1) to a copy of `value`.
    fn bind_text(&self, index: usize, value: &str) -> Result<(), sqlx::Error> {
        let index = c_int::try_from(index).map_err(|_| protocol("too many parameters"))?;
        let len = c_int::try_from(value.len()).map_err(|_| protocol("a parameter over 2 GiB"))?;
        // SAFETY: the statement is live; SQLITE_TRANSIENT makes SQLite copy
        // `value` before this returns.
        let code = unsafe {
            ffi::sqlite3_bind_text(
                self.raw.as_ptr(),
                index,
                value.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        self.check(code)
    }

    /// The next row: `true` when there is one.
    fn step(&self) -> Result<bool, sqlx::Error> {
        // SAFETY: the statement is live and used by this thread only.
        match unsafe { ffi::sqlite3_step(self.raw.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            code => Err(error(self.db, code)),
        }
    }

    /// Column `index` of the current row, as the bytes SQLite holds (a
    /// TEXT that is not UTF-8 included); NULL is refused, as sqlx refuses
    /// to read it as bytes.
    fn column(&self, index: c_int) -> Result<Vec<u8>, sqlx::Error> {
        // SAFETY: the statement is on a row (`step` said so) and `index` is
        // one of its two columns. `sqlite3_column_blob` then
        // `sqlite3_column_bytes` is the order SQLite documents; the bytes
        // are valid until the next step and are copied now.
        unsafe {
            let stmt = self.raw.as_ptr();
            if ffi::sqlite3_column_type(stmt, index) == ffi::SQLITE_NULL {
                return Err(protocol(&format!("column {index} is NULL")));
            }
            let data = ffi::sqlite3_column_blob(stmt, index);
            let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, index)).unwrap_or(0);
            if data.is_null() || len == 0 {
                return Ok(Vec::new());
            }
            Ok(std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec())
        }
    }

    fn check(&self, code: c_int) -> Result<(), sqlx::Error> {
        if code == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(self.db, code))
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once, here.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// SQLite's message for `code` on `db`.
fn error(db: NonNull<ffi::sqlite3>, code: c_int) -> sqlx::Error {
    // SAFETY: `db` is open; `sqlite3_errmsg` returns a NUL-terminated
    // string SQLite owns, copied at once.
    let message = unsafe {
        let text = ffi::sqlite3_errmsg(db.as_ptr());
        if text.is_null() {
            String::new()
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    };
    protocol(&format!("{message} (SQLite code {code})"))
}

fn protocol(message: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("reading rows: {message}"))
}
