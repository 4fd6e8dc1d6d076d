//! Stores that exercise every rule and reason of docs/rules.md.

use serde_json::{json, Value};
use sync_access::sync::{RawDoc, Snapshot};

fn push(list: &mut Vec<RawDoc>, key: &str, value: Value) {
    list.push(RawDoc::new(key, value.to_string()));
}

fn push_raw(list: &mut Vec<RawDoc>, key: &str, text: &str) {
    list.push(RawDoc::new(key, text));
}

pub const SECRET_HASH: &str = "FAKEHASH-s3cr3t-do-not-leak";

/// Every outcome: planned, present, skipped for each reason, conflicts of
/// every kind, conflicts through dependencies, malformed documents.
pub fn rules() -> Snapshot {
    let mut r = Snapshot::default();
    push(
        &mut r.tenants,
        "default",
        json!({"id": "default", "name": "Default", "deleted": false}),
    );
    push(
        &mut r.tenants,
        "other",
        json!({"id": "other", "name": "Other", "deleted": false}),
    );
    push(
        &mut r.tenants,
        "gone",
        json!({"id": "gone", "name": "Gone", "deleted": true}),
    );

    let perms = json!({"FLOW": ["READ", "UPDATE"], "EXECUTION": ["READ"]});
    // Roles.
    push(
        &mut r.roles,
        "admin",
        json!({"id": "admin", "name": "Admin", "permissions": {"FLOW": ["READ","CREATE","UPDATE","DELETE"]}, "deleted": false}),
    );
    push(
        &mut r.roles,
        "viewer",
        json!({"id": "viewer", "name": "Viewer", "permissions": perms, "deleted": false}),
    );
    // Present: same name, same permissions as sets (order, duplicates, empty permission).
    push(
        &mut r.roles,
        "default_viewer",
        json!({"id": "viewer", "tenantId": "default", "name": "Viewer",
        "permissions": {"EXECUTION": ["READ"], "FLOW": ["UPDATE", "READ", "READ"], "SECRET": []}, "deleted": false}),
    );
    // Conflict: same id, other permissions.
    push(
        &mut r.roles,
        "editor",
        json!({"id": "editor", "name": "Editor", "permissions": perms, "deleted": false}),
    );
    push(
        &mut r.roles,
        "default_editor",
        json!({"id": "editor", "tenantId": "default", "name": "Editor",
        "permissions": {"FLOW": ["READ"]}, "deleted": false}),
    );
    // Conflict: a tenant role has the name with another id.
    push(
        &mut r.roles,
        "ops",
        json!({"id": "ops", "name": "Operator", "permissions": perms, "deleted": false}),
    );
    push(
        &mut r.roles,
        "default_operator",
        json!({"id": "operator", "tenantId": "default", "name": "Operator",
        "permissions": perms, "deleted": false}),
    );
    // Conflict: the key is held by a deleted document.
    push(
        &mut r.roles,
        "auditor",
        json!({"id": "auditor", "name": "Auditor", "permissions": perms, "deleted": false}),
    );
    push(
        &mut r.roles,
        "default_auditor",
        json!({"id": "auditor", "tenantId": "default", "name": "Auditor",
        "permissions": perms, "deleted": true}),
    );
    // Deleted legacy role: not copied; bindings to it are skipped.
    push(
        &mut r.roles,
        "retired",
        json!({"id": "retired", "name": "Retired", "permissions": perms, "deleted": true}),
    );
    // Malformed: permissions is not an object.
    push(
        &mut r.roles,
        "broken-role",
        json!({"id": "broken-role", "name": "Broken", "permissions": "ALL", "deleted": false}),
    );
    // Another tenant's role is ignored.
    push(
        &mut r.roles,
        "other_admin",
        json!({"id": "admin", "tenantId": "other", "name": "Admin", "permissions": {}, "deleted": false}),
    );

    // Groups.
    push(
        &mut r.groups,
        "data",
        json!({"id": "data", "name": "Data", "description": "Data team", "deleted": false}),
    );
    push(
        &mut r.groups,
        "web",
        json!({"id": "web", "name": "Web", "deleted": false}),
    );
    push(
        &mut r.groups,
        "default_web",
        json!({"id": "web", "tenantId": "default", "name": "Web", "deleted": false}),
    );
    push(
        &mut r.groups,
        "sales",
        json!({"id": "sales", "name": "Sales", "deleted": false}),
    );
    push(
        &mut r.groups,
        "default_sales",
        json!({"id": "sales", "tenantId": "default", "name": "Sales EMEA", "deleted": false}),
    );
    push(
        &mut r.groups,
        "old",
        json!({"id": "old", "name": "Old", "deleted": true}),
    );
    push(
        &mut r.groups,
        "null-tenant",
        json!({"id": "null-tenant", "tenantId": null, "name": "Null tenant", "deleted": false}),
    );
    push_raw(
        &mut r.groups,
        "bad-json",
        "{\"id\": \"bad-json\", \"name\": 7, \"deleted\": false}",
    );

    // Users.
    let auths = json!([{"type": "PASSWORD", "password": SECRET_HASH}]);
    push(
        &mut r.users,
        "alice",
        json!({"id": "alice", "username": "alice@example.com", "groups": ["data", "web"],
        "groupList": [{"groupId": "data", "membership": "OWNER"}], "auths": auths, "deleted": false}),
    );
    // Present membership and a conflicting one.
    push(
        &mut r.users,
        "bob",
        json!({"id": "bob", "username": "bob@example.com", "groups": ["web", "data"],
        "groupList": [{"tenantId": "default", "groupId": "web", "membership": "MEMBER"},
                      {"tenantId": "default", "groupId": "data", "membership": "OWNER"}], "auths": auths, "deleted": false}),
    );
    // Memberships to a deleted group, a missing one and a group in conflict.
    push(
        &mut r.users,
        "carol",
        json!({"id": "carol", "username": "carol@example.com", "groups": ["old", "ghost", "sales", "null-tenant"],
        "auths": auths, "deleted": false}),
    );
    push(
        &mut r.users,
        "dan",
        json!({"id": "dan", "username": "dan@example.com", "groups": ["data"], "auths": auths, "deleted": true}),
    );
    push(
        &mut r.users,
        "svc",
        json!({"id": "svc", "username": "svc", "type": "SERVICE_ACCOUNT", "auths": auths, "deleted": false}),
    );
    push(
        &mut r.users,
        "eve",
        json!({"id": "eve", "username": "eve", "groups": "data", "auths": auths, "deleted": false}),
    );

    // Bindings.
    let b = |id: &str, kind: &str, ext: &str, role: &str, ns: Option<&str>| {
        let mut v = json!({"id": id, "type": kind, "externalId": ext, "roleId": role});
        if let Some(ns) = ns {
            v["namespaceId"] = json!(ns);
        }
        v["deleted"] = json!(false);
        v
    };
    push(
        &mut r.bindings,
        "b-plan-user",
        b(
            "b-plan-user",
            "USER",
            "alice",
            "admin",
            Some("company.data"),
        ),
    );
    push(
        &mut r.bindings,
        "b-plan-group",
        b("b-plan-group", "GROUP", "data", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-present",
        b("b-present", "GROUP", "web", "viewer", Some("company.web")),
    );
    push(
        &mut r.bindings,
        "default_manual",
        json!({"id": "manual", "tenantId": "default", "type": "GROUP",
        "externalId": "web", "roleId": "viewer", "namespaceId": "company.web", "deleted": false}),
    );
    push(
        &mut r.bindings,
        "b-own-conflict",
        b("b-own-conflict", "USER", "svc", "viewer", None),
    );
    push(
        &mut r.bindings,
        "default_b-own-conflict",
        json!({"id": "b-own-conflict", "tenantId": "default", "type": "USER",
        "externalId": "svc", "roleId": "admin", "deleted": false}),
    );
    push(
        &mut r.bindings,
        "b-role-conflict",
        b("b-role-conflict", "USER", "alice", "editor", None),
    );
    push(
        &mut r.bindings,
        "b-group-conflict",
        b("b-group-conflict", "GROUP", "sales", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-user-deleted",
        b("b-user-deleted", "USER", "dan", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-user-missing",
        b("b-user-missing", "USER", "zed", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-group-deleted",
        b("b-group-deleted", "GROUP", "old", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-group-missing",
        b("b-group-missing", "GROUP", "ghost", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-role-deleted",
        b("b-role-deleted", "USER", "alice", "retired", None),
    );
    push(
        &mut r.bindings,
        "b-role-missing",
        b("b-role-missing", "USER", "alice", "nobody", None),
    );
    push(
        &mut r.bindings,
        "b-role-malformed",
        b("b-role-malformed", "USER", "alice", "broken-role", None),
    );
    push(
        &mut r.bindings,
        "b-unknown-type",
        b("b-unknown-type", "ROBOT", "alice", "viewer", None),
    );
    push(
        &mut r.bindings,
        "b-deleted",
        json!({"id": "b-deleted", "type": "USER", "externalId": "alice", "roleId": "viewer", "deleted": true}),
    );
    r
}
