//! The crate's error type.
//!
//! One enum for everything a caller of the library can see: the network edge
//! (WebSocket, HTTP, TLS), the protocol edge (Noise, binary nodes, protobuf)
//! and the test-facing API (unknown QR ref, timeouts). Protocol failures on a
//! client connection end that connection and are logged; they never panic.

use std::time::Duration;

/// Everything that can go wrong inside the mock server or its API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("noise handshake: {0}")]
    Noise(String),
    #[error("binary node codec: {0}")]
    Binary(#[from] wacore_binary::BinaryError),
    #[error("protobuf decode: {0}")]
    Proto(String),
    #[error("websocket: {0}")]
    WebSocket(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("malformed QR code: {0}")]
    BadQr(String),
    #[error("no connection waits for QR ref {0:?} (expired, or the client went away)")]
    UnknownRef(String),
    #[error("no pending pair-code request for phone {0}")]
    NoPairCodeRequest(String),
    #[error("wrong pair code for phone {0}")]
    WrongPairCode(String),
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("the companion rejected pairing: {0}")]
    PairRejected(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    #[error("WhatsApp asked the companion for the account's passkey instead of linking it")]
    PasskeyDemanded,
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("server is shut down")]
    Shutdown,
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
