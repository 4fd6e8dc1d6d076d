//! `plan` through the real binary, on every backend.

use std::path::Path;
use std::time::Duration;

use libtest_mimic::Trial;
use predicates::prelude::*;
use serde_json::{json, Value};

use crate::crash::PasswordUrl;
use crate::fixtures;
use crate::support::{plan, read_json, runtime, write_json, Kind, Scenario, TestDb};
use sync_access::store::{Access, Store, Table};
use sync_access::sync::RawDoc;

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "store_read_only_connections_are_refused_writes_by_the_database",
        read_only_is_enforced,
    ),
    Scenario::new(
        "plan_demo_reproduces_the_golden_plan",
        demo_reproduces_golden,
    ),
    Scenario::new(
        "plan_rules_fixture_reproduces_its_golden_plan",
        rules_reproduce_golden,
    ),
    Scenario::new("plan_leaves_the_database_unchanged", plan_is_read_only),
    Scenario::new(
        "plan_derives_the_same_holding_the_bindings_or_reading_them_again",
        held_or_read_again,
    ),
    Scenario::new("plan_exit_codes_and_skip_conflicts", exit_codes),
    Scenario::new("plan_tenant_missing_created_or_deleted", tenants),
    Scenario::new(
        "plan_refuses_a_database_without_iam_tables",
        not_an_iam_store,
    ),
    Scenario::new("plan_never_prints_auths", no_secrets_in_plan),
    Scenario::only(
        "plan_records_the_database_without_its_password",
        password_not_recorded,
        |kind| match kind {
            Kind::Sqlite => Err("a SQLite URL has no password"),
            _ => Ok(()),
        },
    ),
    Scenario::only(
        "plan_reads_the_database_from_a_kestra_config",
        kestra_config,
        |kind| match kind {
            Kind::Sqlite => Err("Kestra has no JDBC URL for SQLite"),
            _ => Ok(()),
        },
    ),
];

/// Replaces what depends on where the test database lives, re-seals, and
/// writes the plan as the tool writes it.
fn normalise(plan: Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(&plan).unwrap();
    let mut plan = sync_access::plan::parse(&bytes).expect("a valid plan").plan;
    plan.source = sync_access::plan::Source {
        backend: "sqlite".into(),
        database: "sqlite:sync-access-demo.db".into(),
        identity: "sqlite:/demo/sync-access-demo.db".into(),
    };
    plan.digest = sync_access::plan::digest_of_plan(&plan);
    plan.to_pretty_json()
}

/// Compares with a golden file byte for byte; `UPDATE_GOLDEN=1` rewrites it.
pub(crate) fn assert_golden(plan: Value, golden: &Path) {
    let bytes = normalise(plan);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &bytes).unwrap();
    }
    let expected = std::fs::read_to_string(golden)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", golden.display()));
    let actual = String::from_utf8(bytes).unwrap();
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, &actual);
        panic!(
            "the plan differs from {}:\n{}",
            golden.display(),
            diff.unified_diff().context_radius(2)
        );
    }
}

pub(crate) fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn demo_reproduces_golden(kind: Kind) {
    let db = TestDb::empty(kind);
    db.cmd().arg("demo").assert().success();
    let plan = plan(&db, &["--created-by", "ops@example.com"], 0);
    assert_eq!(plan["source"]["backend"], kind.name());
    assert_golden(plan, &repo("plans/demo-plan.json"));
}

fn rules_reproduce_golden(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let plan = plan(&db, &["--created-by", "ops@example.com"], 3);
    assert_eq!(plan["applyable"], false);
    assert_golden(plan, &repo("tests/golden/rules-plan.json"));
}

/// `Store::derive` holds the bindings between its passes while they fit
/// its budget, and reads them again otherwise: all of them held, none,
/// and a budget that runs out part way give the same changes and
/// findings.
fn held_or_read_again(kind: Kind) {
    use sync_access::store::{Hold, ReadMode};
    use sync_access::sync::{sort_changes, Change, SyncOptions};
    let db = TestDb::with_rows(kind, fixtures::rules());
    let bindings = fixtures::rules().bindings;
    let total: usize = bindings.iter().map(|b| b.key.len() + b.value.len()).sum();
    assert!(bindings.len() > 4, "the fixture has bindings to hold");
    let derive = |hold: Hold| {
        runtime().block_on(async {
            let target = sync_access::connect::Target::parse(&db.url).unwrap();
            let mut store = Store::connect(&target, Access::ReadOnly, Duration::from_secs(10))
                .await
                .unwrap();
            let mut changes: Vec<Change> = Vec::new();
            let (_, result) = store
                .derive(
                    &SyncOptions::new("default"),
                    ReadMode::ReadOnly,
                    hold,
                    &mut changes,
                )
                .await
                .unwrap();
            let mut result = result.unwrap();
            sort_changes(&mut changes);
            result.changes = changes;
            result
        })
    };
    let read_again = derive(Hold::Nothing);
    assert!(!read_again.changes.is_empty(), "{read_again:#?}");
    assert!(!read_again.conflicts.is_empty(), "{read_again:#?}");
    // Every row held; about half of them, then none.
    for hold in [Hold::UpTo(64 << 20), Hold::UpTo(total / 2)] {
        assert_eq!(derive(hold), read_again, "{hold:?}");
    }
}

/// What `plan`, `verify` and `history` connect with: the database itself
/// (not only the tool) refuses to write on it, DDL included.
fn read_only_is_enforced(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let before = db.dump();
    runtime().block_on(async {
        let target = sync_access::connect::Target::parse(&db.url).unwrap();
        let mut store = Store::connect(&target, Access::ReadOnly, Duration::from_secs(10))
            .await
            .unwrap();
        let rows = [RawDoc::new("planted", r#"{"id":"planted","name":"P"}"#)];
        let refused = store.load(Table::Roles, &rows).await;
        assert!(refused.is_err(), "a read-only connection inserted a row");
        store.rollback().await.ok();
        let refused = store.drop_all().await;
        assert!(refused.is_err(), "a read-only connection dropped tables");
        // Reading still works.
        store.check_schema().await.unwrap();
        assert!(store.history().await.unwrap().is_empty());
    });
    assert_eq!(
        db.dump(),
        before,
        "a read-only connection changed the database"
    );
}

fn plan_is_read_only(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let before = db.dump();
    plan(&db, &[], 3);
    plan(&db, &["--skip-conflicts", "--detailed-exitcode"], 2);
    plan(&db, &["--tenant", "fresh", "--create-tenant"], 0);
    assert_eq!(db.dump(), before, "planning changed the database");
    assert_eq!(db.history_rows(), 0);
}

fn exit_codes(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let conflicted = plan(&db, &[], 3);
    assert!(conflicted["summary"]["conflicts"].as_u64().unwrap() > 0);
    let skipped = plan(&db, &["--skip-conflicts"], 0);
    assert_eq!(skipped["applyable"], true);
    assert_eq!(skipped["conflicts"], json!([]));
    assert_eq!(
        skipped["changes"], conflicted["changes"],
        "skipping conflicts changes no change"
    );
    let moved = skipped["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["reason"].as_str().unwrap().starts_with("conflict: "))
        .count();
    assert_eq!(
        moved as u64,
        conflicted["summary"]["conflicts"].as_u64().unwrap()
    );
    plan(&db, &["--skip-conflicts", "--detailed-exitcode"], 2);
    // Plain stdout carries the plan and nothing else.
    let out = db
        .cmd()
        .args(["plan", "--skip-conflicts"])
        .output()
        .unwrap();
    let stdout: Value = serde_json::from_slice(&out.stdout).expect("stdout is exactly the plan");
    assert_eq!(stdout["changes"], skipped["changes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"));
}

fn tenants(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    db.cmd()
        .args(["plan", "--tenant", "acme"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::contains("tenant `acme` does not exist")
                .and(predicate::str::contains("--create-tenant")),
        );
    let created = plan(
        &db,
        &[
            "--tenant",
            "acme",
            "--create-tenant",
            "--tenant-name",
            "ACME Corp",
            "--skip-conflicts",
        ],
        0,
    );
    assert_eq!(
        created["changes"][0],
        json!({"op": "create_tenant", "key": "acme", "value": {"id": "acme", "name": "ACME Corp", "deleted": false}})
    );
    assert_eq!(created["summary"]["create_tenant"], 1);
    assert_eq!(created["options"]["create_tenant"], true);
    // Every legacy role lands in the new tenant under its own key.
    let role_keys: Vec<&str> = created["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "add_role")
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        role_keys,
        [
            "acme_admin",
            "acme_auditor",
            "acme_editor",
            "acme_ops",
            "acme_viewer"
        ]
    );
    db.cmd()
        .args(["plan", "--tenant", "gone", "--create-tenant"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tenant `gone` is deleted"));
}

fn not_an_iam_store(kind: Kind) {
    let db = TestDb::empty(kind);
    if kind == Kind::Sqlite {
        db.cmd()
            .arg("plan")
            .assert()
            .code(1)
            .stderr(predicate::str::contains("no SQLite database at"));
        std::fs::write(db.path("store.db"), b"").unwrap();
    }
    db.exec(
        "CREATE TABLE tenants (\"key\" VARCHAR(250) PRIMARY KEY, \"value\" TEXT)"
            .replace('"', if kind == Kind::MySql { "`" } else { "\"" })
            .as_str(),
    );
    db.cmd()
        .arg("plan")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "not an IAM store: table `users` is missing",
        ));
}

fn no_secrets_in_plan(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let out = db
        .cmd()
        .args(["plan", "-vv", "--internal-log", "--skip-conflicts"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains(fixtures::SECRET_HASH),
            "a password hash leaked: {text}"
        );
        assert!(!text.contains("\"auths\""), "an auths field leaked");
    }
    // The verbose run did log something, so the check above means something.
    assert!(!out.stderr.is_empty());
}

/// A URL with a password that the server accepts (PostgreSQL here trusts
/// local connections; MariaDB gets a user of the test's own): the plan names
/// the database by that URL without its password, and the password appears
/// nowhere, not even in verbose logs.
fn password_not_recorded(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let url = PasswordUrl::new(&db).expect("a URL with a password that reaches the database");
    let out = db.path("plan.json");
    let ran = db
        .cmd()
        .env("DATABASE_URL", &url.url)
        .args(["plan", "--skip-conflicts", "-vv", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    for written in [
        text.as_str(),
        &stderr,
        &String::from_utf8_lossy(&ran.stdout),
    ] {
        assert!(
            !written.contains(&url.password),
            "the password leaked: {written}"
        );
    }
    let without_password = url.url.replace(&format!(":{}@", url.password), "@");
    assert_ne!(without_password, url.url);
    let plan: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(plan["source"]["database"], without_password.as_str());
}

/// A Kestra `config.yml` with a JDBC URL, a username and a `${ENV:default}`
/// password reaches the same database as the URL.
fn kestra_config(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let by_url = plan(&db, &["--skip-conflicts"], 0);
    // postgres://user@host:port/db -> jdbc:postgresql://host:port/db
    let rest = db.url.split_once("://").unwrap().1;
    let (user, host_db) = rest.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let scheme = if kind == Kind::Postgres {
        "postgresql"
    } else {
        "mysql"
    };
    let config = db.path("application.yml");
    std::fs::write(
        &config,
        format!(
            "datasources:\n  {kind}:\n    url: jdbc:{scheme}://{host_db}\n    username: {user}\n    password: ${{SYNC_ACCESS_TEST_UNSET:}}\n",
            kind = kind.name()
        ),
    )
    .unwrap();
    let out = db.path("by-config.json");
    db.cmd()
        .env_remove("DATABASE_URL")
        .env_remove("SYNC_ACCESS_TEST_UNSET")
        .args(["plan", "--skip-conflicts", "-c"])
        .arg(&config)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(0);
    let by_config = read_json(&out);
    assert_eq!(
        by_config["source"]["identity"],
        by_url["source"]["identity"]
    );
    assert_eq!(by_config["changes"], by_url["changes"]);
    // `-c` before the command, where earlier versions had it.
    let before = db.path("config-before.json");
    db.cmd()
        .env_remove("DATABASE_URL")
        .env_remove("SYNC_ACCESS_TEST_UNSET")
        .arg("-c")
        .arg(&config)
        .args(["plan", "--skip-conflicts", "-o"])
        .arg(&before)
        .assert()
        .code(0);
    assert_eq!(read_json(&before), by_config);
}

/// Checks that need no database server.
pub fn single_trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "connect::unreachable_server_is_a_clear_error_without_the_password",
            || {
                let dir = tempfile::tempdir().unwrap();
                let out = assert_cmd::Command::cargo_bin("sync-access")
                    .unwrap()
                    .current_dir(dir.path())
                    .args([
                        "plan",
                        "--connect-timeout",
                        "3",
                        "--database-url",
                        "postgres://kestra:hunter2@127.0.0.1:1/kestra",
                    ])
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(1));
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("could not connect to postgres://kestra@127.0.0.1:1/kestra"),
                    "{stderr}"
                );
                assert!(!stderr.contains("hunter2"), "{stderr}");
                assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
                Ok(())
            },
        ),
        Trial::test(
            "errors::a_drivers_cause_shows_with_v_and_not_without",
            || {
                let dir = tempfile::tempdir().unwrap();
                let run = |verbose: bool| {
                    let mut cmd = assert_cmd::Command::cargo_bin("sync-access").unwrap();
                    cmd.current_dir(dir.path()).env_remove("RUST_LOG");
                    if verbose {
                        cmd.arg("-v");
                    }
                    let out = cmd
                        .args([
                            "plan",
                            "--connect-timeout",
                            "3",
                            "--database-url",
                            "postgres://kestra@127.0.0.1:1/kestra",
                        ])
                        .output()
                        .unwrap();
                    assert_eq!(out.status.code(), Some(1));
                    String::from_utf8_lossy(&out.stderr).into_owned()
                };
                let plain = run(false);
                assert_eq!(
                    plain.trim_end(),
                    "error: could not connect to postgres://kestra@127.0.0.1:1/kestra: connection refused (is the server running, and is this its port?)"
                );
                let verbose = run(true);
                let error_at = verbose.find("error: could not connect").expect(&verbose);
                let causes: Vec<&str> = verbose[error_at..].lines().skip(1).collect();
                // sqlx's words, then the operating system's.
                assert!(
                    causes.len() >= 2
                        && causes[0].starts_with("  caused by: error communicating with database")
                        && causes.iter().all(|line| line.starts_with("  caused by: ")),
                    "{verbose}"
                );
                Ok(())
            },
        ),
        Trial::test("connect::unknown_scheme_and_h2_are_refused", || {
            let dir = tempfile::tempdir().unwrap();
            let run = |args: &[&str]| {
                assert_cmd::Command::cargo_bin("sync-access")
                    .unwrap()
                    .current_dir(dir.path())
                    .env_remove("DATABASE_URL")
                    .args(args)
                    .output()
                    .unwrap()
            };
            let out = run(&["plan", "--database-url", "oracle://u:pw@h/db"]);
            assert_eq!(out.status.code(), Some(1));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("unknown scheme `oracle`") && !stderr.contains("pw"),
                "{stderr}"
            );
            let config = dir.path().join("application.yml");
            std::fs::write(
                &config,
                "datasources:\n  h2:\n    url: jdbc:h2:mem:public;DB_CLOSE_DELAY=-1\n",
            )
            .unwrap();
            let out = run(&["plan", "-c", config.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(1));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("application.yml") && stderr.contains("not supported"),
                "{stderr}"
            );
            std::fs::write(&config, "datasources: [\n").unwrap();
            let out = run(&["plan", "-c", config.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("not valid YAML"));
            let out = run(&[
                "plan",
                "-c",
                dir.path().join("missing.yml").to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yml"));
            Ok(())
        }),
        Trial::test("connect::kestra_config_reaches_the_database", || {
            // A Kestra config pointing at the SQLite-free backends is checked
            // where they run; here: the placeholder error names file and key.
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                "datasources:\n  postgres:\n    url: jdbc:postgresql://127.0.0.1:1/kestra\n    username: kestra\n    password: ${SYNC_ACCESS_TEST_UNSET_PASSWORD}\n",
            )
            .unwrap();
            let out = assert_cmd::Command::cargo_bin("sync-access")
                .unwrap()
                .env_remove("SYNC_ACCESS_TEST_UNSET_PASSWORD")
                .args(["plan", "-c", config.to_str().unwrap()])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("config.yml") && stderr.contains("datasources.postgres.password"),
                "{stderr}"
            );
            Ok(())
        }),
        Trial::test(
            "connect::connection_flags_before_or_after_the_command",
            connection_flags_before_or_after_the_command,
        ),
        Trial::test(
            "golden::the_demo_plan_in_plans_is_a_valid_sealed_plan",
            || {
                let plan = read_json(&repo("plans/demo-plan.json"));
                assert_eq!(plan["digest"], json!(sync_access::plan::digest_of(&plan)));
                let tmp = tempfile::tempdir().unwrap();
                write_json(&tmp.path().join("p.json"), &plan);
                assert!(sync_access::plan::load(&tmp.path().join("p.json")).is_ok());
                Ok(())
            },
        ),
    ]
}

/// README "Connecting": the connection flags work after the command that
/// connects and, as earlier versions had them as global flags, before
/// it; given in both places, the command's own win, and sources that clash
/// across the two places are refused as in one; before a command that
/// does not connect they are accepted and ignored, after it they are a
/// usage error; and only the commands that connect list them (`show`
/// names them in the help of --live).
fn connection_flags_before_or_after_the_command() -> Result<(), libtest_mimic::Failed> {
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut cmd = assert_cmd::Command::cargo_bin("sync-access").unwrap();
        cmd.current_dir(dir.path())
            .env("SOURCE_DATE_EPOCH", crate::support::SOURCE_DATE_EPOCH)
            .env("SYNC_ACCESS_USER", "tester@example.com")
            // No Kestra configuration from the environment or ~/.kestra.
            .env("HOME", dir.path())
            .env_remove("KESTRA_CONFIGURATION")
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG");
        cmd
    };
    // Where no flag points: a flag must beat it.
    let elsewhere = || {
        let mut cmd = cmd();
        cmd.env("DATABASE_URL", "sqlite:no/such/dir/x.db");
        cmd
    };
    cmd()
        .args(["--database-url", "sqlite:x.db", "demo"])
        .assert()
        .success();
    elsewhere()
        .args(["--database-url", "sqlite:x.db", "plan", "-o", "before.json"])
        .assert()
        .code(0);
    elsewhere()
        .args(["plan", "--database-url", "sqlite:x.db", "-o", "after.json"])
        .assert()
        .code(0);
    cmd()
        .args(["--database-url", "sqlite:no/such/dir/y.db", "plan"])
        .args(["--database-url", "sqlite:x.db", "-o", "both.json"])
        .assert()
        .code(0);
    let before = read_json(&dir.path().join("before.json"));
    assert!(!before["changes"].as_array().unwrap().is_empty());
    assert_eq!(read_json(&dir.path().join("after.json")), before);
    assert_eq!(read_json(&dir.path().join("both.json")), before);
    // Without a flag, DATABASE_URL is used: here, a database that is not there.
    elsewhere()
        .args(["plan", "-o", "none.json"])
        .assert()
        .code(1);

    // `-c` before the command is read: this one names H2, refused.
    std::fs::write(
        dir.path().join("application.yml"),
        "datasources:\n  h2:\n    url: jdbc:h2:mem:public\n",
    )
    .unwrap();
    let out = cmd()
        .args(["-c", "application.yml", "plan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("application.yml") && stderr.contains("not supported"),
        "{stderr}"
    );
    // Two sources, one in each place: refused as in one place.
    let out = cmd()
        .args([
            "-c",
            "application.yml",
            "plan",
            "--database-url",
            "sqlite:x.db",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-c application.yml") && stderr.contains("--database-url"),
        "{stderr}"
    );
    // The timeout is checked before the command too.
    let out = cmd()
        .args([
            "--connect-timeout",
            "0",
            "plan",
            "--database-url",
            "sqlite:x.db",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    // `--connect-timeout` before the command: a connection error, not a
    // usage error.
    let out = cmd()
        .args(["--connect-timeout", "3", "plan"])
        .args(["--database-url", "postgres://kestra@127.0.0.1:1/kestra"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not connect"), "{stderr}");
    // `history` and `verify` read from the database the flag before names.
    cmd()
        .args(["--database-url", "sqlite:x.db", "history"])
        .assert()
        .success();
    cmd()
        .args(["--database-url", "sqlite:x.db", "verify", "before.json"])
        .assert()
        .code(5);

    // Commands that do not connect: before them, accepted and ignored.
    cmd()
        .args(["--database-url", "sqlite:x.db", "--connect-timeout", "5"])
        .args(["keygen", "key"])
        .assert()
        .success();
    assert!(dir.path().join("key.pub").exists());
    cmd()
        .args(["-c", "application.yml", "show", "before.json"])
        .assert()
        .success();
    // After them, not theirs.
    let out = cmd()
        .args(["keygen", "--connect-timeout", "5", "key2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("key2").exists());
    // Only the commands that connect list them.
    for (command, lists) in [
        ("plan", true),
        ("apply", true),
        ("verify", true),
        ("history", true),
        ("demo", true),
        ("keygen", false),
        ("approve", false),
        ("completions", false),
    ] {
        let help = cmd().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert_eq!(help.contains("--database-url"), lists, "{command}: {help}");
        assert_eq!(
            help.contains("--connect-timeout"),
            lists,
            "{command}: {help}"
        );
    }
    // `show` takes them for --live only: its help names them there, and
    // does not list them as options of their own.
    let help = cmd().args(["show", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let option_lines = |flag: &str| {
        help.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with(flag) || l.starts_with(&format!("-c, {flag}")))
            .count()
    };
    for flag in [
        "--database-url",
        "--config",
        "--datasource",
        "--connect-timeout",
    ] {
        assert_eq!(option_lines(flag), 0, "{flag}: {help}");
    }
    let live = help
        .lines()
        .find(|l| l.trim_start().starts_with("--live"))
        .unwrap_or_else(|| panic!("{help}"));
    assert!(live.contains("--database-url"), "{help}");
    Ok(())
}
