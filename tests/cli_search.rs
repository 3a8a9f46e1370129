//! `boxfs search` run as a program against the emulator: hits printed as Box paths, a miss
//! (exit 1), `--type`, `--in` (a Box path and a directory of a mount), a metadata filter with
//! a range, results printed as paths inside a running mount, and bad input (exit 2 with a
//! message).

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use box_client::metadata::{FieldType, ItemRef, NewTemplate, TemplateField};
use box_client::RetryPolicy;
use common::mount::TestMount;
use common::TestEmu;
use serde_json::json;

async fn search(t: &TestEmu, args: &[&str]) -> Output {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_boxfs"))
        .arg("search")
        .args(args)
        .args(["--api-url", &t.base, "--token", &t.token])
        .env("BOXFS_CONFIG", "/dev/null")
        .env_remove("BOXFS_PROFILE")
        .stdin(Stdio::null())
        .output();
    tokio::time::timeout(Duration::from_secs(60), cmd)
        .await
        .expect("boxfs search finishes")
        .expect("boxfs runs")
}

/// The printed lines, sorted, and the exit status.
async fn lines(t: &TestEmu, args: &[&str]) -> (Vec<String>, i32) {
    let out = search(t, args).await;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    (lines, out.status.code().unwrap_or(-1))
}

/// /Documents/notes.txt, /Documents/Work/plan.txt, /notes-top.txt, folder /Documents/Work.
async fn tree(t: &TestEmu) -> (String, String) {
    let docs = t.mkdir("0", "Documents").await;
    let work = t.mkdir(&docs, "Work").await;
    t.upload_file(&docs, "notes.txt", b"notes").await;
    t.upload_file(&work, "plan.txt", b"plan").await;
    t.upload_file("0", "notes-top.txt", b"top").await;
    (docs, work)
}

#[tokio::test]
async fn hits_misses_type_and_folder() {
    let t = TestEmu::start().await;
    tree(&t).await;

    let (found, code) = lines(&t, &["notes"]).await;
    assert_eq!(code, 0);
    assert_eq!(found, ["/Documents/notes.txt", "/notes-top.txt"]);

    let (found, code) = lines(&t, &["nothing-like-this"]).await;
    assert_eq!((found.len(), code), (0, 1));

    let (found, code) = lines(&t, &["Work", "--type", "folder"]).await;
    assert_eq!((found, code), (vec!["/Documents/Work".to_string()], 0));
    let (found, code) = lines(&t, &["Work", "--type", "file"]).await;
    assert_eq!((found.len(), code), (0, 1));

    let (found, code) = lines(&t, &["notes", "--in", "/documents"]).await;
    assert_eq!((found, code), (vec!["/Documents/notes.txt".to_string()], 0));
    let (found, code) = lines(&t, &["plan", "--in", "/Documents/Work"]).await;
    assert_eq!(
        (found, code),
        (vec!["/Documents/Work/plan.txt".to_string()], 0)
    );

    let (found, code) = lines(&t, &["notes", "--limit", "1"]).await;
    assert_eq!((found.len(), code), (1, 0));
}

#[tokio::test]
async fn metadata_filters() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    c.create_metadata_template(
        &NewTemplate::new("contract", "Contract")
            .field(
                TemplateField::new(FieldType::Enum, "status", "Status")
                    .options(["active", "closed"]),
            )
            .field(TemplateField::new(FieldType::Float, "amount", "Amount")),
    )
    .await
    .unwrap();
    for (name, status, amount) in [
        ("a.txt", "active", 100.0),
        ("b.txt", "active", 5000.0),
        ("c.txt", "closed", 250.0),
    ] {
        let id = t.upload_file("0", name, b"c").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let values = json!({"status": status, "amount": amount});
        c.create_metadata(
            &ItemRef::file(&id),
            "enterprise",
            "contract",
            values.as_object().unwrap(),
        )
        .await
        .unwrap();
    }

    let (found, code) = lines(&t, &["--mdfilter", "enterprise.contract.status=active"]).await;
    assert_eq!((found, code), (vec!["/a.txt".into(), "/b.txt".into()], 0));
    let (found, code) = lines(
        &t,
        &[
            "--mdfilter",
            "enterprise.contract.amount>=200",
            "--mdfilter",
            "enterprise.contract.amount<=1000",
        ],
    )
    .await;
    assert_eq!((found, code), (vec!["/c.txt".to_string()], 0));
    let (found, code) = lines(&t, &["--mdfilter", "enterprise.contract.status=gone"]).await;
    assert_eq!((found.len(), code), (0, 1));
}

#[tokio::test]
async fn bad_input_is_a_readable_error() {
    let t = TestEmu::start().await;
    for args in [
        &["x", "--mdfilter", "status=active"][..],
        &["x", "--mdfilter", "enterprise.contract.status"][..],
        &["x", "--in", "/No/Such/Folder"][..],
        &[][..],
    ] {
        let out = search(&t, args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("boxfs: "), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_paths_inside_a_running_mount() {
    let t = TestEmu::start().await;
    let (docs, _) = tree(&t).await;
    let whole = tokio::task::block_in_place(|| TestMount::start(&t, &[]));
    let (found, code) = lines(&t, &["plan"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        found,
        [whole.path("Documents/Work/plan.txt").display().to_string()]
    );
    // --in takes a directory of the mount.
    let in_dir = whole.path("Documents/Work").display().to_string();
    let (found, code) = lines(&t, &["notes", "--in", &in_dir]).await;
    assert_eq!((found.len(), code), (0, 1));
    let (found, _) = lines(&t, &["plan", "--in", &in_dir]).await;
    assert_eq!(found.len(), 1);
    tokio::task::block_in_place(|| drop(whole));

    // A mount of Documents shows what lies below it; the rest stays a Box path.
    let sub = tokio::task::block_in_place(|| TestMount::start(&t, &["--root-folder-id", &docs]));
    let (found, _) = lines(&t, &["notes"]).await;
    assert_eq!(
        found,
        [
            "/notes-top.txt".to_string(),
            sub.path("notes.txt").display().to_string()
        ]
    );
    tokio::task::block_in_place(|| drop(sub));
}
