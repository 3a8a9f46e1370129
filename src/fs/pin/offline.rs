//! `user.box.offline` written: pinning an item (after checking that the cache's disk can
//! take it) and unpinning one. Reading it is [`BoxFs::offline_state`].

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{chain_of, path_of, release, space_at, PinRefusal, Root, Signal};
use crate::fs::errno::FsError;
use crate::fs::read::content_cache::ContentCache;
use crate::fs::tree::inode::Ino;
use crate::fs::{lock, BoxFs};
use crate::human::human_bytes;

impl BoxFs {
    /// Pins (`on`) or unpins `ino`. Pinning something already offline changes nothing;
    /// pinning more than the disk can take is ENOSPC; unpinning what is offline only through
    /// a pinned folder is EPERM (unpin the folder); unpinning what is not pinned is fine.
    pub async fn set_offline(&self, ino: Ino, on: bool) -> Result<(), FsError> {
        let Some(cache) = self.content_cache().cloned() else {
            return Err(FsError::new(
                libc::EOPNOTSUPP,
                "this mount keeps no content cache, so nothing can be kept offline",
            ));
        };
        if on {
            self.pin(ino, &cache).await
        } else {
            self.unpin(ino, &cache).await
        }
    }

    async fn pin(&self, ino: Ino, cache: &Arc<ContentCache>) -> Result<(), FsError> {
        // Box's size now: a folder's is its whole subtree.
        self.getattr(ino).await?;
        let (box_id, kind, size, chain, path) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            if inode.is_local() {
                return Err(FsError::new(libc::EBUSY, "the file is not on Box yet"));
            }
            (
                inode.box_id().to_string(),
                inode.kind(),
                inode.attrs().size,
                chain_of(&table, ino),
                path_of(&table, ino).unwrap_or_default(),
            )
        };
        if self.pins.covers(&chain).is_some() {
            return Ok(());
        }
        let space = space_at(cache.dir(), self.pins.opts.keep_free).map_err(|e| {
            FsError::new(
                libc::EIO,
                format!("the content cache's disk ({}): {e}", cache.dir().display()),
            )
        })?;
        // Pins below this item already hold what they downloaded.
        let inside: Vec<Ino> = lock(&self.pins.state)
            .roots
            .values()
            .filter_map(|r| r.ino)
            .collect();
        let inside: BTreeSet<String> = {
            let table = lock(&self.table);
            inside
                .into_iter()
                .filter(|&r| chain_of(&table, r).contains(&box_id))
                .filter_map(|r| table.get(r).map(|i| i.box_id().to_string()))
                .collect()
        };
        let (held_inside, outstanding) = {
            let state = lock(&self.pins.state);
            let held: u64 = state
                .files
                .values()
                .filter(|h| h.done && h.roots.iter().any(|r| inside.contains(r)))
                .map(|h| h.file.size)
                .sum();
            (held, state.outstanding())
        };
        let needed = size.saturating_sub(held_inside);
        let available = space.usable().saturating_sub(outstanding);
        let shown = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        if needed > available {
            let refusal = PinRefusal {
                path: shown.clone(),
                needed,
                available,
                keep_free: space.keep_free,
            };
            lock(&self.pins.state).refused = Some(refusal);
            return Err(FsError::new(
                libc::ENOSPC,
                format!(
                    "pinning {shown} needs {}, and the cache's disk has {} available for it \
                     (keeping {} free)",
                    human_bytes(needed),
                    human_bytes(available),
                    human_bytes(space.keep_free)
                ),
            ));
        }
        {
            let mut state = lock(&self.pins.state);
            state.roots.insert(
                box_id.clone(),
                Root {
                    kind,
                    ino: Some(ino),
                    walked: false,
                },
            );
            self.pins.update_active(&state);
        }
        if let Err(e) = self.pins.save().await {
            let mut state = lock(&self.pins.state);
            state.roots.remove(&box_id);
            self.pins.update_active(&state);
            return Err(FsError::new(
                libc::EIO,
                format!("cannot save the pins: {e}"),
            ));
        }
        log::info!("offline: pinned {shown} (Box id {box_id})");
        self.pins.signal(Signal::Walk(box_id));
        Ok(())
    }

    async fn unpin(&self, ino: Ino, cache: &Arc<ContentCache>) -> Result<(), FsError> {
        let (box_id, chain) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            (inode.box_id().to_string(), chain_of(&table, ino))
        };
        let released = {
            let mut state = lock(&self.pins.state);
            if state.roots.remove(&box_id).is_none() {
                drop(state);
                return match self.pins.covers(&chain) {
                    None => Ok(()),
                    Some(_) => Err(FsError::new(
                        libc::EPERM,
                        "it is inside a pinned folder: unpin that folder",
                    )),
                };
            }
            self.pins.update_active(&state);
            state.let_go(&box_id, |_| false)
        };
        release(cache, released).await;
        self.pins.save_or_warn().await;
        log::info!("offline: unpinned {box_id}");
        Ok(())
    }
}
