//! The local-directory backend: one file per key under a root directory.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoreError;

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: Arc<PathBuf>,
}

fn io(key: &str, source: std::io::Error) -> StoreError {
    StoreError::Io { key: key.into(), source }
}

impl LocalStore {
    pub(super) fn open(url: &str, path: PathBuf) -> Result<Self, StoreError> {
        if path.as_os_str().is_empty() {
            return Err(StoreError::BadUrl { url: url.into(), reason: "empty path".into() });
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| StoreError::BadUrl { url: url.into(), reason: format!("cannot create directory: {e}") })?;
        Ok(Self { root: Arc::new(path) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
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

    pub(super) async fn put(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
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

    pub(super) async fn replace(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let (tmp, path) = self.write_temporary(key, bytes).await?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| io(key, e))
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io(key, e)),
            _ => Ok(()),
        }
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        tokio::fs::try_exists(self.path(key)).await.map_err(|e| io(key, e))
    }

    pub(super) async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_dir_all(self.path(prefix)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io(prefix, e)),
            _ => Ok(()),
        }
    }
}
