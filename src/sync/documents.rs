//! Typed views of the store's JSON documents (docs/rules.md §1; the tables: docs/store.md §1).
//!
//! Views borrow from the snapshot's text, so a million bindings cost no copy
//! of their strings. Parsing is lenient about fields the tool does not read
//! (they stay in the text, untouched) and strict about the ones it does: a
//! document whose read fields are missing or of the wrong type is
//! [`Malformed`], with a detail that names the field but never quotes the
//! document (it may hold `auths`).
//!
//! First, a document must read alike to every reader (`unreadable`: UTF-8,
//! valid JSON, no member given twice at any depth, nesting within
//! serde_json's limit); else it is malformed before any member is read.
//! Then two paths read it: a fast one, serde's derive over borrowed views,
//! and a slow one over [`serde_json::Value`] that runs only when the fast
//! one fails, to say precisely what is wrong. Both accept the same
//! documents: property tests hold them to it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::plan::canonical;

/// A row as read from the store: its key and its `value` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDoc {
    pub key: String,
    pub value: String,
    /// Why the row's bytes could not be taken as text (SQLite keeps
    /// whatever bytes it was given): `key` and `value` then hold them with
    /// U+FFFD in place of what is not UTF-8, to name the row, and the
    /// document is malformed (docs/rules.md §9).
    pub undecodable: Option<&'static str>,
}

impl RawDoc {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        RawDoc {
            key: key.into(),
            value: value.into(),
            undecodable: None,
        }
    }

    /// A row read as bytes; text that is not UTF-8 makes it undecodable.
    pub fn from_bytes(key: Vec<u8>, value: Vec<u8>) -> Self {
        let (key, bad_key) = match String::from_utf8(key) {
            Ok(key) => (key, false),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
        };
        let (value, bad_value) = match String::from_utf8(value) {
            Ok(value) => (value, false),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
        };
        RawDoc {
            key,
            value,
            undecodable: if bad_key {
                Some("the row's key is not valid UTF-8")
            } else if bad_value {
                Some("document is not valid UTF-8")
            } else {
                None
            },
        }
    }
}

/// The fields every document shares.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    pub key: &'a str,
    pub id: Cow<'a, str>,
    /// `None` for the legacy scope (absent or JSON null).
    pub tenant_id: Option<Cow<'a, str>>,
    pub deleted: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Membership {
    Member,
    Owner,
}

impl Membership {
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Member => "MEMBER",
            Membership::Owner => "OWNER",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubjectType {
    User,
    Group,
}

impl SubjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectType::User => "USER",
            SubjectType::Group => "GROUP",
        }
    }
}

#[derive(Debug, Clone)]
pub struct User<'a> {
    pub header: Header<'a>,
    pub username: Cow<'a, str>,
    /// `STANDARD`, `SUPER_ADMIN`, `SERVICE_ACCOUNT` (absent: standard).
    pub user_type: Option<Cow<'a, str>>,
    /// Legacy memberships, by group id: `groups` (MEMBER) overridden by
    /// `groupList` entries without a tenant.
    pub legacy_memberships: BTreeMap<Cow<'a, str>, Membership>,
    /// `groupList` entries with a tenant: (tenant, group) -> membership.
    pub tenant_memberships: BTreeMap<(Cow<'a, str>, Cow<'a, str>), Membership>,
}

#[derive(Debug, Clone)]
pub struct Group<'a> {
    pub header: Header<'a>,
    pub name: Cow<'a, str>,
    /// The document's text: what is copied into the tenant.
    pub raw: &'a str,
}

/// Permission name -> set of actions; permissions without actions are absent.
pub type Permissions<'a> = BTreeMap<Cow<'a, str>, BTreeSet<Cow<'a, str>>>;

#[derive(Debug, Clone)]
pub struct Role<'a> {
    pub header: Header<'a>,
    pub name: Cow<'a, str>,
    pub permissions: Permissions<'a>,
    pub raw: &'a str,
}

/// The four fields that make two bindings the same grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant<'a> {
    pub subject_type: SubjectType,
    pub external_id: Cow<'a, str>,
    pub role_id: Cow<'a, str>,
    pub namespace_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone)]
pub struct Binding<'a> {
    pub header: Header<'a>,
    pub grant: Grant<'a>,
}

/// Why a document could not be read. `id` and `tenant_id` are filled in when
/// they could be read, so that references to the document still resolve.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub key: String,
    pub id: Option<String>,
    /// `Some(None)`: legacy; `None`: unknown.
    pub tenant_id: Option<Option<String>>,
    pub deleted: Option<bool>,
    pub detail: String,
}

pub type Parsed<T> = Result<T, Malformed>;

/// The fast path's views: what serde reads when the document is as expected.
mod fast {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct User<'a> {
        #[serde(borrow)]
        pub id: Cow<'a, str>,
        #[serde(borrow, default, rename = "tenantId")]
        pub tenant_id: Option<Cow<'a, str>>,
        #[serde(default)]
        pub deleted: Option<bool>,
        #[serde(borrow)]
        pub username: Cow<'a, str>,
        #[serde(borrow, default, rename = "type")]
        pub user_type: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        pub groups: Option<Vec<Cow<'a, str>>>,
        #[serde(borrow, default, rename = "groupList")]
        pub group_list: Option<Vec<GroupEntry<'a>>>,
    }

    #[derive(Deserialize)]
    pub struct GroupEntry<'a> {
        #[serde(borrow, rename = "groupId")]
        pub group_id: Cow<'a, str>,
        pub membership: super::Membership,
        #[serde(borrow, default, rename = "tenantId")]
        pub tenant_id: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Group<'a> {
        #[serde(borrow)]
        pub id: Cow<'a, str>,
        #[serde(borrow, default, rename = "tenantId")]
        pub tenant_id: Option<Cow<'a, str>>,
        #[serde(default)]
        pub deleted: Option<bool>,
        #[serde(borrow)]
        pub name: Cow<'a, str>,
        /// Read only to check it is a string: a group's description is
        /// copied, never interpreted.
        #[serde(borrow, default)]
        #[allow(dead_code)]
        pub description: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Role<'a> {
        #[serde(borrow)]
        pub id: Cow<'a, str>,
        #[serde(borrow, default, rename = "tenantId")]
        pub tenant_id: Option<Cow<'a, str>>,
        #[serde(default)]
        pub deleted: Option<bool>,
        #[serde(borrow)]
        pub name: Cow<'a, str>,
        #[serde(borrow)]
        pub permissions: BTreeMap<Cow<'a, str>, Vec<Cow<'a, str>>>,
    }

    /// [`Binding`] read from the one scan of a surely fit document
    /// (`surely_fit_members`): `None` unless each field it reads is as
    /// serde_json would read it without a doubt (a string without
    /// escapes, `true`, `false`, `null` for an optional one), and the
    /// caller reads the document with serde_json instead.
    pub fn scanned_binding(text: &str) -> Option<Binding<'_>> {
        let [id, tenant_id, deleted, subject_type, external_id, role_id, namespace_id] =
            crate::plan::surely_fit_members(
                text,
                [
                    "id",
                    "tenantId",
                    "deleted",
                    "type",
                    "externalId",
                    "roleId",
                    "namespaceId",
                ],
            )?;
        Some(Binding {
            id: plain_string(id?)?,
            tenant_id: optional_string(tenant_id)?,
            deleted: match deleted {
                None | Some(b"null") => None,
                Some(b"true") => Some(true),
                Some(b"false") => Some(false),
                Some(_) => return None,
            },
            subject_type: match subject_type? {
                b"\"USER\"" => super::SubjectType::User,
                b"\"GROUP\"" => super::SubjectType::Group,
                _ => return None,
            },
            external_id: plain_string(external_id?)?,
            role_id: plain_string(role_id?)?,
            namespace_id: optional_string(namespace_id)?,
        })
    }

    /// An optional string member: absent or `null` is none.
    fn optional_string(value: Option<&[u8]>) -> Option<Option<Cow<'_, str>>> {
        match value {
            None | Some(b"null") => Some(None),
            Some(v) => plain_string(v).map(Some),
        }
    }

    /// A JSON string's text without escapes, as the string it spells.
    fn plain_string(value: &[u8]) -> Option<Cow<'_, str>> {
        let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if inner.contains(&b'\\') {
            return None;
        }
        // The scan read it as a string; the text it came from is UTF-8.
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }

    #[derive(Deserialize)]
    pub struct Binding<'a> {
        #[serde(borrow)]
        pub id: Cow<'a, str>,
        #[serde(borrow, default, rename = "tenantId")]
        pub tenant_id: Option<Cow<'a, str>>,
        #[serde(default)]
        pub deleted: Option<bool>,
        #[serde(rename = "type")]
        pub subject_type: super::SubjectType,
        #[serde(borrow, rename = "externalId")]
        pub external_id: Cow<'a, str>,
        #[serde(borrow, rename = "roleId")]
        pub role_id: Cow<'a, str>,
        #[serde(borrow, default, rename = "namespaceId")]
        pub namespace_id: Option<Cow<'a, str>>,
    }
}

/// How deep serde_json nests arrays and objects before it gives up (its
/// recursion limit). The fast path skips members it does not read without
/// that limit; [`Document::to_map`] and the slow path have it.
const MAX_NESTING: usize = 127;
// `unreadable` takes what is surely fit as nested within the limit.
const _: () = assert!(crate::plan::SURELY_FIT_DEPTH <= MAX_NESTING);

/// Whether the JSON `text` nests arrays and objects at most
/// [`MAX_NESTING`] deep, so that serde_json can read it back as a `Value`.
/// A document nested deeper would be accepted by the fast path and then
/// fail where it is copied or shown; it is malformed instead.
fn nesting_within_limit(text: &str) -> bool {
    canonical::nesting_within(text, MAX_NESTING)
}

/// Why `raw` cannot be read the same way by every reader, before any of
/// its members is: bytes that are not UTF-8, nesting past serde_json's
/// limit, invalid JSON, a member given twice at any depth
/// ([`canonical::check`]). The store's own JSON functions and the tool
/// could read such a document differently (which of two `tenantId`s
/// counts), so it is malformed, never copied.
fn unreadable(raw: &RawDoc) -> Option<Malformed> {
    let bare = |detail: String| Malformed {
        key: raw.key.clone(),
        id: None,
        tenant_id: None,
        deleted: None,
        detail,
    };
    if let Some(why) = raw.undecodable {
        return Some(bare(why.to_string()));
    }
    // The common case in one scan: what is surely fit nests at most
    // `fast_json::MAX_DEPTH` levels, within the limit; counting the
    // levels first read every document twice.
    if crate::plan::surely_fit(&raw.value) {
        return None;
    }
    if !nesting_within_limit(&raw.value) {
        return Some(bare(format!(
            "document is nested deeper than {MAX_NESTING} levels"
        )));
    }
    match canonical::check_shallow(&raw.value) {
        Ok(()) => None,
        Err(canonical::Unfit::NotJson(_)) => Some(bare("document is not valid JSON".to_string())),
        Err(unfit) => {
            // What can still be read without choosing between two values:
            // the header members given once, so that references to the
            // document still resolve and its scope is known when it can be.
            let once = slow::members_given_once(&raw.value, &["id", "tenantId", "deleted"]);
            let (id, tenant_id, deleted) = slow::partial_header(&once);
            Some(Malformed {
                id,
                tenant_id,
                deleted,
                ..bare(unfit.to_string())
            })
        }
    }
}

fn header<'a>(
    key: &'a str,
    id: Cow<'a, str>,
    tenant_id: Option<Cow<'a, str>>,
    deleted: Option<bool>,
) -> Option<Header<'a>> {
    // An empty id is malformed: the slow path says so.
    (!id.is_empty()).then_some(Header {
        key,
        id,
        tenant_id,
        deleted: deleted.unwrap_or(false),
    })
}

pub fn parse_user(raw: &RawDoc) -> Parsed<User<'_>> {
    if let Some(m) = unreadable(raw) {
        return Err(m);
    }
    if let Ok(v) = serde_json::from_str::<fast::User>(&raw.value) {
        if let Some(header) = header(&raw.key, v.id, v.tenant_id, v.deleted) {
            let mut legacy_memberships = BTreeMap::new();
            let mut tenant_memberships = BTreeMap::new();
            for group in v.groups.unwrap_or_default() {
                legacy_memberships.insert(group, Membership::Member);
            }
            for entry in v.group_list.unwrap_or_default() {
                match entry.tenant_id {
                    None => legacy_memberships.insert(entry.group_id, entry.membership),
                    Some(t) => tenant_memberships.insert((t, entry.group_id), entry.membership),
                };
            }
            return Ok(User {
                header,
                username: v.username,
                user_type: v.user_type,
                legacy_memberships,
                tenant_memberships,
            });
        }
    }
    slow::user(raw)
}

pub fn parse_group(raw: &RawDoc) -> Parsed<Group<'_>> {
    if let Some(m) = unreadable(raw) {
        return Err(m);
    }
    if let Ok(v) = serde_json::from_str::<fast::Group>(&raw.value) {
        if let Some(header) = header(&raw.key, v.id, v.tenant_id, v.deleted) {
            return Ok(Group {
                header,
                name: v.name,
                raw: &raw.value,
            });
        }
    }
    slow::group(raw)
}

pub fn parse_role(raw: &RawDoc) -> Parsed<Role<'_>> {
    if let Some(m) = unreadable(raw) {
        return Err(m);
    }
    if let Ok(v) = serde_json::from_str::<fast::Role>(&raw.value) {
        if let Some(header) = header(&raw.key, v.id, v.tenant_id, v.deleted) {
            let permissions = v
                .permissions
                .into_iter()
                .map(|(p, actions)| (p, actions.into_iter().collect::<BTreeSet<_>>()))
                .filter(|(_, actions)| !actions.is_empty())
                .collect();
            return Ok(Role {
                header,
                name: v.name,
                permissions,
                raw: &raw.value,
            });
        }
    }
    slow::role(raw)
}

pub fn parse_binding(raw: &RawDoc) -> Parsed<Binding<'_>> {
    // The common case in one scan: a document surely fit whose fields are
    // plain strings and booleans. Checking it and then reading it with
    // serde_json was half of the first pass (callgrind).
    if raw.undecodable.is_none() {
        if let Some(binding) =
            fast::scanned_binding(&raw.value).and_then(|v| readable_binding(raw, v))
        {
            return Ok(binding);
        }
    }
    if let Some(m) = unreadable(raw) {
        return Err(m);
    }
    parse_readable_binding(raw)
}

/// The binding `v` read from `raw`, when its header is one (else the
/// slow path says why not).
fn readable_binding<'r>(raw: &'r RawDoc, v: fast::Binding<'r>) -> Option<Binding<'r>> {
    let header = header(&raw.key, v.id, v.tenant_id, v.deleted)?;
    Some(Binding {
        header,
        grant: Grant {
            subject_type: v.subject_type,
            external_id: v.external_id,
            role_id: v.role_id,
            namespace_id: v.namespace_id,
        },
    })
}

/// [`parse_binding`] of a row it read before and found readable: the
/// second pass over the bindings reads each row of the same snapshot again
/// (src/sync/bindings.rs), and checking every byte of a million documents
/// twice was a tenth of `plan`.
pub fn parse_readable_binding(raw: &RawDoc) -> Parsed<Binding<'_>> {
    if let Ok(v) = serde_json::from_str::<fast::Binding>(&raw.value) {
        if let Some(binding) = readable_binding(raw, v) {
            return Ok(binding);
        }
    }
    slow::binding(raw)
}

/// The slow path over `Value`: precise about what is wrong.
mod slow {
    use std::borrow::Cow;
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{Map, Value};

    use super::*;

    /// What could be read of `id`, `tenantId` and `deleted` before a failure.
    pub(super) type PartialHeader = (Option<String>, Option<Option<String>>, Option<bool>);

    struct Fields<'a> {
        key: &'a str,
        obj: &'a Map<String, Value>,
        header: Option<PartialHeader>,
    }

    impl Fields<'_> {
        fn malformed(&self, detail: impl Into<String>) -> Malformed {
            let (id, tenant_id, deleted) = self.header.clone().unwrap_or((None, None, None));
            Malformed {
                key: self.key.to_string(),
                id,
                tenant_id,
                deleted,
                detail: detail.into(),
            }
        }

        fn string<'v>(&self, field: &str) -> Result<Cow<'v, str>, Malformed> {
            match self.obj.get(field) {
                Some(Value::String(s)) => Ok(Cow::Owned(s.clone())),
                Some(_) => Err(self.malformed(format!("field `{field}` is not a string"))),
                None => Err(self.malformed(format!("field `{field}` is missing"))),
            }
        }

        fn optional_string<'v>(&self, field: &str) -> Result<Option<Cow<'v, str>>, Malformed> {
            match self.obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(Cow::Owned(s.clone()))),
                Some(_) => Err(self.malformed(format!("field `{field}` is not a string"))),
            }
        }
    }

    fn parse_object(raw: &RawDoc) -> Result<Map<String, Value>, Malformed> {
        let bare = |detail: &str| Malformed {
            key: raw.key.clone(),
            id: None,
            tenant_id: None,
            deleted: None,
            detail: detail.to_string(),
        };
        match serde_json::from_str::<Value>(&raw.value) {
            Ok(Value::Object(obj)) => Ok(obj),
            Ok(_) => Err(bare("document is not a JSON object")),
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(bare(&format!(
                "document is nested deeper than {MAX_NESTING} levels"
            ))),
            Err(_) => Err(bare("document is not valid JSON")),
        }
    }

    /// What can be read of `id`, `tenantId` and `deleted`, each on its own.
    pub(super) fn partial_header(obj: &Map<String, Value>) -> PartialHeader {
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let tenant_id = match obj.get("tenantId") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        };
        let deleted = match obj.get("deleted") {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => None,
        };
        (id, tenant_id, deleted)
    }

    /// The members `names` of the object `text` that it gives exactly once;
    /// one given twice is left out, as if unreadable (`null` for an
    /// absent-or-null member would guess). Empty when `text` is no object.
    pub(super) fn members_given_once(text: &str, names: &[&str]) -> Map<String, Value> {
        let mut once = Map::new();
        let Some(members) = canonical::members(text) else {
            return once;
        };
        for name in names {
            let mut given = members.iter().filter(|(n, _)| n == name);
            match (given.next(), given.next()) {
                (Some((_, value)), None) => {
                    if let Ok(value) = serde_json::from_str(value.get()) {
                        once.insert(name.to_string(), value);
                    }
                }
                // Given twice: neither value can be trusted. An empty array
                // is no valid value of any header member: it reads as
                // unknown, never as absent.
                (Some(_), Some(_)) => {
                    once.insert(name.to_string(), Value::Array(Vec::new()));
                }
                _ => {}
            }
        }
        once
    }

    /// Reads the shared fields. `id` must be a non-empty string, `tenantId`
    /// a string or null/absent, `deleted` a boolean (absent or null means
    /// false, as Kestra's own entities default it).
    fn parse_header<'r, 'o>(
        raw: &'r RawDoc,
        obj: &'o Map<String, Value>,
    ) -> Result<(Header<'r>, Fields<'o>), Malformed>
    where
        'r: 'o,
    {
        let mut fields = Fields {
            key: &raw.key,
            obj,
            header: None,
        };
        // Gather what can be read first, so a malformed document still
        // resolves references ("role malformed" rather than "role missing").
        let (id, tenant_id, deleted) = partial_header(obj);
        fields.header = Some((id.clone(), tenant_id.clone(), deleted));
        let id = match (id, obj.get("id")) {
            (Some(id), _) => id,
            (None, Some(Value::String(_))) => return Err(fields.malformed("field `id` is empty")),
            (None, Some(_)) => return Err(fields.malformed("field `id` is not a string")),
            (None, None) => return Err(fields.malformed("field `id` is missing")),
        };
        let Some(tenant_id) = tenant_id else {
            return Err(fields.malformed("field `tenantId` is not a string"));
        };
        let Some(deleted) = deleted else {
            return Err(fields.malformed("field `deleted` is not a boolean"));
        };
        let header = Header {
            key: &raw.key,
            id: Cow::Owned(id),
            tenant_id: tenant_id.map(Cow::Owned),
            deleted,
        };
        Ok((header, fields))
    }

    fn parse_membership(
        fields: &Fields<'_>,
        value: Option<&Value>,
    ) -> Result<Membership, Malformed> {
        match value {
            Some(Value::String(s)) if s == "MEMBER" => Ok(Membership::Member),
            Some(Value::String(s)) if s == "OWNER" => Ok(Membership::Owner),
            Some(_) => Err(fields
                .malformed("a `groupList` entry has a `membership` other than MEMBER or OWNER")),
            None => Err(fields.malformed("a `groupList` entry has no `membership`")),
        }
    }

    pub fn user(raw: &RawDoc) -> Parsed<User<'_>> {
        let obj = parse_object(raw)?;
        let (header, fields) = parse_header(raw, &obj)?;
        let username = fields.string("username")?;
        let mut legacy_memberships = BTreeMap::new();
        let mut tenant_memberships = BTreeMap::new();
        match obj.get("groups") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ids)) => {
                for id in ids {
                    let Value::String(id) = id else {
                        return Err(
                            fields.malformed("field `groups` holds a value that is not a string")
                        );
                    };
                    legacy_memberships.insert(Cow::Owned(id.clone()), Membership::Member);
                }
            }
            Some(_) => return Err(fields.malformed("field `groups` is not an array")),
        }
        match obj.get("groupList") {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for entry in entries {
                    let Value::Object(entry) = entry else {
                        return Err(fields
                            .malformed("field `groupList` holds a value that is not an object"));
                    };
                    let group_id = match entry.get("groupId") {
                        Some(Value::String(s)) => Cow::Owned(s.clone()),
                        _ => {
                            return Err(
                                fields.malformed("a `groupList` entry has no string `groupId`")
                            )
                        }
                    };
                    let membership = parse_membership(&fields, entry.get("membership"))?;
                    match entry.get("tenantId") {
                        None | Some(Value::Null) => {
                            legacy_memberships.insert(group_id, membership);
                        }
                        Some(Value::String(tenant)) => {
                            tenant_memberships
                                .insert((Cow::Owned(tenant.clone()), group_id), membership);
                        }
                        Some(_) => {
                            return Err(fields.malformed(
                                "a `groupList` entry has a `tenantId` that is not a string",
                            ))
                        }
                    }
                }
            }
            Some(_) => return Err(fields.malformed("field `groupList` is not an array")),
        }
        // Read for review only (service accounts, super admins): a type
        // that is not a string is no reason to skip the user.
        let user_type = obj
            .get("type")
            .and_then(Value::as_str)
            .map(|t| Cow::Owned(t.to_string()));
        Ok(User {
            header,
            username,
            user_type,
            legacy_memberships,
            tenant_memberships,
        })
    }

    pub fn group(raw: &RawDoc) -> Parsed<Group<'_>> {
        let obj = parse_object(raw)?;
        let (header, fields) = parse_header(raw, &obj)?;
        let name = fields.string("name")?;
        fields.optional_string("description")?;
        Ok(Group {
            header,
            name,
            raw: &raw.value,
        })
    }

    pub fn role(raw: &RawDoc) -> Parsed<Role<'_>> {
        let obj = parse_object(raw)?;
        let (header, fields) = parse_header(raw, &obj)?;
        let name = fields.string("name")?;
        let mut permissions = Permissions::new();
        match obj.get("permissions") {
            Some(Value::Object(map)) => {
                for (permission, actions) in map {
                    let Value::Array(actions) = actions else {
                        return Err(fields.malformed(format!(
                            "permission `{permission}` is not an array of actions"
                        )));
                    };
                    let mut set = BTreeSet::new();
                    for action in actions {
                        let Value::String(action) = action else {
                            return Err(fields.malformed(format!(
                                "permission `{permission}` holds an action that is not a string"
                            )));
                        };
                        set.insert(Cow::Owned(action.clone()));
                    }
                    if !set.is_empty() {
                        permissions.insert(Cow::Owned(permission.clone()), set);
                    }
                }
            }
            Some(_) => return Err(fields.malformed("field `permissions` is not an object")),
            None => return Err(fields.malformed("field `permissions` is missing")),
        }
        Ok(Role {
            header,
            name,
            permissions,
            raw: &raw.value,
        })
    }

    pub fn binding(raw: &RawDoc) -> Parsed<Binding<'_>> {
        let obj = parse_object(raw)?;
        let (header, fields) = parse_header(raw, &obj)?;
        let subject_type = match obj.get("type") {
            Some(Value::String(s)) if s == "USER" => SubjectType::User,
            Some(Value::String(s)) if s == "GROUP" => SubjectType::Group,
            Some(_) => return Err(fields.malformed("field `type` is neither USER nor GROUP")),
            None => return Err(fields.malformed("field `type` is missing")),
        };
        let external_id = fields.string("externalId")?;
        let role_id = fields.string("roleId")?;
        let namespace_id = fields.optional_string("namespaceId")?;
        Ok(Binding {
            header,
            grant: Grant {
                subject_type,
                external_id,
                role_id,
                namespace_id,
            },
        })
    }
}

/// A JSON object in canonical form ([`crate::plan::canonical`]): keys
/// sorted by their UTF-8 bytes at every depth, no whitespace, serde_json's
/// escaping and number format. It is
/// what a change writes, and exactly the bytes the digest covers, so the
/// same document plans to the same bytes on every backend (PostgreSQL's
/// `jsonb` and MySQL's `JSON` reorder keys).
pub struct Document {
    text: Box<serde_json::value::RawValue>,
    /// Parsed on first use, for readers of its fields (`show`).
    /// (Both boxed: a document is in every change, a revert holds a
    /// million changes, and a change is as large as its largest kind.)
    parsed: std::sync::OnceLock<Box<Map<String, Value>>>,
    /// Where [`Document::binding_fields`] found its members in `text`,
    /// once asked: `show` reads them several times per binding, and
    /// parsing a document each time was a third of its rendering.
    binding_at: std::sync::OnceLock<Option<Box<[Span; 4]>>>,
}

/// Where a member's string is in a document's text, if it has one.
type Span = Option<(u32, u32)>;

impl Clone for Document {
    fn clone(&self) -> Self {
        Document::from_text(self.text.clone())
    }
}

impl Document {
    /// The canonical form of a JSON object.
    pub fn from_map(map: &Map<String, Value>) -> Document {
        let text = canonical::to_string(map);
        Document::from_text(
            serde_json::value::RawValue::from_string(text).expect("serde_json wrote valid JSON"),
        )
    }

    fn from_text(text: Box<serde_json::value::RawValue>) -> Document {
        Document {
            text,
            parsed: std::sync::OnceLock::new(),
            binding_at: std::sync::OnceLock::new(),
        }
    }

    /// A document of a plan that was checked already, kept as it is read
    /// (not brought to canonical form again): for readers of its members
    /// ([`crate::plan::ChangesText`]), never for the digest or a write.
    pub(crate) fn as_read(text: &serde_json::value::RawValue) -> Document {
        Document::from_text(text.to_owned())
    }

    /// A document whose text `text` is known to be canonical already
    /// ([`crate::plan::canonical::is_object_canonical`]): what serde's
    /// reading of a plan's document gives, without asking again.
    pub(crate) fn canonical_as_read(text: &serde_json::value::RawValue) -> Document {
        debug_assert!(crate::plan::canonical::is_object_canonical(text.get()));
        Document::from_text(text.to_owned())
    }

    /// The document's members, parsed once and kept.
    pub fn map(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| Box::new(self.to_map()))
    }

    /// The document `raw` (a JSON object's text) with `tenantId` set to
    /// `tenant`, every other member kept, in canonical form. `None` when
    /// `raw` is not a JSON object.
    pub fn copy_to_tenant(raw: &str, tenant: &str) -> Option<Document> {
        if !nesting_within_limit(raw) {
            return None;
        }
        Self::copy_readable_to_tenant(raw, tenant)
    }

    /// [`copy_to_tenant`](Self::copy_to_tenant) of a document that was
    /// found readable, its nesting within the limit.
    pub(super) fn copy_readable_to_tenant(raw: &str, tenant: &str) -> Option<Document> {
        let text = canonical::with_member(raw, "tenantId", tenant)?;
        Some(Document::from_text(
            serde_json::value::RawValue::from_string(text).ok()?,
        ))
    }

    pub fn as_str(&self) -> &str {
        self.text.get()
    }

    /// A binding's `type`, `externalId`, `roleId` and `namespaceId`, read
    /// in place from the text without parsing it into a map, or keeping
    /// one: `None` when one of them is not a plain string (escaped, or of
    /// another type), and the caller reads [`Document::map`] instead.
    /// A million bindings parsed into maps and kept cost a gigabyte.
    pub fn binding_fields(&self) -> Option<BindingFields<'_>> {
        let text = self.as_str();
        let spans = self.binding_at.get_or_init(|| {
            let fields: BindingFields = serde_json::from_str(text).ok()?;
            // Borrowed from `text` (a field with an escape is no borrow,
            // and the whole read declines): where each one is.
            let span = |field: Option<&str>| -> Option<Span> {
                let Some(field) = field else {
                    return Some(None);
                };
                let at = (field.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
                let end = at.checked_add(field.len())?;
                (end <= text.len())
                    .then_some(Some((u32::try_from(at).ok()?, u32::try_from(end).ok()?)))
            };
            Some(Box::new([
                span(fields.subject_type)?,
                span(fields.external_id)?,
                span(fields.role_id)?,
                span(fields.namespace_id)?,
            ]))
        });
        let [subject_type, external_id, role_id, namespace_id] = **spans.as_ref()?;
        let get = |span: Span| span.map(|(at, end)| &text[at as usize..end as usize]);
        Some(BindingFields {
            subject_type: get(subject_type),
            external_id: get(external_id),
            role_id: get(role_id),
            namespace_id: get(namespace_id),
        })
    }

    /// The canonical text, without a copy.
    pub fn into_string(self) -> String {
        let text: Box<str> = self.text.into();
        text.into()
    }

    /// The document as a map, for reading its fields.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.as_str()).expect("a document is a JSON object")
    }
}

/// [`Document::binding_fields`]: absent members are `None`.
#[derive(Debug, Deserialize)]
pub struct BindingFields<'a> {
    #[serde(borrow, default, rename = "type")]
    pub subject_type: Option<&'a str>,
    #[serde(borrow, default, rename = "externalId")]
    pub external_id: Option<&'a str>,
    #[serde(borrow, default, rename = "roleId")]
    pub role_id: Option<&'a str>,
    #[serde(borrow, default, rename = "namespaceId")]
    pub namespace_id: Option<&'a str>,
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Document {}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Document {
    /// A plan's document is taken as its text and brought to canonical form
    /// (without a `Value` when it is flat, as plans write them).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        // A plan's documents are written canonical: kept as they are read.
        if canonical::is_object_canonical(raw.get()) {
            return Ok(Document::from_text(raw));
        }
        if !nesting_within_limit(raw.get()) {
            return Err(serde::de::Error::custom(format!(
                "a document is nested deeper than {MAX_NESTING} levels"
            )));
        }
        let text = canonical::object(raw.get())
            .ok_or_else(|| serde::de::Error::custom("a document must be a JSON object"))?;
        let text =
            serde_json::value::RawValue::from_string(text).map_err(serde::de::Error::custom)?;
        Ok(Document::from_text(text))
    }
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    /// `{"id":"x",...,"extra":[[...["deep"]...]]}` with `depth` arrays.
    fn nested(prefix: &str, depth: usize) -> String {
        format!(
            "{{{prefix}\"extra\":{}\"d[e{{e\\\"p\\\\\"{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn the_limit_is_serde_jsons() {
        for depth in (0..140).chain([1000, 100_000]) {
            let text = nested("\"s\":\"]]}}\\\"[[\",", depth);
            assert_eq!(
                nesting_within_limit(&text),
                serde_json::from_str::<Value>(&text).is_ok(),
                "depth {depth}"
            );
        }
    }

    /// A document nested too deep for serde_json is malformed, never
    /// planned: it used to pass the fast path and panic where it was copied
    /// (`plan`) or read back (`show`, `verify`).
    #[test]
    fn deeply_nested_documents_are_malformed_or_readable() {
        let fields = [
            ("group", "\"id\":\"g\",\"name\":\"G\",\"deleted\":false,"),
            (
                "role",
                "\"id\":\"r\",\"name\":\"R\",\"permissions\":{\"FLOW\":[\"READ\"]},\"deleted\":false,",
            ),
            (
                "binding",
                "\"id\":\"b\",\"type\":\"USER\",\"externalId\":\"u\",\"roleId\":\"r\",\"deleted\":false,",
            ),
            ("user", "\"id\":\"u\",\"username\":\"u\",\"deleted\":false,"),
        ];
        for depth in (120..135).chain([5000]) {
            for (kind, prefix) in fields {
                let raw = RawDoc::new("k", nested(prefix, depth));
                let copied = match kind {
                    "group" => parse_group(&raw).map(|g| g.raw),
                    "role" => parse_role(&raw).map(|r| r.raw),
                    "binding" => parse_binding(&raw).map(|_| raw.value.as_str()),
                    _ => parse_user(&raw).map(|_| raw.value.as_str()),
                };
                match copied {
                    Ok(text) => {
                        let copy = Document::copy_to_tenant(text, "t").expect("copied");
                        assert_eq!(copy.to_map()["tenantId"], "t", "{kind} at {depth}");
                    }
                    Err(m) => assert!(m.detail.contains("nested deeper"), "{kind}: {m:?}"),
                }
            }
            let text = nested("\"id\":\"x\",", depth);
            match serde_json::from_str::<Document>(&text) {
                Ok(doc) => assert_eq!(doc.to_map()["id"], "x"),
                Err(e) => assert!(e.to_string().contains("nested deeper"), "{e}"),
            }
        }
    }
}

#[cfg(test)]
mod binding_fields_tests {
    use super::Document;
    use serde_json::{Map, Value};

    fn doc(text: &str) -> Document {
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        Document::from_map(&map)
    }

    /// What `binding_fields` reads in place is what the map says; where it
    /// cannot read in place it says so, and the caller reads the map.
    #[test]
    fn a_document_is_no_larger_than_before_it_kept_its_binding_fields() {
        // Three words and two lock states: what a change of a million in
        // a revert costs for its document.
        assert!(std::mem::size_of::<Document>() <= 48);
        assert!(std::mem::size_of::<crate::sync::Change>() <= 128);
    }

    #[test]
    fn binding_fields_agree_with_the_map_or_decline() {
        let cases = [
            r#"{"type":"USER","externalId":"u1","roleId":"r1","namespaceId":"a.b","id":"b1"}"#,
            r#"{"type":"GROUP","externalId":"g1","roleId":"r1","namespaceId":null}"#,
            r#"{"type":"USER","externalId":"u\"1","roleId":"r1"}"#,
            r#"{"type":"USER","externalId":"u\\1","roleId":"r\n1"}"#,
            r#"{"type":"USER","externalId":7,"roleId":"r1"}"#,
            r#"{"roleId":"é\u0001"}"#,
            r#"{}"#,
        ];
        let mut declined = 0;
        for text in cases {
            let d = doc(text);
            let map = d.to_map();
            let field = |name: &str| map.get(name).and_then(Value::as_str);
            // Asked again, the fields are where the first read found them.
            let first = format!("{:?}", d.binding_fields());
            assert_eq!(format!("{:?}", d.binding_fields()), first, "{text}");
            match d.binding_fields() {
                Some(f) => {
                    assert_eq!(f.subject_type, field("type"), "{text}");
                    assert_eq!(f.external_id, field("externalId"), "{text}");
                    assert_eq!(f.role_id, field("roleId"), "{text}");
                    assert_eq!(f.namespace_id, field("namespaceId"), "{text}");
                }
                None => declined += 1,
            }
        }
        // The escaped strings and the number.
        assert_eq!(declined, 4);
    }
}

#[cfg(test)]
mod scanned_binding_tests {
    use super::*;

    /// The one-scan read of a binding in the first pass gives what
    /// checking the document and then reading it with serde_json gives,
    /// or steps aside; it never reads a document the full path refuses.
    #[test]
    fn the_one_scan_read_agrees_with_the_full_path_or_steps_aside() {
        let cases: &[(&str, bool)] = &[
            // (document, whether the one scan reads it)
            (
                r#"{"id":"b","type":"USER","externalId":"u","roleId":"r","deleted":false}"#,
                true,
            ),
            (
                r#" { "id" : "b", "tenantId": "t", "type": "GROUP", "externalId": "g", "roleId": "r", "namespaceId": "n.s", "deleted": true, "extra": [1, {"x": null}] } "#,
                true,
            ),
            (
                r#"{"id":"b","tenantId":null,"namespaceId":null,"deleted":null,"type":"USER","externalId":"u","roleId":"r"}"#,
                true,
            ),
            // Escapes, other types, other spellings: the full path reads them.
            (
                r#"{"id":"b\u0041","type":"USER","externalId":"u","roleId":"r"}"#,
                false,
            ),
            (
                r#"{"id":"b","type":"USER","externalId":"u\"","roleId":"r"}"#,
                false,
            ),
            (
                r#"{"id":"b","type":"user","externalId":"u","roleId":"r"}"#,
                false,
            ),
            (
                r#"{"id":"b","type":"USER","externalId":"u","roleId":"r","deleted":0}"#,
                false,
            ),
            (
                r#"{"id":7,"type":"USER","externalId":"u","roleId":"r"}"#,
                false,
            ),
            (
                r#"{"id":"b","tenantId":1,"type":"USER","externalId":"u","roleId":"r"}"#,
                false,
            ),
            (r#"{"id":"b","type":"USER","roleId":"r"}"#, false),
            (
                r#"{"id":"","type":"USER","externalId":"u","roleId":"r"}"#,
                true,
            ),
            // Refused by the full path: never read by the one scan.
            (
                r#"{"id":"b","id":"c","type":"USER","externalId":"u","roleId":"r"}"#,
                false,
            ),
            (
                r#"{"id":"b","type":"USER","externalId":"u","roleId":"r","x":{"y":1,"y":2}}"#,
                false,
            ),
            (
                r#"{"id":"b","type":"USER","externalId":"u","roleId":"r""#,
                false,
            ),
            (r#"["id","b"]"#, false),
            ("not json", false),
        ];
        for &(text, read) in cases {
            let scanned = fast::scanned_binding(text);
            assert_eq!(scanned.is_some(), read, "{text}");
            let Some(scanned) = scanned else { continue };
            let raw = RawDoc::new("k", text);
            assert!(unreadable(&raw).is_none(), "{text}");
            let full: fast::Binding = serde_json::from_str(text).expect(text);
            assert_eq!(scanned.id, full.id, "{text}");
            assert_eq!(scanned.tenant_id, full.tenant_id, "{text}");
            assert_eq!(scanned.deleted, full.deleted, "{text}");
            assert_eq!(scanned.subject_type, full.subject_type, "{text}");
            assert_eq!(scanned.external_id, full.external_id, "{text}");
            assert_eq!(scanned.role_id, full.role_id, "{text}");
            assert_eq!(scanned.namespace_id, full.namespace_id, "{text}");
            // And the parse of the row is what it was: the slow path's
            // verdict on an empty id included.
            let parsed = parse_binding(&raw)
                .map(|b| (b.header.id.into_owned(), b.grant.role_id.into_owned()));
            let before = parse_readable_binding(&raw)
                .map(|b| (b.header.id.into_owned(), b.grant.role_id.into_owned()));
            assert_eq!(parsed.is_ok(), before.is_ok(), "{text}");
            if let (Ok(a), Ok(b)) = (parsed, before) {
                assert_eq!(a, b, "{text}");
            }
        }
    }
}
