//! Reading a plan file without keeping its changes (issue 15): `apply`
//! needs the digest of the approved changes, the approvals and the
//! options, and `approve` the digest and where the approvals are, not a
//! million changes in memory.
//!
//! The file is read through the same size cap as [`super::load`], and its
//! text passes the same [`super::canonical::check`] (no member given
//! twice) before anything is deserialised. A revert plan is read so too;
//! `apply` then reads the file whole again for its changes, since it
//! re-derives the revert from them, and refuses it unless it hashes to
//! what was checked.
//!
//! A plan laid out as the tool writes it is read on every core, in chunks
//! of whole changes: from its bytes in memory (`show`, `approve`), or from
//! its file a chunk at a time, never whole ([`start_reading`], `apply`),
//! once the members around the changes are read and proved. Any other
//! layout, or anything not surely fine there, is read in order as follows,
//! which says what is wrong.
//!
//! The file's bytes are read in two passes. The first reads every member
//! but `changes`, which it only delimits: the digest needs them before the
//! changes (`applyable` comes first in canonical order, and each change is
//! checked against `tenant`). The second reads the changes one at a time:
//! each is checked as [`super::parse`] checks it, serialised into the
//! plan's digest and into the changes' digest, and dropped. What is
//! refused, and the digests, are the ones [`super::parse`] gives.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::{SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeSeq, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::digest::{digest_with_changes, ChangesHasher, SealedHasher};
use super::load::{
    check_consistency, check_format, check_text, invalid, read_bytes, refused, Tally,
};
use super::parallel;
use super::text::Lean;
use super::{Approval, Loaded, Options, Plan, Source, Summary, FORMAT};
use crate::error::Result;
use crate::plan_file::{Edit, Seen};
use crate::sync::{Change, Context, Finding};

/// A plan read without its changes.
#[derive(Debug)]
pub struct Scanned {
    /// The plan with no changes (`summary` counts them: they were checked
    /// against it), and the digest its content hashes to.
    pub loaded: Loaded,
    /// [`super::changes_digest`] of the plan's changes; empty when not
    /// asked for ([`parse_for_approval`]).
    pub changes_digest: String,
    /// Where the `approvals` array is in the bytes read; `None` when the
    /// member is absent.
    pub(super) approvals: Option<Range<usize>>,
    /// Where each op's changes start in the bytes read, when the check
    /// learnt it (read on every core; not when read one change at a time).
    pub op_starts: Option<parallel::OpStarts>,
}

/// Reads and validates a plan file as [`super::load`] does, without
/// keeping its changes: [`start_reading`], then [`Reading::finish`].
pub fn load_without_changes(path: &Path) -> Result<Scanned> {
    start_reading(path)?.finish()
}

/// A plan file being read without keeping its changes (`apply`): what its
/// members but the changes say, read first; the changes are read and the
/// whole checked by [`Reading::finish`], which may run on another thread
/// meanwhile (issue 15).
pub struct Reading {
    /// The plan as its file says it, without its changes. Nothing in it is
    /// checked yet (its digest, its approvals, that its summary counts its
    /// changes): it says which store to open and read, never what to write.
    pub plan: Plan,
    rest: Rest,
}

enum Rest {
    /// Read whole and checked already.
    Read(Box<Scanned>),
    /// Laid out as the tool lays it out: the changes are read from the
    /// file a chunk at a time, never whole.
    #[cfg(unix)]
    Chunked {
        file: std::fs::File,
        len: usize,
        split: Box<Split>,
        path: std::path::PathBuf,
    },
}

/// Starts reading the plan file at `path`: a plan laid out as the tool
/// writes it is split where its changes start and end, and the members
/// around them read; any other is read and checked whole, as
/// [`super::load`] reads it, which says what is wrong with it.
pub fn start_reading(path: &Path) -> Result<Reading> {
    #[cfg(unix)]
    {
        let io = |e| crate::error::Error::io(path, e);
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let len = meta.len() as usize;
        if meta.is_file() && meta.len() <= super::max_plan_bytes() {
            if let Some((split, _)) = split_file(&file, len).map_err(io)? {
                return Ok(Reading {
                    plan: split.plan.clone(),
                    rest: Rest::Chunked {
                        file,
                        len,
                        split: Box::new(split),
                        path: path.to_path_buf(),
                    },
                });
            }
        }
    }
    read_whole(path)
}

/// [`start_reading`] of the whole file, checked at once.
fn read_whole(path: &Path) -> Result<Reading> {
    let scanned = scan_whole(path)?;
    Ok(Reading {
        plan: scanned.loaded.plan.clone(),
        rest: Rest::Read(Box::new(scanned)),
    })
}

/// The plan file at `path`, read whole and checked.
fn scan_whole(path: &Path) -> Result<Scanned> {
    let bytes = read_bytes(path)?;
    parse_without_changes(&bytes).map_err(|why| refused(path, why))
}

impl Reading {
    /// Reads the changes and checks the whole plan, as
    /// [`parse_without_changes`] does. A file that does not read as it
    /// was split (a change that is not surely fine, a file that changed)
    /// is read again whole, which says what is wrong.
    pub fn finish(self) -> Result<Scanned> {
        match self.rest {
            Rest::Read(scanned) => Ok(*scanned),
            #[cfg(unix)]
            Rest::Chunked {
                file,
                len,
                split,
                path,
            } => match read_split(&file, len, *split, true) {
                Ok(Some(scanned)) => Ok(scanned),
                Ok(None) => scan_whole(&path),
                Err(e) => Err(crate::error::Error::io(&path, e)),
            },
        }
    }
}

/// The members of a plan, but its changes only delimited. As [`Plan`]
/// reads them: same names, defaults and refusals.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Head<'a> {
    format: String,
    tool_version: String,
    created_at: String,
    created_by: String,
    source: Source,
    tenant: String,
    options: Options,
    #[serde(default)]
    reverts: Option<String>,
    summary: Summary,
    #[serde(borrow)]
    changes: &'a RawValue,
    skipped: Vec<Finding>,
    conflicts: Vec<Finding>,
    #[serde(default)]
    context: Context,
    applyable: bool,
    digest: String,
    #[serde(default)]
    author_signature: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    approvals: Option<&'a RawValue>,
}

/// A member that must be there when it is given (`null` is not absent).
fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Validates plan bytes as [`super::parse`] does, without keeping the
/// changes; the error is a sentence without the path.
pub fn parse_without_changes(bytes: &[u8]) -> std::result::Result<Scanned, String> {
    scan(bytes, true)
}

/// [`parse_without_changes`] without the changes' digest, which only
/// `apply` compares (hashing them again is a tenth of an approval's time,
/// and of a `show`'s check).
pub fn parse_for_approval(bytes: &[u8]) -> std::result::Result<Scanned, String> {
    scan(bytes, false)
}

fn scan(bytes: &[u8], changes_digest: bool) -> std::result::Result<Scanned, String> {
    match scan_in_parallel(bytes, changes_digest) {
        Some(scanned) => Ok(scanned),
        None => scan_in_order(bytes, changes_digest),
    }
}

/// [`scan`], one change after the other: any plan, and what is wrong
/// with one.
fn scan_in_order(bytes: &[u8], changes_digest: bool) -> std::result::Result<Scanned, String> {
    // What is not a plan of this format is told so, as `parse` tells it;
    // that check is a pass over the whole file, made only when needed.
    let text = match check_text(bytes) {
        Ok(text) => text,
        Err(why) => {
            check_format(bytes)?;
            return Err(why);
        }
    };
    let head: Head = match serde_json::from_str(text) {
        Ok(head) => head,
        Err(e) => {
            check_format(bytes)?;
            return Err(invalid(&e));
        }
    };
    if head.format != FORMAT {
        check_format(bytes)?;
        return Err(format!(
            "not a valid plan: format `{}` is not `{FORMAT}`",
            crate::escape::field(&head.format)
        ));
    }
    let approvals_span = head.approvals.map(|raw| span_of(bytes, raw.get()));
    let approvals: Vec<Approval> = match (head.approvals, &approvals_span) {
        (Some(raw), Some(span)) => serde_json::from_str(raw.get())
            .map_err(|e| invalid(&relocated(&e, bytes, span.start)))?,
        _ => Vec::new(),
    };
    let changes = head.changes.get();
    let plan = plan_of(head, approvals);
    let stream = ChangeStream {
        text: changes,
        tally: RefCell::new(Tally::new(&plan)),
        hasher: RefCell::new(changes_digest.then(ChangesHasher::new)),
        error: RefCell::new(None),
    };
    let computed_digest = match digest_with_changes(&plan, &stream) {
        Ok(digest) => digest,
        Err(e) => {
            let start = span_of(bytes, stream.text).start;
            return Err(match stream.error.take() {
                Some(read) => invalid(&relocated(&read, bytes, start)),
                None => invalid(&e),
            });
        }
    };
    let ChangeStream { tally, hasher, .. } = stream;
    check_consistency(&plan, &tally.into_inner())?;
    Ok(Scanned {
        changes_digest: hasher
            .into_inner()
            .map(ChangesHasher::finish)
            .unwrap_or_default(),
        loaded: Loaded {
            plan,
            computed_digest,
        },
        approvals: approvals_span,
        op_starts: None,
    })
}

/// [`scan`] of a plan as the tool lays it out, its changes read on every
/// core ([`super::parallel`]); `None` when anything is not surely fine,
/// and then [`scan`] reads it one change at a time and says why. What is
/// read, and the digests, are the same.
fn scan_in_parallel(bytes: &[u8], changes_digest: bool) -> Option<Scanned> {
    let (text, layout, split) = split_text(bytes)?;
    read_chunks(
        split,
        parallel::chunks_of(text, &layout),
        changes_digest,
        None,
    )
}

/// The text of a plan laid out as the tool lays it out, where its changes
/// are, and what the other members say, read without the changes (`[]`
/// in their place).
fn split_text(bytes: &[u8]) -> Option<(&str, parallel::Layout, Split)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let layout = parallel::layout(text)?;
    let changes = layout.open..layout.close + 1;
    let mut rest = String::with_capacity(text.len() - changes.len() + 2);
    rest.push_str(&text[..changes.start]);
    rest.push_str("[]");
    rest.push_str(&text[changes.end..]);
    let split = split_of(&rest, layout.open, layout.close)?;
    Some((text, layout, split))
}

/// A plan file laid out as the tool lays it out, split where its changes
/// start and end, whose members around them are read and proved
/// ([`split_plan_file`]): its changes are read next, each checked and
/// given to a watcher ([`SplitFile::check_watching`]).
#[cfg(unix)]
pub struct SplitFile {
    file: std::fs::File,
    len: usize,
    split: Split,
}

/// The plan file at `path`, split ([`SplitFile`]); the file opened, when
/// it is not a regular file within the size limit laid out as the tool
/// writes a plan: the caller then reads it whole
/// ([`super::load::read_bytes_of`], never opening a pipe twice), which
/// says what is wrong.
#[cfg(unix)]
pub fn split_plan_file(path: &Path) -> Result<std::result::Result<SplitFile, std::fs::File>> {
    let io = |e| crate::error::Error::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.len() > super::max_plan_bytes() {
        return Ok(Err(file));
    }
    let len = meta.len() as usize;
    Ok(match split_file(&file, len).map_err(io)? {
        Some((split, _)) => Ok(SplitFile { file, len, split }),
        None => Err(file),
    })
}

/// Elsewhere, every plan file is read whole.
#[cfg(not(unix))]
pub enum SplitFile {}

#[cfg(not(unix))]
pub fn split_plan_file(path: &Path) -> Result<std::result::Result<SplitFile, std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| crate::error::Error::io(path, e))?;
    Ok(Err(file))
}

#[cfg(unix)]
impl SplitFile {
    /// The members of the plan but its changes: what its changes will be
    /// checked against.
    pub fn header(&self) -> &Plan {
        &self.split.plan
    }

    /// [`parse_for_approval`] of the file, read a chunk at a time as
    /// `approve` reads it, never whole (issue 15: `show` of 2M changes held
    /// their 724 MiB), each change given to `watch` as it is checked, in
    /// the plan's order, in batches, with where it starts in the text of
    /// the `changes` array (as [`super::ChangesText`] tells where a change
    /// is). `watch` gives the batches back, oldest first, to be freed where
    /// they were made. The plan comes with its changes to be read again
    /// from the file, each chunk proved to hold the bytes that were checked
    /// ([`super::text::ChangesInFile`]). `None` when the plan is not surely
    /// fine so read: then what `watch` was given is not the plan's, and
    /// [`parse_for_approval`] says what is wrong.
    pub fn check_watching(self, watch: &mut super::Watch<'_>) -> std::io::Result<Option<Lean>> {
        use std::os::unix::fs::FileExt;
        let SplitFile { file, len, split } = self;
        let open = split.open;
        let mut seals = Vec::new();
        let chunks = parallel::FileChunks::new(&file, open + 1, split.close).sealing(&mut seals);
        let mut relative = |mut batch: super::ChangeBatch| {
            for (at, _) in &mut batch {
                *at -= open;
            }
            watch(batch)
        };
        let Some(scanned) = read_chunks(split, chunks, false, Some(&mut relative)) else {
            return Ok(None);
        };
        let mut more = [0u8; 1];
        if file.read_at(&mut more, len as u64)? > 0 {
            return Ok(None);
        }
        let changes = super::text::ChangesInFile::new(file, open, seals);
        Ok(Some(Lean::in_file(scanned.loaded, changes)))
    }
}

/// A plan split where its changes start and end: what the members around
/// them say, and where they are.
struct Split {
    plan: Plan,
    /// Where the array's `[` and `]` are in the plan's text.
    open: usize,
    close: usize,
    /// Where the `approvals` array is in the plan's text.
    approvals: Option<Range<usize>>,
}

/// The [`Split`] of a plan whose text is `rest` once its changes (from
/// `[` at `open` to `]` at `close`) are taken out and `[]` put in their
/// place; `None` when those members do not read as a plan's of this
/// format.
fn split_of(rest: &str, open: usize, close: usize) -> Option<Split> {
    let head: Head = serde_json::from_str(rest).ok()?;
    if head.format != FORMAT {
        return None;
    }
    // Where the approvals are in the plan's text, not in `rest`.
    let approvals_span = head.approvals.map(|raw| {
        let span = span_of(rest.as_bytes(), raw.get());
        if span.start > open {
            let moved = close + 1 - open - 2;
            span.start + moved..span.end + moved
        } else {
            span
        }
    });
    let approvals: Vec<Approval> = match head.approvals {
        Some(raw) => serde_json::from_str(raw.get()).ok()?,
        None => Vec::new(),
    };
    Some(Split {
        plan: plan_of(head, approvals),
        open,
        close,
        approvals: approvals_span,
    })
}

/// The second half of [`scan_in_parallel`]: the changes of `split`, read
/// from `chunks` on every core, each checked and hashed; `None` when
/// anything is not surely fine.
fn read_chunks<'t>(
    split: Split,
    chunks: impl Iterator<Item = parallel::Chunk<'t>> + Send,
    changes_digest: bool,
    watch: Option<&mut parallel::Watch<'_>>,
) -> Option<Scanned> {
    let Split {
        plan, approvals, ..
    } = split;
    let mut sealed = SealedHasher::new(&plan);
    let mut hasher = changes_digest.then(ChangesHasher::new);
    let (tally, op_starts) = parallel::read_changes(
        chunks,
        &plan,
        changes_digest,
        |part, ends| {
            sealed.add(part);
            if let Some(hasher) = &mut hasher {
                let mut start = 0;
                for &end in ends {
                    hasher.add_canonical(&part[start..end]);
                    start = end + 1;
                }
            }
        },
        watch,
    )?;
    check_consistency(&plan, &tally).ok()?;
    Some(Scanned {
        changes_digest: hasher.map(ChangesHasher::finish).unwrap_or_default(),
        loaded: Loaded {
            computed_digest: sealed.finish(),
            plan,
        },
        approvals,
        op_starts: Some(op_starts),
    })
}

/// The first half of [`scan_in_parallel`] of the regular file `file`, `len`
/// bytes long when it was looked at, without holding its bytes (`apply`,
/// issue 15: a plan of 362 MiB beside the derivation's own memory): the
/// members before and after `changes` are read and proved as
/// [`parallel::layout`] proves them. `None` (and the caller reads the file
/// whole) when the plan is not laid out as the tool lays it out, or
/// anything is not surely fine. [`read_split`] reads the changes. The
/// split comes with the file's text without its changes (`[]` in their
/// place), as it was read.
#[cfg(unix)]
fn split_file(file: &std::fs::File, len: usize) -> std::io::Result<Option<(Split, String)>> {
    use memchr::memmem;
    use std::os::unix::fs::FileExt;
    let read = |at: usize, n: usize| -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; n];
        file.read_exact_at(&mut bytes, at as u64)?;
        Ok(bytes)
    };
    // The members before the changes: a few hundred bytes as the tool
    // writes them; the array's `[` ends the first line that names it.
    const OPENING: &[u8] = b"\n  \"changes\": [";
    let mut head = Vec::new();
    let open = loop {
        let n = (head.len().max(1 << 16) * 2).min(len);
        head = read(0, n)?;
        if let Some(found) = memmem::find(&head, OPENING) {
            break found + OPENING.len() - 1;
        }
        if n == len || n >= 16 << 20 {
            return Ok(None);
        }
    };
    head.truncate(open);
    // The members after them, from the end: the tool writes `skipped`
    // next. The last such line is the array's end, unless a document
    // mimics it (then what follows does not read as a plan).
    const CLOSING: &[u8] = b"\n  ],\n  \"skipped\": [";
    let mut window = 1usize << 20;
    let close = loop {
        let from = len.saturating_sub(window).max(open + 1);
        let tail = read(from, len - from)?;
        if let Some(found) = memmem::rfind(&tail, CLOSING) {
            break from + found + 3;
        }
        if from == open + 1 {
            return Ok(None);
        }
        window *= 4;
    };
    let mut rest = head;
    rest.extend_from_slice(b"[]");
    rest.extend_from_slice(&read(close + 1, len - close - 1)?);
    let Ok(rest) = String::from_utf8(rest) else {
        return Ok(None);
    };
    // The split proved: `[]` is the `changes` member of one object.
    if !parallel::rest_is_surely_fine(&rest, open) {
        return Ok(None);
    }
    Ok(split_of(&rest, open, close).map(|split| (split, rest)))
}

/// The second half of [`scan_in_parallel`] of a file: its changes, read
/// from the file a chunk at a time, each checked and hashed. `None` when
/// anything is not surely fine, or the file is not `len` bytes long any
/// more. Every byte read is a byte checked and hashed: a file that changes
/// meanwhile reads as some file, whose digest and approvals are then
/// checked as any other's.
#[cfg(unix)]
fn read_split(
    file: &std::fs::File,
    len: usize,
    split: Split,
    changes_digest: bool,
) -> std::io::Result<Option<Scanned>> {
    use std::os::unix::fs::FileExt;
    let chunks = parallel::FileChunks::new(file, split.open + 1, split.close);
    let Some(scanned) = read_chunks(split, chunks, changes_digest, None) else {
        return Ok(None);
    };
    // Nothing after the bytes it had when it was looked at.
    let mut more = [0u8; 1];
    if file.read_at(&mut more, len as u64)? > 0 {
        return Ok(None);
    }
    Ok(Some(scanned))
}

/// [`split_file`], then [`read_split`].
#[cfg(all(test, unix))]
fn scan_file_in_parallel(
    file: &std::fs::File,
    len: usize,
    changes_digest: bool,
) -> std::io::Result<Option<Scanned>> {
    match split_file(file, len)? {
        Some((split, _)) => read_split(file, len, split, changes_digest),
        None => Ok(None),
    }
}

/// The plan that `head` and its `approvals` say, without its changes.
fn plan_of(head: Head, approvals: Vec<Approval>) -> Plan {
    Plan {
        format: head.format,
        tool_version: head.tool_version,
        created_at: head.created_at,
        created_by: head.created_by,
        source: head.source,
        tenant: head.tenant,
        options: head.options,
        reverts: head.reverts,
        summary: head.summary,
        changes: Vec::new(),
        skipped: head.skipped,
        conflicts: head.conflicts,
        context: head.context,
        applyable: head.applyable,
        digest: head.digest,
        author_signature: head.author_signature,
        approvals,
    }
}

/// The changes' text, read as it is serialised: each change is checked,
/// added to the changes' digest and dropped.
struct ChangeStream<'t> {
    text: &'t str,
    tally: RefCell<Tally<'t>>,
    hasher: RefCell<Option<ChangesHasher>>,
    /// Why reading stopped, with its position in `text`.
    error: RefCell<Option<serde_json::Error>>,
}

impl Serialize for ChangeStream<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        let mut reader = serde_json::Deserializer::from_str(self.text);
        let read = reader
            .deserialize_seq(Elements {
                seq: &mut seq,
                stream: self,
            })
            .and_then(|()| reader.end());
        if let Err(e) = read {
            *self.error.borrow_mut() = Some(e);
            return Err(S::Error::custom("the plan's changes are not valid"));
        }
        seq.end()
    }
}

struct Elements<'s, 't, Q> {
    seq: &'s mut Q,
    stream: &'s ChangeStream<'t>,
}

impl<'de, Q: SerializeSeq> Visitor<'de> for Elements<'_, '_, Q> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> std::result::Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(change) = items.next_element::<Change>()? {
            self.seq
                .serialize_element(&change)
                .map_err(A::Error::custom)?;
            if let Some(hasher) = self.stream.hasher.borrow_mut().as_mut() {
                hasher.add(&change);
            }
            self.stream.tally.borrow_mut().add(&change);
        }
        Ok(())
    }
}

/// Where `part`, a slice of `whole`, is in it.
fn span_of(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    debug_assert!(start + part.len() <= whole.len());
    start..start + part.len()
}

/// serde_json's message for an error in a part of `bytes` that starts at
/// `offset`, its line and column counted in the whole file.
fn relocated(e: &serde_json::Error, bytes: &[u8], offset: usize) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let Some(message) = text.strip_suffix(&suffix).filter(|_| e.line() > 0) else {
        return text;
    };
    let before = &bytes[..offset.min(bytes.len())];
    let lines_before = before.iter().filter(|&&b| b == b'\n').count();
    let column_before = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
    let (line, column) = if e.line() == 1 {
        (lines_before + 1, column_before + e.column())
    } else {
        (lines_before + e.line(), e.column())
    };
    format!("{message} at line {line} column {column}")
}

impl Scanned {
    /// The edit of the file's `bytes` (the ones this was read from) that
    /// makes `approvals` its approvals: the array is replaced, or added as
    /// the last member, written as `plan` writes it; every other byte is
    /// kept, so that the changes are neither read again nor rewritten.
    pub fn approvals_edit(&self, bytes: &[u8], approvals: &[Approval]) -> Edit {
        approvals_edit(self.approvals.clone(), bytes, |at| at, approvals)
    }
}

/// [`Scanned::approvals_edit`] of a text that ends as the file does:
/// `bytes`, whose position `at` is the file's `position(at)`.
fn approvals_edit(
    span: Option<Range<usize>>,
    bytes: &[u8],
    position: impl Fn(usize) -> usize,
    approvals: &[Approval],
) -> Edit {
    let pretty = serde_json::to_vec_pretty(approvals).expect("approvals serialise");
    // The array is a member of the top-level object: one level deeper
    // than serde_json indents it alone. JSON strings hold no raw
    // newline, so every newline is the layout's.
    let mut array = Vec::with_capacity(pretty.len() + pretty.len() / 8);
    for &byte in &pretty {
        array.push(byte);
        if byte == b'\n' {
            array.extend_from_slice(b"  ");
        }
    }
    match span {
        Some(span) => Edit {
            replace: span,
            with: array,
        },
        None => {
            // The file is one object with nothing but whitespace after.
            let close = bytes
                .iter()
                .rposition(|&b| b == b'}')
                .unwrap_or(bytes.len());
            let end_of_last = bytes[..close]
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(close, |p| p + 1);
            let mut with = b",\n  \"approvals\": ".to_vec();
            with.extend_from_slice(&array);
            with.push(b'\n');
            Edit {
                replace: position(end_of_last)..position(close),
                with,
            }
        }
    }
}

/// A plan file checked for `approve` from the file, a chunk at a time, as
/// `apply` reads it (issue 15: an approval never holds the 362 MiB of a
/// million changes): what [`parse_for_approval`] says of its bytes, and
/// which bytes those were.
#[derive(Debug)]
pub struct CheckedFile {
    pub scanned: Scanned,
    pub seen: Seen,
    /// The file's text without its changes (`[]` where they were, from
    /// `open`), and where its `]` was: to edit the approvals.
    rest: String,
    open: usize,
    close: usize,
}

/// Checks the plan file `file` for `approve` without holding its bytes,
/// as [`parse_for_approval`] checks them. `None` when it is not a regular
/// file within the size limit laid out as the tool writes a plan, or
/// anything in it is not surely fine: the caller then reads it whole,
/// which says what is wrong.
#[cfg(unix)]
pub fn check_for_approval(file: &std::fs::File) -> std::io::Result<Option<CheckedFile>> {
    use std::os::unix::fs::FileExt;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > super::max_plan_bytes() {
        return Ok(None);
    }
    let len = meta.len() as usize;
    let Some((split, rest)) = split_file(file, len)? else {
        return Ok(None);
    };
    let (open, close) = (split.open, split.close);
    // The bytes checked, in the file's order: the members before the
    // changes and the `[`, the changes as they are read, the `]` and
    // what follows.
    let mut raw = blake3::Hasher::new();
    raw.update(&rest.as_bytes()[..=open]);
    let chunks = parallel::FileChunks::new(file, open + 1, close).hashing(&mut raw);
    let Some(scanned) = read_chunks(split, chunks, false, None) else {
        return Ok(None);
    };
    let mut more = [0u8; 1];
    if file.read_at(&mut more, len as u64)? > 0 {
        return Ok(None);
    }
    raw.update(&rest.as_bytes()[open + 1..]);
    Ok(Some(CheckedFile {
        scanned,
        seen: Seen {
            len: len as u64,
            blake3: *raw.finalize().as_bytes(),
        },
        rest,
        open,
        close,
    }))
}

/// Elsewhere, every plan file is read whole.
#[cfg(not(unix))]
pub fn check_for_approval(_: &std::fs::File) -> std::io::Result<Option<CheckedFile>> {
    Ok(None)
}

impl CheckedFile {
    /// [`Scanned::approvals_edit`] of the file checked.
    pub fn approvals_edit(&self, approvals: &[Approval]) -> Edit {
        let (open, moved) = (self.open, self.close - self.open - 1);
        // Past the `[]`, a position in `rest` is `moved` bytes earlier
        // than in the file.
        let position = |at: usize| if at > open { at + moved } else { at };
        approvals_edit(
            self.scanned.approvals.clone(),
            self.rest.as_bytes(),
            position,
            approvals,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `approve` checks a plan laid out as the tool writes it from its
    /// file, as it checks its bytes in memory, and knows which bytes it
    /// checked; its edit of the approvals is the same edit, whether the
    /// member is there or not.
    #[test]
    fn a_file_checked_for_approval_is_its_bytes_checked() {
        let approval = Approval {
            by: "reviewer@example.com".into(),
            at: "2026-11-30T12:00:00Z".into(),
            digest: "sha256:0".into(),
            comment: None,
            signature: None,
        };
        let demo = include_str!("../../plans/demo-plan.json");
        let without = demo.replacen(",\n  \"approvals\": []", "", 1);
        assert_ne!(without, demo);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        for text in [
            demo.to_string(),
            without,
            include_str!("../../plans/demo-revert-plan.json").to_string(),
        ] {
            let bytes = text.as_bytes();
            std::fs::write(&path, bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let checked = check_for_approval(&file).unwrap().expect("read in chunks");
            let whole = parse_for_approval(bytes).unwrap();
            assert_eq!(checked.scanned.loaded.plan, whole.loaded.plan);
            assert_eq!(
                checked.scanned.loaded.computed_digest,
                whole.loaded.computed_digest
            );
            assert!(checked.scanned.loaded.digest_matches());
            assert_eq!(checked.scanned.approvals, whole.approvals);
            assert_eq!(checked.seen.len, bytes.len() as u64);
            assert_eq!(checked.seen.blake3, *blake3::hash(bytes).as_bytes());
            for approvals in [vec![], vec![approval.clone()]] {
                assert_eq!(
                    checked.approvals_edit(&approvals),
                    whole.approvals_edit(bytes, &approvals)
                );
            }
        }
        // A change that does not read, or another layout: read whole.
        for text in [
            demo.replacen("\"add_binding\"", "\"add_binding\" x", 1),
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(demo).unwrap())
                .unwrap(),
        ] {
            std::fs::write(&path, &text).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            assert!(check_for_approval(&file).unwrap().is_none());
        }
    }

    /// A plan as the tool writes it is read on every core, cut into
    /// chunks, and reads as it does one change at a time; laid out
    /// otherwise, it is read one change at a time.
    #[test]
    fn the_parallel_reading_is_the_reading_in_order() {
        for bytes in [
            include_bytes!("../../plans/demo-plan.json").to_vec(),
            include_bytes!("../../plans/demo-revert-plan.json").to_vec(),
        ] {
            let text = std::str::from_utf8(&bytes).unwrap();
            let layout = parallel::layout(text).expect("the tool's layout");
            assert!(super::parallel::chunk_count(text, &layout) > 3);
            let fast = scan_in_parallel(&bytes, true).expect("read in parallel");
            let slow = scan_in_order(&bytes, true).unwrap();
            assert_eq!(fast.loaded.plan, slow.loaded.plan);
            assert_eq!(fast.loaded.computed_digest, slow.loaded.computed_digest);
            assert!(fast.loaded.digest_matches());
            assert_eq!(fast.changes_digest, slow.changes_digest);
            assert_eq!(fast.approvals, slow.approvals);
            // Read from its file a chunk at a time, the same.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("plan.json");
            std::fs::write(&path, &bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let streamed = scan_file_in_parallel(&file, bytes.len(), true)
                .unwrap()
                .expect("read from the file in chunks");
            assert_eq!(streamed.loaded.plan, fast.loaded.plan);
            assert_eq!(streamed.loaded.computed_digest, fast.loaded.computed_digest);
            assert_eq!(streamed.changes_digest, fast.changes_digest);
            assert_eq!(streamed.approvals, fast.approvals);
            assert_eq!(streamed.op_starts, fast.op_starts);
            // Told another length, the file is not taken as read.
            assert!(scan_file_in_parallel(&file, bytes.len() - 1, true)
                .unwrap()
                .is_none());
            let compact =
                serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
            assert!(scan_in_parallel(&compact.unwrap(), true).is_none());
        }
    }
}
