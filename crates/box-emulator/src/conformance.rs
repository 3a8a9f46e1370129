//! Conformance: every JSON response the emulator sends can be checked against the response
//! schema Box's OpenAPI 3.0 description gives for that path, method and status, and every
//! request against the operation's parameters and body (see `requests`). The
//! integration-test harness turns this on and fails a test on any mismatch, and on a run
//! whose calls no check saw (see `coverage`), so neither the emulator nor the clients run
//! against it can drift from what Box describes.
//!
//! OpenAPI 3.0 schemas are not plain JSON Schema, so the description is converted once at
//! load time and handed to the `jsonschema` crate as one in-memory resource:
//! - `nullable: true` becomes a real null branch (`type: [X, "null"]`, `null` in an `enum`,
//!   or `if {type: null} else <schema>` around `$ref`/`allOf`/`oneOf` wrappers; the `if/else`
//!   form, rather than `anyOf`, keeps the detailed errors of the non-null branch);
//! - OpenAPI-only annotations (`example`, `discriminator`, `xml`, `x-…`) are dropped;
//! - `oneOf` lists of object kinds are told apart by their `type` property, as Box means
//!   them, instead of failing when a body fits two overlapping branches (see `discriminate`);
//! - JSON Schema draft 7 is used: OAS 3.0 schemas use nothing where drafts 4 and 7 differ
//!   (no `id`, no boolean `exclusiveMinimum`), and draft 7 has `if`/`else`;
//! - a few known defects of the description are patched (see `patch_known_defects` and
//!   `fix_required_typo`).
//!
//! Each check validates against `{"$ref": "<doc>#/paths/<path>/<method>/responses/<status>/…"}`;
//! compiled validators are cached per schema location.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use jsonschema::{Draft, Registry};
use serde_json::{json, Map, Value};

use super::anyhow_like::{Result, StartError};

mod coverage;
mod requests;

pub use coverage::{Coverage, NOT_DESCRIBED};
pub use requests::{EXPECT_INVALID, MAX_CHECKED_BODY};

/// The URI under which the converted description is registered.
const DOC_URI: &str = "urn:box:openapi";
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];
/// At most this many lines are recorded for one response.
const MAX_ERRORS_PER_RESPONSE: usize = 10;
const MAX_MESSAGE_CHARS: usize = 300;

/// Statuses Box really answers where the description documents another one:
/// (method, OpenAPI path, real status, documented status).
const STATUS_ALIASES: &[(&str, &str, &str, &str)] = &[
    // GET of one metadata instance is documented as 201; Box answers 200.
    (
        "get",
        "/files/{file_id}/metadata/{scope}/{template_key}",
        "200",
        "201",
    ),
    (
        "get",
        "/folders/{folder_id}/metadata/{scope}/{template_key}",
        "200",
        "201",
    ),
];

/// One OpenAPI operation (a path key, possibly a `#variation`, and a method).
struct Operation {
    /// The OpenAPI path key, e.g. `/files/{file_id}#add_shared_link`.
    key: String,
    method: String,
    /// Every documented status (including `default`).
    statuses: BTreeSet<String>,
    /// Statuses with an `application/json` schema.
    json_statuses: BTreeSet<String>,
    /// What a request to this operation may carry (see `requests`).
    request: requests::RequestShape,
}

/// What a response is checked against, for one operation.
enum Choice {
    /// Validate against this status's schema.
    Schema(String),
    /// Documented, but without a JSON body schema: nothing to check.
    NoSchema,
    /// A success status the operation does not document.
    Undocumented,
}

impl Operation {
    fn choose(&self, status: u16) -> Choice {
        let s = status.to_string();
        let pick = |key: &str| {
            if self.json_statuses.contains(key) {
                Choice::Schema(key.to_string())
            } else {
                Choice::NoSchema
            }
        };
        if self.statuses.contains(&s) {
            return pick(&s);
        }
        for (m, p, real, documented) in STATUS_ALIASES {
            if *m == self.method && *p == self.key && *real == s {
                return pick(documented);
            }
        }
        // `default` describes errors; a success status that is not listed is a mismatch
        // of its own (a body of a success would never match ClientError anyway).
        if (200..400).contains(&status) {
            return Choice::Undocumented;
        }
        if self.statuses.contains("default") {
            return pick("default");
        }
        Choice::NoSchema
    }

    /// JSON pointer (as a URI fragment) of the response schema for a status key.
    fn pointer(&self, status: &str) -> String {
        format!(
            "{DOC_URI}#/paths/{}/{}/responses/{}/content/application~1json/schema",
            fragment_escape(&self.key),
            self.method,
            fragment_escape(status)
        )
    }
}

/// Escapes a JSON-pointer segment (`~0`, `~1`) and percent-encodes what a URI fragment
/// may not hold (`{`, `}`, `#`, spaces …).
fn fragment_escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 8);
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c if c.is_ascii_alphanumeric() || "-._!$&'()*+,;=:@".contains(c) => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// The OpenAPI path of a matched route: without the `/2.0` or `/api/2.0` prefix. OAuth
/// routes are described relative to their own servers: `account.box.com/api/oauth2` serves
/// `/authorize`, and the token endpoints are also answered under `/api/oauth2`.
fn openapi_path(template: &str) -> &str {
    if template.ends_with("/oauth2/authorize") {
        return "/authorize";
    }
    let path = template
        .strip_prefix("/api/2.0")
        .or_else(|| template.strip_prefix("/2.0"))
        .or_else(|| {
            template
                .strip_prefix("/api")
                .filter(|p| p.starts_with("/oauth2/"))
        })
        .unwrap_or(template);
    // Box's Python SDK sends its preflight to `/files/content/`: the same operation.
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

/// Path templates compare with their parameter names blanked: `/files/{}`.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Converts one OpenAPI 3.0 schema object into JSON Schema (draft 7), in place.
fn convert_schema(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    map.retain(|k, _| {
        !(k.starts_with("x-")
            || matches!(
                k.as_str(),
                "example" | "examples" | "discriminator" | "xml" | "externalDocs"
            ))
    });
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for sub in props.values_mut() {
            convert_schema(sub);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = map.get_mut(key) {
            convert_schema(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            for sub in subs {
                convert_schema(sub);
            }
        }
    }
    fix_required_typo(map);
    drop_undefined_required(map);
    let nullable = map.remove("nullable") == Some(Value::Bool(true));
    if !nullable {
        return;
    }
    let composite = ["$ref", "allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|k| map.contains_key(*k));
    let typed = matches!(map.get("type"), Some(Value::String(_)));
    let enumerated = matches!(map.get("enum"), Some(Value::Array(_)));
    if !composite && (typed || enumerated) {
        if let Some(Value::String(t)) = map.get("type").cloned() {
            map.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(e)) = map.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
    } else if !map.is_empty() {
        let inner = std::mem::take(map);
        map.insert("if".into(), json!({"type": "null"}));
        map.insert("else".into(), Value::Object(inner));
    }
}

/// The shared-link schemas require `accessed`, a typo for their `access` property (Box's
/// own examples have no `accessed`): require `access` instead.
fn fix_required_typo(map: &mut Map<String, Value>) {
    let has = |m: &Map<String, Value>, k: &str| {
        m.get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key(k))
    };
    if !has(map, "access") || has(map, "accessed") {
        return;
    }
    if let Some(Value::Array(required)) = map.get_mut("required") {
        for r in required.iter_mut() {
            if r == "accessed" {
                *r = json!("access");
            }
        }
    }
}

/// A plain object schema that requires a property it does not define cannot be met by
/// anything Box sends or accepts (`PostOAuth2Revoke` requires `grant_type`, which token
/// revocation does not take): such names are dropped from `required`.
fn drop_undefined_required(map: &mut Map<String, Value>) {
    let composite = ["$ref", "allOf", "anyOf", "oneOf", "additionalProperties"]
        .iter()
        .any(|k| map.contains_key(*k));
    let Some(Value::Object(props)) = map.get("properties") else {
        return;
    };
    if composite {
        return;
    }
    let defined: BTreeSet<String> = props.keys().cloned().collect();
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|r| r.as_str().is_some_and(|r| defined.contains(r)));
    }
}

/// Defects of Box's description that real Box (and so the emulator) does not follow.
fn patch_known_defects(schemas: &mut Map<String, Value>) {
    // `ClientError.code` lists only some codes; Box sends many more (item_name_in_use,
    // trashed, rate_limit_exceeded, …), so the code is an open string.
    if let Some(code) = schemas
        .get_mut("ClientError")
        .and_then(|s| s.pointer_mut("/properties/code"))
        .and_then(Value::as_object_mut)
    {
        code.remove("enum");
    }
    // A file or web link without a shared link has `"shared_link": null` at Box (folders
    // are typed so; files and web links carry `nullable` only inside an `allOf` member, which
    // does not make the whole nullable); Box's Python SDK reads the attribute after removing
    // a link, and Box's recorded web links (the Java SDK's fixtures) have null there.
    for kind in ["File", "WebLink"] {
        if let Some(link) = schemas
            .get_mut(kind)
            .and_then(|s| s.pointer_mut("/allOf/1/properties/shared_link"))
        {
            let inner = link.take();
            *link = json!({"if": {"type": "null"}, "else": inner});
        }
    }
    // Upload and preflight conflicts carry the conflicting file as ONE object at Box
    // (observed in real responses; rclone's Box backend decodes an object), while the
    // description says array: accept both. Files, folders and web links share one
    // namespace, so the item in the way may be a folder or a web link.
    if let Some(conflicts) = schemas
        .get_mut("ConflictError")
        .and_then(|s| s.pointer_mut("/allOf/1/properties/context_info/properties/conflicts"))
    {
        let array = conflicts.take();
        *conflicts = json!({"anyOf": [
            array,
            {"$ref": "#/components/schemas/FileConflict"},
            {"$ref": "#/components/schemas/Folder--Mini"},
            {"$ref": "#/components/schemas/WebLink--Mini"},
        ]});
    }
    // `tags` carries the request-side `minItems: 1`; an item without tags has `[]`.
    for schema in schemas.values_mut() {
        drop_tags_min_items(schema);
    }
}

fn drop_tags_min_items(schema: &mut Value) {
    fn strip(tags: &mut Value) {
        if let Value::Object(m) = tags {
            m.remove("minItems");
            for key in ["allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(subs)) = m.get_mut(key) {
                    subs.iter_mut().for_each(strip);
                }
            }
            if let Some(inner) = m.get_mut("else") {
                strip(inner);
            }
        }
    }
    match schema {
        Value::Object(m) => {
            if let Some(tags) = m.get_mut("properties").and_then(|p| p.get_mut("tags")) {
                strip(tags);
            }
            m.values_mut().for_each(drop_tags_min_items);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_tags_min_items),
        _ => {}
    }
}

/// The values a schema allows for an object's `type` property, looking through `$ref`s into
/// the component schemas, `allOf` members and nullable wrappers. Empty when unconstrained.
fn type_values(schemas: &Map<String, Value>, schema: &Value, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Value::Object(m) = schema else {
        return out;
    };
    if depth > 16 {
        return out;
    }
    if let Some(Value::Array(values)) = m
        .get("properties")
        .and_then(|p| p.get("type"))
        .and_then(|t| t.get("enum"))
    {
        out.extend(values.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(target) = m
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .and_then(|name| schemas.get(name))
    {
        out.extend(type_values(schemas, target, depth + 1));
    }
    if let Some(Value::Array(members)) = m.get("allOf") {
        for member in members {
            out.extend(type_values(schemas, member, depth + 1));
        }
    }
    if let Some(inner) = m.get("else") {
        out.extend(type_values(schemas, inner, depth + 1));
    }
    out
}

/// Box's description uses `oneOf` for "one of these kinds of object", told apart by their
/// `type` property, with overlapping branches (a file event source is a `File` and also a
/// catch-all `GenericSource`; an integer metadata value is also a number). Under JSON Schema
/// such a `oneOf` rejects valid bodies. So, where branches carry distinct `type` values, the
/// branch is chosen by `type` (`if type is "file" then File`, with the untyped branches as
/// the fallback for other types), which also keeps the chosen branch's detailed errors; any
/// other `oneOf` is treated as `anyOf`.
fn discriminate(schemas: &Map<String, Value>, value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| discriminate(schemas, v)),
        Value::Object(m) => {
            m.values_mut().for_each(|v| discriminate(schemas, v));
            for key in ["oneOf", "anyOf"] {
                let Some(Value::Array(branches)) = m.get(key) else {
                    continue;
                };
                let typed: Vec<BTreeSet<String>> = branches
                    .iter()
                    .map(|b| type_values(schemas, b, 0))
                    .collect();
                let mut seen = BTreeSet::new();
                let disjoint = typed
                    .iter()
                    .filter(|t| !t.is_empty())
                    .all(|t| t.iter().all(|v| seen.insert(v.clone())));
                if !disjoint || seen.is_empty() {
                    if key == "oneOf" {
                        if let Some(b) = m.remove("oneOf") {
                            m.insert("anyOf".into(), b);
                        }
                    }
                    continue;
                }
                let Some(Value::Array(branches)) = m.remove(key) else {
                    continue;
                };
                let is_type = |values: &BTreeSet<String>| json!({"required": ["type"], "properties": {"type": {"enum": values}}});
                let mut rules = Vec::new();
                let mut fallback = Vec::new();
                for (branch, values) in branches.into_iter().zip(typed) {
                    if values.is_empty() {
                        fallback.push(branch);
                    } else {
                        rules.push(json!({"if": is_type(&values), "then": branch}));
                    }
                }
                let otherwise = if fallback.is_empty() {
                    json!(false)
                } else {
                    json!({"anyOf": fallback})
                };
                rules.push(json!({"if": is_type(&seen), "else": otherwise}));
                match m.get_mut("allOf") {
                    Some(Value::Array(all)) => all.extend(rules),
                    _ => {
                        m.insert("allOf".into(), Value::Array(rules));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Builds the converted document: the component schemas and, per operation, the JSON
/// response schemas and the request's parameter and body schemas.
fn convert_document(spec: &Value) -> Result<(Value, Vec<Operation>)> {
    let mut schemas = spec
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| StartError("the OpenAPI description has no components.schemas".into()))?;
    for schema in schemas.values_mut() {
        convert_schema(schema);
    }
    patch_known_defects(&mut schemas);
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| StartError("the OpenAPI description has no paths".into()))?;
    let mut out_paths = Map::new();
    let mut operations = Vec::new();
    for (key, item) in paths {
        let mut out_item = Map::new();
        for method in METHODS {
            let Some(responses) = item
                .get(method)
                .and_then(|op| op.get("responses"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            let (request, request_doc) = requests::RequestShape::convert(&item[method]);
            let mut op = Operation {
                key: key.clone(),
                method: method.to_string(),
                statuses: BTreeSet::new(),
                json_statuses: BTreeSet::new(),
                request,
            };
            let mut out_responses = Map::new();
            for (status, response) in responses {
                op.statuses.insert(status.clone());
                if let Some(schema) = response.pointer("/content/application~1json/schema") {
                    let mut schema = schema.clone();
                    convert_schema(&mut schema);
                    out_responses.insert(
                        status.clone(),
                        json!({"content": {"application/json": {"schema": schema}}}),
                    );
                    op.json_statuses.insert(status.clone());
                }
            }
            let mut out_op = request_doc;
            out_op.insert("responses".into(), Value::Object(out_responses));
            out_item.insert(method.to_string(), Value::Object(out_op));
            operations.push(op);
        }
        out_paths.insert(key.clone(), Value::Object(out_item));
    }
    let mut paths = Value::Object(out_paths);
    let lookup = schemas.clone();
    for schema in schemas.values_mut() {
        discriminate(&lookup, schema);
    }
    discriminate(&lookup, &mut paths);
    let doc = json!({"components": {"schemas": schemas}, "paths": paths});
    Ok((doc, operations))
}

/// A converted description: immutable once loaded, shared by every validator loaded from the
/// same file in this process (the test suite starts many emulators).
struct Spec {
    registry: Registry,
    /// The converted document itself, for walks the validator cannot do (unknown fields).
    doc: Value,
    /// (method, normalized OpenAPI path without `#variation`) → operations (variations).
    operations: HashMap<(String, String), Vec<Operation>>,
    /// Schema location → compiled validator (`None`: the schema did not compile).
    compiled: Mutex<HashMap<String, Option<Arc<jsonschema::Validator>>>>,
}

/// Descriptions loaded so far: (path, modification time, length) → converted description.
type SpecCache = Mutex<HashMap<(PathBuf, Option<SystemTime>, u64), Arc<Spec>>>;

fn spec_cache() -> &'static SpecCache {
    static CACHE: OnceLock<SpecCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl Spec {
    fn new(spec: &Value) -> Result<Spec> {
        let (doc, ops) = convert_document(spec)?;
        let registry = Registry::options()
            .draft(Draft::Draft7)
            .build([(DOC_URI, Draft::Draft7.create_resource(doc.clone()))])
            .map_err(|e| StartError(format!("cannot register the OpenAPI description: {e}")))?;
        let mut operations: HashMap<(String, String), Vec<Operation>> = HashMap::new();
        for op in ops {
            let base = op.key.split('#').next().unwrap_or(&op.key);
            operations
                .entry((op.method.clone(), normalize(base)))
                .or_default()
                .push(op);
        }
        // The plain path first: its errors are the ones reported when no variation fits.
        for variations in operations.values_mut() {
            variations.sort_by_key(|op| (op.key.contains('#'), op.key.clone()));
        }
        Ok(Spec {
            registry,
            doc,
            operations,
            compiled: Mutex::new(HashMap::new()),
        })
    }
}

/// Checks responses against Box's OpenAPI description and collects the mismatches.
pub struct Validator {
    spec: Arc<Spec>,
    violations: Mutex<Vec<String>>,
    coverage: coverage::Counters,
    /// While `Some`: requests are expected to break the description; counts those that did.
    expecting_invalid: Mutex<Option<u64>>,
}

impl Validator {
    /// Loads and converts an OpenAPI 3.0 description (JSON); a description already loaded
    /// in this process is reused.
    pub fn load(path: &Path) -> Result<Validator> {
        let meta = std::fs::metadata(path).map_err(|e| {
            StartError(format!(
                "cannot read OpenAPI description {}: {e}",
                path.display()
            ))
        })?;
        let key = (
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            meta.modified().ok(),
            meta.len(),
        );
        // Held while loading, so parallel starts load the description once.
        let mut cache = spec_cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(spec) = cache.get(&key) {
            return Ok(Validator::with_spec(spec.clone()));
        }
        let text = std::fs::read(path).map_err(|e| {
            StartError(format!(
                "cannot read OpenAPI description {}: {e}",
                path.display()
            ))
        })?;
        let value: Value = serde_json::from_slice(&text).map_err(|e| {
            StartError(format!(
                "OpenAPI description {} is not JSON: {e}",
                path.display()
            ))
        })?;
        let spec = Arc::new(Spec::new(&value)?);
        cache.insert(key, spec.clone());
        Ok(Validator::with_spec(spec))
    }

    /// A validator for a description given as a value (not cached).
    pub fn from_spec(spec: &Value) -> Result<Validator> {
        Ok(Validator::with_spec(Arc::new(Spec::new(spec)?)))
    }

    fn with_spec(spec: Arc<Spec>) -> Validator {
        Validator {
            spec,
            violations: Mutex::new(Vec::new()),
            coverage: coverage::Counters::default(),
            expecting_invalid: Mutex::new(None),
        }
    }

    /// Checks one response of the route `template` (axum's matched path). JSON bodies are
    /// buffered, checked and sent on unchanged; anything else passes untouched. `partial`
    /// says the request named its `fields=`: Box then sends only those (plus type, id and
    /// etag), so the top-level `required` list does not apply.
    pub async fn check(
        &self,
        method: &Method,
        template: &str,
        partial: bool,
        response: Response,
    ) -> Response {
        if !is_json(response.headers()) || self.operations_for(method.as_str(), template).is_none()
        {
            return response;
        }
        self.coverage.response_checked();
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                log::warn!("conformance: cannot read the response body of {template}: {e}");
                return Response::from_parts(parts, Body::empty());
            }
        };
        let mut found = self.find_violations(method.as_str(), template, status, &bytes, partial);
        found.extend(undocumented_error_code(
            method.as_str(),
            template,
            status,
            &bytes,
        ));
        self.record(&found);
        Response::from_parts(parts, Body::from(bytes))
    }

    /// Checks one JSON body as if the route `template` had answered it with `status`,
    /// records the violations and returns them (empty when it conforms or is not covered).
    pub fn check_body(
        &self,
        method: &str,
        template: &str,
        status: u16,
        body: &[u8],
    ) -> Vec<String> {
        let found = self.find_violations(method, template, status, body, false);
        self.record(&found);
        found
    }

    fn record(&self, found: &[String]) {
        if !found.is_empty() {
            for line in found {
                log::warn!("conformance: {line}");
            }
            self.violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(found.iter().cloned());
        }
    }

    fn operations_for(&self, method: &str, template: &str) -> Option<&Vec<Operation>> {
        let key = (
            method.to_ascii_lowercase(),
            normalize(openapi_path(template)),
        );
        self.spec.operations.get(&key)
    }

    fn find_violations(
        &self,
        method: &str,
        template: &str,
        status: u16,
        body: &[u8],
        partial: bool,
    ) -> Vec<String> {
        let Some(variations) = self.operations_for(method, template) else {
            return Vec::new();
        };
        let method_uc = method.to_ascii_uppercase();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Vec::new();
        }
        let main = &variations[0].key;
        let instance: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return vec![format!(
                    "{method_uc} {main} {status}: (body): not JSON although sent as application/json: {e}"
                )]
            }
        };
        let mut candidates = Vec::new();
        let mut covered = false;
        for op in variations {
            match op.choose(status) {
                Choice::Schema(s) => candidates.push((op, s)),
                Choice::NoSchema => covered = true,
                Choice::Undocumented => {}
            }
        }
        if candidates.is_empty() {
            if covered {
                return Vec::new();
            }
            let documented: Vec<&str> = variations[0].statuses.iter().map(String::as_str).collect();
            return vec![format!(
                "{method_uc} {main} {status}: (status): {status} is not a documented status of this operation (documented: {})",
                documented.join(", ")
            )];
        }
        let mut best: Option<Vec<String>> = None;
        for (op, status_key) in candidates {
            let pointer = op.pointer(&status_key);
            let Some(validator) = self.compiled(&pointer) else {
                let line = format!(
                    "{method_uc} {} {status}: (schema): the response schema does not compile",
                    op.key
                );
                best.get_or_insert_with(|| vec![line]);
                continue;
            };
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .filter(|e| {
                    !(partial
                        && e.instance_path.as_str().is_empty()
                        && matches!(
                            e.kind,
                            jsonschema::error::ValidationErrorKind::Required { .. }
                        ))
                })
                .take(MAX_ERRORS_PER_RESPONSE)
                .map(|e| {
                    let at = e.instance_path.as_str();
                    let at = if at.is_empty() { "(body)" } else { at };
                    format!(
                        "{method_uc} {} {status}: {at}: {}",
                        op.key,
                        truncate(&e.to_string())
                    )
                })
                .collect();
            if errors.is_empty() {
                return Vec::new();
            }
            if best.as_ref().is_none_or(|b| errors.len() < b.len()) {
                best = Some(errors);
            }
        }
        best.unwrap_or_default()
    }

    /// The compiled validator for a schema location, compiled on first use.
    fn compiled(&self, pointer: &str) -> Option<Arc<jsonschema::Validator>> {
        if let Some(v) = self
            .spec
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pointer)
        {
            return v.clone();
        }
        let built = jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_registry(self.spec.registry.clone())
            .build(&json!({ "$ref": pointer }));
        let entry = match built {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                log::error!("conformance: cannot compile {pointer}: {e}");
                None
            }
        };
        self.spec
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pointer.to_string(), entry.clone());
        entry
    }

    /// Every mismatch recorded so far, one readable line each.
    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An error body whose `code` Box does not document for its status (see
/// [`super::error_codes`]).
fn undocumented_error_code(
    method: &str,
    template: &str,
    status: u16,
    body: &[u8],
) -> Option<String> {
    if status < 400 {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    if value.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let code = value.get("code").and_then(Value::as_str)?;
    (!super::error_codes::is_documented(status, code)).then(|| {
        format!(
            "{} {} {status}: /code: `{code}` is not an error code Box documents for {status} \
             (error_codes.rs)",
            method.to_ascii_uppercase(),
            openapi_path(template)
        )
    })
}

/// Shortens a message that quotes a large instance, keeping both ends (the instance starts
/// it, the reason ends it).
fn truncate(s: &str) -> String {
    let n = s.chars().count();
    if n <= MAX_MESSAGE_CHARS {
        return s.to_string();
    }
    let tail = MAX_MESSAGE_CHARS / 2;
    let head: String = s.chars().take(MAX_MESSAGE_CHARS - tail).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{head} … {end}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn validator() -> &'static Validator {
        static V: OnceLock<Validator> = OnceLock::new();
        V.get_or_init(|| {
            let path =
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
            Validator::load(&path).expect("the description loads")
        })
    }

    fn user_mini() -> Value {
        json!({"type": "user", "id": "11446498", "name": "Aaron Levie", "login": "ceo@example.com"})
    }

    fn file_full() -> Value {
        json!({
            "type": "file",
            "id": "12345",
            "etag": "1",
            "sequence_id": "3",
            "name": "Contract.pdf",
            "sha1": "85136c79cbf9fe36bb9d05d0639c70c265c18d37",
            "file_version": {"type": "file_version", "id": "12345", "sha1": "85136c79cbf9fe36bb9d05d0639c70c265c18d37"},
            "description": "Contract for Q1",
            "size": 629644,
            "path_collection": {"total_count": 1, "entries": [
                {"type": "folder", "id": "0", "sequence_id": null, "etag": null, "name": "All Files"}
            ]},
            "created_at": "2012-12-12T10:53:43-08:00",
            "modified_at": "2012-12-12T10:53:43-08:00",
            "trashed_at": null,
            "purged_at": null,
            "content_created_at": "2012-12-12T10:53:43-08:00",
            "content_modified_at": "2012-12-12T10:53:43-08:00",
            "created_by": user_mini(),
            "modified_by": user_mini(),
            "owned_by": user_mini(),
            "parent": {"type": "folder", "id": "0", "sequence_id": null, "etag": null, "name": "All Files"},
            "item_status": "active",
            "lock": null,
            "extension": "pdf",
            "tags": ["approved"],
        })
    }

    fn check(method: &str, template: &str, status: u16, body: &Value) -> Vec<String> {
        validator().find_violations(method, template, status, body.to_string().as_bytes(), false)
    }

    #[test]
    fn valid_file_passes() {
        let v = check("GET", "/2.0/files/{file_id}", 200, &file_full());
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn wrong_type_fails_naming_the_field() {
        let mut body = file_full();
        body["size"] = json!("629644");
        let v = check("GET", "/2.0/files/{file_id}", 200, &body);
        assert!(!v.is_empty());
        assert!(
            v.iter()
                .any(|l| l.starts_with("GET /files/{file_id} 200: /size: ")),
            "{v:#?}"
        );
    }

    #[test]
    fn nested_wrong_type_through_a_nullable_wrapper_is_named() {
        let mut body = file_full();
        body["lock"] = json!({"type": "lock", "id": 5, "created_at": "2012-12-12T10:53:43-08:00"});
        let v = check("GET", "/2.0/files/{file_id}", 200, &body);
        assert!(v.iter().any(|l| l.contains(": /lock/id: ")), "{v:#?}");
    }

    #[test]
    fn nullable_fields_accept_null() {
        let mut body = file_full();
        body["trashed_at"] = Value::Null;
        body["lock"] = Value::Null;
        body["expires_at"] = Value::Null;
        let v = check("GET", "/2.0/files/{file_id}", 200, &body);
        assert!(v.is_empty(), "{v:#?}");
        // A non-nullable field does not.
        let mut body = file_full();
        body["name"] = Value::Null;
        assert!(!check("GET", "/2.0/files/{file_id}", 200, &body).is_empty());
    }

    #[test]
    fn known_defects_are_patched() {
        // An item without tags has `"tags": []`.
        let mut body = file_full();
        body["tags"] = json!([]);
        let v = check("GET", "/2.0/files/{file_id}", 200, &body);
        assert!(v.is_empty(), "{v:#?}");
        body["tags"] = json!([1]);
        assert!(!check("GET", "/2.0/files/{file_id}", 200, &body).is_empty());
        // GET of one metadata instance answers 200 although documented as 201.
        let instance = json!({"$parent": "file_1", "$template": "properties", "$scope": "global",
            "$version": 0, "$id": "01234500-12f1-1234-aa12-b1d234cb567e", "$type": "properties-6bcba49f",
            "$typeVersion": 2, "$canEdit": true});
        let t = "/2.0/files/{file_id}/metadata/{scope}/{template_key}";
        assert!(check("GET", t, 200, &instance).is_empty());
        assert!(!check("GET", t, 200, &json!({"$id": 5})).is_empty());
    }

    #[test]
    fn date_time_format_is_checked() {
        let mut body = file_full();
        body["created_at"] = json!("yesterday");
        let v = check("GET", "/2.0/files/{file_id}", 200, &body);
        assert!(v.iter().any(|l| l.contains("/created_at")), "{v:#?}");
    }

    #[test]
    fn unknown_paths_are_skipped() {
        let body = json!({"anything": 1});
        assert!(check("GET", "/_emulator/knobs", 200, &body).is_empty());
        assert!(check("GET", "/subscribe", 200, &body).is_empty());
        assert!(check("PATCH", "/2.0/users/me", 200, &body).is_empty());
    }

    #[test]
    fn error_bodies_validate_against_client_error() {
        let good = json!({
            "type": "error", "status": 409, "code": "item_name_in_use",
            "message": "Item with the same name already exists",
            "context_info": {"conflicts": []},
            "help_url": "https://developer.box.com/", "request_id": "abc"
        });
        assert!(check("POST", "/2.0/folders", 409, &good).is_empty());
        assert!(check("GET", "/2.0/files/{file_id}", 404, &good).is_empty());
        let mut bad = good.clone();
        bad["status"] = json!("409");
        let v = check("POST", "/2.0/folders", 409, &bad);
        assert!(v.iter().any(|l| l.contains(": /status: ")), "{v:#?}");
        // Undocumented error statuses fall back to `default` (ClientError).
        let mut e418 = good.clone();
        e418["status"] = json!(418);
        assert!(check("GET", "/2.0/users/me", 418, &e418).is_empty());
    }

    #[test]
    fn undocumented_success_status_is_reported() {
        let v = check(
            "POST",
            "/2.0/folders",
            200,
            &json!({"type": "folder", "id": "1"}),
        );
        assert!(
            v.iter().any(|l| l.contains("not a documented status")),
            "{v:#?}"
        );
    }

    #[test]
    fn file_with_shared_link_passes() {
        // A body with a shared link is only described by the shared-link variations.
        let mut body = json!({"type": "file", "id": "1", "etag": "1"});
        body["shared_link"] = json!({
            "url": "https://app.box.com/s/abc", "download_url": null, "vanity_url": null,
            "vanity_name": null, "access": "open", "effective_access": "open",
            "effective_permission": "can_download", "unshared_at": null,
            "is_password_enabled": false,
            "permissions": {"can_download": true, "can_preview": true, "can_edit": false},
            "download_count": 0, "preview_count": 0
        });
        let v = check("PUT", "/2.0/files/{file_id}", 200, &body);
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn a_body_matching_any_variation_passes() {
        let schema = |req: &str| {
            json!({"content": {"application/json": {"schema": {
                "type": "object", "required": [req], "nullable": false
            }}}})
        };
        let spec = json!({
            "components": {"schemas": {}},
            "paths": {
                "/things/{thing_id}": {"put": {"responses": {"200": schema("a")}}},
                "/things/{thing_id}#variant": {"put": {"responses": {"200": schema("b")}}},
            }
        });
        let v = Validator::from_spec(&spec).expect("loads");
        let t = "/2.0/things/{thing_id}";
        assert!(v.check_body("PUT", t, 200, br#"{"a": 1}"#).is_empty());
        assert!(v.check_body("PUT", t, 200, br#"{"b": 1}"#).is_empty());
        let found = v.check_body("PUT", t, 200, br#"{"c": 1}"#);
        assert_eq!(
            found,
            vec![r#"PUT /things/{thing_id} 200: (body): "a" is a required property"#]
        );
    }

    #[test]
    fn one_of_branches_are_chosen_by_type() {
        let event = |source: Value| {
            json!({"chunk_size": 1, "next_stream_position": "5", "entries": [{
                "type": "event", "event_id": "f82c3ba03e41f7e8a7608363cc6c0390183c3f83",
                "created_by": user_mini(), "created_at": "2012-12-12T10:53:43-08:00",
                "recorded_at": "2012-12-12T10:53:43-08:00", "event_type": "ITEM_UPLOAD",
                "session_id": "70090280850c8d2a1933c1", "source": source
            }]})
        };
        // A file source is a File (and would also be a GenericSource under a plain oneOf).
        assert_eq!(
            check("GET", "/2.0/events", 200, &event(file_full())),
            Vec::<String>::new()
        );
        let mut bad = file_full();
        bad["size"] = json!("big");
        let v = check("GET", "/2.0/events", 200, &event(bad));
        assert!(
            v.iter().any(|l| l.contains(": /entries/0/source/size: ")),
            "{v:#?}"
        );
        // Sources of other kinds fall back to the untyped branches.
        let other = json!({"type": "collaboration", "id": "1"});
        assert_eq!(
            check("GET", "/2.0/events", 200, &event(other)),
            Vec::<String>::new()
        );

        // Overlapping untyped branches behave as anyOf.
        let spec = json!({
            "components": {"schemas": {}},
            "paths": {"/n": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"oneOf": [{"type": "number"}, {"type": "integer"}]}
            }}}}}}}
        });
        let v = Validator::from_spec(&spec).expect("loads");
        assert!(v.check_body("GET", "/2.0/n", 200, b"5").is_empty());
        assert!(!v.check_body("GET", "/2.0/n", 200, b"\"x\"").is_empty());
    }

    #[test]
    fn upload_prefix_and_param_names() {
        let body = json!({"total_count": 1, "entries": [file_full()]});
        assert!(check("POST", "/api/2.0/files/content", 201, &body).is_empty());
        let mut bad = body.clone();
        bad["entries"][0]["id"] = json!(12345);
        let v = check("POST", "/api/2.0/files/content", 201, &bad);
        assert!(v.iter().any(|l| l.contains("/entries/0/id")), "{v:#?}");
        // Parameter names do not matter for the lookup.
        assert!(!check("GET", "/2.0/files/{id}", 200, &json!({"size": "x"})).is_empty());
    }

    #[test]
    fn recorded_violations_are_kept() {
        let v = Validator::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json"),
        )
        .expect("loads");
        assert!(v.violations().is_empty());
        let found = v.check_body("GET", "/2.0/users/me", 200, br#"{"type":"user","id":7}"#);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(v.violations(), found);
        assert!(
            found[0].starts_with("GET /users/me 200: /id: "),
            "{found:#?}"
        );
    }

    #[test]
    fn error_codes_come_from_box_table() {
        let body = |status: u16, code: &str| {
            json!({"type": "error", "status": status, "code": code}).to_string()
        };
        let t = "/2.0/folders";
        assert_eq!(
            undocumented_error_code("POST", t, 409, body(409, "item_name_in_use").as_bytes()),
            None
        );
        let v = undocumented_error_code("POST", t, 404, body(404, "item_name_in_use").as_bytes());
        assert!(v.is_some_and(|l| l.starts_with("POST /folders 404: /code: `item_name_in_use`")));
        assert!(undocumented_error_code("POST", t, 400, body(400, "made_up").as_bytes()).is_some());
        // Not an error body, or not an error status: nothing to say.
        assert_eq!(undocumented_error_code("POST", t, 200, b"{}"), None);
        assert_eq!(
            undocumented_error_code("POST", t, 400, br#"{"error": "invalid_grant"}"#),
            None
        );
    }

    #[test]
    fn fragment_escaping() {
        assert_eq!(
            fragment_escape("/files/{file_id}"),
            "~1files~1%7Bfile_id%7D"
        );
        assert_eq!(fragment_escape("/a~b#c"), "~1a~0b%23c");
        assert_eq!(normalize("/files/{file_id}/x/{y}"), "/files/{}/x/{}");
        assert_eq!(openapi_path("/api/2.0/files/content"), "/files/content");
        assert_eq!(openapi_path("/2.0/users/me"), "/users/me");
        assert_eq!(openapi_path("/oauth2/token"), "/oauth2/token");
    }

    #[test]
    fn nullable_conversion() {
        let mut s = json!({"type": "string", "nullable": true, "example": "x"});
        convert_schema(&mut s);
        assert_eq!(s, json!({"type": ["string", "null"]}));
        let mut s = json!({"type": "string", "enum": ["a"], "nullable": true});
        convert_schema(&mut s);
        assert_eq!(s, json!({"type": ["string", "null"], "enum": ["a", null]}));
        let mut s = json!({"allOf": [{"$ref": "#/x"}], "nullable": true});
        convert_schema(&mut s);
        assert_eq!(
            s,
            json!({"if": {"type": "null"}, "else": {"allOf": [{"$ref": "#/x"}]}})
        );
        // Property names are not keywords.
        let mut s =
            json!({"properties": {"example": {"type": "string"}, "nullable": {"type": "boolean"}}});
        convert_schema(&mut s);
        assert_eq!(
            s,
            json!({"properties": {"example": {"type": "string"}, "nullable": {"type": "boolean"}}})
        );
    }
}
