//! `show`: a plan as a reviewer reads it. Header, what needs attention,
//! the summary, conflicts and skipped entries first, then the changes, then
//! the access each user gains. Printed as it is built: a plan of a million
//! changes is never held as text, and its changes are read one at a time
//! ([`Changes`]): a walk counts what every section needs, and the tables
//! read their rows again when they print them.

use std::cell::RefCell;
use std::io::{self, Write};

use super::access::{Gain, Listed, Report, Tenant, Through};
use super::attention::{self, Facts, Item, Risk, StreamedFacts, Subject, SHOWN_JOINERS};
use super::doc::{Block, Line, Mark, Printer, Style, Table};
use super::json;
use super::model::{by_reason, each_row, Filter, Named, Row, Selection, Selector};
use crate::connect::redact;
use crate::plan::{Changes, Plan};
use crate::sync::{Change, Finding, Kind, Op, SubjectType};

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
    /// Markdown: stop before a pull-request comment's size and say how to
    /// get the rest.
    pub fit_comment: bool,
    /// The command that prints everything, for the cut note.
    pub everything: String,
}

/// Writes the whole output of `show` of a plan that holds its changes to
/// `out`: [`show_changes`] of them.
#[cfg(test)]
pub fn show(
    out: &mut dyn Write,
    plan: &Plan,
    computed_digest: &str,
    options: &ShowOptions,
    tenant: Option<&Tenant>,
) -> io::Result<()> {
    show_changes(out, plan, &plan.changes, computed_digest, options, tenant)
}

/// Writes the whole output of `show` to `out`: of `plan`, whose changes are
/// `changes`, read one at a time (the plan need not hold them).
/// `computed_digest` is the digest of the plan's content, as recomputed
/// when it was loaded; `tenant`, the tenant's current access read from the
/// database (`--live`).
pub fn show_changes(
    out: &mut dyn Write,
    plan: &Plan,
    changes: &dyn Changes,
    computed_digest: &str,
    options: &ShowOptions,
    tenant: Option<&Tenant>,
) -> io::Result<()> {
    match options.format {
        Format::Json => json::rows(out, plan, changes, computed_digest, options, tenant),
        Format::Table => {
            let mut printer = Printer::terminal(out, options.style);
            review(
                &mut printer,
                plan,
                changes,
                computed_digest,
                options,
                tenant,
            )?;
            printer.finish(&options.everything)
        }
        Format::Markdown => {
            let mut printer = Printer::markdown(out, options.fit_comment);
            review(
                &mut printer,
                plan,
                changes,
                computed_digest,
                options,
                tenant,
            )?;
            printer.finish(&options.everything)
        }
    }
}

/// What `show` counted of a plan while it was checked
/// ([`count_while_checking`]): its review's pass over the changes, made.
pub struct CountedEarly {
    gathered: StreamedFacts,
    counted: Counted,
}

/// Whether `show` makes the review's pass over the changes while the plan
/// is checked ([`count_while_checking`]): not where it needs more than the
/// changes in their order (`--user`, `--live`, JSON).
pub fn counts_while_checking(options: &ShowOptions, live: bool) -> bool {
    !live && options.format != Format::Json && Selector::without_changes(&options.filter).is_some()
}

/// Runs `check`, which checks the plan of `header` (its members but the
/// changes) and gives each change to its watcher as it is checked, on
/// another thread, and makes the review's pass over those changes on this
/// one: every change is read once, not once to check it and again to
/// review it (issue 15). The review's pass is `None` when the changes came
/// in another order than a plan's, or the review needs more than the
/// changes ([`counts_while_checking`]); it is the plan's only if `check`
/// says the plan was checked so.
pub fn count_while_checking<R: Send>(
    header: &Plan,
    options: &ShowOptions,
    check: impl FnOnce(&mut crate::plan::Watch<'_>) -> R + Send,
) -> (R, Option<CountedEarly>) {
    let Some(selector) = Selector::without_changes(&options.filter) else {
        return (check(&mut Some), None);
    };
    std::thread::scope(|scope| {
        let (to_counter, batches) = std::sync::mpsc::sync_channel(2);
        let (give_back, given_back) = std::sync::mpsc::sync_channel(8);
        let checker = scope.spawn(move || {
            check(&mut |batch| {
                // A counter that is gone has panicked: its panic is told.
                let _ = to_counter.send(batch);
                given_back.try_recv().ok()
            })
        });
        let counted = count_streamed(
            header,
            &selector,
            options.limit,
            &mut batches.iter(),
            &mut |batch| {
                // Too many waiting: freed here.
                let _ = give_back.try_send(batch);
            },
        );
        let checked = match checker.join() {
            Ok(checked) => checked,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let early = counted.map(|(gathered, counted)| CountedEarly { gathered, counted });
        (checked, early)
    })
}

/// [`show_changes`] of a plan whose review's pass was made while it was
/// checked ([`count_while_checking`]).
pub fn show_counted(
    out: &mut dyn Write,
    plan: &Plan,
    changes: &dyn Changes,
    computed_digest: &str,
    options: &ShowOptions,
    early: CountedEarly,
) -> io::Result<()> {
    let Some(selector) = Selector::without_changes(&options.filter) else {
        return show_changes(out, plan, changes, computed_digest, options, None);
    };
    let facts = early.gathered.facts(plan);
    let mut printer = match options.format {
        Format::Markdown => Printer::markdown(out, options.fit_comment),
        _ => Printer::terminal(out, options.style),
    };
    review_counted(
        &mut printer,
        plan,
        changes,
        computed_digest,
        options,
        None,
        (&selector, &facts),
        early.counted,
    )?;
    printer.finish(&options.everything)
}

/// The first error met while a table read its rows (a lazy table's rows
/// cannot fail), told once the table is printed.
#[derive(Default)]
pub(super) struct Failed(RefCell<Option<io::Error>>);

impl Failed {
    pub(super) fn keep(&self, result: io::Result<()>) {
        if let Err(e) = result {
            self.0.borrow_mut().get_or_insert(e);
        }
    }

    pub(super) fn check(self) -> io::Result<()> {
        self.0.into_inner().map_or(Ok(()), Err)
    }
}

/// The review, block by block, for the table and markdown printers.
pub fn review(
    out: &mut Printer,
    plan: &Plan,
    changes: &dyn Changes,
    computed_digest: &str,
    options: &ShowOptions,
    tenant: Option<&Tenant>,
) -> io::Result<()> {
    let selector = Selector::new(changes, &options.filter)?;
    let gathered = StreamedFacts::gather(plan, changes, SHOWN_JOINERS)?;
    let facts = gathered.facts(plan);
    let mut counted = Counted::start(&selector, tenant, options.limit);
    changes.each_change_at(&mut |at, change| {
        counted.add(at, change, &selector, &facts);
        true
    })?;
    review_counted(
        out,
        plan,
        changes,
        computed_digest,
        options,
        tenant,
        (&selector, &facts),
        counted,
    )
}

/// What [`review`] counts in one pass over the changes, for the sections
/// it prints. With a limit, where the first rows of each table are is
/// kept, so that a table of a few rows does not walk the plan again.
pub struct Counted {
    limit: Option<usize>,
    selection: Selection,
    report: Report,
    attention: usize,
    attention_first: Vec<usize>,
}

impl Counted {
    pub fn start(selector: &Selector, tenant: Option<&Tenant>, limit: Option<usize>) -> Self {
        Counted {
            limit,
            selection: Selection::keeping(limit),
            report: Report::start(selector, tenant),
            attention: 0,
            attention_first: Vec::new(),
        }
    }

    /// Counts the change at `at`, in the plan's order.
    pub fn add(&mut self, at: usize, change: &Change, selector: &Selector, facts: &Facts) {
        self.selection.add_at(at, change, selector);
        self.report.add(at, change);
        if attention::needs_attention(change, selector, facts) {
            self.attention += 1;
            if self.limit.is_some_and(|l| self.attention_first.len() < l) {
                self.attention_first.push(at);
            }
        }
    }
}

/// Whether the facts that judge a change ([`StreamedFacts`]) can all be
/// known before it in a plan's order: those of the roles and memberships
/// that come first, and judge the bindings after them.
fn comes_before_facts_are_needed(op: Op) -> bool {
    matches!(
        op,
        Op::CreateTenant | Op::AddRole | Op::AddGroup | Op::AddMembership
    )
}

/// [`review`]'s counting over the changes handed on as the plan is
/// checked (`plan::parse_watching`), batch after batch: `show` reads every
/// change once, not twice (issue 15). The facts are gathered from the
/// roles and memberships as they come, which in a plan's order come
/// before the bindings they judge; a membership is judged by what the
/// plan's context says of its user alone. Each batch is given back once
/// counted. `None` when a change comes out of that order: then the caller
/// counts again ([`review`]).
pub fn count_streamed(
    plan: &Plan,
    selector: &Selector,
    limit: Option<usize>,
    batches: &mut dyn Iterator<Item = Vec<(usize, Change)>>,
    give_back: &mut dyn FnMut(Vec<(usize, Change)>),
) -> Option<(StreamedFacts, Counted)> {
    let mut counted = Counted::start(selector, None, limit);
    let mut gathered = StreamedFacts::default();
    let users = attention::context_users(plan);
    let none_yet = StreamedFacts::default();
    let of_users_alone = none_yet.facts(plan);
    // The batch where the first change judged by the facts is, and where.
    let mut rest = None;
    'gathering: for batch in &mut *batches {
        for (i, (at, change)) in batch.iter().enumerate() {
            if !comes_before_facts_are_needed(change.op()) {
                rest = Some((batch, i));
                break 'gathering;
            }
            gathered.add(change, SHOWN_JOINERS, &users);
            counted.add(*at, change, selector, &of_users_alone);
        }
        give_back(batch);
    }
    let facts = gathered.facts(plan);
    let mut in_order = true;
    let mut judge = |batch: &[(usize, Change)]| {
        for (at, change) in batch {
            in_order &= !comes_before_facts_are_needed(change.op());
            counted.add(*at, change, selector, &facts);
        }
    };
    if let Some((batch, i)) = rest {
        judge(&batch[i..]);
        give_back(batch);
    }
    for batch in batches {
        judge(&batch);
        give_back(batch);
    }
    drop(facts);
    in_order.then_some((gathered, counted))
}

/// [`review`] once its pass over the changes was made.
#[allow(clippy::too_many_arguments)]
pub fn review_counted(
    out: &mut Printer,
    plan: &Plan,
    changes: &dyn Changes,
    computed_digest: &str,
    options: &ShowOptions,
    tenant: Option<&Tenant>,
    (selector, facts): (&Selector, &Facts),
    counted: Counted,
) -> io::Result<()> {
    let limit = options.limit;
    if computed_digest != plan.digest {
        out.block(mismatch_warning(plan, computed_digest))?;
    }
    for block in header(plan, computed_digest) {
        out.block(block)?;
    }
    let Counted {
        selection,
        report,
        attention,
        attention_first,
        ..
    } = counted;
    let report = report.finish(selector, tenant.is_some());
    let total = attention::count(plan, selector, facts, attention);
    let first = limit.map(|_| attention_first.as_slice());
    attention_section(out, plan, changes, first, selector, facts, total, limit)?;
    out.block(Block::Heading("Summary".into()))?;
    out.block(Block::Table(summary_table(plan, limit)))?;

    if !options.filter.is_empty() {
        out.block(Block::Para(filter_note(plan, &options.filter, &selection)))?;
    }
    findings(out, plan, selector, limit)?;
    if limit.is_some_and(|l| selection.bindings() > l) {
        spread(out, &selection, limit)?;
    }
    if selection.matched == 0 {
        out.block(Block::Para(
            if plan.summary.changes() == 0 {
                "No changes: the tenant already has everything this plan could add."
            } else {
                "No change matches the filter."
            }
            .into(),
        ))?;
    }
    for (op, total) in &selection.totals {
        let first = selection.first_of(*op, limit);
        changes_table(out, changes, first, selector, *op, *total, limit)?;
    }
    if report.total_users > 0 || selection.matched > 0 || tenant.is_some() {
        access_section(out, plan, changes, &report, options, tenant.is_some())?;
    }
    if computed_digest != plan.digest {
        out.block(mismatch_warning(plan, computed_digest))?;
    }
    Ok(())
}

/// What `plan` prints on a terminal: the header, what needs attention and
/// the summary of `show`. The plan holds no changes: they are `changes`,
/// read (twice) only for what needs attention.
pub fn summary(
    plan: &Plan,
    changes: &dyn Changes,
    style: Style,
    attention_rows: Option<usize>,
) -> io::Result<String> {
    let mut out = Vec::new();
    let mut printer = Printer::terminal(&mut out, style);
    for block in header(plan, &plan.digest) {
        printer.block(block)?;
    }
    if let Some(limit) = attention_rows {
        let filter = Filter::default();
        let selector = Selector::new(changes, &filter)?;
        let gathered = StreamedFacts::gather(plan, changes, SHOWN_JOINERS)?;
        let facts = gathered.facts(plan);
        let mut total = 0usize;
        let mut table = Table::new(ATTENTION_HEADER.to_vec());
        attention::items_of(plan, changes, &selector, &facts, &mut |item| {
            total += 1;
            if total <= limit {
                let (mark, cells) = attention_row(&item, &filter);
                table.row(mark, cells);
            }
            true
        })?;
        if total > 0 {
            attention_heading(&mut printer, total)?;
            printer.block(Block::Table(table))?;
            more(
                &mut printer,
                total.min(limit),
                total,
                "items that need attention",
            )?;
        }
    }
    printer.block(Block::Table(summary_table(plan, Some(10))))?;
    drop(printer);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn mismatch_warning(plan: &Plan, computed_digest: &str) -> Block<'static> {
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

/// A binding's namespace as a reviewer must read it: with what it reaches.
fn reach(ns: Option<&str>, filter: &Filter) -> Line {
    let line = match ns {
        Some(ns) => Line::new().data(ns).text(" and below"),
        None => "all namespaces".into(),
    };
    match filter.namespace.as_deref() {
        Some(target) if ns != Some(target) => line.text(" (reaches ").data(target).text(")"),
        _ => line,
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

fn header(plan: &Plan, computed_digest: &str) -> [Block<'static>; 2] {
    let title = Block::Title(
        Line::new()
            .text("Plan ")
            .data(super::short_digest(&plan.digest))
            .text(" for tenant ")
            .data(&plan.tenant),
    );
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
    if let Some(original) = &plan.reverts {
        fields.push((
            "reverts",
            Line::new()
                .text("plan ")
                .data(original)
                .text(": it removes what that plan wrote (docs/revert.md)"),
            Mark::Plain,
        ));
    }
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
    [title, Block::Fields(fields)]
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

fn summary_table(plan: &Plan, limit: Option<usize>) -> Table<'static> {
    let s = &plan.summary;
    let mut t = Table::new(vec!["", "count"]).right(&[1]);
    for op in Op::ALL {
        let n = s.count(op);
        // What a plan cannot hold is not listed: a tenant to create or
        // removals (revert plans) when there are none, additions in a
        // revert plan.
        if (op == Op::CreateTenant || op.is_removal()) && n == 0
            || plan.reverts.is_some() && !op.is_removal()
        {
            continue;
        }
        let mark = if n > 0 && !op.is_removal() {
            Mark::Add
        } else {
            Mark::Plain
        };
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
    let mut line = line.text(format!(
        ": {} of {} shown. The summary counts the whole plan.",
        selection.matched,
        count(plan.summary.changes(), "change", "changes")
    ));
    if filter.namespace.is_some() {
        line = line.text(
            " --namespace keeps what reaches the namespace: bindings on it, on a parent namespace (Kestra's inheritance) and on all namespaces.",
        );
    }
    line
}

fn more(out: &mut Printer, shown: usize, total: usize, what: &str) -> io::Result<()> {
    if total > shown {
        out.block(Block::More(
            format!(
                "… and {} more {what} (--limit 0 shows all; --user, --role, --namespace and --op narrow)",
                total - shown
            )
            .into(),
        ))?;
    }
    Ok(())
}

fn user_line(user: &Named, user_type: Option<&str>) -> Line {
    let line = Line::new().text("user ").append(named(user));
    match user_type {
        Some(t) => line.text(", ").data(t),
        None => line,
    }
}

fn role_line(role: &Named, ns: Option<&str>, filter: &Filter) -> Line {
    Line::new()
        .text("role ")
        .append(named(role))
        .text(" on ")
        .append(reach(ns, filter))
}

fn risks_line(item: &Item) -> Line {
    let mut line = Line::new();
    for (i, risk) in item.risks.iter().enumerate() {
        if i > 0 {
            line = line.text(", ");
        }
        line = line.text(risk.as_str());
        if *risk == Risk::AdminRole && !item.admin.is_empty() {
            line = line.text(" (writes ").data(item.admin.join(", ")).text(")");
        }
    }
    line
}

fn attention_row(item: &Item, filter: &Filter) -> (Mark, Vec<Line>) {
    let who = match &item.subject {
        Subject::User(user, t) => user_line(user, *t),
        Subject::Group(group, joiners) => {
            let mut line = Line::new().text("group ").append(named(group));
            if joiners.total > 0 {
                line = line.text(": ");
                for (i, m) in joiners.first.iter().take(SHOWN_JOINERS).enumerate() {
                    if i > 0 {
                        line = line.text(", ");
                    }
                    line = line.data(m.label());
                }
                if joiners.total > SHOWN_JOINERS {
                    line = line.text(format!(" and {} more", joiners.total - SHOWN_JOINERS));
                }
                line = line.text(" join in this plan");
            }
            line
        }
        Subject::Document(kind, n) => Line::new().text(kind.as_str()).text(" ").append(named(n)),
        Subject::Unknown => Line::new(),
    };
    let what = match (&item.role, &item.joins) {
        (Some((role, ns)), _) => role_line(role, *ns, filter),
        (None, Some(group)) => Line::new().text("joins group ").append(named(group)),
        _ => Line::new(),
    };
    let how = match item.reason {
        Some(reason) => Line::new().data(item.key).text(": ").data(reason),
        None => Line::new().text("binding ").data(item.key),
    };
    let mark = if item.risks.contains(&Risk::Conflict) {
        Mark::Conflict
    } else {
        Mark::Plain
    };
    (mark, vec![risks_line(item), who, what, how])
}

const ATTENTION_HEADER: [&str; 4] = ["why", "who", "gains", "how"];

fn attention_heading(out: &mut Printer, total: usize) -> io::Result<()> {
    out.block(Block::Heading(format!("Needs attention ({total})").into()))?;
    out.block(Block::Para(
        "Conflicts; grants of admin-like roles (more than READ on USER, GROUP, ROLE, BINDING, SETTING or TENANT), on all namespaces, or to super admins and service accounts; and such grants that are skipped."
            .into(),
    ))
}

/// `first`: where the changes that need attention are, as many as the
/// table shows, when known.
#[allow(clippy::too_many_arguments)]
fn attention_section(
    out: &mut Printer,
    plan: &Plan,
    changes: &dyn Changes,
    first: Option<&[usize]>,
    selector: &Selector,
    facts: &Facts,
    total: usize,
    limit: Option<usize>,
) -> io::Result<()> {
    if total == 0 {
        return Ok(());
    }
    attention_heading(out, total)?;
    let take = limit.unwrap_or(usize::MAX);
    let filter = selector.filter;
    let failed = Failed::default();
    let table = Table::lazy(ATTENTION_HEADER.to_vec(), |emit| {
        let mut n = 0;
        failed.keep(attention::items_at(
            plan,
            changes,
            first,
            selector,
            facts,
            &mut |item| {
                if n >= take {
                    return false;
                }
                n += 1;
                let (mark, cells) = attention_row(&item, filter);
                emit(mark, cells)
            },
        ));
    });
    out.block(Block::Table(table))?;
    failed.check()?;
    more(out, total.min(take), total, "items that need attention")
}

/// Who or what a skipped or conflicting entry is about, as far as the plan
/// says.
fn finding_about(f: &Finding, filter: &Filter) -> (Line, Line) {
    match f.kind {
        Kind::Membership => {
            let who = match f.user_id.as_deref() {
                Some(id) => user_line(&Named::new(id, f.username.as_deref()), None),
                None => Line::new(),
            };
            let what = match (f.group_id.as_deref(), f.membership) {
                (Some(g), Some(m)) => Line::new()
                    .text(format!("{} of group ", m.as_str()))
                    .append(named(&Named::new(g, f.group_name.as_deref()))),
                (Some(g), None) => Line::new()
                    .text("group ")
                    .append(named(&Named::new(g, f.group_name.as_deref()))),
                _ => Line::new(),
            };
            (who, what)
        }
        Kind::Binding => {
            let who = match (f.subject_type, f.subject_id.as_deref()) {
                (Some(SubjectType::User), Some(id)) => {
                    user_line(&Named::new(id, f.subject_name.as_deref()), None)
                }
                (Some(SubjectType::Group), Some(id)) => Line::new()
                    .text("group ")
                    .append(named(&Named::new(id, f.subject_name.as_deref()))),
                _ => Line::new(),
            };
            let what = match f.role_id.as_deref() {
                Some(role) => role_line(
                    &Named::new(role, f.role_name.as_deref()),
                    f.namespace.as_deref(),
                    filter,
                ),
                None => Line::new(),
            };
            (who, what)
        }
        Kind::Role | Kind::Group => (
            Line::new(),
            match &f.name {
                Some(name) => Line::new().text(format!("{} ", f.kind.as_str())).data(name),
                None => Line::new(),
            },
        ),
        Kind::User => (Line::new(), Line::new()),
        Kind::Tenant => (
            Line::new(),
            match &f.name {
                Some(name) => Line::new().text("tenant ").data(name),
                None => Line::new(),
            },
        ),
    }
}

/// What differs between the legacy document and the tenant's, as a
/// unified diff of their fields.
fn differences_diff(f: &Finding) -> String {
    let side = |legacy: bool| {
        let mut text = String::new();
        for d in &f.differences {
            let value = if legacy { &d.legacy } else { &d.tenant };
            let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
            for (i, line) in pretty.lines().enumerate() {
                if i == 0 {
                    text.push_str(&format!("{}: {line}\n", d.field));
                } else {
                    text.push_str(&format!("  {line}\n"));
                }
            }
        }
        text
    };
    let (legacy, tenant) = (side(true), side(false));
    similar::TextDiff::from_lines(&legacy, &tenant)
        .unified_diff()
        .context_radius(2)
        .header(
            &format!(
                "legacy {} {}{}",
                f.kind.as_str(),
                f.key,
                f.group_id
                    .as_deref()
                    .map(|g| format!(" (group {g})"))
                    .unwrap_or_default()
            ),
            "the tenant's document",
        )
        .to_string()
}

fn findings(
    out: &mut Printer,
    plan: &Plan,
    selector: &Selector,
    limit: Option<usize>,
) -> io::Result<()> {
    let lists = [
        (
            &plan.conflicts,
            Mark::Conflict,
            "Conflicts",
            ": the plan cannot be applied until they are resolved",
            "conflicts",
        ),
        (
            &plan.skipped,
            Mark::Plain,
            "Skipped",
            ": legacy entries that are not copied, with the reason",
            "skipped entries",
        ),
    ];
    let keep = |f: &&Finding| selector.filter.is_empty() || selector.matches_finding(f);
    let filter = selector.filter;
    for (list, mark, title, why, noun) in lists {
        let total = list.iter().filter(keep).count();
        if total == 0 {
            continue;
        }
        out.block(Block::Heading(format!("{title} ({total}){why}").into()))?;
        let with_detail = list.iter().filter(keep).any(|f| f.detail.is_some());
        let mut header = vec!["kind", "key", "who", "what", "reason"];
        if with_detail {
            header.push("detail");
        }
        let take = limit.unwrap_or(usize::MAX);
        let table = Table::lazy(header, move |emit| {
            for f in list.iter().filter(keep).take(take) {
                let (who, what) = finding_about(f, filter);
                let mut cells = vec![f.kind.as_str().into(), Line::new().data(&f.key), who, what];
                cells.push(Line::new().data(&f.reason));
                if with_detail {
                    cells.push(
                        f.detail
                            .as_deref()
                            .map_or_else(Line::new, |d| Line::new().data(d)),
                    );
                }
                if !emit(mark, cells) {
                    break;
                }
            }
        });
        out.block(Block::Table(table))?;
        more(out, total.min(take), total, noun)?;
        if mark == Mark::Conflict {
            let differing: Vec<&Finding> = list
                .iter()
                .filter(keep)
                .filter(|f| !f.differences.is_empty())
                .take(take)
                .collect();
            if !differing.is_empty() {
                out.block(Block::Heading(
                    "What differs: the legacy document against the tenant's".into(),
                ))?;
                let mut diff = String::new();
                for f in differing {
                    diff.push_str(&differences_diff(f));
                }
                out.block(Block::Diff(diff))?;
            }
        }
    }
    Ok(())
}

fn spread(out: &mut Printer, selection: &Selection, limit: Option<usize>) -> io::Result<()> {
    let take = limit.unwrap_or(usize::MAX);
    let roles = selection.spread.roles();
    out.block(Block::Heading(
        format!("Bindings to add by role ({})", roles.len()).into(),
    ))?;
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
    out.block(Block::Table(t))?;
    more(out, roles.len().min(take), roles.len(), "roles")?;

    let namespaces = selection.spread.namespaces();
    out.block(Block::Heading(
        format!("Bindings to add by namespace ({})", namespaces.len()).into(),
    ))?;
    let mut t = Table::new(vec!["namespace", "bindings"]).right(&[1]);
    for (ns, n) in namespaces.iter().take(take) {
        t.row(Mark::Plain, vec![namespace(*ns), n.to_string().into()]);
    }
    out.block(Block::Table(t))?;
    more(
        out,
        namespaces.len().min(take),
        namespaces.len(),
        "namespaces",
    )
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

fn change_cells(row: &Row) -> Vec<Line> {
    let optional = |s: Option<&str>| s.map_or_else(Line::new, |s| Line::new().data(s));
    match row {
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
    }
}

/// `first`: where the rows shown are, when known.
fn changes_table(
    out: &mut Printer,
    changes: &dyn Changes,
    first: Option<&[usize]>,
    selector: &Selector,
    op: Op,
    total: usize,
    limit: Option<usize>,
) -> io::Result<()> {
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
        Op::RemoveTenant => ("Tenant to remove", "tenants", vec!["key", "name"]),
        Op::RemoveRole => (
            "Roles to remove",
            "roles to remove",
            vec!["key", "role", "permissions", "description"],
        ),
        Op::RemoveGroup => (
            "Groups to remove",
            "groups to remove",
            vec!["key", "group", "description"],
        ),
        Op::RemoveMembership => (
            "Memberships to remove",
            "memberships to remove",
            vec!["user", "group", "membership"],
        ),
        Op::RemoveBinding => (
            "Bindings to remove",
            "bindings to remove",
            vec!["key", "subject", "name", "role", "namespace"],
        ),
    };
    out.block(Block::Heading(format!("{title} ({total})").into()))?;
    let take = limit.unwrap_or(usize::MAX);
    let failed = Failed::default();
    let table = Table::lazy(header, |emit| {
        let mark = if op.is_removal() {
            Mark::Plain
        } else {
            Mark::Add
        };
        let mut n = 0;
        let mut row = |row: Row| {
            n += 1;
            n <= take && emit(mark, change_cells(&row))
        };
        failed.keep(match first {
            Some(first) => {
                let mut more = true;
                changes.changes_at(first, &mut |change| {
                    more = more && row(Row::of(change));
                })
            }
            None => each_row(changes, selector, op, &mut row),
        });
    });
    out.block(Block::Table(table))?;
    failed.check()?;
    more(out, total.min(take), total, noun)
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

fn joins_note(group_is_new: bool, live: bool, revert: bool) -> &'static str {
    match (group_is_new, live) {
        (true, _) if revert => "membership the reverted plan added (the group is removed too)",
        (false, _) if revert => {
            "membership the reverted plan added; the group was there before, so its bindings in the tenant (not in this plan) are lost too"
        }
        (true, _) => "new membership (the group is created by this plan)",
        (false, true) => "new membership; the group's bindings in the tenant are listed too",
        (false, false) => {
            "new membership; the group exists already: its bindings in the tenant (not in this plan) apply too"
        }
    }
}

/// `revert`: the gain is a loss (a revert plan, docs/revert.md §5).
fn gain_cells(user: &Named, gain: &Gain, filter: &Filter, live: bool, revert: bool) -> Vec<Line> {
    match gain {
        Gain::Joins {
            group,
            membership,
            group_is_new,
        } => vec![
            named(user),
            Line::new()
                .text(format!("{} of group ", membership.as_str()))
                .append(named(group)),
            Line::new(),
            joins_note(*group_is_new, live, revert).into(),
        ],
        Gain::Role {
            role,
            namespace: ns,
            through,
            binding,
        } => vec![
            named(user),
            Line::new().text("role ").append(named(role)),
            reach(*ns, filter),
            through_line(through, binding),
        ],
    }
}

fn access_section(
    out: &mut Printer,
    plan: &Plan,
    changes: &dyn Changes,
    report: &Report,
    options: &ShowOptions,
    live: bool,
) -> io::Result<()> {
    // A revert plan's removals undo additions: what the additions gave is
    // what each user loses (docs/revert.md §5).
    let revert = plan.reverts.is_some();
    out.block(Block::Heading(
        Line::new()
            .text(if revert {
                "Access lost in tenant "
            } else {
                "Access gained in tenant "
            })
            .data(&plan.tenant)
            .text(format!(
                ", per user ({}, {})",
                count(report.total_users, "user", "users"),
                if revert {
                    count(report.total_gains, "loss", "losses")
                } else {
                    count(report.total_gains, "gain", "gains")
                }
            )),
    ))?;
    let intro = if revert {
        Line::new().text(
            "What each user loses when the revert removes what the reverted plan wrote: its memberships, and the roles its bindings gave, directly or through a group. Access the users have in the tenant by other ways (not written by that plan) is not counted and stays.",
        )
    } else if live {
        let mut intro = Line::new().text(
            "Read from the database now (--live): each user's current access in the tenant, with the members and bindings its groups already have there, is the \"before\"; the plan's changes make the \"after\". Bindings reach their namespace and the namespaces below it. The sync never removes access.",
        );
        if plan.summary.changes() == 0 {
            intro = intro.text(" This plan changes nothing.");
        }
        intro
    } else {
        let mut intro = Line::new().text(
            "As far as this plan knows: a plan records only what it adds, not the access users already have in the tenant, nor the members and bindings that groups already have there (show --live reads them). Bindings reach their namespace and the namespaces below it. The sync never removes access.",
        );
        if options.diff {
            intro = intro.text(
                " So the \"before\" side of each diff is empty: it is not the user's current access, which the plan does not know.",
            );
        }
        intro
    };
    out.block(Block::Para(intro))?;
    let shown = report.shown(options.limit);
    let shown_gains: usize = shown.iter().map(|(_, n)| n).sum();
    let filter = &options.filter;
    if report.total_users == 0 {
        out.block(Block::Para(
            if revert {
                "No user loses access through the changes shown."
            } else {
                "No user gains access through the changes shown."
            }
            .into(),
        ))?;
    } else if options.diff {
        // One diff per user, printed as it is made.
        for (listed, n) in &shown {
            out.block(Block::Diff(if revert {
                loss_diff(report, changes, listed, *n)?
            } else {
                access_diff(report, changes, listed, *n, live)?
            }))?;
        }
    } else {
        let shown = &shown;
        let header = if revert { "loses" } else { "gains" };
        let failed = Failed::default();
        let table = Table::lazy(vec!["user", header, "on", "through"], |emit| {
            for (listed, n) in shown {
                let read = report.with_gains(changes, listed, |gains| {
                    for gain in gains.iter().take(*n) {
                        let cells = gain_cells(&listed.user, gain, filter, live, revert);
                        // Colour marks additions only: a loss is plain.
                        let mark = if revert { Mark::Plain } else { Mark::Add };
                        if !emit(mark, cells) {
                            return false;
                        }
                    }
                    true
                });
                match read {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => return failed.keep(Err(e)),
                }
            }
        });
        out.block(Block::Table(table))?;
        failed.check()?;
    }
    if report.total_gains > shown_gains {
        let cut = shown.first().filter(|(l, n)| l.total > *n);
        let users = report.total_users - shown.len();
        let what = match cut {
            Some((l, n)) => format!(
                "gains, {} of them for {}",
                l.total - n,
                plain_named(&l.user)
            ),
            None => format!("gains, of {}", count(users, "more user", "more users")),
        };
        more(out, shown_gains, report.total_gains, &what)?;
    }
    let existing_groups = report.existing_groups();
    if !existing_groups.is_empty() {
        let mut line = Line::new().text(
            "Groups that already exist in the tenant gain bindings here; their current members, not named in this plan, gain them too (show --live names them): ",
        );
        let shown = existing_groups.len().min(shown.len().max(10));
        for (i, g) in existing_groups.iter().take(shown).enumerate() {
            if i > 0 {
                line = line.text(", ");
            }
            line = line.append(named(g));
        }
        if existing_groups.len() > shown {
            line = line.text(format!(" … and {} more", existing_groups.len() - shown));
        }
        out.block(Block::Para(line.text(".")))?;
    }
    Ok(())
}

fn plain_named(n: &Named) -> String {
    match n.name {
        Some(name) => format!("{name} ({})", n.id),
        None => n.id.to_string(),
    }
}

pub(super) fn gain_text(gain: &Gain) -> String {
    match gain {
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
                ", with the bindings it has in the tenant"
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
            namespace.map_or("all namespaces".to_string(), |ns| format!(
                "namespace {ns} and below"
            )),
            match through {
                Through::Direct => "a direct binding".to_string(),
                Through::Group(g) => format!("group {}", plain_named(g)),
            }
        ),
    }
}

/// One user's access as a unified diff, like `git diff` over a file: the
/// access before the plan (with `--live`) against the access after it.
/// A revert plan's diff for one user: the access the reverted plan gave,
/// removed.
fn loss_diff(
    report: &Report,
    changes: &dyn Changes,
    listed: &Listed,
    take: usize,
) -> io::Result<String> {
    let mut lines: Vec<String> = report.with_gains(changes, listed, |gains| {
        gains.iter().take(take).map(gain_text).collect()
    })?;
    lines.sort();
    let before: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let who = plain_named(&listed.user);
    Ok(similar::TextDiff::from_lines(before.as_str(), "")
        .unified_diff()
        .context_radius(1 << 20)
        .header(
            &format!("{who}: what the reverted plan gave"),
            &format!("{who}: after the revert"),
        )
        .to_string())
}

fn access_diff(
    report: &Report,
    changes: &dyn Changes,
    listed: &Listed,
    take: usize,
    live: bool,
) -> io::Result<String> {
    let mut before = String::new();
    for gain in report.before(listed) {
        before.push_str(&gain_text(&gain));
        before.push('\n');
    }
    let mut after_lines: Vec<String> = before.lines().map(str::to_string).collect();
    after_lines.extend(report.with_gains(changes, listed, |gains| {
        gains.iter().take(take).map(gain_text).collect::<Vec<_>>()
    })?);
    after_lines.sort();
    let mut after = String::new();
    for line in after_lines {
        after.push_str(&line);
        after.push('\n');
    }
    let mut sorted_before: Vec<&str> = before.lines().collect();
    sorted_before.sort();
    let before = sorted_before
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let who = plain_named(&listed.user);
    let before_label = if live {
        format!("{who}: now, in the database")
    } else {
        format!("{who}: before (nothing recorded in the plan)")
    };
    Ok(
        similar::TextDiff::from_lines(before.as_str(), after.as_str())
            .unified_diff()
            .context_radius(1 << 20)
            .header(&before_label, &format!("{who}: after the plan"))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{sync, RawDoc, Snapshot, SyncOptions};

    /// `plan`'s terminal summary as it was made while plans held their
    /// changes: `show`'s own attention section over the changes in memory.
    fn summary_in_memory(plan: &Plan, style: Style, rows: usize) -> String {
        let mut out = Vec::new();
        let mut printer = Printer::terminal(&mut out, style);
        for block in header(plan, &plan.digest) {
            printer.block(block).unwrap();
        }
        let filter = Filter::default();
        let selector = Selector::new(&plan.changes, &filter).unwrap();
        let gathered = StreamedFacts::gather(plan, &plan.changes, SHOWN_JOINERS).unwrap();
        let facts = gathered.facts(plan);
        let mut total = 0;
        attention::items_of(plan, &plan.changes, &selector, &facts, &mut |_| {
            total += 1;
            true
        })
        .unwrap();
        attention_section(
            &mut printer,
            plan,
            &plan.changes,
            None,
            &selector,
            &facts,
            total,
            Some(rows),
        )
        .unwrap();
        printer
            .block(Block::Table(summary_table(plan, Some(10))))
            .unwrap();
        drop(printer);
        String::from_utf8(out).unwrap()
    }

    fn demo() -> Plan {
        serde_json::from_str(include_str!("../../plans/demo-plan.json")).unwrap()
    }

    /// A group that twelve users join, the last a super admin, granted an
    /// admin-like role on all namespaces and a harmless one on `company`.
    fn crowded_group() -> Plan {
        let mut users: Vec<RawDoc> = (0..12)
            .map(|i| {
                let kind = if i == 11 { "SUPER_ADMIN" } else { "STANDARD" };
                RawDoc::new(
                    format!("u{i:02}"),
                    format!(
                        r#"{{"id":"u{i:02}","username":"user{i}@example.com","type":"{kind}","groups":["g"],"deleted":false}}"#
                    ),
                )
            })
            .collect();
        users.push(RawDoc::new(
            "bot",
            r#"{"id":"bot","username":"bot","type":"SERVICE_ACCOUNT","deleted":false}"#,
        ));
        let snapshot = Snapshot {
            tenants: vec![RawDoc::new(
                "default",
                r#"{"id":"default","name":"Default","deleted":false}"#,
            )],
            users,
            groups: vec![RawDoc::new(
                "g",
                r#"{"id":"g","name":"Crowd","deleted":false}"#,
            )],
            roles: vec![
                RawDoc::new(
                    "admin",
                    r#"{"id":"admin","name":"Admin","permissions":{"USER":["CREATE"],"FLOW":["READ"]},"deleted":false}"#,
                ),
                RawDoc::new(
                    "viewer",
                    r#"{"id":"viewer","name":"Viewer","permissions":{"FLOW":["READ"]},"deleted":false}"#,
                ),
            ],
            bindings: vec![
                RawDoc::new(
                    "b-1",
                    r#"{"id":"b-1","type":"GROUP","externalId":"g","roleId":"admin","deleted":false}"#,
                ),
                RawDoc::new(
                    "b-2",
                    r#"{"id":"b-2","type":"GROUP","externalId":"g","roleId":"viewer","namespaceId":"company","deleted":false}"#,
                ),
                RawDoc::new(
                    "b-3",
                    r#"{"id":"b-3","type":"USER","externalId":"u03","roleId":"viewer","namespaceId":"x","deleted":false}"#,
                ),
                RawDoc::new(
                    "b-4",
                    r#"{"id":"b-4","type":"USER","externalId":"bot","roleId":"viewer","namespaceId":"x","deleted":false}"#,
                ),
            ],
            ..Snapshot::default()
        };
        let options = SyncOptions::new("default");
        let result = sync(&snapshot, &options).unwrap();
        let source = crate::plan::Source {
            backend: "sqlite".into(),
            database: "sqlite:x.db".into(),
            identity: "sqlite:/x.db".into(),
        };
        let provenance = crate::plan::Provenance {
            created_at: "2026-11-27T12:00:00Z".into(),
            created_by: "ops".into(),
        };
        Plan::new(result, &options, source, provenance)
    }

    /// A tenant as `--live` reads it: bob is in Platform already, which
    /// has a binding there, and alice holds a role directly.
    fn live_tenant() -> Tenant {
        use super::super::access::TenantBinding;
        use crate::sync::Membership;
        let mut tenant = Tenant::default();
        tenant
            .memberships
            .insert("bob".into(), vec![("platform".into(), Membership::Member)]);
        tenant
            .memberships
            .insert("u05".into(), vec![("g".into(), Membership::Owner)]);
        for (key, subject_type, subject, role, ns) in [
            (
                "default_t-1",
                SubjectType::Group,
                "platform",
                "viewer",
                Some("company"),
            ),
            ("default_t-2", SubjectType::User, "alice", "admin", None),
            ("default_t-3", SubjectType::Group, "g", "viewer", Some("x")),
        ] {
            tenant.bindings.push(TenantBinding {
                key: key.into(),
                subject_type,
                subject_id: subject.into(),
                role_id: role.into(),
                namespace: ns.map(str::to_string),
            });
        }
        tenant
            .user_names
            .insert("bob".into(), "bob@example.com".into());
        tenant
            .group_names
            .insert("platform".into(), "Platform".into());
        tenant.role_names.insert("viewer".into(), "Viewer".into());
        tenant
    }

    /// The golden plans and a crowded group.
    fn plans_to_show() -> Vec<Plan> {
        vec![
            demo(),
            serde_json::from_str(include_str!("../../plans/demo-revert-plan.json")).unwrap(),
            serde_json::from_str(include_str!("../../tests/golden/rules-plan.json")).unwrap(),
            crowded_group(),
        ]
    }

    /// The options of `show` the comparisons try, but the format's.
    fn show_options(
        format: Format,
        filter: &Filter,
        limit: Option<usize>,
        diff: bool,
    ) -> ShowOptions {
        ShowOptions {
            format,
            diff,
            limit,
            filter: filter.clone(),
            style: Style {
                width: if diff { Some(90) } else { None },
                color: limit == Some(3),
            },
            fit_comment: limit.is_none(),
            everything: "everything".into(),
        }
    }

    /// `show`'s output `streamed` is `expected`, byte for byte; else both
    /// are told, with the options that made them.
    fn assert_same(streamed: &[u8], expected: &[u8], options: &ShowOptions) {
        assert!(
            streamed == expected,
            "{:?} {:?} {:?} diff {}:\n{}\n---\n{}",
            options.format,
            options.filter,
            options.limit,
            options.diff,
            String::from_utf8_lossy(streamed),
            String::from_utf8_lossy(expected)
        );
    }

    /// The filters the comparisons try.
    fn filters_to_show() -> Vec<Filter> {
        vec![
            Filter::default(),
            Filter {
                user: Some("alice".into()),
                ..Filter::default()
            },
            Filter {
                user: Some("user3@example.com".into()),
                ..Filter::default()
            },
            Filter {
                role: Some("Admin".into()),
                ..Filter::default()
            },
            Filter {
                namespace: Some("company.finance".into()),
                ..Filter::default()
            },
            Filter {
                op: Some(Op::AddMembership),
                ..Filter::default()
            },
            Filter {
                op: Some(Op::AddBinding),
                namespace: Some("x".into()),
                ..Filter::default()
            },
            Filter {
                op: Some(Op::RemoveBinding),
                ..Filter::default()
            },
        ]
    }

    /// `show` of every option over changes read one at a time from a plan
    /// file's bytes (the plan holding none) is `show` of the plan in memory,
    /// byte for byte: on the golden plans and a crowded group.
    #[test]
    fn show_from_the_files_bytes_is_show_from_memory() {
        use crate::plan::ChangesText;
        let filters = filters_to_show();
        let live = live_tenant();
        let mut compared = 0;
        for plan in plans_to_show() {
            let bytes = plan.to_pretty_json();
            let scanned = crate::plan::parse_without_changes(&bytes).unwrap();
            let head = &scanned.loaded.plan;
            assert!(head.changes.is_empty());
            assert_eq!(scanned.loaded.computed_digest, plan.digest);
            // One reader for every option, as `show` has: it learns where
            // each op's changes are on its first walk.
            let learnt = ChangesText::of_plan(&bytes).unwrap();
            for format in [Format::Table, Format::Markdown, Format::Json] {
                for filter in &filters {
                    for limit in [None, Some(1), Some(3), Some(50)] {
                        for diff in [false, true] {
                            for tenant in [None, Some(&live)] {
                                for digest in [plan.digest.as_str(), "sha256:altered"] {
                                    let options = show_options(format, filter, limit, diff);
                                    let mut expected = Vec::new();
                                    show(&mut expected, &plan, digest, &options, tenant).unwrap();
                                    let fresh = ChangesText::of_plan(&bytes).unwrap();
                                    for changes in [&learnt, &fresh] {
                                        let mut streamed = Vec::new();
                                        show_changes(
                                            &mut streamed,
                                            head,
                                            changes,
                                            digest,
                                            &options,
                                            tenant,
                                        )
                                        .unwrap();
                                        assert_same(&streamed, &expected, &options);
                                        compared += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 4 * 3 * 8 * 4 * 2 * 2 * 2 * 2);
    }

    /// `show` whose review's pass was made while the plan was checked
    /// (count_while_checking) is `show` of the plan in memory, byte for
    /// byte, for every option it takes; the others (`--user`, `--live`,
    /// JSON) and a plan laid out otherwise are handed back, to be read as
    /// before. The unit tests cut a plan into chunks of a few hundred
    /// bytes: the changes come in many batches.
    #[test]
    fn show_counted_while_checked_is_show_from_memory() {
        // --user reads the memberships first: not counted while checked.
        let filters: Vec<Filter> = filters_to_show()
            .into_iter()
            .filter(|f| f.user.is_none())
            .collect();
        let mut compared = 0;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        for plan in plans_to_show() {
            std::fs::write(&path, plan.to_pretty_json()).unwrap();
            for format in [Format::Table, Format::Markdown] {
                for filter in &filters {
                    for limit in [None, Some(1), Some(3), Some(50)] {
                        for diff in [false, true] {
                            let options = show_options(format, filter, limit, diff);
                            assert!(counts_while_checking(&options, false));
                            let mut expected = Vec::new();
                            show(&mut expected, &plan, &plan.digest, &options, None).unwrap();
                            let split = crate::plan::split_plan_file(&path).unwrap().unwrap();
                            let header = split.header().clone();
                            let (lean, counted) = count_while_checking(&header, &options, |w| {
                                split.check_watching(w)
                            });
                            let lean = lean.unwrap().expect("checked");
                            let counted = counted.expect("the plan's order");
                            assert_eq!(lean.loaded.computed_digest, plan.digest);
                            let mut streamed = Vec::new();
                            show_counted(
                                &mut streamed,
                                &lean.loaded.plan,
                                &*lean.changes().unwrap(),
                                &lean.loaded.computed_digest,
                                &options,
                                counted,
                            )
                            .unwrap();
                            assert_same(&streamed, &expected, &options);
                            compared += 1;
                        }
                    }
                }
            }
            // Not counted while checked: where the review needs more.
            let mut options = ShowOptions {
                format: Format::Json,
                diff: false,
                limit: None,
                filter: Filter::default(),
                style: Style::default(),
                fit_comment: false,
                everything: String::new(),
            };
            assert!(!counts_while_checking(&options, false));
            options.format = Format::Table;
            assert!(counts_while_checking(&options, false));
            assert!(!counts_while_checking(&options, true));
            options.filter.user = Some("alice".into());
            assert!(!counts_while_checking(&options, false));
            // Laid out otherwise: not split, read whole.
            std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();
            assert!(crate::plan::split_plan_file(&path).unwrap().is_err());
        }
        assert_eq!(compared, 4 * 2 * 6 * 4 * 2);
    }

    /// Changes that come out of a plan's order (a binding before the
    /// memberships that judge it) are not counted while checked: the
    /// review counts them afterwards, as before.
    #[test]
    fn changes_out_of_order_are_not_counted_while_checked() {
        let plan = crowded_group();
        let filter = Filter::default();
        let selector = Selector::without_changes(&filter).unwrap();
        let changes: Vec<(usize, Change)> = plan.changes.iter().cloned().enumerate().collect();
        let first_binding = changes
            .iter()
            .position(|(_, c)| c.op() == Op::AddBinding)
            .unwrap();
        let in_order = vec![changes.clone()];
        let mut given_back = 0;
        let counted = count_streamed(
            &plan,
            &selector,
            Some(10),
            &mut in_order.into_iter(),
            &mut |_| given_back += 1,
        );
        assert!(counted.is_some());
        assert_eq!(given_back, 1);
        let mut swapped = changes;
        let membership = swapped
            .iter()
            .position(|(_, c)| c.op() == Op::AddMembership)
            .unwrap();
        let moved = swapped.remove(membership);
        swapped.insert(first_binding, moved);
        let batches = vec![
            swapped[..first_binding].to_vec(),
            swapped[first_binding..].to_vec(),
        ];
        let counted = count_streamed(
            &plan,
            &selector,
            Some(10),
            &mut batches.into_iter(),
            &mut |_| given_back += 1,
        );
        assert!(counted.is_none());
        assert_eq!(given_back, 3);
    }

    #[test]
    fn plans_summary_from_changes_read_one_at_a_time_is_the_one_from_memory() {
        let crowded = crowded_group();
        assert_eq!(crowded.summary.add_membership, 12);
        for plan in [demo(), crowded] {
            let mut head = plan.clone();
            head.changes.clear();
            for rows in [0, 1, 3, 10] {
                for style in [
                    Style {
                        width: Some(100),
                        color: false,
                    },
                    Style {
                        width: None,
                        color: true,
                    },
                ] {
                    let streamed = summary(&head, &plan.changes, style, Some(rows)).unwrap();
                    assert_eq!(streamed, summary_in_memory(&plan, style, rows));
                }
            }
        }
        let text = summary(
            &crowded_group(),
            &crowded_group().changes,
            Style::default(),
            Some(10),
        )
        .unwrap();
        assert!(text.contains("and 2 more join in this plan"), "{text}");
        assert!(text.contains("super admin"), "{text}");
        assert!(text.contains("service account"), "{text}");
    }
}
