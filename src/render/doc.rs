//! A small document model, printed as it is built, for a terminal or as
//! markdown.
//!
//! Text that comes from the plan (names, ids, reasons) is kept apart from
//! the tool's own words ([`Frag::Data`] vs [`Frag::Text`]) because a plan is
//! untrusted: in a terminal its control characters are escaped (an escape
//! sequence must not repaint what the reviewer sees), in markdown it is set
//! in code spans (a name must not become a link, a mention or a table cell).
//!
//! Blocks are printed one at a time, and a table's rows may be produced on
//! demand ([`Rows::Lazy`]): a million rows are never held as text. A
//! terminal table reads its rows twice, once to measure its columns and once
//! to print them; markdown reads them once.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use anstyle::{AnsiColor, Style as Paint};
use unicode_width::UnicodeWidthStr;

/// How a terminal output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Wrap tables and paragraphs to this many columns; `None`: never wrap
    /// (piped output).
    pub width: Option<u16>,
    /// Colour marks additions green and conflicts red; nothing else.
    pub color: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frag {
    /// The tool's own words.
    Text(Cow<'static, str>),
    /// Text from the plan or the store.
    Data(String),
    /// A line break inside a table cell.
    Break,
}

/// A run of fragments: one paragraph, title or table cell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line(pub Vec<Frag>);

impl Line {
    pub fn new() -> Self {
        Line(Vec::new())
    }

    pub fn text(mut self, text: impl Into<Cow<'static, str>>) -> Self {
        self.0.push(Frag::Text(text.into()));
        self
    }

    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.0.push(Frag::Data(data.into()));
        self
    }

    pub fn br(mut self) -> Self {
        self.0.push(Frag::Break);
        self
    }

    pub fn append(mut self, other: Line) -> Self {
        self.0.extend(other.0);
        self
    }
}

impl From<&'static str> for Line {
    fn from(text: &'static str) -> Self {
        Line::new().text(text)
    }
}

impl From<String> for Line {
    fn from(text: String) -> Self {
        Line::new().text(text)
    }
}

/// What a table row stands for, shown in colour when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Plain,
    Add,
    Conflict,
}

/// Gives each row to `emit`, which answers whether it wants more.
pub type RowSource<'a> = Box<dyn Fn(&mut dyn FnMut(Mark, Vec<Line>) -> bool) + 'a>;

/// A table's rows: held, or produced on demand (as often as a printer
/// needs them, the same each time).
pub enum Rows<'a> {
    Held(Vec<(Mark, Vec<Line>)>),
    Lazy(RowSource<'a>),
}

impl Rows<'_> {
    fn each(&self, emit: &mut dyn FnMut(Mark, Vec<Line>) -> bool) {
        match self {
            Rows::Held(rows) => {
                for (mark, cells) in rows {
                    if !emit(*mark, cells.clone()) {
                        break;
                    }
                }
            }
            Rows::Lazy(source) => source(emit),
        }
    }
}

pub struct Table<'a> {
    pub header: Vec<&'static str>,
    pub rows: Rows<'a>,
    /// Columns aligned right (counts).
    pub right: Vec<usize>,
}

impl<'a> Table<'a> {
    pub fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Rows::Held(Vec::new()),
            right: Vec::new(),
        }
    }

    /// A table whose rows `source` produces when the printer asks.
    pub fn lazy(
        header: Vec<&'static str>,
        source: impl Fn(&mut dyn FnMut(Mark, Vec<Line>) -> bool) + 'a,
    ) -> Self {
        Table {
            header,
            rows: Rows::Lazy(Box::new(source)),
            right: Vec::new(),
        }
    }

    pub fn right(mut self, columns: &[usize]) -> Self {
        self.right = columns.to_vec();
        self
    }

    pub fn row(&mut self, mark: Mark, cells: Vec<Line>) {
        match &mut self.rows {
            Rows::Held(rows) => rows.push((mark, cells)),
            Rows::Lazy(_) => unreachable!("rows are added to held tables only"),
        }
    }
}

pub enum Block<'a> {
    /// The document's title.
    Title(Line),
    Heading(Line),
    Para(Line),
    /// Label / value pairs.
    Fields(Vec<(&'static str, Line, Mark)>),
    Table(Table<'a>),
    /// "… and N more": what a limit left out.
    More(Line),
    /// A unified diff, printed as it is.
    Diff(String),
    /// Something the reviewer must not miss.
    Warning(Vec<Line>),
}

/// A value from the plan or the store as a terminal or markdown shows it:
/// through the one gate for untrusted text, cut short past
/// [`crate::escape::MAX_FIELD_CHARS`] characters (the json format has it
/// all).
pub fn clean(s: &str) -> Cow<'_, str> {
    crate::escape::field(s)
}

/// Columns a string takes on a terminal (wide CJK and emoji take two).
pub fn display_width(s: &str) -> usize {
    s.width()
}

fn plain(line: &Line) -> String {
    let mut out = String::new();
    for frag in &line.0 {
        match frag {
            Frag::Text(t) => out.push_str(t),
            Frag::Data(d) if d.is_empty() => out.push_str("\"\""),
            Frag::Data(d) => out.push_str(&clean(d)),
            Frag::Break => out.push('\n'),
        }
    }
    out
}

/// Where wrapping may break an identifier: after these, as in
/// `heidi@|example.|com` or `company.|finance`, never inside a word.
const BREAK_AFTER: [char; 8] = ['.', '@', '-', '/', ':', ',', '=', ';'];

/// Words for textwrap: runs up to a space (with the spaces) or up to and
/// including an identifier boundary.
fn identifier_words(line: &str) -> Box<dyn Iterator<Item = textwrap::core::Word<'_>> + '_> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        let end = i + c.len_utf8();
        let ends_word = match next {
            None => false,
            Some(' ') => false,
            Some(_) if c == ' ' => true,
            Some(_) => BREAK_AFTER.contains(&c),
        };
        if ends_word {
            words.push(textwrap::core::Word::from(&line[start..end]));
            start = end;
        }
    }
    if start < line.len() {
        words.push(textwrap::core::Word::from(&line[start..]));
    }
    Box::new(words.into_iter())
}

/// Wraps `text` to `width` columns at spaces and identifier boundaries;
/// a word longer than a line is cut as a last resort.
pub fn wrap_lines(text: &str, width: usize) -> Vec<String> {
    let options = textwrap::Options::new(width.max(1))
        .word_separator(textwrap::WordSeparator::Custom(identifier_words))
        .word_splitter(textwrap::WordSplitter::NoHyphenation)
        .wrap_algorithm(textwrap::WrapAlgorithm::FirstFit)
        .break_words(true);
    textwrap::wrap(text, options)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

fn painted(text: &str, paint: Option<Paint>) -> String {
    match paint {
        Some(p) if !text.is_empty() => format!("{}{text}{}", p.render(), p.render_reset()),
        _ => text.to_string(),
    }
}

fn paint_for(mark: Mark, color: bool) -> Option<Paint> {
    match (color, mark) {
        (true, Mark::Add) => Some(Paint::new().fg_color(Some(AnsiColor::Green.into()))),
        (true, Mark::Conflict) => Some(Paint::new().fg_color(Some(AnsiColor::Red.into())).bold()),
        _ => None,
    }
}

/// Characters a pull-request comment holds (GitHub's limit).
pub const MARKDOWN_COMMENT_CHARS: usize = 65_536;

/// What a cut markdown review says at its end, at most this long.
const CUT_NOTE_RESERVE: usize = 700;

enum Output {
    Terminal(Style),
    Markdown {
        /// Characters still allowed, when the output must fit a comment.
        budget: Option<usize>,
        /// The budget ran out: nothing more is printed.
        cut: bool,
    },
}

/// Prints blocks as they come.
pub struct Printer<'w> {
    out: &'w mut dyn Write,
    output: Output,
    blocks: usize,
    error: Option<io::Error>,
}

impl<'w> Printer<'w> {
    pub fn terminal(out: &'w mut dyn Write, style: Style) -> Self {
        Printer {
            out,
            output: Output::Terminal(style),
            blocks: 0,
            error: None,
        }
    }

    /// GitHub-flavoured markdown; with `fit_comment`, the output stops
    /// before a pull-request comment's limit and says how to get the rest.
    pub fn markdown(out: &'w mut dyn Write, fit_comment: bool) -> Self {
        Printer {
            out,
            output: Output::Markdown {
                budget: fit_comment.then_some(MARKDOWN_COMMENT_CHARS - CUT_NOTE_RESERVE),
                cut: false,
            },
            blocks: 0,
            error: None,
        }
    }

    /// Whether a markdown budget ran out.
    pub fn is_cut(&self) -> bool {
        matches!(self.output, Output::Markdown { cut: true, .. })
    }

    /// Writes `text` unless an earlier write failed or the budget is spent;
    /// false when nothing more should be written.
    fn put(&mut self, text: &str) -> bool {
        if self.error.is_some() {
            return false;
        }
        if let Output::Markdown { budget, cut } = &mut self.output {
            if *cut {
                return false;
            }
            if let Some(left) = budget {
                let n = text.chars().count();
                if n > *left {
                    *cut = true;
                    return false;
                }
                *left -= n;
            }
        }
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            self.error = Some(e);
            return false;
        }
        true
    }

    /// Writes text that must appear whatever the budget (the end of a
    /// cut document).
    fn put_always(&mut self, text: &str) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(text.as_bytes()) {
                self.error = Some(e);
            }
        }
    }

    pub fn block(&mut self, block: Block) -> io::Result<()> {
        if self.blocks > 0 && !(matches!(block, Block::More(_)) && self.is_terminal()) {
            self.put("\n");
        }
        self.blocks += 1;
        match &self.output {
            Output::Terminal(style) => {
                let style = *style;
                self.terminal_block(&block, style)
            }
            Output::Markdown { .. } => self.markdown_block(&block),
        }
        self.status()
    }

    fn is_terminal(&self) -> bool {
        matches!(self.output, Output::Terminal(_))
    }

    fn status(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ends the document: a cut markdown review says so, and how to get
    /// all of it. `rest` is the command that prints everything.
    pub fn finish(&mut self, rest: &str) -> io::Result<()> {
        if self.is_cut() {
            let note = format!(
                "\n_The review stops here to fit a pull-request comment ({} characters at most). `{rest}` prints all of it (attach it as a file); `--user`, `--role`, `--namespace` and `--op` narrow it._\n",
                MARKDOWN_COMMENT_CHARS
            );
            self.put_always(&note);
        }
        self.out.flush()?;
        self.status()
    }

    fn terminal_block(&mut self, block: &Block, style: Style) {
        match block {
            Block::Title(line) => {
                let title = plain(line);
                let rule = "=".repeat(display_width(&title));
                self.put(&format!("{title}\n{rule}\n"));
            }
            Block::Heading(line) => {
                let heading = plain(line);
                let rule = "-".repeat(display_width(&heading));
                self.put(&format!("{heading}\n{rule}\n"));
            }
            Block::Para(line) => {
                let text = plain(line);
                let text = match style.width {
                    Some(w) => wrap_lines(&text, usize::from(w)).join("\n"),
                    None => text,
                };
                self.put(&format!("{text}\n"));
            }
            Block::Fields(fields) => {
                let pad = fields.iter().map(|(l, _, _)| l.len()).max().unwrap_or(0);
                let mut out = String::new();
                for (label, value, mark) in fields {
                    let text = plain(value);
                    let lines = match style.width {
                        Some(w) => wrap_lines(&text, usize::from(w).saturating_sub(pad + 4)),
                        None => vec![text],
                    };
                    for (i, line) in lines.iter().enumerate() {
                        let line = painted(line, paint_for(*mark, style.color));
                        let label = if i == 0 { *label } else { "" };
                        let _ = writeln!(out, "  {label:<pad$}  {line}");
                    }
                }
                self.put(&out);
            }
            Block::Table(table) => self.terminal_table(table, style),
            Block::More(line) => {
                self.put(&format!("{}\n", plain(line)));
            }
            Block::Diff(diff) => {
                for line in diff.lines() {
                    let line = clean(line);
                    let mark = if line.starts_with('+') && !line.starts_with("+++") {
                        Mark::Add
                    } else {
                        Mark::Plain
                    };
                    if !self.put(&format!(
                        "{}\n",
                        painted(&line, paint_for(mark, style.color))
                    )) {
                        break;
                    }
                }
            }
            Block::Warning(lines) => {
                let text: Vec<String> = lines.iter().map(plain).collect();
                let bar = "!".repeat(
                    text.iter()
                        .map(|l| display_width(l) + 4)
                        .max()
                        .unwrap_or(0)
                        .min(usize::from(style.width.unwrap_or(u16::MAX)))
                        .max(20),
                );
                let paint = paint_for(Mark::Conflict, style.color);
                let mut out = format!("{}\n", painted(&bar, paint));
                for line in &text {
                    let _ = writeln!(out, "{}", painted(&format!("!! {line}"), paint));
                }
                let _ = writeln!(out, "{}", painted(&bar, paint));
                self.put(&out);
            }
        }
    }

    fn terminal_table(&mut self, table: &Table, style: Style) {
        let columns = table.header.len();
        // Pass 1: the natural width of each column, and whether any cell
        // spans lines.
        let mut natural: Vec<usize> = table.header.iter().map(|h| display_width(h)).collect();
        let mut multiline = false;
        table.rows.each(&mut |_, cells| {
            for (i, cell) in cells.iter().enumerate().take(columns) {
                let text = plain(cell);
                multiline |= text.contains('\n');
                let w = text.split('\n').map(display_width).max().unwrap_or(0);
                natural[i] = natural[i].max(w);
            }
            true
        });
        let widths = match style.width {
            Some(w) => fit_columns(&natural, usize::from(w)),
            None => natural.clone(),
        };
        let wraps = widths.iter().zip(&natural).any(|(w, n)| w < n);
        let separated = multiline || wraps;

        let rule = |left: &str, fill: &str, mid: &str, right: &str| {
            let mut s = String::from(left);
            for (i, w) in widths.iter().enumerate() {
                if i > 0 {
                    s.push_str(mid);
                }
                s.push_str(&fill.repeat(w + 2));
            }
            s.push_str(right);
            s.push('\n');
            s
        };
        let header: Vec<String> = table.header.iter().map(|h| h.to_string()).collect();
        let mut head = rule("┌", "─", "┬", "┐");
        head.push_str(&self.table_row(&header, &widths, &table.right, Mark::Plain, style));
        head.push_str(&rule("╞", "═", "╪", "╡"));
        if !self.put(&head) {
            return;
        }
        // Pass 2: print.
        let between = rule("├", "╌", "┼", "┤");
        let mut first = true;
        table.rows.each(&mut |mark, cells| {
            let mut text = String::new();
            if separated && !first {
                text.push_str(&between);
            }
            first = false;
            let cells: Vec<String> = cells.iter().take(columns).map(plain).collect();
            text.push_str(&self.table_row(&cells, &widths, &table.right, mark, style));
            self.put(&text)
        });
        self.put(&rule("└", "─", "┴", "┘"));
    }

    fn table_row(
        &self,
        cells: &[String],
        widths: &[usize],
        right: &[usize],
        mark: Mark,
        style: Style,
    ) -> String {
        let wrapped: Vec<Vec<String>> = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let text = cells.get(i).map_or("", String::as_str);
                let fits = text.split('\n').all(|l| display_width(l) <= w);
                if fits {
                    text.split('\n').map(str::to_string).collect()
                } else {
                    wrap_lines(text, w)
                }
            })
            .collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut out = String::new();
        for row in 0..height {
            out.push('│');
            for (i, lines) in wrapped.iter().enumerate() {
                if i > 0 {
                    out.push('┆');
                }
                let text = lines.get(row).map_or("", String::as_str);
                let pad = widths[i].saturating_sub(display_width(text));
                let paint = match mark {
                    Mark::Add if i == 0 => paint_for(mark, style.color),
                    Mark::Conflict => paint_for(mark, style.color),
                    _ => None,
                };
                let text = painted(text, paint);
                if right.contains(&i) {
                    let _ = write!(out, " {}{text} ", " ".repeat(pad));
                } else {
                    let _ = write!(out, " {text}{} ", " ".repeat(pad));
                }
            }
            out.push_str("│\n");
        }
        out
    }

    fn markdown_block(&mut self, block: &Block) {
        match block {
            Block::Title(line) => {
                self.put(&format!("# {}\n", markdown_line(line, false)));
            }
            Block::Heading(line) => {
                self.put(&format!("## {}\n", markdown_line(line, false)));
            }
            Block::Para(line) => {
                self.put(&format!("{}\n", markdown_line(line, false)));
            }
            Block::Fields(fields) => {
                let mut out = String::new();
                for (label, value, _) in fields {
                    let _ = writeln!(out, "- **{label}:** {}", markdown_line(value, false));
                }
                self.put(&out);
            }
            Block::Table(table) => {
                let mut head = String::from("|");
                for h in &table.header {
                    let _ = write!(head, " {h} |");
                }
                head.push_str("\n|");
                for i in 0..table.header.len() {
                    head.push_str(if table.right.contains(&i) {
                        "---:|"
                    } else {
                        "---|"
                    });
                }
                head.push('\n');
                if !self.put(&head) {
                    return;
                }
                let columns = table.header.len();
                table.rows.each(&mut |_, cells| {
                    let mut row = String::from("|");
                    for cell in cells.iter().take(columns) {
                        let _ = write!(row, " {} |", markdown_line(cell, true));
                    }
                    row.push('\n');
                    self.put(&row)
                });
            }
            Block::More(line) => {
                self.put(&format!("_{}_\n", markdown_line(line, false)));
            }
            Block::Diff(diff) => {
                let diff = clean_lines(diff);
                let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                // A diff cut in the middle would read as complete: all or
                // nothing.
                self.put(&format!("{fence}diff\n{diff}{fence}\n"));
            }
            Block::Warning(lines) => {
                let mut out = String::from("> [!CAUTION]\n");
                for line in lines {
                    let _ = writeln!(out, "> **{}**  ", markdown_line(line, false));
                }
                self.put(&out);
            }
        }
    }
}

/// Column widths that fit `total` columns of terminal, borders included:
/// columns narrower than a fair share keep their width, the others share
/// what is left equally. Never below a few characters, even if the table
/// then overflows a very narrow terminal.
fn fit_columns(natural: &[usize], total: usize) -> Vec<usize> {
    const MIN: usize = 4;
    let n = natural.len();
    let borders = 3 * n + 1;
    let room = total.saturating_sub(borders);
    if natural.iter().sum::<usize>() <= room || n == 0 {
        return natural.to_vec();
    }
    let mut widths = vec![0; n];
    let mut open: Vec<usize> = (0..n).collect();
    let mut left = room;
    loop {
        let share = left / open.len().max(1);
        let (fit, wide): (Vec<usize>, Vec<usize>) =
            open.iter().partition(|&&i| natural[i] <= share);
        if fit.is_empty() {
            let extra = left - share * wide.len();
            for (k, &i) in wide.iter().enumerate() {
                // The remainder goes to the first wide columns.
                widths[i] = (share + usize::from(k < extra)).max(MIN);
            }
            break;
        }
        for &i in &fit {
            widths[i] = natural[i];
            left -= natural[i];
        }
        open = wide;
        if open.is_empty() {
            break;
        }
    }
    widths
}

/// A markdown code span that holds `s` whatever backticks it contains.
fn code_span(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let ticks = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || s.starts_with(' ') && s.ends_with(' ') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

fn markdown_line(line: &Line, in_table: bool) -> String {
    let mut out = String::new();
    for frag in &line.0 {
        match frag {
            Frag::Text(t) => out.push_str(t),
            Frag::Data(d) if d.is_empty() => out.push_str("\"\""),
            Frag::Data(d) => out.push_str(&code_span(&clean(d))),
            Frag::Break if in_table => out.push_str("<br>"),
            Frag::Break => out.push_str("  \n"),
        }
    }
    if in_table {
        out.replace('|', "\\|")
    } else {
        out
    }
}

fn clean_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&clean(line));
        out.push('\n');
    }
    out
}

/// Prints `blocks` for a terminal into a string (tests).
#[cfg(test)]
pub fn terminal_string(blocks: Vec<Block>, style: Style) -> String {
    let mut out = Vec::new();
    let mut printer = Printer::terminal(&mut out, style);
    for block in blocks {
        printer.block(block).expect("writing to a Vec cannot fail");
    }
    String::from_utf8(out).expect("the printer writes UTF-8")
}

/// Prints `blocks` as markdown into a string (tests).
#[cfg(test)]
pub fn markdown_string(blocks: Vec<Block>) -> String {
    let mut out = Vec::new();
    let mut printer = Printer::markdown(&mut out, false);
    for block in blocks {
        printer.block(block).expect("writing to a Vec cannot fail");
    }
    String::from_utf8(out).expect("the printer writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_made_visible() {
        assert_eq!(clean("plain é"), "plain é");
        let long = format!("{}\u{1b}", "é".repeat(crate::escape::MAX_FIELD_CHARS + 10));
        assert_eq!(
            clean(&long),
            format!(
                "{}… (11 more characters)",
                "é".repeat(crate::escape::MAX_FIELD_CHARS)
            )
        );
        assert_eq!(clean("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\u{202e}y\nz"), "x\\u{202e}y\\u{a}z");
        assert_eq!(clean("c1\u{9b}31m"), "c1\\u{9b}31m");
    }

    #[test]
    fn code_spans_survive_backticks() {
        assert_eq!(code_span("a"), "`a`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
    }

    #[test]
    fn plan_text_cannot_break_a_markdown_table() {
        let mut table = Table::new(vec!["name"]);
        table.row(
            Mark::Add,
            vec![Line::new().data("a | b [x](http://evil) @team")],
        );
        let md = markdown_string(vec![Block::Table(table)]);
        assert!(md.contains("`a \\| b [x](http://evil) @team`"), "{md}");
        assert_eq!(md.lines().count(), 3, "{md}");
    }

    #[test]
    fn colour_only_when_asked_and_only_on_marked_rows() {
        let table = || {
            let mut table = Table::new(vec!["key", "reason"]);
            table.row(Mark::Add, vec!["added".into(), "x".into()]);
            table.row(Mark::Plain, vec!["plain".into(), "y".into()]);
            vec![Block::Table(table)]
        };
        let coloured = terminal_string(
            table(),
            Style {
                width: Some(60),
                color: true,
            },
        );
        assert!(coloured.contains("\x1b["));
        let plain_row = coloured.lines().find(|l| l.contains("plain")).unwrap();
        assert!(!plain_row.contains("\x1b["), "{plain_row:?}");
        let piped = terminal_string(table(), Style::default());
        assert!(!piped.contains('\x1b'));
    }

    #[test]
    fn paragraphs_wrap_at_the_width_only() {
        let para = || vec![Block::Para(Line::from("word ".repeat(30)))];
        assert_eq!(terminal_string(para(), Style::default()).lines().count(), 1);
        let wrapped = terminal_string(
            para(),
            Style {
                width: Some(40),
                color: false,
            },
        );
        assert!(wrapped.lines().count() > 3);
        assert!(wrapped.lines().all(|l| display_width(l) <= 40), "{wrapped}");
    }

    #[test]
    fn no_wrapping_without_a_width() {
        let doc = || {
            let mut table = Table::new(vec!["long"]);
            table.row(Mark::Plain, vec!["word ".repeat(40).into()]);
            vec![Block::Table(table)]
        };
        assert_eq!(terminal_string(doc(), Style::default()).lines().count(), 5);
        let narrow = terminal_string(
            doc(),
            Style {
                width: Some(40),
                color: false,
            },
        );
        assert!(narrow.lines().all(|l| display_width(l) <= 40), "{narrow}");
    }

    #[test]
    fn identifiers_wrap_at_their_boundaries_never_mid_word() {
        assert_eq!(
            wrap_lines("heidi@example.com (heidi)", 14),
            ["heidi@example.", "com (heidi)"]
        );
        assert_eq!(
            wrap_lines("company.finance.reports", 16),
            ["company.finance.", "reports"]
        );
        // A word longer than the line is cut, as a last resort.
        assert_eq!(wrap_lines("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn wide_characters_count_double() {
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("é"), 1);
        let mut table = Table::new(vec!["name", "x"]);
        table.row(
            Mark::Plain,
            vec![Line::new().data("日本語の名前"), "1".into()],
        );
        let text = terminal_string(vec![Block::Table(table)], Style::default());
        let widths: Vec<usize> = text.lines().map(display_width).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn columns_share_the_width_fairly() {
        assert_eq!(fit_columns(&[5, 10], 40), [5, 10]);
        // 3 columns: 10 border characters, 30 left: 5 keeps its width, the
        // two wide ones share 25.
        assert_eq!(fit_columns(&[5, 40, 40], 40), [5, 13, 12]);
    }

    #[test]
    fn a_markdown_budget_cuts_between_rows_and_says_so() {
        let mut out = Vec::new();
        let mut printer = Printer::markdown(&mut out, true);
        let table = Table::lazy(vec!["n"], |emit| {
            for i in 0..100_000 {
                if !emit(Mark::Plain, vec![format!("row {i}").into()]) {
                    break;
                }
            }
        });
        printer.block(Block::Table(table)).unwrap();
        printer.block(Block::Para("after".into())).unwrap();
        printer
            .finish("sync-access show plan.json --format markdown --limit 0")
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.chars().count() <= MARKDOWN_COMMENT_CHARS,
            "{}",
            text.len()
        );
        assert!(text.contains("The review stops here"));
        assert!(!text.contains("after"));
        let last_row = text.lines().rfind(|l| l.starts_with("| row")).unwrap();
        assert!(last_row.ends_with(" |"), "whole rows only: {last_row}");
    }
}
