//! The in-memory backend, for unit tests and benchmarks that measure everything but storage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::StoreError;

#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    pub(super) fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects.lock().unwrap().get(key).cloned().ok_or_else(|| StoreError::NotFound(key.into()))
    }

    pub(super) fn put(&self, key: &str, bytes: &[u8]) -> bool {
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(key) {
            return false;
        }
        objects.insert(key.to_string(), bytes.to_vec());
        true
    }

    pub(super) fn replace(&self, key: &str, bytes: &[u8]) {
        self.objects.lock().unwrap().insert(key.to_string(), bytes.to_vec());
    }

    pub(super) fn delete(&self, key: &str) {
        self.objects.lock().unwrap().remove(key);
    }

    pub(super) fn exists(&self, key: &str) -> bool {
        self.objects.lock().unwrap().contains_key(key)
    }

    pub(super) fn delete_prefix(&self, prefix: &str) {
        let dir = format!("{prefix}/");
        self.objects.lock().unwrap().retain(|k, _| !k.starts_with(&dir));
    }
}
