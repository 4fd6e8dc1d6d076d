//! OpenSSH's allowed_signers file (ssh-keygen(1), "ALLOWED SIGNERS"): which
//! key may sign under which names.
//!
//! Each line: `principals [options] keytype base64 [comment]`. Principals
//! are an OpenSSH pattern-list (`*`, `?`, `!negation`, comma-separated,
//! matched case-sensitively as `ssh-keygen -Y verify` does). Options:
//! `namespaces="..."` (a pattern-list the namespace `sync-access` must
//! match), `valid-after=` and `valid-before=` (`YYYYMMDD[HHMM[SS]]Z`,
//! checked at the time of the check). `cert-authority` is refused: the
//! tool verifies plain keys only, and a file that trusts a CA would
//! otherwise silently trust nobody. A line that cannot be read refuses the
//! whole file, naming the line: a signer list under change control must not
//! be half read.

use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;
use ssh_key::PublicKey;

use crate::error::{Error, Result};

/// Files larger than this are not allowed_signers files.
const MAX_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct AllowedSigners {
    path: PathBuf,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    principals: String,
    namespaces: Option<String>,
    valid_after: Option<u64>,
    valid_before: Option<u64>,
    key: KeyData,
}

impl AllowedSigners {
    pub fn load(path: &Path) -> Result<AllowedSigners> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > MAX_BYTES {
            return Err(Error::usage(format!(
                "{}: {} bytes is too large for an allowed_signers file",
                path.display(),
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::usage(format!(
                "{}: not an allowed_signers file (not UTF-8 text)",
                path.display()
            ))
        })?;
        AllowedSigners::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<AllowedSigners> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let at = |why: String| {
                Error::usage(format!(
                    "{}:{}: not an allowed_signers line: {why}",
                    path.display(),
                    i + 1
                ))
            };
            if let Some(entry) = parse_line(line, i + 1).map_err(at)? {
                entries.push(entry);
            }
        }
        Ok(AllowedSigners {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// `Ok` when a line allows `key` to sign as `principal` in `namespace`
    /// at `now` (seconds since the epoch); otherwise why not, in a phrase.
    pub fn allows(
        &self,
        principal: &str,
        key: &KeyData,
        namespace: &str,
        now: u64,
    ) -> std::result::Result<(), String> {
        let mut why_not = None;
        for entry in &self.entries {
            if match_pattern_list(principal, &entry.principals) != Some(true) || &entry.key != key {
                continue;
            }
            let line = format!("{}:{}", self.path.display(), entry.line);
            if let Some(namespaces) = &entry.namespaces {
                if match_pattern_list(namespace, namespaces) != Some(true) {
                    why_not = Some(format!(
                        "{line} does not allow the key for namespace `{namespace}`"
                    ));
                    continue;
                }
            }
            if entry.valid_after.is_some_and(|t| now < t) {
                why_not = Some(format!("{line}: the key is not valid yet (valid-after)"));
                continue;
            }
            if entry.valid_before.is_some_and(|t| now > t) {
                why_not = Some(format!("{line}: the key has expired (valid-before)"));
                continue;
            }
            return Ok(());
        }
        Err(why_not
            .unwrap_or_else(|| format!("{} allows no such key for that name", self.path.display())))
    }
}

/// One line: `None` for blank lines and comments.
fn parse_line(line: &str, number: usize) -> std::result::Result<Option<Entry>, String> {
    let rest = line.trim_start_matches([' ', '\t']);
    let rest = rest.strip_suffix('\r').unwrap_or(rest);
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(None);
    }
    let (principals, rest) = field(rest)?;
    if principals.is_empty() {
        return Err("no principals".into());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    // A key starts with its type; anything else first is the options.
    let (options, key_text) = match PublicKey::from_openssh(rest.trim_end()) {
        Ok(_) => (String::new(), rest),
        Err(_) => {
            let (options, rest) = field(rest)?;
            (options, rest.trim_start_matches([' ', '\t']))
        }
    };
    let key = PublicKey::from_openssh(key_text.trim_end())
        .map_err(|_| "no public key of a known type (ssh-ed25519 AAAA...)".to_string())?;
    let mut entry = Entry {
        line: number,
        principals,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key: key.key_data().clone(),
    };
    for option in split_options(&options)? {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name.to_ascii_lowercase(), Some(unquote(value)?)),
            None => (option.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("cert-authority", None) => {
                return Err("cert-authority is not supported: list each signer's own key".into())
            }
            ("namespaces", Some(v)) if entry.namespaces.is_none() => entry.namespaces = Some(v),
            ("valid-after", Some(v)) if entry.valid_after.is_none() => {
                entry.valid_after = Some(timestamp(&v)?)
            }
            ("valid-before", Some(v)) if entry.valid_before.is_none() => {
                entry.valid_before = Some(timestamp(&v)?)
            }
            ("namespaces" | "valid-after" | "valid-before", Some(_)) => {
                return Err(format!("option `{name}` is given twice"))
            }
            _ => return Err(format!("unknown option `{option}`")),
        }
    }
    Ok(Some(entry))
}

/// The next whitespace-delimited field; a field may be double-quoted as a
/// whole (principals) or hold double-quoted values (options).
fn field(text: &str) -> std::result::Result<(String, &str), String> {
    if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or_else(|| "an unterminated quote".to_string())?;
        return Ok((quoted[..end].to_string(), &quoted[end + 1..]));
    }
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ' ' | '\t' if !in_quote => return Ok((text[..i].to_string(), &text[i..])),
            _ => {}
        }
    }
    if in_quote {
        return Err("an unterminated quote".into());
    }
    Ok((text.to_string(), ""))
}

/// Options are comma-separated; commas inside quotes belong to the value.
fn split_options(options: &str) -> std::result::Result<Vec<String>, String> {
    if options.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    for c in options.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                current.push(c);
            }
            ',' if !in_quote => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    if out.iter().any(String::is_empty) {
        return Err("an empty option".into());
    }
    Ok(out)
}

fn unquote(value: &str) -> std::result::Result<String, String> {
    match value.strip_prefix('"') {
        Some(inner) => inner
            .strip_suffix('"')
            .map(str::to_string)
            .ok_or_else(|| "an unterminated quote".to_string()),
        None => Ok(value.to_string()),
    }
}

/// `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]` as seconds since the epoch. Only
/// UTC (`Z`) is read: OpenSSH reads a time without `Z` in the local time
/// zone, which differs between the machine that wrote the file and the CI
/// runner that reads it; such a time is refused rather than guessed.
fn timestamp(text: &str) -> std::result::Result<u64, String> {
    let bad = || format!("`{text}` is not a time as YYYYMMDD[HHMM[SS]]Z");
    let Some(digits) = text.strip_suffix(['Z', 'z']) else {
        return Err(format!(
            "`{text}` has no `Z`: write valid-after/valid-before in UTC with a trailing Z"
        ));
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (date, time) = match digits.len() {
        8 => (digits, "000000".to_string()),
        12 => (&digits[..8], format!("{}00", &digits[8..])),
        14 => (&digits[..8], digits[8..].to_string()),
        _ => return Err(bad()),
    };
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[..4],
        &date[4..6],
        &date[6..8],
        &time[..2],
        &time[2..4],
        &time[4..6]
    );
    let at = humantime::parse_rfc3339(&rfc3339).map_err(|_| bad())?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_secs())
}

/// OpenSSH's `match_pattern_list`: `Some(true)` when a positive pattern
/// matches and no negated one does, `Some(false)` when a negated pattern
/// matches (which overrides any positive match), `None` when none matches.
pub fn match_pattern_list(text: &str, list: &str) -> Option<bool> {
    let mut positive = None;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if match_pattern(text.as_bytes(), pattern.as_bytes()) {
            if negated {
                return Some(false);
            }
            positive = Some(true);
        }
    }
    positive
}

/// A glob with `*` (any run of bytes) and `?` (exactly one byte).
fn match_pattern(text: &[u8], pattern: &[u8]) -> bool {
    // Iterative matching with one backtrack point: linear in practice and
    // never exponential on hostile patterns.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSEH1TIHOdrD0+ImqzRlwyPan6OUdM+zn5LyW42Q7Oz";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFqwDdKMrX/6caai3f435gU+vqNIYXc9k1IGshdrYnbt";

    fn key(text: &str) -> KeyData {
        PublicKey::from_openssh(text).unwrap().key_data().clone()
    }

    fn signers(text: &str) -> AllowedSigners {
        AllowedSigners::parse(text, Path::new("allowed_signers")).unwrap()
    }

    const NOW: u64 = 1_795_780_800; // 2026-11-27T12:00:00Z

    #[test]
    fn openssh_patterns_with_negation() {
        assert_eq!(
            match_pattern_list("alice@example.com", "*@example.com"),
            Some(true)
        );
        assert_eq!(
            match_pattern_list("alice@example.com", "alice@example.co?"),
            Some(true)
        );
        assert_eq!(
            match_pattern_list("ALICE@example.com", "alice@example.com"),
            None
        );
        assert_eq!(
            match_pattern_list("mallory@example.com", "*@example.com,!mallory@*"),
            Some(false)
        );
        assert_eq!(match_pattern_list("bob@example.com", "!mallory@*"), None);
        assert_eq!(match_pattern_list("a", "b,a"), Some(true));
        assert!(match_pattern(b"", b"*"));
        assert!(!match_pattern(b"ab", b"a"));
        assert!(match_pattern(
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaab",
            b"*a*a*a*a*a*a*b"
        ));
        assert!(!match_pattern(
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"*a*a*a*a*a*a*b"
        ));
    }

    #[test]
    fn a_key_counts_for_the_names_its_lines_allow() {
        let s = signers(&format!(
            "# team\n\n*@example.com,!mallory@example.com {KEY_A} alice's laptop\n\"bob@example.com\" namespaces=\"sync-access,file\" {KEY_B}\n"
        ));
        let (a, b) = (key(KEY_A), key(KEY_B));
        assert!(s
            .allows("alice@example.com", &a, "sync-access", NOW)
            .is_ok());
        assert!(s
            .allows("mallory@example.com", &a, "sync-access", NOW)
            .is_err());
        assert!(s
            .allows("alice@example.org", &a, "sync-access", NOW)
            .is_err());
        assert!(s
            .allows("alice@example.com", &b, "sync-access", NOW)
            .is_err());
        assert!(s.allows("bob@example.com", &b, "sync-access", NOW).is_ok());
        assert!(s.allows("bob@example.com", &b, "git", NOW).is_err());
    }

    #[test]
    fn other_key_types_are_read_and_never_match() {
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCkL6nyrH0JVHcmxMpWOIo3uDi1nAIm3VMAygGVbOJHWeYdkhVySHKN9wdZHwVcN1kugx1hQGTfB0WC1bryS/WH/wRBotzxuj1vIRNJwPpW9W+DpLSQyDin/pxCNlhdEW0lDKuHcnp71bU7Shhfer8r484KKAAN6agP4BfK/ZJKVnt1GpwiQ3YEGwnL85FRsiXIFeRYv8JAs/UTQB9nQMWkAD0a3FrapJaHsbZoWGFaV4DbpZD74lOo3fgt7TXe1rZzgZ1M2t0AC13dWoIzS0/0OQfyCiv5Z+BZEdwc8WG48AiGs+IUfbVjwXiwDA4imKhxwGqHFEIaiwbxJU82rn1r";
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKnH4rAXRHc1RZy45rQuS4egFaz6IAJf9pDpV0hudck7jK35ZKfjstN8gIIoNFrPEMucYp17i17DBOzuYl/ld5w=";
        let s = signers(&format!(
            "git@example.com {rsa} git only\nops@example.com {ecdsa}\nalice@example.com {KEY_A}\n"
        ));
        assert!(s
            .allows("alice@example.com", &key(KEY_A), "sync-access", NOW)
            .is_ok());
        assert!(s
            .allows("git@example.com", &key(KEY_A), "sync-access", NOW)
            .is_err());
    }

    #[test]
    fn validity_windows_are_checked_in_utc() {
        let s = signers(&format!(
            "old@example.com valid-before=\"20200101Z\" {KEY_A}\nnew@example.com VALID-AFTER=203001010000Z {KEY_A}\nnow@example.com valid-after=20260101Z,valid-before=20270101120000Z {KEY_A}\n"
        ));
        let a = key(KEY_A);
        let expired = s
            .allows("old@example.com", &a, "sync-access", NOW)
            .unwrap_err();
        assert!(expired.contains("expired"), "{expired}");
        let early = s
            .allows("new@example.com", &a, "sync-access", NOW)
            .unwrap_err();
        assert!(early.contains("not valid yet"), "{early}");
        assert!(s.allows("now@example.com", &a, "sync-access", NOW).is_ok());
        assert_eq!(timestamp("19700102Z").unwrap(), 86_400);
    }

    #[test]
    fn lines_that_cannot_be_read_refuse_the_file_naming_the_line() {
        for (text, why) in [
            (format!("a@x cert-authority {KEY_A}"), "cert-authority"),
            (format!("a@x valid-before=20200101 {KEY_A}"), "UTC"),
            (format!("a@x permit-pty {KEY_A}"), "unknown option"),
            ("a@x ssh-ed25519 notbase64".to_string(), "public key"),
            (format!("\"a@x {KEY_A}"), "unterminated"),
        ] {
            let err = AllowedSigners::parse(&format!("# ok\n{text}\n"), Path::new("signers"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("signers:2: "), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }
}
