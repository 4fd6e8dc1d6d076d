//! The rules of docs/rules.md, over the indexes of [`super::index`]: the tenant
//! (§3.1), roles and groups copied (§3.2, §3.3), memberships (§3.4) and
//! bindings (§3.5). Each rule appends to the one [`SyncResult`].

use super::HashMap;
use std::borrow::Cow;

use serde_json::{Map, Value};

use super::context;
use super::documents::{Group, RawDoc, Role, User};
use super::index::{target_key, Named, Scope, UserIndex};
use super::{
    Change, Document, Finding, Kind, Membership, Snapshot, SyncError, SyncOptions, SyncResult,
};

pub(super) fn tenant_change(
    snapshot: &Snapshot,
    options: &SyncOptions,
) -> Result<Option<Change>, SyncError> {
    let tenant = &options.tenant;
    let mut found = None;
    // The row the store takes for the tenant's key: Kestra on a PAD SPACE
    // table finds `default ` for `default` (docs/rules.md §11).
    let rules = snapshot.keys.tenants;
    let own = |raw: &&RawDoc| &raw.key == tenant || rules.normal(&raw.key) == rules.normal(tenant);
    for raw in snapshot.tenants.iter().filter(own) {
        // Whether the tenant exists is no finding to skip: a document the
        // store and the tool could read differently stops the plan.
        let unfit = match raw.undecodable {
            Some(why) => Some(why.to_string()),
            None => crate::plan::canonical::check(&raw.value)
                .err()
                .map(|unfit| unfit.to_string()),
        };
        if let Some(why) = unfit {
            return Err(SyncError::TenantMalformed(tenant.clone(), why));
        }
        let obj = match serde_json::from_str::<Value>(&raw.value) {
            Ok(Value::Object(obj)) => obj,
            _ => {
                return Err(SyncError::TenantMalformed(
                    tenant.clone(),
                    "not a JSON object".into(),
                ))
            }
        };
        let deleted = match obj.get("deleted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(SyncError::TenantMalformed(
                    tenant.clone(),
                    "field `deleted` is not a boolean".into(),
                ))
            }
        };
        found = Some(deleted);
    }
    match found {
        Some(false) => Ok(None),
        Some(true) => Err(SyncError::TenantDeleted(tenant.clone())),
        None if options.create_tenant => {
            let name = options
                .tenant_name
                .clone()
                .unwrap_or_else(|| tenant.clone());
            let mut value = Map::new();
            value.insert("deleted".into(), Value::Bool(false));
            value.insert("id".into(), Value::String(tenant.clone()));
            value.insert("name".into(), Value::String(name));
            Ok(Some(Change::CreateTenant {
                key: tenant.clone(),
                value: Document::from_map(&value),
            }))
        }
        None => Err(SyncError::TenantMissing(tenant.clone())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Planned,
    Present,
    Conflict,
}

/// docs/rules.md §3 and §4: roles and groups are copied by the same rules, with
/// `same` deciding when an existing tenant document is the copy.
pub(super) fn copy_documents<'a, T: Named<'a>>(
    scope: &Scope<'a, T>,
    tenant: &str,
    kind: Kind,
    out: &mut SyncResult,
    same: impl Fn(&T, &T) -> bool,
) -> HashMap<String, Outcome> {
    let mut tenant_names: HashMap<&str, &str> = HashMap::default();
    for doc in &scope.tenant_docs {
        let id = doc.header().id.as_ref();
        // Keep the smallest id per name so the reason is stable.
        tenant_names
            .entry(doc.name())
            .and_modify(|e| {
                if id.as_bytes() < e.as_bytes() {
                    *e = id
                }
            })
            .or_insert(id);
    }
    let mut outcomes = HashMap::with_capacity_and_hasher(scope.legacy.len(), Default::default());
    for id in &scope.duplicates {
        outcomes.insert(id.to_string(), Outcome::Conflict);
    }
    for legacy in &scope.legacy {
        let id = legacy.header().id.as_ref();
        let key = target_key(tenant, id);
        let conflict = |reason: String| Finding {
            name: Some(legacy.name().to_string()),
            ..Finding::new(kind, legacy.header().key, reason)
        };
        let outcome =
            if let Some(existing) = scope.tenant_by_id.get(id).map(|&i| &scope.tenant_docs[i]) {
                if same(legacy, existing) {
                    Outcome::Present
                } else {
                    let what = match kind {
                        Kind::Role => "another name or other permissions",
                        _ => "another name",
                    };
                    out.conflicts.push(Finding {
                        differences: legacy.differences(existing),
                        ..conflict(format!(
                            "tenant `{tenant}` already has {} `{id}` with {what}",
                            kind.as_str()
                        ))
                    });
                    Outcome::Conflict
                }
            } else if let Some(reason) = scope.key_conflict(&key, kind) {
                out.conflicts.push(conflict(reason));
                Outcome::Conflict
            } else if let Some(other) = tenant_names.get(legacy.name()) {
                let existing = scope
                    .tenant_by_id
                    .get(*other)
                    .map(|&i| &scope.tenant_docs[i]);
                out.conflicts.push(Finding {
                    differences: existing.map_or_else(Vec::new, |e| legacy.differences(e)),
                    ..conflict(format!(
                        "tenant `{tenant}` already has a {} named `{}` with id `{other}`",
                        kind.as_str(),
                        legacy.name()
                    ))
                });
                Outcome::Conflict
            } else {
                let value = Document::copy_to_tenant(legacy.raw(), tenant)
                    .expect("a parsed document is a JSON object");
                out.changes.push(match kind {
                    Kind::Role => Change::AddRole { key, value },
                    _ => Change::AddGroup { key, value },
                });
                Outcome::Planned
            };
        if outcome == Outcome::Present {
            *out.present.entry(kind).or_default() += 1;
        }
        outcomes.insert(id.to_string(), outcome);
    }
    outcomes
}

pub(super) struct Dependencies<'r, 'a> {
    pub(super) users: &'r UserIndex<'a>,
    pub(super) roles: &'r Scope<'a, Role<'a>>,
    /// Legacy role and group names by id: the readable context of changes.
    pub(super) role_names: HashMap<&'r str, &'r str>,
    pub(super) role_outcomes: &'r HashMap<String, Outcome>,
    pub(super) groups: &'r Scope<'a, Group<'a>>,
    pub(super) group_names: HashMap<&'r str, &'r str>,
    pub(super) group_outcomes: &'r HashMap<String, Outcome>,
}

pub(super) fn names<'r, 'a, T: Named<'a>>(scope: &'r Scope<'a, T>) -> HashMap<&'r str, &'r str> {
    scope
        .legacy
        .iter()
        .map(|doc| (doc.header().id.as_ref(), doc.name()))
        .collect()
}

/// docs/rules.md §5.
pub(super) fn plan_memberships(
    users: &UserIndex<'_>,
    deps: &Dependencies<'_, '_>,
    tenant: &str,
    out: &mut SyncResult,
    change: &mut dyn FnMut(Change),
) {
    let membership_finding =
        |user: &User, group_id: &str, membership: Membership, reason: String| Finding {
            group_id: Some(group_id.to_string()),
            user_id: Some(user.header.id.to_string()),
            username: Some(user.username.to_string()).filter(|u| !u.is_empty()),
            group_name: deps.group_names.get(group_id).map(|n| n.to_string()),
            membership: Some(membership),
            ..Finding::new(Kind::Membership, user.header.key, reason)
        };
    for user in &users.deleted {
        for (group_id, &membership) in &user.legacy_memberships {
            out.skipped.push(membership_finding(
                user,
                group_id,
                membership,
                "user deleted".into(),
            ));
        }
    }
    for user in &users.live {
        for (group_id, &membership) in &user.legacy_memberships {
            let group_id = group_id.as_ref();
            let finding = |reason: String| membership_finding(user, group_id, membership, reason);
            if let Some(reason) = deps.groups.ids.availability(group_id).reason(Kind::Group) {
                out.skipped.push(finding(reason));
                continue;
            }
            if deps.group_outcomes.get(group_id) == Some(&Outcome::Conflict) {
                out.conflicts
                    .push(finding(format!("group `{group_id}` is in conflict")));
                continue;
            }
            let in_tenant = user
                .tenant_memberships
                .get(&(Cow::Borrowed(tenant), Cow::Borrowed(group_id)));
            match in_tenant {
                Some(&existing) if existing == membership => {
                    *out.present.entry(Kind::Membership).or_default() += 1;
                }
                Some(&existing) => out.conflicts.push(Finding {
                    differences: vec![context::difference(
                        "membership",
                        membership.as_str(),
                        existing.as_str(),
                    )],
                    ..finding(format!(
                        "user is already {} of group `{group_id}` in tenant `{tenant}`",
                        existing.as_str()
                    ))
                }),
                None => change(Change::AddMembership {
                    key: user.header.key.to_string(),
                    user_id: user.header.id.to_string(),
                    username: user.username.to_string(),
                    group_id: group_id.to_string(),
                    group_name: deps
                        .group_names
                        .get(group_id)
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    membership,
                }),
            }
        }
    }
}
