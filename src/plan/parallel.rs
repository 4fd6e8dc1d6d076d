//! A plan's changes read on every core (issue 15): the `changes` array is
//! cut into chunks of whole changes, each checked, read and written in
//! canonical form by a worker, and the chunks are handed back in order
//! (hashing is sequential, the rest is not). A few chunks are in flight
//! at a time, never the whole canonical text.
//!
//! Where the array ends and where its chunks start is guessed from how
//! the tool lays a plan out (a change per line group, the array closed
//! at the start of a line) and proved by reading: each chunk must end
//! exactly where the next was guessed to start, and the last exactly at
//! the guessed `]`. Anything else (another layout, a change that does
//! not read, a change the tally would refuse) gives up: the caller then
//! reads the plan one change at a time, which says what is wrong, so
//! what is refused and how stays the same.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use memchr::memmem;

use super::canonical;
use super::change::read_as_written;
use super::fast_json::Scanner;
use super::load::Tally;
use super::Plan;
use crate::sync::{Change, Op};

/// Where the changes of each op start in a plan's text (absolute byte
/// positions), one entry each time the op changes, in the plan's order.
pub(crate) type OpStarts = Vec<(Op, usize)>;

/// About how many bytes of the plan file a chunk holds (a few hundred in
/// the unit tests, so that their plans are cut too).
const CHUNK: usize = if cfg!(test) { 200 } else { 1 << 20 };

/// Where the `changes` array is in a plan's text, and that the rest of
/// the text surely passes `canonical::check`.
pub(super) struct Layout {
    /// The position of its `[`.
    pub open: usize,
    /// The position of its `]`.
    pub close: usize,
}

/// Reads the whole plan text but the elements of `changes` as
/// `canonical::check` would (surely fine, or `None`), and finds the array:
/// its `]` is guessed at the first line that starts with two spaces and
/// `]` after it (inside the array, lines are indented further; strings
/// hold no raw newline). The guess is proved when its chunks are read.
pub(super) fn layout(text: &str) -> Option<Layout> {
    let bytes = text.as_bytes();
    let mut scanner = Scanner::new(bytes);
    let mut changes = None;
    scanner.ws();
    let fine = scanner.object_with(1, |scanner, name| {
        if name != b"changes" || scanner.peek() != Some(b'[') {
            return scanner.value(1);
        }
        let open = scanner.pos;
        let Some(found) = memmem::find(&bytes[open..], b"\n  ]") else {
            return false;
        };
        let close = open + found + 3;
        changes = Some(Layout { open, close });
        scanner.pos = close + 1;
        true
    });
    scanner.ws();
    if !fine || scanner.pos != bytes.len() {
        return None;
    }
    changes
}

/// Whether `rest`, a plan's text with its changes taken out (`[]` at byte
/// `open`), surely passes `canonical::check` as [`layout`] finds, that
/// `[]` being the top-level `changes` member: what proves that a plan's
/// file was split where its changes start and end.
pub(super) fn rest_is_surely_fine(rest: &str, open: usize) -> bool {
    let bytes = rest.as_bytes();
    let mut scanner = Scanner::new(bytes);
    let mut found = false;
    scanner.ws();
    let fine = scanner.object_with(1, |scanner, name| {
        if name == b"changes" && scanner.pos == open && bytes.get(open..open + 2) == Some(b"[]") {
            found = true;
            scanner.pos = open + 2;
            return true;
        }
        scanner.value(1)
    });
    scanner.ws();
    fine && found && scanner.pos == bytes.len()
}

/// The chunks between `[` and `]`: each but the last ends just after the
/// comma that ends a change (guessed: a `},` that ends a line, followed
/// by a change's `{` on the next).
fn chunks(text: &[u8], layout: &Layout) -> Vec<Range<usize>> {
    let seam = memmem::Finder::new(b"},\n    {");
    let mut chunks = Vec::new();
    let mut start = layout.open + 1;
    while start + CHUNK < layout.close {
        match seam.find(&text[start + CHUNK..layout.close]) {
            Some(at) => {
                let end = start + CHUNK + at + 2;
                chunks.push(start..end);
                start = end;
            }
            None => break,
        }
    }
    chunks.push(start..layout.close);
    chunks
}

#[cfg(test)]
pub(super) fn chunk_count(text: &str, layout: &Layout) -> usize {
    chunks(text.as_bytes(), layout).len()
}

/// A chunk read: its changes in canonical form, each followed by a comma,
/// where each of those commas is (when asked), where its ops start in the
/// plan's text, and their tally.
struct Part<'p> {
    text: Vec<u8>,
    ends: Vec<usize>,
    /// The changes read, with where each starts in the plan's text, when
    /// a watcher asked for them ([`read_changes`]).
    changes: Vec<(usize, Change)>,
    ops: OpStarts,
    tally: Tally<'p>,
}

/// A chunk of whole changes to read: its text (a slice of the plan's, or
/// a copy read from its file), where that text starts in the plan's, and
/// whether it is the last.
pub(super) struct Chunk<'t> {
    pub text: std::borrow::Cow<'t, [u8]>,
    pub base: usize,
    pub last: bool,
}

/// The chunks of `text` between `layout`'s brackets.
pub(super) fn chunks_of<'t>(
    text: &'t str,
    layout: &Layout,
) -> impl Iterator<Item = Chunk<'t>> + Send + 't {
    let ranges = chunks(text.as_bytes(), layout);
    let count = ranges.len();
    ranges.into_iter().enumerate().map(move |(i, range)| Chunk {
        base: range.start,
        text: std::borrow::Cow::Borrowed(&text.as_bytes()[range]),
        last: i + 1 == count,
    })
}

/// The chunks of a plan file's changes, read from the file a slice at a
/// time: from byte `from` (just after the array's `[`) to byte `to` (its
/// `]`), cut where [`chunks`] cuts a text. Ends early on an error of the
/// file, which the caller then meets again reading it whole.
#[cfg(unix)]
pub(super) struct FileChunks<'f> {
    file: &'f std::fs::File,
    /// The next byte to read.
    at: usize,
    to: usize,
    /// What was read after the last chunk's end.
    carry: Vec<u8>,
    done: bool,
    /// Hashes every byte read, in the file's order, when asked
    /// ([`FileChunks::hashing`]).
    raw: Option<&'f mut blake3::Hasher>,
    /// The seal of every chunk made, when asked ([`FileChunks::sealing`]).
    seals: Option<&'f mut Vec<Seal>>,
}

/// Which bytes of a plan file a chunk held, and what they hash to: what
/// was checked, to be read again from the file and proved the same
/// (`show`, which renders the changes it checked without holding them).
#[derive(Debug, Clone)]
pub(crate) struct Seal {
    pub base: usize,
    pub len: usize,
    pub hash: blake3::Hash,
}

#[cfg(unix)]
impl<'f> FileChunks<'f> {
    pub(super) fn new(file: &'f std::fs::File, from: usize, to: usize) -> Self {
        FileChunks {
            file,
            at: from,
            to,
            carry: Vec::new(),
            done: false,
            raw: None,
            seals: None,
        }
    }

    /// The same chunks, each sealed into `seals` as it is made, in order.
    pub(super) fn sealing(self, seals: &'f mut Vec<Seal>) -> Self {
        FileChunks {
            seals: Some(seals),
            ..self
        }
    }

    /// The chunk of `buffer`, which starts at byte `base`, sealed when
    /// asked.
    fn chunk(&mut self, buffer: Vec<u8>, base: usize, last: bool) -> Chunk<'static> {
        if let Some(seals) = &mut self.seals {
            seals.push(Seal {
                base,
                len: buffer.len(),
                hash: blake3::hash(&buffer),
            });
        }
        Chunk {
            text: std::borrow::Cow::Owned(buffer),
            base,
            last,
        }
    }

    /// The same chunks, each byte read also hashed into `raw`, in order:
    /// once the chunks are all read, `raw` has hashed the file's bytes
    /// from `from` to `to`, exactly those that were read (`approve` tells
    /// so, under its lock, whether the file still holds them).
    pub(super) fn hashing(self, raw: &'f mut blake3::Hasher) -> Self {
        FileChunks {
            raw: Some(raw),
            ..self
        }
    }

    /// Appends up to `n` more bytes of the changes to `buffer`.
    fn read_more(&mut self, buffer: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let n = n.min(self.to - self.at);
        let old = buffer.len();
        buffer.resize(old + n, 0);
        self.file
            .read_exact_at(&mut buffer[old..], self.at as u64)?;
        if let Some(raw) = &mut self.raw {
            raw.update(&buffer[old..]);
        }
        self.at += n;
        Ok(())
    }
}

#[cfg(unix)]
impl Iterator for FileChunks<'_> {
    type Item = Chunk<'static>;

    fn next(&mut self) -> Option<Chunk<'static>> {
        // Read a quarter of a chunk at a time: what is read past a seam is
        // copied into the next chunk's buffer.
        const STEP: usize = if CHUNK < 4 { 1 } else { CHUNK / 4 };
        if self.done {
            return None;
        }
        let seam = memmem::Finder::new(b"},\n    {");
        let mut buffer = std::mem::take(&mut self.carry);
        buffer.reserve(CHUNK + 2 * STEP);
        let base = self.at - buffer.len();
        // Where the next search for a seam starts: a chunk holds at least
        // CHUNK bytes, as [`chunks`] cuts them.
        let mut search = CHUNK;
        loop {
            if buffer.len() > search {
                if let Some(found) = seam.find(&buffer[search..]) {
                    let end = search + found + 2;
                    self.carry = buffer.split_off(end);
                    return Some(self.chunk(buffer, base, false));
                }
                // A seam may start in the last bytes searched.
                search = buffer
                    .len()
                    .saturating_sub(seam.needle().len() - 1)
                    .max(search);
            }
            if self.at == self.to {
                self.done = true;
                return Some(self.chunk(buffer, base, true));
            }
            if self.read_more(&mut buffer, STEP).is_err() {
                self.done = true;
                return None;
            }
        }
    }
}

/// Reads every change of `chunks` (in the plan's order, from just after
/// the array's `[` to its `]`) on every core, and hands each chunk's
/// canonical text to `sink` in order, with where each change ends when
/// `ends` is asked for. The tally of all of them and where each op's
/// changes start (`show` walks one op's changes at a time: read here,
/// where every change is read anyway, they need no walk of their own), or
/// `None` when a chunk gave up, the chunks stopped before the last, or the
/// tally would refuse something.
///
/// The chunks are made on a thread of their own (a file is read there, a
/// slice at a time): a few are in flight at a time, never the whole plan.
///
/// A `watch`er is given each chunk's changes as they were read, in order,
/// with where each starts in the plan's text, and gives them back once
/// done with them, in the order it was given them (each is freed on the
/// worker that made it: crate::handback).
pub(super) fn read_changes<'p, 't>(
    chunks: impl Iterator<Item = Chunk<'t>> + Send,
    plan: &'p Plan,
    ends: bool,
    mut sink: impl FnMut(&[u8], &[usize]),
    mut watch: Option<&mut Watch<'_>>,
) -> Option<(Tally<'p>, OpStarts)> {
    let keep = watch.is_some();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let mut tally = Tally::new(plan);
    let mut op_starts = OpStarts::new();
    std::thread::scope(|scope| {
        let stop = &stop;
        let mut parts = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        let mut returns = Vec::with_capacity(workers);
        let mut change_returns = Vec::with_capacity(workers);
        // How many batches of changes the watcher gave back: the next
        // one was made by the worker of the chunk of that rank.
        let mut given_back = 0usize;
        for _ in 0..workers {
            // One part waits for the hasher while the next is read.
            let (done, part) = mpsc::sync_channel::<Option<Part>>(1);
            // A part's buffers, once hashed, go back to its worker to be
            // filled again: freed and made anew, each chunk's megabyte was
            // fresh memory for the kernel to clear (`perf`, issue 15).
            let (give_back, spares) = mpsc::sync_channel::<(Vec<u8>, Vec<usize>)>(2);
            let (give_back_changes, spare_changes) = mpsc::sync_channel::<Vec<(usize, Change)>>(4);
            let (inbox, to_read) = mpsc::sync_channel::<(Chunk<'t>, End)>(1);
            // A thread the system refuses drops its sender: the chunks
            // are then not all read, and the caller reads in order.
            let _ = std::thread::Builder::new().spawn_scoped(scope, move || {
                let mut writer = canonical::Reusing::default();
                for (chunk, end) in to_read {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Canonical text is shorter than the plan's: a
                    // buffer of a chunk's size seldom grows.
                    let (mut buffer, mut at) = spares
                        .try_recv()
                        .unwrap_or_else(|_| (Vec::with_capacity(CHUNK + CHUNK / 4), Vec::new()));
                    buffer.clear();
                    at.clear();
                    let mut changes = spare_changes.try_recv().unwrap_or_default();
                    changes.clear();
                    let mut part = Part {
                        text: buffer,
                        ends: at,
                        changes,
                        ops: OpStarts::new(),
                        tally: Tally::new(plan),
                    };
                    let read = read_chunk(&chunk, end, ends, keep, &mut writer, &mut part);
                    if done.send(read.then_some(part)).is_err() || !read {
                        return;
                    }
                }
            });
            parts.push(part);
            inboxes.push(inbox);
            returns.push(give_back);
            change_returns.push(give_back_changes);
        }
        // The chunks, dealt to the workers in turn; how many were dealt,
        // and whether the last was.
        let dealer = scope.spawn(move || {
            let mut dealt = 0usize;
            for chunk in chunks {
                let end = match (dealt == 0, chunk.last) {
                    (true, true) => End::Alone,
                    (_, true) => End::Last,
                    _ => End::Comma,
                };
                let last = chunk.last;
                if stop.load(Ordering::Relaxed)
                    || inboxes[dealt % workers].send((chunk, end)).is_err()
                {
                    return (dealt, false);
                }
                dealt += 1;
                if last {
                    return (dealt, true);
                }
            }
            (dealt, false)
        });
        // How many parts were read and tallied, until one was not.
        let mut tallied = 0usize;
        let whole = loop {
            let Ok(Some(part)) = parts[tallied % workers].recv() else {
                // The workers are done: every chunk read, or one not.
                break true;
            };
            sink(&part.text, &part.ends);
            for &(op, at) in &part.ops {
                if op_starts.last().map(|(last, _)| *last) != Some(op) {
                    op_starts.push((op, at));
                }
            }
            match &mut watch {
                Some(watch) => {
                    if let Some(done) = watch(part.changes) {
                        let _ = change_returns[given_back % workers].try_send(done);
                        given_back += 1;
                    }
                }
                None => {
                    let _ = change_returns[tallied % workers].try_send(part.changes);
                }
            }
            let _ = returns[tallied % workers].try_send((part.text, part.ends));
            if !tally.append(part.tally) {
                break false;
            }
            tallied += 1;
        };
        // The workers' channels close here: the dealer ends if it has not.
        stop.store(true, Ordering::Relaxed);
        drop(parts);
        match dealer.join() {
            Ok((dealt, true)) if whole && dealt == tallied => Some(()),
            _ => None,
        }
    })?;
    Some((tally, op_starts))
}

/// Changes, each with where it starts in a plan's text.
pub type ChangeBatch = Vec<(usize, Change)>;

/// A watcher of [`read_changes`]: given each chunk's changes, it gives
/// back the oldest batch it is done with, if any.
pub type Watch<'w> = dyn FnMut(ChangeBatch) -> Option<ChangeBatch> + 'w;

/// How a chunk ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Just after the comma that follows its last change.
    Comma,
    /// At the array's `]`.
    Last,
    /// At the array's `]`, and it is the only chunk: it may be empty.
    Alone,
}

/// Reads the changes of `chunk` into `part`: false when they are not
/// surely fine, or the chunk does not end as `end` says.
fn read_chunk(
    chunk: &Chunk,
    end: End,
    ends: bool,
    keep: bool,
    writer: &mut canonical::Reusing,
    part: &mut Part,
) -> bool {
    let Ok(text) = std::str::from_utf8(&chunk.text) else {
        return false;
    };
    let range = 0..text.len();
    let last = end != End::Comma;
    let mut scanner = Scanner::new(text.as_bytes());
    scanner.pos = range.start;
    scanner.ws();
    if end == End::Alone && scanner.pos == range.end {
        return true;
    }
    loop {
        let start = scanner.pos;
        let change = match read_as_written(text, start, &mut part.text) {
            Some((change, end)) => {
                scanner.pos = end;
                change
            }
            None => {
                // Inside the plan's object and its `changes` array.
                if !scanner.value(2) {
                    return false;
                }
                let Ok(change) = serde_json::from_str::<Change>(&text[start..scanner.pos]) else {
                    return false;
                };
                if writer
                    .write(&mut part.text, &change.in_canonical_order())
                    .is_err()
                {
                    return false;
                }
                change
            }
        };
        if ends {
            part.ends.push(part.text.len());
        }
        if part.ops.last().map(|(last, _)| *last) != Some(change.op()) {
            part.ops.push((change.op(), chunk.base + start));
        }
        part.text.push(b',');
        part.tally.add(&change);
        if keep {
            part.changes.push((chunk.base + start, change));
        }
        scanner.ws();
        if last && scanner.pos == range.end {
            return true;
        }
        if !scanner.eat(b',') {
            return false;
        }
        if !last && scanner.pos >= range.end {
            return scanner.pos == range.end;
        }
        scanner.ws();
    }
}
