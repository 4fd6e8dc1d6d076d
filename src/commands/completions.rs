//! `completions SHELL`: a completion script for the shell, from the same
//! clap definitions that parse the command line, so it never drifts.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{ExitStatus, Result};

pub fn run(args: &CompletionsArgs) -> Result<ExitStatus> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "sync-access", &mut script);
    super::stream_stdout(|out| out.write_all(&script))?;
    Ok(ExitStatus::Success)
}
