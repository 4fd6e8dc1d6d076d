//! What a plan's changes do to the store's rows: the inserts per table and
//! the rewritten user documents. Pure, so that `apply` and the property tests
//! ("apply, then plan again: nothing to do") share one definition.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Change, RawDoc, Snapshot};

/// Rows to insert and user documents to replace, each list sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    pub tenants: Vec<RawDoc>,
    pub roles: Vec<RawDoc>,
    pub groups: Vec<RawDoc>,
    pub bindings: Vec<RawDoc>,
    /// Whole user documents, with the new `groupList` entries appended and
    /// every other field (including `auths`) kept as it was.
    pub users: Vec<RawDoc>,
}

impl Writes {
    pub fn len(&self) -> usize {
        self.tenants.len()
            + self.roles.len()
            + self.groups.len()
            + self.bindings.len()
            + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why the writes could not be derived: the snapshot does not hold a user
/// that a membership change names. `apply` treats this as stale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user `{0}` is not in the store")]
pub struct MissingUser(pub String);

/// Derives the writes of `changes` against `snapshot` (the snapshot the
/// changes were derived from).
pub fn writes_for(
    snapshot: &Snapshot,
    tenant: &str,
    changes: &[Change],
) -> Result<Writes, MissingUser> {
    let mut writes = Writes::default();
    let mut memberships: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for change in changes {
        match change {
            Change::CreateTenant { key, value } => writes.tenants.push(row(key, value)),
            Change::AddRole { key, value } => writes.roles.push(row(key, value)),
            Change::AddGroup { key, value } => writes.groups.push(row(key, value)),
            Change::AddBinding { key, value, .. } => writes.bindings.push(row(key, value)),
            Change::AddMembership {
                key,
                group_id,
                membership,
                ..
            } => {
                let mut entry = Map::new();
                entry.insert("tenantId".into(), Value::String(tenant.to_string()));
                entry.insert("groupId".into(), Value::String(group_id.clone()));
                entry.insert(
                    "membership".into(),
                    Value::String(membership.as_str().to_string()),
                );
                memberships
                    .entry(key.as_str())
                    .or_default()
                    .push(Value::Object(entry));
            }
        }
    }
    if !memberships.is_empty() {
        let users: BTreeMap<&str, &RawDoc> = snapshot
            .users
            .iter()
            .filter(|u| memberships.contains_key(u.key.as_str()))
            .map(|u| (u.key.as_str(), u))
            .collect();
        for (key, entries) in memberships {
            let raw = users.get(key).ok_or_else(|| MissingUser(key.to_string()))?;
            let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(&raw.value) else {
                return Err(MissingUser(key.to_string()));
            };
            match doc.get_mut("groupList") {
                Some(Value::Array(list)) => list.extend(entries),
                // Absent or null: created, in place when it was null.
                _ => {
                    doc.insert("groupList".into(), Value::Array(entries));
                }
            }
            writes
                .users
                .push(RawDoc::new(key, Value::Object(doc).to_string()));
        }
    }
    for rows in [
        &mut writes.tenants,
        &mut writes.roles,
        &mut writes.groups,
        &mut writes.bindings,
        &mut writes.users,
    ] {
        rows.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(writes)
}

fn row(key: &str, value: &Map<String, Value>) -> RawDoc {
    RawDoc::new(
        key,
        serde_json::to_string(value).expect("a JSON map always serialises"),
    )
}

/// The snapshot as it will be once `writes` are committed: for tests and for
/// `verify`-style reasoning without a database.
pub fn applied(snapshot: &Snapshot, writes: &Writes) -> Snapshot {
    let mut next = snapshot.clone();
    next.tenants.extend(writes.tenants.iter().cloned());
    next.roles.extend(writes.roles.iter().cloned());
    next.groups.extend(writes.groups.iter().cloned());
    next.bindings.extend(writes.bindings.iter().cloned());
    let updated: BTreeMap<&str, &RawDoc> =
        writes.users.iter().map(|u| (u.key.as_str(), u)).collect();
    for user in &mut next.users {
        if let Some(new) = updated.get(user.key.as_str()) {
            user.value = new.value.clone();
        }
    }
    next
}

/// Why a change of a plan is not (or no longer) in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmet {
    /// Nothing at the change's key (or no such membership).
    Missing,
    /// A document is at the key, but not the planned one.
    Differs,
}

/// The changes of a plan that `snapshot` does not hold: what `verify` reports.
pub fn unmet_changes<'a>(
    snapshot: &Snapshot,
    tenant: &str,
    changes: &'a [Change],
) -> Vec<(&'a Change, Unmet)> {
    let tables: [(&[RawDoc], fn(&Change) -> bool); 4] = [
        (&snapshot.tenants, |c| {
            matches!(c, Change::CreateTenant { .. })
        }),
        (&snapshot.roles, |c| matches!(c, Change::AddRole { .. })),
        (&snapshot.groups, |c| matches!(c, Change::AddGroup { .. })),
        (&snapshot.bindings, |c| {
            matches!(c, Change::AddBinding { .. })
        }),
    ];
    let keyed: Vec<BTreeMap<&str, &str>> = tables
        .iter()
        .map(|(rows, _)| {
            rows.iter()
                .map(|r| (r.key.as_str(), r.value.as_str()))
                .collect()
        })
        .collect();
    let users: BTreeMap<&str, &str> = snapshot
        .users
        .iter()
        .map(|r| (r.key.as_str(), r.value.as_str()))
        .collect();
    let mut unmet = Vec::new();
    for change in changes {
        let status = match change {
            Change::AddMembership {
                key,
                group_id,
                membership,
                ..
            } => match users
                .get(key.as_str())
                .and_then(|v| super::documents::parse_user(&RawDoc::new(key.as_str(), *v)).ok())
            {
                None => Some(Unmet::Missing),
                Some(user) => match user
                    .tenant_memberships
                    .get(&(tenant.to_string(), group_id.clone()))
                {
                    Some(m) if m == membership => None,
                    Some(_) => Some(Unmet::Differs),
                    None => Some(Unmet::Missing),
                },
            },
            Change::CreateTenant { key, value }
            | Change::AddRole { key, value }
            | Change::AddGroup { key, value }
            | Change::AddBinding { key, value, .. } => {
                let table = tables
                    .iter()
                    .position(|(_, is)| is(change))
                    .expect("every keyed op has a table");
                match keyed[table].get(key.as_str()) {
                    None => Some(Unmet::Missing),
                    Some(text) => match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(found)) if &found == value => None,
                        _ => Some(Unmet::Differs),
                    },
                }
            }
        };
        if let Some(status) = status {
            unmet.push((change, status));
        }
    }
    unmet
}
