//! The HTTP API end to end through wa-mock: a wagate session paired through the QR endpoint
//! sends each of the 14 message kinds over a real socket; a bare whatsapp-rust client (the
//! recipient) decrypts each one and the test checks its protocol fields; media decrypts to
//! the bytes sent. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use crate::common::peer::{Peer, peer, wait, wait_until};
use crate::common::{Options, Server, get, post_json};
use base64::Engine as _;
use serde_json::json;
use tokio::runtime::Runtime;
use wa_mock::{MockConfig, MockServer};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::waproto::whatsapp as wa;

/// The next message the peer decrypts, with its WhatsApp id.
async fn received(peer: &mut Peer, what: &str) -> (String, wa::Message) {
    wait(&mut peer.events, what, |e| match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .find(|m| !m.info.source.is_from_me)
            .map(|m| (m.info.id.to_string(), (*m.message).clone())),
        _ => None,
    })
    .await
}

#[test]
fn fourteen_kinds_arrive_as_the_right_protocol_messages() {
    let mock_rt = Runtime::new().unwrap();
    let mock = mock_rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let server = Server::start(Options {
        body_limit: 8 * 1024 * 1024,
        ..common::peer::mock_options(&mock)
    });
    let key = server.admin();
    let k = Some(key.as_str());

    // Pair session "a" through the API: create, read the QR as JSON, the phone scans it.
    let _ = common::peer::create_and_pair(&server, &mock_rt, &mock, k, "a");

    let mut b = mock_rt.block_on(peer(&mock));
    let b_jid = b.jid.clone();
    let send = |kind: &str, mut body: serde_json::Value| -> String {
        body["to"] = json!(b_jid);
        let r = post_json(
            &server.url(&format!("/api/sessions/a/messages/{kind}")),
            k,
            body,
        );
        assert_eq!(
            r.status,
            202,
            "{kind}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["status"], "queued");
        r.json()["id"].as_str().unwrap().to_string()
    };
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    // text
    let text_id = send("text", json!({"text": "hello B"}));
    let (text_wa_id, m) = mock_rt.block_on(received(&mut b, "text"));
    assert_eq!(m.conversation.as_deref(), Some("hello B"));

    // image: the recipient downloads and decrypts the same bytes.
    let png: Vec<u8> = [&b"\x89PNG\r\n\x1a\n"[..], &[7u8; 3000]].concat();
    send(
        "image",
        json!({"base64": b64(&png), "caption": "a picture"}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "image"));
    let img = m.image_message.as_option().expect("image_message").clone();
    assert_eq!(img.caption.as_deref(), Some("a picture"));
    assert_eq!(img.mimetype.as_deref(), Some("image/png"));
    assert_eq!(img.file_length, Some(png.len() as u64));
    let bytes = mock_rt.block_on(b.client.download(&img)).unwrap();
    assert_eq!(bytes, png);

    // image again, as a multipart upload (`curl -F to=... -F caption=... -F file=@pic.png`).
    let boundary = "wagate-test-boundary";
    let mut form = Vec::new();
    for (name, value) in [("to", b_jid.as_str()), ("caption", "uploaded")] {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"pic.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    form.extend_from_slice(&png);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = common::call(
        "POST",
        &server.url("/api/sessions/a/messages/image"),
        k,
        &[],
        Some((&format!("multipart/form-data; boundary={boundary}"), form)),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let (_, m) = mock_rt.block_on(received(&mut b, "uploaded image"));
    let img = m.image_message.as_option().expect("image_message").clone();
    assert_eq!(img.caption.as_deref(), Some("uploaded"));
    assert_eq!(mock_rt.block_on(b.client.download(&img)).unwrap(), png);

    // video
    let mp4: Vec<u8> = [&b"\0\0\0\x18ftypmp42"[..], &[1u8; 2000]].concat();
    send(
        "video",
        json!({"base64": b64(&mp4), "mimetype": "video/mp4", "caption": "clip", "seconds": 3}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "video"));
    let vid = m.video_message.as_option().expect("video_message").clone();
    assert_eq!(
        (vid.caption.as_deref(), vid.seconds),
        (Some("clip"), Some(3))
    );
    assert_eq!(mock_rt.block_on(b.client.download(&vid)).unwrap(), mp4);

    // audio, as a voice note
    let ogg: Vec<u8> = [&b"OggS"[..], &[2u8; 1500]].concat();
    send(
        "audio",
        json!({"base64": b64(&ogg), "mimetype": "audio/ogg; codecs=opus", "voice": true}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "audio"));
    let aud = m.audio_message.as_option().expect("audio_message").clone();
    assert_eq!(aud.ptt, Some(true));
    assert_eq!(mock_rt.block_on(b.client.download(&aud)).unwrap(), ogg);

    // document
    let pdf: Vec<u8> = [&b"%PDF-1.4\n"[..], &[3u8; 1000]].concat();
    send(
        "document",
        json!({"base64": b64(&pdf), "file_name": "invoice.pdf"}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "document"));
    let doc = m
        .document_message
        .as_option()
        .expect("document_message")
        .clone();
    assert_eq!(doc.file_name.as_deref(), Some("invoice.pdf"));
    assert_eq!(doc.mimetype.as_deref(), Some("application/pdf"));
    assert_eq!(mock_rt.block_on(b.client.download(&doc)).unwrap(), pdf);

    // sticker
    let webp: Vec<u8> = [&b"RIFF\x10\0\0\0WEBPVP8 "[..], &[4u8; 800]].concat();
    send("sticker", json!({"base64": b64(&webp)}));
    let (_, m) = mock_rt.block_on(received(&mut b, "sticker"));
    let st = m
        .sticker_message
        .as_option()
        .expect("sticker_message")
        .clone();
    assert_eq!(st.mimetype.as_deref(), Some("image/webp"));
    assert_eq!(mock_rt.block_on(b.client.download(&st)).unwrap(), webp);

    // location
    send(
        "location",
        json!({"latitude": 51.5007, "longitude": -0.1246, "name": "Big Ben"}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "location"));
    let loc = m
        .location_message
        .as_option()
        .expect("location_message")
        .clone();
    assert_eq!(loc.degrees_latitude, Some(51.5007));
    assert_eq!(loc.degrees_longitude, Some(-0.1246));
    assert_eq!(loc.name.as_deref(), Some("Big Ben"));

    // contact
    send(
        "contact",
        json!({"name": "Ada Lovelace", "phones": ["+44 7700 900123"]}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "contact"));
    let c = m
        .contact_message
        .as_option()
        .expect("contact_message")
        .clone();
    assert_eq!(c.display_name.as_deref(), Some("Ada Lovelace"));
    let vcard = c.vcard.unwrap_or_default();
    assert!(
        vcard.starts_with("BEGIN:VCARD") && vcard.contains("waid=447700900123"),
        "{vcard}"
    );

    // poll
    send(
        "poll",
        json!({"question": "Lunch?", "options": ["pizza", "soup"]}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "poll"));
    let poll = m
        .poll_creation_message_v3
        .as_option()
        .or(m.poll_creation_message.as_option())
        .expect("a poll")
        .clone();
    assert_eq!(poll.name.as_deref(), Some("Lunch?"));
    let names: Vec<_> = poll
        .options
        .iter()
        .filter_map(|o| o.option_name.clone())
        .collect();
    assert_eq!(names, ["pizza", "soup"]);
    let secret = m
        .message_context_info
        .as_option()
        .and_then(|c| c.message_secret.clone())
        .unwrap_or_default();
    assert_eq!(secret.len(), 32);

    // reaction to the text B received: the key names it.
    send(
        "reaction",
        json!({"message_id": text_wa_id, "emoji": "👍", "from_me": true}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "reaction"));
    let r = m
        .reaction_message
        .as_option()
        .expect("reaction_message")
        .clone();
    assert_eq!(r.text.as_deref(), Some("👍"));
    let rkey = r.key.as_option().expect("key").clone();
    assert_eq!(rkey.id.as_deref(), Some(text_wa_id.as_str()));
    assert_eq!(rkey.from_me, Some(true));

    // list, buttons, template: interactive messages with native-flow buttons.
    send(
        "list",
        json!({"text": "Pick one", "button": "Menu", "sections": [{"title": "Food", "rows": [{"id": "r1", "title": "Pizza"}, {"id": "r2", "title": "Soup"}]}]}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "list"));
    let im = format!(
        "{:?}",
        m.interactive_message.as_option().expect("interactive list")
    );
    assert!(
        im.contains("single_select") && im.contains("Pizza") && im.contains("r2"),
        "{im}"
    );

    send(
        "buttons",
        json!({"text": "Yes or no?", "buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}]}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "buttons"));
    let im = format!(
        "{:?}",
        m.interactive_message
            .as_option()
            .expect("interactive buttons")
    );
    assert!(
        im.contains("quick_reply") && im.contains("Yes or no?") && im.contains("\\\"n\\\""),
        "{im}"
    );

    send(
        "template",
        json!({"text": "Your order shipped", "buttons": [{"type": "url", "title": "Track", "url": "https://example.com/t/1"}]}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "template"));
    let im = format!(
        "{:?}",
        m.interactive_message
            .as_option()
            .expect("interactive template")
    );
    assert!(
        im.contains("cta_url") && im.contains("example.com/t/1"),
        "{im}"
    );

    // link_preview
    send(
        "link_preview",
        json!({"text": "Read this", "url": "https://example.com/post", "title": "A post", "description": "About things"}),
    );
    let (_, m) = mock_rt.block_on(received(&mut b, "link_preview"));
    let et = m
        .extended_text_message
        .as_option()
        .expect("extended_text_message")
        .clone();
    assert!(
        et.text
            .as_deref()
            .unwrap_or("")
            .contains("https://example.com/post")
    );
    assert_eq!(et.matched_text.as_deref(), Some("https://example.com/post"));
    assert_eq!(et.title.as_deref(), Some("A post"));

    // The first text: sent, then delivered, in the message's status.
    wait_until("the text to be delivered", || {
        let v = get(
            &server.url(&format!("/api/sessions/a/messages/{text_id}")),
            k,
        )
        .json();
        v["status"] == "delivered" || v["status"] == "read"
    });
    let v = get(
        &server.url(&format!("/api/sessions/a/messages/{text_id}")),
        k,
    )
    .json();
    assert_eq!(v["wa_id"], text_wa_id);
    assert!(v["sent_at"].is_i64() && v["delivered_at"].is_i64());

    // The counters saw it: 15 sends, at least one delivery, an empty queue.
    let metrics = String::from_utf8(get(&server.url("/metrics"), k).body).unwrap();
    let sample = |name: &str| common::metric(&metrics, name);
    assert_eq!(sample("wagate_messages_total{event=\"sent\"}"), 15.0);
    assert!(sample("wagate_messages_total{event=\"delivered\"}") >= 1.0);
    assert_eq!(sample("wagate_queue_depth{session=\"a\"}"), 0.0);
    assert!(sample("wagate_store_commits_total") > 15.0);
    drop(server);
    mock_rt.block_on(mock.shutdown());
}

#[test]
fn idempotency_bad_input_and_cancel() {
    // WhatsApp unreachable: messages stay queued, which is what these checks need.
    let server = Server::start(Options::default());
    let key = server.admin();
    let k = Some(key.as_str());
    let url = server.url("/api/sessions/default/messages/text");
    let body = json!({"to": "+44 7700 900123", "text": "once"});

    let first = common::call(
        "POST",
        &url,
        k,
        &[("Idempotency-Key", "order-17")],
        Some(("application/json", body.to_string().into_bytes())),
    );
    assert_eq!(first.status, 202);
    let again = common::call(
        "POST",
        &url,
        k,
        &[("Idempotency-Key", "order-17")],
        Some(("application/json", body.to_string().into_bytes())),
    );
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    let id = first.json()["id"].as_str().unwrap().to_string();
    let metrics =
        String::from_utf8(get(&server.url("/metrics"), Some(&server.admin())).body).unwrap();
    assert!(
        metrics.contains("wagate_queue_depth{session=\"default\"} 1"),
        "one queued message (the replay added none):\n{metrics}"
    );
    let shown = get(
        &server.url(&format!("/api/sessions/default/messages/{id}")),
        k,
    )
    .json();
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["to"], "447700900123@s.whatsapp.net");

    // Bad input: named fields and the right statuses; nothing is queued for them.
    let r = post_json(&url, k, json!({"to": "447700900123"}));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text")
    );
    let r = post_json(
        &url,
        k,
        json!({"to": "447700900123", "text": "x", "txt": "y"}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("txt")
    );
    let r = post_json(&url, k, json!({"to": "not a number", "text": "x"}));
    assert_eq!(r.status, 422);
    let r = post_json(
        &server.url("/api/sessions/default/messages/fax"),
        k,
        json!({"to": "447700900123"}),
    );
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("link_preview")
    );
    let r = post_json(
        &server.url("/api/sessions/nope/messages/text"),
        k,
        json!({"to": "447700900123", "text": "x"}),
    );
    assert_eq!(r.status, 404);
    let r = common::call("POST", &url, k, &[], Some(("text/plain", b"hi".to_vec())));
    assert_eq!(r.status, 415);

    // Cancel while queued; a second cancel is too late.
    let r = common::delete(
        &server.url(&format!("/api/sessions/default/messages/{id}")),
        k,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "cancelled");
    let r = common::delete(
        &server.url(&format!("/api/sessions/default/messages/{id}")),
        k,
    );
    assert_eq!(r.status, 409);
    let r = get(&server.url("/api/sessions/default/messages/msg_nope"), k);
    assert_eq!(r.status, 404);
}
