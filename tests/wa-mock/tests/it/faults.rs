//! Fault controls: stream error 401 logs the client out, a 402 connect
//! failure is a temporary ban, a dropped connection is re-established by the
//! client itself.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
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

/// Freezes through the admin API and the library: a frozen connection answers no ping until
/// the thaw; a frozen server holds every new WebSocket upgrade (and its open connections)
/// while its admin API still answers, and answers the held upgrade when it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_a_connection_and_the_server_then_thaw() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use wacore::iq::keepalive::KeepaliveSpec;

    let mock = mock().await;
    let backend = Arc::new(InMemoryBackend::new());
    let (c, info) = paired_client(&mock, backend).await;
    let ping = |secs| {
        c.client
            .execute(KeepaliveSpec::with_timeout(Duration::from_secs(secs)))
    };
    ping(5).await.expect("a ping is answered before the freeze");
    let admin = |path: &str, body: serde_json::Value| {
        let url = format!("{}{path}", mock.admin_url());
        async move {
            tokio::task::spawn_blocking(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let r = agent
                    .post(&url)
                    .header("content-type", "application/json")
                    .send(body.to_string())
                    .unwrap();
                r.status().as_u16()
            })
            .await
            .unwrap()
        }
    };

    // One connection, through the admin API.
    let device = serde_json::json!({"phone": info.phone, "device": info.device});
    assert_eq!(admin("/admin/freeze", device).await, 200);
    assert!(
        ping(2).await.is_err(),
        "a frozen connection answers nothing"
    );
    assert_eq!(admin("/admin/thaw", serde_json::json!({})).await, 200);
    ping(10).await.expect("answered again after the thaw");
    // A device that is not connected, and half an address.
    let nobody = serde_json::json!({"phone": "15559999999", "device": 3});
    assert_eq!(admin("/admin/freeze", nobody).await, 404);
    let half = serde_json::json!({"phone": info.phone});
    assert_eq!(admin("/admin/freeze", half).await, 400);

    // The whole server, through the admin API; the thaw through the library.
    assert_eq!(admin("/admin/freeze", serde_json::json!({})).await, 200);
    assert!(ping(2).await.is_err(), "a frozen server answers nothing");
    let mut ws = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    ws.write_all(
        b"GET /ws/chat HTTP/1.1\r\nHost: wa-mock\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let held = tokio::time::timeout(Duration::from_secs(2), ws.read(&mut buf)).await;
    assert!(held.is_err(), "a frozen server answered an upgrade");
    let accounts = format!("{}/admin/accounts", mock.admin_url());
    let status = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        agent.get(&accounts).call().map(|r| r.status().as_u16())
    })
    .await
    .unwrap();
    assert_eq!(status.ok(), Some(200), "the admin API answers while frozen");
    mock.thaw();
    let n = tokio::time::timeout(STEP, ws.read(&mut buf))
        .await
        .expect("the held upgrade is answered at the thaw")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    ping(10)
        .await
        .expect("answered again after the server thawed");
    c.stop().await;
    mock.shutdown().await;
}
