//! `approve`: bind an approval to the plan's digest, signed with an OpenSSH
//! key when asked, and rewrite the plan file under its lock.
//!
//! Three ways to sign: `--key` (a private key, or a `.pub` whose private
//! half is in ssh-agent), or `--print-message` then `ssh-keygen -Y sign -n
//! sync-access` then `--signature FILE`; or not at all (a name, not proof).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::ApproveArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::plan::{self, Approval, Plan};
use crate::plan_file;
use crate::render;
use crate::signing::{self, key::SigningKey, principal};

/// A message or signature file larger than this is not one.
const MAX_MESSAGE_BYTES: u64 = 64 * 1024;

pub fn run(args: &ApproveArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    // The changes are checked and hashed as they are read, not kept, and
    // the approval is spliced into the file's bytes (issue 15). The bytes
    // are kept to tell, under the lock, that the file is still the one
    // checked: it is read again into the same memory, and compared.
    let mut bytes = plan::read_bytes(path)?;
    // The new file is these bytes and an approval: they are written beside
    // the plan while it is checked, and the lock below only finishes them
    // (plan_file::Draft). A plan refused takes its draft away. Not before
    // a prompt: an interrupted one would leave the draft behind.
    let refused = AtomicBool::new(false);
    let (scanned, draft) = std::thread::scope(|scope| {
        let draft = (args.yes && !args.print_message)
            .then(|| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, || plan_file::Draft::write(path, &bytes, &refused))
                    .ok()
            })
            .flatten();
        let scanned = plan::parse_for_approval(&bytes);
        if scanned.is_err() {
            refused.store(true, Ordering::Relaxed);
        }
        (scanned, draft.and_then(|draft| draft.join().ok().flatten()))
    });
    let scanned = scanned.map_err(|why| Error::refused(format!("{}: {why}", path.display())))?;
    scanned.loaded.require_intact(path)?;
    let plan = &scanned.loaded.plan;
    if !plan.applyable {
        return Err(Error::not_applyable(format!(
            "{}: not applyable: it has {} conflict(s); it cannot be approved",
            path.display(),
            plan.conflicts.len()
        )));
    }
    let (approval, key) = match &args.signature {
        Some(signature) => (attached(args, signature, plan)?, None),
        None => {
            let key = args.key.as_deref().map(SigningKey::load).transpose()?;
            let by = super::who(args.by.as_deref(), "--by", key.as_ref())?;
            let approval = Approval {
                by,
                at: plan::now_rfc3339()?,
                digest: plan.digest.clone(),
                comment: args.comment.clone().filter(|c| !c.is_empty()),
                signature: None,
            };
            (approval, key)
        }
    };
    if args.print_message {
        // Exactly the bytes to sign: no newline is added.
        let message = signing::approval_message(&approval);
        super::stream_stdout(|out| out.write_all(&message))?;
        crate::say!(
            "Sign these bytes with `ssh-keygen -Y sign -n {} -f KEY FILE`, then attach FILE.sig with `sync-access approve {} --signature FILE.sig`.",
            signing::NAMESPACE,
            path.display()
        );
        return Ok(ExitStatus::Success);
    }
    let by = approval.by.clone();
    super::say(format_args!("{}", render::plan_summary_for_stderr(plan)));
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::usage(format!(
                "{}: not approved, nothing written: stdin is not a terminal, so there is no one to confirm; pass -y/--yes to approve without a prompt",
                path.display()
            )));
        }
        if !confirm(&by)? {
            return Err(Error::usage(format!(
                "{}: approval cancelled; nothing written",
                path.display()
            )));
        }
    }
    let mut approval = approval;
    if let Some(key) = &key {
        approval.signature = Some(key.sign(&signing::approval_message(&approval))?);
    }
    let signed = approval.signature.is_some();
    let digest = plan.digest.clone();
    // Re-read under the lock: another approve may have landed meanwhile.
    // The same bytes need no second check; other bytes get all of them.
    let written = plan_file::update(path, args.force, &mut bytes, draft, |bytes, unchanged| {
        let rescanned;
        let current = if unchanged {
            &scanned
        } else {
            rescanned = plan::parse_for_approval(bytes)
                .map_err(|why| Error::refused(format!("{}: {why}", path.display())))?;
            rescanned.loaded.require_intact(path)?;
            &rescanned
        };
        let now = &current.loaded.plan;
        if now.digest != digest {
            return Err(Error::refused(format!(
                "{}: the plan changed while it was being approved (its digest is now {}); nothing written: review it again",
                path.display(),
                now.digest
            )));
        }
        if already_approved(now, &approval) {
            return Ok(None);
        }
        let mut approvals = now.approvals.clone();
        approvals.push(approval);
        Ok(Some(current.approvals_edit(bytes, &approvals)))
    })?;
    let Some(written) = written else {
        crate::say!(
            "{}: already approved by {}; nothing written.",
            path.display(),
            render::clean(&by)
        );
        return Ok(ExitStatus::Success);
    };
    if let Some(note) = written.note(path) {
        crate::say!("{}", render::clean(&note));
    }
    crate::say!(
        "{}: approved by {}{} (digest {}).",
        path.display(),
        render::clean(&by),
        if signed { ", signed" } else { ", unsigned" },
        digest
    );
    crate::say!(
        "next: sync-access apply {}  (or more approvals first, if your policy asks)",
        path.display()
    );
    Ok(ExitStatus::Success)
}

/// The same person already approved this digest, at least as strongly: a
/// second unsigned approval adds nothing, a signed one after an unsigned
/// one does.
fn already_approved(plan: &Plan, approval: &Approval) -> bool {
    plan.matching_approvals().any(|a| {
        principal::same(&a.by, &approval.by)
            && (approval.signature.is_none() || a.signature.is_some())
    })
}

/// The approval `--signature FILE` attaches: the message `--print-message`
/// printed, read back, and the signature over it, both checked.
fn attached(args: &ApproveArgs, signature: &Path, plan: &Plan) -> Result<Approval> {
    let message_path = match &args.message {
        Some(path) => path.clone(),
        None => {
            let name = signature.to_string_lossy();
            match name.strip_suffix(".sig") {
                Some(stem) if !stem.is_empty() => PathBuf::from(stem),
                _ => {
                    return Err(Error::usage(format!(
                        "{}: name the message it signs with --message FILE",
                        signature.display()
                    )))
                }
            }
        }
    };
    let message = read_small(&message_path)?;
    let armored = String::from_utf8(read_small(signature)?).map_err(|_| {
        Error::refused(format!(
            "{}: not an armored SSH signature",
            signature.display()
        ))
    })?;
    let not_ours = |why: &str| {
        Error::refused(format!(
            "{}: not a message printed by `sync-access approve --print-message`: {why}",
            message_path.display()
        ))
    };
    let mut approval: Approval =
        // serde quotes the file (an unknown field's name): escaped.
        serde_json::from_slice(&message)
            .map_err(|e| not_ours(&crate::escape::field(&e.to_string())))?;
    if approval.signature.is_some() {
        return Err(not_ours("it holds a signature"));
    }
    // Only the canonical bytes are a message: what was signed is exactly
    // what the plan will hold.
    if signing::approval_message(&approval) != message {
        return Err(not_ours("it is not in canonical form"));
    }
    if approval.digest != plan.digest {
        return Err(Error::refused(format!(
            "{}: the message approves the plan with digest {}, not this one ({})",
            message_path.display(),
            render::clean(&approval.digest),
            plan.digest
        )));
    }
    principal::check(&approval.by, "the message's `by`")?;
    let verified = signing::verify(&armored, &message).map_err(|why| {
        Error::refused(format!(
            "{}: the signature does not verify over {}: {}",
            signature.display(),
            message_path.display(),
            // The namespace it names comes from the signature file.
            render::clean(&why)
        ))
    })?;
    tracing::info!(key = %verified.fingerprint, "the attached signature verifies");
    approval.signature = Some(armored.trim_end().to_string());
    Ok(approval)
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    // Through a cap, whatever the path is (a FIFO or a device too).
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(Error::refused(format!(
            "{}: too large for an approval message or signature (over {MAX_MESSAGE_BYTES} bytes)",
            path.display()
        )));
    }
    Ok(bytes)
}

fn confirm(by: &str) -> Result<bool> {
    super::say(format_args!(
        "Approve this plan as {}? [y/N] ",
        render::clean(by)
    ));
    std::io::stderr().flush().ok();
    // An answer is a word: a line without an end is not read for ever.
    let mut answer = String::new();
    std::io::Read::take(std::io::stdin().lock(), 1024)
        .read_line(&mut answer)
        .map_err(|e| Error::io_on("stdin", e))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
