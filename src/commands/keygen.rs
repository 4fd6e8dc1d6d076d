//! `keygen`: an Ed25519 key pair for signed approvals.

use crate::approvals;
use crate::cli::KeygenArgs;
use crate::error::{ExitStatus, Result};

pub fn run(args: &KeygenArgs) -> Result<ExitStatus> {
    approvals::keygen(&args.out)?;
    crate::say!(
        "Wrote the secret key to {} (keep it to yourself; `approve --signing-key`) and the public key to {}.pub (for `apply --trusted-key`).",
        args.out.display(),
        args.out.display()
    );
    Ok(ExitStatus::Success)
}
