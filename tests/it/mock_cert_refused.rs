//! A default build (no `trust-wa-mock`) must refuse wa-mock's test certificate chain: the
//! session never reaches the QR stage and keeps retrying. This is the build that ships, so
//! this test is what proves the release binary checks WhatsApp's certificates.
#![cfg(not(feature = "trust-wa-mock"))]

use std::time::Duration;

use wa_mock::{MockConfig, MockServer};
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, SessionState};
use wagate::store::Store;

#[tokio::test(flavor = "multi_thread")]
async fn the_default_build_refuses_the_mock_certificate() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("wagate.redb"), 1 << 20).unwrap();
    let cfg = EngineConfig {
        ws_url: mock.ws_url(),
        ..EngineConfig::default()
    };
    let mgr = SessionManager::open(store, Bus::default(), cfg, true)
        .await
        .unwrap();
    mgr.create("s", true).await.unwrap();
    let mut rx = mgr.watch("s").await.unwrap();
    // Each attempt reaches the mock (the TCP and WebSocket parts work) and fails at the
    // certificate check; two failed attempts and never a QR code.
    let state = tokio::time::timeout(
        Duration::from_secs(30),
        rx.wait_for(|s| {
            assert!(
                !matches!(s, SessionState::Qr { .. }),
                "the mock's chain was accepted"
            );
            matches!(s, SessionState::Disconnected { attempts, .. } if *attempts >= 2)
        }),
    )
    .await
    .expect("two failed attempts")
    .unwrap()
    .clone();
    assert!(matches!(state, SessionState::Disconnected { .. }));
    // Not one stanza crossed: the handshake never completed.
    assert!(mock.stanzas(&wa_mock::StanzaFilter::default()).is_empty());
    mgr.shutdown().await;
}
