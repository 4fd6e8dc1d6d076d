//! Reading a plan file: untrusted until its size, JSON, format, shape,
//! coherence and digest are checked.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{digest_of_plan, Plan, FORMAT, MAX_PLAN_BYTES};
use crate::error::{Error, Result};
use crate::sync::{Change, Op};

/// A plan read from a file, with what its validation found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub plan: Plan,
    /// The digest recomputed from the content; differs from `plan.digest`
    /// when the file was altered after it was made.
    pub computed_digest: String,
}

impl Loaded {
    pub fn digest_matches(&self) -> bool {
        self.computed_digest == self.plan.digest
    }

    /// Refuses (exit 4) a plan whose content does not match its digest.
    pub fn require_intact(&self, path: &Path) -> Result<()> {
        if self.digest_matches() {
            Ok(())
        } else {
            Err(Error::refused(format!(
                "{}: digest mismatch: the plan says {} but its content hashes to {}; it was altered after it was made",
                path.display(),
                crate::escape::field(&self.plan.digest),
                self.computed_digest
            )))
        }
    }
}

/// The size limit in force: [`MAX_PLAN_BYTES`], or less when the
/// environment variable `SYNC_ACCESS_MAX_PLAN_BYTES` says so. That variable
/// exists for the tests (a limit of gigabytes is slow to reach); it can
/// only lower the limit.
pub fn max_plan_bytes() -> u64 {
    std::env::var("SYNC_ACCESS_MAX_PLAN_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(MAX_PLAN_BYTES, |n| n.min(MAX_PLAN_BYTES))
}

/// Reads and validates a plan file: size, JSON, format and shape. The digest
/// is recomputed but not enforced here (`show` displays altered plans with a
/// warning); see [`Loaded::require_intact`].
///
/// Whatever `path` is (a regular file, a FIFO, a device, a process
/// substitution), at most the size limit is read: a regular file over it is
/// refused before reading, anything else while reading.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = read_bytes(path)?;
    parse(&bytes).map_err(|msg| refused(path, msg))
}

/// The refusal (exit 4) of the plan file at `path`, for `why`.
pub(super) fn refused(path: &Path, why: String) -> Error {
    Error::refused(format!("{}: {why}", path.display()))
}

/// A plan file's bytes, read through the size limit, not yet validated.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_bytes_of(path, file)
}

/// [`read_bytes`] of `file`, opened from `path` already: a pipe or a
/// device is not opened twice (the second open of a FIFO waits for a
/// writer that has gone).
pub fn read_bytes_of(path: &Path, file: std::fs::File) -> Result<Vec<u8>> {
    let refuse = |msg: String| refused(path, msg);
    let limit = max_plan_bytes();
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_file() && meta.len() > limit {
        return Err(refuse(format!(
            "not a valid plan: {} bytes is over the limit of {limit} bytes",
            meta.len()
        )));
    }
    // A regular file's size is known: its bytes are read into one buffer of
    // that size, not into one that doubles as it fills (which, at hundreds
    // of megabytes, holds the old and the new buffer at once).
    let read = if meta.is_file() {
        read_regular(&file, meta.len(), limit)
    } else {
        read_capped_into(file, limit, Vec::new())
    };
    read.map_err(|e| Error::io(path, e))?
        .ok_or_else(|| refuse(over_the_limit(limit)))
}

/// The bytes of the regular file `file`, `len` bytes long when it was
/// looked at, read through the cap as [`read_capped`] does.
///
/// Straight into one buffer, not through a chunk: one copy of hundreds of
/// megabytes instead of two. And in as many pieces as there are cores, each
/// read on a thread of its own: most of the time of reading a plan from the
/// page cache is the kernel giving fresh memory and zeroing it (issue 15:
/// `clear_page_erms`, half a second of a 362 MiB plan on one core), which
/// the threads share. A file that changes meanwhile (shorter than it was,
/// or longer) is read again from its start in one piece, as before.
fn read_regular(file: &std::fs::File, len: u64, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let cap = limit.saturating_add(1);
    let pieces = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below a few megabytes one thread is as fast.
    if pieces > 1 && len >= 4 << 20 {
        if let Some(bytes) = read_in_pieces(file, len as usize, pieces)? {
            return Ok(Some(bytes));
        }
    }
    let mut bytes = Vec::with_capacity(len as usize);
    let mut whole = file;
    std::io::Seek::seek(&mut whole, std::io::SeekFrom::Start(0))?;
    Read::read_to_end(&mut Read::take(whole, cap), &mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// `file`'s `len` bytes, read in `pieces` parts at once; `None` when the
/// file did not hold exactly `len` bytes as they were read.
#[cfg(unix)]
fn read_in_pieces(
    file: &std::fs::File,
    len: usize,
    pieces: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    // Zeroed by the system, not here: the allocator hands out fresh pages
    // as they are, and each is first touched by the thread that reads it.
    let mut bytes = vec![0u8; len];
    let size = len.div_ceil(pieces);
    let whole = std::thread::scope(|scope| {
        let readers: Vec<_> = bytes
            .chunks_mut(size)
            .enumerate()
            .map(|(i, piece)| {
                scope.spawn(move || -> std::io::Result<bool> {
                    let mut at = 0;
                    while at < piece.len() {
                        match file.read_at(&mut piece[at..], (i * size + at) as u64) {
                            Ok(0) => return Ok(false),
                            Ok(n) => at += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(true)
                })
            })
            .collect();
        let mut whole = true;
        for reader in readers {
            whole &= reader
                .join()
                .map_err(|_| std::io::Error::other("a thread reading the plan failed"))??;
        }
        Ok::<_, std::io::Error>(whole)
    })?;
    // Nothing after the bytes it had when it was looked at.
    let mut more = [0u8; 1];
    let grew = loop {
        match file.read_at(&mut more, len as u64) {
            Ok(n) => break n > 0,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    Ok((whole && !grew).then_some(bytes))
}

#[cfg(not(unix))]
fn read_in_pieces(_: &std::fs::File, _: usize, _: usize) -> std::io::Result<Option<Vec<u8>>> {
    Ok(None)
}

/// Reads and validates a plan from stdin (`show -`), within the same size
/// limit as a file.
pub fn load_stdin() -> Result<Loaded> {
    let limit = max_plan_bytes();
    let refuse = |msg: String| Error::refused(format!("stdin: {msg}"));
    let bytes = read_capped(std::io::stdin().lock(), limit)
        .map_err(|e| Error::io_on("stdin", e))?
        .ok_or_else(|| refuse(over_the_limit(limit)))?;
    parse(&bytes).map_err(refuse)
}

fn over_the_limit(limit: u64) -> String {
    format!("not a valid plan: over the limit of {limit} bytes")
}

/// The bytes of `input`, read through a cap: `None` when it holds more than
/// `limit` bytes (never more than `limit + 1` are read). Reading stops early
/// once the input cannot be a plan (its first byte that is not white space
/// is not `{`): `/dev/zero` or a binary file is refused at once, by the
/// parser, with what was read.
pub fn read_capped(input: impl std::io::Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    read_capped_into(input, limit, Vec::new())
}

/// [`read_capped`] into `bytes` (empty, perhaps with room reserved).
pub(super) fn read_capped_into(
    input: impl std::io::Read,
    limit: u64,
    mut bytes: Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut capped = input.take(limit.saturating_add(1));
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match capped.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        bytes.extend_from_slice(&chunk[..n]);
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Ok(Some(bytes));
        }
    }
    if bytes.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Validates plan bytes; the error is a sentence without the path. The plan
/// is read straight into its types (no `Value` of the whole file), which
/// keep every member the digest covers: unknown fields are refused, so the
/// digest recomputed from the types is the file's own.
pub fn parse(bytes: &[u8]) -> std::result::Result<Loaded, String> {
    check_format(bytes)?;
    check_text(bytes)?;
    // serde's message quotes the file (an unknown field's name, a value of
    // the wrong type): escaped.
    let plan: Plan = serde_json::from_slice(bytes).map_err(|e| invalid(&e))?;
    let mut tally = Tally::new(&plan);
    for change in &plan.changes {
        tally.add(change);
    }
    check_consistency(&plan, &tally)?;
    let computed_digest = digest_of_plan(&plan);
    Ok(Loaded {
        plan,
        computed_digest,
    })
}

/// The refusal of a plan that serde could not read; its message quotes the
/// file (an unknown field's name, a value of the wrong type): escaped.
pub(super) fn invalid(e: &dyn std::fmt::Display) -> String {
    format!(
        "not a valid {FORMAT} plan: {}",
        crate::escape::field(&e.to_string())
    )
}

/// JSON, an object, and a plan of this format: what is checked before
/// the plan's shape, so that another file is told what it is not.
pub(super) fn check_format(bytes: &[u8]) -> std::result::Result<(), String> {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            "not a valid plan: not a JSON object".to_string()
        } else {
            format!(
                "not a valid plan: not JSON ({})",
                crate::escape::field(&e.to_string())
            )
        }
    })?;
    match probe.format {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(Value::String(f)) => {
            return Err(format!(
                "not a valid plan: format `{}` is not `{FORMAT}`",
                crate::escape::field(&f)
            ))
        }
        _ => {
            return Err(format!(
                "not a valid plan: no `format` field (expected `{FORMAT}`)"
            ))
        }
    }
    Ok(())
}

/// UTF-8 text that [`super::canonical::check`] accepts: a member given
/// twice would be read by serde with the last value, by another reader
/// perhaps with the first, under the same digest.
pub(super) fn check_text(bytes: &[u8]) -> std::result::Result<&str, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "not a valid plan: not UTF-8 text".to_string())?;
    super::canonical::check(text).map_err(|unfit| format!("not a valid plan: {unfit}"))?;
    Ok(text)
}

/// What a plan's changes say of themselves, gathered one change at a time
/// (a plan read without keeping its changes sees each of them once).
pub(super) struct Tally<'t> {
    tenant: &'t str,
    /// Whether the plan is a revert: then it holds only removals, and
    /// otherwise only additions.
    reverts: bool,
    counts: [usize; Op::ALL.len()],
    /// The first change of the wrong kind (a removal or an addition), and
    /// why.
    first_misplaced: Option<String>,
    /// The first change whose key and document disagree, and why.
    first_mismatch: Option<String>,
    /// The first change out of order, after the one before it.
    first_disorder: Option<String>,
    /// The sort key of the change before: op, key, group id.
    previous: Option<(Op, String, String)>,
    /// The sort key of the first change, for [`Tally::append`].
    first: Option<(Op, String, String)>,
}

impl<'t> Tally<'t> {
    pub(super) fn new(plan: &'t Plan) -> Self {
        Tally {
            tenant: &plan.tenant,
            reverts: plan.reverts.is_some(),
            counts: [0; Op::ALL.len()],
            first_misplaced: None,
            first_mismatch: None,
            first_disorder: None,
            previous: None,
            first: None,
        }
    }

    /// Adds `next`, the tally of the changes that come right after these
    /// (read apart, on another core). False when either saw something to
    /// refuse, or the two are not in order where they meet: the changes
    /// are then read again one at a time, which says what and where.
    pub(super) fn append(&mut self, next: Tally<'t>) -> bool {
        let clean = |tally: &Tally| {
            tally.first_misplaced.is_none()
                && tally.first_mismatch.is_none()
                && tally.first_disorder.is_none()
        };
        if !clean(self) || !clean(&next) || self.reverts != next.reverts {
            return false;
        }
        if let (Some(last), Some(first)) = (&self.previous, &next.first) {
            if (last.0, last.1.as_bytes(), last.2.as_bytes())
                >= (first.0, first.1.as_bytes(), first.2.as_bytes())
            {
                return false;
            }
        }
        for (count, more) in self.counts.iter_mut().zip(next.counts) {
            *count += more;
        }
        if self.first.is_none() {
            self.first = next.first;
        }
        if next.previous.is_some() {
            self.previous = next.previous;
        }
        true
    }

    pub(super) fn add(&mut self, change: &Change) {
        let op = change.op();
        self.counts[Op::ALL.iter().position(|o| *o == op).unwrap_or(0)] += 1;
        if self.first_misplaced.is_none() && op.is_removal() != self.reverts {
            self.first_misplaced = Some(format!(
                "change `{} {}`: {}",
                op.as_str(),
                crate::escape::field(change.key()),
                if self.reverts {
                    "a revert plan holds only removals"
                } else {
                    "a removal belongs in a revert plan (with `reverts`)"
                }
            ));
        }
        if self.first_mismatch.is_none() {
            if let Some(problem) = change_mismatch(change, self.tenant) {
                self.first_mismatch = Some(format!(
                    "change `{} {}`: {problem}",
                    op.as_str(),
                    crate::escape::field(change.key())
                ));
            }
        }
        match &mut self.previous {
            Some((previous_op, key, group_id)) => {
                if self.first_disorder.is_none()
                    && (*previous_op, key.as_bytes(), group_id.as_bytes()) >= change.sort_key()
                {
                    self.first_disorder = Some(format!(
                        "changes are not in order or repeat a change (`{}` {} then `{}` {})",
                        previous_op.as_str(),
                        crate::escape::field(key),
                        op.as_str(),
                        crate::escape::field(change.key())
                    ));
                }
                // The buffers are reused: a plan has a million changes.
                *previous_op = op;
                key.clear();
                key.push_str(change.key());
                group_id.clear();
                group_id.push_str(change.group_id().unwrap_or(""));
            }
            None => {
                let key = (
                    op,
                    change.key().to_string(),
                    change.group_id().unwrap_or("").to_string(),
                );
                self.first = Some(key.clone());
                self.previous = Some(key);
            }
        }
    }

    fn count(&self, op: Op) -> usize {
        self.counts[Op::ALL.iter().position(|o| *o == op).unwrap_or(0)]
    }
}

/// What the shape alone cannot say: a plan must be internally coherent, so
/// that a reviewer reading its summary reads the truth about its changes.
/// `tally` is of the plan's changes (which a plan read without keeping
/// them no longer has).
pub(super) fn check_consistency(plan: &Plan, tally: &Tally) -> std::result::Result<(), String> {
    let bad = |msg: String| Err(format!("not a valid plan: {msg}"));
    for op in Op::ALL {
        let actual = tally.count(op);
        if plan.summary.count(op) != actual {
            return bad(format!(
                "summary says {} {} but the plan has {actual}",
                plan.summary.count(op),
                op.as_str()
            ));
        }
    }
    if plan.summary.skipped != plan.skipped.len() || plan.summary.conflicts != plan.conflicts.len()
    {
        return bad("summary counts of skipped or conflicts do not match the lists".into());
    }
    if plan.applyable && !plan.conflicts.is_empty() {
        return bad("marked applyable but it has conflicts".into());
    }
    if plan.tenant.is_empty() {
        return bad("`tenant` is empty".into());
    }
    if !super::is_valid_tenant_id(&plan.tenant) {
        return bad(format!(
            "`tenant` `{}` is not a tenant id: {}",
            crate::escape::field(&plan.tenant),
            super::TENANT_ID_RULE
        ));
    }
    // A revert plan only removes, and every other plan only adds: a
    // reviewer reads one or the other (docs/revert.md §2).
    if let Some(reverts) = &plan.reverts {
        if !is_digest(reverts) {
            return bad("`reverts` is not a digest (`sha256:` and 64 lowercase hex digits)".into());
        }
        if plan.options.create_tenant || plan.options.tenant_name.is_some() {
            return bad("a revert plan has no tenant to create".into());
        }
    }
    // The tenant passed its rule: the messages below quote it as it is.
    let first = [
        &tally.first_misplaced,
        &tally.first_mismatch,
        &tally.first_disorder,
    ];
    if let Some(problem) = first.into_iter().flatten().next() {
        return bad(problem.clone());
    }
    Ok(())
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether a change says what it does: its key is where its document goes,
/// in the plan's tenant. A reviewer reads keys and names; apply writes
/// documents: they must agree.
fn change_mismatch(change: &Change, tenant: &str) -> Option<String> {
    let (key, value, in_tenant) = match change {
        Change::CreateTenant { key, value } | Change::RemoveTenant { key, value } => {
            (key, value, false)
        }
        Change::AddRole { key, value }
        | Change::AddGroup { key, value }
        | Change::AddBinding { key, value, .. }
        | Change::RemoveRole { key, value }
        | Change::RemoveGroup { key, value }
        | Change::RemoveBinding { key, value, .. } => (key, value, true),
        // A user's key is its id in docs/store.md §1, but the plan names the key the
        // store really has: nothing to cross-check.
        Change::AddMembership { .. } | Change::RemoveMembership { .. } => return None,
    };
    // Only two members are read: a borrowed view, not a whole Value.
    #[derive(Deserialize)]
    struct Placement<'a> {
        #[serde(borrow, default)]
        id: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, rename = "tenantId")]
        tenant_id: Option<std::borrow::Cow<'a, str>>,
    }
    let placement: Placement = serde_json::from_str(value.as_str()).unwrap_or(Placement {
        id: None,
        tenant_id: None,
    });
    let Some(id) = placement.id.as_deref() else {
        return Some("its document has no string `id`".into());
    };
    if in_tenant {
        if placement.tenant_id.as_deref() != Some(tenant) {
            return Some(format!("its document is not in tenant `{tenant}`"));
        }
        if *key != format!("{tenant}_{id}") {
            // The tenant passed its rule; the id is the document's.
            return Some(format!(
                "its key is not `{tenant}_{}`",
                crate::escape::field(id)
            ));
        }
    } else if key != id || id != tenant {
        return Some(format!("it does not create tenant `{tenant}`"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read in pieces is the file, whatever the number of pieces;
    /// one that is not the size it was said to be is not taken from them
    /// (it changed meanwhile), and reading it whole still keeps the cap.
    #[test]
    fn a_file_read_in_pieces_is_the_file_or_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let content: Vec<u8> = (0..10_007u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let len = content.len();
        for pieces in [1, 2, 3, 8] {
            let read = read_in_pieces(&file, len, pieces).unwrap();
            assert_eq!(read.as_deref(), Some(&content[..]), "{pieces} pieces");
        }
        assert_eq!(read_in_pieces(&file, len - 5, 2).unwrap(), None, "grew");
        assert_eq!(read_in_pieces(&file, len + 5, 2).unwrap(), None, "shrank");
        // Told the wrong size, the whole file is still read, to the cap.
        let whole = read_regular(&file, len as u64 + 5, len as u64).unwrap();
        assert_eq!(whole.as_deref(), Some(&content[..]));
        assert_eq!(
            read_regular(&file, len as u64, len as u64 - 1).unwrap(),
            None
        );
    }
}
