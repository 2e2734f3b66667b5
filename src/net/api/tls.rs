//! HTTPS for the API: the certificate (`api.tls`), its fingerprint, and a listener that
//! hands axum TLS streams.
//!
//! - `self-signed`: on first start wagate makes an ECDSA P-256 certificate (rcgen, ring) for
//!   `localhost`, its host name, `<hostname>.local`, `api.host_names` and its addresses, and
//!   keeps it in the data directory as `tls-cert.pem` and `tls-key.pem` (mode 0600). Later
//!   starts reuse it, so the fingerprint clients pinned stays valid; deleting both files makes
//!   a new one. The certificate is valid from 1975 to 4096 (the board may boot without a
//!   synchronized clock; clients pin the fingerprint rather than trust a date).
//! - `files`: `api.tls_cert` (PEM chain, leaf first) and `api.tls_key` (PEM, PKCS#8, PKCS#1
//!   or SEC1).
//!
//! The fingerprint is the SHA-256 of the leaf certificate's DER, as uppercase hex pairs joined
//! by colons (what `openssl x509 -fingerprint -sha256` and browsers show).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{Config, TlsMode};

/// The self-signed certificate in the data directory.
pub const SELF_SIGNED_CERT: &str = "tls-cert.pem";
/// Its private key (mode 0600).
pub const SELF_SIGNED_KEY: &str = "tls-key.pem";

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 64;

/// Why HTTPS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("making the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The API's certificate, ready to serve.
#[derive(Clone)]
pub struct TlsMaterial {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (see the module docs for the form).
    pub fingerprint: String,
    /// Where the certificate is.
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of `der` as uppercase hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(95);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Where the certificate for `cfg` lives (`None` when TLS is off).
pub fn cert_path(cfg: &Config) -> Option<PathBuf> {
    match cfg.api.tls {
        TlsMode::Off => None,
        TlsMode::Files => Some(cfg.api.tls_cert.clone()),
        TlsMode::SelfSigned => Some(cfg.store.data_dir.join(SELF_SIGNED_CERT)),
    }
}

/// The fingerprint of the certificate `cfg` serves, read without making one: `Ok(None)` when
/// TLS is off or the self-signed certificate is not made yet (`wagate info`).
pub fn read_fingerprint(cfg: &Config) -> Result<Option<String>, TlsError> {
    let Some(path) = cert_path(cfg) else {
        return Ok(None);
    };
    if cfg.api.tls == TlsMode::SelfSigned && !path.exists() {
        return Ok(None);
    }
    let chain = read_chain(&path)?;
    Ok(chain.first().map(|c| fingerprint(c)))
}

/// The certificate for `cfg`: `None` when `api.tls = "off"`; the self-signed one is made
/// now if the data directory holds none. `names` and `addresses` go into a new certificate.
pub fn load_or_create(
    cfg: &Config,
    names: &[String],
    addresses: &[IpAddr],
) -> Result<Option<TlsMaterial>, TlsError> {
    let (cert_path, key_path) = match cfg.api.tls {
        TlsMode::Off => return Ok(None),
        TlsMode::Files => (cfg.api.tls_cert.clone(), cfg.api.tls_key.clone()),
        TlsMode::SelfSigned => {
            let dir = &cfg.store.data_dir;
            let (c, k) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
            // Both or nothing: a lone file is left from an interrupted first start.
            if !(c.exists() && k.exists()) {
                create_self_signed(dir, &c, &k, names, addresses)?;
                tracing::info!(path = %c.display(), "made a self-signed certificate for the API");
            } else {
                tighten_key(&k)?;
            }
            (c, k)
        }
    };
    let chain = read_chain(&cert_path)?;
    let key = read_key(&key_path)?;
    let fingerprint = fingerprint(&chain[0]);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsMaterial {
        config: Arc::new(config),
        fingerprint,
        cert_path,
    }))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Io {
        what: "reading the certificate",
        path: path.to_owned(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "holds no CERTIFICATE block".to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Io {
        what: "reading the private key",
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: format!("not a PEM private key: {e}"),
    })
}

/// The key file must be the owner's alone; an older or copied one is set back to 0600.
fn tighten_key(path: &Path) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        what: "setting the mode of the private key",
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        tracing::warn!(path = %path.display(), "the API's private key was readable by others; set to 0600");
    }
    Ok(())
}

fn create_self_signed(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
    addresses: &[IpAddr],
) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        what: "creating the data directory",
        path: dir.to_owned(),
        source,
    })?;
    let mut params = rcgen::CertificateParams::default();
    let mut sans = Vec::new();
    for n in names {
        // A name a certificate cannot carry (odd characters in a host name) is left out.
        match rcgen::string::Ia5String::try_from(n.as_str()) {
            Ok(s) => sans.push(rcgen::SanType::DnsName(s)),
            Err(e) => tracing::warn!(name = %n, error = %e, "left out of the certificate"),
        }
    }
    let mut ips: Vec<IpAddr> = addresses.to_vec();
    ips.extend([
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
    ]);
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    sans.extend(ips.into_iter().map(rcgen::SanType::IpAddress));
    params.subject_alt_names = sans;
    let cn = names
        .iter()
        .find(|n| *n != "localhost")
        .map_or("wagate", String::as_str);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "wagate");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    // The key first: a certificate on disk means both are complete.
    write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Write through a temporary file in the same directory, synced, then renamed over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let io = |what, source| TlsError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io("creating", e))?;
    f.write_all(bytes).map_err(|e| io("writing", e))?;
    f.sync_all().map_err(|e| io("writing", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("renaming into place", e))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A TCP listener whose connections arrive TLS-handshaken, for `axum::serve`.
///
/// A task accepts TCP connections and runs each handshake in its own task (at most
/// [`MAX_HANDSHAKES`] at once, each within [`HANDSHAKE_TIMEOUT`]), so a slow or silent client
/// never holds up the others. Failed handshakes are logged at debug and dropped. The task
/// ends when the listener is dropped (axum drops it on graceful shutdown).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(16);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = tokio::select! {
            _ = tx.closed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: wait a moment as axum's own loop does.
                    tracing::warn!(error = %e, "accepting an API connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task never ends while the receiver lives; if it did, accept nothing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_cfg(dir: &Path) -> Config {
        let mut cfg = Config::default();
        cfg.store.data_dir = dir.to_owned();
        cfg.api.tls = TlsMode::SelfSigned;
        cfg
    }

    #[test]
    fn self_signed_is_made_once_with_a_private_key_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = self_signed_cfg(dir.path());
        assert_eq!(read_fingerprint(&cfg).unwrap(), None);
        let names = vec!["localhost".to_owned(), "gate".to_owned()];
        let first = load_or_create(&cfg, &names, &[]).unwrap().unwrap();
        assert_eq!(first.fingerprint.len(), 95);
        let mode = std::fs::metadata(dir.path().join(SELF_SIGNED_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(&cfg, &names, &[]).unwrap().unwrap();
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(read_fingerprint(&cfg).unwrap(), Some(first.fingerprint));
    }

    /// The certificate names the device as clients reach it: each host name (the `.local`
    /// one too) and each address, and nothing else.
    #[test]
    fn the_certificate_names_the_device_by_its_names_and_addresses() {
        use rustls::pki_types::ServerName;
        let dir = tempfile::tempdir().unwrap();
        let cfg = self_signed_cfg(dir.path());
        let names = ["localhost", "gate", "gate.local", "wagate.example.org"].map(String::from);
        let addrs: Vec<IpAddr> = vec![
            "192.168.1.20".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            "fd00::20".parse().unwrap(),
        ];
        load_or_create(&cfg, &names, &addrs).unwrap().unwrap();
        let pem = std::fs::read(dir.path().join(SELF_SIGNED_CERT)).unwrap();
        let der = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        let cert = rustls::server::ParsedCertificate::try_from(&der).unwrap();
        let valid = |name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            rustls::client::verify_server_name(&cert, &name).is_ok()
        };
        for good in
            names
                .iter()
                .map(String::as_str)
                .chain(["192.168.1.20", "127.0.0.1", "fd00::20"])
        {
            assert!(valid(good), "{good} is not in the certificate");
        }
        for bad in ["evil.example", "gate.example", "192.168.1.21", "10.0.0.1"] {
            assert!(!valid(bad), "{bad} should not be in the certificate");
        }
    }

    #[test]
    fn a_loose_key_is_set_back_to_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = self_signed_cfg(dir.path());
        load_or_create(&cfg, &[], &[]).unwrap();
        let key = dir.path().join(SELF_SIGNED_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(&cfg, &[], &[]).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_lone_certificate_is_made_again_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = self_signed_cfg(dir.path());
        let first = load_or_create(&cfg, &[], &[]).unwrap().unwrap();
        std::fs::remove_file(dir.path().join(SELF_SIGNED_KEY)).unwrap();
        let second = load_or_create(&cfg, &[], &[]).unwrap().unwrap();
        assert_ne!(first.fingerprint, second.fingerprint);
    }

    #[test]
    fn files_mode_names_the_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.api.tls = TlsMode::Files;
        cfg.api.tls_cert = dir.path().join("cert.pem");
        cfg.api.tls_key = dir.path().join("key.pem");
        let e = load_or_create(&cfg, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("cert.pem"), "{e}");
        std::fs::write(&cfg.api.tls_cert, "hello").unwrap();
        let e = load_or_create(&cfg, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        // A certificate with a key that is not its own.
        let one = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
        let two = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cfg.api.tls_cert, one.cert.pem()).unwrap();
        std::fs::write(&cfg.api.tls_key, two.serialize_pem()).unwrap();
        assert!(load_or_create(&cfg, &[], &[]).is_err());
        std::fs::write(&cfg.api.tls_key, one.signing_key.serialize_pem()).unwrap();
        let m = load_or_create(&cfg, &[], &[]).unwrap().unwrap();
        assert_eq!(m.fingerprint, fingerprint(one.cert.der()));
    }

    #[test]
    fn fingerprint_form() {
        // SHA-256 of the empty input.
        assert_eq!(
            fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }
}
