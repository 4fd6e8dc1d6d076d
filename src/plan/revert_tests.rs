//! Revert plans in the plan format (docs/revert.md §2): the golden demo
//! revert plan reads and hashes as sealed, `reverts` is covered by the
//! digest, and removals and additions never share a plan.

use serde_json::{json, Value};

use super::*;

const GOLDEN: &str = include_str!("../../plans/demo-revert-plan.json");

fn golden() -> Value {
    serde_json::from_str(GOLDEN).unwrap()
}

/// `parse` of `plan`; read without keeping its changes (as `apply` and
/// `approve` read it), it reads the same, with the same refusal.
fn parse_value(plan: &Value) -> std::result::Result<Loaded, String> {
    let bytes = serde_json::to_vec(plan).unwrap();
    super::tests::same_reading(&bytes, true).unwrap();
    parse(&bytes)
}

/// `plan` with its digest recomputed, so that only the edit is judged.
fn resealed(mut plan: Value) -> Value {
    plan["digest"] = json!(digest_of(&plan));
    plan
}

#[test]
fn the_golden_revert_plan_is_valid_and_sealed() {
    let plan = golden();
    let loaded = parse(GOLDEN.as_bytes()).expect("a valid plan");
    super::tests::same_reading(GOLDEN.as_bytes(), true).unwrap();
    assert!(loaded.digest_matches());
    assert_eq!(loaded.computed_digest, digest_of(&plan));
    assert_eq!(loaded.plan.reverts.as_deref(), plan["reverts"].as_str());
    assert!(loaded.plan.changes.iter().all(|c| c.op().is_removal()));
    // The tool writes it back byte for byte.
    assert_eq!(
        String::from_utf8(loaded.plan.to_pretty_json()).unwrap(),
        GOLDEN
    );
}

#[test]
fn reverts_is_covered_by_the_digest() {
    let mut plan = golden();
    let before = digest_of(&plan);
    plan["reverts"] = json!(format!("sha256:{}", "0".repeat(64)));
    assert_ne!(digest_of(&plan), before);
    assert!(!parse_value(&plan).unwrap().digest_matches());
}

#[test]
fn removals_only_in_revert_plans_and_additions_never() {
    let mut without = golden();
    without.as_object_mut().unwrap().remove("reverts");
    let err = parse_value(&resealed(without)).unwrap_err();
    assert!(err.contains("a removal belongs in a revert plan"), "{err}");

    let mut mixed = golden();
    mixed["changes"][0]["op"] = json!("add_binding");
    mixed["summary"]["remove_binding"] = json!(7);
    mixed["summary"]["add_binding"] = json!(1);
    let err = parse_value(&resealed(mixed)).unwrap_err();
    assert!(err.contains("a revert plan holds only removals"), "{err}");

    let mut bad = golden();
    bad["reverts"] = json!("sha256:XYZ");
    let err = parse_value(&resealed(bad)).unwrap_err();
    assert!(err.contains("`reverts` is not a digest"), "{err}");
}

#[test]
fn a_removal_has_exactly_the_members_of_the_addition_it_undoes() {
    let mut extra = golden();
    extra["changes"][0]["user_id"] = json!("alice");
    let err = parse_value(&resealed(extra)).unwrap_err();
    assert!(err.contains("`remove_binding` has no `user_id`"), "{err}");

    let mut missing = golden();
    let membership = missing["changes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["op"] == "remove_membership")
        .unwrap();
    membership.as_object_mut().unwrap().remove("membership");
    let err = parse_value(&resealed(missing)).unwrap_err();
    assert!(
        err.contains("`remove_membership` needs `membership`"),
        "{err}"
    );
}
