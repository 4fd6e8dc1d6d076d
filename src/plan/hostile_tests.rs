//! Plans mutated at the JSON level (issue 11): hostile strings anywhere,
//! numbers beyond f64, deep nesting, members given twice, the digest
//! recomputed or not. Loading, `show` in every format, the digest check,
//! the approval check and `verify`'s comparison never panic, and nothing
//! they print holds a raw control, bidirectional or invisible character
//! (docs/untrusted-text.md).

use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use super::parse;
use crate::render::{self, Filter, Format, ShowOptions, Style};
use crate::signing::policy::{self, Flags, Policy};
use crate::sync::{unmet_changes, Snapshot};

const GOLDEN: &str = include_str!("../../tests/golden/rules-plan.json");

/// What must never reach a terminal raw: every control but the line
/// break, bidirectional marks, overrides and isolates, invisible
/// characters. Spelled out here, not taken from `escape`, so that a
/// character dropped from the gate's list fails this test.
fn raw_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

fn assert_clean(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| raw_char(*c)) {
        panic!("{what}: a raw U+{:04X} in {text:?}", c as u32);
    }
}

/// Characters an attacker reaches for, mixed into arbitrary ones.
const HOSTILE: &[char] = &[
    '\u{0}',
    '\u{7}',
    '\u{8}',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{9b}',
    '\u{ad}',
    '\u{200b}',
    '\u{200d}',
    '\u{200e}',
    '\u{2028}',
    '\u{202e}',
    '\u{2066}',
    '\u{2069}',
    '\u{fe0f}',
    '\u{feff}',
    '\u{e0041}',
    '\\',
    '"',
    '`',
    '|',
    '{',
    'u',
];

fn hostile_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![proptest::sample::select(HOSTILE), any::<char>()],
        0..16,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[derive(Debug, Clone)]
enum Mutation {
    /// The n-th string of the plan (modulo their count) becomes this.
    String(usize, String),
    /// The n-th number becomes this text (beyond f64, or negative).
    Number(usize, &'static str),
    /// The n-th value becomes arrays and objects this deep.
    Nesting(usize, usize),
    /// A member of the n-th object is given twice, first with this value.
    Duplicate(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), hostile_string()).prop_map(|(i, s)| Mutation::String(i, s)),
        1 => (
            any::<usize>(),
            proptest::sample::select(vec![
                "1e400",
                "-1e400",
                "18446744073709551616",
                "-1",
                "1.5",
                "123456789012345678901234567890.5"
            ])
        )
            .prop_map(|(i, n)| Mutation::Number(i, n)),
        1 => (any::<usize>(), 1usize..400).prop_map(|(i, d)| Mutation::Nesting(i, d)),
        2 => (any::<usize>(), hostile_string()).prop_map(|(i, s)| Mutation::Duplicate(i, s)),
    ]
}

/// JSON pointers of the values of `value` that `pick` selects.
fn pointers(value: &Value, at: String, pick: &dyn Fn(&Value) -> bool, out: &mut Vec<String>) {
    if pick(value) {
        out.push(at.clone());
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), pick, out);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(item, format!("{at}/{key}"), pick, out);
            }
        }
        _ => {}
    }
}

fn nth(value: &Value, n: usize, pick: &dyn Fn(&Value) -> bool) -> Option<String> {
    let mut all = Vec::new();
    pointers(value, String::new(), pick, &mut all);
    (!all.is_empty()).then(|| all[n % all.len()].clone())
}

/// The plan's text after `mutations`; its digest recomputed first when
/// `reseal` (so the checks behind the digest are reached too).
fn mutated(mutations: &[Mutation], reseal: bool) -> String {
    let mut plan: Value = serde_json::from_str(GOLDEN).unwrap();
    // Mutations that a `Value` can hold first; the others on the text.
    let mut text_edits = Vec::new();
    for m in mutations {
        match m {
            Mutation::String(n, s) => {
                if let Some(p) = nth(&plan, *n, &Value::is_string) {
                    *plan.pointer_mut(&p).unwrap() = Value::String(s.clone());
                }
            }
            other => text_edits.push(other.clone()),
        }
    }
    if reseal {
        plan["digest"] = Value::String(super::digest_of(&plan));
    }
    let mut text = serde_json::to_string(&plan).unwrap();
    for m in text_edits {
        match m {
            Mutation::Number(n, number) => {
                // The n-th `:<digit>` of the text.
                let spots: Vec<usize> = text
                    .match_indices(':')
                    .map(|(i, _)| i + 1)
                    .filter(|&i| text[i..].starts_with(|c: char| c.is_ascii_digit()))
                    .collect();
                if !spots.is_empty() {
                    let at = spots[n % spots.len()];
                    let end = at
                        + text[at..]
                            .find(|c: char| !(c.is_ascii_digit() || ".eE+-".contains(c)))
                            .unwrap_or(text.len() - at);
                    text.replace_range(at..end, number);
                }
            }
            Mutation::Nesting(n, depth) => {
                let spots: Vec<usize> = text.match_indices(':').map(|(i, _)| i + 1).collect();
                let at = spots[n % spots.len()];
                let deep = format!("{}1{},", "[{\"a\":".repeat(depth), "}]".repeat(depth));
                // A nested value in front of the member's own: the member
                // is then given twice, or the nesting is refused.
                text.insert_str(at, &deep);
            }
            Mutation::Duplicate(n, value) => {
                let spots: Vec<usize> = text.match_indices("{\"").map(|(i, _)| i + 1).collect();
                let at = spots[n % spots.len()];
                let Some(len) = text[at + 1..].find('"') else {
                    continue;
                };
                let key = text[at..=at + 1 + len].to_string();
                let first = format!("{key}:{},", Value::String(value));
                text.insert_str(at, &first);
            }
            Mutation::String(..) => unreachable!(),
        }
    }
    text
}

/// Everything a terminal gets from a plan read from `bytes`.
fn exercise(bytes: &[u8]) {
    let path = Path::new("plan.json");
    // `apply` and `approve` read it without keeping its changes: the same
    // plan, or a refusal as clean (its words may differ when the file has
    // more than one fault: the changes are read last).
    super::tests::same_reading(bytes, false).unwrap();
    if let Err(why) = super::parse_without_changes(bytes) {
        assert_clean("refusal without the changes", &why);
    }
    let loaded = match parse(bytes) {
        Ok(loaded) => loaded,
        Err(why) => return assert_clean("refusal", &why),
    };
    if let Err(e) = loaded.require_intact(path) {
        assert_clean("digest check", e.message());
    }
    let plan = &loaded.plan;
    for format in [Format::Table, Format::Markdown, Format::Json] {
        let options = ShowOptions {
            format,
            diff: format == Format::Markdown,
            limit: Some(20),
            filter: Filter::default(),
            style: Style {
                width: Some(80),
                color: false,
            },
            fit_comment: true,
            everything: "sync-access show plan.json --format markdown --limit 0".into(),
        };
        let mut out = Vec::new();
        render::show(&mut out, plan, &loaded.computed_digest, &options, None).unwrap();
        assert_clean("show", &String::from_utf8(out).unwrap());
    }
    assert_clean("summary", &render::plan_summary_for_stderr(plan));
    let policy = Policy::from_flags(&Flags::default()).unwrap();
    match policy::check(plan, &policy, path, 1_795_780_800) {
        Ok(verdict) => {
            for why in &verdict.not_counted {
                assert_clean("not counted", &render::clean(why));
            }
        }
        Err(e) => assert_clean("approval check", e.message()),
    }
    let _ = unmet_changes(&Snapshot::default(), &plan.tenant, &plan.changes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mutated_plans_never_panic_nor_print_raw(
        mutations in proptest::collection::vec(mutation(), 1..4),
        reseal in any::<bool>(),
    ) {
        exercise(mutated(&mutations, reseal).as_bytes());
    }
}

#[test]
fn every_string_of_the_plan_holding_an_escape_is_shown_escaped() {
    // Deterministic: each string in turn, resealed, holds ESC and friends.
    let plan: Value = serde_json::from_str(GOLDEN).unwrap();
    let mut all = Vec::new();
    pointers(&plan, String::new(), &Value::is_string, &mut all);
    for n in 0..all.len() {
        let text = mutated(
            &[Mutation::String(
                n,
                "x\u{1b}]0;PWNED\u{7}\u{202e}\u{200b}\n".into(),
            )],
            true,
        );
        exercise(text.as_bytes());
    }
}
