//! Fetching media by URL for a send: `http`/`https` only, a size cap and a time limit, on the
//! caller's (blocking) thread. TLS is rustls with ring and the Mozilla roots.

use std::io::Read;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("fetching {url}: {message}")]
    Http { url: String, message: String },
    #[error("fetching {url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("fetching {url}: larger than the {limit} byte limit")]
    TooLarge { url: String, limit: u64 },
}

/// What a fetch brought back.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The response's media type, without parameters.
    pub content_type: Option<String>,
}

/// GET `url`, reading at most `limit` bytes, within `timeout` overall. Blocking.
pub fn fetch(url: &str, limit: u64, timeout: Duration) -> Result<Fetched, FetchError> {
    let http = |e: ureq::Error| FetchError::Http {
        url: url.to_string(),
        message: e.to_string(),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(5)
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(http)?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "application/octet-stream");
    let mut bytes = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FetchError::Http {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > limit {
        return Err(FetchError::TooLarge {
            url: url.to_string(),
            limit,
        });
    }
    Ok(Fetched {
        bytes,
        content_type,
    })
}
