//! The revert rules (docs/revert.md §3): a pure function from the changes
//! an applied plan made and a snapshot of the store to the removals that
//! undo exactly those changes, and the conflicts that stop some of them.
//! `plan --revert` calls it with the applied plan's changes; `apply` calls
//! it again under the lock with the additions the revert's removals undo,
//! so that what is reviewed and what is written cannot disagree.
//!
//! A copied row is removed only when it is still the document the apply
//! wrote (canonical comparison); a membership only when its `groupList`
//! entry is still there as written. Whatever else still uses a copied role,
//! group or created tenant (a binding or membership the revert does not
//! remove) keeps it, as a conflict naming both.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::{self, Membership, RawDoc, SubjectType};
use super::{Change, Document, Finding, Kind, Snapshot, SyncResult};
use crate::plan::canonical;

/// What a user's `groupList` was before the apply that created it, as the
/// history records it: a revert that leaves the list empty puts this back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListPrior {
    /// The document had no `groupList`: the list is removed again.
    Absent,
    /// `groupList` was `null`: it becomes `null` again.
    Null,
}

pub(crate) const CHANGED: &str = "changed since the apply";
pub(crate) const DELETED: &str = "deleted since the apply";
pub(crate) const USED: &str = "still used";

/// The removals that undo `applied` (the additions of one applied plan) in
/// `snapshot`, with the conflicts; with `skip_conflicts` the conflicts are
/// moved to `skipped`, as `sync` does. Removals in `applied` are ignored.
pub fn revert(
    applied: &[Change],
    snapshot: &Snapshot,
    tenant: &str,
    skip_conflicts: bool,
) -> SyncResult {
    let mut out = SyncResult::default();
    fn rows(docs: &[RawDoc]) -> HashMap<&str, &str> {
        docs.iter()
            .map(|r| (r.key.as_str(), r.value.as_str()))
            .collect()
    }
    let (tenants, roles, groups, bindings, users) = (
        rows(&snapshot.tenants),
        rows(&snapshot.roles),
        rows(&snapshot.groups),
        rows(&snapshot.bindings),
        rows(&snapshot.users),
    );
    // Bindings and memberships first: whether a role, group or tenant can
    // go depends on what still uses it once they are gone.
    let mut removed_bindings: HashSet<&str> = HashSet::new();
    let mut removed_memberships: HashSet<(&str, &str)> = HashSet::new();
    let mut documents: Vec<(&Change, Kind)> = Vec::new();
    // The last user read: key -> its `groupList` (`None`: no such user).
    let mut lists: Option<(&str, Option<Vec<Value>>)> = None;
    for change in applied {
        match change {
            Change::AddBinding { key, value, .. } => {
                match drift(bindings.get(key.as_str()).copied(), value) {
                    None => {
                        removed_bindings.insert(key);
                        out.changes.push(change.clone().removal());
                    }
                    Some((reason, detail)) => out.conflicts.push(finding(
                        Kind::Binding,
                        key,
                        reason,
                        format!("binding `{key}` {detail}"),
                    )),
                }
            }
            Change::AddMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            } => {
                // A user's memberships are consecutive (changes are sorted
                // by key): each document is parsed once.
                if lists.as_ref().map(|(k, _)| *k) != Some(key.as_str()) {
                    lists = Some((key, users.get(key.as_str()).map(|doc| group_list(doc))));
                }
                let found = lists
                    .as_ref()
                    .and_then(|(_, list)| list.as_ref())
                    .map(|list| entries_of(list, tenant, group_id));
                let problem = match found {
                    None => Some((DELETED, format!("user `{key}` is not in the store"))),
                    Some(found) if found.len() == 1 && found[0] == Some(*membership) => None,
                    Some(found) if found.is_empty() => Some((
                        DELETED,
                        format!("user `{key}`'s groupList no longer holds group `{group_id}` in tenant `{tenant}`"),
                    )),
                    Some(found) => Some((
                        CHANGED,
                        format!(
                            "user `{key}`'s groupList holds group `{group_id}` in tenant `{tenant}` as {}, not as the {} entry the apply wrote",
                            describe(&found),
                            membership.as_str()
                        ),
                    )),
                };
                match problem {
                    None => {
                        removed_memberships.insert((key, group_id));
                        out.changes.push(change.clone().removal());
                    }
                    Some((reason, detail)) => {
                        let mut f = finding(Kind::Membership, key, reason, detail);
                        f.group_id = Some(group_id.clone());
                        f.user_id = Some(user_id.clone());
                        f.username = Some(username.clone()).filter(|u| !u.is_empty());
                        f.group_name = Some(group_name.clone());
                        f.membership = Some(*membership);
                        out.conflicts.push(f);
                    }
                }
            }
            Change::AddRole { .. } => documents.push((change, Kind::Role)),
            Change::AddGroup { .. } => documents.push((change, Kind::Group)),
            Change::CreateTenant { .. } => documents.push((change, Kind::Tenant)),
            _ => {}
        }
    }
    let uses = Uses::of(snapshot, tenant, &removed_bindings, &removed_memberships);
    let mut tenant_removal = None;
    for (change, kind) in documents {
        let (key, value) = match change {
            Change::AddRole { key, value }
            | Change::AddGroup { key, value }
            | Change::CreateTenant { key, value } => (key, value),
            _ => unreachable!("only documents are kept here"),
        };
        let (table, noun) = match change {
            Change::AddRole { .. } => (&roles, "role"),
            Change::AddGroup { .. } => (&groups, "group"),
            _ => (&tenants, "tenant"),
        };
        let id = value.map().get("id").and_then(Value::as_str).unwrap_or("");
        let name = value.map().get("name").and_then(Value::as_str);
        let problem = drift(table.get(key.as_str()).copied(), value)
            .map(|(reason, detail)| (reason, format!("{noun} `{key}` {detail}")))
            .or_else(|| {
                let user = match change {
                    Change::AddRole { .. } => uses.roles.get(id),
                    Change::AddGroup { .. } => uses.groups.get(id),
                    _ => None,
                };
                user.map(|by| {
                    (
                        USED,
                        format!("{noun} `{key}` is used by {by}, which the revert does not remove"),
                    )
                })
            });
        match problem {
            None if kind == Kind::Tenant => tenant_removal = Some(change),
            None => out.changes.push(change.clone().removal()),
            Some((reason, detail)) => {
                let mut f = finding(kind, key, reason, detail);
                f.name = name.map(str::to_string);
                out.conflicts.push(f);
            }
        }
    }
    if let Some(change) = tenant_removal {
        // Only an empty tenant goes: whatever is left in it once the
        // revert's removals are done keeps it.
        let removed: HashSet<String> = out
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::RemoveRole { key, .. } => Some(format!("role\0{key}")),
                Change::RemoveGroup { key, .. } => Some(format!("group\0{key}")),
                _ => None,
            })
            .collect();
        match uses.anything_but(&removed) {
            None => out.changes.push(change.clone().removal()),
            Some(by) => {
                let mut f = finding(
                    Kind::Tenant,
                    change.key(),
                    USED,
                    format!("tenant `{tenant}` still holds {by}, which the revert does not remove"),
                );
                f.name = change_name(change);
                out.conflicts.push(f);
            }
        }
    }
    if skip_conflicts {
        for mut f in std::mem::take(&mut out.conflicts) {
            f.reason = format!("conflict: {}", f.reason);
            out.skipped.push(f);
        }
    }
    out.changes
        .sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.skipped.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.conflicts
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}

fn change_name(change: &Change) -> Option<String> {
    match change {
        Change::CreateTenant { value, .. } => value
            .map()
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

fn finding(kind: Kind, key: &str, reason: &str, detail: String) -> Finding {
    let mut f = Finding::new(kind, key, reason);
    f.detail = Some(detail);
    f
}

/// Why the row at a key is no longer what the apply wrote: `None` when it
/// is exactly that document (canonical comparison).
fn drift(found: Option<&str>, written: &Document) -> Option<(&'static str, String)> {
    match found {
        None => Some((DELETED, "is no longer in the store".to_string())),
        Some(text) if canonical::object(text).as_deref() == Some(written.as_str()) => None,
        Some(_) => Some((
            CHANGED,
            "is no longer the document the apply wrote".to_string(),
        )),
    }
}

/// A user document's `groupList` (empty when it has none, or it is not a
/// list).
fn group_list(doc: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(doc) {
        Ok(Value::Object(mut map)) => match map.remove("groupList") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The entries of a `groupList` for `group` in `tenant`: the membership of
/// each that is exactly `{groupId, membership, tenantId}` (as apply writes
/// them), `None` for one that holds anything else.
fn entries_of(list: &[Value], tenant: &str, group: &str) -> Vec<Option<Membership>> {
    list.iter()
        .filter_map(Value::as_object)
        .filter(|e| {
            e.get("tenantId").and_then(Value::as_str) == Some(tenant)
                && e.get("groupId").and_then(Value::as_str) == Some(group)
        })
        .map(|e| {
            let membership = e
                .get("membership")
                .and_then(|m| Membership::deserialize(m).ok());
            membership.filter(|_| e.len() == 3)
        })
        .collect()
}

/// Whether a document's `tenantId` is `tenant`, however malformed the rest
/// (on a repeated member, the last one, as everywhere).
fn in_tenant(raw: &RawDoc, tenant: &str) -> bool {
    #[derive(Deserialize)]
    struct TenantOf {
        #[serde(default, rename = "tenantId")]
        tenant_id: Option<String>,
    }
    match serde_json::from_str::<TenantOf>(&raw.value) {
        Ok(doc) => doc.tenant_id.as_deref() == Some(tenant),
        Err(_) => serde_json::from_str::<Value>(&raw.value)
            .is_ok_and(|doc| doc.get("tenantId").and_then(Value::as_str) == Some(tenant)),
    }
}

fn describe(found: &[Option<Membership>]) -> String {
    let each: Vec<&str> = found
        .iter()
        .map(|m| m.map_or("another entry", Membership::as_str))
        .collect();
    each.join(" and ")
}

/// What uses the tenant's roles and groups once the revert's bindings and
/// memberships are gone: for each, the first user by key, for the message.
struct Uses {
    /// Role id -> `binding \`key\``.
    roles: BTreeMap<String, String>,
    /// Group id -> `binding \`key\`` or `user \`key\`'s membership`.
    groups: BTreeMap<String, String>,
    /// Every row of the tenant besides the bindings and memberships that
    /// go, by `<noun>\0<key>` -> what it is.
    rest: BTreeMap<String, String>,
}

impl Uses {
    fn of(
        snapshot: &Snapshot,
        tenant: &str,
        removed_bindings: &HashSet<&str>,
        removed_memberships: &HashSet<(&str, &str)>,
    ) -> Uses {
        let mut uses = Uses {
            roles: BTreeMap::new(),
            groups: BTreeMap::new(),
            rest: BTreeMap::new(),
        };
        let first = |map: &mut BTreeMap<String, String>, id: &str, by: String| match map.get_mut(id)
        {
            Some(old) if by < *old => *old = by,
            Some(_) => {}
            None => {
                map.insert(id.to_string(), by);
            }
        };
        for raw in &snapshot.bindings {
            if removed_bindings.contains(raw.key.as_str()) || !in_tenant(raw, tenant) {
                continue;
            }
            let by = format!("binding `{}`", raw.key);
            // Even a malformed binding is something the tenant holds.
            uses.rest
                .insert(format!("binding\0{}", raw.key), by.clone());
            let Ok(b) = documents::parse_binding(raw) else {
                continue;
            };
            if b.header.deleted {
                continue;
            }
            first(&mut uses.roles, &b.grant.role_id, by.clone());
            if b.grant.subject_type == SubjectType::Group {
                first(&mut uses.groups, &b.grant.external_id, by);
            }
        }
        for raw in &snapshot.users {
            let Ok(user) = documents::parse_user(raw) else {
                continue;
            };
            for (t, group) in user.tenant_memberships.keys() {
                if t != tenant || removed_memberships.contains(&(raw.key.as_str(), group.as_ref()))
                {
                    continue;
                }
                let by = format!("user `{}`'s membership of group `{group}`", raw.key);
                first(
                    &mut uses.rest,
                    &format!("membership\0{}\0{group}", raw.key),
                    by.clone(),
                );
                if !user.header.deleted {
                    first(&mut uses.groups, group, by);
                }
            }
        }
        for (rows, noun) in [(&snapshot.roles, "role"), (&snapshot.groups, "group")] {
            for raw in rows {
                if in_tenant(raw, tenant) {
                    uses.rest.insert(
                        format!("{noun}\0{}", raw.key),
                        format!("{noun} `{}`", raw.key),
                    );
                }
            }
        }
        uses
    }

    /// Something of the tenant that is not among `removed` keys, if any.
    fn anything_but(&self, removed: &HashSet<String>) -> Option<&str> {
        self.rest
            .iter()
            .find(|(key, _)| !removed.contains(*key))
            .map(|(_, by)| by.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Value};

    use super::*;
    use crate::sync::{
        applied, created_group_lists, removals_for, removed, sync, writes_for, Op, SyncOptions,
    };

    const T: &str = "default";

    fn row(key: &str, doc: Value) -> RawDoc {
        RawDoc::new(key, doc.to_string())
    }

    /// A legacy scope (admin role, ops group, alice in it, two bindings)
    /// and an empty tenant `default`; alice has no `groupList`, bob a
    /// `null` one, carol one with another tenant's entry.
    fn legacy() -> Snapshot {
        Snapshot {
            tenants: vec![row(
                T,
                json!({"id": T, "name": "Default", "deleted": false}),
            )],
            users: vec![
                row(
                    "alice",
                    json!({"id": "alice", "username": "alice@x", "groups": ["ops"], "auths": [{"n": 1.10}], "deleted": false}),
                ),
                row(
                    "bob",
                    json!({"id": "bob", "username": "bob@x", "groups": ["ops"], "groupList": null, "deleted": false}),
                ),
                row(
                    "carol",
                    json!({"id": "carol", "username": "carol@x", "groupList": [{"groupId": "ops", "membership": "OWNER"}, {"tenantId": "other", "groupId": "g", "membership": "MEMBER"}], "deleted": false}),
                ),
            ],
            roles: vec![row(
                "admin",
                json!({"id": "admin", "name": "Admin", "permissions": {"FLOW": ["READ"]}, "deleted": false}),
            )],
            groups: vec![row(
                "ops",
                json!({"id": "ops", "name": "Ops", "deleted": false}),
            )],
            bindings: vec![
                row(
                    "b1",
                    json!({"id": "b1", "type": "GROUP", "externalId": "ops", "roleId": "admin", "deleted": false}),
                ),
                row(
                    "b2",
                    json!({"id": "b2", "type": "USER", "externalId": "alice", "roleId": "admin", "deleted": false}),
                ),
            ],
            ..Snapshot::default()
        }
    }

    /// The store once the sync's plan is applied, the plan's changes, and
    /// the `groupList`s that apply created.
    fn applied_store(before: &Snapshot) -> (Snapshot, Vec<Change>, BTreeMap<String, ListPrior>) {
        let plan = sync(before, &SyncOptions::new(T)).expect("the tenant exists");
        let lists = created_group_lists(before, &plan.changes);
        let writes = writes_for(before, T, &plan.changes).expect("users exist");
        (applied(before, &writes), plan.changes, lists)
    }

    /// Each table as key -> parsed document: equal when JSON-equal.
    fn tables(s: &Snapshot) -> Vec<BTreeMap<String, Value>> {
        [&s.tenants, &s.users, &s.groups, &s.roles, &s.bindings]
            .iter()
            .map(|rows| {
                rows.iter()
                    .map(|r| (r.key.clone(), serde_json::from_str(&r.value).unwrap()))
                    .collect()
            })
            .collect()
    }

    fn set(
        snapshot: &mut Snapshot,
        table: fn(&mut Snapshot) -> &mut Vec<RawDoc>,
        key: &str,
        doc: Value,
    ) {
        let rows = table(snapshot);
        rows.retain(|r| r.key != key);
        rows.push(row(key, doc));
    }

    #[test]
    fn apply_then_revert_gives_back_every_document() {
        let before = legacy();
        let (after, changes, lists) = applied_store(&before);
        assert_eq!(lists.get("alice"), Some(&ListPrior::Absent));
        assert_eq!(lists.get("bob"), Some(&ListPrior::Null));
        assert_eq!(lists.get("carol"), None);
        let result = revert(&changes, &after, T, false);
        assert!(result.conflicts.is_empty(), "{:#?}", result.conflicts);
        assert_eq!(result.changes.len(), changes.len());
        assert!(result.changes.iter().all(|c| c.op().is_removal()));
        let removals = removals_for(&after, T, &result.changes, &lists).unwrap();
        let back = removed(&after, &removals);
        assert_eq!(tables(&back), tables(&before));
        // A list the apply created is removed again: the text is as before.
        let text = |s: &Snapshot| {
            s.users
                .iter()
                .find(|u| u.key == "alice")
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(text(&back), text(&before));
        // And planning again gives the original changes.
        let again = sync(&back, &SyncOptions::new(T)).unwrap();
        assert_eq!(again.changes, changes);
    }

    #[test]
    fn a_revert_is_rederived_from_its_own_removals() {
        let (after, changes, _) = applied_store(&legacy());
        let first = revert(&changes, &after, T, false);
        let undone: Vec<Change> = first
            .changes
            .iter()
            .cloned()
            .map(Change::addition)
            .collect();
        assert_eq!(revert(&undone, &after, T, false).changes, first.changes);
    }

    #[test]
    fn an_edited_copied_row_is_a_conflict_and_is_kept() {
        let (mut after, changes, _) = applied_store(&legacy());
        set(
            &mut after,
            |s| &mut s.roles,
            "default_admin",
            json!({"id": "admin", "tenantId": T, "name": "Admin", "permissions": {"FLOW": ["READ", "DELETE"]}, "deleted": false}),
        );
        let result = revert(&changes, &after, T, false);
        let f = result
            .conflicts
            .iter()
            .find(|f| f.key == "default_admin")
            .unwrap();
        assert_eq!((f.kind, f.reason.as_str()), (Kind::Role, CHANGED));
        assert!(!result.changes.iter().any(|c| c.op() == Op::RemoveRole));
        // A reordered but equal document is no drift.
        let (mut after, changes, _) = applied_store(&legacy());
        set(
            &mut after,
            |s| &mut s.groups,
            "default_ops",
            json!({"tenantId": T, "name": "Ops", "deleted": false, "id": "ops"}),
        );
        assert!(revert(&changes, &after, T, false).conflicts.is_empty());
    }

    #[test]
    fn a_deleted_copied_row_is_a_conflict() {
        let (mut after, changes, _) = applied_store(&legacy());
        after.bindings.retain(|r| r.key != "default_b2");
        let result = revert(&changes, &after, T, false);
        let f = result
            .conflicts
            .iter()
            .find(|f| f.key == "default_b2")
            .unwrap();
        assert_eq!((f.kind, f.reason.as_str()), (Kind::Binding, DELETED));
        assert!(f.detail.as_deref().unwrap().contains("default_b2"));
    }

    #[test]
    fn a_later_binding_using_a_copied_role_keeps_it_naming_both() {
        let (mut after, changes, _) = applied_store(&legacy());
        after.bindings.push(row(
            "default_b9",
            json!({"id": "b9", "tenantId": T, "type": "USER", "externalId": "carol", "roleId": "admin", "deleted": false}),
        ));
        let result = revert(&changes, &after, T, false);
        let f = result
            .conflicts
            .iter()
            .find(|f| f.key == "default_admin")
            .unwrap();
        assert_eq!(f.reason, USED);
        let detail = f.detail.as_deref().unwrap();
        assert!(
            detail.contains("default_admin") && detail.contains("default_b9"),
            "{detail}"
        );
        // The plan's own bindings still go.
        assert!(result.changes.iter().any(|c| c.key() == "default_b2"));
    }

    #[test]
    fn a_later_membership_into_a_copied_group_keeps_it() {
        let (mut after, changes, _) = applied_store(&legacy());
        let carol = json!({"id": "carol", "username": "carol@x", "groupList": [{"groupId": "ops", "membership": "OWNER"}, {"tenantId": "other", "groupId": "g", "membership": "MEMBER"}, {"tenantId": T, "groupId": "ops", "membership": "MEMBER"}], "deleted": false});
        set(&mut after, |s| &mut s.users, "carol", carol);
        let result = revert(&changes, &after, T, false);
        let f = result
            .conflicts
            .iter()
            .find(|f| f.key == "default_ops")
            .unwrap();
        assert!(f.detail.as_deref().unwrap().contains("carol"));
    }

    #[test]
    fn a_membership_changed_elsewhere_is_a_conflict_and_other_entries_stay() {
        let (mut after, changes, lists) = applied_store(&legacy());
        // bob's entry became OWNER; alice got another tenant's entry.
        let bob = json!({"id": "bob", "username": "bob@x", "groups": ["ops"], "groupList": [{"tenantId": T, "groupId": "ops", "membership": "OWNER"}], "deleted": false});
        set(&mut after, |s| &mut s.users, "bob", bob);
        let alice_text = r#"{"id":"alice","username":"alice@x","groups":["ops"],"auths":[{"n":1.10}],"deleted":false,"groupList":[{"tenantId":"x","groupId":"y","membership":"MEMBER","extra":1.50},{"groupId":"ops","membership":"MEMBER","tenantId":"default"}]}"#;
        after.users.retain(|u| u.key != "alice");
        after.users.push(RawDoc::new("alice", alice_text));
        let result = revert(&changes, &after, T, true);
        let skipped = |key: &str| {
            result
                .skipped
                .iter()
                .find(|f| f.key == key && f.kind == Kind::Membership)
        };
        assert_eq!(
            skipped("bob").unwrap().reason,
            format!("conflict: {CHANGED}")
        );
        assert!(result.conflicts.is_empty());
        // The group is still used by bob's entry: it stays too.
        assert!(result.skipped.iter().any(|f| f.key == "default_ops"));
        let removals = removals_for(&after, T, &result.changes, &lists).unwrap();
        let alice = removals.users.iter().find(|u| u.key == "alice").unwrap();
        assert_eq!(
            alice.value,
            r#"{"id":"alice","username":"alice@x","groups":["ops"],"auths":[{"n":1.10}],"deleted":false,"groupList":[{"tenantId":"x","groupId":"y","membership":"MEMBER","extra":1.50}]}"#
        );
    }

    #[test]
    fn a_created_tenant_goes_only_when_empty() {
        let mut before = legacy();
        before.tenants.clear();
        let options = SyncOptions {
            create_tenant: true,
            ..SyncOptions::new(T)
        };
        let plan = sync(&before, &options).unwrap();
        let lists = created_group_lists(&before, &plan.changes);
        let after = applied(&before, &writes_for(&before, T, &plan.changes).unwrap());
        let result = revert(&plan.changes, &after, T, false);
        assert!(result.changes.iter().any(|c| c.op() == Op::RemoveTenant));
        let back = removed(
            &after,
            &removals_for(&after, T, &result.changes, &lists).unwrap(),
        );
        assert_eq!(tables(&back), tables(&before));
        // A role added to the tenant since keeps the tenant.
        let mut later = after.clone();
        later.roles.push(row(
            "default_new",
            json!({"id": "new", "tenantId": T, "name": "New", "deleted": false}),
        ));
        let result = revert(&plan.changes, &later, T, false);
        let f = result
            .conflicts
            .iter()
            .find(|f| f.kind == Kind::Tenant)
            .unwrap();
        assert!(f.detail.as_deref().unwrap().contains("default_new"));
    }

    #[test]
    fn the_demo_store_reverts_document_for_document() {
        let before = crate::demo::small();
        let (after, changes, lists) = applied_store(&before);
        let result = revert(&changes, &after, T, false);
        assert!(result.conflicts.is_empty(), "{:#?}", result.conflicts);
        let back = removed(
            &after,
            &removals_for(&after, T, &result.changes, &lists).unwrap(),
        );
        assert_eq!(tables(&back), tables(&before));
    }
}
