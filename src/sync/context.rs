//! What a reviewer needs beside the changes: who and what each skipped or
//! conflicting entry is about, what differs in a conflict, and the facts
//! that make a grant risky (the permissions of the roles the plan binds but
//! does not add, the type of the users it names). Pure, like the rules; the
//! plan carries all of it, so that a review never needs the database.

use std::collections::{BTreeMap, BTreeSet};

use super::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::{Grant, Permissions, Role};
use super::{Change, Finding, Kind, SubjectType};

/// One field that differs between the legacy document and the tenant's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Difference {
    pub field: String,
    pub legacy: Value,
    pub tenant: Value,
}

/// A role as the review needs it: its name and permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFacts {
    pub name: String,
    /// Permission -> actions, sorted; permissions without actions are absent.
    pub permissions: BTreeMap<String, Vec<String>>,
}

/// The plan's `context`: facts the changes do not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Roles that bindings of the plan (changes or findings) refer to and
    /// that the plan does not add (already in the tenant, or in conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleFacts>,
    /// The type of every user the plan names whose type is not `STANDARD`
    /// (`SUPER_ADMIN`, `SERVICE_ACCOUNT`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, String>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty()
    }
}

pub(super) fn permissions_value(permissions: &Permissions) -> BTreeMap<String, Vec<String>> {
    permissions
        .iter()
        .filter(|(_, actions)| !actions.is_empty())
        .map(|(p, actions)| {
            (
                p.to_string(),
                actions.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect()
}

/// What differs between a legacy role and the tenant's role of that id.
pub(super) fn role_differences(legacy: &Role, tenant: &Role) -> Vec<Difference> {
    let mut out = Vec::new();
    if legacy.header.id != tenant.header.id {
        out.push(difference("id", &legacy.header.id, &tenant.header.id));
    }
    if legacy.name != tenant.name {
        out.push(difference("name", &legacy.name, &tenant.name));
    }
    if legacy.permissions != tenant.permissions {
        out.push(Difference {
            field: "permissions".into(),
            legacy: serde_json::to_value(permissions_value(&legacy.permissions))
                .expect("a map of strings serialises"),
            tenant: serde_json::to_value(permissions_value(&tenant.permissions))
                .expect("a map of strings serialises"),
        });
    }
    out
}

pub(super) fn difference(field: &str, legacy: &str, tenant: &str) -> Difference {
    Difference {
        field: field.into(),
        legacy: Value::String(legacy.to_string()),
        tenant: Value::String(tenant.to_string()),
    }
}

/// What differs between two grants (a legacy binding and the tenant's
/// binding of that id), by the document's field names.
pub(super) fn grant_differences(legacy: &Grant, tenant: &Grant) -> Vec<Difference> {
    let mut out = Vec::new();
    if legacy.subject_type != tenant.subject_type {
        out.push(difference(
            "type",
            legacy.subject_type.as_str(),
            tenant.subject_type.as_str(),
        ));
    }
    if legacy.external_id != tenant.external_id {
        out.push(difference(
            "externalId",
            &legacy.external_id,
            &tenant.external_id,
        ));
    }
    if legacy.role_id != tenant.role_id {
        out.push(difference("roleId", &legacy.role_id, &tenant.role_id));
    }
    if legacy.namespace_id != tenant.namespace_id {
        let ns = |n: &Option<std::borrow::Cow<str>>| {
            n.as_deref()
                .map_or(Value::Null, |s| Value::String(s.to_string()))
        };
        out.push(Difference {
            field: "namespaceId".into(),
            legacy: ns(&legacy.namespace_id),
            tenant: ns(&tenant.namespace_id),
        });
    }
    out
}

/// Names a binding finding's subject, role and namespace.
pub(super) fn describe_binding(
    finding: &mut Finding,
    grant: &Grant,
    subject_name: Option<&str>,
    role_name: Option<&str>,
) {
    finding.subject_type = Some(grant.subject_type);
    finding.subject_id = Some(grant.external_id.to_string());
    finding.subject_name = subject_name.filter(|n| !n.is_empty()).map(str::to_string);
    finding.role_id = Some(grant.role_id.to_string());
    finding.role_name = role_name.filter(|n| !n.is_empty()).map(str::to_string);
    finding.namespace = grant.namespace_id.as_deref().map(str::to_string);
}

/// The plan's context, gathered as its changes are made (they are not
/// kept): the roles its bindings refer to that it does not add, and the
/// type of the users it names that are not standard users.
#[derive(Default)]
pub(super) struct ContextFacts {
    /// Roles the plan adds, and roles its bindings (changes or findings)
    /// refer to: the difference is what the review needs.
    added: BTreeSet<String>,
    wanted: BTreeSet<String>,
    users: BTreeMap<String, String>,
}

/// The type of each user that is not a standard user, by id.
pub(super) type UserTypes<'a> = HashMap<&'a str, &'a str>;

impl ContextFacts {
    fn name_user(&mut self, id: &str, user_types: &UserTypes) {
        if let Some(t) = user_types.get(id) {
            self.users.insert(id.to_string(), t.to_string());
        }
    }

    fn want(&mut self, role: &str) {
        if !self.wanted.contains(role) {
            self.wanted.insert(role.to_string());
        }
    }

    /// One change of the plan, in any order; a binding's is told by
    /// [`binding`](Self::binding).
    pub(super) fn change(&mut self, change: &Change, user_types: &UserTypes) {
        match change {
            Change::AddRole { value, .. } => {
                if let Some(id) = value.map().get("id").and_then(Value::as_str) {
                    self.added.insert(id.to_string());
                }
            }
            Change::AddMembership { user_id, .. } => self.name_user(user_id, user_types),
            _ => {}
        }
    }

    /// The grant of a binding the plan copies, in any order.
    pub(super) fn binding(&mut self, grant: &Grant, user_types: &UserTypes) {
        self.want(&grant.role_id);
        if grant.subject_type == SubjectType::User {
            self.name_user(&grant.external_id, user_types);
        }
    }

    /// The context, given the plan's findings and the legacy roles.
    pub(super) fn finish<'f>(
        mut self,
        findings: impl IntoIterator<Item = &'f Finding>,
        legacy_roles: &[Role],
        user_types: &UserTypes,
    ) -> Context {
        for finding in findings {
            if let Some(id) = &finding.user_id {
                self.name_user(id, user_types);
            }
            if finding.subject_type == Some(SubjectType::User) {
                if let Some(id) = &finding.subject_id {
                    self.name_user(id, user_types);
                }
            }
            if finding.kind == Kind::Binding {
                if let Some(role) = finding.role_id.as_deref() {
                    self.want(role);
                }
            }
        }
        let mut context = Context {
            users: self.users,
            ..Context::default()
        };
        for role in legacy_roles {
            let id = role.header.id.as_ref();
            if self.wanted.contains(id) && !self.added.contains(id) {
                context.roles.insert(
                    id.to_string(),
                    RoleFacts {
                        name: role.name.to_string(),
                        permissions: permissions_value(&role.permissions),
                    },
                );
            }
        }
        context
    }
}
