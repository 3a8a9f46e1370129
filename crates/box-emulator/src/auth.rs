//! Box's OAuth 2.0 server: the authorize page (auto-approves and redirects with `code` and
//! the unchanged `state`), `POST /oauth2/token` for every grant boxfs and Box's SDKs use
//! (authorization_code, single-use rotating refresh_token, JWT bearer, client_credentials)
//! and `POST /oauth2/revoke`. Errors use the RFC 6749 `{error, error_description}` shape.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::http::{json_response, AppState, Query};
use super::store::{AuthCode, Id, RefreshToken, Role, Store, TokenKind};
use super::users::{issue_token, random_token};

/// Box's own token URL: the official SDKs sign JWTs for it whatever host they talk to.
pub const BOX_TOKEN_URL: &str = "https://api.box.com/oauth2/token";
const GRANT_JWT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Refresh tokens live 60 days, as Box's.
const REFRESH_TTL_DAYS: i64 = 60;
/// Authorization codes are short-lived ("tens of seconds" at Box).
const CODE_TTL_SECS: i64 = 30;
/// Box refuses JWT assertions whose `exp` is more than a minute ahead.
const JWT_MAX_LIFETIME_SECS: i64 = 60;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/api/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
        .route("/api/oauth2/revoke", post(revoke))
        .route("/api/oauth2/authorize", get(authorize).post(authorize_form))
        .route("/oauth2/authorize", get(authorize))
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn invalid_request(msg: &str) -> ApiError {
    ApiError::oauth(400, "invalid_request", msg)
}

fn invalid_grant(msg: &str) -> ApiError {
    ApiError::oauth(400, "invalid_grant", msg)
}

fn invalid_client() -> ApiError {
    ApiError::oauth(400, "invalid_client", "The client credentials are invalid")
}

/// Checks `client_id` + `client_secret` against a registered app.
fn client(store: &Store, f: &HashMap<String, String>) -> ApiResult<String> {
    let id = f.get("client_id").ok_or_else(invalid_client)?;
    let secret = f.get("client_secret").ok_or_else(invalid_client)?;
    match store.apps.get(id) {
        Some(app) if &app.client_secret == secret => Ok(id.clone()),
        _ => Err(invalid_client()),
    }
}

/// An access token plus (for OAuth) a fresh refresh token, in Box's AccessToken shape.
fn grant(
    store: &mut Store,
    user: Id,
    client_id: &str,
    kind: TokenKind,
    ttl: i64,
) -> serde_json::Value {
    let access = issue_token(store, user, client_id, kind, ttl);
    let mut out = json!({
        "access_token": access,
        "expires_in": ttl,
        "token_type": "bearer",
        "restricted_to": [],
    });
    if kind == TokenKind::OAuth {
        let refresh = random_token(64);
        store.refresh_tokens.insert(
            refresh.clone(),
            RefreshToken {
                user,
                client_id: client_id.to_string(),
                expires_at: Utc::now() + chrono::Duration::days(REFRESH_TTL_DAYS),
                access_token: access,
            },
        );
        out["refresh_token"] = json!(refresh);
    }
    out
}

/// Auth codes waiting to be exchanged, at most. Authorizing needs no authentication, so
/// without a bound every request would grow the store until the codes expire.
pub const MAX_AUTH_CODES: usize = 1000;

/// Makes room for one more auth code: expired ones go, then the oldest.
fn bound_auth_codes(store: &mut Store) {
    let now = Utc::now();
    store.auth_codes.retain(|_, c| c.expires_at > now);
    while store.auth_codes.len() >= MAX_AUTH_CODES {
        let oldest = store
            .auth_codes
            .iter()
            .min_by_key(|(_, c)| c.expires_at)
            .map(|(code, _)| code.clone());
        match oldest {
            Some(code) => store.auth_codes.remove(&code),
            None => break,
        };
    }
}

async fn token(State(sh): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let f = form(&body);
    let ttl = sh.config.token_ttl_secs;
    let mut store = sh.store();
    let now = Utc::now();
    store.forget_expired(now);
    let grant_type = f
        .get("grant_type")
        .map(String::as_str)
        .ok_or_else(|| invalid_request("Invalid grant_type parameter or parameter missing"))?;
    let out = match grant_type {
        "authorization_code" => {
            let client_id = client(&store, &f)?;
            let code = f
                .get("code")
                .ok_or_else(|| invalid_request("Missing parameter: code"))?;
            // A code works once: take it out whatever happens next.
            let entry = store.auth_codes.remove(code).ok_or_else(|| {
                invalid_grant("Auth code doesn't exist or is invalid for the client")
            })?;
            if entry.client_id != client_id {
                return Err(invalid_grant(
                    "Auth code doesn't exist or is invalid for the client",
                ));
            }
            if entry.expires_at < now {
                return Err(invalid_grant("The authorization code has expired"));
            }
            if let (Some(sent), Some(expected)) =
                (f.get("redirect_uri"), entry.redirect_uri.as_ref())
            {
                if sent != expected {
                    return Err(invalid_grant(
                        "The redirect_uri does not match the one of the authorization request",
                    ));
                }
            }
            grant(&mut store, entry.user, &client_id, TokenKind::OAuth, ttl)
        }
        "refresh_token" => {
            let client_id = client(&store, &f)?;
            let raw = f
                .get("refresh_token")
                .ok_or_else(|| invalid_request("Missing parameter: refresh_token"))?;
            // Box refresh tokens are single use: the old pair dies with the refresh.
            let entry = store
                .refresh_tokens
                .remove(raw)
                .ok_or_else(|| invalid_grant("Invalid refresh token"))?;
            if entry.client_id != client_id || entry.expires_at < now {
                return Err(invalid_grant("Invalid refresh token"));
            }
            store.access_tokens.remove(&entry.access_token);
            grant(&mut store, entry.user, &client_id, TokenKind::OAuth, ttl)
        }
        GRANT_JWT => {
            let client_id = client(&store, &f)?;
            let assertion = f
                .get("assertion")
                .ok_or_else(|| invalid_request("Missing parameter: assertion"))?;
            let user = verify_jwt(&mut store, &sh.base_url, &client_id, assertion)?;
            grant(&mut store, user, &client_id, TokenKind::Jwt, ttl)
        }
        "client_credentials" => {
            let client_id = client(&store, &f)?;
            let user = subject(
                &store,
                &client_id,
                f.get("box_subject_type"),
                f.get("box_subject_id"),
            )?;
            grant(
                &mut store,
                user,
                &client_id,
                TokenKind::ClientCredentials,
                ttl,
            )
        }
        other => {
            return Err(ApiError::oauth(
                400,
                "unsupported_grant_type",
                format!("Grant type '{other}' is not supported"),
            ));
        }
    };
    sh.changed(&store);
    Ok(json_response(200, out))
}

/// The user a JWT or client-credentials grant acts as: the app's service account for the
/// enterprise subject, or a user of the enterprise.
fn subject(
    store: &Store,
    client_id: &str,
    kind: Option<&String>,
    id: Option<&String>,
) -> ApiResult<Id> {
    let app = &store.apps[client_id];
    let id = id.ok_or_else(|| invalid_request("Missing box_subject_id"))?;
    match kind.map(String::as_str) {
        Some("enterprise") => {
            if *id != app.enterprise_id {
                return Err(invalid_grant(
                    "Please check the 'sub' claim: unknown enterprise",
                ));
            }
            Ok(app.service_account)
        }
        Some("user") => {
            let uid: Id = id
                .parse()
                .map_err(|_| invalid_grant("Please check the 'sub' claim: not a user id"))?;
            match store.users.get(&uid) {
                Some(u)
                    if u.enterprise_id == app.enterprise_id && u.role != Role::ServiceAccount =>
                {
                    Ok(uid)
                }
                _ => Err(invalid_grant("Please check the 'sub' claim: unknown user")),
            }
        }
        _ => Err(invalid_request(
            "box_subject_type must be 'enterprise' or 'user'",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct JwtClaims {
    iss: String,
    sub: String,
    box_sub_type: String,
    exp: i64,
    jti: String,
}

/// Verifies a JWT assertion as Box does: RS256/384/512 with the key named by `kid`,
/// `iss` = client id, `aud` = the token URL, `exp` in the next 60 s, `jti` never reused.
fn verify_jwt(
    store: &mut Store,
    base_url: &str,
    client_id: &str,
    assertion: &str,
) -> ApiResult<Id> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| invalid_grant("Invalid JWT assertion: cannot decode the header"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
    ) {
        return Err(invalid_grant(
            "Please check the 'alg' header: RS256, RS384 or RS512 is required",
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| invalid_grant("Please check the 'kid' header parameter"))?;
    let pem = store.apps[client_id]
        .public_keys
        .get(&kid)
        .cloned()
        .ok_or_else(|| invalid_grant("Please check the 'kid' header parameter"))?;
    let key = DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| ApiError::internal("registered public key is unreadable"))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.set_audience(&[
        BOX_TOKEN_URL.to_string(),
        format!("{base_url}/oauth2/token"),
        format!("{base_url}/api/oauth2/token"),
    ]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => {
                invalid_grant("Please check the 'exp' claim: the assertion has expired")
            }
            ErrorKind::InvalidAudience => invalid_grant("Please check the 'aud' claim"),
            ErrorKind::InvalidSignature => invalid_grant("Signature verification error"),
            _ => invalid_grant(&format!("Invalid JWT assertion: {e}")),
        }
    })?;
    let claims = data.claims;
    let now = Utc::now();
    if claims.exp > now.timestamp() + JWT_MAX_LIFETIME_SECS {
        return Err(invalid_grant(
            "Please check the 'exp' claim: at most 60 seconds ahead",
        ));
    }
    if claims.iss != client_id {
        return Err(invalid_grant("Please check the 'iss' claim"));
    }
    if !(16..=128).contains(&claims.jti.len()) {
        return Err(invalid_grant(
            "Please check the 'jti' claim: 16 to 128 characters",
        ));
    }
    if store.used_jtis.contains_key(&claims.jti) {
        return Err(invalid_grant(
            "Please check the 'jti' claim: it was already used",
        ));
    }
    let user = subject(
        store,
        client_id,
        Some(&claims.box_sub_type),
        Some(&claims.sub),
    )?;
    let exp = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
    store.used_jtis.insert(claims.jti, exp);
    Ok(user)
}

/// `POST /oauth2/revoke`: ends the token and its pair. Box answers 200 with no content;
/// the official Python SDK parses the body as JSON, so it is `{}`.
async fn revoke(State(sh): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let f = form(&body);
    let mut store = sh.store();
    client(&store, &f)?;
    let token = f
        .get("token")
        .ok_or_else(|| invalid_request("Missing parameter: token"))?;
    if let Some(refresh) = store.refresh_tokens.remove(token) {
        store.access_tokens.remove(&refresh.access_token);
    } else if store.access_tokens.remove(token).is_some() {
        store.refresh_tokens.retain(|_, r| &r.access_token != token);
    }
    sh.changed(&store);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response())
}

/// The browser consent page, approved at once: redirects to `redirect_uri` with a code and
/// the caller's `state` untouched. `login=` picks the user (default: the admin).
async fn authorize(State(sh): State<AppState>, q: Query) -> Response {
    authorize_inner(&sh, &q.0)
}

async fn authorize_form(State(sh): State<AppState>, q: Query, body: Bytes) -> Response {
    let mut params = q.0.clone();
    params.extend(form(&body));
    authorize_inner(&sh, &params)
}

fn authorize_inner(sh: &AppState, q: &HashMap<String, String>) -> Response {
    let page = |status: StatusCode, title: &str, text: &str| {
        let body = format!(
            "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
            html_escape(text)
        );
        (status, Html(body)).into_response()
    };
    let mut store = sh.store();
    let Some(client_id) = q
        .get("client_id")
        .filter(|c| store.apps.contains_key(*c))
        .cloned()
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown or missing client_id.",
        );
    };
    let redirect_uri = q.get("redirect_uri").cloned();
    let redirect_error = |error: &str| -> Option<Response> {
        let uri = redirect_uri.as_ref()?;
        let mut url = url::Url::parse(uri).ok()?;
        url.query_pairs_mut().append_pair("error", error);
        if let Some(state) = q.get("state") {
            url.query_pairs_mut().append_pair("state", state);
        }
        Some((StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response())
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return redirect_error("unsupported_response_type").unwrap_or_else(|| {
            page(
                StatusCode::BAD_REQUEST,
                "unsupported_response_type",
                "response_type must be 'code'.",
            )
        });
    }
    let user = match q.get("login") {
        Some(login) => match store
            .users
            .values()
            .find(|u| u.login.eq_ignore_ascii_case(login))
        {
            Some(u) => u.id,
            None => {
                return redirect_error("access_denied").unwrap_or_else(|| {
                    page(StatusCode::BAD_REQUEST, "access_denied", "Unknown login.")
                })
            }
        },
        None => store.admin,
    };
    let code = random_token(32);
    bound_auth_codes(&mut store);
    store.auth_codes.insert(
        code.clone(),
        AuthCode {
            user,
            client_id,
            redirect_uri: redirect_uri.clone(),
            expires_at: Utc::now() + chrono::Duration::seconds(CODE_TTL_SECS),
        },
    );
    sh.changed(&store);
    match redirect_uri {
        Some(uri) => match url::Url::parse(&uri) {
            Ok(mut url) => {
                url.query_pairs_mut().append_pair("code", &code);
                if let Some(state) = q.get("state") {
                    url.query_pairs_mut().append_pair("state", state);
                }
                (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
            }
            Err(_) => page(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is not a valid URL.",
            ),
        },
        None => page(
            StatusCode::OK,
            "Access granted",
            &format!("Authorization code: {code}"),
        ),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
