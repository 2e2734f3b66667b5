//! Pacing through wa-mock: the stanzas the real whatsapp-rust client sends show the typing
//! simulation in order with gaps at least as long as configured; a queue of 100 messages
//! survives a restart with all of them queued and another in the middle (with one message
//! interrupted mid-send) and every message arrives exactly once, in order; a message
//! cancelled while the worker types it is not sent.
//!
//! Timing is asserted only as lower bounds; nothing here fails for being slow.
//!
//! Needs `--features trust-wa-mock` (the client must accept the mock's test certificate).
#![cfg(feature = "trust-wa-mock")]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wa_mock::{
    AccountInfo, Direction, LoginFailure, MockConfig, MockServer, StanzaFilter, StanzaRecord,
};
use wagate::engine::compose::{self, Content, Outgoing};
use wagate::engine::pacing::{DAY_MS, DuplicateAction, Limit, Overrides, Settings};
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, EventKind, Notice, SessionState};
use wagate::store::Store;
use wagate::store::queue::{self, MessageStatus};

pub(super) const STEP: Duration = Duration::from_secs(40);

/// Fast settings: millisecond delays, no limit a test reaches, no warm-up.
pub(super) fn fast(min_delay_ms: u64, max_delay_ms: u64, typing: bool) -> Settings {
    Settings {
        min_delay_ms,
        max_delay_ms,
        typing,
        typing_cps: 50,
        typing_max_ms: 5_000,
        per_minute: 10_000,
        per_hour: 10_000,
        per_day: 10_000,
        warmup: vec![],
        duplicate_recipients: 5,
        duplicate_window_s: 3_600,
        duplicate_action: DuplicateAction::Hold,
        auto_read: false,
        ..Settings::default()
    }
}

pub(super) struct Gate {
    pub mgr: SessionManager,
    pub bus: Bus,
    pub store: Store,
}

pub(super) async fn gate(mock: &MockServer, dir: &Path, pacing: Settings) -> Gate {
    let store = Store::open(&dir.join("wagate.redb"), 1 << 20).unwrap();
    let bus = Bus::new(8192);
    let cfg = EngineConfig {
        ws_url: mock.ws_url(),
        trust_ca_pem: mock.media_cert_pem().map(String::into_bytes),
        pacing,
        ..EngineConfig::default()
    };
    let mgr = SessionManager::open(store.clone(), bus.clone(), cfg, true)
        .await
        .unwrap();
    Gate { mgr, bus, store }
}

pub(super) async fn wait_state(
    mgr: &SessionManager,
    id: &str,
    pred: impl Fn(&SessionState) -> bool,
) {
    let mut rx = mgr.watch(id).await.unwrap();
    if tokio::time::timeout(STEP, rx.wait_for(|s| pred(s)))
        .await
        .is_err()
    {
        panic!("{id}: timed out; now {:?}", *rx.borrow());
    }
}

pub(super) fn connected(s: &SessionState) -> bool {
    matches!(s, SessionState::Connected { .. })
}

pub(super) async fn pair(mock: &MockServer, g: &Gate, id: &str) -> AccountInfo {
    g.mgr.create(id, true).await.unwrap();
    wait_state(
        &g.mgr,
        id,
        |s| matches!(s, SessionState::Qr { code, .. } if !code.is_empty()),
    )
    .await;
    let code = match g.mgr.get(id).await.unwrap().state {
        SessionState::Qr { code, .. } => code,
        other => panic!("{id}: no QR: {other:?}"),
    };
    let account = mock.scan(&code).await.unwrap();
    wait_state(&g.mgr, id, connected).await;
    account
}

pub(super) fn text_to(to: &AccountInfo, text: &str) -> Outgoing {
    Outgoing {
        to: compose::parse_recipient(&to.user_jid()).unwrap(),
        content: Content::Text { text: text.into() },
        reply_to: None,
        mentions: Vec::new(),
    }
}

/// What a device sent the server: chat states and messages, in order.
fn sent_by(mock: &MockServer, device: &str) -> Vec<StanzaRecord> {
    mock.stanzas(&StanzaFilter {
        device: Some(device.to_string()),
        direction: Some(Direction::In),
        ..StanzaFilter::default()
    })
    .into_iter()
    .filter(|r| r.tag == "chatstate" || r.tag == "message")
    .collect()
}

pub(super) fn stanza_id(r: &StanzaRecord) -> Option<String> {
    r.node.attrs.get("id").map(|v| v.as_str().into_owned())
}

/// One step of the typing simulation as recorded.
pub(super) fn kind(r: &StanzaRecord) -> &'static str {
    if r.tag == "message" {
        "message"
    } else if r.xml.contains("<composing") && r.xml.contains("audio") {
        "recording"
    } else if r.xml.contains("<composing") {
        "composing"
    } else if r.xml.contains("<paused") {
        "paused"
    } else {
        "other"
    }
}

/// Wait until session "a" has recorded `n` messages sent.
pub(super) async fn wait_sent(rx: &mut broadcast::Receiver<Notice>, n: usize) {
    let deadline = Instant::now() + STEP;
    let mut sent = 0;
    while sent < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(Notice::Event(e))) if e.session == "a" => {
                if matches!(e.kind, EventKind::MessageSent(_)) {
                    sent += 1;
                }
            }
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("waiting for the sends: {other:?}"),
        }
    }
}

/// How late the server may record the first of two stanzas relative to the second: both
/// cross one local WebSocket, and the mock stamps them in whole milliseconds on arrival.
const TRANSIT_SLACK_MS: u64 = 20;

#[tokio::test(flavor = "multi_thread")]
async fn text_is_preceded_by_composing_then_paused_with_the_configured_gaps() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pacing = fast(300, 450, true);
    let g = gate(&mock, dir.path(), pacing.clone()).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    let mut rx = g.bus.subscribe();

    // 40 characters at 50 a second: 800 ms of typing. 10 characters: 200 ms.
    let texts = ["a text of exactly forty characters, yes!", "ten chars!"];
    assert_eq!(texts[0].chars().count(), 40);
    let mut ids = Vec::new();
    for t in texts {
        let done = g
            .mgr
            .enqueue("a", "text", &text_to(&b, t), None, None)
            .await
            .unwrap();
        ids.push(done.record.id);
    }
    wait_sent(&mut rx, ids.len()).await;

    let stanzas = sent_by(&mock, &a.jid);
    let kinds: Vec<&str> = stanzas.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "composing",
            "paused",
            "message",
            "composing",
            "paused",
            "message"
        ],
        "{:#?}",
        stanzas.iter().map(|r| &r.xml).collect::<Vec<_>>()
    );
    let at: Vec<u64> = stanzas.iter().map(|r| r.at_ms).collect();
    let gap = |i: usize| at[i + 1].saturating_sub(at[i]);
    let typing = |chars: u64| chars * 1000 / u64::from(pacing.typing_cps);
    eprintln!(
        "figure: gaps composing->paused {} ms (typing {} ms), {} ms (typing {} ms); message->composing {} ms (delay >= {} ms)",
        gap(0),
        typing(40),
        gap(3),
        typing(10),
        gap(2),
        pacing.min_delay_ms
    );
    assert!(
        gap(0) + TRANSIT_SLACK_MS >= typing(40),
        "typing 1: {} ms",
        gap(0)
    );
    assert!(
        gap(3) + TRANSIT_SLACK_MS >= typing(10),
        "typing 2: {} ms",
        gap(3)
    );
    // Longer text, longer typing (800 vs 200 ms configured; lower bounds only).
    assert!(gap(0) > gap(3) || gap(0) >= typing(40));
    // The random delay sits between one message and the next one's typing.
    assert!(
        gap(2) + TRANSIT_SLACK_MS >= pacing.min_delay_ms,
        "delay: {} ms",
        gap(2)
    );
    // The chat states go to the recipient, the message is the one the queue recorded.
    assert!(
        stanzas[0]
            .node
            .attrs
            .get("to")
            .is_some_and(|t| t.as_str().starts_with(&b.phone))
    );
    let first = g.mgr.message("a", &ids[0]).await.unwrap().unwrap();
    assert_eq!(stanza_id(&stanzas[2]), first.wa_id);
    g.mgr.shutdown().await;
}

/// DELETE while the worker shows "typing…" for the message: the cancel is answered
/// `cancelled` and the message never goes; the next one does.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_cancelled_while_it_is_being_typed_is_not_sent() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 60 characters at 10 a second: six seconds of typing, time enough to cancel in.
    let pacing = Settings {
        typing_cps: 10,
        typing_max_ms: 60_000,
        ..fast(1, 5, true)
    };
    let g = gate(&mock, dir.path(), pacing).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    let mut rx = g.bus.subscribe();

    let long = "x".repeat(60);
    let first = g
        .mgr
        .enqueue("a", "text", &text_to(&b, &long), None, None)
        .await
        .unwrap()
        .record
        .id;
    let deadline = Instant::now() + STEP;
    while !sent_by(&mock, &a.jid)
        .iter()
        .any(|r| kind(r) == "composing")
    {
        assert!(Instant::now() < deadline, "the worker never started typing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcome = g.mgr.cancel("a", &first).await.unwrap();
    assert!(
        matches!(outcome, queue::Cancel::Cancelled(_)),
        "{outcome:?}"
    );
    let second = g
        .mgr
        .enqueue("a", "text", &text_to(&b, "after"), None, None)
        .await
        .unwrap()
        .record
        .id;

    // B receives the second message and nothing else.
    let deadline = Instant::now() + STEP;
    let mut texts = Vec::new();
    while texts.last().is_none_or(|t| t != "after") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(Notice::Event(e))) => {
                if let EventKind::MessageReceived(m) = e.kind
                    && e.session == "b"
                {
                    texts.push(m.text.unwrap_or_default());
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("B received {texts:?}: {other:?}"),
        }
    }
    assert_eq!(texts, ["after"]);
    let rec = g.mgr.message("a", &first).await.unwrap().unwrap();
    assert_eq!(rec.status, MessageStatus::Cancelled);
    assert_eq!(rec.sent_at, None);
    let messages: Vec<String> = sent_by(&mock, &a.jid)
        .iter()
        .filter(|r| r.tag == "message")
        .filter_map(stanza_id)
        .collect();
    let sent = g.mgr.message("a", &second).await.unwrap().unwrap();
    assert_eq!(messages, [sent.wa_id.unwrap()]);
    g.mgr.shutdown().await;
}

async fn count_sent(store: &Store, ids: &[String]) -> usize {
    let ids = ids.to_vec();
    store
        .read(move |t| {
            let mut n = 0;
            for id in &ids {
                if queue::get(t, "a", id)?.is_some_and(|r| r.sent_at.is_some()) {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_queued_messages_survive_a_restart_and_arrive_once_in_order() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pacing = fast(1, 5, false);
    let (a, b, ids) = {
        let g = gate(&mock, dir.path(), pacing.clone()).await;
        let a = pair(&mock, &g, "a").await;
        let b = pair(&mock, &g, "b").await;
        // Queue all 100 while the sender is stopped, then let it run.
        g.mgr.stop("a").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..100 {
            let out = text_to(&b, &format!("m{i:03}"));
            let done = g.mgr.enqueue("a", "text", &out, None, None).await.unwrap();
            ids.push(done.record.id);
        }
        let q = g.mgr.queue("a").await.unwrap();
        assert_eq!(q.depth, 100);
        assert_eq!(q.paused.map(|p| p.reason), Some("stopped"));
        // The first restart: all 100 queued, none sent.
        g.mgr.shutdown().await;
        g.store.close();
        drop(g);
        let g = gate(&mock, dir.path(), pacing.clone()).await;
        let q = g.mgr.queue("a").await.unwrap();
        assert_eq!(q.depth, 100, "the queue after a restart");
        assert_eq!(count_sent(&g.store, &ids).await, 0);
        g.mgr.start("a").await.unwrap();
        wait_state(&g.mgr, "a", connected).await;
        // Stop the daemon somewhere in the middle.
        let deadline = Instant::now() + STEP;
        while count_sent(&g.store, &ids).await < 20 {
            assert!(Instant::now() < deadline, "nothing was sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        g.mgr.shutdown().await;
        g.store.close();
        (a, b, ids)
    };

    // A crash between recording WhatsApp's id and sending: the head of the queue is left
    // `sending` with an id that never went out.
    let store = Store::open(&dir.path().join("wagate.redb"), 1 << 20).unwrap();
    let before = count_sent(&store, &ids).await;
    assert!(before < 100, "all were sent before the restart");
    let head = store
        .read(|t| queue::next(t, "a"))
        .await
        .unwrap()
        .expect("messages left");
    let crash_id = "3EB0C0FFEE00000000000042".to_string();
    if head.status == MessageStatus::Queued {
        let (h, w) = (head.id.clone(), crash_id.clone());
        store
            .write(move |t| queue::mark_sending(t, "a", &h, &w))
            .await
            .unwrap();
    }
    store.close();
    drop(store);

    // Restart: the same file, the sessions reconnect and the queue resumes.
    let g = gate(&mock, dir.path(), pacing).await;
    let mut rx = g.bus.subscribe();
    wait_state(&g.mgr, "a", connected).await;
    wait_state(&g.mgr, "b", connected).await;
    let t0 = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_sent(&g.store, &ids).await < 100 {
        assert!(
            Instant::now() < deadline,
            "{} of 100 sent",
            count_sent(&g.store, &ids).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "figure: {} messages after the restart sent in {:?}",
        100 - before,
        t0.elapsed()
    );
    assert_eq!(g.mgr.queue("a").await.unwrap().depth, 0);

    // Every message kept one WhatsApp id; the server saw each id exactly once, in queue order.
    let mut wa_ids = Vec::new();
    for id in &ids {
        let rec = g.mgr.message("a", id).await.unwrap().unwrap();
        assert!(rec.status >= MessageStatus::Sent, "{id}: {:?}", rec.status);
        wa_ids.push(rec.wa_id.expect("a sent message has its WhatsApp id"));
    }
    if head.status == MessageStatus::Queued {
        let rec = g.mgr.message("a", &head.id).await.unwrap().unwrap();
        assert_eq!(rec.wa_id.as_deref(), Some(crash_id.as_str()));
    }
    let messages: Vec<String> = sent_by(&mock, &a.jid)
        .iter()
        .filter(|r| r.tag == "message")
        .filter_map(stanza_id)
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        *seen.entry(m.as_str()).or_default() += 1;
    }
    // Each id went out; at most one twice: a send the shutdown interrupted after it left is
    // sent again after the restart with the same id, which the recipient takes as the same
    // message (transport at least once, the message exactly once).
    for w in &wa_ids {
        assert!(seen.contains_key(w.as_str()), "{w} never went out");
    }
    let again: Vec<_> = wa_ids
        .iter()
        .filter(|w| seen.get(w.as_str()) != Some(&1))
        .collect();
    assert!(again.len() <= 1, "sent more than once: {again:?}");
    let mut first_seen: Vec<&String> = Vec::new();
    for m in messages.iter().filter(|m| wa_ids.contains(m)) {
        if !first_seen.contains(&m) {
            first_seen.push(m);
        }
    }
    assert_eq!(first_seen, wa_ids.iter().collect::<Vec<_>>());

    // The recipient's side, by WhatsApp id as a phone shows them: after the restart B gets
    // the rest, each once, in order, ending with m099.
    let mut got: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + STEP;
    while got.last().is_none_or(|(_, t)| t != "m099") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(Notice::Event(e))) => {
                if let EventKind::MessageReceived(m) = e.kind
                    && e.session == "b"
                    && !got.iter().any(|(id, _)| *id == m.wa_id)
                {
                    got.push((m.wa_id, m.text.unwrap_or_default()));
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("B received {} texts: {other:?}", got.len()),
        }
    }
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    let start: usize = texts[0][1..].parse().unwrap();
    assert!(
        start <= before,
        "B missed m{before:03}: first was {}",
        texts[0]
    );
    let want: Vec<String> = (start..100).map(|i| format!("m{i:03}")).collect();
    assert_eq!(texts, want);
    let _ = b;
    g.mgr.shutdown().await;
}

/// Poll the queue answer until `pred` holds.
async fn queue_until(
    mgr: &SessionManager,
    what: &str,
    pred: impl Fn(&wagate::engine::manager::QueueInfo) -> bool,
) -> wagate::engine::manager::QueueInfo {
    let deadline = Instant::now() + STEP;
    loop {
        let q = mgr.queue("a").await.unwrap();
        if pred(&q) {
            return q;
        }
        assert!(Instant::now() < deadline, "{what}: the queue is {q:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_up_and_rate_limits_hold_messages_and_a_ban_stops_the_queue() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Day 1 after pairing allows two sends.
    let pacing = Settings {
        warmup: vec![2, 50],
        ..fast(1, 5, false)
    };
    let g = gate(&mock, dir.path(), pacing).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    let s = g.mgr.settings("a").await.unwrap();
    let paired_at = s.paired_at.expect("pairing recorded");
    assert_eq!((s.warm_up.day, s.warm_up.daily_limit), (1, 2));
    assert!(s.warm_up.active);

    let mut ids = Vec::new();
    for i in 0..3 {
        let out = text_to(&b, &format!("w{i}"));
        ids.push(
            g.mgr
                .enqueue("a", "text", &out, None, None)
                .await
                .unwrap()
                .record
                .id,
        );
    }
    // Two go; the third waits for day 2: accepted and queued, never refused.
    let q = queue_until(&g.mgr, "warm-up hold", |q| {
        q.sent.last_day == 2 && q.paused.as_ref().is_some_and(|p| p.reason == "warm_up")
    })
    .await;
    assert_eq!(q.depth, 1);
    assert_eq!(q.paused.as_ref().unwrap().limit, Some(Limit::WarmUp));
    assert!(q.next_send_at.unwrap() >= paired_at + DAY_MS);
    let third = g.mgr.message("a", &ids[2]).await.unwrap().unwrap();
    assert_eq!(third.status, MessageStatus::Queued);

    // New settings: no warm-up, two a minute. The worker plans again: now the minute holds
    // it until a minute after the first send.
    let first = g.mgr.message("a", &ids[0]).await.unwrap().unwrap();
    g.mgr
        .set_settings(
            "a",
            Overrides {
                warmup: Some(vec![]),
                per_minute: Some(2),
                ..Overrides::default()
            },
        )
        .await
        .unwrap();
    let q = queue_until(&g.mgr, "rate limit", |q| {
        q.paused.as_ref().is_some_and(|p| p.reason == "rate_limit")
    })
    .await;
    assert_eq!(q.paused.as_ref().unwrap().limit, Some(Limit::PerMinute));
    assert!(q.next_send_at.unwrap() >= first.sent_at.unwrap() + 60_000);

    // Banned: the worker stops taking; the message stays and the queue says why.
    mock.fail_next_login(
        Some(&a.phone),
        LoginFailure::TempBan {
            code: 101,
            expire_secs: 3600,
        },
    );
    assert!(mock.drop_connection(&a.addr()));
    wait_state(&g.mgr, "a", SessionState::is_failed).await;
    let q = g.mgr.queue("a").await.unwrap();
    let paused = q.paused.expect("paused");
    assert_eq!(paused.reason, "banned");
    assert!(paused.until.is_some());
    assert_eq!((q.depth, q.next_send_at), (1, None));
    assert_eq!(
        g.mgr.message("a", &ids[2]).await.unwrap().unwrap().status,
        MessageStatus::Queued
    );
    g.mgr.shutdown().await;
}

/// The user removes the device in WhatsApp > Linked devices (the server answers the next
/// login 401): the worker stops taking, the queued message stays and the queue says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_logged_out_session_keeps_its_queue_and_reports_it() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A ten-minute delay: the message is still waiting when the session is logged out.
    let g = gate(&mock, dir.path(), fast(600_000, 600_001, false)).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    let id = g
        .mgr
        .enqueue("a", "text", &text_to(&b, "later"), None, None)
        .await
        .unwrap()
        .record
        .id;
    queue_until(&g.mgr, "planned", |q| q.next_send_at.is_some()).await;

    mock.fail_next_login(Some(&a.phone), LoginFailure::LoggedOut);
    assert!(mock.drop_connection(&a.addr()));
    wait_state(&g.mgr, "a", SessionState::is_failed).await;
    let q = g.mgr.queue("a").await.unwrap();
    let paused = q.paused.expect("paused");
    assert_eq!(paused.reason, "logged_out");
    assert_eq!((q.depth, q.next_send_at), (1, None));
    let rec = g.mgr.message("a", &id).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.wa_id), (MessageStatus::Queued, None));
    assert!(
        sent_by(&mock, &a.jid).iter().all(|r| r.tag != "message"),
        "nothing went"
    );
    g.mgr.shutdown().await;
}

/// A voice note is preceded by "recording audio…" for its length (capped), then paused,
/// then the message; an audio file that is not a voice note shows nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_voice_note_is_preceded_by_recording_for_its_length() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pacing = fast(1, 5, true);
    let g = gate(&mock, dir.path(), pacing).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    let mut rx = g.bus.subscribe();
    let audio = |voice: bool| Outgoing {
        to: compose::parse_recipient(&b.user_jid()).unwrap(),
        content: Content::Audio {
            media: compose::MediaSource::Inline(b"OggS fake opus frames".to_vec()),
            mimetype: Some("audio/ogg; codecs=opus".into()),
            voice,
            seconds: Some(1),
        },
        reply_to: None,
        mentions: Vec::new(),
    };
    for voice in [true, false] {
        g.mgr
            .enqueue("a", "audio", &audio(voice), None, None)
            .await
            .unwrap();
    }
    wait_sent(&mut rx, 2).await;
    let stanzas = sent_by(&mock, &a.jid);
    let kinds: Vec<&str> = stanzas.iter().map(kind).collect();
    assert_eq!(
        kinds,
        ["recording", "paused", "message", "message"],
        "{:#?}",
        stanzas.iter().map(|r| &r.xml).collect::<Vec<_>>()
    );
    // One second of recording (lower bound only).
    let gap = stanzas[1].at_ms.saturating_sub(stanzas[0].at_ms);
    assert!(gap + TRANSIT_SLACK_MS >= 1_000, "recording: {gap} ms");
    g.mgr.shutdown().await;
}
