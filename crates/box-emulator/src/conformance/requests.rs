//! Request conformance: every request a validating emulator receives is checked against the
//! operation Box's OpenAPI description gives for its route, as responses are, so that what
//! boxfs's client (or any client run against the emulator) sends is judged by Box's
//! description rather than by the emulator written next to it.
//!
//! Checked: path parameters, query parameters (unknown ones, types, enums, required ones),
//! required header parameters, the body's media type, and the body itself (types, enums,
//! required fields, and fields the schema does not name). Box's description needs some
//! deliberate reading, listed here once:
//! - `fields` and other array query parameters are comma lists (`style: form, explode:
//!   false`): the value is split on commas and each item checked;
//! - booleans are read case-insensitively, as Box does (boxsdk sends `True`);
//! - a body without a Content-Type is read as JSON where JSON is documented, and `null`
//!   for an optional body field counts as not given, as Box takes both (boxsdk relies on
//!   them);
//! - query and path values arrive as text: they are read as the parameter's type (integer,
//!   number, boolean) before the check, and a value that does not read is reported;
//! - multipart upload bodies are read part by part: the `attributes` part is JSON and is
//!   checked as such, the `file` part is binary and only its presence and order are
//!   checked (Box refuses `attributes` after `file`);
//! - `application/x-www-form-urlencoded` bodies (OAuth) are checked as objects of strings;
//! - array query parameters of objects (`mdfilters`) are one JSON text, not a comma list;
//! - a metadata `scope` of `enterprise_<id>` is the enterprise scope spelled with its id, as
//!   Box answers and accepts it; it is checked as `enterprise`;
//! - defects of the description's request side are patched in [`patch_request_defects`],
//!   and query parameters clients send beyond it are listed in [`UNDESCRIBED_QUERY`].
//! - unknown fields are looked for through `$ref`, `allOf`, `anyOf`/`oneOf` (a field known
//!   to any branch is known) and nullable wrappers; an object schema without `properties`,
//!   or with `additionalProperties`, accepts any field.
//!
//! Not validated, and why:
//! - binary bodies (`application/octet-stream` upload parts): content, not structure; their
//!   required `Digest` and `Content-Range` headers are checked;
//! - bodies larger than [`MAX_CHECKED_BODY`] or of unknown length: buffering them would
//!   change the emulator's streaming behaviour; only their media type is checked;
//! - optional header parameters: HTTP clients add headers of their own, so an unknown
//!   header says nothing;
//! - the claims inside a JWT assertion: the description types the assertion as a string.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{fragment_escape, Operation, Validator, DOC_URI};

/// Query parameters Box's description does not name that clients send anyway: (method,
/// OpenAPI path, parameter, why). They are accepted without a check.
pub const UNDESCRIBED_QUERY: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/files/upload_sessions/{upload_session_id}/commit",
        "fields",
        "boxfs asks the commit for the fields a stat needs, as on every other call that \
         answers a file; the description does not say whether Box honours it there (if not, \
         Box answers its standard fields, which hold what boxfs reads)",
    ),
    (
        "GET",
        "/web_links/{web_link_id}",
        "fields",
        "the description names `fields` on a web link's trash and restore but not on the \
         web link itself; Box's `fields` rule holds for every item, and SDKs send it here \
         (the Java SDK's `BoxWebLink.getInfo(fields)`)",
    ),
    (
        "OPTIONS",
        "/events",
        "stream_type",
        "boxfs asks for the realtime server of the stream it follows (`changes`); Box ignores \
     query parameters it does not know, and the URL it answers carries a stream_type",
    ),
];

/// A request carrying this header breaks Box's description on purpose (a test of the
/// emulator's own 400s): its mismatches are expected, and it is a violation if it has none.
pub const EXPECT_INVALID: &str = "x-emulator-expect-invalid";

/// Request bodies up to this size are buffered and checked.
pub const MAX_CHECKED_BODY: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
    Header,
}

struct Param {
    name: String,
    location: Location,
    required: bool,
    /// Index in the converted operation's `parameters`, where its schema is.
    index: usize,
    /// The schema's type (the first non-null one), for reading text values.
    kind: String,
    /// For arrays: the items' type.
    item_kind: String,
}

/// What one operation's requests may carry.
#[derive(Default)]
pub(super) struct RequestShape {
    params: Vec<Param>,
    /// Documented body media types (lowercase), each with its schema in the converted doc.
    media_types: Vec<String>,
}

fn first_type(schema: &Value) -> String {
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_string(),
        _ => "string".to_string(),
    }
}

impl RequestShape {
    /// Reads an OpenAPI operation's parameters and request body; returns the shape and the
    /// converted `parameters` and `requestBody` members for the converted document.
    pub(super) fn convert(op: &Value) -> (RequestShape, Map<String, Value>) {
        let mut shape = RequestShape::default();
        let mut out = Map::new();
        let mut params_out = Vec::new();
        for p in op
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => Location::Path,
                Some("query") => Location::Query,
                Some("header") => Location::Header,
                _ => continue,
            };
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let mut schema = p.get("schema").cloned().unwrap_or(json!({}));
            super::convert_schema(&mut schema);
            let items = schema.get("items");
            let items_are_objects = items.is_some_and(|i| {
                i.get("$ref").is_some() || i.get("type") == Some(&json!("object"))
            });
            shape.params.push(Param {
                name: name.to_string(),
                location,
                required: p.get("required") == Some(&Value::Bool(true))
                    || location == Location::Path,
                index: params_out.len(),
                kind: first_type(&schema),
                item_kind: if items_are_objects {
                    "json".to_string()
                } else {
                    items.map(first_type).unwrap_or_default()
                },
            });
            params_out.push(json!({ "schema": schema }));
        }
        out.insert("parameters".into(), Value::Array(params_out));
        if let Some(content) = op
            .pointer("/requestBody/content")
            .and_then(Value::as_object)
        {
            let mut content_out = Map::new();
            for (media_type, body) in content {
                let mut schema = body.get("schema").cloned().unwrap_or(json!({}));
                patch_request_defects(op, &mut schema);
                super::convert_schema(&mut schema);
                shape.media_types.push(media_type.to_ascii_lowercase());
                content_out.insert(media_type.to_ascii_lowercase(), json!({ "schema": schema }));
            }
            out.insert(
                "requestBody".into(),
                json!({ "content": Value::Object(content_out) }),
            );
        }
        (shape, out)
    }
}

/// Request bodies Box accepts where its description says otherwise. `op` is the operation
/// object; its `operationId` names it.
fn patch_request_defects(op: &Value, schema: &mut Value) {
    match op.get("operationId").and_then(Value::as_str) {
        // Committing a session takes the new file's `attributes` (content times), as Box's
        // own SDKs send them; the description lists only `parts`.
        Some("post_files_upload_sessions_id_commit") => {
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert(
                    "attributes".into(),
                    json!({"type": "object", "properties": {
                        "name": {"type": "string"},
                        "content_created_at": {"type": "string", "format": "date-time"},
                        "content_modified_at": {"type": "string", "format": "date-time"},
                        "description": {"type": "string"},
                    }}),
                );
            }
        }
        // Token requests: boxsdk adds `box_device_id`/`box_device_name` (fields of Box's
        // OAuth 2.0 guide), and standard OAuth libraries (rclone's) repeat `redirect_uri`
        // on a refresh, as RFC 6749 allows.
        Some("post_oauth2_token") | Some("post_oauth2_token#refresh") => {
            let documented = schema.take();
            *schema = json!({"allOf": [documented, {"properties": {
                "box_device_id": {"type": "string"},
                "box_device_name": {"type": "string"},
                "redirect_uri": {"type": "string"},
            }}]});
        }
        // A new file's attributes may carry its description, as boxsdk sends it
        // (`upload(file_description=…)`) and Box stores it.
        Some("post_files_content") => {
            if let Some(props) = schema
                .pointer_mut("/properties/attributes/properties")
                .and_then(Value::as_object_mut)
            {
                props.insert("description".into(), json!({"type": "string"}));
            }
        }
        // boxsdk repeats the file's id in the body of a new-version session; Box ignores it.
        Some("post_files_id_upload_sessions") => {
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("file_id".into(), json!({"type": "string"}));
            }
        }
        // A new version keeps the file's name unless one is given: Box's reference calls
        // `name` optional here, though the schema lists it as required.
        Some("post_files_id_content") => {
            if let Some(attributes) = schema.pointer_mut("/properties/attributes") {
                if let Some(Value::Array(required)) = attributes.get_mut("required") {
                    required.retain(|r| r != "name");
                }
            }
        }
        // The lock's schema requires `type`, which it does not define; its property is
        // `access: "lock"`. Box takes either spelling (older SDKs send `type: "lock"`), so
        // one of the two is required and both are known.
        Some("put_files_id") | Some("put_folders_id") => {
            // boxsdk sets a file's content time with an update, and Box applies it.
            if op.get("operationId") == Some(&json!("put_files_id")) {
                if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert(
                        "content_modified_at".into(),
                        json!({"type": "string", "format": "date-time"}),
                    );
                }
            }
            if let Some(lock) = schema.pointer_mut("/properties/lock") {
                if let Some(m) = lock.as_object_mut() {
                    m.remove("required");
                    m.insert(
                        "anyOf".into(),
                        json!([{"required": ["access"]}, {"required": ["type"]}]),
                    );
                    if let Some(props) = m.get_mut("properties").and_then(Value::as_object_mut) {
                        props.insert("type".into(), json!({"type": "string", "enum": ["lock"]}));
                    }
                }
            }
        }
        _ => {}
    }
}

impl Operation {
    fn op_pointer(&self) -> String {
        format!(
            "{DOC_URI}#/paths/{}/{}",
            fragment_escape(&self.key),
            self.method
        )
    }
}

/// The request as the checks see it.
struct Seen<'a> {
    /// Route template (axum's matched path).
    template: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    /// The media type sent (lowercase, without parameters), if any.
    media_type: Option<String>,
    /// Whether a body was sent at all.
    has_body: bool,
    /// The body, when it was buffered.
    body: Option<Bytes>,
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

fn is_json_media(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Reads a text value (query or path) as the parameter's type; what does not read stays a
/// string, so the schema check names the mismatch.
fn read_as(kind: &str, text: &str) -> Value {
    match kind {
        "integer" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(text)),
        "number" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| json!(text)),
        // Box reads booleans case-insensitively: boxsdk sends Python's `True`.
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(text),
        },
        _ => json!(text),
    }
}

fn read_param(param: &Param, text: &str) -> Value {
    if param.kind == "array" && param.item_kind == "json" {
        return serde_json::from_str(text).unwrap_or_else(|_| json!(text));
    }
    if param.name == "scope"
        && text
            .strip_prefix("enterprise_")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    {
        return json!("enterprise");
    }
    if param.kind == "array" {
        Value::Array(
            text.split(',')
                .map(|item| read_as(&param.item_kind, item.trim()))
                .collect(),
        )
    } else {
        read_as(&param.kind, text)
    }
}

/// The path parameters' values in order, by aligning the route with the request path.
fn path_values(template: &str, path: &str) -> Vec<String> {
    let route: Vec<&str> = template.split('/').collect();
    let sent: Vec<&str> = path.split('/').collect();
    route
        .iter()
        .zip(sent.iter())
        .filter(|(r, _)| r.starts_with('{'))
        .map(|(_, s)| percent_decode(s))
        .collect()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Names of an OpenAPI path key's parameters, in order.
fn key_param_names(key: &str) -> Vec<String> {
    let base = key.split('#').next().unwrap_or(key);
    base.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// Fields a schema knows at one level: gathered through `$ref`, `allOf`, `anyOf`, `oneOf`
/// and the `then`/`else` wrappers of the converted document.
#[derive(Default)]
struct Known<'a> {
    props: BTreeMap<&'a str, Vec<&'a Value>>,
    items: Vec<&'a Value>,
    /// Some schema accepts any field here.
    open: bool,
    /// Some schema names its fields here.
    described: bool,
}

fn gather<'a>(doc: &'a Value, schema: &'a Value, known: &mut Known<'a>, depth: usize) {
    let Value::Object(m) = schema else {
        if schema == &Value::Bool(true) {
            known.open = true;
        }
        return;
    };
    if depth > 32 {
        known.open = true;
        return;
    }
    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
        match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
            Some(target) => gather(doc, target, known, depth + 1),
            None => known.open = true,
        }
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        known.described = true;
        for (name, sub) in props {
            known.props.entry(name.as_str()).or_default().push(sub);
        }
    }
    match m.get("additionalProperties") {
        None | Some(Value::Bool(false)) => {}
        Some(_) => known.open = true,
    }
    let composite = ["$ref", "allOf", "anyOf", "oneOf", "then", "else"]
        .iter()
        .any(|k| m.contains_key(*k));
    if m.get("type") == Some(&json!("object")) && !m.contains_key("properties") && !composite {
        known.open = true;
    }
    if let Some(items) = m.get("items") {
        known.items.push(items);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = m.get(key) {
            for sub in subs {
                gather(doc, sub, known, depth + 1);
            }
        }
    }
    for key in ["then", "else"] {
        if let Some(sub) = m.get(key) {
            gather(doc, sub, known, depth + 1);
        }
    }
}

/// Fields of `instance` that none of `schemas` names, as `at/field` lines.
fn unknown_fields(
    doc: &Value,
    schemas: &[&Value],
    instance: &Value,
    at: &str,
    out: &mut Vec<String>,
) {
    let mut known = Known::default();
    for schema in schemas {
        gather(doc, schema, &mut known, 0);
    }
    match instance {
        Value::Object(fields) => {
            for (name, value) in fields {
                let here = format!("{at}/{name}");
                match known.props.get(name.as_str()) {
                    Some(subs) => unknown_fields(doc, subs, value, &here, out),
                    None if known.described && !known.open => {
                        out.push(format!("{here}: not a field Box's description names here"))
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) if !known.items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                unknown_fields(doc, &known.items, item, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A multipart body as an object: part name → JSON (for parts whose schema is an object)
/// or a placeholder string; and the part names in the order sent.
async fn multipart_instance(
    headers: &HeaderMap,
    body: &Bytes,
) -> std::result::Result<(Map<String, Value>, Vec<String>), String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let stream = futures_util::stream::once({
        let body = body.clone();
        async move { Ok::<Bytes, std::io::Error>(body) }
    });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut parts = Map::new();
    let mut order = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some();
        // Box takes the content from the part that carries a file name, whatever that
        // part is called (`file` in the description, `contents` in some clients).
        let name = if is_file { "file".to_string() } else { name };
        let bytes = field.bytes().await.map_err(|e| e.to_string())?;
        let value = if is_file {
            json!("(binary)")
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        order.push(name.clone());
        parts.insert(name, value);
    }
    Ok((parts, order))
}

impl Validator {
    /// Checks one request of the route `template` and hands it back unchanged (a buffered
    /// body is put back). Records the violations, and counts the request as checked or as
    /// going to a route listed in [`super::coverage::NOT_DESCRIBED`].
    pub async fn check_request(&self, template: &str, req: Request) -> Request {
        let method = req.method().as_str().to_string();
        let Some(variations) = self.operations_for(&method, template) else {
            // Whether the route should have been described is judged once it answered
            // (see `check_route`): a method the route does not serve is only a 405.
            return req;
        };
        self.coverage.request_checked();
        let (parts, body) = req.into_parts();
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
        let media = media_type(&parts.headers);
        let binary = media.as_deref() == Some("application/octet-stream");
        let (body, buffered) = match length {
            Some(n) if n > 0 && n <= MAX_CHECKED_BODY && !binary => {
                match axum::body::to_bytes(body, n as usize).await {
                    Ok(b) => (Body::from(b.clone()), Some(b)),
                    Err(e) => {
                        log::warn!("conformance: cannot read the request body of {template}: {e}");
                        (Body::empty(), None)
                    }
                }
            }
            _ => (body, None),
        };
        let seen = Seen {
            template,
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            media_type: media,
            has_body: length.is_some_and(|n| n > 0) || chunked,
            body: buffered,
        };
        let mut best: Option<Vec<String>> = None;
        for op in variations {
            let found = self.request_violations(op, &seen).await;
            if found.is_empty() {
                best = Some(found);
                break;
            }
            if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                best = Some(found);
            }
        }
        let found = best.unwrap_or_default();
        if let Some(swallowed) = self
            .expecting_invalid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            *swallowed += u64::from(!found.is_empty());
        } else if parts.headers.contains_key(EXPECT_INVALID) {
            // A test sending bad input on purpose: the request must indeed break the
            // description, or the test no longer tests what it says.
            if found.is_empty() {
                self.record(&[format!(
                    "{method} {template}: request marked {EXPECT_INVALID}, but it conforms"
                )]);
            }
        } else {
            self.record(&found);
        }
        Request::from_parts(parts, body)
    }

    /// After a routed API call answered: a route without an operation in the description
    /// must be listed in [`super::coverage::NOT_DESCRIBED`] (then it counts as skipped).
    pub fn check_route(&self, method: &str, template: &str, path: &str) {
        if !super::coverage::is_api_path(path) || self.operations_for(method, template).is_some() {
            return;
        }
        if super::coverage::not_described(method, template).is_some() {
            self.coverage.request_skipped();
        } else {
            self.record(&[format!(
                "{method} {template}: (route): Box's OpenAPI description has no such \
                 operation, and the route is not listed in NOT_DESCRIBED"
            )]);
        }
    }

    /// Starts (`true`) or ends (`false`) a stretch of requests that break the description
    /// on purpose (a test of the emulator's 400s): their mismatches are expected. Ending a
    /// stretch in which no request broke the description is itself a violation.
    pub fn expect_invalid_requests(&self, on: bool) {
        let mut state = self
            .expecting_invalid
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (on, state.take()) {
            (true, _) => *state = Some(0),
            (false, Some(0)) => {
                drop(state);
                self.record(
                    &["a stretch of requests expected to break Box's description \
                    had none that did"
                        .to_string()],
                );
            }
            (false, _) => {}
        }
    }

    async fn request_violations(&self, op: &Operation, seen: &Seen<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let prefix = format!("{} {} request", op.method.to_ascii_uppercase(), op.key);
        let shape = &op.request;
        let param_pointer =
            |p: &Param| format!("{}/parameters/{}/schema", op.op_pointer(), p.index);

        // Path parameters, matched by position.
        let names = key_param_names(&op.key);
        for (name, text) in names.iter().zip(path_values(seen.template, seen.path)) {
            if let Some(p) = shape
                .params
                .iter()
                .find(|p| p.location == Location::Path && &p.name == name)
            {
                self.check_value(
                    &param_pointer(p),
                    &read_param(p, &text),
                    &format!("{prefix}: path `{name}`"),
                    &mut out,
                );
            }
        }

        // Query parameters: unknown, mistyped, missing.
        let mut sent = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(seen.query.as_bytes()) {
            sent.insert(k.into_owned(), v.into_owned());
        }
        for (name, text) in &sent {
            match shape
                .params
                .iter()
                .find(|p| p.location == Location::Query && &p.name == name)
            {
                Some(p) => self.check_value(
                    &param_pointer(p),
                    &read_param(p, text),
                    &format!("{prefix}: query `{name}`"),
                    &mut out,
                ),
                None if UNDESCRIBED_QUERY.iter().any(|(m, k, p, _)| {
                    m.eq_ignore_ascii_case(&op.method) && op.key == *k && p == name
                }) => {}
                None => out.push(format!(
                    "{prefix}: query `{name}`: not a parameter of this operation"
                )),
            }
        }
        for p in shape.params.iter().filter(|p| p.required) {
            let missing = match p.location {
                Location::Query => !sent.contains_key(&p.name),
                Location::Header => !seen.headers.contains_key(p.name.as_str()),
                Location::Path => false,
            };
            if missing {
                let place = if p.location == Location::Query {
                    "query"
                } else {
                    "header"
                };
                out.push(format!(
                    "{prefix}: {place} `{}`: required, not sent",
                    p.name
                ));
            }
        }

        // The body.
        if !seen.has_body {
            return out;
        }
        // Box reads a body sent without a Content-Type as JSON (boxsdk sends its JSON
        // bodies so); anything else needs one.
        let media = match seen.media_type.clone() {
            Some(m) => m,
            None if shape.media_types.iter().any(|m| m == "application/json") => {
                "application/json".to_string()
            }
            None => {
                out.push(format!("{prefix}: (body): sent without a Content-Type"));
                return out;
            }
        };
        if shape.media_types.is_empty() {
            out.push(format!(
                "{prefix}: (body): this operation takes no body, but a {media} body was sent"
            ));
            return out;
        }
        if !shape.media_types.contains(&media) {
            out.push(format!(
                "{prefix}: (body): content type {media} is not documented (documented: {})",
                shape.media_types.join(", ")
            ));
            return out;
        }
        let Some(bytes) = &seen.body else {
            return out;
        };
        let instance = if is_json_media(&media) {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(v) => v,
                Err(e) => {
                    out.push(format!(
                        "{prefix}: (body): not JSON although sent as {media}: {e}"
                    ));
                    return out;
                }
            }
        } else if media == "application/x-www-form-urlencoded" {
            Value::Object(
                url::form_urlencoded::parse(bytes)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect(),
            )
        } else if media == "multipart/form-data" {
            match multipart_instance(seen.headers, bytes).await {
                Ok((parts, order)) => {
                    let at = |n: &str| order.iter().position(|p| p == n);
                    if let (Some(a), Some(f)) = (at("attributes"), at("file")) {
                        if a > f {
                            out.push(format!(
                                "{prefix}: (body): the `attributes` part must come before the `file` part"
                            ));
                        }
                    }
                    Value::Object(parts)
                }
                Err(e) => {
                    out.push(format!(
                        "{prefix}: (body): not a readable multipart body: {e}"
                    ));
                    return out;
                }
            }
        } else {
            return out;
        };
        let pointer = format!(
            "{}/requestBody/content/{}/schema",
            op.op_pointer(),
            fragment_escape(&media)
        );
        let mut body_errors = Vec::new();
        self.check_value(&pointer, &instance, "", &mut body_errors);
        // Box takes `null` for an optional field as "not given" (boxsdk sends unset content
        // times as null); a null where a value is required still fails as a missing field.
        out.extend(
            body_errors
                .into_iter()
                .filter(|l| !l.contains(": null is not of type"))
                .map(|l| format!("{prefix}: (body){l}")),
        );
        let schema_path = format!(
            "/paths/{}/{}/requestBody/content/{}/schema",
            pointer_escape(&op.key),
            op.method,
            pointer_escape(&media)
        );
        if let Some(schema) = self.spec.doc.pointer(&schema_path) {
            let mut unknown = Vec::new();
            unknown_fields(&self.spec.doc, &[schema], &instance, "", &mut unknown);
            out.extend(unknown.into_iter().map(|l| format!("{prefix}: (body){l}")));
        }
        out
    }

    /// Validates `instance` against the schema at `pointer`, adding `at: error` lines.
    fn check_value(&self, pointer: &str, instance: &Value, at: &str, out: &mut Vec<String>) {
        let Some(validator) = self.compiled(pointer) else {
            out.push(format!("{at}: the schema does not compile"));
            return;
        };
        for e in validator
            .iter_errors(instance)
            .take(super::MAX_ERRORS_PER_RESPONSE)
        {
            let path = e.instance_path.as_str();
            out.push(format!("{at}{path}: {}", super::truncate(&e.to_string())));
        }
    }
}

/// Escapes one JSON-pointer segment (for `Value::pointer`, not a URI fragment).
fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> Validator {
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
        Validator::load(&path).expect("the description loads")
    }

    async fn check(
        method: &str,
        route: &str,
        uri: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let v = validator();
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        if !body.is_empty() {
            b = b.header(header::CONTENT_LENGTH, body.len());
        }
        let req = b.body(Body::from(body.to_vec())).expect("request");
        let req = v.check_request(route, req).await;
        // The body is handed on unchanged.
        let sent = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(&sent[..], body);
        v.violations()
    }

    #[tokio::test]
    async fn a_conforming_update_passes_and_unknown_fields_are_named() {
        let route = "/2.0/files/{file_id}";
        let ok = br#"{"name": "a.txt", "parent": {"id": "0"}, "lock": {"access": "lock"}}"#;
        let v = check(
            "PUT",
            route,
            "/2.0/files/12?fields=name,etag",
            Some("application/json"),
            ok,
        )
        .await;
        assert!(v.is_empty(), "{v:#?}");
        let bad = br#"{"name": "a.txt", "parent": {"id": "0", "color": "red"}, "colour": 1}"#;
        let v = check("PUT", route, "/2.0/files/12", Some("application/json"), bad).await;
        assert_eq!(
            v,
            [
                "PUT /files/{file_id} request: (body)/parent/color: not a field Box's description names here",
                "PUT /files/{file_id} request: (body)/colour: not a field Box's description names here",
            ]
        );
        // A mistyped field and an unknown query parameter.
        let v = check(
            "PUT",
            route,
            "/2.0/files/12?feilds=name",
            Some("application/json"),
            br#"{"name": 5}"#,
        )
        .await;
        assert!(
            v.iter()
                .any(|l| l.contains("query `feilds`: not a parameter")),
            "{v:#?}"
        );
        assert!(
            v.iter()
                .any(|l| l.contains("(body)/name: 5 is not of type")),
            "{v:#?}"
        );
    }

    #[tokio::test]
    async fn query_values_are_read_as_their_types() {
        let route = "/2.0/folders/{folder_id}/items";
        let v = check(
            "GET",
            route,
            "/2.0/folders/0/items?limit=10&usemarker=True&fields=name,size",
            None,
            b"",
        )
        .await;
        assert!(v.is_empty(), "{v:#?}");
        let v = check(
            "GET",
            route,
            "/2.0/folders/0/items?limit=ten&direction=UP",
            None,
            b"",
        )
        .await;
        assert_eq!(v.len(), 2, "{v:#?}");
        // `enterprise_<id>` is the enterprise scope.
        let v = check(
            "GET",
            "/2.0/files/{file_id}/metadata/{scope}/{template_key}",
            "/2.0/files/1/metadata/enterprise_42/contract",
            None,
            b"",
        )
        .await;
        assert!(v.is_empty(), "{v:#?}");
        let v = check(
            "GET",
            "/2.0/files/{file_id}/metadata/{scope}/{template_key}",
            "/2.0/files/1/metadata/galaxy/contract",
            None,
            b"",
        )
        .await;
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[tokio::test]
    async fn multipart_attributes_are_checked_and_must_come_first() {
        let body = |first: (&str, &str), second: (&str, &str)| {
            let part = |(name, content): (&str, &str)| {
                let file = if name == "file" {
                    "; filename=\"a.txt\""
                } else {
                    ""
                };
                format!("--XX\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n{content}\r\n")
            };
            format!("{}{}--XX--\r\n", part(first), part(second)).into_bytes()
        };
        let ct = Some("multipart/form-data; boundary=XX");
        let route = "/api/2.0/files/content";
        let attributes = r#"{"name": "a.txt", "parent": {"id": "0"}}"#;
        let v = check(
            "POST",
            route,
            "/api/2.0/files/content",
            ct,
            &body(("attributes", attributes), ("file", "hello")),
        )
        .await;
        assert!(v.is_empty(), "{v:#?}");
        let v = check(
            "POST",
            route,
            "/api/2.0/files/content",
            ct,
            &body(("file", "hello"), ("attributes", attributes)),
        )
        .await;
        assert_eq!(v, ["POST /files/content request: (body): the `attributes` part must come before the `file` part"]);
        let v = check(
            "POST",
            route,
            "/api/2.0/files/content",
            ct,
            &body(("attributes", r#"{"name": "a.txt"}"#), ("file", "x")),
        )
        .await;
        assert!(
            v.iter()
                .any(|l| l.contains("(body)/attributes: \"parent\" is a required property")),
            "{v:#?}"
        );
    }

    #[tokio::test]
    async fn a_marked_request_must_break_the_description() {
        let v = validator();
        let req = Request::builder()
            .method("GET")
            .uri("/2.0/users/me")
            .header(EXPECT_INVALID, "1")
            .body(Body::empty())
            .expect("request");
        v.check_request("/2.0/users/me", req).await;
        assert_eq!(v.violations().len(), 1, "{:#?}", v.violations());
        v.expect_invalid_requests(true);
        let req = Request::builder()
            .method("GET")
            .uri("/2.0/users/me?bogus=1")
            .body(Body::empty())
            .expect("request");
        v.check_request("/2.0/users/me", req).await;
        v.expect_invalid_requests(false);
        assert_eq!(
            v.violations().len(),
            1,
            "the expected mismatch is not recorded"
        );
        v.expect_invalid_requests(true);
        v.expect_invalid_requests(false);
        assert_eq!(v.violations().len(), 2, "an empty stretch is");
    }
}
