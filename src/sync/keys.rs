//! How the store compares keys (docs/rules.md §11). The rules compare
//! keys by their bytes; a MariaDB or MySQL table whose `key` column has a
//! PAD SPACE collation (`utf8mb4_bin`, the reference DDL's, is one) takes
//! `default_ops` and `default_ops ` for one key, and a case-insensitive
//! one (`utf8mb4_general_ci`) `default_ops` and `DEFAULT_OPS`. A copy
//! planned at a key the server holds under another spelling would fail at
//! every apply; the store says how its tables compare (data, read by
//! `crate::store`), and the rules find such keys at plan time.

use std::borrow::Cow;

/// How one table compares its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// Trailing spaces do not count (PAD SPACE collations).
    pub pad_space: bool,
    /// Letter case does not count (`_ci` collations), approximated by
    /// Unicode lowercase.
    pub case_insensitive: bool,
}

impl KeyRules {
    /// Keys compare by their bytes.
    pub const EXACT: KeyRules = KeyRules {
        pad_space: false,
        case_insensitive: false,
    };

    pub fn is_exact(self) -> bool {
        self == KeyRules::EXACT
    }

    /// The one spelling of every key the store takes for `key`.
    pub fn normal(self, key: &str) -> Cow<'_, str> {
        let key = if self.pad_space {
            key.trim_end_matches(' ')
        } else {
            key
        };
        if self.case_insensitive && key.chars().any(|c| c.to_lowercase().ne(Some(c))) {
            Cow::Owned(key.to_lowercase())
        } else {
            Cow::Borrowed(key)
        }
    }

    /// How the store compares, for a conflict's reason.
    pub fn describe(self) -> &'static str {
        match (self.pad_space, self.case_insensitive) {
            (true, true) => "ignoring trailing spaces and letter case",
            (true, false) => "ignoring trailing spaces",
            (false, true) => "ignoring letter case",
            (false, false) => "by bytes",
        }
    }
}

/// How each table a copy is written to compares its keys; by bytes unless
/// the store says otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreKeys {
    /// The tenant's row is the one the store finds for its key.
    pub tenants: KeyRules,
    pub roles: KeyRules,
    pub groups: KeyRules,
    pub bindings: KeyRules,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        let pad = KeyRules {
            pad_space: true,
            case_insensitive: false,
        };
        let ci = KeyRules {
            pad_space: true,
            case_insensitive: true,
        };
        assert_eq!(KeyRules::EXACT.normal("a "), "a ");
        assert_eq!(pad.normal("default_ops  "), "default_ops");
        assert_eq!(pad.normal("default_ops\t"), "default_ops\t");
        assert_eq!(pad.normal("Ops"), "Ops");
        assert_eq!(ci.normal("DEFAULT_Ops "), "default_ops");
        assert!(matches!(ci.normal("default_ops"), Cow::Borrowed(_)));
    }
}
