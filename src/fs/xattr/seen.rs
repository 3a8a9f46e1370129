//! What readers of the mount last saw of each metadata instance: the basis a later write is
//! checked against. The attribute cache cannot serve for this, because the events task drops
//! it as soon as Box reports another writer's change; a write checked against a fresh fetch
//! would then pass and overwrite that change although nobody here ever saw it. So a value
//! handed to a reader is remembered here until this mount writes that instance (whatever the
//! outcome) or a reader looks again, and a write finding Box's value different from the one
//! seen is refused with EBUSY.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::names::TemplateRef;
use crate::fs::lock;
use crate::fs::tree::inode::Ino;

/// How long a value read stays the basis of writes. A write this much later than the read
/// is checked only against what Box has when it is made.
const SEEN_TTL: Duration = Duration::from_secs(3600);
/// At most about this many instances are remembered; the oldest go first.
const MAX_SEEN: usize = 4096;

/// The values of one instance as a reader saw them; `None`: the item had no such instance.
pub(super) type SeenValues = Option<Map<String, Value>>;

/// The last values handed to readers, per inode and template.
#[derive(Debug, Default)]
pub(super) struct SeenInstances {
    seen: std::sync::Mutex<HashMap<(Ino, TemplateRef), (Instant, SeenValues)>>,
}

impl SeenInstances {
    /// Remembers that a reader was shown `values` of `tref` on `ino`.
    pub(super) fn record(&self, ino: Ino, tref: &TemplateRef, values: SeenValues) {
        let mut seen = lock(&self.seen);
        let key = (ino, tref.clone());
        if seen.len() >= MAX_SEEN && !seen.contains_key(&key) {
            seen.retain(|_, (at, _)| at.elapsed() < SEEN_TTL);
            if seen.len() >= MAX_SEEN {
                let mut ages: Vec<Instant> = seen.values().map(|(at, _)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                seen.retain(|_, (at, _)| *at >= cut);
            }
        }
        seen.insert(key, (Instant::now(), values));
    }

    /// What a reader last saw of `tref` on `ino`, if anything was seen lately.
    pub(super) fn get(&self, ino: Ino, tref: &TemplateRef) -> Option<SeenValues> {
        let seen = lock(&self.seen);
        let (at, values) = seen.get(&(ino, tref.clone()))?;
        (at.elapsed() < SEEN_TTL).then(|| values.clone())
    }

    /// Forgets what was seen of `tref` on `ino`: this mount is writing it.
    pub(super) fn forget(&self, ino: Ino, tref: &TemplateRef) {
        lock(&self.seen).remove(&(ino, tref.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tref(t: &str) -> TemplateRef {
        TemplateRef {
            scope: "global".into(),
            template: t.into(),
        }
    }

    #[test]
    fn remembers_until_forgotten() {
        let seen = SeenInstances::default();
        assert_eq!(seen.get(1, &tref("a")), None);
        let values = json!({"k": 1}).as_object().cloned();
        seen.record(1, &tref("a"), values.clone());
        seen.record(1, &tref("b"), None);
        assert_eq!(seen.get(1, &tref("a")), Some(values));
        assert_eq!(seen.get(1, &tref("b")), Some(None));
        assert_eq!(seen.get(2, &tref("a")), None);
        seen.forget(1, &tref("a"));
        assert_eq!(seen.get(1, &tref("a")), None);
        assert_eq!(seen.get(1, &tref("b")), Some(None));
    }

    #[test]
    fn stays_bounded_and_keeps_the_newest() {
        let seen = SeenInstances::default();
        for ino in 0..(MAX_SEEN as u64 * 3) {
            seen.record(ino, &tref("a"), None);
        }
        assert!(lock(&seen.seen).len() <= MAX_SEEN);
        assert_eq!(seen.get(MAX_SEEN as u64 * 3 - 1, &tref("a")), Some(None));
    }
}
