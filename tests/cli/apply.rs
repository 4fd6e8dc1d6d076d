//! `approve`, `apply`, `verify` and `history` through the real binary, on
//! every backend: what runs is exactly what was approved, all of it or none
//! of it; otherwise the command refuses, changes nothing and says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use libtest_mimic::Trial;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::fixtures;
use crate::support::{
    approved_plan, read_json, runtime, write_json, Kind, Scenario, TestDb, SOURCE_DATE_EPOCH,
};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "apply_refuses_unapproved_tampered_and_conflicted_plans",
        refusals,
    ),
    Scenario::new(
        "apply_refuses_a_plan_made_against_another_database",
        another_database,
    ),
    Scenario::new(
        "apply_writes_once_then_verify_history_and_replan_agree",
        apply_verify_history,
    ),
    Scenario::new(
        "apply_refuses_drift_that_touches_the_plan_and_ignores_the_rest",
        drift,
    ),
    Scenario::new(
        "apply_waits_for_the_lock_and_only_one_of_two_writes",
        locking,
    ),
    Scenario::new(
        "apply_failing_mid_write_leaves_the_database_as_it_was",
        failure_mid_write,
    ),
    Scenario::new(
        "approve_rewrites_only_the_approvals_of_the_file",
        approve_splices,
    ),
    Scenario::new(
        "apply_in_batches_of_one_change_writes_what_one_batch_writes",
        apply_in_batches,
    ),
    Scenario::new(
        "plan_and_apply_without_a_usable_tmpdir_stop_and_write_nothing",
        unusable_tmpdir,
    ),
    Scenario::only(
        "apply_derives_beside_its_writes_or_first_with_one_connection",
        beside_the_writes,
        |kind| match kind {
            Kind::Postgres => Ok(()),
            _ => Err("only PostgreSQL shares an apply's snapshot with a second connection"),
        },
    ),
    Scenario::only(
        "apply_creates_a_missing_history_table_once_the_plan_passed_with_one_connection_or_two",
        history_with_one_connection_or_two,
        |kind| match kind {
            Kind::MySql => Ok(()),
            _ => {
                Err("only MySQL and MariaDB create the history table outside the apply transaction")
            }
        },
    ),
];

const APPROVER: &str = "security@example.com";

/// What one run of the binary said.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        Ran {
            code: out.status.code().expect("the binary exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    /// A refusal: `code`, nothing on stdout, one line on stderr that names
    /// the plan file and says `why`.
    fn refused(&self, code: i32, file: &str, why: &str) {
        self.expect_code(code);
        assert_eq!(self.stdout, "", "a refusal prints nothing on stdout");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {}", self.stderr);
        assert!(
            self.stderr.contains(file) && self.stderr.contains(why),
            "expected `{file}` and `{why}` in: {}",
            self.stderr
        );
    }
}

fn run(db: &TestDb, args: &[&str], plan: &Path) -> Ran {
    db.cmd().args(args).arg(plan).output().unwrap().into()
}

fn apply(db: &TestDb, plan: &Path) -> Ran {
    run(db, &["apply"], plan)
}

fn approve(db: &TestDb, plan: &Path) -> Ran {
    run(db, &["approve", "--yes", "--by", APPROVER], plan)
}

/// Plans into `name` in the test's directory and checks the exit code.
fn plan_to(db: &TestDb, name: &str, args: &[&str], code: i32) -> PathBuf {
    let path = db.path(name);
    db.cmd()
        .arg("plan")
        .args(args)
        .arg("-o")
        .arg(&path)
        .assert()
        .code(code);
    path
}

/// The rules fixture with its conflicts skipped, approved: roles, groups,
/// memberships (with and without an existing `groupList`) and bindings.
fn approved_rules_plan(db: &TestDb) -> PathBuf {
    approved_plan(db, &["--skip-conflicts"])
}

/// Quotes an identifier for `kind`.
fn ident(kind: Kind, name: &str) -> String {
    match kind {
        Kind::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

/// A string literal for `kind` (MySQL also treats backslashes as escapes).
fn literal(kind: Kind, text: &str) -> String {
    let text = match kind {
        Kind::MySql => text.replace('\\', "\\\\"),
        _ => text.to_string(),
    };
    format!("'{}'", text.replace('\'', "''"))
}

fn insert_sql(kind: Kind, table: &str, key: &str, value: &Value) -> String {
    format!(
        "INSERT INTO {} ({}, {}) VALUES ({}, {})",
        ident(kind, table),
        ident(kind, "key"),
        ident(kind, "value"),
        literal(kind, key),
        literal(kind, &value.to_string())
    )
}

fn delete_sql(kind: Kind, table: &str, key: &str) -> String {
    format!(
        "DELETE FROM {} WHERE {} = {}",
        ident(kind, table),
        ident(kind, "key"),
        literal(kind, key)
    )
}

fn update_sql(kind: Kind, table: &str, key: &str, value: &Value) -> String {
    format!(
        "UPDATE {} SET {} = {} WHERE {} = {}",
        ident(kind, table),
        ident(kind, "value"),
        literal(kind, &value.to_string()),
        ident(kind, "key"),
        literal(kind, key)
    )
}

fn doc(db: &TestDb, table: &str, key: &str) -> Value {
    db.dump()
        .remove(&(table.to_string(), key.to_string()))
        .unwrap_or_else(|| panic!("no {table} row `{key}`"))
}

/// The rows that `after` adds to or changes in `before`; nothing may vanish.
fn difference(
    before: &BTreeMap<(String, String), Value>,
    after: &BTreeMap<(String, String), Value>,
) -> BTreeMap<(String, String), Value> {
    for key in before.keys() {
        assert!(after.contains_key(key), "{key:?} vanished");
    }
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `tampered.json`: a copy of the rules plan at `plan` with one byte of a
/// change altered, its digest left as it was.
fn tampered_copy(db: &TestDb, plan: &Path) -> PathBuf {
    let text = std::fs::read_to_string(plan).unwrap();
    assert!(text.contains("\"company.data\""));
    let tampered = db.path("tampered.json");
    std::fs::write(
        &tampered,
        text.replacen("\"company.data\"", "\"company.dat4\"", 1),
    )
    .unwrap();
    tampered
}

fn refusals(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let before = db.dump();

    // Not a plan at all, and a v1 plan missing most of its fields.
    std::fs::write(db.path("notes.txt"), "apply everything, thanks").unwrap();
    apply(&db, &db.path("notes.txt")).refused(4, "notes.txt", "not a valid plan");
    std::fs::write(
        db.path("empty.json"),
        r#"{"format": "sync-access/plan/v1"}"#,
    )
    .unwrap();
    apply(&db, &db.path("empty.json")).refused(4, "empty.json", "not a valid");

    // Not approved.
    let unapproved = plan_to(&db, "unapproved.json", &["--skip-conflicts"], 0);
    apply(&db, &unapproved).refused(4, "unapproved.json", "not approved");

    // Approving appends an approval bound to the digest and moves nothing
    // the digest covers; approving twice as the same person adds nothing.
    let approved = db.path("plan.json");
    std::fs::copy(&unapproved, &approved).unwrap();
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&approved, std::fs::Permissions::from_mode(0o640)).unwrap();
        || {
            std::fs::metadata(db.path("plan.json"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        }
    };
    let ran = approve(&db, &approved);
    #[cfg(unix)]
    assert_eq!(mode(), 0o640, "approve kept the file's permissions");
    ran.expect_code(0);
    assert_eq!(ran.stdout, "", "approve writes the file, not stdout");
    let mut raw = read_json(&approved);
    let mut original = read_json(&unapproved);
    assert_eq!(original["approvals"], json!([]));
    original.as_object_mut().unwrap().remove("approvals");
    let approvals = raw.as_object_mut().unwrap().remove("approvals").unwrap();
    assert_eq!(raw, original, "approving changed the plan");
    assert_eq!(approvals.as_array().unwrap().len(), 1);
    assert_eq!(approvals[0]["by"], APPROVER);
    assert_eq!(approvals[0]["digest"], original["digest"]);
    approve(&db, &approved).expect_code(0);
    assert_eq!(read_json(&approved)["approvals"], approvals);

    // One byte changed in a change, the digest left as it was.
    let tampered = tampered_copy(&db, &approved);
    let mut altered = read_json(&tampered);
    assert_ne!(altered["changes"], original["changes"]);
    altered["changes"] = original["changes"].clone();
    altered.as_object_mut().unwrap().remove("approvals");
    assert_eq!(altered, original, "only a change was altered");
    apply(&db, &tampered).refused(4, "tampered.json", "digest mismatch");
    approve(&db, &tampered).refused(4, "tampered.json", "digest mismatch");

    // Another plan carrying the approval of the first: another digest.
    let other = plan_to(
        &db,
        "other.json",
        &["--skip-conflicts", "--created-by", "mallory@example.com"],
        0,
    );
    let mut forged = read_json(&other);
    assert_ne!(forged["digest"], original["digest"]);
    forged["approvals"] = approvals.clone();
    write_json(&other, &forged);
    apply(&db, &other).refused(4, "other.json", "not approved");

    // Conflicts: approve and apply refuse with 3, even when an approval
    // with the right digest was added by hand.
    let conflicted = plan_to(&db, "conflicted.json", &[], 3);
    approve(&db, &conflicted).refused(3, "conflicted.json", "not applyable");
    assert!(read_json(&conflicted)
        .get("approvals")
        .map_or(true, |a| a == &json!([])));
    apply(&db, &conflicted).refused(3, "conflicted.json", "not applyable");
    let mut forged = read_json(&conflicted);
    forged["approvals"] =
        json!([{"by": APPROVER, "at": "2026-11-27T12:00:00Z", "digest": forged["digest"]}]);
    write_json(&conflicted, &forged);
    apply(&db, &conflicted).refused(3, "conflicted.json", "not applyable");
    run(&db, &["verify"], &tampered).refused(4, "tampered.json", "digest mismatch");

    assert_eq!(db.dump(), before, "a refused apply changed the database");
    assert_eq!(db.history_rows(), 0);
    // Not even the history table: on MySQL and MariaDB, where creating it
    // commits at once, a plan is checked before the apply may create it.
    assert!(
        !db.tables().iter().any(|t| t == "sync_access_history"),
        "a refused apply created the history table: {:?}",
        db.tables()
    );
    // The approved plan itself was good all along.
    apply(&db, &approved).expect_code(0);
}

fn another_database(kind: Kind) {
    let planned = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&planned);
    let other = TestDb::with_rows(kind, fixtures::rules());
    let before = other.dump();
    let ran: Ran = planned
        .cmd()
        .env("DATABASE_URL", &other.url)
        .arg("apply")
        .arg(&path)
        .output()
        .unwrap()
        .into();
    ran.refused(5, "plan.json", "another database");
    assert_eq!(other.dump(), before);
    assert_eq!(other.history_rows(), 0);
    assert_eq!(planned.history_rows(), 0);
}

/// Members that parsing and re-serialising would alter: a number beyond
/// 64 bits, a trailing zero, an escape.
const EXACT: [&str; 3] = ["123456789012345678901234567890", "1.10", "caf\\u00e9"];

/// The stored text of one document, as the database returns it.
fn raw_text(db: &TestDb, table: &str, key: &str) -> String {
    let sql = match db.kind {
        Kind::Sqlite => format!("SELECT \"value\" FROM \"{table}\" WHERE \"key\" = $1"),
        Kind::Postgres => format!("SELECT \"value\"::text FROM \"{table}\" WHERE \"key\" = $1"),
        Kind::MySql => format!("SELECT CAST(`value` AS CHAR) FROM `{table}` WHERE `key` = ?"),
    };
    runtime().block_on(async {
        match db.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(&sql)
                    .bind(key)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(&sql)
                    .bind(key)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Kind::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(&sql)
                    .bind(key)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
        }
    })
}

fn apply_verify_history(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    // Alice's auths get members that only a byte-exact rewrite keeps.
    let alice = doc(&db, "users", "alice").to_string();
    assert!(alice.contains("\"auths\":["));
    let alice = alice.replacen(
        "\"auths\":[",
        &format!(
            "\"auths\":[{{\"type\":\"TOTP\",\"counter\":{},\"ratio\":{},\"label\":\"{}\"}},",
            EXACT[0], EXACT[1], EXACT[2]
        ),
        1,
    );
    db.exec(&format!(
        "UPDATE {} SET {} = {} WHERE {} = 'alice'",
        ident(kind, "users"),
        ident(kind, "value"),
        literal(kind, &alice),
        ident(kind, "key")
    ));
    let alice_before = raw_text(&db, "users", "alice");
    let path = approved_rules_plan(&db);
    let plan = read_json(&path);
    let before = db.dump();

    // Before: verify lists what is missing; the history is empty.
    let ran = run(&db, &["verify"], &path);
    ran.expect_code(5);
    assert!(ran.stderr.lines().next().unwrap().contains("plan.json"));
    for line in [
        "missing: add_role default_admin",
        "missing: add_membership alice group data",
        "missing: add_binding default_b-plan-user",
    ] {
        assert!(ran.stderr.contains(line), "`{line}` in {}", ran.stderr);
    }
    let ran: Ran = db.cmd().arg("history").output().unwrap().into();
    ran.expect_code(0);
    assert!(ran.stdout.contains("No plan has been applied"), "{ran:?}");

    // Apply.
    let ran = apply(&db, &path);
    ran.expect_code(0);
    assert!(ran.stdout.starts_with("Applied plan"), "{ran:?}");
    let after = db.dump();
    assert_eq!(db.history_rows(), 1);

    // Exactly the planned rows were written, as planned.
    let changed = difference(&before, &after);
    let mut expected = BTreeMap::new();
    for change in plan["changes"].as_array().unwrap() {
        let key = change["key"].as_str().unwrap().to_string();
        let table = match change["op"].as_str().unwrap() {
            "add_role" => "roles",
            "add_group" => "groups",
            "add_binding" => "bindings",
            "add_membership" => "users",
            op => panic!("unexpected op {op}"),
        };
        if table != "users" {
            expected.insert((table.to_string(), key), change["value"].clone());
        }
    }
    for ((table, key), value) in &changed {
        if table == "users" {
            continue;
        }
        assert_eq!(expected.get(&(table.clone(), key.clone())), Some(value));
    }
    assert_eq!(
        changed.keys().filter(|(t, _)| t != "users").count(),
        expected.len()
    );

    // Users: every field but groupList exactly as before (auths included),
    // and groupList is the old list plus the planned entries, in order.
    let mut appended: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for change in plan["changes"].as_array().unwrap() {
        if change["op"] == "add_membership" {
            appended
                .entry(change["key"].as_str().unwrap().to_string())
                .or_default()
                .push(json!({"tenantId": "default", "groupId": change["group_id"], "membership": change["membership"]}));
        }
    }
    let changed_users: Vec<&String> = changed
        .keys()
        .filter(|(t, _)| t == "users")
        .map(|(_, k)| k)
        .collect();
    assert_eq!(
        changed_users,
        appended.keys().collect::<Vec<_>>(),
        "only users with new memberships are rewritten"
    );
    for (user, entries) in &appended {
        let key = ("users".to_string(), user.clone());
        let mut old = before[&key].as_object().unwrap().clone();
        let mut new = after[&key].as_object().unwrap().clone();
        let old_list = old.remove("groupList");
        let new_list = new.remove("groupList").expect("groupList written");
        assert_eq!(new, old, "{user}: a field other than groupList changed");
        assert!(old.contains_key("auths"), "{user} has auths");
        let mut expected_list = match old_list {
            Some(Value::Array(list)) => list,
            None | Some(Value::Null) => Vec::new(),
            Some(other) => panic!("unexpected groupList {other}"),
        };
        expected_list.extend(entries.iter().cloned());
        assert_eq!(new_list, Value::Array(expected_list), "{user}: groupList");
    }
    // Both shapes were exercised: a groupList extended and one created.
    assert!(before[&("users".into(), "alice".into())]
        .get("groupList")
        .is_some());
    assert!(before[&("users".into(), "carol".into())]
        .get("groupList")
        .is_none());
    assert!(appended.contains_key("alice") && appended.contains_key("carol"));
    // Byte for byte, as far as the database kept the bytes itself.
    let alice_after = raw_text(&db, "users", "alice");
    for exact in EXACT {
        if alice_before.contains(exact) {
            assert!(
                alice_after.contains(exact),
                "`{exact}` was rewritten: {alice_before} became {alice_after}"
            );
        }
    }
    assert!(
        !ran.stdout.contains(fixtures::SECRET_HASH) && !ran.stderr.contains(fixtures::SECRET_HASH)
    );

    // verify: everything is there now.
    let ran = run(&db, &["verify"], &path);
    ran.expect_code(0);
    assert!(ran.stdout.contains("are in the database"), "{ran:?}");

    // Re-apply: nothing written, says when and by whom.
    let ran = apply(&db, &path);
    ran.expect_code(0);
    assert!(ran.stdout.contains("already applied"), "{ran:?}");
    assert!(ran.stdout.contains("2026-11-27T12:00:00Z"), "{ran:?}");
    assert!(ran.stdout.contains("tester@example.com"), "{ran:?}");
    assert!(ran.stdout.contains(APPROVER), "{ran:?}");
    assert_eq!(db.dump(), after);
    assert_eq!(db.history_rows(), 1);

    // Planning again: no changes, exit 0 even with --detailed-exitcode.
    let replanned = plan_to(
        &db,
        "again.json",
        &["--skip-conflicts", "--detailed-exitcode"],
        0,
    );
    assert_eq!(read_json(&replanned)["changes"], json!([]));

    // history: the one applied plan.
    let ran: Ran = db.cmd().arg("history").output().unwrap().into();
    ran.expect_code(0);
    let digest = plan["digest"].as_str().unwrap();
    let short = &digest["sha256:".len()..][..12];
    for needle in [short, "default", "tester@example.com", APPROVER] {
        assert!(ran.stdout.contains(needle), "`{needle}` in {}", ran.stdout);
    }
    assert_eq!(db.dump(), after, "verify, plan and history wrote nothing");

    // A plan that creates its tenant: the tenant row is written too.
    let args = ["--tenant", "acme", "--create-tenant", "--skip-conflicts"];
    let acme = plan_to(&db, "acme.json", &args, 0);
    approve(&db, &acme).expect_code(0);
    // An hour later, so that the history has a newest.
    let ran: Ran = db
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1795784400")
        .arg("apply")
        .arg(&acme)
        .output()
        .unwrap()
        .into();
    ran.expect_code(0);
    assert!(ran.stdout.contains("the tenant created"), "{ran:?}");
    assert_eq!(
        doc(&db, "tenants", "acme"),
        json!({"id": "acme", "name": "acme", "deleted": false})
    );
    run(&db, &["verify"], &acme).expect_code(0);
    let again = plan_to(
        &db,
        "acme-again.json",
        &["--tenant", "acme", "--skip-conflicts"],
        0,
    );
    assert_eq!(read_json(&again)["changes"], json!([]));
    assert_eq!(db.history_rows(), 2);
    let ran: Ran = db.cmd().arg("history").output().unwrap().into();
    ran.expect_code(0);
    let line = |needle: &str| {
        ran.stdout
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` in {}", ran.stdout))
    };
    assert!(
        line("2026-11-27T13:00:00Z") < line("default"),
        "newest first: {}",
        ran.stdout
    );
    assert_eq!(line("acme"), line("2026-11-27T13:00:00Z"));
}

fn drift(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&db);

    // A new legacy group: the database needs one more change than approved.
    db.exec(&insert_sql(
        kind,
        "groups",
        "ml",
        &json!({"id": "ml", "name": "Machine learning", "deleted": false}),
    ));
    let before = db.dump();
    let ran = apply(&db, &path);
    ran.expect_code(5);
    assert_eq!(ran.stdout, "");
    let first = ran.stderr.lines().next().unwrap();
    assert!(
        first.contains("plan.json") && first.contains("stale"),
        "{first}"
    );
    let added: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    assert_eq!(added.len(), 1, "{}", ran.stderr);
    assert!(added[0].contains("default_ml"), "{}", ran.stderr);
    assert!(!ran
        .stderr
        .lines()
        .any(|l| l.starts_with('-') && !l.starts_with("---")));
    assert_eq!(db.dump(), before, "a stale apply wrote");
    assert_eq!(db.history_rows(), 0);
    db.exec(&delete_sql(kind, "groups", "ml"));

    // A planned document already written by someone: one change fewer.
    let plan = read_json(&path);
    let planned_group = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "default_data")
        .unwrap()["value"]
        .clone();
    db.exec(&insert_sql(kind, "groups", "default_data", &planned_group));
    let before = db.dump();
    let ran = apply(&db, &path);
    ran.expect_code(5);
    let removed: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    assert_eq!(removed.len(), 1, "{}", ran.stderr);
    assert!(removed[0].contains("default_data"), "{}", ran.stderr);
    assert_eq!(db.dump(), before, "a stale apply wrote");
    db.exec(&delete_sql(kind, "groups", "default_data"));

    // Drift that the plan does not depend on: alice's email changes, a
    // deleted legacy role and another tenant's role appear.
    let mut alice = doc(&db, "users", "alice");
    alice["email"] = json!("alice@new.example.com");
    db.exec(&update_sql(kind, "users", "alice", &alice));
    db.exec(&insert_sql(
        kind,
        "roles",
        "gone-role",
        &json!({"id": "gone-role", "name": "Gone", "permissions": {}, "deleted": true}),
    ));
    db.exec(&insert_sql(
        kind,
        "roles",
        "other_new",
        &json!({"id": "new", "tenantId": "other", "name": "New", "permissions": {}, "deleted": false}),
    ));
    let ran = apply(&db, &path);
    ran.expect_code(0);
    assert!(ran.stdout.starts_with("Applied plan"), "{ran:?}");
    // The membership was appended to the document as it is now.
    let now = doc(&db, "users", "alice");
    assert_eq!(now["email"], "alice@new.example.com");
    assert_eq!(
        now["groupList"].as_array().unwrap().len(),
        alice["groupList"].as_array().unwrap().len() + 2
    );
    assert_eq!(db.history_rows(), 1);
    run(&db, &["verify"], &path).expect_code(0);
}

/// A session of the test's own that holds what an apply must wait for.
enum Holder {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
    MySql(sqlx::MySqlConnection),
}

/// The advisory lock key of src/store/postgres.rs ("syncacce").
const PG_LOCK_KEY: i64 = 0x7379_6e63_6163_6365;

async fn hold_lock(db: &TestDb) -> Holder {
    match db.kind {
        Kind::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            c.execute("BEGIN IMMEDIATE").await.unwrap();
            Holder::Sqlite(c)
        }
        Kind::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut c)
                .await
                .unwrap();
            Holder::Postgres(c)
        }
        Kind::MySql => {
            let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
            let got: Option<i64> = sqlx::query_scalar(
                "SELECT GET_LOCK(LEFT(CONCAT('sync-access:', DATABASE()), 64), 0)",
            )
            .fetch_one(&mut c)
            .await
            .unwrap();
            assert_eq!(got, Some(1));
            Holder::MySql(c)
        }
    }
}

/// A writer other than sync-access (Kestra itself, say) in the middle of a
/// transaction on the IAM tables.
async fn hold_rows(db: &TestDb) -> Holder {
    let touch = format!(
        "UPDATE {} SET {} = {} WHERE {} = 'alice'",
        ident(db.kind, "users"),
        ident(db.kind, "value"),
        ident(db.kind, "value"),
        ident(db.kind, "key")
    );
    match db.kind {
        Kind::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            c.execute("BEGIN IMMEDIATE").await.unwrap();
            c.execute(touch.as_str()).await.unwrap();
            Holder::Sqlite(c)
        }
        Kind::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            c.execute("BEGIN").await.unwrap();
            c.execute(touch.as_str()).await.unwrap();
            Holder::Postgres(c)
        }
        Kind::MySql => {
            let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
            c.execute("START TRANSACTION").await.unwrap();
            c.execute(touch.as_str()).await.unwrap();
            Holder::MySql(c)
        }
    }
}

async fn release(holder: Holder) {
    match holder {
        Holder::Sqlite(mut c) => {
            c.execute("ROLLBACK").await.unwrap();
            c.close().await.unwrap();
        }
        Holder::Postgres(c) => c.close().await.unwrap(),
        Holder::MySql(c) => c.close().await.unwrap(),
    }
}

/// `apply` as a child process, started without waiting for it.
fn spawn_apply(db: &TestDb, plan: &Path) -> std::process::Child {
    spawn_apply_with(db, plan, &[])
}

/// [`spawn_apply`] with more arguments.
fn spawn_apply_with(db: &TestDb, plan: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sync-access"))
        .env("DATABASE_URL", &db.url)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("SYNC_ACCESS_USER", "tester@example.com")
        .env_remove("RUST_LOG")
        .current_dir(db.dir.path())
        .args(["apply", "--lock-timeout", "60"])
        .args(args)
        .arg(plan)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn locking(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&db);
    let before = db.dump();

    // Another apply holds the lock: give up after --lock-timeout, exit 6.
    let rt = runtime();
    let holder = rt.block_on(hold_lock(&db));
    let ran = run(&db, &["apply", "--lock-timeout", "1"], &path);
    rt.block_on(release(holder));
    ran.refused(6, "plan.json", "lock");
    assert_eq!(db.dump(), before);
    assert_eq!(db.history_rows(), 0);

    // A plan refused while the lock is held is refused at once, not after
    // waiting for the lock (its check runs beside the wait): with a minute
    // to wait, a refusal for the lock (6) would be an apply that waited.
    let tampered = tampered_copy(&db, &path);
    let holder = rt.block_on(hold_lock(&db));
    let ran: Ran = spawn_apply(&db, &tampered)
        .wait_with_output()
        .unwrap()
        .into();
    rt.block_on(release(holder));
    ran.refused(4, "tampered.json", "digest mismatch");
    assert_eq!(db.dump(), before);
    assert_eq!(db.history_rows(), 0);
    if kind == Kind::MySql {
        // The statement taking the lock was abandoned mid-answer: MySQL's
        // session is closed, not sent a ROLLBACK that would read the rest
        // of that answer (sqlx panicked decoding it: Store::abandon).
        let holder = rt.block_on(hold_lock(&db));
        let ran: Ran = spawn_apply_with(&db, &tampered, &["-v"])
            .wait_with_output()
            .unwrap()
            .into();
        rt.block_on(release(holder));
        ran.expect_code(4);
        assert!(
            ran.stderr.contains("digest mismatch")
                && ran
                    .stderr
                    .contains("closing the connection: the server rolls back")
                && !ran.stderr.contains("panicked"),
            "{ran:#?}"
        );
        assert_eq!(db.dump(), before);
    }

    // Someone else is writing the IAM tables: the same bounded wait.
    let holder = rt.block_on(hold_rows(&db));
    let ran = run(&db, &["apply", "--lock-timeout", "1"], &path);
    rt.block_on(release(holder));
    ran.refused(6, "plan.json", "another");
    assert_eq!(db.dump(), before);
    assert_eq!(db.history_rows(), 0);

    // Two applies of the same plan at once: exactly one writes.
    let first = spawn_apply(&db, &path);
    let second = spawn_apply(&db, &path);
    let runs: Vec<Ran> = [first, second]
        .into_iter()
        .map(|child| child.wait_with_output().unwrap().into())
        .collect();
    let applied = runs
        .iter()
        .filter(|r| r.code == 0 && r.stdout.starts_with("Applied plan"))
        .count();
    assert_eq!(applied, 1, "exactly one applies: {runs:#?}");
    let other = runs
        .iter()
        .find(|r| !r.stdout.starts_with("Applied plan"))
        .unwrap();
    assert!(
        (other.code == 0 && other.stdout.contains("already applied")) || other.code == 6,
        "the other one says it was already applied, or that it is locked out: {other:#?}"
    );
    assert_eq!(db.history_rows(), 1);
    run(&db, &["verify"], &path).expect_code(0);
}

/// SQL creating a trigger that plants a row at a planned binding key when
/// the first role is inserted, so that the binding insert fails after the
/// role and group inserts succeeded.
fn planting_trigger(kind: Kind) -> Vec<String> {
    let planted = json!({"id": "planted", "tenantId": "default", "type": "USER",
        "externalId": "mallory", "roleId": "admin", "deleted": false})
    .to_string();
    let planted = literal(kind, &planted);
    match kind {
        Kind::Sqlite => vec![format!(
            "CREATE TRIGGER sa_planted AFTER INSERT ON roles BEGIN \
             INSERT OR IGNORE INTO bindings (\"key\", \"value\") VALUES ('default_b-plan-user', {planted}); END"
        )],
        Kind::Postgres => vec![
            format!(
                "CREATE FUNCTION sa_planted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 INSERT INTO bindings (\"key\", \"value\") VALUES ('default_b-plan-user', {planted}) \
                 ON CONFLICT DO NOTHING; RETURN NULL; END $$"
            ),
            "CREATE TRIGGER sa_planted AFTER INSERT ON roles FOR EACH ROW EXECUTE FUNCTION sa_planted()"
                .into(),
        ],
        Kind::MySql => vec![format!(
            "CREATE TRIGGER sa_planted AFTER INSERT ON roles FOR EACH ROW \
             INSERT IGNORE INTO bindings (`key`, `value`) VALUES ('default_b-plan-user', {planted})"
        )],
    }
}

/// SQL creating a trigger that fails every update of a user: the last
/// writes of an apply.
fn failing_trigger(kind: Kind) -> Vec<String> {
    match kind {
        Kind::Sqlite => vec![
            "CREATE TRIGGER sa_refuse BEFORE UPDATE ON users BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
                .into(),
        ],
        Kind::Postgres => vec![
            "CREATE FUNCTION sa_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             RAISE EXCEPTION 'refused by the test trigger'; END $$"
                .into(),
            "CREATE TRIGGER sa_refuse BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION sa_refuse()"
                .into(),
        ],
        Kind::MySql => vec![
            "CREATE TRIGGER sa_refuse BEFORE UPDATE ON users FOR EACH ROW \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test trigger'"
                .into(),
        ],
    }
}

fn drop_trigger(kind: Kind, name: &str, table: &str) -> String {
    match kind {
        Kind::Postgres => format!("DROP TRIGGER {name} ON {table}"),
        _ => format!("DROP TRIGGER {name}"),
    }
}

fn failure_mid_write(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&db);
    let before = db.dump();

    // A planned key taken in the middle of the writes.
    for sql in planting_trigger(kind) {
        db.exec(&sql);
    }
    let ran = apply(&db, &path);
    ran.expect_code(5);
    assert_eq!(ran.stdout, "");
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("plan.json")
            && ran.stderr.contains("default_b-plan-user")
            && ran.stderr.contains("nothing was written"),
        "{}",
        ran.stderr
    );
    assert_eq!(db.dump(), before, "a failed apply left rows behind");
    assert_eq!(db.history_rows(), 0);
    db.exec(&drop_trigger(kind, "sa_planted", "roles"));

    // The very last write fails.
    for sql in failing_trigger(kind) {
        db.exec(&sql);
    }
    let ran = apply(&db, &path);
    ran.expect_code(1);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("plan.json")
            && ran.stderr.contains("refused by the test trigger")
            && ran.stderr.contains("nothing was written"),
        "{}",
        ran.stderr
    );
    assert_eq!(db.dump(), before, "a failed apply left rows behind");
    assert_eq!(db.history_rows(), 0);
    db.exec(&drop_trigger(kind, "sa_refuse", "users"));

    // Once the sabotage is gone, the same plan applies.
    apply(&db, &path).expect_code(0);
    assert_eq!(db.history_rows(), 1);
    run(&db, &["verify"], &path).expect_code(0);
}

/// Checks that need no database server.
pub fn single_trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "approve::never_waits_for_input_when_stdin_is_not_a_terminal",
            || {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("plan.json");
                let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo-plan.json");
                std::fs::copy(golden, &path).unwrap();
                // A pipe that stays open and says nothing: approve neither
                // waits for it nor approves without -y; it refuses at once.
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_sync-access"))
                    .current_dir(dir.path())
                    .args(["approve", "--by", APPROVER, "plan.json"])
                    .stdin(Stdio::piped())
                    .output()
                    .unwrap();
                let ran = Ran::from(out);
                ran.expect_code(1);
                assert!(!ran.stderr.contains("[y/N]"), "{ran:?}");
                assert!(ran.stderr.contains("--yes"), "{ran:?}");
                assert_eq!(read_json(&path)["approvals"], serde_json::json!([]));
                Ok(())
            },
        ),
        Trial::test("apply::a_missing_plan_file_is_named", || {
            let dir = tempfile::tempdir().unwrap();
            for command in ["apply", "approve", "verify"] {
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sync-access"));
                cmd.current_dir(dir.path()).arg(command);
                if command == "approve" {
                    cmd.args(["--by", APPROVER]);
                }
                let ran = Ran::from(cmd.arg("missing.json").output().unwrap());
                ran.expect_code(1);
                assert!(
                    ran.stderr.contains("missing.json") && ran.stderr.lines().count() == 1,
                    "{command}: {ran:?}"
                );
            }
            Ok(())
        }),
    ]
}

/// `approve` changes only the `approvals` of the file, whatever its layout
/// (it splices them in rather than rewriting a plan of a million changes):
/// every other byte stays, and the plan still applies.
fn approve_splices(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let path = plan_to(&db, "plan.json", &["--skip-conflicts"], 0);
    let planned = std::fs::read_to_string(&path).unwrap();
    approve(&db, &path).expect_code(0);
    let approved = std::fs::read_to_string(&path).unwrap();
    let member = "\n  \"approvals\": ";
    let cut = planned.find(member).expect("the plan writes its approvals");
    assert_eq!(planned[cut..], format!("{member}[]\n}}\n"));
    assert_eq!(
        approved[..cut],
        planned[..cut],
        "the bytes before the approvals"
    );
    assert!(approved.ends_with("\n    }\n  ]\n}\n"), "{approved}");
    let first = &read_json(&path)["approvals"];
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["by"], APPROVER);

    // Another layout, without the member: it is added, the rest kept.
    let mut plan = read_json(&path);
    let digest = plan["digest"].clone();
    plan.as_object_mut().unwrap().remove("approvals");
    let compact = serde_json::to_string(&plan).unwrap();
    std::fs::write(&path, format!("{compact}\n")).unwrap();
    run(
        &db,
        &["approve", "--yes", "--by", "auditor@example.com"],
        &path,
    )
    .expect_code(0);
    let approved = std::fs::read_to_string(&path).unwrap();
    let kept = compact.strip_suffix('}').unwrap();
    assert!(approved.starts_with(kept), "{approved}");
    let plan = read_json(&path);
    assert_eq!(plan["digest"], digest);
    assert_eq!(plan["approvals"][0]["by"], "auditor@example.com");

    // An edited change is refused, the file left as it was.
    let tampered = approved.replacen("\"add_binding\"", "\"add_role\"", 1);
    assert_ne!(tampered, approved);
    std::fs::write(&path, &tampered).unwrap();
    let ran = approve(&db, &path);
    assert_ne!(ran.code, 0, "{ran:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), tampered);

    // The approved plan applies.
    std::fs::write(&path, &approved).unwrap();
    apply(&db, &path).expect_code(0);
}

/// `apply` reads its changes back from a temporary file and writes them in
/// batches; a user's memberships are one update of their document, so a
/// batch never ends inside them. Batches of one change (more for a user's
/// memberships) write exactly what one batch writes. Where it derives on
/// its one connection, it holds the bindings the first pass read and
/// writes beside the second; holding none, it reads them twice and writes
/// the same.
fn apply_in_batches(kind: Kind) {
    let whole = TestDb::with_rows(kind, fixtures::rules());
    let batched = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&whole);
    let plan = read_json(&path);
    let memberships = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "add_membership")
        .map(|c| c["key"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert!(
        memberships.windows(2).any(|w| w[0] == w[1]),
        "the fixture gives a user several memberships: {memberships:?}"
    );
    let ran = run(&whole, &["-v", "apply"], &path);
    ran.expect_code(0);
    // MySQL and MariaDB create the missing history table on a second
    // connection, once the plan has passed: the apply read meanwhile.
    assert_eq!(
        ran.stderr
            .contains("created the history table on a second connection"),
        kind == Kind::MySql,
        "{ran:?}"
    );
    assert_eq!(whole.history_rows(), 1);
    // PostgreSQL derives on a second connection, and holds nothing there.
    assert!(ran.stderr.contains("(first pass) held="), "{ran:?}");
    assert_eq!(
        ran.stderr.contains("(first pass) held=0"),
        kind == Kind::Postgres,
        "{ran:?}"
    );
    let path = approved_rules_plan(&batched);
    let ran: Ran = batched
        .cmd()
        .env("SYNC_ACCESS_WRITE_BATCH", "1")
        .env("SYNC_ACCESS_APPLY_HOLD", "0")
        .args(["-v", "apply"])
        .arg(&path)
        .output()
        .unwrap()
        .into();
    ran.expect_code(0);
    assert!(ran.stderr.contains("(first pass) held=0"), "{ran:?}");
    assert_eq!(batched.dump(), whole.dump());
    run(&batched, &["verify"], &path).expect_code(0);
}

/// `plan` and `apply` keep their changes in temporary files in `TMPDIR`:
/// when it cannot take them, each says so in one line (exit 1), `plan`
/// writes no plan file, and `apply` leaves the database as it was.
fn unusable_tmpdir(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let missing = db.path("no-such-dir");
    let out = db.path("never.json");
    let ran: Ran = db
        .cmd()
        .env("TMPDIR", &missing)
        .args(["plan", "--skip-conflicts", "-o"])
        .arg(&out)
        .output()
        .unwrap()
        .into();
    ran.expect_code(1);
    assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
    assert!(ran.stderr.contains("TMPDIR"), "{ran:?}");
    assert!(!out.exists());

    let path = approved_rules_plan(&db);
    let before = db.dump();
    let ran: Ran = db
        .cmd()
        .env("TMPDIR", &missing)
        .arg("apply")
        .arg(&path)
        .output()
        .unwrap()
        .into();
    ran.expect_code(1);
    assert!(ran.stderr.contains("TMPDIR"), "{ran:?}");
    assert!(ran.stderr.contains("plan.json"), "names the plan: {ran:?}");
    assert_eq!(db.dump(), before);
    assert_eq!(db.history_rows(), 0);
    apply(&db, &path).expect_code(0);
}

/// On PostgreSQL, `apply` derives the changes on a second connection at its
/// own snapshot while it writes them (src/commands/apply.rs,
/// `write_sync_beside`); a role allowed one connection gets none, and the
/// apply derives first and writes after, on its one connection. Both write
/// what a plain apply writes.
fn beside_the_writes(kind: Kind) {
    let beside = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&beside);
    let ran = run(&beside, &["-v", "apply"], &path);
    ran.expect_code(0);
    assert!(
        ran.stderr.contains("deriving on a second connection"),
        "{ran:?}"
    );
    run(&beside, &["verify"], &path).expect_code(0);

    let one = TestDb::with_rows(kind, fixtures::rules());
    let (ran, _) = apply_with_one_connection(&one);
    assert!(ran.stderr.contains("no second connection"), "{ran:?}");
    assert!(
        !ran.stderr.contains("deriving on a second connection"),
        "{ran:?}"
    );
    assert_eq!(one.dump(), beside.dump());
}

/// On MySQL and MariaDB, the first apply creates the missing history
/// table on a second connection once the plan has passed
/// (src/store/mod.rs, `history_maker`), reading meanwhile; a user allowed
/// one connection gets none, and the plan passes first, the table then
/// created before the apply transaction. Both write and record the same.
fn history_with_one_connection_or_two(kind: Kind) {
    let two = TestDb::with_rows(kind, fixtures::rules());
    let path = approved_rules_plan(&two);
    let ran = run(&two, &["-v", "apply"], &path);
    ran.expect_code(0);
    assert!(
        ran.stderr
            .contains("created the history table on a second connection"),
        "{ran:?}"
    );
    assert_eq!(two.history_rows(), 1);

    let one = TestDb::with_rows(kind, fixtures::rules());
    let (ran, path) = apply_with_one_connection(&one);
    assert!(
        ran.stderr
            .contains("no second connection for the history table"),
        "{ran:?}"
    );
    assert!(
        !ran.stderr
            .contains("created the history table on a second connection"),
        "{ran:?}"
    );
    assert_eq!(one.history_rows(), 1);
    assert_eq!(one.dump(), two.dump());
    run(&one, &["verify"], &path).expect_code(0);
}

/// The rules fixture's plan, approved, then applied with `-v` by a role
/// or user of `db` that may hold one connection at a time; it applies.
fn apply_with_one_connection(db: &TestDb) -> (Ran, PathBuf) {
    let role = OneConnectionRole::new(db);
    let path = approved_rules_plan(db);
    let ran: Ran = db
        .cmd()
        .env("DATABASE_URL", &role.url)
        .args(["-v", "apply"])
        .arg(&path)
        .output()
        .unwrap()
        .into();
    ran.expect_code(0);
    (ran, path)
}

/// A PostgreSQL role, or a MySQL user, that may hold one connection at a
/// time, with what an apply needs of `db`; dropped with everything
/// granted to it.
struct OneConnectionRole<'d> {
    db: &'d TestDb,
    name: String,
    url: String,
}

impl<'d> OneConnectionRole<'d> {
    fn new(db: &'d TestDb) -> Self {
        let name = format!("sa_one_connection_{}", std::process::id());
        match db.kind {
            Kind::MySql => {
                let database = db.url.rsplit('/').next().expect("a database in the URL");
                let database = database.split('?').next().unwrap_or(database);
                db.exec(&format!("DROP USER IF EXISTS '{name}'@'%'"));
                db.exec(&format!(
                    "CREATE USER '{name}'@'%' WITH MAX_USER_CONNECTIONS 1"
                ));
                db.exec(&format!("GRANT ALL ON `{database}`.* TO '{name}'@'%'"));
            }
            _ => {
                db.exec(&format!("DROP ROLE IF EXISTS {name}"));
                db.exec(&format!(
                    "CREATE ROLE {name} LOGIN CONNECTION LIMIT 1; \
                     GRANT ALL ON SCHEMA public TO {name}; \
                     GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}"
                ));
            }
        }
        // The test database's URL, as this role: no password (trust).
        let scheme_end = db.url.find("://").expect("a URL") + 3;
        let host_start = db.url[scheme_end..]
            .find('@')
            .map_or(scheme_end, |at| scheme_end + at + 1);
        let url = format!("{}{name}@{}", &db.url[..scheme_end], &db.url[host_start..]);
        OneConnectionRole { db, name, url }
    }
}

impl Drop for OneConnectionRole<'_> {
    fn drop(&mut self) {
        let name = &self.name;
        match self.db.kind {
            Kind::MySql => self.db.exec(&format!("DROP USER IF EXISTS '{name}'@'%'")),
            _ => self
                .db
                .exec(&format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}")),
        }
    }
}
