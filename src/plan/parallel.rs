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
    ops: OpStarts,
    tally: Tally<'p>,
}

/// Reads every change between `layout`'s brackets on every core, and
/// hands each chunk's canonical text to `sink` in order, with where each
/// change ends when `ends` is asked for. The tally of all of them and
/// where each op's changes start (`show` walks one op's changes at a time:
/// read here, where every change is read anyway, they need no walk of
/// their own), or `None` when a chunk gave up or the tally would refuse
/// something.
pub(super) fn read_changes<'p>(
    text: &str,
    layout: &Layout,
    plan: &'p Plan,
    ends: bool,
    mut sink: impl FnMut(&[u8], &[usize]),
) -> Option<(Tally<'p>, OpStarts)> {
    let chunks = chunks(text.as_bytes(), layout);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks.len());
    let stop = AtomicBool::new(false);
    let mut tally = Tally::new(plan);
    let mut op_starts = OpStarts::new();
    std::thread::scope(|scope| {
        let mut parts = Vec::with_capacity(workers);
        let mut spares = Vec::with_capacity(workers);
        for worker in 0..workers {
            // One part waits for the hasher while the next is read.
            let (done, part) = mpsc::sync_channel::<Option<Part>>(1);
            let (spare, reuse) = mpsc::channel::<(Vec<u8>, Vec<usize>)>();
            let (chunks, stop) = (&chunks, &stop);
            // A thread the system refuses drops its sender: the chunks
            // are then read in order.
            let _ = std::thread::Builder::new().spawn_scoped(scope, move || {
                let mut writer = canonical::Reusing::default();
                for (i, range) in chunks.iter().enumerate().skip(worker).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Canonical text is shorter than the plan's: a
                    // buffer of a chunk's size seldom grows.
                    let (mut buffer, mut at) = reuse
                        .try_recv()
                        .unwrap_or_else(|_| (Vec::with_capacity(CHUNK + CHUNK / 4), Vec::new()));
                    buffer.clear();
                    at.clear();
                    let mut part = Part {
                        text: buffer,
                        ends: at,
                        ops: OpStarts::new(),
                        tally: Tally::new(plan),
                    };
                    let end = match (i == 0, i + 1 == chunks.len()) {
                        (true, true) => End::Alone,
                        (_, true) => End::Last,
                        _ => End::Comma,
                    };
                    let read = read_chunk(text, range.clone(), end, ends, &mut writer, &mut part);
                    if done.send(read.then_some(part)).is_err() || !read {
                        return;
                    }
                }
            });
            parts.push(part);
            spares.push(spare);
        }
        for i in 0..chunks.len() {
            let Ok(Some(part)) = parts[i % workers].recv() else {
                stop.store(true, Ordering::Relaxed);
                return None;
            };
            sink(&part.text, &part.ends);
            for &(op, at) in &part.ops {
                if op_starts.last().map(|(last, _)| *last) != Some(op) {
                    op_starts.push((op, at));
                }
            }
            if !tally.append(part.tally) {
                stop.store(true, Ordering::Relaxed);
                return None;
            }
            let _ = spares[i % workers].send((part.text, part.ends));
        }
        Some(())
    })?;
    Some((tally, op_starts))
}

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

/// Reads the changes in `range` of `text` into `part`: false when they
/// are not surely fine, or the range does not end as `end` says.
fn read_chunk(
    text: &str,
    range: Range<usize>,
    end: End,
    ends: bool,
    writer: &mut canonical::Reusing,
    part: &mut Part,
) -> bool {
    let last = end != End::Comma;
    let mut scanner = Scanner::new(text.as_bytes());
    scanner.pos = range.start;
    scanner.ws();
    if end == End::Alone && scanner.pos == range.end {
        return true;
    }
    loop {
        let start = scanner.pos;
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
        if ends {
            part.ends.push(part.text.len());
        }
        if part.ops.last().map(|(last, _)| *last) != Some(change.op()) {
            part.ops.push((change.op(), start));
        }
        part.text.push(b',');
        part.tally.add(&change);
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
