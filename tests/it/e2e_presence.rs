//! Presence through wa-mock: what the real whatsapp-rust client tells the server about being
//! online under each policy, and the delivery receipts it sends for what it receives.
//!
//! - `unavailable` (the default): an idle connected session ends `unavailable` (the library
//!   announced `available` at connect); a paced send is `available` just for its span:
//!   available, composing, paused, the message, unavailable.
//! - `available`: the session stays online, sends included.
//! - `pulse`: online for `pulse_for_s` at the start of every `pulse_every_s`.
//! - `active_receipts` (default on): receipts for inbound messages go out without
//!   `type="inactive"` although the session is unavailable; off, they are `inactive`.
//!
//! Timing is asserted only as lower bounds. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use std::time::{Duration, Instant};

use wa_mock::{Direction, MockConfig, MockServer, StanzaFilter, StanzaRecord};
use wagate::engine::pacing::{Overrides, PresencePolicy};
use wagate::store::queue::MessageStatus;

use super::e2e_pacing::{STEP, connected, fast, gate, kind, pair, text_to, wait_sent, wait_state};

/// What a device sent the server: presence, chat states and messages, in order, each as
/// `available` / `unavailable` / `composing` / `paused` / `message`.
fn trail(mock: &MockServer, device: &str, after: u64) -> Vec<(u64, String)> {
    mock.stanzas(&StanzaFilter {
        device: Some(device.to_string()),
        direction: Some(Direction::In),
        after: Some(after),
        ..StanzaFilter::default()
    })
    .into_iter()
    .filter_map(|r| step(&r).map(|s| (r.at_ms, s)))
    .collect()
}

fn step(r: &StanzaRecord) -> Option<String> {
    match r.tag.as_str() {
        // `<presence type=.. name=..>`; subscriptions carry a `to` and are not ours.
        // One without a type (a new push name) is `available`.
        "presence" if !r.node.attrs.contains_key("to") => Some(
            r.node
                .attrs
                .get("type")
                .map_or_else(|| "available".into(), |t| t.as_str().into_owned()),
        ),
        "chatstate" | "message" => Some(kind(r).to_string()),
        _ => None,
    }
}

fn last_seq(mock: &MockServer) -> u64 {
    mock.stanzas(&StanzaFilter::default())
        .last()
        .map_or(0, |r| r.seq)
}

fn presences(trail: &[(u64, String)]) -> Vec<&str> {
    trail
        .iter()
        .map(|(_, s)| s.as_str())
        .filter(|s| s.ends_with("available"))
        .collect()
}

/// Wait until the device's last presence after stanza `after` is `want`.
async fn settles_on(mock: &MockServer, device: &str, after: u64, want: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let t = trail(mock, device, after);
        if presences(&t).last() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{device}: presence never settled on {want}: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_is_unavailable_and_a_paced_send_is_available_for_its_span() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path(), fast(200, 300, true)).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;

    // The library says `available` at connect; wagate puts the policy back.
    settles_on(&mock, &a.jid, 0, "unavailable").await;
    // A reconnect: the library announces `available` as it connects; the policy undoes it.
    let mark = last_seq(&mock);
    g.mgr.stop("a").await.unwrap();
    g.mgr.start("a").await.unwrap();
    wait_state(&g.mgr, "a", connected).await;
    settles_on(&mock, &a.jid, mark, "unavailable").await;
    let again = trail(&mock, &a.jid, mark);
    assert_eq!(presences(&again), ["available", "unavailable"], "{again:?}");

    let mark = last_seq(&mock);
    let mut rx = g.bus.subscribe();
    for text in ["first", "second"] {
        g.mgr
            .enqueue("a", "text", &text_to(&b, text), None, None)
            .await
            .unwrap();
    }
    wait_sent(&mut rx, 2).await;
    let deadline = Instant::now() + STEP;
    while trail(&mock, &a.jid, mark).len() < 10 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            trail(&mock, &a.jid, mark)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let around: Vec<String> = trail(&mock, &a.jid, mark)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let one = ["available", "composing", "paused", "message", "unavailable"];
    assert_eq!(
        around,
        [one, one].concat(),
        "the stanzas around two paced sends"
    );

    // Idle again: nothing more is said.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = trail(&mock, &a.jid, mark);
    assert_eq!(later.len(), 10, "{later:?}");
    g.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn available_stays_online_and_pulse_goes_online_on_its_schedule() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path(), fast(1, 5, true)).await;
    let a = pair(&mock, &g, "a").await;
    let b = pair(&mock, &g, "b").await;
    settles_on(&mock, &a.jid, 0, "unavailable").await;

    // available: online now, and still online after a send.
    let set = |o: Overrides| {
        let mgr = g.mgr.clone();
        async move { mgr.set_settings("a", o).await.unwrap() }
    };
    set(Overrides {
        presence: Some(PresencePolicy::Available),
        ..Overrides::default()
    })
    .await;
    settles_on(&mock, &a.jid, 0, "available").await;
    let mark = last_seq(&mock);
    let mut rx = g.bus.subscribe();
    g.mgr
        .enqueue("a", "text", &text_to(&b, "online"), None, None)
        .await
        .unwrap();
    wait_sent(&mut rx, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let around = trail(&mock, &a.jid, mark);
    assert!(
        !presences(&around).contains(&"unavailable"),
        "an available session never goes offline: {around:?}"
    );

    // pulse: 2 s online at the start of every 10 s.
    let mark = last_seq(&mock);
    set(Overrides {
        presence: Some(PresencePolicy::Pulse),
        pulse_every_s: Some(10),
        pulse_for_s: Some(2),
        ..Overrides::default()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let pulses = loop {
        let t = trail(&mock, &a.jid, mark);
        let ons: Vec<u64> = t
            .iter()
            .filter(|(_, s)| s == "available")
            .map(|(at, _)| *at)
            .collect();
        if ons.len() >= 2 && presences(&t).last() == Some(&"unavailable") {
            break t;
        }
        assert!(Instant::now() < deadline, "no second pulse: {t:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last: Vec<&(u64, String)> = pulses
        .iter()
        .filter(|(_, s)| s.ends_with("available"))
        .collect();
    let last = &last[last.len() - 4..];
    assert_eq!(
        last.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["available", "unavailable", "available", "unavailable"],
        "{pulses:?}"
    );
    let on_for = last[1].0.saturating_sub(last[0].0);
    let period = last[2].0.saturating_sub(last[0].0);
    eprintln!("figure: pulse online {on_for} ms, period {period} ms (configured 2000 / 10000)");
    // Lower bounds, with slack for the stamps, one local hop and a late start on a loaded
    // machine (the presence waits on the library's unified-session stanza).
    assert!(on_for + 500 >= 2_000, "online for {on_for} ms");
    assert!(period + 500 >= 10_000, "period {period} ms");
    // Not online for much longer than a pulse either (a loaded machine may be a second late).
    assert!(on_for < 2_000 + 1_500, "online for {on_for} ms");
    g.mgr.shutdown().await;
}

/// The receipt session `a` sent for the message `wa_id`, as recorded by the server.
async fn receipt_for(mock: &MockServer, device: &str, wa_id: &str) -> StanzaRecord {
    let deadline = Instant::now() + STEP;
    loop {
        let found = mock
            .stanzas(&StanzaFilter {
                device: Some(device.to_string()),
                tag: Some("receipt".into()),
                direction: Some(Direction::In),
                ..StanzaFilter::default()
            })
            .into_iter()
            .find(|r| {
                r.node
                    .attrs
                    .get("id")
                    .is_some_and(|id| id.as_str() == wa_id)
            });
        if let Some(r) = found {
            return r;
        }
        assert!(Instant::now() < deadline, "no receipt for {wa_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_are_active_while_unavailable_unless_turned_off() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let g = gate(&mock, dir.path(), fast(1, 5, false)).await;
    let a = pair(&mock, &g, "a").await;
    pair(&mock, &g, "b").await;
    settles_on(&mock, &a.jid, 0, "unavailable").await;

    let mut rx = g.bus.subscribe();
    let mut send_b = async |text: &str| {
        let id = g
            .mgr
            .enqueue("b", "text", &text_to(&a, text), None, None)
            .await
            .unwrap()
            .record
            .id;
        // wait_sent counts session "a": count b's own way.
        let deadline = Instant::now() + STEP;
        loop {
            let rec = g.mgr.message("b", &id).await.unwrap().unwrap();
            if let Some(wa_id) = rec.wa_id.filter(|_| {
                matches!(
                    rec.status,
                    MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
                )
            }) {
                return wa_id;
            }
            assert!(Instant::now() < deadline, "b's message never went");
            let _ = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        }
    };

    let first = send_b("while unavailable").await;
    let r = receipt_for(&mock, &a.jid, &first).await;
    assert_eq!(
        r.node.attrs.get("type").map(|t| t.as_str().into_owned()),
        None,
        "a delivery receipt, active: {}",
        r.xml
    );

    g.mgr
        .set_settings(
            "a",
            Overrides {
                active_receipts: Some(false),
                ..Overrides::default()
            },
        )
        .await
        .unwrap();
    let second = send_b("receipts inactive").await;
    let r = receipt_for(&mock, &a.jid, &second).await;
    assert_eq!(
        r.node.attrs.get("type").map(|t| t.as_str().into_owned()),
        Some("inactive".into()),
        "{}",
        r.xml
    );

    // Off, whatsapp-rust's own rule holds: active while the device is online.
    g.mgr
        .set_settings(
            "a",
            Overrides {
                active_receipts: Some(false),
                presence: Some(PresencePolicy::Available),
                ..Overrides::default()
            },
        )
        .await
        .unwrap();
    settles_on(&mock, &a.jid, 0, "available").await;
    let third = send_b("while online").await;
    let r = receipt_for(&mock, &a.jid, &third).await;
    assert_eq!(
        r.node.attrs.get("type").map(|t| t.as_str().into_owned()),
        None,
        "online: an active receipt: {}",
        r.xml
    );
    g.mgr.shutdown().await;
}
