//! Hostile store content through the real binary (issue 11, the store's
//! half): numbers of any size, rows that cannot be decoded, members given
//! twice in store documents and in plan files. Nothing crashes, nothing
//! ambiguous is copied, and what was skipped is shown for review.

use libtest_mimic::Trial;
use sqlx::{Connection, Row};
use sync_access::sync::{RawDoc, Snapshot};

use crate::support::{read_json, runtime, Kind, Scenario, TestDb};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "hostile_store_numbers_of_any_size_are_copied_as_the_store_holds_them",
        numbers,
    ),
    Scenario::new(
        "hostile_store_members_given_twice_are_malformed_never_copied",
        members_given_twice,
    ),
    Scenario::only(
        "hostile_store_a_row_that_is_not_utf8_is_skipped_by_its_key",
        not_utf8,
        |kind| match kind {
            Kind::Sqlite | Kind::MySql => Ok(()),
            Kind::Postgres => Err("PostgreSQL keeps no text that is not UTF-8 in a UTF-8 database"),
        },
    ),
    Scenario::only(
        "hostile_store_a_hot_journal_is_rolled_back_by_read_only_commands",
        hot_journal,
        |kind| match kind {
            Kind::Sqlite => Ok(()),
            _ => Err("a hot journal is SQLite's; a server rolls back a dead session itself"),
        },
    ),
    Scenario::new(
        "hostile_store_demo_refuses_a_database_holding_some_iam_tables",
        demo_beside_other_tables,
    ),
    Scenario::only(
        "hostile_store_keys_the_server_takes_for_one_are_a_conflict",
        keys_compared_as_the_server_does,
        |kind| match kind {
            Kind::MySql => Ok(()),
            _ => Err("SQLite and PostgreSQL compare text keys by their bytes"),
        },
    ),
];

/// Checks that need no database server.
pub fn single_trials() -> Vec<Trial> {
    vec![Trial::test(
        "hostile_store::plan_files_giving_a_member_twice_are_refused",
        || {
            plan_members_given_twice();
            Ok(())
        },
    )]
}

/// A store whose tenant `default` exists.
fn store() -> Snapshot {
    Snapshot {
        tenants: vec![RawDoc::new(
            "default",
            r#"{"id":"default","name":"Default","deleted":false}"#,
        )],
        ..Snapshot::default()
    }
}

/// The text of `table`'s row `key`, as the store returns it.
fn stored_text(db: &TestDb, table: &str, key: &str) -> Option<String> {
    let url = db.url.clone();
    let kind = db.kind;
    let (table, key) = (table.to_string(), key.to_string());
    runtime().block_on(async move {
        let rows = match kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(&format!(
                    "SELECT \"value\" FROM \"{table}\" WHERE \"key\" = ?"
                ))
                .bind(key)
                .fetch_all(&mut c)
                .await
            }
            .map(|rows| rows.iter().map(|r| r.get::<String, _>(0)).collect()),
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(&format!(
                    "SELECT \"value\"::text FROM \"{table}\" WHERE \"key\" = $1"
                ))
                .bind(key)
                .fetch_all(&mut c)
                .await
            }
            .map(|rows| rows.iter().map(|r| r.get::<String, _>(0)).collect()),
            Kind::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
                sqlx::query(&format!(
                    "SELECT CAST(`value` AS CHAR) FROM `{table}` WHERE `key` = ?"
                ))
                .bind(key)
                .fetch_all(&mut c)
                .await
            }
            .map(|rows| rows.iter().map(|r| r.get::<String, _>(0)).collect()),
        };
        let rows: Vec<String> = rows.unwrap();
        rows.into_iter().next()
    })
}

/// Runs the binary; returns (exit code, stdout, stderr) and fails on a panic.
fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("killed: {stderr}"));
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

fn expect(cmd: &mut assert_cmd::Command, code: i32, what: &str) -> (String, String) {
    let (got, stdout, stderr) = run(cmd);
    assert_eq!(got, code, "{what}: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// plan, approve, apply and verify, each with its expected exit; then a
/// second plan finds nothing left to do.
fn plan_approve_apply(db: &TestDb) {
    let plan = db.path("plan.json");
    expect(db.cmd().arg("plan").arg("-o").arg(&plan), 0, "plan");
    expect(
        db.cmd()
            .args(["approve", "--yes", "--by", "security@example.com"])
            .arg(&plan),
        0,
        "approve",
    );
    expect(db.cmd().arg("apply").arg(&plan), 0, "apply");
    expect(db.cmd().arg("verify").arg(&plan), 0, "verify");
    expect(
        db.cmd()
            .args(["plan", "--detailed-exitcode", "-o"])
            .arg(db.path("again.json")),
        0,
        "plan again",
    );
}

// ---------------------------------------------------------------------------
// Numbers

/// Beyond f64 (`1e400`, and PostgreSQL's numeric `1e309` written out),
/// beyond its precision, `-0` and an upper-case exponent: `plan` and
/// `apply` used to panic on the first two. The copy keeps each number as
/// the store holds it: as written on SQLite and MariaDB (text), in the
/// server's own decimal form on PostgreSQL (`jsonb` is `numeric`).
fn numbers(kind: Kind) {
    let mut rows = store();
    rows.roles.push(RawDoc::new(
        "big",
        r#"{"id":"big","name":"Big","permissions":{"FLOW":["READ"]},"deleted":false,"a":1e400,"b":0.1000000000000000000001,"c":-0,"d":1E2,"e":1.10,"f":[-1.5e-3]}"#,
    ));
    rows.groups.push(RawDoc::new(
        "pg",
        r#"{"id":"pg","name":"PG","deleted":false,"n":1e309}"#,
    ));
    let db = TestDb::with_rows(kind, rows);
    let held = stored_text(&db, "roles", "big").unwrap();
    plan_approve_apply(&db);
    let plan = std::fs::read_to_string(db.path("plan.json")).unwrap();
    let copy = stored_text(&db, "roles", "default_big").expect("the role was copied");
    let group = stored_text(&db, "groups", "default_pg").expect("the group was copied");
    let expected: &[&str] = match kind {
        Kind::Postgres => &[
            "\"b\":0.1000000000000000000001",
            "\"c\":0,",
            "\"d\":100,",
            "\"e\":1.10,",
            "\"f\":[-0.0015]",
        ],
        _ => &[
            "\"a\":1e400,",
            "\"b\":0.1000000000000000000001,",
            "\"c\":-0,",
            "\"d\":1E2,",
            "\"e\":1.10,",
            "\"f\":[-1.5e-3]",
        ],
    };
    for number in expected {
        assert!(plan.contains(number), "{number} not in the plan:\n{plan}");
    }
    let zeros = |n: usize| format!("1{}", "0".repeat(n));
    if kind == Kind::Postgres {
        assert!(plan.contains(&format!("\"a\":{},", zeros(400))), "{plan}");
        assert!(plan.contains(&format!("\"n\":{}", zeros(309))), "{plan}");
    } else {
        assert!(plan.contains("\"n\":1e309"), "{plan}");
    }
    // What the store holds of the copy reads as what it holds of the legacy
    // document, but for `tenantId`.
    let numbers = |text: &str| -> Vec<String> {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|k| value[k].to_string())
            .collect()
    };
    assert_eq!(numbers(&copy), numbers(&held), "{copy}\n{held}");
    assert!(group.contains("\"n\""), "{group}");
}

// ---------------------------------------------------------------------------
// Members given twice

/// `"tenantId": null, ..., "tenantId": "other"`: SQLite's and MariaDB's
/// generated columns read the first, the tool used to read the last and
/// copied it as legacy. Now it is malformed wherever the repeat is, listed
/// under `skipped` and shown; PostgreSQL's `jsonb` keeps only the last
/// value when the row is written, so there the store itself holds no
/// repeat: the role is of tenant `other` (never copied) and the group is
/// an ordinary one.
fn members_given_twice(kind: Kind) {
    let mut rows = store();
    rows.roles.push(RawDoc::new(
        "twice",
        r#"{"id":"twice","tenantId":null,"name":"Twice","permissions":{"FLOW":["READ"]},"deleted":false,"tenantId":"other"}"#,
    ));
    rows.groups.push(RawDoc::new(
        "nested",
        r#"{"id":"nested","name":"Nested","deleted":false,"extra":{"list":[{"a":1,"a":2}]}}"#,
    ));
    rows.groups.push(RawDoc::new(
        "plain",
        r#"{"id":"plain","name":"Plain","deleted":false}"#,
    ));
    rows.bindings.push(RawDoc::new(
        "b-nested",
        r#"{"id":"b-nested","type":"GROUP","externalId":"nested","roleId":"twice","deleted":false}"#,
    ));
    let db = TestDb::with_rows(kind, rows);
    let path = db.path("plan.json");
    expect(db.cmd().arg("plan").arg("-o").arg(&path), 0, "plan");
    let plan = read_json(&path);
    let skipped: Vec<(String, String, String)> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let keys: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    let (stdout, _) = expect(db.cmd().arg("show").arg(&path), 0, "show");
    if kind == Kind::Postgres {
        assert_eq!(keys, ["default_nested", "default_plain"], "{plan:#}");
        assert_eq!(
            skipped,
            [(
                "b-nested".to_string(),
                "role missing".to_string(),
                String::new()
            )]
        );
    } else {
        assert_eq!(keys, ["default_plain"], "{plan:#}");
        let own = |key: &str, detail: &str| {
            (key.to_string(), "malformed".to_string(), detail.to_string())
        };
        assert_eq!(
            skipped,
            [
                own("twice", "member `tenantId` is given twice"),
                own("nested", "member `extra.list[0].a` is given twice"),
                (
                    "b-nested".to_string(),
                    "group malformed".to_string(),
                    String::new()
                ),
            ],
            "{plan:#}"
        );
        for text in ["twice", "nested", "member `tenantId` is given twice"] {
            assert!(stdout.contains(text), "`{text}` not shown:\n{stdout}");
        }
    }
    plan_approve_apply(&db);
    assert_eq!(stored_text(&db, "roles", "default_twice"), None);
}

// ---------------------------------------------------------------------------
// Bytes that are not UTF-8

/// One role whose document holds bytes that are not UTF-8 used to stop
/// `plan` ("reading roles: column 1 could not be read") without naming
/// it; now it is skipped as malformed under its key, and the rest plans
/// and applies.
fn not_utf8(kind: Kind) {
    let mut rows = store();
    rows.roles.push(RawDoc::new(
        "viewer",
        r#"{"id":"viewer","name":"Viewer","permissions":{"FLOW":["READ"]},"deleted":false}"#,
    ));
    let db = TestDb::with_rows(kind, rows);
    if kind == Kind::MySql {
        // MariaDB's text columns refuse bytes that are not UTF-8; a store
        // whose documents are bytes (a BLOB) keeps them, read as they are.
        // They go in a member no generated column reads.
        db.exec("ALTER TABLE roles MODIFY `value` LONGBLOB NOT NULL");
        db.exec(
            r#"INSERT INTO roles (`key`, `value`) VALUES ('bad', CONCAT('{"id":"bad","name":"Bad","note":"', X'FFFE', '","permissions":{}}'))"#,
        );
    } else {
        // {"id":"bad","name":"\xff\xfe","permissions":{}}
        let hex: String = br#"{"id":"bad","name":""#
            .iter()
            .chain(b"\xff\xfe")
            .chain(br#"","permissions":{}}"#)
            .map(|b| format!("{b:02X}"))
            .collect();
        db.exec(&format!(
            "INSERT INTO roles (\"key\", \"value\") VALUES ('bad', CAST(X'{hex}' AS TEXT))"
        ));
    }
    let path = db.path("plan.json");
    expect(db.cmd().arg("plan").arg("-o").arg(&path), 0, "plan");
    let plan = read_json(&path);
    let finding = &plan["skipped"][0];
    assert_eq!(finding["key"], "bad", "{plan:#}");
    assert_eq!(finding["reason"], "malformed");
    assert_eq!(finding["detail"], "document is not valid UTF-8");
    assert_eq!(plan["changes"][0]["key"], "default_viewer");
    let (stdout, _) = expect(db.cmd().arg("show").arg(&path), 0, "show");
    assert!(stdout.contains("document is not valid UTF-8"), "{stdout}");
    plan_approve_apply(&db);
}

// ---------------------------------------------------------------------------
// Plan files

/// A plan file that gives a member twice, at the top or inside a copied
/// document, is not a valid plan (exit 4) for every command that reads
/// one; the message names the member.
fn plan_members_given_twice() {
    let mut rows = store();
    rows.roles.push(RawDoc::new(
        "viewer",
        r#"{"id":"viewer","name":"Viewer","permissions":{"FLOW":["READ"]},"deleted":false}"#,
    ));
    let db = TestDb::with_rows(Kind::Sqlite, rows);
    let path = db.path("plan.json");
    expect(db.cmd().arg("plan").arg("-o").arg(&path), 0, "plan");
    let text = std::fs::read_to_string(&path).unwrap();
    let top = text.replacen(
        "\"tenant\": \"default\",",
        "\"tenant\": \"other\",\n  \"tenant\": \"default\",",
        1,
    );
    let inner = text.replacen(
        "{\"deleted\":false,",
        "{\"deleted\":true,\"deleted\":false,",
        1,
    );
    for (altered, member) in [(top, "tenant"), (inner, "changes[0].value.deleted")] {
        assert_ne!(altered, text);
        let bad = db.path("bad.json");
        std::fs::write(&bad, &altered).unwrap();
        for args in [
            &["show"][..],
            &["approve", "--yes", "--by", "x"],
            &["apply"],
            &["verify"],
        ] {
            let (_, stderr) = expect(db.cmd().args(args).arg(&bad), 4, &format!("{args:?}"));
            assert!(
                stderr.contains(&format!(
                    "not a valid plan: member `{member}` is given twice"
                )),
                "{args:?}: {stderr}"
            );
        }
        assert_eq!(std::fs::read_to_string(&bad).unwrap(), altered);
    }
}

// ---------------------------------------------------------------------------
// Keys compared as the server compares them

/// MariaDB and MySQL compare `utf8mb4_bin` keys ignoring trailing spaces
/// (PAD SPACE), and a `_ci` collation ignoring case: a copy planned at
/// `default_ops` beside a held `default_ops ` used to plan with no
/// conflict, and every apply then failed (exit 5), for ever. Now it is a
/// conflict at plan time naming both keys; so are two legacy documents
/// whose copies the server takes for one key.
fn keys_compared_as_the_server_does(kind: Kind) {
    let mut rows = store();
    rows.groups.push(RawDoc::new(
        "ops",
        r#"{"id":"ops","name":"Ops","deleted":false}"#,
    ));
    rows.groups.push(RawDoc::new(
        "default_ops ",
        r#"{"id":"ops ","tenantId":"default","name":"Ops with a space","deleted":false}"#,
    ));
    rows.groups.push(RawDoc::new(
        "sales",
        r#"{"id":"sales","name":"Sales","deleted":false}"#,
    ));
    let role = |key: &str, id: &str, tenant: &str| {
        RawDoc::new(
            key,
            format!(
                r#"{{"id":"{id}",{tenant}"name":"{key}","permissions":{{"FLOW":["READ"]}},"deleted":false}}"#
            ),
        )
    };
    rows.roles.extend([
        role("viewer", "viewer", ""),
        role("viewer-2", "Viewer", ""),
        role("admin", "admin", ""),
        role("DEFAULT_ADMIN", "admin", r#""tenantId":"DEFAULT","#),
        role("editor", "editor", ""),
    ]);
    let db = TestDb::with_rows(kind, rows);
    // Roles: a case-insensitive table, as some Kestra installs have.
    db.exec("ALTER TABLE roles MODIFY `key` VARCHAR(250) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL");
    let path = db.path("plan.json");
    expect(db.cmd().arg("plan").arg("-o").arg(&path), 3, "plan");
    let plan = read_json(&path);
    let conflicts: Vec<(&str, &str)> = plan["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    let same = "the copies of several legacy documents (viewer, viewer-2) would go to `default_Viewer`, `default_viewer`, one key to the database (it compares keys ignoring trailing spaces and letter case)";
    assert_eq!(
        conflicts,
        [
            (
                "admin",
                "key `default_admin` is already held by another role as `DEFAULT_ADMIN`, the same key to the database (it compares keys ignoring trailing spaces and letter case)"
            ),
            ("viewer", same),
            ("viewer-2", same),
            (
                "ops",
                "key `default_ops` is already held by another group as `default_ops `, the same key to the database (it compares keys ignoring trailing spaces)"
            ),
        ],
        "{plan:#}"
    );
    let keys: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["default_editor", "default_sales"]);
    // With the conflicts set aside, the rest applies.
    let skip = db.path("skip.json");
    expect(
        db.cmd().args(["plan", "--skip-conflicts", "-o"]).arg(&skip),
        0,
        "plan --skip-conflicts",
    );
    expect(
        db.cmd()
            .args(["approve", "--yes", "--by", "security@example.com"])
            .arg(&skip),
        0,
        "approve",
    );
    expect(db.cmd().arg("apply").arg(&skip), 0, "apply");
    assert!(stored_text(&db, "groups", "default_sales").is_some());

    // A tenant whose row the server finds under another spelling exists:
    // `--create-tenant` used to plan an insert that failed every apply.
    db.exec(
        r#"INSERT INTO tenants (`key`, `value`) VALUES ('acme ', '{"id":"acme","deleted":false}')"#,
    );
    let acme = db.path("acme.json");
    expect(
        db.cmd()
            .args([
                "plan",
                "--tenant",
                "acme",
                "--create-tenant",
                "--skip-conflicts",
                "-o",
            ])
            .arg(&acme),
        0,
        "plan --tenant acme",
    );
    let ops: Vec<String> = read_json(&acme)["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["op"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !ops.is_empty() && !ops.contains(&"create_tenant".to_string()),
        "{ops:?}"
    );
}

// ---------------------------------------------------------------------------
// SQLite after a crash

/// SQLite's journal header starts with these bytes once it has been
/// synced, that is once the database file itself may have been changed:
/// only then is a journal left behind "hot".
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// A writer that dies after it changed the database file leaves a hot
/// journal; read-only commands used to fail on it with "attempt to write a
/// readonly database", `history` (which the refusals tell the operator to
/// run) included. The crash is taken as a copy of the file and its journal
/// made while a writer is half-way through (its page cache spilled to the
/// file): the state a kill -9 at that moment leaves.
fn hot_journal(kind: Kind) {
    let mut rows = store();
    rows.roles.push(RawDoc::new(
        "viewer",
        r#"{"id":"viewer","name":"Viewer","permissions":{"FLOW":["READ"]},"deleted":false}"#,
    ));
    let db = TestDb::with_rows(kind, rows);
    let crashed = db.path("crashed.db");
    let journal = db.path("crashed.db-journal");
    let (original, copy) = (db.path("store.db"), crashed.clone());
    let url = db.url.clone();
    let journal_copy = journal.clone();
    runtime().block_on(async move {
        use sqlx::Executor;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for sql in [
            "CREATE TABLE ballast (x BLOB)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO ballast SELECT randomblob(1000) FROM n",
            "PRAGMA cache_size = 10",
            "BEGIN IMMEDIATE",
            "UPDATE ballast SET x = randomblob(1000)",
            "UPDATE roles SET value = json_set(value, '$.name', 'Changed')",
        ] {
            c.execute(sql).await.unwrap();
        }
        // The journal, then the file (which it can undo), as they are now.
        let journal_bytes = std::fs::read(format!("{}-journal", original.display())).unwrap();
        std::fs::copy(&original, &copy).unwrap();
        std::fs::write(&journal_copy, &journal_bytes).unwrap();
        c.execute("ROLLBACK").await.unwrap();
    });
    let header = std::fs::read(&journal).unwrap();
    assert_eq!(header[..8], JOURNAL_MAGIC, "the copied journal is hot");
    let on_crashed = |args: &[&str]| {
        let mut cmd = db.cmd();
        cmd.env("DATABASE_URL", format!("sqlite:{}", crashed.display()))
            .args(args);
        cmd
    };
    let (stdout, stderr) = expect(&mut on_crashed(&["history"]), 0, "history");
    assert!(!stderr.contains("readonly"), "{stdout}{stderr}");
    assert!(!journal.exists(), "history rolled the journal back");
    // What the crashed writer did is undone: the plan is the original's.
    let (plan, _) = expect(&mut on_crashed(&["plan"]), 0, "plan");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["changes"][0]["value"]["name"], "Viewer", "{plan:#}");
    let path = db.path("plan.json");
    std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();
    expect(on_crashed(&["verify"]).arg(&path), 5, "verify");
}

// ---------------------------------------------------------------------------
// demo

/// `demo` into a database holding some of the IAM tables used to create
/// the others, commit rows, then fail: half a store. Now it refuses with
/// exit 1 and writes nothing; into an empty database it builds the whole
/// store in one transaction, and `--reset` replaces what is there.
fn demo_beside_other_tables(kind: Kind) {
    let db = TestDb::empty(kind);
    if kind == Kind::Sqlite {
        // An empty file is an empty SQLite database.
        std::fs::File::create(db.path("store.db")).unwrap();
    }
    db.exec("CREATE TABLE roles (x INTEGER)");
    db.exec("INSERT INTO roles (x) VALUES (7)");
    let (_, stderr) = expect(db.cmd().arg("demo"), 1, "demo");
    assert!(
        stderr.contains("already holds some of the IAM tables (`roles`)")
            && stderr.contains("wrote nothing"),
        "{stderr}"
    );
    // Nothing was created: the store still lacks the other four tables.
    let (_, stderr) = expect(db.cmd().arg("plan"), 1, "plan");
    assert!(
        stderr.contains("not an IAM store: table `tenants` is missing"),
        "{stderr}"
    );
    expect(db.cmd().args(["demo", "--reset"]), 0, "demo --reset");
    let (_, stderr) = expect(db.cmd().arg("demo"), 1, "demo again");
    assert!(stderr.contains("already holds an IAM store"), "{stderr}");
    expect(db.cmd().args(["plan", "-o", "plan.json"]), 0, "plan");
}
