//! The client's search against the emulator: text queries with Box's filters (type,
//! ancestor folders, content types, extensions), paging by offset and as a stream,
//! metadata filters (values, any-of, number and date ranges, global properties), and bad
//! input refused before the request or answered with Box's typed error.

use std::collections::HashSet;
use std::sync::Arc;

use box_client::metadata::{FieldType, ItemRef, NewTemplate, TemplateField};
use box_client::search::{ContentType, ItemType, MetadataFilter, SearchQuery};
use box_client::{BoxError, Client, DeveloperToken, Endpoints};
use box_emulator::testing::TestEmu;
use chrono::{TimeZone, Utc};
use futures_util::TryStreamExt;
use serde_json::{json, Map, Value};

fn client(t: &TestEmu) -> Client {
    Client::new(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
    )
}

async fn upload(t: &TestEmu, parent: &str, name: &str, content: &[u8]) -> String {
    t.upload_file(parent, name, content).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn names(items: &[box_client::types::Item]) -> HashSet<String> {
    items.iter().map(|i| i.name.clone()).collect()
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn values(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn text_search_with_filters_and_paging() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let finance = c.create_folder("0", "Finance").await.unwrap();
    let other = c.create_folder("0", "Other").await.unwrap();
    c.create_folder(&finance.id, "Budget archive")
        .await
        .unwrap();
    upload(&t, &finance.id, "budget 2024.xlsx", b"numbers").await;
    upload(
        &t,
        &finance.id,
        "notes.txt",
        b"the quarterly budget is tight",
    )
    .await;
    upload(&t, &other.id, "budget.pdf", b"pdf").await;
    upload(&t, &other.id, "unrelated.txt", b"nothing here").await;

    let all = c.search(&SearchQuery::new("budget")).await.unwrap();
    assert_eq!(all.total_count, 4);
    assert_eq!(
        names(&all.entries),
        set(&[
            "Budget archive",
            "budget 2024.xlsx",
            "notes.txt",
            "budget.pdf"
        ])
    );

    let folders = c
        .search(&SearchQuery::new("budget").item_type(ItemType::Folder))
        .await
        .unwrap();
    assert_eq!(names(&folders.entries), set(&["Budget archive"]));

    let in_finance = c
        .search(
            &SearchQuery::new("budget")
                .item_type(ItemType::File)
                .ancestor_folders([finance.id.as_str()]),
        )
        .await
        .unwrap();
    assert_eq!(
        names(&in_finance.entries),
        set(&["budget 2024.xlsx", "notes.txt"])
    );

    let by_name = c
        .search(&SearchQuery::new("budget").content_types([ContentType::Name]))
        .await
        .unwrap();
    assert!(!names(&by_name.entries).contains("notes.txt"));

    let pdfs = c
        .search(&SearchQuery::new("budget").file_extensions([".pdf"]))
        .await
        .unwrap();
    assert_eq!(names(&pdfs.entries), set(&["budget.pdf"]));

    // Paging: one page, then all of them as a stream of small pages.
    let page = c
        .search(&SearchQuery::new("budget").limit(3).offset(2))
        .await
        .unwrap();
    assert_eq!(
        (page.total_count, page.offset, page.entries.len()),
        (4, 2, 2)
    );
    let streamed: Vec<_> = c
        .search_items(SearchQuery::new("budget").limit(1))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), 4);
    assert_eq!(names(&streamed), names(&all.entries));

    // Fields: just those.
    let partial = c
        .search(&SearchQuery::new("unrelated").fields(&["name", "size"]))
        .await
        .unwrap();
    assert_eq!(partial.entries[0].size, Some(12));
    assert!(partial.entries[0].path_collection.is_none());
}

#[tokio::test]
async fn metadata_filters() {
    let t = TestEmu::start().await;
    let c = client(&t);
    c.create_metadata_template(
        &NewTemplate::new("contract", "Contract")
            .field(
                TemplateField::new(FieldType::Enum, "status", "Status")
                    .options(["active", "closed"]),
            )
            .field(TemplateField::new(FieldType::Float, "amount", "Amount"))
            .field(TemplateField::new(FieldType::Date, "due", "Due"))
            .field(
                TemplateField::new(FieldType::MultiSelect, "region", "Region")
                    .options(["emea", "apac", "amer"]),
            ),
    )
    .await
    .unwrap();
    for (name, status, amount, due, region) in [
        (
            "a.txt",
            "active",
            100.0,
            "2030-01-10T00:00:00Z",
            json!(["emea"]),
        ),
        (
            "b.txt",
            "active",
            5000.0,
            "2030-06-01T00:00:00Z",
            json!(["apac", "amer"]),
        ),
        (
            "c.txt",
            "closed",
            250.0,
            "2029-12-01T00:00:00Z",
            json!(["emea", "apac"]),
        ),
    ] {
        let id = upload(&t, "0", name, b"contract").await;
        c.create_metadata(
            &ItemRef::file(&id),
            "enterprise",
            "contract",
            &values(json!({"status": status, "amount": amount, "due": due, "region": region})),
        )
        .await
        .unwrap();
    }
    let plain = upload(&t, "0", "d.txt", b"no metadata").await;
    c.create_metadata(
        &ItemRef::file(&plain),
        "global",
        "properties",
        &values(json!({"project": "apollo"})),
    )
    .await
    .unwrap();

    let find = |f: MetadataFilter| {
        let c = c.clone();
        async move { names(&c.search(&SearchQuery::metadata(f)).await.unwrap().entries) }
    };
    let contract = || MetadataFilter::new("enterprise", "contract");
    assert_eq!(
        find(contract().equals("status", "active")).await,
        set(&["a.txt", "b.txt"])
    );
    assert_eq!(
        find(contract().any_of("region", ["amer", "emea"])).await,
        set(&["a.txt", "b.txt", "c.txt"])
    );
    assert_eq!(
        find(contract().equals("region", "apac")).await,
        set(&["b.txt", "c.txt"])
    );
    assert_eq!(
        find(contract().number_range("amount", Some(200.0), Some(1000.0))).await,
        set(&["c.txt"])
    );
    assert_eq!(
        find(contract().number_range("amount", Some(200.0), None)).await,
        set(&["b.txt", "c.txt"])
    );
    let jan = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(
        find(contract().date_range("due", Some(jan), None)).await,
        set(&["a.txt", "b.txt"])
    );
    // Several conditions all hold.
    assert_eq!(
        find(contract().equals("status", "active").date_range(
            "due",
            None,
            Some(jan + chrono::Duration::days(30))
        ))
        .await,
        set(&["a.txt"])
    );
    assert_eq!(
        find(MetadataFilter::new("global", "properties").equals("project", "apollo")).await,
        set(&["d.txt"])
    );

    // Text and metadata together.
    let both = c
        .search(
            &SearchQuery::new("contract").metadata_filter(contract().equals("status", "closed")),
        )
        .await
        .unwrap();
    assert_eq!(names(&both.entries), set(&["c.txt"]));

    // A template Box does not know: its typed 400.
    let err = c
        .search(&SearchQuery::metadata(MetadataFilter::new(
            "enterprise",
            "nothing",
        )))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}

#[tokio::test]
async fn bad_searches_are_refused() {
    let t = TestEmu::start().await;
    let c = client(&t);
    for (what, q) in [
        ("no query", SearchQuery::default()),
        ("blank query", SearchQuery::new("  ")),
        ("limit 0", SearchQuery::new("x").limit(0)),
        ("limit 201", SearchQuery::new("x").limit(201)),
        ("offset", SearchQuery::new("x").offset(10_001)),
        ("ancestor", SearchQuery::new("x").ancestor_folders(["abc"])),
        ("owner", SearchQuery::new("x").owners(["me"])),
        ("extension", SearchQuery::new("x").file_extensions(["."])),
        (
            "sizes",
            SearchQuery::new("x").size_between(Some(10), Some(5)),
        ),
        (
            "scope",
            SearchQuery::metadata(MetadataFilter::new("somewhere", "t").equals("a", "b")),
        ),
        (
            "template",
            SearchQuery::metadata(MetadataFilter::new("global", "not a key")),
        ),
    ] {
        let err = c.search(&q).await.unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{what}: {err}");
        let err = c.search_items(q).try_collect::<Vec<_>>().await.unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{what}: {err}");
    }
    // A well-formed ancestor that does not exist: Box's 404.
    let err = c
        .search(&SearchQuery::new("x").ancestor_folders(["987654321"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}
