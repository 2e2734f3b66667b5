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

/// A mock whose groups are PN- or LID-addressed.
async fn mock_with(lid_groups: bool) -> wa_mock::MockServer {
    init_tracing();
    wa_mock::MockServer::start(wa_mock::MockConfig {
        lid_groups,
        ..wa_mock::MockConfig::default()
    })
    .await
    .expect("mock starts")
}

/// A freshly paired client with its own in-memory store.
async fn fresh(mock: &wa_mock::MockServer) -> (TestClient, wa_mock::AccountInfo) {
    paired_client(mock, Arc::new(InMemoryBackend::new())).await
}

type Paired = (TestClient, wa_mock::AccountInfo);

async fn three_clients(mock: &wa_mock::MockServer) -> (Paired, Paired, Paired) {
    tokio::join!(fresh(mock), fresh(mock), fresh(mock))
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
    let mock = mock_with(lid_groups).await;
    let ((mut a, a_info), (mut b, b_info), (mut c, c_info)) = three_clients(&mock).await;
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

// ---------------------------------------------------------------------------
// Group administration: the admin IQs and the `w:gp2` notifications members get.
// ---------------------------------------------------------------------------

use wacore::stanza::groups::{GroupNotificationAction as Action, MembershipRequestMethod};
use wacore::types::events::GroupUpdate;
use whatsapp_rust::IqError;
use whatsapp_rust::features::{
    GroupCreateOptions, GroupDescription, GroupError, GroupParticipantOptions, GroupSubject,
    JoinGroupResult, MembershipApprovalMode, PreviousDescription,
};

/// Waits for a group notification about `group` that `pick` maps to `Some`.
async fn group_update<T>(
    c: &mut TestClient,
    group: &Jid,
    what: &str,
    mut pick: impl FnMut(&GroupUpdate) -> Option<T>,
) -> T {
    c.wait(STEP, what, |e| match e {
        Event::GroupUpdate(u) if u.group_jid == *group => pick(u),
        _ => None,
    })
    .await
}

/// The server's error code, if the call failed with one.
fn server_code<T: std::fmt::Debug>(r: Result<T, GroupError>) -> Option<u16> {
    match r {
        Err(GroupError::Iq(IqError::ServerError { code, .. })) => Some(code),
        other => panic!("expected a server error, got {other:?}"),
    }
}

fn jid(s: &str) -> Jid {
    s.parse().expect("jid")
}

/// Creates a group of A's with `members`; returns its JID.
async fn create(a: &TestClient, subject: &str, members: &[&Jid]) -> Jid {
    a.client
        .groups()
        .create_group(
            GroupCreateOptions::new(subject).with_participants(
                members
                    .iter()
                    .map(|j| GroupParticipantOptions::new((*j).clone()))
                    .collect(),
            ),
        )
        .await
        .expect("create group")
        .metadata
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pn_group_participants_add_promote_demote_remove() {
    participants_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lid_group_participants_add_promote_demote_remove() {
    participants_scenario(true).await;
}

/// A adds, promotes, demotes and removes; refusals come per participant; B sees each
/// change as a group update naming A, in the group's address family.
async fn participants_scenario(lid_groups: bool) {
    let mock = mock_with(lid_groups).await;
    let ((a, a_info), (mut b, b_info), (mut c, c_info)) = three_clients(&mock).await;
    // The user part a group names someone by, per the group's mode.
    let seen = |info: &wa_mock::AccountInfo| {
        if lid_groups {
            info.lid.clone()
        } else {
            info.phone.clone()
        }
    };
    let (a_pn, b_pn, c_pn) = (
        jid(&a_info.user_jid()),
        jid(&b_info.user_jid()),
        jid(&c_info.user_jid()),
    );
    let group = create(&a, "Admins", &[&b_pn]).await;

    // B is told it is in a new group.
    let (creator, subject) = group_update(&mut b, &group, "B: create", |u| match &u.action {
        Action::Create { raw } => Some((
            u.participant.clone(),
            raw.get_optional_child("group")
                .and_then(|g| g.attrs.get("subject").map(|v| v.as_str().into_owned())),
        )),
        _ => None,
    })
    .await;
    assert_eq!(creator.map(|j| j.user.to_string()), Some(seen(&a_info)));
    assert_eq!(subject.as_deref(), Some("Admins"));

    // C's privacy refuses being added; one number is not on WhatsApp; B is in already.
    mock.refuse_group_add(&c_info.phone);
    let nobody = Jid::pn("19990000001");
    let added = a
        .client
        .groups()
        .add_participants(&group, &[c_pn.clone(), nobody.clone(), b_pn.clone()])
        .await
        .expect("add answered");
    assert_eq!(added.len(), 3, "{added:?}");
    assert_eq!(added[0].jid.user, seen(&c_info));
    assert_eq!(added[0].error.as_deref(), Some("403"));
    let invite = added[0].add_request.clone().expect("an add_request for C");
    assert!(!invite.code.is_empty());
    assert_eq!(added[1].jid, nobody);
    assert_eq!(added[1].error.as_deref(), Some("404"));
    assert_eq!(added[2].jid.user, seen(&b_info));
    assert_eq!(added[2].error.as_deref(), Some("409"));
    if lid_groups {
        assert_eq!(added[0].phone_number.as_ref(), Some(&c_pn));
    }
    assert!(
        !mock
            .group(&group.user)
            .expect("group")
            .has_member(&c_info.phone)
    );

    // C takes up the invitation A's refused add produced.
    let joined = c
        .client
        .groups()
        .join_with_invite_v4(&group, &invite.code, invite.expiration as i64, &a_pn)
        .await
        .expect("C accepts the invitation");
    assert_eq!(joined, JoinGroupResult::Joined(group.clone()));
    let (who, by) = group_update(&mut b, &group, "B: C added", |u| match &u.action {
        Action::Add { participants, .. } => Some((
            participants
                .iter()
                .map(|p| p.jid.user.to_string())
                .collect::<Vec<_>>(),
            u.participant.clone(),
        )),
        _ => None,
    })
    .await;
    assert_eq!(who, vec![seen(&c_info)]);
    assert_eq!(by.map(|j| j.user.to_string()), Some(seen(&c_info)));

    // Only admins change participants.
    assert_eq!(
        server_code(
            b.client
                .groups()
                .promote_participants(&group, std::slice::from_ref(&c_pn))
                .await
        ),
        Some(401)
    );

    // A promotes C: B sees it, and C is an admin in the group's info.
    let promoted = a
        .client
        .groups()
        .promote_participants(&group, std::slice::from_ref(&c_pn))
        .await
        .expect("promote");
    assert!(promoted.iter().all(|r| r.is_ok()), "{promoted:?}");
    let (who, by) = group_update(&mut b, &group, "B: C promoted", |u| match &u.action {
        Action::Promote { participants } => Some((
            participants
                .iter()
                .map(|p| p.jid.user.to_string())
                .collect::<Vec<_>>(),
            u.participant.clone(),
        )),
        _ => None,
    })
    .await;
    assert_eq!(who, vec![seen(&c_info)]);
    assert_eq!(by.map(|j| j.user.to_string()), Some(seen(&a_info)));
    let meta = b
        .client
        .groups()
        .get_metadata(&group)
        .await
        .expect("metadata");
    let c_member = meta
        .participants
        .iter()
        .find(|p| p.jid.user == seen(&c_info))
        .expect("C listed");
    assert!(c_member.is_admin() && !c_member.is_super_admin());

    // A demotes C.
    let demoted = a
        .client
        .groups()
        .demote_participants(&group, std::slice::from_ref(&c_pn))
        .await
        .expect("demote");
    assert!(demoted.iter().all(|r| r.is_ok()), "{demoted:?}");
    group_update(&mut b, &group, "B: C demoted", |u| match &u.action {
        Action::Demote { participants } => participants
            .iter()
            .any(|p| p.jid.user == seen(&c_info))
            .then_some(()),
        _ => None,
    })
    .await;

    // A removes C: both B and C are told.
    let removed = a
        .client
        .groups()
        .remove_participants(&group, &[c_pn.clone(), nobody.clone()])
        .await
        .expect("remove");
    assert!(removed[0].is_ok(), "{removed:?}");
    assert_eq!(removed[1].error.as_deref(), Some("404"));
    for (who, client) in [("B", &mut b), ("C", &mut c)] {
        let (gone, by) = group_update(client, &group, &format!("{who}: C removed"), |u| {
            match &u.action {
                Action::Remove { participants, .. } => Some((
                    participants
                        .iter()
                        .map(|p| p.jid.user.to_string())
                        .collect::<Vec<_>>(),
                    u.participant.clone(),
                )),
                _ => None,
            }
        })
        .await;
        assert_eq!(gone, vec![seen(&c_info)], "{who}");
        assert_eq!(by.map(|j| j.user.to_string()), Some(seen(&a_info)), "{who}");
    }
    let g = mock.group(&group.to_string()).expect("group");
    assert_eq!(g.members.len(), 2);
    assert!(!g.has_member(&c_info.phone));
    assert_eq!(
        server_code(c.client.groups().get_metadata(&group).await),
        Some(403),
        "a removed member may not read the group"
    );

    a.stop().await;
    b.stop().await;
    c.stop().await;
    mock.shutdown().await;
}

/// Subject, description and settings: each change answers, B is told, and the
/// group's info shows it; a locked group refuses a member's edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_subject_description_and_settings() {
    let mock = mock().await;
    let ((a, a_info), (mut b, b_info)) = tokio::join!(fresh(&mock), fresh(&mock));
    let b_pn = jid(&b_info.user_jid());
    let group = create(&a, "Before", &[&b_pn]).await;
    let groups = a.client.groups();

    groups
        .set_subject(&group, GroupSubject::new("After").expect("subject"))
        .await
        .expect("subject");
    let (subject, owner) = group_update(&mut b, &group, "B: subject", |u| match &u.action {
        Action::Subject {
            subject,
            subject_owner,
            ..
        } => Some((subject.clone(), subject_owner.clone())),
        _ => None,
    })
    .await;
    assert_eq!(subject, "After");
    assert_eq!(
        owner.map(|j| j.user.to_string()),
        Some(a_info.phone.clone())
    );

    // Description: set, a stale update refused, replaced, deleted.
    groups
        .set_description(
            &group,
            Some(GroupDescription::new("first").expect("description")),
            PreviousDescription::Resolve,
        )
        .await
        .expect("description");
    let body = group_update(&mut b, &group, "B: description", |u| match &u.action {
        Action::Description { description, .. } => Some(description.clone()),
        _ => None,
    })
    .await;
    assert_eq!(body.as_deref(), Some("first"));
    let stale = groups
        .set_description(
            &group,
            Some(GroupDescription::new("lost").expect("description")),
            PreviousDescription::Absent,
        )
        .await;
    assert!(
        matches!(stale, Err(GroupError::DescriptionConflict)),
        "{stale:?}"
    );
    let meta = b
        .client
        .groups()
        .get_metadata(&group)
        .await
        .expect("metadata");
    assert_eq!(meta.subject, "After");
    assert_eq!(meta.description.as_deref(), Some("first"));
    let desc_id = meta.description_id.clone().expect("description id");
    groups
        .set_description(
            &group,
            Some(GroupDescription::new("second").expect("description")),
            PreviousDescription::Id(&desc_id),
        )
        .await
        .expect("second description");
    groups
        .set_description(&group, None, PreviousDescription::Resolve)
        .await
        .expect("description deleted");
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let d = group_update(&mut b, &group, "B: description changes", |u| {
            match &u.action {
                Action::Description { description, .. } => Some(description.clone()),
                _ => None,
            }
        })
        .await;
        bodies.push(d);
    }
    // (The client handles notifications concurrently: their events may come in any order.)
    bodies.sort();
    assert_eq!(bodies, vec![None, Some("second".to_string())]);

    // Settings.
    groups.set_locked(&group, true).await.expect("lock");
    group_update(&mut b, &group, "B: locked", |u| {
        matches!(u.action, Action::Locked { .. }).then_some(())
    })
    .await;
    assert_eq!(
        server_code(
            b.client
                .groups()
                .set_subject(&group, GroupSubject::new("Mine").expect("subject"))
                .await
        ),
        Some(401),
        "a member may not edit a locked group's info"
    );
    assert_eq!(
        server_code(b.client.groups().set_announce(&group, true).await),
        Some(401),
        "settings are the admins'"
    );
    groups.set_announce(&group, true).await.expect("announce");
    group_update(&mut b, &group, "B: announcement", |u| {
        matches!(u.action, Action::Announce).then_some(())
    })
    .await;
    groups
        .set_ephemeral(&group, 86_400)
        .await
        .expect("ephemeral");
    let timer = group_update(&mut b, &group, "B: ephemeral", |u| match u.action {
        Action::Ephemeral { expiration, .. } => Some(expiration),
        _ => None,
    })
    .await;
    assert_eq!(timer, 86_400);
    groups
        .set_membership_approval(&group, MembershipApprovalMode::On)
        .await
        .expect("approval");
    let on = group_update(&mut b, &group, "B: approval mode", |u| match u.action {
        Action::MembershipApprovalMode { enabled } => Some(enabled),
        _ => None,
    })
    .await;
    assert!(on);

    let meta = b
        .client
        .groups()
        .get_metadata(&group)
        .await
        .expect("metadata");
    assert!(meta.is_locked && meta.is_announcement && meta.membership_approval);
    assert_eq!(meta.ephemeral.and_then(|e| e.expiration), Some(86_400));
    assert_eq!(meta.description, None);
    assert_eq!(
        meta.subject_owner.map(|j| j.user.to_string()),
        Some(a_info.phone.clone())
    );

    groups
        .set_ephemeral(&group, 0)
        .await
        .expect("ephemeral off");
    groups
        .set_announce(&group, false)
        .await
        .expect("announce off");
    groups.set_locked(&group, false).await.expect("unlock");
    let mut offs = Vec::new();
    while offs.len() < 3 {
        let t = group_update(&mut b, &group, "B: settings off", |u| match u.action {
            Action::Ephemeral { expiration: 0, .. } => Some("not_ephemeral"),
            Action::NotAnnounce => Some("not_announcement"),
            Action::Unlocked => Some("unlocked"),
            _ => None,
        })
        .await;
        offs.push(t);
    }
    offs.sort();
    assert_eq!(offs, vec!["not_announcement", "not_ephemeral", "unlocked"]);
    let meta = a
        .client
        .groups()
        .get_metadata(&group)
        .await
        .expect("metadata");
    assert!(!meta.is_locked && !meta.is_announcement && meta.ephemeral.is_none());

    // B acks each of the 12 notifications (`<ack class="notification" type="w:gp2">`).
    let b_device = b_info.addr().pn_jid().to_string();
    let acks = || {
        mock.stanzas(&wa_mock::StanzaFilter {
            device: Some(b_device.clone()),
            tag: Some("ack".into()),
            direction: Some(wa_mock::Direction::In),
            after: None,
        })
        .into_iter()
        .filter(|r| {
            let a = |k: &str| r.node.attrs.get(k).map(|v| v.as_str().into_owned());
            a("class").as_deref() == Some("notification") && a("type").as_deref() == Some("w:gp2")
        })
        .count()
    };
    let deadline = std::time::Instant::now() + STEP;
    while acks() < 12 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(acks(), 12, "B acks every group notification");

    a.stop().await;
    b.stop().await;
    mock.shutdown().await;
}

/// Invite links: an admin reads and resets the link; C looks at the group by its
/// code, joins, leaves; a reset code is gone; with approval on, C's join waits for
/// A; the admin API makes a number refuse adds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_invite_links_join_requests_and_leave() {
    let mock = mock().await;
    let ((mut a, _a_info), (mut b, b_info), (mut c, c_info)) = three_clients(&mock).await;
    let (b_pn, c_pn) = (jid(&b_info.user_jid()), jid(&c_info.user_jid()));
    let group = create(&a, "Open door", &[&b_pn]).await;

    assert_eq!(
        server_code(b.client.groups().get_invite_link(&group, false).await),
        Some(401),
        "the link is the admins'"
    );
    let link = a
        .client
        .groups()
        .get_invite_link(&group, false)
        .await
        .expect("link");
    assert!(link.starts_with("https://chat.whatsapp.com/"), "{link}");
    assert_eq!(
        a.client
            .groups()
            .get_invite_link(&group, false)
            .await
            .expect("link"),
        link,
        "the link stays until it is reset"
    );
    let info = c
        .client
        .groups()
        .get_invite_info(&link)
        .await
        .expect("info");
    assert_eq!(info.id, group);
    assert_eq!(info.subject, "Open door");

    // C joins by the link: everyone is told C joined by invite.
    let joined = c
        .client
        .groups()
        .join_with_invite_code(&link)
        .await
        .expect("join");
    assert_eq!(joined, JoinGroupResult::Joined(group.clone()));
    for (who, client) in [("A", &mut a), ("B", &mut b)] {
        let (reason, users) =
            group_update(client, &group, &format!("{who}: C joined"), |u| {
                match &u.action {
                    Action::Add {
                        participants,
                        reason,
                    } => Some((
                        reason.clone(),
                        participants
                            .iter()
                            .map(|p| p.jid.user.to_string())
                            .collect::<Vec<_>>(),
                    )),
                    _ => None,
                }
            })
            .await;
        assert_eq!(reason.as_deref(), Some("invite"), "{who}");
        assert_eq!(users, vec![c_info.phone.clone()], "{who}");
    }

    // C leaves: a removal of C by C.
    c.client.groups().leave(&group).await.expect("leave");
    let (users, by) = group_update(&mut b, &group, "B: C left", |u| match &u.action {
        Action::Remove { participants, .. } => Some((
            participants
                .iter()
                .map(|p| p.jid.user.to_string())
                .collect::<Vec<_>>(),
            u.participant.clone(),
        )),
        _ => None,
    })
    .await;
    assert_eq!(users, vec![c_info.phone.clone()]);
    assert_eq!(by.map(|j| j.user.to_string()), Some(c_info.phone.clone()));
    assert_eq!(
        server_code(c.client.groups().leave(&group).await),
        Some(403),
        "no second leave"
    );

    // A resets the link: the old code is gone, B is told the new one.
    let new_link = a
        .client
        .groups()
        .get_invite_link(&group, true)
        .await
        .expect("reset");
    assert_ne!(new_link, link);
    let code = group_update(&mut b, &group, "B: link reset", |u| match &u.action {
        Action::Invite { code } => Some(code.clone()),
        _ => None,
    })
    .await;
    assert!(new_link.ends_with(&code), "{new_link} / {code}");
    assert_eq!(
        server_code(c.client.groups().join_with_invite_code(&link).await),
        Some(410)
    );
    assert_eq!(
        server_code(c.client.groups().get_invite_info(&link).await),
        Some(410)
    );
    assert_eq!(
        server_code(
            c.client
                .groups()
                .get_invite_info("AAAAAAAAAAAAAAAAAAAAAA")
                .await
        ),
        Some(406)
    );

    // With approval on, C's join is a request A approves.
    a.client
        .groups()
        .set_membership_approval(&group, MembershipApprovalMode::On)
        .await
        .expect("approval on");
    let pending = c
        .client
        .groups()
        .join_with_invite_code(&new_link)
        .await
        .expect("join request");
    assert_eq!(pending, JoinGroupResult::PendingApproval(group.clone()));
    let (method, requested) =
        group_update(&mut a, &group, "A: join request", |u| match &u.action {
            Action::CreatedMembershipRequests {
                request_method,
                requests,
                ..
            } => Some((
                request_method.clone(),
                requests
                    .iter()
                    .map(|p| p.jid.user.to_string())
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .await;
    assert_eq!(method, MembershipRequestMethod::InviteLink);
    assert_eq!(requested, vec![c_info.phone.clone()]);
    let requests = a
        .client
        .groups()
        .get_membership_requests(&group)
        .await
        .expect("requests");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].jid.user, c_info.phone);
    let approved = a
        .client
        .groups()
        .approve_membership_requests(&group, std::slice::from_ref(&c_pn))
        .await
        .expect("approve");
    assert!(approved.iter().all(|r| r.is_ok()), "{approved:?}");
    group_update(&mut c, &group, "C: approved", |u| match &u.action {
        Action::Add { participants, .. } => participants
            .iter()
            .any(|p| p.jid.user == c_info.phone)
            .then_some(()),
        _ => None,
    })
    .await;
    assert!(
        mock.group(&group.user)
            .expect("group")
            .has_member(&c_info.phone)
    );

    // The admin API: a number that refuses adds, then allows them.
    let d = mock.create_account().expect("account");
    let refuse = |refuse: bool| {
        let url = format!("{}/admin/refuse-group-add", mock.admin_url());
        let body = serde_json::json!({ "phone": d, "refuse": refuse }).to_string();
        tokio::task::spawn_blocking(move || {
            ureq::post(&url)
                .header("content-type", "application/json")
                .send(body)
                .map(|r| r.status().as_u16())
        })
    };
    assert_eq!(refuse(true).await.expect("join").expect("admin call"), 200);
    let d_pn = Jid::pn(d.as_str());
    let r = a
        .client
        .groups()
        .add_participants(&group, std::slice::from_ref(&d_pn))
        .await
        .expect("add");
    assert_eq!(r[0].error.as_deref(), Some("403"), "{r:?}");
    assert!(r[0].add_request.is_some());
    assert_eq!(refuse(false).await.expect("join").expect("admin call"), 200);
    let r = a
        .client
        .groups()
        .add_participants(&group, &[d_pn])
        .await
        .expect("add");
    assert!(r[0].is_ok(), "{r:?}");

    a.stop().await;
    b.stop().await;
    c.stop().await;
    mock.shutdown().await;
}
