//! Running a group end to end through wa-mock: a wagate session creates a group, reads it
//! in full, adds people (WhatsApp refuses some: privacy settings, not on WhatsApp, already
//! in), promotes, changes subject, description and settings, reads and resets the invite
//! link, joins another group by link and leaves it; every change arrives as
//! `group.participants` / `group.updated`, including the ones another admin (a bare
//! whatsapp-rust client) makes. Membership changes are held to the send limits. Needs
//! `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common::peer::{Rig, STEP, create_and_pair, peer};
use crate::common::receiver::Hit;
use crate::common::{Resp, call, get, post_json};
use serde_json::{Value, json};

fn changes(hits: &[Hit], ty: &str, action: &str) -> Vec<Value> {
    hits.iter()
        .map(Hit::json)
        .filter(|b| b["type"] == ty && b["data"]["action"] == action)
        .map(|b| b["data"].clone())
        .collect()
}

fn wait_change(rig: &Rig, ty: &str, action: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let hits = rig.rx.wait_for(&format!("{ty} {action}"), STEP, |h| {
        changes(h, ty, action).iter().any(&pick)
    });
    changes(&hits, ty, action)
        .into_iter()
        .find(|v| pick(v))
        .unwrap()
}

fn send(rig: &Rig, method: &str, path: &str, body: Option<Value>) -> Resp {
    call(
        method,
        &rig.server.url(path),
        Some(&rig.key),
        &[],
        body.map(|b| ("application/json", b.to_string().into_bytes())),
    )
}

#[test]
fn a_session_runs_a_group_and_sees_every_change() {
    let rig = Rig::start();
    let k = Some(rig.key.as_str());
    let a = create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, k, "a");
    let (b, c, d) = rig
        .mock_rt
        .block_on(async { tokio::join!(peer(&rig.mock), peer(&rig.mock), peer(&rig.mock)) });
    let a_jid = format!("{}@s.whatsapp.net", a.phone);
    // d's privacy settings keep them out of groups they are added to.
    rig.mock.refuse_group_add(&d.phone);

    // Create, with b by phone digits and c by "+" number.
    let r = post_json(
        &rig.server.url("/api/sessions/a/groups"),
        k,
        json!({"subject": "Shop", "participants": [b.phone, format!("+{}", c.phone)]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let gid = created["group"]["id"].as_str().unwrap().to_string();
    assert!(gid.ends_with("@g.us"));
    let results = created["participants"].as_array().unwrap();
    assert!(results.iter().all(|p| p["ok"] == true), "{results:?}");
    let path = format!("/api/sessions/a/groups/{gid}");
    wait_change(&rig, "group.updated", "created", |v| {
        v["group"] == gid.as_str()
    });

    // Read in full: members by phone and LID, the account as superadmin, the invite link.
    let g = get(&rig.server.url(&path), k).json();
    assert_eq!(g["subject"], "Shop");
    let members = g["participants"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let b_member = members
        .iter()
        .find(|m| m["phone"] == b.jid.as_str())
        .unwrap();
    assert_eq!(b_member["lid"], format!("{}@lid", b.lid));
    assert_eq!(b_member["role"], "member");
    let me = members
        .iter()
        .find(|m| m["phone"] == a_jid.as_str())
        .unwrap();
    assert_eq!(me["role"], "superadmin");
    assert_eq!(g["admins"].as_array().unwrap().len(), 1);
    assert_eq!(
        g["settings"],
        json!({"announce": false, "locked": false, "ephemeral_s": 0, "approval": false})
    );
    let link = g["invite_link"]
        .as_str()
        .expect("an admin reads the link")
        .to_string();
    assert!(link.starts_with("https://chat.whatsapp.com/"), "{link}");

    // Add: WhatsApp answers per person.
    let r = send(
        &rig,
        "POST",
        &format!("{path}/participants"),
        Some(json!({"action": "add", "participants": [d.phone, "19995550123", c.phone]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let res = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(res.len(), 3);
    assert_eq!(
        (res[0]["ok"].clone(), res[0]["error"].clone()),
        (json!(false), json!("403"))
    );
    assert!(
        res[0]["invited_until"].is_u64(),
        "an invitation went instead: {res:?}"
    );
    assert_eq!(
        (res[1]["ok"].clone(), res[1]["error"].clone()),
        (json!(false), json!("404"))
    );
    assert_eq!(
        (res[2]["ok"].clone(), res[2]["error"].clone()),
        (json!(false), json!("409"))
    );

    // Promote b: the change comes back as an event, by the account.
    let r = send(
        &rig,
        "POST",
        &format!("{path}/participants"),
        Some(json!({"action": "promote", "participants": [b.jid]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["ok"], true);
    let ev = wait_change(&rig, "group.participants", "promote", |v| {
        v["group"] == gid.as_str()
    });
    assert_eq!(ev["participants"][0]["phone"], b.jid.as_str());
    assert_eq!(ev["by"]["phone"], a_jid.as_str());

    // b, now an admin, removes c from their phone: wagate reports who did it.
    let group = gid.parse::<whatsapp_rust::Jid>().unwrap();
    rig.mock_rt
        .block_on(
            b.client
                .groups()
                .remove_participants(group.clone(), &[c.pn()]),
        )
        .unwrap();
    let ev = wait_change(&rig, "group.participants", "remove", |v| {
        v["group"] == gid.as_str()
    });
    assert_eq!(ev["participants"][0]["phone"], c.jid.as_str());
    assert_eq!(ev["participants"][0]["lid"], format!("{}@lid", c.lid));
    assert_eq!(ev["by"]["phone"], b.jid.as_str());

    // Subject, description and settings in one PATCH.
    let r = send(
        &rig,
        "PATCH",
        &path,
        Some(
            json!({"subject": "Shop 2", "description": "Open 9 to 5", "announce": true,
                    "locked": true, "ephemeral_s": 604800, "approval": true}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let g = r.json();
    assert_eq!(g["subject"], "Shop 2");
    assert_eq!(g["description"], "Open 9 to 5");
    assert_eq!(
        g["settings"],
        json!({"announce": true, "locked": true, "ephemeral_s": 604800, "approval": true})
    );
    let meta = rig
        .mock_rt
        .block_on(b.client.groups().get_metadata(&group))
        .unwrap();
    assert_eq!(meta.subject, "Shop 2");
    assert_eq!(meta.description.as_deref(), Some("Open 9 to 5"));
    assert!(meta.is_announcement && meta.is_locked && meta.membership_approval);
    let ev = wait_change(&rig, "group.updated", "subject", |v| {
        v["group"] == gid.as_str()
    });
    assert_eq!(ev["subject"], "Shop 2");
    let ev = wait_change(&rig, "group.updated", "ephemeral", |v| {
        v["group"] == gid.as_str()
    });
    assert_eq!(ev["ephemeral_s"], 604800);
    for action in ["description", "announce", "locked", "approval"] {
        wait_change(&rig, "group.updated", action, |v| {
            v["group"] == gid.as_str()
        });
    }
    // Removing the description.
    let r = send(&rig, "PATCH", &path, Some(json!({"description": ""})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["description"].is_null());

    // The invite link, reset: a new one, the old one dead.
    let r = send(&rig, "GET", &format!("{path}/invite"), None);
    assert_eq!(r.json()["link"], link.as_str());
    let r = send(&rig, "POST", &format!("{path}/invite/reset"), None);
    let new_link = r.json()["link"].as_str().unwrap().to_string();
    assert_ne!(new_link, link);
    wait_change(&rig, "group.updated", "invite_reset", |v| {
        v["group"] == gid.as_str()
    });
    let old_code = link
        .trim_start_matches("https://chat.whatsapp.com/")
        .to_string();
    let joined = rig
        .mock_rt
        .block_on(c.client.groups().join_with_invite_code(&old_code));
    assert!(joined.is_err(), "the old link no longer works");

    // Join another group by its link, then leave it.
    let club = rig
        .mock_rt
        .block_on(b.client.groups().create_group(
            whatsapp_rust::features::GroupCreateOptions::new("Club").with_participants(vec![
                whatsapp_rust::features::GroupParticipantOptions::new(c.pn()),
            ]),
        ))
        .unwrap()
        .metadata
        .id;
    let code = rig
        .mock_rt
        .block_on(b.client.groups().get_invite_link(club.clone(), false))
        .unwrap();
    let r = post_json(
        &rig.server.url("/api/sessions/a/groups/join"),
        k,
        json!({"code": format!("https://chat.whatsapp.com/{code}")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], club.to_string().as_str());
    assert_eq!(r.json()["pending_approval"], false);
    let ev = wait_change(&rig, "group.participants", "join", |v| {
        v["group"] == club.to_string().as_str()
    });
    assert_eq!(ev["participants"][0]["phone"], a_jid.as_str());
    let club_path = format!("/api/sessions/a/groups/{club}");
    assert_eq!(
        get(&rig.server.url(&club_path), k).json()["subject"],
        "Club"
    );
    let r = send(&rig, "POST", &format!("{club_path}/leave"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = wait_change(&rig, "group.participants", "leave", |v| {
        v["group"] == club.to_string().as_str()
    });
    assert_eq!(ev["by"]["phone"], a_jid.as_str());
    let r = get(&rig.server.url(&club_path), k);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "group_forbidden")
    );

    // Refusals before and from WhatsApp.
    let r = send(&rig, "PATCH", &path, Some(json!({"ephemeral_s": 12345})));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "invalid_group_request")
    );
    assert!(r.text().contains("ephemeral_s"), "{}", r.text());
    let r = send(&rig, "PATCH", &path, Some(json!({})));
    assert_eq!(r.status, 422);
    let r = get(
        &rig.server
            .url("/api/sessions/a/groups/120363999999999999@g.us"),
        k,
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "group_not_found")
    );
    let r = send(
        &rig,
        "POST",
        &format!("{path}/participants"),
        Some(json!({"action": "kick", "participants": [c.phone]})),
    );
    assert_eq!(r.status, 422);
    let r = post_json(
        &rig.server.url("/api/sessions/a/groups/join"),
        k,
        json!({"code": old_code}),
    );
    assert_eq!((r.status, r.error_code().as_str()), (410, "invite_revoked"));

    // Adding people counts against the send limits: with room for one send a minute and
    // this minute's sends made, an add is refused whole, with when to try again.
    let r = send(
        &rig,
        "PUT",
        "/api/sessions/a/settings",
        Some(json!({"per_minute": 1})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        &rig,
        "POST",
        &format!("{path}/participants"),
        Some(json!({"action": "add", "participants": [c.phone]})),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "rate_limited"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    let members = get(&rig.server.url(&path), k).json()["participants"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(members, 2, "nothing was done");
    // More numbers than the smallest limit could never go at once: 422, naming the limit.
    let r = send(
        &rig,
        "POST",
        &format!("{path}/participants"),
        Some(json!({"action": "add", "participants": [c.phone, d.phone]})),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "invalid_group_request")
    );
    assert!(r.text().contains("per_minute"), "{}", r.text());
}
