//! rclone's Box backend (rclone 1.60 from Debian, a client we did not write) run against the
//! emulator. rclone's Box URLs are fixed (`https://api.box.com/2.0`, `https://upload.box.com`),
//! so it reaches the emulator as an HTTPS proxy that answers for Box's hosts with its own CA
//! (`--https-proxy-ca`). Every JSON response is checked against Box's OpenAPI description.
//! Needs `rclone` on PATH (`.ci/install-deps` installs it).
//!
//! rclone 1.60's Box backend has no change notification (`rclone test changenotify` answers
//! "not supported"), so changes made through the API are checked with a fresh listing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, UNIX_EPOCH};

use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use serde_json::Value;
use sha1::{Digest, Sha1};

/// An emulator with the Box-host proxy on, a request log, and rclone pointed at it.
struct Rig {
    t: TestEmu,
    dir: tempfile::TempDir,
    ca: PathBuf,
    log: PathBuf,
}

fn rclone_available() {
    let ok = std::process::Command::new("rclone")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "rclone is not installed: run `bash .ci/install-deps` once (it installs Debian's rclone){}",
        if std::env::var_os("CI").is_some() {
            "; CI must run .ci/install-deps before the tests"
        } else {
            ""
        }
    );
}

impl Rig {
    async fn start() -> Rig {
        rclone_available();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let log = dir.path().join("requests.jsonl");
        let t = TestEmu::start_with(EmulatorConfig {
            https_proxy_ca: Some(ca.clone()),
            request_log: Some(log.clone()),
            ..Default::default()
        })
        .await;
        Rig { t, dir, ca, log }
    }

    /// Runs rclone on the `emu:` remote (the admin's developer token) and returns its output.
    async fn run(&self, args: &[&str]) -> Output {
        let token = serde_json::json!({
            "access_token": self.t.token,
            "token_type": "bearer",
            "expiry": "2099-01-01T00:00:00Z",
        })
        .to_string();
        self.run_with(args, &token, &[]).await
    }

    /// Runs rclone with the given token JSON and extra environment.
    async fn run_with(&self, args: &[&str], token: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = tokio::process::Command::new("rclone");
        cmd.arg("--config")
            .arg("/dev/null")
            .arg("--ca-cert")
            .arg(&self.ca)
            .args(args)
            .env("HTTPS_PROXY", &self.t.base)
            .env_remove("https_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("RCLONE_CONFIG_EMU_TYPE", "box")
            .env("RCLONE_CONFIG_EMU_TOKEN", token)
            .env("RCLONE_CACHE_DIR", self.dir.path().join("rclone-cache"))
            .env("HOME", self.dir.path())
            .envs(env.iter().copied())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("rclone {args:?} finished within 120 s"))
            .expect("rclone runs")
    }

    /// Runs rclone and fails the test unless it succeeds; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("$ rclone {}\n{stdout}{stderr}", args.join(" "));
        assert!(
            out.status.success(),
            "rclone {args:?} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        stdout
    }

    /// Requests the emulator served so far (its request log).
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// No retries at all: a failed request is an emulator bug, not something to paper over.
const STRICT: [&str; 4] = ["--retries", "1", "--low-level-retries", "1"];

/// Runs rclone without retries and fails the test unless it succeeds; returns stdout.
async fn strict(rig: &Rig, args: &[&str]) -> String {
    let args: Vec<&str> = args.iter().chain(STRICT.iter()).copied().collect();
    rig.ok(&args).await
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Small local files, nested, with names Box and rclone must both keep.
fn small_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("hello.txt".to_string(), b"hello, box\n".to_vec());
    files.insert("empty.txt".to_string(), Vec::new());
    files.insert(
        "with space é.md".to_string(),
        "# unicode ✓\n".repeat(50).into_bytes(),
    );
    files.insert(
        "sub/nested.bin".to_string(),
        (0..5000u32).map(|i| (i * 7 % 256) as u8).collect(),
    );
    files.insert("sub/deeper/leaf.txt".to_string(), b"leaf".to_vec());
    for (name, data) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
    }
    files
}

fn lsjson_files(out: &str) -> BTreeMap<String, Value> {
    let entries: Vec<Value> = serde_json::from_str(out).expect("lsjson output is JSON");
    entries
        .into_iter()
        .filter(|e| e["IsDir"] == false)
        .map(|e| (e["Path"].as_str().unwrap().to_string(), e))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_list_cat_check_move_delete_purge() {
    let rig = Rig::start().await;
    let local = rig.dir.path().join("local");
    let files = small_tree(&local);
    let local_s = local.to_str().unwrap();

    strict(&rig, &["mkdir", "emu:rc/dst"]).await;
    strict(&rig, &["copy", local_s, "emu:rc/dst"]).await;

    let listed = lsjson_files(&strict(&rig, &["lsjson", "-R", "emu:rc/dst"]).await);
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>(),
        "names"
    );
    for (name, data) in &files {
        let e = &listed[name];
        assert_eq!(e["Size"], data.len() as u64, "size of {name}");
        // rclone sends content_modified_at; Box keeps it to the second.
        let mtime = std::fs::metadata(local.join(name))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let got = chrono::DateTime::parse_from_rfc3339(e["ModTime"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert_eq!(got, mtime, "modification time of {name}: {e}");
    }

    assert_eq!(
        strict(&rig, &["cat", "emu:rc/dst/hello.txt"]).await,
        "hello, box\n"
    );
    // Box's SHA-1s against the local files, then a byte-for-byte comparison.
    strict(&rig, &["check", local_s, "emu:rc/dst"]).await;
    strict(&rig, &["check", "--download", local_s, "emu:rc/dst"]).await;
    let sums = strict(&rig, &["hashsum", "sha1", "emu:rc/dst"]).await;
    for (name, data) in &files {
        assert!(
            sums.contains(&format!("{}  {name}", sha1_hex(data))),
            "sha1 of {name} in:\n{sums}"
        );
    }

    // A second copy changes nothing; a changed file becomes a new version.
    strict(&rig, &["copy", local_s, "emu:rc/dst"]).await;
    std::fs::write(local.join("hello.txt"), b"hello again, box\n").unwrap();
    strict(&rig, &["copy", local_s, "emu:rc/dst"]).await;
    assert_eq!(
        strict(&rig, &["cat", "emu:rc/dst/hello.txt"]).await,
        "hello again, box\n"
    );
    let new_versions = rig
        .requests()
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().unwrap().starts_with("/api/2.0/files/")
                && r["path"].as_str().unwrap().ends_with("/content")
                && r["path"] != "/api/2.0/files/content"
        })
        .count();
    assert_eq!(new_versions, 1, "one new version upload");

    // Rename in place, then move to another folder (server side).
    strict(
        &rig,
        &["moveto", "emu:rc/dst/hello.txt", "emu:rc/dst/renamed.txt"],
    )
    .await;
    strict(
        &rig,
        &["moveto", "emu:rc/dst/renamed.txt", "emu:rc/other/moved.txt"],
    )
    .await;
    assert_eq!(strict(&rig, &["lsf", "emu:rc/other"]).await, "moved.txt\n");
    assert_eq!(
        strict(&rig, &["cat", "emu:rc/other/moved.txt"]).await,
        "hello again, box\n"
    );
    // Server-side copy and a directory move.
    strict(
        &rig,
        &["copyto", "emu:rc/other/moved.txt", "emu:rc/other/copy.txt"],
    )
    .await;
    strict(&rig, &["moveto", "emu:rc/dst/sub", "emu:rc/other/sub"]).await;
    assert_eq!(
        strict(&rig, &["lsf", "-R", "emu:rc/other"]).await,
        "copy.txt\nmoved.txt\nsub/\nsub/deeper/\nsub/nested.bin\nsub/deeper/leaf.txt\n"
    );

    strict(&rig, &["deletefile", "emu:rc/dst/empty.txt"]).await;
    assert_eq!(
        strict(&rig, &["lsf", "emu:rc/dst"]).await,
        "with space é.md\n"
    );
    strict(&rig, &["purge", "emu:rc/dst"]).await;
    assert_eq!(strict(&rig, &["lsf", "emu:rc"]).await, "other/\n");
    let out = rig
        .run(&[
            "lsf",
            "emu:rc/dst",
            "--retries",
            "1",
            "--low-level-retries",
            "1",
        ])
        .await;
    assert!(!out.status.success(), "a purged folder is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_large_file_goes_through_an_upload_session_with_commit_retries() {
    let rig = Rig::start().await;
    // Above rclone's 50 MiB upload cutoff: rclone creates an upload session, sends the
    // parts, and commits; each commit first answers 202 with Retry-After.
    let size = 60 * 1000 * 1000 + 4321;
    let mut data = Vec::with_capacity(size);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    let local = rig.dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    let want_sha1 = sha1_hex(&data);
    drop(data);
    rig.t.emulator().set_knobs(Knobs {
        commit_retry_polls: 1,
        ..Default::default()
    });

    strict(
        &rig,
        &["copyto", local.to_str().unwrap(), "emu:big/big.bin", "-v"],
    )
    .await;

    let reqs = rig.requests();
    let paths: Vec<(String, String, u64)> = reqs
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        paths
            .iter()
            .any(|(m, p, s)| m == "POST" && p == "/api/2.0/files/upload_sessions" && *s == 201),
        "an upload session was created: {paths:?}"
    );
    let parts = paths
        .iter()
        .filter(|(m, p, s)| {
            m == "PUT" && p.starts_with("/api/2.0/files/upload_sessions/") && *s == 200
        })
        .count();
    assert!(parts >= 2, "several parts were sent: {paths:?}");
    let commits: Vec<u64> = paths
        .iter()
        .filter(|(m, p, _)| m == "POST" && p.ends_with("/commit"))
        .map(|(_, _, s)| *s)
        .collect();
    assert_eq!(commits, vec![202, 201], "commit answered 202 then 201");

    let listed = lsjson_files(&strict(&rig, &["lsjson", "emu:big"]).await);
    assert_eq!(listed["big.bin"]["Size"], size as u64);
    let sums = strict(&rig, &["hashsum", "sha1", "emu:big/big.bin"]).await;
    assert_eq!(sums, format!("{want_sha1}  big.bin\n"));
    strict(
        &rig,
        &[
            "check",
            "--download",
            rig.dir.path().to_str().unwrap(),
            "emu:big",
            "--include",
            "big.bin",
        ],
    )
    .await;

    // A changed big file becomes a new version through a session on the file itself.
    let mut data = std::fs::read(&local).unwrap();
    data[size / 2] ^= 0xff;
    std::fs::write(&local, &data).unwrap();
    let want_sha1 = sha1_hex(&data);
    drop(data);
    strict(
        &rig,
        &["copyto", local.to_str().unwrap(), "emu:big/big.bin"],
    )
    .await;
    let file_sessions: Vec<u64> = rig
        .requests()
        .iter()
        .filter(|r| {
            let p = r["path"].as_str().unwrap();
            r["method"] == "POST"
                && p.starts_with("/api/2.0/files/")
                && p.ends_with("/upload_sessions")
                && p != "/api/2.0/files/upload_sessions"
        })
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(file_sessions, vec![201], "one new-version session");
    let sums = strict(&rig, &["hashsum", "sha1", "emu:big"]).await;
    assert_eq!(
        sums,
        format!("{want_sha1}  big.bin\n"),
        "one file, the new content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_about_and_changes_made_through_the_api() {
    let rig = Rig::start().await;
    let about: Value =
        serde_json::from_str(&strict(&rig, &["about", "--json", "emu:"]).await).unwrap();
    assert!(about["total"].as_u64().unwrap() > 0, "{about}");
    assert_eq!(about["used"], 0, "{about}");
    assert_eq!(
        about["free"].as_u64().unwrap(),
        about["total"].as_u64().unwrap()
    );

    strict(&rig, &["mkdir", "emu:watched"]).await;
    assert_eq!(strict(&rig, &["lsf", "emu:watched"]).await, "");
    // Another client (the test, over the API) changes the folder; rclone sees it.
    let (_, root_items) = rig.t.get("/folders/0/items").await;
    let watched = root_items["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "watched")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    rig.t
        .upload_file(&watched, "from-api.txt", b"made elsewhere")
        .await;
    rig.t.mkdir(&watched, "api-folder").await;
    assert_eq!(
        strict(&rig, &["lsf", "emu:watched"]).await,
        "api-folder/\nfrom-api.txt\n"
    );
    assert_eq!(
        strict(&rig, &["cat", "emu:watched/from-api.txt"]).await,
        "made elsewhere"
    );
    let about: Value =
        serde_json::from_str(&strict(&rig, &["about", "--json", "emu:"]).await).unwrap();
    assert_eq!(about["used"], 14, "{about}");

    // rclone 1.60's Box backend cannot watch for changes at all.
    let out = rig
        .run(&["test", "changenotify", "emu:", "--poll-interval", "1s"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not supported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_retries_through_injected_faults() {
    let rig = Rig::start().await;
    let local = rig.dir.path().join("many");
    let mut files = BTreeMap::new();
    for i in 0..20 {
        let data = format!("file number {i}\n").repeat(i + 1).into_bytes();
        std::fs::create_dir_all(&local).unwrap();
        std::fs::write(local.join(format!("f{i:02}.txt")), &data).unwrap();
        files.insert(format!("f{i:02}.txt"), data);
    }
    strict(&rig, &["mkdir", "emu:faulty"]).await;
    // 500s, 503s and 429s with Retry-After, and dropped connections, on ~10% of requests.
    rig.t.emulator().set_knobs(Knobs {
        fault_rate: 0.1,
        ..Default::default()
    });
    let local_s = local.to_str().unwrap();
    let before = rig.requests().len();
    rig.ok(&["copy", local_s, "emu:faulty", "--retries", "5"])
        .await;
    let mut round = 0;
    loop {
        let out = rig.ok(&["lsjson", "emu:faulty", "--retries", "5"]).await;
        let listed = lsjson_files(&out);
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>()
        );
        rig.ok(&["check", local_s, "emu:faulty", "--retries", "5"])
            .await;
        let faults = rig.requests()[before..]
            .iter()
            .filter(|r| matches!(r["status"].as_u64(), Some(429 | 500 | 503)))
            .count();
        round += 1;
        if faults > 0 {
            println!("{faults} injected fault(s) were retried by rclone");
            break;
        }
        assert!(round < 20, "no fault was injected in {round} rounds");
    }
    rig.t.emulator().set_knobs(Knobs::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_links_touch_ranges_rmdir_and_trash_cleanup() {
    let rig = Rig::start().await;
    let local = rig.dir.path().join("few");
    std::fs::create_dir_all(local.join("keep")).unwrap();
    std::fs::write(local.join("abc.txt"), b"0123456789abcdef").unwrap();
    std::fs::write(local.join("keep/k.txt"), b"k").unwrap();
    strict(&rig, &["copy", local.to_str().unwrap(), "emu:x"]).await;

    // Shared links on a file and a folder: PUT with {"shared_link": {}}.
    // rclone reached the emulator by Box's names, so its links are on Box's web host; the
    // same links read through the emulator's own URL are on that URL.
    let link = strict(&rig, &["link", "emu:x/abc.txt"]).await;
    assert!(link.trim().starts_with("https://app.box.com/s/"), "{link}");
    let dir_link = strict(&rig, &["link", "emu:x/keep"]).await;
    assert!(
        dir_link.trim().starts_with("https://app.box.com/s/"),
        "{dir_link}"
    );
    assert_ne!(link, dir_link);
    let (_, items) = rig.t.get("/folders/0/items").await;
    let x = items["entries"][0]["id"].as_str().unwrap().to_string();
    let (_, listing) = rig
        .t
        .get(&format!("/folders/{x}/items?fields=name,shared_link"))
        .await;
    for e in listing["entries"].as_array().unwrap() {
        let url = e["shared_link"]["url"].as_str().unwrap_or_default();
        let want = if e["name"] == "abc.txt" {
            &link
        } else {
            &dir_link
        };
        let own = format!("{}/s/", rig.t.base);
        assert_eq!(
            url.strip_prefix(&own),
            want.trim().strip_prefix("https://app.box.com/s/"),
            "{e}"
        );
        assert!(url.starts_with(&own), "{url}");
    }

    // Ranged reads (Range: bytes=...).
    assert_eq!(
        strict(
            &rig,
            &["cat", "--offset", "10", "--count", "4", "emu:x/abc.txt"]
        )
        .await,
        "abcd"
    );
    assert_eq!(
        strict(&rig, &["cat", "--tail", "3", "emu:x/abc.txt"]).await,
        "def"
    );

    // touch sets content_modified_at.
    strict(
        &rig,
        &["touch", "-t", "2020-01-02T03:04:05", "emu:x/abc.txt"],
    )
    .await;
    let listed = lsjson_files(&strict(&rig, &["lsjson", "emu:x"]).await);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(listed["abc.txt"]["ModTime"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        chrono::DateTime::parse_from_rfc3339("2020-01-02T03:04:05Z")
            .unwrap()
            .timestamp(),
        "{listed:?}"
    );

    // rmdir refuses a folder that is not empty, and removes an empty one.
    let out = rig
        .run(&[
            "rmdir",
            "emu:x/keep",
            "--retries",
            "1",
            "--low-level-retries",
            "1",
        ])
        .await;
    assert!(!out.status.success(), "rmdir of a non-empty folder");
    strict(&rig, &["mkdir", "emu:x/empty"]).await;
    strict(&rig, &["rmdir", "emu:x/empty"]).await;
    assert_eq!(strict(&rig, &["lsf", "emu:x"]).await, "abc.txt\nkeep/\n");

    // Deleted items go to the trash; `cleanup` lists the trash and purges each item.
    strict(&rig, &["deletefile", "emu:x/abc.txt"]).await;
    strict(&rig, &["purge", "emu:x/keep"]).await;
    let (_, trash) = rig.t.get("/folders/trash/items").await;
    // abc.txt, keep/ and the removed empty/.
    assert_eq!(trash["total_count"], 3, "{trash}");
    strict(&rig, &["cleanup", "emu:"]).await;
    let (_, trash) = rig.t.get("/folders/trash/items").await;
    assert_eq!(trash["total_count"], 0, "{trash}");
    assert_eq!(strict(&rig, &["lsf", "-R", "emu:"]).await, "x/\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_refreshes_an_expired_oauth_token() {
    let rig = Rig::start().await;
    let info = rig.t.emulator().info.clone();
    // The browser step of the OAuth code flow, then the code for a token pair.
    let redirect = "http://127.0.0.1:9/callback";
    let resp = rig
        .t
        .http
        .get(format!("{}/api/oauth2/authorize", rig.t.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", info.client_id.as_str()),
            ("redirect_uri", redirect),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let token_url = format!("{}/oauth2/token", rig.t.base);
    let pair: Value = rig
        .t
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    // rclone holds an expired access token: it refreshes it at Box's token URL (through the
    // proxy) before its first call.
    let token = serde_json::json!({
        "access_token": pair["access_token"],
        "refresh_token": refresh,
        "token_type": "bearer",
        "expiry": "2001-01-01T00:00:00Z",
    })
    .to_string();
    let env = [
        ("RCLONE_CONFIG_EMU_CLIENT_ID", info.client_id.as_str()),
        (
            "RCLONE_CONFIG_EMU_CLIENT_SECRET",
            info.client_secret.as_str(),
        ),
    ];
    let mkdir = rig
        .run_with(&["mkdir", "emu:refreshed", "-vv"], &token, &env)
        .await;
    let stderr = String::from_utf8_lossy(&mkdir.stderr);
    assert!(mkdir.status.success(), "{stderr}");
    assert!(stderr.contains("Saved new token"), "{stderr}");
    let refreshes = rig
        .requests()
        .iter()
        .filter(|r| {
            // rclone's Box token URL is https://app.box.com/api/oauth2/token.
            matches!(
                r["path"].as_str(),
                Some("/oauth2/token" | "/api/oauth2/token")
            ) && r["status"] == 200
        })
        .count();
    assert_eq!(
        refreshes,
        2,
        "the code grant and rclone's refresh: {:?}",
        rig.requests()
    );
    assert_eq!(strict(&rig, &["lsf", "emu:"]).await, "refreshed/\n");
    // Box refresh tokens are single use: the one rclone spent is dead.
    let again = rig
        .t
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::BAD_REQUEST);
}
