//! The plan file (SPEC §4): its shape, canonical JSON, digest and approvals.
//!
//! A plan read from disk is untrusted until [`load`] has checked its format,
//! shape and digest. The digest covers everything but `digest`,
//! `author_signature` and `approvals`, so that signing and approving never
//! change what was approved (and a plan without an author signature hashes
//! exactly as plans always did).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::sync::{Change, Finding, Op, SyncOptions, SyncResult};

pub const FORMAT: &str = "sync-access/plan/v1";

/// Plans larger than this are refused before parsing (a hostile or broken
/// file must not exhaust memory). A million bindings take about 400 MiB.
pub const MAX_PLAN_BYTES: u64 = 2 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format: String,
    pub tool_version: String,
    pub created_at: String,
    pub created_by: String,
    pub source: Source,
    pub tenant: String,
    pub options: Options,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub skipped: Vec<Finding>,
    pub conflicts: Vec<Finding>,
    pub applyable: bool,
    pub digest: String,
    /// The author's SSH signature over `{created_at, created_by, digest}`
    /// (see `signing`); outside what the digest covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_signature: Option<String>,
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub backend: String,
    /// The URL with any password removed.
    pub database: String,
    pub identity: String,
}

/// The sync options besides the tenant, so that `apply` re-derives exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub create_tenant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_name: Option<String>,
    pub skip_conflicts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub create_tenant: usize,
    pub add_role: usize,
    pub add_group: usize,
    pub add_membership: usize,
    pub add_binding: usize,
    pub present: usize,
    pub skipped: usize,
    pub conflicts: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    pub fn of(result: &SyncResult) -> Self {
        Summary {
            create_tenant: result.count(Op::CreateTenant),
            add_role: result.count(Op::AddRole),
            add_group: result.count(Op::AddGroup),
            add_membership: result.count(Op::AddMembership),
            add_binding: result.count(Op::AddBinding),
            present: result.present_total(),
            skipped: result.skipped.len(),
            conflicts: result.conflicts.len(),
        }
    }

    pub fn changes(&self) -> usize {
        self.create_tenant + self.add_role + self.add_group + self.add_membership + self.add_binding
    }

    pub fn count(&self, op: Op) -> usize {
        match op {
            Op::CreateTenant => self.create_tenant,
            Op::AddRole => self.add_role,
            Op::AddGroup => self.add_group,
            Op::AddMembership => self.add_membership,
            Op::AddBinding => self.add_binding,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub by: String,
    pub at: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Who and when, from the environment, so that commands stay testable.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub created_at: String,
    pub created_by: String,
}

impl Plan {
    /// Builds a plan from a sync result and seals it with its digest.
    pub fn new(
        result: SyncResult,
        options: &SyncOptions,
        source: Source,
        provenance: Provenance,
    ) -> Self {
        let summary = Summary::of(&result);
        let mut plan = Plan {
            format: FORMAT.to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: provenance.created_at,
            created_by: provenance.created_by,
            source,
            tenant: options.tenant.clone(),
            options: Options {
                create_tenant: options.create_tenant,
                tenant_name: options.tenant_name.clone(),
                skip_conflicts: options.skip_conflicts,
            },
            summary,
            applyable: result.conflicts.is_empty(),
            changes: result.changes,
            skipped: result.skipped,
            conflicts: result.conflicts,
            digest: String::new(),
            author_signature: None,
            approvals: Vec::new(),
        };
        plan.digest = digest_of_plan(&plan);
        plan
    }

    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            tenant: self.tenant.clone(),
            create_tenant: self.options.create_tenant,
            tenant_name: self.options.tenant_name.clone(),
            skip_conflicts: self.options.skip_conflicts,
        }
    }

    /// Writes the plan file: pretty JSON (each document on one line, in its
    /// canonical form) and a final newline, streamed.
    pub fn write_pretty(&self, out: impl std::io::Write) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        serde_json::to_writer_pretty(&mut out, self).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The plan file's bytes (small plans and tests).
    pub fn to_pretty_json(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_pretty(&mut bytes)
            .expect("writing to a Vec cannot fail");
        bytes
    }

    pub fn short_digest(&self) -> &str {
        let hex = self.digest.strip_prefix("sha256:").unwrap_or(&self.digest);
        // A hostile digest need not be ASCII: cut on a character boundary.
        let end = hex.char_indices().nth(12).map_or(hex.len(), |(i, _)| i);
        &hex[..end]
    }

    /// The approvals whose digest is this plan's.
    pub fn matching_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals
            .iter()
            .filter(move |a| a.digest == self.digest)
    }
}

/// Canonical JSON of SPEC §4: object keys sorted by their UTF-8 bytes, no
/// insignificant whitespace, serde_json's minimal string escaping. (Without
/// serde_json's `preserve_order`, a `Value`'s keys are sorted: its compact
/// form is canonical.)
pub fn canonical_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a Value always serialises")
}

/// `sha256:<hex>` of the canonical JSON of a list of changes: what `apply`
/// compares, so that it need not keep the approved changes themselves.
pub fn changes_digest(changes: &[Change]) -> String {
    let mut hasher = Sha256::new();
    for change in changes {
        let record = serde_json::to_vec(&change.canonical_record()).expect("changes serialise");
        hasher.update(&record);
        hasher.update(b"\n");
    }
    hex_digest(hasher)
}

/// `sha256:<hex>` of the canonical JSON of `plan` (a plan as JSON) without
/// `digest`, `author_signature` and `approvals`: what any third party
/// computes.
pub fn digest_of(plan: &Value) -> String {
    let mut hasher = Sha256::new();
    match plan {
        Value::Object(map) => {
            let mut sealed = map.clone();
            sealed.remove("digest");
            sealed.remove("author_signature");
            sealed.remove("approvals");
            hasher.update(canonical_json(&Value::Object(sealed)));
        }
        other => hasher.update(canonical_json(other)),
    }
    hex_digest(hasher)
}

fn hex_digest(hasher: Sha256) -> String {
    let hash = hasher.finalize();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in hash {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The same digest as [`digest_of`], streamed from the typed plan: no
/// `Value` of a million changes is ever built. Each top-level member is
/// written in canonical key order; documents are already canonical text.
pub fn digest_of_plan(plan: &Plan) -> String {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    fn member<T: Serialize>(out: &mut impl Write, first: bool, name: &str, value: &T) {
        if !first {
            out.write_all(b",").expect("hashing cannot fail");
        }
        serde_json::to_writer(&mut *out, name).expect("hashing cannot fail");
        out.write_all(b":").expect("hashing cannot fail");
        // Small members go through Value, whose compact form is canonical.
        let value = serde_json::to_value(value).expect("plan members serialise");
        serde_json::to_writer(&mut *out, &value).expect("hashing cannot fail");
    }
    fn list<T>(out: &mut impl Write, name: &str, items: &[T], write: impl Fn(&mut dyn Write, &T)) {
        out.write_all(b",").expect("hashing cannot fail");
        serde_json::to_writer(&mut *out, name).expect("hashing cannot fail");
        out.write_all(b":[").expect("hashing cannot fail");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.write_all(b",").expect("hashing cannot fail");
            }
            write(&mut *out, item);
        }
        out.write_all(b"]").expect("hashing cannot fail");
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, Hashing(Sha256::new()));
    out.write_all(b"{").expect("hashing cannot fail");
    // Keys in byte order: applyable, changes, conflicts, created_at,
    // created_by, format, options, skipped, source, summary, tenant,
    // tool_version.
    member(&mut out, true, "applyable", &plan.applyable);
    list(&mut out, "changes", &plan.changes, |out, change| {
        serde_json::to_writer(out, &change.canonical_record()).expect("hashing cannot fail")
    });
    let finding = |out: &mut dyn Write, finding: &Finding| {
        let value = serde_json::to_value(finding).expect("findings serialise");
        serde_json::to_writer(out, &value).expect("hashing cannot fail")
    };
    list(&mut out, "conflicts", &plan.conflicts, finding);
    member(&mut out, false, "created_at", &plan.created_at);
    member(&mut out, false, "created_by", &plan.created_by);
    member(&mut out, false, "format", &plan.format);
    member(&mut out, false, "options", &plan.options);
    list(&mut out, "skipped", &plan.skipped, finding);
    member(&mut out, false, "source", &plan.source);
    member(&mut out, false, "summary", &plan.summary);
    member(&mut out, false, "tenant", &plan.tenant);
    member(&mut out, false, "tool_version", &plan.tool_version);
    out.write_all(b"}").expect("hashing cannot fail");
    let Ok(Hashing(hasher)) = out.into_inner() else {
        unreachable!("hashing cannot fail")
    };
    hex_digest(hasher)
}

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

/// RFC 3339 in UTC, to the second; `SOURCE_DATE_EPOCH` fixes it for
/// reproducible output.
pub fn now_rfc3339() -> Result<String> {
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(raw) => {
            let secs: u64 = raw.trim().parse().map_err(|_| {
                Error::usage(format!(
                    "SOURCE_DATE_EPOCH `{raw}` is not a number of seconds"
                ))
            })?;
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        }
        Err(_) => std::time::SystemTime::now(),
    };
    Ok(humantime::format_rfc3339_seconds(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../tests/fixtures/example-plan.json");

    #[test]
    fn the_spec_example_digest_is_reproduced() {
        let raw: Value = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(
            digest_of(&raw),
            raw["digest"].as_str().unwrap(),
            "canonical JSON must match SPEC §4's test vector"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_by_bytes_and_escapes_minimally() {
        let value: Value =
            serde_json::from_str(r#"{"b":1,"a":{"é":"x\u0001\"","Z":[true,null,1.5]}}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            r#"{"a":{"Z":[true,null,1.5],"é":"x\u0001\""},"b":1}"#
        );
    }

    #[test]
    fn a_changed_byte_changes_the_digest_and_approvals_do_not() {
        let mut raw: Value = serde_json::from_str(EXAMPLE).unwrap();
        let before = digest_of(&raw);
        raw["approvals"] = Value::Array(vec![]);
        assert_eq!(digest_of(&raw), before);
        raw["author_signature"] = Value::String("-----BEGIN SSH SIGNATURE-----".into());
        assert_eq!(digest_of(&raw), before);
        raw["changes"][0]["value"]["name"] = Value::String("Admin ".into());
        assert_ne!(digest_of(&raw), before);
    }

    /// A small valid plan, built by the real sync function.
    fn sample_plan() -> Vec<u8> {
        use crate::sync::{sync, RawDoc, Snapshot};
        let snapshot = Snapshot {
            tenants: vec![RawDoc::new(
                "default",
                r#"{"id":"default","name":"Default","deleted":false}"#,
            )],
            users: vec![RawDoc::new(
                "alice",
                r#"{"id":"alice","username":"alice@example.com","groups":["data"],"deleted":false}"#,
            )],
            groups: vec![RawDoc::new(
                "data",
                r#"{"id":"data","name":"Data","deleted":false}"#,
            )],
            roles: vec![RawDoc::new(
                "admin",
                r#"{"id":"admin","name":"Admin","permissions":{"FLOW":["READ"]},"deleted":false}"#,
            )],
            bindings: vec![
                RawDoc::new(
                    "b-1",
                    r#"{"id":"b-1","type":"GROUP","externalId":"data","roleId":"admin","namespaceId":"company.é","deleted":false}"#,
                ),
                RawDoc::new(
                    "b-2",
                    r#"{"id":"b-2","type":"USER","externalId":"ghost","roleId":"admin","deleted":false}"#,
                ),
            ],
        };
        let options = SyncOptions::new("default");
        let result = sync(&snapshot, &options).unwrap();
        let source = Source {
            backend: "sqlite".into(),
            database: "sqlite:x.db".into(),
            identity: "sqlite:/x.db".into(),
        };
        let provenance = Provenance {
            created_at: "2026-11-27T12:00:00Z".into(),
            created_by: "ops".into(),
        };
        Plan::new(result, &options, source, provenance).to_pretty_json()
    }

    /// The content a digest vouches for: everything but digest and approvals.
    fn sealed_content(raw: &Value) -> Vec<u8> {
        let mut map = raw.as_object().unwrap().clone();
        map.remove("digest");
        map.remove("approvals");
        canonical_json(&Value::Object(map))
    }

    #[test]
    fn the_sample_plan_is_valid_and_intact() {
        let loaded = parse(&sample_plan()).unwrap();
        assert!(loaded.digest_matches());
        assert_eq!(loaded.plan.changes.len(), 4);
    }

    #[test]
    fn an_author_signature_is_outside_the_digest_and_absent_when_unsigned() {
        let bytes = sample_plan();
        assert!(!String::from_utf8_lossy(&bytes).contains("author_signature"));
        let mut raw: Value = serde_json::from_slice(&bytes).unwrap();
        raw["author_signature"] = Value::String("-----BEGIN SSH SIGNATURE-----".into());
        let loaded = parse(&serde_json::to_vec_pretty(&raw).unwrap()).unwrap();
        assert!(loaded.digest_matches());
        assert_eq!(digest_of(&raw), loaded.plan.digest);
    }

    fn mutate_value(raw: &mut Value, which: u8, text: &str) {
        let changes = raw["changes"].as_array_mut().unwrap();
        match which % 9 {
            0 => {
                let first = changes[0].clone();
                changes.push(first);
            }
            1 => changes.reverse(),
            2 => changes[1]["key"] = Value::String(format!("default_{text}")),
            3 => changes[1]["value"]["tenantId"] = Value::String("other".into()),
            4 => changes[2]["unexpected"] = Value::String(text.into()),
            5 => raw["tenant"] = Value::String(text.into()),
            6 => changes[0]["value"]["name"] = Value::String(text.repeat(1000)),
            7 => raw["summary"]["add_role"] = Value::from(7),
            _ => {
                let mut deep = Value::String(text.into());
                for _ in 0..200 {
                    deep = Value::Array(vec![deep]);
                }
                changes[0]["value"]["nested"] = deep;
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Flipped bytes and truncations: never a panic, and a plan that
        /// still parses and passes its digest check says exactly what the
        /// original said.
        #[test]
        fn corrupted_bytes_never_pass_as_the_original(
            flips in proptest::collection::vec((0usize..100_000, 0u8..=255), 0..4),
            cut in proptest::option::of(0usize..100_000),
        ) {
            let original = sample_plan();
            let original_content = sealed_content(&serde_json::from_slice(&original).unwrap());
            let mut bytes = original.clone();
            for (at, byte) in flips {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            if let Ok(loaded) = parse(&bytes) {
                if loaded.digest_matches() {
                    let reread = serde_json::to_value(&loaded.plan).unwrap();
                    proptest::prop_assert_eq!(sealed_content(&reread), original_content);
                }
            }
        }

        /// Structural edits (duplicated or reordered changes, a key that
        /// does not match its document, another tenant, unknown fields, huge
        /// strings, deep nesting, a lying summary) are refused outright or
        /// fail the digest check.
        #[test]
        fn structural_edits_are_refused(which in 0u8..9, text in "[a-zA-Z0-9_%'\\\"é]{1,12}") {
            let mut raw: Value = serde_json::from_slice(&sample_plan()).unwrap();
            let before = sealed_content(&raw);
            mutate_value(&mut raw, which, &text);
            proptest::prop_assume!(sealed_content(&raw) != before);
            let bytes = serde_json::to_vec_pretty(&raw).unwrap();
            match parse(&bytes) {
                Err(_) => {}
                Ok(loaded) => proptest::prop_assert!(!loaded.digest_matches()),
            }
            // Even an attacker who recomputes the digest cannot make an
            // incoherent plan load.
            let mut resealed = raw.clone();
            resealed["digest"] = Value::String(digest_of(&raw));
            if matches!(which % 9, 0..=3 | 5 | 7) {
                let bytes = serde_json::to_vec(&resealed).unwrap();
                proptest::prop_assert!(parse(&bytes).is_err(), "edit {} loaded", which % 9);
            }
        }
    }

    #[test]
    fn garbage_is_refused_with_a_sentence() {
        assert!(parse(b"not json").unwrap_err().contains("not JSON"));
        assert!(parse(b"{\"format\":\"other\"}")
            .unwrap_err()
            .contains("format `other`"));
        assert!(parse(b"[]").unwrap_err().contains("not a JSON object"));
        assert!(parse(b"{}").unwrap_err().contains("no `format`"));
    }
}
