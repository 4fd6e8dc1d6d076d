//! Rendering: text for humans, from plans and records. Pure functions that
//! return strings, so that every output can be snapshot-tested.
//!
//! `show` is built in layers: [`model`] reads a plan's changes as readable
//! rows, [`access`] derives what each user gains (Kestra's namespace
//! inheritance included), [`attention`] picks the risky grants, [`show`]
//! arranges them in blocks, and [`doc`] prints each block as it comes, for
//! a terminal or as markdown ([`json`] writes rows for tools instead).

mod access;
mod attention;
mod doc;
mod json;
mod model;
mod show;

use std::io::{self, Write};

use serde_json::Value;

pub use access::Tenant;
pub use doc::{clean, Style};
pub use json::write_json_line;
pub use model::Filter;
#[cfg(test)]
pub use show::show;
pub use show::{
    count_while_checking, counts_while_checking, show_changes, show_counted, CountedEarly, Format,
    ShowOptions,
};

use crate::plan::Plan;
use crate::store::HistoryRecord;
use crate::sync::Change;

/// Most lines of a stale diff printed before "... and N more".
const MAX_DIFF_LINES: usize = 400;

/// The first 12 hex digits of a digest, for display. A plan file's digest
/// can be any string (a hostile or broken file is shown too, with a
/// warning): cut on a character boundary, never inside one.
pub(crate) fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let end = hex.char_indices().nth(12).map_or(hex.len(), |(i, _)| i);
    &hex[..end]
}

/// The few lines `plan` and `approve` print on stderr.
pub fn plan_summary_for_stderr(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut out = match &plan.reverts {
        Some(original) => format!(
            "Revert plan {} of plan {} for tenant `{}` on {}:\n  {} change(s): remove {} binding(s), {} membership(s), {} group(s), {} role(s){}\n  {} skipped, {} conflict(s)\n",
            clean(short_digest(&plan.digest)),
            clean(short_digest(original)),
            clean(&plan.tenant),
            clean(&crate::connect::redact(&plan.source.database)),
            s.changes(),
            s.remove_binding,
            s.remove_membership,
            s.remove_group,
            s.remove_role,
            if s.remove_tenant > 0 { ", and the tenant" } else { "" },
            s.skipped,
            s.conflicts,
        ),
        None => format!(
            "Plan {} for tenant `{}` on {}:\n  {} change(s): {}{} role(s), {} group(s), {} membership(s), {} binding(s)\n  {} already present, {} skipped, {} conflict(s)\n",
            clean(short_digest(&plan.digest)),
            clean(&plan.tenant),
            clean(&crate::connect::redact(&plan.source.database)),
            s.changes(),
            if s.create_tenant > 0 { "create the tenant, " } else { "" },
            s.add_role,
            s.add_group,
            s.add_membership,
            s.add_binding,
            s.present,
            s.skipped,
            s.conflicts,
        ),
    };
    if !plan.applyable {
        out.push_str(
            "  NOT APPLYABLE: resolve the conflicts, or plan again with --skip-conflicts\n",
        );
    }
    out
}

/// What `plan` prints on stderr when it is a terminal: the header and the
/// summary table of `show`; with `attention_rows`, that many rows of what
/// needs attention too, found in `changes` (the plan holds none: they are
/// read back from where they were spooled).
pub fn plan_summary_table(
    plan: &Plan,
    changes: &dyn crate::plan::Changes,
    style: Style,
    attention_rows: Option<usize>,
) -> io::Result<String> {
    show::summary(plan, changes, style, attention_rows)
}

/// `a@x (at ...), b@y (at ...)` from the history's approvers JSON.
pub fn approvers_text(approvers_json: &str) -> String {
    match serde_json::from_str::<Value>(approvers_json) {
        Ok(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|a| {
                // Rows of earlier releases hold `{by, at, signed}` only.
                let key = match (a["fingerprint"].as_str(), a["verified"].as_bool()) {
                    (Some(fp), Some(true)) => format!(" (verified, {fp})"),
                    (Some(fp), _) => format!(" (signed, {fp})"),
                    (None, _) if a["signed"].as_bool() == Some(true) => " (signed)".to_string(),
                    (None, _) => " (unsigned)".to_string(),
                };
                format!(
                    "{}{key} at {}",
                    a["by"].as_str().unwrap_or("?"),
                    a["at"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "nobody recorded".to_string(),
    }
}

/// One line per change, for diffs: the change's canonical JSON, so that any
/// difference, however small, shows.
fn change_lines(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        out.push_str(&crate::plan::canonical::to_string(change));
        out.push('\n');
    }
    out
}

/// A unified diff between the approved changes and those needed now.
pub fn changes_diff(approved: &[Change], needed: &[Change]) -> String {
    let old = change_lines(approved);
    let new = change_lines(needed);
    let diff = similar::TextDiff::from_lines(&old, &new);
    let text = diff.unified_diff().context_radius(1).to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= MAX_DIFF_LINES {
        return text;
    }
    let mut out = lines[..MAX_DIFF_LINES].join("\n");
    out.push_str(&format!(
        "\n... and {} more line(s)\n",
        lines.len() - MAX_DIFF_LINES
    ));
    out
}

/// The plan's changes by op, as the history records them: `add_role 4,
/// add_binding 8`.
fn history_changes(summary: &str) -> String {
    serde_json::from_str::<Value>(summary)
        .ok()
        .and_then(|s| {
            let o = s.as_object()?.clone();
            Some(
                crate::sync::Op::ALL
                    .iter()
                    .map(|op| op.as_str())
                    .filter_map(|k| o.get(k).and_then(Value::as_u64).map(|n| (k, n)))
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "none".to_string())
}

/// The applied plans, as a table that fits `style.width`.
pub fn history_table(
    out: &mut dyn Write,
    records: &[HistoryRecord],
    style: Style,
) -> io::Result<()> {
    if records.is_empty() {
        return writeln!(out, "No plan has been applied to this database.");
    }
    let mut table = doc::Table::new(vec![
        "applied at",
        "tenant",
        "digest",
        "applied by",
        "approved by",
        "changes",
        "revert",
    ]);
    let reverts = reverted_by_revert(records);
    for r in records {
        let revert = match (&r.reverted_by, reverts.get(r.digest.as_str())) {
            (Some(by), _) => format!("reverted by {}", short_digest(by)),
            (None, Some(of)) => format!("reverts {}", short_digest(of)),
            (None, None) => String::new(),
        };
        // The history holds what plan files said: it is data, escaped.
        table.row(
            doc::Mark::Plain,
            vec![
                doc::Line::new().data(&r.applied_at),
                doc::Line::new().data(&r.tenant),
                doc::Line::new().data(short_digest(&r.digest)),
                doc::Line::new().data(&r.applied_by),
                doc::Line::new().data(approvers_text(&r.approvers)),
                history_changes(&r.summary).into(),
                doc::Line::new().data(revert),
            ],
        );
    }
    let mut printer = doc::Printer::terminal(out, style);
    printer.block(doc::Block::Table(table))?;
    printer.finish("")
}

/// Revert digest -> the digest of the plan it reverted, from the rows'
/// `reverted_by`.
pub fn reverted_by_revert(records: &[HistoryRecord]) -> std::collections::HashMap<&str, &str> {
    records
        .iter()
        .filter_map(|r| Some((r.reverted_by.as_deref()?, r.digest.as_str())))
        .collect()
}

/// One applied plan for `history --format json`; `reverts`: the plan it
/// reverted, when it is a revert.
pub fn history_json(r: &HistoryRecord, reverts: Option<&str>) -> Value {
    let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    serde_json::json!({
        "reverted_by": r.reverted_by,
        "reverts": reverts,
        "digest": r.digest,
        "tenant": r.tenant,
        "plan_created_at": r.plan_created_at,
        "plan_created_by": r.plan_created_by,
        "approvers": parsed(&r.approvers),
        "applied_at": r.applied_at,
        "applied_by": r.applied_by,
        "summary": parsed(&r.summary),
    })
}

#[cfg(test)]
mod tests {
    use super::{approvers_text, short_digest};

    #[test]
    fn history_rows_of_every_release_name_their_approvers() {
        // Earlier releases recorded `{by, at, signed}`.
        assert_eq!(
            approvers_text(r#"[{"by":"a@x","at":"T","signed":false}]"#),
            "a@x (unsigned) at T"
        );
        assert_eq!(
            approvers_text(
                r#"[{"by":"b@x","at":"T","comment":"CHG-1","fingerprint":"SHA256:abc","signed":true,"verified":true},{"by":"c@x","at":"U","fingerprint":"SHA256:def","signed":true,"verified":false}]"#
            ),
            "b@x (verified, SHA256:abc) at T, c@x (signed, SHA256:def) at U"
        );
        assert_eq!(approvers_text("not json"), "nobody recorded");
    }

    #[test]
    fn short_digests_cut_on_character_boundaries() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(short_digest(&format!("sha256:{hex}")), "0123456789ab");
        assert_eq!(short_digest("sha256:abc"), "abc");
        // A hostile plan's digest: byte 12 falls inside a character.
        assert_eq!(short_digest("sha256:a日日日日日日"), "a日日日日日日");
        assert_eq!(
            short_digest("sha256:a日日日日日日日日日日日日"),
            "a日日日日日日日日日日日"
        );
    }
}
