//! A plan's changes re-read from the bytes of its file, one at a time
//! (issue 15): `show` keeps the file's bytes, which it read once to check
//! the plan ([`super::parse_without_changes`]), and parses each change again
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

use super::{load::refused, parse_without_changes, read_bytes, read_capped, Changes, Loaded};
use crate::error::{Error, Result};
use crate::sync::{Change, Op};

/// A plan read and checked as [`super::load`] does, without its changes,
/// and the bytes it was read from, which hold them.
pub struct Lean {
    pub bytes: Vec<u8>,
    /// The plan without its changes (`summary` counts them) and the digest
    /// its content hashes to.
    pub loaded: Loaded,
}

impl Lean {
    /// The plan's changes, read from [`Lean::bytes`] when asked for.
    pub fn changes(&self) -> Result<ChangesText<'_>> {
        ChangesText::of_plan(&self.bytes)
            .map_err(|e| Error::refused(format!("not a valid plan: {e}")))
    }
}

/// [`super::load`] of `path`, keeping the bytes rather than the changes.
pub fn load_lean(path: &Path) -> Result<Lean> {
    let bytes = read_bytes(path)?;
    let scanned = parse_without_changes(&bytes).map_err(|why| refused(path, why))?;
    Ok(Lean {
        bytes,
        loaded: scanned.loaded,
    })
}

/// [`super::load_stdin`], keeping the bytes rather than the changes.
pub fn load_lean_stdin() -> Result<Lean> {
    let limit = super::max_plan_bytes();
    let refuse = |msg: String| Error::refused(format!("stdin: {msg}"));
    let bytes = read_capped(std::io::stdin().lock(), limit)
        .map_err(|e| Error::io_on("stdin", e))?
        .ok_or_else(|| refuse(format!("not a valid plan: over the limit of {limit} bytes")))?;
    let scanned = parse_without_changes(&bytes).map_err(refuse)?;
    Ok(Lean {
        bytes,
        loaded: scanned.loaded,
    })
}

/// Where each op's changes are in the array, in the plan's order.
type OpRanges = Vec<(Op, Range<usize>)>;

/// The `changes` array of a plan file's text, read one change at a time.
pub struct ChangesText<'t> {
    /// The array, `[` to `]`.
    text: &'t str,
    /// Where each op's changes are in `text`, learnt on the first walk
    /// that reads them all (changes are in the order of their op).
    ops: RefCell<Option<OpRanges>>,
}

impl<'t> ChangesText<'t> {
    /// The changes of `array`, the text of a JSON array of changes.
    pub fn new(array: &'t str) -> Self {
        ChangesText {
            text: array,
            ops: RefCell::new(None),
        }
    }

    /// The changes of a plan file's bytes (already checked).
    pub fn of_plan(bytes: &'t [u8]) -> std::result::Result<Self, String> {
        #[derive(Deserialize)]
        struct Locate<'a> {
            #[serde(borrow)]
            changes: &'a RawValue,
        }
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let found: Locate = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(ChangesText::new(found.changes.get()))
    }

    /// Gives each change from byte `from` of the array (the start of a
    /// change, or just after `[`) with where it is, until `f` says `false`
    /// or the array ends; whether it ended.
    fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(Range<usize>, &Change) -> bool,
    ) -> io::Result<bool> {
        let text = self.text;
        let bytes = text.as_bytes();
        let skip = |mut at: usize| {
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            at
        };
        let broken = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut at = skip(from);
        loop {
            match bytes.get(at) {
                Some(b']') => return Ok(true),
                Some(_) => {}
                None => return Err(broken("the changes end before `]`".into())),
            }
            let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Change>();
            let change = match stream.next() {
                Some(Ok(change)) => change,
                Some(Err(e)) => return Err(broken(format!("a change does not read again: {e}"))),
                None => return Err(broken("the changes end before `]`".into())),
            };
            let end = at + stream.byte_offset();
            if !f(at..end, &change) {
                return Ok(false);
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
}

impl Changes for ChangesText<'_> {
    fn each_change(&self, f: &mut dyn FnMut(&Change) -> bool) -> io::Result<()> {
        let learn = self.ops.borrow().is_none();
        let mut ops: OpRanges = Vec::new();
        let ended = self.walk(self.first(), &mut |at, change| {
            if learn {
                let op = change.op();
                match ops.last_mut() {
                    Some((last, range)) if *last == op => range.end = at.end,
                    _ => ops.push((op, at)),
                }
            }
            f(change)
        })?;
        if learn && ended {
            *self.ops.borrow_mut() = Some(ops);
        }
        Ok(())
    }

    fn each_change_of(&self, op: Op, f: &mut dyn FnMut(&Change) -> bool) -> io::Result<()> {
        let known = self.ops.borrow().clone();
        match known {
            Some(ops) => {
                let Some((_, range)) = ops.into_iter().find(|(o, _)| *o == op) else {
                    return Ok(());
                };
                self.walk(range.start, &mut |at, change| {
                    at.start < range.end && f(change)
                })?;
                Ok(())
            }
            None => self.each_change(&mut |change| change.op() != op || f(change)),
        }
    }
}
