//! TLS and proxies as users meet them, through real mounts and the command line: Box's own
//! host names reached through a company's TLS-inspecting proxy (the emulator answering
//! `CONNECT`s to api.box.com and the other Box hosts with a CA of its own, named by
//! `HTTPS_PROXY`; the realtime host, plain HTTP, through `HTTP_PROXY`) with the proxy's CA
//! given by `--ca-cert`; the emulator serving HTTPS with its CA trusted through the system's
//! store (`SSL_CERT_FILE`, `SSL_CERT_DIR`); the one-line message that names the fix when the
//! CA is not trusted; a proxy skipped for the hosts `NO_PROXY` names. Variables are set on the
//! boxfs process only, never on the test's. Mounts need /dev/fuse and root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use box_emulator::EmulatorConfig;
use common::mount::{box_names, count_requests, eventually, TestMount, NETWORK_VARS};
use common::uploads::stored_content;
use common::TestEmu;

/// What boxfs says when no trusted CA signed the certificate.
const UNTRUSTED: &str = "its TLS certificate is not signed by a trusted CA; if a proxy \
                         re-signs TLS, give its CA with --ca-cert FILE (or ca_cert in the \
                         config, or SSL_CERT_FILE)";

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

/// An emulator that answers `CONNECT`s to Box's hosts with its CA (written to `ca.pem` in
/// `dir`) and logs its requests to `requests.log` there.
async fn inspecting_proxy(dir: &Path) -> TestEmu {
    TestEmu::start_with(EmulatorConfig {
        https_proxy_ca: Some(dir.join("ca.pem")),
        request_log: Some(dir.join("requests.log")),
        ..Default::default()
    })
    .await
}

/// `boxfs ARGS` with only the proxy and CA variables of `env`, no configuration file;
/// waits at most a minute.
fn boxfs(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxfs"));
    cmd.args(args)
        .env("BOXFS_CONFIG", "/dev/null")
        .env_remove("BOXFS_PROFILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in NETWORK_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd.envs(env.iter().copied()).spawn().expect("boxfs runs");
    let finished = eventually(Duration::from_secs(60), || {
        child.try_wait().expect("wait").is_some()
    });
    if finished.is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().expect("boxfs output")
}

/// The command failed, and its whole standard error is one line: `boxfs: ` and `message`.
fn fails_with_one_line(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it should fail: {stderr}");
    assert_eq!(stderr, format!("boxfs: {message}\n"));
}

/// The id of `name` in the root folder, as the emulator lists it.
async fn id_in_root(t: &TestEmu, name: &str) -> Option<String> {
    let (status, body) = t.get("/folders/0/items?limit=1000").await;
    assert!(status.is_success(), "{body}");
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["id"].as_str().expect("id").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_hosts_through_an_inspecting_proxy_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let t = inspecting_proxy(dir.path()).await;
    t.mkdir("0", "Reports").await;
    t.upload_file("0", "hello.txt", b"hello through the proxy")
        .await;
    let ca = dir.path().join("ca.pem");
    let log = dir.path().join("requests.log");
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        // No --api-url: Box's own hosts, which only the proxy reaches.
        let mut m = TestMount::start_with_env(
            None,
            &token,
            &["--ca-cert", ca.to_str().unwrap()],
            &[("HTTPS_PROXY", &base), ("HTTP_PROXY", &base)],
        );
        assert_eq!(box_names(&m.root), ["Reports", "hello.txt"]);
        assert_eq!(
            std::fs::read(m.path("hello.txt")).unwrap(),
            b"hello through the proxy"
        );
        std::fs::write(m.path("Reports/written.txt"), b"written through the proxy").unwrap();
        assert_eq!(
            std::fs::read(m.path("Reports/written.txt")).unwrap(),
            b"written through the proxy"
        );
        // The long-poll went to the realtime host (plain HTTP) through HTTP_PROXY.
        assert!(
            eventually(Duration::from_secs(20), || count_requests(
                &log,
                "GET",
                |p| p == "/subscribe"
            ) > 0)
            .is_some(),
            "no long-poll reached the realtime host"
        );
        assert!(m.unmount().success());
    })
    .await;
    let (_, reports) = t.get("/folders/0/items").await;
    let reports = reports["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Reports")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .expect("Reports");
    let (_, listing) = t.get(&format!("/folders/{reports}/items")).await;
    let written = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "written.txt")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .expect("written.txt is on Box");
    assert_eq!(
        &stored_content(&t, &written)[..],
        b"written through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_server_is_trusted_through_ssl_cert_file() {
    let t = TestEmu::start_https().await;
    t.upload_file("0", "hello.txt", b"hello over https").await;
    let ca = t.ca_file.clone().expect("the emulator's CA");
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        let mut m = TestMount::start_with_env(
            Some(&base),
            &token,
            &[],
            &[("SSL_CERT_FILE", ca.to_str().unwrap())],
        );
        assert_eq!(
            std::fs::read(m.path("hello.txt")).unwrap(),
            b"hello over https"
        );
        std::fs::write(m.path("new.txt"), b"new over https").unwrap();
        assert!(m.unmount().success());
    })
    .await;
    let id = id_in_root(&t, "new.txt").await.expect("new.txt on Box");
    assert_eq!(&stored_content(&t, &id)[..], b"new over https");
}

#[tokio::test]
async fn ssl_cert_dir_and_ca_cert_are_trusted_too() {
    let t = TestEmu::start_https().await;
    let ca = t.ca_file.clone().expect("the emulator's CA");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&ca, dir.path().join("emulator.pem")).unwrap();
    let (base, token) = (t.base.clone(), t.token.clone());
    let ca_dir = dir.path().to_path_buf();
    blocking(move || {
        let whoami = ["whoami", "--api-url", &base, "--token", &token];
        let out = boxfs(&whoami, &[("SSL_CERT_DIR", ca_dir.to_str().unwrap())]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = boxfs(
            &[&whoami[..], &["--ca-cert", ca.to_str().unwrap()]].concat(),
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = boxfs(&whoami, &[("BOXFS_CA_CERT", ca.to_str().unwrap())]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_one_line_that_names_the_fix() {
    let https = TestEmu::start_https().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = inspecting_proxy(dir.path()).await;
    let (https_base, https_token) = (https.base.clone(), https.token.clone());
    let (proxy_base, proxy_token) = (proxy.base.clone(), proxy.token.clone());
    blocking(move || {
        // The emulator's own HTTPS, its CA not given.
        let out = boxfs(
            &["whoami", "--api-url", &https_base, "--token", &https_token],
            &[],
        );
        fails_with_one_line(&out, &format!("cannot reach {https_base}: {UNTRUSTED}"));
        let out = boxfs(
            &[
                "search",
                "x",
                "--api-url",
                &https_base,
                "--token",
                &https_token,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2));
        fails_with_one_line(&out, &format!("cannot reach {https_base}: {UNTRUSTED}"));

        // Box's hosts behind the inspecting proxy, its CA not given: a mount fails before
        // it mounts.
        let mnt = tempfile::tempdir().unwrap();
        let out = boxfs(
            &[
                "mount",
                mnt.path().to_str().unwrap(),
                "--foreground",
                "--token",
                &proxy_token,
                "--cache-dir",
                mnt.path().join("cache").to_str().unwrap(),
            ],
            &[("HTTPS_PROXY", &proxy_base)],
        );
        // The mount point was not used: only the cache directory may have been made.
        assert!(!common::mount::is_mounted(mnt.path()));
        fails_with_one_line(
            &out,
            &format!("cannot reach https://api.box.com: {UNTRUSTED}"),
        );
    })
    .await;
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_used_is_named() {
    let t = TestEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing: PathBuf = dir.path().join("missing.pem");
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        for file in [&empty, &missing] {
            let file = file.to_str().unwrap();
            let out = boxfs(
                &[
                    "whoami",
                    "--api-url",
                    &base,
                    "--token",
                    &token,
                    "--ca-cert",
                    file,
                ],
                &[],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(
                stderr.starts_with("boxfs: ca_cert (command line): ") && stderr.contains(file),
                "{stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_skips_the_proxy_for_the_hosts_it_names() {
    let t = TestEmu::start().await;
    t.upload_file("0", "direct.txt", b"no proxy on the way")
        .await;
    // A proxy that is not there: a request sent to it would fail.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        let mut m = TestMount::start_with_env(
            Some(&base),
            &token,
            &[],
            &[
                ("HTTP_PROXY", &closed),
                ("HTTPS_PROXY", &closed),
                ("NO_PROXY", "127.0.0.1"),
            ],
        );
        assert_eq!(
            std::fs::read(m.path("direct.txt")).unwrap(),
            b"no proxy on the way"
        );
        assert!(m.unmount().success());
    })
    .await;
}
