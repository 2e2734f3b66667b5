//! QR pairing and re-login against the mock with the real client.

use std::sync::Arc;
use std::time::Instant;

use crate::common::*;
use wa_mock::{Direction, StanzaFilter};
use wacore::store::InMemoryBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_pairing_then_restart_logs_in_without_qr() {
    let mock = mock().await;
    let backend = Arc::new(InMemoryBackend::new());

    let t0 = Instant::now();
    let mut c = start_client(&mock, backend.clone()).await;
    let qr = c.wait_qr().await;
    eprintln!("start -> QR: {}", elapsed(t0));
    let info = mock.scan(&qr).await.expect("scan");
    assert!(info.phone.starts_with("1555000"));
    assert_eq!(info.device, 1);
    c.wait_connected().await;
    eprintln!("start -> Connected (pairing): {}", elapsed(t0));
    assert!(mock.is_online(&info.addr()));
    c.stop().await;

    // Same store, new client instance: logs in with no QR.
    let t1 = Instant::now();
    let mut c2 = start_client(&mock, backend.clone()).await;
    c2.wait_connected().await;
    eprintln!("restart -> Connected: {}", elapsed(t1));
    let logins = mock.accounts()[0]
        .devices
        .iter()
        .find(|d| d.device == 1)
        .map(|d| d.logins);
    assert!(logins.is_some_and(|n| n >= 2), "logins: {logins:?}");

    // The client checks its key bundle against the server's digest at each login. The server
    // has the record, so nothing is uploaded again: one prekey upload in all, at the first
    // login. (A 404 here made every restart upload 812 more prekeys into the store.)
    let jid = format!("{}:{}@s.whatsapp.net", info.phone, info.device);
    let of_device = |dir| StanzaFilter {
        device: Some(jid.clone()),
        direction: Some(dir),
        ..Default::default()
    };
    mock.wait_until(STEP, "the digest answered", |m| {
        m.stanzas(&of_device(Direction::Out))
            .iter()
            .any(|s| s.xml.contains("<digest"))
    })
    .await
    .expect("a digest answer");
    let uploads = mock
        .stanzas(&of_device(Direction::In))
        .iter()
        .filter(|s| s.xml.contains("xmlns=\"encrypt\"") && s.xml.contains("<registration"))
        .count();
    assert_eq!(uploads, 1, "prekey uploads");
    c2.stop().await;
    mock.shutdown().await;
}
