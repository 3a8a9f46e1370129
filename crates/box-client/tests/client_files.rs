//! The client's file API against the emulator: get, rename, move, content (whole, ranged,
//! through a resolved URL), locks, copies, deletes with If-Match, versions, shared links,
//! the trash, As-User on a collaborated folder, and bad input.
//!
//! A small loopback server stands in front of the emulator for the redirect tests: it
//! records the headers the download URL receives (it must see no Authorization and no
//! As-User) and can answer "not ready yet" (202 + Retry-After) first, as Box does for a
//! fresh upload. It can also misbehave as a download host does: refuse an expired URL,
//! ignore `Range`, answer 429 with `Retry-After`, or break a body off after some bytes, to
//! pin down that the client alone retries and resumes, under its one retry policy.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use box_client::client::Body;
use box_client::files::{ByteRange, DownloadOptions, FileUpdate, LockOptions};
use box_client::folders::{SharedLinkAccess, SharedLinkSettings};
use box_client::{BoxError, Client, DeveloperToken, Endpoints, RetryPolicy};
use box_emulator::testing::TestEmu;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

fn client(t: &TestEmu) -> Client {
    Client::new(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
    )
}

const TEXT: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

async fn upload(t: &TestEmu, parent: &str, name: &str, content: &[u8]) -> String {
    t.upload_file(parent, name, content).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Adds a version to a file straight through the emulator's store.
fn add_version(t: &TestEmu, file_id: &str, content: &'static [u8]) {
    let by: u64 = t.emulator().info.user_id.parse().unwrap();
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    store.add_file_version(
        file_id.parse().unwrap(),
        Bytes::from_static(content),
        by,
        chrono::Utc::now(),
    );
    shared.changed(&store);
}

#[tokio::test]
async fn get_rename_move_and_content() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let docs = c.create_folder("0", "Docs").await.unwrap();
    let id = upload(&t, "0", "alphabet.txt", TEXT).await;

    let f = c.file(&id).await.unwrap();
    assert!(f.is_file());
    assert_eq!(f.name, "alphabet.txt");
    assert_eq!(f.size, Some(TEXT.len() as u64));
    assert!(f.sha1.is_some());
    let partial = c.file_with_fields(&id, &["name", "lock"]).await.unwrap();
    assert!(partial.size.is_none());

    let renamed = c.rename_file(&id, "letters.txt").await.unwrap();
    assert_eq!(renamed.name, "letters.txt");
    // A file moves and renames in one request.
    let moved = c.move_file(&id, &docs.id, Some("abc.txt")).await.unwrap();
    assert_eq!(moved.name, "abc.txt");
    assert_eq!(moved.parent.unwrap().id, docs.id);

    // Content: whole, streamed, ranged.
    let whole = c.download(&id).await.unwrap();
    assert_eq!(whole.content_length(), Some(TEXT.len() as u64));
    assert_eq!(whole.etag(), f.sha1.as_deref());
    assert_eq!(whole.bytes().await.unwrap(), TEXT);
    let mut stream = std::pin::pin!(c.download(&id).await.unwrap().into_stream());
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, TEXT);

    let r = c.download_range(&id, 0..5).await.unwrap();
    assert_eq!(r.total_size(), Some(TEXT.len() as u64));
    assert_eq!(r.content_length(), Some(5));
    assert_eq!(r.bytes().await.unwrap(), &TEXT[..5]);
    let r = c.download_range(&id, 30..).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), &TEXT[30..]);
    let r = c.download_range(&id, 10..=12).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), &b"abc"[..]);
    // Past the end of the file the range is clamped; starting past it is 416.
    let r = c.download_range(&id, 34..100).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), &b"yz"[..]);
    let err = c.download_range(&id, 1000..).await.unwrap_err();
    assert_eq!(err.status(), Some(416), "{err}");
    let err = c.download_range(&id, 5..5).await.unwrap_err();
    assert!(matches!(err, BoxError::Invalid(_)), "{err}");

    // A resolved URL serves parallel ranged reads without the client's token.
    let url = c.download_url(&id, None).await.unwrap();
    assert!(!format!("{url:?}").contains("/dl/"), "{url:?}");
    let (a, b) = tokio::join!(
        c.download_from(&url, Some((0..18).into())),
        c.download_from(&url, Some((18..).into())),
    );
    let mut joined = a.unwrap().bytes().await.unwrap().to_vec();
    joined.extend_from_slice(&b.unwrap().bytes().await.unwrap());
    assert_eq!(joined, TEXT);
    let plain = reqwest::get(url.expose().clone()).await.unwrap();
    assert_eq!(plain.status(), 200, "the URL needs no token");

    // Description.
    let described = c.set_file_description(&id, "the alphabet").await.unwrap();
    assert_eq!(described.description.as_deref(), Some("the alphabet"));
    assert!(matches!(
        c.set_file_description(&id, &"d".repeat(257)).await,
        Err(BoxError::Invalid(_))
    ));
}

#[tokio::test]
async fn locks_keep_others_out_until_unlocked() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let team = c.create_folder("0", "Team").await.unwrap();
    let id = upload(&t, &team.id, "locked.txt", TEXT).await;
    let user = c.create_app_user("Colleague", None).await.unwrap();
    collaborate(&c, &team.id, &user.id).await;
    let other = c.as_user(&user.id);

    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let locked = c
        .lock_file(
            &id,
            &LockOptions {
                expires_at: Some(expires),
                is_download_prevented: true,
            },
        )
        .await
        .unwrap();
    let lock = locked.lock.expect("the answer carries the lock");
    assert!(lock.is_download_prevented);
    assert!(lock.expired_at.is_some());
    assert_eq!(locked.name, "locked.txt", "standard fields come back too");
    assert_eq!(
        c.file_with_fields(&id, &["lock"]).await.unwrap().lock,
        Some(lock)
    );

    // The lock holder still reads and renames; others cannot.
    assert_eq!(c.download(&id).await.unwrap().bytes().await.unwrap(), TEXT);
    let err = other.download(&id).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("access_denied_item_locked"));
    let err = other.rename_file(&id, "mine.txt").await.unwrap_err();
    assert_eq!(err.code(), Some("access_denied_item_locked"));

    let unlocked = c.unlock_file(&id).await.unwrap();
    assert!(unlocked.lock.is_none());
    assert_eq!(
        other.download(&id).await.unwrap().bytes().await.unwrap(),
        TEXT
    );
}

async fn collaborate(c: &Client, folder_id: &str, user_id: &str) {
    let _: Value = c
        .json(c.api(Method::POST, "/collaborations").json(json!({
            "item": {"type": "folder", "id": folder_id},
            "accessible_by": {"type": "user", "id": user_id},
            "role": "editor",
        })))
        .await
        .unwrap();
}

#[tokio::test]
async fn promotes_an_earlier_version() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let id = upload(&t, "0", "draft.txt", b"first").await;
    add_version(&t, &id, b"second, longer");
    let before = c.file(&id).await.unwrap();
    let versions = c.file_versions(&id).await.unwrap();
    assert_eq!(versions.len(), 1);

    let promoted = c.promote_file_version(&id, &versions[0].id).await.unwrap();
    assert_ne!(
        promoted.id, versions[0].id,
        "Box copies it into a new version"
    );
    assert_eq!(promoted.size, Some(5));
    assert_eq!(promoted.sha1, versions[0].sha1);
    let after = c.file(&id).await.unwrap();
    assert_eq!(after.file_version.unwrap().id, promoted.id);
    assert_ne!(after.etag, before.etag);
    assert_eq!(
        c.download(&id).await.unwrap().bytes().await.unwrap(),
        "first"
    );
    // Both earlier versions are kept: the first upload and the one it replaced.
    assert_eq!(c.file_versions(&id).await.unwrap().len(), 2);

    let err = c.promote_file_version(&id, "999999").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = c.promote_file_version(&id, "not-an-id").await.unwrap_err();
    assert!(matches!(err, BoxError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn copies_versions_and_deletes_with_etags() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let id = upload(&t, "0", "report.txt", b"version one").await;
    let first = c.file(&id).await.unwrap();
    add_version(&t, &id, b"version two");
    add_version(&t, &id, b"version three");

    let versions = c.file_versions(&id).await.unwrap();
    assert_eq!(versions.len(), 2, "previous versions only");
    assert_eq!(versions[1].id, first.file_version.as_ref().unwrap().id);
    let old = c
        .download_with(
            &id,
            &DownloadOptions {
                version: Some(versions[1].id.clone()),
                range: Some(ByteRange::from(0..7)),
            },
        )
        .await
        .unwrap();
    assert_eq!(old.bytes().await.unwrap(), "version");
    assert_eq!(
        c.download(&id).await.unwrap().bytes().await.unwrap(),
        "version three"
    );

    let copy = c
        .copy_file(&id, "0", Some("report copy.txt"))
        .await
        .unwrap();
    assert_eq!(copy.name, "report copy.txt");
    assert_eq!(
        c.download(&copy.id).await.unwrap().bytes().await.unwrap(),
        "version three"
    );
    let old_copy = c
        .copy_file_version(&id, Some(&versions[1].id), "0", Some("first draft.txt"))
        .await
        .unwrap();
    assert_eq!(
        c.download(&old_copy.id)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        "version one"
    );
    let err = c.copy_file(&id, "0", None).await.unwrap_err();
    assert_eq!(err.code(), Some("item_name_in_use"));
    assert_eq!(err.conflict_id(), Some(id.clone()));

    // If-Match: a stale etag is 412 and nothing changes; the current one works.
    let stale = first.etag.clone().unwrap();
    let current = c.file(&id).await.unwrap().etag.unwrap();
    assert_ne!(stale, current);
    let err = c.delete_file(&id, Some(&stale)).await.unwrap_err();
    assert_eq!(err.status(), Some(412));
    assert_eq!(err.code(), Some("precondition_failed"));
    let err = c
        .update_file(
            &id,
            &FileUpdate {
                name: Some("never.txt".into()),
                ..FileUpdate::default()
            },
            Some(&stale),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412));
    assert_eq!(c.file(&id).await.unwrap().name, "report.txt");
    c.delete_file(&id, Some(&current)).await.unwrap();
    assert!(c.file(&id).await.unwrap_err().is_not_found());

    // The trash.
    let trashed = c.trashed_file(&id).await.unwrap();
    assert_eq!(trashed.item_status.as_deref(), Some("trashed"));
    let restored = c
        .restore_file(&id, Some("report restored.txt"), None)
        .await
        .unwrap();
    assert_eq!(restored.name, "report restored.txt");
    c.delete_file(&id, None).await.unwrap();
    c.purge_file(&id).await.unwrap();
    assert!(c.trashed_file(&id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn file_shared_links() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let id = upload(&t, "0", "share.txt", TEXT).await;
    assert_eq!(c.file_shared_link(&id).await.unwrap(), None);
    let link = c
        .share_file(
            &id,
            &SharedLinkSettings::new()
                .access(SharedLinkAccess::Open)
                .can_download(true)
                .can_edit(true),
        )
        .await
        .unwrap();
    assert!(link.download_url.is_some(), "files have a download URL");
    assert!(link.permissions.as_ref().unwrap().can_edit);
    assert_eq!(c.file_shared_link(&id).await.unwrap(), Some(link));
    c.unshare_file(&id).await.unwrap();
    assert_eq!(c.file_shared_link(&id).await.unwrap(), None);
}

#[tokio::test]
async fn as_user_renames_a_file_in_a_collaborated_folder() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let team = c.create_folder("0", "Team").await.unwrap();
    let id = upload(&t, &team.id, "plan.txt", b"plan").await;
    let user = c.create_app_user("Editor", None).await.unwrap();
    let u = c.as_user(&user.id);

    // No access before the collaboration: Box's 404.
    assert!(u
        .rename_file(&id, "x.txt")
        .await
        .unwrap_err()
        .is_not_found());
    collaborate(&c, &team.id, &user.id).await;
    let renamed = u.rename_file(&id, "plan v2.txt").await.unwrap();
    assert_eq!(renamed.name, "plan v2.txt");
    assert_eq!(renamed.modified_by.unwrap().id, user.id);

    // The user's own file, uploaded as the user (a raw multipart upload).
    let attributes = json!({"name": "own.txt", "parent": {"id": "0"}}).to_string();
    let form = move || {
        reqwest::multipart::Form::new()
            .text("attributes", attributes.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"own".to_vec()).file_name("own.txt"),
            )
    };
    let uploaded: Value = u
        .json(
            u.upload(Method::POST, "/files/content")
                .body(Body::Multipart(Arc::new(form))),
        )
        .await
        .unwrap();
    let own = uploaded["entries"][0]["id"].as_str().unwrap().to_string();
    let renamed = u.rename_file(&own, "own renamed.txt").await.unwrap();
    assert_eq!(renamed.owned_by.unwrap().id, user.id);
    assert!(
        c.file(&own).await.unwrap_err().is_not_found(),
        "the admin has no access to the user's file"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_typed_errors() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let id = upload(&t, "0", "valid.txt", b"v").await;
    let long = "n".repeat(256);
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a\\b",
        "trailing ",
        "bell\u{7}",
        long.as_str(),
    ] {
        let err = c.rename_file(&id, bad).await.unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{bad:?}: {err}");
        let err = c.copy_file(&id, "0", Some(bad)).await.unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{bad:?}: {err}");
    }
    for bad_id in ["", "abc", "1/2", "../3", "9".repeat(30).as_str()] {
        assert!(matches!(c.file(bad_id).await, Err(BoxError::Invalid(_))));
        assert!(matches!(
            c.download(bad_id).await,
            Err(BoxError::Invalid(_))
        ));
        assert!(matches!(
            c.move_file(&id, bad_id, None).await,
            Err(BoxError::Invalid(_))
        ));
        assert!(matches!(
            c.download_url(&id, Some(bad_id)).await,
            Err(BoxError::Invalid(_))
        ));
    }
    let err = c.file("987654321").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
    let err = c.download("987654321").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = c.move_file(&id, "987654321", None).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    // A name taken in the target folder.
    upload(&t, "0", "taken.txt", b"t").await;
    let err = c.rename_file(&id, "TAKEN.txt").await.unwrap_err();
    assert_eq!(err.code(), Some("item_name_in_use"));
}

// ---------------------------------------------------------------------------------------
// The download redirect, observed from the download host's side

#[derive(Default)]
struct Seen {
    /// (Authorization present, As-User present, Range) per request to the download URL.
    downloads: Vec<(bool, bool, Option<String>)>,
    api_authorized: Vec<bool>,
}

struct Front {
    emu: String,
    base: Mutex<String>,
    not_ready: AtomicU32,
    /// Download requests still to be refused with 404, as for an expired URL.
    refuse_dl: AtomicU32,
    /// Serve the whole content whatever the Range header says.
    ignore_range: std::sync::atomic::AtomicBool,
    /// Download requests still to be answered 429 with `Retry-After: 1`.
    rate_limit_dl: AtomicU32,
    /// Download answers still to be broken off after `cut_after` bytes of their body.
    cut_dl: AtomicU32,
    cut_after: AtomicU32,
    /// Once a body was broken off, later answers carry another ETag (another version).
    new_etag_after_cut: std::sync::atomic::AtomicBool,
    was_cut: std::sync::atomic::AtomicBool,
    seen: Mutex<Seen>,
    http: reqwest::Client,
}

/// A server in front of the emulator: API downloads are answered 202 `not_ready` times,
/// then redirected to its own `/dl`, which records the headers and serves the bytes.
async fn front(t: &TestEmu, not_ready: u32) -> Arc<Front> {
    let state = Arc::new(Front {
        emu: t.base.clone(),
        base: Mutex::new(String::new()),
        not_ready: AtomicU32::new(not_ready),
        refuse_dl: AtomicU32::new(0),
        ignore_range: std::sync::atomic::AtomicBool::new(false),
        rate_limit_dl: AtomicU32::new(0),
        cut_dl: AtomicU32::new(0),
        cut_after: AtomicU32::new(0),
        new_etag_after_cut: std::sync::atomic::AtomicBool::new(false),
        was_cut: std::sync::atomic::AtomicBool::new(false),
        seen: Mutex::new(Seen::default()),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    });
    let app = Router::new()
        .route("/2.0/files/{id}/content", get(front_content))
        .route("/dl/{token}", get(front_dl))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *state.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    state
}

async fn front_content(
    State(s): State<Arc<Front>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .api_authorized
        .push(headers.contains_key("authorization"));
    let left = s.not_ready.load(Ordering::SeqCst);
    if left > 0 {
        s.not_ready.store(left - 1, Ordering::SeqCst);
        return (StatusCode::ACCEPTED, [("retry-after", "1")]).into_response();
    }
    let mut rb = s.http.get(format!("{}/2.0/files/{id}/content", s.emu));
    for name in ["authorization", "as-user"] {
        if let Some(v) = headers.get(name) {
            rb = rb.header(name, v.clone());
        }
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().replace(&s.emu, &s.base.lock().unwrap()));
    match location {
        Some(l) => (StatusCode::FOUND, [("location", l)]).into_response(),
        None => StatusCode::from_u16(status).unwrap().into_response(),
    }
}

async fn front_dl(
    State(s): State<Arc<Front>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let range = headers
        .get("range")
        .map(|r| r.to_str().unwrap().to_string());
    s.seen.lock().unwrap().downloads.push((
        headers.contains_key("authorization"),
        headers.contains_key("as-user"),
        range.clone(),
    ));
    let refuse = s.refuse_dl.load(Ordering::SeqCst);
    if refuse > 0 {
        s.refuse_dl.store(refuse - 1, Ordering::SeqCst);
        return StatusCode::NOT_FOUND.into_response();
    }
    if take_one(&s.rate_limit_dl) {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
    }
    let mut rb = s.http.get(format!("{}/dl/{token}", s.emu));
    if let Some(r) = range
        .as_ref()
        .filter(|_| !s.ignore_range.load(Ordering::SeqCst))
    {
        rb = rb.header("range", r);
    }
    let resp = rb.send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for name in ["content-range", "etag"] {
        if let Some(v) = resp.headers().get(name) {
            out.insert(name, v.to_str().unwrap().parse().unwrap());
        }
    }
    if s.was_cut.load(Ordering::SeqCst) && s.new_etag_after_cut.load(Ordering::SeqCst) {
        out.insert("etag", format!("\"{}\"", "0".repeat(40)).parse().unwrap());
    }
    let body = resp.bytes().await.unwrap();
    if take_one(&s.cut_dl) {
        // The full length announced, part of the body sent, then the connection dropped.
        s.was_cut.store(true, Ordering::SeqCst);
        let head = body.slice(..(s.cut_after.load(Ordering::SeqCst) as usize).min(body.len()));
        out.insert("content-length", body.len().into());
        // The bytes go out before the connection drops: hyper flushes while it waits.
        let chunks = futures_util::stream::once(async move { Ok(head) }).chain(
            futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err::<Bytes, _>(std::io::Error::other("cut"))
            }),
        );
        let cut = axum::body::Body::from_stream(chunks);
        return (status, out, cut).into_response();
    }
    (status, out, body).into_response()
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// An emulator holding `content` as `name` in the root, the server in front of it, and a
/// client that goes through that server: the file's id too.
async fn behind_front(name: &str, content: &[u8]) -> (TestEmu, String, Arc<Front>, Client) {
    let t = TestEmu::start().await;
    let id = upload(&t, "0", name, content).await;
    let f = front(&t, 0).await;
    let c = front_client(&t, &f);
    (t, id, f, c)
}

fn front_client(t: &TestEmu, f: &Front) -> Client {
    Client::new(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&f.base.lock().unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn the_download_url_is_fetched_without_the_token() {
    let (t, id, f, c) = behind_front("secret.txt", TEXT).await;

    assert_eq!(c.download(&id).await.unwrap().bytes().await.unwrap(), TEXT);
    let r = c.download_range(&id, 3..6).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), &b"345"[..]);
    // Acting as a user changes nothing for the download host.
    let admin = t.emulator().info.user_id.clone();
    let as_admin = c.as_user(&admin);
    assert_eq!(
        as_admin.download(&id).await.unwrap().bytes().await.unwrap(),
        TEXT
    );

    let seen = f.seen.lock().unwrap();
    assert!(
        seen.api_authorized.iter().all(|a| *a),
        "the API call is authorized"
    );
    assert_eq!(seen.downloads.len(), 3);
    for (auth, as_user, _) in &seen.downloads {
        assert!(!auth, "Authorization sent to the download URL");
        assert!(!as_user, "As-User sent to the download URL");
    }
    assert_eq!(seen.downloads[1].2.as_deref(), Some("bytes=3-5"));
}

#[tokio::test]
async fn downloads_survive_expired_urls_and_ignored_ranges() {
    let (_t, id, f, c) = behind_front("data.txt", TEXT).await;

    // An expired download URL is resolved again, once.
    f.refuse_dl.store(1, Ordering::SeqCst);
    assert_eq!(c.download(&id).await.unwrap().bytes().await.unwrap(), TEXT);
    assert_eq!(f.seen.lock().unwrap().api_authorized.len(), 2);
    // Twice in a row: the error comes back, typed.
    f.refuse_dl.store(2, Ordering::SeqCst);
    let err = c.download(&id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.to_string().contains("/dl/"), "{err}");
    // A resolved URL that has expired is the caller's to renew.
    let url = c.download_url(&id, None).await.unwrap();
    f.refuse_dl.store(1, Ordering::SeqCst);
    assert_eq!(
        c.download_from(&url, None).await.unwrap_err().status(),
        Some(404)
    );

    // A server that ignores Range and sends everything: still exactly the range.
    f.ignore_range.store(true, Ordering::SeqCst);
    let r = c.download_range(&id, 3..6).await.unwrap();
    assert_eq!(r.content_length(), Some(3));
    assert_eq!(r.bytes().await.unwrap(), &b"345"[..]);
    let r = c.download_range(&id, 30..).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), &TEXT[30..]);
    let r = c.download_range(&id, 30..100).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), &TEXT[30..]);
}

#[tokio::test]
async fn a_file_not_ready_is_waited_for() {
    let t = TestEmu::start().await;
    let id = upload(&t, "0", "fresh.txt", TEXT).await;
    let f = front(&t, 1).await;
    let c = front_client(&t, &f);
    let started = std::time::Instant::now();
    let url = c.download_url(&id, None).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(f.seen.lock().unwrap().api_authorized.len(), 2);
    let body = c
        .download_from(&url, None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body, TEXT);
}

/// Bytes that differ at every offset, so that a misplaced resumption shows.
fn numbered(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn ranges_seen(f: &Front) -> Vec<Option<String>> {
    let mut seen = f.seen.lock().unwrap();
    std::mem::take(&mut seen.downloads)
        .into_iter()
        .map(|(_, _, range)| range)
        .collect()
}

#[tokio::test]
async fn a_body_cut_short_is_resumed_by_the_client_from_the_bytes_received() {
    let data = numbered(200_000);
    let (_t, id, f, c) = behind_front("long.bin", &data).await;
    f.cut_after.store(70_000, Ordering::SeqCst);

    // The whole file: the rest is asked for from byte 70,000.
    f.cut_dl.store(1, Ordering::SeqCst);
    let calls = c.request_stats().calls;
    assert_eq!(c.download(&id).await.unwrap().bytes().await.unwrap(), data);
    assert_eq!(ranges_seen(&f), [None, Some("bytes=70000-".into())]);
    // The API call, the cut GET and the GET of the rest: all through the request layer.
    assert_eq!(c.request_stats().calls - calls, 3);

    // A range, cut twice: each resumption starts where the bytes stopped.
    f.cut_dl.store(2, Ordering::SeqCst);
    let got = c.download_range(&id, 1_000..190_000).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), &data[1_000..190_000]);
    assert_eq!(
        ranges_seen(&f),
        [
            Some("bytes=1000-189999".into()),
            Some("bytes=71000-189999".into()),
            Some("bytes=141000-189999".into()),
        ]
    );

    // A resolved URL resumes from that URL, streamed chunk by chunk.
    let url = c.download_url(&id, None).await.unwrap();
    f.cut_dl.store(1, Ordering::SeqCst);
    let mut stream = std::pin::pin!(c
        .download_from(&url, Some((50_000..).into()))
        .await
        .unwrap()
        .into_stream());
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, &data[50_000..]);
    assert_eq!(
        ranges_seen(&f),
        [Some("bytes=50000-".into()), Some("bytes=120000-".into())]
    );

    // A server that ignores Range for the rest: still exactly the bytes asked for.
    f.ignore_range.store(true, Ordering::SeqCst);
    f.cut_dl.store(1, Ordering::SeqCst);
    let got = c.download_range(&id, 10..150_000).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), &data[10..150_000]);
}

#[tokio::test]
async fn a_cut_body_follows_the_clients_retry_policy() {
    let data = numbered(100_000);
    let (t, id, f, c) = behind_front("policy.bin", &data).await;
    f.cut_after.store(30_000, Ordering::SeqCst);

    // No retries at all: the broken body is the caller's error, typed.
    let strict = Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&f.base.lock().unwrap()).unwrap(),
        box_client::client::http_client(),
        RetryPolicy::none(),
    );
    f.cut_dl.store(1, Ordering::SeqCst);
    let err = strict
        .download(&id)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Network(_)), "{err}");
    assert!(!err.to_string().contains("/dl/"), "{err}");
    assert_eq!(ranges_seen(&f).len(), 1, "nothing asked again");

    // The rest of another version is never spliced onto the first bytes.
    f.was_cut.store(false, Ordering::SeqCst);
    f.new_etag_after_cut.store(true, Ordering::SeqCst);
    f.cut_dl.store(1, Ordering::SeqCst);
    // (`match`, not `unwrap_err`: a failure would print the whole file.)
    let err = match c.download(&id).await.unwrap().bytes().await {
        Ok(_) => panic!("the rest of another version was spliced on"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("changed"), "{err}");
}

#[tokio::test]
async fn a_rate_limited_download_host_is_retried_after_its_retry_after() {
    let (_t, id, f, c) = behind_front("busy.txt", TEXT).await;

    f.rate_limit_dl.store(1, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let got = c.download_range(&id, 4..9).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), &TEXT[4..9]);
    // Retry-After: 1 was honoured (the policy's own first backoff is a quarter second).
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(
        ranges_seen(&f),
        [Some("bytes=4-8".into()), Some("bytes=4-8".into())]
    );
    let stats = c.request_stats();
    assert_eq!(stats.errors.get("429"), Some(&1), "{stats:?}");
    assert_eq!(stats.calls, 3, "the API call and two GETs: {stats:?}");

    // Through a resolved URL too: the same request layer.
    let url = c.download_url(&id, None).await.unwrap();
    f.rate_limit_dl.store(1, Ordering::SeqCst);
    let got = c.download_from(&url, None).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), TEXT);
    assert_eq!(c.request_stats().errors.get("429"), Some(&2));
}
