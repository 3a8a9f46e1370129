//! The event table (`box_emulator::event_table`) row by row over HTTP: each row's action is
//! performed with a real request, and the events recorded since just before it must be the
//! row's event type and nothing else, about the item it acted on, in `all`; in `changes` and
//! `sync` exactly when the row says so; and under the row's enterprise name in `admin_logs`.

use box_emulator::event_table::{Action, EVENT_TABLE};
use box_emulator::testing::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The latest stream position.
fn latest(t: &TestEmu) -> u64 {
    t.emulator().shared.store().next_position
}

async fn ok(rb: reqwest::RequestBuilder, want: StatusCode) -> Value {
    let (status, body) = TestEmu::send(rb).await;
    assert_eq!(status, want, "{body}");
    body
}

fn multipart(attributes: Value, content: &[u8]) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("attributes", attributes.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("f.txt"),
        )
}

/// A fresh file in a fresh folder, for one row.
async fn file(t: &TestEmu, n: usize) -> (String, String) {
    let folder = t.mkdir("0", &format!("row {n}")).await;
    let file = t.upload_file(&folder, "f.txt", b"one").await;
    (folder, file["id"].as_str().unwrap().to_string())
}

/// Sets up what `action` needs, then performs it with one request. Returns the stream
/// position just before that request and the id of the item the event is about.
async fn perform(t: &TestEmu, action: Action, n: usize) -> (u64, String) {
    let put = |path: String, body: Value| t.req(Method::PUT, &t.api(&path)).json(&body);
    match action {
        Action::CreateFolder => {
            let from = latest(t);
            let body = t
                .post_json(
                    "/folders",
                    json!({"name": format!("new {n}"), "parent": {"id": "0"}}),
                )
                .await
                .1;
            (from, body["id"].as_str().unwrap().to_string())
        }
        Action::CreateWebLink => {
            let from = latest(t);
            let (status, body) = t
                .post_json(
                    "/web_links",
                    json!({"url": "https://example.com", "name": format!("link {n}"), "parent": {"id": "0"}}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (from, body["id"].as_str().unwrap().to_string())
        }
        Action::UploadFile => {
            let folder = t.mkdir("0", &format!("row {n}")).await;
            let from = latest(t);
            let form = multipart(json!({"name": "new.txt", "parent": {"id": folder}}), b"x");
            let rb = t
                .req(Method::POST, &t.upload("/files/content"))
                .multipart(form);
            let body = ok(rb, StatusCode::CREATED).await;
            (from, body["entries"][0]["id"].as_str().unwrap().to_string())
        }
        Action::UploadVersion => {
            let (_, id) = file(t, n).await;
            let from = latest(t);
            let form = multipart(json!({"name": "f.txt"}), b"two");
            let rb = t
                .req(Method::POST, &t.upload(&format!("/files/{id}/content")))
                .multipart(form);
            ok(rb, StatusCode::OK).await;
            (from, id)
        }
        Action::Rename => {
            let (_, id) = file(t, n).await;
            let from = latest(t);
            ok(
                put(format!("/files/{id}"), json!({"name": "g.txt"})),
                StatusCode::OK,
            )
            .await;
            (from, id)
        }
        Action::Move => {
            let (_, id) = file(t, n).await;
            let to = t.mkdir("0", &format!("target {n}")).await;
            let from = latest(t);
            let body = json!({"parent": {"id": to}});
            ok(put(format!("/files/{id}"), body), StatusCode::OK).await;
            (from, id)
        }
        Action::EditInfo => {
            let (folder, _) = file(t, n).await;
            let from = latest(t);
            let body = json!({"description": "quarterly figures"});
            ok(put(format!("/folders/{folder}"), body), StatusCode::OK).await;
            (from, folder)
        }
        Action::Copy => {
            let (folder, id) = file(t, n).await;
            let from = latest(t);
            let rb = t
                .req(Method::POST, &t.api(&format!("/files/{id}/copy")))
                .json(&json!({"parent": {"id": folder}, "name": "copy.txt"}));
            let body = ok(rb, StatusCode::CREATED).await;
            (from, body["id"].as_str().unwrap().to_string())
        }
        Action::Trash => {
            let (_, id) = file(t, n).await;
            let from = latest(t);
            let rb = t.req(Method::DELETE, &t.api(&format!("/files/{id}")));
            ok(rb, StatusCode::NO_CONTENT).await;
            (from, id)
        }
        Action::RestoreFromTrash => {
            let (folder, _) = file(t, n).await;
            let rb = t.req(
                Method::DELETE,
                &t.api(&format!("/folders/{folder}?recursive=true")),
            );
            ok(rb, StatusCode::NO_CONTENT).await;
            let from = latest(t);
            let rb = t
                .req(Method::POST, &t.api(&format!("/folders/{folder}")))
                .json(&json!({}));
            ok(rb, StatusCode::CREATED).await;
            (from, folder)
        }
        Action::PromoteVersion => {
            let (_, id) = file(t, n).await;
            let form = multipart(json!({"name": "f.txt"}), b"two");
            let rb = t
                .req(Method::POST, &t.upload(&format!("/files/{id}/content")))
                .multipart(form);
            ok(rb, StatusCode::OK).await;
            let (_, versions) = t.get(&format!("/files/{id}/versions")).await;
            let old = versions["entries"][0]["id"].as_str().unwrap().to_string();
            let from = latest(t);
            let rb = t
                .req(
                    Method::POST,
                    &t.api(&format!("/files/{id}/versions/current")),
                )
                .json(&json!({"type": "file_version", "id": old}));
            ok(rb, StatusCode::CREATED).await;
            (from, id)
        }
        Action::Download => {
            let (_, id) = file(t, n).await;
            let from = latest(t);
            let rb = t.req(Method::GET, &t.api(&format!("/files/{id}/content")));
            ok(rb, StatusCode::FOUND).await;
            (from, id)
        }
        Action::Lock => {
            let (_, id) = file(t, n).await;
            let from = latest(t);
            let body = json!({"lock": {"access": "lock"}});
            ok(put(format!("/files/{id}"), body), StatusCode::OK).await;
            (from, id)
        }
        Action::Unlock => {
            let (_, id) = file(t, n).await;
            let body = json!({"lock": {"access": "lock"}});
            ok(put(format!("/files/{id}"), body), StatusCode::OK).await;
            let from = latest(t);
            ok(
                put(format!("/files/{id}"), json!({"lock": null})),
                StatusCode::OK,
            )
            .await;
            (from, id)
        }
        Action::CreateSharedLink => {
            let (_, id) = file(t, n).await;
            let from = latest(t);
            let body = json!({"shared_link": {"access": "open"}});
            ok(put(format!("/files/{id}"), body), StatusCode::OK).await;
            (from, id)
        }
        Action::UpdateSharedLink => {
            let (folder, _) = file(t, n).await;
            let body = json!({"shared_link": {"access": "open"}});
            ok(put(format!("/folders/{folder}"), body), StatusCode::OK).await;
            let from = latest(t);
            let body = json!({"shared_link": {"access": "company"}});
            ok(put(format!("/folders/{folder}"), body), StatusCode::OK).await;
            (from, folder)
        }
        Action::RemoveSharedLink => {
            let (_, id) = file(t, n).await;
            let body = json!({"shared_link": {"access": "open"}});
            ok(put(format!("/files/{id}"), body), StatusCode::OK).await;
            let from = latest(t);
            let body = json!({"shared_link": null});
            ok(put(format!("/files/{id}"), body), StatusCode::OK).await;
            (from, id)
        }
        Action::AddCollaborator | Action::ChangeCollaboratorRole | Action::RemoveCollaborator => {
            let (folder, _) = file(t, n).await;
            let login = format!("colleague{n}@example.com");
            let (status, user) = t
                .post_json("/users", json!({"name": "Colleague", "login": login}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{user}");
            let body = json!({
                "item": {"type": "folder", "id": folder},
                "accessible_by": {"type": "user", "login": login},
                "role": "editor",
            });
            let rb = t.req(Method::POST, &t.api("/collaborations")).json(&body);
            if action == Action::AddCollaborator {
                let from = latest(t);
                ok(rb, StatusCode::CREATED).await;
                return (from, folder);
            }
            let collab = ok(rb, StatusCode::CREATED).await;
            let path = format!("/collaborations/{}", collab["id"].as_str().unwrap());
            let from = latest(t);
            if action == Action::ChangeCollaboratorRole {
                ok(put(path, json!({"role": "viewer"})), StatusCode::OK).await;
            } else {
                let rb = t.req(Method::DELETE, &t.api(&path));
                ok(rb, StatusCode::NO_CONTENT).await;
            }
            (from, folder)
        }
        Action::CreateMetadata | Action::UpdateMetadata | Action::DeleteMetadata => {
            let (_, id) = file(t, n).await;
            let path = format!("/files/{id}/metadata/global/properties");
            let create = t.req(Method::POST, &t.api(&path)).json(&json!({"k": "v"}));
            if action == Action::CreateMetadata {
                let from = latest(t);
                ok(create, StatusCode::CREATED).await;
                return (from, id);
            }
            ok(create, StatusCode::CREATED).await;
            let from = latest(t);
            if action == Action::UpdateMetadata {
                let ops = json!([{"op": "replace", "path": "/k", "value": "w"}]);
                let rb = t
                    .req(Method::PUT, &t.api(&path))
                    .header("Content-Type", "application/json-patch+json")
                    .body(ops.to_string());
                ok(rb, StatusCode::OK).await;
            } else {
                let rb = t.req(Method::DELETE, &t.api(&path));
                ok(rb, StatusCode::NO_CONTENT).await;
            }
            (from, id)
        }
    }
}

/// The event types of a stream after `from`, each with the id its source names.
async fn stream(t: &TestEmu, stream_type: &str, from: u64) -> Vec<(String, String)> {
    let (status, page) = t
        .get(&format!(
            "/events?stream_type={stream_type}&stream_position={from}&limit=500"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let id_key = if stream_type.starts_with("admin_logs") {
        "item_id"
    } else {
        "id"
    };
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["source"][id_key].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_row_is_produced_by_its_action_in_the_streams_it_names() {
    let t = TestEmu::start().await;
    let mut checked = 0;
    for (n, row) in EVENT_TABLE.iter().enumerate() {
        let (from, item) = perform(&t, row.action, n).await;
        let what = format!("{:?} ({})", row.action, row.call);

        let all = stream(&t, "all", from).await;
        assert_eq!(
            all,
            [(row.event_type.to_string(), item.clone())],
            "{what}: the `all` stream"
        );
        for narrow in ["changes", "sync"] {
            let got = stream(&t, narrow, from).await;
            let want: Vec<(String, String)> = if row.in_changes {
                all.clone()
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "{what}: the `{narrow}` stream");
        }
        let admin = stream(&t, "admin_logs", from).await;
        assert_eq!(
            admin,
            [(row.enterprise_type.to_string(), item.clone())],
            "{what}: the `admin_logs` stream"
        );
        checked += 1;
    }
    assert_eq!(checked, Action::ALL.len(), "every row was performed");
}

/// A rename and a move in one update are both reported, for folders as for files.
#[tokio::test]
async fn a_rename_and_move_in_one_call_reports_both() {
    let t = TestEmu::start().await;
    let a = t.mkdir("0", "a").await;
    let b = t.mkdir("0", "b").await;
    let folder = t.mkdir(&a, "inner").await;
    let file = t.upload_file(&a, "f.txt", b"x").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, name) in [
        (format!("/folders/{folder}"), "moved folder"),
        (format!("/files/{file}"), "moved.txt"),
    ] {
        let from = latest(&t);
        let (status, body) = t
            .put_json(&path, json!({"name": name, "parent": {"id": b}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let types: Vec<String> = stream(&t, "all", from)
            .await
            .into_iter()
            .map(|(kind, _)| kind)
            .collect();
        assert_eq!(types, ["ITEM_RENAME", "ITEM_MOVE"], "{path}");
    }
}
