//! Signed plans and approvals (issue 10), through the real binary, with keys
//! made by the real `ssh-keygen` and signatures checked both ways: ours by
//! `ssh-keygen -Y verify`, `ssh-keygen -Y sign`'s by `apply`. The checks
//! happen before the database is touched, so SQLite suffices; what reaches
//! the history is written by the same code on every backend.
//!
//! Also the plan-file writes of `approve` and `plan -o`: no silent
//! approval, concurrent approves, planted links, read-only files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::Trial;
use predicates::prelude::*;
use serde_json::{json, Value};

use crate::fixtures;
use crate::support::{read_json, write_json, Kind, TestDb, SOURCE_DATE_EPOCH};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// A key pair made by `ssh-keygen`.
struct Key {
    private: PathBuf,
    public: PathBuf,
    /// `ssh-ed25519 AAAA...`, without the comment.
    line: String,
}

impl Key {
    fn private(&self) -> &str {
        self.private.to_str().unwrap()
    }
    fn public(&self) -> &str {
        self.public.to_str().unwrap()
    }
}

fn ssh_keygen(db: &TestDb, name: &str, comment: &str) -> Key {
    let private = db.path(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&private)
        .output()
        .expect("ssh-keygen is installed");
    assert!(out.status.success(), "{out:?}");
    let public = db.path(&format!("{name}.pub"));
    let text = std::fs::read_to_string(&public).unwrap();
    let line = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Key {
        private,
        public,
        line,
    }
}

/// Writes an allowed_signers file of `lines`.
fn signers(db: &TestDb, name: &str, lines: &[String]) -> String {
    let path = db.path(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

/// A store and an applyable plan made by `author@example.com`, optionally
/// signed by the author's key.
fn store(author_key: Option<&Key>, created_by: &str) -> TestDb {
    let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
    let mut cmd = db.cmd();
    cmd.args(["plan", "--skip-conflicts", "--created-by", created_by, "-o"])
        .arg(db.path("plan.json"));
    if let Some(key) = author_key {
        cmd.args(["--key", key.private()]);
    }
    cmd.assert().success();
    db
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

/// A refused apply: exit 4, `why` in the message, nothing written.
fn refused(db: &TestDb, extra: &[&str], why: &str) {
    let before = db.dump();
    apply(db, extra)
        .code(4)
        .stderr(predicate::str::contains(why).and(predicate::str::contains("plan.json")));
    assert_eq!(db.dump(), before, "a refused apply wrote something");
    assert_eq!(db.history_rows(), 0);
}

/// The canonical JSON of an approval without its signature: what it signs.
fn message_of(approval: &Value) -> Vec<u8> {
    let mut unsigned = approval.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    serde_json::to_vec(&unsigned).unwrap()
}

fn approvals(db: &TestDb) -> Vec<Value> {
    read_json(&db.path("plan.json"))["approvals"]
        .as_array()
        .unwrap()
        .clone()
}

/// `ssh-keygen -Y verify -n sync-access -I <by> -f <signers> -s <sig>`
/// with `message` on stdin: whether it accepts.
fn ssh_keygen_verifies(db: &TestDb, by: &str, signers: &str, sig: &str, message: &[u8]) -> bool {
    use std::io::Write;
    let sig_path = db.path("check.sig");
    std::fs::write(&sig_path, sig).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "sync-access",
            "-I",
            by,
            "-f",
            signers,
            "-s",
        ])
        .arg(&sig_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    child.wait_with_output().unwrap().status.success()
}

/// History rows' approvers, as the JSON the tool recorded.
fn recorded_approvers(db: &TestDb) -> Value {
    let url = db.url.clone();
    crate::support::runtime().block_on(async move {
        let target = sync_access::connect::Target::parse(&url).unwrap();
        let mut store = sync_access::store::Store::connect(
            &target,
            sync_access::store::Access::ReadOnly,
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
        let rows = store.history().await.unwrap();
        serde_json::from_str(&rows[0].approvers).unwrap()
    })
}

/// An ssh-agent of this test's own, ended when dropped.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent is installed");
        let agent = Agent { child, socket };
        for _ in 0..500 {
            if agent.socket.exists() {
                return agent;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("ssh-agent did not open {}", agent.socket.display());
    }

    fn add(&self, key: &Key) {
        let out = Command::new("ssh-add")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real binary without assert_cmd, for processes run side by side.
fn raw_cmd(db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sync-access"));
    cmd.env("DATABASE_URL", &db.url)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("SYNC_ACCESS_USER", "tester@example.com")
        .env_remove("SYNC_ACCESS_POLICY")
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(db.dir.path());
    cmd
}

fn signature_round_trips() -> Vec<Trial> {
    vec![
        Trial::test(
            "signing::our_approval_signature_verifies_with_ssh_keygen",
            || {
                let db = store(None, "author@example.com");
                let alice = ssh_keygen(&db, "alice", ALICE);
                approve(
                    &db,
                    ALICE,
                    &["--key", alice.private(), "--comment", "CHG-1\nline2"],
                );
                let approval = &approvals(&db)[0];
                let sig = approval["signature"].as_str().unwrap();
                assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"), "{sig}");
                let message = message_of(approval);
                // --print-message prints exactly those bytes (the clock is fixed).
                let printed = db
                    .cmd()
                    .args([
                        "approve",
                        "--by",
                        ALICE,
                        "--comment",
                        "CHG-1\nline2",
                        "--print-message",
                    ])
                    .arg(db.path("plan.json"))
                    .output()
                    .unwrap();
                assert_eq!(printed.status.code(), Some(0));
                assert_eq!(printed.stdout, message);
                let allowed = signers(&db, "allowed", &[format!("{ALICE} {}", alice.line)]);
                assert!(ssh_keygen_verifies(&db, ALICE, &allowed, sig, &message));
                // ssh-keygen agrees that the signature binds the name.
                assert!(!ssh_keygen_verifies(&db, BOB, &allowed, sig, &message));
                let mut resplit = message.clone();
                resplit.extend_from_slice(b" ");
                assert!(!ssh_keygen_verifies(&db, ALICE, &allowed, sig, &resplit));
                apply(&db, &["--allowed-signers", &allowed]).success();
                let recorded = recorded_approvers(&db);
                assert_eq!(recorded[0]["by"], ALICE);
                assert_eq!(recorded[0]["comment"], "CHG-1\nline2");
                assert_eq!(recorded[0]["verified"], true);
                let fingerprint = Command::new("ssh-keygen")
                    .args(["-l", "-E", "sha256", "-f", alice.public()])
                    .output()
                    .unwrap();
                let fingerprint = String::from_utf8(fingerprint.stdout).unwrap();
                assert_eq!(
                    Some(recorded[0]["fingerprint"].as_str().unwrap()),
                    fingerprint.split_whitespace().nth(1),
                    "the history records the key's fingerprint as ssh-keygen -l prints it"
                );
                db.cmd()
                    .arg("history")
                    .assert()
                    .success()
                    .stdout(predicate::str::contains("verified, SHA256:"));
                Ok(())
            },
        ),
        Trial::test(
            "signing::an_ssh_keygen_signature_over_print_message_is_accepted",
            || {
                let db = store(None, "author@example.com");
                let bob = ssh_keygen(&db, "bob", BOB);
                let out = db
                    .cmd()
                    .args([
                        "approve",
                        "--by",
                        BOB,
                        "--comment",
                        "CHG-7",
                        "--print-message",
                    ])
                    .arg(db.path("plan.json"))
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(0));
                assert!(approvals(&db).is_empty(), "--print-message writes nothing");
                let message = db.path("approval.json");
                std::fs::write(&message, &out.stdout).unwrap();
                let signed = Command::new("ssh-keygen")
                    .args(["-Y", "sign", "-n", "sync-access", "-f", bob.private()])
                    .arg(&message)
                    .output()
                    .unwrap();
                assert!(signed.status.success(), "{signed:?}");
                // A signature over other bytes is refused before anything is
                // written.
                let other = db.path("other.json");
                std::fs::write(&other, b"{}").unwrap();
                db.cmd()
                    .args(["approve", "--yes", "--signature", "approval.json.sig"])
                    .args(["--message", "other.json", "plan.json"])
                    .assert()
                    .code(4);
                assert!(approvals(&db).is_empty());
                db.cmd()
                    .args([
                        "approve",
                        "--yes",
                        "--signature",
                        "approval.json.sig",
                        "plan.json",
                    ])
                    .assert()
                    .success();
                let approval = &approvals(&db)[0];
                assert_eq!(approval["by"], BOB);
                assert_eq!(approval["comment"], "CHG-7");
                let allowed = signers(&db, "allowed", &[format!("{BOB} {}", bob.line)]);
                apply(&db, &["--allowed-signers", &allowed]).success();
                Ok(())
            },
        ),
        Trial::test(
            "signing::a_key_held_by_ssh_agent_signs_through_its_public_half",
            || {
                let db = store(None, "author@example.com");
                let carol = ssh_keygen(&db, "carol", CAROL);
                let agent = Agent::start(db.dir.path());
                // Without an agent, a public key cannot sign: said plainly.
                db.cmd()
                    .env_remove("SSH_AUTH_SOCK")
                    .args(["approve", "--yes", "--key", carol.public(), "plan.json"])
                    .assert()
                    .code(1)
                    .stderr(predicate::str::contains("SSH_AUTH_SOCK"));
                // An agent that does not hold the key refuses; nothing written.
                db.cmd()
                    .env("SSH_AUTH_SOCK", &agent.socket)
                    .args(["approve", "--yes", "--key", carol.public(), "plan.json"])
                    .assert()
                    .code(1)
                    .stderr(predicate::str::contains("does not hold that key"));
                assert!(approvals(&db).is_empty());
                agent.add(&carol);
                // No --by: the key's comment is the name.
                db.cmd()
                    .env("SSH_AUTH_SOCK", &agent.socket)
                    .env_remove("SYNC_ACCESS_USER")
                    .args(["approve", "--yes", "--key", carol.public(), "plan.json"])
                    .assert()
                    .success();
                assert_eq!(approvals(&db)[0]["by"], CAROL);
                let allowed = signers(&db, "allowed", &[format!("{CAROL} {}", carol.line)]);
                apply(&db, &["--allowed-signers", &allowed]).success();
                Ok(())
            },
        ),
        Trial::test(
            "signing::passphrase_keys_and_foreign_keys_are_refused_clearly",
            || {
                let db = store(None, "author@example.com");
                let locked = db.path("locked");
                let out = Command::new("ssh-keygen")
                    .args([
                        "-q",
                        "-t",
                        "ed25519",
                        "-N",
                        "correct horse",
                        "-C",
                        ALICE,
                        "-f",
                    ])
                    .arg(&locked)
                    .output()
                    .unwrap();
                assert!(out.status.success());
                db.cmd()
                    .env_remove("SSH_AUTH_SOCK")
                    .args(["approve", "--yes", "--key"])
                    .arg(&locked)
                    .arg("plan.json")
                    .assert()
                    .code(1)
                    .stderr(
                        predicate::str::contains("passphrase")
                            .and(predicate::str::contains("ssh-add")),
                    );
                let ecdsa = db.path("ecdsa");
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
                    .arg(&ecdsa)
                    .output()
                    .unwrap();
                db.cmd()
                    .args(["approve", "--yes", "--key"])
                    .arg(&ecdsa)
                    .arg("plan.json")
                    .assert()
                    .code(1)
                    .stderr(predicate::str::contains("ed25519"));
                std::fs::write(
                    db.path("old.key"),
                    "sync-access-ed25519-secret-key 00112233\n",
                )
                .unwrap();
                db.cmd()
                    .args(["approve", "--yes", "--key", "old.key", "plan.json"])
                    .assert()
                    .code(1)
                    .stderr(
                        predicate::str::contains("no longer read")
                            .and(predicate::str::contains("00112233").not()),
                    );
                assert!(approvals(&db).is_empty());
                Ok(())
            },
        ),
    ]
}

fn forgeries() -> Vec<Trial> {
    vec![
        Trial::test("signing::forgery_the_author_under_another_spelling", || {
            let alice_db = TestDb::empty(Kind::Sqlite);
            let alice = ssh_keygen(&alice_db, "alice", ALICE);
            let db = store(Some(&alice), ALICE);
            // Alice has a second key, listed under another spelling of her
            // name; four-eyes must see one person.
            let second = ssh_keygen(&db, "alice2", "ALICE");
            let allowed = signers(
                &db,
                "allowed",
                &[
                    format!("{ALICE} {}", alice.line),
                    format!("ALICE@Example.com,ａｌｉｃｅ@example.com {}", second.line),
                ],
            );
            approve(&db, "ALICE@Example.com", &["--key", second.private()]);
            refused(
                &db,
                &["--allowed-signers", &allowed, "--four-eyes"],
                "made the plan (--four-eyes)",
            );
            Ok(())
        }),
        Trial::test("signing::forgery_a_key_not_allowed_for_the_name", || {
            let db = store(None, "author@example.com");
            let alice = ssh_keygen(&db, "alice", ALICE);
            let bob = ssh_keygen(&db, "bob", BOB);
            let allowed = signers(
                &db,
                "allowed",
                &[
                    format!("{ALICE} {}", alice.line),
                    format!("{BOB} {}", bob.line),
                ],
            );
            // Alice's key signs as bob.
            approve(&db, BOB, &["--key", alice.private()]);
            refused(
                &db,
                &["--allowed-signers", &allowed],
                "allows no such key for that name",
            );
            // Negation: a wildcard line that excludes one name.
            let wildcard = signers(
                &db,
                "wildcard",
                &[format!("*@example.com,!{BOB} {}", alice.line)],
            );
            refused(&db, &["--allowed-signers", &wildcard], "not counted");
            Ok(())
        }),
        Trial::test(
            "signing::forgery_an_unsigned_approval_under_allowed_signers",
            || {
                let db = store(None, "author@example.com");
                let alice = ssh_keygen(&db, "alice", ALICE);
                let allowed = signers(&db, "allowed", &[format!("{ALICE} {}", alice.line)]);
                approve(&db, ALICE, &[]);
                refused(&db, &["--allowed-signers", &allowed], "did not sign");
                Ok(())
            },
        ),
        Trial::test("signing::forgery_fields_re_split_under_a_signature", || {
            let db = store(None, "author@example.com");
            let bob = ssh_keygen(&db, "bob", BOB);
            approve(
                &db,
                BOB,
                &["--key", bob.private(), "--comment", "CHG-1\nline2"],
            );
            let mut plan = read_json(&db.path("plan.json"));
            let approval = &mut plan["approvals"][0];
            let at = approval["at"].as_str().unwrap().to_string();
            approval["by"] = json!(format!("{BOB}\n{at}"));
            approval["at"] = json!("CHG-1");
            approval["comment"] = json!("line2");
            write_json(&db.path("plan.json"), &plan);
            let allowed = signers(&db, "allowed", &[format!("*@example.com {}", bob.line)]);
            // Refused with and without allowed signers.
            refused(&db, &["--allowed-signers", &allowed], "bad signature");
            refused(&db, &[], "bad signature");
            // The forged name is quoted escaped: its line break does not
            // start a line of its own.
            let out = apply(&db, &[]).code(4).get_output().clone();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(&format!("`{BOB}\\u{{a}}{at}`")), "{stderr}");
            Ok(())
        }),
        Trial::test("signing::forgery_an_edited_created_by", || {
            let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
            let alice = ssh_keygen(&db, "alice", ALICE);
            let bob = ssh_keygen(&db, "bob", BOB);
            // No --created-by: the key's comment names the author.
            db.cmd()
                .env_remove("SYNC_ACCESS_USER")
                .args([
                    "plan",
                    "--skip-conflicts",
                    "--key",
                    alice.private(),
                    "-o",
                    "plan.json",
                ])
                .assert()
                .success();
            assert_eq!(read_json(&db.path("plan.json"))["created_by"], ALICE);
            approve(&db, BOB, &["--key", bob.private()]);
            let allowed = signers(
                &db,
                "allowed",
                &[
                    format!("{ALICE} {}", alice.line),
                    format!("{BOB} {}", bob.line),
                ],
            );
            let mut plan = read_json(&db.path("plan.json"));
            plan["created_by"] = json!("mallory@example.com");
            write_json(&db.path("plan.json"), &plan);
            refused(&db, &["--allowed-signers", &allowed], "digest mismatch");
            // Resealed, and the approval re-pointed at the new digest.
            let resealed = crate::hostile::resealed(plan);
            write_json(&db.path("plan.json"), &resealed);
            refused(
                &db,
                &["--allowed-signers", &allowed, "--four-eyes"],
                "author signature does not verify",
            );
            Ok(())
        }),
        Trial::test(
            "signing::forgery_one_key_under_two_names_counts_once",
            || {
                let db = store(None, "author@example.com");
                let alice = ssh_keygen(&db, "alice", ALICE);
                let bob = ssh_keygen(&db, "bob", BOB);
                let allowed = signers(
                    &db,
                    "allowed",
                    &[
                        format!("{ALICE},{CAROL} {}", alice.line),
                        format!("{BOB} {}", bob.line),
                    ],
                );
                approve(&db, ALICE, &["--key", alice.private()]);
                approve(&db, CAROL, &["--key", alice.private()]);
                refused(
                    &db,
                    &["--allowed-signers", &allowed, "--require-approvals", "2"],
                    "a key that already counted",
                );
                approve(&db, BOB, &["--key", bob.private()]);
                apply(
                    &db,
                    &["--allowed-signers", &allowed, "--require-approvals", "2"],
                )
                .success();
                assert_eq!(recorded_approvers(&db).as_array().unwrap().len(), 2);
                Ok(())
            },
        ),
        Trial::test(
            "signing::forgery_an_expired_or_foreign_namespace_key",
            || {
                let db = store(None, "author@example.com");
                let alice = ssh_keygen(&db, "alice", ALICE);
                approve(&db, ALICE, &["--key", alice.private()]);
                let expired = signers(
                    &db,
                    "expired",
                    &[format!("{ALICE} valid-before=\"20200101Z\" {}", alice.line)],
                );
                refused(&db, &["--allowed-signers", &expired], "expired");
                let git_only = signers(
                    &db,
                    "git-only",
                    &[format!("{ALICE} namespaces=\"git,file\" {}", alice.line)],
                );
                refused(&db, &["--allowed-signers", &git_only], "namespace");
                let current = signers(
                &db,
                "current",
                &[format!(
                    "{ALICE} namespaces=\"sync-access\",valid-after=\"20200101Z\",valid-before=\"29991231Z\" {}",
                    alice.line
                )],
            );
                // A CA line is refused, not silently ignored.
                let ca = signers(
                    &db,
                    "ca",
                    &[format!("*@example.com cert-authority {}", alice.line)],
                );
                apply(&db, &["--allowed-signers", &ca])
                    .code(1)
                    .stderr(predicate::str::contains("cert-authority is not supported"));
                apply(&db, &["--allowed-signers", &current]).success();
                Ok(())
            },
        ),
    ]
}

fn four_eyes() -> Vec<Trial> {
    vec![
        Trial::test(
            "signing::four_eyes_without_an_author_signature_refuses",
            || {
                let db = store(None, ALICE);
                let bob = ssh_keygen(&db, "bob", BOB);
                let allowed = signers(&db, "allowed", &[format!("{BOB} {}", bob.line)]);
                approve(&db, BOB, &["--key", bob.private()]);
                refused(
                    &db,
                    &["--allowed-signers", &allowed, "--four-eyes"],
                    "--four-eyes needs the author's signature",
                );
                // Four-eyes on free-text names would prove nothing: a usage error.
                apply(&db, &["--four-eyes"])
                    .code(1)
                    .stderr(predicate::str::contains("--allowed-signers"));
                apply(&db, &["--allowed-signers", &allowed]).success();
                Ok(())
            },
        ),
        Trial::test("signing::four_eyes_with_an_author_signature", || {
            let keys = TestDb::empty(Kind::Sqlite);
            let alice = ssh_keygen(&keys, "alice", ALICE);
            let db = store(Some(&alice), ALICE);
            let signature = read_json(&db.path("plan.json"))["author_signature"].clone();
            assert!(signature
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN SSH SIGNATURE-----"));
            let bob = ssh_keygen(&db, "bob", BOB);
            let allowed = signers(
                &db,
                "allowed",
                &[
                    format!("{ALICE},{CAROL} {}", alice.line),
                    format!("{BOB} {}", bob.line),
                ],
            );
            // The author's own approval, and her key under another name.
            approve(&db, ALICE, &["--key", alice.private()]);
            approve(&db, CAROL, &["--key", alice.private()]);
            refused(
                &db,
                &["--allowed-signers", &allowed, "--four-eyes"],
                "made the plan",
            );
            refused(
                &db,
                &["--allowed-signers", &allowed, "--four-eyes"],
                "signed with the author's key",
            );
            // The author signature must be allowed for created_by.
            let bob_only = signers(&db, "bob-only", &[format!("{BOB} {}", bob.line)]);
            approve(&db, BOB, &["--key", bob.private()]);
            refused(
                &db,
                &["--allowed-signers", &bob_only, "--four-eyes"],
                "which is not allowed for",
            );
            apply(&db, &["--allowed-signers", &allowed, "--four-eyes"]).success();
            let recorded = recorded_approvers(&db);
            assert_eq!(recorded.as_array().unwrap().len(), 1, "{recorded}");
            assert_eq!(recorded[0]["by"], BOB);
            // show names the author's key and each approval's.
            db.cmd()
                .args(["show", "plan.json"])
                .assert()
                .success()
                .stdout(
                    predicate::str::contains("signed with SHA256:")
                        .and(predicate::str::contains("[unsigned]").not()),
                );
            Ok(())
        }),
        Trial::test("signing::a_policy_file_cannot_be_weakened_by_flags", || {
            let keys = TestDb::empty(Kind::Sqlite);
            let alice = ssh_keygen(&keys, "alice", ALICE);
            let db = store(Some(&alice), ALICE);
            let bob = ssh_keygen(&db, "bob", BOB);
            let carol = ssh_keygen(&db, "carol", CAROL);
            std::fs::create_dir(db.path("policy")).unwrap();
            std::fs::write(
                db.path("policy/allowed_signers"),
                format!(
                    "{ALICE} {}\n{BOB} {}\n{CAROL} {}\n",
                    alice.line, bob.line, carol.line
                ),
            )
            .unwrap();
            std::fs::write(
                db.path("policy/policy.yml"),
                "# the team's policy\nallowed_signers: allowed_signers\napprovals_required: 2\nfour_eyes: true\n",
            )
            .unwrap();
            approve(&db, ALICE, &["--key", alice.private()]);
            approve(&db, BOB, &["--key", bob.private()]);
            approve(&db, "dave@example.com", &[]);
            // The author does not count and dave did not sign: 1 of 2.
            refused(
                &db,
                &["--policy", "policy/policy.yml"],
                "2 distinct approver(s) needed, 1 count",
            );
            refused(
                &db,
                &["--policy", "policy/policy.yml", "--require-approvals", "1"],
                "2 distinct approver(s) needed",
            );
            // The environment names the policy just as well.
            let before = db.dump();
            db.cmd()
                .env("SYNC_ACCESS_POLICY", db.path("policy/policy.yml"))
                .args(["apply", "plan.json"])
                .assert()
                .code(4);
            assert_eq!(db.dump(), before);
            std::fs::write(db.path("policy/bad.yml"), "approvals: 2\n").unwrap();
            apply(&db, &["--policy", "policy/bad.yml"])
                .code(1)
                .stderr(predicate::str::contains("unknown key `approvals`"));
            approve(&db, CAROL, &["--key", carol.private()]);
            refused(
                &db,
                &["--policy", "policy/policy.yml", "--require-approvals", "3"],
                "3 distinct approver(s) needed, 2 count",
            );
            apply(&db, &["--policy", "policy/policy.yml"]).success();
            Ok(())
        }),
        Trial::test("signing::unsigned_approvals_are_said_to_be_names", || {
            let db = store(None, "author@example.com");
            approve(&db, BOB, &["--comment", "CHG-1"]);
            db.cmd()
                .args(["show", "plan.json"])
                .assert()
                .success()
                .stdout(
                    predicate::str::contains("[unsigned]")
                        .and(predicate::str::contains("Unsigned approvals are names")),
                );
            apply(&db, &[])
                .success()
                .stderr(predicate::str::contains("unsigned names"));
            Ok(())
        }),
    ]
}

fn names_and_writes() -> Vec<Trial> {
    vec![
        Trial::test(
            "approve::off_a_terminal_without_yes_refuses_and_writes_nothing",
            || {
                let db = store(None, "author@example.com");
                let before = std::fs::read(db.path("plan.json")).unwrap();
                let mut child = raw_cmd(&db)
                    .args(["approve", "--by", BOB, "plan.json"])
                    .stdin(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                {
                    use std::io::Write;
                    // What a script might pipe in: it is not a person saying
                    // yes. approve refuses without reading it, so it may
                    // have exited already: a closed pipe is that refusal.
                    let written = child.stdin.take().unwrap().write_all(b"y\n");
                    if let Err(e) = written {
                        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
                    }
                }
                let out = child.wait_with_output().unwrap();
                assert_eq!(out.status.code(), Some(1), "{out:?}");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("--yes") && stderr.contains("nothing written"),
                    "{stderr}"
                );
                assert_eq!(std::fs::read(db.path("plan.json")).unwrap(), before);
                Ok(())
            },
        ),
        Trial::test("approve::no_anonymous_records", || {
            let db = store(None, "author@example.com");
            let nameless = |cmd: &mut assert_cmd::Command| {
                cmd.env_remove("USER")
                    .env_remove("LOGNAME")
                    .env_remove("SYNC_ACCESS_USER");
            };
            let mut cmd = db.cmd();
            nameless(&mut cmd);
            cmd.args(["approve", "--yes", "plan.json"])
                .assert()
                .code(1)
                .stderr(predicate::str::contains("--by NAME"));
            let mut cmd = db.cmd();
            nameless(&mut cmd);
            cmd.args(["plan", "--skip-conflicts", "-o", "other.json"])
                .assert()
                .code(1)
                .stderr(predicate::str::contains("--created-by NAME"));
            assert!(!db.path("other.json").exists());
            approve(&db, BOB, &[]);
            let before = db.dump();
            let mut cmd = db.cmd();
            nameless(&mut cmd);
            cmd.args(["apply", "plan.json"])
                .assert()
                .code(1)
                .stderr(predicate::str::contains("--applied-by NAME"));
            assert_eq!(db.dump(), before);
            // A key's comment is a name.
            let key = ssh_keygen(&db, "erin", "erin@example.com");
            let mut cmd = db.cmd();
            nameless(&mut cmd);
            cmd.args(["approve", "--yes", "--key", key.private(), "plan.json"])
                .assert()
                .success();
            assert_eq!(approvals(&db)[1]["by"], "erin@example.com");
            // Names that hide characters are refused.
            db.cmd()
                .args([
                    "approve",
                    "--yes",
                    "--by",
                    "bo\u{200B}b@example.com",
                    "plan.json",
                ])
                .assert()
                .code(1);
            Ok(())
        }),
        Trial::test("approve::eight_concurrent_approves_keep_eight", || {
            let db = store(None, "author@example.com");
            let children: Vec<_> = (0..8)
                .map(|i| {
                    raw_cmd(&db)
                        .args([
                            "approve",
                            "--yes",
                            "--by",
                            &format!("approver{i}@example.com"),
                        ])
                        .arg("plan.json")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                assert_eq!(out.status.code(), Some(0), "{out:?}");
            }
            let mut names: Vec<String> = approvals(&db)
                .iter()
                .map(|a| a["by"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            let expected: Vec<String> =
                (0..8).map(|i| format!("approver{i}@example.com")).collect();
            assert_eq!(names, expected);
            let leftovers: Vec<_> = std::fs::read_dir(db.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            Ok(())
        }),
        Trial::test(
            "approve::an_approval_landing_while_one_waits_for_the_lock_is_kept",
            || {
                let db = store(None, "author@example.com");
                // Another approval of the same plan, ready to land.
                std::fs::copy(db.path("plan.json"), db.path("other.json")).unwrap();
                raw_cmd(&db)
                    .args([
                        "approve",
                        "--yes",
                        "--by",
                        "first@example.com",
                        "other.json",
                    ])
                    .output()
                    .unwrap();
                let (waiting, held) = approve_waiting_for_the_lock(&db, "second@example.com");
                // It lands while the second approve waits: the file the
                // second one checked is gone.
                std::fs::rename(db.path("other.json"), db.path("plan.json")).unwrap();
                drop(held);
                let out = waiting.finish();
                assert_eq!(out.0, Some(0), "{}", out.1);
                let names: Vec<Value> = approvals(&db).iter().map(|a| a["by"].clone()).collect();
                assert_eq!(
                    names,
                    [json!("first@example.com"), json!("second@example.com")]
                );
                Ok(())
            },
        ),
        Trial::test(
            "approve::a_plan_edited_in_place_while_approve_waits_is_refused_and_left",
            || {
                let db = store(None, "author@example.com");
                let (waiting, held) = approve_waiting_for_the_lock(&db, "second@example.com");
                // Edited in place, the file the approve checked, to the
                // same length (only the bytes tell): they are not the ones
                // checked, and their digest is not theirs.
                let planned = std::fs::read_to_string(db.path("plan.json")).unwrap();
                let edited = planned.replacen("author@example.com", "auth0r@example.com", 1);
                assert_eq!((edited.len(), edited != planned), (planned.len(), true));
                std::fs::write(db.path("plan.json"), &edited).unwrap();
                drop(held);
                let (code, stderr) = waiting.finish();
                assert_eq!(code, Some(4), "{stderr}");
                assert!(stderr.contains("digest"), "{stderr}");
                assert_eq!(
                    std::fs::read_to_string(db.path("plan.json")).unwrap(),
                    edited
                );
                let leftovers = std::fs::read_dir(db.dir.path())
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .ends_with(".tmp")
                    })
                    .count();
                assert_eq!(leftovers, 0);
                Ok(())
            },
        ),
        Trial::test(
            "approve::a_planted_temporary_link_leaves_its_target_untouched",
            || {
                let db = store(None, "author@example.com");
                let victim = db.path("victim.txt");
                std::fs::write(&victim, "precious").unwrap();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                    // The names the earlier release used (.NAME.PID.tmp), for
                    // every PID the next processes are likely to get.
                    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    for pid in last..last + 400 {
                        for name in ["plan.json", "out.json"] {
                            let _ = std::os::unix::fs::symlink(
                                &victim,
                                db.path(&format!(".{name}.{pid}.tmp")),
                            );
                        }
                    }
                    approve(&db, BOB, &[]);
                    db.cmd()
                        .args(["plan", "--skip-conflicts", "-o", "out.json"])
                        .assert()
                        .success();
                    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
                    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
                    assert_eq!(mode, 0o600);
                    assert_eq!(approvals(&db).len(), 1);
                    assert_eq!(
                        read_json(&db.path("out.json"))["format"],
                        "sync-access/plan/v1"
                    );
                }
                Ok(())
            },
        ),
        Trial::test("approve::a_symlinked_plan_path_is_written_through", || {
            let db = store(None, "author@example.com");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::create_dir(db.path("plans")).unwrap();
                std::fs::rename(db.path("plan.json"), db.path("plans/real.json")).unwrap();
                std::fs::set_permissions(
                    db.path("plans/real.json"),
                    std::fs::Permissions::from_mode(0o640),
                )
                .unwrap();
                std::os::unix::fs::symlink("plans/real.json", db.path("plan.json")).unwrap();
                db.cmd()
                    .args(["approve", "--yes", "--by", BOB, "plan.json"])
                    .assert()
                    .success()
                    .stderr(predicate::str::contains(
                        "is a symbolic link: wrote its target",
                    ));
                let link = std::fs::symlink_metadata(db.path("plan.json")).unwrap();
                assert!(link.file_type().is_symlink(), "the link is still a link");
                let real = read_json(&db.path("plans/real.json"));
                assert_eq!(real["approvals"][0]["by"], BOB);
                let mode = std::fs::metadata(db.path("plans/real.json"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o640, "permissions kept");
                apply(&db, &[]).success();
            }
            Ok(())
        }),
        Trial::test("approve::a_read_only_plan_needs_force", || {
            let db = store(None, "author@example.com");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let path = db.path("plan.json");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
                let before = std::fs::read(&path).unwrap();
                db.cmd()
                    .args(["approve", "--yes", "--by", BOB, "plan.json"])
                    .assert()
                    .code(1)
                    .stderr(
                        predicate::str::contains("read-only")
                            .and(predicate::str::contains("--force")),
                    );
                db.cmd()
                    .args(["plan", "--skip-conflicts", "-o", "plan.json"])
                    .assert()
                    .code(1)
                    .stderr(predicate::str::contains("read-only"));
                assert_eq!(std::fs::read(&path).unwrap(), before);
                db.cmd()
                    .args(["approve", "--yes", "--force", "--by", BOB, "plan.json"])
                    .assert()
                    .success();
                assert_eq!(approvals(&db).len(), 1);
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o444, "still read-only");
            }
            Ok(())
        }),
        Trial::test(
            "keygen::writes_an_openssh_key_pair_in_a_private_folder",
            || {
                let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
                let out = db
                    .cmd()
                    .args(["keygen", "keys/ci-bot", "--comment", "ci-bot@example.com"])
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(0), "{out:?}");
                let line = String::from_utf8(out.stdout).unwrap();
                assert!(
                    line.starts_with("ci-bot@example.com ssh-ed25519 AAAA"),
                    "{line}"
                );
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = |p: &str| {
                        std::fs::metadata(db.path(p)).unwrap().permissions().mode() & 0o777
                    };
                    assert_eq!(mode("keys"), 0o700);
                    assert_eq!(mode("keys/ci-bot"), 0o600);
                }
                // ssh-keygen reads the private key and derives the same public key.
                let derived = Command::new("ssh-keygen")
                    .args(["-y", "-f"])
                    .arg(db.path("keys/ci-bot"))
                    .output()
                    .unwrap();
                assert!(derived.status.success(), "{derived:?}");
                let public = std::fs::read_to_string(db.path("keys/ci-bot.pub")).unwrap();
                let key_of = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                assert_eq!(
                    key_of(&String::from_utf8(derived.stdout).unwrap()),
                    key_of(&public)
                );
                db.cmd()
                    .args(["keygen", "keys/ci-bot"])
                    .assert()
                    .code(1)
                    .stderr(predicate::str::contains("already exists"));
                // The key signs plans and approvals that apply verifies.
                std::fs::write(db.path("allowed"), &line).unwrap();
                db.cmd()
                    .args([
                        "plan",
                        "--skip-conflicts",
                        "-o",
                        "plan.json",
                        "--key",
                        "keys/ci-bot",
                    ])
                    .assert()
                    .success();
                db.cmd()
                    .args(["approve", "--yes", "--key", "keys/ci-bot", "plan.json"])
                    .assert()
                    .success();
                assert_eq!(approvals(&db)[0]["by"], "tester@example.com");
                let sig = approvals(&db)[0]["signature"].as_str().unwrap().to_string();
                let message = message_of(&approvals(&db)[0]);
                let allowed = signers(
                    &db,
                    "allowed2",
                    &[line.replace("ci-bot@example.com", "tester@example.com")],
                );
                assert!(ssh_keygen_verifies(
                    &db,
                    "tester@example.com",
                    &allowed,
                    &sig,
                    &message
                ));
                Ok(())
            },
        ),
    ]
}

pub fn single_trials() -> Vec<Trial> {
    let mut trials = signature_round_trips();
    trials.extend(forgeries());
    trials.extend(four_eyes());
    trials.extend(names_and_writes());
    trials.extend(vec![
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
    ]);
    trials
}

/// An `approve --yes --by BY` of the store's plan.json that has checked the
/// plan and waits for the plan file's lock, which the test holds (the
/// second value: dropping it lets the approve go on).
fn approve_waiting_for_the_lock(db: &TestDb, by: &str) -> (Waiting, std::fs::File) {
    use std::io::BufRead;
    let held = std::fs::File::open(db.path("plan.json")).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mut child = raw_cmd(db)
        .args(["-v", "approve", "--yes", "--by", by, "plan.json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        said.push_str(&line);
        if line.contains("taking the plan file's lock") {
            break;
        }
        assert!(n > 0, "the approve ended before the lock: {said}");
    }
    (
        Waiting {
            child,
            stderr,
            said,
        },
        held,
    )
}

struct Waiting {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    said: String,
}

impl Waiting {
    /// Its exit code and all it said on stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        use std::io::Read;
        self.stderr.read_to_string(&mut self.said).unwrap();
        let status = self.child.wait().unwrap();
        (status.code(), self.said)
    }
}
