//! The short-lived cache of what Box said about an inode's attributes, and of template
//! schemas. Answers are stamped with the instant their request started, so that an answer
//! overtaken by an invalidation (our own change, or an event) is never stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::names::TemplateRef;
use super::seen::SeenInstances;
use super::values::Schema;
use crate::api::metadata::MetadataInstance;
use crate::api::types::Item;
use crate::fs::inode::Ino;
use crate::fs::lock;

/// How long values fetched from Box answer reads.
pub const XATTR_TTL: Duration = Duration::from_secs(5);
/// How long a template's schema is trusted for checking values.
const TEMPLATE_TTL: Duration = Duration::from_secs(60);
/// The cache keeps at most about this many inodes; older slots go first.
const MAX_SLOTS: usize = 4096;

/// What Box said about one inode, and since when it is worth trusting.
#[derive(Debug, Default)]
struct Slot {
    /// Answers from requests started before this instant are stale (an invalidation came).
    valid_from: Option<Instant>,
    item: Option<(Instant, Arc<Item>)>,
    instances: Option<(Instant, Arc<Vec<MetadataInstance>>)>,
}

impl Slot {
    fn newest(&self) -> Option<Instant> {
        [
            self.valid_from,
            self.item.as_ref().map(|x| x.0),
            self.instances.as_ref().map(|x| x.0),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// Values fetched for attributes, per inode, for [`XATTR_TTL`]; template schemas for
/// `TEMPLATE_TTL`. Answers are stamped with the instant their request started, so that an
/// answer overtaken by an invalidation is never stored.
#[derive(Debug, Default)]
pub struct XattrCache {
    slots: std::sync::Mutex<HashMap<Ino, Slot>>,
    templates: std::sync::Mutex<HashMap<TemplateRef, (Instant, Arc<Schema>)>>,
    /// What readers last saw of metadata instances; [`XattrCache::invalidate`] leaves it
    /// alone, since it is the basis writes are checked against, not an answer to reads.
    pub(super) seen: SeenInstances,
    /// Answers from requests started before this are stale for every inode
    /// ([`XattrCache::clear`]). Taken only while `slots` is held.
    cleared_at: std::sync::Mutex<Option<Instant>>,
}

fn fresh<T: Clone>(entry: &Option<(Instant, T)>, valid_from: Option<Instant>) -> Option<T> {
    let (at, v) = entry.as_ref()?;
    let ok = at.elapsed() < XATTR_TTL && valid_from.is_none_or(|f| *at >= f);
    ok.then(|| v.clone())
}

impl XattrCache {
    pub(super) fn item(&self, ino: Ino, table_seq: Option<u64>) -> Option<Arc<Item>> {
        let slots = lock(&self.slots);
        let slot = slots.get(&ino)?;
        let item = fresh(&slot.item, slot.valid_from)?;
        // The table learnt of a newer version of the item (a listing, an event).
        let cached_seq = item
            .sequence_id
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok());
        match (table_seq, cached_seq) {
            (Some(t), Some(c)) if t > c => None,
            _ => Some(item),
        }
    }

    pub(super) fn instances(&self, ino: Ino) -> Option<Arc<Vec<MetadataInstance>>> {
        let slots = lock(&self.slots);
        let slot = slots.get(&ino)?;
        fresh(&slot.instances, slot.valid_from)
    }

    fn with_slot(&self, ino: Ino, started: Instant, f: impl FnOnce(&mut Slot)) {
        let mut slots = lock(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(&ino) {
            prune(&mut slots);
        }
        if lock(&self.cleared_at).is_some_and(|c| started < c) {
            return;
        }
        let slot = slots.entry(ino).or_default();
        if slot.valid_from.is_none_or(|f| started >= f) {
            f(slot);
        }
    }

    pub(super) fn store_item(&self, ino: Ino, started: Instant, item: Arc<Item>) {
        self.with_slot(ino, started, |s| s.item = Some((started, item)));
    }

    pub(super) fn store_instances(
        &self,
        ino: Ino,
        started: Instant,
        list: Arc<Vec<MetadataInstance>>,
    ) {
        self.with_slot(ino, started, |s| s.instances = Some((started, list)));
    }

    /// Forgets what was fetched for `ino`, and whatever requests in flight will answer.
    pub fn invalidate(&self, ino: Ino) {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(&ino) {
            prune(&mut slots);
        }
        slots.insert(
            ino,
            Slot {
                valid_from: Some(now),
                ..Slot::default()
            },
        );
    }

    /// Forgets every value and schema, and whatever requests in flight will answer.
    pub fn clear(&self) {
        let mut slots = lock(&self.slots);
        *lock(&self.cleared_at) = Some(Instant::now());
        slots.clear();
        lock(&self.templates).clear();
    }

    pub(super) fn template(&self, tref: &TemplateRef) -> Option<Arc<Schema>> {
        let templates = lock(&self.templates);
        let (at, schema) = templates.get(tref)?;
        (at.elapsed() < TEMPLATE_TTL).then(|| schema.clone())
    }

    pub(super) fn store_template(&self, tref: &TemplateRef, schema: Arc<Schema>) {
        let mut templates = lock(&self.templates);
        templates.retain(|_, (at, _)| at.elapsed() < TEMPLATE_TTL);
        templates.insert(tref.clone(), (Instant::now(), schema));
    }
}

/// Drops the older half of the slots. A request in flight for longer than the younger half
/// has lived could then store an answer an invalidation had overtaken; the cache is small
/// enough that this takes thousands of invalidations during one request.
fn prune(slots: &mut HashMap<Ino, Slot>) {
    let mut ages: Vec<Instant> = slots.values().filter_map(Slot::newest).collect();
    ages.sort_unstable();
    let cut = ages.get(ages.len() / 2).copied();
    slots.retain(|_, s| s.newest() >= cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_drops_answers_an_invalidation_overtook() {
        let cache = XattrCache::default();
        let item = Arc::new(Item {
            kind: "file".into(),
            id: "123".into(),
            sequence_id: Some("4".into()),
            ..Item::default()
        });
        let before = Instant::now();
        cache.store_item(7, before, item.clone());
        assert!(cache.item(7, Some(4)).is_some());
        // The table knows a newer version.
        assert!(cache.item(7, Some(5)).is_none());
        cache.invalidate(7);
        assert!(cache.item(7, None).is_none());
        // A request started before the invalidation answers late: not stored.
        cache.store_item(7, before, item.clone());
        assert!(cache.item(7, None).is_none());
        cache.store_item(7, Instant::now(), item);
        assert!(cache.item(7, None).is_some());
        assert!(cache.instances(7).is_none());
    }

    #[test]
    fn clear_forgets_everything_and_late_answers() {
        let cache = XattrCache::default();
        let item = Arc::new(Item {
            kind: "file".into(),
            id: "123".into(),
            ..Item::default()
        });
        let before = Instant::now();
        cache.store_item(7, before, item.clone());
        cache.store_item(8, before, item.clone());
        cache.clear();
        assert!(cache.item(7, None).is_none() && cache.item(8, None).is_none());
        // A request started before the clear answers late, for an inode never seen.
        cache.store_item(9, before, item.clone());
        assert!(cache.item(9, None).is_none());
        cache.store_item(9, Instant::now(), item);
        assert!(cache.item(9, None).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = XattrCache::default();
        for ino in 0..(MAX_SLOTS as u64 * 3) {
            cache.invalidate(ino);
        }
        assert!(lock(&cache.slots).len() <= MAX_SLOTS);
    }
}
