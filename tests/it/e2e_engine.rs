//! The engine through wa-mock: real wagate sessions on a real redb file, the real
//! whatsapp-rust client, a mock WhatsApp server speaking the real protocol. Driven through the
//! engine's own API (SessionManager); the HTTP-level tests come with the API.
//!
//! Needs `--features trust-wa-mock` (the client must accept the mock's test certificate).
#![cfg(feature = "trust-wa-mock")]

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wa_mock::{AccountInfo, LoginFailure, MockConfig, MockServer, StreamError};
use wagate::engine::compose::{self, Content, Outgoing};
use wagate::engine::pacing::Settings;
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, Event, EventKind, FailReason, Notice, SessionState};
use wagate::store::Store;

const STEP: Duration = Duration::from_secs(40);

struct Gate {
    mgr: SessionManager,
    bus: Bus,
    store: Store,
}

async fn gate(mock: &MockServer, dir: &Path) -> Gate {
    let store = Store::open(&dir.join("wagate.redb"), 1 << 20).unwrap();
    let bus = Bus::new(4096);
    let cfg = EngineConfig {
        ws_url: mock.ws_url(),
        // Millisecond pacing: these tests are about the engine, not the anti-ban policy.
        pacing: Settings {
            min_delay_ms: 1,
            max_delay_ms: 10,
            typing_max_ms: 20,
            warmup: vec![],
            ..Settings::default()
        },
        ..EngineConfig::default()
    };
    let mgr = SessionManager::open(store.clone(), bus.clone(), cfg, true)
        .await
        .unwrap();
    Gate { mgr, bus, store }
}

async fn mock_with(cfg: MockConfig) -> MockServer {
    MockServer::start(cfg).await.unwrap()
}

async fn wait_state(
    mgr: &SessionManager,
    id: &str,
    what: &str,
    pred: impl Fn(&SessionState) -> bool,
) -> SessionState {
    let mut rx = mgr.watch(id).await.unwrap();
    let got = tokio::time::timeout(STEP, rx.wait_for(|s| pred(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match got {
        Ok(Ok(s)) => s,
        _ => panic!("{id}: timed out waiting for {what}; now {:?}", *rx.borrow()),
    }
}

async fn qr_code(mgr: &SessionManager, id: &str) -> String {
    match wait_state(
        mgr,
        id,
        "a QR code",
        |s| matches!(s, SessionState::Qr { code, .. } if !code.is_empty()),
    )
    .await
    {
        SessionState::Qr { code, .. } => code,
        _ => unreachable!(),
    }
}

fn connected(s: &SessionState) -> bool {
    matches!(s, SessionState::Connected { .. })
}

/// Create a session, scan its QR with the mock phone, wait until it is connected.
async fn pair(mock: &MockServer, g: &Gate, id: &str) -> AccountInfo {
    g.mgr.create(id, true).await.unwrap();
    let code = qr_code(&g.mgr, id).await;
    let account = mock.scan(&code).await.unwrap();
    wait_state(&g.mgr, id, "connected", connected).await;
    account
}

async fn next_event(
    rx: &mut broadcast::Receiver<Notice>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(Notice::Event(e))) if pred(&e) => return e,
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("bus closed: {e}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pairs_by_qr_and_logs_in_again_after_restart_without_a_qr() {
    let mock = mock_with(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let account;
    {
        let g = gate(&mock, dir.path()).await;
        let t0 = Instant::now();
        g.mgr.create("default", true).await.unwrap();
        let code = qr_code(&g.mgr, "default").await;
        eprintln!("figure: start to first QR {:?}", t0.elapsed());
        account = mock.scan(&code).await.unwrap();
        wait_state(&g.mgr, "default", "connected", connected).await;
        let info = g.mgr.get("default").await.unwrap();
        assert_eq!(info.phone.as_deref(), Some(account.user_jid().as_str()));
        assert!(info.lid.as_deref().is_some_and(|l| l.ends_with("@lid")));
        g.mgr.shutdown().await;
        g.store.close();
    }
    // A restarted daemon: the store closed and opened again, a new client on the same keys.
    let g = gate(&mock, dir.path()).await;
    let mut notices = g.bus.subscribe();
    let t0 = Instant::now();
    wait_state(&g.mgr, "default", "connected after restart", connected).await;
    eprintln!("figure: restart to connected {:?}", t0.elapsed());
    while let Ok(n) = notices.try_recv() {
        if let Notice::State { state, .. } = n {
            assert!(
                !matches!(state, SessionState::Qr { .. }),
                "no QR after a restart"
            );
        }
    }
    assert_eq!(
        g.mgr.get("default").await.unwrap().phone.as_deref(),
        Some(account.user_jid().as_str())
    );
    g.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_goes_from_a_to_b_and_comes_back_delivered_and_read() {
    let mock = mock_with(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path()).await;
    let _a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    let mut rx = g.bus.subscribe();

    let out = Outgoing {
        to: compose::parse_recipient(&b.user_jid()).unwrap(),
        content: Content::Text {
            text: "hello from a".into(),
        },
        reply_to: None,
        mentions: Vec::new(),
    };
    let queued = g.mgr.enqueue("a", "text", &out, None, None).await.unwrap();
    let id = queued.record.id.clone();

    let got = next_event(&mut rx, "B receives the text", |e| {
        e.session == "b" && matches!(&e.kind, EventKind::MessageReceived(m) if m.text.as_deref() == Some("hello from a"))
    })
    .await;
    let EventKind::MessageReceived(m) = got.kind else {
        unreachable!()
    };
    next_event(&mut rx, "A: delivered", |e| {
        e.session == "a" && matches!(&e.kind, EventKind::MessageDelivered(u) if u.id == id)
    })
    .await;
    g.mgr
        .mark_read("b", &m.chat, None, &[m.wa_id.as_str()])
        .await
        .unwrap();
    let read = next_event(&mut rx, "A: read", |e| {
        e.session == "a" && matches!(&e.kind, EventKind::MessageRead(u) if u.id == id)
    })
    .await;
    let EventKind::MessageRead(u) = read.kind else {
        unreachable!()
    };
    assert_eq!(u.to, b.user_jid());
    let rec = g.mgr.message("a", &id).await.unwrap().unwrap();
    assert_eq!(rec.status, wagate::store::queue::MessageStatus::Read);
    assert_eq!(rec.wa_id.as_deref(), Some(m.wa_id.as_str()));
    assert!(rec.sent_at.is_some() && rec.delivered_at.is_some() && rec.read_at.is_some());
    g.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_logout_fails_the_session_and_wipes_its_keys() {
    let mock = mock_with(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path()).await;
    let keep = pair(&mock, &g, "keep").await;
    let gone = pair(&mock, &g, "gone").await;
    assert!(mock.send_stream_error(&gone.addr(), StreamError::Code(401)));
    let s = wait_state(&g.mgr, "gone", "failed", SessionState::is_failed).await;
    assert!(
        matches!(
            s,
            SessionState::Failed {
                reason: FailReason::LoggedOut,
                ..
            }
        ),
        "{s:?}"
    );
    let counts = g
        .store
        .read_blocking(|t| wagate::store::wa_backend::session_row_counts(t, "gone"))
        .unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 0), "keys left: {counts:?}");
    let kept = g
        .store
        .read_blocking(|t| wagate::store::wa_backend::session_row_counts(t, "keep"))
        .unwrap();
    assert!(kept.iter().any(|(_, n)| *n > 0));
    assert!(mock.is_online(&keep.addr()));

    // Starting it again pairs afresh: a new QR.
    g.mgr.start("gone").await.unwrap();
    qr_code(&g.mgr, "gone").await;
    g.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_ban_fails_with_its_end_and_a_dropped_connection_reconnects() {
    let mock = mock_with(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path()).await;
    let account = pair(&mock, &g, "s").await;

    // Dropped: disconnected, then connected again with no user action.
    let mut rx = g.mgr.watch("s").await.unwrap();
    assert!(mock.drop_connection(&account.addr()));
    tokio::time::timeout(
        STEP,
        rx.wait_for(|s| matches!(s, SessionState::Disconnected { .. })),
    )
    .await
    .expect("disconnected")
    .unwrap();
    wait_state(&g.mgr, "s", "reconnected", connected).await;

    // Banned at the next login: failed { banned, until } about an hour ahead.
    mock.fail_next_login(
        Some(&account.phone),
        LoginFailure::TempBan {
            code: 101,
            expire_secs: 3600,
        },
    );
    assert!(mock.drop_connection(&account.addr()));
    let s = wait_state(&g.mgr, "s", "banned", SessionState::is_failed).await;
    let SessionState::Failed {
        reason: FailReason::Banned,
        until: Some(until),
        ..
    } = s
    else {
        panic!("{s:?}")
    };
    let ahead = until - wagate::events::now_ms();
    assert!(
        (3_500_000..=3_600_000).contains(&ahead),
        "ban ends in {ahead} ms"
    );
    g.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links_by_pair_code() {
    let mock = mock_with(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path()).await;
    let phone = mock.create_account().unwrap();
    g.mgr.create("pc", true).await.unwrap();
    qr_code(&g.mgr, "pc").await;
    let code = g.mgr.pair_code("pc", &phone).await.unwrap();
    assert_eq!(code.replace('-', "").len(), 8);
    let s = wait_state(&g.mgr, "pc", "pair code shown", |s| {
        matches!(
            s,
            SessionState::Qr {
                pair_code: Some(_),
                ..
            }
        )
    })
    .await;
    assert!(matches!(s, SessionState::Qr { pair_code: Some(c), .. } if c == code));
    mock.enter_pair_code(&phone, &code).await.unwrap();
    wait_state(&g.mgr, "pc", "connected", connected).await;
    let info = g.mgr.get("pc").await.unwrap();
    assert_eq!(info.phone, Some(format!("{phone}@s.whatsapp.net")));
    g.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_sessions_pair_and_stay_connected_in_one_process() {
    let mock = mock_with(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path()).await;
    let ids: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    for id in &ids {
        g.mgr.create(id, true).await.unwrap();
    }
    // All ten clients are connecting at once; the mock phone scans one code after another.
    let mut accounts = Vec::new();
    for id in &ids {
        let code = qr_code(&g.mgr, id).await;
        accounts.push(mock.scan(&code).await.unwrap());
    }
    for id in &ids {
        wait_state(&g.mgr, id, "connected", connected).await;
    }
    let phones: std::collections::HashSet<_> = accounts.iter().map(|a| a.phone.clone()).collect();
    assert_eq!(phones.len(), 10);
    let list = g.mgr.list().await.unwrap();
    assert!(list.iter().all(|s| connected(&s.state)), "{list:?}");
    g.mgr.shutdown().await;
}

/// Exhausting every QR code takes the client's own timing: one ref lives 60 s.
#[tokio::test(flavor = "multi_thread")]
async fn unscanned_qr_codes_end_in_qr_exhausted_and_start_gives_a_new_one() {
    let mock = mock_with(MockConfig {
        qr_refs: 1,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path()).await;
    g.mgr.create("q", true).await.unwrap();
    let first = qr_code(&g.mgr, "q").await;
    let mut rx = g.mgr.watch("q").await.unwrap();
    let s = tokio::time::timeout(
        Duration::from_secs(90),
        rx.wait_for(SessionState::is_failed),
    )
    .await
    .expect("exhausted within 90 s")
    .unwrap()
    .clone();
    assert!(
        matches!(
            s,
            SessionState::Failed {
                reason: FailReason::QrExhausted,
                ..
            }
        ),
        "{s:?}"
    );
    g.mgr.start("q").await.unwrap();
    let second = qr_code(&g.mgr, "q").await;
    assert_ne!(first, second);
    g.mgr.shutdown().await;
}
