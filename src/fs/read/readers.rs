//! Where open files get their readers: one [`FileReader`] per open file, of the version
//! `stat` showed, sharing the mount's content cache and its [`ReadBudget`]; and the memory of
//! which version of each file the kernel last opened, which decides whether the kernel may
//! keep the pages it cached then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::fs::backend::BoxApi;
use crate::fs::lock;
use crate::fs::read::budget::{ReadBudget, ReadBudgetConfig, ReadBudgetStatus};
use crate::fs::read::content_cache::ContentCache;
use crate::fs::read::reader::{FileReader, FileVersionRef, ReadConfig};
use crate::fs::tree::inode::Ino;

/// Makes the readers of a mount's open files.
pub struct Readers {
    client: Arc<dyn BoxApi>,
    cache: Option<Arc<ContentCache>>,
    config: ReadConfig,
    /// Shared by the readers of all open files.
    budget: Arc<ReadBudget>,
    /// The version of each file the kernel may hold pages of (from its last open).
    opened_versions: Mutex<HashMap<Ino, Option<Box<str>>>>,
}

impl Readers {
    pub fn new(
        client: Arc<dyn BoxApi>,
        cache: Option<Arc<ContentCache>>,
        config: ReadConfig,
        budget: ReadBudgetConfig,
    ) -> Readers {
        Readers {
            client,
            cache,
            config,
            budget: ReadBudget::new(budget),
            opened_versions: Mutex::default(),
        }
    }

    /// A reader of `version` (its id; Box's sha1 when the id is unknown) of `file_id`, so a
    /// file changed during a read never mixes two versions.
    pub fn reader_of(
        &self,
        file_id: String,
        version: Option<&str>,
        sha1: Option<&str>,
        size: u64,
    ) -> FileReader {
        FileReader::new(
            self.client.clone(),
            self.cache.clone(),
            FileVersionRef {
                file_id,
                version: version.unwrap_or_default().to_string(),
                size,
                sha1: sha1.map(str::to_string),
            },
            self.config.clone(),
        )
        .with_budget(&self.budget)
    }

    /// Records that the kernel opens `ino` at `version`, and answers whether the pages it
    /// cached at its previous open are still right (the version did not change since).
    pub fn kernel_opens(&self, ino: Ino, version: Option<Box<str>>) -> bool {
        let mut versions = lock(&self.opened_versions);
        let keep = version.is_some();
        let previous = versions.insert(ino, version.clone());
        keep && previous == Some(version)
    }

    pub fn content_cache(&self) -> Option<&Arc<ContentCache>> {
        self.cache.as_ref()
    }

    /// The read budget shared by all open files, as `boxfs status` shows it.
    pub fn budget_status(&self) -> ReadBudgetStatus {
        self.budget.status()
    }
}
