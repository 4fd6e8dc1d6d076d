//! One pass over JSON bytes, for the common case only (issue 15): whether
//! a text surely passes [`super::canonical::check`], and whether a
//! document's text is already canonical. Each answers `true` only when it
//! is sure; `false` means "ask the full reader", never "refused": the
//! callers then run the code that reads everything and says why. So what
//! is refused, and how, stays what the full reader says, and a plan as
//! the tool writes it is read once instead of once per level.
//!
//! What is sure here is deliberately less than JSON allows: nesting at
//! most [`MAX_DEPTH`] levels (serde_json's limit is 128, `check`'s 256),
//! member names without escapes (an escaped name may spell another one).

/// How deep a text is read here; deeper ones go to the full reader.
pub(crate) const MAX_DEPTH: usize = 64;

/// The names serde_json keeps for its own tokens (`canonical::check`
/// refuses them as member names).
const RESERVED: [&[u8]; 2] = [
    b"$serde_json::private::Number",
    b"$serde_json::private::RawValue",
];

/// Objects with more members than this are checked for a repeated name
/// by sorting; smaller ones by comparing each pair.
const PAIRWISE: usize = 12;

/// Whether `text` surely passes [`super::canonical::check`]: one JSON
/// value with white space around it, every string's escapes decodable,
/// no object giving a member twice, no reserved member name.
pub(crate) fn surely_fit(text: &str) -> bool {
    let mut scanner = Scanner::new(text.as_bytes());
    scanner.ws();
    if !scanner.value(0) {
        return false;
    }
    scanner.ws();
    scanner.pos == scanner.text.len()
}

/// [`surely_fit`] of an object's text, in the same one scan giving the
/// text of the values of the members `names` (each given at most once:
/// the scan refuses a name given twice), `None` for one that is absent.
/// `None` when `text` is not surely fit, or not an object.
pub(crate) fn surely_fit_members<'t, const N: usize>(
    text: &'t str,
    names: [&str; N],
) -> Option<[Option<&'t [u8]>; N]> {
    let text = text.as_bytes();
    let mut scanner = Scanner::new(text);
    let mut values = [None; N];
    scanner.ws();
    // As `value(0)` reads an object: its members one level deep.
    let fine = scanner.object_with(1, |scanner, member| {
        let start = scanner.pos;
        if !scanner.value(1) {
            return false;
        }
        if let Some(i) = names.iter().position(|n| n.as_bytes() == member) {
            values[i] = Some(&text[start..scanner.pos]);
        }
        true
    });
    scanner.ws();
    (fine && scanner.pos == text.len()).then_some(values)
}

/// Whether `text`, one JSON object's text, is already in canonical form
/// (`canonical::object` would give it back unchanged): no white space,
/// members in strictly increasing order of their bytes at every depth,
/// no escape in any string (an escaped string may be spelled otherwise
/// in canonical form), numbers as they are.
pub(crate) fn is_canonical_object(text: &str) -> bool {
    let mut scanner = Scanner::canonical(text.as_bytes());
    scanner.peek() == Some(b'{') && scanner.value(0) && scanner.pos == scanner.text.len()
}

/// Whether `text`, one JSON value's text, is surely in canonical form
/// already (see [`is_canonical_object`]).
pub(crate) fn is_canonical_value(text: &[u8]) -> bool {
    let mut scanner = Scanner::canonical(text);
    scanner.value(0) && scanner.pos == text.len()
}

/// The end of the string at `pos` in `text` (just past its closing
/// quote) when it is plain: no escape, no control character, so that its
/// text between the quotes is the string and its canonical form is the
/// text itself. `None` otherwise, or when there is no string at `pos`.
pub(crate) fn plain_string_end(text: &[u8], pos: usize) -> Option<usize> {
    if text.get(pos) != Some(&b'"') {
        return None;
    }
    let run = plain_run(&text[pos + 1..])?;
    (text[pos + 1 + run] == b'"').then_some(pos + run + 2)
}

/// The end of the object at `pos` in `text`, read as a value `depth`
/// containers deep, when it is in canonical form (see
/// [`is_canonical_object`]); `None` otherwise.
pub(crate) fn canonical_object_end(text: &[u8], pos: usize, depth: usize) -> Option<usize> {
    let mut scanner = Scanner::canonical(text);
    scanner.pos = pos;
    (scanner.peek() == Some(b'{') && scanner.value(depth)).then_some(scanner.pos)
}

/// A reader of JSON bytes that only says whether they are surely fine.
pub(crate) struct Scanner<'t> {
    text: &'t [u8],
    pub(crate) pos: usize,
    /// The names of the members of the objects being read, as ranges of
    /// `text`, innermost object last.
    names: Vec<(usize, usize)>,
    /// Scratch for sorting the names of a large object.
    sorted: Vec<(usize, usize)>,
    /// Canonical form asked for: no white space, names in order, no
    /// escapes.
    canonical: bool,
}

/// The bytes that end a run of plain string content: `"`, `\` and the
/// control characters JSON does not allow raw.
static STOPS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// How many bytes at the start of `rest` are plain string content
/// (`None`: all of them), eight at a time: a plan is mostly strings.
fn plain_run(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The lowest byte flagged by each test is a true one: it is the
    // first stop.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut at = 0;
    while let Some(eight) = rest.get(at..at + 8) {
        let v = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        let stops = zero(v ^ (ONES * b'"' as u64))
            | zero(v ^ (ONES * b'\\' as u64))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if stops != 0 {
            return Some(at + (stops.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    rest[at..]
        .iter()
        .position(|&b| STOPS[b as usize])
        .map(|run| at + run)
}

impl<'t> Scanner<'t> {
    pub(crate) fn new(text: &'t [u8]) -> Self {
        Scanner {
            text,
            pos: 0,
            names: Vec::new(),
            sorted: Vec::new(),
            canonical: false,
        }
    }

    /// A reader that also asks for canonical form (see
    /// [`is_canonical_object`]).
    pub(crate) fn canonical(text: &'t [u8]) -> Self {
        Scanner {
            canonical: true,
            ..Scanner::new(text)
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    /// Skips JSON white space (none in canonical form).
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// One value at `depth` (the number of containers around it).
    pub(crate) fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> bool {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return false,
        }
        if self.eat(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return false;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return false;
            }
            self.digits();
        }
        true
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string; `Some(escaped)` when it is fine, with whether it holds
    /// an escape. Every escape must decode (a `\u` high surrogate only
    /// with its low one).
    fn string(&mut self) -> Option<bool> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut escaped = false;
        loop {
            self.pos += plain_run(&self.text[self.pos..])?;
            match self.text[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Some(escaped);
                }
                b'\\' if !self.canonical => {
                    escaped = true;
                    self.pos += 1;
                    self.escape()?;
                }
                _ => return None,
            }
        }
    }

    /// The escape after a `\`.
    fn escape(&mut self) -> Option<()> {
        let byte = self.peek()?;
        self.pos += 1;
        match byte {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => match self.hex4()? {
                0xD800..=0xDBFF => {
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return None;
                    }
                    matches!(self.hex4()?, 0xDC00..=0xDFFF).then_some(())
                }
                0xDC00..=0xDFFF => None,
                _ => Some(()),
            },
            _ => None,
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        let mut n = 0u16;
        for &d in digits {
            n = n << 4 | (d as char).to_digit(16)? as u16;
        }
        self.pos += 4;
        Some(n)
    }

    fn separator(&mut self) {
        if !self.canonical {
            self.ws();
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.pos += 1;
        self.separator();
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            self.separator();
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
            self.separator();
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.object_with(depth, |scanner, _| scanner.value(depth))
    }

    /// The object at `pos`, `depth` deep, each member's value read by
    /// `member` (given the scanner at the value and the member's name),
    /// which says whether it is fine and leaves `pos` after it.
    pub(crate) fn object_with(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, &'t [u8]) -> bool,
    ) -> bool {
        if depth > MAX_DEPTH || self.peek() != Some(b'{') {
            return false;
        }
        self.pos += 1;
        self.separator();
        if self.eat(b'}') {
            return true;
        }
        let first = self.names.len();
        loop {
            if self.peek() != Some(b'"') {
                return false;
            }
            let start = self.pos + 1;
            // An escaped name may spell another member's name.
            if self.string() != Some(false) {
                return false;
            }
            let name = (start, self.pos - 1);
            if self.canonical {
                if let Some(&(s, e)) = self.names[first..].last() {
                    if self.text[s..e] >= self.text[name.0..name.1] {
                        return false;
                    }
                }
            }
            self.names.push(name);
            self.separator();
            if !self.eat(b':') {
                return false;
            }
            self.separator();
            let text = self.text;
            if !member(self, &text[name.0..name.1]) {
                return false;
            }
            self.separator();
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return false;
            }
            self.separator();
        }
        let fine = self.canonical || self.names_unique(first);
        self.names.truncate(first);
        fine
    }

    /// Whether the names from `first` on are all different and none is
    /// reserved.
    fn names_unique(&mut self, first: usize) -> bool {
        let text = self.text;
        let names = &self.names[first..];
        if names
            .iter()
            .any(|&(s, e)| e - s >= RESERVED[0].len() && RESERVED.contains(&&text[s..e]))
        {
            return false;
        }
        if names.len() <= PAIRWISE {
            return names.iter().enumerate().all(|(i, &(s, e))| {
                names[i + 1..]
                    .iter()
                    .all(|&(s2, e2)| text[s..e] != text[s2..e2])
            });
        }
        self.sorted.clear();
        self.sorted.extend_from_slice(names);
        self.sorted
            .sort_unstable_by(|a, b| text[a.0..a.1].cmp(&text[b.0..b.1]));
        self.sorted
            .windows(2)
            .all(|pair| text[pair[0].0..pair[0].1] != text[pair[1].0..pair[1].1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::canonical;
    use proptest::prelude::*;

    /// The texts `check`'s own tests and the hostile plans use: none is
    /// surely fit unless `check` accepts it.
    #[test]
    fn sure_only_of_what_check_accepts() {
        let cases = [
            r#"{"a":1,"b":[{"c":null}],"d":"\u00e9"}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a":{"b":[0,{"c":1,"c":2}]}}"#,
            r#"[{"x":1},{"y":1,"y":1}]"#,
            r#"{"\u0061":1,"a":2}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\ud83d\u0041"}"#,
            r#"{"a":"\ud83dx"}"#,
            r#"{"a":1"#,
            r#"{"a":{"$serde_json::private::Number":"1"}}"#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
            " 7 ",
            "{} x",
            "[1] ]",
            "\"\\ud800\"",
            "{\"a\":\"\t\"}",
            "{\"a\":\"\u{7f}\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":1e+5,"b":-0.0E-7,"c":123456789012345678901234567890}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{,}"#,
            r#"{"a" 1}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12G4"}"#,
            "\u{feff}{}",
            " { \"a\" : [ 1 , { } , [ ] ] , \"b\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\" } \n",
            "",
            "   ",
            "{\"a\":1}\u{0}",
        ];
        for text in cases {
            if surely_fit(text) {
                assert_eq!(canonical::check(text), Ok(()), "{text:?}");
            }
        }
        assert!(surely_fit(r#"{"a":"\ud83d\ude00","b":[1,2,{"c":true}]}"#));
        assert!(!surely_fit(r#"{"a":1,"a":1}"#));
        let wide: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
        assert!(surely_fit(&format!("{{{wide}\"z\":0}}")));
        assert!(!surely_fit(&format!("{{{wide}\"k7\":0}}")));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(surely_fit(&deep));
        let deeper = format!("[{deep}]");
        assert!(!surely_fit(&deeper));
        assert_eq!(canonical::check(&deeper), Ok(()));
    }

    #[test]
    fn canonical_only_when_the_canonical_form_is_the_same_text() {
        for text in [
            r#"{"a":1,"b":[1,{"c":"d"}],"e":{"f":null}}"#,
            r#"{"a":1e400,"b":0.10}"#,
            "{}",
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"{"a":"\n"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":[1, 2]}"#,
            r#"{"é":1,"z":2}"#,
            r#"{"z":1,"é":2}"#,
            r#"{"a":{"y":1,"x":2}}"#,
            "[1]",
            "{} ",
        ] {
            let fast = is_canonical_object(text);
            let slow = canonical::object(text).as_deref() == Some(text);
            assert!(!fast || slow, "{text}");
            if !text.contains(['\\', ' ']) && text.starts_with('{') && text.ends_with('}') {
                assert_eq!(fast, slow, "{text}");
            }
        }
    }

    fn any_text() -> impl Strategy<Value = String> {
        // Bits of JSON, some broken, put together at random.
        let piece = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just(" ".to_string()),
            Just("\"a\"".to_string()),
            Just("\"b\"".to_string()),
            Just("\"a\":".to_string()),
            Just("\"\\ud800\"".to_string()),
            Just("\"\\ud800\\udc00\"".to_string()),
            Just("\"\\u0061\"".to_string()),
            Just("1".to_string()),
            Just("-0.5e3".to_string()),
            Just("null".to_string()),
            "[a-z\\\\\"\u{1}]{0,3}".prop_map(|s| format!("\"{s}\"")),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn any_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            proptest::num::f64::NORMAL.prop_map(Value::from),
            "[a-z\"\\\\é\u{1}\u{7f}\u{1F600} ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zé ]{0,4}", inner, 0..16)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn a_plain_run_stops_at_the_first_quote_backslash_or_control() {
        let mut text = vec![b'a'; 40];
        for (at, stop) in (0..40).flat_map(|at| [(at, b'"'), (at, b'\\'), (at, 0x1f), (at, 0)]) {
            text.fill(b'a');
            text[at] = stop;
            if at + 3 < 40 {
                text[at + 1] = 0x20;
                text[at + 3] = b'"';
            }
            assert_eq!(plain_run(&text), Some(at), "{stop} at {at}");
        }
        text.fill(0xc3);
        assert_eq!(plain_run(&text), None);
        assert_eq!(plain_run("é\u{7f} ~".as_bytes()), None);
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Sure only of what `check` accepts, whatever the bytes.
        #[test]
        fn never_sure_of_what_check_refuses(text in any_text()) {
            if surely_fit(&text) {
                prop_assert_eq!(canonical::check(&text), Ok(()));
            }
            if is_canonical_object(&text) {
                let object = canonical::object(&text);
                prop_assert_eq!(object.as_deref(), Some(text.as_str()));
            }
        }

        /// Sure of any JSON serde_json writes, compact or pretty (names
        /// without escapes), and of its canonical form being canonical.
        #[test]
        fn sure_of_what_serde_json_writes(value in any_value()) {
            let compact = value.to_string();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            prop_assert!(surely_fit(&compact));
            prop_assert!(surely_fit(&pretty));
            if value.is_object() && !compact.contains('\\') {
                prop_assert!(is_canonical_object(&canonical::to_string(&value)));
            }
        }
    }
}
