//! QR pairing and re-login against the mock with the real client.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
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
    c2.stop().await;
    mock.shutdown().await;
}
