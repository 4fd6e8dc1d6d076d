//! Loading a plan for review only, fast at any size.
//!
//! `show` needs the plan and whether its digest holds, not the file's JSON
//! tree. [`super::load`] builds that tree (`apply` and `approve` need it),
//! clones it to hash it and deserialises the plan from it: for a million
//! changes that is three copies, eight GiB and most of a minute. Here the
//! typed plan is parsed straight from the bytes while another thread hashes
//! the canonical JSON written directly from the parser's events: the same
//! digest, byte for byte, without a tree.
//!
//! The checks are those of [`super::parse`] (format, shape, consistency); on
//! any failure the reference path runs again to word the error the same way.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest as _, Sha256};

use super::{check_consistency, Plan, FORMAT, MAX_PLAN_BYTES};
use crate::error::{Error, Result};

/// A plan read for review, with the digest recomputed from its content.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub plan: Plan,
    pub computed_digest: String,
}

impl Reviewed {
    pub fn digest_matches(&self) -> bool {
        self.computed_digest == self.plan.digest
    }
}

/// Reads and validates a plan file like [`super::load`], without keeping
/// its JSON tree. The digest is recomputed, not enforced.
pub fn load_for_review(path: &Path) -> Result<Reviewed> {
    let refuse = |msg: String| Error::Refused(format!("{}: {msg}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_PLAN_BYTES {
        return Err(refuse(format!(
            "not a valid plan: {} bytes is over the limit of {MAX_PLAN_BYTES} bytes",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_for_review(&bytes).map_err(refuse)
}

/// Validates plan bytes; the error is the sentence [`super::parse`] gives.
pub fn parse_for_review(bytes: &[u8]) -> std::result::Result<Reviewed, String> {
    let started = std::time::Instant::now();
    let (plan, digest) = std::thread::scope(|scope| {
        let digest = scope.spawn(|| {
            let digest = digest_of_bytes(bytes);
            tracing::debug!(elapsed = ?started.elapsed(), "plan digest computed");
            digest
        });
        let plan = serde_json::from_slice::<Plan>(bytes);
        tracing::debug!(elapsed = ?started.elapsed(), "plan parsed");
        (plan, digest.join())
    });
    match (plan, digest) {
        (Ok(plan), Ok(Ok(computed_digest))) if plan.format == FORMAT => {
            check_consistency(&plan)?;
            tracing::debug!(elapsed = ?started.elapsed(), "plan checked");
            Ok(Reviewed {
                plan,
                computed_digest,
            })
        }
        (plan, _) => match super::parse(bytes) {
            Err(sentence) => Err(sentence),
            // Stricter than the tree: a repeated key, which a tree silently
            // resolves and a reviewer must not have to guess about.
            Ok(_) => Err(match plan {
                Err(e) => format!("not a valid {FORMAT} plan: {e}"),
                Ok(_) => "not a valid plan: its digest could not be computed".to_string(),
            }),
        },
    }
}

/// `sha256:<hex>` of the canonical JSON of the object in `bytes` without
/// `digest` and `approvals`: what [`super::digest_of`] gives for the
/// `serde_json::Value` of the same bytes (a repeated key: the last wins).
pub fn digest_of_bytes(bytes: &[u8]) -> std::result::Result<String, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let digest = de.deserialize_map(Sealed)?;
    de.end()?;
    Ok(digest)
}

/// An object member written as `"key":value` at `start..end` of a buffer.
struct Member<'de> {
    key: Cow<'de, str>,
    start: usize,
    end: usize,
}

/// Sorts members by the UTF-8 bytes of their keys, the last of a repeated
/// key winning; says whether they already were in that order.
fn canonical_order(members: &mut Vec<Member<'_>>) -> bool {
    if members
        .windows(2)
        .all(|w| w[0].key.as_bytes() < w[1].key.as_bytes())
    {
        return true;
    }
    members.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    members.dedup_by(|later, kept| {
        if later.key == kept.key {
            std::mem::swap(later, kept);
            true
        } else {
            false
        }
    });
    false
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// The top-level object: hashed member by member in canonical order, so the
/// whole canonical text is never assembled.
struct Sealed;

impl<'de> Visitor<'de> for Sealed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<String, A::Error> {
        let mut buf = Vec::new();
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if key == "digest" || key == "approvals" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let start = buf.len();
            write_str(&mut buf, &key);
            buf.push(b':');
            map.next_value_seed(Canonical { out: &mut buf })?;
            members.push(Member {
                key,
                start,
                end: buf.len(),
            });
        }
        canonical_order(&mut members);
        let mut hasher = Sha256::new();
        hasher.update(b"{");
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                hasher.update(b",");
            }
            hasher.update(&buf[m.start..m.end]);
        }
        hasher.update(b"}");
        let mut hex = String::with_capacity(7 + 64);
        hex.push_str("sha256:");
        for byte in hasher.finalize() {
            hex.push_str(&format!("{byte:02x}"));
        }
        Ok(hex)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Writes the canonical JSON of one value to `out` as it is parsed: numbers
/// and strings as `serde_json` writes a `Value`'s, objects sorted.
struct Canonical<'a> {
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<(), E> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<(), E> {
        serde_json::to_writer(&mut *self.out, &v).expect("writing to a Vec cannot fail");
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<(), E> {
        serde_json::to_writer(&mut *self.out, &v).expect("writing to a Vec cannot fail");
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<(), E> {
        serde_json::to_writer(&mut *self.out, &v).expect("writing to a Vec cannot fail");
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<(), E> {
        write_str(self.out, v);
        Ok(())
    }

    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            if !first {
                self.out.push(b',');
            }
            if seq
                .next_element_seed(Canonical { out: self.out })?
                .is_none()
            {
                if !first {
                    self.out.pop();
                }
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let open = self.out.len();
        self.out.push(b'{');
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if !members.is_empty() {
                self.out.push(b',');
            }
            let start = self.out.len();
            write_str(self.out, &key);
            self.out.push(b':');
            map.next_value_seed(Canonical { out: self.out })?;
            members.push(Member {
                key,
                start,
                end: self.out.len(),
            });
        }
        if !canonical_order(&mut members) {
            let written = self.out.split_off(open + 1);
            let base = open + 1;
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out
                    .extend_from_slice(&written[m.start - base..m.end - base]);
            }
        }
        self.out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{digest_of, parse};
    use proptest::prelude::*;
    use serde_json::Value;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/example-plan.json");
    const DEMO: &str = include_str!("../../plans/demo-plan.json");
    const RULES: &str = include_str!("../../tests/golden/rules-plan.json");

    #[test]
    fn the_streamed_digest_is_the_reference_digest_on_every_known_plan() {
        for text in [EXAMPLE, DEMO, RULES] {
            let raw: Value = serde_json::from_str(text).unwrap();
            assert_eq!(digest_of_bytes(text.as_bytes()).unwrap(), digest_of(&raw));
            assert_eq!(
                digest_of_bytes(text.as_bytes()).unwrap(),
                raw["digest"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn a_repeated_key_resolves_as_the_tree_resolves_it() {
        let text = r#"{"b":{"x":1,"y":2,"x":[3,{"k":"v","a":null}]},"a":"z","b2":1.5,"digest":"d","approvals":[]}"#;
        let raw: Value = serde_json::from_str(text).unwrap();
        assert_eq!(digest_of_bytes(text.as_bytes()).unwrap(), digest_of(&raw));
    }

    #[test]
    fn review_loading_agrees_with_the_reference_loading() {
        for text in [EXAMPLE, DEMO, RULES] {
            let reference = parse(text.as_bytes()).unwrap();
            let reviewed = parse_for_review(text.as_bytes()).unwrap();
            assert_eq!(reviewed.plan, reference.plan);
            assert_eq!(reviewed.computed_digest, reference.computed_digest);
            assert!(reviewed.digest_matches());
        }
        let tampered = DEMO.replacen("\"Admin\"", "\"Admins\"", 1);
        let reviewed = parse_for_review(tampered.as_bytes()).unwrap();
        assert!(!reviewed.digest_matches());
    }

    #[test]
    fn invalid_plans_are_refused_with_the_reference_sentence() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{\"format\":\"other\"}",
            b"{\"format\":\"sync-access/plan/v1\"}",
        ] {
            assert_eq!(
                parse_for_review(bad).unwrap_err(),
                parse(bad).unwrap_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let lying = DEMO.replacen("\"add_role\": 4", "\"add_role\": 5", 1);
        assert!(parse_for_review(lying.as_bytes())
            .unwrap_err()
            .contains("summary says 5 add_role"));
        // The tree would take the last; a reviewer must not have to guess.
        let repeated = DEMO.replacen(
            "\"tenant\": \"default\",",
            "\"tenant\": \"default\", \"tenant\": \"default\",",
            1,
        );
        assert!(parse_for_review(repeated.as_bytes())
            .unwrap_err()
            .contains("duplicate field `tenant`"));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,8}|[\\x00-\\x1f\"\\\\é€\u{1F600}]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-cé\"_A-C]{0,3}", inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The streamed digest of any JSON object, compact or pretty, is the
        /// reference digest of its tree.
        #[test]
        fn streamed_and_reference_digests_agree(
            members in proptest::collection::vec(("[a-dé_]{0,3}|digest|approvals", json_value()), 0..8),
            pretty in any::<bool>(),
        ) {
            let object = Value::Object(members.into_iter().collect());
            let bytes = if pretty {
                serde_json::to_vec_pretty(&object).unwrap()
            } else {
                serde_json::to_vec(&object).unwrap()
            };
            let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(digest_of_bytes(&bytes).unwrap(), digest_of(&reparsed));
        }
    }
}
