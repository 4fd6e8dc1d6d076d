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
use std::io::Write;
use std::path::{Path, PathBuf};
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

/// Rewrites the plan file at `path` under an exclusive lock: `edit` gets
/// the bytes read under the lock and returns the new ones, or `None` to
/// leave the file as it is.
pub fn update(
    path: &Path,
    force: bool,
    edit: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>>,
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
    // it was first read.
    let limit = crate::plan::max_plan_bytes();
    let bytes = crate::plan::read_capped(&mut locked, limit)
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| {
            Error::refused(format!(
                "{}: not a valid plan: over the limit of {limit} bytes; nothing written",
                path.display()
            ))
        })?;
    let Some(new) = edit(&bytes)? else {
        return Ok(None);
    };
    replace(&real, path, meta.as_ref(), |file| file.write_all(&new))?;
    drop(locked);
    Ok(Some(Written { through_link }))
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

/// Fills a new temporary file beside `real` and renames it over `real`.
fn replace(
    real: &Path,
    shown: &Path,
    existing: Option<&std::fs::Metadata>,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
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
    let new_file_mode = {
        use std::os::unix::fs::PermissionsExt;
        // As `File::create` would: 0666 less the umask.
        std::fs::Permissions::from_mode(0o666)
    };
    #[cfg(unix)]
    if existing.is_none() {
        builder.permissions(new_file_mode);
    }
    let mut temp = builder.tempfile_in(dir).map_err(|e| Error::io(shown, e))?;
    let written = (|| {
        if let Some(meta) = existing {
            // The replaced file's permissions, exactly (no umask).
            temp.as_file().set_permissions(meta.permissions())?;
        }
        fill(temp.as_file_mut())?;
        temp.as_file().sync_all()
    })();
    // On failure the temporary file is removed when `temp` is dropped.
    written.map_err(|e| Error::io(shown, e))?;
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
        let written = update(&link, false, |old| {
            assert_eq!(old, b"old");
            Ok(Some(b"new".to_vec()))
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
