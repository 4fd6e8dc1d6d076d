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
    let mut out = std::io::BufWriter::with_capacity(1 << 16, Hashing(Sha256::new()));
    write(&mut out).expect("hashing cannot fail");
    let Ok(Hashing(hasher)) = out.into_inner() else {
        unreachable!("hashing cannot fail")
    };
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in hasher.finalize() {
        hex.push_str(&format!("{byte:02x}"));
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
struct Sealed<'a> {
    applyable: bool,
    changes: &'a [Change],
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

/// The same digest as [`digest_of`], streamed from the typed plan.
pub fn digest_of_plan(plan: &Plan) -> String {
    let sealed = Sealed {
        applyable: plan.applyable,
        changes: &plan.changes,
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
    };
    sha256_of(|out| canonical::to_writer(out, &sealed))
}

/// `sha256:<hex>` of the changes' canonical JSON, one per line: what `apply`
/// compares, so that it need not keep the approved changes themselves.
pub fn changes_digest(changes: &[Change]) -> String {
    sha256_of(|out| {
        for change in changes {
            canonical::to_writer(&mut *out, change)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
}
