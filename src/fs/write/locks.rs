//! Box locks behind `flock` and `fcntl` (the mount's `--box-locks`). An exclusive lock
//! (`LOCK_EX`, `F_WRLCK`) on a file takes a Box lock on it, so that a program on another
//! machine asking for the same lock through its own mount is refused (EWOULDBLOCK) or waits.
//! A shared lock (`LOCK_SH`, `F_RDLCK`) takes nothing on Box (Box has no shared locks) but
//! is refused while someone else holds the Box lock. [`BoxLocks`] owns the locks this mount
//! took, by inode, with the lock owner and the file handle that took them: only those are ever
//! released, on unlock, on the owner's `close` (POSIX semantics: the kernel's `flush`) or on the
//! release of the handle (the last close of an `flock`ed descriptor).
//!
//! Box locks are whole-file: a byte-range lock locks the whole file, and unlocking any range
//! of it unlocks all of it. Box lets a user lock again a file they locked already (it simply
//! replaces the lock), so a lock held by the same user from another mount would not stop us:
//! we ask for the file's `lock` first and count any active lock we did not take as held. Two
//! mounts asking in the same instant can still both succeed (Box has no compare-and-swap on
//! locks); the window is one round trip.
//!
//! A blocking request (`F_SETLKW`, `flock` without `LOCK_NB`) asks Box again every
//! [`POLL_INTERVAL`] until the lock is free, or until the handle asking is released (the
//! process was killed: fuser does not pass on the kernel's interrupts).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::fs::backend::BoxApi;
use crate::fs::errno::FsError;
use crate::fs::tree::inode::Ino;
use crate::fs::{lock, BoxFs};
use box_client::files::{LockOptions, FILE_FIELDS_WITH_LOCK};
use box_client::types::{Item, Lock};
use std::sync::Arc;

/// How often a blocked lock request asks Box again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What a lock request asks for (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
    Unlock,
}

impl LockKind {
    /// From `struct flock`'s `l_type` (flock(2) arrives converted to the same values).
    pub fn from_type(typ: i32) -> Option<LockKind> {
        match typ {
            libc::F_RDLCK => Some(LockKind::Shared),
            libc::F_WRLCK => Some(LockKind::Exclusive),
            libc::F_UNLCK => Some(LockKind::Unlock),
            _ => None,
        }
    }
}

/// Who asks for a lock on which file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub ino: Ino,
    /// The Box file; `None` for a file created here and not uploaded yet (its lock is only
    /// kept here: nobody else can see the file).
    pub file_id: Option<String>,
    /// The kernel's lock owner (the open file description for `flock`, the process's file
    /// table for POSIX locks).
    pub owner: u64,
    pub fh: u64,
}

/// A lock this mount took.
#[derive(Debug, Clone)]
struct Held {
    file_id: Option<String>,
    owner: u64,
    fh: u64,
}

/// Whether a lock could be taken now.
enum Attempt {
    Taken,
    Conflict,
}

/// The Box locks this mount took.
pub struct BoxLocks {
    client: Arc<dyn BoxApi>,
    held: Mutex<HashMap<Ino, Held>>,
    /// Serialises attempts, so two local owners cannot both see a file free and lock it.
    attempts: tokio::sync::Mutex<()>,
    /// Handles with a blocked request; a handle's release removes it and ends the wait.
    waiting: Mutex<HashSet<u64>>,
}

/// Whether Box's `lock` locks anything now (an expired lock does not).
fn is_active(lock: &Lock, now: DateTime<Utc>) -> bool {
    match lock.expired_at.as_deref() {
        None => true,
        Some(t) => DateTime::parse_from_rfc3339(t).map_or(true, |t| t > now),
    }
}

fn conflict() -> FsError {
    FsError::new(libc::EWOULDBLOCK, "the file is locked on Box")
}

impl BoxLocks {
    pub fn new(client: Arc<dyn BoxApi>) -> BoxLocks {
        BoxLocks {
            client,
            held: Mutex::default(),
            attempts: tokio::sync::Mutex::new(()),
            waiting: Mutex::default(),
        }
    }

    /// Whether this mount holds the lock on `ino`.
    pub fn holds(&self, ino: Ino) -> bool {
        lock(&self.held).contains_key(&ino)
    }

    /// `setlk`: takes, tests or releases the lock. With `wait`, a conflict waits (see the
    /// module note) instead of failing with EWOULDBLOCK.
    pub async fn set(&self, req: &LockRequest, kind: LockKind, wait: bool) -> Result<(), FsError> {
        if kind == LockKind::Unlock {
            return self.unlock(req.ino, req.owner).await;
        }
        if !wait {
            return match self.attempt(req, kind).await? {
                Attempt::Taken => Ok(()),
                Attempt::Conflict => Err(conflict()),
            };
        }
        lock(&self.waiting).insert(req.fh);
        let result = loop {
            match self.attempt(req, kind).await {
                Ok(Attempt::Taken) => break Ok(()),
                Ok(Attempt::Conflict) => {}
                Err(e) => break Err(e),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            if !lock(&self.waiting).contains(&req.fh) {
                break Err(FsError::new(
                    libc::EINTR,
                    "the handle was closed while waiting",
                ));
            }
        };
        lock(&self.waiting).remove(&req.fh);
        result
    }

    /// `getlk`: whether someone other than `owner` holds the lock now.
    pub async fn test(&self, req: &LockRequest) -> Result<bool, FsError> {
        if let Some(h) = lock(&self.held).get(&req.ino) {
            return Ok(h.owner != req.owner);
        }
        match &req.file_id {
            Some(id) => self.locked_on_box(id).await,
            None => Ok(false),
        }
    }

    async fn attempt(&self, req: &LockRequest, kind: LockKind) -> Result<Attempt, FsError> {
        let _one_at_a_time = self.attempts.lock().await;
        if let Some(h) = lock(&self.held).get(&req.ino) {
            // Taking again a lock one holds (or converting it) succeeds; the Box lock stays
            // until it is released.
            return Ok(if h.owner == req.owner {
                Attempt::Taken
            } else {
                Attempt::Conflict
            });
        }
        let Some(file_id) = &req.file_id else {
            if kind == LockKind::Exclusive {
                self.record(req);
            }
            return Ok(Attempt::Taken);
        };
        if self.locked_on_box(file_id).await? {
            return Ok(Attempt::Conflict);
        }
        if kind == LockKind::Shared {
            return Ok(Attempt::Taken);
        }
        match self
            .client
            .lock_file_with_fields(file_id, &LockOptions::default(), FILE_FIELDS_WITH_LOCK)
            .await
        {
            Ok(_) => {
                self.record(req);
                Ok(Attempt::Taken)
            }
            Err(e) => {
                let e = FsError::from(e);
                if e.is_lock() {
                    Ok(Attempt::Conflict)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn record(&self, req: &LockRequest) {
        lock(&self.held).insert(
            req.ino,
            Held {
                file_id: req.file_id.clone(),
                owner: req.owner,
                fh: req.fh,
            },
        );
    }

    /// Whether the file has an active Box lock (we hold none on it: the caller checked).
    async fn locked_on_box(&self, file_id: &str) -> Result<bool, FsError> {
        let item: Item = self.client.file_with_fields(file_id, &["lock"]).await?;
        Ok(item.lock.as_ref().is_some_and(|l| is_active(l, Utc::now())))
    }

    /// Releases `owner`'s lock on `ino`, if it has one.
    pub async fn unlock(&self, ino: Ino, owner: u64) -> Result<(), FsError> {
        let held = {
            let mut held = lock(&self.held);
            match held.get(&ino) {
                Some(h) if h.owner == owner => held.remove(&ino),
                _ => None,
            }
        };
        match held {
            Some(h) => self.unlock_on_box(h).await,
            None => Ok(()),
        }
    }

    /// The owner closed a descriptor: POSIX drops all its locks then.
    pub async fn release_owner(&self, owner: u64) {
        self.release_where(|h| h.owner == owner).await;
    }

    /// The handle is released: its locks go, and so does a wait it was in.
    pub async fn release_handle(&self, fh: u64) {
        lock(&self.waiting).remove(&fh);
        self.release_where(|h| h.fh == fh).await;
    }

    async fn release_where(&self, matches: impl Fn(&Held) -> bool) {
        let released: Vec<Held> = {
            let mut held = lock(&self.held);
            let inos: Vec<Ino> = held
                .iter()
                .filter(|(_, h)| matches(h))
                .map(|(ino, _)| *ino)
                .collect();
            inos.iter().filter_map(|ino| held.remove(ino)).collect()
        };
        for h in released {
            if let Err(e) = self.unlock_on_box(h).await {
                log::warn!("releasing a Box lock: {e}");
            }
        }
    }

    async fn unlock_on_box(&self, h: Held) -> Result<(), FsError> {
        match h.file_id {
            Some(id) => self
                .client
                .unlock_file_with_fields(&id, FILE_FIELDS_WITH_LOCK)
                .await
                .map(|_| ())
                .map_err(FsError::from),
            None => Ok(()),
        }
    }
}

impl BoxFs {
    /// The lock request of `owner` through handle `fh` on `ino`.
    fn lock_request(&self, ino: Ino, fh: u64, owner: u64) -> Result<LockRequest, FsError> {
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        if inode.is_dir() {
            return Err(FsError::new(libc::EISDIR, "Box locks only files"));
        }
        Ok(LockRequest {
            ino,
            file_id: (!inode.is_local()).then(|| inode.box_id().to_string()),
            owner,
            fh,
        })
    }

    fn box_locks(&self) -> Result<&BoxLocks, FsError> {
        self.locks
            .as_ref()
            .ok_or_else(|| FsError::new(libc::ENOSYS, "mounted without --box-locks"))
    }

    /// `setlk` (and `flock`): `typ` is `F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    pub async fn setlk(
        &self,
        ino: Ino,
        fh: u64,
        owner: u64,
        typ: i32,
        wait: bool,
    ) -> Result<(), FsError> {
        let locks = self.box_locks()?;
        let kind = LockKind::from_type(typ)
            .ok_or_else(|| FsError::new(libc::EINVAL, format!("lock type {typ}")))?;
        locks
            .set(&self.lock_request(ino, fh, owner)?, kind, wait)
            .await
    }

    /// `getlk`: whether another owner holds the lock on `ino`.
    pub async fn getlk(&self, ino: Ino, fh: u64, owner: u64) -> Result<bool, FsError> {
        self.box_locks()?
            .test(&self.lock_request(ino, fh, owner)?)
            .await
    }

    /// A descriptor of `owner` was closed (`flush`): its POSIX locks go.
    pub async fn release_locks_of_owner(&self, owner: u64) {
        if let Some(locks) = &self.locks {
            locks.release_owner(owner).await;
        }
    }

    /// Handle `fh` was released: the locks taken through it go.
    pub async fn release_locks_of_handle(&self, fh: u64) {
        if let Some(locks) = &self.locks {
            locks.release_handle(fh).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_expiring(t: Option<&str>) -> Lock {
        Lock {
            id: Some("1".into()),
            created_by: None,
            created_at: None,
            expired_at: t.map(str::to_string),
            is_download_prevented: false,
        }
    }

    #[test]
    fn an_expired_lock_locks_nothing() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(is_active(&lock_expiring(None), now));
        assert!(is_active(&lock_expiring(Some("2026-01-02T00:00:00Z")), now));
        assert!(!is_active(
            &lock_expiring(Some("2025-12-31T00:00:00Z")),
            now
        ));
    }

    #[test]
    fn lock_types_map_to_kinds() {
        assert_eq!(
            LockKind::from_type(libc::F_WRLCK),
            Some(LockKind::Exclusive)
        );
        assert_eq!(LockKind::from_type(libc::F_RDLCK), Some(LockKind::Shared));
        assert_eq!(LockKind::from_type(libc::F_UNLCK), Some(LockKind::Unlock));
        assert_eq!(LockKind::from_type(99), None);
    }
}
