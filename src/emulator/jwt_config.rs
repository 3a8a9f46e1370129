//! (being written)
use std::path::Path;

use super::anyhow_like::Result;
use super::store::Store;

pub fn register(_store: &mut Store, _path: &Path) -> Result<()> {
    Ok(())
}
