//! Crashes and concurrency (issue 6), through the real binary on every
//! backend: an apply killed in the middle of its writes, or whose connection
//! the server ends, leaves the database as it was and can simply be run
//! again; many applies at once are serialised by the lock, and each plan is
//! written exactly once.
//!
//! "In the middle of its writes" is a state the test waits for, never a
//! moment it guesses:
//! - PostgreSQL and MariaDB: a trigger makes the insert of one binding in the
//!   middle of the plan wait for a lock that the test holds (an advisory
//!   lock; `GET_LOCK`). The test sees the apply's session wait there, in
//!   `pg_stat_activity` or `information_schema.processlist`: its roles,
//!   groups and the bindings before that one are written in its transaction,
//!   the rest are not. A gate rather than `pg_sleep`/`SLEEP()`: a sleeping
//!   server session does not notice that its client died, a gate opens when
//!   the test says so.
//! - SQLite: the test holds a read transaction. In rollback-journal mode the
//!   apply can then change pages, but never commit: COMMIT (and spilling the
//!   page cache) needs the EXCLUSIVE lock, which waits for readers. On its
//!   way the apply takes the PENDING lock; once `/proc/locks` shows it, the
//!   apply is writing, and cannot have committed.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Executor};
use sync_access::store::{Access, Store};

use crate::fixtures;
use crate::support::{
    approved_plan, read_json, runtime, Kind, Scenario, TestDb, SOURCE_DATE_EPOCH,
};

pub const SCENARIOS: &[Scenario] = &[
    Scenario::only(
        "crash::sigkill_mid_revert_leaves_all_or_nothing",
        sigkill_mid_revert,
        |kind| match kind {
            Kind::Sqlite if cfg!(not(target_os = "linux")) => {
                Err("what shows that SQLite is mid-write is read from /proc/locks, on Linux only")
            }
            _ => Ok(()),
        },
    ),
    Scenario::only(
        "crash::sigkill_mid_write_leaves_nothing_and_apply_again_succeeds",
        sigkill_mid_write,
        |kind| match kind {
            Kind::Sqlite if cfg!(not(target_os = "linux")) => {
                Err("what shows that SQLite is mid-write is read from /proc/locks, on Linux only")
            }
            _ => Ok(()),
        },
    ),
    Scenario::only(
        "crash::sigterm_mid_write_rolls_back_and_exits_143",
        sigterm_mid_write,
        |kind| match kind {
            Kind::Sqlite if cfg!(not(target_os = "linux")) => {
                Err("what shows that SQLite is mid-write is read from /proc/locks, on Linux only")
            }
            _ => Ok(()),
        },
    ),
    Scenario::only(
        "crash::server_ends_the_connection_mid_write_exit_1_nothing_written",
        connection_ended_mid_write,
        |kind| match kind {
            Kind::Sqlite => Err(
                "SQLite has no server to end the connection (its crash is the SIGKILL scenario)",
            ),
            _ => Ok(()),
        },
    ),
    Scenario::new(
        "crash::a_reader_that_never_ends_cannot_hang_apply",
        endless_reader,
    ),
    Scenario::new(
        "crash::concurrent_applies_of_one_plan_write_it_once",
        one_plan_many_applies,
    ),
    Scenario::new(
        "crash::concurrent_applies_of_two_plans_write_each_once",
        two_plans_many_applies,
    ),
];

const APPROVER: &str = "security@example.com";
/// How long the test waits for anything before it gives up (a hang, a
/// deadlock): far beyond what a passing run needs.
const BOUND: Duration = Duration::from_secs(90);
/// The `--lock-timeout` of the applies run here: generous, so that being
/// locked out (exit 6) is rare, and shorter than [`BOUND`].
const LOCK_TIMEOUT: &str = "30";
/// Users of the synthetic store the crash tests apply: about 25,000 changes,
/// written by several statements on every backend.
const DEMO_USERS: &str = "2000";

/// The advisory lock key of src/store/postgres.rs ("syncacce").
const PG_LOCK_KEY: i64 = 0x7379_6e63_6163_6365;
/// The MariaDB lock name of src/store/mysql.rs.
const MY_LOCK_NAME: &str = "LEFT(CONCAT('sync-access:', DATABASE()), 64)";
/// The test's gate: an advisory lock key ("sagate") on PostgreSQL, where
/// advisory locks belong to one database; a lock name scoped by the database
/// on MariaDB, where they belong to the server.
const PG_GATE_KEY: i64 = 0x7361_6761_7465;
const MY_GATE_NAME: &str = "CONCAT('sa-test-gate:', DATABASE())";

// ---------------------------------------------------------------------------
// Processes

/// What one run of the binary said; `code` is `None` when it was killed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The end of what it said: enough to see why, never megabytes of driver log.
impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn tail(text: &str) -> &str {
            let mut start = text.len().saturating_sub(4000);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            &text[start..]
        }
        f.debug_struct("Ran")
            .field("code", &self.code)
            .field("stdout", &tail(&self.stdout))
            .field("stderr", &tail(&self.stderr))
            .finish()
    }
}

impl Ran {
    /// The lines a person reads: stderr without the `-vv --internal-log`
    /// lines some runs ask for.
    fn messages(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !is_log_line(l)).collect()
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "the binary panicked: {self:#?}"
        );
    }
}

/// A tracing line: `2026-11-27T20:55:09.009067Z DEBUG ...`.
fn is_log_line(line: &str) -> bool {
    let mut words = line.split(' ');
    let stamp = words.next().unwrap_or("");
    let level = words.next().unwrap_or("");
    stamp.len() > 20
        && stamp.ends_with('Z')
        && stamp.as_bytes()[4] == b'-'
        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level)
}

/// The binary running in the background, its output going to files (so that
/// it never blocks on a full pipe); killed and reaped if the test fails
/// before it ends.
struct Running {
    child: Option<Child>,
    label: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn spawn(db: &TestDb, url: &str, label: &str, args: &[&str]) -> Running {
        let stdout = db.path(&format!("{label}.stdout"));
        let stderr = db.path(&format!("{label}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_sync-access"))
            .env("DATABASE_URL", url)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .env("SYNC_ACCESS_USER", "tester@example.com")
            .env_remove("RUST_LOG")
            .current_dir(db.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Running {
            child: Some(child),
            label: label.to_string(),
            stdout,
            stderr,
        }
    }

    fn apply(db: &TestDb, url: &str, label: &str, plan: &Path, extra: &[&str]) -> Running {
        let plan = plan.to_str().unwrap();
        let mut args = extra.to_vec();
        args.extend(["apply", "--lock-timeout", LOCK_TIMEOUT, plan]);
        Running::spawn(db, url, label, &args)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("still owned").id()
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("still owned")
    }

    fn output(&self, status: Option<ExitStatus>) -> Ran {
        Ran {
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }

    fn stderr_so_far(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Panics, with what it said, if the process has already ended: the
    /// test was waiting for it to reach a state it never reached.
    fn assert_running(&mut self, waiting_for: &str) {
        if let Some(status) = self.child().try_wait().unwrap() {
            let ran = self.output(Some(status));
            self.child = None;
            panic!(
                "{} ended ({status}) before {waiting_for}: {ran:#?}",
                self.label
            );
        }
    }

    /// SIGKILL, then reaps it.
    fn kill(mut self) -> Ran {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "{} was killed", self.label);
        }
        self.output(Some(status))
    }

    /// Waits for it to end by itself, at most [`BOUND`].
    fn finish(mut self) -> Ran {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                self.child = None;
                return self.output(Some(status));
            }
            if Instant::now() > deadline {
                let ran = self.output(None);
                // Drop kills it.
                panic!(
                    "{} did not end within {BOUND:?} (a hang, a deadlock?): {ran:#?}",
                    self.label
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `probe` until it answers, at most [`BOUND`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {BOUND:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion.
fn run(db: &TestDb, args: &[&str]) -> Ran {
    let out = db.cmd().args(args).output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn expect_code(ran: &Ran, code: i32) {
    assert_eq!(ran.code, Some(code), "unexpected exit: {ran:#?}");
}

// ---------------------------------------------------------------------------
// The test's own sessions

enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

/// A connection of the test's own that lives across calls (to hold a lock,
/// a gate or a read transaction), with the runtime it belongs to.
struct Session {
    rt: tokio::runtime::Runtime,
    conn: Conn,
}

impl Session {
    fn open(kind: Kind, url: &str) -> Session {
        let rt = runtime();
        let conn = rt.block_on(async {
            match kind {
                Kind::Sqlite => Conn::Sqlite(SqliteConnection::connect(url).await.unwrap()),
                Kind::Postgres => Conn::Postgres(PgConnection::connect(url).await.unwrap()),
                Kind::MySql => Conn::MySql(MySqlConnection::connect(url).await.unwrap()),
            }
        });
        Session { rt, conn }
    }

    fn exec(&mut self, sql: &str) {
        let Session { rt, conn } = self;
        rt.block_on(async {
            match conn {
                Conn::Sqlite(c) => c.execute(sql).await.map(|_| ()),
                Conn::Postgres(c) => c.execute(sql).await.map(|_| ()),
                Conn::MySql(c) => c.execute(sql).await.map(|_| ()),
            }
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of every row, as integers.
    fn ints(&mut self, sql: &str) -> Vec<i64> {
        let Session { rt, conn } = self;
        rt.block_on(async {
            match conn {
                Conn::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(c).await,
                Conn::Postgres(c) => sqlx::query_scalar(sql).fetch_all(c).await,
                Conn::MySql(c) => sqlx::query_scalar(sql).fetch_all(c).await,
            }
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row, as text.
    fn strings(&mut self, sql: &str) -> Vec<String> {
        let Session { rt, conn } = self;
        rt.block_on(async {
            match conn {
                Conn::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(c).await,
                Conn::Postgres(c) => sqlx::query_scalar(sql).fetch_all(c).await,
                Conn::MySql(c) => sqlx::query_scalar(sql).fetch_all(c).await,
            }
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn int(&mut self, sql: &str) -> i64 {
        let all = self.ints(sql);
        assert_eq!(all.len(), 1, "{sql}: {all:?}");
        all[0]
    }

    fn close(self) {
        let Session { rt, conn } = self;
        rt.block_on(async {
            match conn {
                Conn::Sqlite(c) => c.close().await,
                Conn::Postgres(c) => c.close().await,
                Conn::MySql(c) => c.close().await,
            }
        })
        .unwrap();
    }
}

/// The applied plans' digests, as the history table lists them.
fn history_digests(db: &TestDb) -> Vec<String> {
    let url = db.url.clone();
    runtime().block_on(async move {
        let target = sync_access::connect::Target::parse(&url).unwrap();
        let mut store = Store::connect(&target, Access::ReadOnly, Duration::from_secs(10))
            .await
            .unwrap();
        store
            .history()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.digest)
            .collect()
    })
}

fn literal(text: &str) -> String {
    assert!(!text.contains('\\'));
    format!("'{}'", text.replace('\'', "''"))
}

// ---------------------------------------------------------------------------
// Crashes

/// A store of [`DEMO_USERS`] synthetic users and its approved plan.
struct Big {
    db: TestDb,
    path: PathBuf,
    /// How many changes the plan has.
    changes: usize,
    /// The roles and groups it adds: written before any binding.
    roles_and_groups: i64,
    /// The key of a binding in the middle of the plan's writes.
    middle: String,
}

fn big_approved_plan(kind: Kind) -> Big {
    let db = TestDb::empty(kind);
    let ran = run(&db, &["demo", "--users", DEMO_USERS]);
    expect_code(&ran, 0);
    let path = approved_plan(&db, &[]);
    let plan = read_json(&path);
    let changes = plan["changes"].as_array().unwrap();
    let bindings: Vec<&Value> = changes
        .iter()
        .filter(|c| c["op"] == "add_binding")
        .collect();
    assert!(bindings.len() > 10_000, "a big plan: {}", bindings.len());
    let middle = bindings[bindings.len() / 2]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let summary = &plan["summary"];
    let roles_and_groups =
        summary["add_role"].as_i64().unwrap() + summary["add_group"].as_i64().unwrap();
    assert!(roles_and_groups > 0 && summary["add_membership"].as_i64().unwrap() > 0);
    Big {
        changes: changes.len(),
        db,
        path,
        roles_and_groups,
        middle,
    }
}

/// The SQL of a trigger that makes the insert of the binding `key` wait for
/// the test's gate.
fn gate_trigger(kind: Kind, key: &str) -> Vec<String> {
    gate_trigger_on(kind, "INSERT", key)
}

/// The SQL of a trigger that makes the `event` (`INSERT`, `DELETE`) of the
/// binding `key` wait for the test's gate.
fn gate_trigger_on(kind: Kind, event: &str, key: &str) -> Vec<String> {
    let key = literal(key);
    // A BEFORE DELETE trigger returns the old row, or the delete is skipped.
    let row = if event == "DELETE" { "OLD" } else { "NEW" };
    match kind {
        Kind::Postgres => vec![
            format!(
                "CREATE FUNCTION sa_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 PERFORM pg_advisory_xact_lock({PG_GATE_KEY}); RETURN {row}; END $$"
            ),
            format!(
                "CREATE TRIGGER sa_gate BEFORE {event} ON bindings FOR EACH ROW \
                 WHEN ({row}.\"key\" = {key}) EXECUTE FUNCTION sa_gate()"
            ),
        ],
        Kind::MySql => vec![format!(
            "CREATE TRIGGER sa_gate BEFORE {event} ON bindings FOR EACH ROW BEGIN \
             IF {row}.`key` = {key} THEN DO GET_LOCK({MY_GATE_NAME}, 600); END IF; END"
        )],
        Kind::Sqlite => unreachable!("SQLite is held by a reader instead"),
    }
}

fn drop_gate_trigger(kind: Kind) -> Vec<String> {
    match kind {
        Kind::Postgres => vec![
            "DROP TRIGGER sa_gate ON bindings".into(),
            "DROP FUNCTION sa_gate()".into(),
        ],
        Kind::MySql => vec!["DROP TRIGGER sa_gate".into()],
        Kind::Sqlite => Vec::new(),
    }
}

/// What holds an apply in the middle of its writes.
struct Gate {
    kind: Kind,
    session: Session,
}

impl Gate {
    /// Closes the gate (before the apply starts).
    fn close(db: &TestDb) -> Gate {
        let mut session = Session::open(db.kind, &db.url);
        match db.kind {
            Kind::Postgres => session.exec(&format!("SELECT pg_advisory_lock({PG_GATE_KEY})")),
            Kind::MySql => {
                let got = session.int(&format!("SELECT GET_LOCK({MY_GATE_NAME}, 0)"));
                assert_eq!(got, 1, "the gate is free");
            }
            Kind::Sqlite => {
                // Only the rollback journal makes a reader block a commit.
                let mode: String = session.rt.block_on(async {
                    let Conn::Sqlite(c) = &mut session.conn else {
                        unreachable!()
                    };
                    sqlx::query_scalar("PRAGMA journal_mode")
                        .fetch_one(c)
                        .await
                        .unwrap()
                });
                assert_eq!(mode, "delete", "the store uses a rollback journal");
                session.exec("BEGIN");
                session.int("SELECT count(*) FROM tenants");
            }
        }
        Gate {
            kind: db.kind,
            session,
        }
    }

    /// Waits until `apply` is stopped at the gate, in the middle of its
    /// writes; returns its server session's id (0 for SQLite).
    fn wait_for_writer(&mut self, db: &TestDb, apply: &mut Running) -> i64 {
        let sql = match self.kind {
            Kind::Postgres => {
                "SELECT pid::bigint FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'sync-access' \
                 AND wait_event_type = 'Lock' AND wait_event = 'advisory' \
                 AND (query LIKE 'COPY \"bindings\"%' OR query LIKE 'DELETE FROM \"bindings\"%')"
            }
            Kind::MySql => {
                // INFO shows the trigger's statement, not the INSERT.
                "SELECT CAST(ID AS SIGNED) FROM information_schema.processlist \
                 WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND STATE = 'User lock' \
                 AND INFO LIKE '%sa-test-gate%'"
            }
            Kind::Sqlite => "",
        };
        wait_for("the apply to stop in the middle of its writes", || {
            apply.assert_running("it stopped in the middle of its writes");
            match self.kind {
                Kind::Sqlite => sqlite_writer_pending(db, apply.pid()).then_some(0),
                _ => {
                    let ids = self.session.ints(sql);
                    assert!(ids.len() <= 1, "one apply: {ids:?}");
                    ids.first().copied()
                }
            }
        })
    }

    /// Checks that the apply stopped at the gate has written, in its
    /// transaction, the roles, the groups and bindings, but no user yet.
    fn assert_mid_write(&mut self, big: &Big, id: i64) {
        match self.kind {
            Kind::Postgres => {
                // An insert or update holds ROW EXCLUSIVE on its table
                // until the end of the transaction.
                let written = self.session.strings(&format!(
                    "SELECT c.relname::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                     WHERE l.pid = {id} AND l.granted AND l.mode = 'RowExclusiveLock' \
                     AND c.relname IN ('tenants', 'users', 'groups', 'roles', 'bindings') \
                     ORDER BY 1"
                ));
                assert_eq!(written, ["bindings", "groups", "roles"]);
            }
            Kind::MySql => {
                let modified = self.session.int(&format!(
                    "SELECT CAST(trx_rows_modified AS SIGNED) FROM information_schema.innodb_trx \
                     WHERE trx_mysql_thread_id = {id}"
                ));
                assert!(
                    modified > big.roles_and_groups,
                    "{modified} row(s) written: the roles and groups, then bindings"
                );
            }
            Kind::Sqlite => {}
        }
    }

    /// Opens the gate: the server session, if it is still there, goes on.
    fn open(mut self) {
        match self.kind {
            Kind::Postgres => self
                .session
                .exec(&format!("SELECT pg_advisory_unlock({PG_GATE_KEY})")),
            Kind::MySql => self
                .session
                .exec(&format!("DO RELEASE_LOCK({MY_GATE_NAME})")),
            Kind::Sqlite => self.session.exec("ROLLBACK"),
        }
        self.session.close();
    }

    /// Waits until the server has ended session `id` (and so rolled back
    /// its transaction).
    fn wait_until_gone(session: &mut Session, kind: Kind, id: i64) {
        let sql = match kind {
            Kind::Postgres => format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {id}"),
            Kind::MySql => {
                format!("SELECT COUNT(*) FROM information_schema.processlist WHERE ID = {id}")
            }
            Kind::Sqlite => return,
        };
        wait_for("the server to end the apply's session", || {
            (session.int(&sql) == 0).then_some(())
        });
    }
}

/// Whether process `pid` holds the PENDING lock of the SQLite store: it is
/// on its way to the EXCLUSIVE lock, its writes under way. Read from
/// `/proc/locks`: POSIX locks never conflict within one process, so a probe
/// by the test, which holds the reader, would not see it.
#[cfg(target_os = "linux")]
fn sqlite_writer_pending(db: &TestDb, pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    /// SQLite's lock bytes: PENDING, then RESERVED, then the SHARED range.
    const PENDING_BYTE: &str = "1073741824";
    let inode = std::fs::metadata(db.path("store.db")).unwrap().ino();
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    locks.lines().any(|line| {
        // 2: POSIX  ADVISORY  WRITE 12277 fe:00:10010668 1073741824 1073741825
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 8
            && f[1] == "POSIX"
            && f[3] == "WRITE"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(inode.to_string().as_str())
            && f[6] == PENDING_BYTE
    })
}

/// `verify` finds every change of the big plan missing.
fn assert_missing_everything(big: &Big) {
    let ran = run(&big.db, &["verify", big.path.to_str().unwrap()]);
    expect_code(&ran, 5);
    let first = ran.stderr.lines().next().unwrap();
    let missing = format!("{0} of {0} change(s) are not in the database", big.changes);
    assert!(first.contains(&missing), "{first}");
}

#[cfg(not(target_os = "linux"))]
fn sqlite_writer_pending(_: &TestDb, _: u32) -> bool {
    unreachable!("the SQLite crash scenario runs on Linux only")
}

fn sigkill_mid_write(kind: Kind) {
    let big = big_approved_plan(kind);
    let (db, path) = (&big.db, &big.path);
    if kind != Kind::Sqlite {
        for sql in gate_trigger(kind, &big.middle) {
            db.exec(&sql);
        }
    }
    let before = db.dump();

    let mut gate = Gate::close(db);
    let mut apply = Running::apply(db, &db.url, "apply", path, &[]);
    let session = gate.wait_for_writer(db, &mut apply);
    gate.assert_mid_write(&big, session);
    if kind == Kind::Sqlite {
        // The journal that undoes its writes is there.
        assert!(db.path("store.db-journal").exists());
    } else {
        // Meanwhile, others see none of it.
        assert_missing_everything(&big);
    }
    let ran = apply.kill();
    assert_eq!(ran.stdout, "", "killed before it said anything: {ran:#?}");
    assert!(
        !ran.stderr.contains("error"),
        "killed before it said anything: {ran:#?}"
    );

    // The server notices the dead client once the gate opens, and rolls
    // its transaction back.
    let mut monitor = Session::open(kind, &db.url);
    gate.open();
    Gate::wait_until_gone(&mut monitor, kind, session);
    monitor.close();
    if kind == Kind::Sqlite {
        // The crash left its rollback journal behind, never synced (the
        // readers kept the apply from writing the file), so not hot: a
        // read-only command reads the database as it was. A hot one is
        // rolled back by the first read-only command
        // (`hostile_store_a_hot_journal_is_rolled_back_by_read_only_commands`).
        assert!(db.path("store.db-journal").exists());
        assert_missing_everything(&big);
    }

    assert_eq!(db.dump(), before, "a killed apply left changes behind");
    assert_eq!(db.history_rows(), 0, "a killed apply left a history row");
    for sql in drop_gate_trigger(kind) {
        db.exec(&sql);
    }

    // Applying again just works, and everything is there.
    let plan = path.to_str().unwrap();
    let ran = run(db, &["apply", "--lock-timeout", LOCK_TIMEOUT, plan]);
    expect_code(&ran, 0);
    assert!(ran.stdout.starts_with("Applied plan"), "{ran:#?}");
    assert_eq!(db.history_rows(), 1);
    expect_code(&run(db, &["verify", plan]), 0);
    if kind == Kind::Sqlite {
        assert!(!db.path("store.db-journal").exists(), "the journal is gone");
    }
}

/// A revert (docs/revert.md §4) killed in the middle of its deletes leaves
/// the database as the original apply left it, with its history; applied
/// again, it removes everything.
fn sigkill_mid_revert(kind: Kind) {
    let big = big_approved_plan(kind);
    let (db, plan) = (&big.db, big.path.to_str().unwrap());
    expect_code(&run(db, &["apply", plan]), 0);
    let revert = db.path("revert.json");
    let revert = revert.to_str().unwrap();
    expect_code(&run(db, &["plan", "--revert", plan, "-o", revert]), 0);
    let approve = ["approve", "--yes", "--by", "security@example.com", revert];
    expect_code(&run(db, &approve), 0);
    let removals = read_json(Path::new(revert))["changes"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(removals, big.changes, "the revert removes every change");
    if kind != Kind::Sqlite {
        for sql in gate_trigger_on(kind, "DELETE", &big.middle) {
            db.exec(&sql);
        }
    }
    let before = db.dump();

    let mut gate = Gate::close(db);
    let mut apply = Running::apply(db, &db.url, "revert", Path::new(revert), &[]);
    let session = gate.wait_for_writer(db, &mut apply);
    if kind == Kind::Sqlite {
        assert!(db.path("store.db-journal").exists());
    }
    let ran = apply.kill();
    assert_eq!(ran.stdout, "", "killed before it said anything: {ran:#?}");
    let mut monitor = Session::open(kind, &db.url);
    gate.open();
    Gate::wait_until_gone(&mut monitor, kind, session);
    monitor.close();

    assert_eq!(db.dump(), before, "a killed revert left changes behind");
    assert_eq!(
        history_digests(db).len(),
        1,
        "a killed revert left a history row"
    );
    expect_code(&run(db, &["verify", plan]), 0);
    for sql in drop_gate_trigger(kind) {
        db.exec(&sql);
    }

    // Applied again, the revert removes everything and is recorded.
    let ran = run(db, &["apply", "--lock-timeout", LOCK_TIMEOUT, revert]);
    expect_code(&ran, 0);
    assert!(ran.stdout.starts_with("Reverted plan"), "{ran:#?}");
    assert_eq!(history_digests(db).len(), 2);
    expect_code(&run(db, &["verify", revert]), 0);
    assert_missing_everything(&big);
}

/// A URL for `db` that carries a password, so that the test can check that
/// no message shows it; `None` when the server cannot be reached that way.
pub(crate) struct PasswordUrl {
    pub(crate) url: String,
    pub(crate) password: String,
    /// The MariaDB user made for the test, dropped afterwards.
    my_user: Option<(String, String)>,
}

const PASSWORD: &str = "Crash-Test-s3cret-pw";

impl PasswordUrl {
    /// `db`'s URL with a password that the server accepts, where it can
    /// have one.
    pub(crate) fn new(db: &TestDb) -> Option<PasswordUrl> {
        let (scheme, rest) = db.url.split_once("://")?;
        let (userinfo, host_and_path) = rest.split_once('@')?;
        if let Some((_, password)) = userinfo.split_once(':') {
            // The configured URL has a password already: watch for that one.
            return Some(PasswordUrl {
                url: db.url.clone(),
                password: password.to_string(),
                my_user: None,
            });
        }
        match db.kind {
            Kind::Postgres => {
                // Servers that trust local connections ignore a password;
                // use one only where it is accepted.
                let url = format!("{scheme}://{userinfo}:{PASSWORD}@{host_and_path}");
                let reachable = runtime().block_on(async {
                    match PgConnection::connect(&url).await {
                        Ok(c) => c.close().await.is_ok(),
                        Err(_) => false,
                    }
                });
                reachable.then(|| PasswordUrl {
                    url,
                    password: PASSWORD.into(),
                    my_user: None,
                })
            }
            Kind::MySql => {
                // A user of the test's own, with a password, for this
                // database only.
                let admin = Kind::MySql.admin_url().ok()??;
                let database = host_and_path.split('/').nth(1)?.split('?').next()?;
                let user = format!("{database}_user");
                let mut session = Session::open(Kind::MySql, &admin);
                session.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"));
                session.exec(&format!(
                    "CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'"
                ));
                session.exec(&format!(
                    "GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'"
                ));
                session.close();
                let host_and_path = host_and_path.to_string();
                Some(PasswordUrl {
                    url: format!("{scheme}://{user}:{PASSWORD}@{host_and_path}"),
                    password: PASSWORD.into(),
                    my_user: Some((admin, user)),
                })
            }
            Kind::Sqlite => None,
        }
    }
}

impl Drop for PasswordUrl {
    fn drop(&mut self) {
        if let Some((admin, user)) = self.my_user.take() {
            let _ = std::thread::spawn(move || {
                let mut session = Session::open(Kind::MySql, &admin);
                session.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"));
                session.close();
            })
            .join();
        }
    }
}

/// The server ends the apply's connection in the middle of its writes.
fn connection_ended_mid_write(kind: Kind) {
    let big = big_approved_plan(kind);
    let (db, path) = (&big.db, &big.path);
    for sql in gate_trigger(kind, &big.middle) {
        db.exec(&sql);
    }
    let before = db.dump();
    let with_password = PasswordUrl::new(db);
    let url = with_password.as_ref().map_or(db.url.as_str(), |p| &p.url);

    let mut gate = Gate::close(db);
    let mut apply = Running::apply(db, url, "apply", path, &[]);
    let session = gate.wait_for_writer(db, &mut apply);
    gate.assert_mid_write(&big, session);
    let mut admin = Session::open(kind, &db.url);
    match kind {
        Kind::Postgres => {
            let ended = admin.ints(&format!(
                "SELECT count(*) FROM (SELECT pg_terminate_backend({session})) AS t"
            ));
            assert_eq!(ended, vec![1]);
        }
        _ => admin.exec(&format!("KILL {session}")),
    }
    let ran = apply.finish();
    gate.open();
    Gate::wait_until_gone(&mut admin, kind, session);
    admin.close();

    // Exit 1, one clear line naming the plan, no panic, no password.
    ran.assert_no_panic();
    expect_code(&ran, 1);
    assert_eq!(ran.stdout, "", "{ran:#?}");
    let lines = ran.messages();
    assert_eq!(lines.len(), 1, "one line: {ran:#?}");
    let line = lines[0];
    assert!(
        line.starts_with("error: ") && line.contains("plan.json") && line.contains("not applied"),
        "{line}"
    );
    assert!(line.to_lowercase().contains("connection"), "{line}");
    match &with_password {
        Some(p) => assert!(
            !ran.stderr.contains(&p.password),
            "the password leaked: {line}"
        ),
        // A server that checks passwords, and a configured URL without one:
        // there is no password to leak.
        None => assert_eq!(
            kind,
            Kind::Postgres,
            "MariaDB always gets a user with a password"
        ),
    }

    assert_eq!(db.dump(), before, "an apply cut off mid-write left changes");
    assert_eq!(
        db.history_rows(),
        0,
        "an apply cut off mid-write left history"
    );
    for sql in drop_gate_trigger(kind) {
        db.exec(&sql);
    }
    let plan = path.to_str().unwrap();
    let ran = run(db, &["apply", "--lock-timeout", LOCK_TIMEOUT, plan]);
    expect_code(&ran, 0);
    assert_eq!(db.history_rows(), 1);
    expect_code(&run(db, &["verify", plan]), 0);
}

/// A session that reads the store in a transaction and never ends it (a
/// stuck report, a forgotten shell). On PostgreSQL and MariaDB readers do not
/// block writers: apply goes ahead. On SQLite, in rollback-journal mode, the
/// reader keeps the apply from ever writing its pages to the database file:
/// apply waits for it at most `--lock-timeout`, then exits 6, nothing
/// written. (Before, each spill of its page cache waited the whole lock
/// timeout again: the apply of a big plan hung for hours.)
fn endless_reader(kind: Kind) {
    let big = big_approved_plan(kind);
    let (db, path) = (&big.db, &big.path);
    let before = db.dump();
    let mut reader = Session::open(kind, &db.url);
    match kind {
        Kind::Sqlite => reader.exec("BEGIN"),
        Kind::Postgres => reader.exec("BEGIN ISOLATION LEVEL REPEATABLE READ"),
        Kind::MySql => reader.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT"),
    }
    let bindings = reader.int("SELECT count(*) FROM bindings");

    let plan = path.to_str().unwrap();
    let args = ["apply", "--lock-timeout", "1", plan];
    let ran = Running::spawn(db, &db.url, "apply", &args).finish();
    ran.assert_no_panic();
    if kind == Kind::Sqlite {
        expect_code(&ran, 6);
        assert_eq!(ran.stdout, "", "{ran:#?}");
        let lines = ran.messages();
        assert_eq!(lines.len(), 1, "one line: {ran:#?}");
        assert!(
            lines[0].contains("plan.json") && lines[0].contains("lock"),
            "{}",
            lines[0]
        );
        assert_eq!(db.dump(), before, "a refused apply left changes");
        assert_eq!(db.history_rows(), 0);
    } else {
        expect_code(&ran, 0);
        // The reader's snapshot is as it was.
        assert_eq!(reader.int("SELECT count(*) FROM bindings"), bindings);
    }
    reader.exec("ROLLBACK");
    reader.close();

    let ran = run(db, &["apply", "--lock-timeout", LOCK_TIMEOUT, plan]);
    expect_code(&ran, 0);
    expect_code(&run(db, &["verify", plan]), 0);
    assert_eq!(db.history_rows(), 1);
}

// ---------------------------------------------------------------------------
// Concurrency

/// Holds the apply lock, as another apply would, while the applies under
/// test start: released once every one of them is waiting for it, so that
/// they all contend for it at once.
struct LockHolder(Session);

impl LockHolder {
    fn take(db: &TestDb) -> LockHolder {
        let mut session = Session::open(db.kind, &db.url);
        match db.kind {
            Kind::Sqlite => session.exec("BEGIN IMMEDIATE"),
            Kind::Postgres => session.exec(&format!("SELECT pg_advisory_lock({PG_LOCK_KEY})")),
            Kind::MySql => {
                let got = session.int(&format!("SELECT GET_LOCK({MY_LOCK_NAME}, 0)"));
                assert_eq!(got, 1);
            }
        }
        LockHolder(session)
    }

    /// Waits until all of `applies` wait for the lock.
    fn wait_for_waiters(&mut self, kind: Kind, applies: &mut [Running]) {
        let n = applies.len();
        wait_for(&format!("{n} applies to wait for the lock"), || {
            for apply in applies.iter_mut() {
                apply.assert_running("it waited for the lock");
            }
            let waiting = match kind {
                Kind::Postgres => self.0.int(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND application_name = 'sync-access' \
                     AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                ) as usize,
                Kind::MySql => self.0.int(
                    "SELECT COUNT(*) FROM information_schema.processlist \
                     WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND STATE = 'User lock'",
                ) as usize,
                // Nothing outside the process shows a SQLite busy wait: its
                // log does. Its statement after `PRAGMA busy_timeout` is
                // `BEGIN IMMEDIATE`, which cannot pass while this is held.
                Kind::Sqlite => applies
                    .iter()
                    .filter(|a| {
                        a.stderr_so_far()
                            .contains(&format!("PRAGMA busy_timeout = {LOCK_TIMEOUT}000"))
                    })
                    .count(),
            };
            assert!(waiting <= n, "{waiting} waiters for {n} applies");
            (waiting == n).then_some(())
        });
    }

    fn release(self) {
        let LockHolder(mut session) = self;
        match session.conn {
            Conn::Sqlite(_) => session.exec("ROLLBACK"),
            Conn::Postgres(_) => session.exec(&format!("SELECT pg_advisory_unlock({PG_LOCK_KEY})")),
            Conn::MySql(_) => session.exec(&format!("DO RELEASE_LOCK({MY_LOCK_NAME})")),
        }
        session.close();
    }
}

/// One plan under test: its file and digest, and the tenant it is for.
struct Planned {
    path: PathBuf,
    digest: String,
    tenant: &'static str,
}

fn plan_file(db: &TestDb, name: &str, tenant: &'static str, args: &[&str]) -> Planned {
    let path = db.path(name);
    let out = path.to_str().unwrap();
    let mut plan_args = vec!["plan", "--tenant", tenant, "--skip-conflicts", "-o", out];
    plan_args.extend(args);
    expect_code(&run(db, &plan_args), 0);
    let approve = ["approve", "--yes", "--by", APPROVER, out];
    expect_code(&run(db, &approve), 0);
    Planned {
        digest: read_json(&path)["digest"].as_str().unwrap().to_string(),
        path,
        tenant,
    }
}

/// Starts `per_plan` applies of each plan at once, interleaved, all waiting
/// for the lock before any may take it; then checks that each plan was
/// written exactly once and every other apply said so or was locked out.
fn many_applies(db: &TestDb, plans: &[Planned], per_plan: usize) {
    let kind = db.kind;
    // SQLite's busy wait only shows in the driver's log.
    let extra: &[&str] = match kind {
        Kind::Sqlite => &["-vv", "--internal-log"],
        _ => &[],
    };
    let mut holder = LockHolder::take(db);
    // Interleaved: which plan each apply is of.
    let of: Vec<usize> = (0..per_plan).flat_map(|_| 0..plans.len()).collect();
    let mut running: Vec<Running> = of
        .iter()
        .enumerate()
        .map(|(i, &p)| Running::apply(db, &db.url, &format!("apply-{i}"), &plans[p].path, extra))
        .collect();
    holder.wait_for_waiters(kind, &mut running);
    holder.release();
    let ran: Vec<Ran> = running.into_iter().map(Running::finish).collect();

    let mut applied = vec![0; plans.len()];
    for (ran, &p) in ran.iter().zip(&of) {
        let plan = &plans[p];
        ran.assert_no_panic();
        match ran.code {
            Some(0) if ran.stdout.starts_with(&format!("Applied plan {}", plan.digest)) => {
                applied[p] += 1
            }
            Some(0) => assert!(
                ran.stdout.starts_with(&format!("Plan {}", plan.digest))
                    && ran.stdout.contains("already applied"),
                "exit 0 says it applied the plan or that it was already applied: {ran:#?}"
            ),
            Some(6) => {
                let lines = ran.messages();
                assert_eq!(lines.len(), 1, "{ran:#?}");
                assert!(
                    lines[0].contains(plan.path.file_name().unwrap().to_str().unwrap())
                        && lines[0].contains("lock"),
                    "{ran:#?}"
                );
            }
            _ => panic!("an apply that neither applied, found the plan applied, nor was locked out: {ran:#?}"),
        }
    }
    assert_eq!(
        applied,
        vec![1; plans.len()],
        "each plan is written by exactly one apply: {ran:#?}"
    );

    // The history holds each plan once.
    let mut digests = history_digests(db);
    digests.sort();
    let mut expected: Vec<String> = plans.iter().map(|p| p.digest.clone()).collect();
    expected.sort();
    assert_eq!(digests, expected);
    let unique: BTreeSet<&String> = digests.iter().collect();
    assert_eq!(unique.len(), plans.len());

    // Everything is there, and nothing is left to do.
    for plan in plans {
        expect_code(&run(db, &["verify", plan.path.to_str().unwrap()]), 0);
        let replanned = db.path(&format!("replanned-{}.json", plan.tenant));
        let again = [
            "plan",
            "--tenant",
            plan.tenant,
            "--skip-conflicts",
            "--detailed-exitcode",
            "-o",
            replanned.to_str().unwrap(),
        ];
        expect_code(&run(db, &again), 0);
    }
}

fn one_plan_many_applies(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    let plan = plan_file(&db, "plan.json", "default", &[]);
    many_applies(&db, &[plan], 6);
}

fn two_plans_many_applies(kind: Kind) {
    let db = TestDb::with_rows(kind, fixtures::rules());
    // Both planned before either is applied: the tenant `default`, and a
    // tenant `acme` that the second plan creates. They touch the same user
    // documents (memberships), in different tenants.
    let default = plan_file(&db, "default.json", "default", &[]);
    let acme = plan_file(&db, "acme.json", "acme", &["--create-tenant"]);
    many_applies(&db, &[default, acme], 6);
}

/// SIGTERM while an apply is held in the middle of its work: it says that
/// it rolled back and wrote nothing, exits 143, and nothing is written.
/// PostgreSQL and MariaDB hold it mid-write at the gate; SQLite holds it at
/// COMMIT, which waits for the test's reader and is never cut short: the
/// signal is answered once the COMMIT gives up (its lock timeout).
fn sigterm_mid_write(kind: Kind) {
    let big = big_approved_plan(kind);
    let (db, path) = (&big.db, &big.path);
    if kind != Kind::Sqlite {
        for sql in gate_trigger(kind, &big.middle) {
            db.exec(&sql);
        }
    }
    let before = db.dump();
    let mut gate = Gate::close(db);
    let timeout = if kind == Kind::Sqlite {
        "3"
    } else {
        LOCK_TIMEOUT
    };
    let plan = path.to_str().unwrap();
    let mut apply = Running::spawn(
        db,
        &db.url,
        "apply",
        &["apply", "--lock-timeout", timeout, plan],
    );
    let session = gate.wait_for_writer(db, &mut apply);
    let sent = Command::new("kill")
        .args(["-TERM", &apply.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let ran = apply.finish();
    ran.assert_no_panic();
    expect_code(&ran, 143);
    assert!(
        ran.stderr
            .contains("interrupted: rolled back, nothing written"),
        "{ran:#?}"
    );
    assert_eq!(ran.stdout, "", "{ran:#?}");
    let mut monitor = Session::open(kind, &db.url);
    gate.open();
    Gate::wait_until_gone(&mut monitor, kind, session);
    monitor.close();
    assert_eq!(
        db.dump(),
        before,
        "an interrupted apply left changes behind"
    );
    assert_eq!(db.history_rows(), 0);
    for sql in drop_gate_trigger(kind) {
        db.exec(&sql);
    }
    let ran = run(db, &["apply", "--lock-timeout", LOCK_TIMEOUT, plan]);
    expect_code(&ran, 0);
}
