//! `show`: render a plan for review.

use crate::cli::ShowArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::plan;
use crate::render;

pub fn run(args: &ShowArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let loaded = plan::load(path)?;
    super::print_stdout(render::plan_summary_for_stderr(&loaded.plan).as_bytes())?;
    if !loaded.digest_matches() {
        return Err(Error::Refused(format!(
            "{}: WARNING: digest mismatch: this plan was altered after it was made; do not approve it",
            path.display()
        )));
    }
    Ok(ExitStatus::Success)
}
