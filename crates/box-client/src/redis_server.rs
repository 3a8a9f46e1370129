//! One Redis server as the client reaches it, for the token store and the pacer's shared
//! buckets: its URL as it may be shown (without the password), and one multiplexed
//! connection, made on first use and made again after a failure was reported.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use crate::error::{BoxError, BoxResult};

pub(crate) struct RedisServer {
    client: redis::Client,
    shown: String,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl RedisServer {
    /// The server at `url` (`redis://[:password@]host[:port][/db]`), whose connections and
    /// answers time out after `timeout`. Nothing is contacted yet.
    pub(crate) fn open(url: &str, timeout: Duration) -> BoxResult<RedisServer> {
        let shown = crate::secret::redact_url_text(url);
        let client = redis::Client::open(url)
            .map_err(|e| BoxError::Config(format!("'{shown}' is not a usable Redis URL: {e}")))?;
        Ok(RedisServer {
            client,
            shown,
            timeout,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// The URL without its password.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The connection, made now if there is none.
    pub(crate) async fn connection(&self) -> BoxResult<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| {
                BoxError::Store(format!("redis: cannot connect to {}: {e}", self.shown))
            })?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A request through the connection failed: the next one connects again.
    pub(crate) async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }
}
