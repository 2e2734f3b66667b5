//! Groups, replies and mentions end to end through wa-mock: two bare whatsapp-rust clients
//! and a wagate session (paired through the API) form a group of three; wagate lists it,
//! sends to it, replies to a member's message with a mention and quotes its own message; the
//! members receive each with wagate's account as the participant and the quote's stanza id,
//! author and content. Once with a PN-addressed group, once with a LID-addressed one. An
//! image, a poll and a contact from wagate reach a group of another wagate session and a bare
//! client (the image's exact bytes on both sides), and the client's vote and reaction come
//! back naming wagate's messages. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use crate::common::peer::{Peer, peer, wait, wait_until};
use crate::common::{Server, get, post_json};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::runtime::Runtime;
use wa_mock::{MockConfig, MockServer};
use whatsapp_rust::Jid;
use whatsapp_rust::features::{GroupCreateOptions, GroupParticipantOptions};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::waproto::whatsapp as wa;

/// One group message a member decrypted.
#[derive(Debug)]
struct GroupMsg {
    id: String,
    sender: Jid,
    /// The sender's other identity (LID in a PN group, phone number in a LID group).
    sender_alt: Option<Jid>,
    message: wa::Message,
}

/// The next message from user `from` (phone or LID) in `group` that `peer` decrypts.
async fn from_in_group(peer: &mut Peer, group: &Jid, from: &str, what: &str) -> GroupMsg {
    wait(&mut peer.events, what, |e| match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .find(|m| m.info.source.chat == *group && m.info.source.sender.user == from)
            .map(|m| GroupMsg {
                id: m.info.id.to_string(),
                sender: m.info.source.sender.clone(),
                sender_alt: m.info.source.sender_alt.clone(),
                message: (*m.message).clone(),
            }),
        _ => None,
    })
    .await
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn extended(m: &wa::Message) -> (String, wa::ContextInfo) {
    let x = m
        .extended_text_message
        .as_option()
        .expect("an extended text message");
    (
        x.text.clone().unwrap_or_default(),
        x.context_info.as_option().cloned().expect("context info"),
    )
}

#[test]
fn wagate_sends_to_a_pn_group_replies_and_mentions() {
    group_scenario(false);
}

#[test]
fn wagate_sends_to_a_lid_group_replies_and_mentions() {
    group_scenario(true);
}

/// The whole exchange in a PN- or LID-addressed group. Members see wagate's account by the
/// group's address family (its other identity beside); the quotes' authors follow it.
fn group_scenario(lid_groups: bool) {
    let mock_rt = Runtime::new().unwrap();
    let mock = mock_rt
        .block_on(MockServer::start(MockConfig {
            lid_groups,
            ..MockConfig::default()
        }))
        .unwrap();
    let server = Server::start(common::peer::mock_options(&mock));
    let key = server.admin();
    let k = Some(key.as_str());

    // Session "a" pairs through the API.
    assert_eq!(
        post_json(&server.url("/api/sessions"), k, json!({"id": "a"})).status,
        201
    );
    // Before it is connected, it has no groups to list.
    let r = get(&server.url("/api/sessions/a/groups"), k);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "session_not_connected");
    assert_eq!(get(&server.url("/api/sessions/nope/groups"), k).status, 404);
    let a = common::peer::scan_and_connect(&server, &mock_rt, &mock, k, "a");
    // (the user members see as sender, the other identity, the JID quotes name), per mode.
    let seen = |phone: &str, lid: &str| -> (String, String, String) {
        if lid_groups {
            (lid.to_string(), phone.to_string(), format!("{lid}@lid"))
        } else {
            (
                phone.to_string(),
                lid.to_string(),
                format!("{phone}@s.whatsapp.net"),
            )
        }
    };
    let (a_user, a_other, a_quoted) = seen(&a.phone, &a.lid);

    // B creates a group with wagate's account and C.
    let (mut b, mut c) = mock_rt.block_on(async { tokio::join!(peer(&mock), peer(&mock)) });
    let created = mock_rt
        .block_on(b.client.groups().create_group(
            GroupCreateOptions::new("Orders").with_participants(vec![
                GroupParticipantOptions::new(Jid::pn(a.phone.as_str())),
                GroupParticipantOptions::new(c.pn()),
            ]),
        ))
        .unwrap();
    let group = created.metadata.id.clone();
    let group_s = group.to_string();

    // wagate lists it, with every member's phone-number JID and LID.
    let r = get(&server.url("/api/sessions/a/groups"), k);
    assert_eq!(r.status, 200, "{}", r.text());
    let groups = r.json();
    let g = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == group_s)
        .unwrap_or_else(|| panic!("group listed: {groups}"));
    assert_eq!(g["subject"], "Orders");
    let members = g["participants"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(g["addressing_mode"], if lid_groups { "lid" } else { "pn" });
    for (phone, lid, role) in [
        (&b.phone, &b.lid, "superadmin"),
        (&c.phone, &c.lid, "member"),
        (&a.phone, &a.lid, "member"),
    ] {
        let m = members
            .iter()
            .find(|m| m["phone"] == format!("{phone}@s.whatsapp.net"))
            .unwrap_or_else(|| panic!("{phone} listed: {g}"));
        assert_eq!(m["lid"], format!("{lid}@lid"));
        assert_eq!(m["role"], role);
    }

    let send = |kind: &str, body: Value| -> String {
        let r = post_json(
            &server.url(&format!("/api/sessions/a/messages/{kind}")),
            k,
            body,
        );
        assert_eq!(r.status, 202, "{kind}: {}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };

    // wagate -> group: both members receive it from the group, with wagate's account as the
    // participant (phone-number JID, and its LID beside it).
    let hello = send("text", json!({"to": group_s, "text": "order 17 is ready"}));
    let mut hello_wa_id = String::new();
    for (who, p) in [("B", &mut b), ("C", &mut c)] {
        let m = mock_rt.block_on(from_in_group(p, &group, &a_user, &format!("{who}: hello")));
        assert_eq!(
            m.message.conversation.as_deref(),
            Some("order 17 is ready"),
            "{who}"
        );
        assert_eq!(m.sender.user, a_user, "{who}");
        assert_eq!(
            m.sender_alt.map(|j| j.user.to_string()),
            Some(a_other.clone()),
            "{who}"
        );
        hello_wa_id = m.id;
    }
    let shown = get(&server.url(&format!("/api/sessions/a/messages/{hello}")), k).json();
    assert_eq!(shown["wa_id"], hello_wa_id);
    assert_eq!(shown["to"], group_s);

    // B asks in the group; wagate replies to B's message by its WhatsApp id, quoting it and
    // mentioning B.
    let question = mock_rt
        .block_on(b.client.send_text(group.clone(), "when can I pick it up?"))
        .unwrap();
    let b_pn = format!("{}@s.whatsapp.net", b.phone);
    let reply_text = format!("@{} any time after 5", b.phone);
    send(
        "text",
        json!({"to": group_s, "text": reply_text,
               "mentions": [format!("+{}", b.phone)],
               "reply_to": question.message_id,
               "reply_to_participant": b.phone,
               "reply_to_text": "when can I pick it up?"}),
    );
    for (who, p) in [("B", &mut b), ("C", &mut c)] {
        let m = mock_rt.block_on(from_in_group(p, &group, &a_user, &format!("{who}: reply")));
        let (text, ctx) = extended(&m.message);
        assert_eq!(text, reply_text, "{who}");
        assert_eq!(
            ctx.stanza_id.as_deref(),
            Some(question.message_id.as_str()),
            "{who}"
        );
        assert_eq!(ctx.participant.as_deref(), Some(b_pn.as_str()), "{who}");
        assert_eq!(ctx.mentioned_jid, vec![b_pn.clone()], "{who}");
        assert_eq!(
            ctx.quoted_message
                .as_option()
                .and_then(|q| q.conversation.as_deref()),
            Some("when can I pick it up?"),
            "{who}"
        );
    }

    // wagate quotes its own earlier message by its wagate id, on a location: the quote
    // carries the WhatsApp id, wagate's account as author and the original text.
    send(
        "location",
        json!({"to": group_s, "latitude": 51.5, "longitude": -0.12, "name": "Shop",
               "reply_to": hello}),
    );
    let m = mock_rt.block_on(from_in_group(&mut c, &group, &a_user, "C: location"));
    let loc = m.message.location_message.as_option().expect("a location");
    assert_eq!(loc.name.as_deref(), Some("Shop"));
    let ctx = loc.context_info.as_option().expect("context info");
    assert_eq!(ctx.stanza_id.as_deref(), Some(hello_wa_id.as_str()));
    assert_eq!(ctx.participant.as_deref(), Some(a_quoted.as_str()));
    assert_eq!(
        ctx.quoted_message
            .as_option()
            .and_then(|q| q.conversation.as_deref()),
        Some("order 17 is ready")
    );

    // A group reply to a message wagate does not know, without its author, fails with the
    // reason (accepted first: the id is resolved at send time).
    let orphan = send(
        "text",
        json!({"to": group_s, "text": "?", "reply_to": "3EB0UNKNOWN"}),
    );
    let mut shown = Value::Null;
    wait_until("the orphan reply fails", || {
        shown = get(
            &server.url(&format!("/api/sessions/a/messages/{orphan}")),
            k,
        )
        .json();
        shown["status"] == "failed"
    });
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("reply_to_participant"),
        "{shown}"
    );

    drop(server);
    mock_rt.block_on(mock.shutdown());
}

/// The `message.received` data of session `session` that `pick` takes, waiting for it.
fn received_by(
    rx: &common::receiver::Receiver,
    session: &str,
    what: &str,
    pick: impl Fn(&Value) -> bool,
) -> Value {
    let find = |hits: &[common::receiver::Hit]| {
        hits.iter()
            .map(common::receiver::Hit::json)
            .find(|b| {
                b["type"] == "message.received" && b["session"] == session && pick(&b["data"])
            })
            .map(|b| b["data"].clone())
    };
    let hits = rx.wait_for(what, common::peer::STEP, |h| find(h).is_some());
    find(&hits).unwrap()
}

/// Media, a poll and a contact from wagate to a group whose members are another wagate
/// session and a bare client: the session serves the image's exact bytes from its media
/// URL, the client decrypts the same; both see the poll and the contact. The client's vote
/// and reaction come back to wagate decrypted and pointing at wagate's own messages.
#[test]
fn wagate_sends_an_image_a_poll_and_a_contact_to_a_group() {
    use base64::Engine as _;
    let common::peer::Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = common::peer::Rig::tuned(|o| o.body_limit = 1 << 20);
    let k = Some(key.as_str());
    let mut accounts = Vec::new();
    for id in ["a", "b"] {
        assert_eq!(
            post_json(&server.url("/api/sessions"), k, json!({"id": id})).status,
            201
        );
        accounts.push(common::peer::scan_and_connect(
            &server, &mock_rt, &mock, k, id,
        ));
    }
    let (a, b) = (&accounts[0], &accounts[1]);
    let mut c = mock_rt.block_on(peer(&mock));
    let created = mock_rt
        .block_on(c.client.groups().create_group(
            GroupCreateOptions::new("Parts").with_participants(vec![
                GroupParticipantOptions::new(Jid::pn(a.phone.as_str())),
                GroupParticipantOptions::new(Jid::pn(b.phone.as_str())),
            ]),
        ))
        .unwrap();
    let group = created.metadata.id.clone();
    let group_s = group.to_string();
    let a_pn = format!("{}@s.whatsapp.net", a.phone);
    let send = |kind: &str, body: Value| -> String {
        let r = post_json(
            &server.url(&format!("/api/sessions/a/messages/{kind}")),
            k,
            body,
        );
        assert_eq!(r.status, 202, "{kind}: {}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };

    // 1. An image: session b serves its exact bytes, client C decrypts the same.
    let png: Vec<u8> = [
        &b"\x89PNG\r\n\x1a\n"[..],
        &(0..40_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()[..],
    ]
    .concat();
    let sha = hex(&sha2::Sha256::digest(&png));
    let image = send(
        "image",
        json!({"to": group_s, "caption": "the spare part",
               "base64": base64::engine::general_purpose::STANDARD.encode(&png)}),
    );
    let at_b = received_by(&rx, "b", "b: the image", |d| d["kind"] == "image");
    assert_eq!(at_b["group"], group_s.as_str(), "{at_b}");
    assert_eq!(at_b["from_phone"], a_pn.as_str(), "{at_b}");
    assert_eq!(at_b["from_lid"], format!("{}@lid", a.lid), "{at_b}");
    assert_eq!(at_b["caption"], "the spare part");
    assert_eq!(at_b["mimetype"], "image/png");
    assert_eq!(at_b["size"], png.len());
    assert_eq!(at_b["sha256"], sha.as_str());
    let r = get(&server.url(at_b["url"].as_str().unwrap()), k);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.body, png, "session b serves the exact bytes");
    let m = mock_rt.block_on(from_in_group(&mut c, &group, &a.phone, "C: the image"));
    let img = m
        .message
        .image_message
        .as_option()
        .expect("an image")
        .clone();
    assert_eq!(img.caption.as_deref(), Some("the spare part"));
    assert_eq!(
        mock_rt.block_on(c.client.download(&img)).unwrap(),
        png,
        "C decrypts the exact bytes"
    );
    let image_wa = m.id;

    // 2. A poll: b sees its question and options, C the poll with its secret.
    let options = vec!["Monday".to_string(), "Tuesday".to_string()];
    let poll = send(
        "poll",
        json!({"to": group_s, "question": "Fit it when?", "options": options}),
    );
    let p = received_by(&rx, "b", "b: the poll", |d| d["kind"] == "poll");
    assert_eq!(p["group"], group_s.as_str());
    assert_eq!(p["question"], "Fit it when?");
    assert_eq!(p["options"], json!(options));
    assert_eq!(p["selectable"], 1);
    let m = mock_rt.block_on(from_in_group(&mut c, &group, &a.phone, "C: the poll"));
    let secret = m
        .message
        .message_context_info
        .as_option()
        .and_then(|ci| ci.message_secret.clone())
        .expect("the poll's secret");
    let pc = m
        .message
        .poll_creation_message_v3
        .as_option()
        .expect("a poll (v3)");
    assert_eq!(pc.name.as_deref(), Some("Fit it when?"));
    let names: Vec<_> = pc
        .options
        .iter()
        .filter_map(|o| o.option_name.clone())
        .collect();
    assert_eq!(names, options);
    let poll_wa = m.id;

    // 3. A contact: b sees the name and the vCard with the number.
    send(
        "contact",
        json!({"to": group_s, "name": "Fitter Joe", "phones": ["+44 7700 900777"]}),
    );
    let ct = received_by(&rx, "b", "b: the contact", |d| d["kind"] == "contact");
    assert_eq!(ct["group"], group_s.as_str());
    assert_eq!(ct["contacts"][0]["name"], "Fitter Joe", "{ct}");
    let vcard = ct["contacts"][0]["vcard"].as_str().unwrap_or_default();
    assert!(
        vcard.starts_with("BEGIN:VCARD") && vcard.contains("waid=447700900777"),
        "{vcard}"
    );

    // 4. C votes on wagate's poll and reacts to its image, in the group: wagate decrypts the
    // vote and sees both point at its own messages (by wagate id); b sees the reaction
    // point at the image as b received it.
    let creator = Jid::pn(a.phone.as_str());
    mock_rt
        .block_on(c.client.polls().vote(
            group.clone(),
            &poll_wa,
            &creator,
            &secret,
            &["Tuesday".to_string()],
        ))
        .unwrap();
    let v = received_by(&rx, "a", "a: the vote", |d| d["kind"] == "poll_vote");
    assert_eq!(v["group"], group_s.as_str());
    assert_eq!(v["from_phone"], c.jid.as_str());
    assert_eq!(v["options"], json!(["Tuesday"]), "{v}");
    assert_eq!(v["poll"]["wa_id"], poll_wa.as_str(), "{v}");
    assert_eq!(v["poll"]["from_me"], true, "{v}");
    assert_eq!(v["poll"]["id"], poll.as_str(), "{v}");
    mock_rt
        .block_on(c.client.send_reaction(
            group.clone(),
            wa::MessageKey {
                remote_jid: Some(group_s.clone()),
                from_me: Some(false),
                id: Some(image_wa.clone()),
                participant: Some(a_pn.clone()),
            },
            "🔧",
        ))
        .unwrap();
    let r = received_by(&rx, "a", "a: the reaction", |d| d["kind"] == "reaction");
    assert_eq!(r["emoji"], "🔧");
    assert_eq!(r["target"]["wa_id"], image_wa.as_str(), "{r}");
    assert_eq!(r["target"]["participant"], a_pn.as_str(), "{r}");
    assert_eq!(r["target"]["from_me"], true, "{r}");
    assert_eq!(r["target"]["id"], image.as_str(), "{r}");
    let r = received_by(&rx, "b", "b: the reaction", |d| d["kind"] == "reaction");
    assert!(r["target"].get("from_me").is_none(), "a's, not b's: {r}");
    assert_eq!(r["target"]["id"], at_b["id"], "{r}");
}
