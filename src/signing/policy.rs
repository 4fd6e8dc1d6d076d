//! What `apply` demands of a plan's approvals, and the check itself.
//!
//! A policy comes from a file (`--policy FILE` or `SYNC_ACCESS_POLICY`), so
//! that it cannot be forgotten on a command line, and from flags, which can
//! only make it stricter: more approvals, four-eyes on, and a second
//! allowed_signers file that every counted approval must also satisfy.
//!
//! ```yaml
//! # sync-access policy
//! allowed_signers: allowed_signers   # relative to this file
//! approvals_required: 2
//! four_eyes: true
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::allowed_signers::AllowedSigners;
use super::{approval_message, author_message, principal, verify, Verified, NAMESPACE};
use crate::error::{Error, Result};
use crate::plan::{Approval, Plan};

/// Policy files larger than this are refused unread.
const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Empty: unsigned approvals count (as names, not proof). Otherwise an
    /// approval counts only when its signature is by a key that every one of
    /// these files allows for its `by`.
    pub signers: Vec<AllowedSigners>,
    /// Distinct approvers needed (at least 1).
    pub required: usize,
    /// The author must have signed, as `created_by`; no approval by that
    /// principal or with that key counts.
    pub four_eyes: bool,
}

/// What the command line says about the policy.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub policy: Option<PathBuf>,
    pub allowed_signers: Option<PathBuf>,
    pub require_approvals: Option<u16>,
    pub four_eyes: bool,
}

impl Policy {
    /// The policy file's demands, made stricter by the flags.
    pub fn from_flags(flags: &Flags) -> Result<Policy> {
        let mut policy = match &flags.policy {
            Some(path) => Policy::load(path)?,
            None => Policy {
                required: 1,
                ..Policy::default()
            },
        };
        if let Some(path) = &flags.allowed_signers {
            policy.signers.push(AllowedSigners::load(path)?);
        }
        if let Some(n) = flags.require_approvals {
            policy.required = policy.required.max(usize::from(n));
        }
        policy.four_eyes |= flags.four_eyes;
        policy.required = policy.required.max(1);
        if policy.four_eyes && policy.signers.is_empty() {
            return Err(Error::usage(
                "--four-eyes compares verified principals: give --allowed-signers FILE (or a policy naming one)",
            ));
        }
        Ok(policy)
    }

    /// Reads a policy file (YAML). Unknown keys are refused: a misspelt
    /// demand must not be silently dropped.
    pub fn load(path: &Path) -> Result<Policy> {
        let bad = |why: String| Error::usage(format!("{}: not a policy: {why}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > MAX_POLICY_BYTES {
            return Err(bad(format!("{} bytes is too large", meta.len())));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let docs =
            YamlLoader::load_from_str(&text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        let Some(Yaml::Hash(map)) = docs.first() else {
            return Err(bad(
                "expected a mapping of allowed_signers, approvals_required and four_eyes".into(),
            ));
        };
        let mut policy = Policy {
            required: 1,
            ..Policy::default()
        };
        for (key, value) in map {
            let Yaml::String(key) = key else {
                return Err(bad("a key that is not a string".into()));
            };
            match (key.as_str(), value) {
                ("allowed_signers", Yaml::String(file)) => {
                    // Relative to the policy file, wherever apply runs.
                    let base = path.parent().unwrap_or(Path::new(""));
                    policy.signers.push(AllowedSigners::load(&base.join(file))?);
                }
                ("approvals_required", Yaml::Integer(n)) if (1..=65535).contains(n) => {
                    policy.required = *n as usize;
                }
                ("four_eyes", Yaml::Boolean(b)) => policy.four_eyes = *b,
                ("allowed_signers", _) => {
                    return Err(bad("`allowed_signers` must be a file path".into()))
                }
                ("approvals_required", _) => {
                    return Err(bad(
                        "`approvals_required` must be a whole number from 1 to 65535".into(),
                    ))
                }
                ("four_eyes", _) => return Err(bad("`four_eyes` must be true or false".into())),
                (other, _) => {
                    return Err(bad(format!(
                    "unknown key `{other}` (known: allowed_signers, approvals_required, four_eyes)"
                )))
                }
            }
        }
        if policy.four_eyes && policy.signers.is_empty() {
            return Err(bad(
                "four_eyes compares verified principals: name allowed_signers too".into(),
            ));
        }
        Ok(policy)
    }
}

/// An approval that counts, with what proves it.
#[derive(Debug, Clone)]
pub struct Counted {
    pub approval: Approval,
    /// The signing key's fingerprint, when signed.
    pub fingerprint: Option<String>,
    /// Whether allowed signers vouched for the key and the name.
    pub verified: bool,
}

/// What the check found.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub counted: Vec<Counted>,
    /// Why each approval that does not count does not, for the operator.
    pub not_counted: Vec<String>,
}

impl Verdict {
    /// Whether the approvals that count are names anyone could type.
    pub fn unsigned_names(&self) -> bool {
        self.counted.iter().any(|c| !c.verified)
    }
}

/// Checks the approvals of an intact plan against `policy` at `now`
/// (seconds since the epoch): the approvals that count, or a refusal
/// (exit 4) that says what is missing. A signature that does not verify
/// refuses the plan whatever else it holds.
pub fn check(plan: &Plan, policy: &Policy, file: &Path, now: u64) -> Result<Verdict> {
    // What a refusal quotes comes from the plan (names, times, a
    // signature's namespace): escaped here, whole, so that a line break in
    // a forged `by` cannot start a line of its own on the terminal.
    let refuse = |why: String| {
        Error::refused(format!(
            "{}: {}",
            file.display(),
            crate::render::clean(&why)
        ))
    };
    let author = match &plan.author_signature {
        Some(armored) => Some(
            verify(armored, &author_message(plan))
                .map_err(|why| refuse(format!("the author signature does not verify: {why}")))?,
        ),
        None => None,
    };
    let author_key = if policy.four_eyes {
        let Some(author) = &author else {
            return Err(refuse(
                "--four-eyes needs the author's signature, and this plan has none: make it with `sync-access plan --key KEY`".into(),
            ));
        };
        for signers in &policy.signers {
            signers
                .allows(&plan.created_by, author.key.key_data(), NAMESPACE, now)
                .map_err(|why| {
                    refuse(format!(
                        "--four-eyes: the author signature is made with {}, which is not allowed for `{}`: {why}",
                        author.fingerprint, plan.created_by
                    ))
                })?;
        }
        Some(author.key.key_data().clone())
    } else {
        None
    };
    let mut counted = Vec::new();
    let mut not_counted = Vec::new();
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    'approvals: for approval in plan.matching_approvals() {
        let by = approval.by.as_str();
        let signed: Option<Verified> = match &approval.signature {
            Some(armored) => Some(verify(armored, &approval_message(approval)).map_err(|why| {
                refuse(format!(
                    "the approval by `{by}` at {} has a bad signature: {why}",
                    approval.at
                ))
            })?),
            None => None,
        };
        if by.trim().is_empty() {
            not_counted.push("an approval without an approver".to_string());
            continue;
        }
        let verified = !policy.signers.is_empty();
        if verified {
            let Some(signed) = &signed else {
                not_counted.push(format!("`{by}` did not sign"));
                continue;
            };
            for signers in &policy.signers {
                if let Err(why) = signers.allows(by, signed.key.key_data(), NAMESPACE, now) {
                    not_counted.push(format!("`{by}` signed with {}: {why}", signed.fingerprint));
                    continue 'approvals;
                }
            }
        }
        if policy.four_eyes {
            if principal::same(by, &plan.created_by) {
                not_counted.push(format!("`{by}` made the plan (--four-eyes)"));
                continue;
            }
            if signed.as_ref().map(|s| s.key.key_data()) == author_key.as_ref() {
                not_counted.push(format!("`{by}` signed with the author's key (--four-eyes)"));
                continue;
            }
        }
        if let Some(signed) = &signed {
            // One key is one person, whatever names it signs under.
            if !keys.insert(signed.fingerprint.clone()) {
                not_counted.push(format!(
                    "`{by}` signed with {}, a key that already counted",
                    signed.fingerprint
                ));
                continue;
            }
        }
        if !names.insert(principal::canonical(by)) {
            not_counted.push(format!("`{by}` already counted"));
            continue;
        }
        counted.push(Counted {
            approval: approval.clone(),
            fingerprint: signed.map(|s| s.fingerprint),
            verified,
        });
    }
    if counted.len() < policy.required {
        let mut why = if counted.is_empty() && not_counted.is_empty() {
            format!(
                "not approved: no approval matches its digest {} (run `sync-access approve`)",
                plan.digest
            )
        } else {
            format!(
                "not approved: {} distinct approver(s) needed, {} count",
                policy.required,
                counted.len()
            )
        };
        if !not_counted.is_empty() {
            why.push_str(&format!(" (not counted: {})", not_counted.join("; ")));
        }
        return Err(refuse(why));
    }
    Ok(Verdict {
        counted,
        not_counted,
    })
}
