//! The indexes [`super::sync`] builds from a snapshot before it applies any
//! rule: each table's legacy scope and target-tenant scope, who holds each
//! key, and whether an id is live, deleted, malformed or missing. Building
//! them reports the documents that cannot be read as skipped.

use super::{HashMap, HashSet};
use std::borrow::Cow;

use super::context::{self, Difference};
use super::documents::{self, Group, Malformed, Parsed, Role, User};
use super::keys::KeyRules;
use super::{Finding, Kind, RawDoc, Snapshot, SyncResult};

pub(super) fn malformed_finding(kind: Kind, m: &Malformed) -> Finding {
    Finding {
        detail: Some(m.detail.clone()),
        ..Finding::new(kind, m.key.clone(), "malformed")
    }
}

/// Whether a legacy document that others depend on can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Availability {
    Available,
    Missing,
    Deleted,
    Malformed,
}

impl Availability {
    pub(super) fn reason(self, kind: Kind) -> Option<String> {
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
pub(super) struct Ids<'a> {
    pub(super) live: HashSet<Cow<'a, str>>,
    pub(super) deleted: HashSet<Cow<'a, str>>,
    pub(super) malformed: HashSet<Cow<'a, str>>,
}

impl Ids<'_> {
    pub(super) fn availability(&self, id: &str) -> Availability {
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

pub(super) fn is_legacy_or_unknown(m: &Malformed) -> bool {
    matches!(m.tenant_id, None | Some(None))
}

pub(super) struct UserIndex<'a> {
    /// Non-deleted, readable users (two documents may share an id: both
    /// have their memberships judged).
    pub(super) live: Vec<User<'a>>,
    /// Index into `live` by id: the smallest key wins, for stable context.
    pub(super) by_id: HashMap<Cow<'a, str>, usize>,
    pub(super) ids: Ids<'a>,
    /// Deleted users, to report their memberships as skipped.
    pub(super) deleted: Vec<User<'a>>,
}

impl<'a> UserIndex<'a> {
    pub(super) fn new(snapshot: &'a Snapshot, out: &mut SyncResult) -> Self {
        let mut index = UserIndex {
            live: Vec::with_capacity(snapshot.users.len()),
            by_id: HashMap::with_capacity_and_hasher(snapshot.users.len(), Default::default()),
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

/// One table's legacy scope and target-tenant scope: roles and groups,
/// held whole (bindings are read in two passes: `bindings.rs`).
pub(super) struct Scope<'a, T> {
    /// Non-deleted, readable legacy documents whose id is unique among them.
    pub(super) legacy: Vec<T>,
    /// Ids held by several non-deleted legacy documents (all in conflict).
    pub(super) duplicates: HashSet<Cow<'a, str>>,
    pub(super) ids: Ids<'a>,
    /// Non-deleted target-tenant documents, and the one per id that is
    /// compared with a legacy document of that id (the one at the canonical
    /// key, else the smallest key).
    pub(super) tenant_docs: Vec<T>,
    pub(super) tenant_by_id: HashMap<Cow<'a, str>, usize>,
    /// Every row by key, whatever its scope or state: who holds a key.
    pub(super) holders: Holders<'a>,
    keys: KeyRules,
}

/// Who holds which key of a table, and how the table compares keys: when
/// not by bytes, the keys held under each normal spelling
/// (`KeyRules::normal`).
pub(super) struct Holders<'a> {
    by_key: HashMap<Cow<'a, str>, Holder>,
    keys: KeyRules,
    spellings: HashMap<Cow<'a, str>, Vec<Cow<'a, str>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    Live,
    Deleted,
    Malformed,
}

pub(super) trait Scoped<'a> {
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

impl<'a, T: Scoped<'a>> Scope<'a, T> {
    pub(super) fn new(
        rows: &'a [RawDoc],
        parse: fn(&'a RawDoc) -> Parsed<T>,
        tenant: &str,
        kind: Kind,
        keys: KeyRules,
        out: &mut SyncResult,
    ) -> Self {
        let mut scope: Scope<'a, T> = Scope {
            legacy: Vec::with_capacity(rows.len()),
            duplicates: HashSet::default(),
            ids: Ids::default(),
            tenant_docs: Vec::new(),
            tenant_by_id: HashMap::default(),
            holders: Holders::new(keys, rows.len()),
            keys,
        };
        let mut seen: HashMap<Cow<'a, str>, usize> =
            HashMap::with_capacity_and_hasher(rows.len(), Default::default());
        for raw in rows {
            match parse(raw) {
                Ok(doc) => {
                    let header = doc.header();
                    let holder = if header.deleted {
                        Holder::Deleted
                    } else {
                        Holder::Live
                    };
                    scope.holders.insert(Cow::Borrowed(&raw.key), holder);
                    match header.tenant_id.as_deref() {
                        None if header.deleted => {
                            scope.ids.deleted.insert(header.id.clone());
                        }
                        None => {
                            scope.ids.live.insert(header.id.clone());
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
                    scope
                        .holders
                        .insert(Cow::Borrowed(&raw.key), Holder::Malformed);
                    if m.deleted == Some(true) {
                        // Deleted, however broken: references to it say so.
                        if let (Some(id), Some(None)) = (&m.id, &m.tenant_id) {
                            scope.ids.deleted.insert(Cow::Owned(id.clone()));
                        }
                        continue;
                    }
                    if !is_legacy_or_unknown(&m) {
                        continue;
                    }
                    if let Some(id) = &m.id {
                        if m.tenant_id == Some(None) {
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
            let mut keys: HashMap<&str, Vec<&str>> = HashMap::default();
            for doc in &scope.legacy {
                let id = doc.header().id.as_ref();
                if seen[id] > 1 {
                    keys.entry(id).or_default().push(doc.header().key);
                }
            }
            for (id, mut list) in keys {
                list.sort_unstable();
                for key in &list {
                    out.conflicts.push(Finding::new(
                        kind,
                        key.to_string(),
                        format!(
                            "id `{id}` is used by several legacy documents ({})",
                            list.join(", ")
                        ),
                    ));
                }
                scope.duplicates.insert(Cow::Owned(id.to_string()));
            }
            let duplicates = &scope.duplicates;
            scope
                .legacy
                .retain(|doc| !duplicates.contains(doc.header().id.as_ref()));
        }
        if !keys.is_exact() {
            scope.holders.index_spellings();
            scope.one_key_to_the_database(tenant, kind, out);
        }
        scope
    }

    /// Legacy documents whose copies would go to keys that differ only in
    /// what the store ignores (`ops` and `ops `): the store takes them for
    /// one key, so neither can be copied without a human (§10, §11).
    fn one_key_to_the_database(&mut self, tenant: &str, kind: Kind, out: &mut SyncResult) {
        let mut by_key: HashMap<String, Vec<(String, &str)>> = HashMap::default();
        for doc in &self.legacy {
            let header = doc.header();
            let target = target_key(tenant, &header.id);
            let normal = self.keys.normal(&target).into_owned();
            by_key.entry(normal).or_default().push((target, header.key));
        }
        for (_, docs) in by_key.into_iter().filter(|(_, docs)| docs.len() > 1) {
            let keys = one_key_conflicts(kind, docs, self.keys, out);
            for doc in &self.legacy {
                if keys.contains(&doc.header().key) {
                    self.duplicates.insert(doc.header().id.clone());
                }
            }
        }
        let duplicates = &self.duplicates;
        self.legacy
            .retain(|doc| !duplicates.contains(doc.header().id.as_ref()));
    }

    /// A conflict when the target key is held by any document.
    pub(super) fn key_conflict(&self, key: &str, kind: Kind) -> Option<String> {
        self.holders.key_conflict(key, kind)
    }
}

impl<'a> Holders<'a> {
    pub(super) fn new(keys: KeyRules, capacity: usize) -> Self {
        Holders {
            by_key: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            keys,
            spellings: HashMap::default(),
        }
    }

    pub(super) fn insert(&mut self, key: Cow<'a, str>, holder: Holder) {
        self.by_key.insert(key, holder);
    }

    /// Once every key is in: the keys under each normal spelling, when the
    /// table does not compare by bytes.
    pub(super) fn index_spellings(&mut self) {
        if self.keys.is_exact() {
            return;
        }
        for key in self.by_key.keys() {
            // Most keys are their own normal spelling: no copy of them.
            let normal = match self.keys.normal(key) {
                Cow::Borrowed(normal) if normal.len() == key.len() => key.clone(),
                normal => Cow::Owned(normal.into_owned()),
            };
            self.spellings.entry(normal).or_default().push(key.clone());
        }
    }

    /// A conflict when the target key is held by any document.
    pub(super) fn key_conflict(&self, key: &str, kind: Kind) -> Option<String> {
        let Some(holder) = self.by_key.get(key) else {
            return self.held_under_another_spelling(key, kind);
        };
        match holder {
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

    /// A conflict when the store holds `key` under another spelling it
    /// takes for the same key (§11), naming both keys.
    fn held_under_another_spelling(&self, key: &str, kind: Kind) -> Option<String> {
        if self.keys.is_exact() {
            return None;
        }
        let held = self.spellings.get(self.keys.normal(key).as_ref())?;
        let other = held.iter().min()?;
        let by = match self.by_key.get(other)? {
            Holder::Live => format!("another {}", kind.as_str()),
            Holder::Deleted => format!("a deleted {}", kind.as_str()),
            Holder::Malformed => "a malformed document".to_string(),
        };
        Some(format!(
            "key `{key}` is already held by {by} as `{other}`, the same key to the database (it compares keys {})",
            self.keys.describe()
        ))
    }
}

/// The conflicts of legacy documents that share `id`: each of `keys`
/// names them all (docs/rules.md §2).
pub(super) fn shared_id_conflicts(kind: Kind, id: &str, mut keys: Vec<&str>, out: &mut SyncResult) {
    keys.sort_unstable();
    for key in &keys {
        out.conflicts.push(Finding::new(
            kind,
            key.to_string(),
            format!(
                "id `{id}` is used by several legacy documents ({})",
                keys.join(", ")
            ),
        ));
    }
}

/// The conflicts of legacy documents (`(target key, key)`) whose copies
/// would go to one key to the database (§10, §11); returns their keys.
pub(super) fn one_key_conflicts<'k>(
    kind: Kind,
    mut docs: Vec<(String, &'k str)>,
    rules: KeyRules,
    out: &mut SyncResult,
) -> Vec<&'k str> {
    docs.sort_unstable();
    let targets: Vec<String> = docs.iter().map(|(t, _)| format!("`{t}`")).collect();
    let mut keys: Vec<&str> = docs.iter().map(|(_, k)| *k).collect();
    keys.sort_unstable();
    for (_, key) in &docs {
        out.conflicts.push(Finding::new(
            kind,
            key.to_string(),
            format!(
                "the copies of several legacy documents ({}) would go to {}, one key to the database (it compares keys {})",
                keys.join(", "),
                targets.join(", "),
                rules.describe()
            ),
        ));
    }
    keys
}

/// Where a legacy document's copy goes: `<tenant>_<id>`.
pub(super) fn target_key(tenant: &str, id: &str) -> String {
    let mut key = String::with_capacity(tenant.len() + 1 + id.len());
    key.push_str(tenant);
    key.push('_');
    key.push_str(id);
    key
}

pub(super) trait Named<'a>: Scoped<'a> {
    fn name(&self) -> &str;
    fn raw(&self) -> &'a str;
    /// What differs from `tenant`, the tenant's document it conflicts with.
    fn differences(&self, tenant: &Self) -> Vec<Difference>;
}
impl<'a> Named<'a> for Role<'a> {
    fn name(&self) -> &str {
        &self.name
    }
    fn raw(&self) -> &'a str {
        self.raw
    }
    fn differences(&self, tenant: &Self) -> Vec<Difference> {
        context::role_differences(self, tenant)
    }
}
impl<'a> Named<'a> for Group<'a> {
    fn name(&self) -> &str {
        &self.name
    }
    fn raw(&self) -> &'a str {
        self.raw
    }
    fn differences(&self, tenant: &Self) -> Vec<Difference> {
        let mut out = Vec::new();
        if self.header.id != tenant.header.id {
            out.push(context::difference(
                "id",
                &self.header.id,
                &tenant.header.id,
            ));
        }
        if self.name != tenant.name {
            out.push(context::difference("name", &self.name, &tenant.name));
        }
        out
    }
}
