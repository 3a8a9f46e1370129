//! One of several processes sharing one OAuth token pair through a token store: it loads the
//! pair, waits for a common start instant, forces a refresh (so that all of them refresh at
//! the same moment), then keeps calling the API for a while — refreshing again whenever the
//! token nears expiry — and prints what it did. The integration test
//! `client_token_stores` runs two of these against the emulator.
//!
//! Usage: `token_race BASE_URL CLIENT_ID STORE START_UNIX_MS DURATION_MS`, with the client
//! secret in `BOXFS_CLIENT_SECRET` (kept out of the argument list, which others can read).
//! STORE is `file:PATH` or `redis://HOST:PORT[?key=KEY]`. Prints
//! `ok forced=0|1 refreshes=N calls=M login=LOGIN` and exits 0, or prints the error and exits 1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use box_client::auth::{store, OAuth2};
use box_client::{Authenticator, BoxError, Client, Endpoints};

async fn run(args: &[String]) -> Result<String, BoxError> {
    let [base, client_id, spec, start_ms, duration_ms] = args else {
        return Err(BoxError::Invalid(
            "usage: token_race BASE_URL CLIENT_ID STORE START_UNIX_MS DURATION_MS".into(),
        ));
    };
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| BoxError::Invalid(format!("'{s}' is not a number")))
    };
    let (start_ms, duration) = (
        number(start_ms)?,
        Duration::from_millis(number(duration_ms)?),
    );
    let secret = std::env::var("BOXFS_CLIENT_SECRET")
        .map_err(|_| BoxError::Config("BOXFS_CLIENT_SECRET is not set".into()))?;
    let endpoints = Endpoints::from_base(base)?;
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counter = refreshes.clone();
    let auth = Arc::new(
        OAuth2::new(client_id.as_str(), secret, endpoints.clone())
            .with_store(store::open(spec)?)
            .on_new_tokens(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
    );
    let client = Client::new(auth.clone(), endpoints);
    let held = auth.access_token().await?;

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(start_ms.saturating_sub(now_ms))).await;
    let started = tokio::time::Instant::now();
    let before = refreshes.load(Ordering::SeqCst);
    auth.refresh(&held).await?;
    // 1 if this process refreshed at the start instant, 0 if it used the other's new pair.
    let forced = refreshes.load(Ordering::SeqCst) - before;

    let mut calls = 0u32;
    let mut login = String::new();
    while calls == 0 || started.elapsed() < duration {
        login = client.me().await?.login;
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(format!(
        "ok forced={forced} refreshes={} calls={calls} login={login}",
        refreshes.load(Ordering::SeqCst)
    ))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("token_race: {e}");
            std::process::exit(1);
        }
    }
}
