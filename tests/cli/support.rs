//! The test harness's tools: a fresh database per test on each backend, the
//! real binary to run against it, and raw access to check what it did.
//!
//! SQLite always runs. PostgreSQL and MariaDB/MySQL run when
//! `SYNC_ACCESS_TEST_POSTGRES` / `SYNC_ACCESS_TEST_MYSQL` hold an admin URL
//! (`.ci/run` sets both); otherwise their tests are reported as ignored, with
//! the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;
use serde_json::Value;
use sqlx::{Connection, Executor, Row};
use sync_access::store::{Access, Store, Table};
use sync_access::sync::Snapshot;

/// Fixed so that plans are reproducible byte for byte: 2026-11-27T12:00:00Z.
pub const SOURCE_DATE_EPOCH: &str = "1795780800";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    MySql,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Sqlite, Kind::Postgres, Kind::MySql];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::MySql => "mysql",
        }
    }

    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Kind::Sqlite => None,
            Kind::Postgres => Some("SYNC_ACCESS_TEST_POSTGRES"),
            Kind::MySql => Some("SYNC_ACCESS_TEST_MYSQL"),
        }
    }

    /// `Err(reason)` when this backend is not configured for this run.
    pub fn admin_url(self) -> Result<Option<String>, String> {
        match self.env_var() {
            None => Ok(None),
            Some(var) => match std::env::var(var) {
                Ok(url) if !url.is_empty() => Ok(Some(url)),
                _ => Err(format!("{var} is not set")),
            },
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database of its own for one test, dropped afterwards.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pub dir: tempfile::TempDir,
    admin: Option<(String, String)>,
}

pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..path_start])
}

impl TestDb {
    /// An empty database (no tables).
    pub fn empty(kind: Kind) -> TestDb {
        TestDb::empty_on(kind, kind.admin_url().expect("backend configured"))
    }

    /// An empty database on the server of `admin` (an admin URL; `None`:
    /// SQLite).
    pub fn empty_on(kind: Kind, admin: Option<String>) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("sa_test_{}_{n}", std::process::id());
        match admin {
            None => TestDb {
                kind,
                url: format!("sqlite:{}", dir.path().join("store.db").display()),
                dir,
                admin: None,
            },
            Some(admin) => {
                runtime().block_on(async {
                    let sql_drop = format!("DROP DATABASE IF EXISTS {name}");
                    let sql_create = format!("CREATE DATABASE {name}");
                    match kind {
                        Kind::Postgres => {
                            let mut c =
                                sqlx::PgConnection::connect(&admin)
                                    .await
                                    .unwrap_or_else(|e| {
                                        panic!("PostgreSQL at {admin} is unreachable: {e}")
                                    });
                            c.execute(sql_drop.as_str()).await.unwrap();
                            c.execute(sql_create.as_str()).await.unwrap();
                        }
                        Kind::MySql => {
                            let mut c = sqlx::MySqlConnection::connect(&admin)
                                .await
                                .unwrap_or_else(|e| panic!("MySQL at {admin} is unreachable: {e}"));
                            c.execute(sql_drop.as_str()).await.unwrap();
                            c.execute(
                                format!("{sql_create} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                                    .as_str(),
                            )
                            .await
                            .unwrap();
                        }
                        Kind::Sqlite => unreachable!(),
                    }
                });
                TestDb {
                    kind,
                    url: replace_database(&admin, &name),
                    dir,
                    admin: Some((admin, name)),
                }
            }
        }
    }

    /// A database holding the IAM tables and `rows`.
    pub fn with_rows(kind: Kind, rows: Snapshot) -> TestDb {
        let db = TestDb::empty(kind);
        db.load(rows);
        db
    }

    pub fn load(&self, rows: Snapshot) {
        let url = self.url.clone();
        runtime().block_on(async move {
            let target = sync_access::connect::Target::parse(&url).unwrap();
            let mut store =
                Store::connect(&target, Access::Create, std::time::Duration::from_secs(10))
                    .await
                    .unwrap();
            if store.check_schema().await.is_err() {
                store.create_iam_tables().await.unwrap();
            }
            sync_access::demo::load(&mut store, rows).await.unwrap();
        });
    }

    /// The real binary, pointed at this database, with a fixed clock and
    /// user, run in this test's own directory.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("sync-access").unwrap();
        cmd.env("DATABASE_URL", &self.url)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .env("SYNC_ACCESS_USER", "tester@example.com")
            .env_remove("RUST_LOG")
            // The developer's own agent and policy stay out of the tests.
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SYNC_ACCESS_POLICY")
            .current_dir(self.dir.path());
        cmd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs SQL on the database directly (drift, triggers, checks).
    pub fn exec(&self, sql: &str) {
        let url = self.url.clone();
        let sql = sql.to_string();
        runtime().block_on(async move {
            match self.kind {
                Kind::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    c.execute(sql.as_str()).await.unwrap();
                }
                Kind::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    c.execute(sql.as_str()).await.unwrap();
                }
                Kind::MySql => {
                    let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
                    c.execute(sql.as_str()).await.unwrap();
                }
            }
        });
    }

    /// Every row of the five IAM tables and the history table (when it
    /// exists), as (table, key) -> the document as JSON.
    pub fn dump(&self) -> BTreeMap<(String, String), Value> {
        let url = self.url.clone();
        let kind = self.kind;
        runtime().block_on(async move {
            let mut out = BTreeMap::new();
            for table in Table::ALL.iter().map(|t| t.name()) {
                let rows: Vec<(String, String)> = match kind {
                    Kind::Sqlite => {
                        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                        sqlx::query(&format!("SELECT \"key\", \"value\" FROM \"{table}\""))
                            .fetch_all(&mut c)
                            .await
                            .unwrap()
                            .iter()
                            .map(|r| (r.get(0), r.get(1)))
                            .collect()
                    }
                    Kind::Postgres => {
                        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                        sqlx::query(&format!(
                            "SELECT \"key\"::text, \"value\"::text FROM \"{table}\""
                        ))
                        .fetch_all(&mut c)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect()
                    }
                    Kind::MySql => {
                        let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
                        sqlx::query(&format!(
                            "SELECT CAST(`key` AS CHAR), CAST(`value` AS CHAR) FROM `{table}`"
                        ))
                        .fetch_all(&mut c)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect()
                    }
                };
                for (key, value) in rows {
                    out.insert(
                        (table.to_string(), key),
                        serde_json::from_str(&value).unwrap(),
                    );
                }
            }
            out
        })
    }

    /// The names of the tables of the test database.
    pub fn tables(&self) -> Vec<String> {
        let url = self.url.clone();
        let kind = self.kind;
        runtime().block_on(async move {
            let mut names: Vec<String> = match kind {
                Kind::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&mut c)
                        .await
                        .unwrap()
                }
                Kind::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                    )
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                }
                Kind::MySql => {
                    let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar(
                        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                         WHERE table_schema = DATABASE()",
                    )
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                }
            };
            names.sort();
            names
        })
    }

    /// The number of rows in `sync_access_history` (0 when it is absent).
    pub fn history_rows(&self) -> usize {
        let url = self.url.clone();
        runtime().block_on(async move {
            let target = sync_access::connect::Target::parse(&url).unwrap();
            let mut store = Store::connect(
                &target,
                Access::ReadOnly,
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
            store.history().await.unwrap().len()
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.admin.take() else {
            return;
        };
        let kind = self.kind;
        let _ = std::thread::spawn(move || {
            runtime().block_on(async move {
                let sql = match kind {
                    Kind::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                match kind {
                    Kind::Postgres => {
                        if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                            let _ = c.execute(sql.as_str()).await;
                        }
                    }
                    Kind::MySql => {
                        if let Ok(mut c) = sqlx::MySqlConnection::connect(&admin).await {
                            let _ = c.execute(sql.as_str()).await;
                        }
                    }
                    Kind::Sqlite => {}
                }
            })
        })
        .join();
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes `value` as the plan files are written.
pub fn write_json(path: &Path, value: &Value) {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap();
    bytes.push(b'\n');
    std::fs::write(path, bytes).unwrap();
}

/// Runs `plan -o plan.json` and returns the plan; asserts the exit code.
pub fn plan(db: &TestDb, args: &[&str], code: i32) -> Value {
    let out = db.path("plan.json");
    db.cmd()
        .arg("plan")
        .args(args)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(code);
    read_json(&out)
}

/// Plans, approves and returns the plan path.
pub fn approved_plan(db: &TestDb, args: &[&str]) -> PathBuf {
    plan(db, args, 0);
    let path = db.path("plan.json");
    db.cmd()
        .args(["approve", "--yes", "--by", "security@example.com"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// A scenario runs once per backend it applies to; on the others it is
/// reported as ignored, with the reason, decided before anything runs.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(Kind),
    /// `Err(why)` on a backend where the scenario means nothing.
    pub applies: fn(Kind) -> Result<(), &'static str>,
}

impl Scenario {
    /// A scenario for every backend.
    pub const fn new(name: &'static str, run: fn(Kind)) -> Scenario {
        Scenario {
            name,
            run,
            applies: |_| Ok(()),
        }
    }

    /// A scenario for the backends `applies` accepts.
    pub const fn only(
        name: &'static str,
        run: fn(Kind),
        applies: fn(Kind) -> Result<(), &'static str>,
    ) -> Scenario {
        Scenario { name, run, applies }
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Ran {
    /// `None`: killed by a signal (a stack overflow, say).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(cmd: &mut assert_cmd::Command) -> Ran {
        let out = cmd.output().unwrap();
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
