//! The media host: HTTPS with a self-signed certificate (rcgen, generated at
//! start), serving the host that `media_conn` hands out.
//!
//! `POST {upload_path}/{token}?auth=..&token=..` stores the encrypted blob and
//! answers `{"url","direct_path"}`; `...&resume=1` answers 404 (never stored
//! partially); `GET {direct_path}` serves a stored blob, answers 410 Gone for one
//! [`MediaHost::expire`]d (as WhatsApp's CDN does once media is past its lifetime) and 404
//! for one never stored. Clients must trust
//! [`MediaHost::cert_pem`] (wagate: only in a `trust-wa-mock` build).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};

/// Stored blobs by direct path; `None`: the blob expired.
type Blobs = Arc<Mutex<HashMap<String, Option<Vec<u8>>>>>;

/// A running media host.
pub struct MediaHost {
    /// `127.0.0.1:PORT` (what `media_conn` returns as hostname).
    pub host: String,
    /// PEM of the self-signed certificate (valid for 127.0.0.1 and localhost).
    pub cert_pem: String,
    blobs: Blobs,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl MediaHost {
    /// Generates a certificate and starts serving on `127.0.0.1:0`.
    pub async fn start() -> Result<Self> {
        let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .map_err(|e| tls(&e))?;
        let cert_pem = cert.cert.pem();
        let cert_der: CertificateDer<'static> = cert.cert.der().clone();
        let key_der =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key_der)
            .map_err(|e| tls(&e))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let host = listener.local_addr()?.to_string();
        let blobs: Blobs = Arc::default();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task_blobs = blobs.clone();
        let task_host = host.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut rx => break,
                    a = listener.accept() => a,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let blobs = task_blobs.clone();
                let host = task_host.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        tracing::debug!("media: TLS handshake failed");
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, blobs.clone(), host.clone())
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                    {
                        tracing::debug!(error = %e, "media connection ended");
                    }
                });
            }
        });
        tracing::info!(%host, "media host listening (TLS)");
        Ok(Self {
            host,
            cert_pem,
            blobs,
            stop: Mutex::new(Some(tx)),
        })
    }

    /// A stored blob by direct path.
    pub fn blob(&self, direct_path: &str) -> Option<Vec<u8>> {
        self.blobs.lock().ok()?.get(direct_path).cloned().flatten()
    }

    /// Store bytes to serve at `direct_path` (a profile picture: plain, not media-encrypted).
    pub fn put(&self, direct_path: &str, bytes: Vec<u8>) {
        if let Ok(mut b) = self.blobs.lock() {
            b.insert(direct_path.to_string(), Some(bytes));
        }
    }

    /// Number of stored blobs (expired ones not counted).
    pub fn blob_count(&self) -> usize {
        self.blobs
            .lock()
            .map(|b| b.values().filter(|v| v.is_some()).count())
            .unwrap_or(0)
    }

    /// Expire a stored blob: its bytes are dropped and downloads answer 410 Gone from now
    /// on. False if no blob is stored at `direct_path`.
    pub fn expire(&self, direct_path: &str) -> bool {
        let Ok(mut b) = self.blobs.lock() else {
            return false;
        };
        match b.get_mut(direct_path) {
            Some(slot @ Some(_)) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn handle(
    req: Request<Incoming>,
    blobs: Blobs,
    host: String,
) -> std::result::Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    if method == Method::POST || method == Method::PUT {
        if query.contains("resume=1") {
            return Ok(reply(StatusCode::NOT_FOUND, "{}"));
        }
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "{}")),
        };
        let token = path.rsplit('/').next().unwrap_or("blob").to_string();
        let direct_path = format!("/v/t62.mock/{token}.enc");
        let url = format!("https://{host}{direct_path}");
        tracing::info!(%path, bytes = body.len(), %direct_path, "media upload stored");
        if let Ok(mut b) = blobs.lock() {
            b.insert(direct_path.clone(), Some(body));
        }
        let json = serde_json::json!({ "url": url, "direct_path": direct_path });
        return Ok(reply(StatusCode::OK, json.to_string()));
    }
    if method == Method::GET || method == Method::HEAD {
        let blob = blobs.lock().ok().and_then(|b| b.get(&path).cloned());
        return Ok(match blob {
            Some(Some(b)) => reply(StatusCode::OK, b),
            Some(None) => reply(StatusCode::GONE, ""),
            None => reply(StatusCode::NOT_FOUND, ""),
        });
    }
    Ok(reply(StatusCode::METHOD_NOT_ALLOWED, ""))
}
