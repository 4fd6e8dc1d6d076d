//! `plan --revert` (issue 14, docs/revert.md) through the real binary, on
//! every backend: apply then revert gives back the five tables, drift is a
//! conflict naming both sides, and the history refuses what makes no sense.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::plan::{assert_golden, repo};
use crate::support::{approved_plan, read_json, Kind, Scenario, TestDb};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "revert::apply_then_revert_gives_back_the_five_tables",
        apply_then_revert,
    ),
    Scenario::new(
        "revert::drift_is_a_conflict_naming_both",
        drift_is_a_conflict,
    ),
    Scenario::new(
        "revert::a_plan_never_applied_or_of_another_database_is_refused",
        never_applied,
    ),
    Scenario::new(
        "revert::an_older_history_table_gains_the_revert_columns",
        older_history_table,
    ),
    Scenario::new(
        "revert::a_tenant_the_plan_created_is_removed_when_empty_again",
        created_tenant,
    ),
];

/// Stdout and stderr of a run that ended with `code`.
fn run(db: &TestDb, args: &[&str], code: i32) -> (String, String) {
    let out = db.cmd().args(args).assert().code(code).get_output().clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The demo store, its plan approved and applied; returns the plan's path
/// and the five tables as they were before the apply.
fn demo_applied(db: &TestDb) -> (PathBuf, std::collections::BTreeMap<(String, String), Value>) {
    run(db, &["demo"], 0);
    let before = db.dump();
    let plan = approved_plan(db, &["--created-by", "ops@example.com"]);
    run(db, &["apply", p(&plan)], 0);
    (plan, before)
}

/// `plan --revert` to `revert.json`; returns it.
fn plan_revert(db: &TestDb, applied: &Path, extra: &[&str], code: i32) -> (PathBuf, String) {
    let out = db.path("revert.json");
    let mut args = vec!["plan", "--revert", p(applied), "-o", p(&out)];
    args.extend(extra);
    let (_, stderr) = run(db, &args, code);
    (out, stderr)
}

fn approve(db: &TestDb, plan: &Path) {
    run(
        db,
        &["approve", "--yes", "--by", "security@example.com", p(plan)],
        0,
    );
}

fn apply_then_revert(kind: Kind) {
    let db = TestDb::empty(kind);
    let (plan, before) = demo_applied(&db);
    let original = read_json(&plan);
    assert_ne!(db.dump(), before, "the plan changed the store");

    let (revert, stderr) = plan_revert(&db, &plan, &["--created-by", "ops@example.com"], 0);
    assert!(
        stderr.contains("Revert plan") && stderr.contains("remove 8 binding(s), 8 membership(s)"),
        "{stderr}"
    );
    let revert_plan = read_json(&revert);
    assert_eq!(revert_plan["reverts"], original["digest"]);
    assert_eq!(revert_plan["conflicts"], json!([]));
    let changes = revert_plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), original["changes"].as_array().unwrap().len());
    assert!(changes
        .iter()
        .all(|c| c["op"].as_str().unwrap().starts_with("remove_")));
    // The golden revert plan of the demo: the reverted digest is the
    // golden demo plan's, as every database-dependent member is.
    let golden_digest = read_json(&repo("plans/demo-plan.json"))["digest"].clone();
    let mut normalised = revert_plan.clone();
    normalised["reverts"] = golden_digest;
    assert_golden(normalised, &repo("plans/demo-revert-plan.json"));

    // Review: what each user loses.
    let (shown, _) = run(&db, &["show", p(&revert), "--width", "200"], 0);
    assert!(shown.contains("Access lost in tenant"), "{shown}");
    assert!(shown.contains("Bindings to remove (8)"), "{shown}");
    assert!(!shown.contains("add_role"), "{shown}");
    assert!(
        shown.contains("heidi"),
        "heidi loses her admin binding: {shown}"
    );
    let (lines, _) = run(&db, &["show", p(&revert), "--format", "json", "--diff"], 0);
    let rows: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["reverts"], original["digest"]);
    let losses: Vec<&Value> = rows.iter().filter(|r| r["row"] == "access").collect();
    assert!(!losses.is_empty() && losses.iter().all(|r| r.get("loses").is_some()));
    let (diff, _) = run(&db, &["show", p(&revert), "--diff"], 0);
    assert!(
        diff.contains("after the revert") && diff.contains("\n-"),
        "{diff}"
    );

    // Not approved: refused; then approved and applied.
    run(&db, &["apply", p(&revert)], 4);
    approve(&db, &revert);
    let (stdout, _) = run(&db, &["apply", p(&revert)], 0);
    assert!(stdout.starts_with("Reverted plan"), "{stdout}");
    assert_eq!(db.dump(), before, "the revert gave back every document");
    run(&db, &["verify", p(&revert)], 0);
    let (_, stderr) = run(&db, &["verify", p(&plan)], 5);
    assert!(
        stderr.contains("missing: add_role default_admin"),
        "{stderr}"
    );

    // The history shows both, linked.
    let (table, _) = run(&db, &["history", "--width", "250"], 0);
    assert!(table.contains("reverted by"), "{table}");
    assert!(table.contains("reverts"), "{table}");
    let (lines, _) = run(&db, &["history", "--format", "json"], 0);
    let rows: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let row = |digest: &Value| rows.iter().find(|r| &r["digest"] == digest).unwrap();
    assert_eq!(
        row(&original["digest"])["reverted_by"],
        revert_plan["digest"]
    );
    assert_eq!(row(&revert_plan["digest"])["reverts"], original["digest"]);
    assert_eq!(row(&revert_plan["digest"])["summary"]["remove_binding"], 8);

    // Reverting twice: the revert plan is already applied (exit 0), the
    // original already reverted (exit 1).
    let (stdout, _) = run(&db, &["apply", p(&revert)], 0);
    assert!(stdout.contains("already applied"), "{stdout}");
    let (_, stderr) = plan_revert(&db, &plan, &[], 1);
    assert!(stderr.contains("already reverted"), "{stderr}");
    // A revert plan is not reverted.
    let (_, stderr) = run(&db, &["plan", "--revert", p(&revert)], 1);
    assert!(stderr.contains("a revert is not reverted"), "{stderr}");

    // The original plan file is refused: applied, then reverted.
    let (_, stderr) = run(&db, &["apply", p(&plan)], 5);
    assert!(
        stderr.contains("then reverted by plan") && stderr.contains("plan again"),
        "{stderr}"
    );
    assert_eq!(db.dump(), before, "the refused apply wrote nothing");

    // Planning again gives the original changes, under a new digest.
    let again = db.path("again.json");
    run(
        &db,
        &[
            "plan",
            "--created-by",
            "someone-else@example.com",
            "-o",
            p(&again),
        ],
        0,
    );
    let again = read_json(&again);
    assert_eq!(again["changes"], original["changes"]);
    assert_ne!(again["digest"], original["digest"]);
}

/// Identifiers quoted for `kind`.
fn q(kind: Kind, name: &str) -> String {
    match kind {
        Kind::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

fn literal(value: &Value) -> String {
    let text = value.to_string();
    assert!(!text.contains('\\'));
    format!("'{}'", text.replace('\'', "''"))
}

fn set_row(db: &TestDb, table: &str, key: &str, doc: &Value) {
    let k = db.kind;
    db.exec(&format!(
        "UPDATE {} SET {} = {} WHERE {} = '{key}'",
        q(k, table),
        q(k, "value"),
        literal(doc),
        q(k, "key")
    ));
}

fn drift_is_a_conflict(kind: Kind) {
    let db = TestDb::empty(kind);
    let (plan, _) = demo_applied(&db);
    let k = kind;
    let now = db.dump();
    let row = |table: &str, key: &str| now[&(table.to_string(), key.to_string())].clone();
    // An edited copied row.
    let mut editor = row("roles", "default_editor");
    editor["name"] = json!("Editor (renamed)");
    set_row(&db, "roles", "default_editor", &editor);
    // A later binding using a copied role.
    let later = json!({"id": "b-99", "tenantId": "default", "type": "USER", "externalId": "carol", "roleId": "launcher", "deleted": false});
    db.exec(&format!(
        "INSERT INTO {} ({}, {}) VALUES ('default_b-99', {})",
        q(k, "bindings"),
        q(k, "key"),
        q(k, "value"),
        literal(&later)
    ));
    // A user whose groupList changed elsewhere: grace's entry is OWNER now.
    let mut grace = row("users", "grace");
    for entry in grace["groupList"].as_array_mut().unwrap() {
        if entry["tenantId"] == "default" && entry["groupId"] == "oncall" {
            entry["membership"] = json!("OWNER");
        }
    }
    set_row(&db, "users", "grace", &grace);
    // A deleted copied row.
    db.exec(&format!(
        "DELETE FROM {} WHERE {} = 'default_b-10'",
        q(k, "bindings"),
        q(k, "key")
    ));

    let (revert, stderr) = plan_revert(&db, &plan, &[], 3);
    assert!(stderr.contains("NOT APPLYABLE"), "{stderr}");
    let conflicts = read_json(&revert)["conflicts"].as_array().unwrap().clone();
    let find = |kind: &str, key: &str| {
        conflicts
            .iter()
            .find(|c| c["kind"] == kind && c["key"] == key)
            .unwrap_or_else(|| panic!("no conflict {kind} {key}: {conflicts:#?}"))
            .clone()
    };
    let names_both = |c: &Value, a: &str, b: &str| {
        let detail = c["detail"].as_str().unwrap();
        assert!(detail.contains(a) && detail.contains(b), "{detail}");
    };
    let edited = find("role", "default_editor");
    assert_eq!(edited["reason"], "changed since the apply");
    names_both(&edited, "default_editor", "apply wrote");
    let used = find("role", "default_launcher");
    assert_eq!(used["reason"], "still used");
    names_both(&used, "default_launcher", "default_b-99");
    let member = find("membership", "grace");
    assert_eq!(member["reason"], "changed since the apply");
    assert_eq!(member["group_id"], "oncall");
    names_both(&member, "grace", "OWNER");
    let group = find("group", "default_oncall");
    names_both(&group, "default_oncall", "grace");
    let deleted = find("binding", "default_b-10");
    assert_eq!(deleted["reason"], "deleted since the apply");
    assert_eq!(conflicts.len(), 5, "{conflicts:#?}");
    // Not applyable, so not approvable.
    run(
        &db,
        &[
            "approve",
            "--yes",
            "--by",
            "security@example.com",
            p(&revert),
        ],
        3,
    );

    // With --skip-conflicts the rest is reverted, and the drift stays.
    let (revert, _) = plan_revert(&db, &plan, &["--skip-conflicts"], 0);
    approve(&db, &revert);
    let drifted = db.dump();
    run(&db, &["apply", p(&revert)], 0);
    run(&db, &["verify", p(&revert)], 0);
    let after = db.dump();
    for (table, key) in [
        ("roles", "default_editor"),
        ("roles", "default_launcher"),
        ("groups", "default_oncall"),
        ("bindings", "default_b-99"),
        ("users", "grace"),
    ] {
        let at = (table.to_string(), key.to_string());
        assert_eq!(after.get(&at), drifted.get(&at), "{table} {key} was kept");
    }
    for (table, key) in [("roles", "default_admin"), ("bindings", "default_b-01")] {
        assert!(!after.contains_key(&(table.to_string(), key.to_string())));
    }
}

fn never_applied(kind: Kind) {
    let db = TestDb::empty(kind);
    run(&db, &["demo"], 0);
    let plan = crate::support::plan(&db, &[], 0);
    let path = db.path("plan.json");
    assert!(plan["changes"].as_array().unwrap().len() > 1);
    let before = db.dump();
    let (_, stderr) = plan_revert(&db, &path, &[], 1);
    assert!(stderr.contains("never applied here"), "{stderr}");
    assert!(!db.path("revert.json").exists());
    // Made on another database: stale, as for apply.
    let other = TestDb::empty(kind);
    run(&other, &["demo"], 0);
    let out = other.path("revert.json");
    let (_, stderr) = run(&other, &["plan", "--revert", p(&path), "-o", p(&out)], 5);
    assert!(stderr.contains("made against another database"), "{stderr}");
    assert_eq!(db.dump(), before);
}

/// A history table of an older release (without `reverted_by` and
/// `created_group_lists`) is read as it is, and the next apply adds the
/// columns in its transaction; the plan it recorded can then be reverted.
fn older_history_table(kind: Kind) {
    let db = TestDb::empty(kind);
    run(&db, &["demo"], 0);
    let before = db.dump();
    let text = match kind {
        Kind::Sqlite => "TEXT",
        _ => "VARCHAR(250)",
    };
    db.exec(&format!(
        "CREATE TABLE sync_access_history (digest {text} NOT NULL PRIMARY KEY, tenant {text} NOT NULL, \
         plan_created_at {text} NOT NULL, plan_created_by {text} NOT NULL, approvers TEXT NOT NULL, \
         applied_at {text} NOT NULL, applied_by {text} NOT NULL, summary TEXT NOT NULL)"
    ));
    db.exec(
        "INSERT INTO sync_access_history VALUES ('sha256:old', 'default', 'T', 'ops', '[]', \
         '2025-01-01T00:00:00Z', 'ops', '{\"add_role\":1}')",
    );
    let (table, _) = run(&db, &["history"], 0);
    assert!(table.contains("add_role 1"), "{table}");
    let plan = approved_plan(&db, &["--created-by", "ops@example.com"]);
    run(&db, &["apply", p(&plan)], 0);
    let (revert, _) = plan_revert(&db, &plan, &[], 0);
    approve(&db, &revert);
    run(&db, &["apply", p(&revert)], 0);
    assert_eq!(db.dump(), before);
    assert_eq!(db.history_rows(), 3);
}

/// A plan that created its tenant: the revert removes the tenant last, and
/// the store is as before; a role added to the tenant since keeps it.
fn created_tenant(kind: Kind) {
    let db = TestDb::empty(kind);
    run(&db, &["demo"], 0);
    let before = db.dump();
    let plan = approved_plan(&db, &["--tenant", "acme", "--create-tenant"]);
    run(&db, &["apply", p(&plan)], 0);

    // Something added to the tenant since: the tenant stays, naming it.
    let k = kind;
    let later = json!({"id": "auditor", "tenantId": "acme", "name": "Auditor", "permissions": {}, "deleted": false});
    db.exec(&format!(
        "INSERT INTO {} ({}, {}) VALUES ('acme_auditor', {})",
        q(k, "roles"),
        q(k, "key"),
        q(k, "value"),
        literal(&later)
    ));
    let (revert, _) = plan_revert(&db, &plan, &[], 3);
    let conflicts = read_json(&revert)["conflicts"].clone();
    assert_eq!(conflicts.as_array().unwrap().len(), 1, "{conflicts:#}");
    assert_eq!(conflicts[0]["kind"], "tenant");
    assert!(
        conflicts[0]["detail"]
            .as_str()
            .unwrap()
            .contains("acme_auditor"),
        "{conflicts:#}"
    );
    db.exec(&format!(
        "DELETE FROM {} WHERE {} = 'acme_auditor'",
        q(k, "roles"),
        q(k, "key")
    ));

    let (revert, _) = plan_revert(&db, &plan, &[], 0);
    let removals = read_json(&revert);
    assert_eq!(removals["summary"]["remove_tenant"], 1);
    approve(&db, &revert);
    let (stdout, _) = run(&db, &["apply", p(&revert)], 0);
    assert!(stdout.contains(", and the tenant"), "{stdout}");
    assert_eq!(db.dump(), before);
    run(&db, &["verify", p(&revert)], 0);
}
