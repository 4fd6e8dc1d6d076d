//! A small document model, printed for a terminal or as markdown.
//!
//! Text that comes from the plan (names, ids, reasons) is kept apart from
//! the tool's own words ([`Frag::Data`] vs [`Frag::Text`]) because a plan is
//! untrusted: in a terminal its control characters are escaped (an escape
//! sequence must not repaint what the reviewer sees), in markdown it is set
//! in code spans (a name must not become a link, a mention or a table cell).

use std::borrow::Cow;
use std::fmt::Write as _;

use comfy_table::{presets, Cell, CellAlignment, Color, ContentArrangement, Table as Comfy};

/// How a terminal output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Wrap tables to this many columns; `None`: never wrap (piped output).
    pub width: Option<u16>,
    /// Colour adds green and conflicts red; nothing else is coloured.
    pub color: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frag {
    /// The tool's own words.
    Text(Cow<'static, str>),
    /// Text from the plan.
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<(Mark, Vec<Line>)>,
    /// Columns aligned right (counts).
    pub right: Vec<usize>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
            right: Vec::new(),
        }
    }

    pub fn right(mut self, columns: &[usize]) -> Self {
        self.right = columns.to_vec();
        self
    }

    pub fn row(&mut self, mark: Mark, cells: Vec<Line>) {
        self.rows.push((mark, cells));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// The document's title.
    Title(Line),
    Heading(Line),
    Para(Line),
    /// Label / value pairs.
    Fields(Vec<(&'static str, Line, Mark)>),
    Table(Table),
    /// "… and N more": what a limit left out.
    More(Line),
    /// A unified diff, printed as it is.
    Diff(String),
    /// Something the reviewer must not miss.
    Warning(Vec<Line>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Doc(pub Vec<Block>);

impl Doc {
    pub fn push(&mut self, block: Block) {
        self.0.push(block);
    }
}

/// Escapes what could disturb a terminal or hide text: control characters
/// and bidirectional overrides are written as `\u{..}`. Past
/// [`MAX_DATA_CHARS`] characters, the rest is counted, not shown.
pub fn clean(s: &str) -> Cow<'_, str> {
    // A hostile plan may hold megabytes in one string; the table layout
    // works harder than linearly on such lines (a 4 MB name took 20 s to
    // show), and no reviewer reads that far. The json format has it all.
    if let Some((cut, _)) = s.char_indices().nth(MAX_DATA_CHARS) {
        let rest = s[cut..].chars().count();
        let head = clean(&s[..cut]);
        return Cow::Owned(format!("{head}… ({rest} more characters)"));
    }
    let suspicious = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(suspicious) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if suspicious(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The characters of one value from the plan that a terminal or markdown
/// rendering shows; the rest is counted. Identifiers are at most 250.
const MAX_DATA_CHARS: usize = 2000;

fn paint(text: &str, mark: Mark, color: bool) -> String {
    match (color, mark) {
        (true, Mark::Add) => format!("\x1b[32m{text}\x1b[0m"),
        (true, Mark::Conflict) => format!("\x1b[1;31m{text}\x1b[0m"),
        _ => text.to_string(),
    }
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

/// For a terminal, or a pipe when `style.width` is `None`.
pub fn terminal(doc: &Doc, style: Style) -> String {
    let mut out = String::new();
    for (i, block) in doc.0.iter().enumerate() {
        if i > 0 && !matches!(block, Block::More(_)) {
            out.push('\n');
        }
        match block {
            Block::Title(line) => {
                let title = plain(line);
                let _ = writeln!(out, "{title}");
                let _ = writeln!(out, "{}", "=".repeat(display_width(&title)));
            }
            Block::Heading(line) => {
                let heading = plain(line);
                let _ = writeln!(out, "{heading}");
                let _ = writeln!(out, "{}", "-".repeat(display_width(&heading)));
            }
            Block::Para(line) => {
                let _ = writeln!(out, "{}", wrap(&plain(line), style.width));
            }
            Block::Fields(fields) => {
                let pad = fields.iter().map(|(l, _, _)| l.len()).max().unwrap_or(0);
                for (label, value, mark) in fields {
                    let value = paint(&plain(value), *mark, style.color);
                    let _ = writeln!(out, "  {label:<pad$}  {value}");
                }
            }
            Block::Table(table) => out.push_str(&terminal_table(table, style)),
            Block::More(line) => {
                let _ = writeln!(out, "{}", plain(line));
            }
            Block::Diff(diff) => {
                for line in diff.lines() {
                    let line = clean(line);
                    let mark = if line.starts_with('+') && !line.starts_with("+++") {
                        Mark::Add
                    } else {
                        Mark::Plain
                    };
                    let _ = writeln!(out, "{}", paint(&line, mark, style.color));
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
                let _ = writeln!(out, "{}", paint(&bar, Mark::Conflict, style.color));
                for line in &text {
                    let _ = writeln!(
                        out,
                        "{}",
                        paint(&format!("!! {line}"), Mark::Conflict, style.color)
                    );
                }
                let _ = writeln!(out, "{}", paint(&bar, Mark::Conflict, style.color));
            }
        }
    }
    out
}

/// Greedy word wrap at `width` columns; `None` leaves the text as it is.
fn wrap(text: &str, width: Option<u16>) -> Cow<'_, str> {
    let Some(width) = width.map(usize::from).filter(|w| *w >= 20) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut column = 0;
    for word in text.split(' ') {
        let len = display_width(word);
        if column > 0 && column + 1 + len > width {
            out.push('\n');
            column = 0;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
    }
    Cow::Owned(out)
}

fn display_width(s: &str) -> usize {
    s.chars().count()
}

fn terminal_table(table: &Table, style: Style) -> String {
    let mut t = Comfy::new();
    t.force_no_tty();
    if style.color {
        t.enforce_styling();
    }
    match style.width {
        Some(width) => {
            t.set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width);
        }
        None => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    t.set_header(table.header.iter().map(Cell::new));
    for (mark, cells) in &table.rows {
        t.add_row(cells.iter().enumerate().map(|(i, line)| {
            let cell = Cell::new(plain(line));
            match (i, mark) {
                (0, Mark::Add) => cell.fg(Color::Green),
                (_, Mark::Conflict) => cell.fg(Color::Red),
                _ => cell,
            }
        }));
    }
    for &i in &table.right {
        if let Some(column) = t.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    // Rows of several lines need separators, or they run into each other.
    let multiline = table
        .rows
        .iter()
        .any(|(_, cells)| cells.iter().any(|c| c.0.contains(&Frag::Break)));
    let widths = t.column_max_content_widths();
    let natural: usize = widths.iter().map(|w| usize::from(*w) + 3).sum::<usize>() + 1;
    let wraps = style.width.is_some_and(|w| natural > usize::from(w));
    t.load_preset(if multiline || wraps {
        presets::UTF8_FULL
    } else {
        presets::UTF8_FULL_CONDENSED
    });
    format!("{t}\n")
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

/// For pasting into a pull request: GitHub-flavoured markdown.
pub fn markdown(doc: &Doc) -> String {
    let mut out = String::new();
    for (i, block) in doc.0.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match block {
            Block::Title(line) => {
                let _ = writeln!(out, "# {}", markdown_line(line, false));
            }
            Block::Heading(line) => {
                let _ = writeln!(out, "## {}", markdown_line(line, false));
            }
            Block::Para(line) => {
                let _ = writeln!(out, "{}", markdown_line(line, false));
            }
            Block::Fields(fields) => {
                for (label, value, _) in fields {
                    let _ = writeln!(out, "- **{label}:** {}", markdown_line(value, false));
                }
            }
            Block::Table(table) => {
                let mut t = Comfy::new();
                t.force_no_tty()
                    .load_preset(presets::ASCII_MARKDOWN)
                    .set_content_arrangement(ContentArrangement::Disabled)
                    .set_header(table.header.clone());
                for (_, cells) in &table.rows {
                    t.add_row(cells.iter().map(|c| markdown_line(c, true)));
                }
                for &i in &table.right {
                    if let Some(column) = t.column_mut(i) {
                        column.set_cell_alignment(CellAlignment::Right);
                    }
                }
                let _ = writeln!(out, "{t}");
            }
            Block::More(line) => {
                let _ = writeln!(out, "_{}_", markdown_line(line, false));
            }
            Block::Diff(diff) => {
                let diff = clean_lines(diff);
                let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                let _ = writeln!(out, "{fence}diff\n{diff}{fence}");
            }
            Block::Warning(lines) => {
                let _ = writeln!(out, "> [!CAUTION]");
                for line in lines {
                    let _ = writeln!(out, "> **{}**  ", markdown_line(line, false));
                }
            }
        }
    }
    out
}

fn clean_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&clean(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_made_visible() {
        assert_eq!(clean("plain é"), "plain é");
        let long = format!("{}\u{1b}", "é".repeat(MAX_DATA_CHARS + 10));
        assert_eq!(
            clean(&long),
            format!("{}… (11 more characters)", "é".repeat(MAX_DATA_CHARS))
        );
        assert_eq!(clean("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\u{202e}y\nz"), "x\\u{202e}y\\u{a}z");
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
        let md = markdown(&Doc(vec![Block::Table(table)]));
        assert!(md.contains("`a \\| b [x](http://evil) @team`"), "{md}");
        assert_eq!(md.lines().count(), 3, "{md}");
    }

    #[test]
    fn colour_only_when_asked_and_only_on_marked_rows() {
        let mut table = Table::new(vec!["key", "reason"]);
        table.row(Mark::Add, vec!["added".into(), "x".into()]);
        table.row(Mark::Plain, vec!["plain".into(), "y".into()]);
        let doc = Doc(vec![Block::Table(table)]);
        let coloured = terminal(
            &doc,
            Style {
                width: Some(60),
                color: true,
            },
        );
        assert!(coloured.contains("\x1b["));
        let plain_row = coloured.lines().find(|l| l.contains("plain")).unwrap();
        assert!(!plain_row.contains("\x1b["), "{plain_row:?}");
        let piped = terminal(&doc, Style::default());
        assert!(!piped.contains('\x1b'));
    }

    #[test]
    fn paragraphs_wrap_at_the_width_only() {
        let para = Doc(vec![Block::Para(Line::from("word ".repeat(30)))]);
        assert_eq!(terminal(&para, Style::default()).lines().count(), 1);
        let wrapped = terminal(
            &para,
            Style {
                width: Some(40),
                color: false,
            },
        );
        assert!(wrapped.lines().count() > 3);
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 40),
            "{wrapped}"
        );
    }

    #[test]
    fn no_wrapping_without_a_width() {
        let mut table = Table::new(vec!["long"]);
        table.row(Mark::Plain, vec!["word ".repeat(40).into()]);
        let doc = Doc(vec![Block::Table(table)]);
        assert_eq!(terminal(&doc, Style::default()).lines().count(), 5);
        let narrow = terminal(
            &doc,
            Style {
                width: Some(40),
                color: false,
            },
        );
        assert!(narrow.lines().all(|l| l.chars().count() <= 40), "{narrow}");
    }
}
