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
                self.plan.digest,
                self.computed_digest
            )))
        }
    }
}

/// Reads and validates a plan file: size, JSON, format and shape. The digest
/// is recomputed but not enforced here (`show` displays altered plans with a
/// warning); see [`Loaded::require_intact`].
pub fn load(path: &Path) -> Result<Loaded> {
    let refuse = |msg: String| Error::refused(format!("{}: {msg}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_PLAN_BYTES {
        return Err(refuse(format!(
            "not a valid plan: {} bytes is over the limit of {MAX_PLAN_BYTES} bytes",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(refuse)
}

/// Reads and validates a plan from stdin (`show -`), within the same size
/// limit as a file.
pub fn load_stdin() -> Result<Loaded> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io_on("stdin", e))?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(Error::refused(format!(
            "stdin: not a valid plan: over the limit of {MAX_PLAN_BYTES} bytes"
        )));
    }
    parse(&bytes).map_err(|msg| Error::refused(format!("stdin: {msg}")))
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
            format!("not a valid plan: not JSON ({e})")
        }
    })?;
    match probe.format {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(Value::String(f)) => {
            return Err(format!("not a valid plan: format `{f}` is not `{FORMAT}`"))
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
    let plan: Plan =
        serde_json::from_slice(bytes).map_err(|e| format!("not a valid {FORMAT} plan: {e}"))?;
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
    for change in &plan.changes {
        if let Some(problem) = change_mismatch(change, &plan.tenant) {
            return bad(format!(
                "change `{} {}`: {problem}",
                change.op().as_str(),
                change.key()
            ));
        }
    }
    for pair in plan.changes.windows(2) {
        if pair[0].sort_key() >= pair[1].sort_key() {
            return bad(format!(
                "changes are not in order or repeat a change (`{}` {} then `{}` {})",
                pair[0].op().as_str(),
                pair[0].key(),
                pair[1].op().as_str(),
                pair[1].key()
            ));
        }
    }
    Ok(())
}

/// Whether a change says what it does: its key is where its document goes,
/// in the plan's tenant. A reviewer reads keys and names; apply writes
/// documents: they must agree.
fn change_mismatch(change: &Change, tenant: &str) -> Option<String> {
    let (key, value, in_tenant) = match change {
        Change::CreateTenant { key, value } => (key, value, false),
        Change::AddRole { key, value }
        | Change::AddGroup { key, value }
        | Change::AddBinding { key, value, .. } => (key, value, true),
        // A user's key is its id in SPEC §2, but the plan names the key the
        // store really has: nothing to cross-check.
        Change::AddMembership { .. } => return None,
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
            return Some(format!("its key is not `{tenant}_{id}`"));
        }
    } else if key != id || id != tenant {
        return Some(format!("it does not create tenant `{tenant}`"));
    }
    None
}
