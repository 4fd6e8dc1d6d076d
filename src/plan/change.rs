//! A change as the plan file spells it (docs/plan-format.md §6): one flat object whose
//! `op` says which of the other fields it has. This is the only
//! description of a change's fields: the plan file, the digest and the
//! diffs all serialise it (the digest and the diffs through
//! [`super::canonical`], which orders the fields).

use serde::{Deserialize, Serialize};

use crate::sync::{Change, Document, Membership, Op};

/// A change as the plan file spells it: one flat object whose `op` says
/// which fields it has. (serde's internally tagged enums buffer their
/// content, which a `Document` cannot go through.)
#[derive(Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>, D: Deserialize<'de>")
)]
pub(super) struct ChangeRecord<S, D> {
    pub(super) op: Op,
    pub(super) key: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<D>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) username: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) group_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) group_name: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) membership: Option<Membership>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) subject: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<S>,
}

/// [`ChangeRecord`]'s fields in canonical order (by their bytes), so
/// that the canonical writer streams a change instead of buffering and
/// sorting its fields: a plan's digest covers a million of them.
#[derive(Serialize)]
#[serde(rename = "$sync_access::canonical::in_order")]
pub(crate) struct InCanonicalOrder<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_name: Option<&'a str>,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    membership: Option<Membership>,
    op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a Document>,
}

impl Change {
    /// The change as the canonical writer writes it fastest: the same
    /// canonical text as the change itself.
    pub(crate) fn in_canonical_order(&self) -> InCanonicalOrder<'_> {
        let r = self.record();
        InCanonicalOrder {
            group_id: r.group_id,
            group_name: r.group_name,
            key: r.key,
            membership: r.membership,
            op: r.op,
            role: r.role,
            subject: r.subject,
            user_id: r.user_id,
            username: r.username,
            value: r.value,
        }
    }

    fn record(&self) -> ChangeRecord<&str, &Document> {
        let mut record: ChangeRecord<&str, &Document> = ChangeRecord {
            op: self.op(),
            key: self.key(),
            value: None,
            user_id: None,
            username: None,
            group_id: None,
            group_name: None,
            membership: None,
            subject: None,
            role: None,
        };
        match self {
            Change::CreateTenant { value, .. }
            | Change::AddRole { value, .. }
            | Change::AddGroup { value, .. }
            | Change::RemoveTenant { value, .. }
            | Change::RemoveRole { value, .. }
            | Change::RemoveGroup { value, .. } => record.value = Some(value),
            Change::AddMembership {
                user_id,
                username,
                group_id,
                group_name,
                membership,
                ..
            }
            | Change::RemoveMembership {
                user_id,
                username,
                group_id,
                group_name,
                membership,
                ..
            } => {
                record.user_id = Some(user_id);
                record.username = Some(username);
                record.group_id = Some(group_id);
                record.group_name = Some(group_name);
                record.membership = Some(*membership);
            }
            Change::AddBinding {
                value,
                subject,
                role,
                ..
            }
            | Change::RemoveBinding {
                value,
                subject,
                role,
                ..
            } => {
                record.value = Some(value);
                record.subject = Some(subject);
                record.role = Some(role);
            }
        }
        record
    }
}

impl Serialize for Change {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.record().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let record = ChangeRecord::<String, Document>::deserialize(deserializer)?;
        change_of(record).map_err(serde::de::Error::custom)
    }
}

/// The change a record spells, or why it spells none: which members its
/// `op` needs and which it must not have. The one statement of a change's
/// shape, for serde, for [`read_as_written`] and for the changes `show`
/// reads again (`text::Read`).
pub(super) fn change_of(r: ChangeRecord<String, Document>) -> Result<Change, String> {
    let op = r.op.as_str();
    let need =
        |field: Option<String>, name: &str| field.ok_or_else(|| format!("`{op}` needs `{name}`"));
    let none = |present: bool, name: &str| {
        if present {
            Err(format!("`{op}` has no `{name}`"))
        } else {
            Ok(())
        }
    };
    // A removal has the members of the addition it undoes.
    let shape = r.op.undone().unwrap_or(r.op);
    let document_op = matches!(
        shape,
        Op::CreateTenant | Op::AddRole | Op::AddGroup | Op::AddBinding
    );
    none(!document_op && r.value.is_some(), "value")?;
    if shape != Op::AddMembership {
        none(r.user_id.is_some(), "user_id")?;
        none(r.username.is_some(), "username")?;
        none(r.group_id.is_some(), "group_id")?;
        none(r.group_name.is_some(), "group_name")?;
        none(r.membership.is_some(), "membership")?;
    }
    if shape != Op::AddBinding {
        none(r.subject.is_some(), "subject")?;
        none(r.role.is_some(), "role")?;
    }
    // Moved, not copied: a document is most of a change's bytes.
    let mut document = r.value;
    let mut value = || {
        document
            .take()
            .ok_or_else(|| format!("`{op}` needs `value`"))
    };
    let addition = match shape {
        Op::CreateTenant => Change::CreateTenant {
            value: value()?,
            key: r.key,
        },
        Op::AddRole => Change::AddRole {
            value: value()?,
            key: r.key,
        },
        Op::AddGroup => Change::AddGroup {
            value: value()?,
            key: r.key,
        },
        Op::AddBinding => Change::AddBinding {
            value: value()?,
            key: r.key,
            subject: need(r.subject, "subject")?,
            role: need(r.role, "role")?,
        },
        Op::AddMembership => Change::AddMembership {
            key: r.key,
            user_id: need(r.user_id, "user_id")?,
            username: need(r.username, "username")?,
            group_id: need(r.group_id, "group_id")?,
            group_name: need(r.group_name, "group_name")?,
            membership: r
                .membership
                .ok_or_else(|| format!("`{op}` needs `membership`"))?,
        },
        _ => unreachable!("the shape of a change is an addition's"),
    };
    Ok(if r.op.is_removal() {
        addition.removal()
    } else {
        addition
    })
}

/// A change's members, in canonical order (by their bytes).
const MEMBERS: [&str; 10] = [
    "group_id",
    "group_name",
    "key",
    "membership",
    "op",
    "role",
    "subject",
    "user_id",
    "username",
    "value",
];

/// Where each member is in [`MEMBERS`].
const GROUP_ID: usize = 0;
const GROUP_NAME: usize = 1;
const KEY: usize = 2;
const MEMBERSHIP: usize = 3;
const OP: usize = 4;
const ROLE: usize = 5;
const SUBJECT: usize = 6;
const USER_ID: usize = 7;
const USERNAME: usize = 8;
const VALUE: usize = 9;

/// How many containers are around a change in a plan: the plan's object
/// and its `changes` array (as [`super::parallel`] reads it).
const CHANGE_DEPTH: usize = 2;

/// The change whose text starts at `at` in `text`, read as the tool
/// writes changes (issue 15): every member a plain string
/// ([`fast_json::plain_string_end`]) but `value`, a document in canonical
/// form. Its canonical text is then the members' own texts in canonical
/// order, appended to `canonical`; the change and where its text ends are
/// returned. `None` (and nothing appended) for anything else: the caller
/// then reads the change with serde, which says what is wrong, so what is
/// accepted, and what it reads as, stays the same (a test holds the two
/// to it). This spares each change a scan, most of serde's reading and
/// the canonical writer: `approve` of a million changes took 1.5 s of CPU
/// instead of 2.2 s, and `apply` on MariaDB waited 0.6 s less for the
/// check before writing (BENCHMARKS.md, round 15).
pub(super) fn read_as_written(
    text: &str,
    at: usize,
    canonical: &mut Vec<u8>,
) -> Option<(Change, usize)> {
    use super::fast_json::{canonical_object_end, plain_string_end};
    let bytes = text.as_bytes();
    let ws = |at: &mut usize| {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(*at) {
            *at += 1;
        }
    };
    let mut spans: [Option<(usize, usize)>; MEMBERS.len()] = [None; MEMBERS.len()];
    let mut pos = at;
    if bytes.get(pos) != Some(&b'{') {
        return None;
    }
    pos += 1;
    ws(&mut pos);
    loop {
        let name_end = plain_string_end(bytes, pos)?;
        let name = &bytes[pos + 1..name_end - 1];
        let member = MEMBERS.iter().position(|m| m.as_bytes() == name)?;
        pos = name_end;
        ws(&mut pos);
        if bytes.get(pos) != Some(&b':') {
            return None;
        }
        pos += 1;
        ws(&mut pos);
        let end = if member == VALUE {
            let end = canonical_object_end(bytes, pos, CHANGE_DEPTH + 1)?;
            // A name serde_json keeps for itself is refused by the full
            // reader; a canonical scan does not look for it. (Seldom is
            // there a `$` to look further at.)
            let document = &bytes[pos..end];
            if memchr::memchr(b'$', document).is_some()
                && memchr::memmem::find(document, b"\"$serde_json::private::").is_some()
            {
                return None;
            }
            end
        } else {
            plain_string_end(bytes, pos)?
        };
        if spans[member].replace((pos, end)).is_some() {
            return None;
        }
        pos = end;
        ws(&mut pos);
        match bytes.get(pos) {
            Some(b',') => {
                pos += 1;
                ws(&mut pos);
            }
            Some(b'}') => break,
            _ => return None,
        }
    }
    let end = pos + 1;
    /// A plain string's text between its quotes is the string; `Some(None)`
    /// when the member is absent.
    fn string(text: &str, span: Option<(usize, usize)>) -> Option<Option<&str>> {
        match span {
            None => Some(None),
            Some((from, to)) => text.get(from + 1..to - 1).map(Some),
        }
    }
    let owned = |member: usize| string(text, spans[member]).map(|s| s.map(str::to_string));
    let op = string(text, spans[OP])??;
    let op = Op::ALL.into_iter().find(|o| o.as_str() == op)?;
    let membership = match string(text, spans[MEMBERSHIP])? {
        None => None,
        Some(m) => Some(
            [Membership::Member, Membership::Owner]
                .into_iter()
                .find(|x| x.as_str() == m)?,
        ),
    };
    let value = match spans[VALUE] {
        None => None,
        Some((from, to)) => {
            let doc = text.get(from..to)?;
            Some(Document::canonical_as_read(
                serde_json::from_str::<&serde_json::value::RawValue>(doc).ok()?,
            ))
        }
    };
    let record = ChangeRecord {
        op,
        key: owned(KEY)??,
        value,
        user_id: owned(USER_ID)?,
        username: owned(USERNAME)?,
        group_id: owned(GROUP_ID)?,
        group_name: owned(GROUP_NAME)?,
        membership,
        subject: owned(SUBJECT)?,
        role: owned(ROLE)?,
    };
    let change = change_of(record).ok()?;
    let mut separator = b'{';
    for (member, span) in spans.iter().enumerate() {
        let Some((from, to)) = *span else { continue };
        canonical.push(std::mem::replace(&mut separator, b','));
        canonical.push(b'"');
        canonical.extend_from_slice(MEMBERS[member].as_bytes());
        canonical.extend_from_slice(b"\":");
        canonical.extend_from_slice(&bytes[from..to]);
    }
    canonical.push(b'}');
    Some((change, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fast_json::Scanner;
    use crate::plan::{canonical, parse};

    /// Every kind of change, added and removed, is written alike both ways.
    #[test]
    fn in_canonical_order_is_the_canonical_text_of_the_change() {
        let mut ops = std::collections::BTreeSet::new();
        for bytes in [
            &include_bytes!("../../plans/demo-plan.json")[..],
            &include_bytes!("../../plans/demo-revert-plan.json")[..],
        ] {
            for change in parse(bytes).unwrap().plan.changes {
                ops.insert(change.op());
                assert_eq!(
                    canonical::to_string(&change.in_canonical_order()),
                    canonical::to_string(&change)
                );
            }
        }
        assert!(ops.len() >= 8, "{ops:?}");
    }

    /// A change read as serde reads it, as `parallel` read it before
    /// [`read_as_written`]: the scan that proves it surely fine, serde,
    /// and the canonical writer. Its canonical text and where it ends.
    fn read_by_serde(text: &str) -> Option<(String, usize)> {
        let mut scanner = Scanner::new(text.as_bytes());
        if !scanner.value(CHANGE_DEPTH) {
            return None;
        }
        let change: Change = serde_json::from_str(&text[..scanner.pos]).ok()?;
        let canonical = canonical::to_string(&change.in_canonical_order());
        assert_eq!(canonical, canonical::to_string(&change));
        Some((canonical, scanner.pos))
    }

    /// What [`read_as_written`] reads of `text`, checked against serde:
    /// whatever it reads, serde reads the same way, to the same end, with
    /// the same canonical text. Whether it read it.
    fn read_alike(text: &str) -> bool {
        let mut canonical = b"[".to_vec();
        let Some((change, end)) = read_as_written(text, 0, &mut canonical) else {
            assert_eq!(canonical, b"[", "nothing written for {text}");
            return false;
        };
        let canonical = String::from_utf8(canonical).unwrap();
        let by_serde = read_by_serde(text);
        assert_eq!(
            by_serde.as_ref().map(|(c, e)| (&c[..], *e)),
            Some((&canonical[1..], end)),
            "{text}"
        );
        assert_eq!(canonical::to_string(&change), &canonical[1..], "{text}");
        true
    }

    /// Every change of the golden plans, as the tool lays it out in a
    /// file, is read without serde, and as serde reads it.
    #[test]
    fn read_as_written_reads_every_change_of_a_plan_as_serde_does() {
        for bytes in [
            &include_bytes!("../../plans/demo-plan.json")[..],
            &include_bytes!("../../plans/demo-revert-plan.json")[..],
        ] {
            let text = std::str::from_utf8(bytes).unwrap();
            let plan = parse(bytes).unwrap().plan;
            let mut at = text.find("\"changes\": [").unwrap() + 12;
            let mut read = 0;
            while let Some(start) = text[at..].find("\n    {").map(|i| at + i + 5) {
                if start > text.find("\n  ],").unwrap() {
                    break;
                }
                assert!(read_alike(&text[start..]), "{}", &text[start..start + 200]);
                read += 1;
                at = start;
            }
            assert_eq!(read, plan.changes.len());
        }
    }

    /// Texts serde reads otherwise, or refuses, are left to it.
    #[test]
    fn read_as_written_leaves_the_rest_to_serde() {
        let binding =
            r#""key":"T_b","subject":"user u","role":"r","value":{"id":"b","tenantId":"T"}"#;
        let cases = [
            format!(r#"{{"op":"add_binding",{binding}}}"#),
            format!("{{\n  \"op\": \"add_binding\",\n {binding} \n}}"),
            format!(r#"{{"op":"remove_binding",{binding}}}"#),
            // Escapes, in a member or in the document.
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace("user u", "user \\u0075")),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace("user u", "user \\\"u")),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#""b""#, r#""\\u0062""#)),
            // Not canonical documents, and not documents.
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, r#"{"tenantId":"T","id":"b"}"#)),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, r#"{ "id":"b"}"#)),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, "null")),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, "[]")),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, r#"{"$serde_json::private::RawValue":"x"}"#)),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, &format!("{}1{}", r#"{"a":["#.repeat(40), "]}".repeat(40)))),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#"{"id":"b","tenantId":"T"}"#, &format!("{}1{}", r#"{"a":["#.repeat(30), "]}".repeat(30)))),
            // Members missing, repeated, unknown, out of place, of another type.
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#""role":"r","#, "")),
            format!(r#"{{"op":"add_binding","op":"add_binding",{binding}}}"#),
            format!(r#"{{"op":"add_binding","extra":"x",{binding}}}"#),
            format!(r#"{{"op":"add_role",{binding}}}"#),
            format!(r#"{{"op":"add_binding","membership":"MEMBER",{binding}}}"#),
            format!(r#"{{"op":"add_binding",{}}}"#, binding.replace(r#""r""#, "1")),
            format!(r#"{{"op":"add_bindings",{binding}}}"#),
            format!(r#"{{"op":"ADD_BINDING",{binding}}}"#),
            format!(r#"{{"op":null,{binding}}}"#),
            format!(r#"{{{binding}}}"#),
            r#"{"op":"add_membership","key":"u","user_id":"u1","username":"ann","group_id":"g","group_name":"G","membership":"OWNER"}"#.to_string(),
            r#"{"op":"remove_membership","key":"u","user_id":"u1","username":"","group_id":"g","group_name":"G","membership":"MEMBER"}"#.to_string(),
            r#"{"op":"add_membership","key":"u","user_id":"u1","username":"ann","group_id":"g","group_name":"G","membership":"owner"}"#.to_string(),
            r#"{"op":"add_membership","key":"u","user_id":"u1","username":"ann","group_id":"g","group_name":"G"}"#.to_string(),
            r#"{"op":"create_tenant","key":"T","value":{"id":"T","name":"é"}}"#.to_string(),
            r#"{"op":"create_tenant","key":"T","value":{"id":"T","n":1.50e3}}"#.to_string(),
            r#"{"op":"add_group","key":"T_g","value":{}}"#.to_string(),
            r#"{"op":"add_group","key":"T_g","value":{"id":"g"},}"#.to_string(),
            r#"{"op":"add_group","key":"T_g","value":{"id":"g"}"#.to_string(),
            "{\"op\":\"add_group\",\"key\":\"T_\u{1}g\",\"value\":{\"id\":\"g\"}}".to_string(),
            r#"{}"#.to_string(),
            r#"[]"#.to_string(),
        ];
        let read: Vec<bool> = cases.iter().map(|text| read_alike(text)).collect();
        let expected = [
            true, true, true, false, false, false, false, false, false, false, false, false, true,
            false, false, false, false, false, false, false, false, false, false, true, true,
            false, false, true, true, true, false, false, false, false, false,
        ];
        assert_eq!(read, expected);
    }

    proptest::proptest! {
        /// Changes of every kind, their members in any order, spaced or
        /// not, with strings and documents of every kind, and a member
        /// dropped, repeated or added now and then: whatever
        /// [`read_as_written`] reads, serde reads alike, and it reads
        /// every change whose strings and document are plain.
        #[test]
        fn read_as_written_never_reads_otherwise_than_serde(
            kind in 0usize..6,
            order in proptest::collection::vec(proptest::num::usize::ANY, 7),
            strings in proptest::collection::vec(0usize..6, 7),
            document in 0usize..6,
            spaced in proptest::bool::ANY,
            mutation in 0usize..12,
        ) {
            const STRINGS: [&str; 6] =
                [r#""x""#, r#""é 1""#, r#""""#, r#""a\"b""#, r#""\u0041""#, r#""tab\t""#];
            const DOCUMENTS: [&str; 6] = [
                r#"{"id":"b","tenantId":"T"}"#,
                r#"{"a":{"b":[1,2.0,"c",true,null]},"d":-0.5e3}"#,
                "{}",
                r#"{"tenantId":"T","id":"b"}"#,
                r#"{"a":"\n"}"#,
                "null",
            ];
            let (op, names): (&str, &[&str]) = match kind {
                0 => ("add_binding", &["key", "value", "subject", "role"]),
                1 => ("remove_binding", &["key", "value", "subject", "role"]),
                2 => ("add_membership", &["key", "user_id", "username", "group_id", "group_name", "membership"]),
                3 => ("remove_membership", &["key", "user_id", "username", "group_id", "group_name", "membership"]),
                4 => ("add_group", &["key", "value"]),
                _ => ("create_tenant", &["key", "value"]),
            };
            let mut members: Vec<(String, String)> = vec![("op".into(), format!("\"{op}\""))];
            let mut plain = true;
            for (i, name) in names.iter().enumerate() {
                let value = match *name {
                    "value" => {
                        plain &= document < 3;
                        DOCUMENTS[document].to_string()
                    }
                    "membership" => r#""OWNER""#.to_string(),
                    _ => {
                        plain &= strings[i] < 3;
                        STRINGS[strings[i]].to_string()
                    }
                };
                members.push((name.to_string(), value));
            }
            match mutation {
                0 => { members.pop(); }
                1 => { let again = members[1].clone(); members.push(again); }
                2 => members.push(("extra".into(), r#""x""#.into())),
                3 => members.push(("role".into(), r#""r""#.into())),
                4 => members[0].1 = r#""add_bindings""#.into(),
                _ => {}
            }
            let mut shuffled = Vec::new();
            for i in 0..members.len() {
                let at = order[i % order.len()] % (shuffled.len() + 1);
                shuffled.insert(at, &members[i]);
            }
            let gap = if spaced { "\n      " } else { "" };
            let text = format!(
                "{{{gap}{}{gap}}}",
                shuffled
                    .iter()
                    .map(|(name, value)| format!("\"{name}\":{gap}{value}"))
                    .collect::<Vec<_>>()
                    .join(&format!(",{gap}"))
            );
            let read = read_alike(&text);
            proptest::prop_assert_eq!(read, plain && mutation > 4, "{}", text);
        }
    }
}
