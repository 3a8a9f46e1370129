//! The Box client a configuration describes: the authenticator and endpoints of `auth.rs`,
//! sending through the HTTP client of `http.rs` (proxies, extra CAs), paced at the configured rates (`api_rate`, `upload_rate`; Box's documented per-user
//! limits when unset). When tokens are kept in Redis, the pacing is shared through the same
//! server and key, so that every process and machine using the account stays under its
//! limits together.

use std::sync::Arc;

use box_client::auth::store::RedisTokenStore;
use box_client::{Authenticator, Client, Endpoints, PacerConfig, Rate};

use super::auth::{authenticator, StoreSpec};
use super::http::http_client;
use super::Effective;

/// The rates of `eff`. A server without limits (`api_rate = "unlimited"`) has no search
/// limit either.
pub fn pacing(eff: &Effective) -> PacerConfig {
    let mut config = PacerConfig::default();
    if let Some(rate) = eff.values.api_rate {
        config.api_rate = rate;
        if rate == Rate::Unlimited {
            config.search_rate = Rate::Unlimited;
        }
    }
    if let Some(rate) = eff.values.upload_rate {
        config.upload_rate = rate;
    }
    config
}

/// The client `eff` describes.
pub fn client(eff: &Effective) -> Result<Client, String> {
    let (auth, endpoints) = authenticator(eff)?;
    client_with(eff, auth, endpoints)
}

/// A client of `auth` at `endpoints`, paced as `eff` says.
pub fn client_with(
    eff: &Effective,
    auth: Arc<dyn Authenticator>,
    endpoints: Endpoints,
) -> Result<Client, String> {
    let mut builder = Client::builder(auth, endpoints)
        .http(http_client(eff)?)
        .pacing(pacing(eff));
    if let Some(StoreSpec::Redis(spec)) = &eff.values.token_store {
        let (url, key) =
            RedisTokenStore::split_spec(spec).map_err(|e| eff.bad("token_store", e))?;
        builder = builder.shared_pacing(&url, &key);
    }
    builder.build().map_err(|e| eff.bad("token_store", e))
}
