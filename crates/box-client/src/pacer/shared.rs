//! Pacing shared through Redis: the account's buckets live in Redis, so every process and
//! machine that uses the account takes its tokens from the same buckets and together they
//! stay under Box's per-user limits. A Lua script refills a bucket by the time elapsed on
//! the Redis server's clock (one clock for everyone) and takes a token or answers how long
//! to wait; a 429 sets a pause key with an expiry that every taker honours.

use std::time::Duration;

use super::Kind;
use crate::error::{BoxError, BoxResult};
use crate::redis_server::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: bucket, pause. ARGV: tokens per ms, burst, tokens to leave (background reserve).
/// Returns 0 when a token was taken, else the milliseconds to wait.
const TAKE_SCRIPT: &str = r#"
local paused = redis.call("PTTL", KEYS[2])
if paused > 0 then return paused end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local needed = 1 + tonumber(ARGV[3])
local state = redis.call("HMGET", KEYS[1], "tokens", "ts")
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
local wait = 0
if tokens >= needed then
  tokens = tokens - 1
else
  wait = math.max(1, math.ceil((needed - tokens) / rate))
end
redis.call("HSET", KEYS[1], "tokens", tostring(tokens), "ts", tostring(math.max(now, ts)))
redis.call("PEXPIRE", KEYS[1], math.ceil(burst / rate) + 60000)
return wait
"#;

/// The buckets of one account on one Redis server.
pub(crate) struct SharedBuckets {
    server: RedisServer,
    prefix: String,
    script: redis::Script,
}

impl SharedBuckets {
    /// Buckets under `<key>:pacer:*` on the server at `url`; nothing is contacted yet.
    pub(crate) fn new(url: &str, key: &str) -> BoxResult<SharedBuckets> {
        let server = RedisServer::open(url, TIMEOUT)?;
        if key.is_empty() {
            return Err(BoxError::Config("the Redis pacing key is empty".into()));
        }
        Ok(SharedBuckets {
            server,
            prefix: format!("{key}:pacer"),
            script: redis::Script::new(TAKE_SCRIPT),
        })
    }

    pub(crate) fn shown(&self) -> &str {
        self.server.shown()
    }

    /// Takes a token from the shared bucket of `kind`, or answers how long to wait.
    pub(crate) async fn take(
        &self,
        kind: Kind,
        per_sec: f64,
        burst: u32,
        reserve: u32,
    ) -> BoxResult<Option<Duration>> {
        let mut c = self.server.connection().await?;
        let answer: Result<i64, _> = self
            .script
            .key(format!("{}:{}", self.prefix, kind.name()))
            .key(format!("{}:{}:paused", self.prefix, kind.name()))
            .arg(per_sec / 1000.0)
            .arg(burst.max(1))
            .arg(reserve)
            .invoke_async(&mut c)
            .await;
        match answer {
            Ok(0) => Ok(None),
            Ok(ms) => Ok(Some(Duration::from_millis(ms.max(1) as u64))),
            Err(e) => {
                self.server.forget_connection().await;
                Err(BoxError::Store(format!("redis: pacing: {e}")))
            }
        }
    }

    /// A 429: every taker of `kind`, in any process, waits `pause`.
    pub(crate) async fn pause(&self, kind: Kind, pause: Duration) -> BoxResult<()> {
        let mut c = self.server.connection().await?;
        let ms = pause.as_millis().clamp(1, u64::MAX as u128) as u64;
        let set: Result<(), _> = redis::cmd("SET")
            .arg(format!("{}:{}:paused", self.prefix, kind.name()))
            .arg(1)
            .arg("PX")
            .arg(ms)
            .query_async(&mut c)
            .await;
        if let Err(e) = set {
            self.server.forget_connection().await;
            return Err(BoxError::Store(format!("redis: pacing: {e}")));
        }
        Ok(())
    }
}
