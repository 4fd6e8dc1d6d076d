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
use crate::plan::{self, Approval, CheckedFile, Plan, Scanned};
use crate::plan_file;
use crate::render;
use crate::signing::{self, key::SigningKey, principal};

/// A message or signature file larger than this is not one.
const MAX_MESSAGE_BYTES: u64 = 64 * 1024;

pub fn run(args: &ApproveArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let io = |e| Error::io(path, e);
    // A plan laid out as the tool writes it is checked from its file, a
    // chunk at a time, and copied with the approval spliced in: its bytes
    // are never held whole (issue 15). Any other is read whole, which also
    // says what is wrong with it; so is anything but a regular file (a
    // FIFO would be opened twice).
    if !std::fs::metadata(path).is_ok_and(|meta| meta.is_file()) {
        return approve_whole(args);
    }
    // While the plan is checked, the file is copied beside it (in the
    // kernel), so that the lock below only finishes the copy. A plan
    // refused takes its draft away. Not before a prompt: an interrupted
    // one would leave the draft behind.
    let refused = AtomicBool::new(false);
    let (checked, draft) = std::thread::scope(|scope| {
        let draft = (args.yes && !args.print_message)
            .then(|| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, || plan_file::Draft::copy(path, &refused))
                    .ok()
            })
            .flatten();
        let checked = std::fs::File::open(path)
            .and_then(|file| plan::check_for_approval(&file))
            .map_err(io);
        if !matches!(checked, Ok(Some(_))) {
            refused.store(true, Ordering::Relaxed);
        }
        (checked, draft.and_then(|draft| draft.join().ok().flatten()))
    });
    match checked? {
        Some(checked) => approve_from_file(args, checked, draft),
        None => {
            // Read whole, the plan gets a draft of its own.
            drop(draft);
            approve_whole(args)
        }
    }
}

/// The approval of a plan checked from its file.
fn approve_from_file(
    args: &ApproveArgs,
    checked: CheckedFile,
    draft: Option<plan_file::Draft>,
) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let Some(approval) = prepare(args, &checked.scanned)? else {
        return Ok(ExitStatus::Success);
    };
    let outcome = Outcome::of(&approval);
    // Under the lock: the file is copied with the approval only if it
    // still holds the bytes checked; else another approval may have
    // landed meanwhile, and the file is checked again there.
    tracing::info!("checked the plan; taking the plan file's lock");
    let written = plan_file::update_checked(path, args.force, draft, |locked| {
        let rechecked;
        let current = match locked {
            None => &checked,
            Some(file) => {
                rechecked = plan::check_for_approval(file)
                    .map_err(|e| Error::io(path, e))?
                    .ok_or_else(|| {
                        Error::refused(format!(
                            "{}: the plan changed while it was being approved and no longer reads as the tool writes a plan; nothing written: review it again",
                            path.display()
                        ))
                    })?;
                rechecked.scanned.loaded.require_intact(path)?;
                &rechecked
            }
        };
        let approvals = approvals_after(path, &current.scanned.loaded.plan, &approval)?;
        Ok((
            current.seen,
            approvals.map(|approvals| current.approvals_edit(&approvals)),
        ))
    })?;
    outcome.tell(path, written)
}

/// The approval of a plan read whole: its bytes are kept, to tell under
/// the lock that the file is still the one checked (it is read again
/// into the same memory, and compared).
fn approve_whole(args: &ApproveArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
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
    let Some(approval) = prepare(args, &scanned)? else {
        return Ok(ExitStatus::Success);
    };
    let outcome = Outcome::of(&approval);
    tracing::info!("checked the plan; taking the plan file's lock");
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
        let approvals = approvals_after(path, &current.loaded.plan, &approval)?;
        Ok(approvals.map(|approvals| current.approvals_edit(bytes, &approvals)))
    })?;
    outcome.tell(path, written)
}

/// The checks of the plan, the approval made (signed when asked) and
/// confirmed; `None` when `--print-message` printed it instead.
fn prepare(args: &ApproveArgs, scanned: &Scanned) -> Result<Option<Approval>> {
    let path = args.plan.as_path();
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
        return Ok(None);
    }
    super::say(format_args!("{}", render::plan_summary_for_stderr(plan)));
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::usage(format!(
                "{}: not approved, nothing written: stdin is not a terminal, so there is no one to confirm; pass -y/--yes to approve without a prompt",
                path.display()
            )));
        }
        if !confirm(&approval.by)? {
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
    Ok(Some(approval))
}

/// The approvals the plan file holds once `approval` is added to what it
/// holds now (`plan`, read under the lock); `None` when it holds it
/// already. Refused when the plan is another one than was approved.
fn approvals_after(path: &Path, plan: &Plan, approval: &Approval) -> Result<Option<Vec<Approval>>> {
    if plan.digest != approval.digest {
        return Err(Error::refused(format!(
            "{}: the plan changed while it was being approved (its digest is now {}); nothing written: review it again",
            path.display(),
            plan.digest
        )));
    }
    if already_approved(plan, approval) {
        return Ok(None);
    }
    let mut approvals = plan.approvals.clone();
    approvals.push(approval.clone());
    Ok(Some(approvals))
}

/// What `approve` says once the file is written (or left as it was).
struct Outcome {
    by: String,
    signed: bool,
    digest: String,
}

impl Outcome {
    fn of(approval: &Approval) -> Self {
        Outcome {
            by: approval.by.clone(),
            signed: approval.signature.is_some(),
            digest: approval.digest.clone(),
        }
    }

    fn tell(self, path: &Path, written: Option<plan_file::Written>) -> Result<ExitStatus> {
        let Some(written) = written else {
            crate::say!(
                "{}: already approved by {}; nothing written.",
                path.display(),
                render::clean(&self.by)
            );
            return Ok(ExitStatus::Success);
        };
        if let Some(note) = written.note(path) {
            crate::say!("{}", render::clean(&note));
        }
        crate::say!(
            "{}: approved by {}{} (digest {}).",
            path.display(),
            render::clean(&self.by),
            if self.signed {
                ", signed"
            } else {
                ", unsigned"
            },
            self.digest
        );
        crate::say!(
            "next: sync-access apply {}  (or more approvals first, if your policy asks)",
            path.display()
        );
        Ok(ExitStatus::Success)
    }
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
