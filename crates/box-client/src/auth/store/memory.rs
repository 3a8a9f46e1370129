//! `MemoryTokenStore`: a pair shared by the authenticators of one process (say, one per
//! user or one per runtime). Its lock is an async mutex, so it serializes refreshes within
//! the process only; it keeps nothing across restarts.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{LockRelease, StoreLock, TokenPair, TokenStore};
use crate::error::BoxResult;

#[derive(Default)]
pub struct MemoryTokenStore {
    pair: Mutex<Option<TokenPair>>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl MemoryTokenStore {
    pub fn new() -> MemoryTokenStore {
        MemoryTokenStore::default()
    }

    pub fn with_pair(pair: TokenPair) -> MemoryTokenStore {
        MemoryTokenStore {
            pair: Mutex::new(Some(pair)),
            lock: Arc::default(),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TokenPair>> {
        // The slot is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.pair.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("holds_pair", &self.slot().is_some())
            .finish()
    }
}

struct MemoryLock(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>);

#[async_trait]
impl LockRelease for MemoryLock {
    async fn release(self: Box<Self>) -> BoxResult<()> {
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self) -> BoxResult<Option<TokenPair>> {
        Ok(self.slot().clone())
    }

    async fn save(&self, pair: &TokenPair) -> BoxResult<()> {
        *self.slot() = Some(pair.clone());
        Ok(())
    }

    async fn clear(&self) -> BoxResult<()> {
        *self.slot() = None;
        Ok(())
    }

    async fn lock(&self) -> BoxResult<StoreLock> {
        Ok(StoreLock::new(MemoryLock(
            self.lock.clone().lock_owned().await,
        )))
    }
}
