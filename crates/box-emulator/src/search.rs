//! `GET /search`: full-text search over the items a user can reach, with Box's query
//! language (`"exact phrase"`, `AND`, `OR`, `NOT` in upper case; plain words are ORed) and
//! its filters (type, ancestor folders, extensions, size and date ranges, owners, trash,
//! content types) plus `mdfilters` on metadata instances.
//!
//! Text is split into lower-cased words at every non-alphanumeric character, so
//! `"Blue-Box"` finds "blue.box" and "Blue Box" as Box documents. A plain word matches
//! words starting with it; a phrase needs its words consecutively. File text is searched
//! when the current version is UTF-8 (its first [`CONTENT_CAP`] bytes). The index is always
//! fresh here; Box's may lag behind writes.

use std::collections::HashSet;

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::http::{json_response, AppState, Ctx, Query};
use super::repr::{display_name, extension, item_json, Fields};
use super::store::{Id, Item, ItemKind, MetadataTemplate, Store};

/// How much of a file's content is searched.
pub const CONTENT_CAP: usize = 1024 * 1024;

const MAX_LIMIT: u64 = 200;
const MAX_OFFSET: u64 = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/2.0/search", get(search))
}

// ---------------------------------------------------------------------------------------
// The query language

/// Lower-cased words of a text.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Phrase(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn lex(query: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = query.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(match word.as_str() {
                "AND" => Token::And,
                "OR" => Token::Or,
                "NOT" => Token::Not,
                _ => Token::Word(word.clone()),
            });
            word.clear();
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                flush(&mut word, &mut out);
                let mut phrase = String::new();
                for p in chars.by_ref() {
                    if p == '"' {
                        break;
                    }
                    phrase.push(p);
                }
                out.push(Token::Phrase(phrase));
            }
            '(' => {
                flush(&mut word, &mut out);
                out.push(Token::Open);
            }
            ')' => {
                flush(&mut word, &mut out);
                out.push(Token::Close);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

#[derive(Debug, Clone)]
enum Expr {
    /// One word: matches words starting with it.
    Word(String),
    /// Consecutive words (a quoted phrase, or a word with punctuation inside).
    Phrase(Vec<String>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn join(a: Option<Expr>, b: Option<Expr>, f: fn(Box<Expr>, Box<Expr>) -> Expr) -> Option<Expr> {
        match (a, b) {
            (Some(a), Some(b)) => Some(f(Box::new(a), Box::new(b))),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// Alternatives, explicit (`OR`) or implicit (words side by side).
    fn or(&mut self) -> Option<Expr> {
        let mut left = self.and();
        loop {
            match self.peek() {
                Some(Token::Or) => {
                    self.pos += 1;
                    let right = self.and();
                    left = Self::join(left, right, Expr::Or);
                }
                Some(Token::Close) | None => return left,
                Some(_) => {
                    let right = self.and();
                    left = Self::join(left, right, Expr::Or);
                }
            }
        }
    }

    fn and(&mut self) -> Option<Expr> {
        let mut left = self.not();
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.not();
            left = Self::join(left, right, Expr::And);
        }
        left
    }

    fn not(&mut self) -> Option<Expr> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return self.not().map(|e| Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Option<Expr> {
        match self.next()? {
            Token::Word(w) => {
                let mut ws = words(&w);
                match ws.len() {
                    0 => None,
                    1 => ws.pop().map(Expr::Word),
                    _ => Some(Expr::Phrase(ws)),
                }
            }
            Token::Phrase(p) => {
                let ws = words(&p);
                (!ws.is_empty()).then_some(Expr::Phrase(ws))
            }
            Token::Open => {
                let inner = self.or();
                if self.peek() == Some(&Token::Close) {
                    self.pos += 1;
                }
                inner
            }
            // A dangling operator (`a AND`, `OR b`) stands for nothing.
            Token::And | Token::Or | Token::Not | Token::Close => None,
        }
    }
}

/// The longest `query` accepted, in bytes, and the deepest nesting of parentheses and `NOT`s.
/// The parser and the matcher recurse, so an unbounded query (20,000 `(`) would overflow the
/// stack and abort the whole server; it gets a 400 instead.
const MAX_QUERY_LEN: usize = 2048;
const MAX_QUERY_DEPTH: usize = 32;

/// Refuses a query too long or nested too deep to parse safely.
fn check_query_size(query: &str) -> ApiResult<()> {
    if query.len() > MAX_QUERY_LEN {
        return Err(invalid(
            "query",
            format!("'query' must be at most {MAX_QUERY_LEN} bytes long"),
        ));
    }
    let (mut parens, mut nots, mut deepest) = (0usize, 0usize, 0usize);
    for token in lex(query) {
        match token {
            Token::Open => parens += 1,
            Token::Close => parens = parens.saturating_sub(1),
            Token::Not => nots += 1,
            _ => nots = 0,
        }
        deepest = deepest.max(parens + nots);
    }
    if deepest > MAX_QUERY_DEPTH {
        return Err(invalid(
            "query",
            format!("'query' nests parentheses and NOTs more than {MAX_QUERY_DEPTH} deep"),
        ));
    }
    Ok(())
}

fn parse_query(query: &str) -> Option<Expr> {
    let mut p = Parser {
        tokens: lex(query),
        pos: 0,
    };
    let mut expr = p.or();
    // Stray closing parentheses: skip them and keep reading.
    while p.pos < p.tokens.len() {
        p.pos += 1;
        let more = p.or();
        expr = Parser::join(expr, more, Expr::Or);
    }
    expr
}

/// A searchable text: lower-cased once, with the byte ranges of its words.
struct Text {
    lower: String,
    spans: Vec<(usize, usize)>,
}

impl Text {
    fn new(text: &str) -> Text {
        let lower = text.to_lowercase();
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in lower.char_indices() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            spans.push((s, lower.len()));
        }
        Text { lower, spans }
    }

    fn word(&self, i: usize) -> &str {
        let (a, b) = self.spans[i];
        &self.lower[a..b]
    }

    fn has_word(&self, w: &str) -> bool {
        (0..self.spans.len()).any(|i| self.word(i).starts_with(w))
    }

    fn has_phrase(&self, phrase: &[String]) -> bool {
        let n = phrase.len();
        n <= self.spans.len()
            && (0..=self.spans.len() - n)
                .any(|start| (0..n).all(|j| self.word(start + j) == phrase[j]))
    }
}

/// The searchable texts of one item, each with its relevance weight.
struct Texts {
    fields: Vec<(Text, u32)>,
}

impl Texts {
    fn matches(&self, e: &Expr) -> bool {
        match e {
            Expr::Word(w) => self.fields.iter().any(|(t, _)| t.has_word(w)),
            Expr::Phrase(p) => self.fields.iter().any(|(t, _)| t.has_phrase(p)),
            Expr::And(a, b) => self.matches(a) && self.matches(b),
            Expr::Or(a, b) => self.matches(a) || self.matches(b),
            Expr::Not(a) => !self.matches(a),
        }
    }

    /// Relevance: the weights of the fields where the query's positive terms occur.
    fn score(&self, e: &Expr) -> u32 {
        match e {
            Expr::Word(w) => self
                .fields
                .iter()
                .filter(|(t, _)| t.has_word(w))
                .map(|(_, weight)| weight)
                .sum(),
            Expr::Phrase(p) => self
                .fields
                .iter()
                .filter(|(t, _)| t.has_phrase(p))
                .map(|(_, weight)| weight * 2)
                .sum(),
            Expr::And(a, b) | Expr::Or(a, b) => self.score(a) + self.score(b),
            Expr::Not(_) => 0,
        }
    }
}

/// A file's text: its current version's content if that is UTF-8 (the first
/// [`CONTENT_CAP`] bytes; a character cut at the cap is dropped).
fn file_text(store: &Store, item: &Item) -> Option<String> {
    let v = item.current_version()?;
    let blob = store.blobs.get(&v.sha1)?;
    let prefix = blob.prefix(CONTENT_CAP);
    let prefix = &*prefix;
    match std::str::from_utf8(prefix) {
        Ok(s) => Some(s.to_string()),
        Err(e) if e.error_len().is_none() => {
            Some(String::from_utf8_lossy(&prefix[..e.valid_up_to()]).into_owned())
        }
        Err(_) => None,
    }
}

// ---------------------------------------------------------------------------------------
// Parameters

#[derive(Default)]
struct ContentTypes {
    name: bool,
    description: bool,
    file_content: bool,
    tags: bool,
}

fn list_param(q: &Query, key: &str) -> Vec<String> {
    q.get(key)
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(name, message)
}

fn parse_rfc3339(name: &str, s: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            invalid(
                name,
                format!("'{name}' must hold RFC 3339 date-times, not '{s}'"),
            )
        })
}

/// `lower,upper` with either end open; one value alone is the lower end.
fn range_param<T>(
    q: &Query,
    name: &str,
    parse: impl Fn(&str) -> ApiResult<T>,
) -> ApiResult<Option<(Option<T>, Option<T>)>> {
    let Some(raw) = q.get(name).filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let (lo, hi) = raw.split_once(',').unwrap_or((raw.as_str(), ""));
    if hi.contains(',') {
        return Err(invalid(name, format!("'{name}' takes at most two values")));
    }
    let side = |s: &str| -> ApiResult<Option<T>> {
        if s.trim().is_empty() {
            Ok(None)
        } else {
            parse(s.trim()).map(Some)
        }
    };
    Ok(Some((side(lo)?, side(hi)?)))
}

fn in_range<T: PartialOrd>(v: T, range: &Option<(Option<T>, Option<T>)>) -> bool {
    match range {
        None => true,
        Some((lo, hi)) => {
            lo.as_ref().is_none_or(|lo| &v >= lo) && hi.as_ref().is_none_or(|hi| &v <= hi)
        }
    }
}

fn id_set(q: &Query, key: &str) -> ApiResult<Option<HashSet<Id>>> {
    let list = list_param(q, key);
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|s| {
            s.parse::<Id>()
                .map_err(|_| invalid(key, format!("'{key}' must be a list of user ids")))
        })
        .collect::<ApiResult<HashSet<Id>>>()
        .map(Some)
}

// ---------------------------------------------------------------------------------------
// Metadata filters

enum FieldFilter {
    /// One value (string or number) to equal, or to be among a multiSelect's values.
    Equals(Value),
    /// Any of these values.
    AnyOf(Vec<Value>),
    /// Inclusive range of numbers.
    Numbers(Option<f64>, Option<f64>),
    /// Inclusive range of dates.
    Dates(Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

struct MdFilter {
    store_key: String,
    filters: Vec<(String, FieldFilter)>,
}

fn md_err(message: impl Into<String>) -> ApiError {
    invalid(
        "mdfilters",
        format!("Invalid 'mdfilters': {}", message.into()),
    )
}

fn parse_mdfilters(store: &Store, raw: &str) -> ApiResult<MdFilter> {
    let v: Value = serde_json::from_str(raw).map_err(|e| {
        md_err(format!(
            "'mdfilters' must be a JSON array holding one metadata filter: {e}"
        ))
    })?;
    let Value::Array(list) = v else {
        return Err(md_err(
            "'mdfilters' must be a JSON array holding one metadata filter",
        ));
    };
    if list.len() != 1 {
        return Err(md_err(format!(
            "'mdfilters' must hold exactly one metadata filter, not {}",
            list.len()
        )));
    }
    let Value::Object(f) = &list[0] else {
        return Err(md_err("The metadata filter must be a JSON object"));
    };
    let scope = f
        .get("scope")
        .and_then(Value::as_str)
        .ok_or_else(|| md_err("The metadata filter needs a string 'scope'"))?;
    let scope = super::metadata::full_scope(store, scope);
    if scope != "global" && scope != format!("enterprise_{}", store.enterprise_id) {
        return Err(md_err(
            "The metadata filter's 'scope' must be 'global' or 'enterprise'",
        ));
    }
    let key = f
        .get("templateKey")
        .and_then(Value::as_str)
        .ok_or_else(|| md_err("The metadata filter needs a string 'templateKey'"))?;
    let template: Option<MetadataTemplate> =
        store.templates.get(&format!("{scope}/{key}")).cloned();
    let free_form = scope == "global" && key == "properties";
    if template.is_none() && !free_form {
        return Err(md_err(format!(
            "There is no metadata template '{scope}.{key}'"
        )));
    }
    // The spec's example writes `filters` as a list of objects, its schema as one object;
    // take both.
    let mut raw_filters = Map::new();
    match f.get("filters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => raw_filters = m.clone(),
        Some(Value::Array(parts)) => {
            for p in parts {
                let Value::Object(m) = p else {
                    return Err(md_err("'filters' must be an object"));
                };
                raw_filters.extend(m.clone());
            }
        }
        Some(_) => return Err(md_err("'filters' must be an object")),
    }
    let mut filters = Vec::new();
    for (field, value) in raw_filters {
        let field_type = match &template {
            Some(t) => Some(
                t.fields
                    .iter()
                    .find(|x| x.key == field)
                    .map(|x| x.field_type.clone())
                    .ok_or_else(|| {
                        md_err(format!("'{field}' is not a field of the template '{key}'"))
                    })?,
            ),
            None => None,
        };
        let filter = match value {
            Value::String(_) | Value::Number(_) => FieldFilter::Equals(value),
            Value::Array(values) => {
                if !values.iter().all(|v| v.is_string() || v.is_number()) {
                    return Err(md_err(format!(
                        "The values to match for '{field}' must be strings or numbers"
                    )));
                }
                FieldFilter::AnyOf(values)
            }
            Value::Object(range) => {
                if range.keys().any(|k| k != "gt" && k != "lt") || range.is_empty() {
                    return Err(md_err(format!(
                        "A range for '{field}' takes 'gt' and/or 'lt'"
                    )));
                }
                let is_date =
                    field_type.as_deref() == Some("date") || range.values().any(Value::is_string);
                if is_date {
                    let end = |k: &str| -> ApiResult<Option<DateTime<Utc>>> {
                        match range.get(k) {
                            None | Some(Value::Null) => Ok(None),
                            Some(Value::String(s)) => parse_rfc3339("mdfilters", s).map(Some),
                            Some(_) => Err(md_err(format!(
                                "'{field}.{k}' must be an RFC 3339 date-time"
                            ))),
                        }
                    };
                    FieldFilter::Dates(end("gt")?, end("lt")?)
                } else {
                    let end = |k: &str| -> ApiResult<Option<f64>> {
                        match range.get(k) {
                            None | Some(Value::Null) => Ok(None),
                            Some(v) => v
                                .as_f64()
                                .map(Some)
                                .ok_or_else(|| md_err(format!("'{field}.{k}' must be a number"))),
                        }
                    };
                    FieldFilter::Numbers(end("gt")?, end("lt")?)
                }
            }
            _ => {
                return Err(md_err(format!(
                    "The filter for '{field}' must be a value, a list of values or a range"
                )))
            }
        };
        filters.push((field, filter));
    }
    Ok(MdFilter {
        store_key: format!("{scope}/{key}"),
        filters,
    })
}

fn scalar_eq(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => {
            a == b
                || matches!(
                    (DateTime::parse_from_rfc3339(a), DateTime::parse_from_rfc3339(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => {
            a.parse::<f64>().ok() == b.as_f64()
        }
        _ => false,
    }
}

/// Whether a stored value (scalar or multiSelect list) matches one wanted value.
fn value_has(have: &Value, want: &Value) -> bool {
    match have {
        Value::Array(list) => list.iter().any(|h| scalar_eq(h, want)),
        h => scalar_eq(h, want),
    }
}

fn md_matches(item: &Item, f: &MdFilter) -> bool {
    let Some(inst) = item.metadata.get(&f.store_key) else {
        return false;
    };
    f.filters.iter().all(|(field, filter)| {
        let Some(have) = inst.values.get(field) else {
            return false;
        };
        match filter {
            FieldFilter::Equals(want) => value_has(have, want),
            FieldFilter::AnyOf(wants) => wants.iter().any(|w| value_has(have, w)),
            FieldFilter::Numbers(lo, hi) => {
                let n = match have {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                n.is_some_and(|n| lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi))
            }
            FieldFilter::Dates(lo, hi) => have
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .is_some_and(|t| lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t <= hi)),
        }
    })
}

// ---------------------------------------------------------------------------------------
// The endpoint

#[derive(PartialEq)]
enum Trash {
    NonTrashed,
    Trashed,
    All,
}

async fn search(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let query = q.get("query").filter(|s| !s.trim().is_empty()).cloned();
    let mdfilters_raw = q.get("mdfilters").filter(|s| !s.trim().is_empty()).cloned();
    if let Some(query) = &query {
        check_query_size(query)?;
    }
    if query.is_none() && mdfilters_raw.is_none() {
        return Err(ApiError::new(
            400,
            "bad_request",
            "Bad Request: give a 'query' or 'mdfilters' to search with",
        )
        .with_context(json!({"errors": [{
            "reason": "missing_parameter",
            "name": "query",
            "message": "'query' is required unless 'mdfilters' is given",
        }]})));
    }
    match q.get("scope").map(String::as_str) {
        None | Some("") | Some("user_content") => {}
        Some("enterprise_content") => {
            return Err(ApiError::forbidden(
                "access_denied_insufficient_permissions",
                "Searching enterprise content must be enabled by Box support for this user",
            ))
        }
        Some(other) => {
            return Err(invalid(
                "scope",
                format!("'scope' must be user_content or enterprise_content, not '{other}'"),
            ))
        }
    }
    let kind = match q.get("type").map(String::as_str) {
        None | Some("") => None,
        Some("file") => Some("file"),
        Some("folder") => Some("folder"),
        Some("web_link") => Some("web_link"),
        Some(other) => {
            return Err(invalid(
                "type",
                format!("'type' must be file, folder or web_link, not '{other}'"),
            ))
        }
    };
    let trash = match q.get("trash_content").map(String::as_str) {
        None | Some("") | Some("non_trashed_only") => Trash::NonTrashed,
        Some("trashed_only") => Trash::Trashed,
        Some("all_items") => Trash::All,
        Some(other) => {
            return Err(invalid(
                "trash_content",
                format!("'trash_content' must be non_trashed_only, trashed_only or all_items, not '{other}'"),
            ))
        }
    };
    let content_types = {
        let list = list_param(&q, "content_types");
        if list.is_empty() {
            ContentTypes {
                name: true,
                description: true,
                file_content: true,
                tags: true,
            }
        } else {
            let mut c = ContentTypes::default();
            for t in &list {
                match t.as_str() {
                    "name" => c.name = true,
                    "description" => c.description = true,
                    "file_content" => c.file_content = true,
                    "tags" => c.tags = true,
                    // There are no comments in the emulator: nothing matches them.
                    "comments" => {}
                    other => {
                        return Err(invalid(
                            "content_types",
                            format!("'{other}' is not a content type: use name, description, file_content, comments or tags"),
                        ))
                    }
                }
            }
            c
        }
    };
    let extensions: Option<HashSet<String>> = {
        let list = list_param(&q, "file_extensions");
        (!list.is_empty()).then(|| {
            list.iter()
                .map(|e| e.trim_start_matches('.').to_lowercase())
                .collect()
        })
    };
    let size_range = range_param(&q, "size_range", |s| {
        s.parse::<u64>()
            .map_err(|_| invalid("size_range", "'size_range' must hold byte counts"))
    })?;
    let created_range = range_param(&q, "created_at_range", |s| {
        parse_rfc3339("created_at_range", s)
    })?;
    let updated_range = range_param(&q, "updated_at_range", |s| {
        parse_rfc3339("updated_at_range", s)
    })?;
    let deleted_range = range_param(&q, "deleted_at_range", |s| {
        parse_rfc3339("deleted_at_range", s)
    })?;
    let owners = id_set(&q, "owner_user_ids")?;
    let updaters = id_set(&q, "recent_updater_user_ids")?;
    let deleters = id_set(&q, "deleted_user_ids")?;
    let by_modified = match q.get("sort").map(String::as_str) {
        None | Some("") | Some("relevance") => false,
        Some("modified_at") => true,
        Some(other) => {
            return Err(invalid(
                "sort",
                format!("'sort' must be relevance or modified_at, not '{other}'"),
            ))
        }
    };
    let ascending = match q.get("direction").map(String::as_str) {
        None | Some("") => false,
        Some(d) if d.eq_ignore_ascii_case("desc") => false,
        Some(d) if d.eq_ignore_ascii_case("asc") => true,
        Some(other) => {
            return Err(invalid(
                "direction",
                format!("'direction' must be DESC or ASC, not '{other}'"),
            ))
        }
    };
    let limit = super::http::query_u64(&q, "limit", 30)?.clamp(1, MAX_LIMIT) as usize;
    let offset = super::http::query_u64(&q, "offset", 0)?;
    if offset > MAX_OFFSET {
        return Err(invalid(
            "offset",
            format!("'offset' may not exceed {MAX_OFFSET}"),
        ));
    }
    let with_shared_links = match q.get("include_recent_shared_links").map(String::as_str) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(invalid(
                "include_recent_shared_links",
                "'include_recent_shared_links' must be true or false",
            ))
        }
    };
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let expr = query.as_deref().map(parse_query);

    let store = ctx.shared.store();
    let mut ancestors = Vec::new();
    for raw in list_param(&q, "ancestor_folder_ids") {
        // An ancestor the user cannot reach is a 404, as Box answers.
        ancestors.push(store.resolve(ctx.user, &raw, ItemKind::Folder)?);
    }
    let mdfilter = match &mdfilters_raw {
        Some(raw) => Some(parse_mdfilters(&store, raw)?),
        None => None,
    };

    let mut hits: Vec<(u32, &Item)> = Vec::new();
    for item in store.items.values() {
        if item.is_root() || !store.can_access(ctx.user, item.id) {
            continue;
        }
        if kind.is_some_and(|k| k != item.kind.as_str()) {
            continue;
        }
        let trashed_by = store
            .trashed_ancestor(item.id)
            .and_then(|t| store.items.get(&t))
            .and_then(|t| t.trash.as_ref());
        let keep = match trash {
            Trash::NonTrashed => trashed_by.is_none(),
            Trash::Trashed => trashed_by.is_some(),
            Trash::All => true,
        };
        if !keep {
            continue;
        }
        if !ancestors.is_empty()
            && !ancestors
                .iter()
                .any(|a| *a != item.id && store.is_descendant_or_self(item.id, *a))
        {
            continue;
        }
        if let Some(exts) = &extensions {
            if item.kind != ItemKind::File || !exts.contains(&extension(&item.name).to_lowercase())
            {
                continue;
            }
        }
        if !in_range(store.tree_size(item.id), &size_range)
            || !in_range(item.created_at, &created_range)
            || !in_range(item.modified_at, &updated_range)
        {
            continue;
        }
        if deleted_range.is_some()
            && !trashed_by.is_some_and(|t| in_range(t.trashed_at, &deleted_range))
        {
            continue;
        }
        if owners.as_ref().is_some_and(|o| !o.contains(&item.owner))
            || updaters
                .as_ref()
                .is_some_and(|u| !u.contains(&item.modified_by))
            || deleters
                .as_ref()
                .is_some_and(|d| !trashed_by.is_some_and(|t| d.contains(&t.trashed_by)))
        {
            continue;
        }
        if mdfilter.as_ref().is_some_and(|f| !md_matches(item, f)) {
            continue;
        }
        let score = match &expr {
            None => 0,
            // A query with no searchable words finds nothing.
            Some(None) => continue,
            Some(Some(e)) => {
                let mut texts = Texts { fields: Vec::new() };
                if content_types.name {
                    texts.fields.push((Text::new(display_name(item)), 8));
                }
                if content_types.description {
                    texts.fields.push((Text::new(&item.description), 4));
                }
                if content_types.tags {
                    texts.fields.push((Text::new(&item.tags.join(" ")), 4));
                }
                if content_types.file_content && item.kind == ItemKind::File {
                    if let Some(text) = file_text(&store, item) {
                        texts.fields.push((Text::new(&text), 1));
                    }
                }
                if !texts.matches(e) {
                    continue;
                }
                texts.score(e)
            }
        };
        hits.push((score, item));
    }
    if by_modified {
        hits.sort_by(|a, b| {
            let o =
                a.1.modified_at
                    .cmp(&b.1.modified_at)
                    .then(a.1.id.cmp(&b.1.id));
            if ascending {
                o
            } else {
                o.reverse()
            }
        });
    } else {
        hits.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.modified_at.cmp(&a.1.modified_at))
                .then(a.1.id.cmp(&b.1.id))
        });
    }
    let total = hits.len();
    let entries: Vec<Value> = hits
        .iter()
        .skip(offset as usize)
        .take(limit)
        .map(|(_, item)| {
            let v = item_json(&store, item, ctx.user, &fields);
            if with_shared_links {
                json!({"type": "search_result", "item": v})
            } else {
                v
            }
        })
        .collect();
    let kind_name = if with_shared_links {
        "search_results_with_shared_links"
    } else {
        "search_results_items"
    };
    Ok(json_response(
        200,
        json!({
            "type": kind_name,
            "total_count": total,
            "limit": limit,
            "offset": offset,
            "entries": entries,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Texts {
        Texts {
            fields: vec![(Text::new(s), 1)],
        }
    }

    fn hit(query: &str, text: &str) -> bool {
        parse_query(query).is_some_and(|e| texts(text).matches(&e))
    }

    #[test]
    fn query_language() {
        assert!(hit("budget", "Budget 2024.xlsx"));
        assert!(hit("bud", "Budget 2024.xlsx"));
        assert!(hit("alpha beta", "only beta here"));
        assert!(!hit("alpha AND beta", "only beta here"));
        assert!(hit("alpha AND beta", "beta then alpha"));
        assert!(hit("beta AND NOT alpha", "only beta here"));
        assert!(!hit("beta AND NOT only", "only beta here"));
        assert!(hit("\"blue box\"", "the Blue-Box thing"));
        assert!(hit("Blue-Box", "a blue.box"));
        assert!(!hit("\"box blue\"", "the Blue-Box thing"));
        assert!(hit("(x OR beta) AND here", "only beta here"));
        assert!(hit("not", "a note"));
        assert!(!hit("-", "anything"));
        assert!(hit("NOT missing", "anything"));
    }
}
