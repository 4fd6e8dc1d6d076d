//! Untrusted text through the real binary (issue 11, docs/untrusted-text.md):
//! what a plan file or the store says reaches stdout and stderr only
//! escaped, whatever command prints it (errors, logs, show, history,
//! verify); tenant ids follow Kestra's rule; a plan is read through its size
//! limit whatever the path is.

use std::io::Write;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::fixtures;
use crate::support::{read_json, write_json, Kind, Ran, Scenario, TestDb};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "hostile_text::plan_text_reaches_no_terminal_raw",
        plan_text_reaches_no_terminal_raw,
    ),
    Scenario::new(
        "hostile_text::tenant_ids_follow_kestras_rule",
        tenant_ids_follow_kestras_rule,
    ),
];

/// Checks that need no database server.
pub fn single_trials() -> Vec<Trial> {
    vec![
        Trial::test("hostile_text::a_device_is_read_through_the_cap", || {
            a_device_is_read_through_the_cap();
            Ok(())
        }),
        Trial::test(
            "hostile_text::fifos_and_stdin_are_read_through_the_cap",
            || {
                fifos_and_stdin_are_read_through_the_cap();
                Ok(())
            },
        ),
        Trial::test(
            "hostile_text::mutated_plans_never_crash_nor_print_raw",
            || {
                mutated_plans_never_crash_nor_print_raw();
                Ok(())
            },
        ),
    ]
}

/// The ESC-laden digest of the issue: retitles the terminal, rings, clears.
const PWNED: &str = "sha256:\u{1b}]0;PWNED\u{7}\u{1b}[2J";
/// The same as the gate writes it.
const PWNED_ESCAPED: &str = "sha256:\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J";

/// The characters that must never reach a terminal raw, whatever their
/// source: every control but the line break, bidirectional marks,
/// overrides and isolates, zero-width and other invisible characters.
fn raw_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{fe0f}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

impl Ran {
    /// Exited with `code`, without a panic, and printed nothing raw.
    fn expect_clean(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{what}: {:#?}", self.both());
        assert!(!self.stderr.contains("panicked"), "{what}: {}", self.stderr);
        self.clean(what)
    }

    fn clean(&self, what: &str) -> &Self {
        for (stream, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if let Some((at, c)) = text.char_indices().find(|(_, c)| raw_char(*c)) {
                let around: String = text[..at]
                    .chars()
                    .rev()
                    .take(80)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .chain(text[at..].chars().take(80))
                    .collect();
                panic!(
                    "{what}: {stream} holds a raw U+{:04X} at byte {at}: {around:?}",
                    c as u32
                );
            }
        }
        self
    }

    fn both(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }

    fn says(&self, what: &str, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "{what}: expected {needle:?} in\n{}",
            self.both()
        );
        self
    }
}

/// `plan` with its digest recomputed: an intact plan that says what it
/// says (approvals are outside the digest).
fn resealed(mut plan: Value) -> Value {
    let digest = sync_access::plan::digest_of(&plan);
    plan["digest"] = json!(digest);
    plan
}

/// Runs each command that reads a plan file on `file` and expects `code`
/// from each, nothing raw, and `needle` in what they print.
fn every_reader(db: &TestDb, file: &Path, code: i32, needle: &str) {
    let commands: [&[&str]; 4] = [
        &["show"],
        &["approve", "--yes", "--by", "reviewer@example.com"],
        &["apply"],
        &["verify"],
    ];
    for args in commands {
        let what = format!("{} {}", args[0], file.display());
        Ran::of(db.cmd().args(args).arg(file))
            .expect_clean(code, &what)
            .says(&what, needle);
    }
}

/// Every place a plan file's text was printed raw (issue 11), on every
/// backend: the refusals quote it escaped, and an intact plan holding
/// hostile text shows, applies, verifies and enters the history with it
/// escaped everywhere, logs included.
fn plan_text_reaches_no_terminal_raw(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let good = db.path("plan.json");
    Ran::of(db.cmd().args(["plan", "--skip-conflicts", "-o"]).arg(&good)).expect_clean(0, "plan");
    let plan = read_json(&good);

    // The digest of the issue, in "digest mismatch".
    let file = db.path("digest.json");
    let mut forged = plan.clone();
    forged["digest"] = json!(PWNED);
    write_json(&file, &forged);
    every_reader(&db, &file, 4, PWNED_ESCAPED);

    // The `format` field.
    let file = db.path("format.json");
    let mut forged = plan.clone();
    forged["format"] = json!("sync-access/plan/v1\u{1b}[2J\u{0}");
    write_json(&file, &forged);
    every_reader(
        &db,
        &file,
        4,
        "format `sync-access/plan/v1\\u{1b}[2J\\u{0}`",
    );

    // An unknown field's name, as serde quotes it.
    let file = db.path("field.json");
    let mut forged = plan.clone();
    forged["ev\u{1b}[2Jil\u{0}\u{202e}"] = json!(1);
    write_json(&file, &forged);
    every_reader(
        &db,
        &file,
        4,
        "unknown field `ev\\u{1b}[2Jil\\u{0}\\u{202e}`",
    );

    // A tenant that is no tenant id, sealed with its own digest.
    let file = db.path("tenant.json");
    let mut forged = plan.clone();
    forged["tenant"] = json!("defa\u{1b}[2Jult\u{200b}");
    write_json(&file, &resealed(forged));
    every_reader(&db, &file, 4, "`tenant` `defa\\u{1b}[2Jult\\u{200b}`");

    // An approval whose signature is garbage: apply's refusal names its
    // approver, escaped, on one line.
    let file = db.path("signature.json");
    let mut forged = plan.clone();
    forged["approvals"] = json!([{
        "by": "mal\u{1b}[2Jlory\nerror: forged line",
        "at": "2026-11-27T12:00:00Z",
        "digest": plan["digest"],
        "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----",
    }]);
    write_json(&file, &forged);
    let ran = Ran::of(db.cmd().arg("apply").arg(&file));
    ran.expect_clean(4, "apply, bad signature").says(
        "apply, bad signature",
        "`mal\\u{1b}[2Jlory\\u{a}error: forged line`",
    );
    assert!(
        !ran.stderr.lines().any(|l| l.starts_with("error: forged")),
        "a plan's line break started a line: {}",
        ran.stderr
    );
    Ran::of(db.cmd().arg("show").arg(&file)).expect_clean(0, "show, bad signature");

    // An intact plan whose texts are hostile: made by, the database it
    // names, and an unsigned approval with a hostile name and comment. It
    // is shown, applied, verified and recorded: escaped everywhere.
    let file = db.path("hostile.json");
    let mut hostile = plan.clone();
    hostile["created_by"] = json!("eve\u{1b}]0;PWNED\u{7}\u{feff}");
    hostile["source"]["database"] = json!(format!(
        "{}\u{1b}[2J\u{202e}",
        plan["source"]["database"].as_str().unwrap()
    ));
    let mut hostile = resealed(hostile);
    hostile["approvals"] = json!([{
        "by": "mal\u{1b}[2Jlory\u{200b}",
        "at": "2026-11-27T12:00:00Z",
        "digest": hostile["digest"],
        "comment": "ok\u{7}\u{202e}\u{0}",
    }]);
    write_json(&file, &hostile);
    for level in [&["-v"][..], &["-l", "trace"][..]] {
        Ran::of(db.cmd().args(level).arg("show").arg(&file))
            .expect_clean(0, "show -v")
            .says("show -v", "eve\\u{1b}]0;PWNED\\u{7}\\u{feff}")
            .says("show -v", "mal\\u{1b}[2Jlory\\u{200b}");
    }
    Ran::of(db.cmd().args(["show", "--format", "markdown"]).arg(&file))
        .expect_clean(0, "show markdown");
    Ran::of(db.cmd().args(["show", "--format", "json"]).arg(&file)).expect_clean(0, "show json");
    Ran::of(db.cmd().args(["-l", "trace", "apply"]).arg(&file))
        .expect_clean(0, "apply")
        .says("apply", "Applied plan");
    Ran::of(db.cmd().args(["-l", "trace", "verify"]).arg(&file)).expect_clean(0, "verify");
    Ran::of(db.cmd().args(["verify", "--format", "json"]).arg(&file))
        .expect_clean(0, "verify json");
    Ran::of(db.cmd().args(["-l", "trace", "history"]))
        .expect_clean(0, "history")
        .says("history", "mal\\u{1b}[2Jlory\\u{200b}");
    Ran::of(db.cmd().args(["history", "--format", "json"]))
        .expect_clean(0, "history json")
        .says("history json", "\\u001b");
    // Applied again: "already applied" quotes the history's record.
    Ran::of(db.cmd().arg("apply").arg(&file)).expect_clean(0, "apply again");

    // A file name is text too (a shared folder's): the warning logged for
    // a plan made elsewhere names it, and the identity the plan claims,
    // escaped by the log writer.
    let odd = db.path("odd\u{1b}[2J\u{202e}.json");
    let mut elsewhere = plan.clone();
    elsewhere["source"]["identity"] = json!("elsewhere\u{1b}]0;X\u{7}");
    write_json(&odd, &resealed(elsewhere));
    Ran::of(db.cmd().arg("verify").arg(&odd))
        .expect_clean(0, "verify, made elsewhere")
        .says("verify, made elsewhere", "made against another database")
        // tracing's formatter writes ESC in a message as `\x1b` before
        // the writer sees it; the rest is the writer's.
        .says("verify, made elsewhere", "[2J\\u{202e}.json")
        .says("verify, made elsewhere", "elsewhere\\u{1b}]0;X\\u{7}");
}

/// `plan --tenant` takes only the ids Kestra accepts; the refusal names
/// the flag and the rule and shows the id escaped, before anything is read.
fn tenant_ids_follow_kestras_rule(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    for bad in [
        "defa\u{200b}ult",
        "Default",
        "acme.prod",
        "-x",
        "t\u{1b}[2J",
    ] {
        let out = db.path("refused.json");
        let what = format!("plan --tenant {bad:?}");
        Ran::of(
            db.cmd()
                .args(["plan", "--create-tenant", &format!("--tenant={bad}"), "-o"])
                .arg(&out),
        )
        .expect_clean(1, &what)
        .says(&what, "--tenant `")
        .says(&what, "lowercase ASCII letters, digits, `-` and `_`");
        assert!(!out.exists(), "{what}: a plan was written");
    }
    Ran::of(
        db.cmd()
            .args(["plan", "--create-tenant", "--tenant", "defa\u{200b}ult"]),
    )
    .says("zero-width", "--tenant `defa\\u{200b}ult`");
    // An id of the rule's own alphabet is planned.
    let out = db.path("acme.json");
    Ran::of(
        db.cmd()
            .args([
                "plan",
                "--skip-conflicts",
                "--create-tenant",
                "--tenant",
                "acme-2_b",
                "-o",
            ])
            .arg(&out),
    )
    .expect_clean(0, "plan --tenant acme-2_b");
    assert_eq!(read_json(&out)["tenant"], "acme-2_b");
}

/// The binary, without a database: these commands fail before one is
/// needed.
fn bare() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sync-access").unwrap();
    cmd.env_remove("RUST_LOG")
        .env_remove("SYNC_ACCESS_MAX_PLAN_BYTES")
        .env("DATABASE_URL", "sqlite:/nonexistent/sync-access-test.db");
    cmd
}

/// `show /dev/zero` read until out of memory: now the first bytes show it
/// is no plan. (Not timed: a read of the whole limit would still end.)
fn a_device_is_read_through_the_cap() {
    for args in [&["show"][..], &["verify"][..], &["apply"][..]] {
        let what = format!("{} /dev/zero", args[0]);
        Ran::of(bare().args(args).arg("/dev/zero"))
            .expect_clean(4, &what)
            .says(&what, "/dev/zero: not a valid plan: not JSON");
    }
    // A regular file over the limit is refused before it is read, by
    // `show` and by `approve` and `apply`, which read a plan without
    // keeping its changes.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{{}}}", " ".repeat(5000))).unwrap();
    for args in [
        &["show"][..],
        &["approve", "--yes", "--by", "reviewer@example.com"][..],
        &["apply"][..],
    ] {
        let what = format!("{} big", args[0]);
        Ran::of(
            bare()
                .env("SYNC_ACCESS_MAX_PLAN_BYTES", "4096")
                .args(args)
                .arg(&big),
        )
        .expect_clean(4, &what)
        .says(&what, "5002 bytes is over the limit of 4096 bytes");
    }
}

/// A FIFO that never ends, and stdin, are read up to the limit and no
/// further.
fn fifos_and_stdin_are_read_through_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("plan.fifo");
    let made = StdCommand::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    // An endless plan: `{` then white space for ever, until the reader
    // closes the FIFO; `approve`, which checks a regular file from the
    // file, reads any other whole, through the same cap.
    for command in ["show", "approve"] {
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let _ = file.write_all(b"{");
                let spaces = [b' '; 8192];
                let mut written = 0u64;
                // Bounded: 64 MiB is far past the limit the reader is given.
                while written < 64 << 20 {
                    if file.write_all(&spaces).is_err() {
                        return written;
                    }
                    written += spaces.len() as u64;
                }
                written
            })
        };
        let what = format!("{command} FIFO");
        Ran::of(
            bare()
                .env("SYNC_ACCESS_MAX_PLAN_BYTES", "100000")
                .args(
                    [command, "--yes", "--by", "r@example.com"]
                        [..if command == "show" { 1 } else { 4 }]
                        .iter(),
                )
                .arg(&fifo),
        )
        .expect_clean(4, &what)
        .says(&what, "not a valid plan: over the limit of 100000 bytes");
        let written = writer.join().unwrap();
        assert!(
            (1 << 16..64 << 20).contains(&written),
            "the reader read the FIFO to its end, or not up to the limit ({written} bytes)"
        );
    }

    // stdin: `show -`.
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_sync-access"))
        .env_remove("RUST_LOG")
        .env("SYNC_ACCESS_MAX_PLAN_BYTES", "1000")
        .args(["show", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(format!("{{{}", " ".repeat(5000)).as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("stdin: not a valid plan: over the limit of 1000 bytes"),
        "{stderr}"
    );
}

/// A small sample of the unit-level property test, through the binary:
/// plans mutated at the JSON level (hostile strings in every string field,
/// huge numbers, deep nesting, duplicate members) never panic `show`,
/// `approve`, `apply` or `verify`, and nothing raw is printed.
fn mutated_plans_never_crash_nor_print_raw() {
    let golden: Value = serde_json::from_str(include_str!("../golden/rules-plan.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hostile = [
        "\u{1b}[2J\u{1b}]0;PWNED\u{7}",
        "a\u{0}b\u{7f}\u{9b}31m",
        "x\u{202e}y\u{2066}z\u{200b}\u{feff}\u{e0041}",
        "line\nbreak\r\nerror: forged",
    ];
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    let mut paths = Vec::new();
    string_paths(&golden, &mut Vec::new(), &mut paths);
    // A sample: every string would be some two thousand runs.
    let step = (paths.len() / 24).max(1);
    for (i, path) in paths.iter().step_by(step).enumerate() {
        let mut plan = golden.clone();
        *pointer(&mut plan, path) = json!(hostile[i % hostile.len()]);
        let bytes = serde_json::to_vec(&resealed(plan.clone())).unwrap();
        variants.push((format!("{path:?} resealed"), bytes));
        variants.push((format!("{path:?}"), serde_json::to_vec(&plan).unwrap()));
    }
    let text = serde_json::to_string(&golden).unwrap();
    // Huge numbers, deep nesting, a member given twice.
    variants.push((
        "huge number".into(),
        text.replacen("\"add_role\":", "\"add_role\":1e400,\"x\":", 1)
            .into_bytes(),
    ));
    variants.push((
        "deep nesting".into(),
        text.replacen(
            "\"context\":",
            &format!(
                "\"deep\":{}1{},\"context\":",
                "[".repeat(5000),
                "]".repeat(5000)
            ),
            1,
        )
        .into_bytes(),
    ));
    variants.push((
        "duplicate tenant".into(),
        text.replacen("\"tenant\":", "\"tenant\":\"o\\u001bther\",\"tenant\":", 1)
            .into_bytes(),
    ));
    for (what, bytes) in &variants {
        let file = dir.path().join("mutant.json");
        std::fs::write(&file, bytes).unwrap();
        for args in [
            &["show"][..],
            &["show", "--format", "markdown"][..],
            &["approve", "--yes", "--by", "reviewer@example.com"][..],
            &["apply"][..],
            &["verify"][..],
        ] {
            let ran = Ran::of(bare().args(args).arg(&file));
            let label = format!("{} on {what}", args.join(" "));
            assert!(ran.code.is_some(), "{label}: killed by a signal");
            assert!(
                (0..=6).contains(&ran.code.unwrap()),
                "{label}: {:?}",
                ran.code
            );
            assert!(!ran.stderr.contains("panicked"), "{label}: {}", ran.stderr);
            ran.clean(&label);
        }
    }
}

/// The paths (object keys and array indexes) of every string in `value`.
fn string_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::String(_) => out.push(at.clone()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i.to_string());
                string_paths(item, at, out);
                at.pop();
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                at.push(key.clone());
                string_paths(item, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn pointer<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    let pointer: String = path
        .iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect();
    value.pointer_mut(&pointer).unwrap()
}
