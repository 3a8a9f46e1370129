//! JSON representations of users and items as Box sends them: mini (nested references),
//! standard (the default) and full (fields asked for by name), plus the `fields=` rule —
//! when `fields` is given only `type`, `id`, `etag` and the named fields come back.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::store::{Item, ItemKind, Lock, SharedLink, Store, Trash, User};

/// Box timestamps: RFC 3339 with an explicit offset, whole seconds.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A `fields=` selection. `None` means the standard representation.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Option<HashSet<String>>);

impl Fields {
    pub fn parse(raw: Option<&str>) -> Fields {
        match raw {
            None => Fields(None),
            Some(s) => Fields(Some(
                s.split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect(),
            )),
        }
    }
    pub fn is_standard(&self) -> bool {
        self.0.is_none()
    }
    /// Whether a field appears: base fields always, others when standard or named.
    fn wants(&self, key: &str, standard: bool) -> bool {
        match &self.0 {
            None => standard,
            Some(set) => matches!(key, "type" | "id" | "etag") || set.contains(key),
        }
    }
    /// `metadata.<scope>.<template>` selections.
    fn metadata_requests(&self) -> Vec<(String, String)> {
        let Some(set) = &self.0 else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|f| {
                let rest = f.strip_prefix("metadata.")?;
                let (scope, template) = rest.split_once('.')?;
                Some((scope.to_string(), template.to_string()))
            })
            .collect()
    }
}

/// The id the API shows: a root folder is always `"0"`.
pub fn item_id(item: &Item) -> String {
    if item.is_root() {
        "0".to_string()
    } else {
        item.id.to_string()
    }
}

pub fn user_mini_of(user: &User) -> Value {
    json!({"type": "user", "id": user.id.to_string(), "name": user.name, "login": user.login})
}

pub fn user_mini(store: &Store, id: u64) -> Value {
    match store.users.get(&id) {
        Some(u) => user_mini_of(u),
        None => json!({"type": "user", "id": id.to_string(), "name": "", "login": ""}),
    }
}

pub fn user_full(store: &Store, user: &User) -> Value {
    let enterprise =
        json!({"type": "enterprise", "id": user.enterprise_id, "name": store.enterprise_name});
    json!({
        "type": "user",
        "id": user.id.to_string(),
        "name": user.name,
        "login": user.login,
        "created_at": time(user.created_at),
        "modified_at": time(user.modified_at),
        "language": user.language,
        "timezone": user.timezone,
        "space_amount": user.space_amount,
        "space_used": store.space_used(user.id),
        "max_upload_size": 53_687_091_200u64,
        "status": user.status,
        "job_title": "",
        "phone": "",
        "address": "",
        "avatar_url": "",
        "role": match user.role {
            super::store::Role::Admin => "admin",
            super::store::Role::Coadmin => "coadmin",
            _ => "user",
        },
        "is_platform_access_only": matches!(user.role, super::store::Role::AppUser),
        "external_app_user_id": user.external_app_user_id.clone().unwrap_or_default(),
        "enterprise": enterprise,
    })
}

/// Filters a full user object by `fields=` (standard drops the enterprise-only fields).
pub fn user_with_fields(store: &Store, user: &User, fields: &Fields) -> Value {
    let full = user_full(store, user);
    let Value::Object(map) = full else {
        return full;
    };
    let standard = [
        "type",
        "id",
        "name",
        "login",
        "created_at",
        "modified_at",
        "language",
        "timezone",
        "space_amount",
        "space_used",
        "max_upload_size",
        "status",
        "job_title",
        "phone",
        "address",
        "avatar_url",
    ];
    let kept: Map<String, Value> = map
        .into_iter()
        .filter(|(k, _)| match &fields.0 {
            None => standard.contains(&k.as_str()),
            Some(set) => matches!(k.as_str(), "type" | "id") || set.contains(k),
        })
        .collect();
    Value::Object(kept)
}

fn file_version_mini(item: &Item) -> Value {
    match item.current_version() {
        Some(v) => json!({"type": "file_version", "id": v.id.to_string(), "sha1": v.sha1}),
        None => json!({"type": "file_version", "id": "0", "sha1": ""}),
    }
}

fn etag(item: &Item) -> Value {
    if item.is_root() {
        Value::Null
    } else {
        Value::String(item.etag.to_string())
    }
}

fn sequence_id(item: &Item) -> Value {
    if item.is_root() {
        Value::Null
    } else {
        Value::String(item.sequence_id.to_string())
    }
}

/// The root folder's name as Box shows it.
pub fn display_name(item: &Item) -> &str {
    if item.is_root() {
        "All Files"
    } else {
        &item.name
    }
}

/// Mini representation (File--Mini / Folder--Mini / WebLink--Mini), used for nesting and
/// in listings without `fields`.
pub fn mini(_store: &Store, item: &Item) -> Value {
    let mut m = json!({
        "type": item.kind.as_str(),
        "id": item_id(item),
        "sequence_id": sequence_id(item),
        "etag": etag(item),
        "name": display_name(item),
    });
    match item.kind {
        ItemKind::File => {
            m["sha1"] = json!(item
                .current_version()
                .map(|v| v.sha1.clone())
                .unwrap_or_default());
            m["file_version"] = file_version_mini(item);
        }
        ItemKind::WebLink => m["url"] = json!(item.url),
        ItemKind::Folder => {}
    }
    m
}

pub fn lock_json(store: &Store, lock: &Lock) -> Value {
    let mut l = json!({
        "type": "lock",
        "id": lock.id.to_string(),
        "created_by": user_mini(store, lock.created_by),
        "created_at": time(lock.created_at),
        "is_download_prevented": lock.is_download_prevented,
        "app_type": Value::Null,
    });
    // Box answers `expired_at` although requests say `expires_at`; a lock without expiry
    // has none (the description types it as a non-null string).
    if let Some(t) = lock.expires_at {
        l["expired_at"] = json!(time(t));
    }
    l
}

pub fn shared_link_json(store: &Store, item: &Item, link: &SharedLink) -> Value {
    let base = &super::box_hosts::Urls::current(&store.base_url).app();
    let url = format!("{base}/s/{}", link.token);
    let download_url = if item.kind == ItemKind::File {
        let ext = extension(&item.name);
        let suffix = if ext.is_empty() {
            String::new()
        } else {
            format!(".{ext}")
        };
        json!(format!("{base}/shared/static/{}{suffix}", link.token))
    } else {
        Value::Null
    };
    let vanity_url = link
        .vanity_name
        .as_ref()
        .map(|v| json!(format!("{base}/v/{v}")))
        .unwrap_or(Value::Null);
    let effective_permission = if link.can_edit {
        "can_edit"
    } else if link.can_download {
        "can_download"
    } else {
        "can_preview"
    };
    json!({
        "url": url,
        "download_url": download_url,
        "vanity_url": vanity_url,
        "vanity_name": link.vanity_name,
        "access": link.access,
        "effective_access": link.access,
        "effective_permission": effective_permission,
        "unshared_at": link.unshared_at.map(time),
        "is_password_enabled": link.password.is_some(),
        "permissions": {
            "can_download": link.can_download,
            "can_preview": true,
            "can_edit": link.can_edit,
        },
        "download_count": link.download_count,
        "preview_count": link.preview_count,
    })
}

pub fn extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => "",
    }
}

fn path_collection(store: &Store, item: &Item) -> Value {
    let entries: Vec<Value> = store
        .ancestors(item.id)
        .iter()
        .filter_map(|a| store.items.get(a))
        .map(|a| mini(store, a))
        .collect();
    json!({"total_count": entries.len(), "entries": entries})
}

fn permissions(item: &Item) -> Value {
    let mut p = json!({
        "can_delete": true,
        "can_download": true,
        "can_invite_collaborator": true,
        "can_rename": true,
        "can_set_share_access": true,
        "can_share": true,
        "can_upload": true,
        "can_comment": true,
        "can_preview": true,
        "can_annotate": true,
        "can_view_annotations_all": true,
        "can_view_annotations_self": true,
    });
    if item.kind == ItemKind::File {
        p["can_edit"] = json!(true);
    }
    p
}

/// The full representation of an item filtered by `fields` (standard when `fields` is
/// absent); a web link has a shape of its own. `viewer` decides what `"0"` means and what
/// metadata is visible.
pub fn item_json(store: &Store, item: &Item, viewer: u64, fields: &Fields) -> Value {
    if item.kind == ItemKind::WebLink {
        return web_link_json(store, item, fields);
    }
    let is_file = item.kind == ItemKind::File;
    let mut m = Map::new();
    let mut put = |key: &str, standard: bool, make: &dyn Fn() -> Value| {
        if fields.wants(key, standard) {
            m.insert(key.to_string(), make());
        }
    };
    let trash = trash_of(store, item);
    put("type", true, &|| json!(item.kind.as_str()));
    put("id", true, &|| json!(item_id(item)));
    put("etag", true, &|| etag(item));
    put("sequence_id", true, &|| sequence_id(item));
    put("name", true, &|| json!(display_name(item)));
    if is_file {
        put("sha1", true, &|| {
            json!(item
                .current_version()
                .map(|v| v.sha1.clone())
                .unwrap_or_default())
        });
        put("file_version", true, &|| file_version_mini(item));
    }
    put("description", true, &|| json!(item.description));
    put("size", true, &|| json!(store.tree_size(item.id)));
    put("path_collection", true, &|| path_collection(store, item));
    put("created_at", true, &|| json!(time(item.created_at)));
    put("modified_at", true, &|| json!(time(item.modified_at)));
    put("trashed_at", true, &|| trashed_at_json(trash));
    put("purged_at", true, &|| purged_at_json(trash));
    put("content_created_at", true, &|| {
        json!(time(item.content_created_at))
    });
    put("content_modified_at", true, &|| {
        json!(time(item.content_modified_at))
    });
    put("created_by", true, &|| user_mini(store, item.created_by));
    put("modified_by", true, &|| user_mini(store, item.modified_by));
    put("owned_by", true, &|| user_mini(store, item.owner));
    put("shared_link", true, &|| live_shared_link_json(store, item));
    if !is_file {
        put("folder_upload_email", true, &|| Value::Null);
    }
    put("parent", true, &|| parent_json(store, item));
    put("item_status", true, &|| item_status_json(trash));
    // Full-only fields: present only when named in `fields`.
    put("tags", false, &|| json!(item.tags));
    put("permissions", false, &|| permissions(item));
    put("has_collaborations", false, &|| {
        json!(!item.collaborations.is_empty())
    });
    put("is_externally_owned", false, &|| json!(false));
    put("is_accessible_via_shared_link", false, &|| {
        json!(item.shared_link.is_some())
    });
    put("allowed_invitee_roles", false, &|| {
        json!(["editor", "viewer", "previewer", "uploader", "co-owner"])
    });
    put("is_associated_with_app_item", false, &|| json!(false));
    if is_file {
        put("lock", false, &|| {
            item.lock
                .as_ref()
                .filter(|l| l.is_active(Utc::now()))
                .map(|l| lock_json(store, l))
                .unwrap_or(Value::Null)
        });
        put("extension", false, &|| json!(extension(&item.name)));
        put("version_number", false, &|| {
            json!(item.versions.len().max(1).to_string())
        });
        put("comment_count", false, &|| json!(0));
        put("is_package", false, &|| json!(false));
        put("expires_at", false, &|| Value::Null);
        put("disposition_at", false, &|| Value::Null);
        put("uploader_display_name", false, &|| {
            json!(user_mini(store, item.modified_by)["name"])
        });
    } else {
        put("sync_state", false, &|| json!("not_synced"));
        put("can_non_owners_invite", false, &|| json!(true));
        put("can_non_owners_view_collaborators", false, &|| json!(true));
        put("is_collaboration_restricted_to_enterprise", false, &|| {
            json!(false)
        });
        put("allowed_shared_link_access_levels", false, &|| {
            json!(["open", "company", "collaborators"])
        });
    }
    let md_requests = fields.metadata_requests();
    if !md_requests.is_empty() || fields.0.as_ref().is_some_and(|s| s.contains("metadata")) {
        let mut md = Map::new();
        for (scope, template) in md_requests {
            let scope_full = super::metadata::full_scope(store, &scope);
            let entry = md.entry(scope_full.clone()).or_insert_with(|| json!({}));
            if let Some(inst) = item.metadata.get(&format!("{scope_full}/{template}")) {
                entry[template.as_str()] = super::metadata::instance_json(item, inst);
            }
        }
        m.insert("metadata".into(), Value::Object(md));
    }
    let _ = viewer;
    Value::Object(m)
}

/// The trash entry an item is in: its own, or that of the ancestor trashed with it.
fn trash_of<'a>(store: &'a Store, item: &Item) -> Option<&'a Trash> {
    store
        .trashed_ancestor(item.id)
        .and_then(|t| store.items.get(&t))
        .and_then(|t| t.trash.as_ref())
}

fn trashed_at_json(trash: Option<&Trash>) -> Value {
    trash
        .map(|t| json!(time(t.trashed_at)))
        .unwrap_or(Value::Null)
}

/// When Box will purge a trashed item: 30 days after it was trashed.
fn purged_at_json(trash: Option<&Trash>) -> Value {
    trash
        .map(|t| json!(time(t.trashed_at + chrono::Duration::days(30))))
        .unwrap_or(Value::Null)
}

fn item_status_json(trash: Option<&Trash>) -> Value {
    json!(if trash.is_some() { "trashed" } else { "active" })
}

fn parent_json(store: &Store, item: &Item) -> Value {
    item.parent
        .and_then(|p| store.items.get(&p))
        .map(|p| mini(store, p))
        .unwrap_or(Value::Null)
}

/// `null` when there is none, for files too: the spec marks it nullable (through `allOf`),
/// and the Python SDK's remove_shared_link() reads the field back. A link past its
/// `unshared_at` is gone.
fn live_shared_link_json(store: &Store, item: &Item) -> Value {
    item.shared_link
        .as_ref()
        .filter(|l| super::shared_links::is_live(l, Utc::now()))
        .map(|link| shared_link_json(store, item, link))
        .unwrap_or(Value::Null)
}

/// A web link (`WebLink`) filtered by `fields`. Box's standard web link has no size, no
/// content times and no full-only fields; its `description` is missing from the OpenAPI
/// schema, but Box sends it (its recorded answers have it).
fn web_link_json(store: &Store, item: &Item, fields: &Fields) -> Value {
    let trash = trash_of(store, item);
    let mut m = Map::new();
    let mut put = |key: &str, make: &dyn Fn() -> Value| {
        if fields.wants(key, true) {
            m.insert(key.to_string(), make());
        }
    };
    put("type", &|| json!(item.kind.as_str()));
    put("id", &|| json!(item_id(item)));
    put("etag", &|| etag(item));
    put("sequence_id", &|| sequence_id(item));
    put("name", &|| json!(item.name));
    put("url", &|| json!(item.url));
    put("description", &|| json!(item.description));
    put("path_collection", &|| path_collection(store, item));
    put("created_at", &|| json!(time(item.created_at)));
    put("modified_at", &|| json!(time(item.modified_at)));
    put("trashed_at", &|| trashed_at_json(trash));
    put("purged_at", &|| purged_at_json(trash));
    put("created_by", &|| user_mini(store, item.created_by));
    put("modified_by", &|| user_mini(store, item.modified_by));
    put("owned_by", &|| user_mini(store, item.owner));
    put("shared_link", &|| live_shared_link_json(store, item));
    put("parent", &|| parent_json(store, item));
    put("item_status", &|| item_status_json(trash));
    Value::Object(m)
}

/// The standard representation (no `fields`), as seen by `viewer`.
pub fn standard(store: &Store, item: &Item, viewer: u64) -> Value {
    item_json(store, item, viewer, &Fields(None))
}
