//! Access gained in the tenant, per user: what a reviewer signs off on.
//!
//! A user gains access through a binding to them (direct), through a binding
//! to a group they join in this plan, or by joining a group that may already
//! have bindings in the tenant. A plan records only what it adds, so two
//! things are beyond it: the bindings a group already has in the tenant, and
//! the members it already has there (who gain its new bindings too). Both
//! gaps are stated in the output, never guessed at.

use std::collections::{HashMap, HashSet};

use super::model::{BindingRow, MembershipRow, Named, Row, Selector};
use crate::plan::Plan;
use crate::sync::{Membership, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Through<'a> {
    Direct,
    Group(Named<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gain<'a> {
    /// Joins a group of the tenant.
    Joins {
        group: Named<'a>,
        membership: Membership,
        /// Created by this plan, so it has no bindings beyond the plan's.
        group_is_new: bool,
    },
    /// A role on a namespace (`None`: all namespaces).
    Role {
        role: Named<'a>,
        namespace: Option<&'a str>,
        through: Through<'a>,
        binding: &'a str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccess<'a> {
    pub user: Named<'a>,
    /// The gains listed: all of them, except when the first user alone has
    /// more than the limit.
    pub gains: Vec<Gain<'a>>,
    pub total: usize,
}

#[derive(Debug, Default)]
pub struct Report<'a> {
    /// The first users (by name) and their gains, up to the limit of gains.
    pub users: Vec<UserAccess<'a>>,
    pub total_users: usize,
    pub total_gains: usize,
    pub shown_gains: usize,
    /// Groups gaining bindings that exist in the tenant already: their
    /// current members, not in the plan, gain these bindings too.
    pub existing_groups: Vec<Named<'a>>,
}

#[derive(Default)]
struct PerUser<'a> {
    name: Option<&'a str>,
    direct: Vec<BindingRow<'a>>,
    joins: Vec<MembershipRow<'a>>,
}

/// The access each user gains, in order of users, as many whole users as
/// fit in `limit` gains; the counts cover every user the filter keeps.
pub fn report<'a>(plan: &'a Plan, selector: &Selector<'a>, limit: Option<usize>) -> Report<'a> {
    let filter = selector.filter;
    let (show_joins, show_roles) = match filter.op {
        None => (true, true),
        Some(Op::AddMembership) => (true, false),
        Some(Op::AddBinding) => (false, true),
        Some(_) => (false, false),
    };
    let show_joins = show_joins && filter.role.is_none() && filter.namespace.is_none();

    let mut new_groups: HashSet<&str> = HashSet::new();
    let mut group_bindings: HashMap<&str, Vec<BindingRow>> = HashMap::new();
    let mut users: HashMap<&str, PerUser> = HashMap::new();
    for change in &plan.changes {
        match Row::of(change) {
            Row::Group { group, .. } => {
                new_groups.insert(group.id);
            }
            Row::Membership(m) => {
                let user = users.entry(m.user.id).or_default();
                user.name = user.name.or(m.user.name);
                user.joins.push(m);
            }
            Row::Binding(b)
                if filter.role_matches(&b.role) && filter.namespace_matches(b.namespace) =>
            {
                if b.is_group() {
                    group_bindings.entry(b.subject.id).or_default().push(b);
                } else if b.is_user() {
                    let user = users.entry(b.subject.id).or_default();
                    user.name = user.name.or(b.subject.name);
                    user.direct.push(b);
                }
            }
            _ => {}
        }
    }

    let count = |u: &PerUser| -> usize {
        let mut n = 0;
        if show_joins {
            n += u.joins.len();
        }
        if show_roles {
            n += u.direct.len();
            n += u
                .joins
                .iter()
                .map(|m| group_bindings.get(m.group.id).map_or(0, Vec::len))
                .sum::<usize>();
        }
        n
    };
    let mut listed: Vec<(Named, &PerUser, usize)> = users
        .iter()
        .map(|(id, u)| (Named::new(id, u.name), u, count(u)))
        .filter(|(named, _, n)| *n > 0 && selector.user().map_or(true, |s| s.names_user(named)))
        .collect();
    listed.sort_by(|a, b| {
        (a.0.label().as_bytes(), a.0.id.as_bytes())
            .cmp(&(b.0.label().as_bytes(), b.0.id.as_bytes()))
    });

    let mut report = Report {
        total_users: listed.len(),
        total_gains: listed.iter().map(|(_, _, n)| n).sum(),
        ..Report::default()
    };
    let budget = limit.unwrap_or(usize::MAX);
    for (user, per_user, total) in listed {
        // Whole users only, so that no list or diff looks complete when it
        // is not; but the first user, however many gains, is shown in part.
        if report.shown_gains > 0 && report.shown_gains + total > budget {
            break;
        }
        let mut gains = gains_of(
            per_user,
            &group_bindings,
            &new_groups,
            show_joins,
            show_roles,
        );
        gains.truncate(budget - report.shown_gains);
        report.shown_gains += gains.len();
        report.users.push(UserAccess { user, gains, total });
    }
    let mut existing: Vec<Named> = group_bindings
        .iter()
        .filter(|(id, _)| !new_groups.contains(*id))
        .map(|(id, list)| Named::new(id, list[0].subject.name))
        .collect();
    existing.sort_by(|a, b| (a.label().as_bytes(), a.id).cmp(&(b.label().as_bytes(), b.id)));
    report.existing_groups = existing;
    report
}

fn gains_of<'a>(
    user: &PerUser<'a>,
    group_bindings: &HashMap<&str, Vec<BindingRow<'a>>>,
    new_groups: &HashSet<&str>,
    show_joins: bool,
    show_roles: bool,
) -> Vec<Gain<'a>> {
    let mut joins = Vec::new();
    let mut roles = Vec::new();
    for m in &user.joins {
        if show_joins {
            joins.push(Gain::Joins {
                group: m.group,
                membership: m.membership,
                group_is_new: new_groups.contains(m.group.id),
            });
        }
        if show_roles {
            for b in group_bindings.get(m.group.id).into_iter().flatten() {
                roles.push(Gain::Role {
                    role: b.role,
                    namespace: b.namespace,
                    through: Through::Group(m.group),
                    binding: b.key,
                });
            }
        }
    }
    if show_roles {
        for b in &user.direct {
            roles.push(Gain::Role {
                role: b.role,
                namespace: b.namespace,
                through: Through::Direct,
                binding: b.key,
            });
        }
    }
    joins.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    roles.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    joins.extend(roles);
    joins
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

    #[test]
    fn a_user_gains_the_bindings_of_the_groups_they_join() {
        let plan = demo();
        let filter = Filter {
            user: Some("alice".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan, &filter);
        let report = report(&plan, &selector, None);
        assert_eq!(report.total_users, 1);
        let alice = &report.users[0];
        assert_eq!(alice.user.id, "alice");
        let roles: Vec<(&str, Option<&str>, &str)> = alice
            .gains
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
        assert_eq!(alice.gains.len(), 5, "two joins and three roles");
    }

    #[test]
    fn counts_cover_every_user_and_the_limit_only_cuts_the_listing() {
        let plan = demo();
        let filter = Filter::default();
        let selector = Selector::new(&plan, &filter);
        let all = report(&plan, &selector, None);
        let seven = report(&plan, &selector, Some(7));
        assert_eq!(
            seven.shown_gains, 5,
            "alice's five; bob's three would overflow"
        );
        assert_eq!(seven.users.len(), 1);
        let three = report(&plan, &selector, Some(3));
        assert_eq!(three.users[0].gains.len(), 3, "the first user is cut");
        assert_eq!(three.users[0].total, 5);
        assert_eq!(seven.total_users, all.total_users);
        assert_eq!(seven.total_gains, all.total_gains);
        assert_eq!(all.shown_gains, all.total_gains);
        assert_eq!(
            all.total_gains,
            all.users.iter().map(|u| u.gains.len()).sum::<usize>()
        );
        assert!(all.existing_groups.is_empty(), "every group bound is new");
    }

    #[test]
    fn a_role_filter_keeps_only_that_role_and_no_memberships() {
        let plan = demo();
        let filter = Filter {
            role: Some("Admin".into()),
            ..Filter::default()
        };
        let selector = Selector::new(&plan, &filter);
        let report = report(&plan, &selector, None);
        assert!(report.users.iter().all(|u| u
            .gains
            .iter()
            .all(|g| matches!(g, Gain::Role { role, .. } if role.id == "admin"))));
        assert!(report.total_users >= 2);
    }
}
