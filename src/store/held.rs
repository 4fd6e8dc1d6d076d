//! The binding rows [`super::Store::derive`] keeps between its two passes,
//! packed: each row's two texts one after the other in large blocks, and a
//! small entry per row (issue 15).
//!
//! Kept as the rows they were read as (two `String`s and a 64-byte row
//! each), a million demo bindings took about 200 MiB by that count, more
//! with the allocator's rounding, and two allocations a row; packed they
//! take 156 MiB: their bytes and 24 bytes of entry, in few blocks. `plan`'s
//! peak at 1M fell by about 50 MiB; its time stayed within the noise
//! (BENCHMARKS.md, round 10). The second pass gets each row back as a
//! [`RawDoc`] again, one at a time.

use crate::sync::RawDoc;

/// The size of a block of texts (a row longer than this gets one of its
/// own).
const BLOCK: usize = 4 << 20;

/// One row: its texts' lengths, in order, in the blocks.
struct Entry {
    key_len: u32,
    value_len: u32,
    undecodable: Option<&'static str>,
}

#[derive(Default)]
pub(super) struct HeldRows {
    blocks: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    bytes: usize,
}

impl HeldRows {
    /// What the rows take, in bytes: their texts, their entries and the
    /// room left in their blocks.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps `raw`; `false` (and nothing kept) when a text is 4 GiB or
    /// more, which no budget holds anyway.
    pub(super) fn push(&mut self, raw: &RawDoc) -> bool {
        let (Ok(key_len), Ok(value_len)) =
            (u32::try_from(raw.key.len()), u32::try_from(raw.value.len()))
        else {
            return false;
        };
        let n = raw.key.len() + raw.value.len();
        let block = match self.blocks.last_mut() {
            Some(block) if block.capacity() - block.len() >= n => block,
            _ => {
                let capacity = n.max(BLOCK);
                self.bytes += capacity;
                self.blocks.push(Vec::with_capacity(capacity));
                self.blocks.last_mut().expect("just pushed")
            }
        };
        block.extend_from_slice(raw.key.as_bytes());
        block.extend_from_slice(raw.value.as_bytes());
        if self.entries.len() == self.entries.capacity() {
            self.bytes += self.entries.capacity().max(1024) * std::mem::size_of::<Entry>();
        }
        self.entries.push(Entry {
            key_len,
            value_len,
            undecodable: raw.undecodable,
        });
        true
    }

    /// Keeps `raw` in `held` while they all take at most `budget` bytes;
    /// past that, frees them all at once and keeps `None`.
    pub(super) fn keep(held: &mut Option<HeldRows>, raw: &RawDoc, budget: usize) {
        if let Some(rows) = held {
            if !rows.push(raw) || rows.bytes() > budget {
                *held = None;
            }
        }
    }

    /// Gives each row to `visit`, in the order they were kept.
    pub(super) fn drain(self, visit: &mut dyn FnMut(RawDoc)) {
        let mut entries = self.entries.into_iter();
        for block in self.blocks {
            let mut at = 0;
            while at < block.len() {
                let entry = entries.next().expect("an entry for every row kept");
                let key_end = at + entry.key_len as usize;
                let end = key_end + entry.value_len as usize;
                // The texts were `String`s: each still is UTF-8.
                let text = |range: std::ops::Range<usize>| {
                    String::from_utf8(block[range].to_vec()).expect("kept from a String")
                };
                visit(RawDoc {
                    key: text(at..key_end),
                    value: text(key_end..end),
                    undecodable: entry.undecodable,
                });
                at = end;
            }
        }
        // Rows with two empty texts take no room in a block.
        for entry in entries {
            debug_assert_eq!(entry.key_len + entry.value_len, 0);
            visit(RawDoc {
                key: String::new(),
                value: String::new(),
                undecodable: entry.undecodable,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row comes back as it was kept, in order, across blocks,
    /// rows larger than a block and rows with empty texts included.
    #[test]
    fn the_rows_come_back_as_they_were_kept() {
        let mut rows = vec![
            RawDoc::new("", ""),
            RawDoc::new("k", ""),
            RawDoc::new("", "v"),
        ];
        for i in 0..30_000 {
            rows.push(RawDoc::new(format!("key-{i}"), "é".repeat(i % 300)));
        }
        rows.push(RawDoc::new("big", "x".repeat(BLOCK + 1)));
        rows.push(RawDoc::from_bytes(b"bad\xff".to_vec(), b"{}".to_vec()));
        rows.push(RawDoc::new("", ""));
        let mut held = HeldRows::default();
        for row in &rows {
            assert!(held.push(row));
        }
        assert_eq!(held.len(), rows.len());
        assert!(held.bytes() >= rows.iter().map(|r| r.key.len() + r.value.len()).sum());
        let mut back = Vec::new();
        held.drain(&mut |raw| back.push(raw));
        assert_eq!(back.len(), rows.len());
        for (got, want) in back.iter().zip(&rows) {
            assert_eq!(
                (&got.key, &got.value, got.undecodable),
                (&want.key, &want.value, want.undecodable)
            );
        }
    }
}
