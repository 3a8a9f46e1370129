//! `boxfs login`, `whoami`, `logout` and `config show` as a user runs them: the `boxfs`
//! binary with HOME and the XDG directories in a temporary directory, against an emulator.
//! The browser's part of the OAuth flow is played here: read the address login prints, open
//! it without following redirects, and follow the emulator's redirect to the login port.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use box_emulator::EmulatorConfig;
use common::redis::RedisServer;
use common::TestEmu;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A user's home: HOME, XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_CACHE_HOME in a temporary
/// directory, and no BOXFS_* variable from the environment of the test run.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config_file(&self) -> PathBuf {
        self.path("config/boxfs/config.toml")
    }

    fn token_file(&self) -> PathBuf {
        self.path("data/boxfs/tokens.json")
    }

    fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.config_file().parent().unwrap()).unwrap();
        std::fs::write(self.config_file(), text).unwrap();
    }

    fn config_text(&self) -> String {
        std::fs::read_to_string(self.config_file()).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_boxfs"));
        cmd.args(args)
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (var, _) in std::env::vars() {
            if var.starts_with("BOXFS_") {
                cmd.env_remove(var);
            }
        }
        cmd
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.cmd(args);
        cmd.envs(env.iter().copied());
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("boxfs finishes")
            .expect("boxfs runs")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[]).await
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "boxfs {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "boxfs {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn tokens(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).expect("token file")).unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `--api-url BASE --client-id ID --client-secret SECRET` of the emulator's app.
fn app_flags(t: &TestEmu) -> Vec<String> {
    let info = &t.emulator().info;
    vec![
        "--api-url".into(),
        t.base.clone(),
        "--client-id".into(),
        info.client_id.clone(),
        "--client-secret".into(),
        info.client_secret.clone(),
    ]
}

/// `boxfs login` (the browser flow) with `extra` flags, the browser played by `browse`,
/// which gets the redirect to the login port; returns login's output.
async fn browser_login<F, Fut>(home: &Home, t: &TestEmu, extra: &[&str], browse: F) -> Output
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut args: Vec<String> = vec!["login".into(), "--timeout".into(), "30".into()];
    args.extend(app_flags(t));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = home
        .cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("boxfs login runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("login prints the address")
            .unwrap()
            .unwrap_or_else(|| panic!("login ended before printing an address: {printed}"));
        printed.push_str(&line);
        printed.push('\n');
        if let Some(url) = line
            .trim()
            .strip_prefix(&format!("{}/api/oauth2/authorize?", t.base))
        {
            break format!("{}/api/oauth2/authorize?{url}", t.base);
        }
    };
    let resp = t.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the emulator approves at once");
    let redirect = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    browse(redirect).await;
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("login ends")
        .unwrap();
    Output {
        stdout: format!("{printed}{rest}").into_bytes(),
        ..out
    }
}

/// The browser following the redirect: returns status and page.
async fn open(t: &TestEmu, url: &str) -> (u16, String) {
    let resp = t.http.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn login_through_the_browser(home: &Home, t: &TestEmu, extra: &[&str]) {
    let out = browser_login(home, t, extra, |redirect| async move {
        let (status, page) = open(t, &redirect).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Logged in"), "{page}");
    })
    .await;
    assert!(
        out.status.success(),
        "login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {output}"))
        .trim()
}

#[tokio::test]
async fn browser_login_refuses_a_foreign_state_and_stores_private_tokens() {
    let t = TestEmu::start().await;
    let home = Home::new();
    let browser = &t;
    let out = browser_login(&home, &t, &[], |redirect| async move {
        let t = browser;
        // A request to the login port with a state this login did not send (a forged
        // redirect, CSRF) is refused, and the login goes on.
        let (before, _) = redirect
            .split_once("&state=")
            .expect("state in the redirect");
        let (status, page) = open(t, &format!("{before}&state=forged")).await;
        assert_eq!(status, 400, "{page}");
        assert!(
            page.contains("Login refused") && page.contains("does not match"),
            "{page}"
        );
        let (status, page) = open(t, &redirect.replace("/callback", "/favicon.ico")).await;
        assert_eq!(status, 404, "{page}");
        let (status, page) = open(t, &redirect).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("admin@example.com"), "{page}");
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("refused a redirect") && stderr.contains("CSRF"),
        "{stderr}"
    );
    assert!(stdout.contains("Logged in to Box as"), "{stdout}");

    assert_eq!(mode(&home.token_file()), 0o600);
    let tokens = home.tokens();
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string());
    assert_eq!(mode(&home.config_file()), 0o600);
    let config = home.config_text();
    assert!(
        config.contains("[profiles.default]") && config.contains("auth = \"oauth\""),
        "{config}"
    );

    // Everything needed now comes from the profile.
    let me = home.ok(&["whoami"]).await;
    assert_eq!(field(&me, "login"), "admin@example.com");
    assert_eq!(field(&me, "name"), "Emulator Admin");
    assert!(
        field(&me, "enterprise").contains(&t.emulator().info.enterprise_id),
        "{me}"
    );
    assert_eq!(field(&me, "quota"), "0 B used of 100 GiB (0.0%)");
}

#[tokio::test]
async fn a_refused_login_records_nothing() {
    let t = TestEmu::start().await;
    let home = Home::new();
    let browser = &t;
    let out = browser_login(&home, &t, &[], |redirect| async move {
        let t = browser;
        // Box's answer when the user denies access, with the right state.
        let state = redirect.split("&state=").nth(1).unwrap().to_string();
        let port_end = redirect.find("/callback").unwrap();
        let denied = format!(
            "{}/callback?error=access_denied&state={state}",
            &redirect[..port_end]
        );
        let (status, page) = open(t, &denied).await;
        assert_eq!(status, 400);
        assert!(page.contains("access_denied"), "{page}");
    })
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("access_denied"));
    assert!(!home.token_file().exists());
    assert!(!home.config_file().exists());
}

#[tokio::test]
async fn logout_revokes_the_tokens_at_box_and_forgets_them() {
    let t = TestEmu::start().await;
    let home = Home::new();
    login_through_the_browser(&home, &t, &[]).await;
    let refresh = home.tokens()["refresh_token"].as_str().unwrap().to_string();

    let said = home.ok(&["logout"]).await;
    assert!(said.contains("revoked"), "{said}");
    assert!(!home.token_file().exists());
    // The old refresh token no longer works at Box.
    let info = &t.emulator().info;
    let resp = t
        .http
        .post(format!("{}/oauth2/token", t.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    assert!(home.ok(&["logout"]).await.contains("Not logged in"));
    assert!(home.fails(&["whoami"]).await.contains("log in"));
}

#[tokio::test]
async fn jwt_login_verifies_and_records_the_app_and_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("config.json");
    let t = TestEmu::start_with(EmulatorConfig {
        jwt_config: Some(app.clone()),
        ..EmulatorConfig::default()
    })
    .await;
    let home = Home::new();
    let app_arg = app.to_str().unwrap();
    let admin = t.emulator().info.user_id.clone();

    let said = home
        .ok(&[
            "login",
            "--api-url",
            &t.base,
            "--jwt",
            app_arg,
            "--user",
            &admin,
        ])
        .await;
    assert!(
        said.contains("admin@example.com") && said.contains("jwt"),
        "{said}"
    );
    let config = home.config_text();
    assert!(config.contains("auth = \"jwt\""), "{config}");
    assert!(
        config.contains(&format!("jwt_config = \"{app_arg}\"")),
        "{config}"
    );
    assert!(
        config.contains(&format!("user_id = \"{admin}\"")),
        "{config}"
    );
    assert_eq!(
        field(&home.ok(&["whoami"]).await, "login"),
        "admin@example.com"
    );

    // The service account: the subject is replaced, not added to.
    home.ok(&["login", "--jwt", app_arg, "--enterprise"]).await;
    let config = home.config_text();
    assert!(!config.contains("user_id"), "{config}");
    assert!(
        config.contains(&format!(
            "enterprise_id = \"{}\"",
            t.emulator().info.enterprise_id
        )),
        "{config}"
    );
    let me = home.ok(&["whoami"]).await;
    assert_ne!(field(&me, "login"), "admin@example.com", "{me}");
    assert!(home.ok(&["logout"]).await.contains("keeps no tokens"));

    // A login that Box refuses changes nothing.
    let before = home.config_text();
    let err = home
        .fails(&["login", "--jwt", app_arg, "--user", "99999999"])
        .await;
    assert!(err.contains("did not accept"), "{err}");
    assert_eq!(home.config_text(), before);
}

#[tokio::test]
async fn ccg_login_acts_as_the_enterprise_or_a_user() {
    let t = TestEmu::start().await;
    let home = Home::new();
    let info = t.emulator().info.clone();
    let app = app_flags(&t);
    let app: Vec<&str> = app.iter().map(String::as_str).collect();

    let err = home.fails(&[&["login", "--ccg"][..], &app].concat()).await;
    assert!(
        err.contains("--user ID") && err.contains("--enterprise ID"),
        "{err}"
    );

    home.ok(&[
        &["login", "--ccg", "--enterprise", &info.enterprise_id][..],
        &app,
    ]
    .concat())
        .await;
    let config = home.config_text();
    assert!(config.contains("auth = \"ccg\""), "{config}");
    let me = home.ok(&["whoami"]).await;
    assert_ne!(field(&me, "login"), "admin@example.com", "{me}");

    home.ok(&["login", "--ccg", "--user", &info.user_id]).await;
    assert_eq!(
        field(&home.ok(&["whoami"]).await, "login"),
        "admin@example.com"
    );

    let err = home
        .fails(&[
            "login",
            "--ccg",
            "--client-secret",
            "wrong",
            "--user",
            &info.user_id,
        ])
        .await;
    assert!(err.contains("invalid_client"), "{err}");
}

#[tokio::test]
async fn a_login_with_ca_cert_records_it_and_token_requests_trust_it() {
    let t = TestEmu::start_https().await;
    let ca = t.ca_file.clone().expect("the emulator's CA");
    let ca = ca.to_str().unwrap();
    let home = Home::new();
    let info = t.emulator().info.clone();
    let ccg = [
        "login",
        "--ccg",
        "--api-url",
        &t.base,
        "--client-id",
        &info.client_id,
        "--client-secret",
        &info.client_secret,
        "--enterprise",
        &info.enterprise_id,
    ];
    // Without the CA the token request is refused, in one line that names the fix.
    let err = home.fails(&ccg).await;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach {}: its TLS certificate is not signed",
            t.base
        )) && err.contains("--ca-cert FILE"),
        "{err}"
    );
    assert!(!home.config_file().exists(), "nothing recorded");

    home.ok(&[&ccg[..], &["--ca-cert", ca]].concat()).await;
    let config = home.config_text();
    assert!(config.contains(&format!("ca_cert = \"{ca}\"")), "{config}");
    // Later commands trust it from the profile.
    home.ok(&["whoami"]).await;
    let shown = home.ok(&["config", "show"]).await;
    assert!(
        shown
            .lines()
            .any(|l| l.contains("ca_cert") && l.contains(ca)),
        "{shown}"
    );
}

#[tokio::test]
async fn token_login_keeps_the_token_in_the_store() {
    let t = TestEmu::start().await;
    let home = Home::new();
    let err = home
        .fails(&["login", "--api-url", &t.base, "--token", "not-a-token"])
        .await;
    assert!(err.contains("did not accept"), "{err}");
    assert!(!home.token_file().exists());

    home.ok(&["login", "--api-url", &t.base, "--token", &t.token])
        .await;
    assert_eq!(home.tokens()["access_token"], t.token.as_str());
    assert_eq!(mode(&home.token_file()), 0o600);
    assert!(
        !home.config_text().contains(&t.token),
        "the token stays out of the config"
    );
    assert_eq!(
        field(&home.ok(&["whoami"]).await, "login"),
        "admin@example.com"
    );
    let said = home.ok(&["logout"]).await;
    assert!(said.contains("cannot be revoked"), "{said}");
    assert!(!home.token_file().exists());
}

#[tokio::test]
async fn a_redis_store_shares_one_login_between_machines() {
    let redis = RedisServer::start();
    let spec = redis.url("cli:tokens");
    let t = TestEmu::start().await;
    let first = Home::new();
    login_through_the_browser(&first, &t, &["--token-store", &spec]).await;
    assert!(!first.token_file().exists(), "the tokens went to Redis");

    // Another machine with the same configuration uses the same tokens, no login needed.
    let second = Home::new();
    second.write_config(&first.config_text());
    assert_eq!(
        field(&second.ok(&["whoami"]).await, "login"),
        "admin@example.com"
    );
    let shown = second.ok(&["config", "show"]).await;
    assert!(
        shown.contains(&format!("127.0.0.1:{}", redis.port)),
        "{shown}"
    );

    second.ok(&["logout"]).await;
    assert!(first.fails(&["whoami"]).await.contains("log in"));
}

#[tokio::test]
async fn a_command_store_runs_the_program_for_the_token() {
    let t = TestEmu::start().await;
    let home = Home::new();
    let script = home.path("print-token");
    std::fs::write(&script, format!("#!/bin/sh\necho {}\n", t.token)).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let spec = format!("command:{}", script.display());

    home.ok(&["login", "--api-url", &t.base, "--token-store", &spec])
        .await;
    let config = home.config_text();
    assert!(config.contains("auth = \"command\""), "{config}");
    assert!(config.contains(&spec), "{config}");
    assert_eq!(
        field(&home.ok(&["whoami"]).await, "login"),
        "admin@example.com"
    );

    let failing = format!("command:{}", home.path("missing").display());
    let err = home
        .fails(&["login", "--api-url", &t.base, "--token-store", &failing])
        .await;
    assert!(err.contains("could not be started"), "{err}");
}

#[tokio::test]
async fn flag_beats_environment_beats_profile_beats_file() {
    let t = TestEmu::start().await;
    let home = Home::new();
    let dead = "http://127.0.0.1:9";
    home.write_config(&format!(
        "api_url = \"{dead}/file\"\nuid = 5\ngid = 5\numask = \"077\"\n\
         [profiles.default]\napi_url = \"{dead}/profile\"\nuid = 6\ngid = 6\n\
         [profiles.other]\nuid = 8\n"
    ));
    let show = |env: &'static [(&'static str, &'static str)], args: &'static [&'static str]| {
        let home = &home;
        async move {
            let mut all = vec!["config", "show"];
            all.extend_from_slice(args);
            let out = home.run_with(&all, env).await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let row = |shown: &str, key: &str| -> String {
        shown
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in {shown}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let shown = show(&[("BOXFS_UID", "7")], &["--api-url", "http://flag"]).await;
    assert_eq!(row(&shown, "api_url"), "api_url http://flag command line");
    assert_eq!(row(&shown, "uid"), "uid 7 environment variable BOXFS_UID");
    assert!(
        row(&shown, "gid").starts_with("gid 6 [profiles.default]"),
        "{shown}"
    );
    assert!(row(&shown, "umask").starts_with("umask 077 /"), "{shown}");
    assert_eq!(row(&shown, "root_folder_id"), "root_folder_id 0 default");
    let shown = show(&[("BOXFS_API_URL", "http://env")], &[]).await;
    assert_eq!(
        row(&shown, "api_url"),
        "api_url http://env environment variable BOXFS_API_URL"
    );
    let shown = show(&[("BOXFS_PROFILE", "other")], &[]).await;
    assert!(row(&shown, "api_url").contains("/file"), "{shown}");
    assert!(
        row(&shown, "uid").starts_with("uid 8 [profiles.other]"),
        "{shown}"
    );

    // And what the commands do follows it: the flag's URL wins over the environment's
    // (which is not even an http URL), and without the flag the environment's is used.
    let env = [
        ("BOXFS_API_URL", "ftp://env"),
        ("BOXFS_TOKEN", t.token.as_str()),
    ];
    let out = home.run_with(&["whoami", "--api-url", &t.base], &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = home.run_with(&["whoami"], &env).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("api_url (environment variable BOXFS_API_URL)"),
        "{err}"
    );
}

#[tokio::test]
async fn config_show_masks_secrets() {
    let home = Home::new();
    home.write_config(
        "client_id = \"visible-id\"\nclient_secret = \"hunter2\"\n\
         token_store = \"redis://:redispw@127.0.0.1:6379/0\"\n",
    );
    let out = home
        .run_with(&["config", "show"], &[("BOXFS_TOKEN", "tok-zzz")])
        .await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("visible-id"), "{shown}");
    for secret in ["hunter2", "redispw", "tok-zzz"] {
        assert!(!shown.contains(secret), "{secret} shows in {shown}");
    }
    let help = home.ok(&["login", "--help"]).await;
    assert!(help.contains("BOXFS_CLIENT_SECRET"), "{help}");
}

#[tokio::test]
async fn a_bad_config_is_a_readable_error() {
    let home = Home::new();
    let file = home.config_file();
    let file = file.to_str().unwrap();
    home.write_config("[profiles.default]\ncache_size = \"lots\"\n");
    for args in [
        &["whoami"][..],
        &["config", "show"],
        &["mount", "/nonexistent"],
    ] {
        let err = home.fails(args).await;
        assert!(
            err.contains(&format!("{file}, line 2, key profiles.default.cache_size:")),
            "{args:?}: {err}"
        );
    }
    home.write_config("client_secret = \"hunter2\"\nchache_size = 1\n");
    let err = home.fails(&["config", "show"]).await;
    assert!(
        err.contains("line 2, key chache_size: unknown key"),
        "{err}"
    );
    home.write_config("client_secret = \"hunter2\n");
    let err = home.fails(&["config", "show"]).await;
    assert!(
        err.contains(&format!("{file}, line 1")) && !err.contains("hunter2"),
        "{err}"
    );
    home.write_config("[profiles.work]\n");
    let err = home.fails(&["whoami", "--profile", "play"]).await;
    assert!(
        err.contains("profile 'play'") && err.contains("work"),
        "{err}"
    );
    let err = home
        .fails(&["config", "show", "--config", "/nonexistent.toml"])
        .await;
    assert!(err.contains("/nonexistent.toml does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_needs_no_flags_after_login() {
    let t = TestEmu::start().await;
    t.upload_file("0", "hello.txt", b"hi").await;
    let home = Home::new();
    home.ok(&["login", "--api-url", &t.base, "--token", &t.token])
        .await;
    let mnt = home.path("Box");
    std::fs::create_dir(&mnt).unwrap();
    let mnt_arg = mnt.to_str().unwrap();
    let mut child = home
        .cmd(&["mount", mnt_arg, "--foreground"])
        .env(boxfs::daemon::mount::READY_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("boxfs-mount-ready") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the mount did not become ready");
    let listed = {
        let mnt = mnt.clone();
        tokio::task::spawn_blocking(move || std::fs::read_to_string(mnt.join("hello.txt")))
            .await
            .unwrap()
    };
    home.ok(&["unmount", mnt_arg]).await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the daemon exits")
        .unwrap();
    assert_eq!(listed.unwrap(), "hi");
    assert!(status.success());
}
