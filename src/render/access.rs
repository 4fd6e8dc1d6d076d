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

use super::model::{reaches, BindingRow, Named, Row, Selector};
use crate::plan::Plan;
use crate::sync::documents::{parse_binding, parse_group, parse_role, parse_user};
use crate::sync::{Membership, Op, Snapshot, SubjectType};

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
#[derive(Debug, Clone, Copy)]
struct Grant<'a> {
    key: &'a str,
    role: Named<'a>,
    namespace: Option<&'a str>,
    new: bool,
}

#[derive(Debug, Clone, Copy)]
struct Join<'a> {
    group: Named<'a>,
    membership: Membership,
    new: bool,
}

#[derive(Default)]
struct PerUser<'a> {
    name: Option<&'a str>,
    direct: Vec<Grant<'a>>,
    joins: Vec<Join<'a>>,
}

/// One user whose access changes.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub user: Named<'a>,
    /// Gains that the filter keeps.
    pub total: usize,
}

/// The access each user gains, computed user by user when printed.
pub struct Report<'a> {
    users: HashMap<&'a str, PerUser<'a>>,
    group_grants: HashMap<&'a str, Vec<Grant<'a>>>,
    new_groups: HashSet<&'a str>,
    show_joins: bool,
    show_roles: bool,
    namespace: Option<&'a str>,
    role: Option<&'a str>,
    /// Users whose access changes, in order of name.
    pub listed: Vec<Listed<'a>>,
    pub total_users: usize,
    pub total_gains: usize,
    /// Without `--live`: groups gaining bindings that exist in the tenant
    /// already; their current members, not in the plan, gain these too.
    pub existing_groups: Vec<Named<'a>>,
}

impl<'a> Report<'a> {
    pub fn new(plan: &'a Plan, selector: &Selector<'a>, tenant: Option<&'a Tenant>) -> Self {
        let filter = selector.filter;
        let (show_joins, show_roles) = match filter.op {
            None => (true, true),
            Some(Op::AddMembership) => (true, false),
            Some(Op::AddBinding) => (false, true),
            Some(_) => (false, false),
        };
        let show_joins = show_joins && filter.role.is_none() && filter.namespace.is_none();
        let mut report = Report {
            users: HashMap::new(),
            group_grants: HashMap::new(),
            new_groups: HashSet::new(),
            show_joins,
            show_roles,
            namespace: filter.namespace.as_deref(),
            role: filter.role.as_deref(),
            listed: Vec::new(),
            total_users: 0,
            total_gains: 0,
            existing_groups: Vec::new(),
        };
        // Members now: they gain what the plan binds to their groups.
        if let Some(t) = tenant {
            for (user, joins) in &t.memberships {
                let entry = report.users.entry(user.as_str()).or_default();
                entry.name = t.user_names.get(user).map(String::as_str);
                for (group, membership) in joins {
                    entry.joins.push(Join {
                        group: Named::new(group, t.group_names.get(group).map(String::as_str)),
                        membership: *membership,
                        new: false,
                    });
                }
            }
            for b in &t.bindings {
                let grant = Grant {
                    key: &b.key,
                    role: Named::new(&b.role_id, t.role_names.get(&b.role_id).map(String::as_str)),
                    namespace: b.namespace.as_deref(),
                    new: false,
                };
                match b.subject_type {
                    SubjectType::Group => report
                        .group_grants
                        .entry(b.subject_id.as_str())
                        .or_default()
                        .push(grant),
                    SubjectType::User => {
                        let entry = report.users.entry(b.subject_id.as_str()).or_default();
                        entry.name = entry
                            .name
                            .or(t.user_names.get(&b.subject_id).map(String::as_str));
                        entry.direct.push(grant);
                    }
                }
            }
        }
        let mut bound_groups: Vec<Named> = Vec::new();
        for change in &plan.changes {
            match Row::of(change) {
                Row::Group { group, .. } => {
                    report.new_groups.insert(group.id);
                }
                Row::Membership(m) => {
                    let user = report.users.entry(m.user.id).or_default();
                    user.name = user.name.or(m.user.name);
                    user.joins.push(Join {
                        group: m.group,
                        membership: m.membership,
                        new: true,
                    });
                }
                Row::Binding(b) => {
                    let grant = grant_of(&b);
                    if b.is_group() {
                        report
                            .group_grants
                            .entry(b.subject.id)
                            .or_default()
                            .push(grant);
                        bound_groups.push(b.subject);
                    } else if b.is_user() {
                        let user = report.users.entry(b.subject.id).or_default();
                        user.name = user.name.or(b.subject.name);
                        user.direct.push(grant);
                    }
                }
                _ => {}
            }
        }
        let mut listed: Vec<Listed> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut consider = |report: &Report<'a>, id: &'a str, listed: &mut Vec<Listed<'a>>| {
            if !seen.insert(id) {
                return;
            }
            let Some(user) = report.users.get(id) else {
                return;
            };
            let named = Named::new(id, user.name);
            if !selector.user().map_or(true, |s| s.names_user(&named)) {
                return;
            }
            let total = report.gains_of(user).len();
            if total > 0 {
                listed.push(Listed { user: named, total });
            }
        };
        let ids: Vec<&'a str> = report.users.keys().copied().collect();
        for id in ids {
            consider(&report, id, &mut listed);
        }
        listed.sort_by(|a, b| {
            (a.user.label().as_bytes(), a.user.id.as_bytes())
                .cmp(&(b.user.label().as_bytes(), b.user.id.as_bytes()))
        });
        report.total_users = listed.len();
        report.total_gains = listed.iter().map(|l| l.total).sum();
        report.listed = listed;
        if tenant.is_none() {
            let mut existing: Vec<Named> = bound_groups
                .into_iter()
                .filter(|g| !report.new_groups.contains(g.id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            existing
                .sort_by(|a, b| (a.label().as_bytes(), a.id).cmp(&(b.label().as_bytes(), b.id)));
            existing.dedup_by(|a, b| a.id == b.id);
            report.existing_groups = existing;
        }
        report
    }

    fn keeps(&self, grant: &Grant) -> bool {
        self.namespace
            .map_or(true, |ns| reaches(grant.namespace, ns))
            && self
                .role
                .map_or(true, |r| grant.role.id == r || grant.role.name == Some(r))
    }

    /// What the user gains (the filter applied): joins first, then roles,
    /// each in reading order.
    fn gains_of(&self, user: &PerUser<'a>) -> Vec<Gain<'a>> {
        let mut joins = Vec::new();
        let mut roles = BTreeSet::new();
        for j in &user.joins {
            if j.new && self.show_joins {
                joins.push(Gain::Joins {
                    group: j.group,
                    membership: j.membership,
                    group_is_new: self.new_groups.contains(j.group.id),
                });
            }
            if self.show_roles {
                for g in self.group_grants.get(j.group.id).into_iter().flatten() {
                    // A new member gains all of the group's bindings; a
                    // member already, only the new ones.
                    if (j.new || g.new) && self.keeps(g) {
                        roles.insert(role_gain(g, Through::Group(j.group)));
                    }
                }
            }
        }
        if self.show_roles {
            for g in &user.direct {
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
    fn before_of(&self, user: &PerUser<'a>) -> Vec<Gain<'a>> {
        let mut out = Vec::new();
        for j in user.joins.iter().filter(|j| !j.new) {
            if self.show_joins {
                out.push(Gain::Joins {
                    group: j.group,
                    membership: j.membership,
                    group_is_new: false,
                });
            }
            if self.show_roles {
                for g in self.group_grants.get(j.group.id).into_iter().flatten() {
                    if !g.new && self.keeps(g) {
                        out.push(role_gain(g, Through::Group(j.group)));
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

    /// The gains of a listed user.
    pub fn gains(&self, listed: &Listed<'a>) -> Vec<Gain<'a>> {
        self.users
            .get(listed.user.id)
            .map_or_else(Vec::new, |u| self.gains_of(u))
    }

    /// The access of a listed user before the plan (empty without `--live`).
    pub fn before(&self, listed: &Listed<'a>) -> Vec<Gain<'a>> {
        self.users
            .get(listed.user.id)
            .map_or_else(Vec::new, |u| self.before_of(u))
    }

    /// The users shown under a limit of `limit` gains, with how many of
    /// their gains: whole users only, so that no list or diff looks complete
    /// when it is not, except the first user, who is shown in part.
    pub fn shown(&self, limit: Option<usize>) -> Vec<(Listed<'a>, usize)> {
        let budget = limit.unwrap_or(usize::MAX);
        let mut shown = 0usize;
        let mut out = Vec::new();
        for l in &self.listed {
            if shown > 0 && shown.saturating_add(l.total) > budget {
                break;
            }
            let n = l.total.min(budget - shown);
            shown += n;
            out.push((*l, n));
        }
        out
    }
}

fn grant_of<'a>(b: &BindingRow<'a>) -> Grant<'a> {
    Grant {
        key: b.key,
        role: b.role,
        namespace: b.namespace,
        new: true,
    }
}

fn role_gain<'a>(g: &Grant<'a>, through: Through<'a>) -> Gain<'a> {
    Gain::Role {
        role: g.role,
        namespace: g.namespace,
        through,
        binding: g.key,
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
    use crate::render::model::Filter;

    fn demo() -> Plan {
        serde_json::from_str(include_str!("../../plans/demo-plan.json")).unwrap()
    }

    fn report<'a>(plan: &'a Plan, selector: &Selector<'a>) -> Report<'a> {
        Report::new(plan, selector, None)
    }

    #[test]
    fn a_user_gains_the_bindings_of_the_groups_they_join() {
        let plan = demo();
        let filter = Filter {
            user: Some("alice".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan, &filter);
        let report = report(&plan, &selector);
        assert_eq!(report.total_users, 1);
        let alice = &report.listed[0];
        assert_eq!(alice.user.id, "alice");
        let gains = report.gains(alice);
        let roles: Vec<(&str, Option<&str>, &str)> = gains
            .iter()
            .filter_map(|g| match g {
                Gain::Role {
                    role,
                    namespace,
                    through: Through::Group(group),
                    ..
                } => Some((role.label(), *namespace, group.id)),
                _ => None,
            })
            .collect();
        assert_eq!(
            roles,
            vec![
                ("Admin", Some("company"), "platform"),
                ("Developer", Some("company.data"), "data-eng"),
                ("Launcher", Some("company.marketing"), "data-eng"),
            ]
        );
        assert_eq!(gains.len(), 5, "two joins and three roles");
    }

    #[test]
    fn counts_cover_every_user_and_the_limit_only_cuts_the_listing() {
        let plan = demo();
        let filter = Filter::default();
        let selector = Selector::new(&plan, &filter);
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
        assert!(all.existing_groups.is_empty(), "every group bound is new");
    }

    #[test]
    fn a_namespace_filter_keeps_everyone_who_reaches_it() {
        let plan = demo();
        let filter = Filter {
            namespace: Some("company.finance".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan, &filter);
        let report = report(&plan, &selector);
        let who: Vec<&str> = report.listed.iter().map(|l| l.user.id).collect();
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
        let selector = Selector::new(&plan, &filter);
        let report = report(&plan, &selector);
        assert!(report.listed.iter().all(|u| report
            .gains(u)
            .iter()
            .all(|g| matches!(g, Gain::Role { role, .. } if role.id == "admin"))));
        assert!(report.total_users >= 2);
    }
}
