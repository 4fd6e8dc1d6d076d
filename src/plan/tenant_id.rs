//! Which tenant ids a plan may name: those Kestra itself accepts, and only
//! those. A tenant id is typed on the command line, shown in every review
//! and written into every key of the tenant; an id that looks like another
//! (`defa\u{200b}ult`) or that Kestra would refuse is stopped before a plan
//! is made (docs/untrusted-text.md, "Tenant ids").

/// Kestra's own rule for `tenantId` (`^[a-z0-9][a-z0-9_-]*`), with a length
/// limit of our own so that an id stays readable.
pub const MAX_TENANT_ID_CHARS: usize = 100;

/// The rule as a sentence, for the errors that refuse an id.
pub const TENANT_ID_RULE: &str = "a tenant id is 1 to 100 characters: lowercase ASCII letters, digits, `-` and `_`, starting with a letter or a digit (the ids Kestra accepts)";

/// Whether `id` follows [`TENANT_ID_RULE`].
pub fn is_valid_tenant_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    id.len() <= MAX_TENANT_ID_CHARS
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ids_kestra_accepts() {
        for ok in ["default", "acme", "t-1_b", "0", &"a".repeat(100)] {
            assert!(is_valid_tenant_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Default",
            "-acme",
            "_acme",
            "a.b",
            "a b",
            "defa\u{200b}ult",
            "caf\u{e9}",
            "t\u{1b}",
            &"a".repeat(101),
        ] {
            assert!(!is_valid_tenant_id(bad), "{bad:?}");
        }
    }
}
