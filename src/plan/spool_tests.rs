//! The spool writes, hashes and orders a plan's changes exactly as the plan
//! with its changes in memory does, whatever order they come in.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::sync::{Change, Finding, Op};

fn golden(name: &str) -> Plan {
    let path = format!("{}/plans/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A permutation of `n` items from `seed` (an LCG: tests never depend on
/// the clock or on a random source).
fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

/// `plan`'s changes pushed in the order of `seed`, and `plan` without them.
fn spool(plan: &Plan, seed: u64) -> (Spooled, Plan) {
    let mut spool = ChangeSpool::new(&std::env::temp_dir()).unwrap();
    for change in shuffled(plan.changes.clone(), seed) {
        spool.push(change);
    }
    let spooled = spool.finish().unwrap();
    let mut head = plan.clone();
    head.changes.clear();
    (spooled, head)
}

/// [`Spooled::seal_and_write`] of `head`, its digest forgotten first: the
/// file's bytes and the digest.
fn sealed_file(spooled: &Spooled, head: &Plan) -> (Vec<u8>, String) {
    let mut plan = head.clone();
    plan.digest.clear();
    let mut written = Vec::new();
    spooled
        .seal_and_write(&mut plan, |_| Ok(()), &mut written)
        .unwrap();
    (written, plan.digest)
}

/// The spool gives the bytes and digests of the plan with its changes.
fn assert_same(plan: &Plan, seed: u64) -> Result<(), TestCaseError> {
    let (spooled, head) = spool(plan, seed);
    prop_assert_eq!(spooled.len(), plan.changes.len());
    for op in Op::ALL {
        prop_assert_eq!(
            spooled.count(op),
            plan.changes.iter().filter(|c| c.op() == op).count()
        );
    }
    prop_assert_eq!(spooled.digest(&head).unwrap(), digest_of_plan(plan));
    let (written, digest) = sealed_file(&spooled, &head);
    prop_assert_eq!(digest, digest_of_plan(plan));
    // The file holds the digest the spool's seal gives.
    let mut sealed = plan.clone();
    sealed.digest = digest_of_plan(plan);
    let expected = sealed.to_pretty_json();
    prop_assert!(
        written == expected,
        "the plan files differ:\n{}\n---\n{}",
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&expected)
    );
    prop_assert_eq!(
        spooled.changes_digest().unwrap(),
        changes_digest(&plan.changes)
    );
    let mut read_back = Vec::new();
    spooled
        .each_change(&mut |c| {
            read_back.push(c.clone());
            true
        })
        .unwrap();
    prop_assert_eq!(&read_back, &plan.changes);
    Ok(())
}

#[test]
fn the_demo_plans_spool_to_their_golden_bytes_and_digests() {
    for name in ["demo-plan.json", "demo-revert-plan.json"] {
        let plan = golden(name);
        assert!(!plan.changes.is_empty());
        for seed in [0, 1, 7, 42] {
            assert_same(&plan, seed).unwrap();
        }
        // The golden file is what `plan` writes (no approvals in it).
        let (spooled, head) = spool(&plan, 3);
        let (written, digest) = sealed_file(&spooled, &head);
        let path = format!("{}/plans/{name}", env!("CARGO_MANIFEST_DIR"));
        assert_eq!(written, std::fs::read(path).unwrap(), "{name}");
        assert_eq!(digest, plan.digest, "{name}");
        assert_eq!(spooled.digest(&head).unwrap(), plan.digest, "{name}");
    }
}

#[test]
fn a_plan_without_changes_keeps_its_empty_array() {
    let mut plan = golden("demo-plan.json");
    plan.changes.clear();
    plan.digest = digest_of_plan(&plan);
    assert_same(&plan, 0).unwrap();
    let (spooled, head) = spool(&plan, 0);
    let (written, _) = sealed_file(&spooled, &head);
    assert!(String::from_utf8(written)
        .unwrap()
        .contains("\n  \"changes\": [],\n"));
}

#[test]
fn a_spooled_plan_is_the_plan_new_makes() {
    use crate::sync::{sync, RawDoc, Snapshot};
    let snapshot = Snapshot {
        tenants: vec![RawDoc::new(
            "default",
            r#"{"id":"default","name":"Default","deleted":false}"#,
        )],
        users: vec![
            RawDoc::new(
                "alice",
                r#"{"id":"alice","username":"alice@example.com","groups":["data"],"deleted":false}"#,
            ),
            RawDoc::new(
                "root",
                r#"{"id":"root","username":"root","type":"SUPER_ADMIN","groups":["data"],"deleted":false}"#,
            ),
        ],
        groups: vec![RawDoc::new(
            "data",
            r#"{"id":"data","name":"Data","deleted":false}"#,
        )],
        roles: vec![RawDoc::new(
            "admin",
            r#"{"id":"admin","name":"Admin","permissions":{"USER":["CREATE"]},"deleted":false}"#,
        )],
        bindings: vec![
            RawDoc::new(
                "b-1",
                r#"{"id":"b-1","type":"GROUP","externalId":"data","roleId":"admin","deleted":false}"#,
            ),
            RawDoc::new(
                "b-2",
                r#"{"id":"b-2","type":"USER","externalId":"ghost","roleId":"admin","deleted":false}"#,
            ),
        ],
        ..Snapshot::default()
    };
    let source = Source {
        backend: "sqlite".into(),
        database: "sqlite:x.db".into(),
        identity: "sqlite:/x.db".into(),
    };
    let provenance = Provenance {
        created_at: "2026-11-27T12:00:00Z".into(),
        created_by: "ops".into(),
    };
    for create_tenant in [false, true] {
        let mut options = SyncOptions::new(if create_tenant { "fresh" } else { "default" });
        options.create_tenant = create_tenant;
        let result = sync(&snapshot, &options).unwrap();
        let whole = Plan::new(result.clone(), &options, source.clone(), provenance.clone());
        let mut rest = result;
        let mut spool = ChangeSpool::new(&std::env::temp_dir()).unwrap();
        for change in shuffled(std::mem::take(&mut rest.changes), 5) {
            spool.push(change);
        }
        let spooled = spool.finish().unwrap();
        let mut plan = Plan::spooled(
            rest,
            &spooled,
            &options,
            None,
            source.clone(),
            provenance.clone(),
        );
        let mut head = whole.clone();
        head.changes.clear();
        assert_eq!(plan.digest, "", "not sealed yet");
        assert_eq!(spooled.digest(&plan).unwrap(), whole.digest);
        let mut written = Vec::new();
        spooled
            .seal_and_write(&mut plan, |_| Ok(()), &mut written)
            .unwrap();
        assert_eq!(plan, head);
        assert_eq!(written, whole.to_pretty_json());
    }
}

/// What the seal adds once the digest is known (an author's signature) is
/// in the file; a seal that fails stops the write with its own error.
#[test]
fn the_seal_sees_the_digest_and_its_signature_is_written() {
    let plan = golden("demo-plan.json");
    let (spooled, mut head) = spool(&plan, 9);
    head.digest.clear();
    let mut written = Vec::new();
    spooled
        .seal_and_write(
            &mut head,
            |sealed| {
                sealed.author_signature = Some(format!("signed {}", sealed.digest));
                Ok(())
            },
            &mut written,
        )
        .unwrap();
    let mut expected = plan.clone();
    expected.author_signature = Some(format!("signed {}", plan.digest));
    assert_eq!(written, expected.to_pretty_json());

    let (spooled, mut head) = spool(&plan, 9);
    let err = spooled
        .seal_and_write(
            &mut head,
            |_| Err(std::io::Error::other("no key")),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "no key");
}

/// A seal may only add what follows the changes: the file's start is
/// written before the digest is known.
#[test]
fn a_seal_that_changes_the_start_of_the_file_fails() {
    let plan = golden("demo-plan.json");
    let (spooled, mut head) = spool(&plan, 2);
    let err = spooled
        .seal_and_write(
            &mut head,
            |sealed| {
                sealed.created_by.push('!');
                Ok(())
            },
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("before the changes"), "{err}");
}

/// A writer that fails partway: its own error is the one returned, not
/// the stop it caused, however many chunks were on their way.
#[test]
fn a_failing_writer_is_the_error_told() {
    struct FailsAfter(usize);
    impl Write for FailsAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "disk full",
                ));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut plan = golden("demo-plan.json");
    // Many chunks' worth: the same changes under many keys.
    let template = plan.changes.clone();
    for i in 0..600 {
        plan.changes.extend(template.iter().map(|c| rekey(c, i)));
    }
    let (spooled, mut head) = spool(&plan, 4);
    let size = plan.to_pretty_json().len();
    assert!(size > 3 * super::spool::CHUNK, "{size} bytes");
    for room in [0, 100, size / 2, size - 1] {
        let err = spooled
            .seal_and_write(&mut head, |_| Ok(()), &mut FailsAfter(room))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{room}: {err}");
    }
}

/// `change` under a key of its own for `i`, through the plan format.
fn rekey(change: &Change, i: usize) -> Change {
    let mut value: serde_json::Value = serde_json::from_str(&canonical::to_string(change)).unwrap();
    let key = format!("{}-{i}", value["key"].as_str().unwrap());
    value["key"] = json!(key);
    serde_json::from_str(&value.to_string()).unwrap()
}

#[test]
fn a_temporary_directory_that_does_not_exist_is_an_error() {
    let missing = std::env::temp_dir().join("sync-access-no-such-dir/below");
    let err = ChangeSpool::new(&missing).err().expect("no spool there");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_failed_write_is_kept_and_reported_at_the_end() {
    let plan = golden("demo-plan.json");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read-only");
    std::fs::write(&path, b"").unwrap();
    // Files opened for reading only: every write fails.
    let read_only = || std::fs::File::open(&path).unwrap();
    // A few changes fail when the buffers are written out, at the end...
    let mut spool = ChangeSpool::with_file(read_only()).unwrap();
    for change in plan.changes.clone() {
        spool.push(change);
    }
    assert_eq!(spool.count(Op::AddBinding), plan.summary.add_binding);
    assert!(spool.finish().is_err());
    // ...many fail while they are pushed, and the rest is still counted.
    let mut spool = ChangeSpool::with_file(read_only()).unwrap();
    let n = 20_000;
    for _ in 0..n {
        spool.push(plan.changes[0].clone());
    }
    assert_eq!(spool.count(plan.changes[0].op()), n);
    assert!(spool.finish().is_err());
}

#[test]
fn a_change_given_twice_is_refused() {
    let plan = golden("demo-plan.json");
    let mut spool = ChangeSpool::new(&std::env::temp_dir()).unwrap();
    spool.push(plan.changes[1].clone());
    spool.push(plan.changes[0].clone());
    spool.push(plan.changes[1].clone());
    let err = spool.finish().err().expect("refused");
    assert!(err.to_string().contains("derived twice"), "{err}");
}

/// Text that a splice must not be fooled by, and what JSON escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.-]{0,6}",
        "[a-zA-Z0-9 \"\\\\/\n\t\u{7f}\u{1}é😀,:\\[\\]{}]{0,12}",
        Just("\n  \"changes\": []".to_string()),
        Just("\"changes\":[]".to_string()),
        Just(String::new()),
    ]
}

fn document(id: String, extra: String) -> serde_json::Value {
    json!({"id": id, "tenantId": "t", "deleted": false, "name": extra,
           "nested": {"b": [1, "x", null, 2.50, extra], "a": true}})
}

fn change() -> impl Strategy<Value = Change> {
    (0usize..10, text(), text(), text(), any::<bool>()).prop_map(|(op, key, a, b, owner)| {
        let op = Op::ALL[op];
        let shape = op.undone().unwrap_or(op);
        let mut record = json!({"op": op, "key": key});
        match shape {
            Op::AddMembership => {
                record["user_id"] = json!(a);
                record["username"] = json!(b);
                record["group_id"] = json!(b);
                record["group_name"] = json!(a);
                record["membership"] = json!(if owner { "OWNER" } else { "MEMBER" });
            }
            Op::AddBinding => {
                record["value"] = document(a.clone(), b.clone());
                record["subject"] = json!(format!("user {a}"));
                record["role"] = json!(b);
            }
            _ => record["value"] = document(a, b),
        }
        serde_json::from_str(&record.to_string()).expect("a valid change")
    })
}

fn finding() -> impl Strategy<Value = Finding> {
    (text(), text()).prop_map(|(key, reason)| {
        serde_json::from_value(json!({"kind": "binding", "key": key, "reason": reason}))
            .expect("a valid finding")
    })
}

prop_compose! {
    fn plan()(
        changes in prop::collection::vec(change(), 0..40),
        skipped in prop::collection::vec(finding(), 0..3),
        conflicts in prop::collection::vec(finding(), 0..2),
        reverts in prop::option::of(text()),
        created_by in text(),
    ) -> Plan {
        let mut changes = changes;
        changes.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        changes.dedup_by(|a, b| a.sort_key() == b.sort_key());
        let mut plan = golden("demo-plan.json");
        for op in Op::ALL {
            let n = changes.iter().filter(|c| c.op() == op).count();
            match op {
                Op::CreateTenant => plan.summary.create_tenant = n,
                Op::AddRole => plan.summary.add_role = n,
                Op::AddGroup => plan.summary.add_group = n,
                Op::AddMembership => plan.summary.add_membership = n,
                Op::AddBinding => plan.summary.add_binding = n,
                Op::RemoveBinding => plan.summary.remove_binding = n,
                Op::RemoveMembership => plan.summary.remove_membership = n,
                Op::RemoveGroup => plan.summary.remove_group = n,
                Op::RemoveRole => plan.summary.remove_role = n,
                Op::RemoveTenant => plan.summary.remove_tenant = n,
            }
        }
        plan.summary.skipped = skipped.len();
        plan.summary.conflicts = conflicts.len();
        plan.applyable = conflicts.is_empty();
        plan.changes = changes;
        plan.skipped = skipped;
        plan.conflicts = conflicts;
        plan.reverts = reverts;
        plan.created_by = created_by;
        plan.digest = digest_of_plan(&plan);
        plan
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_changes_in_any_order_spool_to_the_plans_bytes_and_digests(
        plan in plan(),
        seed in any::<u64>(),
    ) {
        assert_same(&plan, seed)?;
    }
}

/// What `apply` reads back: the changes in the plan's order, whatever order
/// they were pushed in, and their digest.
#[test]
fn apply_reads_back_the_changes_in_order_from_the_spool() {
    for name in ["demo-plan.json", "demo-revert-plan.json"] {
        let plan = golden(name);
        for seed in [1, 7, 42] {
            let mut spool = ChangeSpool::new(&std::env::temp_dir()).unwrap();
            for change in shuffled(plan.changes.clone(), seed) {
                spool.push(change);
            }
            let spooled = spool.finish().unwrap();
            let back: Vec<Change> = spooled.changes().collect::<std::io::Result<_>>().unwrap();
            assert_eq!(back, plan.changes, "{name}, seed {seed}");
            assert_eq!(
                spooled.changes_digest().unwrap(),
                crate::plan::changes_digest(&plan.changes)
            );
        }
    }
}

/// A document nested deeper than the fast reader reads is laid out fast
/// all the same: the document, last, is not read through.
#[test]
fn a_deep_document_is_laid_out_to_the_same_bytes() {
    let mut plan = golden("demo-plan.json");
    let deep = (0..super::fast_json::MAX_DEPTH + 6).fold(json!("bottom"), |v, _| json!([v]));
    let Change::AddRole { value, .. } = plan
        .changes
        .iter_mut()
        .find(|c| c.op() == Op::AddRole)
        .expect("the demo plan adds roles")
    else {
        unreachable!("found by its op")
    };
    let mut with_deep = value.map().clone();
    with_deep.insert("deep".into(), deep);
    *value = crate::sync::Document::from_map(&with_deep);
    let texts: Vec<String> = plan.changes.iter().map(canonical::to_string).collect();
    assert_eq!(texts.iter().filter(|t| t.contains("bottom")).count(), 1);
    assert!(texts.iter().all(|t| members_in_file_order_of(t).is_some()));
    assert_same(&plan, 3).unwrap();
}

/// A text the canonical writer would not write (its members out of
/// order, or with room between them) is read as a change and laid out by
/// serde_json: to the bytes of its canonical text's layout.
#[test]
fn a_text_the_fast_layout_is_not_sure_of_is_written_all_the_same() {
    let plan = golden("demo-plan.json");
    for change in &plan.changes {
        let text = canonical::to_string(change);
        let mut fast = Vec::new();
        super::spool::pretty_element(text.as_bytes(), &mut fast).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let members = value.as_object().unwrap();
        // The members in reverse (`value` first) and spaced out.
        let reversed = format!(
            "{{ {} }}",
            members
                .iter()
                .rev()
                .map(|(name, v)| format!("{}: {}", json!(name), canonical::to_string(v)))
                .collect::<Vec<_>>()
                .join(" , ")
        );
        assert!(members_in_file_order_of(&reversed).is_none(), "{reversed}");
        let mut slow = Vec::new();
        super::spool::pretty_element(reversed.as_bytes(), &mut slow).unwrap();
        assert_eq!(
            String::from_utf8(slow).unwrap(),
            String::from_utf8(fast).unwrap()
        );
    }
}

fn members_in_file_order_of(text: &str) -> Option<()> {
    super::spool::members_in_file_order(text.as_bytes()).map(|_| ())
}

/// A tailed spool hands on every change, once, in the order it was pushed,
/// while the spool is still taking changes; the spool still orders and
/// hashes them as an untailed one.
#[test]
fn a_tail_hands_on_every_change_in_the_order_pushed() {
    let plan = golden("demo-plan.json");
    // Many batches: the demo's changes, over and over, each key made
    // unique so that the spool can still order them.
    let mut pushed = Vec::new();
    for round in 0..12 {
        for change in shuffled(plan.changes.clone(), round) {
            let mut value = serde_json::to_value(&change).unwrap();
            let key = format!("r{round}-{}", value["key"].as_str().unwrap());
            value["key"] = json!(key);
            pushed.push(serde_json::from_value::<Change>(value).unwrap());
        }
    }
    let (mut spool, tail) = ChangeSpool::tailed(&std::env::temp_dir()).unwrap();
    let reader = std::thread::spawn(move || {
        tail.flat_map(|batch| batch.unwrap())
            .collect::<Vec<Change>>()
    });
    for change in pushed.clone() {
        spool.push(change);
    }
    let spooled = spool.finish().unwrap();
    let tailed = reader.join().unwrap();
    assert_eq!(tailed, pushed);
    let mut sorted = pushed;
    crate::sync::sort_changes(&mut sorted);
    assert_eq!(spooled.changes_digest().unwrap(), changes_digest(&sorted));
}
