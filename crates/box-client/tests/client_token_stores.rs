//! Sharing one OAuth token pair: Box refresh tokens work once, so two holders that refresh
//! on their own log each other out. Through a token store (file or Redis) the one that loses
//! the race uses the winner's new pair. The races here are real: two processes (the
//! `token_race` example) refreshing at the same instant. Also the stores' locks, and tokens
//! from an external command.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use box_client::auth::oauth::code_from_redirect;
use box_client::auth::store::{self, StoreLock};
use box_client::auth::{
    CommandToken, FileTokenStore, MemoryTokenStore, OAuth2, RedisTokenStore, TokenPair, TokenStore,
};
use box_client::{Authenticator, BoxError, Client, Endpoints, Secret};
use box_emulator::testing::redis::RedisServer;
use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;
use futures_util::future::join_all;

// ---------------------------------------------------------------------------------------
// Harness: a Redis server of our own, the race helper binary, logins, the request log.

/// The `token_race` example, built if `cargo test` did not build it (as with `--test`).
fn race_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // The test runs from target/<profile>/deps; examples live in target/<profile>/examples.
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let binary = profile_dir.join("examples").join("token_race");
        // Cargo gives this process the package's variables; a nested build that inherits
        // them looks different to build scripts that watch them, and would rebuild
        // everything. Leave them out.
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo
            .args(["build", "--quiet", "--example", "token_race"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR")
                || key == "LD_LIBRARY_PATH"
            {
                cargo.env_remove(key.as_ref());
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the token_race example failed");
        assert!(binary.exists(), "{} is missing", binary.display());
        binary
    })
}

fn oauth(t: &TestEmu) -> OAuth2 {
    let info = &t.emulator().info;
    OAuth2::new(
        info.client_id.clone(),
        info.client_secret.clone(),
        Endpoints::from_base(&t.base).unwrap(),
    )
}

fn client(t: &TestEmu, auth: Arc<dyn Authenticator>) -> Client {
    Client::new(auth, Endpoints::from_base(&t.base).unwrap())
}

/// Logs in through the emulator's authorize page; the pair lands in `auth`'s store.
async fn login(t: &TestEmu, auth: &OAuth2) -> TokenPair {
    let (url, state) = auth.authorization_url("http://127.0.0.1:9/cb");
    let resp = t.http.get(url.as_str()).send().await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    auth.authenticate(code_from_redirect(&location, &state).unwrap())
        .await
        .unwrap()
}

/// Statuses of the token endpoint's answers, in order.
fn token_calls(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["path"] == "/oauth2/token")
        .map(|v| v["status"].as_u64().unwrap_or(0))
        .collect()
}

fn counting(auth: OAuth2) -> (OAuth2, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    let auth = auth.on_new_tokens(move |_| {
        m.fetch_add(1, Ordering::SeqCst);
    });
    (auth, n)
}

// ---------------------------------------------------------------------------------------
// Two processes refreshing at the same instant.

/// Seeds `spec`'s store with one pair, runs two `token_race` processes that force a refresh
/// at the same instant and then keep working while short-lived tokens expire under them,
/// and checks that both succeed, that Box never saw a spent refresh token, and that the
/// store ends with a working pair.
async fn two_processes_race(spec: &str) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let t = TestEmu::start_with(EmulatorConfig {
        token_ttl_secs: 3,
        request_log: Some(log.clone()),
        ..EmulatorConfig::default()
    })
    .await;
    let binary = race_binary();
    let store = store::open(spec).unwrap();
    login(&t, &oauth(&t).with_store(store.clone())).await;
    assert!(store.load().await.unwrap().is_some(), "seeded");

    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1000;
    let info = &t.emulator().info;
    let spawn = || {
        tokio::process::Command::new(binary)
            .args([&t.base, &info.client_id, spec])
            .arg(start_ms.to_string())
            .arg("3000")
            .env("BOXFS_CLIENT_SECRET", &info.client_secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("token_race starts")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join(a.wait_with_output(), b.wait_with_output()),
    )
    .await
    .expect("both processes finish");
    let (mut refreshes, mut forced) = (0, 0);
    for out in [a.unwrap(), b.unwrap()] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.starts_with("ok "),
            "a process failed: {stdout} {stderr}"
        );
        assert!(stdout.contains("login=admin@example.com"), "{stdout}");
        let count = |name: &str| {
            stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        };
        refreshes += count("refreshes=");
        forced += count("forced=");
    }
    // One login, then only refreshes that worked: nobody refreshed with a spent token.
    let calls = token_calls(&log);
    assert!(calls.iter().all(|s| *s == 200), "token calls {calls:?}");
    assert_eq!(
        calls.len(),
        1 + refreshes,
        "every refresh was seen by one process"
    );
    // At the start instant one process refreshed and the other used its new pair.
    assert_eq!(forced, 1, "one refresh for the race at the start instant");
    // Then the short-lived tokens expired under both, and were renewed as they went.
    assert!(refreshes >= 2, "short tokens were refreshed: {refreshes}");

    // The store ends with a pair that works, and whose refresh token is alive.
    let (auth, n) = counting(oauth(&t).with_store(store.clone()));
    let auth = Arc::new(auth);
    let c = client(&t, auth.clone());
    c.me().await.unwrap();
    let held = auth.access_token().await.unwrap();
    auth.refresh(&held).await.unwrap();
    c.me().await.unwrap();
    assert!(n.load(Ordering::SeqCst) >= 1);
    assert_eq!(store.load().await.unwrap(), auth.tokens());
}

#[tokio::test]
async fn two_processes_share_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    two_processes_race(&format!("file:{}", path.display())).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn two_processes_share_a_redis_store() {
    let redis = RedisServer::start();
    two_processes_race(&redis.url("race:tokens")).await;
}

// ---------------------------------------------------------------------------------------
// Holders within one process, through each store.

/// Two authenticators holding the same pair through `a_store` and `b_store` (two views of
/// one store): when both find the token refused, one refresh happens and both go on.
async fn holders_share(t: &TestEmu, a_store: Arc<dyn TokenStore>, b_store: Arc<dyn TokenStore>) {
    let seed = login(t, &oauth(t).with_store(a_store.clone())).await;
    let (a, na) = counting(oauth(t).with_store(a_store.clone()));
    let (b, nb) = counting(oauth(t).with_store(b_store.clone()));
    let (a, b) = (Arc::new(a), Arc::new(b));
    assert_eq!(a.access_token().await.unwrap(), seed.access_token);
    assert_eq!(b.access_token().await.unwrap(), seed.access_token);
    let both = join_all((0..10).map(|i| {
        let (a, b, old) = (a.clone(), b.clone(), seed.access_token.clone());
        async move {
            if i % 2 == 0 {
                a.refresh(&old).await
            } else {
                b.refresh(&old).await
            }
        }
    }))
    .await;
    let tokens: Vec<Secret> = both.into_iter().map(Result::unwrap).collect();
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one new token for all"
    );
    assert_eq!(na.load(Ordering::SeqCst) + nb.load(Ordering::SeqCst), 1);
    assert_eq!(
        a_store.load().await.unwrap().unwrap().access_token,
        tokens[0]
    );
    client(t, a).me().await.unwrap();
    client(t, b).me().await.unwrap();
}

#[tokio::test]
async fn holders_in_one_process_share_each_store() {
    let t = TestEmu::start().await;
    let memory: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    holders_share(&t, memory.clone(), memory).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    // Separate store objects: separate lock descriptors, as in two processes.
    holders_share(
        &t,
        Arc::new(FileTokenStore::new(&path)),
        Arc::new(FileTokenStore::new(&path)),
    )
    .await;

    let redis = RedisServer::start();
    let spec = redis.url("share:tokens");
    holders_share(
        &t,
        Arc::new(RedisTokenStore::from_spec(&spec).unwrap()),
        Arc::new(RedisTokenStore::from_spec(&spec).unwrap()),
    )
    .await;
}

#[tokio::test]
async fn revoke_clears_the_shared_store() {
    let t = TestEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(dir.path().join("t.json")));
    let a = Arc::new(oauth(&t).with_store(store.clone()));
    login(&t, &a).await;
    // Another holder rotated the pair since; revoke ends the newest one.
    let b = Arc::new(oauth(&t).with_store(store.clone()));
    let held = b.access_token().await.unwrap();
    b.refresh(&held).await.unwrap();
    a.revoke().await.unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    // The other holder's pair is dead too: a typed error.
    let err = client(&t, b).me().await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The locks themselves.

async fn assert_exclusive(first: StoreLock, second: impl std::future::Future<Output = StoreLock>) {
    let waited = Instant::now();
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.release().await.unwrap();
    };
    let (_, second) = futures_util::future::join(release, second).await;
    assert!(
        waited.elapsed() >= Duration::from_millis(250),
        "the second holder waited for the first"
    );
    second.release().await.unwrap();
}

#[tokio::test]
async fn file_lock_is_exclusive_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let a = FileTokenStore::new(&path);
    let b = FileTokenStore::new(&path).with_lock_wait(Duration::from_millis(150));
    let held = a.lock().await.unwrap();
    let err = b.lock().await.unwrap_err();
    assert!(matches!(err, BoxError::Store(_)), "{err}");
    assert_exclusive(held, async { a.lock().await.unwrap() }).await;
    // The lock file stays; the token file is never created by locking.
    assert!(!path.exists());
}

#[tokio::test]
async fn redis_lock_is_exclusive_expires_and_is_released_only_by_its_holder() {
    let redis = RedisServer::start();
    let spec = redis.url("lock:tokens");
    let a = RedisTokenStore::from_spec(&spec)
        .unwrap()
        .with_lock_ttl(Duration::from_millis(400));
    let b = RedisTokenStore::from_spec(&spec)
        .unwrap()
        .with_lock_wait(Duration::from_millis(100));

    let held = a.lock().await.unwrap();
    assert!(matches!(b.lock().await, Err(BoxError::Store(_))));
    assert_exclusive(held, async { a.lock().await.unwrap() }).await;

    // A holder that dies (never releases) loses the lock when it expires.
    let dead = a.lock().await.unwrap();
    std::mem::forget(dead);
    let waited = Instant::now();
    let patient = RedisTokenStore::from_spec(&spec).unwrap();
    patient.lock().await.unwrap().release().await.unwrap();
    assert!(waited.elapsed() >= Duration::from_millis(200));

    // A late release by a holder whose lock expired does not free its successor's lock.
    let late = a.lock().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let successor = patient.lock().await.unwrap();
    late.release().await.unwrap();
    assert!(matches!(b.lock().await, Err(BoxError::Store(_))));
    successor.release().await.unwrap();
    b.lock().await.unwrap().release().await.unwrap();

    // Pairs round-trip; an unreachable server is a typed error.
    let pair = TokenPair::new("acc", Some("ref".into()), Some(Duration::from_secs(60)));
    a.save(&pair).await.unwrap();
    assert_eq!(b.load().await.unwrap(), Some(pair));
    b.clear().await.unwrap();
    assert_eq!(a.load().await.unwrap(), None);
    drop(redis);
    assert!(matches!(
        RedisTokenStore::from_spec(&spec).unwrap().load().await,
        Err(BoxError::Store(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Tokens from an external command.

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path.display().to_string()
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn command_tokens_are_cached_and_renewed() {
    let t = TestEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("runs");
    let good = script(
        dir.path(),
        "token.sh",
        &format!("echo run >> '{}'\necho '{}'", counter.display(), t.token),
    );
    let auth = Arc::new(CommandToken::new([good.as_str()]).unwrap());
    let c = client(&t, auth.clone());
    for _ in 0..3 {
        assert_eq!(c.me().await.unwrap().login, "admin@example.com");
    }
    assert_eq!(runs(&counter), 1, "the token is cached");
    assert!(!format!("{auth:?}").contains(&t.token));

    // Too old: run again.
    let aging = Arc::new(
        CommandToken::new([good.as_str()])
            .unwrap()
            .with_max_age(Duration::from_millis(100)),
    );
    let c = client(&t, aging);
    c.me().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.me().await.unwrap();
    assert_eq!(runs(&counter), 3);

    // Refused (401): run again, once for many concurrent requests. The first run prints a
    // token Box does not know, later runs the real one.
    let flaky_counter = dir.path().join("flaky-runs");
    let flaky = script(
        dir.path(),
        "flaky.sh",
        &format!(
            "echo run >> '{c}'\nif [ $(wc -l < '{c}') -eq 1 ]; then echo stale-token; else echo '{t}'; fi",
            c = flaky_counter.display(),
            t = t.token
        ),
    );
    let c = client(&t, Arc::new(CommandToken::new([flaky.as_str()]).unwrap()));
    let results = join_all((0..10).map(|_| c.me())).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(runs(&flaky_counter), 2);
}

#[tokio::test]
async fn failing_commands_are_auth_errors() {
    let t = TestEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let failing = script(
        dir.path(),
        "fail.sh",
        "echo 'vault: permission denied' >&2\necho 'second line' >&2\nexit 3",
    );
    let err = CommandToken::new([failing.as_str()])
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    match &err {
        BoxError::Auth(msg) => {
            assert!(msg.contains("vault: permission denied"), "{msg}");
            assert!(msg.contains('3'), "{msg}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let c = client(&t, Arc::new(CommandToken::new([failing.as_str()]).unwrap()));
    assert!(matches!(c.me().await, Err(BoxError::Auth(_))));

    let empty = script(dir.path(), "empty.sh", "true");
    let err = CommandToken::new([empty.as_str()])
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BoxError::Auth(m) if m.contains("no token")),
        "{err}"
    );

    let missing = dir.path().join("no-such-program").display().to_string();
    let err = CommandToken::new([missing.as_str()])
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Auth(_)), "{err}");

    let slow = script(dir.path(), "slow.sh", "sleep 5\necho late");
    let err = CommandToken::new([slow.as_str()])
        .unwrap()
        .with_timeout(Duration::from_millis(200))
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BoxError::Auth(m) if m.contains("within")),
        "{err}"
    );

    // Arguments go to the program as they are (no shell), and only the program is shown.
    let echo = CommandToken::new(["/bin/echo", "tok;en $HOME"]).unwrap();
    let err = echo.access_token().await.unwrap_err();
    assert!(
        matches!(err, BoxError::Auth(_)),
        "a line with spaces is no token"
    );
    let echo = CommandToken::new(["/bin/echo", "$HOME;x"]).unwrap();
    assert_eq!(echo.access_token().await.unwrap().expose(), "$HOME;x");
    assert!(!format!("{echo:?}").contains("HOME"));
    assert!(CommandToken::new(Vec::<String>::new()).is_err());
}
