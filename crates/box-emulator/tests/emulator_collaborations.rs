//! Collaborations over loopback HTTP: another user reaches a shared folder and what it
//! holds, only the owner manages access, and removing it takes access away.

use box_emulator::testing::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn collaborator_reaches_the_folder_until_removed() {
    let t = TestEmu::start().await;
    let (s, user) = t
        .post_json(
            "/users",
            json!({"name": "Colleague", "login": "colleague@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let uid = user["id"].as_str().unwrap().to_string();
    let shared = t.mkdir("0", "Team").await;
    let as_user = |m: Method, path: &str| t.req(m, &t.api(path)).header("As-User", &uid);

    let (s, _) = TestEmu::send(as_user(Method::GET, &format!("/folders/{shared}"))).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "no access before the collaboration"
    );

    let body = json!({"item": {"type": "folder", "id": shared}, "accessible_by": {"type": "user", "login": "colleague@example.com"}, "role": "editor"});
    let (s, collab) = t.post_json("/collaborations", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{collab}");
    assert_eq!(collab["accessible_by"]["id"], uid.as_str());
    let (s, _) = t.post_json("/collaborations", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "already a collaborator");

    let (s, _) = TestEmu::send(as_user(Method::GET, &format!("/folders/{shared}"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, sub) = TestEmu::send(
        as_user(Method::POST, "/folders")
            .json(&json!({"name": "From colleague", "parent": {"id": shared}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(
        sub["owned_by"]["login"], "admin@example.com",
        "items in a shared folder belong to its owner"
    );

    // The collaborator cannot manage access; bad roles are refused.
    let cid = collab["id"].as_str().unwrap();
    let (s, _) = TestEmu::send(
        as_user(Method::PUT, &format!("/collaborations/{cid}")).json(&json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // An unknown role and a collaboration without grantee or role break Box's
    // description on purpose.
    let (s, _) = t
        .bad_put_json(
            &format!("/collaborations/{cid}"),
            json!({"role": "emperor"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, c) = t
        .put_json(&format!("/collaborations/{cid}"), json!({"role": "viewer"}))
        .await;
    assert_eq!((s, c["role"].as_str()), (StatusCode::OK, Some("viewer")));
    let (_, list) = t.get(&format!("/folders/{shared}/collaborations")).await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);

    let (s, _) = t.delete(&format!("/collaborations/{cid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = TestEmu::send(as_user(Method::GET, &format!("/folders/{shared}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.get(&format!("/collaborations/{cid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t
        .bad_post_json(
            "/collaborations",
            json!({"item": {"type": "folder", "id": shared}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
