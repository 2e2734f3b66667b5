//! Server side of WhatsApp's Noise handshake and the encrypted frame transport.
//!
//! Pure functions over byte slices: the connection code feeds the client's
//! frames in and writes what comes out. Three patterns are served:
//! - `XX` for new clients and for clients without a cached server key;
//! - `IK` for returning clients whose cached key is ours (0-RTT login payload);
//! - `XXfallback` when an IK hello was made for a key we do not hold (the
//!   client then re-verifies the chain and caches the new key).
//!
//! After the handshake both directions use AES-256-GCM with a per-direction
//! counter; the server reads with the first cipher of the split and writes
//! with the second.

use wacore::handshake::{NoiseCipher, NoiseHandshake};
use wacore::libsignal::protocol::KeyPair;
use wacore_binary::consts::{
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER,
};
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;

use crate::error::{Error, Result};

/// The server's long-lived Noise identity and the certificate chain that binds it.
#[derive(Clone)]
pub struct ServerIdentity {
    pub key: KeyPair,
    pub cert_chain: Vec<u8>,
}

impl ServerIdentity {
    /// A fresh random static key with a test certificate chain for it.
    pub fn generate() -> Self {
        let key = KeyPair::generate(&mut rand::rng());
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&pub32(&key));
        Self { key, cert_chain }
    }

    /// A fixed static key (32 private bytes) with a test certificate chain.
    pub fn from_private(private: &[u8; 32]) -> Result<Self> {
        let private =
            wacore::libsignal::protocol::PrivateKey::deserialize(private).map_err(noise_err)?;
        let key = KeyPair::try_from(private).map_err(noise_err)?;
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&pub32(&key));
        Ok(Self { key, cert_chain })
    }

    /// The static public key (what a returning client caches for IK).
    pub fn public(&self) -> [u8; 32] {
        pub32(&self.key)
    }
}

fn pub32(kp: &KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(kp.public_key.public_key_bytes());
    out
}

/// Which handshake pattern a connection completed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Pattern {
    Xx,
    Ik,
    XxFallback,
}

/// A finished handshake: the transport ciphers plus what the client told us.
pub struct Established {
    pub transport: NoiseTransport,
    pub client_static: [u8; 32],
    /// The encoded `ClientPayload` (registration or login).
    pub payload: Vec<u8>,
    pub pattern: Pattern,
}

/// The answer to a ClientHello.
pub enum HelloStep {
    /// IK accepted: send `server_hello`, the connection is established.
    Done {
        established: Box<Established>,
        server_hello: Vec<u8>,
    },
    /// XX or XXfallback: send `server_hello`, then wait for the ClientFinish.
    AwaitFinish {
        pending: Box<PendingFinish>,
        server_hello: Vec<u8>,
    },
}

/// Responder state between ServerHello and ClientFinish.
pub struct PendingFinish {
    noise: NoiseHandshake,
    server_eph: KeyPair,
    pattern: Pattern,
}

fn noise_err(e: impl std::fmt::Display) -> Error {
    Error::Noise(e.to_string())
}

fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| Error::Noise(format!("{what} is {} bytes, expected 32", bytes.len())))
}

/// Strips the connection header (`WA` + magic + dictionary version) from the
/// client's first message. Returns the remaining bytes (frames).
pub fn strip_conn_header(first: &[u8]) -> Result<&[u8]> {
    if first.len() >= 4 && first[..2] == WA_CONN_HEADER[..2] {
        return Ok(&first[4..]);
    }
    // Edge-routing pre-intro: "ED" 0 0 + 3-byte length + data, then the WA header.
    if first.len() >= 5 && &first[..2] == b"ED" {
        let len = ((first[2] as usize) << 16) | ((first[3] as usize) << 8) | first[4] as usize;
        let rest = first
            .get(5 + len..)
            .ok_or_else(|| Error::Noise("truncated edge-routing pre-intro".into()))?;
        return strip_conn_header(rest);
    }
    Err(Error::Noise("missing WA connection header".into()))
}

/// Answers the client's first handshake message.
pub fn respond_to_hello(identity: &ServerIdentity, frame: &[u8]) -> Result<HelloStep> {
    let msg =
        wa::HandshakeMessage::decode_from_slice(frame).map_err(|e| Error::Proto(e.to_string()))?;
    let hello = msg
        .client_hello
        .into_option()
        .ok_or_else(|| Error::Noise("handshake message without client_hello".into()))?;
    let eph = key32(
        hello.ephemeral.as_deref().unwrap_or_default(),
        "client ephemeral",
    )?;
    match (hello.r#static, hello.payload) {
        (Some(enc_static), Some(enc_payload)) => {
            match try_ik(identity, &eph, &enc_static, &enc_payload) {
                Ok(step) => Ok(step),
                Err(e) => {
                    tracing::info!(error = %e, "IK hello not for our key, answering with XXfallback");
                    xx_server_hello(identity, &eph, Pattern::XxFallback)
                }
            }
        }
        _ => xx_server_hello(identity, &eph, Pattern::Xx),
    }
}

fn try_ik(
    identity: &ServerIdentity,
    client_eph: &[u8; 32],
    enc_static: &[u8],
    enc_payload: &[u8],
) -> Result<HelloStep> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER).map_err(noise_err)?;
    noise.authenticate(&identity.public());
    noise.authenticate(client_eph);
    noise
        .mix_shared_secret(identity.key.private_key.serialize(), client_eph)
        .map_err(noise_err)?;
    let client_static = key32(
        &noise.decrypt(enc_static).map_err(noise_err)?,
        "client static",
    )?;
    noise
        .mix_shared_secret(identity.key.private_key.serialize(), &client_static)
        .map_err(noise_err)?;
    let payload = noise.decrypt(enc_payload).map_err(noise_err)?;

    let server_eph = KeyPair::generate(&mut rand::rng());
    let eph_pub = pub32(&server_eph);
    noise.authenticate(&eph_pub);
    noise
        .mix_shared_secret(server_eph.private_key.serialize(), client_eph)
        .map_err(noise_err)?;
    noise
        .mix_shared_secret(server_eph.private_key.serialize(), &client_static)
        .map_err(noise_err)?;
    let enc_cert = noise.encrypt(&identity.cert_chain).map_err(noise_err)?;
    let server_hello = encode_server_hello(&eph_pub, None, enc_cert);
    let (read, write) = noise.finish().map_err(noise_err)?;
    Ok(HelloStep::Done {
        established: Box::new(Established {
            transport: NoiseTransport::new(read, write),
            client_static,
            payload,
            pattern: Pattern::Ik,
        }),
        server_hello,
    })
}

fn xx_server_hello(
    identity: &ServerIdentity,
    client_eph: &[u8; 32],
    pattern: Pattern,
) -> Result<HelloStep> {
    let name = if pattern == Pattern::XxFallback {
        NOISE_PATTERN_XXFALLBACK
    } else {
        NOISE_PATTERN_XX
    };
    let mut noise = NoiseHandshake::new(name, &WA_CONN_HEADER).map_err(noise_err)?;
    noise.authenticate(client_eph);
    let server_eph = KeyPair::generate(&mut rand::rng());
    let eph_pub = pub32(&server_eph);
    noise.authenticate(&eph_pub);
    noise
        .mix_shared_secret(server_eph.private_key.serialize(), client_eph)
        .map_err(noise_err)?;
    let enc_static = noise.encrypt(&identity.public()).map_err(noise_err)?;
    noise
        .mix_shared_secret(identity.key.private_key.serialize(), client_eph)
        .map_err(noise_err)?;
    let enc_cert = noise.encrypt(&identity.cert_chain).map_err(noise_err)?;
    Ok(HelloStep::AwaitFinish {
        server_hello: encode_server_hello(&eph_pub, Some(enc_static), enc_cert),
        pending: Box::new(PendingFinish {
            noise,
            server_eph,
            pattern,
        }),
    })
}

fn encode_server_hello(eph: &[u8; 32], enc_static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(eph.to_vec()),
            r#static: enc_static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

impl PendingFinish {
    /// Consumes the ClientFinish frame and completes the handshake.
    pub fn finish(mut self, frame: &[u8]) -> Result<Established> {
        let msg = wa::HandshakeMessage::decode_from_slice(frame)
            .map_err(|e| Error::Proto(e.to_string()))?;
        let fin = msg
            .client_finish
            .into_option()
            .ok_or_else(|| Error::Noise("expected client_finish".into()))?;
        let enc_static = fin.r#static.unwrap_or_default();
        let enc_payload = fin.payload.unwrap_or_default();
        let client_static = key32(
            &self.noise.decrypt(&enc_static).map_err(noise_err)?,
            "client static",
        )?;
        self.noise
            .mix_shared_secret(self.server_eph.private_key.serialize(), &client_static)
            .map_err(noise_err)?;
        let payload = self.noise.decrypt(&enc_payload).map_err(noise_err)?;
        let (read, write) = self.noise.finish().map_err(noise_err)?;
        Ok(Established {
            transport: NoiseTransport::new(read, write),
            client_static,
            payload,
            pattern: self.pattern,
        })
    }
}

/// Encrypted transport after the handshake.
pub struct NoiseTransport {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl NoiseTransport {
    fn new(read: NoiseCipher, write: NoiseCipher) -> Self {
        Self {
            read,
            write,
            read_counter: 0,
            write_counter: 0,
        }
    }

    /// Splits into independent reader and writer halves.
    pub fn split(self) -> (NoiseReader, NoiseWriter) {
        (
            NoiseReader {
                cipher: self.read,
                counter: self.read_counter,
            },
            NoiseWriter {
                cipher: self.write,
                counter: self.write_counter,
            },
        )
    }
}

/// Client-to-server direction.
pub struct NoiseReader {
    cipher: NoiseCipher,
    counter: u32,
}

impl NoiseReader {
    /// Decrypts one frame payload into the node plaintext (flag byte + node).
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        let mut buf = frame.to_vec();
        self.cipher
            .decrypt_in_place_with_counter(self.counter, &mut buf)
            .map_err(noise_err)?;
        self.counter = self.counter.wrapping_add(1);
        Ok(buf)
    }
}

/// Server-to-client direction.
pub struct NoiseWriter {
    cipher: NoiseCipher,
    counter: u32,
}

impl NoiseWriter {
    /// Encrypts a plaintext and returns it as one length-prefixed frame.
    pub fn seal_frame(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let ct = self
            .cipher
            .encrypt_with_counter(self.counter, plaintext)
            .map_err(noise_err)?;
        self.counter = self.counter.wrapping_add(1);
        frame(&ct)
    }
}

/// Wraps a payload in the 3-byte big-endian length prefix.
pub fn frame(payload: &[u8]) -> Result<Vec<u8>> {
    wacore::framing::encode_frame(payload, None).map_err(noise_err)
}
