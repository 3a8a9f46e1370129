//! The short-lived cache of what Box said about an inode's attributes, and of template
//! schemas. Answers are stamped with the instant their request started, so that an answer
//! overtaken by an invalidation (our own change, or an event) is never stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::names::TemplateRef;
use super::seen::SeenInstances;
use super::values::Schema;
use crate::fs::lock;
use crate::fs::tree::inode::Ino;
use box_client::metadata::MetadataInstance;
use box_client::types::Item;

/// How long values fetched from Box answer reads.
pub const XATTR_TTL: Duration = Duration::from_secs(5);
/// How long a template's schema is trusted for checking values.
const TEMPLATE_TTL: Duration = Duration::from_secs(60);
/// The cache keeps at most about this many inodes; older slots go first.
const MAX_SLOTS: usize = 4096;

/// One answer of Box's (the item, or its metadata instances), and since when answers are
/// worth trusting.
#[derive(Debug)]
struct Part<T> {
    /// Answers from requests started before this instant are stale (an invalidation came).
    valid_from: Option<Instant>,
    value: Option<(Instant, T)>,
}

impl<T> Default for Part<T> {
    fn default() -> Self {
        Part {
            valid_from: None,
            value: None,
        }
    }
}

impl<T: Clone> Part<T> {
    fn fresh(&self) -> Option<T> {
        let (at, v) = self.value.as_ref()?;
        let ok = at.elapsed() < XATTR_TTL && self.valid_from.is_none_or(|f| *at >= f);
        ok.then(|| v.clone())
    }

    fn store(&mut self, started: Instant, value: T) {
        if self.valid_from.is_none_or(|f| started >= f) {
            self.value = Some((started, value));
        }
    }

    /// Forgets the answer, and whatever requests in flight will answer.
    fn invalidate(&mut self, now: Instant) {
        *self = Part {
            valid_from: Some(now),
            value: None,
        };
    }

    /// Box's answer to our own change: newer than any request in flight.
    fn replace(&mut self, now: Instant, value: T) {
        *self = Part {
            valid_from: Some(now),
            value: Some((now, value)),
        };
    }

    fn newest(&self) -> Option<Instant> {
        self.valid_from.max(self.value.as_ref().map(|x| x.0))
    }
}

/// What Box said about one inode.
#[derive(Debug, Default)]
struct Slot {
    item: Part<Arc<Item>>,
    instances: Part<Arc<Vec<MetadataInstance>>>,
}

impl Slot {
    fn newest(&self) -> Option<Instant> {
        self.item.newest().max(self.instances.newest())
    }
}

/// Values fetched for attributes, per inode, for [`XATTR_TTL`]; template schemas for
/// `TEMPLATE_TTL`. Answers are stamped with the instant their request started, so that an
/// answer overtaken by an invalidation is never stored. Our own changes replace what they
/// changed with Box's answer (the item for a lock or a shared link, the instance for
/// metadata) and leave the rest cached, so that reading back what was just set costs
/// nothing.
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

/// A lock, a shared link or metadata changed elsewhere reaches us as an invalidation of the
/// item's inode (its etag does not move for all of them): the values cached for it go.
impl crate::fs::kernel::StaleCache for XattrCache {
    fn invalidate(&self, inv: &crate::fs::kernel::Invalidation) {
        use crate::fs::kernel::Invalidation;
        if let Invalidation::Inode(ino) | Invalidation::Attrs(ino) = inv {
            XattrCache::invalidate(self, *ino);
        }
    }
}

impl XattrCache {
    pub(super) fn item(&self, ino: Ino, table_seq: Option<u64>) -> Option<Arc<Item>> {
        let slots = lock(&self.slots);
        let item = slots.get(&ino)?.item.fresh()?;
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
        slots.get(&ino)?.instances.fresh()
    }

    fn with_slot<R>(&self, ino: Ino, f: impl FnOnce(&mut Slot) -> R) -> R {
        f(slot_of(&mut lock(&self.slots), ino))
    }

    /// Stores an answer to a request started at `started` with `f`, unless the request
    /// began before the last [`XattrCache::clear`].
    fn store_answer(&self, ino: Ino, started: Instant, f: impl FnOnce(&mut Slot)) {
        let mut slots = lock(&self.slots);
        if lock(&self.cleared_at).is_some_and(|c| started < c) {
            return;
        }
        f(slot_of(&mut slots, ino));
    }

    pub(super) fn store_item(&self, ino: Ino, started: Instant, item: Arc<Item>) {
        self.store_answer(ino, started, |s| s.item.store(started, item));
    }

    pub(super) fn store_instances(
        &self,
        ino: Ino,
        started: Instant,
        list: Arc<Vec<MetadataInstance>>,
    ) {
        self.store_answer(ino, started, |s| s.instances.store(started, list));
    }

    /// Forgets what was fetched for `ino`, and whatever requests in flight will answer.
    pub fn invalidate(&self, ino: Ino) {
        let now = Instant::now();
        self.with_slot(ino, |s| {
            s.item.invalidate(now);
            s.instances.invalidate(now);
        });
    }

    /// Forgets the item fetched for `ino` (our change to its lock or link failed, and may
    /// or may not have been applied); its metadata stays cached.
    pub(super) fn invalidate_item(&self, ino: Ino) {
        self.with_slot(ino, |s| s.item.invalidate(Instant::now()));
    }

    /// Box's answer to our own change of `ino`'s lock or shared link.
    pub(super) fn replace_item(&self, ino: Ino, item: Arc<Item>) {
        self.with_slot(ino, |s| s.item.replace(Instant::now(), item));
    }

    /// Applies our own change of `ino`'s metadata to the cached list of instances, when one
    /// is cached; `None` (a failed change, which Box may or may not have applied) forgets
    /// the list instead. The item stays cached: metadata is not part of it.
    pub(super) fn change_instances(
        &self,
        ino: Ino,
        change: Option<impl FnOnce(&mut Vec<MetadataInstance>)>,
    ) {
        let now = Instant::now();
        self.with_slot(ino, |s| match (change, s.instances.fresh()) {
            (Some(change), Some(list)) => {
                let mut list = Vec::clone(&list);
                change(&mut list);
                s.instances.replace(now, Arc::new(list));
            }
            _ => s.instances.invalidate(now),
        });
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

/// `ino`'s slot, made room for when the cache is full.
fn slot_of(slots: &mut HashMap<Ino, Slot>, ino: Ino) -> &mut Slot {
    if slots.len() >= MAX_SLOTS && !slots.contains_key(&ino) {
        prune(slots);
    }
    slots.entry(ino).or_default()
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
    fn our_own_changes_replace_only_what_they_changed() {
        let cache = XattrCache::default();
        let item = Arc::new(Item {
            kind: "file".into(),
            id: "123".into(),
            ..Item::default()
        });
        let inst = |template: &str| MetadataInstance {
            template: template.into(),
            scope: "global".into(),
            ..serde_json::from_value(serde_json::json!({})).unwrap()
        };
        let started = Instant::now();
        cache.store_instances(7, started, Arc::new(vec![inst("a")]));
        // A lock set: the item is Box's answer, the instances stay.
        cache.replace_item(7, item.clone());
        // An item fetch started before our change answers late: not stored over it.
        let mut older = Item::clone(&item);
        older.id = "old".into();
        cache.store_item(7, started, Arc::new(older));
        assert_eq!(
            cache.item(7, None).map(|i| i.id.clone()),
            Some("123".into())
        );
        assert_eq!(cache.instances(7).map(|l| l.len()), Some(1));
        // Metadata created: added to the cached list; the item stays.
        cache.change_instances(7, Some(|l: &mut Vec<MetadataInstance>| l.push(inst("b"))));
        assert_eq!(cache.instances(7).map(|l| l.len()), Some(2));
        assert!(cache.item(7, None).is_some());
        // A failed change forgets the list only.
        cache.change_instances(7, None::<fn(&mut Vec<MetadataInstance>)>);
        assert!(cache.instances(7).is_none());
        assert!(cache.item(7, None).is_some());
        // Nothing cached to change: stays unknown.
        cache.change_instances(7, Some(|l: &mut Vec<MetadataInstance>| l.push(inst("c"))));
        assert!(cache.instances(7).is_none());
        cache.invalidate_item(7);
        assert!(cache.item(7, None).is_none());
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
