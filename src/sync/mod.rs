//! The sync rules of docs/rules.md: a pure function from a snapshot of the store to
//! the changes that mirror the legacy scope into a tenant. No I/O, no async:
//! `plan` and `apply` both call [`sync`], so what is reviewed and what is
//! re-derived under the lock can never disagree by construction.
//!
//! By job: this file holds the types and [`sync`], which builds the indexes
//! (`index.rs`: scopes, key holders, id availability) and then applies the
//! rules (`rules.rs`: tenant, roles and groups, memberships; `bindings.rs`:
//! bindings, in two passes over their rows that hold none of them, which
//! `plan` and `apply` drive through [`Derivation`]);
//! `context.rs` names what findings are about and gathers the facts a review
//! needs beside the changes; `documents.rs` reads the store's JSON;
//! `writes.rs` turns changes into rows.
//! How a plan file spells a change is `crate::plan`'s business.

mod bindings;
pub(crate) mod context;
pub(crate) mod documents;
#[cfg(test)]
mod hostile_tests;
mod index;
mod keys;
pub(crate) mod revert;
mod rules;
#[cfg(test)]
mod tests;
pub(crate) mod writes;

use std::collections::BTreeMap;

/// The maps and sets of the derivation, which hold and look up a million
/// ids and keys: hashed with foldhash, seeded afresh in each process,
/// instead of std's SipHash, which was a twentieth of plan's first pass
/// (perf, issue 15).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

use serde::{Deserialize, Serialize};

pub use context::{Context, Difference, RoleFacts};
pub use documents::{Document, Membership, RawDoc, SubjectType};
use index::{Scope, UserIndex};
pub use keys::{KeyRules, StoreKeys};
pub use revert::{revert, ListPrior};
use rules::{copy_documents, names, plan_memberships, tenant_change, Dependencies};
pub use writes::{
    applied, created_group_lists, into_writes, removals_for, removed, unmet_changes, writes_for,
    MissingUser, Removals, Unmet, Writes,
};

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
    /// How the store compares the keys of the tables copies go to.
    pub keys: StoreKeys,
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

/// One write of the plan. Field names are the plan format (docs/plan-format.md §6);
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
    // A revert plan's removals (docs/revert.md §2): each carries what it
    // expects to find, exactly as the change it undoes wrote it.
    RemoveBinding {
        key: String,
        value: Document,
        subject: String,
        role: String,
    },
    /// Removes `{tenantId, groupId, membership}` from the `groupList` of
    /// the user whose key is `key`.
    RemoveMembership {
        key: String,
        user_id: String,
        username: String,
        group_id: String,
        group_name: String,
        membership: Membership,
    },
    RemoveGroup {
        key: String,
        value: Document,
    },
    RemoveRole {
        key: String,
        value: Document,
    },
    RemoveTenant {
        key: String,
        value: Document,
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
    // Removals come in the reverse of the order apply writes additions:
    // what uses a document goes before it.
    RemoveBinding,
    RemoveMembership,
    RemoveGroup,
    RemoveRole,
    RemoveTenant,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::CreateTenant,
        Op::AddRole,
        Op::AddGroup,
        Op::AddMembership,
        Op::AddBinding,
        Op::RemoveBinding,
        Op::RemoveMembership,
        Op::RemoveGroup,
        Op::RemoveRole,
        Op::RemoveTenant,
    ];

    pub fn is_removal(self) -> bool {
        self.undone().is_some()
    }

    /// The addition a removal undoes; `None` for an addition.
    pub fn undone(self) -> Option<Op> {
        match self {
            Op::RemoveBinding => Some(Op::AddBinding),
            Op::RemoveMembership => Some(Op::AddMembership),
            Op::RemoveGroup => Some(Op::AddGroup),
            Op::RemoveRole => Some(Op::AddRole),
            Op::RemoveTenant => Some(Op::CreateTenant),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::CreateTenant => "create_tenant",
            Op::AddRole => "add_role",
            Op::AddGroup => "add_group",
            Op::AddMembership => "add_membership",
            Op::AddBinding => "add_binding",
            Op::RemoveBinding => "remove_binding",
            Op::RemoveMembership => "remove_membership",
            Op::RemoveGroup => "remove_group",
            Op::RemoveRole => "remove_role",
            Op::RemoveTenant => "remove_tenant",
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
            Change::RemoveBinding { .. } => Op::RemoveBinding,
            Change::RemoveMembership { .. } => Op::RemoveMembership,
            Change::RemoveGroup { .. } => Op::RemoveGroup,
            Change::RemoveRole { .. } => Op::RemoveRole,
            Change::RemoveTenant { .. } => Op::RemoveTenant,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Change::CreateTenant { key, .. }
            | Change::AddRole { key, .. }
            | Change::AddGroup { key, .. }
            | Change::AddMembership { key, .. }
            | Change::AddBinding { key, .. }
            | Change::RemoveBinding { key, .. }
            | Change::RemoveMembership { key, .. }
            | Change::RemoveGroup { key, .. }
            | Change::RemoveRole { key, .. }
            | Change::RemoveTenant { key, .. } => key,
        }
    }

    pub fn group_id(&self) -> Option<&str> {
        match self {
            Change::AddMembership { group_id, .. } | Change::RemoveMembership { group_id, .. } => {
                Some(group_id)
            }
            _ => None,
        }
    }

    /// The removal that undoes this addition, expecting exactly what it
    /// wrote; a removal is its own.
    pub fn removal(self) -> Change {
        match self {
            Change::CreateTenant { key, value } => Change::RemoveTenant { key, value },
            Change::AddRole { key, value } => Change::RemoveRole { key, value },
            Change::AddGroup { key, value } => Change::RemoveGroup { key, value },
            Change::AddMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            } => Change::RemoveMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            },
            Change::AddBinding {
                key,
                value,
                subject,
                role,
            } => Change::RemoveBinding {
                key,
                value,
                subject,
                role,
            },
            removal => removal,
        }
    }

    /// The addition this removal undoes (what `apply` re-derives a revert
    /// from); an addition is its own.
    pub fn addition(self) -> Change {
        match self {
            Change::RemoveTenant { key, value } => Change::CreateTenant { key, value },
            Change::RemoveRole { key, value } => Change::AddRole { key, value },
            Change::RemoveGroup { key, value } => Change::AddGroup { key, value },
            Change::RemoveMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            } => Change::AddMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            },
            Change::RemoveBinding {
                key,
                value,
                subject,
                role,
            } => Change::AddBinding {
                key,
                value,
                subject,
                role,
            },
            addition => addition,
        }
    }

    /// docs/plan-format.md §9 order: op, then key, then group id, strings by UTF-8 bytes.
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
    /// A revert's `create_tenant` that cannot be undone (docs/revert.md §3).
    Tenant,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Role => "role",
            Kind::Group => "group",
            Kind::Membership => "membership",
            Kind::Binding => "binding",
            Kind::Tenant => "tenant",
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
    // Who and what the entry is about, for review; absent when unknown.
    // A membership: the user and the group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Membership>,
    // A binding: its subject, role and namespace (absent: all namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<SubjectType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A role or group: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A conflict with a document of the tenant: the fields that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
}

impl Finding {
    pub fn new(kind: Kind, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Finding {
            kind,
            key: key.into(),
            group_id: None,
            reason: reason.into(),
            detail: None,
            user_id: None,
            username: None,
            group_name: None,
            membership: None,
            subject_type: None,
            subject_id: None,
            subject_name: None,
            role_id: None,
            role_name: None,
            namespace: None,
            name: None,
            differences: Vec::new(),
        }
    }

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
    /// What the review needs beside the changes.
    pub context: Context,
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

/// Computes the plan of docs/rules.md for `snapshot`. The result is independent of
/// the order of the snapshot's rows. Linear in the snapshot: every lookup is
/// a hash map, and documents are read in place, not copied.
///
/// The one derivation, over a snapshot held whole (tests, `revert`); `plan`
/// and `apply` drive [`Derivation`] themselves, reading the bindings twice
/// instead of holding them.
pub fn sync(snapshot: &Snapshot, options: &SyncOptions) -> Result<SyncResult, SyncError> {
    sync_in_passes(snapshot, options, &snapshot.bindings, &snapshot.bindings)
}

/// [`sync`], the bindings' two passes seeing the rows `first`, then
/// `second` (the same rows, in any order: two reads of a table need not
/// agree on it).
fn sync_in_passes(
    snapshot: &Snapshot,
    options: &SyncOptions,
    first: &[RawDoc],
    second: &[RawDoc],
) -> Result<SyncResult, SyncError> {
    let mut derivation = Derivation::new(snapshot, options)?;
    for raw in first {
        derivation.index_binding(raw);
    }
    let mut changes = Vec::new();
    let mut judging = derivation.judge(&mut changes);
    for raw in second {
        judging.binding(raw.clone());
    }
    let mut result = judging.finish();
    sort_changes(&mut changes);
    result.changes = changes;
    Ok(result)
}

/// docs/plan-format.md §9 order.
pub fn sort_changes(changes: &mut [Change]) {
    changes.sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// Where the changes of a derivation go, in no particular order: a vector
/// to sort (`sync`, `apply`), or a plan file being written.
pub trait ChangeSink {
    fn push(&mut self, change: Change);

    /// A legacy binding's copy, judged but not yet made: a sink whose
    /// changes go to a thread of their own makes it there
    /// ([`BindingCopy::into_change`]), off the thread that reads the store.
    fn push_binding_copy(&mut self, copy: BindingCopy) {
        self.push(copy.into_change());
    }

    /// About `additional` more changes will come: room for them now
    /// spares a million-entry index from growing by copies.
    fn reserve(&mut self, _additional: usize) {}
}

impl ChangeSink for Vec<Change> {
    fn push(&mut self, change: Change) {
        Vec::push(self, change)
    }

    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional)
    }
}

/// The change that copies a legacy binding into the tenant, before its
/// document is made: the rules decided it from the fields they read, and
/// writing the copy's canonical text (docs/plan-format.md §10) from the
/// legacy text is the same pure step wherever it runs. Making it was a
/// ninth of `plan` on the thread that reads the store (perf), which the
/// spool's thread can take on.
#[derive(Debug)]
pub struct BindingCopy {
    key: String,
    /// The legacy binding's text, read as an object by the rules.
    legacy: String,
    tenant: std::sync::Arc<str>,
    subject: String,
    role: String,
}

impl BindingCopy {
    /// The copy's key: its change's order key (docs/plan-format.md §9).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends the canonical text (docs/plan-format.md §10) of the change
    /// [`into_change`](Self::into_change) makes, without making it: its
    /// members in their order (`key`, `op`, `role`, `subject`, `value`),
    /// the document as [`Document::copy_to_tenant`] writes it. Making the
    /// change only to write it (the document's text checked again, the
    /// members gathered and sorted) was a fifth of the spool's thread
    /// (perf). `None` when the legacy text is not an object.
    pub fn write_canonical(&self, out: &mut Vec<u8>) -> Option<()> {
        let value = crate::plan::canonical::with_member(&self.legacy, "tenantId", &self.tenant)?;
        out.extend_from_slice(b"{\"key\":");
        crate::plan::canonical::push_string(&self.key, out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(Op::AddBinding.as_str().as_bytes());
        out.extend_from_slice(b"\",\"role\":");
        crate::plan::canonical::push_string(&self.role, out);
        out.extend_from_slice(b",\"subject\":");
        crate::plan::canonical::push_string(&self.subject, out);
        out.extend_from_slice(b",\"value\":");
        out.extend_from_slice(value.as_bytes());
        out.push(b'}');
        Some(())
    }

    /// [`into_change`](Self::into_change) of a copy that stays where it is.
    pub fn to_change(&self) -> Change {
        Change::AddBinding {
            key: self.key.clone(),
            value: Document::copy_readable_to_tenant(&self.legacy, &self.tenant)
                .expect("a parsed document is a JSON object"),
            subject: self.subject.clone(),
            role: self.role.clone(),
        }
    }

    pub fn into_change(self) -> Change {
        Change::AddBinding {
            key: self.key,
            value: Document::copy_readable_to_tenant(&self.legacy, &self.tenant)
                .expect("a parsed document is a JSON object"),
            subject: self.subject,
            role: self.role,
        }
    }
}

/// The derivation of [`sync`], in the steps that let a caller read the
/// bindings twice instead of holding them (src/sync/bindings.rs):
/// [`Derivation::new`] over a snapshot of every other table, then
/// [`Derivation::index_binding`] for every binding row, then
/// [`Derivation::judge`] and [`Judging::binding`] for every row again,
/// then [`Judging::finish`].
pub struct Derivation<'s> {
    tenant: String,
    skip_conflicts: bool,
    users: UserIndex<'s>,
    roles: Scope<'s, documents::Role<'s>>,
    groups: Scope<'s, documents::Group<'s>>,
    role_outcomes: HashMap<String, rules::Outcome>,
    group_outcomes: HashMap<String, rules::Outcome>,
    bindings: bindings::BindingIndex,
    /// Findings and counts so far; `changes` holds those not yet handed on.
    out: SyncResult,
}

impl<'s> Derivation<'s> {
    /// Judges the tenant, roles and groups of `snapshot` (its `bindings`
    /// are not read here).
    pub fn new(snapshot: &'s Snapshot, options: &SyncOptions) -> Result<Self, SyncError> {
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
            snapshot.keys.roles,
            &mut out,
        );
        let groups = Scope::new(
            &snapshot.groups,
            documents::parse_group,
            tenant,
            Kind::Group,
            snapshot.keys.groups,
            &mut out,
        );
        let role_outcomes =
            copy_documents(&roles, tenant, Kind::Role, &mut out, |legacy, existing| {
                legacy.name == existing.name && legacy.permissions == existing.permissions
            });
        let group_outcomes = copy_documents(
            &groups,
            tenant,
            Kind::Group,
            &mut out,
            |legacy, existing| legacy.name == existing.name,
        );
        Ok(Derivation {
            tenant: tenant.to_string(),
            skip_conflicts: options.skip_conflicts,
            users,
            roles,
            groups,
            role_outcomes,
            group_outcomes,
            bindings: bindings::BindingIndex::new(tenant, snapshot.keys.bindings),
            out,
        })
    }

    /// The first pass: one row of the bindings table, in any order.
    pub fn index_binding(&mut self, raw: &RawDoc) {
        self.bindings.index(raw, &mut self.out);
    }

    /// After the first pass: hands the changes to roles, groups and
    /// memberships to `sink`, and judges bindings from then on.
    pub fn judge<'d>(&'d mut self, sink: &'d mut dyn ChangeSink) -> Judging<'d, 's> {
        let Derivation {
            tenant,
            skip_conflicts,
            users,
            roles,
            groups,
            role_outcomes,
            group_outcomes,
            bindings,
            out,
        } = self;
        bindings.seal();
        let deps = Dependencies {
            users,
            roles,
            role_names: names(roles),
            role_outcomes,
            groups,
            group_names: names(groups),
            group_outcomes,
        };
        // At most one change per legacy binding and membership to come.
        let memberships: usize = users.live.iter().map(|u| u.legacy_memberships.len()).sum();
        sink.reserve(out.changes.len() + memberships + bindings.legacy_ids());
        let user_types: context::UserTypes = users
            .live
            .iter()
            .chain(&users.deleted)
            .filter_map(|u| {
                let t = u.user_type.as_deref()?;
                (t != "STANDARD").then_some((u.header.id.as_ref(), t))
            })
            .collect();
        // Each membership's change goes on as it is made: gathered first,
        // 300k of them at 1M bindings were about 100 MiB of plan's peak
        // (issue 15, BENCHMARKS.md round 10).
        let mut context = context::ContextFacts::default();
        plan_memberships(users, &deps, tenant, out, &mut |change| {
            context.change(&change, &user_types);
            sink.push(change);
        });
        let mut judging = Judging {
            deps,
            bindings,
            out,
            sink,
            context,
            user_types,
            skip_conflicts: *skip_conflicts,
        };
        judging.hand_on();
        judging
    }
}

/// The second pass of a [`Derivation`].
pub struct Judging<'d, 's> {
    deps: Dependencies<'d, 's>,
    bindings: &'d mut bindings::BindingIndex,
    out: &'d mut SyncResult,
    sink: &'d mut dyn ChangeSink,
    /// Gathered as changes are handed on.
    context: context::ContextFacts,
    user_types: context::UserTypes<'d>,
    skip_conflicts: bool,
}

impl Judging<'_, '_> {
    /// One row of the bindings table again, in any order.
    pub fn binding(&mut self, raw: RawDoc) {
        let copy = match self.bindings.judge(&raw, &self.deps, self.out) {
            Some((copy, grant)) => {
                // What the review needs of the copy, from the fields just
                // read: reading the copy's text again was a twentieth of
                // `plan` (perf).
                self.context.binding(&grant, &self.user_types);
                copy
            }
            None => return,
        };
        self.sink.push_binding_copy(BindingCopy {
            key: copy.key,
            legacy: raw.value,
            tenant: self.bindings.tenant(),
            subject: copy.subject,
            role: copy.role,
        });
    }

    fn hand_on(&mut self) {
        for change in self.out.changes.drain(..) {
            self.context.change(&change, &self.user_types);
            self.sink.push(change);
        }
    }

    /// After the second pass: the findings, sorted, and the context; the
    /// changes went to the sink.
    pub fn finish(mut self) -> SyncResult {
        self.hand_on();
        let bindings = std::mem::replace(
            self.bindings,
            bindings::BindingIndex::new("", KeyRules::EXACT),
        );
        bindings.finish(self.out);
        let mut out = std::mem::take(self.out);
        if self.skip_conflicts {
            for mut finding in std::mem::take(&mut out.conflicts) {
                finding.reason = format!("conflict: {}", finding.reason);
                out.skipped.push(finding);
            }
        }
        out.skipped.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        out.conflicts
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let facts = std::mem::take(&mut self.context);
        out.context = facts.finish(
            out.skipped.iter().chain(&out.conflicts),
            &self.deps.roles.legacy,
            &self.user_types,
        );
        out
    }
}
