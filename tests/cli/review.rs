//! The review and the command line against real databases (issue 13):
//! `show --live` on every backend, and an apply whose stdout is closed.

use std::process::{Command, Stdio};

use sync_access::sync::{RawDoc, Snapshot};

use crate::support::{approved_plan, Kind, Scenario, TestDb};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "review::apply_into_a_closed_pipe_exits_0_and_says_so",
        apply_into_a_closed_pipe,
    ),
    Scenario::new(
        "review::plan_into_a_closed_pipe_still_names_its_digest",
        plan_into_a_closed_pipe,
    ),
    Scenario::new(
        "review::show_live_uses_the_tenants_current_access",
        show_live,
    ),
    Scenario::new(
        "review::history_and_verify_as_json",
        history_and_verify_as_json,
    ),
];

fn demo(kind: Kind) -> TestDb {
    let db = TestDb::empty(kind);
    db.cmd().arg("demo").assert().success();
    db
}

/// `sync-access apply plan.json | true`: the reader is gone before the
/// report is printed, after the commit. The apply stands: exit 0, the
/// report on stderr, no panic.
fn apply_into_a_closed_pipe(kind: Kind) {
    let db = demo(kind);
    let path = approved_plan(&db, &[]);
    // Closed before the binary can have connected, let alone committed.
    let (code, stderr) = into_a_closed_pipe(
        &db,
        &["apply".as_ref(), path.as_os_str()],
        &[("SYNC_ACCESS_USER", "tester@example.com")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("note: done, but this report could not be printed (stdout was closed)"),
        "the closed pipe was met, and said: {stderr}"
    );
    assert!(stderr.contains("Applied plan"), "{stderr}");
    assert_eq!(db.history_rows(), 1, "applied, once");
    // `verify … | true` too.
    let (code, stderr) = into_a_closed_pipe(&db, &["verify".as_ref(), path.as_os_str()], &[]);
    assert_eq!(code, Some(0));
    assert!(stderr.is_empty(), "{stderr}");
}

/// `sync-access plan | head`: the reader is gone before the plan is
/// written, which stops its seal; exit 0, and the summary on stderr names
/// the digest the whole plan has.
fn plan_into_a_closed_pipe(kind: Kind) {
    let db = demo(kind);
    let saved = db.dir.path().join("whole.json");
    db.cmd()
        .env("SOURCE_DATE_EPOCH", "1")
        .args(["plan", "--created-by", "ops@example.com", "-o"])
        .arg(&saved)
        .assert()
        .success();
    let digest = crate::support::read_json(&saved)["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, stderr) = into_a_closed_pipe(
        &db,
        &[
            "plan".as_ref(),
            "--created-by".as_ref(),
            "ops@example.com".as_ref(),
        ],
        &[("SOURCE_DATE_EPOCH", "1")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let named = format!("Plan {} for tenant", &digest["sha256:".len()..][..12]);
    assert!(stderr.contains(&named), "{named} in: {stderr}");
}

/// `sync-access ARGS | true` on `db`, with `env`: stdout closed before the
/// binary can write to it. Its exit code and stderr, which tells no panic.
fn into_a_closed_pipe(
    db: &TestDb,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sync-access"))
        .env("DATABASE_URL", &db.url)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .current_dir(db.dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr)
}

fn show_live(kind: Kind) {
    let db = demo(kind);
    // bob already holds Viewer in the tenant, directly.
    db.load(Snapshot {
        bindings: vec![RawDoc::new(
            "default_manual-2",
            r#"{"id":"manual-2","tenantId":"default","type":"USER","externalId":"bob","roleId":"viewer","deleted":false}"#,
        )],
        ..Snapshot::default()
    });
    crate::support::plan(&db, &[], 0);
    let show = |args: &[&str]| {
        let out = db
            .cmd()
            .arg("show")
            .args(args)
            .arg("plan.json")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let live = show(&["--live", "--diff"]);
    assert!(
        live.contains("bob@example.com (bob): now, in the database"),
        "{live}"
    );
    // What bob has is the unchanged context of his diff.
    assert!(
        live.contains("\n role Viewer (viewer) on all namespaces, through a direct binding [binding default_manual-2]\n"),
        "{live}"
    );
    // carol joins Analytics, which already has a binding in the tenant:
    // the plan alone cannot say what she gains through it; --live can.
    let gain = "+role Viewer (viewer) on all namespaces, through group Analytics (analytics) [binding default_manual-1]";
    assert!(live.contains(gain), "{live}");
    let offline = show(&["--diff"]);
    assert!(!offline.contains(gain), "{offline}");
    assert!(offline.contains("before (nothing recorded in the plan)"));
    // judy is a member already: she gains only what the plan binds to her
    // groups, and the JSON says what she has now.
    let json = show(&["--live", "--diff", "--format", "json", "--user", "judy"]);
    assert!(json.contains(r#""live":true"#), "{json}");
    // The database is read, never written.
    let plan_again = crate::support::plan(&db, &[], 0);
    assert_eq!(plan_again["summary"]["add_binding"], 8);
}

fn history_and_verify_as_json(kind: Kind) {
    let db = demo(kind);
    let path = approved_plan(&db, &[]);
    db.cmd().arg("apply").arg(&path).assert().success();
    let out = db
        .cmd()
        .args(["history", "--format", "json"])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let record: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(record["tenant"], "default");
    assert_eq!(record["summary"]["add_binding"], 8);
    assert_eq!(record["approvers"][0]["by"], "security@example.com");
    let out = db
        .cmd()
        .args(["verify", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["changes"], 23);
    assert_eq!(report["in_database"], 23);
    // A width-aware history table at 80 columns.
    let out = db
        .cmd()
        .args(["history", "--width", "80"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    for line in table.lines() {
        assert!(unicode_width::UnicodeWidthStr::width(line) <= 80, "{table}");
    }
}
