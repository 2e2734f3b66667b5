//! The screen end to end through wa-mock: the mock phone pairs a session by reading the QR
//! from the frame the PNG backend wrote (as a person reads the SPI screen), not from the
//! API. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use std::time::{Duration, Instant};

use wa_mock::{MockConfig, MockServer};
use wagate::config::{Config, DisplayBackend};
use wagate::display::{self, Frame, Hooks};
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, SessionState};
use wagate::store::Store;

fn read_qr(frame: &Frame) -> Option<String> {
    crate::common::read_qr(frame).into_iter().next()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_phone_pairs_from_the_qr_on_the_screen() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("wagate.redb"), 1 << 20).unwrap();
    let bus = Bus::default();
    let engine = EngineConfig {
        ws_url: mock.ws_url(),
        ..EngineConfig::default()
    };
    let mgr = SessionManager::open(store, bus.clone(), engine, true)
        .await
        .unwrap();

    let png_path = dir.path().join("screen.png");
    let mut cfg = Config::default();
    cfg.display.backend = DisplayBackend::Png;
    cfg.display.png_path = png_path.clone();
    let m = mgr.clone();
    let hooks = Hooks {
        sessions: Box::new(move || {
            let m = m.clone();
            Box::pin(async move {
                let all = m.list().await.unwrap_or_default();
                all.iter().map(Into::into).collect()
            })
        }),
        ..Hooks::none()
    };
    let screen = display::spawn(&cfg, &bus, hooks).unwrap();

    mgr.create("shop", true).await.unwrap();
    // Read the screen until it shows a QR code.
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Ok(bytes) = std::fs::read(&png_path)
            && let Ok(frame) = display::png::decode(&bytes)
            && let Some(code) = read_qr(&frame)
        {
            break code;
        }
        assert!(Instant::now() < deadline, "no QR code on the screen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // It is the session's current code, and the phone pairs with it.
    let current = match mgr.get("shop").await.unwrap().state {
        SessionState::Qr { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code, current);
    mock.scan(&code).await.unwrap();
    let mut rx = mgr.watch("shop").await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(40),
        rx.wait_for(|s| matches!(s, SessionState::Connected { .. })),
    )
    .await
    .expect("connected")
    .unwrap();

    // The API's frame is the same one: once connected, no QR is left on it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let frame = screen.last_frame().frame().expect("a frame");
    assert_eq!(read_qr(&frame), None);
    drop(screen);
    mgr.shutdown().await;
}
