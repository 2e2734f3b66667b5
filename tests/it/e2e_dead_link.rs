//! A link that dies without a word, end to end through wa-mock: the server (or one
//! connection) is frozen, as a Wi-Fi drop, a router reboot or a NAT timeout leaves it: the
//! socket stays open and nothing answers. The session must say `disconnected` everywhere a
//! user looks (API, SSE, a signed webhook, `/metrics`, the screen) within 60 s, keep what is
//! accepted meanwhile, and be `connected` again with every text delivered once when the link
//! is back. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::peer::{Peer, Rig, create_and_pair, peer};
use crate::common::receiver::{Hit, verify_standard};
use crate::common::{Sse, get, post_json};
use embedded_graphics::pixelcolor::IntoStorage as _;
use embedded_graphics::prelude::Size;
use serde_json::json;
use wa_mock::DeviceAddr;
use wagate::config::{Config, DisplayBackend};
use wagate::display::{self, DisplayHandle, DisplayState, Frame, Hooks, Screen, SessionView};
use wagate::events::{DisconnectReason, SessionState};
use whatsapp_rust::types::events::Event;

/// The promise: a dead link shows within this.
const NOTICED_WITHIN: Duration = Duration::from_secs(60);
/// Reconnecting after a thaw waits out the client's backoff (Fibonacci, up to 13 s after a
/// minute's outage) and one connect timeout (20 s).
const BACK_WITHIN: Duration = Duration::from_secs(90);
/// How long a test reads its event stream.
const SSE_FOR: Duration = Duration::from_secs(600);

/// wagate's, whatsapp-rust's and wa-mock's logs, shown when a test fails.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_test_writer()
        .try_init();
}

/// The screen the daemon runs, on the test server's bus, frames kept in memory and served at
/// `GET /api/display.png`.
fn screen(rig: &Rig) -> DisplayHandle {
    let mut cfg = Config::default();
    cfg.display.backend = DisplayBackend::None;
    let mgr = rig.server.state.manager().clone();
    let hooks = Hooks {
        sessions: Box::new(move || {
            let m = mgr.clone();
            Box::pin(async move {
                let all = m.list().await.unwrap_or_default();
                all.iter().map(Into::into).collect()
            })
        }),
        ..Hooks::none()
    };
    let bus = rig.server.state.bus().clone();
    let handle = rig
        .server
        .block_on(async move { display::spawn(&cfg, &bus, hooks) })
        .unwrap();
    rig.server.state.set_display(handle.last_frame());
    handle
}

/// Where and in which colours the status screen draws one session's state: the rows where
/// the library's own drawings of a connected and a disconnected session differ (the dot and
/// the label), and the colour that dominates those differences in each.
struct Label {
    rows: std::ops::Range<u32>,
    up: u16,
    down: u16,
}

fn label() -> Label {
    let draw = |state: SessionState| {
        let st = DisplayState {
            sessions: vec![SessionView::new("a", state)],
            ..DisplayState::default()
        };
        display::render(Screen::Status, &st, Size::new(240, 240))
    };
    let up = draw(SessionState::Connected { since: 0 });
    let down = draw(SessionState::Disconnected {
        since: 0,
        attempts: 1,
        reason: DisconnectReason::NoAnswer,
        message: None,
    });
    let (w, h) = (up.width(), up.height());
    let differs = |y: u32| (0..w).any(|x| up.pixel(x, y) != down.pixel(x, y));
    let first = (0..h)
        .find(|&y| differs(y))
        .expect("the states look different");
    let last = (0..h).rev().find(|&y| differs(y)).unwrap();
    let dominant = |f: &Frame, other: &Frame| {
        let mut n: BTreeMap<u16, u32> = BTreeMap::new();
        for y in first..=last {
            for x in 0..w {
                if f.pixel(x, y) != other.pixel(x, y) {
                    *n.entry(f.pixel(x, y).unwrap().into_storage()).or_default() += 1;
                }
            }
        }
        n.into_iter().max_by_key(|(_, c)| *c).unwrap().0
    };
    Label {
        rows: first..last + 1,
        up: dominant(&up, &down),
        down: dominant(&down, &up),
    }
}

/// The screen as a user sees it now: the session's row in the connected colour and not the
/// disconnected one (`online`), or the other way round.
fn screen_says(rig: &Rig, online: bool) -> bool {
    let r = get(&rig.server.url("/api/display.png"), Some(&rig.key));
    if r.status != 200 {
        return false;
    }
    let frame = display::png::decode(&r.body).unwrap();
    let l = label();
    let count = |c: u16| {
        l.rows
            .clone()
            .flat_map(|y| (0..frame.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.pixel(x, y).map(|p| p.into_storage()) == Some(c))
            .count()
    };
    let (up, down) = (count(l.up), count(l.down));
    if online {
        up > 0 && down == 0
    } else {
        down > 0 && up == 0
    }
}

fn state(rig: &Rig, sid: &str) -> serde_json::Value {
    get(
        &rig.server.url(&format!("/api/sessions/{sid}")),
        Some(&rig.key),
    )
    .json()
}

fn session_up(rig: &Rig, sid: &str) -> f64 {
    let text = String::from_utf8(get(&rig.server.url("/metrics"), Some(&rig.key)).body).unwrap();
    common::metric(&text, &format!("wagate_session_up{{session=\"{sid}\"}}"))
}

/// Poll until `f` holds; how long it took.
fn within(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    t0.elapsed()
}

/// The session events the receiver got for `sid`, in order, each signature checked.
fn session_hooks(rig: &Rig, sid: &str) -> Vec<(String, serde_json::Value)> {
    rig.rx
        .hits()
        .iter()
        .filter(|h: &&Hit| h.header("x-wagate-event").starts_with("session."))
        .map(|h| {
            verify_standard(&rig.secret, h).unwrap();
            h.json()
        })
        .filter(|v| v["session"] == sid)
        .map(|v| (v["type"].as_str().unwrap_or_default().to_string(), v))
        .collect()
}

fn send_texts(rig: &Rig, sid: &str, to: &str, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = post_json(
                &rig.server
                    .url(&format!("/api/sessions/{sid}/messages/text")),
                Some(&rig.key),
                json!({"to": to, "text": format!("{tag} {i}")}),
            );
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The texts the peer decrypted from `from` (a phone number), counted, until each of
/// `want` arrived; then a few seconds more, so a copy that comes late is counted too.
fn texts_at(rig: &Rig, peer: &mut Peer, from: &str, want: &[String]) -> BTreeMap<String, u32> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let take = |e: &Event, seen: &mut BTreeMap<String, u32>| {
        if let Event::Messages(batch) = e {
            for m in batch.messages.iter() {
                if m.info.source.sender.user == from
                    && let Some(t) = m.message.conversation.as_deref()
                {
                    *seen.entry(t.to_string()).or_default() += 1;
                }
            }
        }
    };
    rig.mock_rt.block_on(async {
        let deadline = tokio::time::Instant::now() + BACK_WITHIN;
        while !want.iter().all(|w| seen.contains_key(w)) {
            match tokio::time::timeout_at(deadline, peer.events.recv()).await {
                Ok(Some(e)) => take(&e, &mut seen),
                _ => panic!("texts missing at the recipient: {want:?}, got {seen:?}"),
            }
        }
        let late = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(e)) = tokio::time::timeout_at(late, peer.events.recv()).await {
            take(&e, &mut seen);
        }
    });
    seen
}

/// The session has written to the customer before, as a shop's box has to its customers:
/// it knows their devices. (A first message to a number, started just as the link dies, is
/// another matter: whatsapp-rust's device lookup fails on the dead link and it addresses the
/// bare number, which reaches the recipient's phone only; wa-mock's phones keep nothing.)
fn know_each_other(rig: &Rig, sid: &str, phone: &str, customer: &mut Peer) {
    let hello = format!("hello from {sid}");
    send_texts(rig, sid, &customer.jid, 1, &hello);
    texts_at(rig, customer, phone, &[format!("{hello} 0")]);
}

fn all_sent(rig: &Rig, sid: &str, ids: &[String]) -> bool {
    ids.iter().all(|id| {
        let r = get(
            &rig.server
                .url(&format!("/api/sessions/{sid}/messages/{id}")),
            Some(&rig.key),
        );
        ["sent", "delivered", "read"].contains(&r.json()["status"].as_str().unwrap_or(""))
    })
}

#[test]
fn a_frozen_server_shows_disconnected_and_what_waited_goes_once_it_is_back() {
    logs();
    let rig = Rig::start();
    let _screen = screen(&rig);
    let a = create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, Some(&rig.key), "a");
    let mut customer = rig.mock_rt.block_on(peer(&rig.mock));
    know_each_other(&rig, "a", &a.phone, &mut customer);
    within("the screen shows a online", NOTICED_WITHIN, || {
        screen_says(&rig, true)
    });
    let mut sse = Sse::open_for(&rig.server.url("/api/events"), &rig.key, SSE_FOR);

    rig.mock.freeze_server();
    let frozen_at = Instant::now();
    let noticed = within("a disconnected in the API", NOTICED_WITHIN, || {
        state(&rig, "a")["state"] == "disconnected"
    });
    eprintln!("freeze -> disconnected: {:.1} s", noticed.as_secs_f64());
    let s = state(&rig, "a");
    assert_eq!(s["reason"], "no_answer", "{s}");
    assert!(s["since"].as_i64().is_some(), "{s}");
    assert!(s["attempts"].as_u64().is_some(), "{s}");
    // The live stream said so, with the same reason.
    let ev = sse.until("a disconnected on SSE", |e| {
        e.event == "session.disconnected" && e.data["session"] == "a"
    });
    assert_eq!(ev.data["data"]["reason"], "no_answer", "{:?}", ev.data);
    // A signed webhook said so.
    rig.rx
        .wait_for("session.disconnected", NOTICED_WITHIN, |_| {
            session_hooks(&rig, "a")
                .iter()
                .any(|(t, _)| t == "session.disconnected")
        });
    let hooks = session_hooks(&rig, "a");
    let (_, disc) = hooks
        .iter()
        .find(|(t, _)| t == "session.disconnected")
        .unwrap();
    assert_eq!(disc["data"]["reason"], "no_answer", "{disc}");
    assert!(disc["data"]["attempts"].as_u64().is_some(), "{disc}");
    assert_eq!(session_up(&rig, "a"), 0.0);
    within(
        "the screen shows a offline",
        Duration::from_secs(10),
        || screen_says(&rig, false),
    );
    assert!(
        frozen_at.elapsed() < NOTICED_WITHIN,
        "every sign within {NOTICED_WITHIN:?}"
    );

    // Ten texts accepted while the link is dead: queued, none lost.
    let ids = send_texts(&rig, "a", &customer.jid, 10, "while frozen");
    for id in &ids {
        let r = get(
            &rig.server.url(&format!("/api/sessions/a/messages/{id}")),
            Some(&rig.key),
        );
        assert_eq!(r.json()["status"], "queued", "{}", r.text());
    }

    rig.mock.thaw();
    let back = within("a connected again", BACK_WITHIN, || {
        state(&rig, "a")["state"] == "connected"
    });
    eprintln!("thaw -> connected: {:.1} s", back.as_secs_f64());
    sse.until("a connected on SSE", |e| {
        e.event == "session.connected" && e.data["session"] == "a"
    });
    rig.rx
        .wait_for("session.connected after it", NOTICED_WITHIN, |_| {
            let h = session_hooks(&rig, "a");
            let d = h.iter().position(|(t, _)| t == "session.disconnected");
            d.is_some_and(|d| h[d..].iter().any(|(t, _)| t == "session.connected"))
        });
    assert_eq!(session_up(&rig, "a"), 1.0);
    within(
        "the screen shows a online again",
        Duration::from_secs(10),
        || screen_says(&rig, true),
    );

    let want: Vec<String> = (0..10).map(|i| format!("while frozen {i}")).collect();
    let seen = texts_at(&rig, &mut customer, &a.phone, &want);
    within("all ten recorded as sent", BACK_WITHIN, || {
        all_sent(&rig, "a", &ids)
    });
    for w in &want {
        assert_eq!(seen.get(w), Some(&1), "{w} arrived once: {seen:?}");
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
}

#[test]
fn one_frozen_connection_leaves_the_other_sessions_connected() {
    logs();
    let rig = Rig::start();
    let a = create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, Some(&rig.key), "a");
    let _b = create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, Some(&rig.key), "b");
    let mut customer = rig.mock_rt.block_on(peer(&rig.mock));
    know_each_other(&rig, "a", &a.phone, &mut customer);
    let mut sse = Sse::open_for(&rig.server.url("/api/events"), &rig.key, SSE_FOR);

    let a_dev = DeviceAddr {
        phone: a.phone.clone(),
        device: a.device,
    };
    assert!(rig.mock.freeze_connection(&a_dev));
    let frozen_at = Instant::now();
    // Accepted while a's link hangs (it still looks connected for a while): they wait.
    let ids = send_texts(&rig, "a", &customer.jid, 10, "a frozen");

    // a's link is found dead and replaced by a new connection (only the old one is frozen).
    let ev = sse.until("a disconnected on SSE", |e| {
        e.event == "session.disconnected" && e.data["session"] == "a"
    });
    let noticed = frozen_at.elapsed();
    eprintln!("freeze -> disconnected: {:.1} s", noticed.as_secs_f64());
    assert!(noticed < NOTICED_WITHIN, "noticed after {noticed:?}");
    assert_eq!(ev.data["data"]["reason"], "no_answer", "{:?}", ev.data);
    sse.until("a connected again on SSE", |e| {
        e.event == "session.connected" && e.data["session"] == "a"
    });
    eprintln!(
        "freeze -> connected again: {:.1} s",
        frozen_at.elapsed().as_secs_f64()
    );
    rig.rx
        .wait_for("a: disconnected, then connected", NOTICED_WITHIN, |_| {
            let h = session_hooks(&rig, "a");
            let d = h.iter().position(|(t, _)| t == "session.disconnected");
            d.is_some_and(|d| h[d..].iter().any(|(t, _)| t == "session.connected"))
        });

    // b never left: still connected, no event since it connected, and it sends while a is
    // away.
    let b_hooks = |rig: &Rig| -> Vec<String> {
        session_hooks(rig, "b")
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    };
    assert_eq!(state(&rig, "b")["state"], "connected");
    assert_eq!(b_hooks(&rig), ["session.qr", "session.connected"]);
    assert_eq!(session_up(&rig, "b"), 1.0);
    let b_ids = send_texts(&rig, "b", &customer.jid, 1, "b meanwhile");

    let want: Vec<String> = (0..10).map(|i| format!("a frozen {i}")).collect();
    let seen = texts_at(&rig, &mut customer, &a.phone, &want);
    within("a's ten recorded as sent", BACK_WITHIN, || {
        all_sent(&rig, "a", &ids)
    });
    within("b's text sent", BACK_WITHIN, || all_sent(&rig, "b", &b_ids));

    // The frozen connection ends too: what waited in its socket must not arrive twice.
    rig.mock.thaw();
    let late = texts_at(&rig, &mut customer, &a.phone, &[]);
    for w in &want {
        let n = seen.get(w).copied().unwrap_or(0) + late.get(w).copied().unwrap_or(0);
        assert_eq!(n, 1, "{w} arrived once: {seen:?} then {late:?}");
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert_eq!(b_hooks(&rig), ["session.qr", "session.connected"]);
}
