//! The demo store: a small, realistic pre-multi-tenancy instance, and a
//! large synthetic one (deterministic for a seed) for benchmarks.

use serde_json::{json, Value};

use crate::error::Result;
use crate::store::{Store, Table};
use crate::sync::{RawDoc, Snapshot};

/// Adds a row holding `value`'s JSON text.
fn push(list: &mut Vec<RawDoc>, key: impl Into<String>, value: Value) {
    list.push(RawDoc::new(key, value.to_string()));
}

const CRUD: [&str; 4] = ["READ", "CREATE", "UPDATE", "DELETE"];

/// A fake password hash: realistic in shape, marked so that tests can prove
/// it never leaks.
fn auths(user: &str) -> Value {
    json!([{
        "type": "PASSWORD",
        "uid": format!("{user}-password"),
        "password": format!("$argon2id$v=19$m=65536,t=3,p=4$FAKEHASH{user}salt$FAKEHASH{user}0123456789abcdef"),
    }])
}

fn role(id: &str, name: &str, description: &str, permissions: Value, is_default: bool) -> Value {
    let mut doc =
        json!({"id": id, "name": name, "description": description, "permissions": permissions});
    if is_default {
        doc["isDefault"] = json!(true);
    }
    doc["deleted"] = json!(false);
    doc
}

fn demo_roles() -> Vec<Value> {
    let all: serde_json::Map<String, Value> = [
        "FLOW",
        "EXECUTION",
        "TEMPLATE",
        "NAMESPACE",
        "KVSTORE",
        "SECRET",
        "USER",
        "GROUP",
        "ROLE",
        "BINDING",
        "AUDITLOG",
        "SETTING",
    ]
    .iter()
    .map(|p| (p.to_string(), json!(CRUD)))
    .collect();
    vec![
        role("admin", "Admin", "Full access", Value::Object(all), false),
        role(
            "developer",
            "Developer",
            "Builds and runs flows",
            json!({"FLOW": CRUD, "EXECUTION": CRUD, "TEMPLATE": CRUD, "NAMESPACE": ["READ"], "KVSTORE": CRUD, "SECRET": ["READ"]}),
            false,
        ),
        role(
            "editor",
            "Editor",
            "Edits flows, cannot delete them",
            json!({"FLOW": ["READ", "CREATE", "UPDATE"], "EXECUTION": ["READ"], "NAMESPACE": ["READ"]}),
            false,
        ),
        role(
            "launcher",
            "Launcher",
            "Starts executions",
            json!({"FLOW": ["READ"], "EXECUTION": ["READ", "CREATE"]}),
            false,
        ),
        role(
            "viewer",
            "Viewer",
            "Read-only access",
            json!({"FLOW": ["READ"], "EXECUTION": ["READ"], "NAMESPACE": ["READ"], "TEMPLATE": ["READ"]}),
            true,
        ),
    ]
}

fn user(
    id: &str,
    first: &str,
    last: &str,
    kind: &str,
    groups: &[&str],
    group_list: Value,
    deleted: bool,
) -> Value {
    let mut doc = json!({"id": id, "username": format!("{id}@example.com"), "email": format!("{id}@example.com"),
        "firstName": first, "lastName": last, "type": kind});
    if kind == "SERVICE_ACCOUNT" {
        doc = json!({"id": id, "username": id, "type": kind, "description": "CI pipelines"});
    }
    if !groups.is_empty() {
        doc["groups"] = json!(groups);
    }
    if group_list != Value::Null {
        doc["groupList"] = group_list;
    }
    doc["auths"] = auths(id);
    doc["deleted"] = json!(deleted);
    doc
}

fn binding(
    id: &str,
    kind: &str,
    external: &str,
    role: &str,
    namespace: Option<&str>,
    deleted: bool,
) -> Value {
    let mut doc = json!({"id": id, "type": kind, "externalId": external, "roleId": role});
    if let Some(ns) = namespace {
        doc["namespaceId"] = json!(ns);
    }
    doc["deleted"] = json!(deleted);
    doc
}

/// The small demo: every outcome of docs/rules.md §5–§7 but conflicts.
pub fn small() -> Snapshot {
    let mut rows = Snapshot::default();
    push(
        &mut rows.tenants,
        "default",
        json!({"id": "default", "name": "Default", "deleted": false}),
    );
    for doc in demo_roles() {
        let id = doc["id"]
            .as_str()
            .expect("demo ids are strings")
            .to_string();
        push(&mut rows.roles, id, doc);
    }
    for (id, name, description, deleted) in [
        (
            "data-eng",
            "Data engineering",
            "Pipelines and warehouse",
            false,
        ),
        ("platform", "Platform", "Runs the Kestra platform", false),
        ("analytics", "Analytics", "Dashboards and reports", false),
        ("oncall", "On-call", "Restarts failed executions", false),
        ("old-team", "Old team", "Dissolved in 2024", true),
    ] {
        push(
            &mut rows.groups,
            id,
            json!({"id": id, "name": name, "description": description, "deleted": deleted}),
        );
    }
    let no_list = Value::Null;
    let users = [
        user(
            "alice",
            "Alice",
            "Martin",
            "STANDARD",
            &["data-eng"],
            json!([{"groupId": "platform", "membership": "OWNER"}]),
            false,
        ),
        user(
            "bob",
            "Bob",
            "Nguyen",
            "STANDARD",
            &["platform"],
            no_list.clone(),
            false,
        ),
        user(
            "carol",
            "Carol",
            "Diaz",
            "STANDARD",
            &["analytics", "old-team"],
            no_list.clone(),
            false,
        ),
        user(
            "dave",
            "Dave",
            "Okafor",
            "STANDARD",
            &["data-eng", "analytics"],
            no_list.clone(),
            false,
        ),
        user(
            "erin",
            "Erin",
            "Kowalski",
            "STANDARD",
            &["data-eng"],
            json!([{"groupId": "data-eng", "membership": "OWNER"}]),
            false,
        ),
        user(
            "frank",
            "Frank",
            "Moreau",
            "STANDARD",
            &["oncall"],
            no_list.clone(),
            true,
        ),
        user(
            "grace",
            "Grace",
            "Hopper",
            "STANDARD",
            &["oncall"],
            no_list.clone(),
            false,
        ),
        user(
            "heidi",
            "Heidi",
            "Larsen",
            "SUPER_ADMIN",
            &[],
            no_list.clone(),
            false,
        ),
        user(
            "ci-bot",
            "",
            "",
            "SERVICE_ACCOUNT",
            &[],
            no_list.clone(),
            false,
        ),
        user(
            "ivan",
            "Ivan",
            "Petrov",
            "STANDARD",
            &["reporting"],
            no_list.clone(),
            false,
        ),
        // An earlier, manual attempt already put judy in the tenant's analytics group.
        user(
            "judy",
            "Judy",
            "Chen",
            "STANDARD",
            &["analytics"],
            json!([{"tenantId": "default", "groupId": "analytics", "membership": "MEMBER"}]),
            false,
        ),
        user(
            "mallory",
            "Mallory",
            "Stone",
            "STANDARD",
            &[],
            no_list,
            false,
        ),
    ];
    for doc in users {
        let id = doc["id"]
            .as_str()
            .expect("demo ids are strings")
            .to_string();
        push(&mut rows.users, id, doc);
    }
    for doc in [
        binding("b-01", "USER", "heidi", "admin", None, false),
        binding("b-02", "GROUP", "platform", "admin", Some("company"), false),
        binding("b-03", "GROUP", "analytics", "viewer", None, false),
        binding(
            "b-04",
            "GROUP",
            "data-eng",
            "developer",
            Some("company.data"),
            false,
        ),
        binding(
            "b-05",
            "GROUP",
            "data-eng",
            "launcher",
            Some("company.marketing"),
            false,
        ),
        binding("b-06", "USER", "bob", "editor", Some("company.data"), false),
        binding("b-07", "USER", "ci-bot", "launcher", Some("company"), false),
        binding(
            "b-08",
            "USER",
            "frank",
            "developer",
            Some("company.data"),
            false,
        ),
        binding("b-09", "GROUP", "oncall", "launcher", None, false),
        binding(
            "b-10",
            "USER",
            "mallory",
            "viewer",
            Some("company.finance"),
            false,
        ),
        binding(
            "b-11",
            "GROUP",
            "old-team",
            "editor",
            Some("company.legacy"),
            false,
        ),
        binding("b-12", "USER", "grace", "auditor", None, false),
        binding("b-13", "USER", "zoe", "viewer", None, false),
        binding(
            "b-14",
            "USER",
            "dave",
            "editor",
            Some("company.analytics"),
            true,
        ),
    ] {
        let id = doc["id"]
            .as_str()
            .expect("demo ids are strings")
            .to_string();
        push(&mut rows.bindings, id, doc);
    }
    // The manual attempt: the viewer role, the analytics group and its
    // binding are already in the tenant.
    let mut viewer = demo_roles().pop().expect("viewer is the last demo role");
    viewer["tenantId"] = json!("default");
    push(&mut rows.roles, "default_viewer", viewer);
    push(
        &mut rows.groups,
        "default_analytics",
        json!({"id": "analytics", "tenantId": "default", "name": "Analytics", "deleted": false}),
    );
    push(
        &mut rows.bindings,
        "default_manual-1",
        json!({"id": "manual-1", "tenantId": "default", "type": "GROUP", "externalId": "analytics", "roleId": "viewer", "deleted": false}),
    );
    rows
}

/// Inserts `rows` in the transaction [`Store::begin_demo`] opened;
/// returns the counts.
pub async fn write(store: &mut Store, rows: Snapshot) -> Result<[usize; 5]> {
    for (table, list) in [
        (Table::Tenants, &rows.tenants),
        (Table::Users, &rows.users),
        (Table::Groups, &rows.groups),
        (Table::Roles, &rows.roles),
        (Table::Bindings, &rows.bindings),
    ] {
        if !list.is_empty() {
            store.insert_rows(table, list).await?;
        }
    }
    Ok([
        rows.tenants.len(),
        rows.users.len(),
        rows.groups.len(),
        rows.roles.len(),
        rows.bindings.len(),
    ])
}

/// Loads rows into a store whose IAM tables exist, one transaction per
/// table (tests); returns the counts.
pub async fn load(store: &mut Store, rows: Snapshot) -> Result<[usize; 5]> {
    for (table, list) in [
        (Table::Tenants, &rows.tenants),
        (Table::Users, &rows.users),
        (Table::Groups, &rows.groups),
        (Table::Roles, &rows.roles),
        (Table::Bindings, &rows.bindings),
    ] {
        store.load(table, list).await?;
    }
    Ok([
        rows.tenants.len(),
        rows.users.len(),
        rows.groups.len(),
        rows.roles.len(),
        rows.bindings.len(),
    ])
}

/// The size of a synthetic store.
#[derive(Debug, Clone)]
pub struct Shape {
    pub users: usize,
    pub bindings_per_user: usize,
    pub memberships_per_user: usize,
    pub seed: u64,
}

/// SplitMix64: tiny, fast and deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Rows are generated and loaded in chunks so memory stays flat.
const CHUNK_USERS: usize = 5_000;

/// A large legacy store: `users` users (1% deleted), one group per 20 users,
/// the five demo roles plus 20 custom ones, `bindings_per_user` bindings per
/// user (a tenth of them to groups, 1% dangling) and `memberships_per_user`
/// memberships per user; the tenant `default` exists and is empty. Written
/// in the transaction [`Store::begin_demo`] opened, in chunks of users.
pub async fn load_synthetic(store: &mut Store, shape: &Shape) -> Result<[usize; 5]> {
    let mut rng = Rng(shape.seed);
    let mut counts = [0usize; 5];
    let mut fixed = Snapshot::default();
    push(
        &mut fixed.tenants,
        "default",
        json!({"id": "default", "name": "Default", "deleted": false}),
    );
    let mut role_ids: Vec<String> = Vec::new();
    for doc in demo_roles() {
        let id = doc["id"]
            .as_str()
            .expect("demo ids are strings")
            .to_string();
        role_ids.push(id.clone());
        push(&mut fixed.roles, id, doc);
    }
    for i in 0..20 {
        let id = format!("custom-{i:02}");
        let permissions = json!({"FLOW": ["READ", "UPDATE"], "EXECUTION": ["READ", "CREATE"], "NAMESPACE": ["READ"]});
        push(
            &mut fixed.roles,
            &id,
            role(
                &id,
                &format!("Custom {i:02}"),
                "Generated",
                permissions,
                false,
            ),
        );
        role_ids.push(id);
    }
    let group_count = (shape.users / 20).max(5);
    for g in 0..group_count {
        let id = format!("g{g:06}");
        push(
            &mut fixed.groups,
            &id,
            json!({"id": id, "name": format!("Group {g}"), "description": "Generated", "deleted": false}),
        );
    }
    let fixed_counts = write(store, fixed).await?;
    for (total, n) in counts.iter_mut().zip(fixed_counts) {
        *total += n;
    }
    let mut start = 0;
    while start < shape.users {
        let end = (start + CHUNK_USERS).min(shape.users);
        let mut chunk = Snapshot::default();
        for u in start..end {
            let id = format!("u{u:07}");
            let mut groups: Vec<String> = (0..shape.memberships_per_user)
                .map(|_| format!("g{:06}", rng.below(group_count)))
                .collect();
            groups.sort();
            groups.dedup();
            let deleted = rng.below(100) == 0;
            let doc = json!({"id": id, "username": format!("{id}@example.com"), "email": format!("{id}@example.com"),
                "type": "STANDARD", "groups": groups, "auths": auths(&id), "deleted": deleted});
            push(&mut chunk.users, &id, doc);
            for b in 0..shape.bindings_per_user {
                let binding_id = format!("b{u:07}-{b:02}");
                let role = if rng.below(100) == 0 {
                    "missing-role".to_string()
                } else {
                    role_ids[rng.below(role_ids.len())].clone()
                };
                let namespace = format!("company.team{:02}", rng.below(50));
                let doc = if b % 10 == 9 {
                    binding(
                        &binding_id,
                        "GROUP",
                        &format!("g{:06}", rng.below(group_count)),
                        &role,
                        Some(&namespace),
                        false,
                    )
                } else {
                    binding(&binding_id, "USER", &id, &role, Some(&namespace), false)
                };
                push(&mut chunk.bindings, &binding_id, doc);
            }
        }
        let chunk_counts = write(store, chunk).await?;
        for (total, n) in counts.iter_mut().zip(chunk_counts) {
            *total += n;
        }
        start = end;
    }
    Ok(counts)
}
