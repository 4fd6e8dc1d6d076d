//! Where `plan` keeps its changes while it derives them (issue 15): not in
//! memory. [`ChangeSpool::push`] hands each change to the spool's writer
//! thread, which writes its canonical text (docs/plan-format.md §10) at
//! once to an unlinked temporary file, and keeps only a small index entry
//! (its order key, §9, and where its text is). The changes may come in any
//! order: [`ChangeSpool::finish`] sorts the index, and [`Spooled`] then
//! reads the texts back in the plan's order to seal the plan and write its
//! file in one pass ([`Spooled::seal_and_write`], which lays each text out
//! as the file spells the change), or only to seal it
//! ([`Spooled::digest`]), and to hash its changes
//! ([`Spooled::changes_digest`]), each byte for byte what the same plan
//! with its changes in memory gives (`digest_of_plan`, `Plan::write_pretty`,
//! `changes_digest`).
//!
//! The plan file and the digest are made by the plan's own writers, over the
//! plan without its changes (`"changes": []`), with the changes put in
//! where that empty array is ([`split_at`]): the layout of everything else
//! stays that of one writer.
//!
//! A tailed spool ([`ChangeSpool::tailed`]) also hands each
//! change back, read from its file as soon as it is written, in the order it
//! was pushed: `apply` on PostgreSQL writes the changes while it still
//! derives them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{canonical, digest, Plan};
use crate::sync::{BindingCopy, Change, Op};

/// Indentation of a change inside the plan file's `changes` array: serde_json's
/// pretty writer, two spaces per level, at depth 2.
const ELEMENT_INDENT: &[u8] = b"    ";

/// Bytes read ahead when the changes are read in the order they were
/// written (the files are then read like a stream).
const READ_AHEAD: usize = 1 << 20;

/// Where a plan's changes go: in its canonical form (what the digest
/// covers), and in its file, each an empty array that nothing before it
/// can spell (a string's line breaks are escaped; `applyable` is the only
/// member before `changes` in the canonical form).
const SEALED_CHANGES: &[u8] = b"\"changes\":[]";
const FILE_CHANGES: &[u8] = b"\n  \"changes\": []";

/// The bytes of the file (and of the canonical form) handed to the plan's
/// writer at once, and chunks that may wait for it.
pub(super) const CHUNK: usize = 1 << 20;
const CHUNKS_WAITING: usize = 2;

/// What [`Spooled::seal_and_write`] hands its writer: canonical text to
/// hash, and the file's bytes to write.
#[derive(Default)]
struct Chunk {
    canonical: Vec<u8>,
    pretty: Vec<u8>,
}

/// `text` cut inside the first `marker` (an empty array): up to and with
/// its `[`, and from its `]` on.
fn split_at<'t>(text: &'t [u8], marker: &[u8]) -> io::Result<(&'t [u8], &'t [u8])> {
    let found = text
        .windows(marker.len())
        .position(|w| w == marker)
        .ok_or_else(|| {
            io::Error::other(format!(
                "the plan has no `{}` to put its changes in",
                String::from_utf8_lossy(marker)
            ))
        })?;
    Ok(text.split_at(found + marker.len() - 1))
}

/// The sink of a plan's changes: see the module's documentation.
///
/// Turning a change into its text and writing it was a fifth of `plan`
/// (measured with `perf`): on two cores, a thread of the spool's own does
/// it while the caller derives the next ones. The changes cross in
/// batches, a few at a time, so what waits between the two is bounded.
///
/// One text per change, not also the plan file's: writing both kept the
/// spool's thread busy twice as long as the caller's (`perf`, issue 15),
/// a third of it in the kernel filing the bytes, and the caller waited on
/// it. The file's layout is made from the canonical text as it is written
/// ([`pretty_element`]), on the caller's thread, which by then has nothing
/// else to do.
pub struct ChangeSpool {
    counts: [usize; Op::ALL.len()],
    batch: Vec<Pending>,
    to: std::sync::mpsc::SyncSender<Message>,
    /// The next batch to fill: one the writer is done with, or a new one.
    batches: crate::handback::Batches<Pending>,
    thread: std::thread::JoinHandle<SpoolFiles>,
}

/// Changes handed to the writer at once, and batches that may wait for it.
const BATCH: usize = 1024;
const BATCHES_WAITING: usize = 4;

enum Message {
    Reserve(usize),
    Changes(Vec<Pending>),
}

/// A change on its way to the writer, or a binding's copy that the writer
/// makes first ([`BindingCopy`]): a tenth of `plan` moved off the thread
/// that reads the store.
enum Pending {
    Change(Change),
    BindingCopy(BindingCopy),
}

impl Pending {
    fn change(&self) -> std::borrow::Cow<'_, Change> {
        match self {
            Pending::Change(change) => std::borrow::Cow::Borrowed(change),
            Pending::BindingCopy(copy) => std::borrow::Cow::Owned(copy.to_change()),
        }
    }
}

/// What the spool's writer keeps: the text of each change, in an unlinked
/// temporary file, and the index.
struct SpoolFiles {
    /// Each change's canonical JSON (docs/plan-format.md §10).
    canonical: Region,
    index: Vec<Entry>,
    /// The order keys (`key`, then `group_id`) of the changes, one after
    /// the other: one allocation for all of them.
    keys: Vec<u8>,
    /// The first failure to write; what follows it is counted, not kept.
    error: Option<io::Error>,
    scratch: Vec<u8>,
    /// Where a [`SpoolTail`] learns what was written, batch by batch.
    tail: Option<Publisher>,
}

/// What the writer of a tailed spool tells its [`SpoolTail`]: a batch's
/// canonical texts start at `at`, one after the other, of these lengths.
type Published = (u64, Vec<u32>);

struct Publisher {
    to: std::sync::mpsc::Sender<Published>,
    /// The batch being written: where it starts, and its texts' lengths.
    from: u64,
    lengths: Vec<u32>,
}

/// One change: its order key and where its text is.
struct Entry {
    key_at: usize,
    canonical_at: u64,
    key_len: u32,
    group_len: u32,
    canonical_len: u32,
    op: Op,
}

/// An unlinked temporary file being appended to.
struct Region {
    out: BufWriter<File>,
    len: u64,
}

impl Region {
    fn new(file: File) -> Self {
        Region {
            out: BufWriter::with_capacity(1 << 20, file),
            len: 0,
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn into_file(self) -> io::Result<(File, u64)> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.len))
    }
}

fn length(n: u64) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a change over 4 GiB"))
}

fn from_canonical(e: canonical::Error) -> io::Error {
    match e {
        canonical::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl ChangeSpool {
    /// A spool whose temporary file is in `dir` (unlinked from the start:
    /// nothing is left behind, whatever happens).
    pub fn new(dir: &Path) -> io::Result<Self> {
        Self::with_file(tempfile::tempfile_in(dir)?)
    }

    /// [`new`](Self::new), and a [`SpoolTail`] that reads each change back
    /// as soon as it is written, in the order it was pushed: `apply` writes
    /// the changes while they are still derived.
    pub fn tailed(dir: &Path) -> io::Result<(Self, SpoolTail)> {
        let canonical = tempfile::tempfile_in(dir)?;
        let read = canonical.try_clone()?;
        let mut files = SpoolFiles::new(canonical);
        let (to, published) = std::sync::mpsc::channel();
        files.tail = Some(Publisher {
            to,
            from: 0,
            lengths: Vec::new(),
        });
        Ok((
            Self::writing_to(files)?,
            SpoolTail {
                file: read,
                published,
                buf: Vec::new(),
            },
        ))
    }

    pub(super) fn with_file(canonical: File) -> io::Result<Self> {
        Self::writing_to(SpoolFiles::new(canonical))
    }

    fn writing_to(mut files: SpoolFiles) -> io::Result<Self> {
        let (to, from) = std::sync::mpsc::sync_channel::<Message>(BATCHES_WAITING);
        // The batches written go back to the caller, which frees their
        // changes on the thread that made them (crate::handback).
        let (give_back, batches) = crate::handback::channel(BATCH);
        let thread = std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                for message in from {
                    match message {
                        Message::Reserve(n) => files.reserve(n),
                        Message::Changes(changes) => {
                            for change in &changes {
                                files.push(change);
                            }
                            files.publish();
                            give_back.give_back(changes);
                        }
                    }
                }
                files
            })?;
        Ok(ChangeSpool {
            counts: [0; Op::ALL.len()],
            batch: batches.next(),
            to,
            batches,
            thread,
        })
    }

    /// Takes a change, in any order. A failure to write it is kept and
    /// reported by [`finish`](Self::finish); the change is still counted.
    pub fn push(&mut self, change: Change) {
        self.counts[change.op() as usize] += 1;
        self.pend(Pending::Change(change));
    }

    /// [`push`](Self::push) of the copy's change, made on the writer's
    /// thread.
    pub fn push_binding_copy(&mut self, copy: BindingCopy) {
        self.counts[Op::AddBinding as usize] += 1;
        self.pend(Pending::BindingCopy(copy));
    }

    fn pend(&mut self, pending: Pending) {
        self.batch.push(pending);
        if self.batch.len() == BATCH {
            let batch = std::mem::replace(&mut self.batch, self.batches.next());
            // A writer that is gone panicked: `finish` says so.
            let _ = self.to.send(Message::Changes(batch));
        }
    }

    /// How many changes of `op` were pushed.
    pub fn count(&self, op: Op) -> usize {
        self.counts[op as usize]
    }

    /// Orders what was pushed as the plan orders its changes. Fails with the
    /// first error met while writing, or when two changes have the same
    /// order key (a plan never holds one change twice).
    pub fn finish(self) -> io::Result<Spooled> {
        if !self.batch.is_empty() {
            let _ = self.to.send(Message::Changes(self.batch));
        }
        drop(self.to);
        let files = match self.thread.join() {
            Ok(files) => files,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let mut spooled = files.finish()?;
        spooled.counts = self.counts;
        Ok(spooled)
    }
}

impl SpoolFiles {
    fn new(canonical: File) -> Self {
        SpoolFiles {
            canonical: Region::new(canonical),
            index: Vec::new(),
            keys: Vec::new(),
            error: None,
            scratch: Vec::new(),
            tail: None,
        }
    }

    /// Tells the tail what the last batch wrote, once it can be read back.
    /// After a failure the tail hears no more (and `finish` says why).
    fn publish(&mut self) {
        let Some(tail) = &mut self.tail else {
            return;
        };
        if tail.lengths.is_empty() && self.error.is_none() {
            return;
        }
        let flushed = match &self.error {
            None => self.canonical.out.flush(),
            Some(_) => Err(io::Error::other("failed")),
        };
        match flushed {
            Ok(()) => {
                let batch = (tail.from, std::mem::take(&mut tail.lengths));
                tail.from = self.canonical.len;
                if tail.to.send(batch).is_err() {
                    self.tail = None;
                }
            }
            Err(e) => {
                self.error.get_or_insert(e);
                self.tail = None;
            }
        }
    }

    fn push(&mut self, pending: &Pending) {
        if self.error.is_some() {
            return;
        }
        self.scratch.clear();
        let written = match pending {
            Pending::BindingCopy(copy) if copy.write_canonical(&mut self.scratch).is_some() => {
                self.record(Op::AddBinding, copy.key().as_bytes(), b"")
            }
            pending => {
                self.scratch.clear();
                let change = pending.change();
                let (op, key, group) = change.sort_key();
                canonical::to_writer(&mut self.scratch, &change)
                    .map_err(from_canonical)
                    .and_then(|()| self.record(op, key, group))
            }
        };
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.index.reserve_exact(additional);
        // Keys of a few dozen bytes: a guess, grown if short.
        self.keys.reserve(additional.saturating_mul(24));
    }

    /// Writes the change whose canonical text is in `scratch`, and indexes
    /// it under its order key.
    fn record(&mut self, op: Op, key: &[u8], group: &[u8]) -> io::Result<()> {
        let canonical_at = self.canonical.len;
        self.canonical.append(&self.scratch)?;
        if let Some(tail) = &mut self.tail {
            tail.lengths.push(length(self.scratch.len() as u64)?);
        }
        let key_at = self.keys.len();
        self.keys.extend_from_slice(key);
        self.keys.extend_from_slice(group);
        self.index.push(Entry {
            key_at,
            canonical_at,
            key_len: length(key.len() as u64)?,
            group_len: length(group.len() as u64)?,
            canonical_len: length(self.scratch.len() as u64)?,
            op,
        });
        Ok(())
    }

    /// See [`ChangeSpool::finish`]; the counts are the spool's.
    fn finish(self) -> io::Result<Spooled> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (canonical, canonical_len) = self.canonical.into_file()?;
        let keys = self.keys;
        let mut index = self.index;
        let order = |e: &Entry| {
            let key = &keys[e.key_at..e.key_at + e.key_len as usize];
            let group = &keys[e.key_at + e.key_len as usize..][..e.group_len as usize];
            (e.op, key, group)
        };
        index.sort_unstable_by(|a, b| order(a).cmp(&order(b)));
        if let Some(pair) = index.windows(2).find(|p| order(&p[0]) == order(&p[1])) {
            let (op, key, _) = order(&pair[0]);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the change `{}` of key `{}` was derived twice",
                    op.as_str(),
                    crate::escape::field(&String::from_utf8_lossy(key))
                ),
            ));
        }
        Ok(Spooled {
            canonical: (canonical, canonical_len),
            index,
            counts: [0; Op::ALL.len()],
        })
    }
}

/// [`ChangeSpool::tailed`]: the changes as they are
/// written, in the order they were pushed.
pub struct SpoolTail {
    file: File,
    published: std::sync::mpsc::Receiver<Published>,
    buf: Vec<u8>,
}

/// The changes written, batch by batch, waiting for them (on a thread of
/// its own: this blocks); the end once the spool is finished, or stopped
/// by a failure that its `finish` reports.
impl Iterator for SpoolTail {
    type Item = io::Result<Vec<Change>>;

    fn next(&mut self) -> Option<io::Result<Vec<Change>>> {
        use std::os::unix::fs::FileExt;
        let (at, lengths) = self.published.recv().ok()?;
        let total: usize = lengths.iter().map(|n| *n as usize).sum();
        self.buf.resize(total, 0);
        if let Err(e) = self.file.read_exact_at(&mut self.buf, at) {
            return Some(Err(e));
        }
        let mut changes = Vec::with_capacity(lengths.len());
        let mut start = 0;
        for n in lengths {
            let text = &self.buf[start..start + n as usize];
            start += n as usize;
            match serde_json::from_slice(text) {
                Ok(change) => changes.push(change),
                Err(e) => return Some(Err(io::Error::from(e))),
            }
        }
        Some(Ok(changes))
    }
}

/// The changes of a plan, ordered, in temporary files: read back one at a
/// time.
pub struct Spooled {
    canonical: (File, u64),
    index: Vec<Entry>,
    counts: [usize; Op::ALL.len()],
}

impl Spooled {
    /// How many changes of `op` the plan has.
    pub fn count(&self, op: Op) -> usize {
        self.counts[op as usize]
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Gives each change's canonical text to `f`, in the plan's order.
    fn each(&self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let (file, len) = &self.canonical;
        let mut reader = Reader::new(file, *len);
        for entry in &self.index {
            f(reader.read(entry.canonical_at, entry.canonical_len as usize)?)?;
        }
        Ok(())
    }

    /// The digest of `plan` (docs/plan-format.md §11) with these changes as
    /// its `changes`: `plan` holds none, and everything else it will hold
    /// (its `summary` counting these changes, `reverts` if it has one).
    pub fn digest(&self, plan: &Plan) -> io::Result<String> {
        assert!(plan.changes.is_empty(), "the changes are in the spool");
        let mut sealed = Vec::new();
        digest::write_sealed(&mut sealed, plan).map_err(from_canonical)?;
        let (head, tail) = split_at(&sealed, SEALED_CHANGES)?;
        let mut hasher = Sha256::new();
        hasher.update(head);
        let mut first = true;
        self.each(|text| {
            if !std::mem::take(&mut first) {
                hasher.update(b",");
            }
            hasher.update(text);
            Ok(())
        })?;
        hasher.update(tail);
        Ok(digest::hex_of(hasher))
    }

    /// Seals `plan` (which holds no changes, nor a digest yet) with these
    /// changes and writes its file: the digest [`digest`](Self::digest)
    /// gives, and the bytes `Plan::write_pretty` writes for the sealed
    /// plan with them. `seal` is handed the plan once its digest is set,
    /// before what follows the changes is written (an author's signature).
    ///
    /// One read of the spool makes both: the file holds the changes
    /// before the digest, and nothing before the changes depends on it.
    /// The canonical texts are hashed, and the file's bytes written, by a
    /// thread of their own while this one lays out the next changes: the
    /// seal and the write one after the other were a third of `plan` on
    /// PostgreSQL, most of it the kernel filing new pages (issue 15).
    pub fn seal_and_write<W: Write + Send + ?Sized>(
        &self,
        plan: &mut Plan,
        seal: impl FnOnce(&mut Plan) -> io::Result<()>,
        out: &mut W,
    ) -> io::Result<()> {
        assert!(plan.changes.is_empty(), "the changes are in the spool");
        let mut sealed = Vec::new();
        digest::write_sealed(&mut sealed, plan).map_err(from_canonical)?;
        let (sealed_head, sealed_tail) = split_at(&sealed, SEALED_CHANGES)?;
        let unsealed = plan.to_pretty_json();
        let (file_head, _) = split_at(&unsealed, FILE_CHANGES)?;
        let hasher = std::thread::scope(|scope| {
            let (to, from) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_WAITING);
            let (back, recycled) = std::sync::mpsc::channel::<Chunk>();
            let writing = &mut *out;
            let writer = std::thread::Builder::new()
                .name("plan writer".into())
                .spawn_scoped(scope, move || -> io::Result<Sha256> {
                    let mut hasher = Sha256::new();
                    for chunk in from {
                        hasher.update(&chunk.canonical);
                        writing.write_all(&chunk.pretty)?;
                        let _ = back.send(chunk);
                    }
                    Ok(hasher)
                })?;
            let sent = self.send_chunks(sealed_head, file_head, &to, &recycled);
            drop(to);
            let hasher = match writer.join() {
                Ok(hasher) => hasher?,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            // A failure to write stopped the sending: that failure is the
            // one to tell.
            sent.map(|()| hasher)
        })?;
        let mut hasher = hasher;
        hasher.update(sealed_tail);
        plan.digest = digest::hex_of(hasher);
        seal(plan)?;
        let sealed_file = plan.to_pretty_json();
        let (head, tail) = split_at(&sealed_file, FILE_CHANGES)?;
        if head != file_head {
            return Err(io::Error::other(
                "sealing the plan changed what its file holds before the changes",
            ));
        }
        out.write_all(tail)?;
        out.flush()
    }

    /// [`seal_and_write`](Self::seal_and_write)'s reading: the changes,
    /// after the heads given, in chunks of both texts.
    fn send_chunks(
        &self,
        sealed_head: &[u8],
        file_head: &[u8],
        to: &std::sync::mpsc::SyncSender<Chunk>,
        recycled: &std::sync::mpsc::Receiver<Chunk>,
    ) -> io::Result<()> {
        let stopped = || io::Error::other("the plan's writer stopped");
        let mut chunk = Chunk::default();
        chunk.canonical.extend_from_slice(sealed_head);
        chunk.pretty.extend_from_slice(file_head);
        let mut first = true;
        self.each(|text| {
            if std::mem::take(&mut first) {
                chunk.pretty.push(b'\n');
            } else {
                chunk.canonical.push(b',');
                chunk.pretty.extend_from_slice(b",\n");
            }
            chunk.canonical.extend_from_slice(text);
            chunk.pretty.extend_from_slice(ELEMENT_INDENT);
            pretty_element(text, &mut chunk.pretty)?;
            if chunk.pretty.len() >= CHUNK {
                let mut next = recycled.try_recv().unwrap_or_default();
                next.canonical.clear();
                next.pretty.clear();
                to.send(std::mem::replace(&mut chunk, next))
                    .map_err(|_| stopped())?;
            }
            Ok(())
        })?;
        if !self.is_empty() {
            chunk.pretty.extend_from_slice(b"\n  ");
        }
        to.send(chunk).map_err(|_| stopped())
    }

    /// [`changes_digest`](super::changes_digest) of these changes: what
    /// `apply` compares.
    pub fn changes_digest(&self) -> io::Result<String> {
        let mut hasher = digest::ChangesHasher::new();
        self.each(|text| {
            hasher.add_canonical(text);
            Ok(())
        })?;
        Ok(hasher.finish())
    }
}

impl Spooled {
    /// The changes, in the plan's order, each read back as it is asked
    /// for: `apply` writes them in batches.
    pub fn changes(&self) -> SpooledChanges<'_> {
        SpooledChanges {
            spooled: self,
            reader: Reader::new(&self.canonical.0, self.canonical.1),
            next: 0,
        }
    }
}

/// [`Spooled::changes`].
pub struct SpooledChanges<'s> {
    spooled: &'s Spooled,
    reader: Reader<'s>,
    next: usize,
}

impl Iterator for SpooledChanges<'_> {
    type Item = io::Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.spooled.index.get(self.next)?;
        self.next += 1;
        Some(
            self.reader
                .read(entry.canonical_at, entry.canonical_len as usize)
                .and_then(|text| serde_json::from_slice(text).map_err(io::Error::from)),
        )
    }
}

impl super::Changes for Spooled {
    fn each_change(&self, f: &mut dyn FnMut(&Change) -> bool) -> io::Result<()> {
        let mut more = true;
        self.each(|text| {
            if more {
                let change: Change = serde_json::from_slice(text)?;
                more = f(&change);
            }
            Ok(())
        })
    }
}

/// The members of a change in the order the plan file writes them
/// (`ChangeRecord`'s, src/plan/change.rs): a twin of that declaration,
/// held to it by the spool's tests, which lay out changes of every op both
/// ways and compare the bytes.
const FILE_ORDER: [&[u8]; 10] = [
    b"op",
    b"key",
    b"value",
    b"user_id",
    b"username",
    b"group_id",
    b"group_name",
    b"membership",
    b"subject",
    b"role",
];

/// Appends to `out` the change whose canonical text is `canonical` as the
/// plan file spells it inside `changes` (after its indent): what
/// `serde_json::to_writer_pretty` writes for the change, each line
/// indented by [`ELEMENT_INDENT`].
///
/// A change is one flat object whose members are strings and one document
/// (`value`), which the file writes on one line in its canonical form
/// (docs/plan-format.md §1), and serde_json writes a string the way the
/// canonical form does (§10): so each member's text is the same in both,
/// and only their order and the white space between them differ. The
/// members are found with the fast reader, but for the document, the last
/// member of a canonical text; a text it is not sure of (one the canonical
/// writer would not write) is read as a change and written by serde_json,
/// as the spool once wrote every change.
pub(super) fn pretty_element(canonical: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let Some(members) = members_in_file_order(canonical) else {
        let change: Change = serde_json::from_slice(canonical)?;
        let mut pretty = Vec::new();
        serde_json::to_writer_pretty(&mut pretty, &change)?;
        // The change alone is written at depth 0; in the file it is at
        // depth 2. Its only line breaks are its layout's (a string's are
        // escaped, a document is on one line).
        for (i, line) in pretty.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                out.push(b'\n');
                out.extend_from_slice(ELEMENT_INDENT);
            }
            out.extend_from_slice(line);
        }
        return Ok(());
    };
    out.push(b'{');
    let mut first = true;
    for (name, text) in FILE_ORDER.iter().zip(members) {
        let Some(text) = text else { continue };
        out.extend_from_slice(if std::mem::take(&mut first) {
            b"\n      \""
        } else {
            b",\n      \""
        });
        out.extend_from_slice(name);
        out.extend_from_slice(b"\": ");
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\n    }");
    Ok(())
}

/// The texts of the members of the flat object `canonical`, a change's
/// canonical text (docs/plan-format.md §10: its members sorted, so `value`
/// last), in [`FILE_ORDER`]; `None` when it is not surely one of a
/// change's.
pub(super) fn members_in_file_order(canonical: &[u8]) -> Option<[Option<&[u8]>; FILE_ORDER.len()]> {
    let mut members = [None; FILE_ORDER.len()];
    let mut scanner = super::fast_json::Scanner::new(canonical);
    if !scanner.eat(b'{') || scanner.eat(b'}') {
        return None;
    }
    loop {
        let start = scanner.pos;
        if scanner.peek() != Some(b'"') || !scanner.value(1) {
            return None;
        }
        let name = &canonical[start + 1..scanner.pos - 1];
        if !scanner.eat(b':') {
            return None;
        }
        let start = scanner.pos;
        if name == b"value" {
            // The document, which sorts after every other member, is the
            // last: it runs to the closing brace. Not read through: it is
            // most of the text, and the spool's texts are the canonical
            // writer's own (a plan file read is checked elsewhere).
            let end = canonical.len().checked_sub(1)?;
            let slot = FILE_ORDER.iter().position(|known| *known == name)?;
            if canonical[end] != b'}' || start >= end || members[slot].is_some() {
                return None;
            }
            members[slot] = Some(&canonical[start..end]);
            return Some(members);
        }
        if !scanner.value(1) {
            return None;
        }
        let slot = FILE_ORDER.iter().position(|known| *known == name)?;
        if members[slot]
            .replace(&canonical[start..scanner.pos])
            .is_some()
        {
            return None;
        }
        if scanner.eat(b',') {
            continue;
        }
        return (scanner.eat(b'}') && scanner.pos == canonical.len()).then_some(members);
    }
}

/// Reads ranges of a file: ahead, in large blocks, while they follow one
/// another (changes pushed in the plan's order), else each alone.
struct Reader<'f> {
    file: &'f File,
    len: u64,
    buf: Vec<u8>,
    /// Where `buf` starts in the file.
    start: u64,
    /// Where the last range ended.
    last_end: u64,
}

impl<'f> Reader<'f> {
    fn new(file: &'f File, len: u64) -> Self {
        Reader {
            file,
            len,
            buf: Vec::new(),
            start: 0,
            last_end: 0,
        }
    }

    fn read(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let end = at + n as u64;
        let held = self.start..=self.start + self.buf.len() as u64;
        if !(held.contains(&at) && held.contains(&end)) {
            let want = if at == self.last_end {
                (n.max(READ_AHEAD) as u64).min(self.len - at) as usize
            } else {
                n
            };
            self.buf.resize(want, 0);
            read_at(self.file, &mut self.buf, at)?;
            self.start = at;
        }
        self.last_end = end;
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + n])
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, at)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

impl crate::sync::ChangeSink for ChangeSpool {
    fn push(&mut self, change: Change) {
        ChangeSpool::push(self, change)
    }

    fn push_binding_copy(&mut self, copy: BindingCopy) {
        ChangeSpool::push_binding_copy(self, copy)
    }

    fn reserve(&mut self, additional: usize) {
        let _ = self.to.send(Message::Reserve(additional));
    }
}
