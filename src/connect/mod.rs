//! Where the store is and how to reach it: `--database-url`, `DATABASE_URL`
//! or a Kestra configuration ([`kestra`]), each parameter honoured or
//! refused ([`params`]), and the sqlx connect options built here so that the
//! store only calls [`Target::pg_attempts`] / [`Target::mysql_options`].
//!
//! Passwords are kept out of everything printable: [`Target::display`] is
//! the only form that reaches logs, errors and plans, and every password
//! seen is registered in [`secrets`] as a second line of defence.

pub mod kestra;
mod params;
pub mod secrets;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use url::Url;

use crate::error::{Error, Result};
pub use params::{is_secret_name, Settings, TlsMode, Vocabulary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

/// A database to connect to.
#[derive(Clone)]
pub struct Target {
    pub backend: Backend,
    /// The URL without secrets: the only form that is ever printed.
    display: String,
    /// SQLite: the file.
    sqlite_path: String,
    /// PostgreSQL and MySQL: everything the URL and the config said.
    settings: Settings,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("backend", &self.backend)
            .field("url", &self.display)
            .finish()
    }
}

const MALFORMED_USERINFO: &str = "malformed: a `/`, `?`, `#` or `@` in the user name or password must be percent-encoded (%2F, %3F, %23, %40)";

fn decode(part: &str, what: &str) -> std::result::Result<String, String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("the {what} is not valid UTF-8 once percent-decoded"))
}

fn encode(part: &str) -> String {
    utf8_percent_encode(part, NON_ALPHANUMERIC).to_string()
}

/// Host, port, user, password and database of a parsed URL.
fn settings_of(url: &Url, settings: &mut Settings) -> std::result::Result<(), String> {
    if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = decode(host, "host")?;
        if host.starts_with('/') {
            settings.socket = Some(host);
        } else {
            settings.host = Some(host);
        }
    }
    settings.port = url.port();
    if !url.username().is_empty() {
        settings.user = Some(decode(url.username(), "user name")?);
    }
    if let Some(password) = url.password() {
        let password = decode(password, "password")?;
        secrets::register(&password);
        settings.password = Some(password);
    }
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() {
        settings.database = Some(decode(path, "database name")?);
    }
    Ok(())
}

impl Target {
    /// Parses `sqlite:PATH`, `postgres://...`, `postgresql://...`,
    /// `mysql://...` or `mariadb://...`, with their query parameters.
    pub fn parse(url: &str) -> Result<Self> {
        let (shown, removed) = redact_parts(url);
        removed.iter().for_each(|s| secrets::register(s));
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        let (backend, vocab, native) = match scheme.as_str() {
            "sqlite" => {
                let rest = &url["sqlite:".len()..];
                let rest = rest.strip_prefix("//").unwrap_or(rest);
                let path = rest.split('?').next().unwrap_or(rest).to_string();
                return Ok(Target {
                    backend: Backend::Sqlite,
                    display: shown,
                    sqlite_path: path,
                    settings: Settings::default(),
                });
            }
            "postgres" | "postgresql" => (Backend::Postgres, Vocabulary::PgUrl, "postgres"),
            "mysql" | "mariadb" => (Backend::MySql, Vocabulary::MySqlUrl, "mysql"),
            "jdbc" => {
                return Err(Error::usage(format!(
                    "database URL `{shown}`: JDBC URLs go in a Kestra config (-c); pass postgres://, mysql:// or sqlite: here"
                )))
            }
            _ => {
                return Err(Error::usage(format!(
                    "database URL `{shown}`: unknown scheme `{}` (expected sqlite:, postgres:// or mysql://)",
                    crate::render::clean(&scheme)
                )))
            }
        };
        let rest = &url[scheme.len() + 1..];
        if !rest.starts_with("//") {
            return Err(Error::usage(format!(
                "database URL `{shown}`: expected {scheme}://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE (the `//` after `{scheme}:` is missing)"
            )));
        }
        let bad = |e: String| Error::usage(format!("database URL `{shown}`: {e}"));
        let parsed = Url::parse(&format!("{native}:{rest}")).map_err(|e| bad(e.to_string()))?;
        if !at_signs_fit(url, &parsed) || parsed.fragment().is_some() {
            return Err(bad(MALFORMED_USERINFO.into()));
        }
        let mut settings = Settings::default();
        settings_of(&parsed, &mut settings).map_err(bad)?;
        settings
            .apply_params(
                vocab,
                parsed
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned())),
                "the URL",
            )
            .map_err(bad)?;
        Ok(Target {
            backend,
            display: display_of(&parsed, None),
            sqlite_path: String::new(),
            settings,
        })
    }

    /// A JDBC URL of a Kestra datasource (`jdbc:postgresql://`,
    /// `jdbc:mysql://`, `jdbc:mariadb://`), with the datasource's user name,
    /// password and driver properties (`data-source-properties`, `schema`).
    pub fn from_jdbc(
        jdbc: &str,
        username: Option<&str>,
        password: Option<&str>,
        properties: Vec<(String, String)>,
        properties_origin: &str,
    ) -> std::result::Result<Target, String> {
        if let Some(password) = password {
            secrets::register(password);
        }
        let (_, removed) = redact_parts(jdbc);
        removed.iter().for_each(|s| secrets::register(s));
        let lower = jdbc.to_ascii_lowercase();
        let (backend, vocab, native, prefix_len) = if lower.starts_with("jdbc:postgresql:") {
            (Backend::Postgres, Vocabulary::PgJdbc, "postgres", 16)
        } else if lower.starts_with("jdbc:mysql:") {
            (
                Backend::MySql,
                Vocabulary::MySqlJdbc { mariadb: false },
                "mysql",
                11,
            )
        } else if lower.starts_with("jdbc:mariadb:") {
            (
                Backend::MySql,
                Vocabulary::MySqlJdbc { mariadb: true },
                "mysql",
                13,
            )
        } else if lower.starts_with("jdbc:h2:") {
            return Err("H2 (`jdbc:h2:`) is not supported: sync-access works on PostgreSQL, MySQL/MariaDB and SQLite".into());
        } else if let Some(rest) = lower.strip_prefix("jdbc:") {
            // Only the driver's name: the rest may hold a password in a
            // syntax of its own (`;password=`, `user/password@`).
            let driver: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            return Err(format!(
                "`jdbc:{driver}:` URLs are not supported: sync-access works on PostgreSQL (jdbc:postgresql://), MySQL/MariaDB (jdbc:mysql://, jdbc:mariadb://) and SQLite"
            ));
        } else {
            return Err(format!(
                "`{}` is not a JDBC URL (jdbc:postgresql://... or jdbc:mysql://...)",
                redact(jdbc)
            ));
        };
        let mut rest = jdbc[prefix_len..].to_string();
        if !rest.starts_with("//") {
            if backend == Backend::Postgres {
                // pgjdbc's `jdbc:postgresql:database`: on localhost.
                rest = format!("//localhost/{rest}");
            } else {
                return Err(format!(
                    "`{}`: failover, load-balancing and replication URLs are not supported: name the primary server as jdbc:mysql://HOST:PORT/DATABASE",
                    redact(jdbc)
                ));
            }
        }
        let authority = rest[2..].split(['/', '?']).next().unwrap_or("");
        if authority.contains(',') || authority.contains('(') {
            return Err(format!(
                "`{}`: several hosts (failover) are not supported: name the primary server",
                redact(jdbc)
            ));
        }
        let parsed = Url::parse(&format!("{native}:{rest}"))
            .map_err(|e| format!("`{}`: {e}", redact(jdbc)))?;
        if !at_signs_fit(&rest, &parsed) || parsed.fragment().is_some() {
            return Err(format!("`{}`: {MALFORMED_USERINFO}", redact(jdbc)));
        }
        let mut settings = Settings::default();
        settings_of(&parsed, &mut settings)?;
        settings.apply_params(
            vocab,
            parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
            "the URL",
        )?;
        settings.apply_params(vocab, properties, properties_origin)?;
        // The datasource's `username` and `password`, unless the URL says
        // otherwise; both saying different things is refused.
        for (slot, value, what) in [
            (&mut settings.user, username, "user name"),
            (&mut settings.password, password, "password"),
        ] {
            match (slot.as_deref(), value.filter(|v| !v.is_empty())) {
                (Some(a), Some(b)) if a != b => {
                    return Err(format!(
                        "the URL's {what} disagrees with the datasource's `{}`",
                        if what == "password" {
                            "password"
                        } else {
                            "username"
                        }
                    ))
                }
                (None, Some(b)) => *slot = Some(b.to_string()),
                _ => {}
            }
        }
        Ok(Target {
            backend,
            display: display_of(&parsed, settings.user.as_deref()),
            sqlite_path: String::new(),
            settings,
        })
    }

    /// The URL without its password, for display and for plans.
    pub fn display(&self) -> String {
        self.display.clone()
    }

    /// For SQLite: the file path of the URL.
    pub fn sqlite_path(&self) -> &str {
        &self.sqlite_path
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What the URL or the config says about the connect timeout, if
    /// anything (`connect_timeout`, `connectTimeout`).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.settings.connect_timeout
    }

    /// The TLS mode in force: the URL's, else `PGSSLMODE` (PostgreSQL),
    /// else prefer (the drivers' default).
    pub fn tls_mode(&self) -> Result<TlsMode> {
        if let Some(mode) = self.settings.tls_mode {
            return Ok(mode);
        }
        if self.backend == Backend::Postgres {
            if let Ok(env) = std::env::var("PGSSLMODE") {
                return TlsMode::parse_pg(&env).ok_or_else(|| {
                    Error::usage(format!(
                        "PGSSLMODE=`{}` is not one of disable, allow, prefer, require, verify-ca, verify-full",
                        crate::render::clean(&env)
                    ))
                });
            }
        }
        Ok(TlsMode::Prefer)
    }

    /// Checks the certificate and key files the URL names, so that a typo
    /// is an error naming the parameter, not a handshake failure.
    fn check_tls_files(&self) -> Result<()> {
        let s = &self.settings;
        for (value, what) in [
            (
                &s.tls_ca,
                "the CA file (sslrootcert / ssl-ca / serverSslCert)",
            ),
            (&s.tls_cert, "the client certificate (sslcert / ssl-cert)"),
            (&s.tls_key, "the client key (sslkey / ssl-key)"),
        ] {
            if let Some(value) = value
                .as_deref()
                .filter(|v| !is_inline_pem(v) && *v != "system")
            {
                std::fs::metadata(value).map_err(|e| {
                    Error::usage(format!("{what} `{}`: {e}", crate::render::clean(value)))
                })?;
            }
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(Error::usage(
                "a client certificate needs its key and a key its certificate: give both sslcert and sslkey (ssl-cert and ssl-key)",
            ));
        }
        Ok(())
    }

    /// PostgreSQL: the connect options to try, in order. libpq's `allow`
    /// tries plaintext, then TLS; `prefer` tries TLS, then plaintext, when
    /// the server refuses the first (a `hostssl`- or `hostnossl`-only
    /// `pg_hba.conf`); sqlx does neither on its own.
    pub fn pg_attempts(&self) -> Result<Vec<PgConnectOptions>> {
        self.check_tls_files()?;
        let s = &self.settings;
        // Built from a URL so that sqlx reads the libpq environment
        // (PGHOST, PGUSER, PGPASSWORD, PGSSLROOTCERT...) and the pgpass
        // file for the final host, port, user and database.
        let defaults = PgConnectOptions::new_without_pgpass();
        if let Ok(password) = std::env::var("PGPASSWORD") {
            secrets::register(&password);
        }
        let mut url = Url::parse("postgres://localhost").expect("a valid URL");
        let socket = s.socket.clone().or_else(|| {
            s.host
                .is_none()
                .then(|| defaults.get_socket().map(|p| p.display().to_string()))
                .flatten()
        });
        let host = s
            .host
            .clone()
            .unwrap_or_else(|| defaults.get_host().to_string());
        if host.starts_with('/') {
            url.query_pairs_mut().append_pair("host", &host);
        } else if url
            .set_host(Some(&if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            }))
            .is_err()
        {
            return Err(Error::usage(format!(
                "host `{}` is not valid",
                crate::render::clean(&host)
            )));
        }
        if let Some(socket) = &socket {
            url.query_pairs_mut().append_pair("host", socket);
        }
        let _ = url.set_port(Some(s.port.unwrap_or(defaults.get_port())));
        if let Some(user) = &s.user {
            let _ = url.set_username(&encode(user));
        }
        if let Some(db) = &s.database {
            url.set_path(&encode(db));
        }
        let mut pg_options: Vec<String> = s.pg_options.clone();
        if let Some(schema) = &s.schema {
            // As pgjdbc's currentSchema: the search path, set at startup.
            let escaped = schema.replace('\\', "\\\\").replace(' ', "\\ ");
            pg_options.push(format!("-c search_path={escaped}"));
        }
        for options in &pg_options {
            url.query_pairs_mut().append_pair("options", options);
        }
        let mut options = PgConnectOptions::from_str(url.as_str())
            .map_err(|e| Error::usage(format!("database URL `{}`: {e}", self.display)))?;
        if !host.starts_with('/') && socket.is_none() {
            // sqlx would keep an IPv6 address's brackets.
            options = options.host(&host);
        }
        // The URL's name, else PGAPPNAME (already read), else ours.
        if let Some(name) = &s.application_name {
            options = options.application_name(name);
        } else if options.get_application_name().is_none() {
            options = options.application_name("sync-access");
        }
        if let Some(password) = &s.password {
            options = options.password(password);
        }
        if let Some(ca) = s.tls_ca.as_deref().filter(|ca| *ca != "system") {
            options = if is_inline_pem(ca) {
                options.ssl_root_cert_from_pem(ca.as_bytes().to_vec())
            } else {
                options.ssl_root_cert(ca)
            };
        } else if std::env::var_os("PGSSLROOTCERT").is_none() {
            // libpq's default CA file, when there is one.
            if let Some(home) = home_dir() {
                let default = home.join(".postgresql/root.crt");
                if default.exists() {
                    options = options.ssl_root_cert(default);
                }
            }
        }
        if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        let modes: &[PgSslMode] = match self.tls_mode()? {
            TlsMode::Disable => &[PgSslMode::Disable],
            TlsMode::Allow => &[PgSslMode::Disable, PgSslMode::Require],
            TlsMode::Prefer => &[PgSslMode::Prefer, PgSslMode::Disable],
            TlsMode::Require => &[PgSslMode::Require],
            TlsMode::VerifyCa => &[PgSslMode::VerifyCa],
            TlsMode::VerifyFull => &[PgSslMode::VerifyFull],
        };
        Ok(modes
            .iter()
            .map(|mode| options.clone().ssl_mode(*mode))
            .collect())
    }

    /// MySQL and MariaDB: the connect options.
    pub fn mysql_options(&self) -> Result<MySqlConnectOptions> {
        self.check_tls_files()?;
        let s = &self.settings;
        let mut options = MySqlConnectOptions::new().charset("utf8mb4");
        if let Some(host) = &s.host {
            options = options.host(host);
        }
        if let Some(port) = s.port {
            options = options.port(port);
        }
        if let Some(socket) = &s.socket {
            options = options.socket(socket);
        }
        if let Some(user) = &s.user {
            options = options.username(user);
        }
        if let Some(password) = &s.password {
            options = options.password(password);
        }
        if let Some(db) = &s.database {
            options = options.database(db);
        }
        options = options.ssl_mode(match self.tls_mode()? {
            TlsMode::Disable => MySqlSslMode::Disabled,
            TlsMode::Allow | TlsMode::Prefer => MySqlSslMode::Preferred,
            TlsMode::Require => MySqlSslMode::Required,
            TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
            TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
        });
        if let Some(ca) = s.tls_ca.as_deref().filter(|ca| *ca != "system") {
            options = if is_inline_pem(ca) {
                options.ssl_ca_from_pem(ca.as_bytes().to_vec())
            } else {
                options.ssl_ca(ca)
            };
        }
        if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        Ok(options)
    }

    /// Logs, at `-v`, the harmless parameters that were ignored.
    pub fn log_ignored(&self) {
        for param in &self.settings.ignored {
            tracing::info!(
                "ignoring connection parameter `{}`: it does not bear on security nor on where the data is",
                crate::render::clean(param)
            );
        }
    }
}

fn is_inline_pem(value: &str) -> bool {
    value.trim_start().starts_with("-----BEGIN")
}

/// The user's home directory (`$HOME`).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `url` without its password and without secret-bearing parameters;
/// `user` is shown when the URL has none (it came from elsewhere).
fn display_of(url: &Url, user: Option<&str>) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    if shown.username().is_empty() {
        if let Some(user) = user {
            let _ = shown.set_username(&encode(user));
        }
    }
    let query = shown.query().map(|q| filtered_query(q, '&'));
    shown.set_query(query.as_deref().filter(|q| !q.is_empty()));
    shown.to_string()
}

/// The parameters of `query` (separated by `sep`) whose name bears no
/// secret, as written.
fn filtered_query(query: &str, sep: char) -> String {
    query
        .split(sep)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            !is_secret_name(&percent_decode_str(name).decode_utf8_lossy())
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// Removes the password from `scheme://user:password@host/...` (and from
/// the malformed `scheme:user:password@host/...`) and every parameter whose
/// name bears a secret (`password=`, `sslpassword=`, `;password=`...).
pub fn redact(url: &str) -> String {
    redact_parts(url).0
}

/// [`redact`], and what it removed (to register as secrets).
///
/// A well-formed URL goes through the `url` crate. Anything else (a URL
/// malformed by an unencoded delimiter in its password, a JDBC URL) is cut
/// conservatively: the userinfo is taken to end at the *last* `@`, so a
/// password with `/`, `?`, `#` or `@` in it goes whole; a `@` in the path
/// or query makes this remove more than the password, which is the safe
/// side.
fn redact_parts(url: &str) -> (String, Vec<String>) {
    let mut removed = Vec::new();
    let scheme = url.split(':').next().unwrap_or("");
    if scheme.eq_ignore_ascii_case("sqlite") {
        return (url.to_string(), removed);
    }
    if let Ok(parsed) = Url::parse(url) {
        if parsed.has_authority() && parsed.fragment().is_none() && at_signs_fit(url, &parsed) {
            if let Some(p) = parsed.password() {
                removed.push(p.to_string());
                removed.extend(decode(p, "password").ok());
            }
            for (k, v) in parsed.query_pairs() {
                if is_secret_name(&k) {
                    removed.push(v.into_owned());
                }
            }
            return (display_of(&parsed, None), removed);
        }
    }
    let mut out = url.to_string();
    // The userinfo: after `://` (or after the scheme's `:` when `//` is
    // missing) up to the last `@`.
    let authority_start = match out.find("://") {
        Some(i) => i + 3,
        None => out.find(':').map_or(0, |i| i + 1),
    };
    if let Some(at) = out[authority_start..].rfind('@') {
        let userinfo = out[authority_start..authority_start + at].to_string();
        if let Some(cut) = userinfo.find([':', '/']) {
            removed.push(userinfo[cut + 1..].to_string());
            out.replace_range(authority_start + cut..authority_start + at, "");
        }
    }
    // Parameters: `?a=1&b=2` and JDBC's `;a=1;b=2`.
    if let Some(start) = out.find(['?', ';']) {
        let (base, params) = out.split_at(start);
        let mut kept = base.to_string();
        let mut rest = params;
        while !rest.is_empty() {
            let sep = &rest[..1];
            let end = rest[1..]
                .find(['&', ';', '?'])
                .map_or(rest.len(), |i| i + 1);
            let param = &rest[1..end];
            let name = param.split('=').next().unwrap_or("");
            if is_secret_name(&percent_decode_str(name).decode_utf8_lossy()) {
                removed.push(param.split_once('=').map_or("", |(_, v)| v).to_string());
            } else if !param.is_empty() {
                let sep = if kept.len() == base.len() && sep == "&" {
                    "?"
                } else {
                    sep
                };
                kept.push_str(sep);
                kept.push_str(param);
            }
            rest = &rest[end..];
        }
        out = kept;
    }
    (out, removed.into_iter().filter(|s| !s.is_empty()).collect())
}

/// Whether the URL parser took every `@` of `url` as the end of the
/// userinfo: otherwise a reserved character in the password (`/`, `?`,
/// `#`, `@`) was left unencoded and the parser split the URL elsewhere.
fn at_signs_fit(url: &str, parsed: &Url) -> bool {
    let has_userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    (has_userinfo || !url.contains('@')) && !parsed.path().contains('@')
}

/// Reads a file the user named, as UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://kestra:s3cret@db:5432/kestra"),
            "postgres://kestra@db:5432/kestra"
        );
        assert_eq!(
            redact("mysql://root:p%40ss@h/db?password=x&ssl=1"),
            "mysql://root@h/db?ssl=1"
        );
        assert_eq!(redact("postgres://u@h/db?password=x"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslpassword=x&sslmode=require&Password=y"),
            "postgres://u@h/db?sslmode=require"
        );
        assert_eq!(redact("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
        // Identities pass through whole.
        for identity in [
            "mariadb:0df+IzF/ftiUR9=/vm:3306/kestra",
            "postgres:7301234567890123456/kestra/staging",
            "mysql:3e11fa47-71ca-11e1-9e33-c80aa9429562/kestra",
        ] {
            assert_eq!(redact(identity), identity);
        }
        assert_eq!(redact("sqlite:///tmp/u@x.db"), "sqlite:///tmp/u@x.db");
    }

    #[test]
    fn malformed_and_foreign_urls_lose_their_passwords() {
        // No `//`: the password must not be echoed nor taken for a database.
        let shown = redact("postgres:user:PW-secret@host:5432/db");
        assert!(!shown.contains("PW-secret"), "{shown}");
        let err = Target::parse("postgres:user:PW-secret@host:5432/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`//`") && !err.contains("PW-secret"), "{err}");
        for url in [
            "jdbc:sqlserver://db:1433;databaseName=k;user=sa;password=PW-secret",
            "jdbc:oracle:thin:scott/PW-secret@db:1521:orcl",
        ] {
            let shown = redact(url);
            assert!(!shown.contains("PW-secret"), "{shown}");
            let err = Target::from_jdbc(url, None, None, vec![], "x").unwrap_err();
            assert!(
                !err.contains("PW-secret") && err.contains("not supported"),
                "{err}"
            );
        }
    }

    #[test]
    fn unencoded_delimiters_in_a_password_are_redacted_too() {
        for password in ["pa/ss", "pa#ss", "pa?ss", "p@ss/w@rd", "a:b/c?d#e@f"] {
            let url = format!("postgres://kestra:{password}@db:5432/kestra?sslmode=disable");
            let shown = redact(&url);
            assert_eq!(shown, "postgres://kestra@db:5432/kestra?sslmode=disable");
        }
        // A `@` in a parameter is not taken for the end of a password.
        assert_eq!(
            redact("mysql://root:pw@h/db?application_name=me@corp"),
            "mysql://root@h/db?application_name=me@corp"
        );
        // One in the path is: more than the password goes, never less.
        assert_eq!(redact("mysql://root:p@ss/w@rd@h/db"), "mysql://root@h/db");
    }

    #[test]
    fn schemes_choose_the_backend() {
        assert_eq!(
            Target::parse("sqlite:x.db").unwrap().backend,
            Backend::Sqlite
        );
        assert_eq!(Target::parse("sqlite:x.db").unwrap().sqlite_path(), "x.db");
        assert_eq!(
            Target::parse("sqlite:///tmp/x.db").unwrap().sqlite_path(),
            "/tmp/x.db"
        );
        assert_eq!(
            Target::parse("postgresql://h/d").unwrap().backend,
            Backend::Postgres
        );
        assert_eq!(
            Target::parse("mariadb://h/d").unwrap().display(),
            "mysql://h/d"
        );
        let err = Target::parse("oracle://u:pw@h/d").unwrap_err().to_string();
        assert!(
            err.contains("unknown scheme `oracle`") && !err.contains("pw"),
            "{err}"
        );
    }

    #[test]
    fn connect_options_carry_every_setting() {
        let t = Target::parse(
            "postgres://k:pw@[::1]:6543/db?sslmode=verify-ca&options=-c%20work_mem%3D4MB&application_name=me",
        )
        .unwrap();
        let attempts = t.pg_attempts().unwrap();
        assert_eq!(attempts.len(), 1);
        let o = &attempts[0];
        assert_eq!(o.get_host(), "::1");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_username(), "k");
        assert_eq!(o.get_database(), Some("db"));
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyCa));
        assert_eq!(o.get_application_name(), Some("me"));
        assert!(o.get_options().unwrap().contains("work_mem=4MB"));
        let prefer = Target::parse("postgres://h/db?sslmode=prefer").unwrap();
        let modes: Vec<_> = prefer
            .pg_attempts()
            .unwrap()
            .iter()
            .map(|o| o.get_ssl_mode())
            .collect();
        assert!(matches!(modes[..], [PgSslMode::Prefer, PgSslMode::Disable]));
        let schema = Target::from_jdbc(
            "jdbc:postgresql://h/db?currentSchema=my%20schema",
            None,
            None,
            vec![],
            "x",
        )
        .unwrap();
        let options = schema.pg_attempts().unwrap()[0]
            .get_options()
            .unwrap()
            .to_string();
        assert!(options.contains("-c search_path=my\\ schema"), "{options}");
        let my = Target::parse("mariadb://u:pw@h:3307/db?ssl-mode=VERIFY_IDENTITY")
            .unwrap()
            .mysql_options()
            .unwrap();
        assert_eq!(my.get_port(), 3307);
        assert!(matches!(my.get_ssl_mode(), MySqlSslMode::VerifyIdentity));
    }

    #[test]
    fn jdbc_parameters_reach_the_settings() {
        let t = Target::from_jdbc(
            "jdbc:postgresql://db:5432/kestra?sslmode=verify-full&sslrootcert=/ca.pem&currentSchema=staging&ApplicationName=x",
            Some("kestra"),
            Some("p@ss word"),
            vec![],
            "x",
        )
        .unwrap();
        let s = t.settings();
        assert_eq!(s.tls_mode, Some(TlsMode::VerifyFull));
        assert_eq!(s.tls_ca.as_deref(), Some("/ca.pem"));
        assert_eq!(s.schema.as_deref(), Some("staging"));
        assert_eq!(s.user.as_deref(), Some("kestra"));
        assert_eq!(s.password.as_deref(), Some("p@ss word"));
        assert_eq!(
            t.display(),
            "postgres://kestra@db:5432/kestra?sslmode=verify-full&sslrootcert=/ca.pem&currentSchema=staging&ApplicationName=x"
        );
        let err = Target::from_jdbc(
            "jdbc:postgresql://db/k?user=other",
            Some("kestra"),
            None,
            vec![],
            "x",
        )
        .unwrap_err();
        assert!(err.contains("disagrees"), "{err}");
        let err = Target::from_jdbc("jdbc:postgresql://a:5432,b:5432/k", None, None, vec![], "x")
            .unwrap_err();
        assert!(err.contains("several hosts"), "{err}");
    }
}
