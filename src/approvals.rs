//! Approvals: who may say yes to a plan, and how `apply` checks them.
//!
//! An approval is bound to the plan's digest. Unsigned approvals keep the
//! simple flow working; with `apply --trusted-key`, only approvals signed
//! (Ed25519) by a trusted key count. The signature covers the digest, the
//! approver, the time and the comment, so none can be relabelled.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::{Error, Result};
use crate::plan::{Approval, Plan};

const SECRET_TAG: &str = "sync-access-ed25519-secret-key";
const PUBLIC_TAG: &str = "sync-access-ed25519-public-key";
const SIGNATURE_PREFIX: &str = "ed25519:";

/// What `apply` demands of a plan's approvals.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Empty: unsigned approvals count. Otherwise only signed by one of these.
    pub trusted: Vec<VerifyingKey>,
    /// Distinct approvers needed (at least 1).
    pub required: usize,
    /// An approver equal to the plan's `created_by` does not count.
    pub four_eyes: bool,
}

/// The bytes an approval's signature covers.
fn signed_message(approval: &Approval) -> Vec<u8> {
    format!(
        "sync-access/approval/v1\n{}\n{}\n{}\n{}",
        approval.digest,
        approval.by,
        approval.at,
        approval.comment.as_deref().unwrap_or("")
    )
    .into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Signs `approval` in place with `key`.
pub fn sign(approval: &mut Approval, key: &SigningKey) {
    let signature = key.sign(&signed_message(approval));
    approval.signature = Some(format!(
        "{SIGNATURE_PREFIX}{}:{}",
        hex(key.verifying_key().as_bytes()),
        hex(&signature.to_bytes())
    ));
}

/// The key that validly signed `approval`; `Err` for a signature that is
/// present but wrong (forged, altered, or not ours to read).
pub fn signer(approval: &Approval) -> std::result::Result<Option<VerifyingKey>, String> {
    let Some(signature) = &approval.signature else {
        return Ok(None);
    };
    let bad = || format!("the approval by `{}` has a bad signature", approval.by);
    let rest = signature.strip_prefix(SIGNATURE_PREFIX).ok_or_else(bad)?;
    let (public, sig) = rest.split_once(':').ok_or_else(bad)?;
    let public =
        VerifyingKey::from_bytes(&unhex::<32>(public).ok_or_else(bad)?).map_err(|_| bad())?;
    let sig = Signature::from_bytes(&unhex::<64>(sig).ok_or_else(bad)?);
    public
        .verify_strict(&signed_message(approval), &sig)
        .map_err(|_| bad())?;
    Ok(Some(public))
}

/// Checks the approvals of an intact plan against `policy`: `Ok` with the
/// approvals that count, or a refusal (exit 4) that says what is missing.
pub fn check<'p>(plan: &'p Plan, policy: &Policy, file: &Path) -> Result<Vec<&'p Approval>> {
    let refuse = |why: String| Error::refused(format!("{}: {why}", file.display()));
    let mut counted = Vec::new();
    let mut approvers = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut not_counted = Vec::new();
    for approval in plan.approvals.iter().filter(|a| a.digest == plan.digest) {
        let key = signer(approval).map_err(&refuse)?;
        let by = approval.by.trim();
        if by.is_empty() {
            not_counted.push("an approval without an approver".to_string());
            continue;
        }
        if policy.four_eyes && by == plan.created_by.trim() {
            not_counted.push(format!("`{by}` made the plan (--four-eyes)"));
            continue;
        }
        if !policy.trusted.is_empty() {
            match key {
                Some(key) if policy.trusted.contains(&key) => {
                    // One key is one person, whatever names it signs.
                    if !keys.insert(key.to_bytes()) {
                        not_counted.push(format!("`{by}` signed with a key that already counted"));
                        continue;
                    }
                }
                Some(_) => {
                    not_counted.push(format!("`{by}` signed with a key that is not trusted"));
                    continue;
                }
                None => {
                    not_counted.push(format!("`{by}` did not sign"));
                    continue;
                }
            }
        }
        if approvers.insert(by.to_string()) {
            counted.push(approval);
        }
    }
    let required = policy.required.max(1);
    if counted.len() < required {
        let mut why = if counted.is_empty() && not_counted.is_empty() {
            format!(
                "not approved: no approval matches its digest {} (run `sync-access approve`)",
                plan.digest
            )
        } else {
            format!(
                "not approved: {} distinct approver(s) needed, {} count",
                required,
                counted.len()
            )
        };
        if !not_counted.is_empty() {
            why.push_str(&format!(" (not counted: {})", not_counted.join("; ")));
        }
        return Err(refuse(why));
    }
    Ok(counted)
}

/// Makes a key pair: `path` (the secret key, readable by its owner only)
/// and `path.pub` (the public key, to give to whoever runs `apply`).
pub fn keygen(path: &Path) -> Result<VerifyingKey> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| Error::io_on("/dev/urandom", e))?;
    let key = SigningKey::from_bytes(&seed);
    let public_path = public_path(path);
    for existing in [path, public_path.as_path()] {
        if existing.exists() {
            return Err(Error::usage(format!(
                "{}: already exists; not overwriting a key",
                existing.display()
            )));
        }
    }
    write_private(path, &format!("{SECRET_TAG} {}\n", hex(&seed)))?;
    std::fs::write(
        &public_path,
        format!("{PUBLIC_TAG} {}\n", hex(key.verifying_key().as_bytes())),
    )
    .map_err(|e| Error::io(&public_path, e))?;
    Ok(key.verifying_key())
}

fn public_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn read_tagged<const N: usize>(path: &Path, tag: &str) -> Result<[u8; N]> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = || {
        Error::usage(format!(
            "{}: not a {tag} file (made by `sync-access keygen`)",
            path.display()
        ))
    };
    let hex_part = text.trim().strip_prefix(tag).ok_or_else(bad)?.trim();
    unhex::<N>(hex_part).ok_or_else(bad)
}

/// Reads a secret key made by `keygen`.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_tagged::<32>(
        path, SECRET_TAG,
    )?))
}

/// Reads a public key made by `keygen`.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let bytes = read_tagged::<32>(path, PUBLIC_TAG)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| {
        Error::usage(format!(
            "{}: not a valid Ed25519 public key",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(by: &str) -> Approval {
        Approval {
            by: by.into(),
            at: "2026-11-27T12:00:00Z".into(),
            digest: "sha256:00".into(),
            comment: Some("CHG-1".into()),
            signature: None,
        }
    }

    #[test]
    fn a_signature_binds_digest_approver_time_and_comment() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut a = approval("alice");
        sign(&mut a, &key);
        assert_eq!(signer(&a).unwrap(), Some(key.verifying_key()));
        for edit in [
            |a: &mut Approval| a.by = "mallory".into(),
            |a: &mut Approval| a.digest = "sha256:01".into(),
            |a: &mut Approval| a.at = "2026-11-28T12:00:00Z".into(),
            |a: &mut Approval| a.comment = None,
        ] {
            let mut forged = a.clone();
            edit(&mut forged);
            assert!(signer(&forged).is_err());
        }
        let mut garbage = a.clone();
        garbage.signature = Some("ed25519:zz".into());
        assert!(signer(&garbage).is_err());
        assert_eq!(signer(&approval("bob")).unwrap(), None);
    }
}
