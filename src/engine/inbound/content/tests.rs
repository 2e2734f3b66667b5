//! The kind mapping of every inbound kind, built from protocol messages as WhatsApp sends
//! them.

use waproto::buffa::MessageField;
use waproto::whatsapp as wa;

use super::*;

const URL: &str = "/api/sessions/s/messages/msg_1/media";

fn some<T: Default>(v: T) -> MessageField<T> {
    MessageField::some(v)
}

fn ctx_reply() -> MessageField<wa::ContextInfo> {
    some(wa::ContextInfo {
        stanza_id: Some("QUOTED1".into()),
        participant: Some("111@s.whatsapp.net".into()),
        mentioned_jid: vec!["222@s.whatsapp.net".into(), "333@lid".into()],
        ..Default::default()
    })
}

fn json(m: &Mapped) -> serde_json::Value {
    serde_json::to_value(&m.content).unwrap()
}

#[test]
fn plain_text() {
    let m = map(
        &wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(m.content, InboundContent::Text { link_preview: None });
    assert_eq!(m.text.as_deref(), Some("hi"));
    assert_eq!(m.reply_to, None);
    assert!(m.mentions.is_empty());
    assert_eq!(json(&m)["kind"], "text");
}

#[test]
fn extended_text_with_reply_mentions_and_link_preview() {
    let m = map(
        &wa::Message {
            extended_text_message: some(wa::message::ExtendedTextMessage {
                text: Some("see https://example.org @222".into()),
                matched_text: Some("https://example.org".into()),
                title: Some("Example".into()),
                description: Some("An example".into()),
                context_info: ctx_reply(),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(m.text.as_deref(), Some("see https://example.org @222"));
    let j = json(&m);
    assert_eq!(j["kind"], "text");
    assert_eq!(j["link_preview"]["url"], "https://example.org");
    assert_eq!(j["link_preview"]["title"], "Example");
    let r = m.reply_to.unwrap();
    assert_eq!(r.wa_id, "QUOTED1");
    assert_eq!(r.participant.as_deref(), Some("111@s.whatsapp.net"));
    assert_eq!(m.mentions, vec!["222@s.whatsapp.net", "333@lid"]);
}

#[test]
fn image_with_caption_and_metadata() {
    let m = map(
        &wa::Message {
            image_message: some(wa::message::ImageMessage {
                mimetype: Some("image/jpeg".into()),
                file_length: Some(1234),
                file_sha256: Some(vec![0xab, 0x01]),
                caption: Some("look".into()),
                width: Some(640),
                height: Some(480),
                context_info: ctx_reply(),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&m);
    assert_eq!(j["kind"], "image");
    assert_eq!(j["mimetype"], "image/jpeg");
    assert_eq!(j["size"], 1234);
    assert_eq!(j["sha256"], "ab01");
    assert_eq!(j["caption"], "look");
    assert_eq!(j["width"], 640);
    assert_eq!(j["url"], URL);
    assert_eq!(m.text.as_deref(), Some("look"));
    assert_eq!(m.reply_to.unwrap().wa_id, "QUOTED1");
}

#[test]
fn video_audio_voice_document_sticker() {
    let v = map(
        &wa::Message {
            video_message: some(wa::message::VideoMessage {
                mimetype: Some("video/mp4".into()),
                seconds: Some(12),
                gif_playback: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&v);
    assert_eq!(
        (j["kind"].as_str(), j["seconds"].as_u64()),
        (Some("video"), Some(12))
    );
    assert_eq!(j["animated"], true);

    let a = map(
        &wa::Message {
            audio_message: some(wa::message::AudioMessage {
                mimetype: Some("audio/ogg; codecs=opus".into()),
                seconds: Some(3),
                ptt: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&a);
    assert_eq!(j["kind"], "audio");
    assert_eq!(j["voice"], true);
    assert_eq!(j["seconds"], 3);
    assert_eq!(a.text, None);

    let d = map(
        &wa::Message {
            document_message: some(wa::message::DocumentMessage {
                mimetype: Some("application/pdf".into()),
                file_name: Some("offer.pdf".into()),
                caption: Some("the offer".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&d);
    assert_eq!(j["kind"], "document");
    assert_eq!(j["file_name"], "offer.pdf");
    assert_eq!(d.text.as_deref(), Some("the offer"));

    // A document with a caption comes wrapped; the wrapper is looked through.
    let wrapped = map(
        &wa::Message {
            document_with_caption_message: some(wa::message::FutureProofMessage {
                message: some(wa::Message {
                    document_message: some(wa::message::DocumentMessage {
                        file_name: Some("a.txt".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(json(&wrapped)["file_name"], "a.txt");

    let s = map(
        &wa::Message {
            sticker_message: some(wa::message::StickerMessage {
                mimetype: Some("image/webp".into()),
                is_animated: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&s);
    assert_eq!(j["kind"], "sticker");
    assert_eq!(j["animated"], true);
}

#[test]
fn location_and_live_location() {
    let m = map(
        &wa::Message {
            location_message: some(wa::message::LocationMessage {
                degrees_latitude: Some(51.5),
                degrees_longitude: Some(-0.12),
                name: Some("Office".into()),
                address: Some("1 Street".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&m);
    assert_eq!(j["kind"], "location");
    assert_eq!(j["latitude"], 51.5);
    assert_eq!(j["name"], "Office");
    assert!(j.get("live").is_none());
    let live = map(
        &wa::Message {
            live_location_message: some(wa::message::LiveLocationMessage {
                degrees_latitude: Some(1.0),
                degrees_longitude: Some(2.0),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(json(&live)["live"], true);
}

#[test]
fn one_contact_and_many() {
    let one = map(
        &wa::Message {
            contact_message: some(wa::message::ContactMessage {
                display_name: Some("Ann".into()),
                vcard: Some("BEGIN:VCARD\nEND:VCARD".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&one);
    assert_eq!(j["kind"], "contact");
    assert_eq!(j["contacts"][0]["name"], "Ann");
    let many = map(
        &wa::Message {
            contacts_array_message: some(wa::message::ContactsArrayMessage {
                contacts: vec![
                    wa::message::ContactMessage {
                        display_name: Some("A".into()),
                        ..Default::default()
                    },
                    wa::message::ContactMessage {
                        display_name: Some("B".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(json(&many)["contacts"].as_array().unwrap().len(), 2);
}

#[test]
fn poll_and_poll_vote() {
    let opt = |n: &str| wa::message::poll_creation_message::Option {
        option_name: Some(n.into()),
        ..Default::default()
    };
    let p = map(
        &wa::Message {
            poll_creation_message_v3: some(wa::message::PollCreationMessage {
                name: Some("Lunch?".into()),
                options: vec![opt("pizza"), opt("salad")],
                selectable_options_count: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(
        p.content,
        InboundContent::Poll {
            question: "Lunch?".into(),
            options: vec!["pizza".into(), "salad".into()],
            selectable: 1,
        }
    );
    let v = map(
        &wa::Message {
            poll_update_message: some(wa::message::PollUpdateMessage {
                poll_creation_message_key: some(wa::MessageKey {
                    id: Some("POLL1".into()),
                    from_me: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&v);
    assert_eq!(j["kind"], "poll_vote");
    assert_eq!(j["poll"]["wa_id"], "POLL1");
    assert_eq!(j["poll"]["from_me"], true);
    assert!(j["options"].is_null(), "decrypted later, by the hook");
}

#[test]
fn reaction_and_its_removal() {
    let r = |emoji: &str| {
        map(
            &wa::Message {
                reaction_message: some(wa::message::ReactionMessage {
                    key: some(wa::MessageKey {
                        id: Some("TARGET".into()),
                        from_me: Some(true),
                        ..Default::default()
                    }),
                    text: Some(emoji.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            URL,
        )
    };
    let j = json(&r("👍"));
    assert_eq!(j["kind"], "reaction");
    assert_eq!(j["emoji"], "👍");
    assert_eq!(j["target"]["wa_id"], "TARGET");
    assert_eq!(json(&r(""))["emoji"], "");
}

#[test]
fn list_and_buttons_replies() {
    let l = map(
        &wa::Message {
            list_response_message: some(wa::message::ListResponseMessage {
                title: Some("Large".into()),
                single_select_reply: some(wa::message::list_response_message::SingleSelectReply {
                    selected_row_id: Some("size_l".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&l);
    assert_eq!(j["kind"], "list_reply");
    assert_eq!(j["id"], "size_l");
    assert_eq!(j["title"], "Large");

    use waproto::whatsapp::__buffa::oneof::message::buttons_response_message::Response;
    let b = map(
        &wa::Message {
            buttons_response_message: some(wa::message::ButtonsResponseMessage {
                selected_button_id: Some("yes".into()),
                response: Some(Response::SelectedDisplayText("Yes please".into())),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&b);
    assert_eq!(j["kind"], "buttons_reply");
    assert_eq!(j["id"], "yes");
    assert_eq!(j["text"], "Yes please");

    let t = map(
        &wa::Message {
            template_button_reply_message: some(wa::message::TemplateButtonReplyMessage {
                selected_id: Some("t1".into()),
                selected_display_text: Some("Call me".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(json(&t)["kind"], "buttons_reply");
    assert_eq!(t.text.as_deref(), Some("Call me"));
}

#[test]
fn edit_and_revoke() {
    use wa::message::protocol_message::Type;
    let key = some(wa::MessageKey {
        id: Some("OLD".into()),
        ..Default::default()
    });
    let e = map(
        &wa::Message {
            protocol_message: some(wa::message::ProtocolMessage {
                key: key.clone(),
                r#type: Some(Type::MESSAGE_EDIT),
                edited_message: some(wa::Message {
                    conversation: Some("fixed typo".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let j = json(&e);
    assert_eq!(j["kind"], "edit");
    assert_eq!(j["target"]["wa_id"], "OLD");
    assert_eq!(e.text.as_deref(), Some("fixed typo"));

    let r = map(
        &wa::Message {
            protocol_message: some(wa::message::ProtocolMessage {
                key,
                r#type: Some(Type::REVOKE),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(json(&r)["kind"], "revoke");
    assert_eq!(json(&r)["target"]["wa_id"], "OLD");
}

#[test]
fn anything_else_is_unsupported_with_its_type_name() {
    let m = map(
        &wa::Message {
            group_invite_message: some(wa::message::GroupInviteMessage {
                group_jid: Some("1@g.us".into()),
                ..Default::default()
            }),
            // Carried beside every message; says nothing of the kind.
            message_context_info: some(wa::MessageContextInfo {
                message_secret: Some(vec![1; 32]),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(
        m.content,
        InboundContent::Unsupported {
            message_type: "groupInviteMessage".into()
        }
    );
    assert_eq!(json(&m)["message_type"], "groupInviteMessage");

    let other_protocol = map(
        &wa::Message {
            protocol_message: some(wa::message::ProtocolMessage {
                r#type: Some(wa::message::protocol_message::Type::EPHEMERAL_SETTING),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    assert_eq!(
        json(&other_protocol)["message_type"],
        "protocolMessage.EPHEMERAL_SETTING"
    );
    assert_eq!(
        json(&map(&wa::Message::default(), URL))["message_type"],
        "empty"
    );
}

#[test]
fn the_event_data_round_trips_through_json() {
    let m = map(
        &wa::Message {
            audio_message: some(wa::message::AudioMessage {
                ptt: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        URL,
    );
    let data = crate::events::MessageReceived {
        id: "msg_1".into(),
        wa_id: "W".into(),
        chat: "1@g.us".into(),
        from: "2@lid".into(),
        from_phone: None,
        from_lid: Some("2@lid".into()),
        push_name: None,
        sent_at: 1,
        text: None,
        group: Some("1@g.us".into()),
        reply_to: m.reply_to.clone(),
        mentions: vec![],
        content: Box::new(m.content),
    };
    let v = serde_json::to_value(&data).unwrap();
    assert_eq!(v["kind"], "audio");
    assert_eq!(v["group"], "1@g.us");
    let back: crate::events::MessageReceived = serde_json::from_value(v).unwrap();
    assert_eq!(back, data);
}

#[test]
fn references_turn_to_the_sessions_point_of_view() {
    let me = ["111".to_string(), "900".to_string()];
    let oriented = |from_me: bool, participant: Option<&str>, group: bool, key: bool| {
        let mut r = MessageRef {
            wa_id: "W".into(),
            participant: participant.map(str::to_string),
            from_me,
            ..Default::default()
        };
        orient(&mut r, &me, group, key);
        r.from_me
    };
    // One-to-one: the sender's key says from_me for its own message, not for ours.
    assert!(
        oriented(false, None, false, true),
        "the customer reacts to ours"
    );
    assert!(
        !oriented(true, None, false, true),
        "the customer edits its own"
    );
    // Groups: the participant decides, by phone number or LID, device or not.
    assert!(oriented(false, Some("111@s.whatsapp.net"), true, true));
    assert!(oriented(false, Some("900:3@lid"), true, true));
    assert!(!oriented(false, Some("222@s.whatsapp.net"), true, true));
    assert!(!oriented(false, None, true, true), "no author named");
    assert!(
        !oriented(true, Some("222@lid"), true, true),
        "the sender's own"
    );
    // Quotes carry no from_me of their own: only the author counts.
    assert!(oriented(false, Some("111@s.whatsapp.net"), false, false));
    assert!(!oriented(false, Some("222@s.whatsapp.net"), false, false));
    assert!(!oriented(false, None, false, false));
}
