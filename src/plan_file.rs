//! Writing plan files so that nothing is lost and nothing is followed.
//!
//! - The new content goes to a temporary file with an unpredictable name,
//!   created exclusively (O_EXCL, never through a planted link) beside the
//!   target, synced, then renamed over it: a reader sees the old file or the
//!   new one, never half of one.
//! - `approve`'s read-modify-write runs under an exclusive lock (flock) of
//!   the plan file and re-reads it under that lock, so concurrent approvals
//!   all land.
//! - A plan path that is a symbolic link is written through to its target,
//!   and the caller is told so; the link stays a link.
//! - A read-only plan file is not replaced without `force`; an existing
//!   file keeps its permissions.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long `approve` waits for another writer of the same plan file.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a write went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The symbolic link's target, when the path given was a link.
    pub through_link: Option<PathBuf>,
}

impl Written {
    /// The sentence to print when a link was followed.
    pub fn note(&self, path: &Path) -> Option<String> {
        self.through_link.as_ref().map(|target| {
            format!(
                "{} is a symbolic link: wrote its target {}",
                path.display(),
                target.display()
            )
        })
    }
}

/// The file to write: `path`, or the target of the link `path` is.
fn resolve(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::canonicalize(path).map_err(|e| {
                Error::io(path, e).reworded(|m| {
                    format!(
                        "{m} (a symbolic link whose target cannot be reached; not following it)"
                    )
                })
            })?;
            Ok((target.clone(), Some(target)))
        }
        Ok(_) => Ok((path.to_path_buf(), None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path.to_path_buf(), None)),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Refuses what must not be replaced: not a regular file, or read-only
/// without `force`.
fn check_replaceable(path: &Path, shown: &Path, force: bool) -> Result<Option<std::fs::Metadata>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(shown, e)),
    };
    if !meta.is_file() {
        return Err(Error::usage(format!(
            "{}: not a regular file; not replacing it",
            shown.display()
        )));
    }
    if meta.permissions().readonly() && !force {
        return Err(Error::usage(format!(
            "{}: the file is read-only; not replacing it (pass --force to replace it, keeping it read-only)",
            shown.display()
        )));
    }
    Ok(Some(meta))
}

/// Writes a new plan file at `path` (`plan -o`).
pub fn write(
    path: &Path,
    force: bool,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<Written> {
    let (real, through_link) = resolve(path)?;
    // An approve of the same file finishes first: nothing of it is lost
    // halfway through, and what it wrote is then replaced as asked.
    let _lock = lock(&real, path)?;
    let meta = check_replaceable(&real, path, force)?;
    replace(&real, path, meta.as_ref(), fill)?;
    Ok(Written { through_link })
}

/// One change to a file's bytes: `replace` (a range of them) by `with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub replace: std::ops::Range<usize>,
    pub with: Vec<u8>,
}

/// A copy of a plan file's bytes written beside it before the lock is
/// taken (while the plan is checked, on another core: writing 360 MiB is
/// most of what is left of an approval once reading is parallel, issue
/// 15). [`update`] finishes it, instead of writing every byte again, when
/// the file under the lock still holds exactly those bytes; otherwise it
/// is removed and the file written as before.
pub struct Draft {
    temp: tempfile::NamedTempFile,
    /// The file it was written for (a link's target).
    real: PathBuf,
    len: usize,
}

impl Draft {
    /// Writes `bytes`, the content of the plan file at `path`, to a new
    /// temporary file beside it; `None` when that fails, or when `cancel`
    /// is set meanwhile (the plan was refused). No error: [`update`] then
    /// writes the file as it would have without it.
    pub fn write(path: &Path, bytes: &[u8], cancel: &AtomicBool) -> Option<Draft> {
        let (real, _) = resolve(path).ok()?;
        let mut temp = new_temp(&real, path, false).ok()?;
        for piece in bytes.chunks(1 << 20) {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            temp.write_all(piece).ok()?;
        }
        Some(Draft {
            temp,
            real,
            len: bytes.len(),
        })
    }

    /// Copies the plan file at `path` to a new temporary file beside it,
    /// in the kernel (its bytes never pass through this process), and
    /// writes the copy to the disk: `approve` does it while it checks the
    /// plan from the file, so that under the lock only what the copy must
    /// still hold is told ([`update_checked`]). `None` when that fails,
    /// or when `cancel` is set meanwhile (the plan was refused).
    pub fn copy(path: &Path, cancel: &AtomicBool) -> Option<Draft> {
        let (real, _) = resolve(path).ok()?;
        let mut from = File::open(&real).ok()?;
        let mut temp = new_temp(&real, path, false).ok()?;
        let mut len = 0u64;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            // A step at a time, to hear `cancel`; std's copy of one file
            // to another is copy_file_range(2) on Linux.
            let step = std::io::copy(&mut (&mut from).take(64 << 20), temp.as_file_mut()).ok()?;
            if step == 0 {
                break;
            }
            len += step;
        }
        temp.as_file().sync_data().ok()?;
        Some(Draft {
            temp,
            real,
            len: usize::try_from(len).ok()?,
        })
    }

    /// The new file: the draft cut where the edit starts, the edit and the
    /// bytes after it; then synced and renamed over `real`, as `replace`
    /// does.
    fn finish(
        self,
        shown: &Path,
        meta: &std::fs::Metadata,
        bytes: &[u8],
        edit: Edit,
    ) -> Result<()> {
        let tail = &bytes[edit.replace.end..];
        self.finish_with(shown, meta, &edit, tail)
    }

    /// [`Draft::finish`] with `tail`, the bytes after the edit.
    fn finish_with(
        mut self,
        shown: &Path,
        meta: &std::fs::Metadata,
        edit: &Edit,
        tail: &[u8],
    ) -> Result<()> {
        let written = (|| {
            let file = self.temp.as_file_mut();
            file.set_len(edit.replace.start as u64)?;
            file.seek(SeekFrom::Start(edit.replace.start as u64))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
            out.write_all(&edit.with)?;
            out.write_all(tail)?;
            out.flush()?;
            drop(out);
            // The replaced file's permissions, exactly (no umask).
            file.set_permissions(meta.permissions())?;
            file.sync_all()
        })();
        written.map_err(|e| Error::io(shown, e))?;
        persist(self.temp, &self.real, shown)
    }
}

/// Rewrites the plan file at `path` under an exclusive lock: `edit` gets
/// the bytes read under the lock and returns how they change, or `None` to
/// leave the file as it is. The new file is written from the old bytes and
/// the edit, never a second copy of a plan of hundreds of megabytes.
///
/// `bytes` holds what the caller read of the file before (or nothing): the
/// file is read again into it, and `edit` is told whether that gave the
/// same bytes, so that a plan read and checked before the lock is not
/// checked again, without a second buffer or a hash of it.
///
/// `draft`, written from those same bytes before, is finished instead of
/// writing them again when the file still holds them.
pub fn update(
    path: &Path,
    force: bool,
    bytes: &mut Vec<u8>,
    draft: Option<Draft>,
    edit: impl FnOnce(&[u8], bool) -> Result<Option<Edit>>,
) -> Result<Option<Written>> {
    let (real, through_link) = resolve(path)?;
    let Some(mut locked) = lock(&real, path)? else {
        return Err(Error::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    let meta = check_replaceable(&real, path, force)?;
    // The plan's size limit holds here too: the file may have grown since
    // it was first read (never more than the limit and a byte are read).
    let limit = crate::plan::max_plan_bytes();
    let unchanged = reread(&mut Read::take(&mut locked, limit.saturating_add(1)), bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::refused(format!(
            "{}: not a valid plan: over the limit of {limit} bytes; nothing written",
            path.display()
        )));
    }
    let bytes = &bytes[..];
    let Some(Edit {
        replace: range,
        with,
    }) = edit(bytes, unchanged)?
    else {
        return Ok(None);
    };
    if range.start > range.end || range.end > bytes.len() {
        return Err(Error::usage(format!(
            "{}: an edit outside the file; nothing written",
            path.display()
        )));
    }
    let draft = draft.filter(|draft| unchanged && draft.real == real && draft.len == bytes.len());
    if let (Some(draft), Some(meta)) = (draft, &meta) {
        let edit = Edit {
            replace: range,
            with,
        };
        draft.finish(path, meta, bytes, edit)?;
        drop(locked);
        return Ok(Some(Written { through_link }));
    }
    replace(&real, path, meta.as_ref(), |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(&bytes[..range.start])?;
        out.write_all(&with)?;
        out.write_all(&bytes[range.end..])?;
        out.flush()
    })?;
    drop(locked);
    Ok(Some(Written { through_link }))
}

/// What a plan file held when it was checked: its length and the BLAKE3
/// hash of its bytes. [`update_checked`] rewrites a file only if it still holds
/// exactly these bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub len: u64,
    pub blake3: [u8; 32],
}

/// Rewrites the plan file at `path` under an exclusive lock, as [`update`]
/// does, without ever holding its bytes (issue 15: `approve` of a plan of
/// a million changes): the file is copied beside itself, edited on the
/// way, and every byte read is hashed; the copy replaces the file only if
/// those bytes were exactly the ones checked.
///
/// `decide` says what was checked and how it changes (`None`: leave the
/// file as it is). It is first asked with no file: what it checked
/// before the lock. If the file under the lock holds something else
/// (another approval landed meanwhile), it is asked again with the locked
/// file, to check it there; what it checks then is what is copied, or
/// nothing is written.
///
/// `draft`, a copy of the file made before ([`Draft::copy`]), is finished
/// instead of copying the file again when both still hold the bytes
/// checked (each is read and hashed, the two at once).
pub fn update_checked(
    path: &Path,
    force: bool,
    mut draft: Option<Draft>,
    mut decide: impl FnMut(Option<&File>) -> Result<(Seen, Option<Edit>)>,
) -> Result<Option<Written>> {
    let (real, through_link) = resolve(path)?;
    let Some(locked) = lock(&real, path)? else {
        return Err(Error::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    let meta = check_replaceable(&real, path, force)?;
    let io = |e| Error::io(path, e);
    for under_lock in [false, true] {
        let (seen, edit) = decide(under_lock.then_some(&locked))?;
        let same_length = locked.metadata().map_err(io)?.len() == seen.len;
        let Some(edit) = edit else {
            if same_length && copy_edited(&locked, &mut std::io::sink(), None, &seen).map_err(io)? {
                return Ok(None);
            }
            continue;
        };
        if edit.replace.start > edit.replace.end || edit.replace.end as u64 > seen.len {
            return Err(Error::usage(format!(
                "{}: an edit outside the file; nothing written",
                path.display()
            )));
        }
        if !same_length {
            continue;
        }
        let draft = draft
            .take()
            .filter(|draft| draft.real == real && draft.len as u64 == seen.len);
        if let (Some(draft), Some(meta)) = (draft, &meta) {
            if let Some(tail) =
                both_hold(&locked, draft.temp.as_file(), &seen, edit.replace.end).map_err(io)?
            {
                draft.finish_with(path, meta, &edit, &tail)?;
                drop(locked);
                return Ok(Some(Written { through_link }));
            }
            // Not the bytes checked (or a long tail): removed, and the
            // file copied as if there were none.
        }
        let mut temp = new_temp(&real, path, meta.is_none())?;
        let copied = (|| {
            if let Some(meta) = &meta {
                // The replaced file's permissions, exactly (no umask).
                temp.as_file().set_permissions(meta.permissions())?;
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
            let same = copy_edited(&locked, &mut out, Some(&edit), &seen)?;
            out.flush()?;
            drop(out);
            if same {
                temp.as_file().sync_all()?;
            }
            Ok(same)
        })();
        // A copy of other bytes is removed when `temp` is dropped.
        if copied.map_err(io)? {
            persist(temp, &real, path)?;
            drop(locked);
            return Ok(Some(Written { through_link }));
        }
    }
    Err(Error::refused(format!(
        "{}: the file changed while it was being approved, under its lock (something writes it without taking the lock); nothing written",
        path.display()
    )))
}

/// Whether `file` and `draft` both hold exactly the bytes `seen` says,
/// each read and hashed at once ([`copy_edited`] of each, unedited): then
/// the bytes of `file` from `from` on, as they were hashed (what follows
/// an edit: a few bytes as the tool lays a plan out). `None` when either
/// holds other bytes, or the bytes from `from` are more than a draft is
/// finished with.
fn both_hold(
    file: &File,
    draft: &File,
    seen: &Seen,
    from: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    /// What follows the approvals in a plan is its closing brace.
    const MAX_TAIL: usize = 1 << 20;
    if seen.len - (from as u64) > MAX_TAIL as u64 {
        return Ok(None);
    }
    std::thread::scope(|scope| {
        let other = scope.spawn(|| copy_edited(draft, &mut std::io::sink(), None, seen));
        let mut tail = Tail {
            at: 0,
            from,
            kept: Vec::new(),
        };
        let mine = copy_edited(file, &mut tail, None, seen);
        let other = other
            .join()
            .map_err(|_| std::io::Error::other("the hasher failed"))?;
        Ok((mine? && other?).then_some(tail.kept))
    })
}

/// A writer that keeps what it is given from byte `from` on.
struct Tail {
    at: usize,
    from: usize,
    kept: Vec<u8>,
}

impl Write for Tail {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let end = self.at + bytes.len();
        if end > self.from {
            self.kept
                .extend_from_slice(&bytes[self.from.saturating_sub(self.at)..]);
        }
        self.at = end;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copies `file` from its start to `out`, with `edit` made on the way, and
/// hashes every byte read (on a thread of its own, while the next bytes
/// are read and written): true when they were exactly `seen`'s. A file
/// longer than `seen` is not read past it.
fn copy_edited(
    file: &File,
    out: &mut impl Write,
    edit: Option<&Edit>,
    seen: &Seen,
) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 1 << 20;
    let (start, end, with) = match edit {
        Some(edit) => (edit.replace.start, edit.replace.end, &edit.with[..]),
        None => (usize::MAX, usize::MAX, &[][..]),
    };
    std::thread::scope(|scope| {
        let (to_hash, blocks) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let hasher = scope.spawn(move || {
            let mut raw = blake3::Hasher::new();
            for block in blocks {
                raw.update(&block);
            }
            *raw.finalize().as_bytes()
        });
        let mut at = 0usize;
        let mut wrote_with = false;
        let copied = loop {
            let mut block = vec![0u8; BLOCK];
            let n = match file.read_at(&mut block, at as u64) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            if n == 0 {
                break Ok(at as u64 == seen.len);
            }
            if (at + n) as u64 > seen.len {
                break Ok(false);
            }
            block.truncate(n);
            let block_end = at + n;
            let written = (|| {
                if at < start {
                    out.write_all(&block[..block_end.min(start) - at])?;
                }
                if !wrote_with && start < block_end {
                    out.write_all(with)?;
                    wrote_with = true;
                }
                let after = at.max(end);
                if after < block_end {
                    out.write_all(&block[after - at..])?;
                }
                Ok(())
            })();
            if let Err(e) = written {
                break Err(e);
            }
            at = block_end;
            if to_hash.send(block).is_err() {
                break Ok(false);
            }
        };
        let copied = copied.and_then(|same| {
            // An edit at the very end.
            if same && !wrote_with && edit.is_some() {
                out.write_all(with)?;
            }
            Ok(same)
        });
        drop(to_hash);
        let hash = hasher
            .join()
            .map_err(|_| std::io::Error::other("the hasher failed"))?;
        Ok(copied? && hash == seen.blake3)
    })
}

/// Reads `file` into `bytes`, which holds an earlier read of it: true when
/// the file still holds exactly those bytes. Equal chunks are compared in
/// place, not copied.
fn reread(file: &mut impl Read, bytes: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = vec![0; 1 << 20];
    let mut at = 0;
    let mut same = true;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if same && bytes.get(at..at + n) == Some(&chunk[..n]) {
            at += n;
            continue;
        }
        if same {
            same = false;
            bytes.truncate(at);
        }
        bytes.extend_from_slice(&chunk[..n]);
        at += n;
    }
    if same && at != bytes.len() {
        same = false;
        bytes.truncate(at);
    }
    Ok(same)
}

/// An exclusive lock of the file now at `real` (`None` when there is
/// none). The file locked may have been replaced while this waited (the
/// previous writer renamed a new file over it): then the new one is locked.
fn lock(real: &Path, shown: &Path) -> Result<Option<File>> {
    let started = Instant::now();
    loop {
        let file = match File::open(real) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(shown, e)),
        };
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                    if started.elapsed() > LOCK_TIMEOUT {
                        return Err(Error::locked(format!(
                            "{}: another sync-access process has been writing this plan file for {}s; nothing written",
                            shown.display(),
                            LOCK_TIMEOUT.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(shown, e.into())),
            }
        }
        if same_file(&file, real) {
            return Ok(Some(file));
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> bool {
    true
}

/// A new temporary file beside `real`, with an unpredictable name, created
/// exclusively; readable as a new file would be when `fresh`, else only by
/// its owner until it gets the replaced file's permissions.
fn new_temp(real: &Path, shown: &Path, fresh: bool) -> Result<tempfile::NamedTempFile> {
    let dir = match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = real
        .file_name()
        .ok_or_else(|| Error::usage(format!("{}: not a file path", shown.display())))?;
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    if fresh {
        use std::os::unix::fs::PermissionsExt;
        // As `File::create` would: 0666 less the umask.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir).map_err(|e| Error::io(shown, e))
}

/// Fills a new temporary file beside `real` and renames it over `real`.
fn replace(
    real: &Path,
    shown: &Path,
    existing: Option<&std::fs::Metadata>,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let mut temp = new_temp(real, shown, existing.is_none())?;
    let written = (|| {
        if let Some(meta) = existing {
            // The replaced file's permissions, exactly (no umask).
            temp.as_file().set_permissions(meta.permissions())?;
        }
        let flushing = temp.as_file().try_clone()?;
        flushed_while_filled(&flushing, || fill(temp.as_file_mut()))?;
        temp.as_file().sync_all()
    })();
    // On failure the temporary file is removed when `temp` is dropped.
    written.map_err(|e| Error::io(shown, e))?;
    persist(temp, real, shown)
}

/// How often what was written so far is sent to the disk while a file is
/// filled.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `fill`, which writes `file`, while another thread sends what it
/// has written so far to the disk every [`FLUSH_EVERY`]: the sync that
/// follows then waits for the last of it only. Syncing a plan of 362 MiB
/// once it was all written took a quarter of a second on this machine
/// (issue 15). A failed flush is not an error: the final sync tells.
fn flushed_while_filled<T>(
    file: &File,
    fill: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let (done, stop) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let flusher = std::thread::Builder::new()
            .name("flush".into())
            .spawn_scoped(scope, move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop.recv_timeout(FLUSH_EVERY)
                {
                    let _ = file.sync_data();
                }
            });
        let filled = fill();
        drop(done);
        if let Ok(flusher) = flusher {
            let _ = flusher.join();
        }
        filled
    })
}

/// Renames the filled and synced `temp` over `real`, durably.
fn persist(temp: tempfile::NamedTempFile, real: &Path, shown: &Path) -> Result<()> {
    let dir = match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    temp.persist(real).map_err(|e| Error::io(shown, e.error))?;
    // The rename itself is durable once the directory is synced.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut bytes = b"stale".to_vec();
        let written = update(&link, false, &mut bytes, None, |old, unchanged| {
            assert_eq!(old, b"old");
            assert!(!unchanged);
            Ok(Some(Edit {
                replace: 0..old.len(),
                with: b"new".to_vec(),
            }))
        })
        .unwrap()
        .unwrap();
        assert!(written.note(&link).unwrap().contains("symbolic link"));
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file is left behind");
    }

    #[test]
    fn a_draft_is_finished_only_when_the_file_still_holds_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let edit = |old: &[u8]| Edit {
            replace: old.len() - 1..old.len() - 1,
            with: b"NEW".to_vec(),
        };
        for changed in [false, true] {
            std::fs::write(&path, "{ old }").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            let draft = Draft::write(&path, &bytes, &AtomicBool::new(false)).unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
            if changed {
                // The same size: only the bytes tell.
                std::fs::write(&path, "{ odd }").unwrap();
            }
            update(&path, false, &mut bytes, Some(draft), |old, unchanged| {
                assert_eq!(unchanged, !changed);
                Ok(Some(edit(old)))
            })
            .unwrap()
            .unwrap();
            let expected = if changed { "{ odd NEW}" } else { "{ old NEW}" };
            assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        // Cancelled, or not needed: nothing is left behind.
        let cancelled = AtomicBool::new(true);
        assert!(Draft::write(&path, b"{ old }", &cancelled).is_none());
        drop(Draft::write(&path, b"{ old }", &AtomicBool::new(false)));
        let mut bytes = std::fs::read(&path).unwrap();
        let draft = Draft::write(&path, &bytes, &AtomicBool::new(false));
        assert!(update(&path, false, &mut bytes, draft, |_, _| Ok(None))
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn seen(bytes: &[u8]) -> Seen {
        Seen {
            len: bytes.len() as u64,
            blake3: *blake3::hash(bytes).as_bytes(),
        }
    }

    /// The copy under the lock makes the edit wherever it falls among the
    /// blocks read (at the start, across a block's end, at the very end),
    /// keeps the file's permissions, and leaves no temporary file.
    #[test]
    fn a_checked_file_is_copied_with_its_edit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let old: Vec<u8> = (0..(5usize << 19) + 7).map(|i| (i % 251) as u8).collect();
        let block = 1usize << 20;
        for (range, with_draft) in [
            0..0,
            0..3,
            block - 2..block + 5,
            block..block,
            2 * block - 1..2 * block + 1,
            old.len() - 1..old.len(),
            old.len()..old.len(),
            // What follows the edit is less than a block, across one's end.
            old.len() - block + 2..old.len() - block + 3,
        ]
        .into_iter()
        .flat_map(|range| [(range.clone(), false), (range, true)])
        {
            std::fs::write(&path, &old).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            let edit = Edit {
                replace: range.clone(),
                with: b"NEW".to_vec(),
            };
            // With a draft copied beside it (finished when the edit is
            // near the end), and without.
            let draft = with_draft.then(|| Draft::copy(&path, &AtomicBool::new(false)).unwrap());
            let mut asked = 0;
            let written = update_checked(&path, false, draft, |locked| {
                asked += 1;
                assert!(locked.is_none(), "the file held what was checked");
                Ok((seen(&old), Some(edit.clone())))
            })
            .unwrap();
            assert!(written.is_some());
            assert_eq!(asked, 1);
            let mut expected = old[..range.start].to_vec();
            expected.extend_from_slice(b"NEW");
            expected.extend_from_slice(&old[range.end..]);
            assert!(std::fs::read(&path).unwrap() == expected, "{range:?}");
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        // Nothing to change, and the file as checked: it is not written.
        std::fs::write(&path, &old).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let written = update_checked(&path, false, None, |_| Ok((seen(&old), None))).unwrap();
        assert!(written.is_none());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
    }

    /// A draft is finished only when it and the file both hold the bytes
    /// checked; else it is removed and the file copied (or checked again).
    #[test]
    fn a_copied_draft_is_finished_only_when_both_hold_the_bytes_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let edit = Edit {
            replace: 6..6,
            with: b"NEW".to_vec(),
        };
        // The draft tampered with, the file tampered with, neither.
        for tamper in ["draft", "file", "neither"] {
            std::fs::write(&path, "{ old }").unwrap();
            let draft = Draft::copy(&path, &AtomicBool::new(false)).unwrap();
            assert_eq!(std::fs::read(draft.temp.path()).unwrap(), b"{ old }");
            match tamper {
                "draft" => std::fs::write(draft.temp.path(), "{ odd }").unwrap(),
                "file" => std::fs::write(&path, "{ odd }").unwrap(),
                _ => {}
            }
            let mut asked = Vec::new();
            let written = update_checked(&path, false, Some(draft), |locked| {
                asked.push(locked.is_some());
                Ok((
                    seen(if locked.is_some() {
                        b"{ odd }"
                    } else {
                        b"{ old }"
                    }),
                    Some(edit.clone()),
                ))
            });
            written.unwrap().unwrap();
            let expected = match tamper {
                "file" => "{ odd NEW}",
                _ => "{ old NEW}",
            };
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                expected,
                "{tamper}"
            );
            assert_eq!(
                asked.len(),
                if tamper == "file" { 2 } else { 1 },
                "{tamper}"
            );
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                1,
                "{tamper}"
            );
        }
        // Cancelled: nothing is left behind.
        assert!(Draft::copy(&path, &AtomicBool::new(true)).is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A file that holds other bytes than were checked (the same length:
    /// only the bytes tell) is checked again under the lock, and what that
    /// check says is written; a file that is not what either check read is
    /// never written.
    #[test]
    fn a_file_changed_since_it_was_checked_is_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let edit = Edit {
            replace: 1..1,
            with: b"NEW".to_vec(),
        };
        for shorter in [false, true] {
            std::fs::write(&path, if shorter { "{odd}" } else { "{ odd }" }).unwrap();
            let mut asked = Vec::new();
            update_checked(&path, false, None, |locked| {
                asked.push(locked.is_some());
                let now = match locked {
                    None => seen(b"{ old }"),
                    Some(mut file) => {
                        let mut bytes = Vec::new();
                        file.read_to_end(&mut bytes).unwrap();
                        seen(&bytes)
                    }
                };
                Ok((now, Some(edit.clone())))
            })
            .unwrap()
            .unwrap();
            assert_eq!(asked, [false, true]);
            let expected = if shorter { "{NEWodd}" } else { "{NEW odd }" };
            assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        // Both checks read something else than the file holds: refused,
        // the file as it was, no temporary file left.
        for edit in [Some(edit.clone()), None] {
            std::fs::write(&path, "{ odd }").unwrap();
            let refused =
                update_checked(&path, false, None, |_| Ok((seen(b"{ old }"), edit.clone())))
                    .unwrap_err();
            assert!(refused.to_string().contains("changed while"), "{refused}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ odd }");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        // A longer file than was checked is not taken for it either; an
        // edit outside what was checked is refused.
        for (content, replace) in [("{ old }!", 1..1), ("{ old }", 3..99)] {
            std::fs::write(&path, content).unwrap();
            let edit = Edit {
                replace,
                with: Vec::new(),
            };
            let written = update_checked(&path, false, None, |_| {
                Ok((seen(b"{ old }"), Some(edit.clone())))
            });
            assert!(written.is_err(), "{content}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
        }
    }

    #[test]
    fn a_second_read_says_whether_the_bytes_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let reread_of = |before: Vec<u8>| {
            let mut bytes = before;
            let same = reread(&mut File::open(&path).unwrap(), &mut bytes).unwrap();
            assert_eq!(bytes, content);
            same
        };
        assert!(reread_of(content.clone()));
        assert!(!reread_of(Vec::new()));
        assert!(!reread_of(content[..content.len() - 1].to_vec()));
        let mut longer = content.clone();
        longer.push(0);
        assert!(!reread_of(longer));
        let mut changed = content.clone();
        changed[2_500_000] ^= 1;
        assert!(!reread_of(changed));
    }

    #[test]
    fn read_only_files_need_force_and_stay_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let err = write(&path, false, |f| f.write_all(b"new")).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        write(&path, true, |f| f.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        let err = write(&path, false, |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
