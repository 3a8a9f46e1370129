//! Our own changes in flight: events about an item (or, for a creation, a name) wait until
//! the mount has recorded Box's answer to its own request.

use super::*;

/// The mount's own changes that Box has not answered yet (or whose answer is not in the
/// table yet). The echo of a change can arrive before the answer is recorded; an event about
/// an item (or, for creations, a name) listed here waits until the change is done, and is
/// then applied as usual: by then the table holds what the echo carries, and it tells the
/// kernel nothing.
///
/// The mount takes a guard before it sends the request and drops it after recording Box's
/// answer (or the failure). Events about other items are not held up.
#[derive(Debug, Default)]
pub struct OwnChanges {
    busy: Mutex<std::collections::HashMap<Box<str>, usize>>,
    pub(super) released: tokio::sync::Notify,
}

/// One change in flight; dropping it ends it.
#[derive(Debug)]
#[must_use = "the change ends when the guard is dropped"]
pub struct OwnChange {
    changes: Arc<OwnChanges>,
    key: Box<str>,
}

impl OwnChanges {
    pub fn new() -> Arc<OwnChanges> {
        Arc::new(OwnChanges::default())
    }

    /// A change of the existing item `box_id` (rename, move, new version, trash, lock, ...).
    pub fn item(self: &Arc<Self>, box_id: &str) -> OwnChange {
        self.begin(item_key(box_id))
    }

    /// A creation of `name` in the folder `parent_id` (file, folder, copy): the new item's
    /// id is not known until Box answers.
    pub fn name(self: &Arc<Self>, parent_id: &str, name: &str) -> OwnChange {
        self.begin(name_key(parent_id, name))
    }

    fn begin(self: &Arc<Self>, key: Box<str>) -> OwnChange {
        *self.lock().entry(key.clone()).or_insert(0) += 1;
        OwnChange {
            changes: self.clone(),
            key,
        }
    }

    /// Whether an event about `item` must wait for one of our changes.
    pub(super) fn holds(&self, item: &Item) -> bool {
        let busy = self.lock();
        if busy.is_empty() {
            return false;
        }
        busy.contains_key(&item_key(&item.id))
            || item
                .parent
                .as_ref()
                .is_some_and(|p| busy.contains_key(&name_key(&p.id, &item.name)))
    }

    fn lock(&self) -> MutexGuard<'_, std::collections::HashMap<Box<str>, usize>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for OwnChange {
    fn drop(&mut self) {
        let mut busy = self.changes.lock();
        if let Some(n) = busy.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.key);
            }
        }
        drop(busy);
        // One waiter (the follower); a permit is kept if it is busy right now.
        self.changes.released.notify_one();
    }
}

pub(super) fn item_key(box_id: &str) -> Box<str> {
    format!("i/{box_id}").into()
}

pub(super) fn name_key(parent_id: &str, name: &str) -> Box<str> {
    format!("n/{parent_id}/{}", name.to_lowercase()).into()
}
