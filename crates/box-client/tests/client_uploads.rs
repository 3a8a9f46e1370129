//! The client's uploads against the emulator: multipart uploads from memory and from disk
//! (SHA1 sent as Content-MD5), new versions with If-Match, preflight checks, chunked
//! sessions with parallel parts, 202 commits, injected faults, resuming and aborting
//! sessions, and quota and name-clash errors.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use box_client::upload::{ChunkedUploader, UploadOptions, UploadSession};
use box_client::{BoxError, Client, DeveloperToken, Endpoints, RetryPolicy};
use box_emulator::testing::uploads::{sha1_hex, stored_content};
use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use bytes::Bytes;
use reqwest::Method;
use serde_json::{json, Value};

fn client(t: &TestEmu, retry: RetryPolicy) -> Client {
    Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
        box_client::client::http_client(),
        retry,
    )
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        max_total: Duration::from_secs(60),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

/// Pseudo-random bytes (xorshift), different for each seed.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn temp_file(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f.flush().unwrap();
    f
}

/// What the emulator holds for a file: its JSON (sha1, size, etag, name).
async fn file_json(c: &Client, id: &str) -> Value {
    c.json::<Value>(
        c.api(Method::GET, &format!("/files/{id}"))
            .query("fields", "sha1,size,etag,name,content_modified_at"),
    )
    .await
    .unwrap()
}

const MB: usize = 1_000_000;

#[tokio::test]
async fn small_uploads_from_memory_and_disk() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let folder = t.mkdir("0", "Small").await;

    let content = data(100_000, 1);
    let progress = Arc::new(AtomicU64::new(0));
    let opts = UploadOptions {
        content_modified_at: Some("2020-01-02T03:04:05Z".into()),
        progress: Some(progress.clone()),
        fields: vec!["sha1".into(), "size".into(), "name".into(), "parent".into()],
        ..UploadOptions::default()
    };
    let mem = c
        .upload_file(&folder, "mem.bin", content.clone(), &opts)
        .await
        .unwrap();
    assert!(mem.is_file());
    assert_eq!(mem.name, "mem.bin");
    assert_eq!(mem.sha1.as_deref(), Some(sha1_hex(&content).as_str()));
    assert_eq!(mem.size, Some(100_000));
    assert_eq!(mem.parent.as_ref().unwrap().id, folder);
    assert_eq!(progress.load(Ordering::SeqCst), 100_000);
    assert_eq!(&stored_content(&t, &mem.id)[..], &content[..]);
    let held = file_json(&c, &mem.id).await;
    assert!(
        held["content_modified_at"]
            .as_str()
            .unwrap()
            .starts_with("2020-01-02T03:04:05"),
        "{held}"
    );

    // From a file on disk (just under the chunked threshold: still one request).
    let big = data(3 * MB + 17, 2);
    let tmp = temp_file(&big);
    let f = c
        .upload_file(&folder, "disk.bin", tmp.path(), &UploadOptions::default())
        .await
        .unwrap();
    assert_eq!(f.sha1.as_deref(), Some(sha1_hex(&big).as_str()));
    assert_eq!(&stored_content(&t, &f.id)[..], &big[..]);

    // An empty file is a file too.
    let f = c
        .upload_file(&folder, "empty", Vec::new(), &UploadOptions::default())
        .await
        .unwrap();
    assert_eq!(f.size, Some(0));

    // A name clash is a typed 409 naming the file in the way.
    let err = c
        .upload_file(
            &folder,
            "MEM.bin",
            b"x".as_slice(),
            &UploadOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("item_name_in_use"));
    assert_eq!(err.conflict_id().as_deref(), Some(mem.id.as_str()));

    // Bad input never reaches the network.
    for (parent, name) in [("abc", "x"), ("0", ""), ("0", "a/b"), ("0", "..")] {
        let err = c
            .upload_file(parent, name, b"x".as_slice(), &UploadOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, BoxError::Invalid(_)),
            "{parent} {name}: {err}"
        );
    }
    let missing = std::path::Path::new("/nonexistent/boxfs-test");
    let err = c
        .upload_file("0", "x", missing, &UploadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Io(_)), "{err}");
    let err = c
        .upload_file("0", "x", std::env::temp_dir(), &UploadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Io(_)), "{err}");
}

/// A stand-in upload host that records what it receives and answers like Box.
async fn recording_server() -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, Bytes)>>>) {
    let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, Bytes)>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/api/2.0/files/content",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push((headers, body));
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(json!({"total_count": 1, "entries": [{"type": "file", "id": "1"}]})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

#[tokio::test]
async fn multipart_sends_the_sha1_and_the_attributes_first() {
    let (base, seen) = recording_server().await;
    let c = Client::new(
        Arc::new(DeveloperToken::new("t")),
        Endpoints::from_base(&base).unwrap(),
    );
    let content = data(50_000, 3);
    let tmp = temp_file(&content);
    for source in [
        box_client::upload::UploadSource::from(content.clone()),
        tmp.path().into(),
    ] {
        let f = c
            .upload_file("12", "a.bin", source, &UploadOptions::default())
            .await
            .unwrap();
        assert_eq!(f.id, "1");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (headers, body) in seen.iter() {
        assert_eq!(
            headers.get("content-md5").unwrap().to_str().unwrap(),
            sha1_hex(&content)
        );
        let text = String::from_utf8_lossy(body);
        let attrs = text.find("name=\"attributes\"").expect("attributes part");
        let file = text.find("name=\"file\"").expect("file part");
        assert!(attrs < file, "attributes must come first");
        assert!(
            text.contains(r#"{"name":"a.bin","parent":{"id":"12"}}"#),
            "{text:.300}"
        );
        assert!(body.windows(content.len()).any(|w| w == &content[..]));
    }
}

#[tokio::test]
async fn new_versions_with_if_match() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let v1 = c
        .upload_file("0", "doc.txt", b"one".as_slice(), &UploadOptions::default())
        .await
        .unwrap();
    let etag1 = v1.etag.clone().unwrap();
    let v2 = c
        .upload_new_version(
            &v1.id,
            b"two!".as_slice(),
            &UploadOptions {
                if_match: Some(etag1.clone()),
                new_name: Some("doc2.txt".into()),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.id, v1.id);
    assert_eq!(v2.name, "doc2.txt");
    assert_eq!(v2.sha1.as_deref(), Some(sha1_hex(b"two!").as_str()));
    assert_ne!(v2.etag.as_deref(), Some(etag1.as_str()));
    assert_eq!(&stored_content(&t, &v1.id)[..], b"two!");

    // The old etag is stale now: 412, and the content stays.
    let err = c
        .upload_new_version(
            &v1.id,
            b"three".as_slice(),
            &UploadOptions {
                if_match: Some(etag1),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    assert_eq!(err.code(), Some("precondition_failed"));
    assert_eq!(&stored_content(&t, &v1.id)[..], b"two!");

    // Without If-Match it goes through; a missing file is a 404.
    let v3 = c
        .upload_new_version(&v1.id, b"three".as_slice(), &UploadOptions::default())
        .await
        .unwrap();
    assert_eq!(v3.sha1.as_deref(), Some(sha1_hex(b"three").as_str()));
    let err = c
        .upload_new_version("987654", b"x".as_slice(), &UploadOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn preflight_checks() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let folder = t.mkdir("0", "Pre").await;
    let ok = c.preflight_check(&folder, "new.txt", 1234).await.unwrap();
    assert!(ok.upload_url.is_some());

    let existing = c
        .upload_file(
            &folder,
            "taken.txt",
            b"x".as_slice(),
            &UploadOptions::default(),
        )
        .await
        .unwrap();
    let err = c
        .preflight_check(&folder, "Taken.TXT", 10)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("item_name_in_use"));
    assert_eq!(err.conflict_id().as_deref(), Some(existing.id.as_str()));

    // A folder's name clashes with a file's too.
    t.mkdir(&folder, "sub").await;
    let err = c.preflight_check(&folder, "SUB", 1).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.conflict_id().is_some());

    // Versions: fine for the file itself; a new name that is taken clashes.
    c.preflight_check_version(&existing.id, 5, None)
        .await
        .unwrap();
    let err = c
        .preflight_check_version(&existing.id, 5, Some("sub"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));

    // `preflight: true` stops an upload before any content is sent.
    let err = c
        .upload_file(
            &folder,
            "taken.txt",
            b"y".as_slice(),
            &UploadOptions {
                preflight: true,
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.conflict_id().as_deref(), Some(existing.id.as_str()));
    assert!(c
        .preflight_check("77777", "a", 1)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn chunked_upload_from_a_file_with_parallel_parts_and_a_slow_commit() {
    let t = TestEmu::start().await;
    t.emulator().set_knobs(Knobs {
        commit_retry_polls: 2,
        ..Knobs::default()
    });
    let c = client(&t, RetryPolicy::default());
    let content = data(25 * MB, 4);
    let tmp = temp_file(&content);
    let progress = Arc::new(AtomicU64::new(0));
    let sessions = Arc::new(Mutex::new(Vec::<UploadSession>::new()));
    let hook_sessions = sessions.clone();
    let started = Instant::now();
    let f = c
        .upload_file(
            "0",
            "big.bin",
            tmp.path(),
            &UploadOptions {
                progress: Some(progress.clone()),
                content_modified_at: Some("2021-05-06T07:08:09Z".into()),
                on_session: Some(Arc::new(move |s: &UploadSession| {
                    hook_sessions.lock().unwrap().push(s.clone())
                })),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap();
    let want = sha1_hex(&content);
    assert_eq!(f.sha1.as_deref(), Some(want.as_str()));
    assert_eq!(f.size, Some(25 * MB as u64));
    assert_eq!(progress.load(Ordering::SeqCst), 25 * MB as u64);
    // Two 202s with Retry-After: 1 were waited out.
    assert!(started.elapsed() >= Duration::from_secs(2));
    let sessions = sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 1, "one session, announced once");
    assert!(sessions[0].total_parts.unwrap() >= 3);
    // What the emulator holds is exactly the local file.
    let stored = stored_content(&t, &f.id);
    assert_eq!(sha1_hex(&stored), want);
    let held = file_json(&c, &f.id).await;
    assert_eq!(held["sha1"], want);
    assert!(held["content_modified_at"]
        .as_str()
        .unwrap()
        .starts_with("2021-05-06T07:08:09"));
    // The session is gone after the commit.
    assert!(c
        .get_upload_session(&sessions[0].id)
        .await
        .unwrap_err()
        .is_not_found());

    // A chunked new version from memory, with If-Match.
    let v2 = data(21 * MB, 5);
    let f2 = c
        .upload_new_version(
            &f.id,
            v2.clone(),
            &UploadOptions {
                if_match: f.etag.clone(),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f2.sha1.as_deref(), Some(sha1_hex(&v2).as_str()));
    // With a stale etag the commit is refused (412) and the session aborted.
    let sessions = Arc::new(Mutex::new(Vec::<UploadSession>::new()));
    let hook_sessions = sessions.clone();
    let err = c
        .upload_new_version(
            &f.id,
            v2,
            &UploadOptions {
                if_match: f.etag.clone(),
                on_session: Some(Arc::new(move |s: &UploadSession| {
                    hook_sessions.lock().unwrap().push(s.clone())
                })),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    let id = sessions.lock().unwrap()[0].id.clone();
    assert!(c.get_upload_session(&id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn parts_go_up_in_parallel() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let content = data(30 * MB, 6); // 4 parts of 8 MiB
    let tmp = temp_file(&content);
    let session = c
        .create_upload_session("0", "par.bin", content.len() as u64)
        .await
        .unwrap();
    assert_eq!(session.total_parts, Some(4));
    t.emulator().set_knobs(Knobs {
        latency_ms: 700,
        ..Knobs::default()
    });
    let uploader = ChunkedUploader::new(c.clone(), session, tmp.path())
        .await
        .unwrap();
    let started = Instant::now();
    let f = uploader.start().await.unwrap();
    let took = started.elapsed();
    assert_eq!(f.sha1.as_deref(), Some(sha1_hex(&content).as_str()));
    // Four parts one after the other and the commit would take 5 × 0.7 s.
    assert!(took < Duration::from_millis(3000), "took {took:?}");
}

#[tokio::test]
async fn chunked_upload_rides_out_faults() {
    let t = TestEmu::start().await;
    t.emulator().set_knobs(Knobs {
        fault_rate: 0.3,
        fault_path_prefix: "/api/2.0/files/upload_sessions".into(),
        ..Knobs::default()
    });
    let c = client(&t, fast_retries(15));
    let content = data(25 * MB, 7);
    let tmp = temp_file(&content);
    let progress = Arc::new(AtomicU64::new(0));
    let f = c
        .upload_file(
            "0",
            "faulty.bin",
            tmp.path(),
            &UploadOptions {
                progress: Some(progress.clone()),
                concurrency: 3,
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.sha1.as_deref(), Some(sha1_hex(&content).as_str()));
    assert_eq!(sha1_hex(&stored_content(&t, &f.id)), sha1_hex(&content));
    assert_eq!(progress.load(Ordering::SeqCst), content.len() as u64);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_with_the_missing_parts() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let content = data(30 * MB, 8);
    let tmp = temp_file(&content);
    let session = c
        .create_upload_session("0", "resumed.bin", content.len() as u64)
        .await
        .unwrap();
    let total = session.total_parts.unwrap();

    // Interrupted: one part at a time, slowly, dropped after the first part is in.
    t.emulator().set_knobs(Knobs {
        latency_ms: 300,
        ..Knobs::default()
    });
    let progress = Arc::new(AtomicU64::new(0));
    let uploader = ChunkedUploader::new(c.clone(), session.clone(), tmp.path())
        .await
        .unwrap()
        .options(UploadOptions {
            concurrency: 1,
            progress: Some(progress.clone()),
            ..UploadOptions::default()
        });
    let task = tokio::spawn(async move { uploader.start().await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while progress.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no part went up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    t.emulator().set_knobs(Knobs::default());
    let held = c.list_upload_parts(&session).await.unwrap();
    assert!(
        !held.is_empty() && (held.len() as u64) < total,
        "{} of {total} parts held",
        held.len()
    );
    assert_eq!(held[0].offset, 0);

    // Resumed by session id, in a fresh uploader: the missing parts, then the commit.
    let progress = Arc::new(AtomicU64::new(0));
    let f = c
        .resume_upload(
            &session.id,
            tmp.path(),
            &UploadOptions {
                progress: Some(progress.clone()),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.name, "resumed.bin");
    assert_eq!(f.sha1.as_deref(), Some(sha1_hex(&content).as_str()));
    assert_eq!(sha1_hex(&stored_content(&t, &f.id)), sha1_hex(&content));
    assert_eq!(progress.load(Ordering::SeqCst), content.len() as u64);
}

#[tokio::test]
async fn resuming_checks_the_parts_box_holds() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let content = data(21 * MB, 9);
    let tmp = temp_file(&content);
    let session = c
        .create_upload_session("0", "changed.bin", content.len() as u64)
        .await
        .unwrap();
    // Box holds a first part that is not the file's: resuming must notice instead of
    // sending the part again (which Box would refuse with 409) or committing nonsense.
    let part_size = session.part_size as usize;
    let other = Bytes::from(data(part_size, 10));
    let part = c
        .upload_part(&session, 0, content.len() as u64, other)
        .await
        .unwrap();
    assert_eq!((part.offset, part.size), (0, part_size as u64));
    let uploader = ChunkedUploader::new(c.clone(), session.clone(), tmp.path())
        .await
        .unwrap()
        .options(UploadOptions {
            resumable: true,
            ..UploadOptions::default()
        });
    let err = uploader.resume().await.unwrap_err();
    assert!(matches!(err, BoxError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("different part"), "{err}");
    // Box holds another part there: the file's own first part is refused (409).
    let mine = Bytes::copy_from_slice(&content[..part_size]);
    let err = c
        .upload_part(&session, 0, content.len() as u64, mine)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));

    // A part that does not fit is refused before sending.
    let err = c
        .upload_part(
            &session,
            0,
            10,
            Bytes::from_static(b"too long for 10 bytes"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Invalid(_)));
    // A source of another size than the session's does not start.
    let small = temp_file(b"small");
    let uploader = ChunkedUploader::new(c.clone(), session.clone(), small.path())
        .await
        .unwrap();
    assert!(matches!(
        uploader.start().await.unwrap_err(),
        BoxError::Invalid(_)
    ));

    // Abort: the session and its parts are gone.
    uploader.abort().await.unwrap();
    assert!(c
        .get_upload_session(&session.id)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(matches!(
        c.get_upload_session("../etc").await.unwrap_err(),
        BoxError::Invalid(_)
    ));
}

#[tokio::test]
async fn a_failed_upload_aborts_its_session_unless_resumable() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let v1 = c
        .upload_file("0", "f.bin", b"v1".as_slice(), &UploadOptions::default())
        .await
        .unwrap();
    let content = data(21 * MB, 11);
    let tmp = temp_file(&content);
    let sessions = Arc::new(Mutex::new(Vec::<UploadSession>::new()));
    let stale = UploadOptions {
        if_match: Some("stale-etag".into()),
        on_session: Some(Arc::new({
            let s = sessions.clone();
            move |x: &UploadSession| s.lock().unwrap().push(x.clone())
        })),
        ..UploadOptions::default()
    };
    // Every part goes up, then the commit is refused (412): the session is aborted.
    let err = c
        .upload_new_version(&v1.id, tmp.path(), &stale)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    let id = sessions.lock().unwrap()[0].id.clone();
    assert!(c.get_upload_session(&id).await.unwrap_err().is_not_found());

    // Resumable: the session stays, with its parts, for a later try.
    let err = c
        .upload_new_version(
            &v1.id,
            tmp.path(),
            &UploadOptions {
                resumable: true,
                ..stale.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    let session = sessions.lock().unwrap()[1].clone();
    let status = c.upload_session_status(&session).await.unwrap();
    assert_eq!(status.num_parts_processed, session.total_parts);
    let progress = Arc::new(AtomicU64::new(0));
    let f = c
        .resume_upload(
            &session.id,
            tmp.path(),
            &UploadOptions {
                if_match: v1.etag.clone(),
                progress: Some(progress.clone()),
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.id, v1.id);
    assert_eq!(f.sha1.as_deref(), Some(sha1_hex(&content).as_str()));
    assert_eq!(progress.load(Ordering::SeqCst), content.len() as u64);
    assert_eq!(sha1_hex(&stored_content(&t, &f.id)), sha1_hex(&content));
}

#[tokio::test]
async fn quota_exceeded_is_a_typed_error() {
    let t = TestEmu::start_with(EmulatorConfig {
        quota_bytes: 22 * MB as i64,
        ..EmulatorConfig::default()
    })
    .await;
    let c = client(&t, RetryPolicy::default());
    // The admin was created with the small quota: a file that fits, then one that does not.
    c.upload_file("0", "fits.bin", data(2 * MB, 12), &UploadOptions::default())
        .await
        .unwrap();
    let err = c
        .upload_file("0", "big.bin", data(21 * MB, 13), &UploadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert_eq!(err.code(), Some("storage_limit_exceeded"));
    let err = c
        .upload_file(
            "0",
            "big.bin",
            data(21 * MB, 13),
            &UploadOptions {
                chunked_threshold: u64::MAX,
                ..UploadOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("storage_limit_exceeded"), "{err}");
    let err = c
        .preflight_check("0", "big.bin", 21 * MB as u64)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("storage_limit_exceeded"));
    let err = c
        .create_upload_session("0", "big.bin", 21 * MB as u64)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("storage_limit_exceeded"));
}
