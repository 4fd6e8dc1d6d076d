//! What a plan's changes do to the store's rows: the inserts per table and
//! the rewritten user documents. Pure, so that `apply` and the property tests
//! ("apply, then plan again: nothing to do") share one definition.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Change, ListPrior, RawDoc, Snapshot};

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

/// What a revert plan's removals do to the store's rows: keys to delete per
/// table, and user documents to replace (docs/revert.md §4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removals {
    pub tenants: Vec<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub bindings: Vec<String>,
    /// Whole user documents without the removed `groupList` entries.
    pub users: Vec<RawDoc>,
}

impl Removals {
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

/// Derives the rows that `removals` (a revert's changes) delete and
/// rewrite in `snapshot`. `prior_lists`: the users whose `groupList` the
/// reverted apply created, and what it was before (the history records it).
pub fn removals_for(
    snapshot: &Snapshot,
    tenant: &str,
    removals: &[Change],
    prior_lists: &BTreeMap<String, ListPrior>,
) -> Result<Removals, MissingUser> {
    let mut out = Removals::default();
    let mut memberships: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for change in removals {
        match change {
            Change::RemoveTenant { key, .. } => out.tenants.push(key.clone()),
            Change::RemoveRole { key, .. } => out.roles.push(key.clone()),
            Change::RemoveGroup { key, .. } => out.groups.push(key.clone()),
            Change::RemoveBinding { key, .. } => out.bindings.push(key.clone()),
            Change::RemoveMembership {
                key,
                group_id,
                membership,
                ..
            } => memberships.entry(key).or_default().push(membership_entry(
                tenant,
                group_id,
                *membership,
            )),
            _ => {}
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
            let value = without_memberships(&raw.value, &entries, prior_lists.get(key).copied())
                .ok_or_else(|| MissingUser(key.to_string()))?;
            out.users.push(RawDoc::new(key, value));
        }
    }
    for keys in [
        &mut out.tenants,
        &mut out.roles,
        &mut out.groups,
        &mut out.bindings,
    ] {
        keys.sort();
    }
    Ok(out)
}

/// The users whose `groupList` the writes of `changes` create, with what
/// the document held instead (absent, or `null`): what a revert restores.
pub fn created_group_lists(snapshot: &Snapshot, changes: &[Change]) -> BTreeMap<String, ListPrior> {
    let keys: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::AddMembership { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let mut out = BTreeMap::new();
    for user in snapshot
        .users
        .iter()
        .filter(|u| keys.contains(u.key.as_str()))
    {
        let Ok(Members(members)) = serde_json::from_str(&user.value) else {
            continue;
        };
        let prior = match members.iter().rev().find(|(k, _)| k == "groupList") {
            None => ListPrior::Absent,
            Some((_, list)) if list.get() == "null" => ListPrior::Null,
            Some(_) => continue,
        };
        out.insert(user.key.clone(), prior);
    }
    out
}

fn membership_entry(tenant: &str, group_id: &str, membership: super::Membership) -> Value {
    let mut entry = Map::new();
    entry.insert("tenantId".into(), Value::String(tenant.to_string()));
    entry.insert("groupId".into(), Value::String(group_id.to_string()));
    entry.insert(
        "membership".into(),
        Value::String(membership.as_str().to_string()),
    );
    Value::Object(entry)
}

/// The snapshot as it will be once `removals` are committed (tests).
pub fn removed(snapshot: &Snapshot, removals: &Removals) -> Snapshot {
    let mut next = snapshot.clone();
    for (rows, keys) in [
        (&mut next.tenants, &removals.tenants),
        (&mut next.roles, &removals.roles),
        (&mut next.groups, &removals.groups),
        (&mut next.bindings, &removals.bindings),
    ] {
        rows.retain(|r| !keys.contains(&r.key));
    }
    let updated: BTreeMap<&str, &RawDoc> =
        removals.users.iter().map(|u| (u.key.as_str(), u)).collect();
    for user in &mut next.users {
        if let Some(new) = updated.get(user.key.as_str()) {
            user.value = new.value.clone();
        }
    }
    next
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
    into_writes(snapshot, tenant, changes.to_vec())
}

/// [`writes_for`], consuming the changes: their documents become the rows
/// without a copy (a million documents are hundreds of megabytes).
pub fn into_writes(
    snapshot: &Snapshot,
    tenant: &str,
    changes: Vec<Change>,
) -> Result<Writes, MissingUser> {
    let mut writes = Writes::default();
    let mut memberships: BTreeMap<String, Vec<Value>> = BTreeMap::new();
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
            } => memberships
                .entry(key)
                .or_default()
                .push(membership_entry(tenant, &group_id, membership)),
            // A removal writes nothing here: see `removals_for`.
            _ => {}
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
            let raw = users
                .get(key.as_str())
                .ok_or_else(|| MissingUser(key.to_string()))?;
            let value = with_memberships(&raw.value, entries)
                .ok_or_else(|| MissingUser(key.to_string()))?;
            writes.users.push(RawDoc::new(key, value));
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

/// A JSON object's members in document order, each value as its exact text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// The user document `doc` with `entries` appended to its `groupList`
/// (created, last, when absent or null). Every other member, and every
/// entry already in the list, is kept as its exact text: parsing and
/// re-serialising would round numbers beyond 64 bits, drop trailing zeros
/// and rewrite escapes, in `auths` as anywhere. `None`: not a JSON object.
fn with_memberships(doc: &str, entries: Vec<Value>) -> Option<String> {
    let Members(members) = serde_json::from_str(doc).ok()?;
    // The list as a parser reads it: on a repeated member, the last one.
    // `null`, or anything but a list (which sync never plans for): a new list.
    let kept: Vec<Box<RawValue>> = members
        .iter()
        .rev()
        .find(|(k, _)| k == "groupList")
        .and_then(|(_, list)| serde_json::from_str(list.get()).ok())
        .unwrap_or_default();
    let mut list = String::from("[");
    let new = entries.iter().map(|e| e.to_string());
    for (i, item) in kept
        .iter()
        .map(|r| r.get().to_string())
        .chain(new)
        .enumerate()
    {
        if i > 0 {
            list.push(',');
        }
        list.push_str(&item);
    }
    list.push(']');
    Some(with_group_list(
        &members,
        Some(&list),
        doc.len() + list.len() + 16,
    ))
}

/// The document of `members` with its `groupList` replaced by `list` (its
/// exact text), in place, or appended last when there is none; `None`
/// removes it. Every other member is kept as its exact text.
fn with_group_list(members: &[(String, Box<RawValue>)], list: Option<&str>, size: usize) -> String {
    let mut out = String::with_capacity(size);
    out.push('{');
    let mut replaced = false;
    let mut first = true;
    for (name, value) in members {
        let text = if name == "groupList" {
            replaced = true;
            match list {
                Some(list) => list,
                None => continue,
            }
        } else {
            value.get()
        };
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::String(name.clone()).to_string());
        out.push(':');
        out.push_str(text);
    }
    if let (false, Some(list)) = (replaced, list) {
        if !first {
            out.push(',');
        }
        out.push_str("\"groupList\":");
        out.push_str(list);
    }
    out.push('}');
    out
}

/// The user document `doc` without one `groupList` entry equal to each of
/// `entries` (JSON-equal, as `revert` checked them). Every other entry and
/// member is kept as its exact text. A list left empty becomes what it was
/// before the apply that created it (`prior`), else stays `[]`. `None`: not
/// a JSON object.
fn without_memberships(doc: &str, entries: &[Value], prior: Option<ListPrior>) -> Option<String> {
    let Members(members) = serde_json::from_str(doc).ok()?;
    let current: Vec<Box<RawValue>> = members
        .iter()
        .rev()
        .find(|(k, _)| k == "groupList")
        .and_then(|(_, list)| serde_json::from_str(list.get()).ok())
        .unwrap_or_default();
    let mut unmatched: Vec<&Value> = entries.iter().collect();
    let mut kept: Vec<&str> = Vec::with_capacity(current.len());
    for item in &current {
        let parsed: Option<Value> = serde_json::from_str(item.get()).ok();
        match unmatched.iter().position(|e| parsed.as_ref() == Some(*e)) {
            Some(i) => {
                unmatched.swap_remove(i);
            }
            None => kept.push(item.get()),
        }
    }
    let list = format!("[{}]", kept.join(","));
    let list = match (kept.is_empty(), prior) {
        (true, Some(ListPrior::Absent)) => None,
        (true, Some(ListPrior::Null)) => Some("null".to_string()),
        _ => Some(list),
    };
    Some(with_group_list(&members, list.as_deref(), doc.len()))
}

fn row(key: String, value: super::Document) -> RawDoc {
    RawDoc {
        key,
        value: value.into_string(),
        undecodable: None,
    }
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
    /// A removal's row or membership is still there.
    Present,
}

/// The changes of a plan that `snapshot` does not hold: what `verify` reports.
pub fn unmet_changes<'s, 'a>(
    snapshot: &'s Snapshot,
    tenant: &str,
    changes: &'a [Change],
) -> Vec<(&'a Change, Unmet)> {
    let by_key = |rows: &'s [RawDoc]| -> BTreeMap<&'s str, &'s RawDoc> {
        rows.iter().map(|r| (r.key.as_str(), r)).collect()
    };
    let (tenants, roles, groups, bindings, users) = (
        by_key(&snapshot.tenants),
        by_key(&snapshot.roles),
        by_key(&snapshot.groups),
        by_key(&snapshot.bindings),
        by_key(&snapshot.users),
    );
    let mut unmet = Vec::new();
    for change in changes {
        let status = match change {
            Change::AddMembership {
                key,
                group_id,
                membership,
                ..
            } => {
                match users
                    .get(key.as_str())
                    .and_then(|raw| super::documents::parse_user(raw).ok())
                {
                    None => Some(Unmet::Missing),
                    Some(user) => match user
                        .tenant_memberships
                        .get(&(Cow::Borrowed(tenant), Cow::Borrowed(group_id.as_str())))
                    {
                        Some(m) if m == membership => None,
                        Some(_) => Some(Unmet::Differs),
                        None => Some(Unmet::Missing),
                    },
                }
            }
            Change::RemoveMembership { key, group_id, .. } => users
                .get(key.as_str())
                .and_then(|raw| super::documents::parse_user(raw).ok())
                .filter(|user| {
                    user.tenant_memberships
                        .contains_key(&(Cow::Borrowed(tenant), Cow::Borrowed(group_id.as_str())))
                })
                .map(|_| Unmet::Present),
            Change::RemoveTenant { key, .. } => tenants.get(key.as_str()).map(|_| Unmet::Present),
            Change::RemoveRole { key, .. } => roles.get(key.as_str()).map(|_| Unmet::Present),
            Change::RemoveGroup { key, .. } => groups.get(key.as_str()).map(|_| Unmet::Present),
            Change::RemoveBinding { key, .. } => bindings.get(key.as_str()).map(|_| Unmet::Present),
            Change::CreateTenant { key, value }
            | Change::AddRole { key, value }
            | Change::AddGroup { key, value }
            | Change::AddBinding { key, value, .. } => {
                let table = match change {
                    Change::CreateTenant { .. } => &tenants,
                    Change::AddRole { .. } => &roles,
                    Change::AddGroup { .. } => &groups,
                    _ => &bindings,
                };
                match table.get(key.as_str()).map(|raw| raw.value.as_str()) {
                    None => Some(Unmet::Missing),
                    Some(text) => match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(found)) if found == value.to_map() => None,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::with_memberships;

    fn entry(group: &str) -> serde_json::Value {
        json!({"tenantId": "t", "groupId": group, "membership": "MEMBER"})
    }

    #[test]
    fn every_other_member_is_kept_as_its_exact_text() {
        let doc = r#"{"id": "u1", "auths": [{"n": 123456789012345678901234567890, "r": 1.10, "s": "caf\u00e9"}], "groupList": [ {"groupId": "g0", "membership": "OWNER", "x": 1.0} ], "deleted": false}"#;
        assert_eq!(
            with_memberships(doc, vec![entry("g1")]).unwrap(),
            r#"{"id":"u1","auths":[{"n": 123456789012345678901234567890, "r": 1.10, "s": "caf\u00e9"}],"groupList":[{"groupId": "g0", "membership": "OWNER", "x": 1.0},{"groupId":"g1","membership":"MEMBER","tenantId":"t"}],"deleted":false}"#
        );
    }

    #[test]
    fn a_missing_list_is_created_last_and_a_null_one_in_place() {
        assert_eq!(
            with_memberships(r#"{"id":"u1"}"#, vec![entry("g1"), entry("g2")]).unwrap(),
            r#"{"id":"u1","groupList":[{"groupId":"g1","membership":"MEMBER","tenantId":"t"},{"groupId":"g2","membership":"MEMBER","tenantId":"t"}]}"#
        );
        assert_eq!(
            with_memberships(r#"{"groupList":null,"id":"u1"}"#, vec![entry("g1")]).unwrap(),
            r#"{"groupList":[{"groupId":"g1","membership":"MEMBER","tenantId":"t"}],"id":"u1"}"#
        );
        assert_eq!(
            with_memberships("{}", vec![entry("g1")]).unwrap(),
            r#"{"groupList":[{"groupId":"g1","membership":"MEMBER","tenantId":"t"}]}"#
        );
    }

    #[test]
    fn what_is_not_an_object_is_refused() {
        assert_eq!(with_memberships("[]", vec![entry("g1")]), None);
        assert_eq!(with_memberships("{\"id\":", vec![entry("g1")]), None);
        assert_eq!(with_memberships("{} x", vec![entry("g1")]), None);
    }
}
