//! The command line, as clap derive types only; behaviour lives in
//! `commands`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

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
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    // Where the database is and how to reach it (README "Connecting" and
    // "Production databases"); these flags stay together.
    /// Database URL: sqlite:PATH, postgres://..., mysql://... [env:
    /// DATABASE_URL] [default: a Kestra configuration if one is found, else
    /// sqlite:sync-access-demo.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Kestra configuration file whose datasources.<name> gives the database
    /// [default: KESTRA_CONFIGURATION, else ~/.kestra/config.yml if it
    /// exists]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which datasource of the Kestra configuration [default: the only one,
    /// else the one kestra.repository.type names]
    #[arg(long, global = true, value_name = "NAME")]
    pub datasource: Option<String>,
    /// Seconds to wait for the database connection, at least 1 [default:
    /// the URL's connect_timeout/connectTimeout, else 10]
    #[arg(long, global = true, value_name = "SECS", value_parser = parse_connect_timeout)]
    pub connect_timeout: Option<u64>,
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
    /// Log level
    #[arg(short = 'l', long = "log-level", global = true, value_enum)]
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
}

#[derive(Debug, Args)]
pub struct PlanArgs {
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
    #[arg(long, env = "SYNC_ACCESS_USER")]
    pub created_by: Option<String>,
    /// Sign the plan as its author with this OpenSSH ed25519 key: a private
    /// key file, or a public key (.pub) whose private half is in ssh-agent
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Replace the -o file even when it is read-only
    #[arg(long, requires = "out")]
    pub force: bool,
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
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The plan file
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
    #[arg(long, short = 'C', env = "SYNC_ACCESS_USER")]
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
    #[arg(long, env = "SYNC_ACCESS_USER")]
    pub applied_by: Option<String>,
    /// The policy: allowed signers, approvals required, four-eyes (YAML);
    /// flags can only make it stricter
    #[arg(long, env = "SYNC_ACCESS_POLICY", value_name = "FILE")]
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
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The plan file
    pub plan: PathBuf,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {}

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
}
