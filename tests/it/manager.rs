//! SessionManager on a real redb file, with no WhatsApp server reachable: state transitions,
//! restore on restart, delete wiping keys. (Pairing and login are proven through wa-mock.)

use std::time::Duration;

use crate::common::dead_url;
use wagate::engine::{EngineConfig, EngineError, SessionManager};
use wagate::events::{Bus, Notice, SessionState};
use wagate::store::Store;
use whatsapp_rust::wacore::store::traits::{ProtocolStore, SignalStore};

/// A WebSocket URL where nothing listens: every connect attempt is refused at once.
fn engine(url: String) -> EngineConfig {
    EngineConfig {
        ws_url: url,
        ..EngineConfig::default()
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("wagate.redb"), 1 << 20).unwrap()
}

async fn wait_state(
    mgr: &SessionManager,
    id: &str,
    what: &str,
    pred: impl Fn(&SessionState) -> bool,
) -> SessionState {
    let mut rx = mgr.watch(id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| pred(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_start_stop_and_states_with_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::default();
    let mut notices = bus.subscribe();
    let mgr = SessionManager::open(open(&dir), bus, engine(dead_url()), true)
        .await
        .unwrap();

    // A created, not started session is stopped.
    let info = mgr.create("shop", false).await.unwrap();
    assert_eq!(info.state, SessionState::Stopped);
    assert!(!info.enabled);
    assert!(matches!(
        mgr.create("shop", false).await,
        Err(EngineError::Exists(_))
    ));
    assert!(matches!(
        mgr.create("Bad Id", false).await,
        Err(EngineError::InvalidId(_))
    ));

    // Started with no server: connecting, then disconnected with a growing attempt count.
    mgr.start("shop").await.unwrap();
    let s = wait_state(
        &mgr,
        "shop",
        "two failed attempts",
        |s| matches!(s, SessionState::Disconnected { attempts, .. } if *attempts >= 2),
    )
    .await;
    let SessionState::Disconnected { since, .. } = s else {
        unreachable!()
    };
    assert!(since > 0);

    // The bus saw connecting first, then disconnected. (The bus is published right after the
    // watch changes, so read it with a deadline rather than what is there this instant.)
    let mut seen = Vec::new();
    while !seen.contains(&"disconnected") {
        let n = tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .expect("a disconnected notice on the bus")
            .unwrap();
        if let Notice::State { session, state } = n {
            assert_eq!(session, "shop");
            seen.push(state.name());
        }
    }
    assert_eq!(seen.first(), Some(&"connecting"));

    // Pair code needs a session waiting for a scan.
    assert!(matches!(
        mgr.pair_code("shop", "447700900123").await,
        Err(EngineError::NotPairing { .. })
    ));

    let info = mgr.stop("shop").await.unwrap();
    assert_eq!(info.state, SessionState::Stopped);
    assert!(!info.enabled);
    assert!(matches!(
        mgr.start("nope").await,
        Err(EngineError::NotFound(_))
    ));
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_restores_sessions_and_starts_the_enabled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = dead_url();
    {
        let mgr = SessionManager::open(open(&dir), Bus::default(), engine(url.clone()), true)
            .await
            .unwrap();
        mgr.create("runs", true).await.unwrap();
        mgr.create("idle", false).await.unwrap();
        wait_state(&mgr, "runs", "connecting", |s| {
            !matches!(s, SessionState::Stopped)
        })
        .await;
        mgr.shutdown().await;
        mgr.store().close();
    }
    // The store is closed with the manager; open it again as a restarted daemon would.
    let mgr = SessionManager::open(open(&dir), Bus::default(), engine(url), true)
        .await
        .unwrap();
    let mut ids: Vec<String> = mgr
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["idle", "runs"]);
    wait_state(&mgr, "runs", "the enabled session to start", |s| {
        matches!(
            s,
            SessionState::Connecting | SessionState::Disconnected { .. }
        )
    })
    .await;
    assert_eq!(mgr.get("idle").await.unwrap().state, SessionState::Stopped);
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_wipes_exactly_that_sessions_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mgr = SessionManager::open(store.clone(), Bus::default(), engine(dead_url()), false)
        .await
        .unwrap();
    mgr.create("a", false).await.unwrap();
    mgr.create("b", false).await.unwrap();
    for id in ["a", "b"] {
        let be = store.backend(id);
        be.put_identity("15550001111.0", [7; 32]).await.unwrap();
        be.put_session("15550001111.0", b"session").await.unwrap();
        be.save_base_key("15550001111.0", "M1", b"base")
            .await
            .unwrap();
    }
    mgr.delete("a").await.unwrap();
    assert!(matches!(mgr.get("a").await, Err(EngineError::NotFound(_))));

    let a = store.backend("a");
    assert_eq!(a.load_identity("15550001111.0").await.unwrap(), None);
    assert!(a.get_session("15550001111.0").await.unwrap().is_none());
    assert!(
        !a.has_same_base_key("15550001111.0", "M1", b"base")
            .await
            .unwrap()
    );
    let b = store.backend("b");
    assert_eq!(
        b.load_identity("15550001111.0").await.unwrap(),
        Some([7; 32])
    );
    assert!(b.get_session("15550001111.0").await.unwrap().is_some());
    mgr.shutdown().await;
}
