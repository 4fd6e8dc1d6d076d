//! Where the store is: `--database-url`, `DATABASE_URL` or a Kestra
//! `config.yml` (SPEC §7). Passwords are kept out of everything printable:
//! [`Target::display`] is the only form that reaches logs, errors and plans.

use std::fmt;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{Error, Result};

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
    /// The URL to connect with; may hold a password: never print it.
    url: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("backend", &self.backend)
            .field("url", &self.display())
            .finish()
    }
}

impl Target {
    /// Parses `sqlite:PATH`, `postgres://...`, `postgresql://...`,
    /// `mysql://...` or `mariadb://...`.
    pub fn parse(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or("");
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            "jdbc" => {
                return Err(Error::usage(format!(
                    "database URL `{}`: JDBC URLs go in a Kestra config (-c); pass postgres://, mysql:// or sqlite: here",
                    redact(url)
                )))
            }
            _ => {
                return Err(Error::usage(format!(
                    "database URL `{}`: unknown scheme `{scheme}` (expected sqlite:, postgres:// or mysql://)",
                    redact(url)
                )))
            }
        };
        let url = if scheme == "mariadb" {
            format!("mysql{}", &url["mariadb".len()..])
        } else {
            url.to_string()
        };
        Ok(Target { backend, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its password, for display and for plans.
    pub fn display(&self) -> String {
        redact(&self.url)
    }

    /// For SQLite: the file path of the URL.
    pub fn sqlite_path(&self) -> &str {
        let rest = self.url.strip_prefix("sqlite:").unwrap_or(&self.url);
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        rest.split('?').next().unwrap_or(rest)
    }
}

/// Removes the password from `scheme://user:password@host/...` and from
/// `password=` query parameters.
///
/// The userinfo is taken to end at the *last* `@` of the URL, not at the
/// last `@` before the first `/`, `?` or `#` as a URL parser would: a
/// password with one of those characters left unencoded (`pa/ss`, `pa#ss`)
/// makes the URL malformed, and its error message must not print it. A `@`
/// in the path or query makes this remove more than the password, which is
/// the safe side.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    let scheme = out.split(':').next().unwrap_or("");
    if let Some(scheme_end) = out.find("://").filter(|_| scheme != "sqlite") {
        let authority_start = scheme_end + 3;
        if let Some(at) = out[authority_start..].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(authority_start + colon..authority_start + at, "");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| {
                let name = p.split('=').next().unwrap_or("").to_ascii_lowercase();
                !matches!(name.as_str(), "password" | "pass" | "pwd")
            })
            .collect();
        out = if kept.is_empty() {
            base[..base.len() - 1].to_string()
        } else {
            format!("{base}{}", kept.join("&"))
        };
    }
    out
}

/// Reads `datasources.<name>` of a Kestra config: the first datasource, or
/// the one named `datasource` when there are several.
pub fn from_kestra_config(path: &Path, datasource: Option<&str>) -> Result<Target> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    from_kestra_config_text(&text, &path.display().to_string(), datasource, &|name| {
        std::env::var(name).ok()
    })
}

pub fn from_kestra_config_text(
    text: &str,
    file: &str,
    datasource: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target> {
    let bad = |msg: String| Error::usage(format!("{file}: {msg}"));
    let docs = YamlLoader::load_from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let root = docs.first().ok_or_else(|| bad("is empty".into()))?;
    let sources = match &root["datasources"] {
        Yaml::Hash(h) if !h.is_empty() => h,
        Yaml::BadValue => return Err(bad("no `datasources` key".into())),
        _ => return Err(bad("`datasources` is not a map of datasources".into())),
    };
    let (name, source) = match datasource {
        Some(wanted) => sources
            .iter()
            .find(|(k, _)| k.as_str() == Some(wanted))
            .ok_or_else(|| bad(format!("no datasource `datasources.{wanted}`")))?,
        None if sources.len() == 1 => sources.iter().next().expect("one datasource"),
        None => {
            let names: Vec<&str> = sources.keys().filter_map(|k| k.as_str()).collect();
            return Err(bad(format!(
                "several datasources ({}); choose one with --datasource",
                names.join(", ")
            )));
        }
    };
    let name = name.as_str().unwrap_or("?");
    let field = |key: &str| -> Result<Option<String>> {
        match &source[key] {
            Yaml::BadValue | Yaml::Null => Ok(None),
            Yaml::String(s) => expand(s, env)
                .map(Some)
                .map_err(|e| bad(format!("`datasources.{name}.{key}`: {e}"))),
            Yaml::Integer(i) => Ok(Some(i.to_string())),
            _ => Err(bad(format!("`datasources.{name}.{key}` is not a string"))),
        }
    };
    let jdbc = field("url")?.ok_or_else(|| bad(format!("`datasources.{name}.url` is missing")))?;
    let username = field("username")?;
    let password = field("password")?;
    jdbc_to_target(&jdbc, username.as_deref(), password.as_deref())
        .map_err(|e| bad(format!("`datasources.{name}.url`: {e}")))
}

/// Expands `${NAME}` and `${NAME:default}` as Micronaut does.
fn expand(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated `${` placeholder")?;
        let inner = &after[..end];
        let (name, default) = match inner.find(':') {
            Some(i) => (&inner[..i], Some(&inner[i + 1..])),
            None => (inner, None),
        };
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set and has no default"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn jdbc_to_target(
    jdbc: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> std::result::Result<Target, String> {
    let (scheme, rest) = if let Some(rest) = jdbc.strip_prefix("jdbc:postgresql://") {
        ("postgres", rest)
    } else if let Some(rest) = jdbc.strip_prefix("jdbc:mysql://") {
        ("mysql", rest)
    } else if let Some(rest) = jdbc.strip_prefix("jdbc:mariadb://") {
        ("mysql", rest)
    } else if jdbc.starts_with("jdbc:h2:") {
        return Err("H2 (`jdbc:h2:`) is not supported: sync-access works on PostgreSQL, MySQL/MariaDB and SQLite".into());
    } else {
        return Err(format!(
            "`{}` is not a jdbc:postgresql:// or jdbc:mysql:// URL",
            redact(jdbc)
        ));
    };
    let mut userinfo = String::new();
    if let Some(user) = username.filter(|u| !u.is_empty()) {
        userinfo.push_str(&percent_encode(user));
        if let Some(pass) = password.filter(|p| !p.is_empty()) {
            userinfo.push(':');
            userinfo.push_str(&percent_encode(pass));
        }
        userinfo.push('@');
    }
    // JDBC query parameters (sslmode, ...) differ from the drivers' here;
    // keep only the host, port and database.
    let rest = rest.split(['?', ';']).next().unwrap_or(rest);
    Target::parse(&format!("{scheme}://{userinfo}{rest}")).map_err(|e| e.to_string())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

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
        assert_eq!(redact("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
        assert_eq!(redact("sqlite:///tmp/u@x.db"), "sqlite:///tmp/u@x.db");
    }

    #[test]
    fn unencoded_delimiters_in_a_password_are_redacted_too() {
        for password in ["pa/ss", "pa#ss", "pa?ss", "p@ss/w@rd", "a:b/c?d#e@f"] {
            let url = format!("postgres://kestra:{password}@db:5432/kestra?sslmode=disable");
            let shown = redact(&url);
            assert_eq!(shown, "postgres://kestra@db:5432/kestra?sslmode=disable");
            assert_eq!(Target::parse(&url).unwrap().display(), shown);
        }
        // A `@` after the host: more than the password goes, never less.
        assert_eq!(
            redact("mysql://root:pw@h/db?application_name=me@corp"),
            "mysql://root@corp"
        );
    }

    #[test]
    fn schemes_choose_the_backend() {
        assert_eq!(
            Target::parse("sqlite:x.db").unwrap().backend,
            Backend::Sqlite
        );
        assert_eq!(
            Target::parse("postgresql://h/d").unwrap().backend,
            Backend::Postgres
        );
        assert_eq!(Target::parse("mariadb://h/d").unwrap().url(), "mysql://h/d");
        let err = Target::parse("oracle://u:pw@h/d").unwrap_err().to_string();
        assert!(
            err.contains("unknown scheme `oracle`") && !err.contains("pw"),
            "{err}"
        );
    }

    #[test]
    fn kestra_config_with_placeholders() {
        let yaml = "datasources:\n  postgres:\n    url: jdbc:postgresql://${DB_HOST:localhost}:5432/kestra?sslmode=disable\n    driverClassName: org.postgresql.Driver\n    username: kestra\n    password: ${DB_PASS}\n";
        let env = |name: &str| (name == "DB_PASS").then(|| "p@ss word".to_string());
        let target = from_kestra_config_text(yaml, "config.yml", None, &env).unwrap();
        assert_eq!(
            target.url(),
            "postgres://kestra:p%40ss%20word@localhost:5432/kestra"
        );
        assert_eq!(target.display(), "postgres://kestra@localhost:5432/kestra");
        let err = from_kestra_config_text(yaml, "config.yml", None, &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.yml")
                && err.contains("datasources.postgres.password")
                && err.contains("DB_PASS"),
            "{err}"
        );
    }

    #[test]
    fn kestra_config_errors_name_the_file_and_key() {
        let h2 = "datasources:\n  h2:\n    url: jdbc:h2:mem:public\n";
        let err = from_kestra_config_text(h2, "c.yml", None, &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yml") && err.contains("not supported"),
            "{err}"
        );
        let err = from_kestra_config_text("kestra: {}\n", "c.yml", None, &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `datasources`"), "{err}");
        let err = from_kestra_config_text(
            "datasources:\n  pg:\n    username: x\n",
            "c.yml",
            None,
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("datasources.pg.url` is missing"), "{err}");
        let err = from_kestra_config_text(": : :\n  - [", "c.yml", None, &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid YAML"), "{err}");
    }
}
