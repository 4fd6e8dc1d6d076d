//! Hostile input through the real binary (issue 6): secrets that must never
//! leave the process, identifiers that must round-trip exactly on every
//! backend, and plan files that must never crash a command nor get applied
//! when they say something else than what was approved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libtest_mimic::Trial;
use serde_json::{json, Value};
use sync_access::sync::{RawDoc, Snapshot};

use crate::fixtures;
use crate::support::{approved_plan, read_json, write_json, Kind, Ran, Scenario, TestDb};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::new("hostile_secrets_never_reach_output_logs_or_files", secrets),
    Scenario::new(
        "hostile_identifiers_round_trip_through_plan_and_apply",
        injection,
    ),
];

/// Checks that need no database server.
pub fn single_trials() -> Vec<Trial> {
    vec![
        Trial::test("hostile::plan_file_mutants_never_crash_nor_apply", || {
            mutants();
            Ok(())
        }),
        Trial::test(
            "hostile::approvals_re_pointed_at_a_new_digest_need_signatures",
            || {
                forged_approvals();
                Ok(())
            },
        ),
        Trial::test(
            "hostile::a_password_planted_in_a_plan_is_not_repeated",
            || {
                planted_password();
                Ok(())
            },
        ),
        Trial::test(
            "hostile::deeply_nested_store_documents_are_skipped_not_a_crash",
            || {
                deeply_nested_documents();
                Ok(())
            },
        ),
    ]
}

impl Ran {
    /// Exited by itself with one of the codes of docs/exit-codes.md, without a panic.
    fn sane(&self, what: &str) -> i32 {
        let code = self
            .code
            .unwrap_or_else(|| panic!("{what}: killed by a signal: {}", self.stderr));
        assert!((0..=6).contains(&code), "{what}: exit {code}: {self:#?}");
        assert!(!self.stderr.contains("panicked"), "{what}: {}", self.stderr);
        code
    }

    fn expect(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.sane(what), code, "{what}: {self:#?}");
        self
    }
}

// ---------------------------------------------------------------------------
// Secrets

/// Fake secrets, each recognisable in any output.
const URL_PASSWORD: &str = "UrlPw-7f3a9c";
const WRONG_PASSWORD: &str = "WrongPw-c91e02";
const CONFIG_PASSWORD: &str = "CfgPw-5d2b77";
const ARGON_SALT: &str = "FAKESALT-b64x";
const ARGON_HASH: &str = "FAKEHASH2-argon-never-print";
const TOTP_SEED: &str = "FAKETOTP-seed-never-print";

/// The rules fixture (every user has `auths` with [`fixtures::SECRET_HASH`])
/// and users whose secrets sit where a careless reader would quote them.
fn secret_store() -> Snapshot {
    let mut rows = fixtures::rules();
    let auths = json!([
        {"type": "PASSWORD", "password": format!("$argon2id$v=19$m=65536,t=3,p=4${ARGON_SALT}${ARGON_HASH}")},
        {"type": "TOTP", "secret": TOTP_SEED},
    ]);
    let user = |value: Value| RawDoc::new(value["id"].as_str().unwrap(), value.to_string());
    rows.users.extend([
        // Gets a membership: apply rewrites this document.
        user(
            json!({"id": "mallory", "username": "mallory@example.com", "groups": ["data"],
            "auths": auths, "deleted": false}),
        ),
        // Malformed: skipped, with a reason that must not quote it.
        user(
            json!({"id": "broken", "username": "broken", "groups": 7, "auths": auths,
            "deleted": false}),
        ),
        // Secrets inside a groupList entry, and as a bare string.
        user(json!({"id": "odd", "username": "odd",
            "groupList": [{"groupId": "web", "membership": "MEMBER", "auths": auths}],
            "auths": TOTP_SEED, "deleted": false})),
    ]);
    rows
}

/// `scheme://user[:password]@host/rest` split into (scheme, user, password,
/// host and port, path and query).
fn url_parts(url: &str) -> (String, Option<String>, Option<String>, String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with ://");
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    let (user, password, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string()), host),
            None => (Some(userinfo.to_string()), None, host),
        },
        None => (None, None, authority),
    };
    (
        scheme.to_string(),
        user,
        password,
        host.to_string(),
        path.to_string(),
    )
}

fn default_user(kind: Kind) -> &'static str {
    match kind {
        Kind::MySql => "root",
        _ => "postgres",
    }
}

/// `url` with `password` as its password.
fn with_password(kind: Kind, url: &str, password: &str) -> String {
    let (scheme, user, _, host, path) = url_parts(url);
    let user = user.unwrap_or_else(|| default_user(kind).to_string());
    format!("{scheme}://{user}:{password}@{host}{path}")
}

/// `url` pointing at database `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, user, password, host, path) = url_parts(url);
    let query = path.find('?').map_or("", |q| &path[q..]);
    let userinfo = match (user, password) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (Some(u), None) => format!("{u}@"),
        _ => String::new(),
    };
    format!("{scheme}://{userinfo}{host}/{name}{query}")
}

/// A Kestra `config.yml` for the database of `url`, with `password`.
fn kestra_config(kind: Kind, url: &str, password: &str) -> String {
    let (_, user, _, host, path) = url_parts(url);
    let user = user.unwrap_or_else(|| default_user(kind).to_string());
    let database = path.split('?').next().unwrap();
    let jdbc = match kind {
        Kind::MySql => "mysql",
        _ => "postgresql",
    };
    format!(
        "datasources:\n  {name}:\n    url: jdbc:{jdbc}://{host}{database}\n    username: {user}\n    password: {password}\n",
        name = kind.name()
    )
}

/// Quotes an identifier for `kind`.
fn ident(kind: Kind, name: &str) -> String {
    match kind {
        Kind::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs the binary with `-vv --internal-log` in `work`, against `url`.
struct Runner<'a> {
    db: &'a TestDb,
    work: &'a Path,
    url: String,
    secrets: Vec<String>,
    runs: usize,
}

impl Runner<'_> {
    fn run(&mut self, args: &[&str]) -> Ran {
        self.run_with(args, &[])
    }

    fn run_with(&mut self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut cmd = self.db.cmd();
        cmd.current_dir(self.work)
            .env("DATABASE_URL", &self.url)
            // `--connect-timeout` before the command, where earlier versions put the
            // connection flags: accepted on every command, used by those
            // that connect.
            .args(["-vv", "--internal-log", "--connect-timeout", "5"])
            .args(args);
        if args.contains(&"-c") {
            // A config and DATABASE_URL together are refused (issue 9).
            cmd.env_remove("DATABASE_URL");
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let ran = Ran::of(&mut cmd);
        let what = args.join(" ");
        ran.sane(&what);
        self.check(&what, "stdout", &ran.stdout);
        self.check(&what, "stderr", &ran.stderr);
        // Every command logs something at -vv, so the check means something.
        assert!(!ran.stderr.trim().is_empty(), "{what}: nothing on stderr");
        self.runs += 1;
        ran
    }

    fn check(&self, what: &str, stream: &str, text: &str) {
        for secret in &self.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: `{secret}` leaked on {stream}:\n{text}"
            );
        }
    }
}

fn secrets(kind: Kind) {
    let db = TestDb::with_rows(kind, secret_store());
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let mut secrets: Vec<String> = [
        fixtures::SECRET_HASH,
        ARGON_SALT,
        ARGON_HASH,
        TOTP_SEED,
        URL_PASSWORD,
        WRONG_PASSWORD,
        CONFIG_PASSWORD,
    ]
    .map(String::from)
    .to_vec();
    // The store really holds them.
    let stored = serde_json::to_string(&db.dump().into_iter().collect::<Vec<_>>()).unwrap();
    for secret in [fixtures::SECRET_HASH, ARGON_HASH, TOTP_SEED] {
        assert!(stored.contains(secret), "the fixture holds {secret}");
    }

    // The URL that works carries a password: PostgreSQL's trust
    // authentication ignores ours; MariaDB's root has none to give.
    let admin_password = match kind {
        Kind::Sqlite => None,
        _ => url_parts(&db.url).2,
    };
    let url = match (kind, &admin_password) {
        (Kind::Postgres, None) => with_password(kind, &db.url, URL_PASSWORD),
        _ => db.url.clone(),
    };
    if let Some(password) = admin_password.filter(|p| p.len() >= 8) {
        // A real password: as secret as ours when it cannot be mistaken
        // for ordinary text.
        secrets.push(password);
    }
    let mut runner = Runner {
        db: &db,
        work,
        url,
        secrets,
        runs: 0,
    };

    // plan, to a file and to stdout, applyable and with conflicts.
    let ran = runner.run(&["plan", "--skip-conflicts", "-o", "plan.json"]);
    ran.expect(0, "plan");
    assert!(ran.stderr.contains("connecting"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("db.statement"),
        "--internal-log shows the driver's logs: {}",
        ran.stderr
    );
    let ran = runner.run(&["plan", "--skip-conflicts"]);
    ran.expect(0, "plan to stdout");
    let planned: Value = serde_json::from_str(&ran.stdout).expect("stdout is the plan");
    assert!(planned["summary"]["add_membership"].as_u64().unwrap() > 0);
    let malformed = planned["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["key"] == "broken" && s["reason"] == "malformed");
    assert!(
        malformed,
        "the malformed user is skipped: {}",
        planned["skipped"]
    );
    runner
        .run(&["plan", "-o", "conflicted.json"])
        .expect(3, "plan with conflicts");

    // show, in every format, with and without the access diffs.
    for file in ["plan.json", "conflicted.json"] {
        for format in ["table", "markdown", "json"] {
            for diff in [false, true] {
                let mut args = vec!["show", file, "--format", format];
                if diff {
                    args.push("--diff");
                }
                let ran = runner.run(&args);
                ran.expect(0, &args.join(" "));
                assert!(!ran.stdout.is_empty());
            }
        }
    }

    // keygen, approve (signed), verify before, a stale apply, apply,
    // verify after, apply again, history.
    let keys = db.path("keys");
    let key = keys.join("approver.key");
    let key_arg = key.to_str().unwrap();
    let ran = runner.run(&["keygen", key_arg, "--comment", "security@example.com"]);
    ran.expect(0, "keygen");
    let allowed = keys.join("allowed_signers");
    std::fs::write(&allowed, &ran.stdout).unwrap();
    let allowed = allowed.to_str().unwrap().to_string();
    // The private key's body (past the constant header and the public key)
    // must never be printed.
    let secret_key = std::fs::read_to_string(&key).unwrap();
    let body: Vec<&str> = secret_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(body.len() >= 4, "{}", body.len());
    for line in &body[2..body.len() - 1] {
        runner.secrets.push(line.to_string());
    }
    let public = format!("{key_arg}.pub");
    // A public key without an agent cannot sign: refused without quoting it.
    runner
        .run(&[
            "approve",
            "--yes",
            "--by",
            "x",
            "--key",
            &public,
            "plan.json",
        ])
        .expect(1, "approve with a public key and no agent");
    // A private key where allowed signers are expected: refused, unquoted.
    let ran = runner.run(&["apply", "plan.json", "--allowed-signers", key_arg]);
    assert_ne!(ran.code, Some(0), "{ran:?}");
    runner
        .run(&[
            "approve",
            "--yes",
            "--by",
            "security@example.com",
            "--key",
            key_arg,
            "plan.json",
        ])
        .expect(0, "approve");
    runner
        .run(&["verify", "plan.json"])
        .expect(5, "verify before");
    let groups = ident(kind, "groups");
    let (key_col, value_col) = (ident(kind, "key"), ident(kind, "value"));
    db.exec(&format!(
        "INSERT INTO {groups} ({key_col}, {value_col}) VALUES ('zz-drift', '{{\"id\":\"zz-drift\",\"name\":\"Drift\",\"deleted\":false}}')"
    ));
    let ran = runner.run(&["apply", "plan.json", "--allowed-signers", &allowed]);
    ran.expect(5, "stale apply");
    assert!(ran.stderr.contains("zz-drift"), "{}", ran.stderr);
    db.exec(&format!(
        "DELETE FROM {groups} WHERE {key_col} = 'zz-drift'"
    ));
    let ran = runner.run(&["apply", "plan.json", "--allowed-signers", &allowed]);
    ran.expect(0, "apply");
    assert!(ran.stderr.contains("db.statement"), "{}", ran.stderr);
    runner
        .run(&["verify", "plan.json"])
        .expect(0, "verify after");
    runner.run(&["apply", "plan.json"]).expect(0, "apply again");
    runner.run(&["history"]).expect(0, "history");
    // The rewritten users kept their secrets.
    let users = db.dump();
    let mallory = &users[&("users".to_string(), "mallory".to_string())];
    assert!(mallory.to_string().contains(ARGON_HASH) && mallory["groupList"].is_array());

    // Connections that fail, URLs that are wrong, with every command.
    let mut failing = vec![
        format!("oracle://kestra:{URL_PASSWORD}@db.example.com/kestra"),
        format!("postgres://kestra:{URL_PASSWORD}@127.0.0.1:1/kestra"),
        format!("mysql://kestra:{URL_PASSWORD}@127.0.0.1:1/kestra"),
        // Unencoded delimiters in the password make the URL malformed.
        format!("postgres://kestra:pa/ss{URL_PASSWORD}@127.0.0.1:1/kestra"),
        format!("mysql://kestra:pa#ss?{URL_PASSWORD}@127.0.0.1:1/kestra"),
        format!("postgres://kestra@127.0.0.1:1/kestra?password={URL_PASSWORD}"),
    ];
    match kind {
        Kind::Sqlite => failing.push(format!("sqlite:{}", work.join("missing.db").display())),
        Kind::Postgres => failing.push(with_password(
            kind,
            &with_database(&db.url, "sa_no_such_database"),
            URL_PASSWORD,
        )),
        Kind::MySql => failing.push(with_password(kind, &db.url, WRONG_PASSWORD)),
    }
    for url in &failing {
        for command in [
            &["plan"][..],
            &["verify", "plan.json"],
            &["apply", "plan.json"],
            &["history"],
        ] {
            let mut args = command.to_vec();
            args.extend(["--database-url", url.as_str()]);
            let ran = runner.run(&args);
            ran.expect(1, &format!("{command:?} against {url}"));
            assert!(ran.stderr.contains("error:"), "{}", ran.stderr);
        }
    }

    // A Kestra config with a wrong password, given as text and through an
    // environment placeholder. PostgreSQL's trust authentication lets it in.
    let (config_url, code) = match kind {
        Kind::Sqlite => ("postgres://kestra@127.0.0.1:1/kestra".to_string(), 1),
        Kind::Postgres if runner.url != db.url => (db.url.clone(), 0),
        _ => (db.url.clone(), 1),
    };
    let config_kind = if kind == Kind::Sqlite {
        Kind::Postgres
    } else {
        kind
    };
    let configs = db.path("configs");
    std::fs::create_dir_all(&configs).unwrap();
    for (name, password) in [
        ("literal.yml", CONFIG_PASSWORD.to_string()),
        ("placeholder.yml", "${SA_TEST_DB_PASSWORD}".to_string()),
    ] {
        let path = configs.join(name);
        std::fs::write(&path, kestra_config(config_kind, &config_url, &password)).unwrap();
        let path = path.to_str().unwrap();
        for command in [
            &["plan", "--skip-conflicts"][..],
            &["apply", "plan.json"],
            &["history"],
        ] {
            let mut args = command.to_vec();
            args.extend(["-c", path]);
            let ran = runner.run_with(&args, &[("SA_TEST_DB_PASSWORD", CONFIG_PASSWORD)]);
            // Where it connects, the plan was already applied.
            ran.expect(code, &format!("{args:?}"));
        }
    }

    // No file the tool wrote holds a secret.
    let written = files_under(work);
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["plan.json", "conflicted.json"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for path in &written {
        let bytes = std::fs::read(path).unwrap();
        runner.check(
            &path.display().to_string(),
            "disk",
            &String::from_utf8_lossy(&bytes),
        );
    }
    assert!(
        read_json(&work.join("plan.json"))["approvals"][0]["signature"].is_string(),
        "the approval is signed"
    );
    assert!(runner.runs > 40, "{} runs", runner.runs);
}

// ---------------------------------------------------------------------------
// Injection

/// Identifiers, names and namespaces that break naive quoting, escaping,
/// `LIKE` patterns, collations and terminals. None holds NUL (PostgreSQL's
/// `jsonb` refuses it); all stay well within the reference DDL's VARCHAR
/// limits once prefixed with a tenant.
const HOSTILE: &[&str] = &[
    "o'brien",
    "say \"hi\"",
    "back\\slash\\\\",
    "100%_off",
    "a_b",
    "a%b",
    "aXb",
    "ctl\u{1}\t\n\r\u{1f}\u{7f}",
    "café 日本 🚀",
    "cafe\u{301}",
    "'; DROP TABLE roles; --",
    "\"); DELETE FROM users; --",
    "`tick` $1 ? :name %s {}",
    "\\u0000 \\x00 \\' \\\"",
    "Admin",
    "admin",
    "\u{2028}\u{2029}\u{feff}\u{200b}",
    " padded",
    "/* */ OR 1=1",
    "esc\u{1b}[2J\u{1b}]0;pwned\u{7}",
];

fn hostile_store() -> Snapshot {
    let mut r = Snapshot::default();
    let n = HOSTILE.len();
    let doc = |value: Value| value.to_string();
    r.tenants.push(RawDoc::new(
        "default",
        doc(json!({"id": "default", "name": "Default", "deleted": false})),
    ));
    for (i, s) in HOSTILE.iter().enumerate() {
        let mut role = json!({
            "id": s, "name": format!("role {i} {s}"), "description": s,
            "permissions": {"FLOW": ["READ", s]},
            "deleted": false,
        });
        // Members named with the hostile text, which the tool copies.
        role["permissions"][*s] = json!(["READ"]);
        role[format!("x-{s}")] = json!(s);
        r.roles.push(RawDoc::new(*s, doc(role)));
        r.groups.push(RawDoc::new(
            *s,
            doc(
                json!({"id": s, "name": format!("group {i} {s}"), "description": s,
                "deleted": false}),
            ),
        ));
        r.users.push(RawDoc::new(
            *s,
            doc(json!({
                "id": s, "username": format!("user {i} {s}"), "email": s,
                "groups": [s],
                "groupList": [{"groupId": HOSTILE[(i + 1) % n], "membership": "OWNER"}],
                "auths": [{"type": "PASSWORD", "password": fixtures::SECRET_HASH}],
                "deleted": false,
            })),
        ));
        let user_binding = format!("u{i} {s}");
        r.bindings.push(RawDoc::new(
            user_binding.as_str(),
            doc(json!({"id": user_binding, "type": "USER", "externalId": s,
                "roleId": HOSTILE[(i + 2) % n], "namespaceId": format!("ns.{s}"),
                "deleted": false})),
        ));
        let group_binding = format!("g{i} {s}");
        r.bindings.push(RawDoc::new(
            group_binding.as_str(),
            doc(
                json!({"id": group_binding, "type": "GROUP", "externalId": s,
                "roleId": s, "deleted": false}),
            ),
        ));
    }
    r
}

/// The table a change writes.
fn table_of(op: &str) -> &'static str {
    match op {
        "create_tenant" => "tenants",
        "add_role" => "roles",
        "add_group" => "groups",
        "add_binding" => "bindings",
        "add_membership" => "users",
        other => panic!("unexpected op {other}"),
    }
}

/// Plans `args` into `file`, approves and applies it, and checks that the
/// database holds exactly the planned documents and nothing else changed.
fn round_trip(db: &TestDb, file: &str, tenant: &str, args: &[&str]) -> Value {
    let path = db.path(file);
    let ran = Ran::of(
        db.cmd()
            .arg("plan")
            .args(["--tenant", tenant])
            .args(args)
            .arg("-o")
            .arg(&path),
    );
    ran.expect(0, "plan");
    let plan = read_json(&path);
    assert_eq!(plan["tenant"], tenant);
    assert_eq!(plan["conflicts"], json!([]), "{:#}", plan["conflicts"]);
    assert_eq!(plan["skipped"], json!([]), "{:#}", plan["skipped"]);
    let n = HOSTILE.len() as u64;
    let summary = &plan["summary"];
    for (op, count) in [
        ("add_role", n),
        ("add_group", n),
        ("add_membership", 2 * n),
        ("add_binding", 2 * n),
    ] {
        assert_eq!(summary[op], count, "{op}: {summary}");
    }
    // Every identifier came back from the database byte for byte.
    let keys: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "add_role")
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = HOSTILE.iter().map(|s| format!("{tenant}_{s}")).collect();
    expected.sort();
    assert_eq!(keys, expected);

    // A reviewer can read it in every format, and no escape sequence
    // reaches the terminal.
    for format in ["table", "markdown", "json"] {
        let ran = Ran::of(
            db.cmd()
                .args(["show", "--diff", "--format", format])
                .arg(&path),
        );
        ran.expect(0, format);
        assert!(!ran.stdout.contains('\u{1b}'), "{format}: {}", ran.stdout);
    }
    // What verify lists as missing is escaped for a terminal.
    let ran = Ran::of(db.cmd().arg("verify").arg(&path));
    ran.expect(5, "verify before");
    assert!(ran.stderr.contains("missing: add_role"), "{}", ran.stderr);
    assert!(!ran.stderr.contains('\u{1b}'), "{}", ran.stderr);

    let before = db.dump();
    // approve refuses a name with control characters; a plan file edited
    // by hand may still hold one, and it is escaped wherever it is shown.
    let hostile_name = "o'brien \"sec\" 日本 \u{1b}[2J";
    let ran = Ran::of(
        db.cmd()
            .args(["approve", "--yes", "--by", hostile_name])
            .arg(&path),
    );
    ran.expect(1, "approve with an escape sequence in the name");
    assert!(!ran.stderr.contains('\u{1b}'), "{}", ran.stderr);
    let mut approved = read_json(&path);
    approved["approvals"] = json!([{"by": hostile_name, "at": "2026-11-27T12:00:00Z",
        "digest": approved["digest"]}]);
    write_json(&path, &approved);
    let ran = Ran::of(db.cmd().arg("apply").arg(&path));
    ran.expect(0, "apply");
    let after = db.dump();

    // The rows the plan writes hold exactly the planned documents.
    let mut expected = before.clone();
    for change in plan["changes"].as_array().unwrap() {
        let table = table_of(change["op"].as_str().unwrap()).to_string();
        let key = change["key"].as_str().unwrap().to_string();
        if table == "users" {
            let user = expected
                .get_mut(&(table, key.clone()))
                .unwrap_or_else(|| panic!("membership of a user not in the store: {key:?}"));
            let entry = json!({"tenantId": tenant, "groupId": change["group_id"],
                "membership": change["membership"]});
            match user.get_mut("groupList") {
                Some(Value::Array(list)) => list.push(entry),
                _ => user["groupList"] = json!([entry]),
            }
        } else {
            let old = expected.insert((table.clone(), key.clone()), change["value"].clone());
            assert!(old.is_none(), "{table} {key:?} was already there");
        }
    }
    for (row, value) in &after {
        assert_eq!(
            expected.get(row),
            Some(value),
            "{row:?}: not what was planned, or not planned at all"
        );
    }
    assert_eq!(
        after.len(),
        expected.len(),
        "rows went missing: {:?}",
        expected
            .keys()
            .filter(|k| !after.contains_key(*k))
            .collect::<Vec<_>>()
    );

    // verify agrees, and there is nothing left to do.
    Ran::of(db.cmd().arg("verify").arg(&path)).expect(0, "verify");
    let again = db.path("again.json");
    Ran::of(
        db.cmd()
            .args(["plan", "--detailed-exitcode", "--tenant", tenant, "-o"])
            .arg(&again),
    )
    .expect(0, "plan again");
    assert_eq!(read_json(&again)["changes"], json!([]));
    plan
}

fn injection(kind: Kind) {
    let db = TestDb::with_rows(kind, hostile_store());
    // The store holds every identifier exactly as written.
    let stored = db.dump();
    for s in HOSTILE {
        for table in ["roles", "groups", "users"] {
            let doc = &stored[&(table.to_string(), s.to_string())];
            assert_eq!(doc["id"], *s, "{table} {s:?}");
        }
    }
    let legacy = stored.clone();

    round_trip(&db, "plan.json", "default", &[]);

    // A tenant whose name is hostile too, created by the plan. Its id
    // follows Kestra's rule (docs/untrusted-text.md), so it can hold only
    // the rule's own specials: `-` and `_` (a LIKE wildcard).
    let tenant = "t-_0";
    let name = "Tenant 'x' \"y\" \\ % _ \u{7f} 日本";
    let plan = round_trip(
        &db,
        "tenant.json",
        tenant,
        &["--create-tenant", "--tenant-name", name],
    );
    assert_eq!(
        plan["changes"][0]["value"],
        json!({"id": tenant, "name": name, "deleted": false})
    );
    // Nothing of the first tenant moved, and the legacy rows are as they
    // were, but for the memberships appended to the users.
    Ran::of(
        db.cmd()
            .args(["plan", "--detailed-exitcode", "-o", "default-again.json"]),
    )
    .expect(0, "default again");
    let now = db.dump();
    for ((table, key), value) in &legacy {
        let current = &now[&(table.clone(), key.clone())];
        if table == "users" {
            let mut current = current.as_object().unwrap().clone();
            let mut old = value.as_object().unwrap().clone();
            let list = current.remove("groupList").unwrap();
            let old_list = old.remove("groupList").unwrap();
            assert_eq!(current, old, "user {key:?}");
            let list = list.as_array().unwrap();
            assert_eq!(&list[..1], old_list.as_array().unwrap().as_slice());
            assert_eq!(list.len(), 5, "user {key:?}: {list:?}");
        } else {
            assert_eq!(current, value, "{table} {key:?}");
        }
    }
    assert_eq!(db.history_rows(), 2);
    // The history repeats what plan files said: escaped for a terminal.
    let ran = Ran::of(db.cmd().arg("history"));
    ran.expect(0, "history");
    assert!(ran.stdout.contains("o'brien"), "{}", ran.stdout);
    assert!(!ran.stdout.contains('\u{1b}'), "{}", ran.stdout);
}

// ---------------------------------------------------------------------------
// Hostile plan files

/// The content a digest vouches for: everything but digest and approvals.
fn sealed(plan: &Value) -> Value {
    let mut map = plan.as_object().cloned().unwrap_or_default();
    map.remove("digest");
    map.remove("approvals");
    Value::Object(map)
}

/// `plan` with its digest recomputed and every approval re-pointed at it:
/// what someone editing a plan after its approval would forge.
pub(crate) fn resealed(mut plan: Value) -> Value {
    let digest = sync_access::plan::digest_of(&plan);
    plan["digest"] = json!(digest);
    if let Some(approvals) = plan["approvals"].as_array_mut() {
        for approval in approvals {
            approval["digest"] = json!(digest);
        }
    }
    plan
}

fn nested(depth: usize) -> Value {
    let mut v = json!("deep");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "n": v })
        };
    }
    v
}

/// `[[[ ... ]]]` as text, `depth` levels, without building a `Value` (whose
/// drop would recurse as deep).
fn nested_text(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A few dozen hostile variants of the approved plan `original` (its bytes
/// and its JSON), each named, each saying something else than what was
/// approved.
fn make_mutants(original: &[u8], plan: &Value) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let pretty = |v: &Value| {
        let mut bytes = serde_json::to_vec_pretty(v).unwrap();
        bytes.push(b'\n');
        bytes
    };
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = plan.clone();
        f(&mut v);
        v
    };

    // Bytes flipped before the approvals (which the digest does not cover).
    let approvals_at = original
        .windows(13)
        .position(|w| w == b"\"approvals\": ")
        .expect("approvals are written last");
    for (i, mask) in [0x01u8, 0x20, 0x80, 0xff, 0x0f]
        .iter()
        .cycle()
        .take(24)
        .enumerate()
    {
        let at = 1 + i * (approvals_at - 2) / 24 + i % 7;
        let mut bytes = original.to_vec();
        bytes[at] ^= mask;
        out.push((format!("byte {at} ^ {mask:#04x}"), bytes));
    }
    // Truncated.
    for len in [
        0,
        1,
        original.len() / 3,
        original.len() / 2,
        original.len() - 2,
    ] {
        out.push((
            format!("truncated to {len} bytes"),
            original[..len].to_vec(),
        ));
    }

    let changes = plan["changes"].as_array().unwrap().len();
    assert!(changes >= 4, "a plan with a few changes");
    let first_binding = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["op"] == "add_binding")
        .unwrap();
    let structural: Vec<(&str, Value)> = vec![
        (
            "duplicated change",
            edit(&|v| {
                let c = v["changes"][0].clone();
                v["changes"].as_array_mut().unwrap().insert(1, c);
            }),
        ),
        (
            "duplicated change, counted",
            edit(&|v| {
                let c = v["changes"][0].clone();
                v["changes"].as_array_mut().unwrap().insert(1, c);
                let n = v["summary"]["add_role"].as_u64().unwrap();
                v["summary"]["add_role"] = json!(n + 1);
            }),
        ),
        (
            "reordered changes",
            edit(&|v| v["changes"].as_array_mut().unwrap().reverse()),
        ),
        (
            "two changes swapped",
            edit(&|v| v["changes"].as_array_mut().unwrap().swap(0, 1)),
        ),
        (
            "a change dropped",
            edit(&|v| {
                v["changes"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "a change dropped, counted",
            edit(&|v| {
                let last = v["changes"].as_array_mut().unwrap().pop().unwrap();
                let op = last["op"].as_str().unwrap().to_string();
                let n = v["summary"][&op].as_u64().unwrap();
                v["summary"][&op] = json!(n - 1);
            }),
        ),
        (
            "huge string",
            edit(&|v| {
                v["changes"][first_binding]["value"]["namespaceId"] =
                    json!("company.".repeat(512 * 1024))
            }),
        ),
        (
            "huge author",
            edit(&|v| v["created_by"] = json!("mallory ".repeat(512 * 1024))),
        ),
        (
            "nested 126 levels in a document",
            edit(&|v| v["changes"][0]["value"]["extra"] = nested(126)),
        ),
        (
            "nested 127 levels in a document",
            edit(&|v| v["changes"][0]["value"]["extra"] = nested(127)),
        ),
        (
            "nested 3000 levels in a document",
            edit(&|v| v["changes"][0]["value"]["extra"] = json!("NESTED")),
        ),
        (
            "wrong type: applyable",
            edit(&|v| v["applyable"] = json!("true")),
        ),
        ("wrong type: changes", edit(&|v| v["changes"] = json!({}))),
        ("wrong type: summary", edit(&|v| v["summary"] = json!([]))),
        (
            "wrong type: count",
            edit(&|v| v["summary"]["add_role"] = json!(-1)),
        ),
        (
            "wrong type: huge count",
            edit(&|v| v["summary"]["add_role"] = json!(1e300)),
        ),
        ("wrong type: digest", edit(&|v| v["digest"] = json!(42))),
        ("wrong type: tenant", edit(&|v| v["tenant"] = json!(null))),
        (
            "wrong type: key",
            edit(&|v| v["changes"][0]["key"] = json!(["default_admin"])),
        ),
        (
            "wrong type: document",
            edit(&|v| v["changes"][0]["value"] = json!("{\"id\":\"admin\"}")),
        ),
        (
            "unknown op",
            edit(&|v| v["changes"][0]["op"] = json!("drop_table")),
        ),
        (
            "unknown membership",
            edit(&|v| {
                let i = v["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .position(|c| c["op"] == "add_membership")
                    .unwrap();
                v["changes"][i]["membership"] = json!("ADMIN");
            }),
        ),
        (
            "wrong type: approvals",
            edit(&|v| v["approvals"] = json!("yes")),
        ),
        ("unknown field", edit(&|v| v["execute"] = json!("rm -rf /"))),
        (
            "unknown field in a change",
            edit(&|v| v["changes"][0]["sql"] = json!("DROP TABLE roles")),
        ),
        (
            "unknown field in the source",
            edit(&|v| v["source"]["password"] = json!("x")),
        ),
        (
            "unknown field in an approval",
            edit(&|v| v["approvals"][0]["role"] = json!("admin")),
        ),
        (
            "a key that does not match its document",
            edit(&|v| v["changes"][0]["key"] = json!("default_zz-other")),
        ),
        (
            "a change moved into another tenant",
            edit(&|v| {
                v["changes"][0]["value"]["tenantId"] = json!("other");
                let id = v["changes"][0]["value"]["id"].as_str().unwrap().to_string();
                v["changes"][0]["key"] = json!(format!("other_{id}"));
            }),
        ),
        (
            "a document that grants more",
            edit(&|v| {
                v["changes"][0]["value"]["permissions"]["SECRET"] =
                    json!(["READ", "CREATE", "UPDATE", "DELETE"])
            }),
        ),
        (
            "a binding to another subject",
            edit(&|v| v["changes"][first_binding]["value"]["externalId"] = json!("mallory")),
        ),
        (
            "another format",
            edit(&|v| v["format"] = json!("sync-access/plan/v2")),
        ),
        (
            "applyable with conflicts",
            edit(&|v| {
                let finding = json!({"kind": "role", "key": "x", "reason": "conflict: x"});
                v["conflicts"] = json!([finding]);
                v["summary"]["conflicts"] = json!(1);
            }),
        ),
        ("not applyable", edit(&|v| v["applyable"] = json!(false))),
        (
            "the whole plan in another tenant",
            edit(&|v| {
                v["tenant"] = json!("other");
                for change in v["changes"].as_array_mut().unwrap() {
                    let key = change["key"]
                        .as_str()
                        .unwrap()
                        .replacen("default_", "other_", 1);
                    change["key"] = json!(key);
                    if change["value"].is_object() {
                        change["value"]["tenantId"] = json!("other");
                    }
                }
            }),
        ),
    ];
    for (name, value) in structural {
        let deep = name.contains("3000");
        let bytes = |v: &Value| {
            let bytes = pretty(v);
            if deep {
                // Spliced as text: a Value that deep could not be dropped.
                let text = String::from_utf8(bytes).unwrap();
                text.replacen("\"NESTED\"", &nested_text(3000), 1)
                    .into_bytes()
            } else {
                bytes
            }
        };
        out.push((format!("{name} (digest kept)"), bytes(&value)));
        if sealed(&value) == sealed(plan) {
            // The edit is to the digest or the approvals: resealing would
            // undo it.
            continue;
        }
        let forged = resealed(value.clone());
        out.push((format!("{name} (resealed)"), {
            let mut v = forged.clone();
            v["approvals"] = plan["approvals"].clone();
            bytes(&v)
        }));
        // An edit that leaves the changes as they were, with an unsigned
        // approval re-pointed at it, is a forgery that apply cannot tell
        // without allowed signers: `forged_approvals` covers it.
        if !name.starts_with("huge author") {
            out.push((
                format!("{name} (resealed, approval re-pointed)"),
                bytes(&forged),
            ));
        }
    }
    // Deep nesting where only the shape is read, and around the whole plan.
    let text = String::from_utf8(original.to_vec()).unwrap();
    for (name, spliced) in [
        (
            "nested 100000 levels in an unknown field",
            text.replacen('{', &format!("{{\"x\": {},", nested_text(100_000)), 1),
        ),
        (
            "nested 100000 levels as the comment",
            text.replacen(
                "\"by\":",
                &format!("\"comment\": {},\"by\":", nested_text(100_000)),
                1,
            ),
        ),
        (
            "the plan nested 100000 levels deep",
            format!("{}{text}{}", "[".repeat(100_000), "]".repeat(100_000)),
        ),
    ] {
        out.push((name.to_string(), spliced.into_bytes()));
    }
    // Approvals pointed elsewhere.
    out.push((
        "approval of another digest".into(),
        pretty(&edit(&|v| {
            v["approvals"][0]["digest"] = json!(format!("sha256:{}", "0".repeat(64)))
        })),
    ));
    out.push((
        "no approvals".into(),
        pretty(&edit(&|v| v["approvals"] = json!([]))),
    ));
    out.push((
        "a digest that is not hex".into(),
        pretty(&edit(&|v| {
            v["digest"] = json!("sha256:a日日日日日日");
            v["approvals"][0]["digest"] = json!("sha256:a日日日日日日");
        })),
    ));
    // No byte flip happened to leave the plan as it was.
    for (name, bytes) in out.iter().filter(|(name, _)| name.starts_with("byte")) {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            assert!(
                sealed(&v) != sealed(plan) || v["digest"] != plan["digest"],
                "{name} is no mutant"
            );
        }
    }
    out
}

fn mutants() {
    let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
    let path = approved_plan(&db, &["--skip-conflicts"]);
    let original = std::fs::read(&path).unwrap();
    let plan = read_json(&path);
    let before = db.dump();
    let mutants = make_mutants(&original, &plan);
    assert!(mutants.len() > 100, "{} mutants", mutants.len());
    let mut codes: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, (name, bytes)) in mutants.iter().enumerate() {
        let file = db.path(&format!("mutant-{i}.json"));
        std::fs::write(&file, bytes).unwrap();
        let run = |args: &[&str]| Ran::of(db.cmd().args(args).arg(&file));
        run(&["show"]).sane(&format!("show {name}"));
        let ran = run(&["apply"]);
        let code = ran.sane(&format!("apply {name}"));
        assert!(
            [3, 4, 5].contains(&code),
            "apply of `{name}` was not refused: {ran:#?}"
        );
        assert_eq!(ran.stdout, "", "{name}");
        *codes.entry(code).or_default() += 1;
        run(&["approve", "--yes", "--by", "x"]).sane(&format!("approve {name}"));
        assert_eq!(db.history_rows(), 0, "{name}");
    }
    assert_eq!(db.dump(), before, "a refused apply changed the database");
    // Each way of refusing was exercised: invalid or not approved (4),
    // stale (5), not applyable (3).
    assert!(codes.len() == 3, "{codes:?}");
    // The original was good all along.
    Ran::of(db.cmd().arg("apply").arg(&path)).expect(0, "the original");
}

/// Without allowed signers an approval is a claim, not a proof: anyone can
/// re-point it at an edited plan's new digest. What such a forgery gets is
/// bounded (apply writes only the changes the database needs for the plan's
/// tenant and options, re-derived under its lock); with `--allowed-signers`
/// it gets nothing, and a signed approval cannot be re-pointed at all.
fn forged_approvals() {
    let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
    let key = db.path("approver.key");
    let ran = Ran::of(
        db.cmd()
            .arg("keygen")
            .arg(&key)
            .args(["--comment", "security@example.com"]),
    );
    ran.expect(0, "keygen");
    let allowed = db.path("allowed_signers");
    std::fs::write(&allowed, &ran.stdout).unwrap();
    let path = db.path("plan.json");
    Ran::of(db.cmd().args(["plan", "--skip-conflicts", "-o"]).arg(&path)).expect(0, "plan");
    let plan = read_json(&path);
    let before = db.dump();

    // Unsigned, re-pointed after an edit that changes no change.
    let mut edited = plan.clone();
    edited["created_by"] = json!("mallory@example.com");
    edited["approvals"] = json!([{"by": "security@example.com", "at": "2026-11-27T12:00:00Z",
        "digest": "sha256:0"}]);
    let forged = db.path("forged.json");
    write_json(&forged, &resealed(edited.clone()));
    let ran = Ran::of(
        db.cmd()
            .arg("apply")
            .arg(&forged)
            .arg("--allowed-signers")
            .arg(&allowed),
    );
    ran.expect(4, "forged, with allowed signers");
    assert!(ran.stderr.contains("did not sign"), "{}", ran.stderr);

    // Signed, then re-pointed after the same edit: the signature no longer
    // verifies, with or without allowed signers.
    std::fs::copy(&path, db.path("signed.json")).unwrap();
    let signed = db.path("signed.json");
    Ran::of(
        db.cmd()
            .args(["approve", "--yes", "--by", "security@example.com", "--key"])
            .arg(&key)
            .arg(&signed),
    )
    .expect(0, "approve signed");
    let mut edited_signed = read_json(&signed);
    edited_signed["created_by"] = json!("mallory@example.com");
    write_json(&signed, &resealed(edited_signed));
    for with_signers in [true, false] {
        let mut cmd = db.cmd();
        cmd.arg("apply").arg(&signed);
        if with_signers {
            cmd.arg("--allowed-signers").arg(&allowed);
        }
        let ran = Ran::of(&mut cmd);
        ran.expect(4, "signed, re-pointed");
        assert!(ran.stderr.contains("bad signature"), "{}", ran.stderr);
    }
    assert_eq!(db.dump(), before);

    // Without allowed signers the unsigned forgery counts, and writes exactly
    // the changes of the plan that was approved: nothing more.
    Ran::of(db.cmd().arg("apply").arg(&forged)).expect(0, "forged, no allowed signers");
    let after = db.dump();
    let written: Vec<&(String, String)> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    let planned = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(written.iter().all(|(_, k)| planned.contains(k.as_str())));
    Ran::of(db.cmd().arg("verify").arg(&path)).expect(0, "the approved plan is what was applied");
}

/// Legacy documents nested deeper than serde_json reads (SQLite's
/// `json_valid` takes up to 1000 levels, PostgreSQL's `jsonb` more; MySQL
/// stops at 100): skipped as malformed, never copied. `plan` used to panic
/// copying them, and `show` and `verify` reading the copies back.
fn deeply_nested_documents() {
    let deep = |depth: usize| format!("{}0{}", "[".repeat(depth), "]".repeat(depth));
    let mut rows = Snapshot::default();
    rows.tenants.push(RawDoc::new(
        "default",
        r#"{"id":"default","name":"Default","deleted":false}"#,
    ));
    rows.groups.push(RawDoc::new(
        "flat",
        r#"{"id":"flat","name":"Flat","deleted":false}"#,
    ));
    rows.groups.push(RawDoc::new(
        "deep",
        format!(
            r#"{{"id":"deep","name":"Deep","deleted":false,"extra":{}}}"#,
            deep(127)
        ),
    ));
    rows.roles.push(RawDoc::new(
        "deep-role",
        format!(
            r#"{{"id":"deep-role","name":"Deep","permissions":{{"FLOW":["READ"]}},"x":{},"deleted":false}}"#,
            deep(500)
        ),
    ));
    rows.bindings.push(RawDoc::new(
        "deep-binding",
        format!(
            r#"{{"id":"deep-binding","type":"GROUP","externalId":"flat","roleId":"deep-role","x":{},"deleted":false}}"#,
            deep(999)
        ),
    ));
    let db = TestDb::with_rows(Kind::Sqlite, rows);
    let path = db.path("plan.json");
    Ran::of(db.cmd().args(["plan", "-o"]).arg(&path)).expect(0, "plan");
    let plan = read_json(&path);
    let skipped: Vec<(&str, &str)> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("deep-role", "malformed"),
            ("deep", "malformed"),
            ("deep-binding", "malformed")
        ],
        "{:#}",
        plan["skipped"]
    );
    assert_eq!(
        plan["changes"].as_array().unwrap().len(),
        1,
        "the flat group"
    );
    for args in [
        &["show", "--diff"][..],
        &["approve", "--yes", "--by", "x"],
        &["apply"],
        &["verify"],
    ] {
        Ran::of(db.cmd().args(args).arg(&path)).expect(0, &args.join(" "));
    }
}

/// The tool never writes a password into a plan, but a plan is untrusted
/// input: one whose `source` was edited to hold a URL with a password and
/// an escape sequence (and resealed) must not get either repeated on a
/// reviewer's screen or in logs.
fn planted_password() {
    const PLANTED: &str = "Planted-pw-41c7";
    let db = TestDb::with_rows(Kind::Sqlite, fixtures::rules());
    let path = db.path("plan.json");
    Ran::of(db.cmd().args(["plan", "--skip-conflicts", "-o"]).arg(&path)).expect(0, "plan");
    let mut plan = read_json(&path);
    plan["source"]["database"] = json!(format!("postgres://kestra:{PLANTED}@db/kestra\u{1b}[2J"));
    write_json(&path, &resealed(plan.clone()));
    let mut elsewhere = plan;
    elsewhere["source"]["identity"] = json!(format!("postgres://kestra:{PLANTED}@db/kestra"));
    let other = db.path("elsewhere.json");
    write_json(&other, &resealed(elsewhere));
    let runs: Vec<(Vec<&str>, &Path, i32)> = vec![
        (vec!["show"], &path, 0),
        (vec!["show", "--format", "markdown"], &path, 0),
        (vec!["show", "--format", "json"], &path, 0),
        (vec!["-vv", "verify"], &other, 5),
        (vec!["approve", "--yes", "--by", "x"], &path, 0),
        (vec!["-vv", "apply"], &path, 0),
    ];
    for (args, file, code) in runs {
        let ran = Ran::of(db.cmd().args(&args).arg(file));
        ran.expect(code, &args.join(" "));
        for bad in [PLANTED, "\u{1b}"] {
            assert!(
                !ran.stdout.contains(bad) && !ran.stderr.contains(bad),
                "{args:?}: {ran:#?}"
            );
        }
    }
}
