//! The object store: where inputs, intermediate proofs and results live, under deterministic keys.
//!
//! Backends: a local directory (the embedded fleet's default) and memory (unit tests). Writes are
//! first-writer-wins: a task redelivered after its output was written does not replace it, so a
//! key never holds two different proofs over its life.
//!
//! Store URLs: `file:///abs/path`, a plain path, or `memory:`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} does not exist")]
    NotFound(String),
    #[error("invalid store key {0:?}")]
    BadKey(String),
    #[error("store i/o on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad store url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

impl StoreError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io { .. })
    }
}

#[derive(Clone, Debug)]
pub enum Store {
    Local(LocalStore),
    Memory(MemoryStore),
}

impl Store {
    /// Opens the store a URL names; a local directory is created if missing.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        if url == "memory:" {
            return Ok(Store::Memory(MemoryStore::default()));
        }
        let path = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if url.contains("://") => {
                return Err(StoreError::BadUrl { url: url.into(), reason: "unsupported scheme".into() })
            }
            None => PathBuf::from(url),
        };
        if path.as_os_str().is_empty() {
            return Err(StoreError::BadUrl { url: url.into(), reason: "empty path".into() });
        }
        std::fs::create_dir_all(&path).map_err(|e| StoreError::BadUrl {
            url: url.into(),
            reason: format!("cannot create directory: {e}"),
        })?;
        Ok(Store::Local(LocalStore { root: Arc::new(path) }))
    }

    /// The default local store: `$ZKFLEET_HOME` or the user's cache directory, then `zkfleet`.
    pub fn default_url() -> String {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("zkfleet").to_string_lossy().into_owned()
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let timer = crate::metrics::StoreTimer::start();
        timer.read(match self {
            Store::Local(s) => s.get(key).await,
            Store::Memory(s) => s.get(key),
        })
    }

    /// Writes `bytes` under `key` unless the key exists; returns whether this call wrote it.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let timer = crate::metrics::StoreTimer::start();
        timer.write(bytes.len(), match self {
            Store::Local(s) => s.put(key, bytes).await,
            Store::Memory(s) => Ok(s.put(key, bytes)),
        })
    }

    /// Writes `bytes` under `key`, replacing what is there. Only for small records that change
    /// (the last error of a task); proofs and inputs use [`Store::put`].
    pub async fn replace(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Store::Local(s) => s.replace(key, bytes).await,
            Store::Memory(s) => {
                s.objects.lock().unwrap().insert(key.to_string(), bytes.to_vec());
                Ok(())
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Store::Local(s) => match tokio::fs::remove_file(s.path(key)).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(io(key, e)),
                _ => Ok(()),
            },
            Store::Memory(s) => {
                s.objects.lock().unwrap().remove(key);
                Ok(())
            }
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        match self {
            Store::Local(s) => Ok(tokio::fs::try_exists(s.path(key)).await.map_err(|e| io(key, e))?),
            Store::Memory(s) => Ok(s.objects.lock().unwrap().contains_key(key)),
        }
    }

    /// Removes every object whose key starts with `prefix/`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        check_key(prefix)?;
        match self {
            Store::Local(s) => match tokio::fs::remove_dir_all(s.path(prefix)).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(io(prefix, e)),
                _ => Ok(()),
            },
            Store::Memory(s) => {
                let dir = format!("{prefix}/");
                s.objects.lock().unwrap().retain(|k, _| !k.starts_with(&dir));
                Ok(())
            }
        }
    }
}

/// Keys are relative paths of plain segments: no `..`, no empty segment, no leading slash.
fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
    if ok { Ok(()) } else { Err(StoreError::BadKey(key.into())) }
}

fn io(key: &str, source: std::io::Error) -> StoreError {
    StoreError::Io { key: key.into(), source }
}

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: Arc<PathBuf>,
}

impl LocalStore {
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound(key.into())),
            Err(e) => Err(io(key, e)),
        }
    }

    /// Writes `bytes` to a private temporary file next to `key`'s place: readers never see a
    /// partial object. Returns the temporary file and the final path.
    async fn write_temporary(&self, key: &str, bytes: &[u8]) -> Result<(PathBuf, PathBuf), StoreError> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent under the root");
        tokio::fs::create_dir_all(dir).await.map_err(|e| io(key, e))?;
        let tmp = dir.join(format!(".tmp-{}", rand::random::<u64>()));
        tokio::fs::write(&tmp, bytes).await.map_err(|e| io(key, e))?;
        Ok((tmp, path))
    }

    async fn put(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        // Link the temporary file into place: the link fails if another writer got there first.
        let (tmp, path) = self.write_temporary(key, bytes).await?;
        let linked = tokio::fs::hard_link(&tmp, &path).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(key, e)),
        }
    }

    async fn replace(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let (tmp, path) = self.write_temporary(key, bytes).await?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| io(key, e))
    }
}

#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects.lock().unwrap().get(key).cloned().ok_or_else(|| StoreError::NotFound(key.into()))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> bool {
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(key) {
            return false;
        }
        objects.insert(key.to_string(), bytes.to_vec());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(store: Store) {
        assert!(matches!(store.get("jobs/a/x").await, Err(StoreError::NotFound(_))));
        assert!(store.put("jobs/a/x", b"one").await.unwrap());
        assert!(!store.put("jobs/a/x", b"two").await.unwrap(), "first writer wins");
        assert_eq!(store.get("jobs/a/x").await.unwrap(), b"one");
        assert!(store.exists("jobs/a/x").await.unwrap());
        store.replace("jobs/a/note", b"first").await.unwrap();
        store.replace("jobs/a/note", b"second").await.unwrap();
        assert_eq!(store.get("jobs/a/note").await.unwrap(), b"second");
        store.delete("jobs/a/note").await.unwrap();
        store.delete("jobs/a/note").await.unwrap();
        assert!(!store.exists("jobs/a/note").await.unwrap());
        store.put("jobs/b/y", b"keep").await.unwrap();
        store.delete_prefix("jobs/a").await.unwrap();
        assert!(!store.exists("jobs/a/x").await.unwrap());
        assert!(store.exists("jobs/b/y").await.unwrap());
        for bad in ["", "/abs", "jobs/../etc", "jobs//x", "jobs/./x"] {
            assert!(matches!(store.put(bad, b"").await, Err(StoreError::BadKey(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn memory_store_behaves_like_a_store() {
        exercise(Store::open("memory:").unwrap()).await;
    }

    #[tokio::test]
    async fn local_store_behaves_like_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        exercise(Store::open(&url).unwrap()).await;
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("jobs/b")).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn unsupported_urls_are_rejected() {
        assert!(matches!(Store::open("ftp://x/y"), Err(StoreError::BadUrl { .. })));
        assert!(matches!(Store::open(""), Err(StoreError::BadUrl { .. })));
    }
}
