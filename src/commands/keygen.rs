//! `keygen`: an OpenSSH ed25519 key pair for signing plans and approvals,
//! the same kind `ssh-keygen -t ed25519` makes.

use crate::cli::KeygenArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::signing::{key, principal};

pub fn run(args: &KeygenArgs) -> Result<ExitStatus> {
    let comment = principal::resolve(args.comment.as_deref(), "--comment", None)?;
    let public = key::keygen(&args.out, &comment)?;
    let line = public
        .to_openssh()
        .map_err(|e| Error::usage(format!("encoding the key: {e}")).with_source(e))?;
    // The line to add to allowed_signers: the principal, then the key.
    let principals = if comment.contains([' ', '\t', '"']) {
        format!("\"{}\"", comment.replace('"', ""))
    } else {
        comment.clone()
    };
    super::stream_stdout(|out| writeln!(out, "{principals} {line}"))?;
    crate::say!(
        "Wrote the private key to {} (keep it to yourself: `--key {}`) and the public key to {}; the line above goes into allowed_signers.",
        args.out.display(),
        args.out.display(),
        key::public_path(&args.out).display()
    );
    Ok(ExitStatus::Success)
}
