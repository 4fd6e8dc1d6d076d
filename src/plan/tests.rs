//! The plan format's own tests: the example plan's digest test vector (docs/plan-format.md §14), the
//! canonical field order, and hostile edits of a real plan.

use serde_json::Value;

use super::*;

const EXAMPLE: &str = include_str!("../../tests/fixtures/example-plan.json");

#[test]
fn the_spec_example_digest_is_reproduced() {
    let raw: Value = serde_json::from_str(EXAMPLE).unwrap();
    assert_eq!(
        digest_of(&raw),
        raw["digest"].as_str().unwrap(),
        "canonical JSON must match the test vector of docs/plan-format.md §14"
    );
}

#[test]
fn canonical_json_sorts_keys_by_bytes_and_escapes_minimally() {
    let value: Value =
        serde_json::from_str(r#"{"b":1,"a":{"é":"x\u0001\"","Z":[true,null,1.5]}}"#).unwrap();
    assert_eq!(
        canonical::to_string(&value),
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
        ..Snapshot::default()
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

/// The content a digest vouches for: everything but digest, the author's
/// signature and approvals.
fn sealed_content(raw: &Value) -> Vec<u8> {
    let mut map = raw.as_object().unwrap().clone();
    map.remove("digest");
    map.remove("author_signature");
    map.remove("approvals");
    canonical::to_vec(&Value::Object(map))
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
    // The streamed digest of the typed plan leaves it out too.
    assert!(loaded.plan.author_signature.is_some());
    assert_eq!(digest_of_plan(&loaded.plan), loaded.plan.digest);
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

/// A plan read without keeping its changes reads as one read whole: the
/// same plan but its changes, the same digests, the same refusal (the same
/// words when the file has one fault, `same_words`).
pub(super) fn same_reading(
    bytes: &[u8],
    same_words: bool,
) -> Result<(), proptest::test_runner::TestCaseError> {
    // From a file, as `apply` reads it: a chunk at a time when it is laid
    // out as the tool lays it out (or whole, which says what is wrong).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    std::fs::write(&path, bytes).unwrap();
    let from_file = load_without_changes(&path);
    let in_memory = parse_without_changes(bytes);
    match (&from_file, &in_memory) {
        (Ok(file), Ok(memory)) => {
            proptest::prop_assert_eq!(&file.loaded.plan, &memory.loaded.plan);
            proptest::prop_assert_eq!(&file.loaded.computed_digest, &memory.loaded.computed_digest);
            proptest::prop_assert_eq!(&file.changes_digest, &memory.changes_digest);
            proptest::prop_assert_eq!(&file.approvals, &memory.approvals);
        }
        (Err(file), Err(memory)) => {
            let expected = format!("{}: {memory}", path.display());
            proptest::prop_assert_eq!(file.to_string(), expected);
        }
        _ => proptest::prop_assert!(
            false,
            "from the file: {:?}; in memory: {:?}",
            from_file.as_ref().map(|_| ()),
            in_memory.as_ref().map(|_| ())
        ),
    }
    match (parse(bytes), in_memory) {
        (Ok(whole), Ok(scanned)) => {
            proptest::prop_assert_eq!(&scanned.loaded.computed_digest, &whole.computed_digest);
            proptest::prop_assert_eq!(
                &scanned.changes_digest,
                &changes_digest(&whole.plan.changes)
            );
            let mut without = whole.plan.clone();
            without.changes.clear();
            proptest::prop_assert_eq!(&scanned.loaded.plan, &without);
        }
        (Err(whole), Err(scanned)) => {
            if same_words {
                proptest::prop_assert_eq!(scanned, whole);
            }
        }
        (whole, scanned) => proptest::prop_assert!(
            false,
            "read whole: {:?}; without changes: {:?}",
            whole.map(|_| ()),
            scanned.map(|_| ())
        ),
    }
    Ok(())
}

#[test]
fn a_plan_read_without_its_changes_reads_as_the_whole() {
    let bytes = sample_plan();
    same_reading(&bytes, true).unwrap();
    // Errors inside the changes name their line in the file.
    let text = String::from_utf8(bytes).unwrap();
    let broken = text.replacen("\"subject\"", "\"subjekt\"", 1);
    let whole = parse(broken.as_bytes()).unwrap_err();
    assert!(whole.contains(" at line "), "{whole}");
    same_reading(broken.as_bytes(), true).unwrap();
    // In any member order, and on one line.
    let raw: Value = serde_json::from_str(&text).unwrap();
    same_reading(&serde_json::to_vec(&raw).unwrap(), true).unwrap();
}

#[test]
fn an_approval_is_spliced_in_as_the_whole_plan_would_write_it() {
    let bytes = sample_plan();
    let approval = Approval {
        by: "sec\"urity".into(),
        at: "2026-11-27T13:00:00Z".into(),
        digest: parse(&bytes).unwrap().plan.digest,
        comment: Some("line\nbreak".into()),
        signature: None,
    };
    let mut expected = parse(&bytes).unwrap().plan;
    let splice = |bytes: &[u8], approvals: &[Approval]| {
        let scanned = parse_without_changes(bytes).unwrap();
        let edit = scanned.approvals_edit(bytes, approvals);
        let mut out = bytes[..edit.replace.start].to_vec();
        out.extend_from_slice(&edit.with);
        out.extend_from_slice(&bytes[edit.replace.end..]);
        out
    };
    // Replacing `approvals: []`, then appending to a list of one.
    let once = splice(&bytes, std::slice::from_ref(&approval));
    expected.approvals.push(approval.clone());
    assert_eq!(
        String::from_utf8(once.clone()).unwrap(),
        String::from_utf8(expected.to_pretty_json()).unwrap()
    );
    let mut second = approval.clone();
    second.by = "another".into();
    let twice = splice(&once, &[approval.clone(), second.clone()]);
    expected.approvals.push(second);
    assert_eq!(twice, expected.to_pretty_json());
    // A file without the member gets it as its last one.
    let mut raw: Value = serde_json::from_slice(&bytes).unwrap();
    raw.as_object_mut().unwrap().remove("approvals");
    let without = serde_json::to_vec_pretty(&raw).unwrap();
    let added = splice(&without, std::slice::from_ref(&approval));
    let reread = parse(&added).unwrap();
    assert!(reread.digest_matches());
    assert_eq!(reread.plan.approvals, vec![approval]);
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
        same_reading(&bytes, false)?;
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
        same_reading(&bytes, true)?;
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
            same_reading(&bytes, true)?;
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
    for garbage in [&b"not json"[..], b"{\"format\":\"other\"}", b"[]", b"{}"] {
        same_reading(garbage, true).unwrap();
    }
    // A whole plan of another format is told so, not what it lacks.
    let other = String::from_utf8(sample_plan())
        .unwrap()
        .replace(FORMAT, "sync-access/plan/v9");
    assert!(parse(other.as_bytes())
        .unwrap_err()
        .contains("format `sync-access/plan/v9`"));
    same_reading(other.as_bytes(), true).unwrap();
}

#[test]
fn plans_are_read_through_the_cap() {
    // Up to the limit: read whole; one byte more: refused, and no more
    // than limit + 1 bytes were taken from the input.
    let at_limit = format!("{{{}}}", " ".repeat(98));
    assert_eq!(
        read_capped(at_limit.as_bytes(), 100)
            .unwrap()
            .unwrap()
            .len(),
        100
    );
    let mut endless = std::io::Read::chain(b"{".as_slice(), std::io::repeat(b' '));
    assert!(read_capped(&mut endless, 100).unwrap().is_none());
    // What cannot be a plan stops the read after its first block.
    let mut zeros = std::io::repeat(0);
    let read = read_capped(&mut zeros, MAX_PLAN_BYTES).unwrap().unwrap();
    assert!(read.len() <= 64 * 1024, "{}", read.len());
    assert!(parse(&read).unwrap_err().contains("not JSON"));
}

#[test]
fn a_tenant_that_is_no_tenant_id_is_no_valid_plan() {
    let golden = include_str!("../../tests/golden/rules-plan.json");
    assert!(parse(golden.as_bytes()).is_ok());
    let mut plan: Value = serde_json::from_str(golden).unwrap();
    let tenant = plan["tenant"].as_str().unwrap().to_string();
    let text = serde_json::to_string(&plan)
        .unwrap()
        .replace(&format!("\"{tenant}"), "\"Acme\\u001b");
    plan = serde_json::from_str(&text).unwrap();
    plan["digest"] = Value::String(digest_of(&plan));
    let why = parse(&serde_json::to_vec(&plan).unwrap()).unwrap_err();
    assert!(
        why.contains("`tenant` `Acme\\u{1b}` is not a tenant id"),
        "{why}"
    );
}

/// The canonical form of each kind of change, member by member: what the
/// digest of the approved changes covers. Adding a field to a change is
/// one edit in `change.rs`; this test says where it lands.
#[test]
fn the_canonical_field_order_of_changes_is_fixed() {
    let loaded = parse(&sample_plan()).unwrap();
    let lines: Vec<String> = loaded
        .plan
        .changes
        .iter()
        .map(canonical::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            r#"{"key":"default_admin","op":"add_role","value":{"deleted":false,"id":"admin","name":"Admin","permissions":{"FLOW":["READ"]},"tenantId":"default"}}"#,
            r#"{"key":"default_data","op":"add_group","value":{"deleted":false,"id":"data","name":"Data","tenantId":"default"}}"#,
            r#"{"group_id":"data","group_name":"Data","key":"alice","membership":"MEMBER","op":"add_membership","user_id":"alice","username":"alice@example.com"}"#,
            r#"{"key":"default_b-1","op":"add_binding","role":"Admin","subject":"group Data","value":{"deleted":false,"externalId":"data","id":"b-1","namespaceId":"company.é","roleId":"admin","tenantId":"default","type":"GROUP"}}"#,
        ]
    );
    let mut tenant = SyncOptions::new("fresh");
    tenant.create_tenant = true;
    let created = crate::sync::sync(&crate::sync::Snapshot::default(), &tenant).unwrap();
    assert_eq!(
        canonical::to_string(&created.changes[0]),
        r#"{"key":"fresh","op":"create_tenant","value":{"deleted":false,"id":"fresh","name":"fresh"}}"#
    );
}

/// The streamed digest of a typed plan is the digest anyone computes from
/// its JSON: a member added to `Plan` but not to what the digest covers
/// fails here.
#[test]
fn the_streamed_digest_is_the_digest_of_the_plan_as_json() {
    let loaded = parse(&sample_plan()).unwrap();
    let as_json = serde_json::to_value(&loaded.plan).unwrap();
    assert_eq!(digest_of_plan(&loaded.plan), digest_of(&as_json));
    assert_eq!(digest_of_plan(&loaded.plan), loaded.plan.digest);
}

/// docs/plan-format.md §7 and §11: a plan with a `context` and findings
/// that name what they are about. The streamed digest hashes `context` in
/// its byte-sorted place (between `conflicts` and `created_at`), so it is
/// the digest of the plan as generic JSON; and a file that spells an empty
/// `context` or empty `differences` reads and hashes as one without them.
#[test]
fn a_plan_with_context_hashes_as_its_json() {
    use crate::sync::{sync, RawDoc, Snapshot};
    let snapshot = Snapshot {
        tenants: vec![RawDoc::new(
            "default",
            r#"{"id":"default","name":"Default","deleted":false}"#,
        )],
        users: vec![RawDoc::new(
            "root",
            r#"{"id":"root","username":"root@example.com","type":"SUPER_ADMIN","groups":["ops"],"deleted":false}"#,
        )],
        groups: vec![RawDoc::new(
            "ops",
            r#"{"id":"ops","name":"Ops","deleted":false}"#,
        )],
        roles: vec![
            RawDoc::new(
                "admin",
                r#"{"id":"admin","name":"Admin","permissions":{"USER":["READ","UPDATE"]},"deleted":false}"#,
            ),
            RawDoc::new(
                "default_admin",
                r#"{"id":"admin","tenantId":"default","name":"Admin","permissions":{"USER":["READ"]},"deleted":false}"#,
            ),
        ],
        bindings: vec![RawDoc::new(
            "b-1",
            r#"{"id":"b-1","type":"USER","externalId":"root","roleId":"admin","deleted":false}"#,
        )],
        ..Snapshot::default()
    };
    let options = SyncOptions::new("default");
    let source = Source {
        backend: "sqlite".into(),
        database: "sqlite:x.db".into(),
        identity: "sqlite:/x.db".into(),
    };
    let provenance = Provenance {
        created_at: "2026-11-27T12:00:00Z".into(),
        created_by: "ops".into(),
    };
    let plan = Plan::new(
        sync(&snapshot, &options).unwrap(),
        &options,
        source,
        provenance,
    );
    assert_eq!(plan.context.users["root"], "SUPER_ADMIN");
    assert_eq!(plan.context.roles["admin"].name, "Admin");
    let role = plan.conflicts.iter().find(|f| f.key == "admin").unwrap();
    assert_eq!(role.differences[0].field, "permissions");
    let binding = plan.conflicts.iter().find(|f| f.key == "b-1").unwrap();
    assert_eq!(binding.subject_name.as_deref(), Some("root@example.com"));
    assert_eq!(binding.role_name.as_deref(), Some("Admin"));
    assert_eq!(binding.namespace, None, "all namespaces");

    let as_json = serde_json::to_value(&plan).unwrap();
    assert_eq!(digest_of_plan(&plan), digest_of(&as_json));
    let sealed = String::from_utf8(sealed_content(&as_json)).unwrap();
    let at = |member: &str| sealed.find(&format!("\"{member}\":")).unwrap();
    assert!(at("conflicts") < at("context") && at("context") < at("created_at"));
    let loaded = parse(&plan.to_pretty_json()).unwrap();
    assert!(loaded.digest_matches());
    assert_eq!(loaded.plan, plan);

    // Empty spellings of the optional members change nothing.
    let mut raw: Value = serde_json::from_slice(&sample_plan()).unwrap();
    assert!(
        raw.get("context").is_none(),
        "an empty context is not written"
    );
    raw["context"] = serde_json::json!({"roles": {}});
    raw["skipped"][0]["differences"] = serde_json::json!([]);
    let loaded = parse(&serde_json::to_vec(&raw).unwrap()).unwrap();
    assert!(loaded.digest_matches());
}

const PLAN_FORMAT_DOC: &str = include_str!("../../docs/plan-format.md");

/// The body of the fenced block of docs/plan-format.md whose info
/// string is `info`.
fn doc_block(info: &str) -> &'static str {
    let open = format!("```{info}\n");
    let start = PLAN_FORMAT_DOC
        .find(&open)
        .unwrap_or_else(|| panic!("docs/plan-format.md has no ```{info} block"))
        + open.len();
    let len = PLAN_FORMAT_DOC[start..]
        .find("```")
        .expect("the block is closed");
    &PLAN_FORMAT_DOC[start..start + len]
}

/// docs/plan-format.md §13: the store it describes plans, through the
/// real sync function, to exactly the file it shows; that file's
/// canonical form is the line it shows; its SHA-256 is the digest it
/// shows; and the tool's own reading of the file agrees.
#[test]
fn the_documented_test_vector_reproduces() {
    use crate::sync::{sync, RawDoc, Snapshot};
    let vector = doc_block("json test-vector");
    let canonical = doc_block("text canonical-vector").trim_end_matches('\n');
    let digest = doc_block("text digest-vector").trim();

    // The file as the tool writes it for the documented store.
    let snapshot = Snapshot {
        tenants: vec![RawDoc::new(
            "default",
            r#"{"id":"default","name":"Default","deleted":false}"#,
        )],
        users: vec![RawDoc::new(
            "alice",
            r#"{"id":"alice","username":"alice@example.com","groups":["ops"],"auths":[{"type":"password","hash":"$2a$10$x"}],"deleted":false}"#,
        )],
        groups: vec![
            RawDoc::new("ops", r#"{"id":"ops","name":"Opérations","deleted":false}"#),
            RawDoc::new(
                "default_ops",
                r#"{"id":"ops","tenantId":"default","name":"Opérations","deleted":false}"#,
            ),
        ],
        roles: vec![
            RawDoc::new(
                "viewer",
                r#"{"id":"viewer","name":"Viewer","permissions":{"FLOW":["READ"]},"deleted":false}"#,
            ),
            RawDoc::new(
                "default_viewer",
                r#"{"id":"viewer","tenantId":"default","name":"Viewer","permissions":{"FLOW":["READ"]},"deleted":false}"#,
            ),
        ],
        bindings: vec![
            RawDoc::new(
                "b-1",
                r#"{"id":"b-1","type":"GROUP","externalId":"ops","roleId":"viewer","namespaceId":"company.ops","deleted":false}"#,
            ),
            RawDoc::new(
                "b-2",
                r#"{"id":"b-2","type":"USER","externalId":"bob","roleId":"viewer","deleted":false}"#,
            ),
        ],
        ..Snapshot::default()
    };
    let options = SyncOptions::new("default");
    let source = Source {
        backend: "sqlite".into(),
        database: "sqlite:kestra.db".into(),
        identity: "sqlite:/srv/kestra/kestra.db".into(),
    };
    let provenance = Provenance {
        created_at: "2026-01-15T09:00:00Z".into(),
        created_by: "ops@example.com".into(),
    };
    let mut plan = Plan::new(
        sync(&snapshot, &options).unwrap(),
        &options,
        source,
        provenance,
    );
    // Signed by the author and by the approver with the documented test
    // keys: ed25519 signatures are deterministic, so the file is too.
    let author_key = test_key(0x01, "ops@example.com");
    let approver_key = test_key(0x02, "security@example.com");
    plan.author_signature = Some(
        author_key
            .sign(&crate::signing::author_message(&plan))
            .unwrap(),
    );
    let mut approval = Approval {
        by: "security@example.com".into(),
        at: "2026-01-15T10:30:00Z".into(),
        digest: plan.digest.clone(),
        comment: Some("CHG-1234".into()),
        signature: None,
    };
    approval.signature = Some(
        approver_key
            .sign(&crate::signing::approval_message(&approval))
            .unwrap(),
    );
    plan.approvals.push(approval);
    assert_eq!(
        String::from_utf8(plan.to_pretty_json()).unwrap(),
        vector,
        "docs/plan-format.md §13 is not the file the tool writes"
    );
    assert!(!vector.contains("auths") && !vector.contains("$2a$"));

    // The canonical form and its digest, computed independently of the
    // typed plan: from the file as generic JSON.
    let raw: Value = serde_json::from_str(vector).unwrap();
    assert_eq!(String::from_utf8(sealed_content(&raw)).unwrap(), canonical);
    assert_eq!(canonical.len(), 1063, "the byte count the doc states");
    assert_eq!(hex_digest_of(canonical.as_bytes()), digest);
    assert_eq!(digest_of(&raw), digest);

    // The tool's own reading of the file.
    let loaded = parse(vector.as_bytes()).unwrap();
    assert_eq!(loaded.computed_digest, digest);
    assert!(loaded.digest_matches());
    assert_eq!(loaded.plan.matching_approvals().count(), 1);

    // The messages the two signatures cover, and the allowed_signers file
    // under which both verify, four-eyes included.
    assert_eq!(
        String::from_utf8(crate::signing::author_message(&loaded.plan)).unwrap(),
        doc_block("text author-message-vector").trim_end_matches('\n')
    );
    assert_eq!(
        String::from_utf8(crate::signing::approval_message(&loaded.plan.approvals[0])).unwrap(),
        doc_block("text approval-message-vector").trim_end_matches('\n')
    );
    let allowed = doc_block("text allowed-signers-vector");
    assert_eq!(
        allowed,
        format!(
            "{}\n{}\n",
            allowed_signers_line(&author_key),
            allowed_signers_line(&approver_key)
        )
    );
    let policy = crate::signing::policy::Policy {
        signers: vec![crate::signing::allowed_signers::AllowedSigners::parse(
            allowed,
            std::path::Path::new("allowed_signers"),
        )
        .unwrap()],
        required: 1,
        four_eyes: true,
    };
    let verdict = crate::signing::policy::check(
        &loaded.plan,
        &policy,
        std::path::Path::new("vector.json"),
        1_768_471_200,
    )
    .unwrap();
    assert_eq!(verdict.counted.len(), 1);
    assert!(verdict.counted[0].verified);
    assert!(verdict.not_counted.is_empty());
}

/// The documented test key numbered `n`: the ed25519 key whose 32-byte
/// seed is `n` repeated, with `comment` as its principal.
fn test_key(n: u8, comment: &str) -> crate::signing::key::SigningKey {
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&[n; 32]);
    let mut private = ssh_key::PrivateKey::from(pair);
    private.set_comment(comment);
    crate::signing::key::SigningKey::File(Box::new(private))
}

/// `principal ssh-ed25519 AAAA...`: the key's line in allowed_signers.
fn allowed_signers_line(key: &crate::signing::key::SigningKey) -> String {
    let public = key.public();
    let mut line = public.to_openssh().unwrap();
    // `to_openssh` ends with the comment; allowed_signers starts with it.
    line.truncate(line.len() - public.comment().len() - 1);
    format!("{} {line}", public.comment())
}

fn hex_digest_of(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// docs/plan-format.md §10, rule 5: numbers in documents are written as
/// they were read, whatever their size or precision.
#[test]
fn documented_number_forms_are_the_canonical_ones() {
    let doc: crate::sync::Document = serde_json::from_str(
        r#"{"f":1.10,"e":1e3,"i":-12,"u":18446744073709551615,"z":-0,"w":1.0,"b":1e400,"d":1E2,"p":0.1000000000000000000001}"#,
    )
    .unwrap();
    assert_eq!(
        doc.as_str(),
        r#"{"b":1e400,"d":1E2,"e":1e3,"f":1.10,"i":-12,"p":0.1000000000000000000001,"u":18446744073709551615,"w":1.0,"z":-0}"#
    );
    let text: crate::sync::Document =
        serde_json::from_str("{\"s\":\"/\\u007f\\u00e9\\u001f\\u0008\\\"\"}").unwrap();
    assert_eq!(text.as_str(), "{\"s\":\"/\u{7f}é\\u001f\\b\\\"\"}");
}
