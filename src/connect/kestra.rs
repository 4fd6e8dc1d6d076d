//! Which database, as Kestra would find it: `-c FILE`; else the
//! `KESTRA_CONFIGURATION` environment variable (YAML, as Kestra's docker
//! image hands it to the server); else Kestra's default config path
//! (`$HOME/.kestra/config.yml`) when it exists. Micronaut-style environment
//! variables (`DATASOURCES_POSTGRES_PASSWORD`, ...) override the config's
//! `datasources`; `kestra.repository.type` picks the datasource when there
//! are several. `--database-url` / `DATABASE_URL` name the database
//! directly; giving two sources is a usage error, never a silent choice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::{secrets, Target};
use crate::error::{Error, Result};

/// The SQLite demo store, when nothing names a database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:sync-access-demo.db";

/// What the command line and the environment say about the database.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// `-c FILE`.
    pub config: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--datasource NAME`.
    pub datasource: Option<String>,
    /// Only what the command line and `DATABASE_URL` say, never a Kestra
    /// configuration found in the environment or at the default path:
    /// `demo` creates (and with `--reset` drops) tables, so it must never
    /// land on a production database nobody named.
    pub explicit_only: bool,
}

/// Where the database came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--database-url` or `DATABASE_URL`.
    Url,
    /// A Kestra configuration; says which, for stderr.
    Kestra(String),
    /// Nothing was given: the SQLite demo store.
    Default,
}

/// A database and where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: Target,
    pub origin: Origin,
}

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Kestra's default configuration file: `$HOME/.kestra/config.yml`
/// (Kestra's `-c` defaults to `${user.home}/.kestra/config.yml`).
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".kestra").join("config.yml"))
}

/// Names of the environment variables that override datasources.
fn datasource_overrides(env_vars: &[(String, String)]) -> Vec<&(String, String)> {
    env_vars
        .iter()
        .filter(|(k, _)| k.starts_with("DATASOURCES_"))
        .collect()
}

/// Picks the database from the request and the environment; see the
/// module's documentation for the order and the conflicts.
pub fn resolve(
    request: &Request,
    env: &dyn Fn(&str) -> Option<String>,
    env_vars: &[(String, String)],
) -> Result<Resolved> {
    let env_url = env("DATABASE_URL").filter(|u| !u.is_empty());
    let env_config = env("KESTRA_CONFIGURATION").filter(|c| !c.trim().is_empty());
    let overrides = datasource_overrides(env_vars);
    let env_datasource_url = overrides
        .iter()
        .find(|(k, _)| k.ends_with("_URL"))
        .map(|(k, _)| k.clone());
    let mut given: Vec<String> = Vec::new();
    if let Some(c) = &request.config {
        given.push(format!("-c {}", c.display()));
    }
    if request.database_url.is_some() {
        given.push("--database-url".into());
    }
    if env_url.is_some() {
        given.push("DATABASE_URL (environment)".into());
    }
    let url_given = request.database_url.is_some() || env_url.is_some();
    if request.config.is_some() && url_given {
        return Err(conflict(&given));
    }
    if url_given {
        let mut in_env = Vec::new();
        if env_config.is_some() {
            in_env.push("KESTRA_CONFIGURATION (environment)".to_string());
        }
        if let Some(k) = &env_datasource_url {
            in_env.push(format!("{k} (environment)"));
        }
        if !in_env.is_empty() {
            given.extend(in_env);
            return Err(conflict(&given));
        }
        if request.database_url.is_some() && env_url.is_some() {
            // The flag is the command line's word; say that it won.
            crate::say!(
                "sync-access: --database-url is used; DATABASE_URL in the environment is not"
            );
        }
        let url = request
            .database_url
            .as_ref()
            .or(env_url.as_ref())
            .expect("a URL");
        if request.datasource.is_some() {
            return Err(Error::usage(
                "--datasource picks a datasource of a Kestra configuration; with --database-url or DATABASE_URL there is none",
            ));
        }
        return Ok(Resolved {
            target: Target::parse(url)?,
            origin: Origin::Url,
        });
    }
    let (text, file_name, origin) = if let Some(path) = &request.config {
        if env_config.is_some() {
            crate::say!(
                "sync-access: -c {} is used; KESTRA_CONFIGURATION in the environment is not",
                crate::render::clean(&path.display().to_string())
            );
        }
        (
            Some(super::read_text(path)?),
            path.display().to_string(),
            format!("-c {}", path.display()),
        )
    } else if request.explicit_only {
        if request.datasource.is_some() {
            return Err(Error::usage(
                "--datasource picks a datasource of a Kestra configuration: give the file with -c",
            ));
        }
        return Ok(Resolved {
            target: Target::parse(DEFAULT_DATABASE_URL)?,
            origin: Origin::Default,
        });
    } else if let Some(text) = env_config {
        (
            Some(text),
            "KESTRA_CONFIGURATION".to_string(),
            "KESTRA_CONFIGURATION (environment)".to_string(),
        )
    } else if let Some(path) = default_config_path(env).filter(|p| p.is_file()) {
        (
            Some(super::read_text(&path)?),
            path.display().to_string(),
            format!("{} (Kestra's default config path)", path.display()),
        )
    } else if let Some(k) = &env_datasource_url {
        (
            None,
            "the environment".to_string(),
            format!("{k} (environment)"),
        )
    } else {
        if request.datasource.is_some() {
            return Err(Error::usage(
                "--datasource names a datasource of a Kestra configuration, but none was found (-c FILE, KESTRA_CONFIGURATION, ~/.kestra/config.yml)",
            ));
        }
        return Ok(Resolved {
            target: Target::parse(DEFAULT_DATABASE_URL)?,
            origin: Origin::Default,
        });
    };
    let config = Config::load(text.as_deref(), &file_name, env, &overrides)?;
    let (target, described) = config.target(request.datasource.as_deref())?;
    Ok(Resolved {
        target,
        origin: Origin::Kestra(format!("{origin}, {described}")),
    })
}

fn conflict(given: &[String]) -> Error {
    Error::usage(format!(
        "several sources name the database: {}; give exactly one (unset the environment variable or drop the flag)",
        given.join(", ")
    ))
}

/// A datasource's settings, keys in Micronaut's normalised (kebab-case)
/// form, with where each came from.
#[derive(Debug, Default, Clone)]
struct Datasource {
    fields: BTreeMap<String, String>,
    /// `data-source-properties`: the driver's own properties.
    properties: Vec<(String, String)>,
    /// Environment variables that overrode something, by name.
    overridden_by: Vec<String>,
}

/// The parts of a Kestra configuration that say where the database is.
struct Config {
    file: String,
    datasources: BTreeMap<String, Datasource>,
    repository_type: Option<String>,
}

/// Micronaut's normal form of a property name: kebab-case, lower case
/// (`driverClassName` and `driver-class-name` are one property).
fn normalise(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !out.ends_with('-') {
            out.push('-');
        }
        match c {
            '_' => out.push('-'),
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        _ => None,
    }
}

/// Harmless pool settings of Micronaut's Hikari datasources: logged at `-v`
/// and ignored.
const HARMLESS_DATASOURCE_KEYS: &[&str] = &[
    "maximum-pool-size",
    "minimum-idle",
    "idle-timeout",
    "max-lifetime",
    "keepalive-time",
    "connection-timeout",
    "validation-timeout",
    "leak-detection-threshold",
    "initialization-fail-timeout",
    "pool-name",
    "connection-test-query",
    "auto-commit",
    "isolate-internal-queries",
    "allow-pool-suspension",
    "register-mbeans",
    "transaction-isolation",
    "dialect",
];

impl Config {
    fn load(
        text: Option<&str>,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &[&(String, String)],
    ) -> Result<Config> {
        let bad = |msg: String| Error::usage(format!("{file}: {msg}"));
        let mut config = Config {
            file: file.to_string(),
            datasources: BTreeMap::new(),
            repository_type: None,
        };
        if let Some(text) = text {
            let docs =
                YamlLoader::load_from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
            let root = docs.first().ok_or_else(|| bad("is empty".into()))?;
            config.repository_type = scalar(&root["kestra"]["repository"]["type"]);
            match &root["datasources"] {
                Yaml::Hash(h) => {
                    for (name, source) in h {
                        let name = scalar(name).unwrap_or_default();
                        let Yaml::Hash(fields) = source else {
                            return Err(bad(format!("`datasources.{name}` is not a map")));
                        };
                        let mut ds = Datasource::default();
                        for (key, value) in fields {
                            let key = scalar(key).unwrap_or_default();
                            let norm = normalise(&key);
                            if norm == "data-source-properties" {
                                let Yaml::Hash(props) = value else {
                                    return Err(bad(format!(
                                        "`datasources.{name}.{key}` is not a map"
                                    )));
                                };
                                for (k, v) in props {
                                    let k = scalar(k).unwrap_or_default();
                                    let v = scalar(v).ok_or_else(|| {
                                        bad(format!(
                                            "`datasources.{name}.{key}.{k}` is not a single value"
                                        ))
                                    })?;
                                    let v = expand(&v, env).map_err(|e| {
                                        bad(format!("`datasources.{name}.{key}.{k}`: {e}"))
                                    })?;
                                    ds.properties.push((k, v));
                                }
                                continue;
                            }
                            match value {
                                Yaml::Null => {}
                                value => {
                                    let v = scalar(value).ok_or_else(|| {
                                        bad(format!("`datasources.{name}.{key}` is not a string"))
                                    })?;
                                    let v = expand(&v, env).map_err(|e| {
                                        bad(format!("`datasources.{name}.{key}`: {e}"))
                                    })?;
                                    ds.fields.insert(norm, v);
                                }
                            }
                        }
                        config.datasources.insert(name, ds);
                    }
                }
                Yaml::BadValue if overrides.is_empty() => {
                    return Err(bad("no `datasources` key".into()))
                }
                Yaml::BadValue => {}
                _ => return Err(bad("`datasources` is not a map of datasources".into())),
            }
        }
        if let Some(t) = env("KESTRA_REPOSITORY_TYPE") {
            config.repository_type = Some(t);
        }
        config.apply_overrides(overrides);
        if config.datasources.is_empty() {
            return Err(bad("`datasources` is empty".into()));
        }
        Ok(config)
    }

    /// Micronaut maps `DATASOURCES_MY_DB_PASSWORD` to
    /// `datasources.my-db.password` (and every other split of the words):
    /// the datasource is the longest run of words naming an existing one,
    /// else the shortest run followed by a known setting, else the first
    /// word.
    fn apply_overrides(&mut self, overrides: &[&(String, String)]) {
        for (name, value) in overrides {
            let words: Vec<String> = name
                .to_ascii_lowercase()
                .split('_')
                .skip(1)
                .map(str::to_string)
                .collect();
            if words.len() < 2 {
                continue;
            }
            let known_key = |key: &str| {
                matches!(
                    key,
                    "url" | "username" | "password" | "driver-class-name" | "schema"
                ) || key.starts_with("data-source-properties-")
                    || HARMLESS_DATASOURCE_KEYS.contains(&key)
            };
            let split = (1..words.len())
                .rev()
                .find(|&i| {
                    let candidate = words[..i].join("-");
                    self.datasources.keys().any(|k| normalise(k) == candidate)
                })
                .or_else(|| (1..words.len()).find(|&i| known_key(&words[i..].join("-"))))
                .unwrap_or(1);
            let candidate = words[..split].join("-");
            let ds_name = self
                .datasources
                .keys()
                .find(|k| normalise(k) == candidate)
                .cloned()
                .unwrap_or(candidate);
            let key = words[split..].join("-");
            if key.contains("password") {
                secrets::register(value);
            }
            let ds = self.datasources.entry(ds_name).or_default();
            if let Some(prop) = key.strip_prefix("data-source-properties-") {
                ds.properties.retain(|(k, _)| !k.eq_ignore_ascii_case(prop));
                ds.properties.push((prop.to_string(), value.clone()));
            } else {
                ds.fields.insert(key, value.clone());
            }
            ds.overridden_by.push(name.clone());
        }
    }

    /// The datasource to use: `--datasource`, else the only one, else the
    /// one `kestra.repository.type` names.
    fn choose(&self, wanted: Option<&str>) -> Result<(&String, &Datasource)> {
        let names = || {
            self.datasources
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bad = |msg: String| Error::usage(format!("{}: {msg}", self.file));
        if let Some(wanted) = wanted {
            return self.datasources.get_key_value(wanted).ok_or_else(|| {
                bad(format!(
                    "no datasource `{}`; the datasources are {}",
                    crate::render::clean(wanted),
                    names()
                ))
            });
        }
        if self.datasources.len() == 1 {
            return Ok(self.datasources.iter().next().expect("one datasource"));
        }
        match &self.repository_type {
            Some(t) => self.datasources.get_key_value(t.as_str()).ok_or_else(|| {
                bad(format!(
                    "kestra.repository.type is `{}` but there is no `datasources.{}`; the datasources are {}; choose one with --datasource",
                    crate::render::clean(t),
                    crate::render::clean(t),
                    names()
                ))
            }),
            None => Err(bad(format!(
                "several datasources ({}) and no kestra.repository.type; choose one with --datasource",
                names()
            ))),
        }
    }

    fn target(&self, wanted: Option<&str>) -> Result<(Target, String)> {
        let (name, ds) = self.choose(wanted)?;
        let bad = |msg: String| Error::usage(format!("{}: {msg}", self.file));
        let key = |k: &str| format!("datasources.{name}.{k}");
        let mut properties = ds.properties.clone();
        for (field, value) in &ds.fields {
            match field.as_str() {
                "url" | "username" | "password" | "driver-class-name" => {}
                "schema" => properties.push(("currentSchema".into(), value.clone())),
                f if HARMLESS_DATASOURCE_KEYS.contains(&f) => tracing::info!(
                    "ignoring `{}`: a connection pool setting",
                    crate::render::clean(&key(f))
                ),
                f => {
                    return Err(bad(format!(
                        "`{}` is not supported: sync-access honours every datasource setting it accepts (url, username, password, driver-class-name, schema, data-source-properties, and pool settings it ignores)",
                        crate::render::clean(&key(f))
                    )))
                }
            }
        }
        let url = ds
            .fields
            .get("url")
            .ok_or_else(|| bad(format!("`{}` is missing", key("url"))))?;
        if let Some(driver) = ds.fields.get("driver-class-name") {
            check_driver(driver, url)
                .map_err(|e| bad(format!("`{}`: {e}", key("driver-class-name"))))?;
        }
        let target = Target::from_jdbc(
            url,
            ds.fields.get("username").map(String::as_str),
            ds.fields.get("password").map(String::as_str),
            properties,
            &key("data-source-properties"),
        )
        .map_err(|e| bad(format!("`{}`: {e}", key("url"))))?;
        if target.backend == super::Backend::MySql && target.settings().schema.is_some() {
            return Err(bad(format!(
                "`{}`: MySQL and MariaDB have no schemas within a database: name the database in the URL",
                key("schema")
            )));
        }
        let mut described = format!("datasource `{name}`");
        if !ds.overridden_by.is_empty() {
            described.push_str(&format!(
                " with {} from the environment",
                ds.overridden_by.join(", ")
            ));
        }
        Ok((target, described))
    }
}

/// The driver class must be one that speaks the URL's protocol.
fn check_driver(driver: &str, url: &str) -> std::result::Result<(), String> {
    let url = url.to_ascii_lowercase();
    let fits = match driver {
        "org.postgresql.Driver" => url.starts_with("jdbc:postgresql:"),
        "org.mariadb.jdbc.Driver" => {
            url.starts_with("jdbc:mariadb:") || url.starts_with("jdbc:mysql:")
        }
        "com.mysql.cj.jdbc.Driver" | "com.mysql.jdbc.Driver" => url.starts_with("jdbc:mysql:"),
        "org.h2.Driver" => {
            return Err("H2 is not supported: sync-access works on PostgreSQL, MySQL/MariaDB and SQLite".into())
        }
        other => {
            return Err(format!(
                "driver `{}` is not supported (org.postgresql.Driver, org.mariadb.jdbc.Driver, com.mysql.cj.jdbc.Driver)",
                crate::render::clean(other)
            ))
        }
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "driver `{driver}` does not speak the URL's protocol"
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::TlsMode;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolve_text(
        yaml: &'static str,
        env: &'static [(&'static str, &'static str)],
        datasource: Option<&str>,
    ) -> Result<Resolved> {
        let mut all = vec![("KESTRA_CONFIGURATION", yaml)];
        all.extend_from_slice(env);
        let all: &'static [(&str, &str)] = Box::leak(all.into_boxed_slice());
        resolve(
            &Request {
                datasource: datasource.map(str::to_string),
                ..Request::default()
            },
            &env_of(all),
            &vars(all),
        )
    }

    #[test]
    fn kestra_config_with_placeholders() {
        let yaml = "datasources:\n  postgres:\n    url: jdbc:postgresql://${DB_HOST:localhost}:5432/kestra?sslmode=disable\n    driverClassName: org.postgresql.Driver\n    username: kestra\n    password: ${DB_PASS}\n";
        let r = resolve_text(yaml, &[("DB_PASS", "p@ss word")], None).unwrap();
        assert_eq!(r.target.settings().password.as_deref(), Some("p@ss word"));
        assert_eq!(
            r.target.display(),
            "postgres://kestra@localhost:5432/kestra?sslmode=disable"
        );
        assert!(matches!(&r.origin, Origin::Kestra(o) if o.contains("KESTRA_CONFIGURATION")));
        let err = resolve_text(yaml, &[], None).unwrap_err().to_string();
        assert!(
            err.contains("KESTRA_CONFIGURATION")
                && err.contains("datasources.postgres.password")
                && err.contains("DB_PASS"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_and_repository_type_pick_the_datasource() {
        let yaml = "kestra:\n  repository:\n    type: postgres\ndatasources:\n  h2:\n    url: jdbc:h2:mem:x\n  postgres:\n    url: jdbc:postgresql://db/kestra\n    driver-class-name: org.postgresql.Driver\n    username: kestra\n    password: old\n";
        let r = resolve_text(
            yaml,
            &[
                ("DATASOURCES_POSTGRES_PASSWORD", "new-secret"),
                (
                    "DATASOURCES_POSTGRES_DATA_SOURCE_PROPERTIES_SSLMODE",
                    "require",
                ),
            ],
            None,
        )
        .unwrap();
        assert_eq!(r.target.settings().password.as_deref(), Some("new-secret"));
        assert_eq!(r.target.settings().tls_mode, Some(TlsMode::Require));
        let Origin::Kestra(origin) = &r.origin else {
            panic!()
        };
        assert!(
            origin.contains("DATASOURCES_POSTGRES_PASSWORD") && !origin.contains("new-secret"),
            "{origin}"
        );
        let err = resolve_text(yaml, &[], Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`h2`, `postgres`"), "{err}");
    }

    #[test]
    fn a_config_from_the_environment_alone() {
        let r = resolve(
            &Request::default(),
            &env_of(&[]),
            &vars(&[
                (
                    "DATASOURCES_MY_DB_URL",
                    "jdbc:mysql://db:3306/kestra?sslMode=REQUIRED",
                ),
                ("DATASOURCES_MY_DB_USERNAME", "k"),
            ]),
        )
        .unwrap();
        assert_eq!(r.target.backend, crate::connect::Backend::MySql);
        assert_eq!(r.target.settings().tls_mode, Some(TlsMode::Require));
    }

    #[test]
    fn two_sources_are_a_usage_error_naming_them() {
        let err = resolve(
            &Request {
                config: Some("c.yml".into()),
                database_url: Some("sqlite:x.db".into()),
                ..Request::default()
            },
            &env_of(&[]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("-c c.yml") && err.contains("--database-url"),
            "{err}"
        );
        let err = resolve(
            &Request::default(),
            &env_of(&[
                ("DATABASE_URL", "sqlite:x.db"),
                ("KESTRA_CONFIGURATION", "datasources: {}"),
            ]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("DATABASE_URL") && err.contains("KESTRA_CONFIGURATION"),
            "{err}"
        );
    }

    #[test]
    fn demo_never_lands_on_a_configuration_nobody_named() {
        let r = resolve(
            &Request {
                explicit_only: true,
                ..Request::default()
            },
            &env_of(&[(
                "KESTRA_CONFIGURATION",
                "datasources:\n  pg:\n    url: jdbc:postgresql://prod/k\n",
            )]),
            &vars(&[("DATASOURCES_PG_URL", "jdbc:postgresql://prod/k")]),
        )
        .unwrap();
        assert_eq!(r.origin, Origin::Default);
        assert_eq!(r.target.display(), DEFAULT_DATABASE_URL);
    }

    #[test]
    fn unknown_datasource_settings_and_drivers_are_refused() {
        let err = resolve_text(
            "datasources:\n  pg:\n    url: jdbc:postgresql://db/k\n    connection-init-sql: SET x\n",
            &[],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("datasources.pg.connection-init-sql"), "{err}");
        let err = resolve_text(
            "datasources:\n  pg:\n    url: jdbc:postgresql://db/k\n    driverClassName: com.mysql.cj.jdbc.Driver\n",
            &[],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not speak"), "{err}");
        assert_eq!(normalise("driverClassName"), "driver-class-name");
        assert_eq!(normalise("driver_class_name"), "driver-class-name");
    }

    #[test]
    fn kestra_config_errors_name_the_source_and_key() {
        let err = resolve_text(
            "datasources:\n  h2:\n    url: jdbc:h2:mem:public\n",
            &[],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not supported"), "{err}");
        let err = resolve_text("kestra: {}\n", &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `datasources`"), "{err}");
        let err = resolve_text("datasources:\n  pg:\n    username: x\n", &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("datasources.pg.url` is missing"), "{err}");
        let err = resolve_text(": : :\n  - [", &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid YAML"), "{err}");
    }
}
