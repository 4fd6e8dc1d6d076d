//! Signed approvals (issue 6): keygen, approve --signing-key, and apply's
//! --trusted-key, --require-approvals and --four-eyes, through the binary.
//! The checks happen before the database is touched, so SQLite suffices.

use libtest_mimic::Trial;
use predicates::prelude::*;
use serde_json::Value;

use crate::fixtures;
use crate::support::{plan, read_json, write_json, Kind, TestDb};

fn store() -> TestDb {
    let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
    // `--created-by` makes the author known for --four-eyes.
    plan(
        &db,
        &["--skip-conflicts", "--created-by", "author@example.com"],
        0,
    );
    db
}

fn keygen(db: &TestDb, name: &str) -> (String, String) {
    let secret = db.path(name);
    db.cmd().arg("keygen").arg(&secret).assert().success();
    let public = format!("{}.pub", secret.display());
    (secret.display().to_string(), public)
}

fn approve(db: &TestDb, by: &str, extra: &[&str]) {
    db.cmd()
        .args(["approve", "--yes", "--by", by])
        .args(extra)
        .arg(db.path("plan.json"))
        .assert()
        .success();
}

fn apply(db: &TestDb, extra: &[&str]) -> assert_cmd::assert::Assert {
    db.cmd()
        .arg("apply")
        .args(extra)
        .arg(db.path("plan.json"))
        .assert()
}

fn unchanged(db: &TestDb, before: &std::collections::BTreeMap<(String, String), Value>) {
    assert_eq!(&db.dump(), before, "a refused apply wrote something");
    assert_eq!(db.history_rows(), 0);
}

pub fn single_trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "signing::keygen_writes_a_private_key_and_never_overwrites",
            || {
                let db = TestDb::empty(Kind::Sqlite);
                let (secret, public) = keygen(&db, "alice.key");
                let text = std::fs::read_to_string(&secret).unwrap();
                assert!(text.starts_with("sync-access-ed25519-secret-key "));
                assert!(std::fs::read_to_string(&public)
                    .unwrap()
                    .starts_with("sync-access-ed25519-public-key "));
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600, "the secret key is readable by its owner only");
                }
                db.cmd()
                    .args(["keygen", &secret])
                    .assert()
                    .code(1)
                    .stderr(predicate::str::contains("already exists"));
                assert_eq!(std::fs::read_to_string(&secret).unwrap(), text);
                Ok(())
            },
        ),
        Trial::test("signing::signed_approvals_by_trusted_keys_apply", || {
            let db = store();
            let (secret, public) = keygen(&db, "alice.key");
            approve(&db, "alice@example.com", &["--signing-key", &secret]);
            let approval = &read_json(&db.path("plan.json"))["approvals"][0];
            assert!(approval["signature"]
                .as_str()
                .unwrap()
                .starts_with("ed25519:"));
            apply(&db, &["--trusted-key", &public]).success();
            assert_eq!(db.history_rows(), 1);
            Ok(())
        }),
        Trial::test(
            "signing::unsigned_untrusted_and_forged_approvals_are_refused",
            || {
                let db = store();
                let before = db.dump();
                let (alice, _) = keygen(&db, "alice.key");
                let (_, bob_public) = keygen(&db, "bob.key");
                // Unsigned, with a trusted key required.
                approve(&db, "carol@example.com", &[]);
                apply(&db, &["--trusted-key", &bob_public])
                    .code(4)
                    .stderr(predicate::str::contains("did not sign"));
                // Signed, by a key that is not trusted.
                approve(&db, "alice@example.com", &["--signing-key", &alice]);
                apply(&db, &["--trusted-key", &bob_public])
                    .code(4)
                    .stderr(predicate::str::contains("not trusted"));
                // A signed approval relabelled to someone else.
                let mut plan = read_json(&db.path("plan.json"));
                plan["approvals"][1]["by"] = Value::String("bob@example.com".into());
                write_json(&db.path("plan.json"), &plan);
                apply(&db, &[])
                    .code(4)
                    .stderr(predicate::str::contains("bad signature"));
                unchanged(&db, &before);
                Ok(())
            },
        ),
        Trial::test(
            "signing::require_approvals_counts_distinct_approvers",
            || {
                let db = store();
                let before = db.dump();
                let (alice, alice_public) = keygen(&db, "alice.key");
                let (bob, bob_public) = keygen(&db, "bob.key");
                approve(&db, "alice@example.com", &["--signing-key", &alice]);
                apply(&db, &["--require-approvals", "2"])
                    .code(4)
                    .stderr(predicate::str::contains(
                        "2 distinct approver(s) needed, 1 count",
                    ));
                // The same key under another name is still one person.
                approve(&db, "alice2@example.com", &["--signing-key", &alice]);
                let trusted = ["--trusted-key", &alice_public, "--trusted-key", &bob_public];
                apply(&db, &[&trusted[..], &["--require-approvals", "2"]].concat())
                    .code(4)
                    .stderr(predicate::str::contains("already counted"));
                unchanged(&db, &before);
                approve(&db, "bob@example.com", &["--signing-key", &bob]);
                apply(&db, &[&trusted[..], &["--require-approvals", "2"]].concat()).success();
                Ok(())
            },
        ),
        Trial::test("signing::four_eyes_refuses_the_author_as_approver", || {
            let db = store();
            let before = db.dump();
            approve(&db, "author@example.com", &[]);
            apply(&db, &["--four-eyes"])
                .code(4)
                .stderr(predicate::str::contains("made the plan"));
            unchanged(&db, &before);
            approve(&db, "reviewer@example.com", &[]);
            apply(&db, &["--four-eyes"]).success();
            Ok(())
        }),
        Trial::test(
            "limits::a_plan_file_over_the_size_limit_is_refused_unread",
            || {
                let db = TestDb::empty(Kind::Sqlite);
                let path = db.path("huge.json");
                // Sparse: no disk is used, but the size is what it says.
                let file = std::fs::File::create(&path).unwrap();
                file.set_len(sync_access::plan::MAX_PLAN_BYTES + 1).unwrap();
                for command in ["show", "approve", "apply", "verify"] {
                    let mut cmd = db.cmd();
                    cmd.arg(command);
                    if command == "approve" {
                        cmd.args(["--yes", "--by", "x"]);
                    }
                    cmd.arg(&path).assert().code(4).stderr(
                        predicate::str::contains("over the limit")
                            .and(predicate::str::contains("huge.json")),
                    );
                }
                Ok(())
            },
        ),
        Trial::test("progress::plan_and_apply_are_silent_when_piped", || {
            let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
            let out = db
                .cmd()
                .args(["plan", "--skip-conflicts", "-o"])
                .arg(db.path("plan.json"))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            approve(&db, "reviewer@example.com", &[]);
            let applied = db
                .cmd()
                .arg("apply")
                .arg(db.path("plan.json"))
                .output()
                .unwrap();
            assert_eq!(applied.status.code(), Some(0));
            for stderr in [&out.stderr, &applied.stderr] {
                let text = String::from_utf8_lossy(stderr);
                assert!(
                    !text.contains('\u{1b}') && !text.contains('\r'),
                    "no terminal control when piped: {text:?}"
                );
                assert!(
                    !text.contains("reading the store") && !text.contains("waiting for the lock"),
                    "{text}"
                );
            }
            Ok(())
        }),
        Trial::test("cli::usage_errors_exit_1_not_2", || {
            let db = TestDb::empty(Kind::Sqlite);
            db.cmd().args(["plan", "--no-such-flag"]).assert().code(1);
            db.cmd().args(["apply"]).assert().code(1);
            db.cmd().args(["--version"]).assert().code(0);
            Ok(())
        }),
    ]
}
