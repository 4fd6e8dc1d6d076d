//! `show` through the real binary: no database, only plan files. What a
//! reviewer reads is snapshot-tested (`tests/cli/snapshots/`); regenerate
//! with `INSTA_UPDATE=always cargo test --test cli -- show` and review the
//! `.snap` files before committing them.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use libtest_mimic::Trial;
use serde_json::{json, Value};
use sync_access::plan::{Plan, Provenance, Source};
use sync_access::sync::{sync, RawDoc, Snapshot, SyncOptions};

use crate::fixtures::SECRET_HASH;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn demo_plan() -> PathBuf {
    repo("plans/demo-plan.json")
}

fn rules_plan() -> PathBuf {
    repo("tests/golden/rules-plan.json")
}

/// The real binary, isolated from the caller's terminal settings.
fn show() -> Command {
    let mut cmd = Command::cargo_bin("sync-access").unwrap();
    cmd.arg("show")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL");
    cmd
}

/// Runs `show` with `args`, asserts the exit code, returns stdout.
fn run(args: &[&str], plan: &Path, code: i32) -> String {
    let out = show().args(args).arg(plan).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "show {args:?} {}: {}",
        plan.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({prepend_module_to_snapshot => false, snapshot_path => "snapshots"}, {
        insta::assert_snapshot!(format!("show__{name}"), text);
    });
}

fn doc(key: &str, value: Value) -> RawDoc {
    RawDoc::new(key, value.to_string())
}

/// A sealed plan made by the real sync rules from a small store.
fn plan_of(snapshot: Snapshot) -> Plan {
    let options = SyncOptions::new("default");
    let result = sync(&snapshot, &options).unwrap();
    Plan::new(
        result,
        &options,
        Source {
            backend: "sqlite".into(),
            database: "sqlite:test.db".into(),
            identity: "sqlite:/test/test.db".into(),
        },
        Provenance {
            created_at: "2026-11-27T12:00:00Z".into(),
            created_by: "tester@example.com".into(),
        },
    )
}

fn write(dir: &Path, name: &str, plan: &Plan) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, plan.to_pretty_json()).unwrap();
    path
}

fn tenant() -> RawDoc {
    doc(
        "default",
        json!({"id": "default", "name": "Default", "deleted": false}),
    )
}

/// 60 users in 3 groups, bound to 3 roles over 4 namespaces: more rows than
/// a small limit shows.
fn wide_store() -> Snapshot {
    wide_store_of(60)
}

/// [`wide_store`] of `users` users.
fn wide_store_of(users: usize) -> Snapshot {
    let mut s = Snapshot {
        tenants: vec![tenant()],
        ..Snapshot::default()
    };
    for (id, name) in [("admin", "Admin"), ("dev", "Developer"), ("ro", "Reader")] {
        s.roles.push(doc(
            id,
            json!({"id": id, "name": name, "permissions": {"FLOW": ["READ"]}, "deleted": false}),
        ));
    }
    for g in ["g0", "g1", "g2"] {
        s.groups.push(doc(
            g,
            json!({"id": g, "name": format!("Group {g}"), "deleted": false}),
        ));
    }
    let namespaces = [
        Some("company"),
        Some("company.data"),
        Some("company.web"),
        None,
    ];
    for i in 0..users {
        let id = format!("u{i:02}");
        s.users.push(doc(
            &id,
            json!({"id": id, "username": format!("user{i:02}@example.com"),
                   "groups": [format!("g{}", i % 3)], "deleted": false}),
        ));
        let role = ["admin", "dev", "ro"][i % 3];
        let mut binding = json!({"id": format!("b{i:02}"), "type": "USER", "externalId": id,
                                 "roleId": role, "deleted": false});
        if let Some(ns) = namespaces[i % 4] {
            binding["namespaceId"] = json!(ns);
        }
        s.bindings.push(doc(&format!("b{i:02}"), binding));
    }
    s.bindings.push(doc(
        "bg",
        json!({"id": "bg", "type": "GROUP", "externalId": "g1", "roleId": "dev",
               "namespaceId": "company.data", "deleted": false}),
    ));
    s
}

/// Names and fields a hostile or careless store could hold: escape
/// sequences, markdown, a credential-shaped field on a role.
fn hostile_store() -> Snapshot {
    Snapshot {
        tenants: vec![tenant()],
        users: vec![doc(
            "mallory",
            json!({"id": "mallory", "username": "mal\u{1b}[2Jlory | x",
                   "groups": ["g"], "auths": [{"password": SECRET_HASH}], "deleted": false}),
        )],
        groups: vec![doc(
            "g",
            json!({"id": "g", "name": "[click](http://evil.example) @everyone", "deleted": false}),
        )],
        roles: vec![doc(
            "r",
            json!({"id": "r", "name": "Ro\u{202e}le`", "auths": SECRET_HASH,
                   "permissions": {"FLOW": ["READ"]}, "deleted": false}),
        )],
        bindings: vec![doc(
            "b",
            json!({"id": "b", "type": "GROUP", "externalId": "g", "roleId": "r",
                   "namespaceId": "ns|\ncompany", "deleted": false}),
        )],
        ..Snapshot::default()
    }
}

fn assert_no_credentials(text: &str) {
    assert!(!text.contains("auths"), "`auths` in the output:\n{text}");
    assert!(!text.contains("FAKEHASH"), "a hash in the output:\n{text}");
}

fn formats_of_the_demo_plan() {
    let plan = demo_plan();
    snapshot("demo_table", &run(&["--width", "100"], &plan, 0));
    snapshot("demo_markdown", &run(&["--format", "markdown"], &plan, 0));
    let json = run(&["--format", "json"], &plan, 0);
    for line in json.lines() {
        let row: Value = serde_json::from_str(line).expect("every line is a JSON object");
        assert!(row["row"].is_string(), "{line}");
    }
    snapshot("demo_json", &json);
}

fn diff_of_the_demo_plan() {
    let plan = demo_plan();
    let diff = run(&["--diff", "--width", "100"], &plan, 0);
    assert!(diff.contains(
        "+role Admin (admin) on namespace company and below, through group Platform (platform) [binding default_b-02]"
    ));
    snapshot("demo_diff", &diff);
    snapshot(
        "demo_diff_markdown",
        &run(&["--diff", "--format", "markdown"], &plan, 0),
    );
}

fn conflicts_and_skipped() {
    let plan = rules_plan();
    let table = run(&["--width", "100"], &plan, 0);
    let conflicts = table.find("Conflicts (9)").expect("a conflicts table");
    let skipped = table.find("Skipped (14)").expect("a skipped table");
    let changes = table.find("Roles to add").expect("changes");
    assert!(conflicts < skipped && skipped < changes, "{table}");
    assert!(table.contains("applyable  NO: 9 conflicts"));
    snapshot("rules_table", &table);
    snapshot("rules_markdown", &run(&["--format", "markdown"], &plan, 0));
}

fn filters() {
    let plan = demo_plan();
    let w = ["--width", "100"];
    let user = run(&[&w[..], &["--user", "alice"]].concat(), &plan, 0);
    assert!(user.contains("Filtered by --user alice: 7 of 23 changes shown"));
    snapshot("filter_user", &user);
    // A username names the same user.
    let by_name = run(
        &[&w[..], &["--user", "alice@example.com"]].concat(),
        &plan,
        0,
    );
    let changes = |text: &str| text[text.find("Groups to add").unwrap()..].to_string();
    assert_eq!(changes(&by_name), changes(&user));
    snapshot(
        "filter_role",
        &run(&[&w[..], &["--role", "Admin"]].concat(), &plan, 0),
    );
    snapshot(
        "filter_namespace",
        &run(&[&w[..], &["--namespace", "company"]].concat(), &plan, 0),
    );
    snapshot(
        "filter_op",
        &run(&[&w[..], &["--op", "add_membership"]].concat(), &plan, 0),
    );
    let rules = rules_plan();
    snapshot(
        "filter_rules_user_and_op",
        &run(
            &[&w[..], &["--user", "carol", "--op", "add_membership"]].concat(),
            &rules,
            0,
        ),
    );
    // Editor is bound on company.data only: nothing of it reaches `nowhere`
    // (a binding on all namespaces would).
    let none = run(
        &[&w[..], &["--namespace", "nowhere", "--role", "Editor"]].concat(),
        &plan,
        0,
    );
    assert!(none.contains("No change matches the filter."));
    show()
        .args(["--op", "drop_everything"])
        .arg(&plan)
        .assert()
        .failure()
        .stdout("")
        .stderr(predicates::str::contains("drop_everything"));
}

fn limits_for_big_plans() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "wide.json", &plan_of(wide_store()));
    let limited = run(&["--limit", "5", "--width", "100"], &plan, 0);
    assert!(
        limited.contains("… and 56 more bindings to add"),
        "{limited}"
    );
    assert!(limited.contains("Bindings to add by role (3)"));
    assert!(limited.contains("Bindings to add by namespace (4)"));
    snapshot("wide_limit_5", &limited);
    let all = run(&["--limit", "0"], &plan, 0);
    assert!(!all.contains("more bindings to add"));
    assert!(
        !all.contains("by role"),
        "no spread when every row is shown"
    );
    let json = run(&["--format", "json"], &plan, 0);
    assert_eq!(
        json.lines()
            .filter(|l| l.contains(r#""op":"add_binding""#))
            .count(),
        61,
        "json shows every row by default"
    );
    let json = run(&["--format", "json", "--limit", "2"], &plan, 0);
    assert!(
        json.contains(r#"{"omitted":59,"row":"more","section":"add_binding","shown":2}"#),
        "{json}"
    );
}

fn tampered_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.json");
    let text = std::fs::read_to_string(demo_plan()).unwrap();
    std::fs::write(
        &path,
        text.replacen("\"company.finance\"", "\"company\"", 1),
    )
    .unwrap();
    for format in ["table", "markdown", "json"] {
        let out = show()
            .args(["--format", format])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{format}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("digest mismatch"), "{stderr}");
        if format == "json" {
            let first: serde_json::Value =
                serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
            assert_eq!(first["row"], "plan", "the plan row comes first: {stdout}");
            assert!(stdout.contains("\"digest_matches\":false"));
        } else {
            assert!(
                stdout.starts_with("!!!") || stdout.starts_with("> [!CAUTION]"),
                "the warning comes first: {stdout}"
            );
            assert_eq!(
                stdout.matches("DIGEST MISMATCH").count(),
                2,
                "top and bottom"
            );
        }
    }
}

/// `show` renders the changes it checked, read again from the file (issue
/// 15: it does not hold them): a file changed while it is shown is refused
/// as soon as a change is read from what changed, exit 4, on one line.
/// Deterministic: the tables of every row (`--limit 0`) hold far more
/// than a pipe before the bindings, at the file's end, are read for theirs,
/// and the file is changed once the review has started to be printed.
fn a_plan_changed_while_shown_is_refused() {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "big.json", &plan_of(wide_store_of(15000)));
    let text = std::fs::read(&plan).unwrap();
    assert!(
        text.len() > 3 << 20,
        "several chunks of a MiB: {}",
        text.len()
    );
    let find_last =
        |within: &[u8], what: &[u8]| within.windows(what.len()).rposition(|w| w == what).unwrap();
    let close = find_last(&text, b"\n  ],\n  \"skipped\"");
    let key = find_last(&text[..close], b"\"key\": \"") + 8;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sync-access"))
        .args(["show", "--limit", "0", "--format", "markdown"])
        .arg(&plan)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&plan).unwrap();
    file.write_all_at(b"#", key as u64).unwrap();
    let mut printed = Vec::new();
    stdout.read_to_end(&mut printed).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("big.json: changed while it was shown"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // As it was, it shows whole.
    file.write_all_at(&text[key..key + 1], key as u64).unwrap();
    let whole = run(&["--limit", "0", "--format", "markdown"], &plan, 0);
    assert!(
        whole.len() > printed.len() + 1,
        "stopped where it was refused"
    );
}

fn invalid_plans() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage.json", b"not json at all\n".to_vec()),
        ("array.json", b"[]".to_vec()),
        (
            "lying.json",
            std::fs::read_to_string(demo_plan())
                .unwrap()
                .replacen("\"add_role\": 4", "\"add_role\": 3", 1)
                .into_bytes(),
        ),
        (
            "truncated.json",
            std::fs::read(demo_plan()).unwrap()[..500].to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = show().arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{name}");
        assert!(out.stdout.is_empty(), "{name}: nothing shown");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("not a valid"),
            "{stderr}"
        );
    }
    show().arg(dir.path().join("missing.json")).assert().code(1);
}

fn no_credentials() {
    for plan in [demo_plan(), rules_plan()] {
        for format in ["markdown", "table", "json"] {
            assert_no_credentials(&run(&["--format", format, "--diff"], &plan, 0));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_of(hostile_store());
    assert!(
        String::from_utf8(plan.to_pretty_json())
            .unwrap()
            .contains(SECRET_HASH),
        "the role's extra field is in the plan: the check below means something"
    );
    let path = write(dir.path(), "hostile.json", &plan);
    for format in ["markdown", "table", "json"] {
        assert_no_credentials(&run(&["--format", format, "--diff"], &path, 0));
    }
    // A plan written by hand, or by another tool, could hold a password.
    let mut password_url = Plan {
        source: Source {
            backend: "postgres".into(),
            database: "postgres://kestra:hunter2@db/kestra".into(),
            identity: "postgres://kestra:hunter2@db/kestra?password=hunter2".into(),
        },
        ..plan_of(hostile_store())
    };
    password_url.digest = sync_access::plan::digest_of_plan(&password_url);
    let path = write(dir.path(), "password.json", &password_url);
    for format in ["markdown", "table", "json"] {
        let text = run(&["--format", format], &path, 0);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("postgres://kestra@db/kestra"), "{text}");
    }
}

fn hostile_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "hostile.json", &plan_of(hostile_store()));
    let table = run(&["--diff"], &path, 0);
    assert!(
        !table.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(!table.contains('\u{202e}'));
    assert!(table.contains("mal\\u{1b}[2Jlory | x"));
    let markdown = run(&["--format", "markdown"], &path, 0);
    assert!(!markdown.contains('\u{1b}'));
    assert!(markdown.contains("`[click](http://evil.example) @everyone`"));
    // Every row of a table has as many cells as its header.
    let pipes = |l: &str| l.replace("\\|", "").matches('|').count();
    let mut header = None;
    for line in markdown.lines() {
        match (line.starts_with('|'), header) {
            (true, None) => header = Some(pipes(line)),
            (true, Some(n)) => assert_eq!(pipes(line), n, "{line}"),
            (false, _) => header = None,
        }
    }
    assert!(markdown.contains("`mal\\u{1b}[2Jlory \\| x`"), "{markdown}");
    snapshot("hostile_markdown", &markdown);
}

fn approvals_in_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    std::fs::copy(demo_plan(), &path).unwrap();
    Command::cargo_bin("sync-access")
        .unwrap()
        .env("SOURCE_DATE_EPOCH", "1795780800")
        .args(["approve", "--yes", "--by", "security@example.com"])
        .args(["--comment", "CHG-42"])
        .arg(&path)
        .assert()
        .success();
    let table = run(&[], &path, 0);
    assert!(
        table.contains("approvals  security@example.com at 2026-11-27T12:00:00Z (CHG-42) [unsigned]. Unsigned approvals are names, which anyone who can edit this file can type: they prove nothing\n"),
        "{table}"
    );
    // An approval of other content is listed, and said not to count.
    let mut plan: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    plan["approvals"][0]["digest"] = json!("sha256:0000");
    std::fs::write(&path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
    let table = run(&[], &path, 0);
    assert!(
        table.contains("(CHG-42) [unsigned] [for another digest: does not count]"),
        "{table}"
    );
    let json = run(&["--format", "json"], &path, 0);
    let header: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        header["approvals"],
        json!([{"by": "security@example.com", "at": "2026-11-27T12:00:00Z",
                "comment": "CHG-42", "counts": false, "signature": "none", "key": null}])
    );
}

fn runs_through_the_binary() {
    // Piped: no colour, no wrapping, whatever the terminal.
    let out = show().arg(demo_plan()).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains('\u{1b}'));
    assert!(stdout.contains("Bindings to add (8)"));
    assert!(stdout.contains("Access gained in tenant default, per user (9 users, 21 gains)"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No line is wrapped: the longest cell stays on one line.
    assert!(stdout.lines().any(|l| l.contains(
        "READ CREATE UPDATE DELETE on AUDITLOG, BINDING, EXECUTION, FLOW, GROUP, KVSTORE, NAMESPACE, ROLE, SECRET, SETTING, TEMPLATE, USER"
    )));
}

/// Every line of a table or paragraph fits `width` columns.
fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= width,
            "a line wider than {width}: {line:?}"
        );
    }
}

fn new_sections_at_80_and_200_columns() {
    for width in [80, 200] {
        let w = width.to_string();
        let demo = run(&["--width", &w], &demo_plan(), 0);
        assert_fits(&demo, width);
        let attention = demo.find("Needs attention (6)").expect("the section");
        let summary = demo.find("Summary").unwrap();
        assert!(attention < summary, "risks before the tables");
        snapshot(&format!("demo_table_{width}"), &demo);
        let rules = run(&["--width", &w], &rules_plan(), 0);
        assert_fits(&rules, width);
        assert!(rules.contains("What differs: the legacy document against the tenant's"));
        snapshot(&format!("rules_table_{width}"), &rules);
        let finance = run(
            &["--width", &w, "--namespace", "company.finance"],
            &demo_plan(),
            0,
        );
        assert_fits(&finance, width);
        snapshot(&format!("demo_namespace_finance_{width}"), &finance);
    }
}

/// Who will reach company.finance: everyone whose binding is on it, on a
/// parent namespace, or on all namespaces, in every format.
fn namespace_inheritance() {
    let plan = demo_plan();
    let table = run(&["--namespace", "company.finance"], &plan, 0);
    let access = &table[table.find("Access gained").unwrap()..];
    for who in [
        "alice@example.com",
        "bob@example.com",
        "ci-bot",
        "grace@example.com",
        "heidi@example.com",
        "mallory@example.com",
    ] {
        assert!(
            access.contains(who),
            "{who} reaches company.finance:\n{access}"
        );
    }
    assert!(
        !access.contains("dave@example.com"),
        "dave's roles are on company.data"
    );
    assert!(access.contains("company and below (reaches company.finance)"));
    let json = run(
        &[
            "--format",
            "json",
            "--diff",
            "--namespace",
            "company.finance",
        ],
        &plan,
        0,
    );
    let users: std::collections::BTreeSet<String> = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["row"] == "access")
        .map(|r| r["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        users.into_iter().collect::<Vec<_>>(),
        ["alice", "bob", "ci-bot", "grace", "heidi", "mallory"]
    );
    // Skipped grants that would reach it are named, with subject and role.
    let skipped = &table[table.find("Skipped").unwrap()..table.find("Bindings to add").unwrap()];
    assert!(
        skipped.contains("user zoe") && skipped.contains("role Viewer (viewer)"),
        "{skipped}"
    );
}

fn findings_name_who_and_what() {
    let rules = run(&["--format", "json"], &rules_plan(), 0);
    let rows: Vec<Value> = rules
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bindings: Vec<&Value> = rows
        .iter()
        .filter(|r| (r["row"] == "skipped" || r["row"] == "conflict") && r["kind"] == "binding")
        .filter(|r| r["reason"] != "malformed")
        .collect();
    assert!(!bindings.is_empty());
    for b in bindings {
        assert!(
            b["subject_type"].is_string() && b["subject_id"].is_string(),
            "{b}"
        );
        assert!(b["role_id"].is_string(), "{b}");
    }
    let differing: Vec<&Value> = rows
        .iter()
        .filter(|r| r["row"] == "conflict" && r["differences"].is_array())
        .collect();
    assert!(!differing.is_empty(), "conflicts say what differs");
    let attention = rows.iter().filter(|r| r["row"] == "attention").count();
    let first_other = rows
        .iter()
        .position(|r| r["row"] != "plan" && r["row"] != "attention");
    assert!(attention > 0);
    assert_eq!(
        first_other,
        Some(1 + attention),
        "attention rows come first"
    );
    let markdown = run(&["--format", "markdown"], &rules_plan(), 0);
    let md_attention = markdown.find("## Needs attention").unwrap();
    assert!(md_attention < markdown.find("## Summary").unwrap());
    assert!(markdown.contains("```diff"), "the field diff of a conflict");
}

fn big_markdown_fits_a_comment() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = wide_store();
    for i in 60..3000 {
        let id = format!("u{i:04}");
        store.users.push(doc(
            &id,
            // Long names: 50 rows per table no longer fit a comment.
            json!({"id": id, "username": format!("user{i:04}-{}@example.com", "x".repeat(600)),
                   "groups": [format!("g{}", i % 3)], "deleted": false}),
        ));
        store.bindings.push(doc(
            &format!("x{i:04}"),
            json!({"id": format!("x{i:04}"), "type": "USER", "externalId": id,
                   "roleId": "admin", "deleted": false}),
        ));
    }
    let plan = write(dir.path(), "big.json", &plan_of(store));
    let markdown = run(&["--format", "markdown"], &plan, 0);
    assert!(
        markdown.chars().count() <= 65_536,
        "{} characters",
        markdown.chars().count()
    );
    assert!(
        markdown.contains("--format markdown --limit 0 > review.md` prints all of it"),
        "{}",
        &markdown[markdown.len().saturating_sub(600)..]
    );
    // Asked for everything, it is all there.
    let all = run(&["--format", "markdown", "--limit", "0"], &plan, 0);
    assert!(all.chars().count() > 65_536);
    assert!(!all.contains("The review stops here"));
    assert!(all.contains(&format!("`user2999-{}@example.com`", "x".repeat(600))));
}

fn reads_the_plan_from_stdin() {
    let bytes = std::fs::read(demo_plan()).unwrap();
    let out = show()
        .args(["--width", "100", "-"])
        .write_stdin(bytes)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_file = run(&["--width", "100"], &demo_plan(), 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), from_file);
    let out = show().arg("-").write_stdin("garbage").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: stdin: not a valid plan"));
}

fn a_closed_stdout_ends_quietly() {
    // `show … | head -1`: the reader leaves early.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sync-access"))
        .args(["show", "--limit", "0", "--format", "markdown"])
        .arg(demo_plan())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn completions_and_manual() {
    let bash = Command::cargo_bin("sync-access")
        .unwrap()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sync-access.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let text = String::from_utf8(bash.stdout).unwrap();
    assert!(text.contains("--namespace") && text.contains("approve"));
    for shell in ["zsh", "fish"] {
        Command::cargo_bin("sync-access")
            .unwrap()
            .args(["completions", shell])
            .assert()
            .success();
    }
    let man = Command::cargo_bin("sync-access")
        .unwrap()
        .arg("man")
        .output()
        .unwrap();
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains(r"sync\-access"), "the roff escapes the name");
}

fn command_line_conventions() {
    let cmd = || Command::cargo_bin("sync-access").unwrap();
    // Log levels in any case.
    cmd()
        .args(["-l", "debug", "show"])
        .arg(demo_plan())
        .assert()
        .success();
    // Connection flags only where a command connects.
    let help = cmd().args(["keygen", "--help"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--database-url"));
    let help = cmd().args(["approve", "--help"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--database-url"));
    let help = cmd()
        .args(["plan", "--help"])
        .env("SYNC_ACCESS_USER", "")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(help.contains("--database-url"), "{help}");
    assert!(help.contains("[env: SYNC_ACCESS_USER]"), "{help}");
    assert!(!help.contains("SYNC_ACCESS_USER="), "{help}");
    cmd()
        .args(["keygen", "--database-url", "sqlite:x.db", "k"])
        .assert()
        .code(1);
}

pub fn single_trials() -> Vec<Trial> {
    let tests: [(&str, fn()); 20] = [
        (
            "show::new_sections_at_80_and_200_columns",
            new_sections_at_80_and_200_columns,
        ),
        ("show::namespace_inheritance", namespace_inheritance),
        (
            "show::findings_name_who_and_what",
            findings_name_who_and_what,
        ),
        (
            "show::big_markdown_fits_a_comment",
            big_markdown_fits_a_comment,
        ),
        ("show::reads_the_plan_from_stdin", reads_the_plan_from_stdin),
        (
            "show::a_closed_stdout_ends_quietly",
            a_closed_stdout_ends_quietly,
        ),
        ("cli::completions_and_manual", completions_and_manual),
        ("cli::command_line_conventions", command_line_conventions),
        (
            "show::runs_through_the_binary_on_the_demo_plan",
            runs_through_the_binary,
        ),
        (
            "show::a_plan_changed_while_shown_is_refused",
            a_plan_changed_while_shown_is_refused,
        ),
        ("show::formats_of_the_demo_plan", formats_of_the_demo_plan),
        ("show::diff_of_the_demo_plan", diff_of_the_demo_plan),
        (
            "show::conflicts_and_skipped_come_first",
            conflicts_and_skipped,
        ),
        ("show::filters", filters),
        ("show::approvals_in_the_header", approvals_in_the_header),
        ("show::limits_for_big_plans", limits_for_big_plans),
        (
            "show::tampered_plan_is_shown_with_a_warning_and_exits_4",
            tampered_plan,
        ),
        ("show::invalid_plans_exit_4_with_one_line", invalid_plans),
        ("show::no_credentials_in_any_format", no_credentials),
        ("show::hostile_names_are_escaped", hostile_names),
    ];
    tests
        .into_iter()
        .map(|(name, test)| {
            Trial::test(name, move || {
                test();
                Ok(())
            })
        })
        .collect()
}
