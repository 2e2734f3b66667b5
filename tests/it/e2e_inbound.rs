//! Inbound messages end to end through wa-mock: a bare whatsapp-rust client (a customer's
//! phone) writes to a wagate session. An image arrives as `message.received` with its
//! metadata, and the device URL serves the exact bytes (downloaded and decrypted on first
//! use, from the cache afterwards, even with the session stopped); a poll and the client's
//! vote on it arrive with the vote decrypted to the chosen option; a quoted reply carries
//! `reply_to`; with `auto_read` the customer sees the read receipt of its message before
//! wagate's reply arrives; in a group of three (wagate and two clients) messages carry the group JID and
//! the participant's phone-number JID and LID, a reply the quoted message and its author, and
//! a read receipt reaches the group member; small media is embedded (`inline`) when configured; `POST .../read` sends a read receipt the client sees. A vote
//! on a poll wagate sent is decrypted too; `reply_to` may name a received message by its
//! wagate id; media that expired on WhatsApp's servers answers `404 media_expired`. A
//! customer's reaction to wagate's message, the edit and the revoke of its own, and its
//! answers to wagate's list and buttons (a button press also as a template button reply) arrive typed, their targets named by wagate's ids
//! and seen from the session's side (`from_me`). Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use crate::common::peer::{Rig, STEP, create_and_pair, peer, wait};
use crate::common::receiver::Hit;
use crate::common::{Server, get, post_json};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::runtime::Runtime;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::waproto::whatsapp as wa;

fn received(hits: &[Hit], pick: impl Fn(&Value) -> bool) -> Option<Value> {
    hits.iter()
        .map(Hit::json)
        .find(|b| b["type"] == "message.received" && pick(&b["data"]))
        .map(|b| b["data"].clone())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_group_of_three_with_participants_replies_and_a_read_receipt() {
    use whatsapp_rust::features::{GroupCreateOptions, GroupParticipantOptions};
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a = create_and_pair(&server, &mock_rt, &mock, k, "a");
    let (mut b, mut c) = mock_rt.block_on(async { tokio::join!(peer(&mock), peer(&mock)) });
    let created = mock_rt
        .block_on(b.client.groups().create_group(
            GroupCreateOptions::new("Orders").with_participants(vec![
                GroupParticipantOptions::new(whatsapp_rust::Jid::pn(a.phone.as_str())),
                GroupParticipantOptions::new(whatsapp_rust::Jid::pn(c.phone.as_str())),
            ]),
        ))
        .unwrap();
    let group = created.metadata.id.clone();
    let group_s = group.to_string();

    // B asks in the group: wagate hears it from the group, with B as the participant.
    let question = mock_rt
        .block_on(b.client.send_text(group.clone(), "who has the key?"))
        .unwrap();
    let hits = rx.wait_for("B's question", STEP, |h| {
        received(h, |d| d["text"] == "who has the key?").is_some()
    });
    let q = received(&hits, |d| d["text"] == "who has the key?").unwrap();
    assert_eq!(q["kind"], "text");
    assert_eq!(q["chat"], group_s.as_str());
    assert_eq!(q["group"], group_s.as_str());
    assert_eq!(q["wa_id"], question.message_id.as_str());
    assert_eq!(q["from_phone"], format!("{}@s.whatsapp.net", b.phone));
    assert_eq!(q["from_lid"], format!("{}@lid", b.lid), "{q}");

    // C answers quoting B: the reply names the quoted message and its author.
    let b_pn = format!("{}@s.whatsapp.net", b.phone);
    let answer = wa::Message {
        extended_text_message: whatsapp_rust::buffa::MessageField::some(
            wa::message::ExtendedTextMessage {
                text: Some("I have it".into()),
                context_info: whatsapp_rust::buffa::MessageField::some(wa::ContextInfo {
                    stanza_id: Some(question.message_id.clone()),
                    participant: Some(b_pn.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        ..Default::default()
    };
    mock_rt
        .block_on(c.client.send_message(&group, answer))
        .unwrap();
    let hits = rx.wait_for("C's answer", STEP, |h| {
        received(h, |d| d["text"] == "I have it").is_some()
    });
    let r = received(&hits, |d| d["text"] == "I have it").unwrap();
    assert_eq!(r["group"], group_s.as_str());
    assert_eq!(r["from_phone"], format!("{}@s.whatsapp.net", c.phone));
    assert_eq!(r["from_lid"], format!("{}@lid", c.lid));
    assert_eq!(r["reply_to"]["wa_id"], question.message_id.as_str());
    assert_eq!(r["reply_to"]["participant"], b_pn.as_str());
    assert_eq!(
        r["reply_to"]["id"], q["id"],
        "the quote by wagate's id: {r}"
    );
    assert!(
        r["reply_to"].get("from_me").is_none(),
        "B's, not wagate's: {r}"
    );

    // wagate replies to B in the group; both members receive it.
    let sent = post_json(
        &server.url("/api/sessions/a/messages/text"),
        k,
        json!({"to": group_s, "text": "thanks C", "reply_to": question.message_id,
               "reply_to_participant": b.phone, "reply_to_text": "who has the key?"}),
    );
    assert_eq!(sent.status, 202, "{}", sent.text());
    for (who, p) in [("B", &mut b), ("C", &mut c)] {
        mock_rt.block_on(wait(
            &mut p.events,
            &format!("{who}: wagate's reply"),
            |e| match e {
                Event::Messages(batch) => batch
                    .messages
                    .iter()
                    .find(|m| {
                        m.info.source.chat == group
                            && m.message
                                .extended_text_message
                                .as_option()
                                .is_some_and(|x| x.text.as_deref() == Some("thanks C"))
                    })
                    .map(|_| ()),
                _ => None,
            },
        ));
    }

    // wagate answers B again, naming the question by its wagate id only: C sees the quote
    // with its WhatsApp id, B as its author and its text.
    let sent = post_json(
        &server.url("/api/sessions/a/messages/text"),
        k,
        json!({"to": group_s, "text": "B, it is here", "reply_to": q["id"]}),
    );
    assert_eq!(sent.status, 202, "{}", sent.text());
    let ctx = next_message(&mock_rt, &mut c, "C: the reply by wagate id", |m, _| {
        let x = m.extended_text_message.as_option()?;
        (x.text.as_deref() == Some("B, it is here")).then(|| x.context_info.as_option().cloned())
    })
    .expect("the reply quotes");
    assert_eq!(ctx.stanza_id.as_deref(), Some(question.message_id.as_str()));
    assert_eq!(ctx.participant.as_deref(), q["from"].as_str());
    assert_eq!(
        ctx.quoted_message
            .as_option()
            .and_then(|m| m.conversation.clone())
            .as_deref(),
        Some("who has the key?")
    );

    // wagate marks B's question read: B sees the read receipt.
    let id = q["id"].as_str().unwrap();
    let rr = post_json(
        &server.url(&format!("/api/sessions/a/messages/{id}/read")),
        k,
        json!({}),
    );
    assert_eq!(rr.status, 200, "{}", rr.text());
    let qid = question.message_id.clone();
    mock_rt.block_on(wait(&mut b.events, "B: the read receipt", |e| match e {
        Event::Receipt(rc)
            if rc.r#type == whatsapp_rust::types::presence::ReceiptType::Read
                && rc.message_ids.iter().any(|m| m.as_str() == qid) =>
        {
            Some(())
        }
        _ => None,
    }));
}

#[test]
fn a_customer_writes_media_polls_and_replies() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::tuned(|options| {
        if let Some(engine) = options.engine.as_mut() {
            // The image (70 kB) is embedded in its event too.
            engine.inline_media_max_bytes = 100_000;
        }
    });
    let k = Some(key.as_str());

    let a_jid = create_and_pair(&server, &mock_rt, &mock, k, "a").user_jid();
    let mut c = mock_rt.block_on(peer(&mock));
    let to: whatsapp_rust::Jid = a_jid.parse().unwrap();

    // 1. An image with a caption.
    let png: Vec<u8> = [&b"\x89PNG\r\n\x1a\n"[..], &[42u8; 70_000]].concat();
    let sha = sha2::Sha256::digest(&png);
    let up = mock_rt
        .block_on(
            c.client
                .upload(png.clone(), MediaType::Image, Default::default()),
        )
        .unwrap();
    let image = wa::Message {
        image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_length: Some(up.file_length),
            mimetype: Some("image/png".into()),
            caption: Some("my broken part".into()),
            width: Some(10),
            height: Some(20),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sent = mock_rt.block_on(c.client.send_message(&to, image)).unwrap();
    let hits = rx.wait_for("the image", STEP, |h| {
        received(h, |d| d["kind"] == "image").is_some()
    });
    let img = received(&hits, |d| d["kind"] == "image").unwrap();
    assert_eq!(img["wa_id"], sent.message_id.as_str());
    assert_eq!(img["mimetype"], "image/png");
    assert_eq!(img["size"], png.len());
    assert_eq!(img["sha256"], hex(&sha));
    assert_eq!(img["caption"], "my broken part");
    assert_eq!(img["text"], "my broken part", "text stays the caption");
    assert_eq!(img["from_phone"], c.jid.as_str());
    assert!(img.get("group").is_none(), "not a group: {img}");
    use base64::Engine as _;
    let inline = base64::engine::general_purpose::STANDARD
        .decode(img["inline"].as_str().expect("inline media"))
        .unwrap();
    assert_eq!(inline, png);
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(img["url"], format!("/api/sessions/a/messages/{id}/media"));

    // The device URL: the exact bytes, then the same from the cache.
    let r = get(&server.url(img["url"].as_str().unwrap()), k);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(
        r.header("content-length"),
        Some(png.len().to_string().as_str())
    );
    assert_eq!(r.header("x-wagate-cache"), Some("miss"));
    assert_eq!(hex(&sha2::Sha256::digest(&r.body)), hex(&sha));
    let again = get(&server.url(img["url"].as_str().unwrap()), k);
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-wagate-cache"), Some("hit"));
    assert_eq!(again.body, png);
    // A key for sessions:read only may download; a text has no media; unknown ids are 404.
    let reader = server.key(&[wagate::auth::Scope::SessionsRead], None);
    assert_eq!(
        get(&server.url(img["url"].as_str().unwrap()), Some(&reader)).status,
        200
    );
    let r = get(&server.url("/api/sessions/a/messages/msg_nope/media"), k);
    assert_eq!(
        (r.status, r.error_code()),
        (404, "media_not_found".to_string())
    );

    // 2. A poll, and the customer's vote on it: reported with the chosen option's name.
    let options = vec!["pizza".to_string(), "salad".to_string(), "soup".to_string()];
    let (poll, secret) = mock_rt
        .block_on(c.client.polls().create(to.clone(), "Lunch?", &options, 1))
        .unwrap();
    let hits = rx.wait_for("the poll", STEP, |h| {
        received(h, |d| d["kind"] == "poll").is_some()
    });
    let p = received(&hits, |d| d["kind"] == "poll").unwrap();
    assert_eq!(p["question"], "Lunch?");
    assert_eq!(p["options"], json!(options));
    assert_eq!(p["selectable"], 1);
    let me: whatsapp_rust::Jid = c.jid.parse().unwrap();
    mock_rt
        .block_on(c.client.polls().vote(
            to.clone(),
            &poll.message_id,
            &me,
            &secret,
            &["salad".to_string()],
        ))
        .unwrap();
    let hits = rx.wait_for("the vote", STEP, |h| {
        received(h, |d| d["kind"] == "poll_vote").is_some()
    });
    let v = received(&hits, |d| d["kind"] == "poll_vote").unwrap();
    assert_eq!(v["poll"]["wa_id"], poll.message_id.as_str());
    assert_eq!(v["options"], json!(["salad"]), "{v}");
    assert!(v.get("error").is_none(), "{v}");

    // 3. A reply quoting the image, mentioning nobody in particular.
    let reply = wa::Message {
        extended_text_message: whatsapp_rust::buffa::MessageField::some(
            wa::message::ExtendedTextMessage {
                text: Some("did you see it?".into()),
                context_info: whatsapp_rust::buffa::MessageField::some(wa::ContextInfo {
                    stanza_id: Some(sent.message_id.clone()),
                    participant: Some(c.jid.clone()),
                    mentioned_jid: vec![a_jid.clone()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        ..Default::default()
    };
    mock_rt.block_on(c.client.send_message(&to, reply)).unwrap();
    let hits = rx.wait_for("the reply", STEP, |h| {
        received(h, |d| d["text"] == "did you see it?").is_some()
    });
    let r = received(&hits, |d| d["text"] == "did you see it?").unwrap();
    assert_eq!(r["kind"], "text");
    assert_eq!(r["reply_to"]["wa_id"], sent.message_id.as_str());
    assert_eq!(r["reply_to"]["participant"], c.jid.as_str());
    assert_eq!(r["mentions"], json!([a_jid]));
    let reply_id = r["id"].as_str().unwrap().to_string();

    // 4. Mark the reply read: the customer's client sees the read receipt.
    let rr = post_json(
        &server.url(&format!("/api/sessions/a/messages/{reply_id}/read")),
        k,
        json!({}),
    );
    assert_eq!(rr.status, 200, "{}", rr.text());
    let reply_wa = r["wa_id"].as_str().unwrap().to_string();
    mock_rt.block_on(wait(&mut c.events, "the read receipt", |e| match e {
        Event::Receipt(rc)
            if rc.r#type == whatsapp_rust::types::presence::ReceiptType::Read
                && rc.message_ids.iter().any(|m| m.as_str() == reply_wa) =>
        {
            Some(())
        }
        _ => None,
    }));
    let r = post_json(
        &server.url("/api/sessions/a/messages/msg_nope/read"),
        k,
        json!({}),
    );
    assert_eq!(r.status, 404);

    // 5. With the session stopped the cached image still comes (no download needed).
    assert_eq!(
        post_json(&server.url("/api/sessions/a/stop"), k, json!({})).status,
        200
    );
    let cached = get(&server.url(img["url"].as_str().unwrap()), k);
    assert_eq!(cached.status, 200);
    assert_eq!(cached.header("x-wagate-cache"), Some("hit"));
    assert_eq!(cached.body, png);
}

#[test]
fn auto_read_marks_the_chat_read_before_the_reply() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a_jid = create_and_pair(&server, &mock_rt, &mock, k, "a").user_jid();
    // Off by default; on for this session.
    let r = get(&server.url("/api/sessions/a/settings"), k);
    assert_eq!(r.json()["settings"]["auto_read"], false, "{}", r.text());
    let r = common::call(
        "PUT",
        &server.url("/api/sessions/a/settings"),
        k,
        &[],
        Some((
            "application/json",
            json!({"auto_read": true}).to_string().into_bytes(),
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["settings"]["auto_read"], true);

    let mut c = mock_rt.block_on(peer(&mock));
    let to: whatsapp_rust::Jid = a_jid.parse().unwrap();
    let mut ids = Vec::new();
    for text in ["hello?", "anyone there?"] {
        let sent = mock_rt
            .block_on(c.client.send_message(
                &to,
                wa::Message {
                    conversation: Some(text.into()),
                    ..Default::default()
                },
            ))
            .unwrap();
        ids.push(sent.message_id);
    }
    rx.wait_for("both received", STEP, |h| {
        received(h, |d| d["text"] == "anyone there?").is_some()
            && received(h, |d| d["text"] == "hello?").is_some()
    });
    let r = post_json(
        &server.url("/api/sessions/a/messages/text"),
        k,
        json!({"to": c.jid, "text": "yes, how can I help?"}),
    );
    assert_eq!(r.status, 202, "{}", r.text());

    // The customer's client: read receipts for both messages, and only then the reply.
    let mut read: Vec<String> = Vec::new();
    mock_rt.block_on(wait(&mut c.events, "the reply", |e| match e {
        Event::Receipt(rc) if rc.r#type == whatsapp_rust::types::presence::ReceiptType::Read => {
            // `wait` takes a Fn: record through a cell.
            READ.with(|r| {
                r.borrow_mut()
                    .extend(rc.message_ids.iter().map(|m| m.to_string()))
            });
            None
        }
        Event::Messages(batch)
            if batch.messages.iter().any(|m| {
                m.message.conversation.as_deref() == Some("yes, how can I help?")
                    || m.message
                        .extended_text_message
                        .as_option()
                        .is_some_and(|x| x.text.as_deref() == Some("yes, how can I help?"))
            }) =>
        {
            Some(())
        }
        _ => None,
    }));
    READ.with(|r| read.extend(r.borrow().iter().cloned()));
    for id in &ids {
        assert!(
            read.contains(id),
            "read receipt for {id} before the reply (saw {read:?})"
        );
    }
}

thread_local! {
    static READ: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The message `pick` takes among the client's next received messages.
fn next_message<T>(
    rt: &Runtime,
    p: &mut common::peer::Peer,
    what: &str,
    pick: impl Fn(&wa::Message, &str) -> Option<T>,
) -> T {
    rt.block_on(wait(&mut p.events, what, |e| match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .find_map(|m| pick(&m.message, m.info.id.as_str())),
        _ => None,
    }))
}

#[test]
fn a_vote_on_a_poll_wagate_sent_names_the_chosen_option() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a_jid = create_and_pair(&server, &mock_rt, &mock, k, "a").user_jid();
    let mut c = mock_rt.block_on(peer(&mock));

    // wagate sends a poll; the customer's client receives it with its secret.
    let options = vec!["pizza".to_string(), "salad".to_string(), "soup".to_string()];
    let r = post_json(
        &server.url("/api/sessions/a/messages/poll"),
        k,
        json!({"to": c.jid, "question": "Lunch?", "options": options}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let (poll_id, secret) = next_message(&mock_rt, &mut c, "wagate's poll", |m, id| {
        m.poll_creation_message_v3.as_option()?;
        let s = m.message_context_info.as_option()?.message_secret.clone()?;
        Some((id.to_string(), s))
    });

    // The customer votes; wagate reports the vote with the option's name.
    let to: whatsapp_rust::Jid = a_jid.parse().unwrap();
    mock_rt
        .block_on(
            c.client
                .polls()
                .vote(to.clone(), &poll_id, &to, &secret, &["salad".to_string()]),
        )
        .unwrap();
    let hits = rx.wait_for("the vote", STEP, |h| {
        received(h, |d| d["kind"] == "poll_vote").is_some()
    });
    let v = received(&hits, |d| d["kind"] == "poll_vote").unwrap();
    assert_eq!(v["poll"]["wa_id"], poll_id.as_str());
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["options"], json!(["salad"]), "{v}");
}

#[test]
fn a_reply_names_a_received_message_by_its_wagate_id() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a_jid = create_and_pair(&server, &mock_rt, &mock, k, "a").user_jid();
    let mut c = mock_rt.block_on(peer(&mock));
    let to: whatsapp_rust::Jid = a_jid.parse().unwrap();
    let asked = mock_rt
        .block_on(c.client.send_text(to, "where is my order?"))
        .unwrap();
    let hits = rx.wait_for("the question", STEP, |h| {
        received(h, |d| d["text"] == "where is my order?").is_some()
    });
    let q = received(&hits, |d| d["text"] == "where is my order?").unwrap();

    // The reply names the question by the id message.received gave it.
    let r = post_json(
        &server.url("/api/sessions/a/messages/text"),
        k,
        json!({"to": c.jid, "text": "on its way", "reply_to": q["id"]}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let ctx = next_message(&mock_rt, &mut c, "the reply", |m, _| {
        let x = m.extended_text_message.as_option()?;
        (x.text.as_deref() == Some("on its way")).then(|| x.context_info.as_option().cloned())
    })
    .expect("the reply quotes");
    assert_eq!(ctx.stanza_id.as_deref(), Some(asked.message_id.as_str()));
    assert_eq!(ctx.participant.as_deref(), Some(c.jid.as_str()));
    assert_eq!(
        ctx.quoted_message
            .as_option()
            .and_then(|m| m.conversation.clone())
            .as_deref(),
        Some("where is my order?")
    );
}

#[test]
fn media_expired_on_whatsapp_answers_404_media_expired() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a_jid = create_and_pair(&server, &mock_rt, &mock, k, "a").user_jid();
    let c = mock_rt.block_on(peer(&mock));
    let to: whatsapp_rust::Jid = a_jid.parse().unwrap();

    let jpeg: Vec<u8> = [&b"\xff\xd8\xff\xe0"[..], &[7u8; 5_000]].concat();
    let up = mock_rt
        .block_on(c.client.upload(jpeg, MediaType::Image, Default::default()))
        .unwrap();
    let image = wa::Message {
        image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_length: Some(up.file_length),
            mimetype: Some("image/jpeg".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    mock_rt.block_on(c.client.send_message(&to, image)).unwrap();
    let hits = rx.wait_for("the image", STEP, |h| {
        received(h, |d| d["kind"] == "image").is_some()
    });
    let img = received(&hits, |d| d["kind"] == "image").unwrap();

    // WhatsApp's CDN lets the file go before wagate ever fetched it.
    assert!(mock.expire_media(&up.direct_path));
    let r = get(&server.url(img["url"].as_str().unwrap()), k);
    assert_eq!(
        (r.status, r.error_code()),
        (404, "media_expired".to_string()),
        "{}",
        r.text()
    );
    assert!(r.text().contains("expired"), "{}", r.text());
    // An id the session does not know has its own code.
    let r = get(&server.url("/api/sessions/a/messages/msg_gone/media"), k);
    assert_eq!(
        (r.status, r.error_code()),
        (404, "media_not_found".to_string())
    );
}

/// The WhatsApp id of a message wagate sent, once the server acknowledged it.
fn sent_wa_id(server: &Server, k: Option<&str>, id: &str) -> String {
    let mut wa_id = String::new();
    common::peer::wait_until(&format!("{id} sent"), || {
        let m = get(&server.url(&format!("/api/sessions/a/messages/{id}")), k).json();
        wa_id = m["wa_id"].as_str().unwrap_or_default().to_string();
        !wa_id.is_empty()
    });
    wa_id
}

/// Queue a message of `kind` on session "a"; its wagate id.
fn send_a(server: &Server, k: Option<&str>, kind: &str, body: Value) -> String {
    let r = post_json(
        &server.url(&format!("/api/sessions/a/messages/{kind}")),
        k,
        body,
    );
    assert_eq!(r.status, 202, "{kind}: {}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// The `message.received` data of the `n`th (0-based) event of this kind.
fn nth_of_kind(rx: &common::receiver::Receiver, kind: &str, n: usize) -> Value {
    let hits = rx.wait_for(&format!("{kind} #{n}"), STEP, |h| {
        h.iter()
            .map(Hit::json)
            .filter(|b| b["type"] == "message.received" && b["data"]["kind"] == kind)
            .count()
            > n
    });
    hits.iter()
        .map(Hit::json)
        .filter(|b| b["type"] == "message.received" && b["data"]["kind"] == kind)
        .nth(n)
        .map(|b| b["data"].clone())
        .unwrap()
}

#[test]
fn a_customer_reacts_edits_and_revokes() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a_jid = create_and_pair(&server, &mock_rt, &mock, k, "a").user_jid();
    let c = mock_rt.block_on(peer(&mock));
    let to: whatsapp_rust::Jid = a_jid.parse().unwrap();

    // 1. wagate writes; the customer reacts to that message, then takes the reaction back.
    let shipped = send_a(&server, k, "text", json!({"to": c.jid, "text": "shipped"}));
    let shipped_wa = sent_wa_id(&server, k, &shipped);
    let theirs = |id: &str, from_me: bool| wa::MessageKey {
        remote_jid: Some(a_jid.clone()),
        from_me: Some(from_me),
        id: Some(id.to_string()),
        participant: None,
    };
    for emoji in ["👍", ""] {
        mock_rt
            .block_on(
                c.client
                    .send_reaction(to.clone(), theirs(&shipped_wa, false), emoji),
            )
            .unwrap();
    }
    let r = nth_of_kind(&rx, "reaction", 0);
    assert_eq!(r["emoji"], "👍", "{r}");
    assert_eq!(r["from_phone"], c.jid.as_str());
    assert_eq!(r["target"]["wa_id"], shipped_wa.as_str(), "{r}");
    assert_eq!(r["target"]["from_me"], true, "wagate sent the target: {r}");
    assert_eq!(r["target"]["id"], shipped.as_str(), "{r}");
    let removed = nth_of_kind(&rx, "reaction", 1);
    assert_eq!(removed["emoji"], "", "{removed}");
    assert_eq!(removed["target"]["id"], shipped.as_str(), "{removed}");

    // 2. The customer edits a message it wrote: the target is the customer's (no from_me),
    // named by the id its message.received carried; `text` is the new text.
    let typo = mock_rt
        .block_on(c.client.send_text(to.clone(), "pick up at 5"))
        .unwrap();
    let hits = rx.wait_for("the text", STEP, |h| {
        received(h, |d| d["text"] == "pick up at 5").is_some()
    });
    let original = received(&hits, |d| d["text"] == "pick up at 5").unwrap();
    let edited = mock_rt
        .block_on(c.client.edit_message(
            to.clone(),
            typo.message_id.clone(),
            wa::Message {
                conversation: Some("pick up at 6".into()),
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(edited, typo.message_id);
    let e = nth_of_kind(&rx, "edit", 0);
    assert_eq!(e["text"], "pick up at 6", "{e}");
    assert_eq!(e["target"]["wa_id"], typo.message_id.as_str(), "{e}");
    assert!(e["target"].get("from_me").is_none(), "the customer's: {e}");
    assert_eq!(e["target"]["id"], original["id"], "{e}");
    assert_ne!(e["id"], original["id"], "an edit is an event of its own");

    // 3. The customer deletes it for everyone.
    mock_rt
        .block_on(c.client.revoke_message(
            to.clone(),
            typo.message_id.clone(),
            whatsapp_rust::RevokeType::Sender,
        ))
        .unwrap();
    let v = nth_of_kind(&rx, "revoke", 0);
    assert_eq!(v["target"]["wa_id"], typo.message_id.as_str(), "{v}");
    assert!(v["target"].get("from_me").is_none(), "{v}");
    assert_eq!(v["target"]["id"], original["id"], "{v}");
    assert!(v["text"].is_null(), "{v}");

    // 4. wagate sends a list and buttons; the customer picks a row and presses a button,
    // quoting each as WhatsApp's apps do: the replies name the row or button and the message.
    let list = send_a(
        &server,
        k,
        "list",
        json!({"to": c.jid, "text": "Which size?", "button": "Sizes",
               "sections": [{"title": "Sizes", "rows": [
                   {"id": "size_m", "title": "Medium"},
                   {"id": "size_l", "title": "Large", "description": "for two"}]}]}),
    );
    let list_wa = sent_wa_id(&server, k, &list);
    let quoting = |wa_id: &str| {
        whatsapp_rust::buffa::MessageField::some(wa::ContextInfo {
            stanza_id: Some(wa_id.to_string()),
            participant: Some(a_jid.clone()),
            ..Default::default()
        })
    };
    let pick = wa::Message {
        list_response_message: whatsapp_rust::buffa::MessageField::some(
            wa::message::ListResponseMessage {
                title: Some("Large".into()),
                list_type: Some(wa::message::list_response_message::ListType::SINGLE_SELECT),
                single_select_reply: whatsapp_rust::buffa::MessageField::some(
                    wa::message::list_response_message::SingleSelectReply {
                        selected_row_id: Some("size_l".into()),
                    },
                ),
                description: Some("for two".into()),
                context_info: quoting(&list_wa),
            },
        ),
        ..Default::default()
    };
    mock_rt.block_on(c.client.send_message(&to, pick)).unwrap();
    let l = nth_of_kind(&rx, "list_reply", 0);
    assert_eq!(l["id"], "size_l", "{l}");
    assert_eq!(l["title"], "Large", "{l}");
    assert_eq!(l["description"], "for two", "{l}");
    assert_eq!(l["reply_to"]["wa_id"], list_wa.as_str(), "{l}");
    assert_eq!(l["reply_to"]["from_me"], true, "{l}");
    assert_eq!(l["reply_to"]["id"], list.as_str(), "{l}");

    let buttons = send_a(
        &server,
        k,
        "buttons",
        json!({"to": c.jid, "text": "Deliver today?",
               "buttons": [{"id": "yes", "title": "Yes please"}, {"id": "no", "title": "No"}]}),
    );
    let buttons_wa = sent_wa_id(&server, k, &buttons);
    use whatsapp_rust::waproto::whatsapp::__buffa::oneof::message::buttons_response_message::Response;
    let press = wa::Message {
        buttons_response_message: whatsapp_rust::buffa::MessageField::some(
            wa::message::ButtonsResponseMessage {
                selected_button_id: Some("yes".into()),
                r#type: Some(wa::message::buttons_response_message::Type::DISPLAY_TEXT),
                response: Some(Response::SelectedDisplayText("Yes please".into())),
                context_info: quoting(&buttons_wa),
            },
        ),
        ..Default::default()
    };
    mock_rt.block_on(c.client.send_message(&to, press)).unwrap();
    let b = nth_of_kind(&rx, "buttons_reply", 0);
    assert_eq!(b["id"], "yes", "{b}");
    assert_eq!(b["text"], "Yes please", "{b}");
    assert_eq!(b["reply_to"]["wa_id"], buttons_wa.as_str(), "{b}");
    assert_eq!(b["reply_to"]["id"], buttons.as_str(), "{b}");

    // A press that comes as a template button reply (as some apps send quick replies) is the
    // same `buttons_reply`, naming the button and wagate's message.
    let template_press = wa::Message {
        template_button_reply_message: whatsapp_rust::buffa::MessageField::some(
            wa::message::TemplateButtonReplyMessage {
                selected_id: Some("no".into()),
                selected_display_text: Some("No".into()),
                selected_index: Some(1),
                context_info: quoting(&buttons_wa),
                ..Default::default()
            },
        ),
        ..Default::default()
    };
    mock_rt
        .block_on(c.client.send_message(&to, template_press))
        .unwrap();
    let t = nth_of_kind(&rx, "buttons_reply", 1);
    assert_eq!(t["id"], "no", "{t}");
    assert_eq!(t["text"], "No", "{t}");
    assert_eq!(t["reply_to"]["wa_id"], buttons_wa.as_str(), "{t}");
    assert_eq!(t["reply_to"]["id"], buttons.as_str(), "{t}");
}
