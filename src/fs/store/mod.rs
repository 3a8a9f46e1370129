//! The metadata store: the inode table's Box items kept on disk in the mount's cache
//! directory (`metadata.sqlite3`), so that a remount starts from what the last mount knew
//! instead of walking Box again. It owns the database file, its schema, whose account and
//! root folder it describes, and the event stream position its rows are current to.
//!
//! **Why SQLite** (through `rusqlite` with its bundled library): one file, crash-safe
//! transactions (write-ahead log: a `kill -9` at any moment leaves the last committed state),
//! an index on the parent column for listing one folder's children, single statements for the
//! rare bulk changes (every listing stale at once, a folder's whole subtree gone), and a file
//! anyone can inspect with `sqlite3`. The bundled build needs no system library.
//!
//! **What a row is.** One row per Box item the mount has seen in its tree: id, kind, parent
//! id, name, size, times, etag, `sequence_id`, version, SHA-1, and for folders whether the
//! rows under it are a complete listing. Inode numbers are not stored: they follow from the
//! Box id (`tree::inode`), so they are the same at every mount.
//!
//! **How it is kept.** The inode table journals what changed ([`StoreBatch`]); the mount
//! writes each batch in one transaction ([`MetaStore::apply`]) together with the event
//! stream position the batch is current to, so after a crash the stream is read again from
//! a position no later than the rows. Nothing is ever written by dumping the whole table.
//! Evicting an inode from memory leaves its row: the store holds the cold part of the tree.
//!
//! **Trust.** A complete listing read back ([`MetaStore::listing`]) is served as Box's answer
//! only after the mount caught up with the events since the saved position; when that is
//! impossible (the position is too old, the store belongs to another account or root folder)
//! the mount calls [`MetaStore::mark_all_stale`], which keeps the rows (their inode numbers
//! and names) but makes every folder be listed from Box again on its first access.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// The store's file name inside the cache directory.
pub const STORE_FILE: &str = "metadata.sqlite3";

/// Bumped when the schema changes; a store of another version is started afresh.
/// 2: `kind` (web links) in place of `is_dir`, and `target`, `mode`, `uid` and `gid`.
const SCHEMA_VERSION: i64 = 2;

/// Deletes row `?1` and, for a folder, its whole subtree: nothing below a removed folder can
/// be reached.
const DELETE_SUBTREE: &str = "WITH RECURSIVE gone(id) AS (
         VALUES(?1)
         UNION SELECT items.id FROM items JOIN gone ON items.parent_id = gone.id
     )
     DELETE FROM items WHERE id IN gone";

/// Which kind of Box item a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoredKind {
    #[default]
    File,
    Folder,
    WebLink,
}

impl StoredKind {
    fn code(self) -> i64 {
        match self {
            StoredKind::File => 0,
            StoredKind::Folder => 1,
            StoredKind::WebLink => 2,
        }
    }

    fn from_code(code: i64) -> rusqlite::Result<StoredKind> {
        match code {
            0 => Ok(StoredKind::File),
            1 => Ok(StoredKind::Folder),
            2 => Ok(StoredKind::WebLink),
            other => Err(rusqlite::Error::IntegralValueOutOfRange(1, other)),
        }
    }
}

/// A Box item as the store keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredItem {
    pub id: String,
    pub kind: StoredKind,
    /// `None` only for the mount's root.
    pub parent_id: Option<String>,
    pub name: String,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    pub ctime: Option<SystemTime>,
    pub etag: Option<String>,
    pub sequence_id: Option<u64>,
    pub version: Option<String>,
    pub sha1: Option<String>,
    /// Where the item points (a web link's URL).
    pub target: Option<String>,
    /// The POSIX mode kept on Box, file type bits included.
    pub mode: Option<u32>,
    /// The owner and group kept on Box.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// What changed in the table since the last batch, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreBatch {
    /// Every listing becomes stale, before anything else in the batch is applied.
    pub all_listings_stale: bool,
    /// Items added or changed (inserted, or replacing the row of the same id).
    pub upserts: Vec<StoredItem>,
    /// Items gone from the tree: their rows and, for folders, every row below them.
    pub deletes: Vec<String>,
    /// Folders whose listing became complete (`true`) or stale (`false`), after the rows.
    pub listings: Vec<(String, bool)>,
    /// Items whose rows stay as they are (a file with staged writes: its size and time are
    /// not Box's yet), though a listing they are in became complete.
    pub kept: Vec<String>,
    /// What events were about since the last batch: the stored listings they may have
    /// changed become stale first, before the rows above are written (see [`Touched`]).
    pub touched: Touched,
    /// The event stream position the table is current to, with everything above.
    pub position: Option<String>,
}

impl StoreBatch {
    pub fn is_empty(&self) -> bool {
        !self.all_listings_stale
            && self.upserts.is_empty()
            && self.deletes.is_empty()
            && self.listings.is_empty()
            && self.touched.is_empty()
            && self.position.is_none()
    }
}

/// What events were about. The table applies an event only to what it holds, so a stored
/// listing of a folder not in memory would miss it: every listing an event may have changed
/// becomes stale in the store (the folder the item is stored in, and the one it went to),
/// and is listed from Box at its next visit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Items an event was about: the folder the store has each in is listed again.
    pub items: BTreeSet<String>,
    /// Folders an event put an item into.
    pub folders: BTreeSet<String>,
}

impl Touched {
    /// Notes an event about item `id`, now in folder `parent` (when the event says).
    pub fn note(&mut self, id: &str, parent: Option<&str>) {
        self.items.insert(id.to_string());
        if let Some(parent) = parent {
            self.folders.insert(parent.to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.folders.is_empty()
    }
}

/// Whose tree a store describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOwner {
    /// The Box user the mount acts as (`as_user` when set).
    pub user_id: String,
    pub root_folder_id: String,
}

/// What [`MetaStore::peek`] finds in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePeek {
    pub owner: StoreOwner,
    pub login: Option<String>,
    pub name: Option<String>,
}

/// What the store knew when it was opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedState {
    /// The event stream position the rows are current to, and when it was saved; `None` for
    /// a new store, or one that belonged to another account or root folder.
    pub position: Option<(String, SystemTime)>,
    /// The store was made for another account or root folder (or an older schema): its
    /// listings were all marked stale.
    pub owner_changed: bool,
    /// Rows in the store.
    pub items: u64,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("metadata store {path}: {source}")]
pub struct StoreError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// The open store. One connection, used from blocking threads only (never from an async
/// task directly: every call does file I/O).
pub struct MetaStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.path)
            .finish()
    }
}

fn nanos(t: Option<SystemTime>) -> Option<i64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
}

fn time(n: Option<i64>) -> Option<SystemTime> {
    n.and_then(|n| u64::try_from(n).ok())
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
}

const COLUMNS: &str =
    "id, kind, parent_id, name, size, mtime, ctime, etag, seq, version, sha1, target, mode, uid, gid";

fn row_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredItem> {
    Ok(StoredItem {
        id: row.get(0)?,
        kind: StoredKind::from_code(row.get(1)?)?,
        parent_id: row.get(2)?,
        name: row.get(3)?,
        size: row.get::<_, i64>(4)?.max(0) as u64,
        mtime: time(row.get(5)?),
        ctime: time(row.get(6)?),
        etag: row.get(7)?,
        sequence_id: row.get::<_, Option<i64>>(8)?.map(|s| s.max(0) as u64),
        version: row.get(9)?,
        sha1: row.get(10)?,
        target: row.get(11)?,
        mode: row.get::<_, Option<i64>>(12)?.map(|m| m as u32),
        uid: row.get::<_, Option<i64>>(13)?.map(|m| m as u32),
        gid: row.get::<_, Option<i64>>(14)?.map(|m| m as u32),
    })
}

impl MetaStore {
    /// Opens (or makes) the store in `cache_dir` for `owner`. A store made for another owner
    /// keeps its rows with every listing stale and no position: nothing in it is trusted
    /// until listed again. One of another schema version starts empty.
    pub fn open(
        cache_dir: &Path,
        owner: &StoreOwner,
    ) -> Result<(MetaStore, SavedState), StoreError> {
        let path = cache_dir.join(STORE_FILE);
        let fail = |source| StoreError {
            path: path.clone(),
            source,
        };
        // Made 0600 before SQLite opens it; its -wal and -shm files take the same mode.
        if let Err(e) = crate::private_fs::create_private(&path) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                log::warn!("metadata store {}: {e}", path.display());
            }
        }
        let conn = Connection::open(&path).map_err(fail)?;
        let store = MetaStore {
            path: path.clone(),
            conn: Mutex::new(conn),
        };
        let saved = store.prepare(owner).map_err(fail)?;
        Ok((store, saved))
    }

    /// Whose tree the store in `cache_dir` describes and the event position it is current
    /// to, read without changing it: what a mount needs to start while Box is out of reach.
    /// `None` when there is no store, or it holds no position (nothing in it is current).
    pub fn peek(cache_dir: &Path) -> Result<Option<StorePeek>, StoreError> {
        let path = cache_dir.join(STORE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let fail = |source| StoreError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(fail)?;
        let get = |key: &str| -> rusqlite::Result<Option<String>> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        let read = || -> rusqlite::Result<Option<StorePeek>> {
            let schema: Option<i64> = get("schema")?.and_then(|s| s.parse().ok());
            if schema != Some(SCHEMA_VERSION) || get("position")?.is_none() {
                return Ok(None);
            }
            let (Some(user_id), Some(root_folder_id)) = (get("user_id")?, get("root_folder_id")?)
            else {
                return Ok(None);
            };
            Ok(Some(StorePeek {
                owner: StoreOwner {
                    user_id,
                    root_folder_id,
                },
                login: get("login")?,
                name: get("name")?,
            }))
        };
        read().map_err(fail)
    }

    /// Remembers the account's login and name, for a mount started while Box is out of reach.
    pub fn set_account_names(&self, login: &str, name: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let set = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
        conn.execute(set, params!["login", login])
            .and_then(|_| conn.execute(set, params!["name", name]))
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    fn prepare(&self, owner: &StoreOwner) -> rusqlite::Result<SavedState> {
        let mut conn = self.conn();
        // WAL: a commit is one append, readers never wait for it, and a process killed at
        // any moment leaves the last committed transaction. NORMAL sync: a power loss may
        // lose the last commits, never consistency (the position goes back with the rows).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // The file is read mostly a folder at a time and the kernel's page cache keeps it:
        // a page cache of 512 KiB rather than SQLite's 2 MiB default keeps the daemon small.
        conn.pragma_update(None, "cache_size", -512)?;
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )?;
        let get = |key: &str| -> rusqlite::Result<Option<String>> {
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        let schema: Option<i64> = get("schema")?.and_then(|s| s.parse().ok());
        if schema.is_some_and(|v| v != SCHEMA_VERSION) {
            // Rows of another version have other columns: the table is made afresh.
            tx.execute_batch("DROP INDEX IF EXISTS items_by_parent; DROP TABLE IF EXISTS items;")?;
        }
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS items (
                 id TEXT PRIMARY KEY,
                 kind INTEGER NOT NULL,
                 parent_id TEXT,
                 name TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 mtime INTEGER, ctime INTEGER,
                 etag TEXT, seq INTEGER, version TEXT, sha1 TEXT,
                 target TEXT, mode INTEGER, uid INTEGER, gid INTEGER,
                 listing_complete INTEGER NOT NULL DEFAULT 0
             );
             CREATE INDEX IF NOT EXISTS items_by_parent ON items(parent_id);",
        )?;
        let same_owner = schema == Some(SCHEMA_VERSION)
            && get("user_id")?.as_deref() == Some(owner.user_id.as_str())
            && get("root_folder_id")?.as_deref() == Some(owner.root_folder_id.as_str());
        let fresh: i64 = tx.query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))?;
        let mut saved = SavedState {
            items: fresh.max(0) as u64,
            ..SavedState::default()
        };
        if same_owner {
            let position = get("position")?;
            let saved_at = get("position_saved_at")?
                .and_then(|s| s.parse::<u64>().ok())
                .map(|s| UNIX_EPOCH + Duration::from_secs(s));
            saved.position = position.zip(saved_at);
        } else {
            if schema.is_some() {
                saved.owner_changed = true;
                log::warn!(
                    "the metadata store in {} was made for another account, root folder or \
                     version: every folder is listed from Box again",
                    self.path.display()
                );
            }
            tx.execute("UPDATE items SET listing_complete = 0", [])?;
            tx.execute("DELETE FROM meta WHERE key LIKE 'position%'", [])?;
            let set = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
            tx.execute(set, params!["schema", SCHEMA_VERSION.to_string()])?;
            tx.execute(set, params!["user_id", owner.user_id])?;
            tx.execute(set, params!["root_folder_id", owner.root_folder_id])?;
        }
        tx.commit()?;
        Ok(saved)
    }

    /// Writes `batch` in one transaction.
    pub fn apply(&self, batch: &StoreBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        Self::apply_in(&mut conn, batch).map_err(|e| self.fail(e))
    }

    fn apply_in(conn: &mut Connection, batch: &StoreBatch) -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        if batch.all_listings_stale {
            tx.execute("UPDATE items SET listing_complete = 0", [])?;
        }
        Self::forget_touched_in(&tx, &batch.touched)?;
        {
            let mut delete = tx.prepare_cached(DELETE_SUBTREE)?;
            for id in &batch.deletes {
                delete.execute([id])?;
            }
            let mut upsert = tx.prepare_cached(&format!(
                "INSERT INTO items ({COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT(id) DO UPDATE SET
                     kind = excluded.kind, parent_id = excluded.parent_id,
                     name = excluded.name, size = excluded.size, mtime = excluded.mtime,
                     ctime = excluded.ctime, etag = excluded.etag, seq = excluded.seq,
                     version = excluded.version, sha1 = excluded.sha1,
                     target = excluded.target, mode = excluded.mode,
                     uid = excluded.uid, gid = excluded.gid"
            ))?;
            for item in &batch.upserts {
                upsert.execute(params![
                    item.id,
                    item.kind.code(),
                    item.parent_id,
                    item.name,
                    item.size.min(i64::MAX as u64) as i64,
                    nanos(item.mtime),
                    nanos(item.ctime),
                    item.etag,
                    item.sequence_id.map(|s| s.min(i64::MAX as u64) as i64),
                    item.version,
                    item.sha1,
                    item.target,
                    item.mode.map(i64::from),
                    item.uid.map(i64::from),
                    item.gid.map(i64::from),
                ])?;
            }
            let mut listing =
                tx.prepare_cached("UPDATE items SET listing_complete = ?2 WHERE id = ?1")?;
            for (id, complete) in &batch.listings {
                listing.execute(params![id, complete])?;
            }
        }
        Self::prune_complete_listings(&tx, batch)?;
        if let Some(position) = &batch.position {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let set = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
            tx.execute(set, params!["position", position])?;
            tx.execute(set, params!["position_saved_at", now.to_string()])?;
        }
        tx.commit()
    }

    /// A listing that became complete comes with a row for each of its children (the table
    /// journals them all), so rows still under that folder that the batch did not write are
    /// items Box no longer has there: they go, with what is below them. Without this, an item
    /// removed while its row was not in memory would come back in the next stored listing.
    fn prune_complete_listings(
        tx: &rusqlite::Transaction<'_>,
        batch: &StoreBatch,
    ) -> rusqlite::Result<()> {
        let mut written: HashMap<&str, HashSet<&str>> = HashMap::new();
        for row in &batch.upserts {
            if let Some(parent) = &row.parent_id {
                written.entry(parent).or_default().insert(&row.id);
            }
        }
        let kept: HashSet<&str> = batch.kept.iter().map(String::as_str).collect();
        let mut children = tx.prepare_cached("SELECT id FROM items WHERE parent_id = ?1")?;
        let mut delete = tx.prepare_cached(DELETE_SUBTREE)?;
        for (folder, _) in batch.listings.iter().filter(|(_, complete)| *complete) {
            let stored: Vec<String> = children
                .query_map([folder], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in stored {
                let written_here = written
                    .get(folder.as_str())
                    .is_some_and(|w| w.contains(id.as_str()));
                if !written_here && !kept.contains(id.as_str()) {
                    delete.execute([id])?;
                }
            }
        }
        Ok(())
    }

    /// Marks stale every listing the touched items may have changed (see [`Touched`]).
    fn forget_touched_in(
        tx: &rusqlite::Transaction<'_>,
        touched: &Touched,
    ) -> rusqlite::Result<()> {
        let mut stale_parent = tx.prepare_cached(
            "UPDATE items SET listing_complete = 0
             WHERE id = (SELECT parent_id FROM items WHERE id = ?1)",
        )?;
        for id in &touched.items {
            stale_parent.execute([id])?;
        }
        let mut stale = tx.prepare_cached("UPDATE items SET listing_complete = 0 WHERE id = ?1")?;
        for id in &touched.folders {
            stale.execute([id])?;
        }
        Ok(())
    }

    /// The children of folder `id` if the store holds its complete listing, else `None`.
    pub fn listing(&self, id: &str) -> Result<Option<Vec<StoredItem>>, StoreError> {
        let conn = self.conn();
        Self::listing_in(&conn, id).map_err(|e| self.fail(e))
    }

    /// The complete listings the store holds of the folders `ids` (the subfolders a
    /// directory walk visits next), read in one go until about `max_rows` rows were read;
    /// folders without one are left out. Returns them and how many of `ids` were looked at.
    pub fn listings(
        &self,
        ids: &[String],
        max_rows: usize,
    ) -> Result<(HashMap<String, Vec<StoredItem>>, usize), StoreError> {
        let conn = self.conn();
        // One read transaction for them all: each statement on its own would take and drop
        // the database's read lock, two system calls a folder.
        let read = conn.unchecked_transaction().map_err(|e| self.fail(e))?;
        let mut found = HashMap::new();
        let mut rows_read = 0;
        let mut looked_at = 0;
        for id in ids {
            if rows_read >= max_rows {
                break;
            }
            if let Some(rows) = Self::listing_in(&read, id).map_err(|e| self.fail(e))? {
                rows_read += rows.len();
                found.insert(id.clone(), rows);
            }
            looked_at += 1;
        }
        // Nothing was written: ending the transaction only lets go of the read lock.
        read.rollback().map_err(|e| self.fail(e))?;
        Ok((found, looked_at))
    }

    fn listing_in(conn: &Connection, id: &str) -> rusqlite::Result<Option<Vec<StoredItem>>> {
        let complete: Option<bool> = conn
            .prepare_cached("SELECT listing_complete FROM items WHERE id = ?1 AND kind = 1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if complete != Some(true) {
            return Ok(None);
        }
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE parent_id = ?1"))?;
        let rows = stmt.query_map([id], row_item)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
    }

    /// The row of item `id`.
    pub fn item(&self, id: &str) -> Result<Option<StoredItem>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM items WHERE id = ?1"),
            [id],
            row_item,
        )
        .optional()
        .map_err(|e| self.fail(e))
    }

    /// Every listing becomes stale at once, and the saved position is forgotten: the rows
    /// stay (names, inode numbers), but each folder is listed from Box at its next access.
    pub fn mark_all_stale(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute_batch(
            "BEGIN;
             UPDATE items SET listing_complete = 0;
             DELETE FROM meta WHERE key LIKE 'position%';
             COMMIT;",
        )
        .map_err(|e| self.fail(e))
    }

    /// How many rows the store holds.
    pub fn len(&self) -> Result<u64, StoreError> {
        let conn = self.conn();
        conn.query_row("SELECT COUNT(*) FROM items", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.fail(e))
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Holds the store's connection while `f` takes a batch and the connection writes it: two
    /// writers can then never commit their batches in the other order than they took them.
    pub fn apply_taken(
        &self,
        take: impl FnOnce() -> Option<StoreBatch>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let Some(batch) = take() else {
            return Ok(0);
        };
        let n = batch.upserts.len()
            + batch.deletes.len()
            + batch.listings.len()
            + batch.touched.items.len();
        Self::apply_in(&mut conn, &batch).map_err(|e| self.fail(e))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
