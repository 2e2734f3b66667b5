//! Pair-code linking: the client asks for a code for a phone number, the mock
//! phone enters it, and the client connects like after a QR scan.

use std::sync::Arc;

use crate::common::*;
use wacore::store::InMemoryBackend;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::types::events::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_code_linking() {
    let mock = mock().await;
    let backend = Arc::new(InMemoryBackend::new());
    let phone = "15559990001";
    let mut c = start_client_with(&mock, backend.clone(), |b| {
        b.with_pair_code(PairCodeOptions {
            phone_number: phone.to_string(),
            ..Default::default()
        })
    })
    .await;
    let code = c
        .wait(STEP, "PairingCode", |e| match e {
            Event::PairingCode(p) => Some(p.code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code.len(), 8);
    let info = mock
        .enter_pair_code(phone, &code)
        .await
        .expect("pair code accepted");
    assert_eq!(info.phone, phone);
    c.wait_connected().await;
    assert!(mock.is_online(&info.addr()));
    c.stop().await;

    // Restart: logs in with the pair-code credentials.
    let mut c = start_client(&mock, backend).await;
    c.wait_connected().await;
    c.stop().await;
    mock.shutdown().await;
}
