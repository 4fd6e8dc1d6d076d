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
    let refuse = |msg: String| Error::refused(format!("{}: {msg}", path.display()));
    let limit = max_plan_bytes();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_file() && meta.len() > limit {
        return Err(refuse(format!(
            "not a valid plan: {} bytes is over the limit of {limit} bytes",
            meta.len()
        )));
    }
    let bytes = read_capped(file, limit)
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| refuse(over_the_limit(limit)))?;
    parse(&bytes).map_err(refuse)
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
    use std::io::Read;
    let mut capped = input.take(limit.saturating_add(1));
    let mut bytes = Vec::new();
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
    // A member given twice would be read by serde with the last value, by
    // another reader perhaps with the first, under the same digest.
    let text =
        std::str::from_utf8(bytes).map_err(|_| "not a valid plan: not UTF-8 text".to_string())?;
    super::canonical::check(text).map_err(|unfit| format!("not a valid plan: {unfit}"))?;
    // serde's message quotes the file (an unknown field's name, a value of
    // the wrong type): escaped.
    let plan: Plan = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "not a valid {FORMAT} plan: {}",
            crate::escape::field(&e.to_string())
        )
    })?;
    check_consistency(&plan)?;
    let computed_digest = digest_of_plan(&plan);
    Ok(Loaded {
        plan,
        computed_digest,
    })
}

/// What the shape alone cannot say: a plan must be internally coherent, so
/// that a reviewer reading its summary reads the truth about its changes.
fn check_consistency(plan: &Plan) -> std::result::Result<(), String> {
    let bad = |msg: String| Err(format!("not a valid plan: {msg}"));
    for op in Op::ALL {
        let actual = plan.changes.iter().filter(|c| c.op() == op).count();
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
    if let Some(change) = plan
        .changes
        .iter()
        .find(|c| c.op().is_removal() != plan.reverts.is_some())
    {
        return bad(format!(
            "change `{} {}`: {}",
            change.op().as_str(),
            change.key(),
            if plan.reverts.is_some() {
                "a revert plan holds only removals"
            } else {
                "a removal belongs in a revert plan (with `reverts`)"
            }
        ));
    }
    for change in &plan.changes {
        if let Some(problem) = change_mismatch(change, &plan.tenant) {
            return bad(format!(
                "change `{} {}`: {problem}",
                change.op().as_str(),
                crate::escape::field(change.key())
            ));
        }
    }
    for pair in plan.changes.windows(2) {
        if pair[0].sort_key() >= pair[1].sort_key() {
            return bad(format!(
                "changes are not in order or repeat a change (`{}` {} then `{}` {})",
                pair[0].op().as_str(),
                crate::escape::field(pair[0].key()),
                pair[1].op().as_str(),
                crate::escape::field(pair[1].key())
            ));
        }
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
