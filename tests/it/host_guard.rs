//! The DNS-rebinding guard over real HTTP: first-boot setup and `/` answer only requests whose
//! Host header names the device; a refusal is a 421 JSON error and changes nothing.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::common::*;
use wagate::net::api::LanInfo;

/// One raw HTTP/1.1 request with exactly this Host header (`None`: none, as HTTP/1.0).
fn raw(
    srv: &Server,
    method: &str,
    path: &str,
    host: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let addr = srv.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = match host {
        Some(h) => format!("{method} {path} HTTP/1.1\r\nHost: {h}\r\n"),
        None => format!("{method} {path} HTTP/1.0\r\n"),
    };
    req.push_str("Connection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("api.host_names")),
        "{v}"
    );
    v["error"]["code"].as_str().unwrap().to_owned()
}

fn hostname() -> String {
    wagate::device::hostname()
}

#[test]
fn setup_refuses_hosts_that_do_not_name_the_device() {
    let srv = Server::start(Options {
        setup_open: true,
        ..Options::default()
    });
    srv.state.set_lan(LanInfo {
        host_names: vec!["gate.example.lan".into()],
        ..LanInfo::default()
    });
    let port = srv.base.rsplit(':').next().unwrap().to_owned();
    let claim = format!(r#"{{"code":"{SETUP_CODE}"}}"#);

    // A rebinding page's name, with the right code: refused before the code is looked at.
    for host in [
        "evil.example.com".to_owned(),
        format!("evil.example.com:{port}"),
        format!("{}.evil.example.com", hostname()),
        format!("127.0.0.2:{port}"),
    ] {
        let (status, body) = raw(&srv, "POST", "/api/setup", Some(&host), Some(&claim));
        assert_eq!(status, 421, "{host}: {body}");
        assert_eq!(error_code(&body), "host_not_allowed");
        let (status, body) = raw(&srv, "GET", "/api/setup", Some(&host), None);
        assert_eq!(status, 421, "{host}: {body}");
        let (status, _) = raw(&srv, "GET", "/", Some(&host), None);
        assert_eq!(status, 421, "{host}: /");
    }
    // No Host header at all (HTTP/1.0).
    let (status, body) = raw(&srv, "POST", "/api/setup", None, Some(&claim));
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("no Host header"), "{body}");
    assert!(
        srv.state.setup().is_open(),
        "a refused claim must not close setup"
    );

    // Routes outside the guard answer any Host (keys protect them).
    let (status, _) = raw(&srv, "GET", "/api/health", Some("evil.example.com"), None);
    assert_eq!(status, 200);

    // The device's own names pass: its host name, .local name, configured names, addresses.
    for host in [
        format!("localhost:{port}"),
        hostname(),
        format!("{}.local:{port}", hostname().to_uppercase()),
        "gate.example.lan".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = raw(&srv, "GET", "/api/setup", Some(&host), None);
        assert_eq!(status, 200, "{host}: {body}");
    }
    // `/` (the dashboard) passes the guard with a good name.
    let (status, _) = raw(&srv, "GET", "/", Some(&format!("127.0.0.1:{port}")), None);
    assert_eq!(status, 200);

    let (status, body) = raw(
        &srv,
        "POST",
        "/api/setup",
        Some(&format!("127.0.0.1:{port}")),
        Some(&claim),
    );
    assert_eq!(status, 201, "{body}");
    assert!(!srv.state.setup().is_open());
}
