//! Web links, Box's bookmarks: creating one in a folder, reading it (with `fields`),
//! changing its name, folder, URL or description, deleting it to the trash, and its trash
//! (inspect, restore, purge). The calls are the item calls of `items.rs`, which files and
//! folders use too, decoding into [`WebLink`]. In folder listings and the trash a web link
//! is an [`crate::types::Item`] of kind `web_link` whose `url` is set.
//!
//! Box keeps only `http://` and `https://` addresses (anything else is a 400), and web link
//! names follow the rules of file and folder names, in the same namespace (a web link and
//! a file of the same name in one folder are a 409 `item_name_in_use`); both are checked
//! here before anything is sent. Box names a link created without a name after its URL.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::Client;
use super::error::{BoxError, BoxResult};
use super::items::{changes_body, ItemKind, STANDARD_FIELDS};
use super::types::WebLink;
use super::users::check_id;

/// Changes to a web link in one request (Box takes a rename and a move at once, as for a
/// file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebLinkUpdate {
    pub name: Option<String>,
    /// Move into this folder.
    pub parent_id: Option<String>,
    /// An `http://` or `https://` address.
    pub url: Option<String>,
    /// At most 256 characters.
    pub description: Option<String>,
}

impl WebLinkUpdate {
    fn to_json(&self) -> BoxResult<Value> {
        let mut body = changes_body(self.name.as_deref(), self.description.as_deref(), None)?;
        if let Some(p) = &self.parent_id {
            check_id(p)?;
            body["parent"] = json!({ "id": p });
        }
        if let Some(u) = &self.url {
            check_url(u)?;
            body["url"] = json!(u);
        }
        Ok(body)
    }
}

/// An address Box keeps: `http://` or `https://` (in any case) followed by a host.
pub fn check_url(url: &str) -> BoxResult<()> {
    let refuse = |why: &str| {
        Err(BoxError::Invalid(format!(
            "'{url}' is not a web link address: {why}"
        )))
    };
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return refuse(&e.to_string()),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return refuse("Box keeps only http:// and https:// addresses");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return refuse("it names no host");
    }
    if url.trim() != url {
        return refuse("it has spaces around it");
    }
    Ok(())
}

impl Client {
    /// Creates a web link to `url` in `parent_id`. Without a `name` Box names it after the
    /// URL; `description` has at most 256 characters.
    pub async fn create_web_link(
        &self,
        parent_id: &str,
        url: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> BoxResult<WebLink> {
        check_id(parent_id)?;
        check_url(url)?;
        let mut body = changes_body(name, description, None)?;
        body["url"] = json!(url);
        body["parent"] = json!({ "id": parent_id });
        // Box answers 200 here (201 for other creates); any success status decodes.
        self.json(self.api(Method::POST, "/web_links").json(body))
            .await
    }

    /// A web link with exactly the named fields (plus `type`, `id` and `etag`), or its
    /// standard representation when `fields` is empty.
    pub async fn web_link<S: AsRef<str>>(
        &self,
        web_link_id: &str,
        fields: &[S],
    ) -> BoxResult<WebLink> {
        self.item_with_fields(ItemKind::WebLink, web_link_id, fields)
            .await
    }

    /// Changes a web link's name, folder, URL or description in one request.
    pub async fn update_web_link(
        &self,
        web_link_id: &str,
        changes: &WebLinkUpdate,
    ) -> BoxResult<WebLink> {
        check_id(web_link_id)?;
        let body = changes.to_json()?;
        self.put_item(ItemKind::WebLink, web_link_id, body, None, STANDARD_FIELDS)
            .await
    }

    /// Deletes a web link (to the trash, unless the enterprise purges at once).
    pub async fn delete_web_link(&self, web_link_id: &str) -> BoxResult<()> {
        self.delete_item(ItemKind::WebLink, web_link_id, false, None)
            .await
    }

    /// A web link in the trash.
    pub async fn trashed_web_link(&self, web_link_id: &str) -> BoxResult<WebLink> {
        self.trashed_item(ItemKind::WebLink, web_link_id).await
    }

    /// Brings a web link back from the trash, into its old folder, or into `parent_id` if
    /// that is gone; `name` renames it on the way.
    pub async fn restore_web_link(
        &self,
        web_link_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<WebLink> {
        self.restore_item(ItemKind::WebLink, web_link_id, name, parent_id)
            .await
    }

    /// Deletes a trashed web link for good.
    pub async fn purge_web_link(&self, web_link_id: &str) -> BoxResult<()> {
        self.purge_item(ItemKind::WebLink, web_link_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_box_refuses_are_refused_before_sending() {
        for good in ["https://example.com", "HTTP://example.com/a?b#c"] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com/x",
            "mailto:a@example.com",
            "https://",
            " https://example.com",
        ] {
            assert!(matches!(check_url(bad), Err(BoxError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn an_update_is_checked_and_written_as_box_reads_it() {
        let all = WebLinkUpdate {
            name: Some("Docs".into()),
            parent_id: Some("42".into()),
            url: Some("https://example.com/docs".into()),
            description: Some("the manual".into()),
        };
        assert_eq!(
            all.to_json().unwrap(),
            json!({"name": "Docs", "parent": {"id": "42"}, "url": "https://example.com/docs", "description": "the manual"})
        );
        let bad_url = WebLinkUpdate {
            url: Some("gopher://example.com".into()),
            ..WebLinkUpdate::default()
        };
        assert!(matches!(bad_url.to_json(), Err(BoxError::Invalid(_))));
        let bad_name = WebLinkUpdate {
            name: Some("a/b".into()),
            ..WebLinkUpdate::default()
        };
        assert!(matches!(bad_name.to_json(), Err(BoxError::Invalid(_))));
    }
}
