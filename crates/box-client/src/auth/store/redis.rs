//! `RedisTokenStore`: the pair under one Redis key, shared by every process and machine
//! that reaches the server.
//!
//! The refresh lock is the classic single-instance Redis lock: `SET <key>:lock <random> NX
//! PX <ttl>` takes it, a Lua compare-and-delete releases it only if it still holds our
//! random value (so a holder whose lock expired cannot release its successor's), waiters
//! poll until it is free, and a holder that dies loses the lock when it expires.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use redis::aio::MultiplexedConnection;

use super::{LockRelease, StoreLock, TokenPair, TokenStore, DEFAULT_LOCK_WAIT};
use crate::error::{BoxError, BoxResult};
use crate::redis_server::RedisServer;

/// The key used when the spec names none.
pub const DEFAULT_KEY: &str = "boxfs:oauth-tokens";
/// A lock outlives a refresh with its retries; a dead holder's lock is gone after it.
const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
const LOCK_POLL: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(10);

const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
else
  return 0
end
"#;

/// A Redis URL fit for messages: the password (`:pw@`, or `?pass=` of `redis+unix://`)
/// replaced.
pub(crate) fn redact_url_str(spec: &str) -> String {
    crate::secret::redact_url_text(spec)
}

pub struct RedisTokenStore {
    server: RedisServer,
    key: String,
    lock_key: String,
    lock_ttl: Duration,
    lock_wait: Duration,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("server", &self.server.shown())
            .field("key", &self.key)
            .finish()
    }
}

fn redis_error(what: &str, e: redis::RedisError) -> BoxError {
    BoxError::Store(format!("redis: {what}: {e}"))
}

impl RedisTokenStore {
    /// The pair under `key` on the server at `url` (`redis://[:password@]host[:port][/db]`).
    /// Nothing is contacted before the first use.
    pub fn new(url: &str, key: &str) -> BoxResult<RedisTokenStore> {
        let server = RedisServer::open(url, TIMEOUT)?;
        if key.is_empty() {
            return Err(BoxError::Config("the Redis key is empty".into()));
        }
        Ok(RedisTokenStore {
            server,
            key: key.to_string(),
            lock_key: format!("{key}:lock"),
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_wait: DEFAULT_LOCK_WAIT,
        })
    }

    /// `redis://host:port/db?key=KEY`: the `key` parameter names the key (default
    /// [`DEFAULT_KEY`]); the rest is the server's URL.
    pub fn from_spec(spec: &str) -> BoxResult<RedisTokenStore> {
        let (url, key) = RedisTokenStore::split_spec(spec)?;
        RedisTokenStore::new(&url, &key)
    }

    /// A `redis://…[?key=KEY]` spec as the server's URL and the key (the default key when
    /// the spec names none): what [`RedisTokenStore::from_spec`] uses, for other state that
    /// belongs with the tokens (the pacer's shared buckets).
    pub fn split_spec(spec: &str) -> BoxResult<(String, String)> {
        let mut url = url::Url::parse(spec).map_err(|e| {
            BoxError::Config(format!("'{}' is not a URL: {e}", redact_url_str(spec)))
        })?;
        let mut key = DEFAULT_KEY.to_string();
        let rest: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "key" {
                    key = v.into_owned();
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        if rest.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(rest);
        }
        Ok((url.to_string(), key))
    }

    /// How long a lock lives if its holder never releases it.
    pub fn with_lock_ttl(mut self, ttl: Duration) -> RedisTokenStore {
        self.lock_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long `lock` waits for another holder before it fails.
    pub fn with_lock_wait(mut self, wait: Duration) -> RedisTokenStore {
        self.lock_wait = wait;
        self
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Runs one command; a failure drops the cached connection so the next call reconnects.
    async fn run<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> BoxResult<T> {
        let mut c = self.server.connection().await?;
        match cmd.query_async(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.server.forget_connection().await;
                Err(redis_error(what, e))
            }
        }
    }
}

struct RedisLock {
    conn: Option<MultiplexedConnection>,
    lock_key: String,
    token: String,
}

impl RedisLock {
    async fn release_with(
        mut conn: MultiplexedConnection,
        lock_key: String,
        token: String,
    ) -> BoxResult<()> {
        redis::Script::new(RELEASE_SCRIPT)
            .key(lock_key)
            .arg(token)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| redis_error("releasing the token lock", e))
    }
}

#[async_trait]
impl LockRelease for RedisLock {
    async fn release(mut self: Box<Self>) -> BoxResult<()> {
        match self.conn.take() {
            Some(conn) => {
                let (key, token) = (std::mem::take(&mut self.lock_key), self.token.clone());
                RedisLock::release_with(conn, key, token).await
            }
            None => Ok(()),
        }
    }
}

impl Drop for RedisLock {
    /// Dropped without `release` (a cancelled refresh): release in the background if a
    /// runtime is there to do it; otherwise the lock expires on its own.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (key, token) = (std::mem::take(&mut self.lock_key), self.token.clone());
                rt.spawn(async move {
                    if let Err(e) = RedisLock::release_with(conn, key, token).await {
                        log::debug!("{e}");
                    }
                });
            }
        }
    }
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    async fn load(&self) -> BoxResult<Option<TokenPair>> {
        let raw: Option<Vec<u8>> = self
            .run("reading the tokens", redis::cmd("GET").arg(&self.key))
            .await?;
        raw.map(|b| TokenPair::from_json(&b, &format!("Redis key {}", self.key)))
            .transpose()
    }

    async fn save(&self, pair: &TokenPair) -> BoxResult<()> {
        let bytes = pair.to_json()?;
        self.run::<()>(
            "saving the tokens",
            redis::cmd("SET").arg(&self.key).arg(bytes),
        )
        .await
    }

    async fn clear(&self) -> BoxResult<()> {
        self.run::<()>("removing the tokens", redis::cmd("DEL").arg(&self.key))
            .await
    }

    async fn lock(&self) -> BoxResult<StoreLock> {
        let token = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let ttl_ms = self.lock_ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let started = Instant::now();
        loop {
            let got: Option<String> = self
                .run(
                    "taking the token lock",
                    redis::cmd("SET")
                        .arg(&self.lock_key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms),
                )
                .await?;
            if got.is_some() {
                return Ok(StoreLock::new(RedisLock {
                    conn: Some(self.server.connection().await?),
                    lock_key: self.lock_key.clone(),
                    token,
                }));
            }
            if started.elapsed() >= self.lock_wait {
                return Err(BoxError::Store(format!(
                    "redis: {} is still held by another holder after {} s",
                    self.lock_key,
                    self.lock_wait.as_secs()
                )));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_the_key_and_never_show_the_password() {
        let s = RedisTokenStore::from_spec("redis://:pw123@127.0.0.1:7/2?key=team:tok").unwrap();
        assert_eq!(s.key(), "team:tok");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("pw123") && shown.contains("127.0.0.1"),
            "{shown}"
        );
        let s = RedisTokenStore::from_spec("redis://127.0.0.1").unwrap();
        assert_eq!(s.key(), DEFAULT_KEY);
        assert!(RedisTokenStore::from_spec("redis://h?key=").is_err());
    }
}
