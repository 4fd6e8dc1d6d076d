//! The key `--key PATH` names: an OpenSSH ed25519 private key file, or a
//! public key (`.pub`) whose private half ssh-agent holds. `keygen` makes
//! such a pair.

use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::{agent, NAMESPACE};
use crate::error::{Error, Result};

/// A key file larger than this is not a key.
const MAX_KEY_BYTES: u64 = 64 * 1024;

/// What signs: the key itself, or the agent holding it.
pub enum SigningKey {
    /// Boxed: it holds the secret and is much larger than the other.
    File(Box<PrivateKey>),
    Agent {
        public: PublicKey,
        socket: PathBuf,
    },
}

fn agent_socket() -> Option<PathBuf> {
    std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

fn check_algorithm(algorithm: Algorithm, path: &Path) -> Result<()> {
    match algorithm {
        Algorithm::Ed25519 | Algorithm::SkEd25519 => Ok(()),
        other => Err(Error::usage(format!(
            "{}: a {} key; approvals are signed with ed25519 keys (ssh-keygen -t ed25519)",
            path.display(),
            other.as_str()
        ))),
    }
}

impl SigningKey {
    /// Reads `path`. What a key file holds is never quoted in an error.
    pub fn load(path: &Path) -> Result<SigningKey> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > MAX_KEY_BYTES {
            return Err(Error::usage(format!(
                "{}: too large for an OpenSSH key",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let private = PrivateKey::from_openssh(text).map_err(|e| {
                Error::usage(format!(
                    "{}: not a readable OpenSSH private key (approvals are signed with ed25519 keys: ssh-keygen -t ed25519)",
                    path.display()
                ))
                .with_source(e)
            })?;
            check_algorithm(private.algorithm(), path)?;
            if !private.is_encrypted() {
                return Ok(SigningKey::File(Box::new(private)));
            }
            // Its public half is in clear: the agent may hold the key.
            return match agent_socket() {
                Some(socket) => Ok(SigningKey::Agent {
                    public: private.public_key().clone(),
                    socket,
                }),
                None => Err(Error::usage(format!(
                    "{}: the key is protected by a passphrase, which sync-access does not ask for: load it into ssh-agent (`ssh-add {}`) and run again with SSH_AUTH_SOCK set",
                    path.display(),
                    path.display()
                ))),
            };
        }
        if let Ok(public) = PublicKey::from_openssh(text) {
            check_algorithm(public.algorithm(), path)?;
            let Some(socket) = agent_socket() else {
                return Err(Error::usage(format!(
                    "{}: a public key; its private half must be in ssh-agent, but SSH_AUTH_SOCK is not set (or pass the private key file)",
                    path.display()
                )));
            };
            return Ok(SigningKey::Agent { public, socket });
        }
        let hint = if text.starts_with("sync-access-ed25519-") {
            "keys of the earlier sync-access format are no longer read: make an OpenSSH key with `ssh-keygen -t ed25519` or `sync-access keygen`"
        } else {
            "expected an OpenSSH ed25519 private key, or a public key whose private half is in ssh-agent"
        };
        Err(Error::usage(format!(
            "{}: not an OpenSSH key: {hint}",
            path.display()
        )))
    }

    pub fn public(&self) -> &PublicKey {
        match self {
            SigningKey::File(private) => private.public_key(),
            SigningKey::Agent { public, .. } => public,
        }
    }

    /// The key's comment, as `ssh-keygen -C` set it: the name it signs for
    /// when no name is given.
    pub fn principal(&self) -> Option<&str> {
        Some(self.public().comment().trim()).filter(|c| !c.is_empty())
    }

    pub fn fingerprint(&self) -> String {
        self.public().fingerprint(HashAlg::Sha256).to_string()
    }

    /// An armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) over
    /// `message` in the namespace `sync-access`, as `ssh-keygen -Y sign -n
    /// sync-access` makes it.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        let failed = |e: ssh_key::Error| {
            Error::usage(format!("signing with {}: {e}", self.fingerprint())).with_source(e)
        };
        let signature = match self {
            SigningKey::File(private) => {
                SshSig::sign(private.as_ref(), NAMESPACE, HashAlg::Sha512, message)
                    .map_err(failed)?
            }
            SigningKey::Agent { public, socket } => {
                let data =
                    SshSig::signed_data(NAMESPACE, HashAlg::Sha512, message).map_err(failed)?;
                let raw = agent::sign(socket, public, &data)?;
                SshSig::new(public.key_data().clone(), NAMESPACE, HashAlg::Sha512, raw)
                    .map_err(failed)?
            }
        };
        let armored = signature.to_pem(LineEnding::LF).map_err(failed)?;
        // What the agent returned is checked like any other signature.
        super::verify(&armored, message).map_err(|why| {
            Error::usage(format!(
                "the signature made with {} does not verify: {why}",
                self.fingerprint()
            ))
        })?;
        Ok(armored.trim_end().to_string())
    }
}

/// Writes a new OpenSSH ed25519 key pair: `path` (private, 0600) and
/// `path.pub`; the folder is created 0700 when missing. Never overwrites.
pub fn keygen(path: &Path, comment: &str) -> Result<PublicKey> {
    let public_path = public_path(path);
    for existing in [path, public_path.as_path()] {
        if existing.symlink_metadata().is_ok() {
            return Err(Error::usage(format!(
                "{}: already exists; not overwriting a key",
                existing.display()
            )));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut rng = ssh_key::rand_core::OsRng;
    let mut private = PrivateKey::random(&mut rng, Algorithm::Ed25519)
        .map_err(|e| Error::usage(format!("making a key: {e}")).with_source(e))?;
    private.set_comment(comment);
    let pem = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::usage(format!("encoding the key: {e}")).with_source(e))?;
    let public = private.public_key().clone();
    let public_line = public
        .to_openssh()
        .map_err(|e| Error::usage(format!("encoding the key: {e}")).with_source(e))?;
    write_new(path, pem.as_bytes(), 0o600)?;
    write_new(&public_path, format!("{public_line}\n").as_bytes(), 0o644)?;
    Ok(public)
}

pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Creates `path` exclusively (never through a planted link) with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .map_err(|e| Error::io(path, e))
}
