//! `man`: the manual page in roff, from the clap definitions, so that
//! `sync-access man | man -l -` (or a packager's `sync-access man >
//! sync-access.1`) needs no build step.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{ExitStatus, Result};

pub fn run() -> Result<ExitStatus> {
    let command = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| crate::error::Error::io_on("rendering the manual page", e))?;
    super::stream_stdout(|out| out.write_all(&page))?;
    Ok(ExitStatus::Success)
}
