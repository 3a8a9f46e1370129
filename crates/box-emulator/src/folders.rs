//! Folder endpoints: get (with `item_collection`), items with offset or marker paging,
//! create, update (rename, move, description, shared link — Box refuses a move combined
//! with other changes), delete to the trash (recursive for non-empty folders) and deep copy.

use axum::extract::Path;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::http::{
    json_body, json_response, no_content, not_modified, opt_str, parent_id, query_u64,
    required_parent_id, AppState, Ctx, Query,
};
use super::repr::{item_json, mini, Fields};
use super::store::{check_name, Id, Item, ItemKind, Store};

/// Box's default page size for folder listings, and its maximum.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2.0/folders", post(create))
        .route(
            "/2.0/folders/{folder_id}",
            get(get_folder)
                .put(update)
                .delete(delete)
                .post(super::files::restore_folder),
        )
        .route("/2.0/folders/{folder_id}/items", get(items))
        .route("/2.0/folders/{folder_id}/copy", post(copy))
}

/// How a listing is ordered: always folders first, then files, then web links, then by
/// `sort`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SortBy {
    Id,
    Name,
    Date,
    Size,
}

#[derive(Debug, Clone, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum SortValue {
    Num(i64),
    Text(String),
}

/// An entry's position in a listing; markers carry the last one returned, so paging
/// stays correct when entries are added or removed between pages.
type SortKey = (u8, SortValue, Id);

fn sort_key(store: &Store, item: &Item, by: SortBy) -> SortKey {
    let rank = item.kind.listing_rank();
    let value = match by {
        SortBy::Id => SortValue::Num(item.id as i64),
        SortBy::Name => SortValue::Text(item.name.to_lowercase()),
        SortBy::Date => SortValue::Num(item.modified_at.timestamp()),
        SortBy::Size => SortValue::Num(store.tree_size(item.id) as i64),
    };
    (rank, value, item.id)
}

fn cmp_keys(a: &SortKey, b: &SortKey) -> std::cmp::Ordering {
    a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)
}

struct Listing {
    sort: SortBy,
    descending: bool,
}

impl Listing {
    fn from_query(q: &std::collections::HashMap<String, String>) -> ApiResult<Listing> {
        let sort = match q.get("sort").map(String::as_str) {
            None | Some("") | Some("name") => SortBy::Name,
            Some("id") => SortBy::Id,
            Some("date") => SortBy::Date,
            Some("size") => SortBy::Size,
            Some(other) => {
                return Err(ApiError::invalid_parameter(
                    "sort",
                    format!("Invalid value '{other}' for sort"),
                ))
            }
        };
        let descending = match q.get("direction").map(|d| d.to_ascii_uppercase()) {
            None => false,
            Some(d) if d.is_empty() || d == "ASC" => false,
            Some(d) if d == "DESC" => true,
            Some(other) => {
                return Err(ApiError::invalid_parameter(
                    "direction",
                    format!("Invalid value '{other}' for direction"),
                ))
            }
        };
        Ok(Listing { sort, descending })
    }

    /// The folder's active children in listing order.
    fn ordered(&self, store: &Store, folder: Id) -> Vec<(SortKey, Id)> {
        let mut entries: Vec<(SortKey, Id)> = store
            .active_children(folder)
            .into_iter()
            .filter_map(|id| {
                store
                    .items
                    .get(&id)
                    .map(|i| (sort_key(store, i, self.sort), id))
            })
            .collect();
        entries.sort_by(|a, b| {
            // The type order stays whatever the direction; only the sort value flips.
            let (ra, rb) = (a.0 .0, b.0 .0);
            ra.cmp(&rb).then_with(|| {
                let o = cmp_keys(&a.0, &b.0);
                if self.descending {
                    o.reverse()
                } else {
                    o
                }
            })
        });
        entries
    }

    fn order_json(&self) -> Value {
        let by = match self.sort {
            SortBy::Id => "id",
            SortBy::Name => "name",
            SortBy::Date => "date",
            SortBy::Size => "size",
        };
        let dir = if self.descending { "DESC" } else { "ASC" };
        json!([{"by": "type", "direction": "ASC"}, {"by": by, "direction": dir}])
    }
}

fn encode_marker(key: &SortKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode_marker(raw: &str) -> ApiResult<SortKey> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::invalid_parameter("marker", "Invalid marker"))
}

/// One entry of a listing: mini unless `fields` asks for more.
fn entry_json(store: &Store, item: &Item, viewer: Id, fields: &Fields) -> Value {
    if fields.is_standard() {
        mini(store, item)
    } else {
        item_json(store, item, viewer, fields)
    }
}

/// Offset-paged listing body (`S.Items`), shared by `item_collection` and `/items`.
fn offset_page(
    store: &Store,
    folder: Id,
    viewer: Id,
    listing: &Listing,
    offset: u64,
    limit: u64,
    fields: &Fields,
) -> Value {
    let all = listing.ordered(store, folder);
    let entries: Vec<Value> = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .filter_map(|(_, id)| store.items.get(id))
        .map(|i| entry_json(store, i, viewer, fields))
        .collect();
    json!({
        "total_count": all.len(),
        "entries": entries,
        "offset": offset,
        "limit": limit,
        "order": listing.order_json(),
    })
}

fn limit_param(q: &std::collections::HashMap<String, String>) -> ApiResult<u64> {
    Ok(query_u64(q, "limit", DEFAULT_LIMIT)?.clamp(1, MAX_LIMIT))
}

async fn get_folder(ctx: Ctx, Path(folder_id): Path<String>, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = store.resolve(ctx.user, &folder_id, ItemKind::Folder)?;
    let item = store.item(id)?;
    if !item.is_root() && ctx.not_modified(item.etag) {
        return Ok(not_modified());
    }
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let mut out = item_json(&store, item, ctx.user, &fields);
    let wants_collection = fields
        .0
        .as_ref()
        .is_none_or(|f| f.contains("item_collection"));
    if wants_collection {
        let listing = Listing::from_query(&q)?;
        let offset = query_u64(&q, "offset", 0)?;
        let limit = limit_param(&q)?;
        out["item_collection"] =
            offset_page(&store, id, ctx.user, &listing, offset, limit, &Fields(None));
    }
    Ok(json_response(200, out))
}

async fn items(ctx: Ctx, Path(folder_id): Path<String>, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = store.resolve(ctx.user, &folder_id, ItemKind::Folder)?;
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let listing = Listing::from_query(&q)?;
    let limit = limit_param(&q)?;
    // Box's Python SDK sends `usemarker=True` (a Python bool in the query); Box takes any case.
    let use_marker = q
        .get("usemarker")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || q.contains_key("marker");
    if !use_marker {
        let offset = query_u64(&q, "offset", 0)?;
        return Ok(json_response(
            200,
            offset_page(&store, id, ctx.user, &listing, offset, limit, &fields),
        ));
    }
    let all = listing.ordered(&store, id);
    let start = match q.get("marker").filter(|m| !m.is_empty()) {
        None => 0,
        Some(raw) => {
            let after = decode_marker(raw)?;
            // First entry strictly after the marker in listing order.
            all.iter()
                .position(|(k, _)| {
                    let rank_order = k.0.cmp(&after.0);
                    let o = cmp_keys(k, &after);
                    let o = if rank_order == std::cmp::Ordering::Equal && listing.descending {
                        o.reverse()
                    } else {
                        o
                    };
                    if rank_order != std::cmp::Ordering::Equal {
                        rank_order == std::cmp::Ordering::Greater
                    } else {
                        o == std::cmp::Ordering::Greater
                    }
                })
                .unwrap_or(all.len())
        }
    };
    let page: Vec<&(SortKey, Id)> = all.iter().skip(start).take(limit as usize).collect();
    let entries: Vec<Value> = page
        .iter()
        .filter_map(|(_, id)| store.items.get(id))
        .map(|i| entry_json(&store, i, ctx.user, &fields))
        .collect();
    let next_marker = if start + page.len() < all.len() {
        page.last().map(|(k, _)| json!(encode_marker(k)))
    } else {
        None
    };
    let mut out = json!({"entries": entries, "limit": limit, "order": listing.order_json()});
    out["next_marker"] = next_marker.unwrap_or(Value::Null);
    Ok(json_response(200, out))
}

async fn create(ctx: Ctx, q: Query, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let name = opt_str(&body, "name")?
        .ok_or_else(|| ApiError::invalid_parameter("name", "'name' is required"))?;
    let parent_raw = required_parent_id(&body)?;
    check_name(&name)?;
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let parent = store.resolve_parent(ctx.user, &parent_raw)?;
    store.check_name_free(parent, &name, None)?;
    let now = Utc::now();
    let owner = store.item(parent)?.owner;
    let item = store.new_item(ItemKind::Folder, &name, parent, owner, ctx.user, now);
    let id = store.insert_item(item);
    store.item_event(Action::CreateFolder, ctx.user, id, now);
    let out = item_json(
        &store,
        store.item(id)?,
        ctx.user,
        &Fields::parse(q.get("fields").map(String::as_str)),
    );
    shared.changed(&store);
    Ok(json_response(201, out))
}

/// Fails with 403 if a file in the subtree is locked by someone other than `user`.
pub fn check_subtree_unlocked(store: &Store, root: Id, user: Id) -> ApiResult<()> {
    let now = Utc::now();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if let Some(item) = store.items.get(&id) {
            if item
                .lock
                .as_ref()
                .is_some_and(|l| l.is_active(now) && l.created_by != user)
            {
                return Err(ApiError::forbidden(
                    "access_denied_item_locked",
                    "A file in this folder is locked by another user",
                ));
            }
            stack.extend(store.active_children(id));
        }
    }
    Ok(())
}

async fn update(
    ctx: Ctx,
    Path(folder_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let id = store.resolve(ctx.user, &folder_id, ItemKind::Folder)?;
    let (etag, is_root, cur_parent, cur_name) = {
        let item = store.item(id)?;
        (item.etag, item.is_root(), item.parent, item.name.clone())
    };
    ctx.check_if_match(etag)?;
    let new_parent_raw = parent_id(&body)?;
    // Box moves a folder in a request of its own, but a new `name` may come along: rclone's
    // Box backend moves and renames a directory with one `{"name", "parent"}` PUT (its
    // integration tests run against Box), and so does the Python SDK's `Folder.move(name=)`.
    if new_parent_raw.is_some() && body.keys().any(|k| k != "parent" && k != "name") {
        return Err(ApiError::forbidden(
            "operation_limit_exceeded",
            "A folder move cannot be combined with other changes in one request; move first, then update",
        ));
    }
    let name = opt_str(&body, "name")?;
    let description = opt_str(&body, "description")?;
    if is_root && (name.is_some() || new_parent_raw.is_some()) {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "The root folder cannot be renamed or moved",
        ));
    }
    if let Some(d) = &description {
        if d.chars().count() > 256 {
            return Err(ApiError::invalid_parameter(
                "description",
                "'description' is at most 256 characters",
            ));
        }
    }
    let tags = match body.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|t| {
                    t.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::invalid_parameter("tags", "'tags' must be strings")
                    })
                })
                .collect::<ApiResult<Vec<String>>>()?,
        ),
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "tags",
                "'tags' must be an array",
            ))
        }
    };
    // Check everything before changing anything.
    let mut target_parent = cur_parent;
    if let Some(raw) = &new_parent_raw {
        let p = store.resolve_parent(ctx.user, raw)?;
        if store.is_descendant_or_self(p, id) {
            return Err(ApiError::new(
                400,
                "cyclical_folder_structure",
                "A folder cannot be moved into itself or its subfolders",
            ));
        }
        target_parent = Some(p);
    }
    let target_name = name.clone().unwrap_or(cur_name.clone());
    if name.is_some() {
        check_name(&target_name)?;
    }
    let moving = target_parent != cur_parent;
    let renaming = target_name != cur_name;
    if (moving || renaming) && !is_root {
        check_subtree_unlocked(&store, id, ctx.user)?;
        if let Some(p) = target_parent {
            store.check_name_free(p, &target_name, Some(id))?;
        }
    }
    let now = Utc::now();
    if let Some(link) = body.get("shared_link") {
        super::shared_links::apply(&mut store, id, link, ctx.user, now)?;
    }
    let mut modified = false;
    if moving || renaming {
        let p = target_parent.ok_or_else(|| ApiError::internal("folder without parent"))?;
        store.relink(id, p, &target_name);
        store.item_mut(id)?.touch(ctx.user, now);
        // A rename and a move in one call are both reported, as for files.
        if renaming {
            store.item_event(Action::Rename, ctx.user, id, now);
        }
        if moving {
            store.item_event(Action::Move, ctx.user, id, now);
        }
    }
    let item = store.item_mut(id)?;
    if let Some(d) = description {
        item.description = d;
        modified = true;
    }
    if let Some(t) = tags {
        item.tags = t;
        modified = true;
    }
    if modified {
        item.touch(ctx.user, now);
        store.item_event(Action::EditInfo, ctx.user, id, now);
    }
    let out = item_json(
        &store,
        store.item(id)?,
        ctx.user,
        &Fields::parse(q.get("fields").map(String::as_str)),
    );
    shared.changed(&store);
    Ok(json_response(200, out))
}

async fn delete(ctx: Ctx, Path(folder_id): Path<String>, q: Query) -> ApiResult<Response> {
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let id = store.resolve(ctx.user, &folder_id, ItemKind::Folder)?;
    let item = store.item(id)?;
    if item.is_root() {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "The root folder cannot be deleted",
        ));
    }
    ctx.check_if_match(item.etag)?;
    let recursive = q.get("recursive").is_some_and(|v| v == "true");
    if !recursive && !store.active_children(id).is_empty() {
        return Err(ApiError::new(
            400,
            "folder_not_empty",
            "Cannot delete – folder not empty",
        ));
    }
    check_subtree_unlocked(&store, id, ctx.user)?;
    let now = Utc::now();
    store.trash_item(id, ctx.user, now);
    store.item_event(Action::Trash, ctx.user, id, now);
    shared.changed(&store);
    Ok(no_content())
}

/// Copies `src` (recursively) into `parent` as `name`, returning the new id.
fn copy_tree(
    store: &mut Store,
    src: Id,
    parent: Id,
    name: &str,
    owner: Id,
    by: Id,
    now: chrono::DateTime<Utc>,
) -> Id {
    let source = store.items[&src].clone();
    let mut item = store.new_item(source.kind, name, parent, owner, by, now);
    item.description = source.description.clone();
    item.tags = source.tags.clone();
    item.url = source.url.clone();
    item.content_created_at = source.content_created_at;
    item.content_modified_at = source.content_modified_at;
    if let Some(v) = source.current_version() {
        let mut v = v.clone();
        v.id = store.alloc_id();
        v.created_at = now;
        v.modified_by = by;
        item.versions = vec![v];
    }
    let new_id = store.insert_item(item);
    for child in store.active_children(src) {
        let child_name = store.items[&child].name.clone();
        copy_tree(store, child, new_id, &child_name, owner, by, now);
    }
    new_id
}

async fn copy(
    ctx: Ctx,
    Path(folder_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let parent_raw = required_parent_id(&body)?;
    let name = opt_str(&body, "name")?;
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let id = store.resolve(ctx.user, &folder_id, ItemKind::Folder)?;
    if store.item(id)?.is_root() {
        // Box documents a 500 for copying the root folder.
        return Err(ApiError::internal("The root folder cannot be copied"));
    }
    let parent = store.resolve_parent(ctx.user, &parent_raw)?;
    if store.is_descendant_or_self(parent, id) {
        return Err(ApiError::bad_request(
            "A folder cannot be copied into itself or its subfolders",
        ));
    }
    let name = name.unwrap_or_else(|| store.items[&id].name.clone());
    check_name(&name)?;
    store.check_name_free(parent, &name, None)?;
    let owner = store.item(parent)?.owner;
    let bytes = store.tree_size(id);
    store.check_quota(owner, bytes)?;
    let now = Utc::now();
    let new_id = copy_tree(&mut store, id, parent, &name, owner, ctx.user, now);
    store.item_event(Action::Copy, ctx.user, new_id, now);
    let out = item_json(
        &store,
        store.item(new_id)?,
        ctx.user,
        &Fields::parse(q.get("fields").map(String::as_str)),
    );
    shared.changed(&store);
    Ok(json_response(201, out))
}
