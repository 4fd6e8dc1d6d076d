//! Access gained in the tenant, per user: what a reviewer signs off on.
//!
//! A user gains access through a binding to them (direct), through a binding
//! to a group they are or become a member of, or by joining a group that has
//! bindings. Bindings follow Kestra's namespace inheritance ([`reaches`]).
//!
//! A plan records only what it adds. Without the database, two things are
//! beyond it: the bindings a group already has in the tenant, and the members
//! it already has there (who gain its new bindings too); the output says so.
//! With `show --live`, the tenant's current access ([`Tenant`]) fills both
//! gaps, and each user's access before the plan is known.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::model::{reaches, BindingRow, Named, NamedBuf, Row, Selector};
use crate::plan::Changes;
use crate::sync::documents::{parse_binding, parse_group, parse_role, parse_user};
use crate::sync::{Change, Membership, Op, Snapshot, SubjectType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Through<'a> {
    Direct,
    Group(Named<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gain<'a> {
    /// A member of a group of the tenant.
    Joins {
        group: Named<'a>,
        membership: Membership,
        /// Created by this plan, so it has no bindings beyond the plan's.
        group_is_new: bool,
    },
    /// A role on a namespace (`None`: all namespaces) and those below it.
    Role {
        role: Named<'a>,
        namespace: Option<&'a str>,
        through: Through<'a>,
        binding: &'a str,
    },
}

/// The tenant's current access, read from the database (`show --live`).
#[derive(Debug, Default, Clone)]
pub struct Tenant {
    /// user id -> (group id, membership) in the tenant.
    pub memberships: HashMap<String, Vec<(String, Membership)>>,
    pub bindings: Vec<TenantBinding>,
    pub user_names: HashMap<String, String>,
    pub group_names: HashMap<String, String>,
    pub role_names: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct TenantBinding {
    pub key: String,
    pub subject_type: SubjectType,
    pub subject_id: String,
    pub role_id: String,
    pub namespace: Option<String>,
}

impl Tenant {
    /// The live, readable documents of `tenant` in a snapshot of the store;
    /// what cannot be read is left out (the plan reports it).
    pub fn of(snapshot: &Snapshot, tenant: &str) -> Tenant {
        let mut out = Tenant::default();
        let in_tenant = |t: &Option<std::borrow::Cow<str>>, deleted: bool| {
            !deleted && t.as_deref() == Some(tenant)
        };
        for raw in &snapshot.users {
            let Ok(user) = parse_user(raw) else { continue };
            if user.header.deleted {
                continue;
            }
            out.user_names
                .insert(user.header.id.to_string(), user.username.to_string());
            for ((t, group), membership) in &user.tenant_memberships {
                if t == tenant {
                    out.memberships
                        .entry(user.header.id.to_string())
                        .or_default()
                        .push((group.to_string(), *membership));
                }
            }
        }
        for raw in &snapshot.groups {
            if let Ok(g) = parse_group(raw) {
                if in_tenant(&g.header.tenant_id, g.header.deleted) {
                    out.group_names
                        .insert(g.header.id.to_string(), g.name.to_string());
                }
            }
        }
        for raw in &snapshot.roles {
            if let Ok(r) = parse_role(raw) {
                if in_tenant(&r.header.tenant_id, r.header.deleted) {
                    out.role_names
                        .insert(r.header.id.to_string(), r.name.to_string());
                }
            }
        }
        for raw in &snapshot.bindings {
            if let Ok(b) = parse_binding(raw) {
                if in_tenant(&b.header.tenant_id, b.header.deleted) {
                    out.bindings.push(TenantBinding {
                        key: raw.key.clone(),
                        subject_type: b.grant.subject_type,
                        subject_id: b.grant.external_id.to_string(),
                        role_id: b.grant.role_id.to_string(),
                        namespace: b.grant.namespace_id.as_deref().map(str::to_string),
                    });
                }
            }
        }
        out
    }
}

/// A role on a namespace, granted by a binding, now or by the plan.
#[derive(Debug, Clone)]
struct Grant {
    key: String,
    role: NamedBuf,
    namespace: Option<String>,
    new: bool,
}

#[derive(Debug, Clone)]
struct Join {
    /// Shared by every join to the group (a few thousand groups, hundreds
    /// of thousands of joins: one allocation per group, not two per join).
    group: Rc<NamedBuf>,
    membership: Membership,
    new: bool,
}

#[derive(Default)]
struct PerUser {
    name: Option<String>,
    /// The tenant's bindings to the user; the plan's are read again when
    /// the user's gains are printed ([`Report::with_gains`]).
    direct: Vec<Grant>,
    /// The plan's bindings to the user that the filter keeps.
    new_direct: usize,
    /// Where the plan's bindings to the user are ([`Changes::changes_at`]).
    new_direct_at: Vec<usize>,
    joins: Vec<Join>,
}

/// One user whose access changes.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub user: Named<'a>,
    /// Gains that the filter keeps.
    pub total: usize,
}

/// The access each user gains. Every user is counted from the plan's
/// changes read one at a time, keeping where the plan's bindings to them
/// are; a user's gains are computed when printed, those bindings read
/// again then.
pub struct Report {
    /// A million changes are counted here on the render's main thread:
    /// foldhash, not SipHash (crate::sync::HashMap).
    users: crate::sync::HashMap<String, PerUser>,
    group_grants: crate::sync::HashMap<String, Vec<Grant>>,
    /// Each group joined, once ([`Join::group`]).
    joined_groups: crate::sync::HashMap<NamedBuf, Rc<NamedBuf>>,
    new_groups: HashSet<String>,
    show_joins: bool,
    show_roles: bool,
    /// Whether the tenant's bindings are known (`--live`): then a group's
    /// bindings may repeat one of the plan's.
    live: bool,
    namespace: Option<String>,
    role: Option<String>,
    /// Users whose access changes (ids), with their gains, in order of name.
    listed: Vec<(String, usize)>,
    pub total_users: usize,
    pub total_gains: usize,
    /// Without `--live`: groups gaining bindings that exist in the tenant
    /// already; their current members, not in the plan, gain these too.
    existing_groups: Vec<NamedBuf>,
    /// The groups the plan binds roles to.
    bound_groups: BTreeSet<NamedBuf>,
}

impl Report {
    /// The access gained through `changes`.
    pub fn new(
        changes: &dyn Changes,
        selector: &Selector,
        tenant: Option<&Tenant>,
    ) -> std::io::Result<Self> {
        let mut report = Report::start(selector, tenant);
        changes.each_change_at(&mut |at, change| {
            report.add(at, change);
            true
        })?;
        Ok(report.finish(selector, tenant.is_some()))
    }

    /// A report of no change yet: the tenant's access, if known; the
    /// plan's changes are given to [`Report::add`], then
    /// [`Report::finish`] (as [`Report::new`] does).
    pub fn start(selector: &Selector, tenant: Option<&Tenant>) -> Self {
        let filter = selector.filter;
        let (show_joins, show_roles) = match filter.op {
            None => (true, true),
            Some(Op::AddMembership) => (true, false),
            Some(Op::AddBinding) => (false, true),
            Some(_) => (false, false),
        };
        let show_joins = show_joins && filter.role.is_none() && filter.namespace.is_none();
        let mut report = Report {
            users: Default::default(),
            group_grants: Default::default(),
            joined_groups: Default::default(),
            new_groups: HashSet::new(),
            show_joins,
            show_roles,
            live: tenant.is_some(),
            namespace: filter.namespace.clone(),
            role: filter.role.clone(),
            listed: Vec::new(),
            total_users: 0,
            total_gains: 0,
            existing_groups: Vec::new(),
            bound_groups: BTreeSet::new(),
        };
        // Members now: they gain what the plan binds to their groups.
        if let Some(t) = tenant {
            for (user, joins) in &t.memberships {
                let entry = report.users.entry(user.clone()).or_default();
                entry.name = t.user_names.get(user).cloned();
                for (group, membership) in joins {
                    entry.joins.push(Join {
                        group: Rc::new(NamedBuf::of(&Named::new(
                            group,
                            t.group_names.get(group).map(String::as_str),
                        ))),
                        membership: *membership,
                        new: false,
                    });
                }
            }
            for b in &t.bindings {
                let grant = Grant {
                    key: b.key.clone(),
                    role: NamedBuf::of(&Named::new(
                        &b.role_id,
                        t.role_names.get(&b.role_id).map(String::as_str),
                    )),
                    namespace: b.namespace.clone(),
                    new: false,
                };
                match b.subject_type {
                    SubjectType::Group => report
                        .group_grants
                        .entry(b.subject_id.clone())
                        .or_default()
                        .push(grant),
                    SubjectType::User => {
                        let entry = report.users.entry(b.subject_id.clone()).or_default();
                        if entry.name.is_none() {
                            entry.name = t.user_names.get(&b.subject_id).cloned();
                        }
                        entry.direct.push(grant);
                    }
                }
            }
        }
        report
    }

    /// Counts the change at `at` (where [`Changes::each_change_at`] says it
    /// is), in the plan's order.
    pub fn add(&mut self, at: usize, change: &Change) {
        match Row::of(change) {
            Row::Group { group, .. } => {
                self.new_groups.insert(group.id.to_string());
            }
            Row::Membership(m) => {
                let group = self.joined_group(&m.group);
                let user = self.user(m.user);
                user.joins.push(Join {
                    group,
                    membership: m.membership,
                    new: true,
                });
            }
            Row::Binding(b) => {
                if b.is_group() {
                    self.group_grants
                        .entry(b.subject.id.to_string())
                        .or_default()
                        .push(grant_of(&b));
                    let group = NamedBuf::of(&b.subject);
                    if !self.bound_groups.contains(&group) {
                        self.bound_groups.insert(group);
                    }
                } else if b.is_user() {
                    let kept = self.keeps_new(&b);
                    let user = self.user(b.subject);
                    user.new_direct += usize::from(kept);
                    user.new_direct_at.push(at);
                }
            }
            _ => {}
        }
    }

    /// The report of the changes given.
    pub fn finish(mut self, selector: &Selector, live: bool) -> Self {
        let report = &mut self;
        let mut listed: Vec<(&str, Option<&str>, usize)> = Vec::new();
        for (id, user) in &report.users {
            let named = Named::new(id, user.name.as_deref());
            if !selector.user().map_or(true, |s| s.names_user(&named)) {
                continue;
            }
            let total = report.count_of(user);
            if total > 0 {
                listed.push((id, named.name, total));
            }
        }
        listed.sort_by(|(a, a_name, _), (b, b_name, _)| {
            (a_name.unwrap_or(a).as_bytes(), a.as_bytes())
                .cmp(&(b_name.unwrap_or(b).as_bytes(), b.as_bytes()))
        });
        let listed: Vec<(String, usize)> = listed
            .into_iter()
            .map(|(id, _, total)| (id.to_string(), total))
            .collect();
        report.total_users = listed.len();
        report.total_gains = listed.iter().map(|(_, total)| total).sum();
        report.listed = listed;
        if !live {
            let mut existing: Vec<NamedBuf> = std::mem::take(&mut report.bound_groups)
                .into_iter()
                .filter(|g| !report.new_groups.contains(&g.id))
                .collect();
            existing.sort_by(|a, b| {
                let (a, b) = (a.named(), b.named());
                (a.label().as_bytes(), a.id).cmp(&(b.label().as_bytes(), b.id))
            });
            existing.dedup_by(|a, b| a.id == b.id);
            report.existing_groups = existing;
        }
        self
    }

    /// The user `who`, named as first seen.
    /// The group `named`, shared by its joins.
    fn joined_group(&mut self, named: &Named) -> Rc<NamedBuf> {
        let group = NamedBuf::of(named);
        if let Some(shared) = self.joined_groups.get(&group) {
            return Rc::clone(shared);
        }
        let shared = Rc::new(group.clone());
        self.joined_groups.insert(group, Rc::clone(&shared));
        shared
    }

    fn user(&mut self, who: Named) -> &mut PerUser {
        if !self.users.contains_key(who.id) {
            self.users.insert(who.id.to_string(), PerUser::default());
        }
        let user = self.users.get_mut(who.id).expect("inserted");
        if user.name.is_none() {
            user.name = who.name.map(str::to_string);
        }
        user
    }

    fn keeps(&self, grant: &Grant) -> bool {
        self.keeps_role(&grant.role.named(), grant.namespace.as_deref())
    }

    fn keeps_new(&self, b: &BindingRow) -> bool {
        self.keeps_role(&b.role, b.namespace)
    }

    fn keeps_role(&self, role: &Named, namespace: Option<&str>) -> bool {
        self.namespace
            .as_deref()
            .map_or(true, |ns| reaches(namespace, ns))
            && self
                .role
                .as_deref()
                .map_or(true, |r| role.id == r || role.name == Some(r))
    }

    /// How many gains [`Report::gains_of`] gives the user (whose plan's
    /// bindings are counted, perhaps not held).
    fn count_of(&self, user: &PerUser) -> usize {
        let joins = if self.show_joins {
            user.joins.iter().filter(|j| j.new).count()
        } else {
            0
        };
        if !self.show_roles {
            return joins;
        }
        // Each binding of the plan is a gain of its own; through groups,
        // the same binding through the same group is one gain. Only the
        // plan's bindings (whose keys differ) through groups that differ
        // cannot repeat: counted without a set.
        let distinct = !self.live
            && user
                .joins
                .iter()
                .enumerate()
                .all(|(i, j)| user.joins[..i].iter().all(|k| k.group != j.group));
        if distinct {
            let through_groups: usize = user
                .joins
                .iter()
                .flat_map(|j| self.group_grants.get(&j.group.id).into_iter().flatten())
                .filter(|g| self.keeps(g))
                .count();
            return joins + user.new_direct + through_groups;
        }
        let mut through_groups: BTreeSet<(&NamedBuf, &str, &NamedBuf, Option<&str>)> =
            BTreeSet::new();
        for j in &user.joins {
            for g in self.group_grants.get(&j.group.id).into_iter().flatten() {
                if (j.new || g.new) && self.keeps(g) {
                    through_groups.insert((&*j.group, &g.key, &g.role, g.namespace.as_deref()));
                }
            }
        }
        joins + user.new_direct + through_groups.len()
    }

    /// What the user gains (the filter applied): joins first, then roles,
    /// each in reading order.
    fn gains_of<'a>(&'a self, user: &'a PerUser, planned: &'a [Grant]) -> Vec<Gain<'a>> {
        let mut joins = Vec::new();
        let mut roles = BTreeSet::new();
        for j in &user.joins {
            if j.new && self.show_joins {
                joins.push(Gain::Joins {
                    group: j.group.named(),
                    membership: j.membership,
                    group_is_new: self.new_groups.contains(&j.group.id),
                });
            }
            if self.show_roles {
                for g in self.group_grants.get(&j.group.id).into_iter().flatten() {
                    // A new member gains all of the group's bindings; a
                    // member already, only the new ones.
                    if (j.new || g.new) && self.keeps(g) {
                        roles.insert(role_gain(g, Through::Group(j.group.named())));
                    }
                }
            }
        }
        if self.show_roles {
            for g in user.direct.iter().chain(planned) {
                if g.new && self.keeps(g) {
                    roles.insert(role_gain(g, Through::Direct));
                }
            }
        }
        joins.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        let mut roles: Vec<Gain> = roles.into_iter().collect();
        roles.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        joins.extend(roles);
        joins
    }

    /// The user's access in the tenant before the plan (with `--live`), the
    /// filter applied.
    fn before_of<'a>(&'a self, user: &'a PerUser) -> Vec<Gain<'a>> {
        let mut out = Vec::new();
        for j in user.joins.iter().filter(|j| !j.new) {
            if self.show_joins {
                out.push(Gain::Joins {
                    group: j.group.named(),
                    membership: j.membership,
                    group_is_new: false,
                });
            }
            if self.show_roles {
                for g in self.group_grants.get(&j.group.id).into_iter().flatten() {
                    if !g.new && self.keeps(g) {
                        out.push(role_gain(g, Through::Group(j.group.named())));
                    }
                }
            }
        }
        if self.show_roles {
            for g in user.direct.iter().filter(|g| !g.new && self.keeps(g)) {
                out.push(role_gain(g, Through::Direct));
            }
        }
        out.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        out.dedup();
        out
    }

    /// The users whose access changes, in order of name.
    pub fn listed(&self) -> impl Iterator<Item = Listed<'_>> {
        self.listed.iter().map(|(id, total)| Listed {
            user: Named::new(id, self.users.get(id).and_then(|u| u.name.as_deref())),
            total: *total,
        })
    }

    /// Gives `f` the gains of a listed user; the plan's bindings to them
    /// are read again from `changes`, where they are.
    pub fn with_gains<T>(
        &self,
        changes: &dyn Changes,
        listed: &Listed,
        f: impl FnOnce(&[Gain]) -> T,
    ) -> std::io::Result<T> {
        let Some(user) = self.users.get(listed.user.id) else {
            return Ok(f(&[]));
        };
        let mut planned = Vec::new();
        if self.show_roles && user.new_direct > 0 {
            changes.changes_at(&user.new_direct_at, &mut |change| {
                if let Row::Binding(b) = Row::of(change) {
                    planned.push(grant_of(&b));
                }
            })?;
        }
        Ok(f(&self.gains_of(user, &planned)))
    }

    /// The access of a listed user before the plan (empty without `--live`).
    pub fn before(&self, listed: &Listed) -> Vec<Gain<'_>> {
        self.users
            .get(listed.user.id)
            .map_or_else(Vec::new, |u| self.before_of(u))
    }

    /// Groups that exist in the tenant already and gain bindings (without
    /// `--live`).
    pub fn existing_groups(&self) -> Vec<Named<'_>> {
        self.existing_groups.iter().map(NamedBuf::named).collect()
    }

    /// The users shown under a limit of `limit` gains, with how many of
    /// their gains: whole users only, so that no list or diff looks complete
    /// when it is not, except the first user, who is shown in part.
    pub fn shown(&self, limit: Option<usize>) -> Vec<(Listed<'_>, usize)> {
        let budget = limit.unwrap_or(usize::MAX);
        let mut shown = 0usize;
        let mut out = Vec::new();
        for l in self.listed() {
            if shown > 0 && shown.saturating_add(l.total) > budget {
                break;
            }
            let n = l.total.min(budget - shown);
            shown += n;
            out.push((l, n));
        }
        out
    }
}

fn grant_of(b: &BindingRow) -> Grant {
    Grant {
        key: b.key.to_string(),
        role: NamedBuf::of(&b.role),
        namespace: b.namespace.map(str::to_string),
        new: true,
    }
}

fn role_gain<'a>(g: &'a Grant, through: Through<'a>) -> Gain<'a> {
    Gain::Role {
        role: g.role.named(),
        namespace: g.namespace.as_deref(),
        through,
        binding: &g.key,
    }
}

/// Gains read best by role, then namespace, then route.
fn sort_key<'a>(gain: &Gain<'a>) -> (&'a [u8], &'a [u8], &'a [u8], &'a [u8]) {
    match gain {
        Gain::Joins { group, .. } => (group.label().as_bytes(), group.id.as_bytes(), b"", b""),
        Gain::Role {
            role,
            namespace,
            through,
            binding,
        } => (
            role.label().as_bytes(),
            namespace.map_or(&b""[..], str::as_bytes),
            match through {
                Through::Direct => &b""[..],
                Through::Group(g) => g.label().as_bytes(),
            },
            binding.as_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::render::model::Filter;

    fn demo() -> Plan {
        serde_json::from_str(include_str!("../../plans/demo-plan.json")).unwrap()
    }

    fn report(plan: &Plan, selector: &Selector) -> Report {
        Report::new(&plan.changes, selector, None).unwrap()
    }

    #[test]
    fn a_user_gains_the_bindings_of_the_groups_they_join() {
        let plan = demo();
        let filter = Filter {
            user: Some("alice".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan.changes, &filter).unwrap();
        let report = report(&plan, &selector);
        assert_eq!(report.total_users, 1);
        let alice = &report.listed().next().unwrap();
        assert_eq!(alice.user.id, "alice");
        let (roles, count) = report
            .with_gains(&plan.changes, alice, |gains| {
                let roles: Vec<(String, Option<String>, String)> = gains
                    .iter()
                    .filter_map(|g| match g {
                        Gain::Role {
                            role,
                            namespace,
                            through: Through::Group(group),
                            ..
                        } => Some((
                            role.label().to_string(),
                            namespace.map(str::to_string),
                            group.id.to_string(),
                        )),
                        _ => None,
                    })
                    .collect();
                (roles, gains.len())
            })
            .unwrap();
        let roles: Vec<(&str, Option<&str>, &str)> = roles
            .iter()
            .map(|(r, n, g)| (r.as_str(), n.as_deref(), g.as_str()))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("Admin", Some("company"), "platform"),
                ("Developer", Some("company.data"), "data-eng"),
                ("Launcher", Some("company.marketing"), "data-eng"),
            ]
        );
        assert_eq!(count, 5, "two joins and three roles");
    }

    #[test]
    fn counts_cover_every_user_and_the_limit_only_cuts_the_listing() {
        let plan = demo();
        let filter = Filter::default();
        let selector = Selector::new(&plan.changes, &filter).unwrap();
        let all = report(&plan, &selector);
        let seven = all.shown(Some(7));
        assert_eq!(seven.len(), 1, "alice's five; bob's three would overflow");
        assert_eq!(seven[0].1, 5);
        let three = all.shown(Some(3));
        assert_eq!(three[0].1, 3, "the first user is cut");
        assert_eq!(three[0].0.total, 5);
        assert_eq!(
            all.shown(None).iter().map(|(_, n)| n).sum::<usize>(),
            all.total_gains
        );
        assert!(all.existing_groups().is_empty(), "every group bound is new");
    }

    #[test]
    fn a_namespace_filter_keeps_everyone_who_reaches_it() {
        let plan = demo();
        let filter = Filter {
            namespace: Some("company.finance".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan.changes, &filter).unwrap();
        let report = report(&plan, &selector);
        let who: Vec<&str> = report.listed().map(|l| l.user.id).collect();
        // Admin on `company` through Platform, Launcher on `company`, grants
        // on all namespaces, and mallory's Viewer on finance itself.
        assert_eq!(who, ["alice", "bob", "ci-bot", "grace", "heidi", "mallory"]);
    }

    #[test]
    fn a_role_filter_keeps_only_that_role_and_no_memberships() {
        let plan = demo();
        let filter = Filter {
            role: Some("Admin".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan.changes, &filter).unwrap();
        let report = report(&plan, &selector);
        assert!(report.listed().all(|u| report
            .with_gains(&plan.changes, &u, |gains| gains
                .iter()
                .all(|g| matches!(g, Gain::Role { role, .. } if role.id == "admin")))
            .unwrap()));
        assert!(report.total_users >= 2);
    }
}
