//! `show`: a plan as a reviewer reads it. Header, summary, conflicts and
//! skipped entries first, then the changes, then the access each user gains.

use super::access::{self, Gain, Report, Through};
use super::doc::{self, Block, Doc, Line, Mark, Style, Table};
use super::json;
use super::model::{by_reason, Filter, Named, Row, Section, Selection, Selector};
use crate::connect::redact;
use crate::plan::Plan;
use crate::sync::{Finding, Op};

/// Reasons listed in the summary at most; the conflicts and skipped tables
/// list every entry.
const MAX_REASONS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Markdown,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowOptions {
    pub format: Format,
    /// The access per user as unified diffs instead of a table.
    pub diff: bool,
    /// Rows per table at most; `None`: all.
    pub limit: Option<usize>,
    pub filter: Filter,
    pub style: Style,
}

/// The whole output of `show`. `computed_digest` is the digest of the
/// plan's content, as recomputed when it was loaded.
pub fn show(plan: &Plan, computed_digest: &str, options: &ShowOptions) -> String {
    match options.format {
        Format::Json => json::rows(plan, computed_digest, options),
        Format::Table => doc::terminal(&review(plan, computed_digest, options), options.style),
        Format::Markdown => doc::markdown(&review(plan, computed_digest, options)),
    }
}

/// The review document, for the table and markdown printers.
pub fn review(plan: &Plan, computed_digest: &str, options: &ShowOptions) -> Doc {
    let limit = options.limit;
    let mut out = Doc::default();
    if computed_digest != plan.digest {
        out.push(mismatch_warning(plan, computed_digest));
    }
    header(plan, computed_digest, &mut out);
    out.push(Block::Heading("Summary".into()));
    out.push(Block::Table(summary_table(plan, limit)));

    let selector = Selector::new(plan, &options.filter);
    let selection = Selection::of(plan, &selector, limit);
    if !options.filter.is_empty() {
        out.push(Block::Para(filter_note(plan, &options.filter, &selection)));
    }
    findings(plan, &selector, limit, &mut out);
    if limit.is_some_and(|l| selection.bindings() > l) {
        spread(&selection, limit, &mut out);
    }
    if selection.matched == 0 {
        out.push(Block::Para(
            if plan.changes.is_empty() {
                "No changes: the tenant already has everything this plan could add."
            } else {
                "No change matches the filter."
            }
            .into(),
        ));
    }
    for (op, section) in &selection.sections {
        changes(*op, section, &mut out);
    }
    let report = access::report(plan, &selector, limit);
    if report.total_users > 0 || selection.matched > 0 {
        access_section(plan, &report, options.diff, &mut out);
    }
    if computed_digest != plan.digest {
        out.push(mismatch_warning(plan, computed_digest));
    }
    out
}

/// What `plan` prints on a terminal: the header and summary of `show`.
pub fn summary(plan: &Plan, style: Style) -> String {
    let mut out = Doc::default();
    header(plan, &plan.digest, &mut out);
    out.push(Block::Table(summary_table(plan, Some(10))));
    doc::terminal(&out, style)
}

fn mismatch_warning(plan: &Plan, computed_digest: &str) -> Block {
    Block::Warning(vec![
        "WARNING: DIGEST MISMATCH: this plan was altered after it was made.".into(),
        Line::new().text("The plan says   ").data(&plan.digest),
        Line::new().text("its content is  ").data(computed_digest),
        "What is shown is not what was planned: do not approve it; apply refuses it.".into(),
    ])
}

fn named(n: &Named) -> Line {
    match n.name {
        Some(name) => Line::new().data(name).text(" (").data(n.id).text(")"),
        None => Line::new().data(n.id),
    }
}

fn namespace(ns: Option<&str>) -> Line {
    match ns {
        Some(ns) => Line::new().data(ns),
        None => "all namespaces".into(),
    }
}

fn count(n: usize, one: &'static str, many: &'static str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn header(plan: &Plan, computed_digest: &str, out: &mut Doc) {
    out.push(Block::Title(
        Line::new()
            .text("Plan ")
            .data(super::short_digest(&plan.digest))
            .text(" for tenant ")
            .data(&plan.tenant),
    ));
    let mut fields = vec![
        (
            "source",
            Line::new()
                .data(redact(&plan.source.database))
                .text(" (")
                .data(&plan.source.backend)
                .text(", ")
                .data(redact(&plan.source.identity))
                .text(")"),
            Mark::Plain,
        ),
        (
            "created",
            author(plan),
            match crate::signing::author(plan) {
                Some(Err(_)) => Mark::Conflict,
                _ => Mark::Plain,
            },
        ),
        if computed_digest == plan.digest {
            (
                "digest",
                Line::new()
                    .data(super::short_digest(&plan.digest))
                    .text(" (matches the content)"),
                Mark::Plain,
            )
        } else {
            (
                "digest",
                Line::new()
                    .data(super::short_digest(&plan.digest))
                    .text(" DOES NOT MATCH the content"),
                Mark::Conflict,
            )
        },
    ];
    let mut options = Vec::new();
    if plan.options.create_tenant {
        let name = plan.options.tenant_name.as_deref().unwrap_or(&plan.tenant);
        options.push(
            Line::new()
                .text("--create-tenant (named ")
                .data(name)
                .text(")"),
        );
    }
    if plan.options.skip_conflicts {
        options.push("--skip-conflicts (conflicts are listed as skipped)".into());
    }
    if !options.is_empty() {
        let mut line = Line::new();
        for (i, o) in options.into_iter().enumerate() {
            if i > 0 {
                line = line.text(", ");
            }
            line = line.append(o);
        }
        fields.push(("options", line, Mark::Plain));
    }
    fields.push(("approvals", approvals(plan), Mark::Plain));
    fields.push(if plan.applyable {
        ("applyable", "yes".into(), Mark::Plain)
    } else {
        (
            "applyable",
            format!(
                "NO: {} to resolve first (or plan again with --skip-conflicts)",
                count(plan.conflicts.len(), "conflict", "conflicts")
            )
            .into(),
            Mark::Conflict,
        )
    });
    out.push(Block::Fields(fields));
}

fn author(plan: &Plan) -> Line {
    let line = Line::new()
        .data(&plan.created_at)
        .text(" by ")
        .data(&plan.created_by)
        .text(" with sync-access ")
        .data(&plan.tool_version);
    match crate::signing::author(plan) {
        None => line,
        Some(Ok(verified)) => line.text(", signed with ").data(&verified.fingerprint),
        Some(Err(why)) => line.text(", AUTHOR SIGNATURE DOES NOT VERIFY: ").data(&why),
    }
}

/// Each approval, with what backs it: a signature (which key; whether the
/// key may sign under that name is for `apply --allowed-signers` to say) or
/// nothing but a name.
fn approvals(plan: &Plan) -> Line {
    if plan.approvals.is_empty() {
        return "none".into();
    }
    let mut line = Line::new();
    let mut unsigned = false;
    for (i, a) in plan.approvals.iter().enumerate() {
        if i > 0 {
            line = line.text("; ");
        }
        line = line.data(&a.by).text(" at ").data(&a.at);
        if let Some(comment) = &a.comment {
            line = line.text(" (").data(comment).text(")");
        }
        line = match crate::signing::approval(a) {
            None => {
                unsigned |= a.digest == plan.digest;
                line.text(" [unsigned]")
            }
            Some(Ok(verified)) => line
                .text(" [signed with ")
                .data(&verified.fingerprint)
                .text("]"),
            Some(Err(why)) => line.text(" [BAD SIGNATURE: ").data(&why).text("]"),
        };
        if a.digest != plan.digest {
            line = line.text(" [for another digest: does not count]");
        }
    }
    if unsigned {
        line = line.text(
            ". Unsigned approvals are names, which anyone who can edit this file can type: they prove nothing",
        );
    }
    line
}

fn summary_table(plan: &Plan, limit: Option<usize>) -> Table {
    let s = &plan.summary;
    let mut t = Table::new(vec!["", "count"]).right(&[1]);
    for op in Op::ALL {
        let n = s.count(op);
        if op == Op::CreateTenant && n == 0 {
            continue;
        }
        let mark = if n > 0 { Mark::Add } else { Mark::Plain };
        t.row(mark, vec![op.as_str().into(), n.to_string().into()]);
    }
    t.row(
        Mark::Plain,
        vec!["changes".into(), s.changes().to_string().into()],
    );
    t.row(
        Mark::Plain,
        vec!["already present".into(), s.present.to_string().into()],
    );
    let reasons = |t: &mut Table, findings: &[Finding], mark: Mark| {
        let reasons = by_reason(findings);
        let shown = limit.unwrap_or(usize::MAX).clamp(1, MAX_REASONS);
        for (reason, n) in reasons.iter().take(shown) {
            t.row(
                mark,
                vec![
                    Line::new().text("  · ").data(reason.as_ref()),
                    n.to_string().into(),
                ],
            );
        }
        if reasons.len() > shown {
            let rest: usize = reasons[shown..].iter().map(|(_, n)| n).sum();
            t.row(
                mark,
                vec![
                    format!("  · … and {} more reasons", reasons.len() - shown).into(),
                    rest.to_string().into(),
                ],
            );
        }
    };
    t.row(
        Mark::Plain,
        vec!["skipped".into(), s.skipped.to_string().into()],
    );
    reasons(&mut t, &plan.skipped, Mark::Plain);
    let mark = if s.conflicts > 0 {
        Mark::Conflict
    } else {
        Mark::Plain
    };
    t.row(
        mark,
        vec!["conflicts".into(), s.conflicts.to_string().into()],
    );
    reasons(&mut t, &plan.conflicts, Mark::Conflict);
    t
}

fn filter_note(plan: &Plan, filter: &Filter, selection: &Selection) -> Line {
    let mut line = Line::new().text("Filtered by");
    for (flag, value) in filter.flags() {
        line = line.text(format!(" {flag} ")).data(value);
    }
    line.text(format!(
        ": {} of {} shown. The summary counts the whole plan; conflicts and skipped entries are listed when their kind and key match the filter.",
        selection.matched,
        count(plan.changes.len(), "change", "changes")
    ))
}

fn more(shown: usize, total: usize, what: &str, out: &mut Doc) {
    if total > shown {
        out.push(Block::More(
            format!(
                "… and {} more {what} (--limit 0 shows all; --user, --role, --namespace and --op narrow)",
                total - shown
            )
            .into(),
        ));
    }
}

fn findings(plan: &Plan, selector: &Selector, limit: Option<usize>, out: &mut Doc) {
    let lists = [
        (
            &plan.conflicts,
            Mark::Conflict,
            "Conflicts",
            ": the plan cannot be applied until they are resolved",
        ),
        (
            &plan.skipped,
            Mark::Plain,
            "Skipped",
            ": legacy entries that are not copied, with the reason",
        ),
    ];
    for (list, mark, title, why) in lists {
        let shown: Vec<&Finding> = list
            .iter()
            .filter(|f| selector.filter.is_empty() || selector.matches_finding(f))
            .collect();
        if shown.is_empty() {
            continue;
        }
        out.push(Block::Heading(
            format!("{title} ({}){why}", shown.len()).into(),
        ));
        let with_group = shown.iter().any(|f| f.group_id.is_some());
        let with_detail = shown.iter().any(|f| f.detail.is_some());
        let mut header = vec!["kind", "key"];
        if with_group {
            header.push("group");
        }
        header.push("reason");
        if with_detail {
            header.push("detail");
        }
        let mut t = Table::new(header);
        let take = limit.unwrap_or(usize::MAX);
        for f in shown.iter().take(take) {
            let mut cells = vec![f.kind.as_str().into(), Line::new().data(&f.key)];
            if with_group {
                cells.push(
                    f.group_id
                        .as_deref()
                        .map_or_else(Line::new, |g| Line::new().data(g)),
                );
            }
            cells.push(Line::new().data(&f.reason));
            if with_detail {
                cells.push(
                    f.detail
                        .as_deref()
                        .map_or_else(Line::new, |d| Line::new().data(d)),
                );
            }
            t.row(mark, cells);
        }
        out.push(Block::Table(t));
        let noun = if mark == Mark::Conflict {
            "conflicts"
        } else {
            "skipped entries"
        };
        more(shown.len().min(take), shown.len(), noun, out);
    }
}

fn spread(selection: &Selection, limit: Option<usize>, out: &mut Doc) {
    let take = limit.unwrap_or(usize::MAX);
    let roles = selection.spread.roles();
    out.push(Block::Heading(
        format!("Bindings to add by role ({})", roles.len()).into(),
    ));
    let mut t = Table::new(vec!["role", "to users", "to groups", "bindings"]).right(&[1, 2, 3]);
    for (role, users, groups) in roles.iter().take(take) {
        t.row(
            Mark::Plain,
            vec![
                named(role),
                users.to_string().into(),
                groups.to_string().into(),
                (users + groups).to_string().into(),
            ],
        );
    }
    out.push(Block::Table(t));
    more(roles.len().min(take), roles.len(), "roles", out);

    let namespaces = selection.spread.namespaces();
    out.push(Block::Heading(
        format!("Bindings to add by namespace ({})", namespaces.len()).into(),
    ));
    let mut t = Table::new(vec!["namespace", "bindings"]).right(&[1]);
    for (ns, n) in namespaces.iter().take(take) {
        t.row(Mark::Plain, vec![namespace(*ns), n.to_string().into()]);
    }
    out.push(Block::Table(t));
    more(
        namespaces.len().min(take),
        namespaces.len(),
        "namespaces",
        out,
    );
}

fn grants_line(grants: &[super::model::Grant]) -> Line {
    if grants.is_empty() {
        return "none".into();
    }
    let mut line = Line::new();
    for (i, g) in grants.iter().enumerate() {
        if i > 0 {
            line = line.br();
        }
        line = line
            .data(g.actions.join(" "))
            .text(" on ")
            .data(g.permissions.join(", "));
    }
    line
}

fn changes(op: Op, section: &Section, out: &mut Doc) {
    let (title, noun, header): (&str, &str, Vec<&'static str>) = match op {
        Op::CreateTenant => ("Tenant to create", "tenants", vec!["key", "name"]),
        Op::AddRole => (
            "Roles to add",
            "roles to add",
            vec!["key", "role", "permissions", "description"],
        ),
        Op::AddGroup => (
            "Groups to add",
            "groups to add",
            vec!["key", "group", "description"],
        ),
        Op::AddMembership => (
            "Memberships to add",
            "memberships to add",
            vec!["user", "group", "membership"],
        ),
        Op::AddBinding => (
            "Bindings to add",
            "bindings to add",
            vec!["key", "subject", "name", "role", "namespace"],
        ),
    };
    out.push(Block::Heading(
        format!("{title} ({})", section.total).into(),
    ));
    let mut t = Table::new(header);
    let optional = |s: Option<&str>| s.map_or_else(Line::new, |s| Line::new().data(s));
    for row in &section.rows {
        let cells = match row {
            Row::Tenant { key, name } => vec![Line::new().data(*key), optional(*name)],
            Row::Role {
                key,
                role,
                description,
                grants,
            } => vec![
                Line::new().data(*key),
                named(role),
                grants_line(grants),
                optional(*description),
            ],
            Row::Group {
                key,
                group,
                description,
            } => vec![Line::new().data(*key), named(group), optional(*description)],
            Row::Membership(m) => vec![
                named(&m.user),
                named(&m.group),
                m.membership.as_str().into(),
            ],
            Row::Binding(b) => vec![
                Line::new().data(b.key),
                match b.subject_type {
                    "USER" => "user".into(),
                    "GROUP" => "group".into(),
                    other => Line::new().data(other),
                },
                named(&b.subject),
                named(&b.role),
                namespace(b.namespace),
            ],
        };
        t.row(Mark::Add, cells);
    }
    out.push(Block::Table(t));
    more(section.rows.len(), section.total, noun, out);
}

fn through_line(through: &Through, binding: &str) -> Line {
    match through {
        Through::Direct => Line::new().text("direct binding ").data(binding),
        Through::Group(g) => Line::new()
            .text("group ")
            .append(named(g))
            .text(", binding ")
            .data(binding),
    }
}

fn joins_note(group_is_new: bool) -> &'static str {
    if group_is_new {
        "new membership (the group is created by this plan)"
    } else {
        "new membership; the group exists already: its bindings in the tenant (not in this plan) apply too"
    }
}

fn access_section(plan: &Plan, report: &Report, diff: bool, out: &mut Doc) {
    out.push(Block::Heading(
        Line::new()
            .text("Access gained in tenant ")
            .data(&plan.tenant)
            .text(format!(
                ", per user ({}, {})",
                count(report.total_users, "user", "users"),
                count(report.total_gains, "gain", "gains")
            )),
    ));
    let mut intro = Line::new().text(
        "As far as this plan knows: a plan records only what it adds, not the access users already have in the tenant, nor the members and bindings that groups already have there. The sync never removes access.",
    );
    if diff {
        intro = intro.text(
            " So the \"before\" side of each diff is empty: it is not the user's current access, which the plan does not know.",
        );
    }
    out.push(Block::Para(intro));
    if report.total_users == 0 {
        out.push(Block::Para(
            "No user gains access through the changes shown.".into(),
        ));
    } else if diff {
        out.push(Block::Diff(access_diff(report)));
    } else {
        let mut t = Table::new(vec!["user", "gains", "on", "through"]);
        for user in &report.users {
            for gain in &user.gains {
                let cells = match gain {
                    Gain::Joins {
                        group,
                        membership,
                        group_is_new,
                    } => vec![
                        named(&user.user),
                        Line::new()
                            .text(format!("{} of group ", membership.as_str()))
                            .append(named(group)),
                        Line::new(),
                        joins_note(*group_is_new).into(),
                    ],
                    Gain::Role {
                        role,
                        namespace: ns,
                        through,
                        binding,
                    } => vec![
                        named(&user.user),
                        Line::new().text("role ").append(named(role)),
                        namespace(*ns),
                        through_line(through, binding),
                    ],
                };
                t.row(Mark::Add, cells);
            }
        }
        out.push(Block::Table(t));
    }
    if report.total_gains > report.shown_gains {
        let cut = report.users.first().filter(|u| u.total > u.gains.len());
        let users = report.total_users - report.users.len();
        let what = match cut {
            Some(u) => format!(
                "gains, {} of them for {}",
                u.total - u.gains.len(),
                plain_named(&u.user)
            ),
            None => format!("gains, of {}", count(users, "more user", "more users")),
        };
        more(report.shown_gains, report.total_gains, &what, out);
    }
    if !report.existing_groups.is_empty() {
        let mut line = Line::new().text(
            "Groups that already exist in the tenant gain bindings here; their current members, not named in this plan, gain them too: ",
        );
        let shown = report.existing_groups.len().min(report.users.len().max(10));
        for (i, g) in report.existing_groups.iter().take(shown).enumerate() {
            if i > 0 {
                line = line.text(", ");
            }
            line = line.append(named(g));
        }
        if report.existing_groups.len() > shown {
            line = line.text(format!(
                " … and {} more",
                report.existing_groups.len() - shown
            ));
        }
        out.push(Block::Para(line.text(".")));
    }
}

fn plain_named(n: &Named) -> String {
    match n.name {
        Some(name) => format!("{name} ({})", n.id),
        None => n.id.to_string(),
    }
}

/// One unified diff per user, concatenated like `git diff` over files.
fn access_diff(report: &Report) -> String {
    let mut out = String::new();
    for user in &report.users {
        let mut after = String::new();
        for gain in &user.gains {
            let line = match gain {
                Gain::Joins {
                    group,
                    membership,
                    group_is_new,
                } => format!(
                    "{} of group {}{}",
                    membership.as_str(),
                    plain_named(group),
                    if *group_is_new {
                        ""
                    } else {
                        ", with the bindings it already has in the tenant (not in this plan)"
                    }
                ),
                Gain::Role {
                    role,
                    namespace,
                    through,
                    binding,
                } => format!(
                    "role {} on {}, through {} [binding {binding}]",
                    plain_named(role),
                    namespace.map_or("all namespaces".to_string(), |ns| format!("namespace {ns}")),
                    match through {
                        Through::Direct => "a direct binding".to_string(),
                        Through::Group(g) => format!("group {}", plain_named(g)),
                    }
                ),
            };
            after.push_str(&line);
            after.push('\n');
        }
        let who = plain_named(&user.user);
        let diff = similar::TextDiff::from_lines("", after.as_str());
        out.push_str(
            &diff
                .unified_diff()
                .header(
                    &format!("{who}: before (nothing recorded in the plan)"),
                    &format!("{who}: after the plan"),
                )
                .to_string(),
        );
    }
    out
}
