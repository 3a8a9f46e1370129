//! `boxfs events` run as a program against the emulator: the events of changes made through
//! the API (human lines and `--json`), `--limit`, a bad position, and `--follow` printing an
//! event made after it started, then exiting 0 on Ctrl-C (SIGINT).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestEmu;
use serde_json::Value;

fn events_cmd(t: &TestEmu, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxfs"));
    cmd.arg("events")
        .args(args)
        .args(["--api-url", &t.base, "--token", &t.token])
        .env("BOXFS_CONFIG", "/dev/null")
        .env_remove("BOXFS_PROFILE")
        .stdin(Stdio::null());
    cmd
}

async fn events(t: &Arc<TestEmu>, args: &[&str]) -> Output {
    let mut cmd = events_cmd(t, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("boxfs runs"))
        .await
        .expect("joined")
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn lists_the_events_of_changes_made_through_the_api() {
    let t = Arc::new(TestEmu::start().await);
    let docs = t.mkdir("0", "Reports").await;
    let file = t.upload_file(&docs, "q3.txt", b"numbers").await;

    let out = events(&t, &[]).await;
    assert!(out.status.success(), "{out:?}");
    let shown = lines(&out);
    assert!(
        shown.iter().any(|l| l.contains("ITEM_CREATE")
            && l.contains(&format!("folder {docs}"))
            && l.contains("/Reports")),
        "{shown:#?}"
    );
    let id = file["id"].as_str().unwrap();
    assert!(
        shown.iter().any(|l| l.contains("ITEM_UPLOAD")
            && l.contains(&format!("file {id}"))
            && l.contains("/Reports/q3.txt")
            && l.contains("by ")),
        "{shown:#?}"
    );

    let out = events(&t, &["--json"]).await;
    assert!(out.status.success());
    let parsed: Vec<Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(parsed
        .iter()
        .any(|v| v["event_type"] == "ITEM_UPLOAD" && v["source"]["id"] == id));

    let out = events(&t, &["--limit", "1"]).await;
    assert!(out.status.success());
    assert_eq!(lines(&out).len(), 1);

    // From now on: nothing yet.
    let out = events(&t, &["--stream-position", "now"]).await;
    assert!(out.status.success());
    assert!(lines(&out).is_empty(), "{:?}", lines(&out));

    let out = events(&t, &["--stream-position", "yesterday"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stream-position"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_an_event_made_after_it_started_and_exits_0_on_ctrl_c() {
    let t = Arc::new(TestEmu::start().await);
    let mut child = events_cmd(&t, &["--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("boxfs events --follow runs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The feed starts at "now" once it runs: keep making changes until one is printed.
    let started = Instant::now();
    let mut made = Vec::new();
    let mut got = None;
    while got.is_none() && started.elapsed() < Duration::from_secs(20) {
        let name = format!("followed-{}", made.len());
        t.mkdir("0", &name).await;
        made.push(name);
        let deadline = Instant::now() + Duration::from_millis(700);
        while Instant::now() < deadline {
            if let Ok(line) = rx.try_recv() {
                got = Some(line);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let line = got.expect("an event was printed while following");
    let v: Value = serde_json::from_str(&line).expect("JSON line");
    assert_eq!(v["event_type"], "ITEM_CREATE");
    let name = v["source"]["name"].as_str().expect("name");
    assert!(made.iter().any(|m| m == name), "{line}");

    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C exits 0");
}
