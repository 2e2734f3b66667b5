//! Media of received messages: downloaded and decrypted on demand into a bounded cache on
//! disk, then served from the file.
//!
//! A download streams through whatsapp-rust's `download_to_writer` into a temporary file
//! (constant memory whatever the size); only a verified file is renamed into place, so the
//! cache never holds a partial one. Beyond the size bound the least recently used files are
//! removed (a hit refreshes a file's modification time).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;
use wacore::download::Downloadable;
use waproto::whatsapp as wa;
use whatsapp_rust::{Client, ErrorChainExt};

use crate::store::inbound::InboundRecord;

/// The default bound of the media cache: 256 MiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Why media cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no such message, or the message has no media")]
    NotFound,
    #[error("the media expired on WhatsApp's servers")]
    Expired,
    #[error("session '{0}' is not connected")]
    NotConnected(String),
    #[error("media download failed: {0}")]
    Other(String),
}

/// A cached media file, ready to stream.
#[derive(Debug, Clone)]
pub struct MediaFile {
    pub path: PathBuf,
    pub size: u64,
    pub mimetype: String,
    pub file_name: Option<String>,
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: String,
    /// Whether it came from the cache without a download.
    pub cached: bool,
}

/// The cache directory beside the redb file.
pub fn default_dir(store_path: &Path) -> PathBuf {
    store_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("media")
}

/// The bounded on-disk cache.
pub struct MediaCache {
    dir: PathBuf,
    max_bytes: u64,
    inline_max: u64,
    /// One download or eviction at a time (the board has little bandwidth and two cores).
    lock: Mutex<()>,
}

impl MediaCache {
    pub fn new(dir: PathBuf, max_bytes: u64, inline_max: u64) -> Self {
        MediaCache {
            dir,
            max_bytes,
            inline_max,
            lock: Mutex::new(()),
        }
    }

    /// The cache at `dir`, rid of the partial downloads (`.{id}.part`) a crash or power cut
    /// left behind: no download is under way yet, and nothing else would ever remove them.
    pub async fn open(dir: PathBuf, max_bytes: u64, inline_max: u64) -> Self {
        let cache = Self::new(dir, max_bytes, inline_max);
        let d = cache.dir.clone();
        match tokio::task::spawn_blocking(move || remove_partials(&d)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(removed = n, "partial media downloads removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove partial media downloads"),
            Err(e) => tracing::warn!(error = %e, "cannot remove partial media downloads"),
        }
        cache
    }

    pub fn inline_max_bytes(&self) -> u64 {
        self.inline_max
    }

    fn path(&self, session: &str, id: &str) -> PathBuf {
        self.dir.join(session).join(id)
    }

    fn file(&self, path: PathBuf, size: u64, rec: &InboundRecord, cached: bool) -> MediaFile {
        MediaFile {
            path,
            size,
            mimetype: rec
                .mimetype
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            file_name: rec.file_name.clone(),
            kind: rec.kind.clone(),
            cached,
        }
    }

    /// The file when it is cached (its time refreshed, so eviction spares it).
    pub async fn cached(&self, session: &str, rec: &InboundRecord) -> Option<MediaFile> {
        let path = self.path(session, &rec.id);
        let p = path.clone();
        let size = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::options().append(true).open(&p).ok()?;
            let _ = f.set_modified(std::time::SystemTime::now());
            f.metadata().ok().map(|m| m.len())
        })
        .await
        .ok()??;
        Some(self.file(path, size, rec, true))
    }

    /// Remove a deleted session's cached files.
    pub async fn remove_session(&self, session: &str) {
        let _one = self.lock.lock().await;
        let dir = self.dir.join(session);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(session, error = %e, "cannot remove cached media"),
        }
    }

    /// Download and decrypt into the cache, then evict beyond the bound.
    pub async fn fetch(
        &self,
        client: &Client,
        session: &str,
        rec: &InboundRecord,
    ) -> Result<MediaFile, MediaError> {
        let _one = self.lock.lock().await;
        if let Some(hit) = self.cached(session, rec).await {
            return Ok(hit);
        }
        let msg = decode(rec)?;
        let target = downloadable(&msg).ok_or(MediaError::NotFound)?;
        let dir = self.dir.join(session);
        let io = |e: std::io::Error| MediaError::Other(e.to_string());
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let tmp = dir.join(format!(".{}.part", rec.id));
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        let done = client.download_to_writer(target, file).await;
        let file = match done {
            Ok(f) => f,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(classify(&e));
            }
        };
        let size = file.metadata().map_err(io)?.len();
        file.sync_all().map_err(io)?;
        drop(file);
        let path = self.path(session, &rec.id);
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        self.evict(&path).await;
        Ok(self.file(path, size, rec, false))
    }

    /// Download into memory, for media no larger than `limit` (inline embedding).
    pub async fn download_small(
        &self,
        client: &Client,
        rec: &InboundRecord,
        limit: u64,
    ) -> Result<Vec<u8>, MediaError> {
        if rec.size.is_none_or(|s| s > limit) {
            return Err(MediaError::Other("larger than the inline limit".into()));
        }
        let msg = decode(rec)?;
        let target = downloadable(&msg).ok_or(MediaError::NotFound)?;
        client.download(target).await.map_err(|e| classify(&e))
    }

    /// Remove the least recently used files until the cache fits its bound (never `keep`).
    async fn evict(&self, keep: &Path) {
        let (dir, max, keep) = (self.dir.clone(), self.max_bytes, keep.to_path_buf());
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            let mut files = Vec::new();
            let mut total = 0u64;
            for session in std::fs::read_dir(&dir)? {
                let session = session?;
                if !session.file_type()?.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(session.path())? {
                    let f = f?;
                    let m = f.metadata()?;
                    if !m.is_file() || f.file_name().to_string_lossy().starts_with('.') {
                        continue;
                    }
                    total += m.len();
                    files.push((m.modified()?, m.len(), f.path()));
                }
            }
            files.sort();
            let mut removed = 0;
            for (_, len, path) in files {
                if total <= max {
                    break;
                }
                if path == keep {
                    continue;
                }
                std::fs::remove_file(&path)?;
                total -= len;
                removed += 1;
            }
            Ok(removed)
        })
        .await;
        match r {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(removed = n, "media cache evicted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "media cache eviction failed"),
            Err(e) => tracing::warn!(error = %e, "media cache eviction task failed"),
        }
    }
}

fn decode(rec: &InboundRecord) -> Result<wa::Message, MediaError> {
    super::inbound::kept_message(rec)
        .ok_or(MediaError::NotFound)?
        .map_err(|e| MediaError::Other(format!("stored message does not decode: {e}")))
}

/// The media part of a message.
pub(crate) fn downloadable(m: &wa::Message) -> Option<&dyn Downloadable> {
    if let Some(x) = m.image_message.as_option() {
        return Some(x);
    }
    if let Some(x) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        return Some(x);
    }
    if let Some(x) = m.audio_message.as_option() {
        return Some(x);
    }
    if let Some(x) = m.document_message.as_option() {
        return Some(x);
    }
    if let Some(x) = m.sticker_message.as_option() {
        return Some(x);
    }
    None
}

/// 404 and 410 from the CDN mean WhatsApp no longer has the file (it expired there).
fn classify(e: &anyhow::Error) -> MediaError {
    match e.http_status() {
        Some(404 | 410) => MediaError::Expired,
        _ => MediaError::Other(e.to_string()),
    }
}

/// Remove the `.{id}.part` files under the sessions' directories of `dir`; how many.
fn remove_partials(dir: &Path) -> std::io::Result<usize> {
    let sessions = match std::fs::read_dir(dir) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for session in sessions {
        let session = session?;
        if !session.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(session.path())? {
            let f = f?;
            let name = f.file_name();
            let name = name.to_string_lossy();
            if f.file_type()?.is_file() && name.starts_with('.') && name.ends_with(".part") {
                std::fs::remove_file(f.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Shared handle type.
pub type SharedCache = Arc<MediaCache>;

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, session: &str, id: &str, len: usize, age_s: u64) -> PathBuf {
        let d = dir.join(session);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(id);
        std::fs::write(&p, vec![0u8; len]).unwrap();
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
        std::fs::File::options()
            .append(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        p
    }

    #[tokio::test]
    async fn the_least_recently_used_files_go_first_beyond_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::new(tmp.path().to_path_buf(), 2500, 0);
        let oldest = put(tmp.path(), "a", "msg_1", 1000, 300);
        let old = put(tmp.path(), "b", "msg_2", 1000, 200);
        let partial = put(tmp.path(), "a", ".msg_9.part", 5000, 400);
        let newest = put(tmp.path(), "a", "msg_3", 1000, 0);
        cache.evict(&newest).await;
        assert!(!oldest.exists(), "oldest removed");
        assert!(old.exists() && newest.exists(), "2000 bytes fit in 2500");
        assert!(
            partial.exists(),
            "a download under way is not counted nor removed"
        );

        // A hit refreshes a file: then the other one is the oldest.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let rec = InboundRecord {
            id: "msg_2".into(),
            kind: "image".into(),
            ..Default::default()
        };
        let hit = cache.cached("b", &rec).await.unwrap();
        assert!(hit.cached);
        assert_eq!(hit.size, 1000);
        assert_eq!(hit.mimetype, "application/octet-stream");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let newer = put(tmp.path(), "c", "msg_4", 1000, 0);
        cache.evict(&newer).await;
        assert!(old.exists(), "refreshed by the hit");
        assert!(!newest.exists(), "now the least recently used");
        assert!(cache.cached("x", &rec).await.is_none());

        cache.remove_session("b").await;
        assert!(!tmp.path().join("b").exists());
    }

    #[tokio::test]
    async fn opening_the_cache_removes_partial_downloads_left_by_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let kept = put(tmp.path(), "a", "msg_1", 100, 0);
        let partial = put(tmp.path(), "a", ".msg_2.part", 100, 0);
        let other = put(tmp.path(), "b", ".msg_3.part", 100, 0);
        let cache = MediaCache::open(tmp.path().to_path_buf(), 10_000, 0).await;
        assert!(kept.exists(), "cached media stays");
        assert!(!partial.exists() && !other.exists(), "partial downloads go");
        assert_eq!(cache.inline_max_bytes(), 0);
        // A cache directory not made yet is no error.
        let none = MediaCache::open(tmp.path().join("none"), 10_000, 0).await;
        assert_eq!(none.inline_max_bytes(), 0);
    }
}
