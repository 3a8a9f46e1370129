//! `BoxError`: every way a Box call can fail, typed. API errors keep everything Box said
//! (status, code, message, request id, context_info — e.g. the conflicting item of a 409);
//! OAuth errors keep RFC 6749's `error` and `error_description`.

use std::time::Duration;

use serde_json::Value;

/// What Box answered with an error status.
#[derive(Debug, Clone)]
pub struct ApiErrorInfo {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub context_info: Option<Value>,
    pub retry_after: Option<Duration>,
    pub method: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("Box answered {} {} for {} {}: {} (request id {})", .0.status, .0.code, .0.method, .0.url, .0.message, .0.request_id.as_deref().unwrap_or("none"))]
    Api(Box<ApiErrorInfo>),
    /// The token endpoint refused (`invalid_grant`, `invalid_client`, …). Box may send its
    /// request id with these too.
    #[error("authentication refused: {error}: {description}{}", .request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    OAuth {
        status: u16,
        error: String,
        description: String,
        request_id: Option<String>,
    },
    /// Credentials are missing, expired beyond repair, or cannot be used.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The request never got an answer: the connection was reset or cut halfway.
    #[error("network error talking to Box: {0}")]
    Network(String),
    /// Box could not be reached at all: the connection was refused, the host name did not
    /// resolve, or the connection timed out. Also what a client
    /// [`crate::Client::detecting_offline`] answers at once while Box is known to be out of
    /// reach ([`crate::reachability`]).
    #[error("cannot reach Box: {0}")]
    Unreachable(String),
    /// The server's TLS certificate was refused, so nothing was sent. Behind a company's
    /// TLS-inspecting proxy, which re-signs every certificate with its own CA, that CA must be
    /// trusted (the system's store, or [`crate::http::HttpOptions::add_root_certificates_file`]).
    /// Trying again does not help.
    #[error("cannot reach {origin}: {problem}")]
    Certificate {
        /// `https://host[:port]` of the request (never its path, which may hold a secret).
        origin: String,
        problem: CertificateProblem,
    },
    /// Box answered something we could not understand.
    #[error("unexpected answer from Box: {0}")]
    Decode(String),
    /// The caller asked for something invalid before any request was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("token store error: {0}")]
    Store(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a server's TLS certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// No trusted CA signed it: a TLS-inspecting proxy's own CA, or a test server's.
    UnknownIssuer,
    /// Refused for another reason (expired, issued for another name, revoked…), as TLS put it.
    Other(String),
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateProblem::UnknownIssuer => {
                f.write_str("its TLS certificate is not signed by a trusted CA")
            }
            CertificateProblem::Other(why) => write!(f, "its TLS certificate was refused: {why}"),
        }
    }
}

impl BoxError {
    /// The HTTP status Box answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            BoxError::Api(e) => Some(e.status),
            BoxError::OAuth { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Box's error code (`item_name_in_use`, `not_found`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            BoxError::Api(e) => Some(&e.code),
            BoxError::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn api(&self) -> Option<&ApiErrorInfo> {
        match self {
            BoxError::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The id of the item a 409 `item_name_in_use` conflicts with. Box sends
    /// `context_info.conflicts` as an object or as an array, depending on the endpoint.
    pub fn conflict_id(&self) -> Option<String> {
        let info = self.api()?.context_info.as_ref()?;
        let conflicts = info.get("conflicts")?;
        let first = if conflicts.is_array() {
            conflicts.get(0)?
        } else {
            conflicts
        };
        first.get("id")?.as_str().map(str::to_string)
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            BoxError::Network(_) | BoxError::Unreachable(_) => true,
            BoxError::Api(e) => matches!(e.status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

pub type BoxResult<T> = Result<T, BoxError>;
