//! A plan's changes re-read from the bytes of its file, one at a time
//! (issue 15): `show` keeps the file's bytes, which it read once to check
//! the plan ([`super::parse_for_approval`]), and parses each change again
//! when a renderer asks for it, never holding them all.
//!
//! The bytes were checked first: a change that does not read here is an
//! error of the reader, reported as such, not a refusal of the plan.

use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::load::{read_capped_into, refused};
use super::parallel::{OpStarts, Seal};
use super::{parse_for_approval, read_bytes, Changes, Loaded};
use crate::error::{Error, Result};
use crate::sync::{Change, Document, Membership, Op};

/// A plan read and checked as [`super::load`] does, without its changes,
/// and where they are read again.
pub struct Lean {
    /// The plan without its changes (`summary` counts them) and the digest
    /// its content hashes to.
    pub loaded: Loaded,
    changes: Where,
}

/// Where a [`Lean`] plan's changes are read again.
enum Where {
    /// The bytes the plan was read from, and where each op's changes start
    /// in them, when the check learnt it.
    Bytes {
        bytes: Vec<u8>,
        op_starts: Option<OpStarts>,
    },
    /// The plan's file, proved to hold what was checked.
    File(ChangesInFile),
}

impl Lean {
    fn of(bytes: Vec<u8>, scanned: super::Scanned) -> Self {
        Lean {
            loaded: scanned.loaded,
            changes: Where::Bytes {
                bytes,
                op_starts: scanned.op_starts,
            },
        }
    }

    pub(super) fn in_file(loaded: Loaded, changes: ChangesInFile) -> Self {
        Lean {
            loaded,
            changes: Where::File(changes),
        }
    }

    /// The plan's changes, read from its bytes or its file when asked for.
    pub fn changes(&self) -> Result<Box<dyn Changes + '_>> {
        let (bytes, op_starts) = match &self.changes {
            Where::Bytes { bytes, op_starts } => (bytes, op_starts),
            Where::File(changes) => return Ok(Box::new(changes)),
        };
        let changes = ChangesText::of_plan(bytes)
            .map_err(|e| Error::refused(format!("not a valid plan: {e}")))?;
        Ok(Box::new(match op_starts {
            Some(starts) => {
                let base = changes.text.as_ptr() as usize - bytes.as_ptr() as usize;
                changes.knowing_op_starts(starts, base)
            }
            None => changes,
        }))
    }
}

/// [`super::load`] of `path`, keeping the bytes rather than the changes.
pub fn load_lean(path: &Path) -> Result<Lean> {
    lean_of(path, read_bytes(path)?)
}

/// [`load_lean`] of bytes read already (from the file at `path`).
pub fn lean_of(path: &Path, bytes: Vec<u8>) -> Result<Lean> {
    let scanned = parse_for_approval(&bytes).map_err(|why| refused(path, why))?;
    Ok(Lean::of(bytes, scanned))
}

/// [`super::load_stdin`], keeping the bytes rather than the changes.
pub fn load_lean_stdin() -> Result<Lean> {
    let limit = super::max_plan_bytes();
    let refuse = |msg: String| Error::refused(format!("stdin: {msg}"));
    // Redirected from a file, stdin's size is known: read into one buffer
    // of that size, not one that doubles (which holds the old and the new
    // at once: 900 MB for a plan of 362 MiB).
    let size = stdin_file_size();
    if size.is_some_and(|size| size > limit) {
        return Err(refuse(format!(
            "not a valid plan: over the limit of {limit} bytes"
        )));
    }
    let room = size.unwrap_or(0);
    let bytes = read_capped_into(
        std::io::stdin().lock(),
        limit,
        Vec::with_capacity(room as usize),
    )
    .map_err(|e| Error::io_on("stdin", e))?
    .ok_or_else(|| refuse(format!("not a valid plan: over the limit of {limit} bytes")))?;
    let scanned = parse_for_approval(&bytes).map_err(refuse)?;
    Ok(Lean::of(bytes, scanned))
}

/// The size of the regular file stdin reads, if it is one.
#[cfg(unix)]
fn stdin_file_size() -> Option<u64> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

#[cfg(not(unix))]
fn stdin_file_size() -> Option<u64> {
    None
}

/// A change of a plan that was checked already, as it is read again: its
/// members, and its document as it is written (the renderers read its
/// members; it is not brought to canonical form again, which costs more
/// than the rest of the reading).
#[derive(Deserialize)]
struct Read<'a> {
    op: Op,
    key: String,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default)]
    membership: Option<Membership>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

impl Read<'_> {
    /// The change, by the rules every reading of a change follows
    /// ([`super::change::change_of`]), its document kept as it is written.
    fn change(self) -> std::result::Result<Change, String> {
        super::change::change_of(super::change::ChangeRecord {
            op: self.op,
            key: self.key,
            value: self.value.map(Document::as_read),
            user_id: self.user_id,
            username: self.username,
            group_id: self.group_id,
            group_name: self.group_name,
            membership: self.membership,
            subject: self.subject,
            role: self.role,
        })
    }
}

/// Of a change, its op alone: what finding where each op's changes are
/// reads (the rest is skipped, not kept).
#[derive(Deserialize)]
struct OpOnly {
    op: Op,
}

/// Where each op's changes are in the array, in the plan's order.
type OpRanges = Vec<(Op, Range<usize>)>;

/// The `changes` array of a plan file's text, read one change at a time.
pub struct ChangesText<'t> {
    /// The text from the array's `[`: the walks stop at its `]`.
    text: &'t str,
    /// Where each op's changes are in `text`, learnt when first needed
    /// (changes are in the order of their op).
    ops: RefCell<Option<OpRanges>>,
}

fn broken(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the plan's changes do not read again: {what}"),
    )
}

impl<'t> ChangesText<'t> {
    /// The changes of `array`, the text of a JSON array of changes (and
    /// perhaps more after it).
    pub fn new(array: &'t str) -> Self {
        ChangesText {
            text: array,
            ops: RefCell::new(None),
        }
    }

    /// These changes, told where each op's starts: `starts` holds
    /// positions in a text whose byte `base` is this one's first, as the
    /// check of the plan found them (every change is read there), so that
    /// no walk is made to find them.
    fn knowing_op_starts(self, starts: &[(Op, usize)], base: usize) -> Self {
        let end = self.text.len();
        let ranges = starts
            .iter()
            .enumerate()
            .map(|(i, &(op, at))| {
                let until = starts
                    .get(i + 1)
                    .map_or(end, |&(_, next)| next.saturating_sub(base));
                (op, at.saturating_sub(base)..until)
            })
            .collect();
        *self.ops.borrow_mut() = Some(ranges);
        self
    }

    /// The changes of a plan file's bytes (already checked): the members
    /// before `changes` are skipped, the changes found, the rest never read.
    pub fn of_plan(bytes: &'t [u8]) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let b = text.as_bytes();
        let skip = |mut at: usize| {
            while at < b.len() && b[at].is_ascii_whitespace() {
                at += 1;
            }
            at
        };
        let expect = |at: usize, byte: u8| {
            if b.get(at) == Some(&byte) {
                Ok(skip(at + 1))
            } else {
                Err(format!("expected `{}` at byte {at}", byte as char))
            }
        };
        let mut at = expect(skip(0), b'{')?;
        loop {
            let mut keys = serde_json::Deserializer::from_str(&text[at..]).into_iter::<String>();
            let key = match keys.next() {
                Some(Ok(key)) => key,
                _ => return Err("no `changes` member".into()),
            };
            at = expect(skip(at + keys.byte_offset()), b':')?;
            if key == "changes" {
                return Ok(ChangesText::new(&text[at..]));
            }
            let mut values = serde_json::Deserializer::from_str(&text[at..])
                .into_iter::<serde::de::IgnoredAny>();
            match values.next() {
                Some(Ok(_)) => {}
                _ => return Err(format!("member `{key}` does not read")),
            }
            at = expect(skip(at + values.byte_offset()), b',')?;
        }
    }

    /// Gives each change from byte `from` of the text (the start of a
    /// change, or just after `[`), read as `T`, with where it is, until
    /// `f` says `false` or the array ends.
    fn walk<T: Deserialize<'t>>(
        &self,
        from: usize,
        f: &mut dyn FnMut(Range<usize>, T) -> io::Result<bool>,
    ) -> io::Result<()> {
        let text = self.text;
        let bytes = text.as_bytes();
        let skip = |mut at: usize| {
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            at
        };
        let mut at = skip(from);
        loop {
            match bytes.get(at) {
                Some(b']') => return Ok(()),
                Some(_) => {}
                None => return Err(broken("they end before `]`")),
            }
            let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<T>();
            let item = match stream.next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => return Err(broken(e)),
                None => return Err(broken("they end before `]`")),
            };
            let end = at + stream.byte_offset();
            if !f(at..end, item)? {
                return Ok(());
            }
            at = skip(end);
            if bytes.get(at) == Some(&b',') {
                at = skip(at + 1);
            }
        }
    }

    /// The start of the first change (just after `[`).
    fn first(&self) -> usize {
        self.text.find('[').map_or(0, |i| i + 1)
    }

    /// Where the changes of `op` are, learnt on the first call by a walk
    /// that reads each change's op alone.
    fn range_of(&self, op: Op) -> io::Result<Option<Range<usize>>> {
        if self.ops.borrow().is_none() {
            let mut ops: OpRanges = Vec::new();
            self.walk::<OpOnly>(self.first(), &mut |at, read| {
                match ops.last_mut() {
                    Some((last, range)) if *last == read.op => range.end = at.end,
                    _ => ops.push((read.op, at)),
                }
                Ok(true)
            })?;
            *self.ops.borrow_mut() = Some(ops);
        }
        Ok(self
            .ops
            .borrow()
            .iter()
            .flatten()
            .find(|(o, _)| *o == op)
            .map(|(_, range)| range.clone()))
    }
}

/// Changes a walk's reader hands on at a time.
const READ_AHEAD_BATCH: usize = 256;

impl ChangesText<'_> {
    /// Each change from byte `from` (the start of a change, or just after
    /// `[`) to the end of the array or to byte `until`, with where it is,
    /// until `f` says `false`. A thread of its own reads the changes ahead:
    /// on two cores, reading them (half of a walk of `show`) is hidden
    /// behind what `f` does with them.
    fn walk_ahead(
        &self,
        from: usize,
        until: Option<usize>,
        f: &mut dyn FnMut(usize, &Change) -> bool,
    ) -> io::Result<()> {
        // The reader sees the text alone (the rest is not for threads).
        let text = ChangesText::new(self.text);
        std::thread::scope(|scope| {
            let (to, batches) =
                std::sync::mpsc::sync_channel::<io::Result<Vec<(usize, Change)>>>(4);
            // The batches `f` is done with go back to the reader, which
            // frees their changes where it made them (crate::handback).
            let (give_back, batches_to_fill) = crate::handback::channel(READ_AHEAD_BATCH);
            let reader = std::thread::Builder::new().name("read-ahead".into());
            let spawned = reader.spawn_scoped(scope, move || {
                let mut batch = batches_to_fill.next();
                let walked = text.walk::<Read>(from, &mut |at, read| {
                    if until.is_some_and(|end| at.start >= end) {
                        return Ok(false);
                    }
                    let change = read.change().map_err(broken)?;
                    // The renderers read a binding's fields, several times:
                    // they are found here, on the reading thread, once.
                    if let Change::AddBinding { value, .. } | Change::RemoveBinding { value, .. } =
                        &change
                    {
                        value.binding_fields();
                    }
                    batch.push((at.start, change));
                    if batch.len() < READ_AHEAD_BATCH {
                        return Ok(true);
                    }
                    let full = std::mem::replace(&mut batch, batches_to_fill.next());
                    // Nobody listens: `f` had enough.
                    Ok(to.send(Ok(full)).is_ok())
                });
                // What was read before a change that does not read is
                // handed on first, as a walk on one thread does.
                if !batch.is_empty() && to.send(Ok(batch)).is_err() {
                    return;
                }
                if let Err(e) = walked {
                    let _ = to.send(Err(e));
                }
            });
            if let Err(e) = spawned {
                return Err(io::Error::other(format!(
                    "could not start a thread to read the changes: {e}"
                )));
            }
            for batch in batches {
                let batch = batch?;
                for (at, change) in &batch {
                    if !f(*at, change) {
                        return Ok(());
                    }
                }
                give_back.give_back(batch);
            }
            Ok(())
        })
    }
}

impl Changes for ChangesText<'_> {
    fn each_change(&self, f: &mut dyn FnMut(&Change) -> bool) -> io::Result<()> {
        self.walk_ahead(self.first(), None, &mut |_, change| f(change))
    }

    fn each_change_at(&self, f: &mut dyn FnMut(usize, &Change) -> bool) -> io::Result<()> {
        self.walk_ahead(self.first(), None, f)
    }

    /// Each change read where it is, the others not read.
    fn changes_at(&self, positions: &[usize], f: &mut dyn FnMut(&Change)) -> io::Result<()> {
        for &at in positions {
            self.walk::<Read>(at, &mut |_, read| {
                f(&read.change().map_err(broken)?);
                Ok(false)
            })?;
        }
        Ok(())
    }

    fn each_change_of(&self, op: Op, f: &mut dyn FnMut(&Change) -> bool) -> io::Result<()> {
        let Some(range) = self.range_of(op)? else {
            return Ok(());
        };
        self.walk_ahead(range.start, Some(range.end), &mut |_, change| f(change))
    }
}

/// A plan's changes read again from its file (`show`, issue 15): what
/// was checked is not held, only the seal of each chunk of the changes
/// read to check them ([`super::parallel::Seal`]), and every chunk read
/// again is proved to hold the same bytes, or refused: what is rendered
/// is what was checked, whatever writes to the file meanwhile.
pub struct ChangesInFile {
    file: std::fs::File,
    /// Where the array's `[` is in the file: a change's position is
    /// counted from there, as in [`ChangesText`].
    open: usize,
    seals: Vec<Seal>,
    /// The last chunk read, by its rank: the positions a renderer asks for
    /// come in increasing order, often several from one chunk.
    last: RefCell<Option<(usize, String)>>,
}

/// Why a chunk of a plan's changes read again is refused: the file does
/// not hold what was checked any more.
#[derive(Debug)]
pub struct ChangedSinceChecked {
    pub bytes: Range<usize>,
}

impl std::fmt::Display for ChangedSinceChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "changed while it was shown: bytes {}..{} no longer hold what was checked",
            self.bytes.start, self.bytes.end
        )
    }
}

impl std::error::Error for ChangedSinceChecked {}

impl ChangesInFile {
    pub(super) fn new(file: std::fs::File, open: usize, seals: Vec<Seal>) -> Self {
        ChangesInFile {
            file,
            open,
            seals,
            last: RefCell::new(None),
        }
    }

    /// The text of chunk `rank`, read from the file and proved to be what
    /// was checked.
    fn read_chunk(&self, rank: usize) -> io::Result<String> {
        let seal = &self.seals[rank];
        let changed = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                ChangedSinceChecked {
                    bytes: seal.base..seal.base + seal.len,
                },
            )
        };
        let mut bytes = vec![0u8; seal.len];
        match read_exact_at(&self.file, &mut bytes, seal.base as u64) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed()),
            Err(e) => return Err(e),
        }
        if blake3::hash(&bytes) != seal.hash {
            return Err(changed());
        }
        // Checked as UTF-8 when it was read first; cut between changes.
        String::from_utf8(bytes).map_err(|_| changed())
    }

    /// Each change of `text` (a chunk's: whole changes, each followed by
    /// a comma but perhaps the last) from byte `from`, read as `T`, with
    /// where it is in the chunk, until `f` says `false`.
    fn walk_chunk<'t, T: Deserialize<'t>>(
        text: &'t str,
        from: usize,
        f: &mut dyn FnMut(usize, T) -> io::Result<bool>,
    ) -> io::Result<bool> {
        let bytes = text.as_bytes();
        let mut at = from;
        loop {
            while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                at += 1;
            }
            if at == bytes.len() {
                return Ok(true);
            }
            let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<T>();
            let item = match stream.next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => return Err(broken(e)),
                None => return Err(broken("a chunk ends inside a change")),
            };
            if !f(at, item)? {
                return Ok(false);
            }
            at += stream.byte_offset();
        }
    }
}

/// Reads `buffer.len()` bytes of `file` from byte `at`.
fn read_exact_at(file: &std::fs::File, buffer: &mut [u8], at: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buffer, at)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(buffer)
    }
}

impl Changes for &ChangesInFile {
    fn each_change(&self, f: &mut dyn FnMut(&Change) -> bool) -> io::Result<()> {
        self.each_change_at(&mut |_, change| f(change))
    }

    fn each_change_at(&self, f: &mut dyn FnMut(usize, &Change) -> bool) -> io::Result<()> {
        for (rank, seal) in self.seals.iter().enumerate() {
            let text = self.read_chunk(rank)?;
            let more = ChangesInFile::walk_chunk::<Read>(&text, 0, &mut |at, read| {
                let change = read.change().map_err(broken)?;
                Ok(f(seal.base + at - self.open, &change))
            })?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// Each change read where it is, from its chunk, the others not read.
    fn changes_at(&self, positions: &[usize], f: &mut dyn FnMut(&Change)) -> io::Result<()> {
        for &position in positions {
            let at = self.open + position;
            let rank = self.seals.partition_point(|s| s.base + s.len <= at);
            let Some(seal) = self.seals.get(rank).filter(|s| s.base <= at) else {
                return Err(broken(format!("no change at {position}")));
            };
            let mut last = self.last.borrow_mut();
            if !last.as_ref().is_some_and(|(read, _)| *read == rank) {
                *last = Some((rank, self.read_chunk(rank)?));
            }
            let text = last.as_ref().map_or("", |(_, text)| text.as_str());
            ChangesInFile::walk_chunk::<Read>(text, at - seal.base, &mut |_, read| {
                f(&read.change().map_err(broken)?);
                Ok(false)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    fn plans() -> Vec<Plan> {
        vec![
            serde_json::from_str(include_str!("../../plans/demo-plan.json")).unwrap(),
            serde_json::from_str(include_str!("../../plans/demo-revert-plan.json")).unwrap(),
            serde_json::from_str(include_str!("../../tests/golden/rules-plan.json")).unwrap(),
        ]
    }

    /// The plan's file as the tool writes it, and in another layout: its
    /// members sorted (`changes` after `approvals`, an array), compact,
    /// with white space around the changes' commas and brackets.
    fn layouts(plan: &Plan) -> Vec<Vec<u8>> {
        let sorted = serde_json::to_string(&serde_json::to_value(plan).unwrap()).unwrap();
        let spaced = sorted
            .replace("\"changes\":[", "\"changes\" :\n [ ")
            .replace("},{", "} ,\n\t{");
        assert!(spaced.contains("} ,\n\t{\"group_id\""), "{spaced}");
        vec![plan.to_pretty_json(), spaced.into_bytes()]
    }

    #[test]
    fn the_changes_read_again_are_the_plans() {
        for plan in plans() {
            for bytes in layouts(&plan) {
                let scanned = crate::plan::parse_without_changes(&bytes).unwrap();
                assert_eq!(scanned.loaded.computed_digest, plan.digest);
                // As `show` reads them: where each op starts as the check
                // found it (the tool's layout: read on every core), or
                // found by a walk (another layout).
                let lean = Lean::of(bytes.clone(), parse_for_approval(&bytes).unwrap());
                assert_eq!(
                    matches!(
                        lean.changes,
                        Where::Bytes {
                            op_starts: Some(_),
                            ..
                        }
                    ),
                    bytes == plan.to_pretty_json(),
                    "where the ops start is learnt by the parallel check"
                );
                let lean_text = lean.changes().unwrap();
                for op in Op::ALL {
                    let mut of_op = Vec::new();
                    lean_text
                        .each_change_of(op, &mut |c| {
                            of_op.push(c.clone());
                            true
                        })
                        .unwrap();
                    let expected: Vec<&Change> =
                        plan.changes.iter().filter(|c| c.op() == op).collect();
                    assert_eq!(of_op.iter().collect::<Vec<_>>(), expected, "{op:?}");
                }
                let text = ChangesText::of_plan(&bytes).unwrap();
                let mut all = Vec::new();
                text.each_change(&mut |c| {
                    all.push(c.clone());
                    true
                })
                .unwrap();
                assert_eq!(all, plan.changes);
                for op in Op::ALL {
                    let mut of_op = Vec::new();
                    text.each_change_of(op, &mut |c| {
                        of_op.push(c.clone());
                        true
                    })
                    .unwrap();
                    let expected: Vec<Change> = plan
                        .changes
                        .iter()
                        .filter(|c| c.op() == op)
                        .cloned()
                        .collect();
                    assert_eq!(of_op, expected, "{op:?}");
                }
                // Where each change is, and each read again from there.
                let mut at = Vec::new();
                text.each_change_at(&mut |p, _| {
                    at.push(p);
                    true
                })
                .unwrap();
                let odd: Vec<usize> = at.iter().copied().skip(1).step_by(2).collect();
                let mut again = Vec::new();
                text.changes_at(&odd, &mut |c| again.push(c.clone()))
                    .unwrap();
                let expected: Vec<Change> =
                    plan.changes.iter().skip(1).step_by(2).cloned().collect();
                assert_eq!(again, expected);
                // The default, by rank, agrees.
                let mut ranked = Vec::new();
                let ranks: Vec<usize> = (1..plan.changes.len()).step_by(2).collect();
                plan.changes
                    .changes_at(&ranks, &mut |c| ranked.push(c.clone()))
                    .unwrap();
                assert_eq!(ranked, expected);
                // Stopping early stops.
                let mut seen = 0;
                text.each_change(&mut |_| {
                    seen += 1;
                    seen < 2
                })
                .unwrap();
                assert_eq!(seen, 2.min(plan.changes.len()));
            }
        }
    }

    /// Read again from the plan's file (cut into many chunks in the unit
    /// tests), the changes are where the check said, as read from its
    /// bytes; a chunk that no longer holds what was checked, or is gone,
    /// is refused, whatever the rest of the file holds.
    #[cfg(unix)]
    #[test]
    fn the_changes_read_again_from_the_file_are_those_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        for plan in plans() {
            let bytes = plan.to_pretty_json();
            std::fs::write(&path, &bytes).unwrap();
            let split = crate::plan::split_plan_file(&path).unwrap().expect("split");
            assert_eq!(split.header().digest, plan.digest);
            let mut watched = Vec::new();
            let lean = split
                .check_watching(&mut |batch| {
                    watched.extend(batch.iter().cloned());
                    Some(batch)
                })
                .unwrap()
                .expect("checked");
            assert!(matches!(lean.changes, Where::File(_)));
            assert_eq!(lean.loaded.computed_digest, plan.digest);
            let in_memory = lean_of(&path, bytes.clone()).unwrap();
            let (file, text) = (lean.changes().unwrap(), in_memory.changes().unwrap());
            let mut at = Vec::new();
            file.each_change_at(&mut |p, c| {
                at.push((p, c.clone()));
                true
            })
            .unwrap();
            let mut expected = Vec::new();
            text.each_change_at(&mut |p, c| {
                expected.push((p, c.clone()));
                true
            })
            .unwrap();
            assert_eq!(at, expected);
            assert_eq!(watched, expected, "watched where they are read again");
            let odd: Vec<usize> = at.iter().map(|(p, _)| *p).skip(1).step_by(2).collect();
            let mut again = Vec::new();
            file.changes_at(&odd, &mut |c| again.push(c.clone()))
                .unwrap();
            let odd_changes: Vec<Change> =
                plan.changes.iter().skip(1).step_by(2).cloned().collect();
            assert_eq!(again, odd_changes);
            for op in Op::ALL {
                let mut of_op = Vec::new();
                file.each_change_of(op, &mut |c| {
                    of_op.push(c.clone());
                    true
                })
                .unwrap();
                let expected: Vec<&Change> = plan.changes.iter().filter(|c| c.op() == op).collect();
                assert_eq!(of_op.iter().collect::<Vec<_>>(), expected, "{op:?}");
            }
            let Where::File(in_file) = &lean.changes else {
                unreachable!()
            };
            assert!(in_file.seals.len() > 2, "cut into chunks");
            // The last change's chunk altered in place, a byte the same
            // length; then the file cut short.
            let (last, _) = at.last().unwrap();
            let byte = in_file.open + last + 2;
            let mut altered = bytes.clone();
            altered[byte] = if altered[byte] == b'k' { b'j' } else { b'k' };
            std::fs::write(&path, &altered).unwrap();
            let refused = |e: io::Error| {
                let changed = e
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<ChangedSinceChecked>());
                assert!(changed.is_some_and(|c| c.bytes.contains(&byte)), "{e}");
            };
            // The first changes, in chunks not altered, still read.
            let mut first = Vec::new();
            file.changes_at(&[at[0].0], &mut |c| first.push(c.clone()))
                .unwrap();
            assert_eq!(first, plan.changes[..1]);
            refused(file.changes_at(&[*last], &mut |_| {}).unwrap_err());
            let mut walked = 0;
            refused(
                file.each_change(&mut |_| {
                    walked += 1;
                    true
                })
                .unwrap_err(),
            );
            assert!(walked < plan.changes.len());
            std::fs::write(&path, &bytes[..byte]).unwrap();
            refused(file.changes_at(&[*last], &mut |_| {}).unwrap_err());
        }
    }

    /// Walks read ahead in batches: every change, in order, over many
    /// batches; a stop wherever `f` says; and a change that does not read
    /// ends the walk with an error after every change before it.
    #[test]
    fn walks_read_ahead_hand_on_every_change_in_order_and_stop_where_asked() {
        let plan = &plans()[0];
        let n = 3 * READ_AHEAD_BATCH + 7;
        let changes: Vec<Change> = plan.changes.iter().cycle().take(n).cloned().collect();
        let texts: Vec<String> = changes
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        let array = format!("[{}]", texts.join(","));
        let text = ChangesText::new(&array);
        let mut all = Vec::new();
        text.each_change(&mut |c| {
            all.push(c.clone());
            true
        })
        .unwrap();
        assert_eq!(all, changes);
        let stop = READ_AHEAD_BATCH + 3;
        let mut seen = 0;
        text.each_change(&mut |_| {
            seen += 1;
            seen < stop
        })
        .unwrap();
        assert_eq!(seen, stop);
        let broken_at = 2 * READ_AHEAD_BATCH + 1;
        let mut texts = texts;
        texts[broken_at] = r#"{"op":"add_role"}"#.to_string();
        let array = format!("[{}]", texts.join(","));
        let text = ChangesText::new(&array);
        let mut seen = 0;
        let walked = text.each_change(&mut |_| {
            seen += 1;
            true
        });
        assert!(walked.is_err());
        assert_eq!(seen, broken_at);
    }
}
