//! `boxfs search`, `events` and `whoami` borrowing a running mount's session through its
//! control socket: from inside the mount, with `--mount` or `--in`, and with nothing
//! configured while one mount runs (the quick start). Flags that name a session win, and
//! with no mount and no login the answer is still "not logged in".

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::mount::TestMount;
use common::TestEmu;

/// `boxfs ARGS` with nothing configured, the runtime directory `runtime`, run in `cwd`.
fn boxfs_in(runtime: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boxfs"))
        .args(args)
        .current_dir(cwd)
        .env("BOXFS_CONFIG", "/dev/null")
        .env("XDG_RUNTIME_DIR", runtime)
        .env("XDG_DATA_HOME", runtime.join("data"))
        .env_remove("BOXFS_PROFILE")
        .env_remove("BOXFS_TOKEN")
        .env_remove("BOXFS_API_URL")
        .env_remove("BOXFS_TOKEN_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("boxfs runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_use_the_session_of_a_running_mount() {
    let emu = TestEmu::start().await;
    let docs = emu.mkdir("0", "Missions").await;
    emu.upload_file(&docs, "apollo-11.txt", b"one small step")
        .await;
    let (base, token) = (emu.base.clone(), emu.token.clone());
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        runtime.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let runtime = runtime.path().to_path_buf();

    tokio::task::spawn_blocking(move || {
        let elsewhere = tempfile::tempdir().unwrap();
        // No mount, no login: the answer says so.
        let out = boxfs_in(&runtime, elsewhere.path(), &["search", "apollo"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not logged in"),
            "{out:?}"
        );

        let runtime_env = runtime.to_str().unwrap().to_string();
        let m = TestMount::start_with_env(
            Some(&base),
            &token,
            &[],
            &[("XDG_RUNTIME_DIR", runtime_env.as_str())],
        );

        // The quick start: nothing configured, one mount running, run from anywhere.
        let out = boxfs_in(&runtime, elsewhere.path(), &["search", "apollo"]);
        assert!(out.status.success(), "{out:?}");
        let hit = m.path("Missions/apollo-11.txt");
        assert_eq!(stdout(&out).trim(), hit.to_str().unwrap(), "{out:?}");

        // Run from inside the mount.
        let out = boxfs_in(&runtime, &m.path("Missions"), &["whoami"]);
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains("admin@example.com"), "{out:?}");

        // Named with --mount, and with search's --in.
        let out = boxfs_in(
            &runtime,
            elsewhere.path(),
            &[
                "events",
                "--mount",
                m.root.to_str().unwrap(),
                "--json",
                "--limit",
                "1",
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let event: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().next().unwrap_or("")).expect("an event");
        assert_eq!(event["event_type"], "ITEM_CREATE", "{event}");
        let out = boxfs_in(
            &runtime,
            elsewhere.path(),
            &[
                "search",
                "apollo",
                "--in",
                m.path("Missions").to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out).trim(), hit.to_str().unwrap());

        // A path no mount holds is refused clearly.
        let out = boxfs_in(
            &runtime,
            elsewhere.path(),
            &["whoami", "--mount", elsewhere.path().to_str().unwrap()],
        );
        assert!(!out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no running boxfs mount"),
            "{out:?}"
        );

        // A session named on the command line wins, even inside the mount.
        let out = boxfs_in(
            &runtime,
            &m.path("Missions"),
            &["whoami", "--api-url", &base, "--token", "not-a-token"],
        );
        assert!(
            !out.status.success(),
            "a named session must not borrow: {out:?}"
        );
        drop(m);
    })
    .await
    .unwrap();
}
