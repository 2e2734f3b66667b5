//! Fault controls: stream error 401 logs the client out, a 402 connect
//! failure is a temporary ban, a dropped connection is re-established by the
//! client itself.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use wa_mock::{LoginFailure, StreamError};
use wacore::store::InMemoryBackend;
use whatsapp_rust::types::events::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_reconnects_then_ban_then_logout() {
    let mock = mock().await;
    let backend = Arc::new(InMemoryBackend::new());
    let (mut c, info) = paired_client(&mock, backend.clone()).await;
    let addr = info.addr();

    // A network drop: the client reconnects on its own.
    let logins_before = mock.accounts()[0]
        .devices
        .iter()
        .map(|d| d.logins)
        .sum::<u32>();
    assert!(mock.drop_connection(&addr));
    c.wait(STEP, "Disconnected", |e| {
        matches!(e, Event::Disconnected(_)).then_some(())
    })
    .await;
    c.wait_connected().await;
    let logins_after = mock.accounts()[0]
        .devices
        .iter()
        .map(|d| d.logins)
        .sum::<u32>();
    assert!(logins_after > logins_before);
    c.stop().await;

    // 402 with code and expiry on the next login: TemporaryBan.
    mock.fail_next_login(
        Some(&info.phone),
        LoginFailure::TempBan {
            code: 101,
            expire_secs: 3600,
        },
    );
    let mut c = start_client(&mock, backend.clone()).await;
    let expire = c
        .wait(STEP, "TemporaryBan", |e| match e {
            Event::TemporaryBan(b) => Some(b.expire),
            Event::Connected(_) => panic!("connected despite the ban"),
            _ => None,
        })
        .await;
    assert_eq!(expire.num_seconds(), 3600);
    c.stop().await;

    // Next start logs in; then stream error 401: LoggedOut.
    let mut c = start_client(&mock, backend.clone()).await;
    c.wait_connected().await;
    assert!(mock.send_stream_error(&addr, StreamError::Code(401)));
    c.wait(STEP, "LoggedOut", |e| {
        matches!(e, Event::LoggedOut(_)).then_some(())
    })
    .await;
    c.stop().await;
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_outdated_on_login() {
    let mock = mock().await;
    let backend = Arc::new(InMemoryBackend::new());
    let (c, _info) = paired_client(&mock, backend.clone()).await;
    c.stop().await;
    mock.fail_next_login(None, LoginFailure::ClientOutdated);
    let mut c = start_client(&mock, backend).await;
    c.wait(Duration::from_secs(30), "ClientOutdated", |e| {
        matches!(e, Event::ClientOutdated(_)).then_some(())
    })
    .await;
    c.stop().await;
    mock.shutdown().await;
}
