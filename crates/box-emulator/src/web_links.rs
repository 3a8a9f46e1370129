//! Web links (Box's bookmarks): `POST /web_links`, `GET/PUT/DELETE /web_links/{id}`, and
//! their trash (`GET/DELETE /web_links/{id}/trash`, restore by `POST /web_links/{id}`). A web
//! link is an item of the store like a file or folder ([`ItemKind::WebLink`], its address in
//! `Item::url`): it shares their namespace (409 `item_name_in_use` whichever kind holds the
//! name), their `If-Match` checks, events, search, listings and the trash, whose handlers
//! in `files.rs` serve all three kinds.
//!
//! Box's surprises kept here: creating a web link answers 200, not the 201 of the other
//! creates (its description says so); only `http://` and `https://` addresses are taken
//! (400 `bad_request` otherwise); and a link created without a name is named after its
//! URL. Box's description says the name "defaults to the URL"; its recorded answer (the
//! Java SDK's fixture) names `https://example.com` `example.com`, and a URL with a path
//! would break the name rules (no `/`), so the emulator takes the URL's host.

use axum::extract::Path;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::files::{get_trashed, parse_description, purge, restore};
use super::http::{
    json_body, json_response, no_content, opt_str, parent_id, required_parent_id, AppState, Ctx,
    Query,
};
use super::repr::{item_json, Fields};
use super::store::{check_name, ItemKind};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2.0/web_links", post(create))
        .route(
            "/2.0/web_links/{web_link_id}",
            get(get_web_link)
                .put(update)
                .delete(delete)
                .post(restore_web_link),
        )
        .route(
            "/2.0/web_links/{web_link_id}/trash",
            get(get_trashed_web_link).delete(purge_web_link),
        )
}

fn fields(q: &Query) -> Fields {
    Fields::parse(q.get("fields").map(String::as_str))
}

/// An address Box keeps: an absolute `http://` or `https://` URL with a host, as given (Box
/// answers it unchanged, without the trailing `/` a parser would add).
pub fn check_url(raw: &str) -> ApiResult<String> {
    let refuse = |why: &str| {
        ApiError::invalid_parameter(
            "url",
            format!("'url' must be an http:// or https:// URL: {why}"),
        )
    };
    if raw.is_empty() {
        return Err(refuse("it is empty"));
    }
    if raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err(refuse("it has surrounding spaces or a control character"));
    }
    let parsed = url::Url::parse(raw).map_err(|e| refuse(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse(&format!(
            "'{}' is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it names no host"));
    }
    Ok(raw.to_string())
}

/// The name of a link created without one: its URL's host (see the module note).
fn default_name(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| url.to_string())
}

/// A `url` in a request body: required on create, optional on update.
fn body_url(body: &Map<String, Value>) -> ApiResult<Option<String>> {
    opt_str(body, "url")?.map(|u| check_url(&u)).transpose()
}

/// `POST /web_links` `{url, parent: {id}, name?, description?}`.
async fn create(ctx: Ctx, q: Query, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let url =
        body_url(&body)?.ok_or_else(|| ApiError::invalid_parameter("url", "'url' is required"))?;
    let parent_raw = required_parent_id(&body)?;
    let name = opt_str(&body, "name")?.unwrap_or_else(|| default_name(&url));
    check_name(&name)?;
    let description = parse_description(&body)?.unwrap_or_default();
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let parent = store.resolve_parent(ctx.user, &parent_raw)?;
    store.check_name_free(parent, &name, None)?;
    let now = Utc::now();
    let owner = store.item(parent)?.owner;
    let mut item = store.new_item(ItemKind::WebLink, &name, parent, owner, ctx.user, now);
    item.url = Some(url);
    item.description = description;
    let id = store.insert_item(item);
    store.item_event(Action::CreateWebLink, ctx.user, id, now);
    let out = item_json(&store, store.item(id)?, ctx.user, &fields(&q));
    shared.changed(&store);
    // 200, as Box's description has it for this create (not 201).
    Ok(json_response(200, out))
}

async fn get_web_link(ctx: Ctx, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = store.resolve(ctx.user, &id, ItemKind::WebLink)?;
    Ok(json_response(
        200,
        item_json(&store, store.item(id)?, ctx.user, &fields(&q)),
    ))
}

/// `PUT /web_links/{id}`: rename, move (both at once, as for a file), a new URL or
/// description, all checked before any of it is applied.
async fn update(ctx: Ctx, Path(raw): Path<String>, q: Query, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    if body.get("shared_link").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request(
            "Shared links on web links are not supported by this server",
        ));
    }
    let name = opt_str(&body, "name")?;
    let parent_raw = parent_id(&body)?;
    let url = body_url(&body)?;
    let description = parse_description(&body)?;
    let user = ctx.user;
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let id = store.resolve(user, &raw, ItemKind::WebLink)?;
    let item = store.item(id)?;
    ctx.check_if_match(item.etag)?;
    let target = store.relink_target(user, id, name, parent_raw.as_deref())?;
    target.check(&store)?;
    let item = store.item(id)?;
    let url_changed = url.as_ref().is_some_and(|u| Some(u) != item.url.as_ref());
    let description_changed = description.as_ref().is_some_and(|d| *d != item.description);

    let now = Utc::now();
    // As for files: a rename and a move are each reported; other changes only on their own.
    let mut events = target.apply(&mut store);
    let item = store.item_mut(id)?;
    if url_changed {
        item.url = url;
    }
    if let Some(d) = description.filter(|_| description_changed) {
        item.description = d;
    }
    if target.changes() || url_changed || description_changed {
        item.touch(user, now);
    }
    if (url_changed || description_changed) && !target.changes() {
        events.push(Action::EditInfo);
    }
    for e in events {
        store.item_event(e, user, id, now);
    }
    let out = item_json(&store, store.item(id)?, user, &fields(&q));
    shared.changed(&store);
    Ok(json_response(200, out))
}

/// `DELETE /web_links/{id}`: to the trash, as files and folders go.
async fn delete(ctx: Ctx, Path(raw): Path<String>) -> ApiResult<Response> {
    let now = Utc::now();
    let mut store = ctx.shared.store();
    let id = store.resolve(ctx.user, &raw, ItemKind::WebLink)?;
    ctx.check_if_match(store.item(id)?.etag)?;
    store.trash_item(id, ctx.user, now);
    store.item_event(Action::Trash, ctx.user, id, now);
    ctx.shared.changed(&store);
    Ok(no_content())
}

async fn get_trashed_web_link(ctx: Ctx, Path(raw): Path<String>, q: Query) -> ApiResult<Response> {
    get_trashed(&ctx, &raw, ItemKind::WebLink, &q)
}

async fn purge_web_link(ctx: Ctx, Path(raw): Path<String>) -> ApiResult<Response> {
    purge(&ctx, &raw, ItemKind::WebLink)
}

/// `POST /web_links/{id}`: out of the trash, into its folder (or `parent` when that folder
/// is gone), under `name` when given.
async fn restore_web_link(
    ctx: Ctx,
    Path(raw): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    restore(&ctx, &raw, ItemKind::WebLink, &q, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_kept() {
        for good in [
            "https://example.com",
            "http://example.com/a/b?c=d#e",
            "HTTPS://Example.com:8443/x",
        ] {
            assert_eq!(check_url(good).expect(good), good);
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://",
            " https://example.com",
            "https://exa\nmple.com",
            "mailto:someone@example.com",
        ] {
            let e = check_url(bad).expect_err(bad);
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (400, "bad_request"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_link_without_a_name_is_named_after_its_host() {
        assert_eq!(default_name("https://example.com"), "example.com");
        assert_eq!(
            default_name("http://docs.example.com/a/b/c"),
            "docs.example.com"
        );
        assert!(check_name(&default_name("https://example.com/a/b")).is_ok());
    }
}
