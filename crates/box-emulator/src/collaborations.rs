//! Collaborations: granting another user of the enterprise access to a folder (and all it
//! holds) or a file. The emulator uses them so that two users can reach one item, which
//! is what makes locks, events and As-User meaningful across users.
//!
//! Simplification: Box also lists a collaborated folder in the collaborator's root; here
//! it is reached by id only.

use axum::extract::Path;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::http::{id_value, json_body, json_response, no_content, opt_str, AppState, Ctx, Query};
use super::repr::{mini, time, user_mini};
use super::store::{parse_id, Collaboration, Id, ItemKind, Store};

const ROLES: [&str; 7] = [
    "editor",
    "viewer",
    "previewer",
    "uploader",
    "previewer uploader",
    "viewer uploader",
    "co-owner",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2.0/collaborations", post(create))
        .route(
            "/2.0/collaborations/{collaboration_id}",
            get(get_one).put(update).delete(remove),
        )
        .route(
            "/2.0/folders/{folder_id}/collaborations",
            get(list_for_folder),
        )
}

fn collab_json(store: &Store, item: Id, c: &Collaboration) -> Value {
    json!({
        "type": "collaboration",
        "id": c.id.to_string(),
        "item": store.items.get(&item).map(|i| mini(store, i)).unwrap_or(Value::Null),
        "accessible_by": user_mini(store, c.user),
        "invite_email": Value::Null,
        "role": c.role,
        "expires_at": Value::Null,
        "is_access_only": false,
        "status": "accepted",
        "acknowledged_at": time(c.created_at),
        "created_by": user_mini(store, c.created_by),
        "created_at": time(c.created_at),
        "modified_at": time(c.created_at),
    })
}

/// Finds a collaboration by id: (item, index in its list).
fn find(store: &Store, id: Id) -> ApiResult<(Id, usize)> {
    store
        .items
        .values()
        .find_map(|i| {
            i.collaborations
                .iter()
                .position(|c| c.id == id)
                .map(|pos| (i.id, pos))
        })
        .ok_or_else(|| ApiError::not_found("collaboration"))
}

fn check_role(role: &str) -> ApiResult<()> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "role",
            format!("Invalid role '{role}'"),
        ))
    }
}

/// Only the owner of an item manages who collaborates on it.
fn check_owner(store: &Store, item: Id, user: Id) -> ApiResult<()> {
    if store.item(item)?.owner == user {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "Only the owner manages collaborations",
        ))
    }
}

async fn create(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let item = body
        .get("item")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid_parameter("item", "'item' is required"))?;
    let kind = match item.get("type").and_then(Value::as_str) {
        Some("folder") => ItemKind::Folder,
        Some("file") => ItemKind::File,
        _ => {
            return Err(ApiError::invalid_parameter(
                "item.type",
                "'item.type' must be file or folder",
            ))
        }
    };
    let item_raw = id_value(item.get("id").unwrap_or(&Value::Null), "item.id")?;
    let grantee = body
        .get("accessible_by")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::invalid_parameter("accessible_by", "'accessible_by' is required")
        })?;
    if grantee.get("type").and_then(Value::as_str) != Some("user") {
        return Err(ApiError::invalid_parameter(
            "accessible_by.type",
            "only users can be collaborators here",
        ));
    }
    let role = opt_str(&body, "role")?
        .ok_or_else(|| ApiError::invalid_parameter("role", "'role' is required"))?;
    check_role(&role)?;
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let item_id = store.resolve(ctx.user, &item_raw, kind)?;
    check_owner(&store, item_id, ctx.user)?;
    let me = store.user(ctx.user)?.enterprise_id.clone();
    let user = match (
        grantee.get("id"),
        grantee.get("login").and_then(Value::as_str),
    ) {
        (Some(v), _) => parse_id(&id_value(v, "accessible_by.id")?)?,
        (None, Some(login)) => store
            .users
            .values()
            .find(|u| u.login.eq_ignore_ascii_case(login))
            .map(|u| u.id)
            .ok_or_else(|| ApiError::not_found("user"))?,
        (None, None) => {
            return Err(ApiError::invalid_parameter(
                "accessible_by",
                "an id or login is required",
            ))
        }
    };
    if store.users.get(&user).is_none_or(|u| u.enterprise_id != me) {
        return Err(ApiError::not_found("user"));
    }
    if store
        .item(item_id)?
        .collaborations
        .iter()
        .any(|c| c.user == user)
        || store.item(item_id)?.owner == user
    {
        return Err(ApiError::new(
            400,
            "user_already_collaborator",
            "User is already a collaborator",
        ));
    }
    let now = Utc::now();
    let collab = Collaboration {
        id: store.alloc_id(),
        user,
        role,
        created_by: ctx.user,
        created_at: now,
    };
    store.item_mut(item_id)?.collaborations.push(collab.clone());
    store.item_event(Action::AddCollaborator, ctx.user, item_id, now);
    let out = collab_json(&store, item_id, &collab);
    shared.changed(&store);
    Ok(json_response(201, out))
}

async fn get_one(ctx: Ctx, Path(collaboration_id): Path<String>) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let (item, pos) = find(&store, parse_id(&collaboration_id)?)?;
    if !store.can_access(ctx.user, item) {
        return Err(ApiError::not_found("collaboration"));
    }
    Ok(json_response(
        200,
        collab_json(&store, item, &store.item(item)?.collaborations[pos]),
    ))
}

async fn update(
    ctx: Ctx,
    Path(collaboration_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let role = opt_str(&body, "role")?
        .ok_or_else(|| ApiError::invalid_parameter("role", "'role' is required"))?;
    check_role(&role)?;
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let (item, pos) = find(&store, parse_id(&collaboration_id)?)?;
    check_owner(&store, item, ctx.user)?;
    let now = Utc::now();
    store.item_mut(item)?.collaborations[pos].role = role;
    store.item_event(Action::ChangeCollaboratorRole, ctx.user, item, now);
    let out = collab_json(&store, item, &store.item(item)?.collaborations[pos]);
    shared.changed(&store);
    Ok(json_response(200, out))
}

async fn remove(ctx: Ctx, Path(collaboration_id): Path<String>) -> ApiResult<Response> {
    let shared = ctx.shared.clone();
    let mut store = shared.store();
    let (item, pos) = find(&store, parse_id(&collaboration_id)?)?;
    let collaborator = store.item(item)?.collaborations[pos].user;
    // The owner removes anyone; a collaborator may leave.
    if collaborator != ctx.user {
        check_owner(&store, item, ctx.user)?;
    }
    let now = Utc::now();
    // Recorded while the collaborator still sees the item, so they learn they lost it.
    store.item_event(Action::RemoveCollaborator, ctx.user, item, now);
    store.item_mut(item)?.collaborations.remove(pos);
    shared.changed(&store);
    Ok(no_content())
}

/// `GET /folders/{id}/collaborations`: marker pages (`limit` up to 1000, default 100).
async fn list_for_folder(ctx: Ctx, Path(folder_id): Path<String>, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = store.resolve(ctx.user, &folder_id, ItemKind::Folder)?;
    let mut by_id: Vec<(Id, &Collaboration)> = store
        .item(id)?
        .collaborations
        .iter()
        .map(|c| (c.id, c))
        .collect();
    by_id.sort_by_key(|(cid, _)| *cid);
    let (page, limit, next) = super::paging::page(&q, by_id, 100, 1000)?;
    let entries: Vec<Value> = page.iter().map(|c| collab_json(&store, id, c)).collect();
    Ok(json_response(
        200,
        json!({"entries": entries, "limit": limit, "next_marker": next}),
    ))
}
