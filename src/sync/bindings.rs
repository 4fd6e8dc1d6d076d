//! Bindings, read in two passes (issue 15). A store holds ten bindings for
//! every user; keeping their rows, their views and their changes all at
//! once cost `plan` and `apply` about a kilobyte each. So the bindings are
//! not part of the snapshot held in memory: each pass sees one row at a
//! time, and the store reads them again in the same transaction for the
//! second unless it kept the first pass's rows within a budget
//! (`store::Hold`).
//!
//! - The first pass ([`BindingIndex::index`]) keeps only what judging one
//!   binding needs of all the others (docs/rules.md §6): which legacy ids
//!   are used twice, who holds the keys copies would take, the tenant's own
//!   grants, and the malformed rows (skipped).
//! - The second pass ([`BindingIndex::judge`]) judges each legacy binding by
//!   the rule of §6 and hands its change on at once.
//!
//! What is kept is proportional to the legacy ids and to the tenant's own
//! bindings, not to the documents: an id is a few bytes; the rows are
//! read again, or held by the store within its budget.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use super::context;
use super::documents::{self, Binding, Grant, RawDoc};
use super::index::{
    is_legacy_or_unknown, malformed_finding, one_key_conflicts, shared_id_conflicts, target_key,
    Holder, Holders,
};
use super::keys::KeyRules;
use super::rules::{Dependencies, Outcome};
use super::{Finding, Kind, SubjectType, SyncResult};

/// A legacy binding the second pass copies: its copy's key and what the
/// review reads of it; the copy itself is made from the row's text
/// ([`super::BindingCopy`]).
pub(super) struct PlannedCopy {
    pub(super) key: String,
    pub(super) subject: String,
    pub(super) role: String,
}

/// What the first pass over the bindings keeps.
pub(super) struct BindingIndex {
    tenant: Arc<str>,
    /// `<tenant>_`: only keys that start so (in the store's normal
    /// spelling) can be a copy's target key, so only they are kept.
    prefix: String,
    keys: KeyRules,
    holders: Holders<'static>,
    /// Every live legacy binding's id, and those used by several.
    ids: HashSet<Box<str>>,
    shared_ids: HashSet<Box<str>>,
    /// Ids that are not their own normal spelling (`KeyRules::normal`), by
    /// that spelling: only such ids can make two copies one key to the
    /// database, so only they are kept (a table that compares by bytes
    /// keeps none).
    respelled: HashMap<Box<str>, BTreeSet<Box<str>>>,
    /// The keys of the rows the first pass found malformed: the second
    /// pass skips them, and reads the others without checking again that
    /// they are readable.
    malformed: HashSet<Box<str>>,
    /// After the first pass: ids whose copies would go to one key.
    one_key_ids: HashSet<Box<str>>,
    /// The grants of every live binding of the tenant (each held once:
    /// a tenant can have as many bindings as the legacy scope).
    tenant_grants: HashSet<Rc<Grant<'static>>>,
    /// Per id, the tenant's binding a legacy binding of that id is compared
    /// with: the one at the canonical key, else the smallest key.
    tenant_by_id: HashMap<Box<str>, (Box<str>, Rc<Grant<'static>>)>,
    /// Gathered in the second pass, for the conflicts that name them all:
    /// the keys of the bindings with a shared id, and the target and key of
    /// those that would share one key.
    shared_id_keys: BTreeMap<Box<str>, Vec<Box<str>>>,
    one_key_docs: HashMap<String, Vec<(String, Box<str>)>>,
}

fn owned(grant: &Grant) -> Grant<'static> {
    Grant {
        subject_type: grant.subject_type,
        external_id: Cow::Owned(grant.external_id.to_string()),
        role_id: Cow::Owned(grant.role_id.to_string()),
        namespace_id: grant
            .namespace_id
            .as_deref()
            .map(|n| Cow::Owned(n.to_string())),
    }
}

impl BindingIndex {
    pub(super) fn new(tenant: &str, keys: KeyRules) -> Self {
        BindingIndex {
            tenant: tenant.into(),
            prefix: format!("{tenant}_"),
            keys,
            holders: Holders::new(keys, 0),
            ids: HashSet::default(),
            shared_ids: HashSet::default(),
            respelled: HashMap::default(),
            malformed: HashSet::default(),
            one_key_ids: HashSet::default(),
            tenant_grants: HashSet::default(),
            tenant_by_id: HashMap::default(),
            shared_id_keys: BTreeMap::new(),
            one_key_docs: HashMap::default(),
        }
    }

    fn hold(&mut self, key: &str, holder: Holder) {
        if self.keys.normal(key).starts_with(&self.prefix) {
            self.holders.insert(Cow::Owned(key.to_string()), holder);
        }
    }

    /// The first pass: one row of the bindings table, in any order.
    pub(super) fn index(&mut self, raw: &RawDoc, out: &mut SyncResult) {
        let binding = match documents::parse_binding(raw) {
            Ok(binding) => binding,
            Err(m) => {
                self.malformed.insert(raw.key.as_str().into());
                self.hold(&raw.key, Holder::Malformed);
                // Deleted, however broken: nobody refers to a binding.
                if m.deleted != Some(true) && is_legacy_or_unknown(&m) {
                    out.skipped.push(malformed_finding(Kind::Binding, &m));
                }
                return;
            }
        };
        let header = &binding.header;
        self.hold(
            &raw.key,
            if header.deleted {
                Holder::Deleted
            } else {
                Holder::Live
            },
        );
        match header.tenant_id.as_deref() {
            None if header.deleted => {}
            None => {
                let id = header.id.as_ref();
                // One lookup per binding (a million in the first pass):
                // `insert` says whether the id was already there, i.e. shared.
                if !self.ids.insert(id.into()) {
                    self.shared_ids.insert(id.into());
                }
                let normal = self.keys.normal(id);
                if normal != id {
                    self.respelled
                        .entry(normal.as_ref().into())
                        .or_default()
                        .insert(id.into());
                }
            }
            Some(t) if t == &*self.tenant && !header.deleted => {
                let grant = Rc::new(owned(&binding.grant));
                let canonical = target_key(&self.tenant, &header.id);
                let replace = match self.tenant_by_id.get(header.id.as_ref()) {
                    None => true,
                    // Several live tenant bindings with one id: keep the
                    // one at the canonical key, for stable results.
                    Some((existing, _)) => {
                        header.key == canonical
                            || (existing.as_ref() != canonical
                                && header.key.as_bytes() < existing.as_bytes())
                    }
                };
                if replace {
                    self.tenant_by_id.insert(
                        header.id.as_ref().into(),
                        (header.key.into(), grant.clone()),
                    );
                }
                self.tenant_grants.insert(grant);
            }
            Some(_) => {}
        }
    }

    /// The tenant, shared by every copy on its way to be made.
    pub(super) fn tenant(&self) -> Arc<str> {
        Arc::clone(&self.tenant)
    }

    /// How many distinct live legacy ids the first pass saw.
    pub(super) fn legacy_ids(&self) -> usize {
        self.ids.len()
    }

    /// Between the passes: which ids would make copies share one key to
    /// the database (§10, §11). Ids shared outright are not counted: they
    /// are in conflict already.
    pub(super) fn seal(&mut self) {
        self.holders.index_spellings();
        for (normal, ids) in &self.respelled {
            let mut spellings: Vec<&str> = ids
                .iter()
                .map(AsRef::as_ref)
                .filter(|id| !self.shared_ids.contains(*id))
                .collect();
            // The id that is its own normal spelling, if a binding has it.
            if self.ids.contains(normal) && !self.shared_ids.contains(normal) {
                spellings.push(normal);
            }
            if spellings.len() > 1 {
                self.one_key_ids
                    .extend(spellings.into_iter().map(Box::<str>::from));
            }
        }
    }

    /// The second pass: one row of the bindings table, in any order (each
    /// row the first pass saw, once). A legacy binding that can be copied
    /// gives its copy, with the grant it copies; one that cannot, a
    /// finding in `out`.
    pub(super) fn judge<'r>(
        &mut self,
        raw: &'r RawDoc,
        deps: &Dependencies<'_, '_>,
        out: &mut SyncResult,
    ) -> Option<(PlannedCopy, Grant<'r>)> {
        // Malformed rows were dealt with in the first pass; the same
        // transaction reads the same bytes again.
        if self.malformed.contains(raw.key.as_str()) {
            return None;
        }
        let binding = documents::parse_readable_binding(raw).ok()?;
        let header = &binding.header;
        if header.tenant_id.is_some() || header.deleted {
            return None;
        }
        let id = header.id.as_ref();
        if self.shared_ids.contains(id) {
            self.shared_id_keys
                .entry(id.into())
                .or_default()
                .push(header.key.into());
            return None;
        }
        if self.one_key_ids.contains(id) {
            let target = target_key(&self.tenant, id);
            self.one_key_docs
                .entry(self.keys.normal(&target).into_owned())
                .or_default()
                .push((target, header.key.into()));
            return None;
        }
        let copy = self.judge_binding(&binding, deps, out)?;
        Some((copy, binding.grant))
    }

    /// After the second pass: the conflicts that name several bindings.
    pub(super) fn finish(self, out: &mut SyncResult) {
        for (id, keys) in &self.shared_id_keys {
            shared_id_conflicts(
                Kind::Binding,
                id,
                keys.iter().map(AsRef::as_ref).collect(),
                out,
            );
        }
        for docs in self.one_key_docs.values() {
            let docs = docs.iter().map(|(t, k)| (t.clone(), k.as_ref())).collect();
            one_key_conflicts(Kind::Binding, docs, self.keys, out);
        }
    }

    /// docs/rules.md §6, for one legacy binding whose id no other has: its
    /// copy, or `None` and a finding in `out`.
    fn judge_binding(
        &self,
        binding: &Binding,
        deps: &Dependencies<'_, '_>,
        out: &mut SyncResult,
    ) -> Option<PlannedCopy> {
        let tenant: &str = &self.tenant;
        let grant = &binding.grant;
        let finding = |reason: String| {
            let mut finding = Finding::new(Kind::Binding, binding.header.key, reason);
            let subject_name = match grant.subject_type {
                SubjectType::User => deps
                    .users
                    .by_id
                    .get(grant.external_id.as_ref())
                    .map(|&i| deps.users.live[i].username.as_ref()),
                SubjectType::Group => deps.group_names.get(grant.external_id.as_ref()).copied(),
            };
            let role_name = deps.role_names.get(grant.role_id.as_ref()).copied();
            context::describe_binding(&mut finding, grant, subject_name, role_name);
            finding
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
            return None;
        }
        if deps.role_outcomes.get(grant.role_id.as_ref()) == Some(&Outcome::Conflict) {
            out.conflicts
                .push(finding(format!("role `{}` is in conflict", grant.role_id)));
            return None;
        }
        if grant.subject_type == SubjectType::Group
            && deps.group_outcomes.get(grant.external_id.as_ref()) == Some(&Outcome::Conflict)
        {
            out.conflicts.push(finding(format!(
                "group `{}` is in conflict",
                grant.external_id
            )));
            return None;
        }
        if self.tenant_grants.contains(grant) {
            *out.present.entry(Kind::Binding).or_default() += 1;
            return None;
        }
        let id = binding.header.id.as_ref();
        if let Some((_, existing)) = self.tenant_by_id.get(id) {
            out.conflicts.push(Finding {
                differences: context::grant_differences(grant, existing),
                ..finding(format!(
                    "tenant `{tenant}` already has binding `{id}` with another subject, role or namespace"
                ))
            });
            return None;
        }
        let key = target_key(tenant, id);
        if let Some(reason) = self.holders.key_conflict(&key, Kind::Binding) {
            out.conflicts.push(finding(reason));
            return None;
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
        Some(PlannedCopy {
            key,
            subject,
            role: deps
                .role_names
                .get(grant.role_id.as_ref())
                .map(|s| s.to_string())
                .unwrap_or_default(),
        })
    }
}
