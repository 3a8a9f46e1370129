//! (being written)
use super::store::Store;

pub fn populate(_store: &mut Store) {}
