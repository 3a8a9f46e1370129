//! Box's error responses: the `ClientError` JSON every API endpoint returns on failure, and
//! the RFC 6749 `OAuth2Error` shape of the token endpoints. Every handler returns
//! `Result<_, ApiError>`, so no error can leave the emulator in another shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

const HELP_URL: &str =
    "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/";

/// A Box API error: HTTP status, Box's `code`, a message and optional `context_info`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Boxed to keep `Result<_, ApiError>` small.
    pub context_info: Option<Box<Value>>,
    /// Extra response headers (Retry-After, WWW-Authenticate).
    pub headers: Vec<(header::HeaderName, String)>,
    /// OAuth endpoints answer `{error, error_description}` instead of a ClientError.
    pub oauth: bool,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
            context_info: None,
            headers: Vec::new(),
            oauth: false,
        }
    }

    pub fn with_context(mut self, context: Value) -> Self {
        self.context_info = Some(Box::new(context));
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// A malformed query or body parameter; Box names the parameter in context_info.
    pub fn invalid_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(400, "bad_request", message.clone()).with_context(json!({
            "errors": [{"reason": "invalid_parameter", "name": name, "message": message}]
        }))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            404,
            "not_found",
            format!("Not Found: the {what} does not exist or you have no access to it"),
        )
    }

    pub fn trashed(what: &str) -> Self {
        Self::new(
            404,
            "trashed",
            format!("Item is trashed: the {what} is in the trash"),
        )
    }

    /// Box answers a malformed id (not a number) with 405.
    pub fn malformed_id() -> Self {
        Self::new(
            405,
            "method_not_allowed",
            "Method Not Allowed: the id is not in a recognized format",
        )
    }

    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            412,
            "precondition_failed",
            "The resource has been modified. Please retrieve the resource again and retry",
        )
    }

    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            401,
            "unauthorized",
            "Unauthorized: the access token provided is invalid or expired",
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            r#"Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid.""#.into(),
        ));
        e
    }

    pub fn oauth(status: u16, error: &str, description: impl Into<String>) -> Self {
        let mut e = Self::new(status, error, description);
        e.oauth = true;
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_server_error", message)
    }

    /// The JSON body this error is sent with, for a given request id.
    pub fn body(&self, request_id: &str) -> Value {
        if self.oauth {
            return json!({"error": self.code, "error_description": self.message});
        }
        json!({
            "type": "error",
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "context_info": self.context_info.as_deref().cloned().unwrap_or(Value::Null),
            "help_url": HELP_URL,
            "request_id": request_id,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = crate::http::new_request_id();
        let body = self.body(&request_id);
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers_mut().insert(name.clone(), v);
            }
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
