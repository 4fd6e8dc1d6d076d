//! Signing through ssh-agent (`SSH_AUTH_SOCK`), so that keys that never
//! leave the agent or a hardware token can approve.
//!
//! Only one request of the agent protocol (draft-miller-ssh-agent §4.5) is
//! needed: SSH_AGENTC_SIGN_REQUEST, answered by SSH_AGENT_SIGN_RESPONSE or
//! SSH_AGENT_FAILURE. It is written here in a few lines rather than taken
//! from a client crate: the maintained one (ssh-agent-client-rs) needs a
//! newer Rust than this project and compiles RSA and ECDSA in with it.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use ssh_key::{PublicKey, Signature};

use crate::error::{Error, Result};

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;

/// An answer larger than this is not a signature.
const MAX_RESPONSE: u32 = 256 * 1024;

/// A hardware key may wait for a touch: the agent gets this long to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let bytes = input.get(4..4 + len)?;
    *input = &input[4 + len..];
    Some(bytes)
}

/// Asks the agent at `socket` to sign `data` with `key`.
#[cfg(unix)]
pub fn sign(socket: &Path, key: &PublicKey, data: &[u8]) -> Result<Signature> {
    let agent = || format!("ssh-agent at {}", socket.display());
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256);
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| Error::io_on(agent(), e).reworded(|m| format!("{m} (SSH_AUTH_SOCK)")))?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(|e| Error::io_on(agent(), e))?;
    let blob = key
        .to_bytes()
        .map_err(|e| Error::usage(format!("encoding the public key: {e}")).with_source(e))?;
    let mut body = vec![SSH_AGENTC_SIGN_REQUEST];
    put_string(&mut body, &blob);
    put_string(&mut body, data);
    body.extend_from_slice(&0u32.to_be_bytes()); // flags: none for ed25519
    let mut request = Vec::with_capacity(body.len() + 4);
    put_string(&mut request, &body);
    stream
        .write_all(&request)
        .map_err(|e| Error::io_on(agent(), e))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| Error::io_on(agent(), e))?;
    let len = u32::from_be_bytes(len);
    if len == 0 || len > MAX_RESPONSE {
        return Err(Error::usage(format!(
            "{}: not an ssh-agent answer ({len} bytes)",
            agent()
        )));
    }
    let mut answer = vec![0u8; len as usize];
    stream
        .read_exact(&mut answer)
        .map_err(|e| Error::io_on(agent(), e))?;
    match answer[0] {
        SSH_AGENT_SIGN_RESPONSE => {
            let mut rest = &answer[1..];
            let signature = take_string(&mut rest)
                .ok_or_else(|| Error::usage(format!("{}: a truncated signature", agent())))?;
            Signature::try_from(signature).map_err(|e| {
                Error::usage(format!("{}: not a signature it sent: {e}", agent())).with_source(e)
            })
        }
        SSH_AGENT_FAILURE => Err(Error::usage(format!(
            "{} refused to sign with {fingerprint}: it does not hold that key (`ssh-add` the private key) or it was not confirmed",
            agent()
        ))),
        other => Err(Error::usage(format!(
            "{}: unexpected answer of type {other}",
            agent()
        ))),
    }
}

#[cfg(not(unix))]
pub fn sign(_socket: &Path, _key: &PublicKey, _data: &[u8]) -> Result<Signature> {
    Err(Error::usage(
        "signing through ssh-agent needs a Unix socket: pass a private key file to --key",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_length_prefixed_and_bounded() {
        let mut out = Vec::new();
        put_string(&mut out, b"abc");
        assert_eq!(out, b"\0\0\0\x03abc");
        let mut input = &out[..];
        assert_eq!(take_string(&mut input), Some(&b"abc"[..]));
        assert!(input.is_empty());
        let mut truncated = &b"\0\0\0\x09abc"[..];
        assert_eq!(take_string(&mut truncated), None);
    }
}
