//! How the client proves who it is. Every kind of credential implements [`Authenticator`]:
//! the request layer asks it for a token before each request, and asks it to `refresh`
//! once when Box answers 401 with the token it gave. Each module here owns one kind:
//! developer tokens and stored bare tokens (below), OAuth 2.0, JWT, client credentials, and an
//! external command.

pub mod ccg;
pub mod command;
pub mod jwt;
pub mod oauth;
pub mod store;

pub use ccg::{CcgAuth, Subject};
pub use command::CommandToken;
pub use jwt::{JwtAuth, JwtConfig};
pub use oauth::OAuth2;
pub use store::{FileTokenStore, MemoryTokenStore, RedisTokenStore, TokenPair, TokenStore};

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;

use super::client::{Client, Request};
use super::error::{BoxError, BoxResult};
use super::secret::Secret;

#[async_trait]
pub trait Authenticator: Send + Sync {
    /// A token that is believed valid now (refreshing first if it is about to expire).
    async fn access_token(&self) -> BoxResult<Secret>;

    /// Box refused `rejected`: get a new token. Implementations must make many concurrent
    /// callers cause one refresh, and must not refresh again if someone already replaced
    /// the rejected token.
    async fn refresh(&self, rejected: &Secret) -> BoxResult<Secret>;

    /// Ends the session at Box, where the credential supports it.
    async fn revoke(&self) -> BoxResult<()> {
        Ok(())
    }
}

/// Revokes `token` at `{oauth}/revoke` with an app's credentials (OAuth 2.0, JWT and client
/// credentials alike); `client` sends it without a token of its own.
pub(crate) async fn revoke_token(
    client: &Client,
    client_id: &str,
    client_secret: &Secret,
    token: &Secret,
) -> BoxResult<()> {
    let req = Request::new(Method::POST, client.endpoints().revoke_url())
        .form(vec![
            ("client_id".into(), client_id.to_string()),
            ("client_secret".into(), client_secret.expose().to_string()),
            ("token".into(), token.expose().to_string()),
        ])
        .unauthenticated();
    client.empty(req).await
}

/// A developer token (or any bare access token): used as it is, never refreshed.
#[derive(Debug)]
pub struct DeveloperToken {
    token: Secret,
}

impl DeveloperToken {
    pub fn new(token: impl Into<Secret>) -> DeveloperToken {
        DeveloperToken {
            token: token.into(),
        }
    }
}

#[async_trait]
impl Authenticator for DeveloperToken {
    async fn access_token(&self) -> BoxResult<Secret> {
        Ok(self.token.clone())
    }

    async fn refresh(&self, _rejected: &Secret) -> BoxResult<Secret> {
        Err(BoxError::Auth(
            "the developer token was refused (they expire after an hour); make a new one or log in"
                .into(),
        ))
    }
}

/// A bare access token kept in a [`TokenStore`] (what `boxfs login --token` leaves there):
/// read from the store on first use, never refreshed.
#[derive(Debug)]
pub struct StoredToken {
    store: Arc<dyn TokenStore>,
    token: tokio::sync::OnceCell<Secret>,
}

impl StoredToken {
    pub fn new(store: Arc<dyn TokenStore>) -> StoredToken {
        StoredToken {
            store,
            token: tokio::sync::OnceCell::new(),
        }
    }
}

#[async_trait]
impl Authenticator for StoredToken {
    async fn access_token(&self) -> BoxResult<Secret> {
        self.token
            .get_or_try_init(|| async {
                match self.store.load().await? {
                    Some(pair) => Ok(pair.access_token),
                    None => Err(BoxError::Auth(
                        "no token in the token store (log in first)".into(),
                    )),
                }
            })
            .await
            .cloned()
    }

    async fn refresh(&self, _rejected: &Secret) -> BoxResult<Secret> {
        Err(BoxError::Auth(
            "the stored token was refused (developer tokens expire after an hour); \
             log in again with a new one"
                .into(),
        ))
    }
}
