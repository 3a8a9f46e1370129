//! Users: the enterprise admin, app service accounts and app users, `GET /users/me`,
//! `GET /users/{id}`, `GET /users` (offset or marker pages) and `POST /users` (app users), plus first-start
//! bootstrap of the enterprise, its admin, the default app and a developer token.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;

use super::anyhow_like::Result as StartResult;
use super::error::{ApiError, ApiResult};
use super::http::{json_body, json_response, opt_bool, opt_str, query_u64, AppState, Ctx, Query};
use super::repr::{user_with_fields, Fields};
use super::store::{AccessToken, App, Id, Item, ItemKind, Role, Store, TokenKind, User};
use super::EmulatorConfig;
use super::StartInfo;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2.0/users/me", get(me))
        .route("/2.0/users/{user_id}", get(get_user))
        .route("/2.0/users", get(list_users).post(create_user))
}

/// A random token of Box's shape (lower-case letters and digits).
pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect()
}

/// Creates a user with its root folder.
pub fn add_user(
    store: &mut Store,
    name: &str,
    login: &str,
    role: Role,
    space_amount: i64,
    app: Option<&str>,
) -> Id {
    let now = Utc::now();
    let id = store.alloc_id();
    let root = store.alloc_id();
    store.items.insert(
        root,
        Item::blank(root, ItemKind::Folder, "All Files", None, id, id, now),
    );
    store.users.insert(
        id,
        User {
            id,
            name: name.to_string(),
            login: login.to_string(),
            role,
            enterprise_id: store.enterprise_id.clone(),
            space_amount,
            created_at: now,
            modified_at: now,
            root_folder: root,
            status: "active".into(),
            language: "en".into(),
            timezone: "America/Los_Angeles".into(),
            external_app_user_id: None,
            app_client_id: app.map(str::to_string),
        },
    );
    id
}

/// Registers an app with its service account.
pub fn add_app<'a>(
    store: &'a mut Store,
    client_id: &str,
    client_secret: &str,
    quota: i64,
) -> &'a App {
    let sa_login = format!(
        "AutomationUser_{}_{}@boxdevedition.com",
        &client_id[..6.min(client_id.len())],
        random_token(10)
    );
    let sa = add_user(
        store,
        "Service Account",
        &sa_login,
        Role::ServiceAccount,
        quota,
        Some(client_id),
    );
    store.apps.insert(
        client_id.to_string(),
        App {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            public_keys: Default::default(),
            enterprise_id: store.enterprise_id.clone(),
            service_account: sa,
        },
    );
    &store.apps[client_id]
}

/// Issues an access token.
pub fn issue_token(
    store: &mut Store,
    user: Id,
    client_id: &str,
    kind: TokenKind,
    ttl_secs: i64,
) -> String {
    let token = random_token(32);
    store.access_tokens.insert(
        token.clone(),
        AccessToken {
            user,
            client_id: client_id.to_string(),
            kind,
            expires_at: expiry(Utc::now(), ttl_secs),
        },
    );
    token
}

/// `now + ttl_secs`, saturating: `--token-ttl` may be absurd on purpose (clients must
/// survive a token endpoint answering `expires_in` of 10^18 or -5), and must not panic here.
fn expiry(now: chrono::DateTime<Utc>, ttl_secs: i64) -> chrono::DateTime<Utc> {
    chrono::TimeDelta::try_seconds(ttl_secs)
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(if ttl_secs < 0 {
            chrono::DateTime::<Utc>::MIN_UTC
        } else {
            chrono::DateTime::<Utc>::MAX_UTC
        })
}

/// On first start: the enterprise, its admin and the default app. On every start: a fresh
/// developer token for the admin (developer tokens live an hour, as Box's).
pub fn bootstrap(store: &mut Store, config: &EmulatorConfig) -> StartResult<StartInfo> {
    if store.admin == 0 {
        store.next_id = store.next_id.max(20_000_000_000);
        store.enterprise_id = format!(
            "{}",
            rand::thread_rng().gen_range(100_000_000u64..999_999_999)
        );
        store.enterprise_name = "Emulated Enterprise".into();
        store.admin = add_user(
            store,
            "Emulator Admin",
            "admin@example.com",
            Role::Admin,
            config.quota_bytes,
            None,
        );
        let client_id = random_token(32);
        let secret = random_token(32);
        add_app(store, &client_id, &secret, config.quota_bytes);
    }
    let app = store
        .apps
        .values()
        // The default app is the first one made (apps are keyed by random client ids).
        .min_by_key(|a| a.service_account)
        .cloned()
        .ok_or_else(|| super::anyhow_like::StartError("no app registered".into()))?;
    let admin = store.admin;
    let developer_token = issue_token(
        store,
        admin,
        &app.client_id,
        TokenKind::Developer,
        config.token_ttl_secs.max(3600),
    );
    Ok(StartInfo {
        base_url: store.base_url.clone(),
        client_id: app.client_id,
        client_secret: app.client_secret,
        enterprise_id: store.enterprise_id.clone(),
        user_id: admin.to_string(),
        developer_token,
    })
}

async fn me(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let user = store.user(ctx.user)?;
    Ok(json_response(
        200,
        user_with_fields(
            &store,
            user,
            &Fields::parse(q.get("fields").map(String::as_str)),
        ),
    ))
}

async fn get_user(ctx: Ctx, Path(user_id): Path<String>, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = super::store::parse_id(&user_id)?;
    let me = store.user(ctx.user)?;
    let user = store
        .users
        .get(&id)
        .filter(|u| u.enterprise_id == me.enterprise_id)
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(json_response(
        200,
        user_with_fields(
            &store,
            user,
            &Fields::parse(q.get("fields").map(String::as_str)),
        ),
    ))
}

async fn list_users(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let me = store.user(ctx.user)?;
    if !me.can_act_as_others() {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "Listing users needs an admin",
        ));
    }
    let limit = query_u64(&q, "limit", 100)?.clamp(1, 1000) as usize;
    let offset = query_u64(&q, "offset", 0)? as usize;
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let filter = q.get("filter_term").map(|s| s.to_lowercase());
    let wanted_type = q.get("user_type").map(String::as_str).unwrap_or("managed");
    let all: Vec<&User> = store
        .users
        .values()
        .filter(|u| u.enterprise_id == me.enterprise_id)
        .filter(|u| match wanted_type {
            "all" => true,
            "managed" => matches!(u.role, Role::Admin | Role::Coadmin | Role::User),
            _ => true,
        })
        .filter(|u| {
            filter.as_ref().is_none_or(|f| {
                u.login.to_lowercase().starts_with(f) || u.name.to_lowercase().starts_with(f)
            })
        })
        .collect();
    if super::paging::wants_marker(&q) {
        // Marker pages carry no total_count or offset, as Box's do.
        let by_id = all.iter().map(|u| (u.id, *u)).collect();
        let (page, limit, next) = super::paging::page(&q, by_id, 100, 1000)?;
        let entries: Vec<_> = page
            .iter()
            .map(|u| user_with_fields(&store, u, &fields))
            .collect();
        return Ok(json_response(
            200,
            json!({"limit": limit, "next_marker": next, "entries": entries}),
        ));
    }
    let entries: Vec<_> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|u| user_with_fields(&store, u, &fields))
        .collect();
    Ok(json_response(
        200,
        json!({"total_count": all.len(), "limit": limit, "offset": offset, "entries": entries}),
    ))
}

/// `POST /users`: admins and service accounts create users; `is_platform_access_only`
/// makes an app user owned by the calling app.
async fn create_user(
    ctx: Ctx,
    State(sh): State<AppState>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let name = opt_str(&body, "name")?
        .ok_or_else(|| ApiError::invalid_parameter("name", "'name' is required"))?;
    if name.is_empty() || name.chars().count() > 50 {
        return Err(ApiError::invalid_parameter(
            "name",
            "'name' must be 1 to 50 characters",
        ));
    }
    let app_user = opt_bool(&body, "is_platform_access_only")?.unwrap_or(false);
    let login = opt_str(&body, "login")?;
    let external = opt_str(&body, "external_app_user_id")?;
    let space_amount = match body.get("space_amount") {
        None | Some(serde_json::Value::Null) => sh.config.quota_bytes,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::invalid_parameter("space_amount", "'space_amount' must be an integer")
        })?,
    };
    let mut store = sh.store();
    let me = store.user(ctx.user)?.clone();
    if !me.can_act_as_others() {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "Creating users needs an admin or service account",
        ));
    }
    let (role, login) = if app_user {
        let client = store
            .access_tokens
            .values()
            .find(|t| t.user == ctx.token_user)
            .map(|t| t.client_id.clone());
        let login = format!("AppUser_{}@boxdevedition.com", random_token(10));
        (Role::AppUser, (login, client))
    } else {
        let login = login.ok_or_else(|| {
            ApiError::invalid_parameter("login", "'login' is required for managed users")
        })?;
        if store
            .users
            .values()
            .any(|u| u.login.eq_ignore_ascii_case(&login))
        {
            return Err(ApiError::new(
                409,
                "user_login_already_used",
                "User with the specified login already exists",
            ));
        }
        (Role::User, (login, None))
    };
    let role = match opt_str(&body, "role")?.as_deref() {
        Some("coadmin") if role == Role::User => Role::Coadmin,
        _ => role,
    };
    let id = add_user(
        &mut store,
        &name,
        &login.0,
        role,
        space_amount,
        login.1.as_deref(),
    );
    if let Some(user) = store.users.get_mut(&id) {
        user.external_app_user_id = external;
    }
    let user = store.user(id)?.clone();
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let mut out = user_with_fields(&store, &user, &fields);
    if fields.is_standard() {
        out["is_platform_access_only"] = json!(app_user);
        out["external_app_user_id"] = json!(user.external_app_user_id.clone().unwrap_or_default());
    }
    sh.changed(&store);
    Ok(json_response(201, out))
}
