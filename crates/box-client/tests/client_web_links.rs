//! The client's web link API against the emulator: create (with and without a name), read
//! with `fields`, update (rename, move, URL, description), delete, the trash (inspect,
//! restore, purge), web links in folder listings and the trash as items with their URL,
//! search by type, Box's refusals as typed errors, and bad input refused before the
//! network.

use box_client::folders::ListOptions;
use box_client::search::{ItemType, SearchQuery};
use box_client::web_links::WebLinkUpdate;
use box_client::{BoxError, RetryPolicy};
use box_emulator::testing::TestEmu;
use futures_util::TryStreamExt;

#[tokio::test]
async fn create_read_update_and_delete() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let docs = c.create_folder("0", "Docs").await.unwrap();
    let archive = c.create_folder("0", "Archive").await.unwrap();

    let link = c
        .create_web_link(
            &docs.id,
            "https://example.com/manual",
            Some("Manual"),
            Some("the product manual"),
        )
        .await
        .unwrap();
    assert_eq!(link.name, "Manual");
    assert_eq!(link.url, "https://example.com/manual");
    assert_eq!(link.description.as_deref(), Some("the product manual"));
    assert_eq!(link.parent.as_ref().unwrap().id, docs.id);
    assert_eq!(link.item_status.as_deref(), Some("active"));
    assert!(link.shared_link.is_none());

    let unnamed = c
        .create_web_link(&docs.id, "https://docs.example.com/a/b", None, None)
        .await
        .unwrap();
    assert_eq!(unnamed.name, "docs.example.com");

    let read = c.web_link(&link.id, &[] as &[&str]).await.unwrap();
    assert_eq!(read, link);
    let some = c.web_link(&link.id, &["url"]).await.unwrap();
    assert_eq!(some.url, link.url);
    assert_eq!(some.name, "", "left out by fields=");
    assert!(some.etag.is_some());

    let changed = c
        .update_web_link(
            &link.id,
            &WebLinkUpdate {
                name: Some("Handbook".into()),
                parent_id: Some(archive.id.clone()),
                url: Some("http://example.org/".into()),
                description: Some(String::new()),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.name, "Handbook");
    assert_eq!(changed.parent.as_ref().unwrap().id, archive.id);
    assert_eq!(changed.url, "http://example.org/");
    assert_eq!(changed.description.as_deref(), Some(""));
    assert_ne!(changed.etag, link.etag);

    c.delete_web_link(&link.id).await.unwrap();
    let gone = c.web_link(&link.id, &[] as &[&str]).await.unwrap_err();
    assert_eq!(
        (gone.status(), gone.code()),
        (Some(404), Some("trashed")),
        "{gone}"
    );
}

#[tokio::test]
async fn trash_restore_and_purge() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let home = c.create_folder("0", "Home").await.unwrap();
    let link = c
        .create_web_link(&home.id, "https://example.com", Some("Link"), None)
        .await
        .unwrap();
    c.delete_web_link(&link.id).await.unwrap();

    let trashed = c.trashed_web_link(&link.id).await.unwrap();
    assert_eq!(trashed.item_status.as_deref(), Some("trashed"));
    assert_eq!(trashed.url, "https://example.com");
    assert!(trashed.trashed_at.is_some());

    // The trash lists it as an item that carries its URL.
    let trash: Vec<_> = c
        .trash_items(ListOptions::offset(0).fields(&["name", "url"]))
        .try_collect()
        .await
        .unwrap();
    let entry = trash
        .iter()
        .find(|i| i.id == link.id)
        .expect("in the trash");
    assert!(entry.is_web_link());
    assert_eq!(entry.url.as_deref(), Some("https://example.com"));

    let back = c
        .restore_web_link(&link.id, Some("Back"), None)
        .await
        .unwrap();
    assert_eq!(back.name, "Back");
    assert_eq!(back.parent.as_ref().unwrap().id, home.id);
    assert_eq!(back.item_status.as_deref(), Some("active"));
    // Not in the trash any more.
    let e = c.purge_web_link(&link.id).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");

    c.delete_web_link(&link.id).await.unwrap();
    c.purge_web_link(&link.id).await.unwrap();
    let e = c.trashed_web_link(&link.id).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    let e = c.web_link(&link.id, &[] as &[&str]).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("not_found")),
        "{e}"
    );
}

#[tokio::test]
async fn listings_carry_web_links_with_their_url() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let dir = c.create_folder("0", "Mixed").await.unwrap();
    for i in 0..5 {
        c.create_web_link(
            &dir.id,
            &format!("https://example.com/{i}"),
            Some(&format!("link {i}")),
            None,
        )
        .await
        .unwrap();
    }
    c.upload_file(&dir.id, "file.txt", b"x".to_vec(), &Default::default())
        .await
        .unwrap();
    c.create_folder(&dir.id, "sub").await.unwrap();

    // Marker paging two at a time, mini entries: folders, files, then web links.
    let items: Vec<_> = c
        .folder_items(&dir.id, ListOptions::marker().limit(2))
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["folder", "file", "web_link", "web_link", "web_link", "web_link", "web_link"]
    );
    for (i, item) in items[2..].iter().enumerate() {
        assert!(item.is_web_link() && !item.is_file() && !item.is_folder());
        assert_eq!(item.name, format!("link {i}"));
        assert_eq!(
            item.url.as_deref(),
            Some(format!("https://example.com/{i}").as_str())
        );
    }
    assert!(items[0].url.is_none() && items[1].url.is_none());

    // Offset paging with fields.
    let page = c
        .folder_items_page(
            &dir.id,
            &ListOptions::offset(4).limit(3).fields(&["name", "url"]),
        )
        .await
        .unwrap();
    assert_eq!(page.total_count, Some(7));
    let urls: Vec<_> = page
        .entries
        .iter()
        .map(|i| i.url.clone().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "https://example.com/2",
            "https://example.com/3",
            "https://example.com/4"
        ]
    );

    let found = c
        .search(&SearchQuery {
            item_type: Some(ItemType::WebLink),
            ..SearchQuery::new("link")
        })
        .await
        .unwrap();
    assert_eq!(found.total_count, 5);
}

#[tokio::test]
async fn box_refusals_arrive_as_typed_errors() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let file = t.upload_file("0", "Report", b"figures").await;
    let e = c
        .create_web_link("0", "https://example.com", Some("report"), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("item_name_in_use")),
        "{e}"
    );
    let conflict = &e.api().unwrap().context_info.as_ref().unwrap()["conflicts"][0];
    assert_eq!(conflict["id"], file["id"]);
    let e = c
        .create_web_link("987654", "https://example.com", None, None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("not_found")),
        "{e}"
    );
    let e = c.delete_web_link("987654").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let before = c.request_stats().calls;
    for url in ["ftp://example.com", "example.com", "https://", ""] {
        let e = c.create_web_link("0", url, None, None).await.unwrap_err();
        assert!(matches!(e, BoxError::Invalid(_)), "{url}: {e}");
    }
    let e = c
        .create_web_link("0", "https://example.com", Some("a/b"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, BoxError::Invalid(_)), "{e}");
    let e = c
        .create_web_link("zero", "https://example.com", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, BoxError::Invalid(_)), "{e}");
    let e = c
        .create_web_link("0", "https://example.com", None, Some(&"d".repeat(257)))
        .await
        .unwrap_err();
    assert!(matches!(e, BoxError::Invalid(_)), "{e}");
    let e = c
        .update_web_link(
            "1",
            &WebLinkUpdate {
                url: Some("mailto:someone@example.com".into()),
                ..WebLinkUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BoxError::Invalid(_)), "{e}");
    for e in [
        c.web_link("", &[] as &[&str]).await.unwrap_err(),
        c.delete_web_link("1/2").await.unwrap_err(),
        c.trashed_web_link("x").await.unwrap_err(),
        c.purge_web_link("-1").await.unwrap_err(),
        c.restore_web_link("1", None, Some("root"))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, BoxError::Invalid(_)), "{e}");
    }
    assert_eq!(c.request_stats().calls, before, "nothing was sent");
}

#[tokio::test]
async fn a_web_link_as_an_item_matches_its_listing_entry() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let link = c
        .create_web_link("0", "https://example.com/a", Some("A"), None)
        .await
        .unwrap();
    let fields = ["type", "id", "name", "etag", "sequence_id", "url"];
    let listed = c
        .folder_items_page("0", &ListOptions::marker().fields(&fields))
        .await
        .unwrap()
        .entries
        .into_iter()
        .find(|i| i.id == link.id)
        .expect("listed");
    let own: box_client::types::Item = c.web_link(&link.id, &fields).await.unwrap().into();
    assert!(own.is_web_link());
    assert_eq!(own, listed);
}
