//! Box's official Python SDK (boxsdk 3.14, a client we did not write) run against the
//! emulator: every flow of its README and usage docs, from `crates/box-emulator/tests/clients/boxsdk_flows.py`,
//! with every JSON response checked against Box's OpenAPI description. Needs the venv that
//! `.ci/install-deps` creates in `target/client-venv`.

use std::path::PathBuf;
use std::time::Duration;

use box_emulator::testing::{venv_python, TestEmu};
use box_emulator::EmulatorConfig;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const LONGPOLL_TIMEOUT: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxsdk_readme_flows_work_against_the_emulator() {
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let jwt_config = dir.path().join("box_config.json");
    let log = dir.path().join("requests.jsonl");
    let t = TestEmu::start_with(EmulatorConfig {
        jwt_config: Some(jwt_config.clone()),
        request_log: Some(log.clone()),
        // Long-polls answer `reconnect` soon, so the SDK's reconnect path runs too.
        longpoll_timeout_secs: LONGPOLL_TIMEOUT,
        ..Default::default()
    })
    .await;
    let info = t.emulator().info.clone();
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(manifest_dir().join("tests/clients/boxsdk_flows.py"))
        .env("BOXEMU_BASE_URL", &info.base_url)
        .env("BOXEMU_CLIENT_ID", &info.client_id)
        .env("BOXEMU_CLIENT_SECRET", &info.client_secret)
        .env("BOXEMU_ENTERPRISE_ID", &info.enterprise_id)
        .env("BOXEMU_USER_ID", &info.user_id)
        .env("BOXEMU_DEVELOPER_TOKEN", &info.developer_token)
        .env("BOXEMU_JWT_CONFIG", &jwt_config)
        .env("BOXEMU_LONGPOLL_TIMEOUT", LONGPOLL_TIMEOUT.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Loopback only: no proxy from the environment may take the SDK's requests elsewhere.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the boxsdk flows finish within 240 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "boxsdk flows failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all flows passed"), "{stdout}");

    // The SDK really took the paths the flows are about.
    let requests: Vec<(String, String, u64)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let seen = |method: &str, path: &dyn Fn(&str) -> bool, status: u64| {
        requests
            .iter()
            .any(|(m, p, s)| m == method && path(p) && *s == status)
    };
    let polls = requests
        .iter()
        .filter(|(m, p, s)| m == "GET" && p == "/subscribe" && *s == 200)
        .count();
    assert!(
        polls >= 2,
        "the SDK polled again after `reconnect` ({polls} polls)"
    );
    for (what, method, path, status) in [
        (
            "authorize redirect",
            "GET",
            &(|p: &str| p == "/api/oauth2/authorize") as &dyn Fn(&str) -> bool,
            302,
        ),
        ("token grant", "POST", &|p: &str| p == "/oauth2/token", 200),
        ("revoke", "POST", &|p: &str| p == "/oauth2/revoke", 200),
        (
            "long-poll servers",
            "OPTIONS",
            &|p: &str| p == "/2.0/events",
            200,
        ),
        ("long poll", "GET", &|p: &str| p == "/subscribe", 200),
        (
            "upload session",
            "POST",
            &|p: &str| p == "/api/2.0/files/upload_sessions",
            201,
        ),
        (
            "part upload",
            "PUT",
            &|p: &str| p.starts_with("/api/2.0/files/upload_sessions/"),
            200,
        ),
        (
            "commit",
            "POST",
            &|p: &str| p.starts_with("/api/2.0/files/upload_sessions/") && p.ends_with("/commit"),
            201,
        ),
        (
            "commit not ready yet",
            "POST",
            &|p: &str| p.starts_with("/api/2.0/files/upload_sessions/") && p.ends_with("/commit"),
            202,
        ),
        (
            "metadata patch",
            "PUT",
            &|p: &str| p.contains("/metadata/global/properties"),
            200,
        ),
        ("search", "GET", &|p: &str| p == "/2.0/search", 200),
    ] {
        assert!(
            seen(method, path, status),
            "no {what} request ({method}, {status}) in the request log"
        );
    }
}
