//! Rendering: text for humans, from plans and records. Pure functions that
//! return strings, so that every output can be snapshot-tested.
//!
//! `show` is built in layers: [`model`] reads a plan's changes as readable
//! rows, [`access`] derives what each user gains, [`show`] arranges both in
//! a [`doc::Doc`], and [`doc`] prints that for a terminal or as markdown
//! ([`json`] writes rows for tools instead).

mod access;
mod doc;
mod json;
mod model;
mod show;

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

pub use doc::{clean, Style};
pub use model::Filter;
pub use show::{show, Format, ShowOptions};

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
    let mut out = format!(
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
    );
    if !plan.applyable {
        out.push_str(
            "  NOT APPLYABLE: resolve the conflicts, or plan again with --skip-conflicts\n",
        );
    }
    out
}

/// What `plan` prints on stderr when it is a terminal: the header and the
/// summary table of `show`.
pub fn plan_summary_table(plan: &Plan, style: Style) -> String {
    show::summary(plan, style)
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

pub fn history_table(records: &[HistoryRecord]) -> String {
    if records.is_empty() {
        return "No plan has been applied to this database.\n".to_string();
    }
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header([
            "applied at",
            "tenant",
            "digest",
            "applied by",
            "approved by",
            "changes",
        ]);
    for r in records {
        let changes = serde_json::from_str::<Value>(&r.summary)
            .ok()
            .and_then(|s| {
                let o = s.as_object()?.clone();
                Some(
                    [
                        "create_tenant",
                        "add_role",
                        "add_group",
                        "add_membership",
                        "add_binding",
                    ]
                    .iter()
                    .filter_map(|k| o.get(*k).and_then(Value::as_u64).map(|n| (k, n)))
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                )
            })
            .unwrap_or_default();
        // The history holds what plan files said: escape it for a terminal.
        table.add_row([
            &*clean(&r.applied_at),
            &clean(&r.tenant),
            &clean(short_digest(&r.digest)),
            &clean(&r.applied_by),
            &clean(&approvers_text(&r.approvers)),
            if changes.is_empty() { "none" } else { &changes },
        ]);
    }
    format!("{table}\n")
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
