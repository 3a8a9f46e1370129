//! The HTTP plumbing shared by every endpoint: starting the server (plain HTTP, or HTTPS
//! with `serve_https`), the router, the middleware (fault injection, Box's rate limits,
//! latency, request log, response validation), the authenticated request context with
//! As-User, and body/query parsing helpers that turn malformed input into Box's 400s.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use rand::Rng;
use serde_json::{json, Value};

use super::anyhow_like::{Result as StartResult, StartError};
use super::error::{ApiError, ApiResult};
use super::net::{ConnInfo, EmuListener, TlsListener};
use super::store::{Id, Store};
use super::{Emulator, EmulatorConfig, Knobs, Shared};

pub type AppState = Arc<Shared>;

/// The largest request body any route but the uploads reads (JSON, forms): anything
/// larger is refused with 413 as it arrives, so an unauthenticated client cannot make the
/// process buffer what it likes.
pub const MAX_BODY: usize = 1 << 20;

pub fn new_request_id() -> String {
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

pub async fn start(config: EmulatorConfig) -> StartResult<Emulator> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    if let Some(limits) = &config.knobs.rate_limits {
        limits.validate().map_err(StartError)?;
    }
    let https = match &config.serve_https {
        Some(path) => Some(https_acceptor(addr, path)?),
        None => None,
    };
    let scheme = if https.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");

    let persist = config
        .data_dir
        .as_ref()
        .map(|d| super::persist::Persister::new(d.clone()))
        .transpose()?;
    let mut store = match &persist {
        Some(p) => p.load()?.unwrap_or_default(),
        None => Store::default(),
    };
    store.base_url = base_url.clone();
    let mut info = super::users::bootstrap(&mut store, &config)?;
    if let Some(path) = &config.jwt_config {
        super::jwt_config::register(&mut store, path)?;
        // A fresh emulator takes the enterprise id of an existing config file.
        info.enterprise_id = store.enterprise_id.clone();
    }
    if config.demo {
        super::demo::populate(&mut store);
    }
    if let Some(p) = &persist {
        p.save(&store)?;
    }
    let request_log = match &config.request_log {
        Some(path) => Some(Mutex::new(open_request_log(path).map_err(|e| {
            StartError(format!("cannot open request log {}: {e}", path.display()))
        })?)),
        None => None,
    };
    let conformance = config
        .validate_responses
        .as_ref()
        .map(|p| super::conformance::Validator::load(p))
        .transpose()?;
    let interceptor = match &config.https_proxy_ca {
        Some(path) => {
            let i = super::intercept::Interceptor::new()?;
            std::fs::write(path, &i.ca_pem).map_err(|e| {
                StartError(format!(
                    "cannot write the CA certificate to {}: {e}",
                    path.display()
                ))
            })?;
            Some(i)
        }
        None => None,
    };
    let (events_tx, _) = tokio::sync::watch::channel(store.next_position);
    let bandwidth = Arc::new(AtomicU64::new(config.knobs.bandwidth));
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        knobs: Mutex::new(config.knobs.clone()),
        config,
        bandwidth: bandwidth.clone(),
        base_url: base_url.clone(),
        events_tx,
        request_log,
        conformance,
        persist,
        interceptor,
        router: std::sync::OnceLock::new(),
        limiter: Default::default(),
    });
    if let Some(p) = &shared.persist {
        p.spawn_flusher(Arc::downgrade(&shared));
    }
    let app = router(shared.clone());
    let _ = shared.router.set(app.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let emu_listener = EmuListener {
        inner: listener,
        bandwidth,
    };
    let shutdown = async move {
        let _ = rx.await;
    };
    let task = match https {
        None => tokio::spawn(async move {
            let server = axum::serve(
                emu_listener,
                app.into_make_service_with_connect_info::<ConnInfo>(),
            )
            .with_graceful_shutdown(shutdown);
            if let Err(e) = server.await {
                log::error!("emulator: server failed: {e}");
            }
        }),
        Some(acceptor) => {
            let tls_listener =
                TlsListener::new(emu_listener, acceptor).map_err(|e| StartError(e.to_string()))?;
            tokio::spawn(async move {
                let server = axum::serve(
                    tls_listener,
                    app.into_make_service_with_connect_info::<ConnInfo>(),
                )
                .with_graceful_shutdown(shutdown);
                if let Err(e) = server.await {
                    log::error!("emulator: server failed: {e}");
                }
            })
        }
    };
    Ok(Emulator::from_parts(info, shared, tx, task))
}

/// For `serve_https`: a fresh CA, its certificate written to `ca_file`, and a TLS acceptor
/// with a certificate it signed for the loopback names and the listening address.
fn https_acceptor(
    addr: std::net::SocketAddr,
    ca_file: &std::path::Path,
) -> StartResult<tokio_rustls::TlsAcceptor> {
    let ca = super::tls::Ca::new()?;
    ca.write_pem(ca_file)?;
    let mut names: Vec<String> = ["127.0.0.1", "localhost", "::1"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let ip = addr.ip().to_string();
    if !addr.ip().is_unspecified() && !names.contains(&ip) {
        names.push(ip);
    }
    let config = ca.server_config(&names, "localhost")?;
    Ok(tokio_rustls::TlsAcceptor::from(config))
}

/// The request log, 0600 whatever the umask (an existing one is made so): it records who did
/// what, which is nobody else's business.
fn open_request_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// A request's path as the log shows it: download URLs carry their credential in the path
/// (`/dl/<token>`), which is replaced.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/dl/") {
        Some(_) => "/dl/[redacted]".to_string(),
        None => path.to_string(),
    }
}

/// A query as the log shows it: the realtime long-poll's `channel=` value is a credential.
fn loggable_query(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("channel") => format!("{k}=[redacted]"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn router(shared: AppState) -> Router {
    Router::new()
        .merge(super::auth::routes())
        .merge(super::users::routes())
        .merge(super::collaborations::routes())
        .merge(super::folders::routes())
        .merge(super::files::routes())
        .merge(super::web_links::routes())
        .merge(super::uploads::routes())
        .merge(super::events::routes())
        .merge(super::metadata::routes())
        .merge(super::search::routes())
        .merge(super::shared_links::routes())
        .route("/_emulator/knobs", get(get_knobs).put(put_knobs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            middleware,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Marks the answer of the fallback route: a request that reached no route is not counted
/// as an API call the validator should have checked.
#[derive(Clone, Copy)]
struct NoRoute;

async fn not_found() -> Response {
    let mut response =
        ApiError::new(404, "not_found", "Not Found: no such endpoint").into_response();
    response.extensions_mut().insert(NoRoute);
    response
}

fn is_json_response(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn method_not_allowed() -> Response {
    let mut response =
        ApiError::new(405, "method_not_allowed", "Method Not Allowed").into_response();
    response.extensions_mut().insert(NoRoute);
    response
}

async fn get_knobs(State(sh): State<AppState>) -> Json<Knobs> {
    Json(sh.knobs())
}

/// Changing the knobs can slow, fault or starve every client: only the admin may (a valid
/// access token of the enterprise's admin user, such as the developer token `boxfs emulator`
/// prints first).
fn require_admin(sh: &Shared, headers: &HeaderMap) -> ApiResult<()> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let store = sh.store();
    let now = chrono::Utc::now();
    let t = store
        .access_tokens
        .get(&token)
        .filter(|t| t.expires_at > now)
        .ok_or_else(ApiError::unauthorized)?;
    if t.user != store.admin {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "Only the emulator's admin may change its knobs",
        ));
    }
    Ok(())
}

async fn put_knobs(
    State(sh): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Knobs>> {
    require_admin(&sh, &headers)?;
    let knobs: Knobs = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("bad knobs: {e}")))?;
    if let Some(limits) = &knobs.rate_limits {
        limits
            .validate()
            .map_err(|e| ApiError::bad_request(format!("bad knobs: {e}")))?;
    }
    sh.set_knobs(knobs.clone());
    Ok(Json(knobs))
}

/// Fault injection, Box's rate limits, latency, response validation and the request log,
/// around every request.
async fn middleware(State(sh): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let as_user = req
        .headers()
        .get("as-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnInfo>>()
        .map(|c| c.0.clone());
    let control = path.starts_with("/_emulator");
    if method == Method::CONNECT {
        return super::intercept::handle_connect(&sh, req);
    }
    // Sent to one of Box's host names: through the interception's tunnel, or as a plain-HTTP
    // proxy request (`GET http://2.realtime.services.box.net/subscribe…`). Any other
    // absolute URL is served as the emulator's own, as before.
    let box_host = req
        .extensions()
        .get::<super::intercept::TunnelHost>()
        .map(|h| h.0.clone())
        .or_else(|| {
            req.uri()
                .host()
                .filter(|h| super::box_hosts::is_box_host(h))
                .map(str::to_string)
        });
    let addressed = match box_host {
        Some(_) => super::box_hosts::Addressed::BoxHosts,
        None => super::box_hosts::Addressed::BaseUrl,
    };

    let knobs = sh.knobs();
    let mut response = None;
    if let Some(host) = &box_host {
        if !super::box_hosts::Service::of(host).serves(&path) {
            let mut refused = super::box_hosts::wrong_host(host, &path);
            refused.extensions_mut().insert(NoRoute);
            response = Some(refused);
        }
    }
    if response.is_none()
        && !control
        && knobs.fault_rate > 0.0
        && path.starts_with(&knobs.fault_path_prefix)
    {
        let roll: f64 = rand::thread_rng().gen();
        if roll < knobs.fault_rate {
            response = Some(inject_fault(conn.as_ref()));
        }
    }
    if let (None, false, Some(limits)) = (&response, control, &knobs.rate_limits) {
        response = rate_limited(
            &sh,
            limits,
            &method,
            template.as_deref(),
            &path,
            req.headers(),
        );
    }
    if !control && knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    let mut req = req;
    if let (Some(validator), Some(template), None) = (&sh.conformance, &template, &response) {
        req = validator.check_request(template, req).await;
    }
    let mut response = match response {
        Some(r) => r,
        None => super::box_hosts::serve_as(addressed, next.run(req)).await,
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json_response(&response) {
        // axum's own refusal is plain text; Box answers with its error JSON.
        response = ApiError::new(
            413,
            "request_entity_too_large",
            format!("Request body exceeds the limit of {MAX_BODY} bytes"),
        )
        .into_response();
    }
    if let Some(validator) = &sh.conformance {
        if response.extensions().get::<NoRoute>().is_none() {
            validator.count_call(&path, is_json_response(&response));
            if let Some(template) = &template {
                validator.check_route(method.as_str(), template, &path);
            }
        }
        if let Some(template) = &template {
            let partial = query.split('&').any(|kv| kv.starts_with("fields="));
            response = validator.check(&method, template, partial, response).await;
        }
    }
    if let Some(log) = &sh.request_log {
        let line = json!({
            "method": method.as_str(),
            "path": loggable_path(&path),
            "query": loggable_query(&query),
            "status": response.status().as_u16(),
            "as_user": as_user,
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
        });
        use std::io::Write;
        let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{line}");
    }
    response
}

fn inject_fault(conn: Option<&ConnInfo>) -> Response {
    match rand::thread_rng().gen_range(0..4) {
        0 => ApiError::new(
            500,
            "internal_server_error",
            "Internal Server Error (injected)",
        )
        .into_response(),
        1 => ApiError::new(503, "unavailable", "Unavailable (injected)")
            .with_header(header::RETRY_AFTER, "1")
            .into_response(),
        2 => ApiError::new(
            429,
            "rate_limit_exceeded",
            "Request rate limit exceeded, please try again later",
        )
        .with_header(header::RETRY_AFTER, "1")
        .into_response(),
        _ => match conn {
            Some(c) => {
                c.drop_connection();
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            None => ApiError::new(
                500,
                "internal_server_error",
                "Internal Server Error (injected)",
            )
            .into_response(),
        },
    }
}

/// The authenticated caller of an API request.
#[derive(Clone)]
pub struct Ctx {
    /// Whose behalf the request acts on (the As-User target, or the token's user).
    pub user: Id,
    /// The user the token belongs to.
    pub token_user: Id,
    pub as_user: Option<Id>,
    pub headers: HeaderMap,
    pub shared: AppState,
}

impl Ctx {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// `If-Match` given and not equal to the current etag → 412.
    pub fn check_if_match(&self, etag: u64) -> ApiResult<()> {
        match self.header("if-match") {
            Some(want) if want.trim_matches('"') != etag.to_string() => {
                Err(ApiError::precondition_failed())
            }
            _ => Ok(()),
        }
    }
    /// `If-None-Match` equal to the current etag → 304.
    pub fn not_modified(&self, etag: u64) -> bool {
        self.header("if-none-match")
            .is_some_and(|v| v.trim_matches('"') == etag.to_string())
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = resolve_caller(&state.store(), &parts.headers)?;
        Ok(Ctx {
            user: caller.user,
            token_user: caller.token_user,
            as_user: caller.as_user,
            headers: parts.headers.clone(),
            shared: state.clone(),
        })
    }
}

/// Who makes a request: see [`Ctx`].
pub struct Caller {
    pub user: Id,
    pub token_user: Id,
    pub as_user: Option<Id>,
}

/// The user a request's bearer token belongs to (401 without a valid one).
fn token_user(store: &Store, headers: &HeaderMap) -> ApiResult<Id> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let now = chrono::Utc::now();
    store
        .access_tokens
        .get(&token)
        .filter(|t| t.expires_at > now)
        .map(|t| t.user)
        .ok_or_else(ApiError::unauthorized)
}

/// The caller of a request: the token's user, acting as the `As-User` user when that
/// header is present and the token's user may use it.
pub fn resolve_caller(store: &Store, headers: &HeaderMap) -> ApiResult<Caller> {
    let token_user = token_user(store, headers)?;
    let Some(raw) = headers.get("as-user") else {
        return Ok(Caller {
            user: token_user,
            token_user,
            as_user: None,
        });
    };
    let raw = raw.to_str().unwrap_or("").trim();
    let target: Id = raw
        .parse()
        .map_err(|_| ApiError::bad_request("As-User must be a user id"))?;
    let me = store.user(token_user)?;
    if !me.can_act_as_others() {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "As-User needs an admin, co-admin or service-account token",
        ));
    }
    let other = store
        .users
        .get(&target)
        .filter(|u| u.enterprise_id == me.enterprise_id)
        .ok_or_else(|| ApiError::not_found("As-User target user"))?;
    if other.role == super::store::Role::ServiceAccount && other.id != token_user {
        return Err(ApiError::forbidden(
            "access_denied_insufficient_permissions",
            "a service account cannot be the target of As-User",
        ));
    }
    Ok(Caller {
        user: target,
        token_user,
        as_user: Some(target),
    })
}

/// Who pays a request's rate limits, and their enterprise: the caller (the `As-User` user
/// when allowed); the token's user when the `As-User` header is refused. `None` without a
/// valid access token: such requests are not counted.
fn payer(store: &Store, headers: &HeaderMap) -> Option<(Id, String)> {
    let user = match resolve_caller(store, headers) {
        Ok(caller) => caller.user,
        Err(_) => token_user(store, headers).ok()?,
    };
    let enterprise = store.users.get(&user)?.enterprise_id.clone();
    Some((user, enterprise))
}

/// With Box's rate limits on: the 429 a request gets when its payer is over a limit.
fn rate_limited(
    sh: &Shared,
    limits: &super::rate_limits::RateLimits,
    method: &Method,
    template: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    use super::rate_limits::{counted, retry_after_secs, Kind};
    if !counted(path) {
        return None;
    }
    let (user, enterprise) = payer(&sh.store(), headers)?;
    let kind = Kind::of(method, template);
    let wait = sh
        .limiter
        .admit(limits, user, &enterprise, kind, Instant::now())
        .err()?;
    Some(
        ApiError::new(
            429,
            "rate_limit_exceeded",
            "Request rate limit exceeded, please try again later",
        )
        .with_header(header::RETRY_AFTER, retry_after_secs(wait).to_string())
        .into_response(),
    )
}

pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.trim().to_string())
}

/// Query parameters; repeated keys keep the last value.
pub type Query = axum::extract::Query<HashMap<String, String>>;

/// A JSON object body; an empty body counts as `{}`.
pub fn json_body(body: &Bytes) -> ApiResult<serde_json::Map<String, Value>> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "Could not parse JSON body: {e}"
        ))),
    }
}

/// An optional string field; another type is a 400.
pub fn opt_str(body: &serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_parameter(
            key,
            format!("'{key}' must be a string"),
        )),
    }
}

pub fn opt_bool(body: &serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid_parameter(
            key,
            format!("'{key}' must be a boolean"),
        )),
    }
}

/// An id given as a JSON string (Box's form) or number.
pub fn id_value(v: &Value, key: &str) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        _ => Err(ApiError::invalid_parameter(
            key,
            format!("'{key}' must be an id string"),
        )),
    }
}

/// `{"parent": {"id": "..."}}` → the id string, if a parent is given.
pub fn parent_id(body: &serde_json::Map<String, Value>) -> ApiResult<Option<String>> {
    match body.get("parent") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(p)) => match p.get("id") {
            Some(v) => Ok(Some(id_value(v, "parent.id")?)),
            None => Err(ApiError::invalid_parameter(
                "parent.id",
                "'parent.id' is required",
            )),
        },
        Some(_) => Err(ApiError::invalid_parameter(
            "parent",
            "'parent' must be an object",
        )),
    }
}

/// `{"parent": {"id": "..."}}` where a parent is required (create, copy).
pub fn required_parent_id(body: &serde_json::Map<String, Value>) -> ApiResult<String> {
    parent_id(body)?.ok_or_else(|| ApiError::invalid_parameter("parent", "'parent' is required"))
}

/// A JSON response with a status.
pub fn json_response(status: u16, value: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(value),
    )
        .into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

/// Parses a non-negative integer query parameter with a default.
pub fn query_u64(q: &HashMap<String, String>, key: &str, default: u64) -> ApiResult<u64> {
    match q.get(key) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ApiError::invalid_parameter(key, format!("'{key}' must be a non-negative integer"))
        }),
    }
}

pub fn empty_body() -> Body {
    Body::empty()
}

pub fn is_method(m: &Method, want: &str) -> bool {
    m.as_str() == want
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_request_log_hides_download_tokens_and_realtime_channels() {
        assert_eq!(loggable_path("/dl/s3cr3t-token"), "/dl/[redacted]");
        assert_eq!(
            loggable_path("/2.0/files/1/content"),
            "/2.0/files/1/content"
        );
        assert_eq!(
            loggable_query("channel=abc123&stream_type=all&Channel=x"),
            "channel=[redacted]&stream_type=all&Channel=[redacted]"
        );
        assert_eq!(loggable_query("fields=name"), "fields=name");
        assert_eq!(loggable_query(""), "");
    }

    #[test]
    fn the_request_log_is_private_even_if_it_existed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("requests.jsonl");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_request_log(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let fresh = tmp.path().join("new.jsonl");
        drop(open_request_log(&fresh).unwrap());
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
