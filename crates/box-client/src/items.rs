//! What files, folders and web links share. Box's item endpoints differ only by their path
//! (`/files/{id}`, `/folders/{id}`, `/web_links/{id}`) for reading one item with `fields`,
//! renaming, changing it with `If-Match`, copying, deleting, shared links and the trash: each
//! of those calls is written once here, over [`ItemKind`], and decodes into whatever type the
//! caller asks for (an [`Item`], or a [`crate::types::WebLink`]). `files.rs`, `folders.rs` and
//! `web_links.rs` keep the public methods and the rules of their own kind: a file copies one
//! version, and moves and renames in one request; a folder moves in a request of its own,
//! and the root folder is neither copied nor deleted; a web link keeps an http(s) URL.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::client::{Client, Request};
use super::error::{BoxError, BoxResult};
use super::folders::{check_name, SharedLinkSettings};
use super::metadata::ItemRef;
use super::types::{Item, SharedLink};
use super::users::check_id;

/// A file, a folder or a web link, as the API paths name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    File,
    Folder,
    WebLink,
}

impl ItemKind {
    pub(crate) fn of(item: &ItemRef) -> (ItemKind, &str) {
        match item {
            ItemRef::File(id) => (ItemKind::File, id),
            ItemRef::Folder(id) => (ItemKind::Folder, id),
        }
    }

    pub(crate) fn path(self, id: &str) -> String {
        match self {
            ItemKind::File => format!("/files/{id}"),
            ItemKind::Folder => format!("/folders/{id}"),
            ItemKind::WebLink => format!("/web_links/{id}"),
        }
    }
}

/// No `fields`: Box answers with the item's standard representation.
pub(crate) const STANDARD_FIELDS: &[&str] = &[];

/// The `fields` query value, or nothing when no fields are asked for.
pub(crate) fn with_fields<S: AsRef<str>>(req: Request, fields: &[S]) -> Request {
    if fields.is_empty() {
        req
    } else {
        let joined: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
        req.query("fields", joined.join(","))
    }
}

fn if_match(req: Request, etag: Option<&str>) -> Request {
    match etag {
        Some(e) => req.header(reqwest::header::IF_MATCH, e),
        None => req,
    }
}

/// Box keeps descriptions of at most 256 characters.
pub(crate) fn check_description(d: &str) -> BoxResult<()> {
    if d.chars().count() > 256 {
        return Err(BoxError::Invalid(
            "a description has at most 256 characters".into(),
        ));
    }
    Ok(())
}

/// The checked body of a change of what every item has: name, description, tags.
pub(crate) fn changes_body(
    name: Option<&str>,
    description: Option<&str>,
    tags: Option<&[String]>,
) -> BoxResult<Value> {
    let mut body = json!({});
    if let Some(n) = name {
        check_name(n)?;
        body["name"] = json!(n);
    }
    if let Some(d) = description {
        check_description(d)?;
        body["description"] = json!(d);
    }
    if let Some(t) = tags {
        body["tags"] = json!(t);
    }
    Ok(body)
}

impl Client {
    /// An item with exactly the named fields (its standard representation when none).
    pub(crate) async fn item_with_fields<T: DeserializeOwned, S: AsRef<str>>(
        &self,
        kind: ItemKind,
        id: &str,
        fields: &[S],
    ) -> BoxResult<T> {
        check_id(id)?;
        self.json(with_fields(self.api(Method::GET, &kind.path(id)), fields))
            .await
    }

    /// `PUT` of `body` on an item (only if its etag is still `if_match_etag`, when given);
    /// returns the item with `fields`.
    pub(crate) async fn put_item<T: DeserializeOwned, S: AsRef<str>>(
        &self,
        kind: ItemKind,
        id: &str,
        body: Value,
        if_match_etag: Option<&str>,
        fields: &[S],
    ) -> BoxResult<T> {
        check_id(id)?;
        let req = self.api(Method::PUT, &kind.path(id)).json(body);
        self.json(with_fields(if_match(req, if_match_etag), fields))
            .await
    }

    /// Renames an item.
    pub(crate) async fn rename_item(
        &self,
        kind: ItemKind,
        id: &str,
        name: &str,
    ) -> BoxResult<Item> {
        check_id(id)?;
        let body = changes_body(Some(name), None, None)?;
        self.put_item(kind, id, body, None, STANDARD_FIELDS).await
    }

    /// Copies an item (a file's `version`, when given) into `parent_id`, under `name` if
    /// given.
    pub(crate) async fn copy_item(
        &self,
        kind: ItemKind,
        id: &str,
        parent_id: &str,
        name: Option<&str>,
        version: Option<&str>,
    ) -> BoxResult<Item> {
        check_id(id)?;
        check_id(parent_id)?;
        // Box would quietly strip bad characters from a copy's name; refuse instead, as for
        // every other name.
        let mut body = changes_body(name, None, None)?;
        body["parent"] = json!({ "id": parent_id });
        if let Some(v) = version {
            check_id(v)?;
            body["version"] = json!(v);
        }
        self.json(
            self.api(Method::POST, &format!("{}/copy", kind.path(id)))
                .json(body),
        )
        .await
    }

    /// Deletes an item (to the trash, unless the enterprise purges at once); a folder with
    /// contents needs `recursive`. With `if_match_etag`, only if its etag is still that.
    pub(crate) async fn delete_item(
        &self,
        kind: ItemKind,
        id: &str,
        recursive: bool,
        if_match_etag: Option<&str>,
    ) -> BoxResult<()> {
        check_id(id)?;
        let mut req = self.api(Method::DELETE, &kind.path(id));
        if recursive {
            req = req.query("recursive", "true");
        }
        self.empty(if_match(req, if_match_etag)).await
    }

    /// The shared link of a file or folder, `None` when it has none.
    pub(crate) async fn shared_link_of(
        &self,
        kind: ItemKind,
        id: &str,
    ) -> BoxResult<Option<SharedLink>> {
        let item: Item = self.item_with_fields(kind, id, &["shared_link"]).await?;
        Ok(item.shared_link)
    }

    /// `PUT` of a `shared_link` value (an object sets, `null` removes); returns the item
    /// with `fields` (`shared_link` always among them).
    async fn put_shared_link<S: AsRef<str>>(
        &self,
        kind: ItemKind,
        id: &str,
        link: Value,
        fields: &[S],
    ) -> BoxResult<Item> {
        let mut fields: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
        if !fields.contains(&"shared_link") {
            fields.push("shared_link");
        }
        self.put_item(kind, id, json!({ "shared_link": link }), None, &fields)
            .await
    }

    /// Creates or changes the shared link of `item` and returns the item with `fields`
    /// besides `shared_link`: a caller that caches items learns the etag and sequence_id the
    /// change gave it.
    pub async fn share_item_with_fields<S: AsRef<str>>(
        &self,
        item: &ItemRef,
        settings: &SharedLinkSettings,
        fields: &[S],
    ) -> BoxResult<Item> {
        let (kind, id) = ItemKind::of(item);
        let link = settings.to_json(kind == ItemKind::Folder)?;
        self.put_shared_link(kind, id, link, fields).await
    }

    /// Removes the shared link of `item`; returns the item with `fields` (see
    /// [`Client::share_item_with_fields`]).
    pub async fn unshare_item_with_fields<S: AsRef<str>>(
        &self,
        item: &ItemRef,
        fields: &[S],
    ) -> BoxResult<Item> {
        let (kind, id) = ItemKind::of(item);
        self.put_shared_link(kind, id, Value::Null, fields).await
    }

    /// Creates or changes the shared link of a file or folder.
    pub(crate) async fn set_shared_link(
        &self,
        kind: ItemKind,
        id: &str,
        settings: &SharedLinkSettings,
    ) -> BoxResult<SharedLink> {
        let link = settings.to_json(kind == ItemKind::Folder)?;
        let item = self
            .put_shared_link(kind, id, link, &["shared_link"])
            .await?;
        item.shared_link.ok_or_else(|| {
            BoxError::Decode(format!(
                "Box answered a shared link change of {} without a shared link",
                kind.path(id)
            ))
        })
    }

    /// Removes the shared link of a file or folder (`"shared_link": null`).
    pub(crate) async fn remove_shared_link(&self, kind: ItemKind, id: &str) -> BoxResult<()> {
        self.put_shared_link(kind, id, Value::Null, &["shared_link"])
            .await?;
        Ok(())
    }

    /// Restores a trashed item; `parent_id` is used only when the original parent is gone.
    pub(crate) async fn restore_item<T: DeserializeOwned>(
        &self,
        kind: ItemKind,
        id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<T> {
        check_id(id)?;
        let mut body = changes_body(name, None, None)?;
        if let Some(p) = parent_id {
            check_id(p)?;
            body["parent"] = json!({ "id": p });
        }
        self.json(self.api(Method::POST, &kind.path(id)).json(body))
            .await
    }

    /// A trashed item as it sits in the trash.
    pub(crate) async fn trashed_item<T: DeserializeOwned>(
        &self,
        kind: ItemKind,
        id: &str,
    ) -> BoxResult<T> {
        check_id(id)?;
        self.json(self.api(Method::GET, &format!("{}/trash", kind.path(id))))
            .await
    }

    /// Deletes a trashed item for good.
    pub(crate) async fn purge_item(&self, kind: ItemKind, id: &str) -> BoxResult<()> {
        check_id(id)?;
        self.empty(self.api(Method::DELETE, &format!("{}/trash", kind.path(id))))
            .await
    }
}
