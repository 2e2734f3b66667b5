//! First-boot setup and API keys over HTTP: the code gives the first admin key once, keys are
//! shown once and stored as hashes only, revocation holds at once.

use crate::common::*;
use serde_json::json;
use wagate::auth::Scope;
use wagate::store::keys;

#[test]
fn setup_code_gives_the_first_admin_key_once() {
    let srv = Server::start(Options {
        setup_open: true,
        ..Options::default()
    });
    let setup = srv.url("/api/setup");

    assert_eq!(get(&setup, None).json(), json!({"open": true}));
    let health = get(&srv.url("/api/health"), None).json();
    assert_eq!(health["setup_pending"], true);

    // Wrong code: 403. Bad bodies: 400 / 415.
    let r = post_json(&setup, None, json!({"code": "AAAA-AAAA"}));
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "wrong_setup_code");
    let r = post_json(&setup, None, json!({"cod": "x"}));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("code")
    );
    let r = call(
        "POST",
        &setup,
        None,
        &[],
        Some(("text/plain", b"7KQ2M9XD".to_vec())),
    );
    assert_eq!(r.status, 415);

    // The right code (any case, dashes optional): 201 with an admin key.
    let r = post_json(&setup, None, json!({"code": "7kq2m9xd"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    let key = body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("wgk_"));
    assert_eq!(body["scopes"], json!(["admin"]));

    // Setup is closed now: 410, even with the right code.
    let r = post_json(&setup, None, json!({"code": SETUP_CODE}));
    assert_eq!(r.status, 410);
    assert_eq!(r.error_code(), "setup_closed");
    assert_eq!(get(&setup, None).json(), json!({"open": false}));
    assert!(!srv.state.setup().is_open());
    assert_eq!(srv.state.setup().code(), None);

    // The key works.
    let r = get(&srv.url("/api/keys"), Some(&key));
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

#[test]
fn wrong_setup_codes_are_rate_limited() {
    let srv = Server::start(Options {
        setup_open: true,
        ..Options::default()
    });
    let setup = srv.url("/api/setup");
    for _ in 0..wagate::auth::MAX_SETUP_FAILURES {
        assert_eq!(
            post_json(&setup, None, json!({"code": "WRONG000"})).status,
            403
        );
    }
    // Even the right code waits now.
    let r = post_json(&setup, None, json!({"code": SETUP_CODE}));
    assert_eq!(r.status, 429);
    assert_eq!(r.error_code(), "too_many_attempts");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert!(srv.state.setup().is_open());
}

#[test]
fn keys_are_shown_once_and_stored_as_hashes() {
    let srv = Server::start(Options::default());
    let admin = srv.admin();
    let keys_url = srv.url("/api/keys");

    let r = post_json(
        &keys_url,
        Some(&admin),
        json!({"scopes": ["sessions:read", "messages:send"], "sessions": ["default"], "name": "shop till"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let token = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["prefix"], format!("wgk_{id}_"));
    assert!(token.starts_with(&format!("wgk_{id}_")));
    assert_eq!(created["scopes"], json!(["sessions:read", "messages:send"]));
    assert_eq!(created["sessions"], json!(["default"]));

    // Listing and showing never include the key or its hash.
    let list = get(&keys_url, Some(&admin));
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(&token[15..]));
    assert_eq!(list.json().as_array().unwrap().len(), 2);
    let one = get(&srv.url(&format!("/api/keys/{id}")), Some(&admin)).json();
    assert!(one.get("key").is_none() && one.get("hash").is_none());
    assert_eq!(one["name"], "shop till");

    // The store holds the SHA-256 only: neither the key nor its secret is in the file.
    let recs = srv.block_on(srv.state.store().read(keys::list)).unwrap();
    let rec = recs.iter().find(|r| r.id == id).unwrap();
    assert_eq!(rec.hash.len(), 64);
    let secret = token.rsplit('_').next().unwrap();
    let file = std::fs::read(srv.dir.path().join("wagate.redb")).unwrap();
    assert!(
        !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is in the database file"
    );

    // The new key works for its scope and session.
    assert_eq!(
        get(&srv.url("/api/sessions/default"), Some(&token)).status,
        200
    );

    // Revoke: 204, then refused at once; revoking again is 204; unknown is 404.
    let r = delete(&srv.url(&format!("/api/keys/{id}")), Some(&admin));
    assert_eq!(r.status, 204);
    let r = get(&srv.url("/api/sessions/default"), Some(&token));
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "revoked_key");
    assert_eq!(
        delete(&srv.url(&format!("/api/keys/{id}")), Some(&admin)).status,
        204
    );
    let listed = get(&keys_url, Some(&admin)).json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(row["revoked_at"].as_i64().is_some());
    let r = delete(&srv.url("/api/keys/nosuchkey0"), Some(&admin));
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "key_not_found");
}

#[test]
fn bad_key_specs_are_refused() {
    let srv = Server::start(Options::default());
    let admin = srv.admin();
    let keys_url = srv.url("/api/keys");
    for (body, status, code) in [
        (json!({"scopes": ["root"]}), 422, "invalid_key_spec"),
        (json!({"scopes": []}), 422, "invalid_key_spec"),
        (
            json!({"scopes": ["admin"], "sessions": ["default"]}),
            422,
            "invalid_key_spec",
        ),
        (
            json!({"scopes": ["sessions:read"], "sessions": ["Bad Id"]}),
            422,
            "invalid_key_spec",
        ),
        (json!({"scope": ["admin"]}), 400, "invalid_body"),
        (json!({"scopes": "admin"}), 400, "invalid_body"),
    ] {
        let r = post_json(&keys_url, Some(&admin), body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.error_code(), code, "{body}");
    }
    // The field is named.
    let r = post_json(&keys_url, Some(&admin), json!({"scopes": "admin"}));
    assert!(r.text().contains("scopes"), "{}", r.text());
}

#[test]
fn the_last_admin_key_cannot_be_revoked() {
    let srv = Server::start(Options::default());
    let admin = srv.admin();
    let id = admin.split('_').nth(1).unwrap();
    let r = delete(&srv.url(&format!("/api/keys/{id}")), Some(&admin));
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "last_admin_key");
    // With a second admin key it can.
    let second = srv.key(&[Scope::Admin], None);
    assert_eq!(
        delete(&srv.url(&format!("/api/keys/{id}")), Some(&second)).status,
        204
    );
    assert_eq!(get(&srv.url("/api/keys"), Some(&admin)).status, 401);
}
