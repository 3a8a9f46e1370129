//! The Box client a configuration describes: the authenticator and endpoints of `auth.rs`,
//! sending through the HTTP client of `http.rs` (proxies, extra CAs), paced at the configured rates (`api_rate`, `upload_rate`; Box's documented per-user
//! limits when unset). When tokens are kept in Redis, the pacing is shared through the same
//! server and key, so that every process and machine using the account stays under its
//! limits together.

use box_client::auth::store::RedisTokenStore;
use box_client::{Client, PacerConfig, Rate};

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

/// The client `eff` describes. Its token requests and its API calls go through one HTTP
/// client (the system's CAs and `ca_cert` are read once).
pub fn client(eff: &Effective) -> Result<Client, String> {
    let http = http_client(eff)?;
    let (auth, endpoints) = authenticator(eff, &http)?;
    let mut builder = Client::builder(auth, endpoints)
        .http(http)
        .pacing(pacing(eff));
    if let Some(StoreSpec::Redis(spec)) = &eff.values.token_store {
        let (url, key) =
            RedisTokenStore::split_spec(spec).map_err(|e| eff.bad("token_store", e))?;
        builder = builder.shared_pacing(&url, &key);
    }
    builder.build().map_err(|e| eff.bad("token_store", e))
}
