//! Applying one event to the inode table: the rules per event type, echoes of our own
//! changes, stale events by `sequence_id`, and the invalidations each change needs.

use super::*;
use crate::fs::tree::shortcut::shown_name;

/// What one event did beyond the table: what the kernel must drop, and which files' cached
/// content belongs to a superseded version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub kernel: Vec<Invalidation>,
    /// Box ids of files that have a new current version.
    pub superseded_content: Vec<Box<str>>,
    /// Box's trash holds something else now (an item went there or left it, ours or not):
    /// `.trash` must be listed again (see `crate::fs::history::trash`).
    pub trash_changed: bool,
}

impl Effects {
    fn push(&mut self, inv: Invalidation) {
        if !self.kernel.contains(&inv) {
            self.kernel.push(inv);
        }
    }

    /// `parent/name` appeared or disappeared: the dentry and the parent's listing.
    fn entry_changed(&mut self, parent: Ino, name: &str) {
        self.push(Invalidation::Entry {
            parent,
            name: name.into(),
        });
        self.push(Invalidation::Inode(parent));
    }
}

/// How an event type is handled (see the module note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Changes nothing we cache.
    Ignore,
    /// The item went to the trash.
    Remove,
    /// Changes extended attributes (lock, shared link, metadata, ...), maybe `stat` too.
    Xattrs { never_echo: bool },
    /// Anything else about an item: compare before and after.
    Upsert,
}

pub(super) fn rule_of(event_type: &str) -> Rule {
    match event_type {
        "ITEM_TRASH" => Rule::Remove,
        "ITEM_DOWNLOAD" | "ITEM_PREVIEW" => Rule::Ignore,
        t if t.starts_with("COMMENT_") || t.starts_with("TASK_") => Rule::Ignore,
        // Box keeps an item's sequence_id and etag when its metadata changes.
        t if t.starts_with("METADATA_INSTANCE_") => Rule::Xattrs { never_echo: true },
        "LOCK_CREATE"
        | "LOCK_DESTROY"
        | "ITEM_SHARED_CREATE"
        | "ITEM_SHARED_UPDATE"
        | "ITEM_SHARED_UNSHARE"
        | "ITEM_MODIFY"
        | "TAG_ITEM_CREATE"
        | "ITEM_SYNC"
        | "ITEM_UNSYNC" => Rule::Xattrs { never_echo: false },
        t if t.starts_with("COLLAB_") => Rule::Xattrs { never_echo: false },
        _ => Rule::Upsert,
    }
}

/// Whether an event of this type changes what Box's trash holds. Box sends no event to the
/// user of a purge (a deletion for good), only of these.
pub(super) fn changes_trash(event_type: &str) -> bool {
    matches!(event_type, "ITEM_TRASH" | "ITEM_UNDELETE_VIA_TRASH")
}

pub(super) fn parse_seq(item: &Item) -> Option<u64> {
    item.sequence_id.as_deref().and_then(|s| s.parse().ok())
}

/// Whether an event about `item` is older than what the table holds.
pub(super) fn is_stale(held: &Attrs, item: &Item) -> bool {
    matches!((held.sequence_id, parse_seq(item)), (Some(h), Some(e)) if e < h)
}

/// An inode's place and attributes, to compare before and after an update.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Snapshot {
    parent: Option<Ino>,
    name: Box<str>,
    attrs: Attrs,
    is_dir: bool,
}

pub(super) fn snapshot(table: &InodeTable, ino: Ino) -> Option<Snapshot> {
    table.get(ino).map(|i| Snapshot {
        parent: i.parent(),
        name: i.name().into(),
        attrs: Attrs {
            // Moved by reads, not by Box.
            atime: None,
            ..i.attrs().clone()
        },
        is_dir: i.is_dir(),
    })
}

/// Applies events to the inode table: ignores stale events and echoes of our own changes,
/// and says what the kernel must forget. Pure: no I/O. Repeats of an event were dropped by
/// the feed before it gets here.
#[derive(Debug)]
pub struct EventApplier {
    /// `"<box id>@<sequence_id>"` of the changes applied recently: a second event of the same
    /// change is not an echo.
    applied: RecentIds,
}

impl Default for EventApplier {
    fn default() -> Self {
        EventApplier::new(DEFAULT_DEDUP_CAPACITY)
    }
}

/// Event ids the mount's feed remembers to drop repeats (the SDKs keep about a thousand), and
/// changes the applier remembers having applied.
pub const DEFAULT_DEDUP_CAPACITY: usize = 4096;

impl EventApplier {
    /// An applier that remembers the last `capacity` changes it applied.
    pub fn new(capacity: usize) -> EventApplier {
        EventApplier {
            applied: RecentIds::new(capacity),
        }
    }

    /// Applies `ev` to `table`; returns what the kernel must be told.
    pub fn apply(&mut self, table: &mut InodeTable, ev: &Event) -> Vec<Invalidation> {
        self.apply_effects(table, ev).kernel
    }

    /// Like [`EventApplier::apply`], and also names the files whose cached content is
    /// superseded.
    pub fn apply_effects(&mut self, table: &mut InodeTable, ev: &Event) -> Effects {
        let mut fx = Effects::default();
        let rule = rule_of(&ev.event_type);
        if rule == Rule::Ignore {
            return fx;
        }
        // Whatever the item (one we never listed, our own change's echo).
        fx.trash_changed = changes_trash(&ev.event_type);
        // A null source (a locked file deleted), a user: nothing in the tree.
        let Some(item) = ev
            .source_item()
            .filter(|i| i.is_file() || i.is_folder() || i.is_web_link())
        else {
            return fx;
        };
        if item.id.is_empty() {
            return fx;
        }
        let trashed = rule == Rule::Remove
            || matches!(item.item_status.as_deref(), Some("trashed" | "deleted"));
        let Some(ino) = table.by_box_id(&item.id) else {
            if !trashed {
                if let Some(parent) = known_parent(table, &item) {
                    self.upsert(table, parent, None, &item, &mut fx);
                }
            }
            return fx;
        };
        let Some(before) = snapshot(table, ino) else {
            return fx;
        };
        if trashed {
            if is_stale(&before.attrs, &item) {
                log::debug!("stale {} of {} ignored", ev.event_type, item.id);
            } else {
                detach(table, ino, &mut fx);
            }
            return fx;
        }
        if ino == ROOT_INO {
            // The mount root itself (renamed or moved elsewhere): attributes only.
            if table.insert_or_update_from_item(ROOT_INO, &item).is_ok()
                && snapshot(table, ROOT_INO).map(|s| s.attrs) != Some(before.attrs)
            {
                fx.push(Invalidation::Attrs(ROOT_INO));
            }
            return fx;
        }
        let parent = match item.parent.as_ref() {
            Some(p) => table.by_box_id(&p.id).filter(|&p| is_dir(table, p)),
            // No parent given (never for user events, but cheap to survive): where it is.
            None => before.parent,
        };
        let same_change = self.applied_change(&item);
        let echo = is_echo(&before, &item, parent)
            && match rule {
                Rule::Xattrs { never_echo } => !never_echo && !same_change,
                _ => true,
            };
        if echo {
            log::trace!(
                "{} of {}: our own change, nothing to do",
                ev.event_type,
                item.id
            );
            return fx;
        }
        match parent {
            Some(parent) => self.upsert(table, parent, Some(ino), &item, &mut fx),
            None => {
                if is_stale(&before.attrs, &item) {
                    return fx;
                }
                // Moved out of the mounted subtree, or into a folder nobody listed.
                detach(table, ino, &mut fx);
                return fx;
            }
        }
        if let Rule::Xattrs { .. } = rule {
            if !is_stale(&before.attrs, &item) && table.get(ino).is_some() {
                table.invalidate_attrs(ino);
                if !fx.kernel.contains(&Invalidation::Inode(ino)) {
                    fx.push(Invalidation::Attrs(ino));
                }
            }
        }
        fx
    }

    /// Inserts or updates `item` under `parent`, and records what changed.
    fn upsert(
        &mut self,
        table: &mut InodeTable,
        parent: Ino,
        ino: Option<Ino>,
        item: &Item,
        fx: &mut Effects,
    ) {
        let before = ino.and_then(|i| snapshot(table, i));
        // Whoever holds the name (ignoring case) is replaced if the update goes through.
        let holder = table
            .lookup_child(parent, &shown_name(item))
            .filter(|&h| Some(h) != ino)
            .and_then(|h| table.get(h).map(|i| (h, Box::<str>::from(i.name()))));
        let new_ino = match table.insert_or_update_from_item(parent, item) {
            Ok(i) => i,
            Err(e) => {
                // A move that cannot be right as things stand (under itself: events of
                // several items out of order): forget where it is, a listing will tell.
                // A name Linux cannot show leaves the item out of the mount.
                use crate::fs::tree::inode::InodeError;
                if matches!(e, InodeError::UnusableName(_) | InodeError::NameTaken(_)) {
                    log::warn!("leaving out Box item {}: {e}", item.id);
                } else {
                    log::debug!("event about {} not applied ({e}); detaching it", item.id);
                }
                if let Some(ino) = ino {
                    detach(table, ino, fx);
                }
                return;
            }
        };
        let Some(after) = snapshot(table, new_ino) else {
            return;
        };
        if let Some((h, name)) = holder {
            if table.lookup_child(parent, &name) != Some(h) {
                fx.push(Invalidation::Delete {
                    parent,
                    child: h,
                    name,
                });
            }
        }
        let Some(before) = before else {
            fx.entry_changed(parent, &after.name);
            self.remember(item);
            return;
        };
        if before == after {
            return;
        }
        self.remember(item);
        if before.parent != after.parent || before.name != after.name {
            if let Some(old_parent) = before.parent {
                fx.entry_changed(old_parent, &before.name);
            }
            if let Some(new_parent) = after.parent {
                fx.entry_changed(new_parent, &after.name);
            }
        }
        if before.attrs != after.attrs {
            let a = &after.attrs;
            let b = &before.attrs;
            let content_changed = a.version != b.version
                || a.sha1 != b.sha1
                || a.size != b.size
                || a.mtime != b.mtime;
            if content_changed && !after.is_dir {
                fx.push(Invalidation::Inode(new_ino));
                if a.version != b.version || a.sha1 != b.sha1 {
                    fx.superseded_content.push(item.id.as_str().into());
                }
            } else {
                fx.push(Invalidation::Attrs(new_ino));
            }
        }
    }

    fn remember(&mut self, item: &Item) {
        if let Some(seq) = parse_seq(item) {
            self.applied.insert(&format!("{}@{seq}", item.id));
        }
    }

    /// Whether this applier applied a change of `item` at the event's `sequence_id`.
    fn applied_change(&self, item: &Item) -> bool {
        parse_seq(item).is_some_and(|seq| self.applied.contains(&format!("{}@{seq}", item.id)))
    }
}

/// The table's directory inode for `item.parent`, if it has one.
pub(super) fn known_parent(table: &InodeTable, item: &Item) -> Option<Ino> {
    let parent = table.by_box_id(&item.parent.as_ref()?.id)?;
    is_dir(table, parent).then_some(parent)
}

pub(super) fn is_dir(table: &InodeTable, ino: Ino) -> bool {
    table.get(ino).is_some_and(|i| i.is_dir())
}

/// The event carries what we hold: same `sequence_id` and `etag`, same place.
pub(super) fn is_echo(held: &Snapshot, item: &Item, parent: Option<Ino>) -> bool {
    let same_seq = matches!(
        (held.attrs.sequence_id, parse_seq(item)),
        (Some(h), Some(e)) if h == e
    );
    let same_etag = match (&held.attrs.etag, &item.etag) {
        (Some(h), Some(e)) => **h == **e,
        _ => true,
    };
    let same_place = parent.is_some()
        && held.parent == parent
        && (item.name.is_empty() || *held.name == *shown_name(item));
    same_seq && same_etag && same_place
}

/// Detaches `ino` (trashed, or moved out of view) and says which dentry went away.
pub(super) fn detach(table: &mut InodeTable, ino: Ino, fx: &mut Effects) {
    match table.remove(ino) {
        Ok(Some(d)) => {
            fx.push(Invalidation::Delete {
                parent: d.parent,
                child: d.ino,
                name: d.name,
            });
            fx.push(Invalidation::Inode(d.parent));
        }
        // Already detached (our own delete, or a repeat): the kernel knows.
        Ok(None) => {}
        Err(e) => log::debug!("cannot detach inode {ino}: {e}"),
    }
}

/// How far [`revalidate_all`] reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevalidateScope {
    /// The table and the kernel's caches. The stream resumed from its position, so the
    /// events it delivers mark stale the stored listings they touch (the journal's
    /// `Touched`); the rest of the store is as current as those events make it.
    Memory,
    /// The store's listings too: events were lost (a position Box no longer keeps), or the
    /// user asked for everything to be listed again.
    MemoryAndStore,
}

/// After an outage too long to trust, or a gap in the stream: every attribute and listing in
/// the table becomes stale, and the kernel drops every dentry and inode it holds from us.
/// Inodes the kernel does not reference have nothing in its caches; negative dentries cannot
/// be named, so they last until their (short, while unhealthy) TTL ends.
/// With [`RevalidateScope::MemoryAndStore`] the metadata store's listings go stale too,
/// those of folders no longer in memory included.
pub fn revalidate_all(table: &mut InodeTable, scope: RevalidateScope) -> Vec<Invalidation> {
    let mut entries: Vec<(Ino, Box<str>)> = Vec::new();
    let mut held: Vec<Ino> = Vec::new();
    let all: Vec<Ino> = table.iter().map(|(ino, _)| ino).collect();
    if scope == RevalidateScope::MemoryAndStore {
        table.journal_all_listings_stale();
    }
    for ino in all {
        table.invalidate_attrs(ino);
        table.invalidate_listing(ino);
        let Some(inode) = table.get(ino) else {
            continue;
        };
        if ino == ROOT_INO || inode.lookups() > 0 {
            held.push(ino);
            if let Some(parent) = inode.parent() {
                entries.push((parent, inode.name().into()));
            }
        }
    }
    entries.sort();
    held.sort_unstable();
    entries
        .into_iter()
        .map(|(parent, name)| Invalidation::Entry { parent, name })
        .chain(held.into_iter().map(Invalidation::Inode))
        .collect()
}
