//! Metadata on files and folders: instances of templates (list, get, create, update by
//! JSON Patch, delete) and the templates themselves (get a schema, list, create an
//! enterprise template).
//!
//! Box's rules kept here: a scope is `global`, `enterprise` (the caller's enterprise) or
//! `enterprise_<id>`; `global/properties` takes any keys, other templates only their
//! fields. Updates are RFC 6902 patches sent as `application/json-patch+json`; Box applies
//! them atomically, so a failing `test` (409) changes nothing. Keys in patch paths are JSON
//! Pointers, with `~` written `~0` and `/` written `~1`.

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::client::{Body, Client};
use super::error::{BoxError, BoxResult};
use super::users::check_id;

/// The free-form template every account has: any key, string/number/string-list values.
pub const GLOBAL_SCOPE: &str = "global";
pub const PROPERTIES_TEMPLATE: &str = "properties";

/// A file or folder that metadata hangs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemRef {
    File(String),
    Folder(String),
}

impl ItemRef {
    pub fn file(id: impl Into<String>) -> ItemRef {
        ItemRef::File(id.into())
    }
    pub fn folder(id: impl Into<String>) -> ItemRef {
        ItemRef::Folder(id.into())
    }

    fn base(&self) -> BoxResult<String> {
        match self {
            ItemRef::File(id) => {
                check_id(id)?;
                Ok(format!("/files/{id}/metadata"))
            }
            ItemRef::Folder(id) => {
                check_id(id)?;
                Ok(format!("/folders/{id}/metadata"))
            }
        }
    }

    fn instance_path(&self, scope: &str, template_key: &str) -> BoxResult<String> {
        check_scope(scope)?;
        check_template_key(template_key)?;
        Ok(format!("{}/{scope}/{template_key}", self.base()?))
    }
}

/// `global`, `enterprise` or `enterprise_<digits>`.
pub fn check_scope(scope: &str) -> BoxResult<()> {
    let ok = scope == "global"
        || scope == "enterprise"
        || scope
            .strip_prefix("enterprise_")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(BoxError::Invalid(format!(
            "'{scope}' is not a metadata scope (global, enterprise or enterprise_<id>)"
        )))
    }
}

/// Box's template keys: a letter or `_`, then letters, digits, `-` and `_`; at most 64.
pub fn check_template_key(key: &str) -> BoxResult<()> {
    let mut chars = key.chars();
    let ok = key.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BoxError::Invalid(format!(
            "'{key}' is not a metadata template key"
        )))
    }
}

/// A metadata key: not empty and not Box's own (`$…`).
fn check_key(key: &str) -> BoxResult<()> {
    if key.is_empty() || key.starts_with('$') {
        Err(BoxError::Invalid(format!(
            "'{key}' cannot be a metadata key (empty, or reserved with '$')"
        )))
    } else {
        Ok(())
    }
}

/// One template instance on an item: Box's `$` fields and the values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataInstance {
    #[serde(rename = "$id", default)]
    pub id: Option<String>,
    /// `file_<id>` or `folder_<id>`.
    #[serde(rename = "$parent", default)]
    pub parent: Option<String>,
    #[serde(rename = "$template", default)]
    pub template: String,
    /// `global` or `enterprise_<id>`.
    #[serde(rename = "$scope", default)]
    pub scope: String,
    /// Starts at 0; each change adds one.
    #[serde(rename = "$version", default)]
    pub version: Option<i64>,
    #[serde(rename = "$type", default)]
    pub type_name: Option<String>,
    #[serde(rename = "$typeVersion", default)]
    pub type_version: Option<i64>,
    #[serde(rename = "$canEdit", default)]
    pub can_edit: Option<bool>,
    /// The values, by key (Box's `$` fields removed).
    #[serde(flatten)]
    pub values: Map<String, Value>,
}

impl MetadataInstance {
    fn clean(mut self) -> MetadataInstance {
        self.values.retain(|k, _| !k.starts_with('$'));
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }
}

#[derive(Deserialize)]
struct Instances {
    #[serde(default)]
    entries: Vec<MetadataInstance>,
}

/// The JSON Pointer of a top-level key: `/` + the key with `~` → `~0`, `/` → `~1`.
pub fn json_pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// One RFC 6902 operation; paths are JSON Pointers (see [`json_pointer`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    /// Sets a key (overwriting a value that exists).
    Add {
        path: String,
        value: Value,
    },
    /// Changes a key that must exist.
    Replace {
        path: String,
        value: Value,
    },
    Remove {
        path: String,
    },
    /// Fails the whole patch unless the key holds this value.
    Test {
        path: String,
        value: Value,
    },
    Move {
        from: String,
        path: String,
    },
    Copy {
        from: String,
        path: String,
    },
}

/// A metadata update: operations on keys, applied by Box all or none.
///
/// ```
/// use box_client::metadata::MetadataPatch;
/// let patch = MetadataPatch::new()
///     .test("status", "draft")
///     .replace("status", "final")
///     .add("a/b", "keys are escaped")
///     .remove("obsolete");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataPatch {
    ops: Vec<PatchOp>,
    bad_key: Option<String>,
}

impl MetadataPatch {
    pub fn new() -> MetadataPatch {
        MetadataPatch::default()
    }

    fn key(&mut self, key: &str) -> String {
        if check_key(key).is_err() && self.bad_key.is_none() {
            self.bad_key = Some(key.to_string());
        }
        json_pointer(key)
    }

    pub fn add(mut self, key: &str, value: impl Into<Value>) -> Self {
        let path = self.key(key);
        self.ops.push(PatchOp::Add {
            path,
            value: value.into(),
        });
        self
    }
    pub fn replace(mut self, key: &str, value: impl Into<Value>) -> Self {
        let path = self.key(key);
        self.ops.push(PatchOp::Replace {
            path,
            value: value.into(),
        });
        self
    }
    pub fn remove(mut self, key: &str) -> Self {
        let path = self.key(key);
        self.ops.push(PatchOp::Remove { path });
        self
    }
    pub fn test(mut self, key: &str, value: impl Into<Value>) -> Self {
        let path = self.key(key);
        self.ops.push(PatchOp::Test {
            path,
            value: value.into(),
        });
        self
    }
    /// Moves the value of `from` to `to`.
    pub fn move_key(mut self, from: &str, to: &str) -> Self {
        let from = self.key(from);
        let path = self.key(to);
        self.ops.push(PatchOp::Move { from, path });
        self
    }
    /// Copies the value of `from` to `to`.
    pub fn copy_key(mut self, from: &str, to: &str) -> Self {
        let from = self.key(from);
        let path = self.key(to);
        self.ops.push(PatchOp::Copy { from, path });
        self
    }
    /// Any operation, paths already JSON Pointers.
    pub fn op(mut self, op: PatchOp) -> Self {
        self.ops.push(op);
        self
    }

    pub fn ops(&self) -> &[PatchOp] {
        &self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The patch document, checked.
    pub fn to_json(&self) -> BoxResult<Value> {
        if let Some(k) = &self.bad_key {
            check_key(k)?;
        }
        if self.ops.is_empty() {
            return Err(BoxError::Invalid(
                "a metadata update needs at least one operation".into(),
            ));
        }
        for op in &self.ops {
            let paths: Vec<&String> = match op {
                PatchOp::Add { path, .. }
                | PatchOp::Replace { path, .. }
                | PatchOp::Remove { path }
                | PatchOp::Test { path, .. } => vec![path],
                PatchOp::Move { from, path } | PatchOp::Copy { from, path } => vec![from, path],
            };
            for p in paths {
                if !p.starts_with('/') || p.len() < 2 {
                    return Err(BoxError::Invalid(format!(
                        "'{p}' is not a JSON Pointer to a metadata key"
                    )));
                }
            }
        }
        serde_json::to_value(&self.ops).map_err(|e| BoxError::Invalid(e.to_string()))
    }
}

/// The type of a template field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldType {
    String,
    Float,
    Date,
    Enum,
    MultiSelect,
    /// Deprecated by Box; read-only.
    Integer,
    Taxonomy,
    /// A type this client does not know yet.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldOption {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One field of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateField {
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub key: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    /// The choices of `enum` and `multiSelect` fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<FieldOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl TemplateField {
    pub fn new(
        field_type: FieldType,
        key: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Self {
        TemplateField {
            field_type,
            key: key.into(),
            display_name: display_name.into(),
            description: None,
            hidden: false,
            options: Vec::new(),
            id: None,
        }
    }

    /// The choices of an `enum` or `multiSelect` field.
    pub fn options<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.options = keys
            .into_iter()
            .map(|k| FieldOption {
                key: k.into(),
                id: None,
            })
            .collect();
        self
    }
}

/// A metadata template (its schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataTemplate {
    pub id: Option<String>,
    pub scope: String,
    pub template_key: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub fields: Vec<TemplateField>,
    #[serde(default)]
    pub copy_instance_on_item_copy: bool,
}

/// A template to create in the caller's enterprise (admins and service accounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate {
    /// Derived by Box from the display name when `None`.
    pub template_key: Option<String>,
    pub display_name: String,
    pub hidden: bool,
    /// Whether copies of an item carry the instance along.
    pub copy_instance_on_item_copy: bool,
    pub fields: Vec<TemplateField>,
}

impl NewTemplate {
    pub fn new(template_key: impl Into<String>, display_name: impl Into<String>) -> NewTemplate {
        NewTemplate {
            template_key: Some(template_key.into()),
            display_name: display_name.into(),
            hidden: false,
            copy_instance_on_item_copy: false,
            fields: Vec::new(),
        }
    }

    pub fn field(mut self, field: TemplateField) -> Self {
        self.fields.push(field);
        self
    }

    fn to_json(&self) -> BoxResult<Value> {
        if let Some(k) = &self.template_key {
            check_template_key(k)?;
        }
        if self.display_name.is_empty() || self.display_name.chars().count() > 4096 {
            return Err(BoxError::Invalid(
                "a template's display name has 1 to 4096 characters".into(),
            ));
        }
        for (i, f) in self.fields.iter().enumerate() {
            check_key(&f.key)?;
            if self.fields[..i].iter().any(|g| g.key == f.key) {
                return Err(BoxError::Invalid(format!(
                    "the template has two fields '{}'",
                    f.key
                )));
            }
            match f.field_type {
                FieldType::Unknown | FieldType::Integer | FieldType::Taxonomy => {
                    return Err(BoxError::Invalid(format!(
                        "field '{}': templates are made with string, float, date, enum or \
                         multiSelect fields",
                        f.key
                    )))
                }
                FieldType::Enum | FieldType::MultiSelect if f.options.is_empty() => {
                    return Err(BoxError::Invalid(format!(
                        "field '{}' needs options",
                        f.key
                    )))
                }
                _ => {}
            }
        }
        let mut v = json!({
            "scope": "enterprise",
            "displayName": self.display_name,
            "hidden": self.hidden,
            "copyInstanceOnItemCopy": self.copy_instance_on_item_copy,
            "fields": self.fields,
        });
        if let Some(k) = &self.template_key {
            v["templateKey"] = json!(k);
        }
        Ok(v)
    }
}

#[derive(Deserialize)]
struct TemplatePage {
    #[serde(default)]
    entries: Vec<MetadataTemplate>,
    next_marker: Option<String>,
}

/// Which templates to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateScope {
    /// The caller's enterprise.
    Enterprise,
    /// Box's own (`properties` and the like).
    Global,
}

impl Client {
    /// Every metadata instance on an item (Box returns them all; no paging).
    pub async fn metadata_list(&self, item: &ItemRef) -> BoxResult<Vec<MetadataInstance>> {
        let path = item.base()?;
        let list: Instances = self.json(self.api(Method::GET, &path)).await?;
        Ok(list
            .entries
            .into_iter()
            .map(MetadataInstance::clean)
            .collect())
    }

    /// One instance; 404 `instance_not_found` when the item has none of that template.
    pub async fn metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<MetadataInstance> {
        let path = item.instance_path(scope, template_key)?;
        let inst: MetadataInstance = self.json(self.api(Method::GET, &path)).await?;
        Ok(inst.clean())
    }

    /// Puts an instance on an item; 409 `tuple_already_exists` if there is one.
    pub async fn create_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        values: &Map<String, Value>,
    ) -> BoxResult<MetadataInstance> {
        let path = item.instance_path(scope, template_key)?;
        for k in values.keys() {
            check_key(k)?;
        }
        let inst: MetadataInstance = self
            .json(
                self.api(Method::POST, &path)
                    .json(Value::Object(values.clone())),
            )
            .await?;
        Ok(inst.clean())
    }

    /// Applies a patch to an instance, all or nothing (a failed `test` is 409 and
    /// leaves the instance as it was).
    pub async fn update_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        patch: &MetadataPatch,
    ) -> BoxResult<MetadataInstance> {
        let path = item.instance_path(scope, template_key)?;
        let doc = patch.to_json()?;
        let data = serde_json::to_vec(&doc).map_err(|e| BoxError::Invalid(e.to_string()))?;
        let inst: MetadataInstance = self
            .json(self.api(Method::PUT, &path).body(Body::Bytes {
                data: Bytes::from(data),
                content_type: "application/json-patch+json".into(),
            }))
            .await?;
        Ok(inst.clean())
    }

    /// Removes an instance from an item.
    pub async fn delete_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<()> {
        let path = item.instance_path(scope, template_key)?;
        self.empty(self.api(Method::DELETE, &path)).await
    }

    /// A template's schema.
    pub async fn metadata_template(
        &self,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<MetadataTemplate> {
        check_scope(scope)?;
        check_template_key(template_key)?;
        self.json(self.api(
            Method::GET,
            &format!("/metadata_templates/{scope}/{template_key}/schema"),
        ))
        .await
    }

    /// Every template of a scope (all pages).
    pub async fn metadata_templates(
        &self,
        scope: TemplateScope,
    ) -> BoxResult<Vec<MetadataTemplate>> {
        let path = match scope {
            TemplateScope::Enterprise => "/metadata_templates/enterprise",
            TemplateScope::Global => "/metadata_templates/global",
        };
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page: TemplatePage = self
                .json(
                    self.api(Method::GET, path)
                        .query("limit", 1000)
                        .query_opt("marker", marker.as_deref()),
                )
                .await?;
            out.extend(page.entries);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(m) if marker.as_deref() != Some(m.as_str()) => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    /// Creates a template in the caller's enterprise (admins and service accounts).
    pub async fn create_metadata_template(
        &self,
        template: &NewTemplate,
    ) -> BoxResult<MetadataTemplate> {
        let body = template.to_json()?;
        self.json(
            self.api(Method::POST, "/metadata_templates/schema")
                .json(body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_keys() {
        assert_eq!(json_pointer("plain"), "/plain");
        assert_eq!(json_pointer("a/b"), "/a~1b");
        assert_eq!(json_pointer("x~y"), "/x~0y");
        assert_eq!(json_pointer("~/"), "/~0~1");
    }

    #[test]
    fn patches_serialize_as_rfc6902() {
        let p = MetadataPatch::new()
            .test("status", "draft")
            .replace("status", "final")
            .add("a/b", 3)
            .remove("old")
            .move_key("x", "y")
            .copy_key("y", "z");
        assert_eq!(
            p.to_json().unwrap(),
            json!([
                {"op": "test", "path": "/status", "value": "draft"},
                {"op": "replace", "path": "/status", "value": "final"},
                {"op": "add", "path": "/a~1b", "value": 3},
                {"op": "remove", "path": "/old"},
                {"op": "move", "from": "/x", "path": "/y"},
                {"op": "copy", "from": "/y", "path": "/z"},
            ])
        );
        assert!(MetadataPatch::new().to_json().is_err());
        assert!(MetadataPatch::new().add("$id", 1).to_json().is_err());
        assert!(MetadataPatch::new().add("", 1).to_json().is_err());
    }

    #[test]
    fn scopes_and_keys() {
        for ok in ["global", "enterprise", "enterprise_123"] {
            assert!(check_scope(ok).is_ok(), "{ok}");
        }
        for bad in ["", "enterprise_", "enterprise_x", "Global", "../x"] {
            assert!(check_scope(bad).is_err(), "{bad}");
        }
        assert!(check_template_key("properties").is_ok());
        assert!(check_template_key("_a-b_1").is_ok());
        assert!(check_template_key("1abc").is_err());
        assert!(check_template_key("a/b").is_err());
        assert!(check_template_key(&"a".repeat(65)).is_err());
    }

    #[test]
    fn instances_drop_box_fields_from_values() {
        let v = json!({"$id": "u", "$template": "properties", "$scope": "global",
                       "$version": 2, "$hidden": false, "color": "blue"});
        let inst: MetadataInstance = serde_json::from_value(v).unwrap();
        let inst = inst.clean();
        assert_eq!(inst.version, Some(2));
        assert_eq!(inst.values.len(), 1);
        assert_eq!(inst.get("color"), Some(&json!("blue")));
    }
}
