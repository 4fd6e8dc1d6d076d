//! "Needs attention": the grants a reviewer must read before anything else.
//!
//! A grant needs attention when
//! - its role is **admin-like**: it can do more than read on what controls
//!   access or the instance (`USER`, `GROUP`, `ROLE`, `BINDING`, `SETTING`,
//!   `TENANT`): whoever holds it can grant themselves anything else;
//! - it is on **all namespaces** (a binding without a namespace);
//! - it reaches a **super admin** or a **service account** (by a direct
//!   binding, a membership, or a group they join);
//!
//! and every **conflict** needs attention, as does every **skipped** grant
//! that would need it if it were applied (someone expects that access).

use std::collections::HashMap;

use super::model::{grants, Named, Row, Selector};
use crate::plan::{Changes, Plan};
use crate::sync::{Change, Finding, Kind, Op, SubjectType};

/// Permissions that control access or the instance itself.
pub const ADMIN_PERMISSIONS: [&str; 6] = ["USER", "GROUP", "ROLE", "BINDING", "SETTING", "TENANT"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Risk {
    Conflict,
    AdminRole,
    AllNamespaces,
    SuperAdmin,
    ServiceAccount,
    Skipped,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Conflict => "conflict",
            Risk::AdminRole => "admin-like role",
            Risk::AllNamespaces => "all namespaces",
            Risk::SuperAdmin => "super admin",
            Risk::ServiceAccount => "service account",
            Risk::Skipped => "skipped",
        }
    }
}

/// What an item is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject<'a> {
    User(Named<'a>, Option<&'a str>),
    /// A group, and the members the plan makes join it.
    Group(Named<'a>, Joiners<'a>),
    /// A role or group document (conflicts).
    Document(Kind, Named<'a>),
    /// Unknown (a malformed document).
    Unknown,
}

/// The members a plan makes join one group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Joiners<'a> {
    /// The first of them, in the plan's order, as many as
    /// [`StreamedFacts::gather`] was asked to keep.
    pub first: Vec<Named<'a>>,
    /// How many join.
    pub total: usize,
    /// What granting to the group grants to super admins or service
    /// accounts among them.
    risks: Vec<Risk>,
}

/// Joining members named in a row of "Needs attention".
pub const SHOWN_JOINERS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub risks: Vec<Risk>,
    pub subject: Subject<'a>,
    /// The role granted, and on which namespace (`None`: all).
    pub role: Option<(Named<'a>, Option<&'a str>)>,
    /// A membership gained: the group.
    pub joins: Option<Named<'a>>,
    /// The binding's key, or the finding's key and reason.
    pub key: &'a str,
    pub reason: Option<&'a str>,
    /// The admin permissions of the role, when it is admin-like.
    pub admin: Vec<&'a str>,
}

/// What the plan knows about roles and users, for judging risk.
pub struct Facts<'a> {
    /// role id -> the admin permissions it can write (empty: not admin-like).
    roles: HashMap<&'a str, Vec<&'static str>>,
    users: HashMap<&'a str, &'a str>,
    /// group id -> members the plan makes join it.
    joiners: HashMap<&'a str, Joiners<'a>>,
}

/// The admin permissions among `permissions` with more than `READ`, sorted.
fn admin_permissions<'a>(
    permissions: impl Iterator<Item = (&'a str, Vec<&'a str>)>,
) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = permissions
        .filter(|(_, actions)| actions.iter().any(|a| *a != "READ"))
        .filter_map(|(p, _)| ADMIN_PERMISSIONS.iter().copied().find(|a| *a == p))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The id and admin permissions of the role an `add_role` change adds.
fn role_facts<'v>(key: &'v str, value: &'v crate::sync::Document) -> (&'v str, Vec<&'static str>) {
    let map = value.map();
    let id = map.get("id").and_then(|v| v.as_str()).unwrap_or(key);
    let perms = grants(map.get("permissions"));
    let admin = admin_permissions(
        perms
            .iter()
            .flat_map(|g| g.permissions.iter().map(|p| (*p, g.actions.clone()))),
    );
    (id, admin)
}

fn user_risk(users: &HashMap<&str, &str>, id: &str) -> Option<Risk> {
    match *users.get(id)? {
        "SUPER_ADMIN" => Some(Risk::SuperAdmin),
        "SERVICE_ACCOUNT" => Some(Risk::ServiceAccount),
        _ => None,
    }
}

pub(super) fn context_users(plan: &Plan) -> HashMap<&str, &str> {
    plan.context
        .users
        .iter()
        .map(|(id, t)| (id.as_str(), t.as_str()))
        .collect()
}

impl<'a> Facts<'a> {
    /// The facts of the changes as they are, and of the plan's context,
    /// which says more about roles.
    fn with(
        plan: &'a Plan,
        mut roles: HashMap<&'a str, Vec<&'static str>>,
        users: HashMap<&'a str, &'a str>,
        joiners: HashMap<&'a str, Joiners<'a>>,
    ) -> Self {
        for (id, facts) in &plan.context.roles {
            let admin =
                admin_permissions(facts.permissions.iter().map(|(p, actions)| {
                    (p.as_str(), actions.iter().map(String::as_str).collect())
                }));
            roles.insert(id.as_str(), admin);
        }
        Facts {
            roles,
            users,
            joiners,
        }
    }

    fn user_risk(&self, id: &str) -> Option<Risk> {
        user_risk(&self.users, id)
    }

    pub fn user_type(&self, id: &str) -> Option<&'a str> {
        self.users.get(id).copied()
    }

    /// The risks of granting `role` on `namespace` to a subject.
    fn grant_risks(
        &self,
        role: &str,
        namespace: Option<&str>,
        subject: SubjectType,
        subject_id: &str,
    ) -> (Vec<Risk>, Vec<&'static str>) {
        let mut risks = Vec::new();
        let admin = self.roles.get(role).cloned().unwrap_or_default();
        if !admin.is_empty() {
            risks.push(Risk::AdminRole);
        }
        if namespace.is_none() {
            risks.push(Risk::AllNamespaces);
        }
        match subject {
            SubjectType::User => risks.extend(self.user_risk(subject_id)),
            SubjectType::Group => {
                if let Some(joiners) = self.joiners.get(subject_id) {
                    risks.extend(joiners.risks.iter().copied());
                }
            }
        }
        risks.sort_unstable();
        risks.dedup();
        (risks, admin)
    }
}

/// What [`Facts`] needs of a plan's changes, gathered from them one at a
/// time: the roles, and of each group's joiners the first few, how many
/// and what risks they bring.
#[derive(Default)]
pub struct StreamedFacts {
    roles: Vec<(String, Vec<&'static str>)>,
    joiners: HashMap<String, GroupJoiners>,
}

/// Of one group's joiners: (user id, username) of the first, how many,
/// their risks.
type GroupJoiners = (Vec<(String, String)>, usize, Vec<Risk>);

impl StreamedFacts {
    /// Gathers the facts of `changes`, in the plan's order, of `plan`,
    /// keeping the first `joiners` members that join each group (the
    /// tables name [`SHOWN_JOINERS`], JSON all of them).
    pub fn gather(plan: &Plan, changes: &dyn Changes, joiners: usize) -> std::io::Result<Self> {
        let users = context_users(plan);
        let mut out = StreamedFacts::default();
        let mut each = |change: &Change| {
            out.add(change, joiners, &users);
            true
        };
        changes.each_change_of(Op::AddRole, &mut each)?;
        changes.each_change_of(Op::AddMembership, &mut each)?;
        Ok(out)
    }

    /// Gathers the facts of one change, given in the plan's order;
    /// `users` are the plan's context's ([`context_users`]).
    pub fn add(&mut self, change: &Change, joiners: usize, users: &HashMap<&str, &str>) {
        match change {
            Change::AddRole { value, key } => {
                let (id, admin) = role_facts(key, value);
                self.roles.push((id.to_string(), admin));
            }
            Change::AddMembership {
                user_id,
                username,
                group_id,
                ..
            } => {
                let (first, total, risks) = self.joiners.entry(group_id.clone()).or_default();
                if first.len() < joiners {
                    first.push((user_id.clone(), username.clone()));
                }
                *total += 1;
                if let Some(risk) = user_risk(users, user_id) {
                    if !risks.contains(&risk) {
                        risks.push(risk);
                        risks.sort_unstable();
                    }
                }
            }
            _ => {}
        }
    }

    pub fn facts<'a>(&'a self, plan: &'a Plan) -> Facts<'a> {
        let roles = self
            .roles
            .iter()
            .map(|(id, admin)| (id.as_str(), admin.clone()))
            .collect();
        let joiners = self
            .joiners
            .iter()
            .map(|(group, (first, total, risks))| {
                let first = first
                    .iter()
                    .map(|(id, name)| Named::new(id.as_str(), Some(name.as_str())))
                    .collect();
                (
                    group.as_str(),
                    Joiners {
                        first,
                        total: *total,
                        risks: risks.clone(),
                    },
                )
            })
            .collect();
        Facts::with(plan, roles, context_users(plan), joiners)
    }
}

/// Gives every item that the filter keeps to `emit`, conflicts first, then
/// the changes, then the skipped grants; stops when `emit` says so. `emit`
/// gets an item of a change only while that change is read.
pub fn items_of<'a>(
    plan: &'a Plan,
    changes: &dyn Changes,
    selector: &Selector<'a>,
    facts: &Facts<'a>,
    emit: &mut dyn FnMut(Item<'_>) -> bool,
) -> std::io::Result<()> {
    items_at(plan, changes, None, selector, facts, emit)
}

/// [`items_of`], of which the items of changes are those of the changes
/// at `positions` ([`Changes::changes_at`]) when given: the first of them,
/// found before, so that a table of a few rows reads only those.
pub fn items_at<'a>(
    plan: &'a Plan,
    changes: &dyn Changes,
    positions: Option<&[usize]>,
    selector: &Selector<'a>,
    facts: &Facts<'a>,
    emit: &mut dyn FnMut(Item<'_>) -> bool,
) -> std::io::Result<()> {
    let keep = |f: &Finding| selector.filter.is_empty() || selector.matches_finding(f);
    for finding in plan.conflicts.iter().filter(|f| keep(f)) {
        let mut item = finding_item(finding, facts);
        item.risks.insert(0, Risk::Conflict);
        if !emit(item) {
            return Ok(());
        }
    }
    // Only additions of memberships and bindings need attention; they come
    // in this order in a plan.
    let mut more = true;
    if let Some(positions) = positions {
        changes.changes_at(positions, &mut |change| {
            if more {
                if let Some(item) = change_item(change, selector, facts) {
                    more = emit(item);
                }
            }
        })?;
    }
    for op in [Op::AddMembership, Op::AddBinding] {
        if positions.is_none() && more && selector.op_matches(op) {
            changes.each_change_of(op, &mut |change| {
                if let Some(item) = change_item(change, selector, facts) {
                    more = emit(item);
                }
                more
            })?;
        }
    }
    if more {
        skipped_items(plan, selector, facts, &mut |item| emit(item));
    }
    Ok(())
}

/// [`items_of`] in a walk over all of the plan's changes, each of which is
/// also given to `each` with where it is ([`Changes::each_change_at`]):
/// what else needs a walk over the changes makes no other.
pub fn items_walking<'a>(
    plan: &'a Plan,
    changes: &dyn Changes,
    selector: &Selector<'a>,
    facts: &Facts<'a>,
    each: &mut dyn FnMut(usize, &Change),
    emit: &mut dyn FnMut(Item<'_>) -> bool,
) -> std::io::Result<()> {
    let keep = |f: &Finding| selector.filter.is_empty() || selector.matches_finding(f);
    let mut more = true;
    for finding in plan.conflicts.iter().filter(|f| keep(f)) {
        let mut item = finding_item(finding, facts);
        item.risks.insert(0, Risk::Conflict);
        if !emit(item) {
            more = false;
            break;
        }
    }
    changes.each_change_at(&mut |at, change| {
        each(at, change);
        if more {
            if let Some(item) = change_item(change, selector, facts) {
                more = emit(item);
            }
        }
        true
    })?;
    if more {
        skipped_items(plan, selector, facts, &mut |item| emit(item));
    }
    Ok(())
}

/// How many items [`items_of`] gives: `changes` needs attention of the
/// plan's changes that do ([`needs_attention`]), counted by the caller.
pub fn count(plan: &Plan, selector: &Selector, facts: &Facts, changes: usize) -> usize {
    let keep = |f: &Finding| selector.filter.is_empty() || selector.matches_finding(f);
    let conflicts = plan.conflicts.iter().filter(|f| keep(f)).count();
    let mut skipped = 0;
    skipped_items(plan, selector, facts, &mut |_| {
        skipped += 1;
        true
    });
    conflicts + changes + skipped
}

/// Whether [`items_of`] gives an item of `change`.
pub fn needs_attention(change: &Change, selector: &Selector, facts: &Facts) -> bool {
    change_item(change, selector, facts).is_some()
}

/// The item of a change that needs attention.
fn change_item<'c>(
    change: &'c Change,
    selector: &Selector<'c>,
    facts: &Facts<'c>,
) -> Option<Item<'c>> {
    if !selector.op_matches(change.op()) {
        return None;
    }
    match change {
        Change::AddBinding { .. } | Change::AddMembership { .. } => {
            let row = Row::of(change);
            if !selector.matches(&row) {
                return None;
            }
            match row {
                Row::Binding(b) => {
                    let subject_type = if b.is_group() {
                        SubjectType::Group
                    } else {
                        SubjectType::User
                    };
                    let (risks, admin) =
                        facts.grant_risks(b.role.id, b.namespace, subject_type, b.subject.id);
                    if risks.is_empty() {
                        return None;
                    }
                    Some(Item {
                        risks,
                        subject: subject(facts, subject_type, b.subject),
                        role: Some((b.role, b.namespace)),
                        joins: None,
                        key: b.key,
                        reason: None,
                        admin,
                    })
                }
                Row::Membership(m) => {
                    let risk = facts.user_risk(m.user.id)?;
                    Some(Item {
                        risks: vec![risk],
                        subject: Subject::User(m.user, facts.user_type(m.user.id)),
                        role: None,
                        joins: Some(m.group),
                        key: m.key,
                        reason: None,
                        admin: Vec::new(),
                    })
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn skipped_items<'a>(
    plan: &'a Plan,
    selector: &Selector<'a>,
    facts: &Facts<'a>,
    emit: &mut dyn FnMut(Item<'a>) -> bool,
) {
    let keep = |f: &Finding| selector.filter.is_empty() || selector.matches_finding(f);
    for finding in plan.skipped.iter().filter(|f| keep(f)) {
        let item = finding_item(finding, facts);
        let risky_grant = item.risks.iter().any(|r| *r != Risk::Skipped);
        if !risky_grant {
            continue;
        }
        if !emit(item) {
            return;
        }
    }
}

fn subject<'a>(facts: &Facts<'a>, subject_type: SubjectType, who: Named<'a>) -> Subject<'a> {
    match subject_type {
        SubjectType::User => Subject::User(who, facts.user_type(who.id)),
        SubjectType::Group => {
            Subject::Group(who, facts.joiners.get(who.id).cloned().unwrap_or_default())
        }
    }
}

/// A skipped or conflicting entry as an item (the risks of its grant, if
/// it is one, and `Skipped` for a skipped entry).
fn finding_item<'a>(f: &'a Finding, facts: &Facts<'a>) -> Item<'a> {
    let mut item = Item {
        risks: Vec::new(),
        subject: Subject::Unknown,
        role: None,
        joins: None,
        key: &f.key,
        reason: Some(&f.reason),
        admin: Vec::new(),
    };
    match (
        f.kind,
        f.subject_type,
        f.subject_id.as_deref(),
        f.role_id.as_deref(),
    ) {
        (Kind::Binding, Some(st), Some(sid), Some(role)) => {
            let (risks, admin) = facts.grant_risks(role, f.namespace.as_deref(), st, sid);
            item.risks = risks;
            item.admin = admin;
            item.subject = subject(facts, st, Named::new(sid, f.subject_name.as_deref()));
            item.role = Some((
                Named::new(role, f.role_name.as_deref()),
                f.namespace.as_deref(),
            ));
        }
        (Kind::Membership, _, _, _) => {
            if let (Some(uid), Some(gid)) = (f.user_id.as_deref(), f.group_id.as_deref()) {
                item.subject =
                    Subject::User(Named::new(uid, f.username.as_deref()), facts.user_type(uid));
                item.joins = Some(Named::new(gid, f.group_name.as_deref()));
                item.risks.extend(facts.user_risk(uid));
            }
        }
        (Kind::Role | Kind::Group, _, _, _) => {
            item.subject = Subject::Document(f.kind, Named::new(&f.key, f.name.as_deref()));
        }
        _ => {}
    }
    item.risks.push(Risk::Skipped);
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::model::Filter;

    fn demo() -> Plan {
        serde_json::from_str(include_str!("../../plans/demo-plan.json")).unwrap()
    }

    #[test]
    fn the_demo_plans_risky_grants_are_named() {
        let plan = demo();
        let filter = Filter::default();
        let selector = Selector::new(&plan.changes, &filter).unwrap();
        let gathered = StreamedFacts::gather(&plan, &plan.changes, SHOWN_JOINERS).unwrap();
        let facts = gathered.facts(&plan);
        let mut seen = Vec::new();
        items_of(&plan, &plan.changes, &selector, &facts, &mut |item| {
            seen.push((item.key.to_string(), item.risks.clone()));
            true
        })
        .unwrap();
        use Risk::*;
        assert_eq!(
            seen.iter()
                .map(|(k, r)| (k.as_str(), r.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("default_b-01", vec![AdminRole, AllNamespaces, SuperAdmin]),
                ("default_b-02", vec![AdminRole]),
                ("default_b-07", vec![ServiceAccount]),
                ("default_b-09", vec![AllNamespaces]),
                ("b-12", vec![AllNamespaces, Skipped]),
                ("b-13", vec![AllNamespaces, Skipped]),
            ]
        );
    }

    #[test]
    fn admin_like_means_more_than_reading_access_control() {
        let perms = |list: &[(&'static str, &[&'static str])]| {
            admin_permissions(list.iter().map(|(p, a)| (*p, a.to_vec())))
        };
        assert_eq!(perms(&[("USER", &["READ"])]), Vec::<&str>::new());
        assert_eq!(perms(&[("FLOW", &["READ", "DELETE"])]), Vec::<&str>::new());
        assert_eq!(
            perms(&[("BINDING", &["CREATE"]), ("ROLE", &["UPDATE"])]),
            ["BINDING", "ROLE"]
        );
    }
}
