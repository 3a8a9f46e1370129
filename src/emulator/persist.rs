//! (being written)
use std::path::PathBuf;
use std::sync::Weak;

use super::anyhow_like::Result;
use super::store::Store;
use super::Shared;

pub struct Persister {
    pub dir: PathBuf,
}

impl Persister {
    pub fn new(dir: PathBuf) -> Result<Persister> {
        Ok(Persister { dir })
    }
    pub fn load(&self) -> Result<Option<Store>> {
        Ok(None)
    }
    pub fn save(&self, _store: &Store) -> Result<()> {
        Ok(())
    }
    pub fn mark_dirty(&self) {}
    pub fn spawn_flusher(&self, _shared: Weak<Shared>) {}
}
