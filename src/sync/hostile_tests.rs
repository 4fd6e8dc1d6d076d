//! Store documents as an attacker or an unlucky store writes them (issue
//! 11): numbers of any size, bytes that are not UTF-8, members given twice,
//! escapes serde_json skips without decoding. None may panic the rules;
//! what cannot be read alike by every reader is malformed, never copied
//! (docs/rules.md §9).

use proptest::prelude::*;

use super::*;

const T: &str = "default";

fn store() -> Snapshot {
    Snapshot {
        tenants: vec![RawDoc::new(T, r#"{"id":"default","deleted":false}"#)],
        ..Snapshot::default()
    }
}

fn run(snapshot: &Snapshot) -> SyncResult {
    sync(snapshot, &SyncOptions::new(T)).expect("the tenant exists")
}

fn skipped<'a>(result: &'a SyncResult, kind: Kind, key: &str) -> &'a Finding {
    result
        .skipped
        .iter()
        .find(|f| f.kind == kind && f.key == key)
        .unwrap_or_else(|| panic!("no skipped {kind:?} {key}: {result:#?}"))
}

fn copied(result: &SyncResult, key: &str) -> Option<String> {
    result.changes.iter().find_map(|c| match c {
        Change::AddRole { key: k, value, .. }
        | Change::AddGroup { key: k, value }
        | Change::AddBinding { key: k, value, .. }
            if k == key =>
        {
            Some(value.as_str().to_string())
        }
        _ => None,
    })
}

#[test]
fn numbers_of_any_size_and_precision_are_copied_as_written() {
    let pg_numeric = format!("1{}", "0".repeat(309));
    let mut snap = store();
    snap.roles.push(RawDoc::new(
        "r",
        format!(
            r#"{{"id":"r","name":"R","permissions":{{"FLOW":["READ"]}},"deleted":false,
            "big":1e400,"pg":{pg_numeric},"fine":0.1000000000000000000001,"negzero":-0,
            "upper":1E2,"trail":1.10,"small":-1e-400,"nested":[{{"x":1.5e+3}}]}}"#
        ),
    ));
    let result = run(&snap);
    let text = copied(&result, "default_r").expect("the role is copied");
    assert_eq!(
        text,
        format!(
            r#"{{"big":1e400,"deleted":false,"fine":0.1000000000000000000001,"id":"r","name":"R","negzero":-0,"nested":[{{"x":1.5e+3}}],"permissions":{{"FLOW":["READ"]}},"pg":{pg_numeric},"small":-1e-400,"tenantId":"default","trail":1.10,"upper":1E2}}"#
        )
    );
    // The copy is canonical: read again, it is written the same.
    assert_eq!(
        crate::plan::canonical::object(&text).as_deref(),
        Some(text.as_str())
    );
}

#[test]
fn a_member_given_twice_anywhere_is_malformed_and_never_copied() {
    let mut snap = store();
    snap.roles.push(RawDoc::new(
        "twice",
        r#"{"id":"twice","tenantId":null,"name":"R","permissions":{},"tenantId":"other"}"#,
    ));
    snap.groups.push(RawDoc::new(
        "deep",
        r#"{"id":"deep","name":"G","extra":{"list":[1,{"a":1,"a":2}]}}"#,
    ));
    snap.bindings.push(RawDoc::new(
        "b",
        r#"{"id":"b","type":"GROUP","externalId":"deep","roleId":"twice","deleted":false}"#,
    ));
    snap.users.push(RawDoc::new(
        "u",
        r#"{"id":"u","username":"u","deleted":true,"deleted":false,"groups":["deep"]}"#,
    ));
    let result = run(&snap);
    assert!(result.changes.is_empty(), "{:#?}", result.changes);
    let role = skipped(&result, Kind::Role, "twice");
    assert_eq!(role.reason, "malformed");
    assert_eq!(
        role.detail.as_deref(),
        Some("member `tenantId` is given twice")
    );
    let group = skipped(&result, Kind::Group, "deep");
    assert_eq!(
        group.detail.as_deref(),
        Some("member `extra.list[1].a` is given twice")
    );
    // Its id is read once: what refers to it says it is malformed.
    assert_eq!(
        skipped(&result, Kind::Binding, "b").reason,
        "group malformed"
    );
    // `deleted` given twice is not "deleted": the user is reported.
    assert_eq!(
        skipped(&result, Kind::User, "u").detail.as_deref(),
        Some("member `deleted` is given twice")
    );
}

/// The second pass over the bindings reads each row without checking its
/// bytes again (src/sync/bindings.rs): one the first pass found unreadable,
/// whose every field the fast reader would take, is still never copied.
#[test]
fn a_binding_found_unreadable_in_the_first_pass_is_never_copied_in_the_second() {
    let mut snap = store();
    snap.roles.push(RawDoc::new(
        "r",
        r#"{"id":"r","name":"R","permissions":{},"deleted":false}"#,
    ));
    snap.groups
        .push(RawDoc::new("g", r#"{"id":"g","name":"G","deleted":false}"#));
    for (key, doc) in [
        (
            "twice",
            r#"{"id":"twice","type":"GROUP","externalId":"g","roleId":"r","roleId":"r"}"#
                .to_string(),
        ),
        (
            "deep",
            format!(
                r#"{{"id":"deep","type":"GROUP","externalId":"g","roleId":"r","x":{}{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ),
        ),
        (
            "fine",
            r#"{"id":"fine","type":"GROUP","externalId":"g","roleId":"r"}"#.to_string(),
        ),
    ] {
        snap.bindings.push(RawDoc::new(key, doc));
    }
    let result = run(&snap);
    assert_eq!(skipped(&result, Kind::Binding, "twice").reason, "malformed");
    assert_eq!(skipped(&result, Kind::Binding, "deep").reason, "malformed");
    assert_eq!(copied(&result, "default_twice"), None);
    assert_eq!(copied(&result, "default_deep"), None);
    assert!(copied(&result, "default_fine").is_some(), "{result:#?}");
}

#[test]
fn a_row_that_is_not_utf8_is_malformed_and_named_by_its_key() {
    let mut snap = store();
    snap.roles.push(RawDoc::from_bytes(
        b"r1".to_vec(),
        b"{\"id\":\"r1\",\"name\":\"\xff\xfe\",\"permissions\":{}}".to_vec(),
    ));
    snap.groups
        .push(RawDoc::from_bytes(b"g\xff".to_vec(), b"{}".to_vec()));
    let result = run(&snap);
    let role = skipped(&result, Kind::Role, "r1");
    assert_eq!(role.detail.as_deref(), Some("document is not valid UTF-8"));
    let group = skipped(&result, Kind::Group, "g\u{fffd}");
    assert_eq!(
        group.detail.as_deref(),
        Some("the row's key is not valid UTF-8")
    );
    assert!(result.changes.is_empty());
}

#[test]
fn escapes_serde_json_cannot_decode_and_reserved_names_are_malformed() {
    let mut snap = store();
    // serde_json skips an unread member's string without decoding it; the
    // copy then failed to decode it (a panic before issue 11).
    snap.roles.push(RawDoc::new(
        "lone",
        r#"{"id":"lone","name":"R","permissions":{},"x":"\ud800"}"#,
    ));
    snap.roles.push(RawDoc::new(
        "token",
        r#"{"id":"token","name":"T","permissions":{},"x":{"$serde_json::private::Number":"1"}}"#,
    ));
    let result = run(&snap);
    assert_eq!(
        skipped(&result, Kind::Role, "lone").detail.as_deref(),
        Some("document is not valid JSON")
    );
    assert_eq!(
        skipped(&result, Kind::Role, "token").detail.as_deref(),
        Some("member `x.$serde_json::private::Number` has a name the JSON reader reserves for itself")
    );
    assert!(result.changes.is_empty());
}

#[test]
fn a_tenant_document_that_readers_could_read_differently_stops_the_plan() {
    let mut snap = store();
    snap.tenants = vec![RawDoc::new(
        T,
        r#"{"id":"default","deleted":false,"deleted":true}"#,
    )];
    assert_eq!(
        sync(&snap, &SyncOptions::new(T)).unwrap_err().to_string(),
        "tenant `default` has a malformed document: member `deleted` is given twice"
    );
    snap.tenants = vec![RawDoc::from_bytes(
        T.as_bytes().to_vec(),
        b"{\"id\":\"\xff\"}".to_vec(),
    )];
    assert_eq!(
        sync(&snap, &SyncOptions::new(T)).unwrap_err().to_string(),
        "tenant `default` has a malformed document: document is not valid UTF-8"
    );
}

/// JSON-ish text: valid documents with their members mutated, and plain
/// noise.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let member = prop_oneof![
        Just(r#""id":"x""#.to_string()),
        Just(r#""id":"y""#.to_string()),
        Just(r#""tenantId":null"#.to_string()),
        Just(r#""tenantId":"default""#.to_string()),
        Just(r#""deleted":false"#.to_string()),
        Just(r#""deleted":true"#.to_string()),
        Just(r#""name":"N""#.to_string()),
        Just(r#""username":"u""#.to_string()),
        Just(r#""permissions":{"FLOW":["READ"]}"#.to_string()),
        Just(r#""type":"USER""#.to_string()),
        Just(r#""type":"GROUP""#.to_string()),
        Just(r#""externalId":"x""#.to_string()),
        Just(r#""roleId":"x""#.to_string()),
        Just(r#""groups":["x"]"#.to_string()),
        Just(r#""n":1e400"#.to_string()),
        Just(r#""n":-0"#.to_string()),
        Just(r#""n":123456789012345678901234567890.5"#.to_string()),
        Just(r#""s":"\ud800""#.to_string()),
        Just(r#""s":"\u001b[2J\u0000""#.to_string()),
        Just(r#""$serde_json::private::RawValue":"1""#.to_string()),
        (1usize..200).prop_map(|d| format!(r#""deep":{}1{}"#, "[".repeat(d), "]".repeat(d))),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        proptest::collection::vec(member, 0..10).prop_map(|members| format!(
            "{{{}}}",
            members.join(",")
        )
        .into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a store's rows hold, `sync` answers without a panic, and
    /// every document it copies is canonical JSON every reader reads alike.
    #[test]
    fn arbitrary_store_bytes_never_panic_the_rules(
        rows in proptest::collection::vec((0usize..4, "[a-z_]{1,3}", jsonish()), 0..12),
        tenant_bytes in jsonish(),
    ) {
        let mut snap = Snapshot {
            tenants: vec![RawDoc::from_bytes(T.as_bytes().to_vec(), tenant_bytes)],
            ..Snapshot::default()
        };
        for (table, key, bytes) in rows {
            let row = RawDoc::from_bytes(key.into_bytes(), bytes);
            match table {
                0 => snap.users.push(row),
                1 => snap.roles.push(row),
                2 => snap.groups.push(row),
                _ => snap.bindings.push(row),
            }
        }
        for options in [SyncOptions::new(T), SyncOptions { create_tenant: true, ..SyncOptions::new("other") }] {
            if let Ok(result) = sync(&snap, &options) {
                for change in &result.changes {
                    if let Change::AddRole { value, .. } | Change::AddGroup { value, .. } | Change::AddBinding { value, .. } = change {
                        prop_assert!(crate::plan::canonical::check(value.as_str()).is_ok());
                        let again = crate::plan::canonical::object(value.as_str());
                        prop_assert_eq!(again.as_deref(), Some(value.as_str()));
                    }
                }
                let _ = into_writes(&snap, &options.tenant, result.changes.clone());
            }
        }
    }
}

#[test]
fn keys_are_compared_as_the_store_compares_them() {
    let pad = KeyRules {
        pad_space: true,
        case_insensitive: false,
    };
    let mut snap = store();
    snap.keys = StoreKeys {
        tenants: pad,
        roles: pad,
        groups: pad,
        bindings: KeyRules::EXACT,
    };
    // The tenant's row, as the store finds it for `acme`.
    snap.tenants
        .push(RawDoc::new("acme ", r#"{"id":"acme","deleted":false}"#));
    snap.groups.push(RawDoc::new(
        "ops",
        r#"{"id":"ops","name":"Ops","deleted":false}"#,
    ));
    snap.groups.push(RawDoc::new(
        "acme_ops  ",
        r#"{"id":"x","tenantId":"other","name":"X","deleted":true}"#,
    ));
    snap.roles.push(RawDoc::new(
        "r1",
        r#"{"id":"r","name":"R","permissions":{},"deleted":false}"#,
    ));
    snap.roles.push(RawDoc::new(
        "r2",
        r#"{"id":"r ","name":"R2","permissions":{},"deleted":false}"#,
    ));
    let options = SyncOptions {
        create_tenant: true,
        ..SyncOptions::new("acme")
    };
    let result = sync(&snap, &options).unwrap();
    assert!(result.changes.is_empty(), "{:#?}", result.changes);
    let reasons: Vec<(&str, &str)> = result
        .conflicts
        .iter()
        .map(|f| (f.key.as_str(), f.reason.as_str()))
        .collect();
    let same = "the copies of several legacy documents (r1, r2) would go to `acme_r`, `acme_r `, one key to the database (it compares keys ignoring trailing spaces)";
    assert_eq!(
        reasons,
        [
            ("r1", same),
            ("r2", same),
            ("ops", "key `acme_ops` is already held by a deleted group as `acme_ops  `, the same key to the database (it compares keys ignoring trailing spaces)"),
        ]
    );
    // By bytes, as SQLite and PostgreSQL compare: nothing of the kind.
    snap.keys = StoreKeys::default();
    let result = sync(&snap, &options).unwrap();
    assert!(result.conflicts.is_empty(), "{:#?}", result.conflicts);
    assert_eq!(result.count(Op::CreateTenant), 1);
}

/// Bindings are judged in two passes that keep only ids and the keys a
/// copy could take (src/sync/bindings.rs): the store's way of comparing
/// keys must still be applied to all of them, as it is to roles.
#[test]
fn binding_keys_are_compared_as_the_store_compares_them() {
    let pad_ci = KeyRules {
        pad_space: true,
        case_insensitive: true,
    };
    let mut snap = store();
    snap.keys = StoreKeys {
        bindings: pad_ci,
        ..StoreKeys::default()
    };
    snap.users.push(RawDoc::new(
        "u",
        r#"{"id":"u","username":"u@x","deleted":false}"#,
    ));
    snap.roles.push(RawDoc::new(
        "r",
        r#"{"id":"r","name":"R","permissions":{},"deleted":false}"#,
    ));
    let binding = |key: &str, id: &str| {
        RawDoc::new(
            key,
            format!(
                r#"{{"id":{},"type":"USER","externalId":"u","roleId":"r","deleted":false}}"#,
                serde_json::to_string(id).unwrap()
            ),
        )
    };
    // `x` and `x `: one key to the database.
    snap.bindings.push(binding("k1", "x"));
    snap.bindings.push(binding("k2", "x "));
    // `y` twice is a shared id; `Y ` alone is left, and copied.
    snap.bindings.push(binding("k3", "y"));
    snap.bindings.push(binding("k4", "y"));
    snap.bindings.push(binding("k5", "Y "));
    // Alone in its spelling: copied.
    snap.bindings.push(binding("k6", "Z "));
    // The copy of `w` would take a key a deleted binding holds as
    // `DEFAULT_W  `.
    snap.bindings.push(binding("k7", "w"));
    snap.bindings.push(RawDoc::new(
        "DEFAULT_W  ",
        r#"{"id":"q","tenantId":"other","type":"USER","externalId":"u","roleId":"r","deleted":true}"#,
    ));
    let expected = {
        let result = run(&snap);
        let keys: Vec<&str> = result.changes.iter().map(Change::key).collect();
        assert_eq!(
            keys,
            ["default_r", "default_Y ", "default_Z "],
            "{result:#?}"
        );
        let reasons: Vec<(&str, &str)> = result
            .conflicts
            .iter()
            .map(|f| (f.key.as_str(), f.reason.as_str()))
            .collect();
        let same = "the copies of several legacy documents (k1, k2) would go to `default_x`, `default_x `, one key to the database (it compares keys ignoring trailing spaces and letter case)";
        let shared = "id `y` is used by several legacy documents (k3, k4)";
        assert_eq!(
            reasons,
            [
                ("k1", same),
                ("k2", same),
                ("k3", shared),
                ("k4", shared),
                ("k7", "key `default_w` is already held by a deleted binding as `DEFAULT_W  `, the same key to the database (it compares keys ignoring trailing spaces and letter case)"),
            ]
        );
        result
    };
    // The two passes need not see the rows in one order.
    let first: Vec<RawDoc> = snap.bindings.iter().rev().cloned().collect();
    let mut second = snap.bindings.clone();
    second.rotate_left(3);
    let result = sync_in_passes(&snap, &SyncOptions::new(T), &first, &second).unwrap();
    assert_eq!(result, expected);
}
