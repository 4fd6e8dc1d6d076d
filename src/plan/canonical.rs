//! The one canonical-JSON writer (docs/plan-format.md §10): object keys
//! sorted by their UTF-8 bytes at every depth, no insignificant whitespace,
//! serde_json's minimal string escaping, numbers as they were read. The
//! digest of a plan, the digest of its changes, a change's line in a diff
//! and the text of every document are all written here, so they cannot
//! drift apart; and [`check`], the one reader's check that a JSON text
//! means one thing to every reader (store documents and plan files).
//!
//! Any `Serialize` value goes through [`to_writer`]: scalars are written by
//! serde_json; a struct's fields and a map's entries are buffered and
//! written in key order; sequences stream. Two kinds of values are written
//! as they come, without buffering:
//! - a struct whose serde name is [`IN_ORDER`] declares its fields in
//!   canonical order (a plan's sealed members: a million changes are not
//!   buffered); the writer checks that they are;
//! - a `serde_json::value::RawValue`, which in this crate only a
//!   [`Document`](crate::sync::Document) holds, and a document's text is
//!   canonical by construction (`object`, `with_member`); and a number,
//!   which serde_json (`arbitrary_precision`) hands over as its text.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write;

use serde::ser::{self, Impossible, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// The serde name of a struct whose fields are declared in canonical order:
/// `#[serde(rename = "$sync_access::canonical::in_order")]`.
pub const IN_ORDER: &str = "$sync_access::canonical::in_order";

/// The name serde_json gives a `RawValue` (its text is the only field).
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// The name serde_json gives a `Number` under its `arbitrary_precision`
/// feature (Cargo.toml): a struct whose one field is the number's text.
const NUMBER: &str = "$serde_json::private::Number";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

/// Writes the canonical JSON of `value`.
pub fn to_writer<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> Result<(), Error> {
    let mut pool = Vec::new();
    value.serialize(&mut Canonical {
        out,
        pool: &mut pool,
    })
}

/// A canonical writer that keeps its buffers from one value to the next
/// (a plan's changes are a million small objects).
#[derive(Default)]
pub(crate) struct Reusing {
    pool: Pool,
}

impl Reusing {
    /// Writes the canonical JSON of `value`, as [`to_writer`] does.
    pub(crate) fn write<W: Write, T: Serialize + ?Sized>(
        &mut self,
        out: W,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(&mut Canonical {
            out,
            pool: &mut self.pool,
        })
    }
}

/// The canonical JSON of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    to_writer(&mut out, value).expect("our values serialise to memory");
    out
}

/// The canonical JSON of `value`, as text.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    String::from_utf8(to_vec(value)).expect("JSON is UTF-8")
}

/// Buffers for the entries of objects, reused across objects: a plan's
/// changes are a million small objects.
type Pool = Vec<Scratch>;

#[derive(Default)]
struct Scratch {
    /// `"key":value` of each entry, one after the other.
    bytes: Vec<u8>,
    /// Each entry's key (unescaped, to sort by) and its range in `bytes`.
    entries: Vec<(Cow<'static, str>, usize, usize)>,
}

struct Canonical<'p, W> {
    out: W,
    pool: &'p mut Pool,
}

impl<'p, W: Write> Canonical<'p, W> {
    /// serde_json's writer for one scalar.
    fn json(&mut self) -> serde_json::Serializer<&mut W> {
        serde_json::Serializer::new(&mut self.out)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        Ok(self.out.write_all(bytes)?)
    }

    fn object(&mut self, in_order: bool) -> Object<'_, 'p, W> {
        let scratch = self.pool.pop().unwrap_or_default();
        Object {
            writer: self,
            scratch,
            in_order,
            streamed: 0,
            last: None,
            raw: false,
        }
    }
}

/// An object being written: its entries buffered, or streamed in order.
struct Object<'a, 'p, W> {
    writer: &'a mut Canonical<'p, W>,
    scratch: Scratch,
    in_order: bool,
    /// Entries written so far when streaming.
    streamed: usize,
    /// The last key streamed, to check the order.
    last: Option<&'static str>,
    /// A RawValue: its one field is written as it is.
    raw: bool,
}

impl<W: Write> Object<'_, '_, W> {
    /// Buffers `"key":value`.
    fn buffer<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Error> {
        let start = self.scratch.bytes.len();
        serde_json::to_writer(&mut self.scratch.bytes, key.as_ref())?;
        self.scratch.bytes.push(b':');
        value.serialize(&mut Canonical {
            out: &mut self.scratch.bytes,
            pool: &mut *self.writer.pool,
        })?;
        let end = self.scratch.bytes.len();
        self.scratch.entries.push((key, start, end));
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        if self.raw {
            // The text of a RawValue (canonical by construction) or of a
            // number (kept as it was read, §10 rule 5).
            let Value::String(text) = serde_json::to_value(value)? else {
                return Err(Error::Custom("a raw value that is not text".into()));
            };
            return self.writer.raw(text.as_bytes());
        }
        if !self.in_order {
            return self.buffer(Cow::Borrowed(key), value);
        }
        if self
            .last
            .is_some_and(|last| last.as_bytes() >= key.as_bytes())
        {
            return Err(Error::Custom(format!(
                "field `{key}` is declared out of canonical order"
            )));
        }
        self.last = Some(key);
        self.writer
            .raw(if self.streamed == 0 { b"{" } else { b"," })?;
        self.streamed += 1;
        serde_json::to_writer(&mut self.writer.out, key)?;
        self.writer.raw(b":")?;
        value.serialize(&mut *self.writer)
    }

    fn finish(mut self) -> Result<(), Error> {
        if self.raw {
            return Ok(());
        }
        if self.in_order {
            return self
                .writer
                .raw(if self.streamed == 0 { b"{}" } else { b"}" });
        }
        let Scratch { bytes, entries } = &mut self.scratch;
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(Error::Custom("an object repeats a key".into()));
        }
        self.writer.raw(b"{")?;
        for (i, (_, start, end)) in entries.iter().enumerate() {
            if i > 0 {
                self.writer.raw(b",")?;
            }
            self.writer.raw(&bytes[*start..*end])?;
        }
        self.writer.raw(b"}")?;
        bytes.clear();
        entries.clear();
        self.writer.pool.push(std::mem::take(&mut self.scratch));
        Ok(())
    }
}

/// An array being written, element by element.
struct Array<'a, 'p, W> {
    writer: &'a mut Canonical<'p, W>,
    first: bool,
}

impl<W: Write> Array<'_, '_, W> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.writer.raw(b",")?;
        }
        self.first = false;
        value.serialize(&mut *self.writer)
    }

    fn finish(self) -> Result<(), Error> {
        self.writer.raw(b"]")
    }
}

macro_rules! scalars {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result<(), Error> {
            Ok(self.json().$method(v)?)
        })*
    };
}

impl<'a, 'p, W: Write> Serializer for &'a mut Canonical<'p, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a, 'p, W>;
    type SerializeTuple = Array<'a, 'p, W>;
    type SerializeTupleStruct = Array<'a, 'p, W>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = MapEntries<'a, 'p, W>;
    type SerializeStruct = Object<'a, 'p, W>;
    type SerializeStructVariant = Impossible<(), Error>;

    scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
    );

    fn serialize_none(self) -> Result<(), Error> {
        Ok(self.json().serialize_none()?)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(self.json().serialize_unit()?)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        // One member: already in order.
        self.raw(b"{")?;
        serde_json::to_writer(&mut self.out, variant)?;
        self.raw(b":")?;
        value.serialize(&mut *self)?;
        self.raw(b"}")
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a, 'p, W>, Error> {
        self.raw(b"[")?;
        Ok(Array {
            writer: self,
            first: true,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Array<'a, 'p, W>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Array<'a, 'p, W>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error::Custom(format!(
            "tuple variant `{variant}` has no canonical form here"
        )))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapEntries<'a, 'p, W>, Error> {
        Ok(MapEntries {
            object: self.object(false),
            key: None,
        })
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Object<'a, 'p, W>, Error> {
        let mut object = self.object(name == IN_ORDER);
        object.raw = name == RAW_VALUE || name == NUMBER;
        Ok(object)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error::Custom(format!(
            "struct variant `{variant}` has no canonical form here"
        )))
    }
}

/// A map's entries: keys must be strings (or numbers, as serde_json
/// writes them).
struct MapEntries<'a, 'p, W> {
    object: Object<'a, 'p, W>,
    key: Option<String>,
}

impl<W: Write> ser::SerializeSeq for Array<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeTuple for Array<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeTupleStruct for Array<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeStruct for Object<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeMap for MapEntries<'_, '_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(match serde_json::to_value(key)? {
            Value::String(key) => key,
            Value::Number(n) => n.to_string(),
            _ => return Err(Error::Custom("an object key must be a string".into())),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::Custom("a map value without its key".into()))?;
        self.object.buffer(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.object.finish()
    }
}

/// Why a JSON text cannot be trusted to mean one thing to every reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// Not JSON (serde_json's reason, which never quotes the text); a
    /// string with an escaped lone surrogate (`"\ud800"`) is one.
    NotJson(String),
    /// An object gives this member (its path) twice: readers disagree on
    /// which value counts (SQLite's and MariaDB's JSON functions take the
    /// first, serde_json and PostgreSQL's `jsonb` the last).
    Repeated(String),
    /// A member named as serde_json names its own private tokens, which it
    /// would read as a number or raw text instead of as a member.
    Reserved(String),
}

impl Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::NotJson(why) => write!(f, "not JSON ({why})"),
            Unfit::Repeated(path) => write!(f, "member `{path}` is given twice"),
            Unfit::Reserved(path) => write!(
                f,
                "member `{path}` has a name the JSON reader reserves for itself"
            ),
        }
    }
}

/// Checks that `text` is JSON that every reader reads alike: valid, every
/// string's escapes decodable, no object giving a member twice at any
/// depth, no member named as serde_json's private tokens. Store documents
/// (`crate::sync::documents`) and plan files (`crate::plan::load`) pass
/// here before anything reads their members. Nesting is not checked here:
/// the callers' limits differ.
pub fn check(text: &str) -> Result<(), Unfit> {
    // One pass says yes to the common case; the walk below reads the rest
    // and says why it refuses.
    if super::fast_json::surely_fit(text) {
        return Ok(());
    }
    // The walk recurses once per level: bounded, whatever the text.
    if !nesting_within(text, CHECK_DEPTH) {
        return Err(Unfit::NotJson(format!(
            "nested deeper than {CHECK_DEPTH} levels"
        )));
    }
    check_shallow(text)
}

/// [`check`] of a text already known to nest at most [`CHECK_DEPTH`]
/// levels (store documents: at most 127).
pub(crate) fn check_shallow(text: &str) -> Result<(), Unfit> {
    debug_assert!(nesting_within(text, CHECK_DEPTH));
    if super::fast_json::surely_fit(text) {
        return Ok(());
    }
    let text = text.trim_matches([' ', '\t', '\n', '\r']);
    if !text.starts_with(['{', '[']) {
        // A container's reading below checks the whole text's syntax;
        // anything else is checked here.
        serde_json::from_str::<&RawValue>(text).map_err(not_json)?;
    }
    walk(text, &mut String::new())
}

/// How deep [`check`] reads: a plan's documents (at most 127 levels,
/// `crate::sync::documents`) sit three levels down in it.
const CHECK_DEPTH: usize = 256;

/// Whether the JSON `text` nests arrays and objects at most `limit` deep,
/// counted over its bytes without parsing (strings skipped).
pub(crate) fn nesting_within(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn not_json(e: serde_json::Error) -> Unfit {
    Unfit::NotJson(e.to_string())
}

/// Checks one value whose syntax is already known good; `path` names it.
/// Each container is read as its members' raw texts, which serde_json
/// takes without interpreting them (numbers stay text, strings are only
/// scanned), so names can be compared before any reader keeps one of two.
fn walk(text: &str, path: &mut String) -> Result<(), Unfit> {
    match text.as_bytes().first() {
        Some(b'{') => {
            let Members(mut members) = serde_json::from_str(text).map_err(not_json)?;
            members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let join = |path: &str, name: &str| {
                if path.is_empty() {
                    crate::escape::field(name).into_owned()
                } else {
                    format!("{path}.{}", crate::escape::field(name))
                }
            };
            if let Some(pair) = members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
                return Err(Unfit::Repeated(join(path, &pair[0].0)));
            }
            if let Some((name, _)) = members.iter().find(|(n, _)| n == NUMBER || n == RAW_VALUE) {
                return Err(Unfit::Reserved(join(path, name)));
            }
            for (name, value) in members.iter().filter(|(_, v)| needs_walk(v.get())) {
                let len = path.len();
                *path = join(path, name);
                walk(value.get(), path)?;
                path.truncate(len);
            }
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(not_json)?;
            for (i, item) in items
                .iter()
                .enumerate()
                .filter(|(_, v)| needs_walk(v.get()))
            {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item.get(), path)?;
                path.truncate(len);
            }
        }
        // Skipped strings are scanned, not decoded: decode the escaped ones.
        Some(b'"') if text.contains('\\') => {
            serde_json::from_str::<String>(text).map_err(not_json)?;
        }
        _ => {}
    }
    Ok(())
}

/// The members of the object `text` in the order given, repeats kept,
/// each value as its raw text; `None` when `text` is no JSON object.
pub(crate) fn members(text: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    serde_json::from_str::<Members>(text).ok().map(|m| m.0)
}

/// Whether [`walk`] has anything to check in a value: a container, or a
/// string with escapes. Numbers, literals and plain strings were checked
/// by the reading that found them.
fn needs_walk(text: &str) -> bool {
    match text.as_bytes().first() {
        Some(b'{' | b'[') => true,
        Some(b'"') => text.contains('\\'),
        _ => false,
    }
}

/// An object's members in the order given, repeats kept, each value as
/// its raw text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                // Store documents have a handful of members.
                let mut members = Vec::with_capacity(8);
                while let Some(Name(name)) = map.next_key()? {
                    members.push((name, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A member's name, borrowed when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// The canonical text of `raw`, a JSON object's text; `None` when it is
/// not one. Written from the members' raw texts, without a `Value`:
/// numbers keep the text they were written with (§10 rule 5).
pub(crate) fn object(raw: &str) -> Option<String> {
    with_members(raw, None)
}

/// Whether `raw`, a JSON object's text, is surely canonical already:
/// [`object`] would give it back unchanged. `false` when unsure.
pub(crate) fn is_object_canonical(raw: &str) -> bool {
    super::fast_json::is_canonical_object(raw)
}

/// The canonical text of `raw` (a JSON object's text) with member `name`
/// set to the string `value`; `None` when `raw` is not an object.
pub(crate) fn with_member(raw: &str, name: &str, value: &str) -> Option<String> {
    with_member_in_place(raw, name, value).or_else(|| with_members(raw, Some((name, value))))
}

/// [`with_member`] in one scan, for the common case: an object whose
/// member names have no escapes and whose values are each canonical
/// already (scalars, as in the documents Kestra and `demo` write, and as
/// PostgreSQL gives `jsonb` back, spaced and in its own order). The
/// members are sorted by name and written with their values' text as it
/// is, the member set in its place. `None` otherwise: the caller reads the
/// text in full. A million binding copies read each document three times
/// over the full path, a tenth of `plan` (perf).
fn with_member_in_place(raw: &str, name: &str, value: &str) -> Option<String> {
    let text = raw.as_bytes();
    let mut scanner = super::fast_json::Scanner::new(text);
    scanner.ws();
    // Each member's name and where its value's text is.
    let mut members: Vec<(&[u8], usize, usize)> = Vec::with_capacity(8);
    let fine = scanner.object_with(1, |scanner, member| {
        let start = scanner.pos;
        if !scanner.value(1) || !super::fast_json::is_canonical_value(&text[start..scanner.pos]) {
            return false;
        }
        members.push((member, start, scanner.pos));
        true
    });
    scanner.ws();
    if !fine || scanner.pos != text.len() {
        return None;
    }
    // The scanner refused a name given twice.
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let at = members.partition_point(|m| m.0 < name.as_bytes());
    let mut out = String::with_capacity(raw.len() + name.len() + value.len() + 8);
    out.push('{');
    for (i, &(member, start, end)) in members.iter().enumerate() {
        if i == at {
            new_member(name, value, &mut out)?;
        }
        if member != name.as_bytes() {
            if out.len() > 1 {
                out.push(',');
            }
            out.push('"');
            // Names without escapes (the scanner refuses others): as
            // serde_json writes them.
            out.push_str(std::str::from_utf8(member).ok()?);
            out.push_str("\":");
            out.push_str(&raw[start..end]);
        }
    }
    if at == members.len() {
        new_member(name, value, &mut out)?;
    }
    out.push('}');
    Some(out)
}

/// `"name":"value"`, after a comma unless it comes first.
fn new_member(name: &str, value: &str, out: &mut String) -> Option<()> {
    if out.len() > 1 {
        out.push(',');
    }
    write_string(name, out)?;
    out.push(':');
    write_string(value, out)
}

fn with_members(raw: &str, set: Option<(&str, &str)>) -> Option<String> {
    let raw: &RawValue = serde_json::from_str(raw).ok()?;
    if !raw.get().starts_with('{') {
        return None;
    }
    let mut out = String::with_capacity(raw.get().len() + 64);
    canonical_object(raw.get(), set, &mut out)?;
    Some(out)
}

/// Appends the canonical text of an object's text, with member `set`
/// added or replaced. Of a member given twice the last counts, as
/// serde_json reads it; [`check`] keeps such documents out beforehand.
fn canonical_object(text: &str, set: Option<(&str, &str)>, out: &mut String) -> Option<()> {
    let mut members = members(text)?;
    let encoded;
    if let Some((name, value)) = set {
        members.retain(|(n, _)| n != name);
        encoded = RawValue::from_string(serde_json::to_string(value).ok()?).ok()?;
        members.push((Cow::Borrowed(name), &encoded));
    }
    // Stable: of equal names the last stays last, and wins below.
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    let mut first = true;
    for (i, (name, value)) in members.iter().enumerate() {
        if members.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_string(name, out)?;
        out.push(':');
        canonical_value(value.get(), out)?;
    }
    out.push('}');
    Some(())
}

/// Appends a string as serde_json writes it.
fn write_string(text: &str, out: &mut String) -> Option<()> {
    let needs_escape = text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
    if needs_escape {
        out.push_str(&serde_json::to_string(text).ok()?);
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
    Some(())
}

/// Appends the canonical text of the string `text`: serde_json's, as the
/// writer gives it.
pub(crate) fn push_string(text: &str, out: &mut Vec<u8>) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *out, text).expect("a string serialises to memory");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Appends the canonical text of one JSON value's text.
fn canonical_value(text: &str, out: &mut String) -> Option<()> {
    match text.as_bytes().first()? {
        // Already canonical: serde_json would write the same bytes.
        b'"' if !text.contains('\\') => out.push_str(text),
        b'"' => write_string(&serde_json::from_str::<String>(text).ok()?, out)?,
        b'{' => canonical_object(text, None, out)?,
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_value(item.get(), out)?;
            }
            out.push(']');
        }
        // `true`, `false`, `null`, and numbers exactly as written.
        _ => out.push_str(text),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Unsorted<'a> {
        zeta: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        alpha: Option<&'a str>,
        mid: Vec<Inner>,
        doc: &'a RawValue,
    }

    #[derive(Serialize)]
    struct Inner {
        b: bool,
        a: f64,
    }

    #[derive(Serialize)]
    #[serde(rename = "$sync_access::canonical::in_order")]
    struct DeclaredInOrder {
        a: u8,
        c: u8,
        b: u8,
    }

    #[test]
    fn struct_fields_and_map_keys_are_sorted_by_bytes() {
        let doc = RawValue::from_string(r#"{"x":1}"#.to_string()).unwrap();
        let value = Unsorted {
            zeta: 1,
            alpha: Some("é\u{1}\""),
            mid: vec![Inner { b: true, a: 1.5 }],
            doc: &doc,
        };
        assert_eq!(
            to_string(&value),
            r#"{"alpha":"é\u0001\"","doc":{"x":1},"mid":[{"a":1.5,"b":true}],"zeta":1}"#
        );
        let map: BTreeMap<&str, u8> = [("é", 1), ("z", 2), ("a\"b", 3), ("a", 4)].into();
        assert_eq!(to_string(&map), r#"{"a":4,"a\"b":3,"z":2,"é":1}"#);
        assert_eq!(IN_ORDER, "$sync_access::canonical::in_order");
        let mut out = Vec::new();
        let refused = to_writer(&mut out, &DeclaredInOrder { a: 1, c: 2, b: 3 });
        assert!(refused.unwrap_err().to_string().contains("`b`"));
        assert_eq!(to_string(&Vec::<u8>::new()), "[]");
        assert_eq!(to_string(&BTreeMap::<String, u8>::new()), "{}");
    }

    #[test]
    fn check_names_the_first_member_given_twice_at_any_depth() {
        assert_eq!(check(r#"{"a":1,"b":[{"c":null}],"d":"\u00e9"}"#), Ok(()));
        let repeated = |text: &str| match check(text) {
            Err(Unfit::Repeated(path)) => path,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(repeated(r#"{"a":1,"a":1}"#), "a");
        assert_eq!(repeated(r#"{"a":{"b":[0,{"c":1,"c":2}]}}"#), "a.b[1].c");
        assert_eq!(repeated(r#"[{"x":1},{"y":1,"y":1}]"#), "[1].y");
        // Names compare as decoded: an escaped spelling is the same name.
        assert_eq!(repeated(r#"{"\u0061":1,"a":2}"#), "a");
        assert!(matches!(check(r#"{"a":"\ud800"}"#), Err(Unfit::NotJson(_))));
        assert!(matches!(check(r#"{"a":1"#), Err(Unfit::NotJson(_))));
        assert!(matches!(
            check(r#"{"a":{"$serde_json::private::Number":"1"}}"#),
            Err(Unfit::Reserved(path)) if path == "a.$serde_json::private::Number"
        ));
        assert_eq!(
            Unfit::Repeated("changes[0].value.id".into()).to_string(),
            "member `changes[0].value.id` is given twice"
        );
        // Names reach messages with what would act on a terminal escaped.
        assert_eq!(
            repeated("{\"a\":{\"\\u001b[2J\\u200b\":1,\"\\u001b[2J\\u200b\":2}}"),
            "a.\\u{1b}[2J\\u{200b}"
        );
        assert!(matches!(check(" 7 "), Ok(())));
        assert!(matches!(check("{} x"), Err(Unfit::NotJson(_))));
        assert!(matches!(check("[1] ]"), Err(Unfit::NotJson(_))));
        assert!(matches!(check("\"\\ud800\""), Err(Unfit::NotJson(_))));
    }

    /// docs/plan-format.md §10 rule 5: a number is written as it was read,
    /// byte for byte, whatever its size or precision, at any depth.
    #[test]
    fn numbers_are_written_as_read() {
        let text = r#" { "h" : 7, "a":1e400,"b":0.1000000000000000000001,"c":-0,"d":1E2,"e":1.10,"f":123456789012345678901234567890,"g":[-1.5e-3, {"y": 2E+1, "x": 0.0}]} "#;
        let canonical = r#"{"a":1e400,"b":0.1000000000000000000001,"c":-0,"d":1E2,"e":1.10,"f":123456789012345678901234567890,"g":[-1.5e-3,{"x":0.0,"y":2E+1}],"h":7}"#;
        assert_eq!(object(text).as_deref(), Some(canonical));
        assert_eq!(object(canonical).as_deref(), Some(canonical));
        // A `Value` keeps the digits too (arbitrary_precision), and the
        // writer writes them; serde_json respells only an exponent.
        let value: Value = serde_json::from_str(r#"{"a":1e400,"b":1.10}"#).unwrap();
        assert_eq!(to_string(&value), r#"{"a":1e+400,"b":1.10}"#);
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            proptest::num::f64::NORMAL.prop_map(Value::from),
            "[a-z\"\\\\é\u{1}\u{7f} ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zé\"\\\\ ]{0,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn reference(raw: &str) -> String {
        let Value::Object(mut map) = serde_json::from_str::<Value>(raw).unwrap() else {
            panic!()
        };
        map.insert("tenantId".into(), Value::String("t\"é".into()));
        Value::Object(map).to_string()
    }

    /// A document whose values are canonical gets its member in one scan,
    /// placed and replaced as the full reading would; any other text is
    /// left to it.
    #[test]
    fn a_member_is_set_in_place_in_a_document_of_canonical_values() {
        let in_place = [
            "{}",
            r#"{"a":1}"#,
            r#"{"z":[1,{"a":null}]}"#,
            r#"{"deleted":false,"externalId":"u1","id":"b1","roleId":"r","type":"USER"}"#,
            r#"{"id":"b1","tenantId":null,"type":"USER"}"#,
            r#"{"id":"b1","tenantId":"old","type":"USER"}"#,
            r#"{"tenantId":{"x":[]}}"#,
            r#"{"tenantIc":1,"tenantId":2,"tenantIe":3}"#,
            r#"{"a":"é","u":{"b":-1.50,"c":"x"}}"#,
            // Spaced and in another order, as PostgreSQL gives jsonb back.
            r#" {"id": "b1", "type": "USER", "roleId": "r", "deleted": false, "tenantId": null} "#,
            r#"{"b":1,"a":[2,{"x":null}]}"#,
            "{\n\t\"z\" : 1 ,\"tenantId\":\"t\"}",
        ];
        for raw in in_place {
            for value in ["t", "t\"é"] {
                let fast = with_member_in_place(raw, "tenantId", value);
                assert!(fast.is_some(), "{raw}");
                assert_eq!(fast, with_members(raw, Some(("tenantId", value))), "{raw}");
                assert_eq!(with_member(raw, "tenantId", value), fast);
            }
        }
        let other = [
            r#"{"a":"\u00e9"}"#,
            r#"{"\u0061":1}"#,
            r#"{"a":{"c":1,"b":2}}"#,
            r#"{"a":{"b": 2}}"#,
            r#"{"a":["\n"]}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1}{"#,
            "[1]",
            "",
        ];
        for raw in other {
            assert_eq!(with_member_in_place(raw, "tenantId", "t"), None, "{raw}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The fast canonical form is serde_json's, whatever the document.
        #[test]
        fn fast_canonical_form_is_serde_jsons(
            members in proptest::collection::btree_map(
                "[a-zA-Z\\\\\"é ]{0,6}",
                proptest::prop_oneof![
                    proptest::strategy::Just("null".to_string()),
                    proptest::strategy::Just("true".to_string()),
                    proptest::num::i64::ANY.prop_map(|n| n.to_string()),
                    proptest::num::u64::ANY.prop_map(|n| n.to_string()),
                    proptest::num::f64::NORMAL.prop_map(|n| n.to_string()),
                    proptest::strategy::Just("1.10".to_string()),
                    proptest::strategy::Just("-0".to_string()),
                    proptest::strategy::Just("-1.50".to_string()),
                    proptest::strategy::Just("123456789012345678901234567890".to_string()),
                    "[a-zA-Z0-9 é\\\\\"/\\n\\u{1}]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                    proptest::strategy::Just("\"\\u00e9\\/\"".to_string()),
                    proptest::strategy::Just("{\"b\": [1, {\"z\": 1, \"a\": 2}], \"a\": null}".to_string()),
                ],
                0..8,
            ),
            spaced in proptest::bool::ANY,
        ) {
            let sep = if spaced { ", " } else { "," };
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}{}{}", serde_json::to_string(k).unwrap(), if spaced { ": " } else { ":" }, v))
                .collect();
            let raw = format!("{{{}}}", body.join(sep));
            proptest::prop_assert_eq!(with_member(&raw, "tenantId", "t\"é").unwrap(), reference(&raw));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The writer's form of any JSON value is serde_json's form of it as
        /// a `Value`, whose maps are sorted: the definition of canonical.
        #[test]
        fn any_value_is_written_as_serde_json_writes_a_sorted_value(value in any_value()) {
            proptest::prop_assert_eq!(to_string(&value), value.to_string());
        }
    }
}
