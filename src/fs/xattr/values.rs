//! Values written: what a value set on the lock, the shared link or metadata asks for,
//! checked before anything is sent to Box (metadata against the template's fields and
//! types), and the JSON Patches that make a change guarded by what was read.

use std::ffi::OsStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::fs::errno::FsError;
use box_client::files::LockOptions;
use box_client::folders::SharedLinkAccess;
use box_client::metadata::{
    FieldType, MetadataPatch, MetadataTemplate, TemplateField, GLOBAL_SCOPE, PROPERTIES_TEMPLATE,
};

pub(super) fn invalid(message: impl Into<String>) -> FsError {
    FsError::new(libc::EINVAL, message)
}

fn text(value: &[u8]) -> Result<&str, FsError> {
    std::str::from_utf8(value)
        .map(str::trim)
        .map_err(|_| invalid("the value is not UTF-8"))
}

pub(super) fn parse_json(value: &[u8]) -> Result<Value, FsError> {
    serde_json::from_slice(value).map_err(|e| invalid(format!("the value is not JSON: {e}")))
}

/// What a value written to `user.box.lock` asks for: empty or `lock` for a lock without
/// expiry, or a JSON object.
pub fn parse_lock_value(value: &[u8]) -> Result<LockOptions, FsError> {
    let t = text(value)?;
    if t.is_empty() || t == "lock" {
        return Ok(LockOptions::default());
    }
    let Value::Object(obj) = parse_json(t.as_bytes())? else {
        return Err(invalid("a lock is 'lock' or a JSON object"));
    };
    let mut opts = LockOptions::default();
    for (k, v) in &obj {
        match (k.as_str(), v) {
            ("expires_at", Value::Null) => {}
            ("expires_at", Value::String(s)) => {
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|e| invalid(format!("expires_at '{s}': {e}")))?;
                opts.expires_at = Some(t.with_timezone(&Utc));
            }
            ("is_download_prevented", Value::Bool(b)) => opts.is_download_prevented = *b,
            // What reading the attribute shows but Box decides: ignored.
            ("holder" | "created_at", _) => {}
            _ => return Err(invalid(format!("a lock has no setting '{k}' = {v}"))),
        }
    }
    Ok(opts)
}

/// What a value written to `user.box.offline` asks for: `1` keeps the item offline (pins it),
/// `0` lets it go.
pub fn parse_offline(value: &[u8]) -> Result<bool, FsError> {
    match text(value)? {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(invalid(format!(
            "user.box.offline is 1 (keep offline) or 0 (do not), not '{other}'"
        ))),
    }
}

/// Who a shared link written as `value` admits: `None` (empty) is Box's default.
pub fn parse_link_access(value: &[u8]) -> Result<Option<SharedLinkAccess>, FsError> {
    match text(value)? {
        "" => Ok(None),
        "open" => Ok(Some(SharedLinkAccess::Open)),
        "company" => Ok(Some(SharedLinkAccess::Company)),
        "collaborators" => Ok(Some(SharedLinkAccess::Collaborators)),
        other => Err(invalid(format!(
            "a shared link is open, company or collaborators, not '{other}'"
        ))),
    }
}

/// How values of one template are checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    /// `global.properties`: any key; strings, numbers and lists of strings.
    FreeForm,
    /// Only these fields, each with its type.
    Fields(Vec<TemplateField>),
}

impl Schema {
    pub fn of(template: &MetadataTemplate) -> Schema {
        if template.scope == GLOBAL_SCOPE && template.template_key == PROPERTIES_TEMPLATE {
            Schema::FreeForm
        } else {
            Schema::Fields(template.fields.clone())
        }
    }

    /// Checks one value for `key`; returns it as Box will store it (dates in UTC with
    /// milliseconds, the form Box answers with).
    pub fn check(&self, key: &str, v: &Value) -> Result<Value, FsError> {
        if key.is_empty() || key.starts_with('$') {
            return Err(invalid(format!("'{key}' cannot be a metadata key")));
        }
        let fields = match self {
            Schema::FreeForm => {
                let ok = match v {
                    Value::String(_) | Value::Number(_) => true,
                    Value::Array(list) => list.iter().all(Value::is_string),
                    _ => false,
                };
                return if ok {
                    Ok(v.clone())
                } else {
                    Err(invalid(format!(
                        "'{key}': a property is a string, a number or a list of strings"
                    )))
                };
            }
            Schema::Fields(fields) => fields,
        };
        let field = fields
            .iter()
            .find(|f| f.key == key)
            .ok_or_else(|| invalid(format!("the template has no field '{key}'")))?;
        let is_option = |s: &str| field.options.iter().any(|o| o.key == s);
        let bad = |what: &str| invalid(format!("field '{key}' takes {what}, not {v}"));
        match field.field_type {
            FieldType::String if v.is_string() => Ok(v.clone()),
            FieldType::String => Err(bad("a string")),
            FieldType::Float if v.is_number() => Ok(v.clone()),
            FieldType::Float => Err(bad("a number")),
            FieldType::Integer if v.is_i64() || v.is_u64() => Ok(v.clone()),
            FieldType::Integer => Err(bad("an integer")),
            FieldType::Date => v
                .as_str()
                .and_then(normalize_date)
                .map(Value::String)
                .ok_or_else(|| bad("a date (RFC 3339, or YYYY-MM-DD)")),
            FieldType::Enum => match v.as_str() {
                Some(s) if is_option(s) => Ok(v.clone()),
                _ => Err(bad(&format!("one of {}", options(field)))),
            },
            FieldType::MultiSelect => match v.as_array() {
                Some(list) if list.iter().all(|x| x.as_str().is_some_and(is_option)) => {
                    Ok(v.clone())
                }
                _ => Err(bad(&format!("a list of {}", options(field)))),
            },
            FieldType::Taxonomy | FieldType::Unknown => Err(invalid(format!(
                "field '{key}' has a type this mount cannot check ({:?})",
                field.field_type
            ))),
        }
    }

    /// Checks a whole instance written as `value` (a JSON object); `$` keys are dropped.
    pub fn check_instance(&self, value: &[u8]) -> Result<Map<String, Value>, FsError> {
        let Value::Object(obj) = parse_json(value)? else {
            return Err(invalid("a metadata instance is a JSON object"));
        };
        obj.iter()
            .filter(|(k, _)| !k.starts_with('$'))
            .map(|(k, v)| Ok((k.clone(), self.check(k, v)?)))
            .collect()
    }
}

fn options(field: &TemplateField) -> String {
    let keys: Vec<&str> = field.options.iter().map(|o| o.key.as_str()).collect();
    keys.join(", ")
}

/// An RFC 3339 date-time (or a plain `YYYY-MM-DD`, midnight UTC) as Box stores dates.
fn normalize_date(s: &str) -> Option<String> {
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc(),
    };
    Some(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The patch that turns an instance's `old` values into `new`, guarded by a `test` of every
/// old value; `None` when there is nothing to change.
pub fn replace_patch(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<MetadataPatch> {
    if old == new {
        return None;
    }
    let mut patch = MetadataPatch::new();
    for (k, v) in old {
        patch = patch.test(k, v.clone());
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        patch = patch.remove(k);
    }
    for (k, v) in new.iter().filter(|(k, v)| old.get(*k) != Some(v)) {
        // `add` sets a key whether or not it exists.
        patch = patch.add(k, v.clone());
    }
    Some(patch)
}

/// The patch that sets (`Some`) or removes (`None`) one field whose value was `old` when
/// we read it.
pub fn field_patch(key: &str, old: Option<&Value>, new: Option<Value>) -> MetadataPatch {
    let mut patch = MetadataPatch::new();
    if let Some(old) = old {
        patch = patch.test(key, old.clone());
    }
    match (old, new) {
        (Some(_), Some(v)) => patch.replace(key, v),
        (None, Some(v)) => patch.add(key, v),
        (_, None) => patch.remove(key),
    }
}

/// `setxattr` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Any,
    /// `XATTR_CREATE`: fail if it exists.
    Create,
    /// `XATTR_REPLACE`: fail if it does not.
    Replace,
}

impl Mode {
    pub(super) fn of(flags: i32) -> Result<Mode, FsError> {
        match flags {
            0 => Ok(Mode::Any),
            libc::XATTR_CREATE => Ok(Mode::Create),
            libc::XATTR_REPLACE => Ok(Mode::Replace),
            _ => Err(invalid(format!("setxattr flags {flags:#x}"))),
        }
    }

    /// Whether the change may go ahead given whether the attribute `exists`.
    pub(super) fn check(self, exists: bool) -> Result<(), FsError> {
        match (self, exists) {
            (Mode::Create, true) => Err(FsError::new(libc::EEXIST, "the attribute exists")),
            (Mode::Replace, false) => Err(no_data()),
            _ => Ok(()),
        }
    }
}

/// The answer for a name that is none of ours: absent in the `user.` namespace, unsupported
/// outside it (see [`super::names::namespace_unsupported`]).
pub(super) fn not_ours(name: &[u8]) -> FsError {
    if super::names::namespace_unsupported(name) {
        FsError::new(libc::EOPNOTSUPP, "only user. attributes are supported")
    } else {
        no_data()
    }
}

pub(super) fn no_data() -> FsError {
    FsError::new(libc::ENODATA, "no such attribute")
}

pub(super) fn read_only(name: &OsStr) -> FsError {
    FsError::new(
        libc::EPERM,
        format!("{} is read-only", name.to_string_lossy()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_is_one_or_zero() {
        assert!(parse_offline(b"1").unwrap());
        assert!(parse_offline(b"1\n").unwrap());
        assert!(!parse_offline(b"0").unwrap());
        for bad in [&b""[..], b"2", b"yes", b"\xff"] {
            assert_eq!(parse_offline(bad).unwrap_err().errno(), libc::EINVAL);
        }
    }
    use box_client::metadata::FieldOption;
    use serde_json::json;

    #[test]
    fn lock_values() {
        assert_eq!(parse_lock_value(b"").unwrap(), LockOptions::default());
        assert_eq!(parse_lock_value(b"lock\n").unwrap(), LockOptions::default());
        let o = parse_lock_value(
            br#"{"expires_at": "2030-01-01T00:00:00+01:00", "is_download_prevented": true}"#,
        )
        .unwrap();
        assert!(o.is_download_prevented);
        assert_eq!(
            o.expires_at.unwrap().to_rfc3339(),
            "2029-12-31T23:00:00+00:00"
        );
        // A value read back can be written back.
        let back = br#"{"holder":"a@b","created_at":"2024-01-01T00:00:00Z","expires_at":null,"is_download_prevented":false}"#;
        assert_eq!(parse_lock_value(back).unwrap(), LockOptions::default());
        for bad in [
            &b"unlock"[..],
            b"[1]",
            br#"{"expires_at": "tomorrow"}"#,
            br#"{"is_download_prevented": "yes"}"#,
            br#"{"expire_at": null}"#,
            b"\xff",
        ] {
            assert_eq!(
                parse_lock_value(bad).unwrap_err().errno(),
                libc::EINVAL,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn link_values() {
        assert_eq!(parse_link_access(b"").unwrap(), None);
        assert_eq!(
            parse_link_access(b"open").unwrap(),
            Some(SharedLinkAccess::Open)
        );
        assert_eq!(
            parse_link_access(b"company\n").unwrap(),
            Some(SharedLinkAccess::Company)
        );
        assert_eq!(
            parse_link_access(b"collaborators").unwrap(),
            Some(SharedLinkAccess::Collaborators)
        );
        assert_eq!(
            parse_link_access(b"everyone").unwrap_err().errno(),
            libc::EINVAL
        );
        assert_eq!(
            parse_link_access(b"https://app.box.com/s/x")
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
    }

    fn contract() -> Schema {
        let opt = |k: &str| FieldOption {
            key: k.into(),
            id: None,
        };
        let mut status = TemplateField::new(FieldType::Enum, "status", "Status");
        status.options = vec![opt("draft"), opt("final")];
        let mut tags = TemplateField::new(FieldType::MultiSelect, "tags", "Tags");
        tags.options = vec![opt("a"), opt("b")];
        Schema::Fields(vec![
            TemplateField::new(FieldType::String, "name", "Name"),
            TemplateField::new(FieldType::Float, "amount", "Amount"),
            TemplateField::new(FieldType::Date, "signed", "Signed"),
            status,
            tags,
            TemplateField::new(FieldType::Taxonomy, "region", "Region"),
        ])
    }

    #[test]
    fn values_are_checked_against_the_template() {
        let s = contract();
        assert_eq!(s.check("name", &json!("x")).unwrap(), json!("x"));
        assert_eq!(s.check("amount", &json!(1.5)).unwrap(), json!(1.5));
        assert_eq!(s.check("amount", &json!(3)).unwrap(), json!(3));
        assert_eq!(
            s.check("signed", &json!("2024-01-31")).unwrap(),
            json!("2024-01-31T00:00:00.000Z")
        );
        assert_eq!(
            s.check("signed", &json!("2024-01-31T10:00:00+02:00"))
                .unwrap(),
            json!("2024-01-31T08:00:00.000Z")
        );
        assert_eq!(s.check("status", &json!("final")).unwrap(), json!("final"));
        assert_eq!(
            s.check("tags", &json!(["a", "b"])).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(s.check("tags", &json!([])).unwrap(), json!([]));
        for (key, v) in [
            ("name", json!(1)),
            ("amount", json!("1.5")),
            ("signed", json!("31/01/2024")),
            ("signed", json!(20240131)),
            ("status", json!("other")),
            ("tags", json!(["a", "c"])),
            ("tags", json!("a")),
            ("region", json!("x")),
            ("nosuch", json!("x")),
            ("$id", json!("x")),
            ("", json!("x")),
        ] {
            assert_eq!(
                s.check(key, &v).unwrap_err().errno(),
                libc::EINVAL,
                "{key} {v}"
            );
        }

        let free = Schema::FreeForm;
        assert!(free.check("any.key", &json!("v")).is_ok());
        assert!(free.check("n", &json!(2)).is_ok());
        assert!(free.check("l", &json!(["x", "y"])).is_ok());
        for v in [json!(true), json!(null), json!({"a": 1}), json!([1])] {
            assert_eq!(
                free.check("k", &v).unwrap_err().errno(),
                libc::EINVAL,
                "{v}"
            );
        }
    }

    #[test]
    fn instances_are_checked_whole() {
        let s = contract();
        let ok = s
            .check_instance(br#"{"name": "x", "status": "draft", "$version": 3}"#)
            .unwrap();
        assert_eq!(Value::Object(ok), json!({"name": "x", "status": "draft"}));
        for bad in [
            &b"{"[..],
            b"[]",
            b"\"x\"",
            br#"{"name": "x", "status": "nope"}"#,
            br#"{"nosuch": 1}"#,
        ] {
            assert_eq!(
                s.check_instance(bad).unwrap_err().errno(),
                libc::EINVAL,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn ops(p: &MetadataPatch) -> Value {
        p.to_json().unwrap()
    }

    #[test]
    fn patches_test_what_was_read() {
        let old = Map::from_iter([("a".to_string(), json!(1)), ("b".to_string(), json!("x"))]);
        let new = Map::from_iter([("a".to_string(), json!(1)), ("c".to_string(), json!("y"))]);
        assert_eq!(
            ops(&replace_patch(&old, &new).unwrap()),
            json!([
                {"op": "test", "path": "/a", "value": 1},
                {"op": "test", "path": "/b", "value": "x"},
                {"op": "remove", "path": "/b"},
                {"op": "add", "path": "/c", "value": "y"},
            ])
        );
        assert!(replace_patch(&old, &old).is_none());

        assert_eq!(
            ops(&field_patch("k/1", Some(&json!("old")), Some(json!("new")))),
            json!([
                {"op": "test", "path": "/k~11", "value": "old"},
                {"op": "replace", "path": "/k~11", "value": "new"},
            ])
        );
        assert_eq!(
            ops(&field_patch("k", None, Some(json!(2)))),
            json!([{"op": "add", "path": "/k", "value": 2}])
        );
        assert_eq!(
            ops(&field_patch("k", Some(&json!(2)), None)),
            json!([
                {"op": "test", "path": "/k", "value": 2},
                {"op": "remove", "path": "/k"},
            ])
        );
    }

    #[test]
    fn flags() {
        assert_eq!(Mode::of(0).unwrap(), Mode::Any);
        assert_eq!(Mode::of(libc::XATTR_CREATE).unwrap(), Mode::Create);
        assert_eq!(Mode::of(libc::XATTR_REPLACE).unwrap(), Mode::Replace);
        assert_eq!(
            Mode::of(libc::XATTR_CREATE | libc::XATTR_REPLACE)
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
        assert_eq!(Mode::Create.check(true).unwrap_err().errno(), libc::EEXIST);
        assert!(Mode::Create.check(false).is_ok());
        assert_eq!(
            Mode::Replace.check(false).unwrap_err().errno(),
            libc::ENODATA
        );
        assert!(Mode::Replace.check(true).is_ok());
        assert!(Mode::Any.check(false).is_ok());
    }
}
