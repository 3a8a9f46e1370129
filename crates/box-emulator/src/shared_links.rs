//! Shared links: creating, changing and removing an item's link (the `shared_link` value of
//! `PUT /files/{id}` and `PUT /folders/{id}`), and reaching items through one — the
//! `/s/{token}` and `/v/{vanity_name}` pages, direct downloads at
//! `/shared/static/{token}.{ext}`, `GET /shared_items` and the `BoxApi` header that lets
//! other endpoints reach an item (or anything under a shared folder) through its link.

// Handlers return Box's error JSON by value, as everywhere in the emulator.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::http::{json_response, not_modified, opt_bool, AppState, Ctx, Query};
use super::repr::{item_json, Fields};
use super::store::{Id, ItemKind, SharedLink, Store};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/s/{token}", get(link_page))
        .route("/v/{vanity_name}", get(vanity_page))
        .route("/shared/static/{file}", get(static_download))
        .route("/2.0/shared_items", get(shared_item))
}

/// Whether a link still works: Box removes a link at its `unshared_at`.
pub fn is_live(link: &SharedLink, now: DateTime<Utc>) -> bool {
    link.unshared_at.is_none_or(|t| t > now)
}

fn invalid(name: &str, message: &str) -> ApiError {
    ApiError::invalid_parameter(name, message)
}

/// Box's password rule: at least 8 characters, with a digit, an upper-case letter or a
/// character that is neither a letter nor a digit.
fn password_ok(p: &str) -> bool {
    p.chars().count() >= 8
        && p.chars()
            .any(|c| c.is_ascii_digit() || c.is_uppercase() || !c.is_alphanumeric())
}

/// What a `shared_link` value asks for, once checked.
enum Plan {
    Remove,
    Set { link: SharedLink, created: bool },
    Nothing,
}

fn plan(store: &Store, id: Id, value: &Value, now: DateTime<Utc>) -> ApiResult<Plan> {
    let item = store.item(id)?;
    let obj: &Map<String, Value> = match value {
        Value::Null => {
            return Ok(if item.shared_link.is_some() {
                Plan::Remove
            } else {
                Plan::Nothing
            })
        }
        Value::Object(o) => o,
        _ => {
            return Err(invalid(
                "shared_link",
                "'shared_link' must be an object or null",
            ))
        }
    };
    let existing = item.shared_link.clone().filter(|l| is_live(l, now));
    let created = existing.is_none();
    let mut link = existing.unwrap_or_else(|| SharedLink {
        token: String::new(),
        access: "open".into(),
        password: None,
        unshared_at: None,
        vanity_name: None,
        can_download: true,
        can_edit: false,
        download_count: 0,
        preview_count: 0,
    });

    match obj.get("access") {
        None | Some(Value::Null) => {}
        Some(Value::String(a)) if matches!(a.as_str(), "open" | "company" | "collaborators") => {
            link.access = a.clone();
        }
        Some(_) => {
            return Err(invalid(
                "shared_link.access",
                "'shared_link.access' must be open, company or collaborators",
            ))
        }
    }
    let open = link.access == "open";

    match obj.get("password") {
        None => {
            // A password only exists on open links; narrowing the access drops it.
            if !open {
                link.password = None;
            }
        }
        Some(Value::Null) => link.password = None,
        Some(Value::String(p)) => {
            if !open {
                return Err(invalid(
                    "shared_link.password",
                    "A password can only be set when access is open",
                ));
            }
            if !password_ok(p) {
                return Err(invalid(
                    "shared_link.password",
                    "Passwords must be at least eight characters long and include a number, \
                     upper case letter, or a non-numeric or non-alphabetic character",
                ));
            }
            link.password = Some(p.clone());
        }
        Some(_) => {
            return Err(invalid(
                "shared_link.password",
                "'shared_link.password' must be a string or null",
            ))
        }
    }

    match obj.get("unshared_at") {
        None => {}
        Some(Value::Null) => link.unshared_at = None,
        Some(Value::String(s)) => {
            let t = super::files::parse_time(s, "shared_link.unshared_at")?;
            if t <= now {
                return Err(invalid(
                    "shared_link.unshared_at",
                    "'shared_link.unshared_at' must be in the future",
                ));
            }
            link.unshared_at = Some(t);
        }
        Some(_) => {
            return Err(invalid(
                "shared_link.unshared_at",
                "'shared_link.unshared_at' must be a date-time",
            ))
        }
    }

    match obj.get("vanity_name") {
        None => {}
        Some(Value::Null) => link.vanity_name = None,
        Some(Value::String(v)) => {
            if v.chars().count() < 12 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(
                    "shared_link.vanity_name",
                    "'shared_link.vanity_name' must be at least 12 letters, digits or hyphens",
                ));
            }
            if vanity_owner(store, v, now).is_some_and(|other| other != id) {
                return Err(ApiError::new(
                    400,
                    "invalid_vanity_name",
                    "This vanity name is already in use",
                ));
            }
            link.vanity_name = Some(v.clone());
        }
        Some(_) => {
            return Err(invalid(
                "shared_link.vanity_name",
                "'shared_link.vanity_name' must be a string",
            ))
        }
    }

    let (can_download, can_edit) = match obj.get("permissions") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(p)) => {
            if opt_bool(p, "can_preview")? == Some(false) {
                return Err(invalid(
                    "shared_link.permissions.can_preview",
                    "'can_preview' is always true",
                ));
            }
            (opt_bool(p, "can_download")?, opt_bool(p, "can_edit")?)
        }
        Some(_) => {
            return Err(invalid(
                "shared_link.permissions",
                "'shared_link.permissions' must be an object",
            ))
        }
    };
    if let Some(d) = can_download {
        if d && link.access == "collaborators" {
            return Err(invalid(
                "shared_link.permissions.can_download",
                "'can_download' can only be set when access is open or company",
            ));
        }
        link.can_download = d;
    }
    match can_edit {
        Some(true) => {
            if item.is_folder() {
                return Err(invalid(
                    "shared_link.permissions.can_edit",
                    "'can_edit' is only available on files",
                ));
            }
            if link.access == "collaborators" || !link.can_download {
                return Err(invalid(
                    "shared_link.permissions.can_edit",
                    "'can_edit' needs 'can_download' and access open or company",
                ));
            }
            link.can_edit = true;
        }
        Some(false) => link.can_edit = false,
        // Edit rights cannot outlive the download rights they need.
        None => link.can_edit = link.can_edit && link.can_download,
    }
    Ok(Plan::Set { link, created })
}

/// Applies the `shared_link` value of a PUT body to an item: an object creates or updates
/// the link (`{}` means Box's defaults: open, downloadable), `null` removes it. Nothing
/// changes when it refuses. Bumps the item's etag and records the shared-link event.
pub fn apply(
    store: &mut Store,
    id: Id,
    value: &Value,
    by: Id,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let event = match plan(store, id, value, now)? {
        Plan::Nothing => return Ok(()),
        Plan::Remove => {
            let item = store.item_mut(id)?;
            if let Some(old) = item.shared_link.take() {
                store.shared_links.remove(&old.token);
            }
            Action::RemoveSharedLink
        }
        Plan::Set { mut link, created } => {
            if created {
                if let Some(old) = store.item(id)?.shared_link.as_ref() {
                    let token = old.token.clone();
                    store.shared_links.remove(&token);
                }
                link.token = loop {
                    let t = super::users::random_token(32);
                    if !store.shared_links.contains_key(&t) {
                        break t;
                    }
                };
                store.shared_links.insert(link.token.clone(), id);
            }
            store.item_mut(id)?.shared_link = Some(link);
            if created {
                Action::CreateSharedLink
            } else {
                Action::UpdateSharedLink
            }
        }
    };
    store.item_mut(id)?.touch(by, now);
    store.item_event(event, by, id, now);
    Ok(())
}

/// The item whose live link has this vanity name.
fn vanity_owner(store: &Store, vanity: &str, now: DateTime<Utc>) -> Option<Id> {
    store.shared_links.values().copied().find(|id| {
        store
            .items
            .get(id)
            .and_then(|i| i.shared_link.as_ref())
            .is_some_and(|l| {
                is_live(l, now)
                    && l.vanity_name
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(vanity))
            })
    })
}

/// The item behind a live link token, unless it is in the trash.
fn token_owner(store: &Store, token: &str, now: DateTime<Utc>) -> Option<Id> {
    let id = *store.shared_links.get(token)?;
    let item = store.items.get(&id)?;
    let link = item.shared_link.as_ref()?;
    (link.token == token && is_live(link, now) && store.trashed_ancestor(id).is_none())
        .then_some(id)
}

/// The item a shared-link URL points at: `/s/{token}`, `/v/{vanity}` or a
/// `/shared/static/{token}.{ext}` download URL, on any host.
fn item_for_url(store: &Store, url: &str, now: DateTime<Utc>) -> Option<Id> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    let (kind, last) = {
        let mut segs = path.rsplit('/');
        let last = segs.next()?;
        (segs.next()?, last)
    };
    match kind {
        "s" => token_owner(store, last, now),
        "static" => token_owner(store, last.split('.').next().unwrap_or(""), now),
        "v" => vanity_owner(store, last, now).filter(|id| store.trashed_ancestor(*id).is_none()),
        _ => None,
    }
}

/// Percent-decoding for header values that clients may have URL-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `BoxApi: shared_link=<url>[&shared_link_password=<pw>]` header.
pub struct BoxApi {
    pub link: String,
    pub password: Option<String>,
}

pub fn boxapi(headers: &HeaderMap) -> Option<BoxApi> {
    let raw = headers.get("boxapi")?.to_str().ok()?.trim();
    let rest = raw.strip_prefix("shared_link=")?;
    let (link, password) = match rest.split_once("&shared_link_password=") {
        Some((l, p)) => (l, Some(p.to_string())),
        None => (rest, None),
    };
    Some(BoxApi {
        link: link.to_string(),
        password,
    })
}

/// Who may use a link: people with access to the item always; others by the link's
/// access level and password. Unreachable links are 404s, as Box hides them.
fn check_link_use(
    store: &Store,
    user: Option<Id>,
    id: Id,
    password: Option<&str>,
) -> ApiResult<()> {
    if user.is_some_and(|u| store.can_access(u, id)) {
        return Ok(());
    }
    let item = store.item(id)?;
    let link = item
        .shared_link
        .as_ref()
        .ok_or_else(|| ApiError::not_found("shared item"))?;
    let reachable = match link.access.as_str() {
        "open" => true,
        "company" => user.is_some_and(|u| {
            let enterprise = |x: Id| store.users.get(&x).map(|u| u.enterprise_id.clone());
            enterprise(u).is_some() && enterprise(u) == enterprise(item.owner)
        }),
        _ => false,
    };
    if !reachable {
        return Err(ApiError::not_found("shared item"));
    }
    if let Some(want) = &link.password {
        let given = password.unwrap_or("");
        if given != want && percent_decode(given) != *want {
            return Err(ApiError::forbidden(
                "incorrect_shared_item_password",
                "A password is required for the shared item, but it was incorrect or missing",
            ));
        }
    }
    Ok(())
}

/// The item a `BoxApi` header opens for `user`.
fn boxapi_item(store: &Store, user: Id, b: &BoxApi, now: DateTime<Utc>) -> ApiResult<Id> {
    let id = item_for_url(store, &b.link, now)
        .or_else(|| item_for_url(store, &percent_decode(&b.link), now))
        .ok_or_else(|| ApiError::not_found("shared item"))?;
    check_link_use(store, Some(user), id, b.password.as_deref())?;
    Ok(id)
}

/// Like [`Store::resolve`], but an item the user cannot see is still reached when the
/// request's `BoxApi` header names a link to it or to a folder above it.
pub fn resolve_with_boxapi(
    store: &Store,
    user: Id,
    headers: &HeaderMap,
    raw: &str,
    kind: ItemKind,
    now: DateTime<Utc>,
) -> ApiResult<Id> {
    match store.resolve(user, raw, kind) {
        Err(e) if e.code == "not_found" => {
            let Some(b) = boxapi(headers) else {
                return Err(e);
            };
            let Ok(root) = boxapi_item(store, user, &b, now) else {
                return Err(e);
            };
            let id = super::store::parse_id(raw)?;
            let fits = store.items.get(&id).is_some_and(|i| i.kind == kind)
                && store.is_descendant_or_self(id, root);
            if fits {
                Ok(id)
            } else {
                Err(e)
            }
        }
        r => r,
    }
}

/// `GET /shared_items`: the file or folder a `BoxApi` header's link points at.
async fn shared_item(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let b = boxapi(&ctx.headers).ok_or_else(|| {
        ApiError::invalid_parameter(
            "boxapi",
            "The BoxApi header must be shared_link=<url>[&shared_link_password=<password>]",
        )
    })?;
    let store = ctx.shared.store();
    let id = boxapi_item(&store, ctx.user, &b, Utc::now())?;
    let item = store.item(id)?;
    if ctx.not_modified(item.etag) {
        return Ok(not_modified());
    }
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    Ok(json_response(
        200,
        item_json(&store, item, ctx.user, &fields),
    ))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page a shared link opens in a browser: the item's name, and a download link when
/// the link allows it. Restricted links show a sign-in notice instead.
fn page(store: &Store, id: Id) -> Response {
    let Some(item) = store.items.get(&id) else {
        return ApiError::not_found("shared item").into_response();
    };
    let Some(link) = &item.shared_link else {
        return ApiError::not_found("shared item").into_response();
    };
    let name = escape_html(&item.name);
    let body = if link.access != "open" {
        "<p>This shared item is available to signed-in users only.</p>".to_string()
    } else if link.password.is_some() {
        "<p>This shared item is protected by a password.</p>".to_string()
    } else {
        let owner = store
            .users
            .get(&item.owner)
            .map(|u| escape_html(&u.name))
            .unwrap_or_default();
        let mut b = format!(
            "<h1>{name}</h1>\n<p>A {} shared by {owner}.</p>\n",
            item.kind.as_str()
        );
        if item.kind == ItemKind::File && link.can_download {
            let url = super::repr::shared_link_json(store, item, link)["download_url"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            b.push_str(&format!(
                "<p><a href=\"{}\">Download</a></p>\n",
                escape_html(&url)
            ));
        }
        b
    };
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{name} | Box</title></head>\n<body>\n{body}</body></html>\n"
    ))
    .into_response()
}

async fn link_page(State(sh): State<AppState>, Path(token): Path<String>) -> Response {
    let store = sh.store();
    match token_owner(&store, &token, Utc::now()) {
        Some(id) => page(&store, id),
        None => ApiError::not_found("shared item").into_response(),
    }
}

async fn vanity_page(State(sh): State<AppState>, Path(vanity): Path<String>) -> Response {
    let store = sh.store();
    let now = Utc::now();
    match vanity_owner(&store, &vanity, now).filter(|id| store.trashed_ancestor(*id).is_none()) {
        Some(id) => page(&store, id),
        None => ApiError::not_found("shared item").into_response(),
    }
}

/// `GET /shared/static/{token}.{ext}`: a shared file's bytes. Open links without a
/// password need no token; anything else needs a bearer token of someone the link admits.
async fn static_download(
    State(sh): State<AppState>,
    Path(file): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let now = Utc::now();
    let token = file.split('.').next().unwrap_or("");
    let (content, sha1, name) = {
        let mut store = sh.store();
        let id = token_owner(&store, token, now)
            .filter(|id| store.items.get(id).is_some_and(|i| !i.is_folder()))
            .ok_or_else(|| ApiError::not_found("shared item"))?;
        let viewer = super::http::bearer(&headers)
            .and_then(|t| store.access_tokens.get(&t).cloned())
            .filter(|t| t.expires_at > now)
            .map(|t| t.user);
        let item = store.item(id)?;
        let insider = viewer.is_some_and(|u| store.can_access(u, id));
        if !insider {
            let link = item
                .shared_link
                .as_ref()
                .ok_or_else(|| ApiError::not_found("shared item"))?;
            if !link.can_download {
                return Err(ApiError::forbidden(
                    "access_denied_insufficient_permissions",
                    "This shared link does not allow downloads",
                ));
            }
            check_link_use(&store, viewer, id, None).map_err(|e| {
                if e.status.as_u16() == 404 {
                    ApiError::forbidden(
                        "access_denied_insufficient_permissions",
                        "This shared link needs a signed-in user it admits",
                    )
                } else {
                    e
                }
            })?;
        }
        let version = item
            .current_version()
            .cloned()
            .ok_or_else(|| ApiError::internal("file has no version"))?;
        let name = item.name.clone();
        // A download is counted once: not for HEAD, nor for ranges that resume it.
        let counts = method != Method::HEAD
            && headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|r| {
                    !matches!(
                        super::files::parse_range(r, version.size),
                        super::files::RangeOutcome::Partial(a, _) if a > 0
                    )
                });
        if counts {
            if let Some(link) = store.item_mut(id)?.shared_link.as_mut() {
                link.download_count += 1;
            }
            if let Some(p) = &sh.persist {
                p.mark_dirty();
            }
        }
        (store.blob(&version.sha1)?, version.sha1, name)
    };
    Ok(super::files::serve_bytes(&headers, content, &sha1, &name))
}
