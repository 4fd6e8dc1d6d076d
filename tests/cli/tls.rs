//! Production connections (issue 9), through the real binary against real
//! servers with TLS that `.ci/tls-servers.sh` starts beside the machine's:
//! a PostgreSQL whose database `plain_only` accepts only plaintext and every
//! other only TLS, a MariaDB with TLS whose accounts are `REQUIRE SSL`, and
//! a MariaDB without TLS. Without its variables (plain `cargo test`), each
//! trial here is reported ignored, with the reason; `.ci/run` always sets
//! them. The last trials need no server at all.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::Value;
use sqlx::{Connection, Executor, Row};

use crate::support::{read_json, runtime, Kind, TestDb, SOURCE_DATE_EPOCH};

/// The servers and files `.ci/tls-servers.sh env` exports.
#[derive(Clone)]
pub struct Servers {
    ca: String,
    wrong_ca: String,
    client_cert: String,
    client_key: String,
    /// The password of the `kestra` accounts (scram on PostgreSQL,
    /// REQUIRE SSL on MariaDB).
    password: String,
    pg_admin: String,
    my_admin: String,
    my_plain_admin: String,
}

const VARS: [&str; 8] = [
    "SYNC_ACCESS_TEST_TLS_CA",
    "SYNC_ACCESS_TEST_TLS_WRONG_CA",
    "SYNC_ACCESS_TEST_TLS_CLIENT_CERT",
    "SYNC_ACCESS_TEST_TLS_CLIENT_KEY",
    "SYNC_ACCESS_TEST_TLS_PASSWORD",
    "SYNC_ACCESS_TEST_POSTGRES_TLS",
    "SYNC_ACCESS_TEST_MYSQL_TLS",
    "SYNC_ACCESS_TEST_MYSQL_PLAIN",
];

impl Servers {
    /// `Err(reason)` when `.ci/tls-servers.sh` did not run for this test run.
    pub fn from_env() -> Result<Servers, String> {
        let mut values = Vec::new();
        for var in VARS {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => values.push(v),
                _ => {
                    return Err(format!(
                        "{var} is not set (run `.ci/tls-servers.sh start` and `eval \"$(.ci/tls-servers.sh env)\"`)"
                    ))
                }
            }
        }
        let mut v = values.into_iter();
        let mut next = || v.next().unwrap();
        Ok(Servers {
            ca: next(),
            wrong_ca: next(),
            client_cert: next(),
            client_key: next(),
            password: next(),
            pg_admin: next(),
            my_admin: next(),
            my_plain_admin: next(),
        })
    }

    fn pg_port(&self) -> u16 {
        url::Url::parse(&self.pg_admin).unwrap().port().unwrap()
    }

    fn my_port(&self) -> u16 {
        url::Url::parse(&self.my_admin).unwrap().port().unwrap()
    }

    fn my_plain_port(&self) -> u16 {
        url::Url::parse(&self.my_plain_admin)
            .unwrap()
            .port()
            .unwrap()
    }

    /// A fresh database holding the demo store on the TLS PostgreSQL.
    fn pg_db(&self) -> TestDb {
        let db = TestDb::empty_on(Kind::Postgres, Some(self.pg_admin.clone()));
        db.load(sync_access::demo::small());
        db
    }

    fn my_db(&self) -> TestDb {
        let db = TestDb::empty_on(Kind::MySql, Some(self.my_admin.clone()));
        db.load(sync_access::demo::small());
        db
    }
}

fn db_name(db: &TestDb) -> String {
    url::Url::parse(&db.url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string()
}

/// The result of one run of the binary.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn expect(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{what}: {self:#?}");
        assert!(!self.stderr.contains("panicked"), "{what}: {self:#?}");
        self
    }

    fn says(&self, text: &str, what: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "{what}: no `{text}` in {self:#?}"
        );
        self
    }
}

/// The binary in `dir`, with none of the variables that name a database
/// from the test's own environment.
fn bin(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sync-access").unwrap();
    cmd.current_dir(dir)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("SYNC_ACCESS_USER", "tester@example.com")
        .env("HOME", dir)
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name == "DATABASE_URL"
            || name == "KESTRA_CONFIGURATION"
            || name == "KESTRA_REPOSITORY_TYPE"
            || name.starts_with("DATASOURCES_")
            || name.starts_with("PG")
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn run(cmd: &mut assert_cmd::Command) -> Ran {
    let out = cmd.output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `plan -o plan.json` against `url`.
fn plan_url(dir: &Path, url: &str, extra: &[&str]) -> Ran {
    run(bin(dir)
        .args(["plan", "-o", "plan.json", "--database-url", url])
        .args(extra))
}

/// `plan -o plan.json` with a Kestra config, given as a file (`-c`) and,
/// separately, in `KESTRA_CONFIGURATION`: both must end alike.
fn plan_config_both_ways(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> (Ran, Ran) {
    let file = dir.join("application.yml");
    std::fs::write(&file, yaml).unwrap();
    let mut by_file = bin(dir);
    by_file
        .args(["plan", "-o", "plan.json", "-c"])
        .arg(&file)
        .envs(env.iter().copied());
    let by_file = run(&mut by_file);
    let mut by_env = bin(dir);
    by_env
        .args(["plan", "-o", "plan.json"])
        .env("KESTRA_CONFIGURATION", yaml)
        .envs(env.iter().copied());
    let by_env = run(&mut by_env);
    (by_file, by_env)
}

fn yaml(name: &str, jdbc: &str, user: &str, password: &str) -> String {
    format!(
        "datasources:\n  {name}:\n    url: \"{jdbc}\"\n    username: {user}\n    password: \"{password}\"\n"
    )
}

/// Approves `dir/plan.json` as written.
fn approve(dir: &Path) {
    let ran = run(bin(dir).args([
        "approve",
        "--yes",
        "--by",
        "security@example.com",
        "plan.json",
    ]));
    ran.expect(0, "approve");
}

// ---------------------------------------------------------------------------
// Encryption, seen by the server

/// The tool's own session is looked at while it waits for the apply lock,
/// which the test holds: the server says whether it is encrypted.
fn postgres_sessions_are_encrypted(s: &Servers) {
    let db = s.pg_db();
    let name = db_name(&db);
    let url = format!(
        "postgres://kestra:{}@127.0.0.1:{}/{name}?sslmode=require&application_name=tls-probe-{name}",
        s.password,
        s.pg_port()
    );
    plan_url(db.dir.path(), &url, &[]).expect(0, "plan, sslmode=require");
    approve(db.dir.path());
    runtime().block_on(async {
        let mut admin = sqlx::PgConnection::connect(&s.pg_admin).await.unwrap();
        let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
        holder
            .execute("SELECT pg_advisory_lock(8320803159658423141)")
            .await
            .unwrap();
        let probe = format!("tls-probe-{name}");
        let dir = db.dir.path().to_path_buf();
        let url2 = url.clone();
        let handle = std::thread::spawn(move || {
            let out = bin(&dir)
                .args([
                    "apply",
                    "--lock-timeout",
                    "60",
                    "--database-url",
                    &url2,
                    "plan.json",
                ])
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        });
        let started = Instant::now();
        let mut row: Option<(bool, String, String)> = None;
        while started.elapsed() < Duration::from_secs(30) && row.is_none() {
            row = sqlx::query_as(
                "SELECT s.ssl, coalesce(s.version, ''), coalesce(s.cipher, '') FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            )
            .bind(&probe)
            .fetch_optional(&mut admin)
            .await
            .unwrap();
            if row.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        holder
            .execute("SELECT pg_advisory_unlock(8320803159658423141)")
            .await
            .unwrap();
        let (code, stderr) = handle.join().unwrap();
        let (ssl, version, cipher) = row.expect("the tool's session shows in pg_stat_activity");
        assert!(ssl, "pg_stat_ssl.ssl is false for the tool's session");
        assert!(
            version.starts_with("TLS") && !cipher.is_empty(),
            "{version} {cipher}"
        );
        assert_eq!(code, Some(0), "{stderr}");
    });
}

fn mysql_sessions_are_encrypted(s: &Servers) {
    let db = s.my_db();
    let name = db_name(&db);
    let url = format!(
        "mysql://kestra:{}@127.0.0.1:{}/{name}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        s.password,
        s.my_port(),
        s.ca
    );
    plan_url(db.dir.path(), &url, &[]).expect(0, "plan, VERIFY_IDENTITY");
    approve(db.dir.path());
    runtime().block_on(async {
        let mut admin = sqlx::MySqlConnection::connect(&s.my_admin).await.unwrap();
        let mut holder = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
        let lock = format!("sync-access:{name}");
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 10)")
            .bind(&lock)
            .fetch_one(&mut holder)
            .await
            .unwrap();
        assert_eq!(got, Some(1));
        let dir = db.dir.path().to_path_buf();
        let url2 = url.clone();
        let handle = std::thread::spawn(move || {
            let out = bin(&dir)
                .args([
                    "apply",
                    "--lock-timeout",
                    "60",
                    "--database-url",
                    &url2,
                    "plan.json",
                ])
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        });
        let started = Instant::now();
        let mut cipher: Option<String> = None;
        while started.elapsed() < Duration::from_secs(30) && cipher.is_none() {
            cipher = sqlx::query_scalar(
                "SELECT CAST(s.VARIABLE_VALUE AS CHAR) FROM performance_schema.status_by_thread s \
                 JOIN performance_schema.threads t USING (THREAD_ID) \
                 JOIN information_schema.PROCESSLIST p ON p.ID = t.PROCESSLIST_ID \
                 WHERE s.VARIABLE_NAME = 'Ssl_cipher' AND p.USER = 'kestra' AND p.DB = ?",
            )
            .bind(&name)
            .fetch_optional(&mut admin)
            .await
            .unwrap();
            if cipher.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let _: Option<i64> = sqlx::query_scalar("SELECT RELEASE_LOCK(?)")
            .bind(&lock)
            .fetch_one(&mut holder)
            .await
            .unwrap();
        let (code, stderr) = handle.join().unwrap();
        let cipher = cipher.expect("the tool's session shows in the processlist");
        assert!(
            !cipher.is_empty(),
            "Ssl_cipher is empty for the tool's session"
        );
        assert_eq!(code, Some(0), "{stderr}");
    });
}

// ---------------------------------------------------------------------------
// Certificates

fn postgres_certificates(s: &Servers) {
    let db = s.pg_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    let port = s.pg_port();
    let pw = &s.password;
    for host in ["127.0.0.1", "localhost"] {
        for mode in ["verify-full", "verify-ca"] {
            let url = format!(
                "postgres://kestra:{pw}@{host}:{port}/{name}?sslmode={mode}&sslrootcert={}",
                s.ca
            );
            plan_url(dir, &url, &[]).expect(0, &url);
            let url = format!(
                "postgres://kestra:{pw}@{host}:{port}/{name}?sslmode={mode}&sslrootcert={}",
                s.wrong_ca
            );
            plan_url(dir, &url, &[])
                .expect(1, &url)
                .says("UnknownIssuer", &url)
                .says("not signed by a CA trusted here", &url);
        }
    }
    // A client certificate: `certuser` logs in with nothing else.
    let url = format!(
        "postgres://certuser@127.0.0.1:{port}/{name}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        s.ca, s.client_cert, s.client_key
    );
    plan_url(dir, &url, &[]).expect(0, "client certificate");
    let url = format!(
        "postgres://certuser@127.0.0.1:{port}/{name}?sslmode=verify-full&sslrootcert={}",
        s.ca
    );
    plan_url(dir, &url, &[])
        .expect(1, "no client certificate")
        .says("certuser", "no client certificate");
    let url = format!(
        "postgres://certuser@127.0.0.1:{port}/{name}?sslmode=require&sslcert={}",
        s.client_cert
    );
    plan_url(dir, &url, &[])
        .expect(1, "a certificate without its key")
        .says("sslkey", "a certificate without its key");
    let url = format!("postgres://kestra:{pw}@127.0.0.1:{port}/{name}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    plan_url(dir, &url, &[])
        .expect(1, "a missing CA file")
        .says("/nonexistent/ca.pem", "a missing CA file");
}

fn mysql_certificates(s: &Servers) {
    let db = s.my_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    let port = s.my_port();
    let pw = &s.password;
    for host in ["127.0.0.1", "localhost"] {
        for mode in ["VERIFY_IDENTITY", "VERIFY_CA"] {
            let url = format!(
                "mysql://kestra:{pw}@{host}:{port}/{name}?ssl-mode={mode}&ssl-ca={}",
                s.ca
            );
            plan_url(dir, &url, &[]).expect(0, &url);
            let url = format!(
                "mysql://kestra:{pw}@{host}:{port}/{name}?ssl-mode={mode}&ssl-ca={}",
                s.wrong_ca
            );
            plan_url(dir, &url, &[])
                .expect(1, &url)
                .says("UnknownIssuer", &url);
        }
    }
    // The account is REQUIRE SSL: the server itself refuses plaintext.
    let url = format!("mysql://kestra:{pw}@127.0.0.1:{port}/{name}?ssl-mode=DISABLED");
    plan_url(dir, &url, &[]).expect(1, "DISABLED against REQUIRE SSL");
}

// ---------------------------------------------------------------------------
// Plaintext-only servers

fn postgres_plaintext_only_database(s: &Servers) {
    let dir = tempfile::tempdir().unwrap();
    let port = s.pg_port();
    let plain = format!("postgres://postgres@127.0.0.1:{port}/plain_only?sslmode=disable");
    // Only this trial uses `plain_only`: it holds the demo store.
    runtime().block_on(async {
        let target = sync_access::connect::Target::parse(&plain).unwrap();
        let mut store = sync_access::store::Store::connect(
            &target,
            sync_access::store::Access::Create,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        store.drop_all().await.unwrap();
        store.create_iam_tables().await.unwrap();
        sync_access::demo::load(&mut store, sync_access::demo::small())
            .await
            .unwrap();
    });
    let at = |mode: &str| format!("postgres://postgres@127.0.0.1:{port}/plain_only?sslmode={mode}");
    for mode in ["disable", "allow", "prefer"] {
        plan_url(dir.path(), &at(mode), &[]).expect(0, mode);
    }
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!("{}&sslrootcert={}", at(mode), s.ca);
        plan_url(dir.path(), &url, &[])
            .expect(1, mode)
            .says("pg_hba.conf rejects", mode);
    }
    // And the other way: TLS-only databases refuse disable, and allow
    // falls back to TLS.
    let db = s.pg_db();
    let name = db_name(&db);
    let at = |mode: &str| format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode={mode}");
    plan_url(dir.path(), &at("disable"), &[])
        .expect(1, "disable")
        .says("no encryption", "disable");
    plan_url(dir.path(), &at("allow"), &[]).expect(0, "allow");
}

fn mysql_tls_asked_of_a_plaintext_server(s: &Servers) {
    let db = TestDb::empty_on(Kind::MySql, Some(s.my_plain_admin.clone()));
    db.load(sync_access::demo::small());
    let name = db_name(&db);
    let port = s.my_plain_port();
    let at = |mode: &str| {
        format!(
            "mysql://kestra:{}@127.0.0.1:{port}/{name}?ssl-mode={mode}&ssl-ca={}",
            s.password, s.ca
        )
    };
    for mode in ["DISABLED", "PREFERRED"] {
        plan_url(db.dir.path(), &at(mode), &[]).expect(0, mode);
    }
    for mode in ["REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"] {
        plan_url(db.dir.path(), &at(mode), &[])
            .expect(1, mode)
            .says("does not offer TLS", mode);
    }
}

// ---------------------------------------------------------------------------
// Kestra configurations: every TLS spelling, from a file and from
// KESTRA_CONFIGURATION

fn postgres_jdbc_spellings(s: &Servers) {
    let db = s.pg_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    let base = format!("jdbc:postgresql://127.0.0.1:{}/{name}", s.pg_port());
    // (query, works, with the wrong CA instead: works)
    let cases: Vec<(String, bool, Option<bool>)> = vec![
        ("?sslmode=require".into(), true, None),
        ("?ssl=true&sslrootcert={CA}".into(), true, Some(false)),
        ("?ssl&sslrootcert={CA}".into(), true, Some(false)),
        (
            "?sslMode=verify-full&sslrootcert={CA}".into(),
            true,
            Some(false),
        ),
        (
            "?sslmode=verify-ca&sslrootcert={CA}".into(),
            true,
            Some(false),
        ),
        (
            "?ssl=true&sslfactory=org.postgresql.ssl.NonValidatingFactory".into(),
            true,
            None,
        ),
        // The server refuses plaintext: proof that disable is honoured.
        ("?sslmode=disable".into(), false, None),
    ];
    for (query, works, wrong) in cases {
        for (ca, expected) in [(&s.ca, Some(works)), (&s.wrong_ca, wrong)] {
            let Some(expected) = expected else { continue };
            let url = format!("{base}{}", query.replace("{CA}", ca));
            let (by_file, by_env) =
                plan_config_both_ways(dir, &yaml("postgres", &url, "kestra", &s.password), &[]);
            let code = if expected { 0 } else { 1 };
            by_file.expect(code, &format!("-c: {url}"));
            by_env.expect(code, &format!("KESTRA_CONFIGURATION: {url}"));
            by_file
                .says("-c ", &url)
                .says("datasource `postgres`", &url);
            by_env.says("KESTRA_CONFIGURATION", &url);
        }
    }
    // Schema and properties from the datasource's own settings.
    let with_props = format!(
        "datasources:\n  postgres:\n    url: {base}\n    driver-class-name: org.postgresql.Driver\n    username: kestra\n    password: \"{}\"\n    maximum-pool-size: 5\n    data-source-properties:\n      sslmode: verify-full\n      sslrootcert: {}\n",
        s.password, s.wrong_ca
    );
    let (by_file, by_env) = plan_config_both_ways(dir, &with_props, &[]);
    by_file.expect(1, "data-source-properties with the wrong CA");
    by_env.expect(1, "data-source-properties with the wrong CA");
}

fn mysql_jdbc_spellings(s: &Servers) {
    let db = s.my_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    let port = s.my_port();
    let cases: Vec<(&str, &str, bool, Option<bool>)> = vec![
        ("mysql", "?useSSL=true&requireSSL=true", true, None),
        ("mysql", "?useSSL=true", true, None),
        ("mysql", "?sslMode=REQUIRED", true, None),
        (
            "mysql",
            "?sslMode=VERIFY_CA&serverSslCert={CA}",
            true,
            Some(false),
        ),
        (
            "mysql",
            "?sslMode=VERIFY_IDENTITY&serverSslCert={CA}",
            true,
            Some(false),
        ),
        (
            "mysql",
            "?useSSL=true&verifyServerCertificate=true&serverSslCert={CA}",
            true,
            Some(false),
        ),
        (
            "mariadb",
            "?useSSL=true&serverSslCert={CA}",
            true,
            Some(false),
        ),
        (
            "mariadb",
            "?useSSL=true&trustServerCertificate=true",
            true,
            None,
        ),
        (
            "mariadb",
            "?useSSL=true&disableSslHostnameVerification=true&serverSslCert={CA}",
            true,
            Some(false),
        ),
        (
            "mariadb",
            "?sslMode=verify-full&serverSslCert={CA}",
            true,
            Some(false),
        ),
        ("mariadb", "?sslMode=trust", true, None),
        // REQUIRE SSL refuses plaintext: proof that these are honoured.
        ("mysql", "?useSSL=false", false, None),
        ("mariadb", "?sslMode=disable", false, None),
    ];
    for (scheme, query, works, wrong) in cases {
        for (ca, expected) in [(&s.ca, Some(works)), (&s.wrong_ca, wrong)] {
            let Some(expected) = expected else { continue };
            let url = format!(
                "jdbc:{scheme}://127.0.0.1:{port}/{name}{}",
                query.replace("{CA}", ca)
            );
            let (by_file, by_env) =
                plan_config_both_ways(dir, &yaml("mysql", &url, "kestra", &s.password), &[]);
            let code = if expected { 0 } else { 1 };
            by_file.expect(code, &format!("-c: {url}"));
            by_env.expect(code, &format!("KESTRA_CONFIGURATION: {url}"));
        }
    }
    let url = format!("jdbc:mysql://127.0.0.1:{port}/{name}?useSSL=true&trustCertificateKeyStoreUrl=file:/etc/ks.jks");
    let (by_file, _) = plan_config_both_ways(dir, &yaml("mysql", &url, "kestra", &s.password), &[]);
    by_file
        .expect(1, "a Java keystore")
        .says("trustCertificateKeyStoreUrl", "a Java keystore")
        .says("export the CA certificate as PEM", "a Java keystore");
}

fn environment_overrides_the_password(s: &Servers) {
    for kind in [Kind::Postgres, Kind::MySql] {
        let (db, jdbc, name) = match kind {
            Kind::Postgres => {
                let db = s.pg_db();
                let n = db_name(&db);
                let jdbc = format!(
                    "jdbc:postgresql://127.0.0.1:{}/{n}?sslmode=require",
                    s.pg_port()
                );
                (db, jdbc, "postgres")
            }
            _ => {
                let db = s.my_db();
                let n = db_name(&db);
                let jdbc = format!(
                    "jdbc:mysql://127.0.0.1:{}/{n}?sslMode=REQUIRED",
                    s.my_port()
                );
                (db, jdbc, "mysql")
            }
        };
        let dir = db.dir.path();
        let config = yaml(name, &jdbc, "kestra", "Wrong-password-1");
        let (by_file, by_env) = plan_config_both_ways(dir, &config, &[]);
        by_file.expect(1, "the config's wrong password");
        by_env.expect(1, "the config's wrong password");
        let var = format!("DATASOURCES_{}_PASSWORD", name.to_uppercase());
        let (by_file, by_env) =
            plan_config_both_ways(dir, &config, &[(var.as_str(), s.password.as_str())]);
        for ran in [&by_file, &by_env] {
            ran.expect(0, &var)
                .says(&var, "the override is named on stderr");
            assert!(!ran.stderr.contains(&s.password), "{ran:#?}");
        }
    }
}

// ---------------------------------------------------------------------------
// The libpq environment

fn libpq_environment(s: &Servers) {
    let db = s.pg_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    let port = s.pg_port();
    let url = format!("postgres://kestra@127.0.0.1:{port}/{name}");
    let run_env = |env: &[(&str, &str)]| {
        let mut cmd = bin(dir);
        cmd.args(["plan", "-o", "plan.json", "--database-url", &url])
            .envs(env.iter().copied());
        run(&mut cmd)
    };
    let pw = s.password.as_str();
    run_env(&[]).expect(1, "no password");
    run_env(&[("PGPASSWORD", pw)]).expect(0, "PGPASSWORD");
    let pass = dir.join("pgpass");
    std::fs::write(&pass, format!("127.0.0.1:{port}:*:kestra:{pw}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    run_env(&[("PGPASSFILE", pass.to_str().unwrap())]).expect(0, "PGPASSFILE");
    run_env(&[
        ("PGPASSWORD", pw),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &s.ca),
    ])
    .expect(0, "PGSSLMODE=verify-full, PGSSLROOTCERT");
    run_env(&[
        ("PGPASSWORD", pw),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &s.wrong_ca),
    ])
    .expect(1, "PGSSLROOTCERT: the wrong CA")
    .says("UnknownIssuer", "PGSSLROOTCERT: the wrong CA");
    run_env(&[("PGPASSWORD", pw), ("PGSSLMODE", "verify_full")])
        .expect(1, "PGSSLMODE misspelt")
        .says(
            "PGSSLMODE=`verify_full` is not one of",
            "PGSSLMODE misspelt",
        );
    run_env(&[("PGPASSWORD", pw), ("PGSSLMODE", "disable")])
        .expect(1, "PGSSLMODE=disable")
        .says("no encryption", "PGSSLMODE=disable");
}

// ---------------------------------------------------------------------------
// Schemas

/// Moves the five IAM tables of `db` (PostgreSQL) into `schema`.
fn move_to_schema(db: &TestDb, schema: &str, keep_a_copy_in_public: bool) {
    let mut sql = format!("CREATE SCHEMA \"{schema}\";");
    for t in ["tenants", "users", "groups", "roles", "bindings"] {
        if keep_a_copy_in_public {
            sql.push_str(&format!(
                "CREATE TABLE \"{schema}\".\"{t}\" (LIKE public.\"{t}\" INCLUDING ALL); \
                 INSERT INTO \"{schema}\".\"{t}\" (\"key\", \"value\") SELECT \"key\", \"value\" FROM public.\"{t}\";"
            ));
        } else {
            sql.push_str(&format!(
                "ALTER TABLE public.\"{t}\" SET SCHEMA \"{schema}\";"
            ));
        }
    }
    db.exec(&sql);
}

fn table_exists(db: &TestDb, schema: &str, table: &str) -> bool {
    let url = db.url.clone();
    runtime().block_on(async move {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("\"{schema}\".\"{table}\""))
            .fetch_one(&mut c)
            .await
            .unwrap();
        row.get::<bool, _>(0)
    })
}

fn current_schema_reads_locks_and_writes_there(s: &Servers) {
    let db = s.pg_db();
    let dir = db.dir.path();
    move_to_schema(&db, "staging", false);
    let name = db_name(&db);
    let port = s.pg_port();
    let plain = format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode=require");
    plan_url(dir, &plain, &[])
        .expect(1, "no IAM tables in public")
        .says("not an IAM store", "public")
        .says(&format!("database `{name}`"), "public")
        .says("`public`", "public")
        .says("currentSchema", "public");
    let jdbc =
        format!("jdbc:postgresql://127.0.0.1:{port}/{name}?sslmode=require&currentSchema=staging");
    let (by_file, by_env) =
        plan_config_both_ways(dir, &yaml("postgres", &jdbc, "postgres", ""), &[]);
    by_file.expect(0, "currentSchema");
    by_env.expect(0, "currentSchema");
    let by_jdbc = read_json(&dir.join("plan.json"));
    assert!(
        by_jdbc["source"]["identity"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{name}/staging")),
        "{}",
        by_jdbc["source"]
    );
    // The same through libpq's options, in a postgres:// URL.
    let options = format!("{plain}&options=-csearch_path%3Dstaging");
    plan_url(dir, &options, &[]).expect(0, "options=-csearch_path");
    let by_options = read_json(&dir.join("plan.json"));
    assert_eq!(
        by_options["source"]["identity"],
        by_jdbc["source"]["identity"]
    );
    assert_eq!(by_options["changes"], by_jdbc["changes"]);
    approve(dir);
    run(bin(dir).args(["apply", "--database-url", &options, "plan.json"])).expect(0, "apply");
    assert!(table_exists(&db, "staging", "sync_access_history"));
    assert!(!table_exists(&db, "public", "sync_access_history"));
    // Everything planned is now in staging: nothing is left to do there.
    run(bin(dir).args(["verify", "--database-url", &options, "plan.json"])).expect(0, "verify");
    let replan = plan_url(dir, &options, &["--detailed-exitcode"]);
    replan.expect(0, "planning again");
}

fn a_plan_for_one_schema_is_refused_on_another(s: &Servers) {
    let db = s.pg_db();
    let dir = db.dir.path();
    move_to_schema(&db, "staging", true);
    let name = db_name(&db);
    let port = s.pg_port();
    let public = format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode=require");
    let staging = format!("{public}&options=-csearch_path%3Dstaging");
    plan_url(dir, &staging, &[]).expect(0, "plan on staging");
    approve(dir);
    let before = db.dump();
    run(bin(dir).args(["apply", "--database-url", &public, "plan.json"]))
        .expect(5, "apply on public")
        .says("made against another database", "apply on public")
        .says("/staging", "apply on public");
    assert_eq!(db.dump(), before, "nothing was written to public");
    run(bin(dir).args(["apply", "--database-url", &staging, "plan.json"]))
        .expect(0, "apply on staging");
    assert_eq!(db.dump(), before, "public is as it was");
}

// ---------------------------------------------------------------------------
// Identities

fn mariadb_identity_is_not_shared_by_servers_on_one_host(s: &Servers) {
    // Two MariaDB servers on one machine (one host name), each with a
    // database of the same name and the same data.
    let tls_db = s.my_db();
    let name = db_name(&tls_db);
    let plain_admin = s.my_plain_admin.clone();
    runtime().block_on(async {
        let mut c = sqlx::MySqlConnection::connect(&plain_admin).await.unwrap();
        c.execute(
            format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str(),
        )
        .await
        .unwrap();
    });
    let plain_url = crate::support::replace_database(&plain_admin, &name);
    let dir = tls_db.dir.path();
    runtime().block_on(async {
        let target = sync_access::connect::Target::parse(&plain_url).unwrap();
        let mut store = sync_access::store::Store::connect(
            &target,
            sync_access::store::Access::Create,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        store.create_iam_tables().await.unwrap();
        sync_access::demo::load(&mut store, sync_access::demo::small())
            .await
            .unwrap();
    });
    plan_url(dir, &tls_db.url, &[]).expect(0, "plan on the TLS server");
    let plan = read_json(&dir.join("plan.json"));
    let identity = plan["source"]["identity"].as_str().unwrap().to_string();
    let uid: String = runtime().block_on(async {
        let mut c = sqlx::MySqlConnection::connect(&tls_db.url).await.unwrap();
        sqlx::query_scalar("SELECT CAST(@@server_uid AS CHAR)")
            .fetch_one(&mut c)
            .await
            .unwrap()
    });
    assert!(
        identity.starts_with(&format!("mariadb:{uid}/")) && identity.ends_with(&format!("/{name}")),
        "{identity}"
    );
    approve(dir);
    run(bin(dir).args(["apply", "--database-url", &plain_url, "plan.json"]))
        .expect(5, "apply on the other server")
        .says("made against another database", "apply on the other server");
    runtime().block_on(async {
        let mut c = sqlx::MySqlConnection::connect(&plain_admin).await.unwrap();
        c.execute(format!("DROP DATABASE {name}").as_str())
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------------------
// Parameters

fn unknown_parameters_are_refused_and_harmless_ones_logged(s: &Servers) {
    let pg = s.pg_db();
    let my = s.my_db();
    let dir = pg.dir.path();
    let pg_url = format!("{}&frobnicate=1", pg.url);
    plan_url(dir, &pg_url, &[])
        .expect(1, "unknown pg parameter")
        .says("`frobnicate` is not supported", "unknown pg parameter");
    let my_url = format!("{}&frobnicate=1", my.url);
    plan_url(dir, &my_url, &[])
        .expect(1, "unknown mysql parameter")
        .says("`frobnicate` is not supported", "unknown mysql parameter");
    // In a Kestra config too.
    let jdbc = format!(
        "jdbc:postgresql://127.0.0.1:{}/{}?sslmode=require&tcpKeepAlive=true&frobnicate=1",
        s.pg_port(),
        db_name(&pg)
    );
    let (by_file, by_env) =
        plan_config_both_ways(dir, &yaml("postgres", &jdbc, "postgres", ""), &[]);
    by_file
        .expect(1, "-c")
        .says("`frobnicate` is not supported", "-c");
    by_env
        .expect(1, "env")
        .says("`frobnicate` is not supported", "env");
    // Harmless ones: ignored, said at -v.
    let jdbc = format!(
        "jdbc:mysql://127.0.0.1:{}/{}?sslMode=REQUIRED&characterEncoding=UTF-8&serverTimezone=UTC",
        s.my_port(),
        db_name(&my)
    );
    let file = dir.join("harmless.yml");
    std::fs::write(&file, yaml("mysql", &jdbc, "kestra", &s.password)).unwrap();
    let ran = run(bin(dir)
        .args(["-v", "plan", "-o", "plan.json", "-c"])
        .arg(&file));
    ran.expect(0, "harmless parameters")
        .says(
            "ignoring connection parameter `characterEncoding=UTF-8`",
            "-v",
        )
        .says("serverTimezone=UTC", "-v");
    // Security parameters that cannot be honoured are refused by name.
    for (url, name) in [
        (format!("{}&sslcrl=/x.crl", pg.url), "sslcrl"),
        (
            format!("{}&sslpassword=Key-pass-5510", pg.url),
            "sslpassword",
        ),
        (format!("{}&gssencmode=require", pg.url), "gssencmode"),
        (
            format!("{}&channel_binding=require", pg.url),
            "channel_binding",
        ),
    ] {
        let ran = plan_url(dir, &url, &[]);
        ran.expect(1, &url)
            .says(&format!("`{name}` is not supported"), &url);
        assert!(!ran.stderr.contains("Key-pass-5510"), "{ran:#?}");
    }
}

// ---------------------------------------------------------------------------
// Passwords

fn passwords_are_never_printed(s: &Servers) {
    let db = s.pg_db();
    let my = s.my_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    let port = s.pg_port();
    const SECRET: &str = "Leak-canary-8c1e";
    let right = s.password.as_str();
    // Runs with -vvv --internal-log; neither output nor any file written
    // may hold `secret`.
    let check = |ran: &Ran, secret: &str, what: &str| {
        assert!(!ran.stdout.contains(secret), "{what}: stdout: {ran:#?}");
        assert!(!ran.stderr.contains(secret), "{what}: stderr: {ran:#?}");
        assert!(!ran.stderr.trim().is_empty(), "{what}: nothing logged");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // The configs are the test's own input, not the tool's output.
            if path.is_file() && path.file_name().unwrap() != "application.yml" {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                assert!(
                    !text.contains(secret),
                    "{what}: {} holds it",
                    path.display()
                );
            }
        }
    };
    let loud = ["-vvv", "--internal-log"];
    let failing = [
        format!("postgres://kestra:{SECRET}@127.0.0.1:{port}/{name}?sslmode=require"),
        format!("postgres:kestra:{SECRET}@127.0.0.1:{port}/{name}"),
        format!("postgres://kestra@127.0.0.1:{port}/{name}?sslmode=require&password={SECRET}"),
        format!("postgres://kestra@127.0.0.1:{port}/{name}?sslmode=require&Password={SECRET}"),
        format!("postgres://kestra@127.0.0.1:{port}/{name}?sslpassword={SECRET}"),
        format!("postgres://kestra:pa/ss{SECRET}@127.0.0.1:{port}/{name}"),
        format!(
            "mysql://kestra:{SECRET}@127.0.0.1:{}/{}?ssl-mode=REQUIRED",
            s.my_port(),
            db_name(&my)
        ),
        format!("mysql://kestra:pa#ss?{SECRET}@127.0.0.1:{}/x", s.my_port()),
    ];
    for url in &failing {
        let ran = run(bin(dir)
            .args(loud)
            .args(["plan", "-o", "plan.json", "--database-url", url]));
        ran.expect(1, url);
        check(&ran, SECRET, url);
    }
    // Unsupported JDBC URLs, and a wrong password in a config, in the
    // environment and through an override.
    for jdbc in [
        format!("jdbc:sqlserver://127.0.0.1:1433;databaseName=k;user=sa;password={SECRET}"),
        format!("jdbc:oracle:thin:scott/{SECRET}@127.0.0.1:1521:orcl"),
        format!("jdbc:postgresql://127.0.0.1:{port}/{name}?sslmode=require&password={SECRET}"),
    ] {
        let (by_file, by_env) =
            plan_config_both_ways(dir, &yaml("postgres", &jdbc, "kestra", ""), &[]);
        for ran in [&by_file, &by_env] {
            ran.expect(1, &jdbc);
            check(ran, SECRET, &jdbc);
        }
    }
    let jdbc = format!("jdbc:postgresql://127.0.0.1:{port}/{name}?sslmode=require");
    let (by_file, by_env) =
        plan_config_both_ways(dir, &yaml("postgres", &jdbc, "kestra", SECRET), &[]);
    for ran in [&by_file, &by_env] {
        ran.expect(1, "config password");
        check(ran, SECRET, "config password");
    }
    let (by_file, by_env) = plan_config_both_ways(
        dir,
        &yaml("postgres", &jdbc, "kestra", "x"),
        &[("DATASOURCES_POSTGRES_PASSWORD", SECRET)],
    );
    for ran in [&by_file, &by_env] {
        ran.expect(1, "override password");
        check(ran, SECRET, "override password");
    }
    // The passwords that work: in the URL, as a parameter, in a config.
    let works = [
        format!("postgres://kestra:{right}@127.0.0.1:{port}/{name}?sslmode=require"),
        format!("postgres://kestra@127.0.0.1:{port}/{name}?sslmode=require&password={right}"),
    ];
    for url in &works {
        let ran = run(bin(dir)
            .args(loud)
            .args(["plan", "-o", "plan.json", "--database-url", url]));
        ran.expect(0, url);
        check(&ran, right, url);
        let plan: Value = read_json(&dir.join("plan.json"));
        assert!(!plan["source"]["database"].as_str().unwrap().contains(right));
        approve(dir);
        let ran = run(bin(dir).args(loud).args(["history", "--database-url", url]));
        check(&ran, right, url);
    }
    let (by_file, by_env) =
        plan_config_both_ways(dir, &yaml("postgres", &jdbc, "kestra", right), &[]);
    for ran in [&by_file, &by_env] {
        ran.expect(0, "config with the right password");
        check(ran, right, "config with the right password");
    }
}

// ---------------------------------------------------------------------------
// Errors that say what to do (servers needed)

fn errors_against_real_servers(s: &Servers) {
    let db = s.pg_db();
    let dir = db.dir.path();
    let name = db_name(&db);
    // A postgres:// URL at a MariaDB port, a mysql:// URL at PostgreSQL's.
    plan_url(
        dir,
        &format!("postgres://kestra@127.0.0.1:{}/{name}", s.my_port()),
        &[],
    )
    .expect(1, "postgres:// at MariaDB")
    .says(
        "did not answer as PostgreSQL does",
        "postgres:// at MariaDB",
    );
    plan_url(
        dir,
        &format!("mysql://kestra@127.0.0.1:{}/{name}", s.pg_port()),
        &["--connect-timeout", "2"],
    )
    .expect(1, "mysql:// at PostgreSQL")
    .says("no MySQL greeting", "mysql:// at PostgreSQL");
    // apply and verify without a database, for a plan made on PostgreSQL.
    plan_url(dir, &db.url, &[]).expect(0, "plan");
    approve(dir);
    for command in ["apply", "verify"] {
        run(bin(dir).args([command, "plan.json"]))
            .expect(1, command)
            .says("no database was given", command)
            .says(&format!("/{name}"), command)
            .says("--database-url", command);
    }
}

// ---------------------------------------------------------------------------
// Without servers

/// A TCP listener on 127.0.0.1 that answers every connection with an HTTP
/// error, as a web server on the wrong port would; ends with the test.
fn something_else_answering() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

fn offline_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = something_else_answering();
    plan_url(
        d,
        &format!("postgres://u@127.0.0.1:{port}/db"),
        &["--connect-timeout", "3"],
    )
    .expect(1, "HTTP at a postgres:// URL")
    .says(
        "did not answer as PostgreSQL does",
        "HTTP at a postgres:// URL",
    );
    let ran = plan_url(
        d,
        &format!("mysql://u@127.0.0.1:{port}/db"),
        &["--connect-timeout", "3"],
    );
    ran.expect(1, "HTTP at a mysql:// URL")
        .says(&format!("127.0.0.1:{port}"), "HTTP at a mysql:// URL");
    assert_eq!(ran.stderr.lines().count(), 1, "{ran:#?}");
    // --connect-timeout 0.
    run(bin(d).args(["plan", "--connect-timeout", "0"]))
        .expect(1, "--connect-timeout 0")
        .says("at least 1", "--connect-timeout 0");
    // Two sources.
    std::fs::write(
        d.join("c.yml"),
        yaml("postgres", "jdbc:postgresql://127.0.0.1:1/k", "k", ""),
    )
    .unwrap();
    run(bin(d).args(["plan", "-c", "c.yml", "--database-url", "sqlite:x.db"]))
        .expect(1, "-c and --database-url")
        .says("-c c.yml", "-c and --database-url")
        .says("--database-url", "-c and --database-url");
    run(bin(d)
        .args(["plan", "-c", "c.yml"])
        .env("DATABASE_URL", "sqlite:x.db"))
    .expect(1, "-c and DATABASE_URL")
    .says("DATABASE_URL", "-c and DATABASE_URL");
    run(bin(d)
        .args(["plan"])
        .env("DATABASE_URL", "sqlite:x.db")
        .env("KESTRA_CONFIGURATION", "datasources: {}"))
    .expect(1, "DATABASE_URL and KESTRA_CONFIGURATION")
    .says(
        "KESTRA_CONFIGURATION",
        "DATABASE_URL and KESTRA_CONFIGURATION",
    );
    // Unknown --datasource lists the names; repository.type picks one.
    let two = "kestra:\n  repository:\n    type: mysql\ndatasources:\n  postgres:\n    url: jdbc:postgresql://127.0.0.1:1/k\n  mysql:\n    url: jdbc:mysql://127.0.0.1:1/k\n";
    std::fs::write(d.join("two.yml"), two).unwrap();
    run(bin(d).args(["plan", "-c", "two.yml", "--datasource", "h2"]))
        .expect(1, "unknown datasource")
        .says(
            "no datasource `h2`; the datasources are `mysql`, `postgres`",
            "unknown datasource",
        );
    run(bin(d).args(["plan", "--connect-timeout", "2", "-c", "two.yml"]))
        .expect(1, "repository type")
        .says("datasource `mysql`", "repository type")
        .says("mysql://127.0.0.1:1/k", "repository type");
    // -p/--plugins is accepted and does nothing.
    run(bin(d).args(["-p", "/app/plugins", "demo"])).expect(0, "-p");
    run(bin(d).args(["--plugins", "/app/plugins", "plan", "-o", "plan.json"]))
        .expect(0, "--plugins");
    // Kestra's default config path, in $HOME, is read and named.
    std::fs::create_dir_all(d.join(".kestra")).unwrap();
    std::fs::write(
        d.join(".kestra/config.yml"),
        yaml(
            "postgres",
            "jdbc:postgresql://127.0.0.1:1/from_default",
            "k",
            "",
        ),
    )
    .unwrap();
    run(bin(d).args(["plan", "--connect-timeout", "2"]))
        .expect(1, "default config")
        .says("Kestra's default config path", "default config")
        .says("127.0.0.1:1/from_default", "default config");
    // demo writes: it never lands on a configuration nobody named.
    run(bin(d).args(["demo", "--reset"]))
        .expect(0, "demo beside a default config")
        .says("sqlite:sync-access-demo.db", "demo beside a default config");
    run(bin(d).args(["demo", "--reset"]).env(
        "KESTRA_CONFIGURATION",
        yaml("postgres", "jdbc:postgresql://127.0.0.1:1/k", "k", ""),
    ))
    .expect(0, "demo beside KESTRA_CONFIGURATION")
    .says(
        "sqlite:sync-access-demo.db",
        "demo beside KESTRA_CONFIGURATION",
    );
}

pub fn trials() -> Vec<Trial> {
    let servers = Servers::from_env();
    if let Err(reason) = &servers {
        eprintln!("note: TLS tests are skipped: {reason}");
    }
    type Check = fn(&Servers);
    let checks: [(&str, Check); 14] = [
        (
            "postgres_sessions_are_encrypted_server_side",
            postgres_sessions_are_encrypted,
        ),
        (
            "mysql_sessions_are_encrypted_server_side",
            mysql_sessions_are_encrypted,
        ),
        (
            "postgres_verify_full_and_verify_ca_check_the_certificate",
            postgres_certificates,
        ),
        (
            "mysql_verify_identity_and_verify_ca_check_the_certificate",
            mysql_certificates,
        ),
        (
            "postgres_tls_asked_of_a_plaintext_only_database",
            postgres_plaintext_only_database,
        ),
        (
            "mysql_tls_asked_of_a_plaintext_server",
            mysql_tls_asked_of_a_plaintext_server,
        ),
        (
            "postgres_every_jdbc_tls_spelling_from_a_file_and_the_environment",
            postgres_jdbc_spellings,
        ),
        (
            "mysql_every_jdbc_tls_spelling_from_a_file_and_the_environment",
            mysql_jdbc_spellings,
        ),
        (
            "an_environment_override_of_the_password",
            environment_overrides_the_password,
        ),
        ("the_libpq_environment_is_read", libpq_environment),
        (
            "current_schema_reads_locks_and_writes_there",
            current_schema_reads_locks_and_writes_there,
        ),
        (
            "a_plan_for_one_schema_is_refused_on_another",
            a_plan_for_one_schema_is_refused_on_another,
        ),
        (
            "mariadb_identity_is_not_shared_by_servers_on_one_host",
            mariadb_identity_is_not_shared_by_servers_on_one_host,
        ),
        (
            "unknown_parameters_are_refused_and_harmless_ones_logged",
            unknown_parameters_are_refused_and_harmless_ones_logged,
        ),
    ];
    let mut trials: Vec<Trial> = checks
        .into_iter()
        .chain([
            (
                "passwords_are_never_printed_with_vvv_internal_log",
                passwords_are_never_printed as Check,
            ),
            (
                "errors_say_what_to_do_against_real_servers",
                errors_against_real_servers as Check,
            ),
        ])
        .map(|(name, check)| {
            let servers = servers.clone();
            let ignored = servers.is_err();
            Trial::test(format!("tls::{name}"), move || {
                check(&servers.expect("servers"));
                Ok(())
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    trials.push(Trial::test(
        "tls::errors_say_what_to_do_without_a_server",
        || {
            offline_errors();
            Ok(())
        },
    ));
    trials
}
