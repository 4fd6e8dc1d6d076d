//! Approvals that prove who approved: OpenSSH ed25519 keys, SSH signatures
//! (`ssh-keygen -Y sign -n sync-access`), OpenSSH allowed_signers files and
//! the policy `apply` enforces with them.
//!
//! What is signed is always one unambiguous message, the canonical JSON of
//! the plan format (keys sorted, no whitespace):
//! - an approval: the approval object without `signature`
//!   (`{"at":..,"by":..,"comment":..,"digest":..}`), so that no field can be
//!   re-split or relabelled under a valid signature;
//! - the author: `{"created_at":..,"created_by":..,"digest":..}`, stored in
//!   the plan's `author_signature`, outside what the digest covers.
//!
//! Everything here is pure but for reading key and signer files and talking
//! to ssh-agent.

pub mod agent;
pub mod allowed_signers;
pub mod key;
pub mod policy;
pub mod principal;

use ssh_key::{Algorithm, HashAlg, PublicKey, SshSig};

use crate::plan::{canonical, Approval, Plan};

/// The SSH signature namespace of every signature the tool makes or reads.
pub const NAMESPACE: &str = "sync-access";

/// Armored signatures larger than this are not signatures.
const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

/// The bytes an approval's signature covers: the approval without its
/// `signature`, in canonical JSON.
pub fn approval_message(approval: &Approval) -> Vec<u8> {
    let unsigned = Approval {
        signature: None,
        ..approval.clone()
    };
    canonical::to_vec(&unsigned)
}

/// The bytes the author's signature covers.
pub fn author_message(plan: &Plan) -> Vec<u8> {
    canonical::to_vec(&serde_json::json!({
        "created_at": plan.created_at,
        "created_by": plan.created_by,
        "digest": plan.digest,
    }))
}

/// A signature that verified over its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key: PublicKey,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// Verifies an armored SSH signature over `message` in the namespace
/// `sync-access`: the key it was made with, or why it does not verify.
pub fn verify(armored: &str, message: &[u8]) -> Result<Verified, String> {
    if armored.len() > MAX_SIGNATURE_BYTES {
        return Err("not an SSH signature (too large)".into());
    }
    let signature = SshSig::from_pem(armored.trim().as_bytes())
        .map_err(|_| "not an armored SSH signature".to_string())?;
    if signature.namespace() != NAMESPACE {
        return Err(format!(
            "made for the namespace `{}`, not `{NAMESPACE}`",
            signature.namespace()
        ));
    }
    let key = PublicKey::from(signature.public_key().clone());
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::SkEd25519 => {}
        other => {
            return Err(format!(
                "a {} signature; only ed25519 is read",
                other.as_str()
            ))
        }
    }
    key.verify(NAMESPACE, message, &signature)
        .map_err(|_| "it does not verify over what it signs".to_string())?;
    Ok(Verified {
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        key,
    })
}

/// The verdict on a plan's author signature, for `show`.
pub fn author(plan: &Plan) -> Option<Result<Verified, String>> {
    plan.author_signature
        .as_deref()
        .map(|armored| verify(armored, &author_message(plan)))
}

/// The verdict on an approval's signature, for `show`.
pub fn approval(approval: &Approval) -> Option<Result<Verified, String>> {
    approval
        .signature
        .as_deref()
        .map(|armored| verify(armored, &approval_message(approval)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(by: &str, at: &str, comment: Option<&str>) -> Approval {
        Approval {
            by: by.into(),
            at: at.into(),
            digest: "sha256:00".into(),
            comment: comment.map(str::to_string),
            signature: None,
        }
    }

    #[test]
    fn the_message_is_the_canonical_approval_without_signature() {
        let mut a = approval("bob", "2026-11-27T12:00:00Z", Some("CHG-1\nline2"));
        a.signature = Some("anything".into());
        assert_eq!(
            String::from_utf8(approval_message(&a)).unwrap(),
            r#"{"at":"2026-11-27T12:00:00Z","by":"bob","comment":"CHG-1\nline2","digest":"sha256:00"}"#
        );
        // Re-splitting the fields changes the message.
        let resplit = approval("bob\n2026-11-27T12:00:00Z", "CHG-1", Some("line2"));
        assert_ne!(approval_message(&a), approval_message(&resplit));
    }

    #[test]
    fn signatures_bind_every_field_and_the_namespace() {
        let mut rng = ssh_key::rand_core::OsRng;
        let private = ssh_key::PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
        let key = key::SigningKey::File(Box::new(private.clone()));
        let mut a = approval("bob", "2026-11-27T12:00:00Z", Some("CHG-1"));
        a.signature = Some(key.sign(&approval_message(&a)).unwrap());
        assert!(a
            .signature
            .as_ref()
            .unwrap()
            .starts_with("-----BEGIN SSH SIGNATURE-----"));
        let verified = super::approval(&a).unwrap().unwrap();
        assert_eq!(verified.key.key_data(), private.public_key().key_data());
        for edit in [
            |a: &mut Approval| a.by = "mallory".into(),
            |a: &mut Approval| a.digest = "sha256:01".into(),
            |a: &mut Approval| a.at = "2026-11-28T12:00:00Z".into(),
            |a: &mut Approval| a.comment = None,
        ] {
            let mut forged = a.clone();
            edit(&mut forged);
            assert!(super::approval(&forged).unwrap().is_err());
        }
        let other_namespace = SshSig::sign(&private, "git", HashAlg::Sha512, &approval_message(&a))
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap();
        let err = verify(&other_namespace, &approval_message(&a)).unwrap_err();
        assert!(err.contains("namespace"), "{err}");
        assert!(verify("garbage", b"x").is_err());
    }
}
