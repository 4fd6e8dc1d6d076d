//! `show --format json`: one JSON object per line (JSON Lines), each tagged
//! by `row`: `plan` first, then `attention`, `conflict`, `skipped`,
//! `change` and, with `--diff`, `access` rows; `more` says what a limit left
//! out. The same filters apply as for the tables; names sit next to ids.
//! Written row by row.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::access::{Gain, Report, Tenant, Through};
use super::attention::{self, StreamedFacts, Subject};
use super::model::{each_row, Named, Row, Selection, Selector};
use super::show::{Failed, ShowOptions};
use crate::connect::redact;
use crate::plan::{Changes, Plan};
use crate::sync::Finding;

/// Writes `value` as one line of JSON. What reaches a terminal must not
/// move its cursor, reorder its text or hide part of it: serde_json escapes
/// the C0 controls, and this escapes the rest of what
/// [`crate::escape::is_escaped`] names (C1 controls, bidirectional marks,
/// invisible characters) the JSON way, `\u009b`, so the line stays valid
/// JSON with the same meaning.
pub fn write_json_line(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    let text = value.to_string();
    if text.chars().any(crate::escape::is_escaped) {
        let mut escaped = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if crate::escape::is_escaped(c) {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    escaped.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                escaped.push(c);
            }
        }
        writeln!(out, "{escaped}")
    } else {
        writeln!(out, "{text}")
    }
}

fn name(n: &Named) -> Value {
    n.name.map_or(Value::Null, |s| Value::String(s.to_string()))
}

fn finding(tag: &str, f: &Finding) -> Value {
    let mut row = Map::new();
    row.insert("row".into(), json!(tag));
    if let Ok(Value::Object(fields)) = serde_json::to_value(f) {
        row.extend(fields);
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

fn more(out: &mut dyn Write, section: &str, shown: usize, total: usize) -> io::Result<()> {
    if total > shown {
        write_json_line(
            out,
            &json!({"row": "more", "section": section, "shown": shown, "omitted": total - shown}),
        )?;
    }
    Ok(())
}

fn gain_value(gain: &Gain) -> Value {
    match gain {
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
    }
}

pub fn rows(
    out: &mut dyn Write,
    plan: &Plan,
    changes: &dyn Changes,
    computed_digest: &str,
    options: &ShowOptions,
    tenant: Option<&Tenant>,
) -> io::Result<()> {
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
    let mut plan_row = json!({
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
            "live": tenant.is_some(),
    });
    // Only a revert plan has it, as in the plan file.
    if let Some(original) = &plan.reverts {
        plan_row["reverts"] = json!(original);
    }
    write_json_line(out, &plan_row)?;
    if let Some(verdict) = crate::signing::author(plan) {
        let (signature, key) = match verdict {
            Ok(v) => ("valid", Some(v.fingerprint)),
            Err(_) => ("bad", None),
        };
        write_json_line(
            out,
            &json!({"row": "author_signature", "signature": signature, "key": key}),
        )?;
    }
    let selector = Selector::new(changes, &options.filter)?;
    // Every member that joins a group is named: `joining_members`.
    let gathered = StreamedFacts::gather(plan, changes, usize::MAX)?;
    let facts = gathered.facts(plan);
    let (mut shown, mut total, mut result) = (0usize, 0usize, Ok(()));
    // The walk that finds what needs attention also counts the changes the
    // filter keeps, and where the first of each op are.
    let mut selection = Selection::keeping(limit);
    let mut each = |at: usize, change: &crate::sync::Change| {
        selection.add_at(at, change, &selector);
    };
    attention::items_walking(plan, changes, &selector, &facts, &mut each, &mut |item| {
        total += 1;
        if shown >= take || result.is_err() {
            return true;
        }
        shown += 1;
        let (who_type, who, members) = match &item.subject {
            Subject::User(u, _) => ("user", Some(*u), Vec::new()),
            Subject::Group(g, m) => ("group", Some(*g), m.first.iter().map(|m| m.id).collect()),
            Subject::Document(kind, n) => (kind.as_str(), Some(*n), Vec::new()),
            Subject::Unknown => ("unknown", None, Vec::new()),
        };
        let risks: Vec<&str> = item.risks.iter().map(|r| r.as_str()).collect();
        let row = json!({
            "row": "attention", "why": risks, "admin_permissions": item.admin,
            "subject_type": who_type, "subject_id": who.map(|w| w.id),
            "subject_name": who.and_then(|w| w.name), "joining_members": members,
            "role_id": item.role.map(|(r, _)| r.id), "role_name": item.role.and_then(|(r, _)| r.name),
            "namespace": item.role.and_then(|(_, ns)| ns),
            "all_namespaces": item.role.is_some_and(|(_, ns)| ns.is_none()),
            "joins_group": item.joins.map(|g| g.id),
            "key": item.key, "reason": item.reason,
        });
        result = write_json_line(out, &row);
        true
    })?;
    result?;
    more(out, "attention", shown, total)?;
    for (tag, list) in [("conflict", &plan.conflicts), ("skipped", &plan.skipped)] {
        let keep = |f: &&Finding| options.filter.is_empty() || selector.matches_finding(f);
        let total = list.iter().filter(keep).count();
        for f in list.iter().filter(keep).take(take) {
            write_json_line(out, &finding(tag, f))?;
        }
        more(out, tag, total.min(take), total)?;
    }
    for (op, total) in &selection.totals {
        let (mut n, failed) = (0, Failed::default());
        let mut written = Ok(());
        let mut row = |row: Row| {
            n += 1;
            if n > take {
                return false;
            }
            written = write_json_line(out, &change(&row));
            written.is_ok()
        };
        failed.keep(match selection.first_of(*op, limit) {
            Some(first) => {
                let mut more = true;
                changes.changes_at(first, &mut |change| {
                    more = more && row(Row::of(change));
                })
            }
            None => each_row(changes, &selector, *op, &mut row),
        });
        written?;
        failed.check()?;
        more(out, op.as_str(), (*total).min(take), *total)?;
    }
    if options.diff {
        let report = Report::new(changes, &selector, tenant)?;
        let shown = report.shown(limit);
        let mut shown_gains = 0;
        for (listed, n) in &shown {
            let user = listed.user;
            if tenant.is_some() {
                for held in report.before(listed) {
                    let mut row = json!({
                        "row": "access", "user_id": user.id, "username": name(&user), "now": true,
                    });
                    if let (Value::Object(row), Value::Object(extra)) =
                        (&mut row, gain_value(&held))
                    {
                        row.extend(extra);
                    }
                    write_json_line(out, &row)?;
                }
            }
            let rows: Vec<Value> = report.with_gains(changes, listed, |gains| {
                gains.iter().take(*n).map(gain_value).collect()
            })?;
            for gain in rows {
                shown_gains += 1;
                let mut row = json!({
                    "row": "access", "user_id": user.id, "username": name(&user), "now": false,
                });
                if let (Value::Object(row), Value::Object(mut extra)) = (&mut row, gain) {
                    // A revert plan's access rows are losses.
                    if plan.reverts.is_some() {
                        if let Some(what) = extra.remove("gains") {
                            extra.insert("loses".into(), what);
                        }
                    }
                    row.extend(extra);
                }
                write_json_line(out, &row)?;
            }
        }
        more(out, "access", shown_gains, report.total_gains)?;
    }
    out.flush()
}
