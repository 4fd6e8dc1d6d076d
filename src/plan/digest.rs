//! What a plan's digest covers, and how anyone recomputes it: `sha256:` and
//! the hex SHA-256 of the canonical JSON of the plan without `digest`,
//! `author_signature` and `approvals` (docs/plan-format.md §11), so that signing and
//! approving never change what was approved.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{canonical, Options, Plan, Source, Summary};
use crate::sync::{Change, Context, Finding};

/// A writer that hashes what it is given.
struct Hashing(Sha256);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sha256:<hex>` of what `write` writes.
fn sha256_of(write: impl FnOnce(&mut dyn Write) -> Result<(), canonical::Error>) -> String {
    try_sha256_of(write).expect("hashing cannot fail")
}

/// `sha256:<hex>` of what `write` writes, or why `write` stopped (a
/// streamed source that turned out not to be valid).
pub(super) fn try_sha256_of(
    write: impl FnOnce(&mut dyn Write) -> Result<(), canonical::Error>,
) -> Result<String, canonical::Error> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, Hashing(Sha256::new()));
    write(&mut out)?;
    let Ok(Hashing(hasher)) = out.into_inner() else {
        unreachable!("hashing cannot fail")
    };
    Ok(hex_of(hasher))
}

pub(super) fn hex_of(hasher: Sha256) -> String {
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// `sha256:<hex>` of the canonical JSON of `plan` (a plan as JSON) without
/// `digest`, `author_signature` and `approvals`: what any third party
/// computes.
pub fn digest_of(plan: &Value) -> String {
    sha256_of(|out| match plan {
        Value::Object(map) => {
            let mut sealed = map.clone();
            sealed.remove("digest");
            sealed.remove("author_signature");
            sealed.remove("approvals");
            canonical::to_writer(out, &sealed)
        }
        other => canonical::to_writer(out, other),
    })
}

/// What the digest covers, declared in canonical order so that the writer
/// streams it: no copy of a million changes is ever built. Not `digest`,
/// `author_signature` or `approvals`: they are added after sealing.
#[derive(Serialize)]
#[serde(rename = "$sync_access::canonical::in_order")]
struct Sealed<'a, C> {
    applyable: bool,
    /// The plan's changes, or a reader that streams them from the file
    /// (`load::parse_without_changes`).
    changes: C,
    conflicts: &'a [Finding],
    /// Only when there is one: a plan without it hashes as before it
    /// existed, as its JSON (which omits it) does.
    #[serde(skip_serializing_if = "Context::is_empty")]
    context: &'a Context,
    created_at: &'a str,
    created_by: &'a str,
    format: &'a str,
    options: &'a Options,
    /// Only in a revert plan: other plans hash as before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    reverts: Option<&'a str>,
    skipped: &'a [Finding],
    source: &'a Source,
    summary: &'a Summary,
    tenant: &'a str,
    tool_version: &'a str,
}

/// Writes the canonical JSON that `plan`'s digest covers, its own changes
/// included (the spool splices its changes into a plan that has none).
pub(super) fn write_sealed(out: &mut dyn Write, plan: &Plan) -> Result<(), canonical::Error> {
    canonical::to_writer(out, &sealed(plan, &plan.changes[..]))
}

/// The same digest as [`digest_of`], streamed from the typed plan.
pub fn digest_of_plan(plan: &Plan) -> String {
    digest_with_changes(plan, &plan.changes[..]).expect("our values serialise")
}

/// The digest of `plan` with `changes` in place of its own: the changes
/// of a plan read without keeping them are serialised as they are read.
pub(super) fn digest_with_changes<C: Serialize>(
    plan: &Plan,
    changes: C,
) -> Result<String, canonical::Error> {
    let sealed = sealed(plan, changes);
    try_sha256_of(|out| canonical::to_writer(out, &sealed))
}

fn sealed<C>(plan: &Plan, changes: C) -> Sealed<'_, C> {
    Sealed {
        applyable: plan.applyable,
        changes,
        conflicts: &plan.conflicts,
        context: &plan.context,
        created_at: &plan.created_at,
        created_by: &plan.created_by,
        format: &plan.format,
        options: &plan.options,
        reverts: plan.reverts.as_deref(),
        skipped: &plan.skipped,
        source: &plan.source,
        summary: &plan.summary,
        tenant: &plan.tenant,
        tool_version: &plan.tool_version,
    }
}

/// The digest of a plan whose changes' canonical text comes from
/// elsewhere, in order (`stream.rs` reads them on every core): the same
/// bytes as [`digest_with_changes`] hashes.
pub(super) struct SealedHasher {
    hasher: Sha256,
    /// What follows the changes: `]`, then the members after `changes`.
    rest: Vec<u8>,
    first: bool,
}

impl SealedHasher {
    pub(super) fn new(plan: &Plan) -> Self {
        // `changes` is the second member, after a boolean: the first
        // `"changes":[` is where its elements go.
        let text = canonical::to_vec(&sealed(plan, &[] as &[Change]));
        let open = br#""changes":["#;
        let at = text
            .windows(open.len())
            .position(|w| w == open)
            .expect("a plan's canonical text has its changes")
            + open.len();
        let mut hasher = Sha256::new();
        hasher.update(&text[..at]);
        SealedHasher {
            hasher,
            rest: text[at..].to_vec(),
            first: true,
        }
    }

    /// `elements`: canonical changes, each followed by a comma.
    pub(super) fn add(&mut self, elements: &[u8]) {
        let Some((&b',', elements)) = elements.split_last() else {
            debug_assert!(elements.is_empty(), "each change is followed by a comma");
            return;
        };
        if !self.first {
            self.hasher.update(b",");
        }
        self.first = false;
        self.hasher.update(elements);
    }

    pub(super) fn finish(mut self) -> String {
        self.hasher.update(&self.rest);
        hex_of(self.hasher)
    }
}

/// `sha256:<hex>` of the changes' canonical JSON, one per line: what `apply`
/// compares, so that it need not keep the approved changes themselves.
pub fn changes_digest(changes: &[Change]) -> String {
    let mut hasher = ChangesHasher::new();
    for change in changes {
        hasher.add(change);
    }
    hasher.finish()
}

/// [`changes_digest`] one change at a time, as a plan file is read.
pub(super) struct ChangesHasher(std::io::BufWriter<Hashing>);

impl ChangesHasher {
    pub(super) fn new() -> Self {
        ChangesHasher(std::io::BufWriter::with_capacity(
            1 << 16,
            Hashing(Sha256::new()),
        ))
    }

    pub(super) fn add(&mut self, change: &Change) {
        canonical::to_writer(&mut self.0, change).expect("a change serialises to a hash");
        self.0.write_all(b"\n").expect("hashing cannot fail");
    }

    /// [`Self::add`] of a change already written in canonical form.
    pub(super) fn add_canonical(&mut self, canonical: &[u8]) {
        self.0.write_all(canonical).expect("hashing cannot fail");
        self.0.write_all(b"\n").expect("hashing cannot fail");
    }

    pub(super) fn finish(self) -> String {
        let Ok(Hashing(hasher)) = self.0.into_inner() else {
            unreachable!("hashing cannot fail")
        };
        hex_of(hasher)
    }
}
