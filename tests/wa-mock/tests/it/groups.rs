//! Three real clients in a group through the mock: one creates the group with
//! the `w:g2` IQ, messages fan out as sender-key messages with the group as
//! `from` and the sender as `participant`, a reply carries its context info,
//! an image uploaded by one member downloads byte for byte on another, and a
//! poll vote opens with the poll's secret.

use std::sync::Arc;

use crate::common::*;
use wacore::download::MediaType;
use wacore::store::InMemoryBackend;
use wacore::types::message::MessageInfo;
use waproto::whatsapp as wa;
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::upload::UploadOptions;
use whatsapp_rust::waproto::buffa;

/// The first message event in chat `chat` that `pick` maps to `Some`.
fn in_chat<T>(
    e: &Event,
    chat: &Jid,
    mut pick: impl FnMut(&wa::Message, &MessageInfo) -> Option<T>,
) -> Option<T> {
    match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .filter(|m| m.info.source.chat == *chat)
            .find_map(|m| pick(&m.message, &m.info)),
        _ => None,
    }
}

fn text(m: &wa::Message) -> Option<String> {
    m.conversation.clone().or_else(|| {
        m.extended_text_message
            .as_option()
            .and_then(|x| x.text.clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pn_group_messages_replies_media_and_poll_votes() {
    group_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lid_group_messages_replies_media_and_poll_votes() {
    group_scenario(true).await;
}

/// The whole exchange in a PN- or LID-addressed group: receivers see the sender by the
/// group's address family and the other identity beside it.
async fn group_scenario(lid_groups: bool) {
    init_tracing();
    let mock = wa_mock::MockServer::start(wa_mock::MockConfig {
        lid_groups,
        ..wa_mock::MockConfig::default()
    })
    .await
    .expect("mock starts");
    let ((mut a, a_info), (mut b, b_info), (mut c, c_info)) = tokio::join!(
        paired_client(&mock, Arc::new(InMemoryBackend::new())),
        paired_client(&mock, Arc::new(InMemoryBackend::new())),
        paired_client(&mock, Arc::new(InMemoryBackend::new())),
    );
    let jid = |s: &str| -> Jid { s.parse().expect("jid") };
    let (a_pn, b_pn, c_pn) = (
        jid(&a_info.user_jid()),
        jid(&b_info.user_jid()),
        jid(&c_info.user_jid()),
    );
    // (the user a receiver sees as sender, the other identity), per the group's mode.
    let seen = |info: &wa_mock::AccountInfo| {
        if lid_groups {
            (info.lid.clone(), info.phone.clone())
        } else {
            (info.phone.clone(), info.lid.clone())
        }
    };

    // A creates the group with B and C.
    let created = a
        .client
        .groups()
        .create_group(
            whatsapp_rust::features::GroupCreateOptions::new("Mock team").with_participants(vec![
                whatsapp_rust::features::GroupParticipantOptions::new(b_pn.clone()),
                whatsapp_rust::features::GroupParticipantOptions::new(c_pn.clone()),
            ]),
        )
        .await
        .expect("create group");
    let group = created.metadata.id.clone();
    assert_eq!(group.server, whatsapp_rust::Server::Group, "{group}");
    assert_eq!(created.metadata.participants.len(), 3);
    assert_eq!(mock.groups().len(), 1);
    assert_eq!(mock.groups()[0].subject, "Mock team");

    // Members see it in their participating list, with both identities.
    let listed = b
        .client
        .groups()
        .get_participating()
        .await
        .expect("participating");
    let meta = listed.get(&group).expect("B lists the group");
    assert_eq!(meta.subject.as_str(), "Mock team");
    let a_member = meta
        .participants
        .iter()
        .find(|p| p.jid.user == seen(&a_info).0)
        .expect("A is a participant");
    assert!(a_member.is_admin());
    let other = if lid_groups {
        a_member.phone_number.as_ref()
    } else {
        a_member.lid.as_ref()
    };
    assert_eq!(other.map(|j| j.user.to_string()), Some(seen(&a_info).1));
    let info = c
        .client
        .groups()
        .get_metadata(&group)
        .await
        .expect("metadata");
    assert_eq!(info.participants.len(), 3);

    // A -> group: B and C receive it from the group, with A as participant.
    let sent = a
        .client
        .send_text(group.clone(), "hello team")
        .await
        .expect("group send");
    for (who, client) in [("B", &mut b), ("C", &mut c)] {
        let (body, id, sender, alt) = client
            .wait(STEP, &format!("{who} receives the group text"), |e| {
                in_chat(e, &group, |m, i| {
                    text(m).map(|t| {
                        (
                            t,
                            i.id.to_string(),
                            i.source.sender.clone(),
                            i.source.sender_alt.clone(),
                        )
                    })
                })
            })
            .await;
        assert_eq!(body, "hello team");
        assert_eq!(id, sent.message_id);
        assert_eq!(sender.user, seen(&a_info).0, "{who}: participant is A");
        assert_eq!(
            alt.map(|j| j.user.to_string()),
            Some(seen(&a_info).1),
            "{who}: A's other identity beside"
        );
    }

    // B replies to A's message, quoting it and mentioning A.
    let reply = wa::Message {
        extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
            text: Some(format!("@{} agreed", a_info.phone)),
            context_info: buffa::MessageField::some(wa::ContextInfo {
                stanza_id: Some(sent.message_id.clone()),
                participant: Some(a_pn.to_string()),
                quoted_message: buffa::MessageField::some(wa::Message {
                    conversation: Some("hello team".into()),
                    ..Default::default()
                }),
                mentioned_jid: vec![a_pn.to_string()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let reply_sent = b
        .client
        .send_message(group.clone(), reply)
        .await
        .expect("reply");
    for (who, client) in [("A", &mut a), ("C", &mut c)] {
        let (ctx, sender, id) = client
            .wait(STEP, &format!("{who} receives B's reply"), |e| {
                in_chat(e, &group, |m, i| {
                    let x = m.extended_text_message.as_option()?;
                    let ctx = x.context_info.as_option()?.clone();
                    Some((ctx, i.source.sender.clone(), i.id.to_string()))
                })
            })
            .await;
        assert_eq!(id, reply_sent.message_id);
        assert_eq!(sender.user, seen(&b_info).0);
        assert_eq!(ctx.stanza_id.as_deref(), Some(sent.message_id.as_str()));
        assert_eq!(ctx.participant.as_deref(), Some(a_pn.to_string().as_str()));
        assert_eq!(ctx.mentioned_jid, vec![a_pn.to_string()]);
        assert_eq!(
            ctx.quoted_message
                .as_option()
                .and_then(|q| q.conversation.clone())
                .as_deref(),
            Some("hello team")
        );
    }

    // C sends an image to the group; A downloads exactly its bytes.
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let up = c
        .client
        .upload(bytes.clone(), MediaType::Image, UploadOptions::default())
        .await
        .expect("upload");
    let image = wa::Message {
        image_message: buffa::MessageField::some(wa::message::ImageMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_length: Some(up.file_length),
            mimetype: Some("image/png".into()),
            caption: Some("the chart".into()),
            media_key_timestamp: Some(up.media_key_timestamp),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.client
        .send_message(group.clone(), image)
        .await
        .expect("image send");
    let received = a
        .wait(STEP, "A receives C's image", |e| {
            in_chat(e, &group, |m, _| m.image_message.as_option().cloned())
        })
        .await;
    assert_eq!(received.caption.as_deref(), Some("the chart"));
    let downloaded = a.client.download(&received).await.expect("download");
    assert_eq!(downloaded, bytes, "downloaded bytes differ");

    // C creates a poll in the group; B votes; C opens the vote.
    let options = vec!["Monday".to_string(), "Friday".to_string()];
    let (poll, secret) = c
        .client
        .polls()
        .create(group.clone(), "Release day?", &options, 1)
        .await
        .expect("poll");
    let c_sender = b
        .wait(STEP, "B receives the poll", |e| {
            in_chat(e, &group, |m, i| {
                m.poll_creation_message_v3
                    .as_option()
                    .map(|_| i.source.sender.clone())
            })
        })
        .await;
    assert_eq!(c_sender.user, seen(&c_info).0);
    b.client
        .polls()
        .vote(
            group.clone(),
            &poll.message_id,
            &c_sender.to_non_ad(),
            &secret,
            &["Friday".to_string()],
        )
        .await
        .expect("vote");
    let (vote, voter) = c
        .wait(STEP, "C receives B's vote", |e| {
            in_chat(e, &group, |m, i| {
                let u = m.poll_update_message.as_option()?;
                let v = u.vote.as_option()?;
                Some((
                    (v.enc_payload.clone()?, v.enc_iv.clone()?),
                    i.source.sender.clone(),
                ))
            })
        })
        .await;
    assert_eq!(voter.user, seen(&b_info).0);
    let hashes = c
        .client
        .polls()
        .decrypt_vote(
            wacore::poll::PollVoteCiphertext {
                enc_payload: &vote.0,
                enc_iv: &vote.1,
            },
            &secret,
            &poll.message_id,
            &c_sender.to_non_ad(),
            &voter,
        )
        .await
        .expect("vote opens");
    assert_eq!(
        hashes,
        vec![wacore::poll::compute_option_hash("Friday").to_vec()]
    );

    a.stop().await;
    b.stop().await;
    c.stop().await;
    mock.shutdown().await;
}
