//! The control socket: how CLI verbs reach a running daemon.
//!
//! redb locks its file to one process, so while the daemon runs a CLI command cannot open the
//! store. The daemon listens on a unix socket in the data directory (mode 0600: only the
//! service's user, and root, may talk to it); each connection carries one JSON request line
//! and gets one JSON response line. With no daemon running, the CLI opens the store itself
//! and runs the same [`execute`] on a manager whose sessions do not start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::auth::{self, KeyError, KeySpec, Setup};
use crate::engine::{EngineError, SessionManager};

/// One CLI request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    SessionList,
    SessionAdd {
        id: String,
    },
    SessionRemove {
        id: String,
    },
    SessionStart {
        id: String,
    },
    SessionStop {
        id: String,
    },
    /// Create an API key; the answer holds it (`{"key", "id"}`). Closes first-boot setup.
    KeyCreate(KeySpec),
}

/// The answer: `result` on success, `error` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    fn ok(value: impl Serialize) -> Self {
        Response {
            result: Some(serde_json::to_value(value).unwrap_or(serde_json::Value::Null)),
            error: None,
        }
    }

    fn err(message: impl ToString) -> Self {
        Response {
            result: None,
            error: Some(message.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad answer from the daemon: {0}")]
    Protocol(String),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Run one request against a manager. `live` says whether sessions may run now: false for
/// the CLI's own manager over the store, and for the daemon's while first-boot setup is open
/// (a start then only marks the session to start later). `setup` is the daemon's handle,
/// closed when a key is created.
pub async fn execute(
    mgr: &SessionManager,
    setup: Option<&Setup>,
    req: Request,
    live: bool,
) -> Response {
    let result: Result<serde_json::Value, ExecError> = async {
        Ok(match req {
            Request::KeyCreate(spec) => {
                let new = auth::create_key(mgr.store(), spec).await?;
                if let Some(setup) = setup {
                    setup.close();
                }
                serde_json::json!({ "key": new.token, "id": new.record.id })
            }
            Request::SessionList => serde_json::to_value(mgr.list().await?).unwrap_or_default(),
            Request::SessionAdd { id } => {
                serde_json::to_value(mgr.create(&id, live).await?).unwrap_or_default()
            }
            Request::SessionRemove { id } => {
                mgr.delete(&id).await?;
                serde_json::json!({ "deleted": id })
            }
            Request::SessionStart { id } if live => {
                serde_json::to_value(mgr.start(&id).await?).unwrap_or_default()
            }
            Request::SessionStart { id } => {
                mgr.enable(&id).await?;
                serde_json::to_value(mgr.get(&id).await?).unwrap_or_default()
            }
            Request::SessionStop { id } => {
                serde_json::to_value(mgr.stop(&id).await?).unwrap_or_default()
            }
        })
    }
    .await;
    match result {
        Ok(v) => Response::ok(v),
        Err(e) => Response::err(e),
    }
}

/// The daemon's side: listen on `path` until the returned task is aborted.
pub fn serve(
    path: &Path,
    mgr: SessionManager,
    setup: Setup,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A socket file left by a killed daemon would make bind fail; we hold the store's lock,
    // so no other daemon can be using it.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let mgr = mgr.clone();
            let setup = setup.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &mgr, &setup).await {
                    tracing::debug!(error = %e, "control connection");
                }
            });
        }
    }))
}

async fn answer(stream: UnixStream, mgr: &SessionManager, setup: &Setup) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // One request line, bounded.
    let mut reader = BufReader::new(read).take(64 * 1024);
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => execute(mgr, Some(setup), req, !setup.is_open()).await,
        Err(e) => Response::err(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// The CLI's side: send one request to the daemon. `Ok(None)` when no daemon listens.
pub async fn call(path: &Path, req: &Request) -> Result<Option<Response>, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io(e)),
    };
    let (read, mut write) = stream.into_split();
    let mut body = serde_json::to_vec(req).map_err(|e| ControlError::Protocol(e.to_string()))?;
    body.push(b'\n');
    write.write_all(&body).await.map_err(io)?;
    let mut line = String::new();
    BufReader::new(read)
        .take(16 * 1024 * 1024)
        .read_line(&mut line)
        .await
        .map_err(io)?;
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| ControlError::Protocol(e.to_string()))
}
