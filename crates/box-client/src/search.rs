//! Search (`GET /search`): a query in Box's language (`"exact phrase"`, `AND`, `OR`, `NOT`;
//! plain words are ORed), its filters (type, ancestor folders, content types, extensions,
//! date and size ranges, owners, trash), and metadata filters (`mdfilters`: one template,
//! fields matched by value, by any of several values, or by an inclusive `{gt, lt}` range).
//! Results come a page at a time ([`Client::search`]) or as a stream of items
//! ([`Client::search_items`]).
//!
//! Box's limits, checked before any request: a query or a metadata filter is required;
//! `limit` is at most 200; offsets above 10,000 are refused. Box's index may lag behind
//! writes, so search is no way to check that an item exists.

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::client::{Client, Request};
use super::error::{BoxError, BoxResult};
use super::folders::{invalid_or, Direction};
use super::items::with_fields;
use super::metadata::{check_scope, check_template_key};
use super::types::Item;
use super::users::check_id;

/// Box's largest search page, and its default.
pub const MAX_SEARCH_LIMIT: u32 = 200;
pub const DEFAULT_SEARCH_LIMIT: u32 = 30;
/// Box refuses search offsets above this.
pub const MAX_SEARCH_OFFSET: u64 = 10_000;

/// Which kind of item to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    File,
    Folder,
    WebLink,
}

impl ItemType {
    fn as_str(self) -> &'static str {
        match self {
            ItemType::File => "file",
            ItemType::Folder => "folder",
            ItemType::WebLink => "web_link",
        }
    }
}

/// Where in an item the query text is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Name,
    Description,
    FileContent,
    Comments,
    Tags,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            ContentType::Name => "name",
            ContentType::Description => "description",
            ContentType::FileContent => "file_content",
            ContentType::Comments => "comments",
            ContentType::Tags => "tags",
        }
    }
}

/// Trashed items in the results or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrashContent {
    NonTrashedOnly,
    TrashedOnly,
    AllItems,
}

impl TrashContent {
    fn as_str(self) -> &'static str {
        match self {
            TrashContent::NonTrashedOnly => "non_trashed_only",
            TrashContent::TrashedOnly => "trashed_only",
            TrashContent::AllItems => "all_items",
        }
    }
}

/// Result order: Box's relevance (the default), or modification time (newest first
/// unless the direction says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchSort {
    Relevance,
    ModifiedAt,
}

/// How one metadata field must match.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldFilter {
    /// Equal to this string or number (for a multiSelect field: among its values).
    Equals(Value),
    /// Equal to any of these values.
    AnyOf(Vec<Value>),
    /// Within an inclusive range of numbers or dates (`gt`/`lt`, either end open).
    Range {
        gt: Option<Value>,
        lt: Option<Value>,
    },
}

/// A metadata filter: one template (`scope`: `global`, `enterprise` or
/// `enterprise_<id>`) and conditions on its fields, all of which must hold.
///
/// ```
/// use box_client::search::MetadataFilter;
/// let f = MetadataFilter::new("enterprise", "contract")
///     .equals("status", "active")
///     .any_of("region", ["emea", "apac"])
///     .number_range("amount", Some(100.0), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataFilter {
    pub scope: String,
    pub template_key: String,
    pub filters: Vec<(String, FieldFilter)>,
}

fn date(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl MetadataFilter {
    pub fn new(scope: impl Into<String>, template_key: impl Into<String>) -> MetadataFilter {
        MetadataFilter {
            scope: scope.into(),
            template_key: template_key.into(),
            filters: Vec::new(),
        }
    }

    pub fn equals(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filters
            .push((field.into(), FieldFilter::Equals(value.into())));
        self
    }

    pub fn any_of<V: Into<Value>>(
        mut self,
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.filters.push((
            field.into(),
            FieldFilter::AnyOf(values.into_iter().map(Into::into).collect()),
        ));
        self
    }

    /// `gt <= value <= lt` on a float field.
    pub fn number_range(
        mut self,
        field: impl Into<String>,
        gt: Option<f64>,
        lt: Option<f64>,
    ) -> Self {
        self.filters.push((
            field.into(),
            FieldFilter::Range {
                gt: gt.map(|v| json!(v)),
                lt: lt.map(|v| json!(v)),
            },
        ));
        self
    }

    /// `gt <= value <= lt` on a date field.
    pub fn date_range(
        mut self,
        field: impl Into<String>,
        gt: Option<DateTime<Utc>>,
        lt: Option<DateTime<Utc>>,
    ) -> Self {
        self.filters.push((
            field.into(),
            FieldFilter::Range {
                gt: gt.map(date),
                lt: lt.map(date),
            },
        ));
        self
    }

    /// The `mdfilters` value: a JSON array holding this one filter.
    pub fn to_mdfilters(&self) -> BoxResult<String> {
        check_scope(&self.scope)?;
        check_template_key(&self.template_key)?;
        let mut filters = Map::new();
        for (field, filter) in &self.filters {
            if field.is_empty() {
                return Err(BoxError::Invalid(
                    "a metadata filter names an empty field".into(),
                ));
            }
            let value = match filter {
                FieldFilter::Equals(v) => {
                    scalar(field, v)?;
                    v.clone()
                }
                FieldFilter::AnyOf(vs) => {
                    if vs.is_empty() {
                        return Err(BoxError::Invalid(format!(
                            "the metadata filter on '{field}' lists no values"
                        )));
                    }
                    for v in vs {
                        scalar(field, v)?;
                    }
                    Value::Array(vs.clone())
                }
                FieldFilter::Range { gt, lt } => {
                    let mut r = Map::new();
                    for (k, v) in [("gt", gt), ("lt", lt)] {
                        if let Some(v) = v {
                            scalar(field, v)?;
                            r.insert(k.into(), v.clone());
                        }
                    }
                    if r.is_empty() {
                        return Err(BoxError::Invalid(format!(
                            "the range on '{field}' has neither end"
                        )));
                    }
                    Value::Object(r)
                }
            };
            filters.insert(field.clone(), value);
        }
        Ok(json!([{
            "scope": self.scope,
            "templateKey": self.template_key,
            "filters": filters,
        }])
        .to_string())
    }
}

fn scalar(field: &str, v: &Value) -> BoxResult<()> {
    if v.is_string() || v.is_number() {
        Ok(())
    } else {
        Err(BoxError::Invalid(format!(
            "metadata filter values are strings or numbers ('{field}': {v})"
        )))
    }
}

/// From and to (inclusive), either end open.
pub type DateRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A search: the query, its filters, the page and the fields of each result.
///
/// ```
/// use box_client::search::{ItemType, SearchQuery};
/// let q = SearchQuery::new("quarterly report")
///     .item_type(ItemType::File)
///     .file_extensions(["pdf", "docx"])
///     .ancestor_folders(["12345"])
///     .limit(50);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub query: Option<String>,
    pub item_type: Option<ItemType>,
    pub ancestor_folder_ids: Vec<String>,
    pub content_types: Vec<ContentType>,
    /// Without dots: `pdf`, not `.pdf` (a leading dot is dropped).
    pub file_extensions: Vec<String>,
    pub created_at_range: Option<DateRange>,
    pub updated_at_range: Option<DateRange>,
    /// Inclusive bytes.
    pub size_range: Option<(Option<u64>, Option<u64>)>,
    pub owner_user_ids: Vec<String>,
    pub trash_content: Option<TrashContent>,
    pub metadata_filter: Option<MetadataFilter>,
    pub sort: Option<SearchSort>,
    pub direction: Option<Direction>,
    /// Results per page: 1–200 (Box's default 30).
    pub limit: Option<u32>,
    pub offset: u64,
    /// Fields of each result; empty means Box's standard representation.
    pub fields: Vec<String>,
}

fn strings<S: Into<String>>(v: impl IntoIterator<Item = S>) -> Vec<String> {
    v.into_iter().map(Into::into).collect()
}

impl SearchQuery {
    /// A text search.
    pub fn new(query: impl Into<String>) -> SearchQuery {
        SearchQuery {
            query: Some(query.into()),
            ..SearchQuery::default()
        }
    }

    /// A search by metadata alone (no text).
    pub fn metadata(filter: MetadataFilter) -> SearchQuery {
        SearchQuery {
            metadata_filter: Some(filter),
            ..SearchQuery::default()
        }
    }

    pub fn item_type(mut self, t: ItemType) -> Self {
        self.item_type = Some(t);
        self
    }
    pub fn ancestor_folders<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.ancestor_folder_ids = strings(ids);
        self
    }
    pub fn content_types(mut self, types: impl IntoIterator<Item = ContentType>) -> Self {
        self.content_types = types.into_iter().collect();
        self
    }
    pub fn file_extensions<S: Into<String>>(mut self, exts: impl IntoIterator<Item = S>) -> Self {
        self.file_extensions = strings(exts);
        self
    }
    pub fn created_between(
        mut self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Self {
        self.created_at_range = Some((from, to));
        self
    }
    pub fn updated_between(
        mut self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Self {
        self.updated_at_range = Some((from, to));
        self
    }
    pub fn size_between(mut self, min: Option<u64>, max: Option<u64>) -> Self {
        self.size_range = Some((min, max));
        self
    }
    pub fn owners<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.owner_user_ids = strings(ids);
        self
    }
    pub fn trash(mut self, t: TrashContent) -> Self {
        self.trash_content = Some(t);
        self
    }
    pub fn metadata_filter(mut self, f: MetadataFilter) -> Self {
        self.metadata_filter = Some(f);
        self
    }
    pub fn sort(mut self, sort: SearchSort, direction: Direction) -> Self {
        self.sort = Some(sort);
        self.direction = Some(direction);
        self
    }
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }
    pub fn fields<S: AsRef<str>>(mut self, fields: &[S]) -> Self {
        self.fields = fields.iter().map(|f| f.as_ref().to_string()).collect();
        self
    }

    /// The request for this search, checked.
    fn request(&self, client: &Client) -> BoxResult<Request> {
        let query = self.query.as_deref().filter(|q| !q.trim().is_empty());
        if query.is_none() && self.metadata_filter.is_none() {
            return Err(BoxError::Invalid(
                "a search needs a query or a metadata filter".into(),
            ));
        }
        if let Some(l) = self.limit {
            if l == 0 || l > MAX_SEARCH_LIMIT {
                return Err(BoxError::Invalid(format!(
                    "a search page holds 1 to {MAX_SEARCH_LIMIT} results, not {l}"
                )));
            }
        }
        if self.offset > MAX_SEARCH_OFFSET {
            return Err(BoxError::Invalid(format!(
                "Box refuses search offsets above {MAX_SEARCH_OFFSET}"
            )));
        }
        let mut req = client
            .api(Method::GET, "/search")
            .query_opt("query", query)
            .query_opt("type", self.item_type.map(ItemType::as_str));
        if !self.ancestor_folder_ids.is_empty() {
            for id in &self.ancestor_folder_ids {
                check_id(id)?;
            }
            req = req.query("ancestor_folder_ids", self.ancestor_folder_ids.join(","));
        }
        if !self.content_types.is_empty() {
            let list: Vec<&str> = self.content_types.iter().map(|c| c.as_str()).collect();
            req = req.query("content_types", list.join(","));
        }
        if !self.file_extensions.is_empty() {
            let mut exts = Vec::new();
            for e in &self.file_extensions {
                let e = e.trim_start_matches('.');
                if e.is_empty() || e.contains(',') {
                    return Err(BoxError::Invalid(format!("'{e}' is not a file extension")));
                }
                exts.push(e);
            }
            req = req.query("file_extensions", exts.join(","));
        }
        let date_range = |r: &DateRange| {
            let side = |t: &Option<DateTime<Utc>>| {
                t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                    .unwrap_or_default()
            };
            format!("{},{}", side(&r.0), side(&r.1))
        };
        if let Some(r) = &self.created_at_range {
            req = req.query("created_at_range", date_range(r));
        }
        if let Some(r) = &self.updated_at_range {
            req = req.query("updated_at_range", date_range(r));
        }
        if let Some((lo, hi)) = &self.size_range {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo > hi {
                    return Err(BoxError::Invalid(format!(
                        "the size range {lo}..{hi} is empty"
                    )));
                }
            }
            let side = |v: &Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            req = req.query("size_range", format!("{},{}", side(lo), side(hi)));
        }
        if !self.owner_user_ids.is_empty() {
            for id in &self.owner_user_ids {
                check_id(id)?;
            }
            req = req.query("owner_user_ids", self.owner_user_ids.join(","));
        }
        req = req.query_opt(
            "trash_content",
            self.trash_content.map(TrashContent::as_str),
        );
        if let Some(f) = &self.metadata_filter {
            req = req.query("mdfilters", f.to_mdfilters()?);
        }
        req = req.query_opt(
            "sort",
            self.sort.map(|s| match s {
                SearchSort::Relevance => "relevance",
                SearchSort::ModifiedAt => "modified_at",
            }),
        );
        req = req.query_opt("direction", self.direction.map(Direction::as_str));
        req = req.query_opt("limit", self.limit);
        if self.offset > 0 {
            req = req.query("offset", self.offset);
        }
        Ok(with_fields(req, &self.fields))
    }
}

/// One page of search results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// All matches (an estimate on Box), not just this page's.
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub offset: u64,
    /// The matching items. Asked with `include_recent_shared_links=true`, Box wraps each
    /// in a `search_result` (`{"type": "search_result", "item": …,
    /// "accessible_via_shared_link": …}`); the item inside is what is kept.
    #[serde(default, deserialize_with = "items_or_search_results")]
    pub entries: Vec<Item>,
}

fn items_or_search_results<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Item>, D::Error> {
    let raw: Vec<Value> = Vec::deserialize(d)?;
    raw.into_iter()
        .map(|mut entry| {
            if entry.get("type").and_then(Value::as_str) == Some("search_result") {
                entry = entry
                    .get_mut("item")
                    .map(Value::take)
                    .unwrap_or(Value::Null);
            }
            serde_json::from_value(entry).map_err(serde::de::Error::custom)
        })
        .collect()
}

impl Client {
    /// One page of results.
    pub async fn search(&self, query: &SearchQuery) -> BoxResult<SearchResults> {
        let req = query.request(self)?;
        self.json(req).await
    }

    /// Every result as a stream, page after page from the query's offset (Box serves at
    /// most 10,000 results into a search).
    pub fn search_items(
        &self,
        query: SearchQuery,
    ) -> impl Stream<Item = BoxResult<Item>> + Send + 'static {
        let checked = query.request(self).map(|_| ());
        let client = self.clone();
        let pages = stream::try_unfold(Some(query), move |state| {
            let client = client.clone();
            async move {
                let Some(q) = state else {
                    return Ok::<_, BoxError>(None);
                };
                let page = client.search(&q).await?;
                let step = if page.limit > 0 {
                    page.limit
                } else {
                    u64::from(q.limit.unwrap_or(DEFAULT_SEARCH_LIMIT))
                };
                let next_offset = q.offset + step;
                let next = (!page.entries.is_empty()
                    && next_offset < page.total_count
                    && next_offset <= MAX_SEARCH_OFFSET)
                    .then(|| q.clone().offset(next_offset));
                Ok(Some((
                    stream::iter(page.entries.into_iter().map(Ok::<Item, BoxError>)),
                    next,
                )))
            }
        })
        .try_flatten();
        invalid_or(checked, pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdfilters_json() {
        let f = MetadataFilter::new("enterprise", "contract")
            .equals("status", "active")
            .any_of("region", ["emea", "apac"])
            .number_range("amount", Some(1.5), None)
            .date_range(
                "due",
                None,
                Some(
                    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
                        .unwrap()
                        .with_timezone(&Utc),
                ),
            );
        let v: Value = serde_json::from_str(&f.to_mdfilters().unwrap()).unwrap();
        assert_eq!(v[0]["scope"], "enterprise");
        assert_eq!(v[0]["templateKey"], "contract");
        assert_eq!(v[0]["filters"]["status"], "active");
        assert_eq!(v[0]["filters"]["region"], json!(["emea", "apac"]));
        assert_eq!(v[0]["filters"]["amount"], json!({"gt": 1.5}));
        assert_eq!(
            v[0]["filters"]["due"],
            json!({"lt": "2030-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(MetadataFilter::new("elsewhere", "t")
            .to_mdfilters()
            .is_err());
        assert!(MetadataFilter::new("global", "bad key")
            .to_mdfilters()
            .is_err());
        assert!(MetadataFilter::new("global", "properties")
            .equals("a", json!({"x": 1}))
            .to_mdfilters()
            .is_err());
        assert!(MetadataFilter::new("global", "properties")
            .number_range("a", None, None)
            .to_mdfilters()
            .is_err());
        assert!(MetadataFilter::new("global", "properties")
            .any_of("a", Vec::<String>::new())
            .to_mdfilters()
            .is_err());
    }
}
