//! What a plan's changes mean, in the reviewer's words: users, groups, roles
//! and namespaces rather than keys and documents. No formatting here; the
//! table, markdown and JSON printers all read these rows.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::plan::Changes;
use crate::sync::{Change, Finding, Kind, Membership, Op, SubjectType};

/// An identifier with its readable name, when the plan records one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Named<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
}

/// A [`Named`] that owns its text: kept across changes read one at a
/// time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedBuf {
    pub id: String,
    pub name: Option<String>,
}

impl NamedBuf {
    pub fn of(n: &Named) -> Self {
        NamedBuf {
            id: n.id.to_string(),
            name: n.name.map(str::to_string),
        }
    }

    pub fn named(&self) -> Named<'_> {
        Named {
            id: &self.id,
            name: self.name.as_deref(),
        }
    }
}

impl<'a> Named<'a> {
    pub fn new(id: &'a str, name: Option<&'a str>) -> Self {
        Named {
            id,
            name: name.filter(|n| !n.is_empty() && *n != id),
        }
    }

    /// The name when there is one, else the id: what a reviewer reads first.
    pub fn label(&self) -> &'a str {
        self.name.unwrap_or(self.id)
    }
}

/// One action set granted on several permissions: `READ CREATE on FLOW, KV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    pub actions: Vec<&'a str>,
    pub permissions: Vec<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow<'a> {
    pub key: &'a str,
    /// `USER` or `GROUP` (as written in the document).
    pub subject_type: &'a str,
    pub subject: Named<'a>,
    pub role: Named<'a>,
    /// `None`: all namespaces.
    pub namespace: Option<&'a str>,
}

impl BindingRow<'_> {
    pub fn is_user(&self) -> bool {
        self.subject_type == "USER"
    }

    pub fn is_group(&self) -> bool {
        self.subject_type == "GROUP"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRow<'a> {
    /// The user document's key.
    pub key: &'a str,
    pub user: Named<'a>,
    pub group: Named<'a>,
    pub membership: Membership,
}

/// One change, readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row<'a> {
    Tenant {
        key: &'a str,
        name: Option<&'a str>,
    },
    Role {
        key: &'a str,
        role: Named<'a>,
        description: Option<&'a str>,
        grants: Vec<Grant<'a>>,
    },
    Group {
        key: &'a str,
        group: Named<'a>,
        description: Option<&'a str>,
    },
    Membership(MembershipRow<'a>),
    Binding(BindingRow<'a>),
}

/// The string fields `names` of a document, in one pass over its members:
/// documents are small, and a million lookups by hash cost more.
fn fields<'a, const N: usize>(
    value: &'a Map<String, Value>,
    names: [&str; N],
) -> [Option<&'a str>; N] {
    let mut out = [None; N];
    for (key, v) in value {
        if let Some(i) = names.iter().position(|n| n == key) {
            out[i] = v.as_str();
        }
    }
    out
}

/// `user alice@example.com` -> `alice@example.com`: the plan's readable
/// subject without its type.
fn subject_name(subject: &str) -> Option<&str> {
    subject
        .split_once(' ')
        .map(|(_, name)| name)
        .filter(|n| !n.is_empty())
}

/// The order a reviewer expects actions in; others follow alphabetically.
fn action_rank(action: &str) -> (usize, &str) {
    let rank = ["READ", "CREATE", "UPDATE", "DELETE"]
        .iter()
        .position(|a| *a == action)
        .unwrap_or(4);
    (rank, action)
}

/// Permissions grouped by identical action sets, the widest set first; a
/// permission without actions is absent (docs/rules.md §3).
pub fn grants(permissions: Option<&Value>) -> Vec<Grant<'_>> {
    let Some(Value::Object(permissions)) = permissions else {
        return Vec::new();
    };
    let mut by_actions: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
    for (permission, actions) in permissions {
        let mut actions: Vec<&str> = match actions {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        actions.sort_by_key(|a| action_rank(a));
        actions.dedup();
        if actions.is_empty() {
            continue;
        }
        by_actions.entry(actions).or_default().push(permission);
    }
    let mut grants: Vec<Grant> = by_actions
        .into_iter()
        .map(|(actions, mut permissions)| {
            permissions.sort_unstable();
            Grant {
                actions,
                permissions,
            }
        })
        .collect();
    grants.sort_by(|a, b| {
        b.actions.len().cmp(&a.actions.len()).then_with(|| {
            let ra: Vec<_> = a.actions.iter().map(|x| action_rank(x)).collect();
            let rb: Vec<_> = b.actions.iter().map(|x| action_rank(x)).collect();
            ra.cmp(&rb)
        })
    });
    grants
}

impl<'a> Row<'a> {
    pub fn of(change: &'a Change) -> Row<'a> {
        match change {
            // A removal reads as the addition it undoes; the printers say
            // it is a loss (`Op::is_removal`).
            Change::CreateTenant { key, value } | Change::RemoveTenant { key, value } => {
                let [name] = fields(value.map(), ["name"]);
                Row::Tenant { key, name }
            }
            Change::AddRole { key, value } | Change::RemoveRole { key, value } => {
                let [id, name, description] = fields(value.map(), ["id", "name", "description"]);
                Row::Role {
                    key,
                    role: Named::new(id.unwrap_or(key), name),
                    description: description.filter(|d| !d.is_empty()),
                    grants: grants(value.map().get("permissions")),
                }
            }
            Change::AddGroup { key, value } | Change::RemoveGroup { key, value } => {
                let [id, name, description] = fields(value.map(), ["id", "name", "description"]);
                Row::Group {
                    key,
                    group: Named::new(id.unwrap_or(key), name),
                    description: description.filter(|d| !d.is_empty()),
                }
            }
            Change::AddMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            }
            | Change::RemoveMembership {
                key,
                user_id,
                username,
                group_id,
                group_name,
                membership,
            } => Row::Membership(MembershipRow {
                key,
                user: Named::new(user_id, Some(username)),
                group: Named::new(group_id, Some(group_name)),
                membership: *membership,
            }),
            Change::AddBinding {
                key,
                value,
                subject,
                role,
            }
            | Change::RemoveBinding {
                key,
                value,
                subject,
                role,
            } => {
                // Read in place, not through the map a document keeps:
                // `show` of a million bindings would keep a million maps.
                let [subject_type, external_id, role_id, namespace] = match value.binding_fields() {
                    Some(f) => [f.subject_type, f.external_id, f.role_id, f.namespace_id],
                    None => fields(value.map(), ["type", "externalId", "roleId", "namespaceId"]),
                };
                Row::Binding(BindingRow {
                    key,
                    subject_type: subject_type.unwrap_or("?"),
                    subject: Named::new(external_id.unwrap_or("?"), subject_name(subject)),
                    role: Named::new(role_id.unwrap_or("?"), Some(role)),
                    namespace,
                })
            }
        }
    }
}

/// `--user`, `--role`, `--namespace`, `--op`: all that are given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A user id, username or user key.
    pub user: Option<String>,
    /// A role id or name.
    pub role: Option<String>,
    /// A namespace; its child namespaces match too.
    pub namespace: Option<String>,
    pub op: Option<Op>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The filter as the flags that set it.
    pub fn flags(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(u) = &self.user {
            out.push(("--user", u.as_str()));
        }
        if let Some(r) = &self.role {
            out.push(("--role", r.as_str()));
        }
        if let Some(n) = &self.namespace {
            out.push(("--namespace", n.as_str()));
        }
        if let Some(op) = self.op {
            out.push(("--op", op.as_str()));
        }
        out
    }

    /// Whether a binding on `namespace` (`None`: all namespaces) reaches
    /// the namespace of `--namespace`: see [`reaches`].
    pub fn namespace_matches(&self, namespace: Option<&str>) -> bool {
        match &self.namespace {
            None => true,
            Some(target) => reaches(namespace, target),
        }
    }

    pub fn role_matches(&self, role: &Named) -> bool {
        match &self.role {
            None => true,
            Some(want) => role.id == want || role.name == Some(want.as_str()),
        }
    }
}

/// Kestra's inheritance: a binding on namespace `company` reaches
/// `company` and every namespace below it (`company.finance`,
/// `company.finance.reports`), not `companyx`; a binding without a
/// namespace reaches every namespace.
pub fn reaches(binding: Option<&str>, target: &str) -> bool {
    match binding {
        None => true,
        Some(ns) => {
            target == ns
                || (target.len() > ns.len()
                    && target.starts_with(ns)
                    && target.as_bytes()[ns.len()] == b'.')
        }
    }
}

/// What `--user` resolves to in this plan: the keys that name the user and
/// the groups the plan makes them join.
#[derive(Debug, Default)]
pub struct UserScope {
    pub ids: HashSet<String>,
    pub keys: HashSet<String>,
    pub groups: HashSet<String>,
}

impl UserScope {
    pub fn resolve(changes: &dyn Changes, user: &str) -> std::io::Result<Self> {
        let mut scope = UserScope::default();
        scope.ids.insert(user.to_string());
        scope.keys.insert(user.to_string());
        let mut each = |change: &Change| {
            if let Change::AddMembership {
                key,
                user_id,
                username,
                group_id,
                ..
            }
            | Change::RemoveMembership {
                key,
                user_id,
                username,
                group_id,
                ..
            } = change
            {
                if user_id == user || username == user || key == user {
                    scope.ids.insert(user_id.clone());
                    scope.keys.insert(key.clone());
                    scope.groups.insert(group_id.clone());
                }
            }
            true
        };
        changes.each_change_of(Op::AddMembership, &mut each)?;
        changes.each_change_of(Op::RemoveMembership, &mut each)?;
        Ok(scope)
    }

    pub fn names_user(&self, user: &Named) -> bool {
        self.ids.contains(user.id) || user.name.is_some_and(|n| self.ids.contains(n))
    }
}

/// The filter applied to a plan: which rows and findings are shown.
pub struct Selector<'a> {
    pub filter: &'a Filter,
    user: Option<UserScope>,
}

impl<'a> Selector<'a> {
    /// The filter over a plan's `changes` (`--user` reads its
    /// memberships).
    pub fn new(changes: &dyn Changes, filter: &'a Filter) -> std::io::Result<Self> {
        Ok(Selector {
            filter,
            user: match filter.user.as_deref() {
                Some(u) => Some(UserScope::resolve(changes, u)?),
                None => None,
            },
        })
    }

    /// The filter, when it needs nothing from the plan's changes (no
    /// `--user`, which reads the memberships first).
    pub fn without_changes(filter: &'a Filter) -> Option<Self> {
        filter
            .user
            .is_none()
            .then_some(Selector { filter, user: None })
    }

    pub fn user(&self) -> Option<&UserScope> {
        self.user.as_ref()
    }

    /// Whether a change is shown. `--user` keeps the user's memberships,
    /// the groups they join, and the bindings that reach them (direct, or to
    /// a group they join in this plan); `--role` and `--namespace` keep
    /// bindings (and, for `--role`, the role itself).
    pub fn matches(&self, row: &Row) -> bool {
        let f = self.filter;
        match row {
            Row::Tenant { .. } => f.user.is_none() && f.role.is_none() && f.namespace.is_none(),
            Row::Role { role, .. } => {
                f.user.is_none() && f.namespace.is_none() && f.role_matches(role)
            }
            Row::Group { group, .. } => {
                f.role.is_none()
                    && f.namespace.is_none()
                    && self
                        .user
                        .as_ref()
                        .map_or(true, |u| u.groups.contains(group.id))
            }
            Row::Membership(m) => {
                f.role.is_none()
                    && f.namespace.is_none()
                    && self
                        .user
                        .as_ref()
                        .map_or(true, |u| u.keys.contains(m.key) || u.names_user(&m.user))
            }
            Row::Binding(b) => {
                f.role_matches(&b.role)
                    && f.namespace_matches(b.namespace)
                    && self.user.as_ref().map_or(true, |u| {
                        (b.is_user() && u.names_user(&b.subject))
                            || (b.is_group() && u.groups.contains(b.subject.id))
                    })
            }
        }
    }

    /// Whether a change of this op is shown, before reading its row.
    pub fn op_matches(&self, op: Op) -> bool {
        self.filter.op.map_or(true, |want| want == op)
    }

    /// Whether a skipped or conflicting entry is shown: its kind must be
    /// the op's; `--user` keeps the user's memberships and bindings,
    /// `--role` the role and its bindings, `--namespace` the bindings that
    /// reach the namespace (a plan made before findings named their
    /// subject, role and namespace matches by key only).
    pub fn matches_finding(&self, finding: &Finding) -> bool {
        let f = self.filter;
        if let Some(op) = f.op {
            let kind = match op {
                Op::CreateTenant => return false,
                Op::AddRole | Op::RemoveRole => Kind::Role,
                Op::AddGroup | Op::RemoveGroup => Kind::Group,
                Op::AddMembership | Op::RemoveMembership => Kind::Membership,
                Op::AddBinding | Op::RemoveBinding => Kind::Binding,
                Op::RemoveTenant => Kind::Tenant,
            };
            if finding.kind != kind {
                return false;
            }
        }
        let is_grant = finding.kind == Kind::Binding && finding.subject_type.is_some();
        if f.namespace.is_some() && !(is_grant && f.namespace_matches(finding.namespace.as_deref()))
        {
            return false;
        }
        if let Some(user) = &self.user {
            let names = |id: Option<&str>, name: Option<&str>| {
                id.is_some_and(|id| user.ids.contains(id))
                    || name.is_some_and(|n| user.ids.contains(n))
            };
            let shown = match finding.kind {
                Kind::User => user.keys.contains(finding.key.as_str()),
                Kind::Membership => {
                    user.keys.contains(finding.key.as_str())
                        || names(finding.user_id.as_deref(), finding.username.as_deref())
                }
                Kind::Binding => match finding.subject_type {
                    Some(SubjectType::User) => names(
                        finding.subject_id.as_deref(),
                        finding.subject_name.as_deref(),
                    ),
                    Some(SubjectType::Group) => finding
                        .subject_id
                        .as_deref()
                        .is_some_and(|g| user.groups.contains(g)),
                    None => false,
                },
                _ => false,
            };
            if !shown {
                return false;
            }
        }
        if let Some(role) = &f.role {
            let shown = match finding.kind {
                Kind::Role => finding.key == *role || finding.name.as_deref() == Some(role),
                Kind::Binding => {
                    finding.role_id.as_deref() == Some(role)
                        || finding.role_name.as_deref() == Some(role)
                }
                _ => false,
            };
            if !shown {
                return false;
            }
        }
        true
    }
}

/// Bindings counted by role and by namespace: as many entries as roles
/// and namespaces, whatever the number of bindings.
#[derive(Debug, Default)]
pub struct Spread {
    /// role id -> (role, bindings to users, bindings to groups)
    pub by_role: HashMap<String, (NamedBuf, usize, usize)>,
    /// namespace -> bindings
    pub by_namespace: HashMap<String, usize>,
    /// Bindings on all namespaces.
    pub all_namespaces: usize,
}

impl Spread {
    fn add(&mut self, b: &BindingRow) {
        let entry = match self.by_role.get_mut(b.role.id) {
            Some(entry) => entry,
            None => {
                self.by_role
                    .entry(b.role.id.to_string())
                    .or_insert((NamedBuf::of(&b.role), 0, 0))
            }
        };
        if b.is_group() {
            entry.2 += 1;
        } else {
            entry.1 += 1;
        }
        match b.namespace {
            None => self.all_namespaces += 1,
            Some(ns) => match self.by_namespace.get_mut(ns) {
                Some(n) => *n += 1,
                None => {
                    self.by_namespace.insert(ns.to_string(), 1);
                }
            },
        }
    }

    /// Roles by number of bindings, most first.
    pub fn roles(&self) -> Vec<(Named<'_>, usize, usize)> {
        let mut out: Vec<_> = self
            .by_role
            .values()
            .map(|(role, users, groups)| (role.named(), *users, *groups))
            .collect();
        out.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
        out
    }

    /// Namespaces by number of bindings, most first.
    pub fn namespaces(&self) -> Vec<(Option<&str>, usize)> {
        let mut out: Vec<_> = self
            .by_namespace
            .iter()
            .map(|(k, v)| (Some(k.as_str()), *v))
            .collect();
        if self.all_namespaces > 0 {
            out.push((None, self.all_namespaces));
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// One pass over the plan: how many changes of each op the filter keeps,
/// and the spread of bindings. The rows themselves are read again when they
/// are printed ([`each_row`], or where [`Selection::first`] says), so that
/// no list of a million rows is ever held.
#[derive(Debug, Default)]
pub struct Selection {
    /// Changes kept, per op.
    pub totals: BTreeMap<Op, usize>,
    pub spread: Spread,
    /// Changes that match the filter.
    pub matched: usize,
    /// Of each op, where the first changes kept are, as many as a table
    /// shows ([`Selection::keeping`]); none when every row is shown.
    pub first: BTreeMap<Op, Vec<usize>>,
    /// How many positions of each op `first` keeps.
    keep: usize,
}

impl Selection {
    /// A selection that keeps where the first `rows` changes of each op
    /// are (`None`: all rows are shown, and read again in a walk).
    pub fn keeping(rows: Option<usize>) -> Self {
        Selection {
            keep: rows.unwrap_or(0),
            ..Selection::default()
        }
    }

    /// Counts `change`, at `at` ([`Changes::each_change_at`]), if the
    /// filter keeps it.
    pub fn add_at(&mut self, at: usize, change: &Change, selector: &Selector) {
        if self.add(change, selector) {
            let first = self.first.entry(change.op()).or_default();
            if first.len() < self.keep {
                first.push(at);
            }
        }
    }

    /// The positions of the rows of `op` a table of `rows` rows shows, when
    /// they were kept.
    pub fn first_of(&self, op: Op, rows: Option<usize>) -> Option<&[usize]> {
        match rows {
            Some(rows) if rows <= self.keep => {
                Some(self.first.get(&op).map_or(&[][..], |v| v.as_slice()))
            }
            _ => None,
        }
    }

    /// Counts `change`, if the filter keeps it; whether it does.
    pub fn add(&mut self, change: &Change, selector: &Selector) -> bool {
        let op = change.op();
        if !selector.op_matches(op) {
            return false;
        }
        let row = Row::of(change);
        if !selector.matches(&row) {
            return false;
        }
        self.matched += 1;
        if let Row::Binding(b) = &row {
            self.spread.add(b);
        }
        *self.totals.entry(op).or_default() += 1;
        true
    }

    pub fn bindings(&self) -> usize {
        self.totals.get(&Op::AddBinding).copied().unwrap_or(0)
    }
}

/// Gives the rows of `op` that the filter keeps, in the plan's order, to
/// `f` until it says `false`.
pub fn each_row(
    changes: &dyn Changes,
    selector: &Selector,
    op: Op,
    f: &mut dyn FnMut(Row<'_>) -> bool,
) -> std::io::Result<()> {
    changes.each_change_of(op, &mut |change| {
        let row = Row::of(change);
        !selector.matches(&row) || f(row)
    })
}

/// A reason without the identifiers it quotes: `group `sales` is in
/// conflict` and `group `web` is in conflict` are one reason, `group `…` is
/// in conflict`, so that a thousand conflicts summarise in a few lines.
pub fn reason_class(reason: &str) -> Cow<'_, str> {
    if !reason.contains('`') {
        return Cow::Borrowed(reason);
    }
    let mut out = String::with_capacity(reason.len());
    for (i, part) in reason.split('`').enumerate() {
        out.push_str(if i % 2 == 1 { "`…`" } else { part });
    }
    Cow::Owned(out)
}

/// Findings counted by the class of their reason, most frequent first.
pub fn by_reason(findings: &[Finding]) -> Vec<(Cow<'_, str>, usize)> {
    let mut counts: HashMap<Cow<str>, usize> = HashMap::new();
    for f in findings {
        *counts.entry(reason_class(&f.reason)).or_default() += 1;
    }
    let mut out: Vec<_> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn permissions_are_grouped_by_action_set_in_reading_order() {
        let perms = json!({
            "FLOW": ["DELETE", "READ", "UPDATE", "CREATE"],
            "NAMESPACE": ["READ"],
            "SECRET": ["READ"],
            "KVSTORE": ["CREATE", "READ", "UPDATE", "DELETE"],
            "AUDITLOG": [],
        });
        let g = grants(Some(&perms));
        assert_eq!(
            g,
            vec![
                Grant {
                    actions: vec!["READ", "CREATE", "UPDATE", "DELETE"],
                    permissions: vec!["FLOW", "KVSTORE"],
                },
                Grant {
                    actions: vec!["READ"],
                    permissions: vec!["NAMESPACE", "SECRET"],
                },
            ]
        );
        assert!(grants(Some(&json!("nonsense"))).is_empty());
    }

    #[test]
    fn a_namespace_filter_keeps_the_bindings_that_reach_the_namespace() {
        let f = Filter {
            namespace: Some("company.data".into()),
            ..Filter::default()
        };
        assert!(f.namespace_matches(Some("company.data")));
        assert!(f.namespace_matches(Some("company")), "a parent reaches it");
        assert!(f.namespace_matches(None), "all namespaces reach it");
        assert!(
            !f.namespace_matches(Some("company.data.raw")),
            "a child does not"
        );
        assert!(!f.namespace_matches(Some("company.database")));
        assert!(!f.namespace_matches(Some("comp")));
    }

    /// The inheritance rule, the slow and obvious way: the namespaces a
    /// binding on `target`'s ancestors reach are `target`'s dot-separated
    /// prefixes.
    fn reaches_by_brute_force(binding: Option<&str>, target: &str) -> bool {
        let Some(binding) = binding else {
            return true;
        };
        let parts: Vec<&str> = target.split('.').collect();
        (1..=parts.len()).any(|n| parts[..n].join(".") == binding)
    }

    proptest::proptest! {
        #[test]
        fn inheritance_agrees_with_the_brute_force_model(
            binding in proptest::option::of("[ab.]{0,6}"),
            target in "[ab.]{0,6}",
        ) {
            proptest::prop_assert_eq!(
                reaches(binding.as_deref(), &target),
                reaches_by_brute_force(binding.as_deref(), &target),
                "binding {:?} target {:?}", binding, target
            );
        }
    }

    #[test]
    fn reasons_are_summarised_without_their_identifiers() {
        assert_eq!(
            reason_class("group `sales` is in conflict"),
            "group `…` is in conflict"
        );
        assert_eq!(reason_class("user deleted"), "user deleted");
        let finding = |reason: &str| Finding::new(Kind::Binding, "k", reason);
        let findings = [
            finding("role `a` is in conflict"),
            finding("user missing"),
            finding("role `b` is in conflict"),
        ];
        assert_eq!(
            by_reason(&findings),
            vec![
                (Cow::Borrowed("role `…` is in conflict"), 2),
                (Cow::Borrowed("user missing"), 1)
            ]
        );
    }

    #[test]
    fn a_name_equal_to_its_id_is_not_repeated() {
        assert_eq!(Named::new("ci-bot", Some("ci-bot")).name, None);
        assert_eq!(Named::new("g", Some("")).label(), "g");
        assert_eq!(Named::new("g", Some("Group")).label(), "Group");
    }
}
