//! Typed views of the store's JSON documents (SPEC §2).
//!
//! Parsing is lenient about fields the tool does not read (they are kept
//! untouched in `doc`) and strict about the ones it does: a document whose
//! read fields are missing or of the wrong type is `Malformed`, with a detail
//! that names the field but never quotes the document (it may hold `auths`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A row as read from the store: its key and its `value` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDoc {
    pub key: String,
    pub value: String,
}

impl RawDoc {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        RawDoc {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The fields every document shares.
#[derive(Debug, Clone)]
pub struct Header {
    pub key: String,
    pub id: String,
    /// `None` for the legacy scope (absent or JSON null).
    pub tenant_id: Option<String>,
    pub deleted: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
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
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
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
pub struct User {
    pub header: Header,
    pub username: String,
    /// Legacy memberships, by group id: `groups` (MEMBER) overridden by
    /// `groupList` entries without a tenant.
    pub legacy_memberships: BTreeMap<String, Membership>,
    /// `groupList` entries per tenant: (tenant, group) -> membership.
    pub tenant_memberships: BTreeMap<(String, String), Membership>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub header: Header,
    pub name: String,
    pub doc: Map<String, Value>,
}

/// Permission name -> set of actions; permissions without actions are absent.
pub type Permissions = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone)]
pub struct Role {
    pub header: Header,
    pub name: String,
    pub permissions: Permissions,
    pub doc: Map<String, Value>,
}

/// The four fields that make two bindings the same grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub subject_type: SubjectType,
    pub external_id: String,
    pub role_id: String,
    pub namespace_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub header: Header,
    pub grant: Grant,
    pub doc: Map<String, Value>,
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

/// What could be read of `id`, `tenantId` and `deleted` before a failure.
type PartialHeader = (Option<String>, Option<Option<String>>, Option<bool>);

struct Fields<'a> {
    key: &'a str,
    obj: &'a Map<String, Value>,
    header: Option<PartialHeader>,
}

impl<'a> Fields<'a> {
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

    fn string(&self, field: &str) -> Result<String, Malformed> {
        match self.obj.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.malformed(format!("field `{field}` is not a string"))),
            None => Err(self.malformed(format!("field `{field}` is missing"))),
        }
    }

    fn optional_string(&self, field: &str) -> Result<Option<String>, Malformed> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
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
        Err(_) => Err(bare("document is not valid JSON")),
    }
}

/// Reads the shared fields. `id` must be a non-empty string, `tenantId` a
/// string or null/absent, `deleted` a boolean (absent means false, as Kestra's
/// own entities default it).
fn parse_header<'a>(
    raw: &'a RawDoc,
    obj: &'a Map<String, Value>,
) -> Result<(Header, Fields<'a>), Malformed> {
    let mut fields = Fields {
        key: &raw.key,
        obj,
        header: None,
    };
    // Gather what can be read first, so a malformed document still resolves
    // references ("role malformed" rather than "role missing").
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
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    };
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
        key: raw.key.clone(),
        id,
        tenant_id,
        deleted,
    };
    Ok((header, fields))
}

fn parse_membership(fields: &Fields<'_>, value: Option<&Value>) -> Result<Membership, Malformed> {
    match value {
        Some(Value::String(s)) if s == "MEMBER" => Ok(Membership::Member),
        Some(Value::String(s)) if s == "OWNER" => Ok(Membership::Owner),
        Some(_) => {
            Err(fields
                .malformed("a `groupList` entry has a `membership` other than MEMBER or OWNER"))
        }
        None => Err(fields.malformed("a `groupList` entry has no `membership`")),
    }
}

pub fn parse_user(raw: &RawDoc) -> Parsed<User> {
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
                legacy_memberships.insert(id.clone(), Membership::Member);
            }
        }
        Some(_) => return Err(fields.malformed("field `groups` is not an array")),
    }
    match obj.get("groupList") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            for entry in entries {
                let Value::Object(entry) = entry else {
                    return Err(
                        fields.malformed("field `groupList` holds a value that is not an object")
                    );
                };
                let group_id = match entry.get("groupId") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(fields.malformed("a `groupList` entry has no string `groupId`"))
                    }
                };
                let membership = parse_membership(&fields, entry.get("membership"))?;
                match entry.get("tenantId") {
                    None | Some(Value::Null) => {
                        legacy_memberships.insert(group_id, membership);
                    }
                    Some(Value::String(tenant)) => {
                        tenant_memberships.insert((tenant.clone(), group_id), membership);
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
    Ok(User {
        header,
        username,
        legacy_memberships,
        tenant_memberships,
    })
}

pub fn parse_group(raw: &RawDoc) -> Parsed<Group> {
    let obj = parse_object(raw)?;
    let (header, fields) = parse_header(raw, &obj)?;
    let name = fields.string("name")?;
    fields.optional_string("description")?;
    Ok(Group {
        header,
        name,
        doc: obj,
    })
}

pub fn parse_role(raw: &RawDoc) -> Parsed<Role> {
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
                    set.insert(action.clone());
                }
                if !set.is_empty() {
                    permissions.insert(permission.clone(), set);
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
        doc: obj,
    })
}

pub fn parse_binding(raw: &RawDoc) -> Parsed<Binding> {
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
        doc: obj,
    })
}

/// The document with `tenantId` set to `tenant`, every other field kept.
/// Keys are sorted (recursively): PostgreSQL's `jsonb` and MySQL's `JSON`
/// reorder keys, so only a canonical order makes plans of the same data
/// byte-identical on every backend.
pub fn with_tenant(doc: &Map<String, Value>, tenant: &str) -> Map<String, Value> {
    let mut copy = doc.clone();
    copy.insert("tenantId".to_string(), Value::String(tenant.to_string()));
    sorted_map(&copy)
}

/// A copy of `map` with its keys, and those of every nested object, sorted
/// by their UTF-8 bytes.
pub fn sorted_map(map: &Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries
        .into_iter()
        .map(|(k, v)| (k.clone(), sorted(v)))
        .collect()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(sorted_map(map)),
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
