//! Folders: reading one (with `fields`), listing its items (offset or marker paging, as one
//! page or as a stream of items), creating folders and whole paths, renaming, moving,
//! copying, deleting, shared links, and the trash (listing it, inspecting, restoring and
//! purging trashed folders).
//!
//! It also owns what folders and files share in their public API: Box's name rules
//! ([`check_name`]), listing options ([`ListOptions`]) and shared-link settings
//! ([`SharedLinkSettings`]); the calls they share are written once in `items.rs`.
//!
//! Box's surprises handled here: a folder move must be a request of its own (combined with
//! any other change Box answers 403 `operation_limit_exceeded`), so a rename plus a move
//! takes two calls; marker paging omits `total_count`; offset paging may show fewer
//! entries than the page size in mid-listing (items the caller cannot see still count).

use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Client, Request};
use super::error::{BoxError, BoxResult};
use super::items::{changes_body, with_fields, ItemKind, STANDARD_FIELDS};
use super::secret::Secret;
use super::types::{Item, Items, SharedLink};
use super::users::check_id;

/// The id of every user's root folder ("All Files").
pub const ROOT_FOLDER: &str = "0";

/// Box's largest page for folder and trash listings.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Checks an item name against Box's rules before any request: 1 to 255 characters, no
/// `/` or `\`, no control characters, no trailing space, and not `.` or `..`.
pub fn check_name(name: &str) -> BoxResult<()> {
    let shown = || {
        let mut s: String = name.chars().take(40).collect();
        if name.chars().count() > 40 {
            s.push('…');
        }
        s
    };
    let len = name.chars().count();
    let problem = if len == 0 {
        Some("is empty".to_string())
    } else if len > 255 {
        Some(format!("has {len} characters; Box allows at most 255"))
    } else if name == "." || name == ".." {
        Some("is reserved".to_string())
    } else if name.contains('/') || name.contains('\\') {
        Some("contains '/' or '\\'".to_string())
    } else if name.chars().any(char::is_control) {
        Some("contains a control character".to_string())
    } else if name.ends_with(' ') {
        Some("ends with a space".to_string())
    } else {
        None
    };
    match problem {
        Some(p) => Err(BoxError::Invalid(format!(
            "the item name '{}' {p}",
            shown()
        ))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Listing options

/// How a listing pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// Offset paging, starting at this offset. Box counts entries the caller cannot see,
    /// and advises markers for large folders.
    Offset(u64),
    /// Marker paging (`usemarker=true`), starting after this marker (`None`: from the
    /// start). Answers carry no `total_count`.
    Marker(Option<String>),
}

/// What a listing is ordered by (after the type: folders, files, then web links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Id,
    Name,
    Date,
    Size,
}

impl SortBy {
    fn as_str(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Name => "name",
            SortBy::Date => "date",
            SortBy::Size => "size",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }
}

/// Options of a folder or trash listing: page size, paging, fields and order.
///
/// ```
/// use box_client::folders::ListOptions;
/// // What a filesystem wants: big pages, markers, the fields `stat` needs.
/// let opts = ListOptions::marker().limit(1000).fields(&["name", "size", "modified_at"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Entries per page (1–1000); `None` leaves Box's default (100).
    pub limit: Option<u32>,
    pub paging: Paging,
    /// Fields each entry carries; empty means Box's mini representation.
    pub fields: Vec<String>,
    pub sort: Option<SortBy>,
    pub direction: Option<Direction>,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions::offset(0)
    }
}

impl ListOptions {
    /// Offset paging from `offset`.
    pub fn offset(offset: u64) -> ListOptions {
        ListOptions {
            limit: None,
            paging: Paging::Offset(offset),
            fields: Vec::new(),
            sort: None,
            direction: None,
        }
    }

    /// Marker paging from the start.
    pub fn marker() -> ListOptions {
        ListOptions {
            paging: Paging::Marker(None),
            ..ListOptions::offset(0)
        }
    }

    pub fn limit(mut self, limit: u32) -> ListOptions {
        self.limit = Some(limit);
        self
    }

    pub fn fields<S: AsRef<str>>(mut self, fields: &[S]) -> ListOptions {
        self.fields = fields.iter().map(|f| f.as_ref().to_string()).collect();
        self
    }

    pub fn sort(mut self, by: SortBy, direction: Direction) -> ListOptions {
        self.sort = Some(by);
        self.direction = Some(direction);
        self
    }

    fn check(&self) -> BoxResult<()> {
        if let Some(l) = self.limit {
            if l == 0 || l > MAX_LIST_LIMIT {
                return Err(BoxError::Invalid(format!(
                    "a listing page holds 1 to {MAX_LIST_LIMIT} entries, not {l}"
                )));
            }
        }
        Ok(())
    }

    fn apply(&self, mut req: Request) -> Request {
        req = req.query_opt("limit", self.limit);
        match &self.paging {
            Paging::Offset(o) => req = req.query("offset", o),
            Paging::Marker(m) => {
                req = req.query("usemarker", "true");
                req = req.query_opt("marker", m.as_deref().filter(|m| !m.is_empty()));
            }
        }
        req = req.query_opt("sort", self.sort.map(SortBy::as_str));
        req = req.query_opt("direction", self.direction.map(Direction::as_str));
        with_fields(req, &self.fields)
    }

    /// The options for the page after `page`, or `None` when `page` was the last.
    pub fn next_page(&self, page: &Items) -> Option<ListOptions> {
        let paging = match &self.paging {
            Paging::Marker(previous) => {
                let next = page.next_marker.as_deref().filter(|m| !m.is_empty())?;
                if previous.as_deref() == Some(next) {
                    // A server that hands back the same marker would loop forever.
                    return None;
                }
                Paging::Marker(Some(next.to_string()))
            }
            Paging::Offset(offset) => {
                let offset = page.offset.unwrap_or(*offset);
                // Advance by the page size, not the entries seen: Box counts hidden
                // entries in its offsets and may show fewer than `limit` mid-listing.
                let step = page
                    .limit
                    .or(self.limit.map(u64::from))
                    .unwrap_or(page.entries.len() as u64)
                    .max(1);
                let next = offset + step;
                match page.total_count {
                    Some(total) if next >= total => return None,
                    None if page.entries.is_empty() => return None,
                    _ => {}
                }
                Paging::Offset(next)
            }
        };
        Some(ListOptions {
            paging,
            ..self.clone()
        })
    }
}

// ---------------------------------------------------------------------------------------
// Shared links (folders and files)

/// Who a shared link admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedLinkAccess {
    /// Anyone with the link.
    Open,
    /// People in the enterprise (paid accounts).
    Company,
    /// Only the item's collaborators.
    Collaborators,
}

impl SharedLinkAccess {
    fn as_str(self) -> &'static str {
        match self {
            SharedLinkAccess::Open => "open",
            SharedLinkAccess::Company => "company",
            SharedLinkAccess::Collaborators => "collaborators",
        }
    }
}

/// What to set on a shared link; unset settings keep their value (or Box's default for a
/// new link). The password is a [`Secret`].
///
/// ```
/// use box_client::folders::{SharedLinkAccess, SharedLinkSettings};
/// let s = SharedLinkSettings::new()
///     .access(SharedLinkAccess::Open)
///     .password("Passw0rd!")
///     .can_download(true);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedLinkSettings {
    access: Option<SharedLinkAccess>,
    /// `Some(None)` removes the password.
    password: Option<Option<Secret>>,
    /// `Some(None)` removes the expiry.
    unshared_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
    vanity_name: Option<String>,
    can_download: Option<bool>,
    can_edit: Option<bool>,
}

impl SharedLinkSettings {
    pub fn new() -> SharedLinkSettings {
        SharedLinkSettings::default()
    }
    pub fn access(mut self, access: SharedLinkAccess) -> Self {
        self.access = Some(access);
        self
    }
    /// At least 8 characters with a digit, an upper-case letter or a symbol; open links only.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(Some(password.into()));
        self
    }
    pub fn remove_password(mut self) -> Self {
        self.password = Some(None);
        self
    }
    /// When the link stops working (paid accounts; must be in the future).
    pub fn unshared_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.unshared_at = Some(Some(at));
        self
    }
    pub fn remove_unshared_at(mut self) -> Self {
        self.unshared_at = Some(None);
        self
    }
    /// A custom URL name: at least 12 letters, digits or hyphens.
    pub fn vanity_name(mut self, name: impl Into<String>) -> Self {
        self.vanity_name = Some(name.into());
        self
    }
    pub fn can_download(mut self, yes: bool) -> Self {
        self.can_download = Some(yes);
        self
    }
    /// Files only.
    pub fn can_edit(mut self, yes: bool) -> Self {
        self.can_edit = Some(yes);
        self
    }

    /// The `shared_link` body value, checked.
    pub(crate) fn to_json(&self, for_folder: bool) -> BoxResult<Value> {
        let mut v = json!({});
        if let Some(a) = self.access {
            v["access"] = json!(a.as_str());
        }
        match &self.password {
            None => {}
            Some(None) => v["password"] = Value::Null,
            Some(Some(p)) => {
                let pw = p.expose();
                let strong = pw.chars().count() >= 8
                    && pw
                        .chars()
                        .any(|c| c.is_ascii_digit() || c.is_uppercase() || !c.is_alphanumeric());
                if !strong {
                    return Err(BoxError::Invalid(
                        "a shared link password has at least 8 characters, with a digit, an \
                         upper-case letter or a symbol"
                            .into(),
                    ));
                }
                if self.access.is_some_and(|a| a != SharedLinkAccess::Open) {
                    return Err(BoxError::Invalid(
                        "only open shared links can have a password".into(),
                    ));
                }
                v["password"] = json!(pw);
            }
        }
        match &self.unshared_at {
            None => {}
            Some(None) => v["unshared_at"] = Value::Null,
            Some(Some(t)) => {
                v["unshared_at"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
        }
        if let Some(name) = &self.vanity_name {
            if name.chars().count() < 12
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(BoxError::Invalid(
                    "a vanity name has at least 12 letters, digits or hyphens".into(),
                ));
            }
            v["vanity_name"] = json!(name);
        }
        if self.can_edit.is_some() && for_folder {
            return Err(BoxError::Invalid(
                "shared links of folders cannot allow editing".into(),
            ));
        }
        if self.can_download.is_some() || self.can_edit.is_some() {
            let mut p = json!({});
            if let Some(d) = self.can_download {
                p["can_download"] = json!(d);
            }
            if let Some(e) = self.can_edit {
                p["can_edit"] = json!(e);
            }
            v["permissions"] = p;
        }
        Ok(v)
    }
}

impl Client {
    /// One page of a listing endpoint.
    async fn list_page(&self, path: &str, opts: &ListOptions) -> BoxResult<Items> {
        opts.check()?;
        self.json(opts.apply(self.api(Method::GET, path))).await
    }

    /// Every entry of a listing endpoint, page after page.
    fn list_stream(
        &self,
        path: String,
        opts: ListOptions,
    ) -> impl Stream<Item = BoxResult<Item>> + Send + 'static {
        let client = self.clone();
        stream::try_unfold(Some(opts), move |state| {
            let client = client.clone();
            let path = path.clone();
            async move {
                let Some(opts) = state else {
                    return Ok::<_, BoxError>(None);
                };
                let page = client.list_page(&path, &opts).await?;
                let next = opts.next_page(&page);
                Ok(Some((
                    stream::iter(page.entries.into_iter().map(Ok::<Item, BoxError>)),
                    next,
                )))
            }
        })
        .try_flatten()
    }
}

// ---------------------------------------------------------------------------------------
// Folders

/// Changes to a folder other than a move (Box wants a move alone: see
/// [`Client::move_folder`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderUpdate {
    pub name: Option<String>,
    /// At most 256 characters.
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

impl FolderUpdate {
    fn to_json(&self) -> BoxResult<Value> {
        changes_body(
            self.name.as_deref(),
            self.description.as_deref(),
            self.tags.as_deref(),
        )
    }
}

/// The components of a `/`-separated folder path, each checked.
fn path_components(path: &str) -> BoxResult<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(BoxError::Invalid(format!(
            "'{path}' names no folder to create"
        )));
    }
    for p in &parts {
        check_name(p)?;
    }
    Ok(parts)
}

impl Client {
    /// A folder's standard representation (the root folder is `"0"`), including the
    /// first page of its `item_collection`.
    pub async fn folder(&self, folder_id: &str) -> BoxResult<Item> {
        self.folder_with_fields(folder_id, &[] as &[&str]).await
    }

    /// A folder with exactly the named fields (plus `type`, `id` and `etag`), e.g.
    /// `["name", "size", "metadata.global.properties"]`.
    pub async fn folder_with_fields<S: AsRef<str>>(
        &self,
        folder_id: &str,
        fields: &[S],
    ) -> BoxResult<Item> {
        self.item_with_fields(ItemKind::Folder, folder_id, fields)
            .await
    }

    /// One page of a folder's items. Follow with [`ListOptions::next_page`], or use
    /// [`Client::folder_items`] for every item.
    pub async fn folder_items_page(&self, folder_id: &str, opts: &ListOptions) -> BoxResult<Items> {
        check_id(folder_id)?;
        check_items_options(folder_id, opts)?;
        self.list_page(&format!("/folders/{folder_id}/items"), opts)
            .await
    }

    /// Every item of a folder as a stream, fetched a page at a time as it is consumed.
    ///
    /// ```no_run
    /// # async fn f(client: box_client::Client) -> box_client::BoxResult<()> {
    /// use futures_util::TryStreamExt;
    /// use box_client::folders::ListOptions;
    /// let items: Vec<_> = client
    ///     .folder_items("0", ListOptions::marker().limit(1000))
    ///     .try_collect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn folder_items(
        &self,
        folder_id: &str,
        opts: ListOptions,
    ) -> impl Stream<Item = BoxResult<Item>> + Send + 'static {
        let checked = check_id(folder_id)
            .and_then(|_| check_items_options(folder_id, &opts))
            .and_then(|_| opts.check());
        let inner = self.list_stream(format!("/folders/{folder_id}/items"), opts);
        invalid_or(checked, inner)
    }

    /// Creates a folder; 409 `item_name_in_use` if the name is taken (the error's
    /// [`BoxError::conflict_id`] names the item that holds it).
    pub async fn create_folder(&self, parent_id: &str, name: &str) -> BoxResult<Item> {
        check_id(parent_id)?;
        check_name(name)?;
        self.json(
            self.api(Method::POST, "/folders")
                .json(json!({"name": name, "parent": {"id": parent_id}})),
        )
        .await
    }

    /// Makes sure the folder path `a/b/c` exists under `parent_id`, creating the levels
    /// that are missing and reusing those that exist; returns the last folder. Calling it
    /// again changes nothing. Fails if a level is taken by a file.
    pub async fn create_folder_path(&self, parent_id: &str, path: &str) -> BoxResult<Item> {
        check_id(parent_id)?;
        let parts = path_components(path)?;
        let mut parent = parent_id.to_string();
        let last = parts.len() - 1;
        for (i, name) in parts.iter().enumerate() {
            match self.create_folder(&parent, name).await {
                Ok(folder) if i == last => return Ok(folder),
                Ok(folder) => parent = folder.id,
                Err(e) if e.code() == Some("item_name_in_use") => {
                    let conflict = conflict_item(&e).ok_or(e)?;
                    if conflict.0 != "folder" {
                        return Err(BoxError::Invalid(format!(
                            "'{name}' in folder {parent} is a {}, not a folder",
                            conflict.0
                        )));
                    }
                    if i == last {
                        return self.folder(&conflict.1).await;
                    }
                    parent = conflict.1;
                }
                Err(e) => return Err(e),
            }
        }
        Err(BoxError::Invalid(format!("'{path}' names no folder")))
    }

    /// Renames a folder.
    pub async fn rename_folder(&self, folder_id: &str, name: &str) -> BoxResult<Item> {
        self.rename_item(ItemKind::Folder, folder_id, name).await
    }

    /// Changes a folder's name, description or tags; with `if_match`, only if its etag
    /// is still that (else 412 `precondition_failed`).
    pub async fn update_folder(
        &self,
        folder_id: &str,
        update: &FolderUpdate,
        if_match_etag: Option<&str>,
    ) -> BoxResult<Item> {
        check_id(folder_id)?;
        let body = update.to_json()?;
        self.put_item(
            ItemKind::Folder,
            folder_id,
            body,
            if_match_etag,
            STANDARD_FIELDS,
        )
        .await
    }

    /// Moves a folder into `parent_id`, renaming it too when `name` is given.
    ///
    /// Box refuses a move combined with anything else, so a move with a new name takes
    /// two requests. The order is chosen to dodge name clashes (move first; if the old
    /// name is taken in the target, rename first; if the new name is taken where the folder
    /// is too, by way of a temporary name), and if a later request fails the earlier ones
    /// are undone, so the folder is either fully moved and renamed or where it was.
    pub async fn move_folder(
        &self,
        folder_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        check_id(folder_id)?;
        check_id(parent_id)?;
        let Some(name) = name else {
            return self.move_folder_only(folder_id, parent_id).await;
        };
        check_name(name)?;
        let current = self
            .folder_with_fields(folder_id, &["name", "parent"])
            .await?;
        let old_parent = current.parent.as_ref().map(|p| p.id.clone());
        let old_name = current.name.clone();
        if old_parent.as_deref() == Some(parent_id) {
            return self.rename_folder(folder_id, name).await;
        }
        if old_name == name {
            return self.move_folder_only(folder_id, parent_id).await;
        }
        let Some(old_parent) = old_parent else {
            return Err(BoxError::Invalid("the root folder cannot be moved".into()));
        };
        match self.move_folder_only(folder_id, parent_id).await {
            Ok(_) => match self.rename_folder(folder_id, name).await {
                Ok(item) => Ok(item),
                Err(e) => {
                    if let Err(undo) = self.move_folder_only(folder_id, &old_parent).await {
                        log::warn!(
                            "folder {folder_id}: rename after move failed ({e}) and moving it back failed too: {undo}"
                        );
                    }
                    Err(e)
                }
            },
            Err(e) if e.code() == Some("item_name_in_use") => {
                // The old name is taken in the target: rename in place, then move.
                match self.rename_folder(folder_id, name).await {
                    Ok(_) => {}
                    // The new name is taken here as well (`mv c b/b` where `b/c` exists).
                    Err(e) if e.code() == Some("item_name_in_use") => {
                        return self
                            .move_folder_by_way_of(
                                folder_id,
                                parent_id,
                                &old_parent,
                                name,
                                &old_name,
                            )
                            .await;
                    }
                    Err(e) => return Err(e),
                }
                match self.move_folder_only(folder_id, parent_id).await {
                    Ok(item) => Ok(item),
                    Err(e) => {
                        if let Err(undo) = self.rename_folder(folder_id, &old_name).await {
                            log::warn!(
                                "folder {folder_id}: move after rename failed ({e}) and renaming it back failed too: {undo}"
                            );
                        }
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Moves and renames a folder whose old name is taken in the target and whose new name
    /// is taken where it is: renames it to a name of its own first (it holds the folder's
    /// id, so only someone choosing it on purpose takes it), moves it, renames it. A
    /// failure undoes what was done.
    async fn move_folder_by_way_of(
        &self,
        folder_id: &str,
        parent_id: &str,
        old_parent: &str,
        name: &str,
        old_name: &str,
    ) -> BoxResult<Item> {
        let temporary: String = format!(".{old_name}.moving-{folder_id}")
            .chars()
            .take(255)
            .collect();
        self.rename_folder(folder_id, &temporary).await?;
        let failed = match self.move_folder_only(folder_id, parent_id).await {
            Ok(_) => match self.rename_folder(folder_id, name).await {
                Ok(item) => return Ok(item),
                Err(e) => {
                    if let Err(undo) = self.move_folder_only(folder_id, old_parent).await {
                        log::warn!(
                            "folder {folder_id}: rename after move failed ({e}) and moving it back failed too: {undo}"
                        );
                    }
                    e
                }
            },
            Err(e) => e,
        };
        if let Err(undo) = self.rename_folder(folder_id, old_name).await {
            log::warn!(
                "folder {folder_id}: a move failed ({failed}) and renaming it back from '{temporary}' failed too: {undo}"
            );
        }
        Err(failed)
    }

    async fn move_folder_only(&self, folder_id: &str, parent_id: &str) -> BoxResult<Item> {
        let body = json!({"parent": {"id": parent_id}});
        self.put_item(ItemKind::Folder, folder_id, body, None, STANDARD_FIELDS)
            .await
    }

    /// Copies a folder and everything in it into `parent_id` (under `name` if given).
    pub async fn copy_folder(
        &self,
        folder_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        if folder_id == ROOT_FOLDER {
            return Err(BoxError::Invalid("the root folder cannot be copied".into()));
        }
        self.copy_item(ItemKind::Folder, folder_id, parent_id, name, None)
            .await
    }

    /// Deletes a folder (to the trash, unless the enterprise purges at once). A folder
    /// with contents needs `recursive` (else 400 `folder_not_empty`); with `if_match`,
    /// only if its etag is still that (else 412).
    pub async fn delete_folder(
        &self,
        folder_id: &str,
        recursive: bool,
        if_match_etag: Option<&str>,
    ) -> BoxResult<()> {
        if folder_id == ROOT_FOLDER {
            return Err(BoxError::Invalid(
                "the root folder cannot be deleted".into(),
            ));
        }
        self.delete_item(ItemKind::Folder, folder_id, recursive, if_match_etag)
            .await
    }

    /// The folder's shared link, `None` when it has none.
    pub async fn folder_shared_link(&self, folder_id: &str) -> BoxResult<Option<SharedLink>> {
        self.shared_link_of(ItemKind::Folder, folder_id).await
    }

    /// Creates the folder's shared link or changes it; returns the link.
    pub async fn share_folder(
        &self,
        folder_id: &str,
        settings: &SharedLinkSettings,
    ) -> BoxResult<SharedLink> {
        self.set_shared_link(ItemKind::Folder, folder_id, settings)
            .await
    }

    /// Removes the folder's shared link.
    pub async fn unshare_folder(&self, folder_id: &str) -> BoxResult<()> {
        self.remove_shared_link(ItemKind::Folder, folder_id).await
    }

    /// Brings a folder (and what it held) back from the trash, into its old parent, or
    /// into `parent_id` if that is gone; `name` renames it on the way.
    pub async fn restore_folder(
        &self,
        folder_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        self.restore_item(ItemKind::Folder, folder_id, name, parent_id)
            .await
    }

    /// A folder in the trash (only the folder that was itself deleted, not its contents).
    pub async fn trashed_folder(&self, folder_id: &str) -> BoxResult<Item> {
        self.trashed_item(ItemKind::Folder, folder_id).await
    }

    /// Deletes a trashed folder for good.
    pub async fn purge_folder(&self, folder_id: &str) -> BoxResult<()> {
        self.purge_item(ItemKind::Folder, folder_id).await
    }

    /// One page of the trash. Box refuses `sort` with marker paging, and offsets above
    /// 10,000.
    pub async fn trash_items_page(&self, opts: &ListOptions) -> BoxResult<Items> {
        check_trash_options(opts)?;
        self.list_page("/folders/trash/items", opts).await
    }

    /// Everything in the trash as a stream.
    pub fn trash_items(
        &self,
        opts: ListOptions,
    ) -> impl Stream<Item = BoxResult<Item>> + Send + 'static {
        let checked = check_trash_options(&opts).and_then(|_| opts.check());
        invalid_or(
            checked,
            self.list_stream("/folders/trash/items".into(), opts),
        )
    }
}

/// Box cannot sort the root folder's listing with marker paging.
fn check_items_options(folder_id: &str, opts: &ListOptions) -> BoxResult<()> {
    if folder_id == ROOT_FOLDER && opts.sort.is_some() && matches!(opts.paging, Paging::Marker(_)) {
        return Err(BoxError::Invalid(
            "the root folder cannot be sorted with marker paging".into(),
        ));
    }
    Ok(())
}

fn check_trash_options(opts: &ListOptions) -> BoxResult<()> {
    match &opts.paging {
        Paging::Marker(_) if opts.sort.is_some() => Err(BoxError::Invalid(
            "the trash cannot be sorted with marker paging".into(),
        )),
        Paging::Offset(o) if *o > 10_000 => Err(BoxError::Invalid(
            "the trash cannot be listed from offsets above 10000".into(),
        )),
        _ => Ok(()),
    }
}

/// The stream, or a stream of the one error that stops it before any request.
pub(crate) fn invalid_or<S>(
    checked: BoxResult<()>,
    inner: S,
) -> impl Stream<Item = BoxResult<Item>> + Send + 'static
where
    S: Stream<Item = BoxResult<Item>> + Send + 'static,
{
    use futures_util::StreamExt;
    match checked {
        Ok(()) => inner.left_stream(),
        Err(e) => stream::once(async move { Err(e) }).right_stream(),
    }
}

/// `(type, id)` of the item a 409 names.
fn conflict_item(e: &BoxError) -> Option<(String, String)> {
    let id = e.conflict_id()?;
    let conflicts = e.api()?.context_info.as_ref()?.get("conflicts")?;
    let first = if conflicts.is_array() {
        conflicts.get(0)?
    } else {
        conflicts
    };
    let kind = first
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("folder")
        .to_string();
    Some((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_box_rules() {
        assert!(check_name("report.txt").is_ok());
        assert!(check_name(" leading space is allowed").is_ok());
        assert!(check_name(&"x".repeat(255)).is_ok());
        assert!(check_name(&"é".repeat(255)).is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "trailing ", "tab\there"] {
            assert!(
                matches!(check_name(bad), Err(BoxError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            check_name(&"x".repeat(256)),
            Err(BoxError::Invalid(_))
        ));
    }

    #[test]
    fn paths_split_into_checked_names() {
        assert_eq!(path_components("/L1/L2/L3/").unwrap(), ["L1", "L2", "L3"]);
        assert_eq!(path_components("a//b").unwrap(), ["a", "b"]);
        assert!(path_components("/").is_err());
        assert!(path_components("a/../b").is_err());
    }

    #[test]
    fn offset_paging_advances_by_the_page_size() {
        let opts = ListOptions::offset(0).limit(10);
        let page = Items {
            total_count: Some(25),
            limit: Some(10),
            offset: Some(0),
            entries: vec![Item::default(); 8],
            ..Items::default()
        };
        let next = opts.next_page(&page).unwrap();
        assert_eq!(next.paging, Paging::Offset(10));
        let last = Items {
            offset: Some(20),
            ..page.clone()
        };
        assert!(opts.next_page(&last).is_none());
    }

    #[test]
    fn marker_paging_stops_without_a_marker_or_on_a_repeat() {
        let opts = ListOptions::marker().limit(10);
        let page = Items {
            next_marker: Some("m1".into()),
            ..Items::default()
        };
        let next = opts.next_page(&page).unwrap();
        assert_eq!(next.paging, Paging::Marker(Some("m1".into())));
        assert!(next.next_page(&page).is_none());
        assert!(opts.next_page(&Items::default()).is_none());
    }

    #[test]
    fn shared_link_settings_are_checked() {
        let ok = SharedLinkSettings::new()
            .access(SharedLinkAccess::Open)
            .password("Passw0rd")
            .can_download(true)
            .to_json(true)
            .unwrap();
        assert_eq!(ok["access"], "open");
        assert_eq!(ok["password"], "Passw0rd");
        assert_eq!(ok["permissions"]["can_download"], true);
        assert!(SharedLinkSettings::new()
            .password("short")
            .to_json(false)
            .is_err());
        assert!(SharedLinkSettings::new()
            .access(SharedLinkAccess::Company)
            .password("Passw0rd")
            .to_json(false)
            .is_err());
        assert!(SharedLinkSettings::new()
            .can_edit(true)
            .to_json(true)
            .is_err());
        let removed = SharedLinkSettings::new()
            .remove_password()
            .to_json(false)
            .unwrap();
        assert!(removed["password"].is_null());
        let dbg = format!("{:?}", SharedLinkSettings::new().password("Passw0rd"));
        assert!(!dbg.contains("Passw0rd"), "{dbg}");
    }
}
