//! Names of people: who made a plan, who approved it, who applied it.
//!
//! Two names are the same principal when their canonical forms are equal:
//! Unicode NFKC (fullwidth `ａｌｉｃｅ` is `alice`, a composed `é` is the
//! decomposed one), then lowercase (`ALICE@Example.com` is
//! `alice@example.com`), without surrounding whitespace and without
//! invisible characters (zero-width spaces and joiners, soft hyphens,
//! direction marks, byte order marks). `--four-eyes` compares canonical
//! forms, so the author cannot approve under another spelling of the same
//! name. Matching a name against allowed_signers stays OpenSSH's: exact and
//! case-sensitive, so `ssh-keygen -Y verify` agrees with `apply`.

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// The form in which two names are compared (see the module's rule).
pub fn canonical(name: &str) -> String {
    let visible: String = name
        .chars()
        .filter(|c| !crate::escape::is_escaped(*c))
        .collect();
    visible
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .trim()
        .to_string()
}

/// Whether two names are the same principal.
pub fn same(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

/// Checks a name given on the command line or taken from a key: not empty,
/// no control or invisible characters (a name is printed, recorded and
/// compared; what cannot be seen cannot be reviewed).
pub fn check(name: &str, from: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::usage(format!("{from}: the name is empty")));
    }
    if name.chars().any(crate::escape::is_escaped) {
        return Err(Error::usage(format!(
            "{from}: the name holds control or invisible characters"
        )));
    }
    if name.trim() != name {
        return Err(Error::usage(format!(
            "{from}: the name starts or ends with whitespace"
        )));
    }
    Ok(())
}

/// Who runs the command: the flag (or its environment variable), else the
/// principal of the key used to sign (its comment), else `$USER` or
/// `$LOGNAME`. Never a made-up name: without one, a usage error that says
/// how to give one.
pub fn resolve(flag: Option<&str>, flag_name: &str, key: Option<&str>) -> Result<String> {
    if let Some(name) = flag {
        check(name, flag_name)?;
        return Ok(name.to_string());
    }
    if let Some(name) = key.filter(|k| !k.trim().is_empty()) {
        check(name, "the key's comment")?;
        return Ok(name.to_string());
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.trim().is_empty() {
                check(&name, &format!("${var}"))?;
                return Ok(name);
            }
        }
    }
    Err(Error::usage(format!(
        "no name to record: pass {flag_name} NAME (or set SYNC_ACCESS_USER), or sign with a key whose comment is your name; $USER and $LOGNAME are not set"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_variants_of_one_name_are_one_principal() {
        for variant in [
            "ALICE@example.com",
            "Alice@Example.COM",
            " alice@example.com ",
            "ａｌｉｃｅ@example.com",
            "al\u{200B}ice@example.com",
            "\u{FEFF}alice@example.com",
        ] {
            assert!(same(variant, "alice@example.com"), "{variant:?}");
        }
        assert!(same("jos\u{e9}", "jose\u{301}"));
        assert!(!same("alice@example.com", "alice@example.org"));
        assert!(!same("alice", "alice2"));
    }

    #[test]
    fn names_with_what_cannot_be_seen_are_refused() {
        assert!(check("alice@example.com", "--by").is_ok());
        assert!(check("o'brien 日本", "--by").is_ok());
        for bad in ["", "  ", "a\nb", "a\u{1b}[2J", "al\u{200B}ice", " alice"] {
            assert!(check(bad, "--by").is_err(), "{bad:?}");
        }
    }
}
