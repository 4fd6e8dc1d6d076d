//! `show --format json`: one JSON object per line (JSON Lines), each tagged
//! by `row`: `plan` first, then `conflict`, `skipped`, `change` and, with
//! `--diff`, `access` rows; `more` says what a limit left out. The same
//! filters apply as for the tables; names sit next to ids.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::access::{self, Gain, Through};
use super::model::{Named, Row, Selection, Selector};
use super::show::ShowOptions;
use crate::connect::redact;
use crate::plan::Plan;
use crate::sync::Finding;

fn push(out: &mut String, row: Value) {
    let _ = writeln!(out, "{row}");
}

fn name(n: &Named) -> Value {
    n.name.map_or(Value::Null, |s| Value::String(s.to_string()))
}

fn finding(tag: &str, f: &Finding) -> Value {
    let mut row = Map::new();
    row.insert("row".into(), json!(tag));
    row.insert("kind".into(), json!(f.kind.as_str()));
    row.insert("key".into(), json!(f.key));
    if let Some(g) = &f.group_id {
        row.insert("group_id".into(), json!(g));
    }
    row.insert("reason".into(), json!(f.reason));
    if let Some(d) = &f.detail {
        row.insert("detail".into(), json!(d));
    }
    Value::Object(row)
}

fn change(row: &Row) -> Value {
    match row {
        Row::Tenant { key, name } => json!({
            "row": "change", "op": "create_tenant", "key": key, "name": name,
        }),
        Row::Role {
            key,
            role,
            description,
            grants,
        } => {
            let permissions: Map<String, Value> = grants
                .iter()
                .flat_map(|g| {
                    g.permissions
                        .iter()
                        .map(move |p| (p.to_string(), json!(g.actions)))
                })
                .collect();
            json!({
                "row": "change", "op": "add_role", "key": key,
                "role_id": role.id, "role_name": name(role),
                "description": description, "permissions": permissions,
            })
        }
        Row::Group {
            key,
            group,
            description,
        } => json!({
            "row": "change", "op": "add_group", "key": key,
            "group_id": group.id, "group_name": name(group), "description": description,
        }),
        Row::Membership(m) => json!({
            "row": "change", "op": "add_membership", "key": m.key,
            "user_id": m.user.id, "username": name(&m.user),
            "group_id": m.group.id, "group_name": name(&m.group),
            "membership": m.membership.as_str(),
        }),
        Row::Binding(b) => json!({
            "row": "change", "op": "add_binding", "key": b.key,
            "subject_type": b.subject_type, "subject_id": b.subject.id, "subject_name": name(&b.subject),
            "role_id": b.role.id, "role_name": name(&b.role),
            "namespace": b.namespace,
        }),
    }
}

fn more(out: &mut String, section: &str, shown: usize, total: usize) {
    if total > shown {
        push(
            out,
            json!({"row": "more", "section": section, "shown": shown, "omitted": total - shown}),
        );
    }
}

pub fn rows(plan: &Plan, computed_digest: &str, options: &ShowOptions) -> String {
    let mut out = String::new();
    let limit = options.limit;
    let take = limit.unwrap_or(usize::MAX);
    let approvals: Vec<Value> = plan
        .approvals
        .iter()
        .map(|a| {
            let (signature, key) = match crate::signing::approval(a) {
                None => ("none", None),
                Some(Ok(v)) => ("valid", Some(v.fingerprint)),
                Some(Err(_)) => ("bad", None),
            };
            json!({"by": a.by, "at": a.at, "comment": a.comment, "counts": a.digest == plan.digest,
                "signature": signature, "key": key})
        })
        .collect();
    push(
        &mut out,
        json!({
            "row": "plan",
            "format": plan.format,
            "tenant": plan.tenant,
            "source": {
                "backend": plan.source.backend,
                "database": redact(&plan.source.database),
                "identity": redact(&plan.source.identity),
            },
            "created_at": plan.created_at,
            "created_by": plan.created_by,
            "tool_version": plan.tool_version,
            "digest": plan.digest,
            "computed_digest": computed_digest,
            "digest_matches": computed_digest == plan.digest,
            "applyable": plan.applyable,
            "approvals": approvals,
            "summary": plan.summary,
        }),
    );
    if let Some(verdict) = crate::signing::author(plan) {
        let (signature, key) = match verdict {
            Ok(v) => ("valid", Some(v.fingerprint)),
            Err(_) => ("bad", None),
        };
        push(
            &mut out,
            json!({"row": "author_signature", "signature": signature, "key": key}),
        );
    }
    let selector = Selector::new(plan, &options.filter);
    for (tag, list) in [("conflict", &plan.conflicts), ("skipped", &plan.skipped)] {
        let shown: Vec<&Finding> = list
            .iter()
            .filter(|f| options.filter.is_empty() || selector.matches_finding(f))
            .collect();
        for f in shown.iter().take(take) {
            push(&mut out, finding(tag, f));
        }
        more(&mut out, tag, shown.len().min(take), shown.len());
    }
    let selection = Selection::of(plan, &selector, limit);
    for (op, section) in &selection.sections {
        for row in &section.rows {
            push(&mut out, change(row));
        }
        more(&mut out, op.as_str(), section.rows.len(), section.total);
    }
    if options.diff {
        let report = access::report(plan, &selector, limit);
        for user in &report.users {
            for gain in &user.gains {
                let mut row = json!({
                    "row": "access", "user_id": user.user.id, "username": name(&user.user),
                });
                let extra = match gain {
                    Gain::Joins {
                        group,
                        membership,
                        group_is_new,
                    } => json!({
                        "gains": "membership", "membership": membership.as_str(),
                        "group_id": group.id, "group_name": name(group),
                        "group_is_new": group_is_new,
                    }),
                    Gain::Role {
                        role,
                        namespace,
                        through,
                        binding,
                    } => {
                        let (via, group) = match through {
                            Through::Direct => ("direct", None),
                            Through::Group(g) => ("group", Some(g)),
                        };
                        json!({
                            "gains": "role", "role_id": role.id, "role_name": name(role),
                            "namespace": namespace, "through": via,
                            "group_id": group.map(|g| g.id), "group_name": group.and_then(|g| g.name),
                            "binding": binding,
                        })
                    }
                };
                if let (Value::Object(row), Value::Object(extra)) = (&mut row, extra) {
                    row.extend(extra);
                }
                push(&mut out, row);
            }
        }
        more(&mut out, "access", report.shown_gains, report.total_gains);
    }
    out
}
