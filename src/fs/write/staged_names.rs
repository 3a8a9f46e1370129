//! Renames and unlinks of files with staged data ([`crate::fs::write::writes`]), which Box must not
//! simply see as renames and deletions.
//!
//! A local file (created here, not uploaded yet) is renamed or removed here only: Box has
//! never heard of it. A file created here and renamed over an existing Box file (how
//! editors save: write `.name.swp`, rename it over `name`) becomes a *new version* of that
//! file: the target keeps its Box id, its history and its shared links. The temporary file,
//! if it was uploaded already, goes to the trash at the rename, and is purged from the trash
//! once Box holds its data as the target's version: a `git commit` on the mount would
//! otherwise leave an `index.lock`, a `HEAD.lock` and more in Box's trash every time. Until
//! then the trashed copy is the data's second home on Box. Likewise an empty file created
//! and uploaded here moments before its `unlink` (a lock file) is purged after its
//! trashing. For all this, a new file's staged copy is kept for
//! [`crate::fs::write::writes::RENAME_GRACE`] after its upload (files up to
//! [`crate::fs::write::writes::RENAME_GRACE_MAX`] bytes).
//! Whatever the replaced file had staged is discarded with it. The upload of the new
//! version waits for the renamed file's writers to close it (or happens now, or is
//! queued with `--write-back`, if nobody writes it).

use crate::fs::errno::FsError;
use crate::fs::tree::inode::{Ino, InodeTable, Kind};
use crate::fs::write::staging::Target;
use crate::fs::write::writes::{Dropped, Staged};
use crate::fs::{lock, BoxFs};

impl BoxFs {
    /// `unlink` of a staged file: a local file is dropped here and never reaches Box
    /// (`Some(Dropped::Local)`: nothing more to do); an uploaded one loses its staged data
    /// and is trashed on Box by the caller. `None`: nothing was staged.
    pub(in crate::fs) async fn unlink_staged(&self, ino: Ino) -> Option<Dropped> {
        let staged = self.writes.staged(ino)?;
        Some(self.drop_staged(ino, &staged).await)
    }

    /// `rename` of a staged file that Box must not see as a rename: a local file (renamed
    /// here only), or a file created here renamed over an existing Box file (uploaded as a
    /// new version of that file). Returns false when the caller should rename on Box.
    pub(in crate::fs) async fn rename_staged(
        &self,
        src: Ino,
        new_parent: Ino,
        new_parent_id: &str,
        new_name: &str,
        dst: Option<Ino>,
    ) -> Result<bool, FsError> {
        let Some(staged) = self.writes.staged(src) else {
            return Ok(false);
        };
        let upload_guard = staged.upload.lock().await;
        let (local, dst_info) = {
            let table = lock(&self.table);
            let local = table.get(src).is_some_and(|i| i.is_local());
            let dst_info = dst.filter(|&d| d != src).and_then(|d| {
                table
                    .get(d)
                    .map(|i| (d, i.kind(), i.is_local(), i.box_id().to_string()))
            });
            (local, dst_info)
        };
        let st = staged.snapshot();
        if st.discarded {
            return Ok(false);
        }
        let over_box_file = matches!(dst_info, Some((_, Kind::File, false, _)));
        let version_over = st.created_here && over_box_file;
        if !(local || version_over) {
            return Ok(false);
        }
        if let Some((_, Kind::Dir, _, _)) = dst_info {
            return Err(FsError::new(libc::EISDIR, "target is a directory"));
        }
        // Whatever staged data the replaced file had is replaced with it.
        if let Some((d, ..)) = &dst_info {
            if let Some(d_staged) = self.writes.staged(*d) {
                self.drop_staged(*d, &d_staged).await;
            }
        }
        match dst_info {
            Some((d, Kind::File, false, dst_id)) => {
                let target = Target::Version {
                    file_id: dst_id.clone(),
                    base_etag: None,
                    base_version: None,
                    parent_id: new_parent_id.to_string(),
                    name: new_name.to_string(),
                };
                {
                    let mut s = staged.state();
                    s.target = target;
                    s.created_here = false;
                }
                // Journal the new target before the temporary file leaves Box.
                self.rewrite_journal(&staged).await?;
                self.mark_dirty(&staged).await?;
                if !local {
                    let old_id = lock(&self.table)
                        .get(src)
                        .map(|i| i.box_id().to_string())
                        .unwrap_or_default();
                    let _own = self.own.item(&old_id);
                    match self.client.delete_file(&old_id, None).await {
                        Ok(()) => staged.state().replaced_temporaries.push(old_id),
                        Err(e) => log::warn!(
                            "'{new_name}' replaced: the temporary file (Box id {old_id}) \
                             could not be trashed: {e}"
                        ),
                    }
                }
                {
                    let mut table = lock(&self.table);
                    table.remove(d)?;
                    table.rekey(src, &dst_id)?;
                    table.rename(src, new_parent, new_name)?;
                }
                // The inode is the target's Box file now: its attributes are that file's.
                self.xattrs.invalidate(src);
                log::debug!("'{new_name}' (Box id {dst_id}) replaced by a new version");
                drop(upload_guard);
                let (_, writer) = self.writes.open_on(src);
                if !writer {
                    if let Err(e) = self.upload_on_close(&staged).await {
                        // The rename itself happened; the data stays staged and is retried.
                        log::warn!("uploading '{new_name}' after the rename: {e}");
                    }
                }
                Ok(true)
            }
            _ => {
                {
                    let mut table = lock(&self.table);
                    if let Some((d, ..)) = dst_info {
                        let _ = table.remove(d);
                    }
                    table.rename(src, new_parent, new_name)?;
                }
                let target = staged.state().target.moved(new_parent_id, new_name);
                staged.state().target = target;
                self.rewrite_journal(&staged).await?;
                Ok(true)
            }
        }
    }

    /// Purges from Box's trash the temporary files whose data Box now holds in `staged`'s
    /// place (see the module's text).
    pub(in crate::fs) async fn purge_replaced_temporaries(&self, staged: &Staged) {
        let ids = std::mem::take(&mut staged.state().replaced_temporaries);
        self.purge_temporaries(&ids).await;
    }

    /// Purges the trashed temporary files `ids` from Box's trash. A failure leaves them in
    /// the trash, where they were.
    pub(in crate::fs) async fn purge_temporaries(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            let _own = self.own.item(id);
            match self.client.purge_file(id).await {
                Ok(()) => log::debug!("temporary file (Box id {id}) purged from the trash"),
                Err(e) => log::warn!("the temporary file (Box id {id}) stays in the trash: {e}"),
            }
        }
        self.trash_changed();
    }

    /// After a rename on Box of a file with staged data: its journal follows.
    pub(in crate::fs) async fn staged_moved(&self, ino: Ino, new_parent_id: &str, new_name: &str) {
        if let Some(staged) = self.writes.staged(ino) {
            let target = staged.state().target.moved(new_parent_id, new_name);
            staged.state().target = target;
            if let Err(e) = self.rewrite_journal(&staged).await {
                log::warn!("journal of '{new_name}' after a rename: {e}");
            }
        }
    }

    /// Whether `dir` holds local files (not on Box yet): Box would delete it as empty.
    pub(in crate::fs) fn has_local_children(&self, table: &InodeTable, dir: Ino) -> bool {
        table
            .children(dir)
            .iter()
            .any(|&c| table.get(c).is_some_and(|i| i.is_local()))
    }
}
