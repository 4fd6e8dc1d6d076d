//! The one gate for untrusted text: what a plan file or the store says
//! reaches a terminal, an error message or a log line only through
//! [`untrusted`] (or [`field`], which also cuts a long value short).
//!
//! A terminal obeys control characters: ESC and CSI repaint the screen or
//! retitle the window, BEL rings, NUL and DEL hide what follows on some
//! terminals. Bidirectional marks reorder what a reviewer reads, and
//! invisible characters make two different names look alike (`defa\u{200b}ult`
//! is not `default`). Each such character is written as `\u{hex}`, so the
//! reader sees that it is there and which one it is. docs/untrusted-text.md
//! lists them.
//!
//! A backslash that would start `\u{` is itself written `\u{5c}`: every
//! `\u{` in escaped text is then an escape, and a value that spells out
//! `\u{1b}` cannot pass for one that holds an ESC.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The characters of one value that a message or a rendering shows; the
/// rest is counted. Identifiers are at most 250.
pub const MAX_FIELD_CHARS: usize = 2000;

/// Whether `c` is escaped: control characters (C0, DEL, C1), line and
/// paragraph separators, bidirectional marks, overrides and isolates, and
/// characters that show as nothing (format characters, zero-width ones,
/// fillers, variation selectors, tags).
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Soft hyphen, combining grapheme joiner, Arabic letter mark.
            '\u{ad}' | '\u{34f}' | '\u{61c}'
            // Hangul fillers and Khmer inherent vowels: letters that show
            // as blank.
            | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{3164}' | '\u{ffa0}'
            // Mongolian free variation selectors and vowel separator.
            | '\u{180b}'..='\u{180f}'
            // Zero-width space, non-joiner, joiner; LRM and RLM.
            | '\u{200b}'..='\u{200f}'
            // Line and paragraph separators; embeddings and overrides.
            | '\u{2028}'..='\u{202e}'
            // Word joiner, invisible operators, isolates, deprecated
            // format characters.
            | '\u{2060}'..='\u{206f}'
            // Variation selectors (an emoji loses its colour form: a fair
            // price for names that cannot hide a difference).
            | '\u{fe00}'..='\u{fe0f}'
            // Byte order mark / zero-width no-break space.
            | '\u{feff}'
            // Unassigned specials; interlinear annotation marks.
            | '\u{fff0}'..='\u{fffb}'
            // Shorthand format controls, musical format controls.
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            // Tags, the variation selectors supplement, and the rest of
            // that plane's block of format characters.
            | '\u{e0000}'..='\u{e0fff}'
        )
}

/// `text` with every character of [`is_escaped`] written as `\u{hex}`, and
/// a backslash before `u{` as `\u{5c}`. Borrowed when nothing needs it.
pub fn untrusted(text: &str) -> Cow<'_, str> {
    if !needs_escaping(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (i, c) in text.char_indices() {
        if is_escaped(c) || (c == '\\' && text[i + 1..].starts_with("u{")) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escaping(text: &str) -> bool {
    text.chars().any(is_escaped) || text.contains("\\u{")
}

/// As [`untrusted`], for one value in a message or a rendering: past
/// [`MAX_FIELD_CHARS`] characters the rest is counted, not shown. A hostile
/// plan may hold megabytes in one string; no reader reads that far.
pub fn field(text: &str) -> Cow<'_, str> {
    capped(text, untrusted)
}

/// `escape(text)`, or of its first [`MAX_FIELD_CHARS`] characters with the
/// rest counted.
fn capped(text: &str, escape: for<'t> fn(&'t str) -> Cow<'t, str>) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((cut, _)) => {
            let rest = text[cut..].chars().count();
            Cow::Owned(format!(
                "{}… ({rest} more characters)",
                escape(&text[..cut])
            ))
        }
        None => escape(text),
    }
}

/// The last net before stderr, for the tool's own messages of several
/// lines: each line break is kept, every other character of [`is_escaped`]
/// escaped, and a line is cut past [`MAX_FIELD_CHARS`] characters. The
/// untrusted parts of a message were escaped where they were formatted in
/// (so no line break of a plan's reaches here raw); this net leaves their
/// escapes as they are (no backslash is touched, unlike [`untrusted`]) and
/// catches what came from elsewhere (a driver's text).
pub fn lines(text: &str) -> Cow<'_, str> {
    let plain =
        |line: &str| !line.chars().any(is_escaped) && line.chars().nth(MAX_FIELD_CHARS).is_none();
    if text.split('\n').all(plain) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(|line| capped(line, controls).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Every character of [`is_escaped`] escaped; backslashes left alone.
fn controls(text: &str) -> Cow<'_, str> {
    escape_chars(text, is_escaped)
}

/// The net for a log line: as [`lines`], but a line break too is escaped,
/// except the one that ends the line, so one event is one line whatever
/// its fields hold.
pub fn log_line(text: &str) -> Cow<'_, str> {
    let body = text.strip_suffix('\n');
    match escape_chars(body.unwrap_or(text), is_escaped) {
        Cow::Owned(mut escaped) if body.is_some() => {
            escaped.push('\n');
            Cow::Owned(escaped)
        }
        Cow::Owned(escaped) => Cow::Owned(escaped),
        Cow::Borrowed(_) => Cow::Borrowed(text),
    }
}

fn escape_chars(text: &str, escaped: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escaped(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_invisible_characters_are_written_as_escapes() {
        assert_eq!(untrusted("plain é 日本 🚀"), "plain é 日本 🚀");
        assert!(matches!(untrusted("plain"), Cow::Borrowed(_)));
        assert_eq!(
            untrusted("sha256:\u{1b}]0;PWNED\u{7}\u{1b}[2J"),
            "sha256:\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J"
        );
        assert_eq!(untrusted("a\0b\u{7f}c\u{9b}"), "a\\u{0}b\\u{7f}c\\u{9b}");
        assert_eq!(untrusted("defa\u{200b}ult"), "defa\\u{200b}ult");
        assert_eq!(untrusted("x\u{202e}y\u{2066}z"), "x\\u{202e}y\\u{2066}z");
        assert_eq!(
            untrusted("a\u{feff}\u{ad}\u{2060}b"),
            "a\\u{feff}\\u{ad}\\u{2060}b"
        );
        assert_eq!(untrusted("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(untrusted("vs\u{fe0f}"), "vs\\u{fe0f}");
        assert_eq!(untrusted("line\u{2028}sep"), "line\\u{2028}sep");
        assert_eq!(untrusted("a\nb\tc"), "a\\u{a}b\\u{9}c");
    }

    #[test]
    fn a_spelled_out_escape_cannot_pass_for_a_real_one() {
        // The text `\u{1b}` (six characters) and an ESC are told apart.
        assert_eq!(untrusted("\\u{1b}"), "\\u{5c}u{1b}");
        assert_eq!(untrusted("\u{1b}"), "\\u{1b}");
        // Other backslashes are left as they are.
        assert_eq!(untrusted("C:\\dir\\x"), "C:\\dir\\x");
        assert!(matches!(untrusted("a\\b"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_long_field_is_cut_and_counted() {
        let long = format!("{}\u{1b}", "é".repeat(MAX_FIELD_CHARS + 10));
        assert_eq!(
            field(&long),
            format!("{}… (11 more characters)", "é".repeat(MAX_FIELD_CHARS))
        );
        assert_eq!(field("a\u{1b}"), "a\\u{1b}");
    }

    #[test]
    fn lines_keep_their_breaks_and_log_lines_keep_only_the_last() {
        assert_eq!(lines("one\u{1b}\ntwo\n"), "one\\u{1b}\ntwo\n");
        // Escapes made where the text was formatted in are left alone.
        assert_eq!(lines(&untrusted("\u{1b}\\u{7}")), "\\u{1b}\\u{5c}u{7}");
        assert!(matches!(lines("one\ntwo"), Cow::Borrowed(_)));
        let long = format!("{}\u{7}", "x".repeat(MAX_FIELD_CHARS + 1));
        assert_eq!(
            lines(&format!("short\n{long}")),
            format!(
                "short\n{}… (2 more characters)",
                "x".repeat(MAX_FIELD_CHARS)
            )
        );
        assert_eq!(log_line("a\nb\u{7}\n"), "a\\u{a}b\\u{7}\n");
        assert!(matches!(log_line("plain\n"), Cow::Borrowed(_)));
    }
}
