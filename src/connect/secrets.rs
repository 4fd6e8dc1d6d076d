//! The secrets this run knows (passwords from URLs, query parameters,
//! Kestra configs, the environment), kept in one process-wide registry.
//!
//! Redaction at the source comes first: no code formats a password into a
//! message. This registry is the second line of defence: the log writer and
//! the error reporter (`lib::report`) replace any registered secret that
//! still reaches them (in a driver's log line or error text, say) with `***`.

use std::borrow::Cow;
use std::sync::RwLock;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are not scrubbed from text: replacing every
/// `a` of a message would hide what it says, and a password that short is
/// no secret worth the loss.
const MIN_LEN: usize = 3;

/// Registers `secret`, as written and as percent-encoded in a URL.
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_LEN {
        return;
    }
    let encoded = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in [secret.to_string(), encoded] {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so that a secret that contains another goes whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    Cow::Owned(out)
}

/// The writer of the log subscriber: each log line (the subscriber writes
/// one event at a time, whole) is scrubbed of secrets, then escaped by
/// [`crate::escape::log_line`], before it reaches stderr.
pub struct LogStderr;

impl std::io::Write for LogStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let scrubbed = scrub(&text);
        std::io::stderr().write_all(crate::escape::log_line(&scrubbed).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed_in_both_forms() {
        register("s3cr3t/pw");
        register("ab");
        assert_eq!(scrub("pw=s3cr3t/pw here"), "pw=*** here");
        assert_eq!(scrub("url: u:s3cr3t%2Fpw@h"), "url: u:***@h");
        // Too short to scrub without hiding the message.
        assert_eq!(scrub("abc"), "abc");
        assert!(matches!(scrub("nothing"), Cow::Borrowed(_)));
    }
}
