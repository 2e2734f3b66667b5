//! A webhook receiver on a real socket: records every request (headers, body, time) and
//! answers from a script of replies (then 200), and the X-Wagate signature verifier written
//! from the delivery contract (the Standard Webhooks headers are checked with the
//! `standardwebhooks` crate, an independent implementation).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// One request the receiver took.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no header {name}: {:?}", self.headers))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn delivery_id(&self) -> String {
        self.header("x-wagate-delivery-id").to_string()
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: format!("answer {status}"),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Shared {
    hits: Mutex<Vec<Hit>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Listen on a free local port.
    pub fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Listen on `addr` (to bring a receiver back up on the port it had).
    pub fn start_on(addr: SocketAddr) -> Receiver {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
                    let s = s.clone();
                    async move { answer(s, headers, body).await }
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = ready_rx.recv().unwrap();
        Receiver {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answer the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Answer with this once the script is done (default 200).
    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = Some(reply);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Wait until `f` holds for the hits so far.
    pub fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits();
            if f(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {} requests so far",
                hits.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop listening (the port refuses connections afterwards).
    pub fn shutdown(mut self) -> SocketAddr {
        self.stop_now();
        self.addr
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn answer(s: Arc<Shared>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    s.hits.lock().unwrap().push(Hit {
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    let reply = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| s.default.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::status(200));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (n, v) in reply.headers {
        resp.headers_mut().insert(n, v.parse().unwrap());
    }
    resp
}

/// Check `X-Wagate-Signature` (or another header in the same format) as a receiver would,
/// from the contract: `v1,sha256=<hex HMAC-SHA256(secret bytes, "{timestamp}.{rawBody}")>`
/// with the timestamp from `X-Wagate-Timestamp`, no more than 5 minutes off our clock.
pub fn verify_wagate(secret: &str, hit: &Hit, header: &str) -> Result<(), String> {
    let ts = hit
        .headers
        .get("x-wagate-timestamp")
        .ok_or("no X-Wagate-Timestamp")?
        .to_str()
        .map_err(|e| e.to_string())?;
    let ts_num: i64 = ts.parse().map_err(|_| format!("timestamp {ts:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts_num).abs() > 300 {
        return Err(format!(
            "timestamp {ts_num} is more than 5 minutes from {now}"
        ));
    }
    let sig = hit
        .headers
        .get(header)
        .ok_or(format!("no {header}"))?
        .to_str()
        .map_err(|e| e.to_string())?;
    let hex = sig
        .strip_prefix("v1,sha256=")
        .ok_or(format!("{header} {sig:?} is not v1,sha256=<hex>"))?;
    let given: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{header}: not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    mac.verify_slice(&given)
        .map_err(|_| format!("{header} does not match"))
}

/// Check the Standard Webhooks headers with the `standardwebhooks` crate.
pub fn verify_standard(secret: &str, hit: &Hit) -> Result<(), String> {
    let wh = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
    wh.verify(&hit.body, &hit.headers)
        .map_err(|e| e.to_string())
}
