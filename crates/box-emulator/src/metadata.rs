//! Metadata: enterprise templates (`/metadata_templates/...`) and template instances on
//! files and folders (`/files/{file_id}/metadata/...`, `/folders/{folder_id}/metadata/...`).
//!
//! The global `properties` template always exists and takes any key (strings, numbers and
//! string lists): it is the natural store for extended attributes. Other templates take
//! only their fields, typed (string, float, integer, date, enum, multiSelect). Updates are
//! RFC 6902 JSON patches applied to a copy and validated as a whole, so a failing
//! operation changes nothing. Each change bumps the instance's `$version` and records a
//! METADATA_INSTANCE_* event; the item's own etag does not move (metadata is not content).

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::http::{json_body, json_response, no_content, opt_bool, opt_str, AppState, Ctx, Query};
use super::store::{
    Id, Item, ItemKind, MetadataInstance, MetadataTemplate, Role, Store, TemplateField,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2.0/metadata_templates", get(find_templates))
        .route("/2.0/metadata_templates/schema", post(create_template))
        .route("/2.0/metadata_templates/enterprise", get(list_enterprise))
        .route("/2.0/metadata_templates/global", get(list_global))
        .route("/2.0/metadata_templates/{template_id}", get(template_by_id))
        .route(
            "/2.0/metadata_templates/{scope}/{template_key}/schema",
            get(get_template).delete(delete_template),
        )
        .route("/2.0/files/{file_id}/metadata", get(list_file))
        .route(
            "/2.0/files/{file_id}/metadata/{scope}/{template_key}",
            get(get_file)
                .post(create_file)
                .put(update_file)
                .delete(delete_file),
        )
        .route("/2.0/folders/{folder_id}/metadata", get(list_folder))
        .route(
            "/2.0/folders/{folder_id}/metadata/{scope}/{template_key}",
            get(get_folder)
                .post(create_folder)
                .put(update_folder)
                .delete(delete_folder),
        )
}

/// `enterprise` is shorthand for the caller's `enterprise_<id>` scope.
pub fn full_scope(store: &Store, scope: &str) -> String {
    if scope == "enterprise" {
        format!("enterprise_{}", store.enterprise_id)
    } else {
        scope.to_string()
    }
}

pub fn instance_json(item: &Item, inst: &MetadataInstance) -> Value {
    let mut v = json!({
        "$id": inst.id,
        "$type": format!("{}-{}", inst.template, &inst.id[..8.min(inst.id.len())]),
        "$parent": format!("{}_{}", item.kind.as_str(), item.id),
        "$scope": inst.scope,
        "$template": inst.template,
        "$version": inst.version,
        "$typeVersion": inst.type_version,
        "$canEdit": true,
    });
    for (k, val) in &inst.values {
        v[k.as_str()] = val.clone();
    }
    v
}

/// The instances a copy of `item` carries (for the copy endpoints): those whose template
/// sets `copyInstanceOnItemCopy`, as fresh instances at `$version` 0. Box copies no
/// metadata otherwise, `global.properties` included.
pub fn instances_for_copy(store: &Store, item: &Item) -> BTreeMap<String, MetadataInstance> {
    item.metadata
        .iter()
        .filter(|(_, inst)| {
            find_template(store, &inst.scope, &inst.template)
                .is_some_and(|t| t.copy_instance_on_item_copy)
        })
        .map(|(k, inst)| {
            let mut copy = inst.clone();
            copy.id = uuid::Uuid::new_v4().to_string();
            copy.version = 0;
            (k.clone(), copy)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Templates

const PROPERTIES: &str = "properties";

/// The free-form `global.properties` template, which every Box account has.
fn properties_template() -> MetadataTemplate {
    MetadataTemplate {
        id: "00000000-0000-4000-8000-000000000001".into(),
        scope: "global".into(),
        template_key: PROPERTIES.into(),
        display_name: "Properties".into(),
        hidden: false,
        copy_instance_on_item_copy: false,
        fields: Vec::new(),
    }
}

/// A path scope: `global`, `enterprise` or this enterprise's `enterprise_<id>`; else 400.
fn checked_scope(store: &Store, scope: &str) -> ApiResult<String> {
    let full = full_scope(store, scope);
    if full == "global" || full == format!("enterprise_{}", store.enterprise_id) {
        Ok(full)
    } else {
        Err(ApiError::new(
            400,
            "bad_request",
            format!("Invalid scope '{scope}': expected 'global' or 'enterprise'"),
        ))
    }
}

fn template_store_key(scope: &str, key: &str) -> String {
    format!("{scope}/{key}")
}

/// The template at a full scope and key (the built-in `global.properties` included).
fn find_template(store: &Store, scope: &str, key: &str) -> Option<MetadataTemplate> {
    if scope == "global" && key == PROPERTIES {
        return Some(properties_template());
    }
    store
        .templates
        .get(&template_store_key(scope, key))
        .cloned()
}

fn is_free_form(tpl: &MetadataTemplate) -> bool {
    tpl.scope == "global" && tpl.template_key == PROPERTIES
}

fn field_json(f: &TemplateField) -> Value {
    let mut v = json!({
        "id": f.id,
        "type": f.field_type,
        "key": f.key,
        "displayName": f.display_name,
        "hidden": f.hidden,
    });
    if let Some(d) = &f.description {
        v["description"] = json!(d);
    }
    if matches!(f.field_type.as_str(), "enum" | "multiSelect") {
        // Option ids are derived from the field id, so they stay stable.
        v["options"] = Value::Array(
            f.options
                .iter()
                .enumerate()
                .map(|(i, k)| json!({"id": format!("{}-{i}", f.id), "key": k}))
                .collect(),
        );
    }
    v
}

pub fn template_json(t: &MetadataTemplate) -> Value {
    json!({
        "id": t.id,
        "type": "metadata_template",
        "scope": t.scope,
        "templateKey": t.template_key,
        "displayName": t.display_name,
        "hidden": t.hidden,
        "fields": t.fields.iter().map(field_json).collect::<Vec<_>>(),
        "copyInstanceOnItemCopy": t.copy_instance_on_item_copy,
    })
}

fn is_template_admin(store: &Store, user: Id) -> ApiResult<bool> {
    Ok(matches!(
        store.user(user)?.role,
        Role::Admin | Role::Coadmin | Role::ServiceAccount
    ))
}

/// Box's rule for template keys: a letter or `_`, then letters, digits, `-` and `_`.
fn valid_template_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A key derived from a display name when none is given ("Customer Info" → customerInfo).
fn key_from_display_name(name: &str) -> String {
    let mut out = String::new();
    for (i, word) in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if i == 0 {
            out.push_str(&word.to_ascii_lowercase());
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out.truncate(64);
    out
}

fn parse_field(v: &Value, index: usize) -> ApiResult<TemplateField> {
    let name = format!("fields[{index}]");
    let Value::Object(f) = v else {
        return Err(ApiError::invalid_parameter(
            &name,
            format!("'{name}' must be an object"),
        ));
    };
    let field_type = opt_str(f, "type")?
        .ok_or_else(|| ApiError::invalid_parameter(&name, format!("'{name}.type' is required")))?;
    if !matches!(
        field_type.as_str(),
        "string" | "float" | "date" | "enum" | "multiSelect" | "integer"
    ) {
        return Err(ApiError::invalid_parameter(
            &name,
            format!("'{name}.type' must be one of string, float, date, enum, multiSelect"),
        ));
    }
    let display_name = opt_str(f, "displayName")?.ok_or_else(|| {
        ApiError::invalid_parameter(&name, format!("'{name}.displayName' is required"))
    })?;
    // Without a key, Box derives one from the display name (as for template keys).
    let key = opt_str(f, "key")?
        .unwrap_or_else(|| key_from_display_name(&display_name))
        .to_string();
    if key.is_empty() || key.len() > 256 || key.starts_with('$') {
        return Err(ApiError::invalid_parameter(
            &name,
            format!("'{name}.key' must be 1 to 256 characters, not starting with '$'"),
        ));
    }
    let mut options = Vec::new();
    match f.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Array(opts)) => {
            for o in opts {
                let k = o.get("key").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid_parameter(
                        &name,
                        format!("every option of '{name}' needs a string 'key'"),
                    )
                })?;
                if options.iter().any(|x| x == k) {
                    return Err(ApiError::invalid_parameter(
                        &name,
                        format!("duplicate option '{k}' in '{name}'"),
                    ));
                }
                options.push(k.to_string());
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                &name,
                format!("'{name}.options' must be an array"),
            ))
        }
    }
    Ok(TemplateField {
        id: uuid::Uuid::new_v4().to_string(),
        field_type,
        key,
        display_name,
        description: opt_str(f, "description")?,
        hidden: opt_bool(f, "hidden")?.unwrap_or(false),
        options,
    })
}

/// `POST /metadata_templates/schema`: admins and service accounts create enterprise templates.
async fn create_template(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let scope = opt_str(&body, "scope")?
        .ok_or_else(|| ApiError::invalid_parameter("scope", "'scope' is required"))?;
    let display_name = opt_str(&body, "displayName")?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::invalid_parameter("displayName", "'displayName' is required"))?;
    if display_name.chars().count() > 4096 {
        return Err(ApiError::invalid_parameter(
            "displayName",
            "'displayName' is at most 4096 characters",
        ));
    }
    let key = match opt_str(&body, "templateKey")? {
        Some(k) => k,
        None => key_from_display_name(&display_name),
    };
    if !valid_template_key(&key) {
        return Err(ApiError::invalid_parameter(
            "templateKey",
            "'templateKey' must match ^[a-zA-Z_][-a-zA-Z0-9_]*$ and be at most 64 characters",
        ));
    }
    let mut fields: Vec<TemplateField> = Vec::new();
    match body.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, f) in list.iter().enumerate() {
                let field = parse_field(f, i)?;
                if fields.iter().any(|x| x.key == field.key) {
                    return Err(ApiError::invalid_parameter(
                        "fields",
                        format!("duplicate field key '{}'", field.key),
                    ));
                }
                fields.push(field);
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "fields",
                "'fields' must be an array",
            ))
        }
    }
    let hidden = opt_bool(&body, "hidden")?.unwrap_or(false);
    let copy = opt_bool(&body, "copyInstanceOnItemCopy")?.unwrap_or(false);

    let mut store = ctx.shared.store();
    if !is_template_admin(&store, ctx.user)? {
        return Err(ApiError::forbidden(
            "forbidden",
            "Creating metadata templates needs an admin or a service account",
        ));
    }
    let full = full_scope(&store, &scope);
    if full != format!("enterprise_{}", store.enterprise_id) {
        return Err(ApiError::invalid_parameter(
            "scope",
            "'scope' must be 'enterprise': global templates cannot be created",
        ));
    }
    let store_key = template_store_key(&full, &key);
    if store.templates.contains_key(&store_key) {
        return Err(ApiError::new(
            409,
            "conflict",
            format!("A metadata template with the key '{key}' already exists"),
        ));
    }
    let tpl = MetadataTemplate {
        id: uuid::Uuid::new_v4().to_string(),
        scope: full,
        template_key: key,
        display_name,
        hidden,
        copy_instance_on_item_copy: copy,
        fields,
    };
    let out = template_json(&tpl);
    store.templates.insert(store_key, tpl);
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

/// `GET /metadata_templates/{scope}/{template_key}/schema`.
async fn get_template(ctx: Ctx, Path((scope, key)): Path<(String, String)>) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let full = checked_scope(&store, &scope)?;
    let tpl = find_template(&store, &full, &key).ok_or_else(template_not_found)?;
    Ok(json_response(200, template_json(&tpl)))
}

/// `DELETE /metadata_templates/{scope}/{template_key}/schema`: the template and every
/// instance of it go.
async fn delete_template(
    ctx: Ctx,
    Path((scope, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut store = ctx.shared.store();
    let full = checked_scope(&store, &scope)?;
    if !is_template_admin(&store, ctx.user)? {
        return Err(ApiError::forbidden(
            "forbidden",
            "Deleting metadata templates needs an admin or a service account",
        ));
    }
    if full == "global" {
        return Err(ApiError::forbidden(
            "forbidden",
            "Global metadata templates cannot be deleted",
        ));
    }
    let store_key = template_store_key(&full, &key);
    if store.templates.remove(&store_key).is_none() {
        return Err(template_not_found());
    }
    for item in store.items.values_mut() {
        item.metadata.remove(&store_key);
    }
    ctx.shared.changed(&store);
    Ok(no_content())
}

fn template_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found",
        "Not Found: the metadata template does not exist",
    )
}

/// A page of templates (`limit` up to 1000, `marker` = offset of the next page).
fn template_page(q: &Query, all: Vec<MetadataTemplate>) -> ApiResult<Response> {
    let limit = super::http::query_u64(q, "limit", 100)?.clamp(1, 1000) as usize;
    let start = match q.get("marker").filter(|m| !m.is_empty()) {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_parameter("marker", "'marker' is not valid"))?,
    };
    let entries: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(template_json)
        .collect();
    let next = (start + limit < all.len()).then(|| (start + limit).to_string());
    Ok(json_response(
        200,
        json!({"limit": limit, "next_marker": next, "prev_marker": Value::Null, "entries": entries}),
    ))
}

/// `GET /metadata_templates/enterprise`.
async fn list_enterprise(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let scope = format!("enterprise_{}", store.enterprise_id);
    let all = store
        .templates
        .values()
        .filter(|t| t.scope == scope)
        .cloned()
        .collect();
    template_page(&q, all)
}

/// `GET /metadata_templates/global`.
async fn list_global(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let mut all = vec![properties_template()];
    all.extend(
        store
            .templates
            .values()
            .filter(|t| t.scope == "global")
            .cloned(),
    );
    template_page(&q, all)
}

/// `GET /metadata_templates/{template_id}`.
async fn template_by_id(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let builtin = properties_template();
    let tpl = if builtin.id == id {
        builtin
    } else {
        store
            .templates
            .values()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(template_not_found)?
    };
    Ok(json_response(200, template_json(&tpl)))
}

/// `GET /metadata_templates?metadata_instance_id=..`: the template of an instance.
async fn find_templates(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let id = q
        .get("metadata_instance_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "metadata_instance_id",
                "'metadata_instance_id' is required",
            )
        })?;
    let store = ctx.shared.store();
    let found = store
        .items
        .values()
        .filter(|i| store.can_access(ctx.user, i.id))
        .flat_map(|i| i.metadata.values())
        .find(|inst| &inst.id == id)
        .and_then(|inst| find_template(&store, &inst.scope, &inst.template));
    template_page(&q, found.into_iter().collect())
}

// ---------------------------------------------------------------------------------------
// Values

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "schema_validation_failed", message)
}

/// Box stores dates as UTC with milliseconds, e.g. `2024-01-31T00:00:00.000Z`.
fn normalize_date(s: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| {
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    })
}

/// Checks (and normalizes) one value for a template field.
fn check_field_value(field: &TemplateField, v: &Value) -> ApiResult<Value> {
    let key = &field.key;
    let bad = |what: &str| invalid(format!("Value for field '{key}' must be {what}"));
    match field.field_type.as_str() {
        "string" => v
            .is_string()
            .then(|| v.clone())
            .ok_or_else(|| bad("a string")),
        "float" => v
            .is_number()
            .then(|| v.clone())
            .ok_or_else(|| bad("a number")),
        "integer" => (v.is_i64() || v.is_u64())
            .then(|| v.clone())
            .ok_or_else(|| bad("an integer")),
        "date" => v
            .as_str()
            .and_then(normalize_date)
            .map(Value::String)
            .ok_or_else(|| bad("an RFC 3339 date-time")),
        "enum" => match v.as_str() {
            Some(s) if field.options.iter().any(|o| o == s) => Ok(v.clone()),
            _ => Err(bad(&format!(
                "one of the options {}",
                field.options.join(", ")
            ))),
        },
        "multiSelect" => match v.as_array() {
            Some(list)
                if list.iter().all(|x| {
                    x.as_str()
                        .is_some_and(|s| field.options.iter().any(|o| o == s))
                }) =>
            {
                Ok(v.clone())
            }
            _ => Err(bad(&format!(
                "a list of the options {}",
                field.options.join(", ")
            ))),
        },
        other => Err(invalid(format!(
            "Field '{key}' has the type '{other}', which cannot be set"
        ))),
    }
}

/// Checks a whole set of instance values against its template; returns them normalized.
fn check_values(
    tpl: &MetadataTemplate,
    values: &Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in values {
        if k.starts_with('$') {
            return Err(invalid(format!(
                "'{k}': keys starting with '$' are reserved"
            )));
        }
        if is_free_form(tpl) {
            if k.is_empty() {
                return Err(invalid("Keys of global.properties cannot be empty"));
            }
            let ok = match v {
                Value::String(_) | Value::Number(_) => true,
                Value::Array(list) => list.iter().all(Value::is_string),
                _ => false,
            };
            if !ok {
                return Err(invalid(format!(
                    "Value for '{k}' must be a string, a number or a list of strings"
                )));
            }
            out.insert(k.clone(), v.clone());
        } else {
            let field = tpl.fields.iter().find(|f| &f.key == k).ok_or_else(|| {
                invalid(format!(
                    "'{k}' is not a field of the template '{}'",
                    tpl.template_key
                ))
            })?;
            out.insert(k.clone(), check_field_value(field, v)?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// JSON Patch (RFC 6902) over an instance's values

enum PatchError {
    /// Not a valid patch document or operation: 400 bad_request.
    Malformed(String),
    /// A path that does not exist: 400 bad_request.
    Missing(String),
    /// A `test` that did not match: 409 conflict.
    TestFailed(String),
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> ApiError {
        match e {
            PatchError::Malformed(m) | PatchError::Missing(m) => ApiError::bad_request(m),
            PatchError::TestFailed(m) => ApiError::new(409, "conflict", m),
        }
    }
}

/// A JSON Pointer split into unescaped tokens (`~1` is `/`, `~0` is `~`).
fn pointer(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Err(PatchError::Malformed(
            "A patch path must name a key, e.g. '/name'".into(),
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError::Malformed(format!(
            "Invalid JSON pointer '{path}': it must start with '/'"
        )));
    };
    rest.split('/')
        .map(|t| {
            if t.chars()
                .zip(t.chars().skip(1))
                .any(|(a, b)| a == '~' && b != '0' && b != '1')
                || t.ends_with('~')
            {
                return Err(PatchError::Malformed(format!(
                    "Invalid escape in JSON pointer '{path}'"
                )));
            }
            Ok(t.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if allow_end && token == "-" {
        return Some(len);
    }
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let i: usize = token.parse().ok()?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (i <= max && (allow_end || len > 0)).then_some(i)
}

fn get_at<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(array_index(t, a.len(), false)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get_at_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn missing(path: &str) -> PatchError {
    PatchError::Missing(format!("The path '{path}' does not exist in the instance"))
}

fn add(doc: &mut Value, tokens: &[String], path: &str, value: Value) -> Result<(), PatchError> {
    let (last, parent) = tokens.split_last().ok_or_else(|| missing(path))?;
    match get_at_mut(doc, parent).ok_or_else(|| missing(path))? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true).ok_or_else(|| missing(path))?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, tokens: &[String], path: &str) -> Result<Value, PatchError> {
    let (last, parent) = tokens.split_last().ok_or_else(|| missing(path))?;
    match get_at_mut(doc, parent).ok_or_else(|| missing(path))? {
        Value::Object(m) => m.shift_remove(last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false).ok_or_else(|| missing(path))?;
            Ok(a.remove(i))
        }
        _ => Err(missing(path)),
    }
}

/// JSON equality with numbers compared by value (1 equals 1.0), as RFC 6902 `test` asks.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Applies a patch document to a copy of `values`; the original is untouched on failure.
fn apply_patch(
    tpl: &MetadataTemplate,
    values: &Map<String, Value>,
    patch: &Value,
) -> Result<Map<String, Value>, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Malformed(
            "The request body must be a JSON array of JSON Patch operations".into(),
        ));
    };
    let mut doc = Value::Object(values.clone());
    for (i, op) in ops.iter().enumerate() {
        let Value::Object(op) = op else {
            return Err(PatchError::Malformed(format!(
                "Operation {i} is not a JSON object"
            )));
        };
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("Operation {i} has no string 'op'")))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("Operation {i} has no string 'path'")))?;
        let tokens = pointer(path)?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                PatchError::Malformed(format!("Operation {i} ('{kind}') needs a 'value'"))
            })
        };
        let from = || -> Result<(String, Vec<String>), PatchError> {
            let f = op.get("from").and_then(Value::as_str).ok_or_else(|| {
                PatchError::Malformed(format!("Operation {i} ('{kind}') needs a string 'from'"))
            })?;
            Ok((f.to_string(), pointer(f)?))
        };
        match kind {
            "add" => add(&mut doc, &tokens, path, value()?)?,
            "remove" => {
                remove(&mut doc, &tokens, path)?;
            }
            "replace" => {
                let v = value()?;
                let slot = get_at_mut(&mut doc, &tokens).ok_or_else(|| missing(path))?;
                *slot = v;
            }
            "test" => {
                let mut want = value()?;
                // Dates are stored normalized; compare a tested date the same way.
                if let (Some(field), Some(s)) = (
                    tpl.fields
                        .iter()
                        .find(|f| tokens.len() == 1 && f.key == tokens[0]),
                    want.as_str(),
                ) {
                    if field.field_type == "date" {
                        if let Some(n) = normalize_date(s) {
                            want = Value::String(n);
                        }
                    }
                }
                let have = get_at(&doc, &tokens).ok_or_else(|| {
                    PatchError::TestFailed(format!("Test failed: '{path}' does not exist"))
                })?;
                if !json_eq(have, &want) {
                    return Err(PatchError::TestFailed(format!(
                        "Test failed: the value at '{path}' is not {want}"
                    )));
                }
            }
            "move" => {
                let (f, ftokens) = from()?;
                if tokens.len() > ftokens.len() && tokens[..ftokens.len()] == ftokens[..] {
                    return Err(PatchError::Malformed(format!(
                        "Cannot move '{f}' into itself ('{path}')"
                    )));
                }
                let v = remove(&mut doc, &ftokens, &f)?;
                add(&mut doc, &tokens, path, v)?;
            }
            "copy" => {
                let (f, ftokens) = from()?;
                let v = get_at(&doc, &ftokens).cloned().ok_or_else(|| missing(&f))?;
                add(&mut doc, &tokens, path, v)?;
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "Operation {i} has an unknown op '{other}': expected add, remove, replace, test, move or copy"
                )))
            }
        }
    }
    match doc {
        Value::Object(m) => Ok(m),
        _ => Err(PatchError::Malformed(
            "The patch must leave an object".into(),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Instances on files and folders

/// The item an instance request is about, checked for access (and not the root folder).
fn target(store: &Store, user: Id, raw: &str, kind: ItemKind) -> ApiResult<Id> {
    let id = store.resolve(user, raw, kind)?;
    if store.item(id)?.is_root() {
        return Err(ApiError::forbidden(
            "forbidden",
            "This operation is not allowed on the root folder",
        ));
    }
    Ok(id)
}

/// The collaboration role `user` has on an item (nearest collaboration up the tree).
fn collab_role(store: &Store, user: Id, id: Id) -> Option<String> {
    let mut cur = Some(id);
    while let Some(c) = cur {
        let item = store.items.get(&c)?;
        if let Some(col) = item.collaborations.iter().find(|c| c.user == user) {
            return Some(col.role.clone());
        }
        cur = item.parent;
    }
    None
}

/// Changing metadata needs edit rights, and a file locked by someone else refuses it.
fn check_can_edit(store: &Store, user: Id, id: Id) -> ApiResult<()> {
    let item = store.item(id)?;
    if item.owner != user {
        let role = collab_role(store, user, id).unwrap_or_default();
        if !matches!(role.as_str(), "editor" | "co-owner" | "owner") {
            return Err(ApiError::forbidden(
                "access_denied_insufficient_permissions",
                "Access denied - insufficient permission to change this item's metadata",
            ));
        }
    }
    if item.kind == ItemKind::File {
        if let Some(lock) = item.lock.as_ref().filter(|l| l.is_active(Utc::now())) {
            if lock.created_by != user {
                return Err(ApiError::forbidden(
                    "access_denied_item_locked",
                    "Access denied - the item is locked by another user",
                ));
            }
        }
    }
    Ok(())
}

fn instance_not_found() -> ApiError {
    ApiError::new(
        404,
        "instance_not_found",
        "Instance not found: the metadata template was not applied to this item",
    )
}

async fn list(ctx: Ctx, raw: String, kind: ItemKind) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = target(&store, ctx.user, &raw, kind)?;
    let item = store.item(id)?;
    let entries: Vec<Value> = item
        .metadata
        .values()
        .map(|inst| instance_json(item, inst))
        .collect();
    // No pagination: every instance comes back.
    Ok(json_response(
        200,
        json!({"entries": entries, "limit": 100}),
    ))
}

async fn get_one(
    ctx: Ctx,
    raw: String,
    scope: String,
    key: String,
    kind: ItemKind,
) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = target(&store, ctx.user, &raw, kind)?;
    let full = checked_scope(&store, &scope)?;
    let item = store.item(id)?;
    let inst = item
        .metadata
        .get(&template_store_key(&full, &key))
        .ok_or_else(instance_not_found)?;
    // The spec documents 201 here; Box answers 200.
    Ok(json_response(200, instance_json(item, inst)))
}

async fn create(
    ctx: Ctx,
    raw: String,
    scope: String,
    key: String,
    kind: ItemKind,
    body: Bytes,
) -> ApiResult<Response> {
    let values = json_body(&body)?;
    let mut store = ctx.shared.store();
    let id = target(&store, ctx.user, &raw, kind)?;
    let full = checked_scope(&store, &scope)?;
    let tpl = find_template(&store, &full, &key).ok_or_else(|| {
        ApiError::new(
            404,
            "instance_tuple_not_found",
            format!("Template not found: there is no metadata template '{scope}.{key}'"),
        )
    })?;
    check_can_edit(&store, ctx.user, id)?;
    let store_key = template_store_key(&full, &key);
    if store.item(id)?.metadata.contains_key(&store_key) {
        return Err(ApiError::new(
            409,
            "tuple_already_exists",
            "An instance of the metadata template already exists on the item",
        ));
    }
    let values = check_values(&tpl, &values)?;
    let inst = MetadataInstance {
        id: uuid::Uuid::new_v4().to_string(),
        scope: full,
        template: key,
        version: 0,
        type_version: 0,
        values,
    };
    let now = Utc::now();
    let item = store.item_mut(id)?;
    item.metadata.insert(store_key, inst.clone());
    let out = instance_json(item, &inst);
    store.item_event(Action::CreateMetadata, ctx.user, id, now);
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

async fn update(
    ctx: Ctx,
    raw: String,
    scope: String,
    key: String,
    kind: ItemKind,
    body: Bytes,
) -> ApiResult<Response> {
    let content_type = ctx.header("content-type").unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let patch = serde_json::from_slice::<Value>(&body)
        .map_err(|e| ApiError::bad_request(format!("Could not parse the JSON Patch body: {e}")))?;
    let mut store = ctx.shared.store();
    let id = target(&store, ctx.user, &raw, kind)?;
    let full = checked_scope(&store, &scope)?;
    if mime != "application/json-patch+json" {
        return Err(ApiError::bad_request(format!(
            "Metadata updates need 'Content-Type: application/json-patch+json', not '{content_type}'"
        )));
    }
    let store_key = template_store_key(&full, &key);
    let current = store
        .item(id)?
        .metadata
        .get(&store_key)
        .cloned()
        .ok_or_else(instance_not_found)?;
    let tpl = find_template(&store, &full, &key).ok_or_else(instance_not_found)?;
    check_can_edit(&store, ctx.user, id)?;
    let patched = apply_patch(&tpl, &current.values, &patch)?;
    let values = check_values(&tpl, &patched)?;
    let now = Utc::now();
    let item = store.item_mut(id)?;
    let inst = item
        .metadata
        .get_mut(&store_key)
        .ok_or_else(instance_not_found)?;
    inst.values = values;
    inst.version += 1;
    let inst = inst.clone();
    let out = instance_json(item, &inst);
    store.item_event(Action::UpdateMetadata, ctx.user, id, now);
    ctx.shared.changed(&store);
    Ok(json_response(200, out))
}

async fn delete(
    ctx: Ctx,
    raw: String,
    scope: String,
    key: String,
    kind: ItemKind,
) -> ApiResult<Response> {
    let mut store = ctx.shared.store();
    let id = target(&store, ctx.user, &raw, kind)?;
    let full = checked_scope(&store, &scope)?;
    let store_key = template_store_key(&full, &key);
    if !store.item(id)?.metadata.contains_key(&store_key) {
        return Err(instance_not_found());
    }
    check_can_edit(&store, ctx.user, id)?;
    store.item_mut(id)?.metadata.remove(&store_key);
    store.item_event(Action::DeleteMetadata, ctx.user, id, Utc::now());
    ctx.shared.changed(&store);
    Ok(no_content())
}

type InstancePath = Path<(String, String, String)>;

async fn list_file(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    list(ctx, id, ItemKind::File).await
}
async fn list_folder(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    list(ctx, id, ItemKind::Folder).await
}
async fn get_file(ctx: Ctx, Path((id, s, k)): InstancePath) -> ApiResult<Response> {
    get_one(ctx, id, s, k, ItemKind::File).await
}
async fn get_folder(ctx: Ctx, Path((id, s, k)): InstancePath) -> ApiResult<Response> {
    get_one(ctx, id, s, k, ItemKind::Folder).await
}
async fn create_file(ctx: Ctx, Path((id, s, k)): InstancePath, body: Bytes) -> ApiResult<Response> {
    create(ctx, id, s, k, ItemKind::File, body).await
}
async fn create_folder(
    ctx: Ctx,
    Path((id, s, k)): InstancePath,
    body: Bytes,
) -> ApiResult<Response> {
    create(ctx, id, s, k, ItemKind::Folder, body).await
}
async fn update_file(ctx: Ctx, Path((id, s, k)): InstancePath, body: Bytes) -> ApiResult<Response> {
    update(ctx, id, s, k, ItemKind::File, body).await
}
async fn update_folder(
    ctx: Ctx,
    Path((id, s, k)): InstancePath,
    body: Bytes,
) -> ApiResult<Response> {
    update(ctx, id, s, k, ItemKind::Folder, body).await
}
async fn delete_file(ctx: Ctx, Path((id, s, k)): InstancePath) -> ApiResult<Response> {
    delete(ctx, id, s, k, ItemKind::File).await
}
async fn delete_folder(ctx: Ctx, Path((id, s, k)): InstancePath) -> ApiResult<Response> {
    delete(ctx, id, s, k, ItemKind::Folder).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl() -> MetadataTemplate {
        properties_template()
    }

    #[test]
    fn pointer_escapes() {
        let t = pointer("/a~1b~0c").ok().unwrap();
        assert_eq!(t, vec!["a/b~c".to_string()]);
        assert!(pointer("a").is_err());
        assert!(pointer("/a~2").is_err());
    }

    #[test]
    fn patch_is_atomic_and_ordered() {
        let mut values = Map::new();
        values.insert("a".into(), json!("1"));
        let ok = apply_patch(
            &tpl(),
            &values,
            &json!([
                {"op": "test", "path": "/a", "value": "1"},
                {"op": "copy", "from": "/a", "path": "/b"},
                {"op": "move", "from": "/a", "path": "/c"},
                {"op": "add", "path": "/d", "value": ["x"]},
                {"op": "add", "path": "/d/-", "value": "y"},
            ]),
        )
        .ok()
        .unwrap();
        assert_eq!(
            Value::Object(ok),
            json!({"b": "1", "c": "1", "d": ["x", "y"]})
        );
        let failed = apply_patch(
            &tpl(),
            &values,
            &json!([
                {"op": "add", "path": "/z", "value": "1"},
                {"op": "test", "path": "/a", "value": "2"},
            ]),
        );
        assert!(matches!(failed, Err(PatchError::TestFailed(_))));
        assert!(matches!(
            apply_patch(
                &tpl(),
                &values,
                &json!([{"op": "replace", "path": "/nope", "value": 1}])
            ),
            Err(PatchError::Missing(_))
        ));
        assert!(matches!(
            apply_patch(&tpl(), &values, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn copies_carry_only_instances_of_templates_that_ask_for_it() {
        let mut store = Store::default();
        let mut tpl = properties_template();
        tpl.scope = "enterprise_1".into();
        tpl.template_key = "kept".into();
        tpl.copy_instance_on_item_copy = true;
        store.templates.insert("enterprise_1/kept".into(), tpl);
        let mut item = store.new_item(ItemKind::File, "a", 1, 1, 1, Utc::now());
        for (scope, key) in [("enterprise_1", "kept"), ("global", "properties")] {
            item.metadata.insert(
                format!("{scope}/{key}"),
                MetadataInstance {
                    id: uuid::Uuid::new_v4().to_string(),
                    scope: scope.into(),
                    template: key.into(),
                    version: 3,
                    type_version: 0,
                    values: Map::new(),
                },
            );
        }
        let copied = instances_for_copy(&store, &item);
        assert_eq!(copied.keys().collect::<Vec<_>>(), ["enterprise_1/kept"]);
        let c = &copied["enterprise_1/kept"];
        assert_eq!(c.version, 0);
        assert_ne!(c.id, item.metadata["enterprise_1/kept"].id);
    }

    #[test]
    fn keys_from_display_names() {
        assert_eq!(key_from_display_name("Customer Info"), "customerInfo");
        assert_eq!(key_from_display_name("2024 plan"), "_2024Plan");
        assert_eq!(key_from_display_name("SDK Check"), "sdkCheck");
        assert!(valid_template_key("customerInfo"));
        assert!(!valid_template_key("9abc"));
    }
}
