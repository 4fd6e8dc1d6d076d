//! The command line, as clap derive types only; behaviour lives in
//! `commands`.

use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

pub use crate::connect::kestra::DEFAULT_DATABASE_URL;

/// `--connect-timeout`: 0 would give up before trying.
fn parse_connect_timeout(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(0) => Err("0 seconds would give up before trying: give at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{value}` is not a number of seconds")),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "sync-access",
    version,
    about = "Mirror a Kestra store's legacy global access into a tenant: plan, show, approve, apply",
    long_about = None,
    disable_version_flag = true,
    after_help = "The connection flags (--database-url, -c/--config, --datasource, \
--connect-timeout) follow a command that connects (plan, apply, verify, history, demo, \
show --live); given before the command, as earlier versions documented them, they are \
accepted too."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The connection flags given before the command: merged into the
    /// command's own by [`Cli::parse_args_from`], read nowhere else.
    #[command(flatten)]
    pub connection_before: ConnectionBefore,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's command line: see [`Cli::parse_args_from`].
    pub fn parse_args() -> Result<Cli, clap::Error> {
        Cli::parse_args_from(std::env::args_os())
    }

    /// Parses a command line, with the connection flags accepted in both
    /// places: after the command that connects (whose help lists them, but
    /// for `show`, where they serve only `--live`) and before it, where earlier versions had them as
    /// global flags. Given in both places, the command's own win, flag by
    /// flag; given before a command that does not connect, they are
    /// ignored.
    pub fn parse_args_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command()
            .mut_subcommand("show", |show| {
                ["database_url", "config", "datasource", "connect_timeout"]
                    .into_iter()
                    .fold(show, |show, id| show.mut_arg(id, |arg| arg.hide(true)))
            })
            .try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let Some(connection) = cli.command.connection_mut() {
            connection.merge_before(&cli.connection_before);
        }
        Ok(cli)
    }
}

/// The connection flags in their old place, before the command. Not global
/// (a global flag shows in the help of every command, `keygen` and
/// `approve` included, and is accepted after them), and hidden: the
/// commands that connect document them.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionBefore {
    #[arg(long = "database-url", hide = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[arg(short = 'c', long = "config", hide = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long = "datasource", hide = true, value_name = "NAME")]
    pub datasource: Option<String>,
    #[arg(
        long = "connect-timeout",
        hide = true,
        value_name = "SECS",
        value_parser = parse_connect_timeout
    )]
    pub connect_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Kestra's plugins directory: accepted so that a command line copied
    /// from Kestra's docs works; it has no effect here
    #[arg(
        short = 'p',
        long = "plugins",
        global = true,
        value_name = "DIR",
        env = "KESTRA_PLUGINS_PATH",
        hide_env = true
    )]
    pub plugins: Option<PathBuf>,
    /// Log level (any case)
    #[arg(
        short = 'l',
        long = "log-level",
        global = true,
        value_enum,
        ignore_case = true
    )]
    pub log_level: Option<LogLevel>,
    /// More logs (-v info, -vv debug, -vvv trace)
    #[arg(short = 'v', long = "verbose", global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Also log the database driver's own messages
    #[arg(long, global = true)]
    pub internal_log: bool,
    /// Print the version
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// Where the database is: only on the commands that connect. One group, so
/// that connection options added later (TLS, schemas) land in one place.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    // Where the database is and how to reach it (README "Connecting" and
    // "Production databases"); these flags stay together.
    /// Database URL: sqlite:PATH, postgres://..., mysql://... [env:
    /// DATABASE_URL] [default: a Kestra configuration if one is found, else
    /// sqlite:sync-access-demo.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Kestra configuration file whose datasources.<name> gives the database
    /// [default: KESTRA_CONFIGURATION, else ~/.kestra/config.yml if it
    /// exists]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which datasource of the Kestra configuration [default: the only one,
    /// else the one kestra.repository.type names]
    #[arg(long, value_name = "NAME")]
    pub datasource: Option<String>,
    /// Seconds to wait for the database connection, at least 1 [default:
    /// the URL's connect_timeout/connectTimeout, else 10]
    #[arg(long, value_name = "SECS", value_parser = parse_connect_timeout)]
    pub connect_timeout: Option<u64>,
}

impl ConnectionArgs {
    /// Takes each flag given before the command (`before`) that the command
    /// was not given itself, as the global flags of earlier versions were
    /// (the later one wins). Sources that clash across the two places
    /// (`-c` before, `--database-url` after) are refused like any other
    /// clash, by `connect::kestra::resolve`.
    fn merge_before(&mut self, before: &ConnectionBefore) {
        let ConnectionBefore {
            database_url,
            config,
            datasource,
            connect_timeout,
        } = before;
        if self.database_url.is_none() {
            self.database_url.clone_from(database_url);
        }
        if self.config.is_none() {
            self.config.clone_from(config);
        }
        if self.datasource.is_none() {
            self.datasource.clone_from(datasource);
        }
        self.connect_timeout = self.connect_timeout.or(*connect_timeout);
    }
}

impl GlobalArgs {
    /// Whether logs at info level or finer were asked for (`-v`, `-l INFO`):
    /// then errors show their causes too.
    pub fn is_verbose(&self) -> bool {
        self.verbose > 0
            || matches!(
                self.log_level,
                Some(LogLevel::Info | LogLevel::Debug | LogLevel::Trace)
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Command {
    /// The connection flags of a command that has them.
    fn connection_mut(&mut self) -> Option<&mut ConnectionArgs> {
        match self {
            Command::Plan(args) => Some(&mut args.connection),
            Command::Show(args) => Some(&mut args.connection),
            Command::Apply(args) => Some(&mut args.connection),
            Command::Verify(args) => Some(&mut args.connection),
            Command::History(args) => Some(&mut args.connection),
            Command::Demo(args) => Some(&mut args.connection),
            Command::Approve(_) | Command::Keygen(_) | Command::Completions(_) | Command::Man => {
                None
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the store and write the plan (read-only)
    Plan(PlanArgs),
    /// Render a plan for review
    Show(ShowArgs),
    /// Append an approval bound to the plan's digest
    Approve(ApproveArgs),
    /// Execute an approved plan, atomically
    Apply(ApplyArgs),
    /// Check that every change of a plan is in the database
    Verify(VerifyArgs),
    /// List the applied plans, newest first
    History(HistoryArgs),
    /// Create a demo store (or a large synthetic one with --users)
    Demo(DemoArgs),
    /// Make an OpenSSH ed25519 key pair for signing plans and approvals
    Keygen(KeygenArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
    /// Print the manual page (roff), as in `sync-access man | man -l -`
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, as in `sync-access completions bash > /etc/bash_completion.d/sync-access`
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan the removal of what this applied plan wrote (its tenant, not
    /// --tenant; see docs/revert.md)
    #[arg(
        long,
        value_name = "APPLIED_PLAN",
        conflicts_with_all = ["tenant", "create_tenant"]
    )]
    pub revert: Option<PathBuf>,
    /// The target tenant
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Plan the creation of the tenant when it does not exist
    #[arg(long)]
    pub create_tenant: bool,
    /// Name of the tenant to create [default: its id]
    #[arg(long, requires = "create_tenant")]
    pub tenant_name: Option<String>,
    /// Move conflicts to `skipped`, making the plan applyable
    #[arg(long)]
    pub skip_conflicts: bool,
    /// Write the plan to FILE instead of stdout
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when the plan has changes
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Who makes the plan [default: the --key's comment, else $USER]
    #[arg(long, env = "SYNC_ACCESS_USER", hide_env_values = true)]
    pub created_by: Option<String>,
    /// Sign the plan as its author with this OpenSSH ed25519 key: a private
    /// key file, or a public key (.pub) whose private half is in ssh-agent
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Replace the -o file even when it is read-only
    #[arg(long, requires = "out")]
    pub force: bool,
    // Last: the heading would otherwise carry over to the flags after it.
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Table,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum OpArg {
    CreateTenant,
    AddRole,
    AddGroup,
    AddMembership,
    AddBinding,
    RemoveBinding,
    RemoveMembership,
    RemoveGroup,
    RemoveRole,
    RemoveTenant,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The plan file; `-` reads it from stdin
    pub plan: PathBuf,
    /// Output format: tables for a terminal, markdown for a pull request,
    /// json for tools (one object per line)
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    pub format: ShowFormat,
    /// Show the access each user gains as unified diffs
    #[arg(long)]
    pub diff: bool,
    /// Rows per table at most, 0 for all [default: 50; json: all]
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only what concerns this user (id or username): memberships, groups
    /// joined, bindings that reach them
    #[arg(long)]
    pub user: Option<String>,
    /// Only bindings of this role, and the role (id or name)
    #[arg(long)]
    pub role: Option<String>,
    /// Only bindings in this namespace or its children
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only changes of this op
    #[arg(long, value_enum)]
    pub op: Option<OpArg>,
    /// Wrap tables to this many columns [default: the terminal's; no
    /// wrapping when piped]
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<u16>,
    /// Read each user's current access in the tenant from the database
    /// (read-only) and show it as the "before" side, like `kubectl diff`;
    /// the database is named as for `plan` (--database-url, -c/--config,
    /// --datasource, --connect-timeout)
    #[arg(long)]
    pub live: bool,
    // The database, with --live; hidden from `show --help` by
    // `Cli::parse_args_from`: only --live uses them, and its help names them.
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The plan file, rewritten in place with the approval appended
    pub plan: PathBuf,
    /// Who approves (an email or a name) [default: $SYNC_ACCESS_USER, the
    /// --key's comment, else $USER]
    #[arg(long, conflicts_with = "signature")]
    pub by: Option<String>,
    /// A comment, such as a change ticket
    #[arg(long, conflicts_with = "signature")]
    pub comment: Option<String>,
    /// Approve without asking (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Sign the approval with this OpenSSH ed25519 key: a private key file,
    /// or a public key (.pub) whose private half is in ssh-agent
    /// (SSH_AUTH_SOCK)
    #[arg(long, value_name = "PATH", conflicts_with = "signature")]
    pub key: Option<PathBuf>,
    /// Print the exact bytes to sign (for `ssh-keygen -Y sign -n
    /// sync-access`) and write nothing
    #[arg(long, conflicts_with_all = ["signature", "key"])]
    pub print_message: bool,
    /// Attach a signature made with `ssh-keygen -Y sign -n sync-access` over
    /// the message --print-message printed
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// The message that --signature signs [default: the signature file
    /// without its .sig suffix]
    #[arg(long, value_name = "FILE", requires = "signature")]
    pub message: Option<PathBuf>,
    /// Replace the plan file even when it is read-only
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (0600); the public key goes to
    /// FILE.pub. A missing folder is created 0700.
    #[arg(value_name = "FILE")]
    pub out: PathBuf,
    /// The key's comment: the name it signs for [default: $SYNC_ACCESS_USER,
    /// else $USER]
    #[arg(long, short = 'C', env = "SYNC_ACCESS_USER", hide_env_values = true)]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The approved plan file
    pub plan: PathBuf,
    /// Seconds to wait for another apply's lock before giving up (exit 6)
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub lock_timeout: u64,
    /// Who applies [default: $USER]
    #[arg(long, env = "SYNC_ACCESS_USER", hide_env_values = true)]
    pub applied_by: Option<String>,
    /// The policy: allowed signers, approvals required, four-eyes (YAML);
    /// flags can only make it stricter
    #[arg(
        long,
        env = "SYNC_ACCESS_POLICY",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub policy: Option<PathBuf>,
    /// Count only approvals signed by a key that this OpenSSH
    /// allowed_signers file allows for the approver's name
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// Distinct approvers needed [default: 1, or the policy's]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub require_approvals: Option<u16>,
    /// Require the author's signature and count no approval by the author's
    /// name or key (needs allowed signers)
    #[arg(long)]
    pub four_eyes: bool,
    // Last: the heading would otherwise carry over to the flags after it.
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The plan file
    pub plan: PathBuf,
    /// Output format: a sentence, or one JSON object for tools
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    // Last: the heading would otherwise carry over to the flags after it.
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Output format: a table, or one JSON object per line for tools
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    pub format: HistoryFormat,
    /// Wrap the table to this many columns [default: the terminal's; no
    /// wrapping when piped]
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<u16>,
    // Last: the heading would otherwise carry over to the flags after it.
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Generate a large synthetic store with this many users instead
    #[arg(long)]
    pub users: Option<usize>,
    /// Legacy bindings per user in the synthetic store
    #[arg(long, default_value_t = 10)]
    pub bindings_per_user: usize,
    /// Legacy group memberships per user in the synthetic store
    #[arg(long, default_value_t = 3)]
    pub memberships_per_user: usize,
    /// Seed of the synthetic store
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Drop the IAM tables first if they exist (destroys their data)
    #[arg(long)]
    pub reset: bool,
    // Last: the heading would otherwise carry over to the flags after it.
    #[command(flatten, next_help_heading = "Connection")]
    pub connection: ConnectionArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args_from(std::iter::once("sync-access").chain(args.iter().copied()))
    }

    fn connection(args: &[&str]) -> ConnectionArgs {
        let mut cli = parse(args).unwrap();
        cli.command
            .connection_mut()
            .expect("a command that connects")
            .clone()
    }

    #[test]
    fn the_derive_is_consistent() {
        Cli::command().debug_assert();
    }

    /// README "Connecting": the flags work after the command and, as earlier versions
    /// had them, before it; given in both places, the command's own
    /// win, flag by flag.
    #[test]
    fn connection_flags_before_or_after_the_command() {
        for command in [
            &["plan"][..],
            &["apply", "p.json"],
            &["verify", "p.json"],
            &["history"],
            &["demo"],
            &["show", "--live", "p.json"],
        ] {
            let before = [&["--database-url", "sqlite:a.db"][..], command].concat();
            assert_eq!(
                connection(&before).database_url.as_deref(),
                Some("sqlite:a.db"),
                "{before:?}"
            );
            let after = [command, &["--database-url", "sqlite:b.db"]].concat();
            assert_eq!(
                connection(&after).database_url.as_deref(),
                Some("sqlite:b.db")
            );
            let both = [
                &["--database-url", "sqlite:a.db", "--connect-timeout", "7"][..],
                command,
                &["--database-url", "sqlite:b.db"],
            ]
            .concat();
            let merged = connection(&both);
            assert_eq!(merged.database_url.as_deref(), Some("sqlite:b.db"));
            assert_eq!(
                merged.connect_timeout,
                Some(7),
                "per flag: the timeout is kept"
            );
        }
        let c = connection(&["-c", "kestra.yml", "--datasource", "main", "plan"]);
        assert_eq!(
            c.config.as_deref(),
            Some(std::path::Path::new("kestra.yml"))
        );
        assert_eq!(c.datasource.as_deref(), Some("main"));
        assert_eq!(
            connection(&["--connect-timeout", "5", "plan"]).connect_timeout,
            Some(5)
        );
        assert_eq!(connection(&["plan"]).connect_timeout, None);
        assert_eq!(
            connection(&["--connect-timeout", "5", "plan", "--connect-timeout", "3"])
                .connect_timeout,
            Some(3)
        );
        // The same check of the value in both places.
        assert!(parse(&["--connect-timeout", "0", "plan"]).is_err());
        // Two sources across the two places are both kept, so that the
        // resolver refuses the clash as it refuses it in one place.
        let c = connection(&["-c", "kestra.yml", "plan", "--database-url", "sqlite:b.db"]);
        assert_eq!(
            (c.config.as_deref(), c.database_url.as_deref()),
            (
                Some(std::path::Path::new("kestra.yml")),
                Some("sqlite:b.db")
            )
        );
    }

    /// Before a command that does not connect, the flags are accepted and
    /// ignored; after it, they are not flags of that command.
    #[test]
    fn connection_flags_and_commands_that_do_not_connect() {
        for command in [
            &["keygen", "k"][..],
            &["approve", "--by", "x", "p.json"],
            &["completions", "bash"],
            &["man"],
        ] {
            let before = [
                &["--database-url", "sqlite:a.db", "-c", "k.yml"][..],
                command,
            ]
            .concat();
            let mut cli = parse(&before).unwrap();
            assert!(cli.command.connection_mut().is_none());
        }
        assert!(parse(&["keygen", "--database-url", "sqlite:a.db", "k"]).is_err());
        assert!(parse(&["approve", "--by", "x", "-c", "k.yml", "p.json"]).is_err());
    }
}
