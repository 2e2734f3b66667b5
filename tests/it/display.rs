//! The display: every screen drawn into memory, the pairing QR read back from the pixels,
//! golden PNG snapshots (pixel for pixel; `UPDATE_SNAPSHOTS=1` rewrites them), and the
//! display task writing frames for bus notices through the png backend.

use std::path::PathBuf;
use std::time::Duration;

use embedded_graphics::prelude::*;
use wagate::config::Config;
use wagate::display::screens::{self, SAMPLE_NOW_MS, sample, sample_qr_payload, short};
use wagate::display::{self, Frame, Hooks, Screen, SessionView, Update, png, render};
use wagate::events::{Bus, FailReason, Notice, SessionState};

use crate::common::read_qr;

const SIZES: [(u32, u32); 3] = [(240, 240), (320, 240), (240, 320)];

fn pairing_state(payload: &str) -> display::DisplayState {
    let mut st = sample(Screen::Pairing);
    st.upsert(SessionView::new(
        "newbie",
        SessionState::Qr {
            code: payload.to_owned(),
            expires_at: SAMPLE_NOW_MS + 20_000,
            pair_code: None,
        },
    ));
    st
}

#[test]
fn pairing_qr_decodes_at_every_size_for_long_payloads() {
    // WhatsApp refs are ~80-90 characters; 110 leaves a margin (payload ~257 characters).
    for ref_len in [80, 88, 96, 110] {
        let payload = sample_qr_payload(ref_len);
        let st = pairing_state(&payload);
        for (w, h) in SIZES {
            let frame = render(Screen::Pairing, &st, Size::new(w, h));
            let found = read_qr(&frame);
            assert_eq!(
                found,
                vec![payload.clone()],
                "{w}x{h}, payload of {} characters",
                payload.len()
            );
        }
    }
}

#[test]
fn qr_scale_and_quiet_zone() {
    let payload = sample_qr_payload(96);
    for (w, h) in SIZES {
        let q = screens::fit_qr(&payload, w, h).unwrap();
        assert!(q.scale >= 3, "{w}x{h}: scale {}", q.scale);
        // The quiet zone: 4 modules of white on every side of the symbol, in the frame.
        let st = pairing_state(&payload);
        let frame = render(Screen::Pairing, &st, Size::new(w, h));
        let (x0, y0, side) = symbol_bounds(&frame);
        let s = frame_scale(&frame, x0, y0);
        let qz = (4 * s) as i64;
        let white = embedded_graphics::pixelcolor::Rgb565::WHITE;
        for y in (y0 as i64 - qz)..(y0 as i64 + side as i64 + qz) {
            for x in (x0 as i64 - qz)..(x0 as i64 + side as i64 + qz) {
                let inside = x >= x0 as i64
                    && y >= y0 as i64
                    && x < (x0 + side) as i64
                    && y < (y0 + side) as i64;
                if !inside {
                    assert!(x >= 0 && y >= 0, "{w}x{h}: quiet zone off screen");
                    assert_eq!(
                        frame.pixel(x as u32, y as u32),
                        Some(white),
                        "{w}x{h}: quiet zone pixel {x},{y}"
                    );
                }
            }
        }
    }
}

/// The dark symbol's bounding square: (x, y, side) from the finder patterns.
fn symbol_bounds(frame: &Frame) -> (u32, u32, u32) {
    let black = embedded_graphics::pixelcolor::Rgb565::BLACK;
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..frame.height() {
        for x in 0..frame.width() {
            if frame.pixel(x, y) == Some(black) {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    // Text below or beside the code is black too; the symbol is the square at the top left
    // of the dark pixels, and its finder pattern is 7 modules wide.
    let side = (x1 - x0 + 1).min(y1 - y0 + 1);
    (x0, y0, side.min(frame.height()))
}

fn frame_scale(frame: &Frame, x0: u32, y0: u32) -> u32 {
    // The top-left finder pattern starts with a 7-module dark run.
    let black = embedded_graphics::pixelcolor::Rgb565::BLACK;
    let run = (x0..frame.width())
        .take_while(|&x| frame.pixel(x, y0) == Some(black))
        .count() as u32;
    run / 7
}

#[test]
fn pair_code_screen_shows_the_code() {
    let mut st = sample(Screen::Pairing);
    st.upsert(SessionView::new(
        "newbie",
        SessionState::Qr {
            code: String::new(),
            expires_at: SAMPLE_NOW_MS + 150_000,
            pair_code: Some("ABCD1234".into()),
        },
    ));
    for (w, h) in SIZES {
        let frame = render(Screen::Pairing, &st, Size::new(w, h));
        assert!(read_qr(&frame).is_empty());
        snapshot(&format!("paircode-{w}x{h}"), &frame);
    }
}

// ---------------------------------------------------------------------------------------------
// Golden snapshots
// ---------------------------------------------------------------------------------------------

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// Compare `frame` with `tests/snapshots/{name}.png` pixel for pixel, or rewrite it when
/// `UPDATE_SNAPSHOTS=1`.
fn snapshot(name: &str, frame: &Frame) {
    let path = snapshot_dir().join(format!("{name}.png"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(snapshot_dir()).unwrap();
        std::fs::write(&path, png::encode(frame).unwrap()).unwrap();
        return;
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    let golden = png::decode(&bytes).unwrap();
    assert_eq!(
        (golden.width(), golden.height()),
        (frame.width(), frame.height()),
        "{name}: size"
    );
    if golden != *frame {
        let actual = path.with_extension("actual.png");
        std::fs::write(&actual, png::encode(frame).unwrap()).unwrap();
        let diff = golden
            .pixels()
            .iter()
            .zip(frame.pixels())
            .filter(|(a, b)| a != b)
            .count();
        panic!(
            "{name}: {diff} pixels differ from {}; this frame is in {} \
             (UPDATE_SNAPSHOTS=1 accepts it)",
            path.display(),
            actual.display()
        );
    }
}

#[test]
fn snapshots_of_every_screen_and_size() {
    for screen in Screen::ALL {
        let st = sample(screen);
        for (w, h) in SIZES {
            let frame = render(screen, &st, Size::new(w, h));
            snapshot(&format!("{}-{w}x{h}", screen.name()), &frame);
        }
    }
}

#[test]
fn snapshots_of_other_states() {
    // Setup when claimed, with a fingerprint; failure variants; a crowded status screen.
    let mut claimed = sample(Screen::Setup);
    claimed.setup_code = None;
    claimed.cert_fingerprint = Some(short(wagate::display::screens::SAMPLE_FINGERPRINT));
    let mut exhausted = sample(Screen::Status);
    exhausted.upsert(SessionView::new(
        "newbie",
        SessionState::Failed {
            reason: FailReason::QrExhausted,
            until: None,
            message: None,
        },
    ));
    let mut logged_out = sample(Screen::Status);
    logged_out.has_button = false;
    logged_out.sessions.clear();
    logged_out.upsert(SessionView::new(
        "front-desk",
        SessionState::Failed {
            reason: FailReason::LoggedOut,
            until: None,
            message: Some("device removed from the phone".into()),
        },
    ));
    let mut passkey = sample(Screen::Status);
    passkey.has_button = false;
    passkey.sessions.clear();
    passkey.upsert(SessionView::new(
        "shop",
        SessionState::Failed {
            reason: FailReason::PasskeyRequired,
            until: None,
            message: Some(wagate::engine::session::PASSKEY_HELP.into()),
        },
    ));
    let mut crowded = sample(Screen::Status);
    for i in 0..6 {
        let mut v = SessionView::new(&format!("branch-{i}"), SessionState::Connected { since: 0 });
        v.phone = Some(short(&format!("3161234567{i}")));
        v.queue_depth = i * 7;
        crowded.upsert(v);
    }
    let mut empty = sample(Screen::Status);
    empty.sessions.clear();
    empty.addresses.clear();

    let cases = [
        ("setup-claimed", Screen::Setup, &claimed),
        ("failure-qr-exhausted", Screen::Failure, &exhausted),
        ("failure-logged-out", Screen::Failure, &logged_out),
        ("failure-passkey", Screen::Failure, &passkey),
        ("status-crowded", Screen::Status, &crowded),
        ("status-empty", Screen::Status, &empty),
    ];
    for (name, screen, st) in cases {
        for (w, h) in SIZES {
            let frame = render(screen, st, Size::new(w, h));
            snapshot(&format!("{name}-{w}x{h}"), &frame);
        }
    }
}

#[test]
fn screens_are_deterministic() {
    for screen in Screen::ALL {
        let st = sample(screen);
        let a = render(screen, &st, Size::new(240, 240));
        let b = render(screen, &st, Size::new(240, 240));
        assert_eq!(a, b);
    }
}

// ---------------------------------------------------------------------------------------------
// The png backend and the display task
// ---------------------------------------------------------------------------------------------

#[test]
fn png_round_trip_is_exact() {
    let st = sample(Screen::Status);
    let frame = render(Screen::Status, &st, Size::new(320, 240));
    let bytes = png::encode(&frame).unwrap();
    assert_eq!(png::decode(&bytes).unwrap(), frame);
}

fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.store.data_dir = dir.to_path_buf();
    cfg.display.png_path = dir.join("screen/display.png");
    cfg
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out");
}

#[tokio::test]
async fn display_task_draws_the_qr_from_the_bus_into_the_png_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let bus = Bus::default();
    let handle = display::spawn(&cfg, &bus, Hooks::none()).unwrap();
    let path = cfg.png_path();

    // Status first (no sessions).
    wait_for(|| path.exists().then_some(())).await;

    let payload = sample_qr_payload(90);
    bus.publish(Notice::State {
        session: "default".into(),
        state: SessionState::Qr {
            code: payload.clone(),
            expires_at: wagate::events::now_ms() + 60_000,
            pair_code: None,
        },
    });
    let found = wait_for(|| {
        let bytes = std::fs::read(&path).ok()?;
        let frame = png::decode(&bytes).ok()?;
        let codes = read_qr(&frame);
        (!codes.is_empty()).then_some(codes)
    })
    .await;
    assert_eq!(found, vec![payload]);

    // The handle serves the same frame as PNG bytes.
    let bytes = handle.png().unwrap().unwrap();
    let frame = png::decode(&bytes).unwrap();
    assert_eq!(frame.width(), 240);

    // Connected: the QR goes away.
    bus.publish(Notice::State {
        session: "default".into(),
        state: SessionState::Connected { since: 0 },
    });
    wait_for(|| {
        let frame = png::decode(&std::fs::read(&path).ok()?).ok()?;
        read_qr(&frame).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn button_press_restarts_an_exhausted_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let bus = Bus::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hooks = Hooks {
        sessions: Box::new(|| {
            Box::pin(async {
                vec![SessionView::new(
                    "default",
                    SessionState::Failed {
                        reason: FailReason::QrExhausted,
                        until: None,
                        message: None,
                    },
                )]
            })
        }),
        restart_pairing: Box::new(move |id| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(id);
            })
        }),
    };
    let handle = display::spawn(&cfg, &bus, hooks).unwrap();
    handle.update(Update::Press);
    let id = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, "default");
}

#[tokio::test]
async fn frames_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let bus = Bus::default();
    let handle = display::spawn(&cfg, &bus, Hooks::none()).unwrap();
    wait_for(|| handle.frame()).await;
    let first = handle.frame().unwrap();
    // A burst of 50 changes within ~100 ms: frames follow at most every 250 ms.
    let start = std::time::Instant::now();
    let mut seen = 0;
    let mut last = first;
    for i in 0..50u32 {
        handle.update(Update::Setup {
            code: Some(format!("CODE{i}")),
            fingerprint: None,
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
        if let Some(f) = handle.frame()
            && !std::sync::Arc::ptr_eq(&f, &last)
        {
            seen += 1;
            last = f;
        }
    }
    let elapsed = start.elapsed();
    let max = 1 + elapsed.as_millis() as usize / display::MIN_FRAME_MS as usize;
    assert!(seen <= max, "{seen} frames in {elapsed:?}");
}
