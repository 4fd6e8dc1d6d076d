//! The sync rules of SPEC §3: a pure function from a snapshot of the store to
//! the changes that mirror the legacy scope into a tenant. No I/O, no async:
//! `plan` and `apply` both call [`sync`], so what is reviewed and what is
//! re-derived under the lock can never disagree by construction.

pub mod documents;
#[cfg(test)]
mod tests;
pub mod writes;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use documents::{Binding, Grant, Group, Malformed, Parsed, Role, User};
pub use documents::{Document, Membership, RawDoc, SubjectType};
pub use writes::{applied, into_writes, unmet_changes, writes_for, MissingUser, Unmet, Writes};

/// The rows `sync` needs, read in one consistent snapshot. Each table holds
/// at least every legacy document, every document of the target tenant and
/// every document whose key starts with `<tenant>_`; more rows are harmless.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Rows of `tenants` whose key is the target tenant.
    pub tenants: Vec<RawDoc>,
    pub users: Vec<RawDoc>,
    pub groups: Vec<RawDoc>,
    pub roles: Vec<RawDoc>,
    pub bindings: Vec<RawDoc>,
}

/// What the operator asked for; recorded in the plan so that `apply`
/// re-derives with the same options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    pub tenant: String,
    #[serde(default)]
    pub create_tenant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_name: Option<String>,
    #[serde(default)]
    pub skip_conflicts: bool,
}

impl SyncOptions {
    pub fn new(tenant: impl Into<String>) -> Self {
        SyncOptions {
            tenant: tenant.into(),
            create_tenant: false,
            tenant_name: None,
            skip_conflicts: false,
        }
    }
}

/// One write of the plan. Field names are the plan format (SPEC §4);
/// `crate::plan::change` reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreateTenant {
        key: String,
        value: Document,
    },
    AddRole {
        key: String,
        value: Document,
    },
    AddGroup {
        key: String,
        value: Document,
    },
    /// Appends `{tenantId, groupId, membership}` to the `groupList` of the
    /// user whose key is `key`.
    AddMembership {
        key: String,
        user_id: String,
        username: String,
        group_id: String,
        /// Readable context for review.
        group_name: String,
        membership: Membership,
    },
    AddBinding {
        key: String,
        value: Document,
        /// Readable context for review: `user <username>` or `group <name>`.
        subject: String,
        /// The role's name.
        role: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    CreateTenant,
    AddRole,
    AddGroup,
    AddMembership,
    AddBinding,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::CreateTenant,
        Op::AddRole,
        Op::AddGroup,
        Op::AddMembership,
        Op::AddBinding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::CreateTenant => "create_tenant",
            Op::AddRole => "add_role",
            Op::AddGroup => "add_group",
            Op::AddMembership => "add_membership",
            Op::AddBinding => "add_binding",
        }
    }
}

impl Change {
    pub fn op(&self) -> Op {
        match self {
            Change::CreateTenant { .. } => Op::CreateTenant,
            Change::AddRole { .. } => Op::AddRole,
            Change::AddGroup { .. } => Op::AddGroup,
            Change::AddMembership { .. } => Op::AddMembership,
            Change::AddBinding { .. } => Op::AddBinding,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Change::CreateTenant { key, .. }
            | Change::AddRole { key, .. }
            | Change::AddGroup { key, .. }
            | Change::AddMembership { key, .. }
            | Change::AddBinding { key, .. } => key,
        }
    }

    pub fn group_id(&self) -> Option<&str> {
        match self {
            Change::AddMembership { group_id, .. } => Some(group_id),
            _ => None,
        }
    }

    /// SPEC §4 order: op, then key, then group id, strings by UTF-8 bytes.
    pub fn sort_key(&self) -> (Op, &[u8], &[u8]) {
        (
            self.op(),
            self.key().as_bytes(),
            self.group_id().unwrap_or("").as_bytes(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    User,
    Role,
    Group,
    Membership,
    Binding,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Role => "role",
            Kind::Group => "group",
            Kind::Membership => "membership",
            Kind::Binding => "binding",
        }
    }
}

/// A legacy document or membership that is not planned: skipped or in conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub kind: Kind,
    /// The document's key; for a membership, the user's key.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Short and stable (`user deleted`, `role missing`, `malformed`, ...).
    pub reason: String,
    /// What exactly is wrong, when the reason alone does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Finding {
    fn sort_key(&self) -> (Kind, &[u8], &[u8]) {
        (
            self.kind,
            self.key.as_bytes(),
            self.group_id.as_deref().unwrap_or("").as_bytes(),
        )
    }
}

/// The result of [`sync`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub changes: Vec<Change>,
    /// Legacy documents and memberships already in the tenant, by kind.
    pub present: BTreeMap<Kind, usize>,
    pub skipped: Vec<Finding>,
    pub conflicts: Vec<Finding>,
}

impl SyncResult {
    pub fn present_total(&self) -> usize {
        self.present.values().sum()
    }

    pub fn count(&self, op: Op) -> usize {
        self.changes.iter().filter(|c| c.op() == op).count()
    }
}

/// Why no plan can be made at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("tenant `{0}` does not exist (pass --create-tenant to create it)")]
    TenantMissing(String),
    #[error("tenant `{0}` is deleted")]
    TenantDeleted(String),
    #[error("tenant `{0}` has a malformed document: {1}")]
    TenantMalformed(String, String),
    #[error("--tenant must not be empty")]
    EmptyTenant,
}

/// Computes the plan of SPEC §3 for `snapshot`. The result is independent of
/// the order of the snapshot's rows. Linear in the snapshot: every lookup is
/// a hash map, and documents are read in place, not copied.
pub fn sync(snapshot: &Snapshot, options: &SyncOptions) -> Result<SyncResult, SyncError> {
    let tenant = options.tenant.as_str();
    if tenant.is_empty() {
        return Err(SyncError::EmptyTenant);
    }
    let mut out = SyncResult::default();

    if let Some(change) = tenant_change(snapshot, options)? {
        out.changes.push(change);
    }

    let users = UserIndex::new(snapshot, &mut out);
    let roles = Scope::new(
        &snapshot.roles,
        documents::parse_role,
        tenant,
        Kind::Role,
        &mut out,
    );
    let groups = Scope::new(
        &snapshot.groups,
        documents::parse_group,
        tenant,
        Kind::Group,
        &mut out,
    );
    let bindings = Scope::new(
        &snapshot.bindings,
        documents::parse_binding,
        tenant,
        Kind::Binding,
        &mut out,
    );

    // At most one change per legacy document and membership: reserving it
    // up front keeps a million changes from doubling the vector's memory.
    let memberships: usize = users.live.iter().map(|u| u.legacy_memberships.len()).sum();
    out.changes.reserve_exact(
        1 + roles.legacy.len() + groups.legacy.len() + bindings.legacy.len() + memberships,
    );
    let role_outcomes = copy_documents(&roles, tenant, Kind::Role, &mut out, |legacy, existing| {
        legacy.name == existing.name && legacy.permissions == existing.permissions
    });
    let group_outcomes = copy_documents(
        &groups,
        tenant,
        Kind::Group,
        &mut out,
        |legacy, existing| legacy.name == existing.name,
    );
    let deps = Dependencies {
        users: &users,
        roles: &roles,
        role_names: names(&roles),
        role_outcomes: &role_outcomes,
        groups: &groups,
        group_names: names(&groups),
        group_outcomes: &group_outcomes,
    };
    plan_memberships(&users, &deps, tenant, &mut out);
    plan_bindings(&bindings, &deps, tenant, &mut out);

    if options.skip_conflicts {
        for mut finding in std::mem::take(&mut out.conflicts) {
            finding.reason = format!("conflict: {}", finding.reason);
            out.skipped.push(finding);
        }
    }
    out.changes
        .sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.skipped.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.conflicts
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    Ok(out)
}

fn tenant_change(snapshot: &Snapshot, options: &SyncOptions) -> Result<Option<Change>, SyncError> {
    let tenant = &options.tenant;
    let mut found = None;
    for raw in snapshot.tenants.iter().filter(|raw| &raw.key == tenant) {
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

fn malformed_finding(kind: Kind, m: &Malformed) -> Finding {
    Finding {
        kind,
        key: m.key.clone(),
        group_id: None,
        reason: "malformed".into(),
        detail: Some(m.detail.clone()),
    }
}

/// Whether a legacy document that others depend on can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Available,
    Missing,
    Deleted,
    Malformed,
}

impl Availability {
    fn reason(self, kind: Kind) -> Option<String> {
        let word = match self {
            Availability::Available => return None,
            Availability::Missing => "missing",
            Availability::Deleted => "deleted",
            Availability::Malformed => "malformed",
        };
        Some(format!("{} {word}", kind.as_str()))
    }
}

/// Legacy availability of ids, from every legacy row of a table.
#[derive(Default)]
struct Ids<'a> {
    live: HashSet<Cow<'a, str>>,
    deleted: HashSet<Cow<'a, str>>,
    malformed: HashSet<Cow<'a, str>>,
}

impl Ids<'_> {
    fn availability(&self, id: &str) -> Availability {
        if self.live.contains(id) {
            Availability::Available
        } else if self.malformed.contains(id) {
            Availability::Malformed
        } else if self.deleted.contains(id) {
            Availability::Deleted
        } else {
            Availability::Missing
        }
    }
}

fn is_legacy_or_unknown(m: &Malformed) -> bool {
    matches!(m.tenant_id, None | Some(None))
}

struct UserIndex<'a> {
    /// Non-deleted, readable users (two documents may share an id: both
    /// have their memberships judged).
    live: Vec<User<'a>>,
    /// Index into `live` by id: the smallest key wins, for stable context.
    by_id: HashMap<Cow<'a, str>, usize>,
    ids: Ids<'a>,
    /// Deleted users, to report their memberships as skipped.
    deleted: Vec<User<'a>>,
}

impl<'a> UserIndex<'a> {
    fn new(snapshot: &'a Snapshot, out: &mut SyncResult) -> Self {
        let mut index = UserIndex {
            live: Vec::with_capacity(snapshot.users.len()),
            by_id: HashMap::with_capacity(snapshot.users.len()),
            ids: Ids::default(),
            deleted: Vec::new(),
        };
        for raw in &snapshot.users {
            match documents::parse_user(raw) {
                Ok(user) if user.header.deleted => {
                    index.ids.deleted.insert(user.header.id.clone());
                    index.deleted.push(user);
                }
                Ok(user) => {
                    index.ids.live.insert(user.header.id.clone());
                    let at = index.live.len();
                    let live = &index.live;
                    index
                        .by_id
                        .entry(user.header.id.clone())
                        .and_modify(|i| {
                            if user.header.key.as_bytes() < live[*i].header.key.as_bytes() {
                                *i = at
                            }
                        })
                        .or_insert(at);
                    index.live.push(user);
                }
                Err(m) => {
                    if m.deleted == Some(true) {
                        if let Some(id) = m.id {
                            index.ids.deleted.insert(Cow::Owned(id));
                        }
                        continue;
                    }
                    out.skipped.push(malformed_finding(Kind::User, &m));
                    if let Some(id) = m.id {
                        index.ids.malformed.insert(Cow::Owned(id));
                    }
                }
            }
        }
        index
    }
}

/// One table's legacy scope and target-tenant scope.
struct Scope<'a, T> {
    /// Non-deleted, readable legacy documents whose id is unique among them.
    legacy: Vec<T>,
    /// Ids held by several non-deleted legacy documents (all in conflict).
    duplicates: HashSet<Cow<'a, str>>,
    ids: Ids<'a>,
    /// Non-deleted target-tenant documents, and the one per id that is
    /// compared with a legacy document of that id (the one at the canonical
    /// key, else the smallest key).
    tenant_docs: Vec<T>,
    tenant_by_id: HashMap<Cow<'a, str>, usize>,
    /// Every row by key, whatever its scope or state: who holds a key.
    holders: HashMap<&'a str, Holder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Live,
    Deleted,
    Malformed,
}

trait Scoped<'a> {
    fn header(&self) -> &documents::Header<'a>;
}

impl<'a> Scoped<'a> for Role<'a> {
    fn header(&self) -> &documents::Header<'a> {
        &self.header
    }
}
impl<'a> Scoped<'a> for Group<'a> {
    fn header(&self) -> &documents::Header<'a> {
        &self.header
    }
}
impl<'a> Scoped<'a> for Binding<'a> {
    fn header(&self) -> &documents::Header<'a> {
        &self.header
    }
}

impl<'a, T: Scoped<'a>> Scope<'a, T> {
    fn new(
        rows: &'a [RawDoc],
        parse: fn(&'a RawDoc) -> Parsed<T>,
        tenant: &str,
        kind: Kind,
        out: &mut SyncResult,
    ) -> Self {
        let mut scope: Scope<'a, T> = Scope {
            legacy: Vec::with_capacity(rows.len()),
            duplicates: HashSet::new(),
            ids: Ids::default(),
            tenant_docs: Vec::new(),
            tenant_by_id: HashMap::new(),
            holders: HashMap::with_capacity(rows.len()),
        };
        // Bindings are referenced by nobody: their ids need no index.
        let track_ids = kind != Kind::Binding;
        let mut seen: HashMap<Cow<'a, str>, usize> = HashMap::with_capacity(rows.len());
        for raw in rows {
            match parse(raw) {
                Ok(doc) => {
                    let header = doc.header();
                    let holder = if header.deleted {
                        Holder::Deleted
                    } else {
                        Holder::Live
                    };
                    scope.holders.insert(raw.key.as_str(), holder);
                    match header.tenant_id.as_deref() {
                        None if header.deleted => {
                            if track_ids {
                                scope.ids.deleted.insert(header.id.clone());
                            }
                        }
                        None => {
                            if track_ids {
                                scope.ids.live.insert(header.id.clone());
                            }
                            *seen.entry(header.id.clone()).or_default() += 1;
                            scope.legacy.push(doc);
                        }
                        Some(t) if t == tenant && !header.deleted => {
                            // Several live tenant documents with one id: keep
                            // the one at the canonical key, for stable results.
                            let replace = match scope.tenant_by_id.get(&header.id) {
                                None => true,
                                Some(&i) => {
                                    let existing = scope.tenant_docs[i].header();
                                    let canonical = target_key(tenant, &header.id);
                                    header.key == canonical
                                        || (existing.key != canonical
                                            && header.key.as_bytes() < existing.key.as_bytes())
                                }
                            };
                            if replace {
                                scope
                                    .tenant_by_id
                                    .insert(header.id.clone(), scope.tenant_docs.len());
                            }
                            scope.tenant_docs.push(doc);
                        }
                        Some(_) => {}
                    }
                }
                Err(m) => {
                    scope.holders.insert(raw.key.as_str(), Holder::Malformed);
                    if m.deleted == Some(true) {
                        // Deleted, however broken: references to it say so.
                        if let (Some(id), Some(None), true) = (&m.id, &m.tenant_id, track_ids) {
                            scope.ids.deleted.insert(Cow::Owned(id.clone()));
                        }
                        continue;
                    }
                    if !is_legacy_or_unknown(&m) {
                        continue;
                    }
                    if let Some(id) = &m.id {
                        if m.tenant_id == Some(None) && track_ids {
                            scope.ids.malformed.insert(Cow::Owned(id.clone()));
                        }
                    }
                    out.skipped.push(malformed_finding(kind, &m));
                }
            }
        }
        if seen.len() < scope.legacy.len() {
            // Two legacy documents would be copied to the same key: neither
            // can be chosen without a human.
            let mut keys: HashMap<&str, Vec<&str>> = HashMap::new();
            for doc in &scope.legacy {
                let id = doc.header().id.as_ref();
                if seen[id] > 1 {
                    keys.entry(id).or_default().push(doc.header().key);
                }
            }
            for (id, mut list) in keys {
                list.sort_unstable();
                for key in &list {
                    out.conflicts.push(Finding {
                        kind,
                        key: key.to_string(),
                        group_id: None,
                        reason: format!(
                            "id `{id}` is used by several legacy documents ({})",
                            list.join(", ")
                        ),
                        detail: None,
                    });
                }
                scope.duplicates.insert(Cow::Owned(id.to_string()));
            }
            let duplicates = &scope.duplicates;
            scope
                .legacy
                .retain(|doc| !duplicates.contains(doc.header().id.as_ref()));
        }
        scope
    }

    /// A conflict when the target key is held by any document.
    fn key_conflict(&self, key: &str, kind: Kind) -> Option<String> {
        match self.holders.get(key)? {
            Holder::Live => Some(format!(
                "key `{key}` is already held by another {}",
                kind.as_str()
            )),
            Holder::Deleted => Some(format!(
                "key `{key}` is already held by a deleted {}",
                kind.as_str()
            )),
            Holder::Malformed => Some(format!(
                "key `{key}` is already held by a malformed document"
            )),
        }
    }
}

/// Where a legacy document's copy goes: `<tenant>_<id>`.
fn target_key(tenant: &str, id: &str) -> String {
    let mut key = String::with_capacity(tenant.len() + 1 + id.len());
    key.push_str(tenant);
    key.push('_');
    key.push_str(id);
    key
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Planned,
    Present,
    Conflict,
}

trait Named<'a>: Scoped<'a> {
    fn name(&self) -> &str;
    fn raw(&self) -> &'a str;
}
impl<'a> Named<'a> for Role<'a> {
    fn name(&self) -> &str {
        &self.name
    }
    fn raw(&self) -> &'a str {
        self.raw
    }
}
impl<'a> Named<'a> for Group<'a> {
    fn name(&self) -> &str {
        &self.name
    }
    fn raw(&self) -> &'a str {
        self.raw
    }
}

/// SPEC §3.2 and §3.3: roles and groups are copied by the same rules, with
/// `same` deciding when an existing tenant document is the copy.
fn copy_documents<'a, T: Named<'a>>(
    scope: &Scope<'a, T>,
    tenant: &str,
    kind: Kind,
    out: &mut SyncResult,
    same: impl Fn(&T, &T) -> bool,
) -> HashMap<String, Outcome> {
    let mut tenant_names: HashMap<&str, &str> = HashMap::new();
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
    let mut outcomes = HashMap::with_capacity(scope.legacy.len());
    for id in &scope.duplicates {
        outcomes.insert(id.to_string(), Outcome::Conflict);
    }
    for legacy in &scope.legacy {
        let id = legacy.header().id.as_ref();
        let key = target_key(tenant, id);
        let conflict = |reason: String| Finding {
            kind,
            key: legacy.header().key.to_string(),
            group_id: None,
            reason,
            detail: None,
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
                    out.conflicts.push(conflict(format!(
                        "tenant `{tenant}` already has {} `{id}` with {what}",
                        kind.as_str()
                    )));
                    Outcome::Conflict
                }
            } else if let Some(reason) = scope.key_conflict(&key, kind) {
                out.conflicts.push(conflict(reason));
                Outcome::Conflict
            } else if let Some(other) = tenant_names.get(legacy.name()) {
                out.conflicts.push(conflict(format!(
                    "tenant `{tenant}` already has a {} named `{}` with id `{other}`",
                    kind.as_str(),
                    legacy.name()
                )));
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

struct Dependencies<'r, 'a> {
    users: &'r UserIndex<'a>,
    roles: &'r Scope<'a, Role<'a>>,
    /// Legacy role and group names by id: the readable context of changes.
    role_names: HashMap<&'r str, &'r str>,
    role_outcomes: &'r HashMap<String, Outcome>,
    groups: &'r Scope<'a, Group<'a>>,
    group_names: HashMap<&'r str, &'r str>,
    group_outcomes: &'r HashMap<String, Outcome>,
}

fn names<'r, 'a, T: Named<'a>>(scope: &'r Scope<'a, T>) -> HashMap<&'r str, &'r str> {
    scope
        .legacy
        .iter()
        .map(|doc| (doc.header().id.as_ref(), doc.name()))
        .collect()
}

/// SPEC §3.4.
fn plan_memberships(
    users: &UserIndex<'_>,
    deps: &Dependencies<'_, '_>,
    tenant: &str,
    out: &mut SyncResult,
) {
    for user in &users.deleted {
        for group_id in user.legacy_memberships.keys() {
            out.skipped.push(Finding {
                kind: Kind::Membership,
                key: user.header.key.to_string(),
                group_id: Some(group_id.to_string()),
                reason: "user deleted".into(),
                detail: None,
            });
        }
    }
    for user in &users.live {
        for (group_id, &membership) in &user.legacy_memberships {
            let group_id = group_id.as_ref();
            let finding = |reason: String| Finding {
                kind: Kind::Membership,
                key: user.header.key.to_string(),
                group_id: Some(group_id.to_string()),
                reason,
                detail: None,
            };
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
                Some(&existing) => out.conflicts.push(finding(format!(
                    "user is already {} of group `{group_id}` in tenant `{tenant}`",
                    existing.as_str()
                ))),
                None => out.changes.push(Change::AddMembership {
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

/// SPEC §3.5.
fn plan_bindings(
    bindings: &Scope<'_, Binding<'_>>,
    deps: &Dependencies<'_, '_>,
    tenant: &str,
    out: &mut SyncResult,
) {
    let tenant_grants: HashSet<&Grant> = bindings.tenant_docs.iter().map(|b| &b.grant).collect();
    for binding in &bindings.legacy {
        let grant = &binding.grant;
        let finding = |reason: String| Finding {
            kind: Kind::Binding,
            key: binding.header.key.to_string(),
            group_id: None,
            reason,
            detail: None,
        };
        let subject = match grant.subject_type {
            SubjectType::User => deps
                .users
                .ids
                .availability(&grant.external_id)
                .reason(Kind::User),
            SubjectType::Group => deps
                .groups
                .ids
                .availability(&grant.external_id)
                .reason(Kind::Group),
        };
        let role = deps
            .roles
            .ids
            .availability(&grant.role_id)
            .reason(Kind::Role);
        if let Some(reason) = subject.or(role) {
            out.skipped.push(finding(reason));
            continue;
        }
        if deps.role_outcomes.get(grant.role_id.as_ref()) == Some(&Outcome::Conflict) {
            out.conflicts
                .push(finding(format!("role `{}` is in conflict", grant.role_id)));
            continue;
        }
        if grant.subject_type == SubjectType::Group
            && deps.group_outcomes.get(grant.external_id.as_ref()) == Some(&Outcome::Conflict)
        {
            out.conflicts.push(finding(format!(
                "group `{}` is in conflict",
                grant.external_id
            )));
            continue;
        }
        if tenant_grants.contains(grant) {
            *out.present.entry(Kind::Binding).or_default() += 1;
            continue;
        }
        let id = binding.header.id.as_ref();
        if bindings.tenant_by_id.contains_key(id) {
            out.conflicts.push(finding(format!(
                "tenant `{tenant}` already has binding `{id}` with another subject, role or namespace"
            )));
            continue;
        }
        let key = target_key(tenant, id);
        if let Some(reason) = bindings.key_conflict(&key, Kind::Binding) {
            out.conflicts.push(finding(reason));
            continue;
        }
        let subject = match grant.subject_type {
            SubjectType::User => format!(
                "user {}",
                deps.users
                    .by_id
                    .get(grant.external_id.as_ref())
                    .map(|&i| deps.users.live[i].username.as_ref())
                    .unwrap_or_default()
            ),
            SubjectType::Group => format!(
                "group {}",
                deps.group_names
                    .get(grant.external_id.as_ref())
                    .copied()
                    .unwrap_or_default()
            ),
        };
        out.changes.push(Change::AddBinding {
            key,
            value: Document::copy_to_tenant(binding.raw, tenant)
                .expect("a parsed document is a JSON object"),
            subject,
            role: deps
                .role_names
                .get(grant.role_id.as_ref())
                .map(|s| s.to_string())
                .unwrap_or_default(),
        });
    }
}
