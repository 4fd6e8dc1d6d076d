//! `approve`: bind an approval to the plan's digest and rewrite the file
//! atomically.

use std::io::{BufRead, IsTerminal, Write};

use crate::approvals;
use crate::cli::ApproveArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::plan::{self, Approval};
use crate::render;

pub fn run(args: &ApproveArgs) -> Result<ExitStatus> {
    let path = args.plan.as_path();
    let loaded = plan::load(path)?;
    loaded.require_intact(path)?;
    let plan = &loaded.plan;
    if !plan.applyable {
        return Err(Error::not_applyable(format!(
            "{}: not applyable: it has {} conflict(s); it cannot be approved",
            path.display(),
            plan.conflicts.len()
        )));
    }
    let by = args.by.trim();
    if by.is_empty() {
        return Err(Error::usage("--by must name the approver"));
    }
    let signing_key = args
        .signing_key
        .as_deref()
        .map(approvals::read_signing_key)
        .transpose()?;
    super::say(format_args!("{}", render::plan_summary_for_stderr(plan)));
    if plan
        .matching_approvals()
        .any(|a| a.by == by && (signing_key.is_none() || a.signature.is_some()))
    {
        crate::say!(
            "{}: already approved by {by}; nothing written.",
            path.display()
        );
        return Ok(ExitStatus::Success);
    }
    if !args.yes && std::io::stdin().is_terminal() && !confirm(by)? {
        return Err(Error::usage(format!(
            "{}: approval cancelled; nothing written",
            path.display()
        )));
    }
    let mut approval = Approval {
        by: by.to_string(),
        at: plan::now_rfc3339()?,
        digest: plan.digest.clone(),
        comment: args.comment.clone().filter(|c| !c.is_empty()),
        signature: None,
    };
    if let Some(key) = &signing_key {
        approvals::sign(&mut approval, key);
    }
    // The typed plan keeps every member the digest covers (plan::parse
    // refuses anything else): the rewritten file seals the same content.
    let mut approved = loaded.plan.clone();
    approved.approvals.push(approval);
    debug_assert_eq!(plan::digest_of_plan(&approved), approved.digest);
    let bytes = approved.to_pretty_json();
    super::write_atomically(path, &bytes)?;
    crate::say!(
        "{}: approved by {by} (digest {}).",
        path.display(),
        plan.digest
    );
    crate::say!(
        "next: sync-access apply {}  (or more approvals first, if your policy asks)",
        path.display()
    );
    Ok(ExitStatus::Success)
}

fn confirm(by: &str) -> Result<bool> {
    super::say(format_args!("Approve this plan as {by}? [y/N] "));
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io_on("stdin", e))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
