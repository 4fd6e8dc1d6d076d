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
struct ChangeRecord<S, D> {
    op: Op,
    key: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<D>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_name: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    membership: Option<Membership>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<S>,
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
        use serde::de::Error;
        let r = ChangeRecord::<String, Document>::deserialize(deserializer)?;
        let op = r.op.as_str();
        let need = |field: Option<String>, name: &str| {
            field.ok_or_else(|| D::Error::custom(format!("`{op}` needs `{name}`")))
        };
        let none = |present: bool, name: &str| {
            if present {
                Err(D::Error::custom(format!("`{op}` has no `{name}`")))
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
        let value = || {
            r.value
                .clone()
                .ok_or_else(|| D::Error::custom(format!("`{op}` needs `value`")))
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
                    .ok_or_else(|| D::Error::custom(format!("`{op}` needs `membership`")))?,
            },
            _ => unreachable!("the shape of a change is an addition's"),
        };
        Ok(if r.op.is_removal() {
            addition.removal()
        } else {
            addition
        })
    }
}

#[cfg(test)]
mod tests {
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
}
