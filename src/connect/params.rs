//! Connection parameters: what a URL's query (or a Kestra datasource) says,
//! in each vocabulary the tool accepts, turned into one [`Settings`].
//!
//! Every parameter is honoured or refused, never dropped: a parameter the
//! tool cannot honour that bears on security or on where the data is gets
//! an error naming it; so does an unknown one, unless it is on the list of
//! harmless ones (encoding, time zone, batching and caching hints...), which
//! are logged at `-v` and ignored.

use std::time::Duration;

use super::secrets;

/// Where a parameter came from decides its vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// `postgres://...`: libpq's names (as sqlx reads them).
    PgUrl,
    /// `jdbc:postgresql://...`: pgjdbc's names.
    PgJdbc,
    /// `mysql://...`: the MySQL client's and sqlx's names.
    MySqlUrl,
    /// `jdbc:mysql://` or `jdbc:mariadb://`: MySQL Connector/J's and
    /// MariaDB Connector/J's names, both.
    MySqlJdbc { mariadb: bool },
}

impl Vocabulary {
    fn is_pg(self) -> bool {
        matches!(self, Vocabulary::PgUrl | Vocabulary::PgJdbc)
    }
}

/// How much TLS: libpq's six `sslmode`s; MySQL's five `ssl-mode`s map onto
/// them (PREFERRED = prefer, REQUIRED = require, VERIFY_CA = verify-ca,
/// VERIFY_IDENTITY = verify-full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Plaintext first; TLS only when the server refuses plaintext.
    Allow,
    /// TLS when the server offers it, without checking its certificate;
    /// plaintext when it refuses TLS.
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS, with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, with a trusted certificate for the host name connected to.
    VerifyFull,
}

impl TlsMode {
    pub fn parse_pg(value: &str) -> Option<TlsMode> {
        Some(match value {
            "disable" => TlsMode::Disable,
            "allow" => TlsMode::Allow,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }

    /// MySQL's `ssl-mode` (any case) and MariaDB Connector/J 3's `sslMode`.
    pub fn parse_mysql(value: &str) -> Option<TlsMode> {
        Some(
            match value.to_ascii_uppercase().replace('-', "_").as_str() {
                "DISABLED" | "DISABLE" => TlsMode::Disable,
                "PREFERRED" => TlsMode::Prefer,
                "REQUIRED" | "TRUST" => TlsMode::Require,
                "VERIFY_CA" => TlsMode::VerifyCa,
                "VERIFY_IDENTITY" | "VERIFY_FULL" => TlsMode::VerifyFull,
                _ => return None,
            },
        )
    }

    pub fn as_pg(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Allow => "allow",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Everything a database URL (and the Kestra datasource around it) says
/// about the connection, in one vocabulary.
#[derive(Default, Clone)]
pub struct Settings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<String>,
    pub user: Option<String>,
    /// Never printed: see [`super::Target::display`].
    pub password: Option<String>,
    pub database: Option<String>,
    pub tls_mode: Option<TlsMode>,
    /// A PEM file (or PEM text) of CA certificates to trust, beside the
    /// platform's roots.
    pub tls_ca: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// PostgreSQL: the schema search path to set (`currentSchema`).
    pub schema: Option<String>,
    /// PostgreSQL: command-line options for the server (`options`).
    pub pg_options: Vec<String>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    /// Harmless parameters that were ignored, for the `-v` log.
    pub ignored: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("tls_mode", &self.tls_mode)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// JDBC's older TLS switches, resolved into a mode once all are read.
#[derive(Default)]
struct LegacyTls {
    /// pgjdbc `ssl`: `Some(true)` for `ssl`, `ssl=` or `ssl=true`.
    pg_ssl: Option<bool>,
    pg_non_validating: bool,
    use_ssl: Option<bool>,
    require_ssl: Option<bool>,
    verify_server_certificate: Option<bool>,
    trust_server_certificate: Option<bool>,
    disable_hostname_verification: Option<bool>,
}

/// Names of parameters that carry a secret: never printed, whatever their
/// spelling (`password`, `sslpassword`, `trustCertificateKeyStorePassword`...).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace(['-', '_', '.'], "");
    n.contains("password")
        || n.contains("passwd")
        || n.contains("secret")
        || n.contains("token")
        || matches!(n.as_str(), "pass" | "pwd")
}

/// Harmless parameters: they tune encoding, time zones, statement caches,
/// batching, keep-alives or logging, never security nor where the data is.
/// They are logged at `-v` and ignored. Compared without case.
const HARMLESS_PG: &[&str] = &[
    // libpq
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslcompression",
    "sslsni",
    "fallback_application_name",
    "statement-cache-capacity",
    "client_encoding",
    // pgjdbc
    "prepareThreshold",
    "preparedStatementCacheQueries",
    "preparedStatementCacheSizeMiB",
    "defaultRowFetchSize",
    "reWriteBatchedInserts",
    "binaryTransfer",
    "binaryTransferEnable",
    "binaryTransferDisable",
    "tcpKeepAlive",
    "tcpNoDelay",
    "socketTimeout",
    "loginTimeout",
    "cancelSignalTimeout",
    "sslResponseTimeout",
    "loggerLevel",
    "loggerFile",
    "logUnclosedConnections",
    "stringtype",
    "assumeMinServerVersion",
    "allowEncodingChanges",
    "autosave",
    "cleanupSavepoints",
    "receiveBufferSize",
    "sendBufferSize",
    "maxResultBuffer",
    "adaptiveFetch",
    "adaptiveFetchMinimum",
    "adaptiveFetchMaximum",
    "escapeSyntaxCallMode",
    "hideUnprivilegedObjects",
    "logServerErrorDetail",
    "quoteReturningIdentifiers",
    "disableColumnSanitiser",
    "databaseMetadataCacheFields",
    "databaseMetadataCacheFieldsMiB",
];

const HARMLESS_MYSQL: &[&str] = &[
    // sqlx / the MySQL client
    "charset",
    "collation",
    "statement-cache-capacity",
    "timezone",
    "time-zone",
    // Connector/J and MariaDB Connector/J
    "characterEncoding",
    "useUnicode",
    "connectionCollation",
    "serverTimezone",
    "connectionTimeZone",
    "forceConnectionTimeZoneToSession",
    "preserveInstants",
    "useLegacyDatetimeCode",
    "useTimezone",
    "useJDBCCompliantTimezoneShift",
    "zeroDateTimeBehavior",
    "tinyInt1isBit",
    "transformedBitIsBoolean",
    "rewriteBatchedStatements",
    "useBulkStmts",
    "useBatchMultiSend",
    "cachePrepStmts",
    "prepStmtCacheSize",
    "prepStmtCacheSqlLimit",
    "useServerPrepStmts",
    "cacheServerConfiguration",
    "cacheResultSetMetadata",
    "cacheCallableStmts",
    "elideSetAutoCommits",
    "useLocalSessionState",
    "useLocalTransactionState",
    "maintainTimeStats",
    "socketTimeout",
    "tcpKeepAlive",
    "tcpNoDelay",
    "autoReconnect",
    "maxReconnects",
    "initialTimeout",
    "allowPublicKeyRetrieval",
    "allowMultiQueries",
    "useCompression",
    "useAffectedRows",
    "useInformationSchema",
    "nullCatalogMeansCurrent",
    "nullDatabaseMeansCurrent",
    "logger",
    "profileSQL",
    "dumpQueriesOnException",
    "defaultFetchSize",
    "useCursorFetch",
    "jdbcCompliantTruncation",
    "permitMysqlScheme",
];

/// Parameters known to bear on security or on where the data is, that the
/// tool cannot honour: refused with the reason.
fn unsupported(vocab: Vocabulary, name: &str, value: &str) -> Option<String> {
    let n = name.to_ascii_lowercase();
    let keystore = "a Java keystore cannot be read here: export the CA certificate as PEM \
         (keytool -exportcert -rfc -alias ALIAS -keystore FILE) and name that file instead";
    let why = match n.as_str() {
        "sslpassword" => "encrypted client keys are not supported: give an unencrypted PEM key (sslkey)".to_string(),
        "sslcrl" | "sslcrldir" => "certificate revocation lists are not supported".to_string(),
        "sslhostnameverifier" => "a custom Java hostname verifier cannot run here: use sslmode=verify-ca or verify-full".to_string(),
        "sslfactoryarg" => "a custom Java SSL factory cannot run here".to_string(),
        "sslcertmode" if value != "allow" && value != "disable" => {
            "sslcertmode=require is not supported".to_string()
        }
        "gssencmode" | "gssencmode_" if value == "require" => {
            "GSSAPI encryption is not supported: use TLS (sslmode)".to_string()
        }
        "channel_binding" | "channelbinding" if value == "require" => {
            "SCRAM channel binding is not supported".to_string()
        }
        "target_session_attrs" | "targetservertype"
            if !matches!(value, "any" | "read-write" | "primary" | "master") =>
        {
            "only a primary (read-write) server can be planned and applied on".to_string()
        }
        "ssl_min_protocol_version" | "sslminprotocolversion" if value.eq_ignore_ascii_case("TLSv1.3") => {
            "TLS 1.3 as a minimum cannot be enforced (TLS 1.2 is the floor here)".to_string()
        }
        "trustcertificatekeystoreurl" | "truststore" => keystore.to_string(),
        "clientcertificatekeystoreurl" | "keystore" => {
            "a Java keystore cannot be read here: export the client certificate and key as PEM files \
             and use a postgres:// or mysql:// URL with ssl-cert and ssl-key"
                .to_string()
        }
        "sslfactory" if !value.ends_with(".NonValidatingFactory") && !value.ends_with(".DefaultJavaSSLFactory") => {
            "a custom Java SSL factory cannot run here".to_string()
        }
        "servicefile" | "service" | "passfile" => format!("`{name}` files are not read: put the settings in the URL"),
        "sessionvariables" | "connectioninitsql" | "initsql" => {
            "session statements are not run: they could change what is read and written".to_string()
        }
        "readonly" if value != "false" => "sync-access decides itself when a connection is read-only".to_string(),
        "hamode" | "failoverreadonly" | "loadbalancehosts" | "loadbalancestrategy" => {
            "failover and load balancing are not supported: name the primary server".to_string()
        }
        "database" | "dbname" if !vocab.is_pg() => {
            "name the database in the URL's path".to_string()
        }
        "schema" if vocab.is_pg() => "use currentSchema".to_string(),
        _ => return None,
    };
    Some(why)
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!(
            "parameter `{name}`: `{value}` is not true or false"
        )),
    }
}

fn parse_secs(name: &str, value: &str, unit_ms: bool) -> Result<Option<Duration>, String> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("parameter `{name}`: `{value}` is not a number"))?;
    // 0 means "no limit" to libpq and the JDBC drivers: --connect-timeout
    // then bounds the wait.
    Ok((n > 0).then(|| {
        if unit_ms {
            Duration::from_millis(n)
        } else {
            Duration::from_secs(n)
        }
    }))
}

impl Settings {
    /// Applies every `(name, value)` of a query, in `vocab`; `origin` names
    /// where they come from in errors ("the URL", "datasources.pg.url").
    pub fn apply_params(
        &mut self,
        vocab: Vocabulary,
        params: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<(), String> {
        let mut legacy = LegacyTls::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in params {
            if is_secret_name(&name) {
                secrets::register(&value);
            }
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(format!("parameter `{name}` is given twice in {origin}"));
            }
            seen.push(lower);
            self.apply_param(vocab, &name, &value, &mut legacy)
                .map_err(|e| format!("{e} (in {origin})"))?;
        }
        self.resolve_legacy_tls(vocab, legacy);
        Ok(())
    }

    fn set_once(
        slot: &mut Option<String>,
        name: &str,
        value: &str,
        secret: bool,
    ) -> Result<(), String> {
        match slot {
            Some(old) if old != value => Err(if secret {
                format!("parameter `{name}` disagrees with the password given elsewhere")
            } else {
                format!("parameter `{name}` (`{value}`) disagrees with `{old}` given elsewhere")
            }),
            _ => {
                *slot = Some(value.to_string());
                Ok(())
            }
        }
    }

    fn apply_param(
        &mut self,
        vocab: Vocabulary,
        name: &str,
        value: &str,
        legacy: &mut LegacyTls,
    ) -> Result<(), String> {
        use Vocabulary::*;
        if let Some(why) = unsupported(vocab, name, value) {
            return Err(format!("parameter `{name}` is not supported: {why}"));
        }
        let lower = name.to_ascii_lowercase();
        let bad_mode =
            |expected: &str| format!("parameter `{name}`: `{value}` is not one of {expected}");
        match (vocab, lower.as_str()) {
            // Credentials and place, in every vocabulary.
            (_, "user") => Self::set_once(&mut self.user, name, value, false)?,
            (_, "password") => Self::set_once(&mut self.password, name, value, true)?,
            (PgUrl, "host") if value.starts_with('/') => self.socket = Some(value.to_string()),
            (PgUrl, "host" | "hostaddr") => self.host = Some(value.to_string()),
            (PgUrl, "port") => {
                self.port = Some(
                    value
                        .parse()
                        .map_err(|_| format!("parameter `{name}`: `{value}` is not a port"))?,
                )
            }
            (PgUrl, "dbname") => Self::set_once(&mut self.database, name, value, false)?,
            (MySqlUrl, "socket") => self.socket = Some(value.to_string()),
            // PostgreSQL TLS.
            (PgUrl | PgJdbc, "sslmode" | "ssl-mode") => {
                self.tls_mode = Some(TlsMode::parse_pg(value).ok_or_else(|| {
                    bad_mode("disable, allow, prefer, require, verify-ca, verify-full")
                })?)
            }
            (PgJdbc, "ssl") => legacy.pg_ssl = Some(parse_bool(name, value)?),
            (PgJdbc, "sslfactory") => {
                legacy.pg_non_validating = value.ends_with(".NonValidatingFactory")
            }
            (PgUrl | PgJdbc, "sslrootcert" | "ssl-root-cert" | "ssl-ca") => {
                self.tls_ca = Some(value.to_string())
            }
            (PgUrl | PgJdbc, "sslcert" | "ssl-cert") => self.tls_cert = Some(value.to_string()),
            (PgUrl | PgJdbc, "sslkey" | "ssl-key") => self.tls_key = Some(value.to_string()),
            // Settled by the server; our TLS is rustls.
            (PgUrl | PgJdbc, "gssencmode" | "channel_binding" | "channelbinding") => {
                self.ignored.push(format!("{name}={value}"))
            }
            (PgUrl | PgJdbc, "ssl_min_protocol_version" | "sslminprotocolversion") => {
                self.ignored.push(format!("{name}={value}"))
            }
            (PgUrl | PgJdbc, "target_session_attrs" | "targetservertype") => {
                self.ignored.push(format!("{name}={value}"))
            }
            (PgUrl | PgJdbc, "sslcertmode") => self.ignored.push(format!("{name}={value}")),
            // Schema and server options.
            (PgJdbc, "currentschema") => self.schema = Some(value.to_string()),
            (PgUrl, "options") => self.pg_options.push(value.to_string()),
            (PgJdbc, "options") => self.pg_options.push(value.to_string()),
            (PgUrl, "application_name") | (PgJdbc, "applicationname") => {
                self.application_name = Some(value.to_string())
            }
            (PgUrl, "connect_timeout") | (PgJdbc, "connecttimeout") => {
                self.connect_timeout = parse_secs(name, value, false)?
            }
            (PgJdbc, "readonly") => self.ignored.push(format!("{name}={value}")),
            // MySQL / MariaDB TLS.
            (MySqlUrl, "ssl-mode" | "sslmode") | (MySqlJdbc { .. }, "sslmode") => {
                self.tls_mode = Some(TlsMode::parse_mysql(value).ok_or_else(|| {
                    bad_mode(
                        "DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY \
                         (or MariaDB's disable, trust, verify-ca, verify-full)",
                    )
                })?)
            }
            (MySqlUrl, "ssl-ca" | "sslca") | (MySqlJdbc { .. }, "serversslcert") => {
                if value.starts_with("classpath:") {
                    return Err(format!(
                        "parameter `{name}`: a classpath resource cannot be read here: give a file path"
                    ));
                }
                self.tls_ca = Some(value.to_string())
            }
            (MySqlUrl, "ssl-cert" | "sslcert") => self.tls_cert = Some(value.to_string()),
            (MySqlUrl, "ssl-key" | "sslkey") => self.tls_key = Some(value.to_string()),
            (MySqlJdbc { .. }, "usessl") => legacy.use_ssl = Some(parse_bool(name, value)?),
            (MySqlJdbc { .. }, "requiressl") => legacy.require_ssl = Some(parse_bool(name, value)?),
            (MySqlJdbc { .. }, "verifyservercertificate") => {
                legacy.verify_server_certificate = Some(parse_bool(name, value)?)
            }
            (MySqlJdbc { .. }, "trustservercertificate") => {
                legacy.trust_server_certificate = Some(parse_bool(name, value)?)
            }
            (MySqlJdbc { .. }, "disablesslhostnameverification") => {
                legacy.disable_hostname_verification = Some(parse_bool(name, value)?)
            }
            (MySqlJdbc { .. }, "connecttimeout") => {
                self.connect_timeout = parse_secs(name, value, true)?
            }
            (MySqlUrl, "connect_timeout" | "connect-timeout") => {
                self.connect_timeout = parse_secs(name, value, false)?
            }
            (MySqlJdbc { .. }, "readonly") => self.ignored.push(format!("{name}={value}")),
            _ => {
                let harmless = if vocab.is_pg() {
                    HARMLESS_PG
                } else {
                    HARMLESS_MYSQL
                };
                if harmless.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                    self.ignored.push(format!("{name}={value}"));
                } else {
                    return Err(format!(
                        "parameter `{name}` is not supported (sync-access honours every parameter it \
                         accepts; see README \"Production databases\" for the list)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// pgjdbc: `ssl` alone means verify-full; Connector/J: `useSSL`,
    /// `requireSSL`, `verifyServerCertificate`; MariaDB Connector/J:
    /// `useSSL` means verify-full unless `trustServerCertificate` or
    /// `disableSslHostnameVerification` relaxes it. An explicit mode wins.
    fn resolve_legacy_tls(&mut self, vocab: Vocabulary, legacy: LegacyTls) {
        if self.tls_mode.is_none() {
            self.tls_mode = match vocab {
                Vocabulary::PgJdbc => match legacy.pg_ssl {
                    Some(true) => Some(TlsMode::VerifyFull),
                    Some(false) => Some(TlsMode::Prefer),
                    None => None,
                },
                Vocabulary::MySqlJdbc { mariadb } => {
                    let mariadb_words = mariadb
                        || legacy.trust_server_certificate.is_some()
                        || legacy.disable_hostname_verification.is_some();
                    match legacy.use_ssl {
                        Some(false) => Some(TlsMode::Disable),
                        Some(true) if mariadb_words => {
                            Some(if legacy.trust_server_certificate == Some(true) {
                                TlsMode::Require
                            } else if legacy.disable_hostname_verification == Some(true) {
                                TlsMode::VerifyCa
                            } else {
                                TlsMode::VerifyFull
                            })
                        }
                        _ if legacy.verify_server_certificate == Some(true) => {
                            Some(TlsMode::VerifyCa)
                        }
                        _ if legacy.require_ssl == Some(true) => Some(TlsMode::Require),
                        Some(true) => Some(TlsMode::Prefer),
                        None => None,
                    }
                }
                _ => None,
            };
        }
        // pgjdbc's NonValidatingFactory checks no certificate at all.
        if legacy.pg_non_validating
            && matches!(self.tls_mode, Some(TlsMode::VerifyCa | TlsMode::VerifyFull))
        {
            self.tls_mode = Some(TlsMode::Require);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vocab: Vocabulary, params: &[(&str, &str)]) -> Result<Settings, String> {
        let mut s = Settings::default();
        s.apply_params(
            vocab,
            params.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            "the URL",
        )?;
        Ok(s)
    }

    #[test]
    fn pgjdbc_ssl_alone_means_verify_full() {
        let s = settings(Vocabulary::PgJdbc, &[("ssl", "")]).unwrap();
        assert_eq!(s.tls_mode, Some(TlsMode::VerifyFull));
        let s = settings(
            Vocabulary::PgJdbc,
            &[("ssl", "true"), ("sslmode", "require")],
        )
        .unwrap();
        assert_eq!(s.tls_mode, Some(TlsMode::Require));
        let s = settings(
            Vocabulary::PgJdbc,
            &[
                ("ssl", "true"),
                ("sslfactory", "org.postgresql.ssl.NonValidatingFactory"),
            ],
        )
        .unwrap();
        assert_eq!(s.tls_mode, Some(TlsMode::Require));
    }

    #[test]
    fn mysql_legacy_switches_map_to_modes() {
        let j = Vocabulary::MySqlJdbc { mariadb: false };
        let mode = |p: &[(&str, &str)]| settings(j, p).unwrap().tls_mode;
        assert_eq!(mode(&[("useSSL", "false")]), Some(TlsMode::Disable));
        assert_eq!(mode(&[("useSSL", "true")]), Some(TlsMode::Prefer));
        assert_eq!(
            mode(&[("useSSL", "true"), ("requireSSL", "true")]),
            Some(TlsMode::Require)
        );
        assert_eq!(
            mode(&[("useSSL", "true"), ("verifyServerCertificate", "true")]),
            Some(TlsMode::VerifyCa)
        );
        assert_eq!(
            mode(&[("sslMode", "VERIFY_IDENTITY")]),
            Some(TlsMode::VerifyFull)
        );
        assert_eq!(
            mode(&[("sslMode", "verify-full")]),
            Some(TlsMode::VerifyFull)
        );
        assert_eq!(mode(&[("sslMode", "trust")]), Some(TlsMode::Require));
        let m = Vocabulary::MySqlJdbc { mariadb: true };
        let mode = |p: &[(&str, &str)]| settings(m, p).unwrap().tls_mode;
        assert_eq!(mode(&[("useSSL", "true")]), Some(TlsMode::VerifyFull));
        assert_eq!(
            mode(&[("useSSL", "true"), ("trustServerCertificate", "true")]),
            Some(TlsMode::Require)
        );
        assert_eq!(
            mode(&[
                ("useSSL", "true"),
                ("disableSslHostnameVerification", "true")
            ]),
            Some(TlsMode::VerifyCa)
        );
    }

    #[test]
    fn unknown_and_unsupported_parameters_are_refused_by_name() {
        let err = settings(Vocabulary::PgJdbc, &[("frobnicate", "1")]).unwrap_err();
        assert!(err.contains("`frobnicate` is not supported"), "{err}");
        let err = settings(
            Vocabulary::MySqlJdbc { mariadb: false },
            &[("trustCertificateKeyStoreUrl", "file:/ks.jks")],
        )
        .unwrap_err();
        assert!(err.contains("export the CA certificate as PEM"), "{err}");
        let err = settings(Vocabulary::PgUrl, &[("sslpassword", "hunter22")]).unwrap_err();
        assert!(
            err.contains("sslpassword") && !err.contains("hunter22"),
            "{err}"
        );
        let err = settings(Vocabulary::PgUrl, &[("sslmode", "verify_full")]).unwrap_err();
        assert!(
            err.contains("verify_full") && err.contains("verify-full"),
            "{err}"
        );
        let err = settings(
            Vocabulary::PgUrl,
            &[("sslmode", "require"), ("sslmode", "disable")],
        )
        .unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn harmless_parameters_are_ignored_and_kept_for_the_log() {
        let s = settings(
            Vocabulary::MySqlJdbc { mariadb: false },
            &[("characterEncoding", "UTF-8"), ("serverTimezone", "UTC")],
        )
        .unwrap();
        assert_eq!(
            s.ignored,
            vec!["characterEncoding=UTF-8", "serverTimezone=UTC"]
        );
    }
}
