//! The attribute names (parsed from what the kernel passes, spelled for `listxattr`) and
//! the values read: what each attribute shows for an item Box described, which attributes an
//! item has, and POSIX's sizing of an answer for the caller's buffer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::fs::errno::FsError;
use box_client::metadata::{
    check_scope, check_template_key, MetadataInstance, GLOBAL_SCOPE, PROPERTIES_TEMPLATE,
};
use box_client::types::{Item, Lock};

/// Every attribute of ours starts with this.
pub const PREFIX: &str = "user.box.";
/// The one attribute namespace the mount supports; `security.`, `system.` (POSIX ACLs) and
/// `trusted.` names are refused as unsupported rather than absent.
const SUPPORTED_NAMESPACE: &str = "user.";
const METADATA: &str = "metadata.";
/// The name of the pinning attribute after [`PREFIX`].
pub const OFFLINE: &str = "offline";
/// Linux's largest attribute value (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;

/// A read-only fact about the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    Id,
    Type,
    Etag,
    Sha1,
    Version,
    Owner,
    ModifiedBy,
    CreatedAt,
    /// A web link's address (the one fact that can be written).
    Url,
}

impl Fact {
    const ALL: [Fact; 9] = [
        Fact::Id,
        Fact::Type,
        Fact::Etag,
        Fact::Sha1,
        Fact::Version,
        Fact::Owner,
        Fact::ModifiedBy,
        Fact::CreatedAt,
        Fact::Url,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Fact::Id => "id",
            Fact::Type => "type",
            Fact::Etag => "etag",
            Fact::Sha1 => "sha1",
            Fact::Version => "version",
            Fact::Owner => "owner",
            Fact::ModifiedBy => "modified_by",
            Fact::CreatedAt => "created_at",
            Fact::Url => "url",
        }
    }
}

/// A metadata template as an attribute name spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateRef {
    /// `global`, `enterprise` or `enterprise_<id>`.
    pub scope: String,
    pub template: String,
}

impl TemplateRef {
    /// Whether `inst` is an instance of this template (`enterprise` matches the caller's
    /// `enterprise_<id>`, the only enterprise scope an item shows it).
    pub(super) fn matches(&self, inst: &MetadataInstance) -> bool {
        inst.template == self.template
            && (inst.scope == self.scope
                || (self.scope == "enterprise" && inst.scope.starts_with("enterprise_")))
    }

    pub(super) fn is_free_form(&self) -> bool {
        self.scope == GLOBAL_SCOPE && self.template == PROPERTIES_TEMPLATE
    }
}

/// One of our attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrName {
    Fact(Fact),
    Lock,
    SharedLink,
    SharedLinkDownloadUrl,
    /// `user.box.offline`: whether the item is pinned (kept on disk), itself or through a
    /// folder above it. Local to this mount: nothing of it goes to Box.
    Offline,
    /// A whole metadata instance.
    Instance(TemplateRef),
    /// One field of an instance.
    Field(TemplateRef, String),
}

/// Why a name is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Outside `user.box.`.
    Foreign,
    /// Under `user.box.`, but it names nothing Box has.
    Unknown(String),
}

/// Whether `name` lies outside the one namespace the mount supports. Such names are answered
/// with `EOPNOTSUPP`, as a filesystem without SELinux labels or POSIX ACLs answers them: GNU
/// `ls -l` then stops asking for `security.selinux` and `system.posix_acl_access` after the
/// first file of the mount, instead of costing two kernel round trips for every entry.
pub fn namespace_unsupported(name: &[u8]) -> bool {
    !name.starts_with(SUPPORTED_NAMESPACE.as_bytes())
}

impl XattrName {
    /// Parses an attribute name. A field key may contain dots (free-form templates take
    /// any key); scopes and template keys cannot, so the first two dots after `metadata.`
    /// are the separators.
    pub fn parse(name: &[u8]) -> Result<XattrName, NameError> {
        let rest = name
            .strip_prefix(PREFIX.as_bytes())
            .ok_or(NameError::Foreign)?;
        let rest = std::str::from_utf8(rest)
            .map_err(|_| NameError::Unknown("the name is not UTF-8".into()))?;
        if let Some(fact) = Fact::ALL.iter().find(|f| f.suffix() == rest) {
            return Ok(XattrName::Fact(*fact));
        }
        match rest {
            "lock" => return Ok(XattrName::Lock),
            "shared_link" => return Ok(XattrName::SharedLink),
            "shared_link.download_url" => return Ok(XattrName::SharedLinkDownloadUrl),
            OFFLINE => return Ok(XattrName::Offline),
            _ => {}
        }
        let Some(md) = rest.strip_prefix(METADATA) else {
            return Err(NameError::Unknown(format!("no Box attribute '{rest}'")));
        };
        let mut parts = md.splitn(3, '.');
        let scope = parts.next().unwrap_or_default();
        let template = parts.next().unwrap_or_default();
        check_scope(scope).map_err(|e| NameError::Unknown(e.to_string()))?;
        check_template_key(template).map_err(|e| NameError::Unknown(e.to_string()))?;
        let tref = TemplateRef {
            scope: scope.to_string(),
            template: template.to_string(),
        };
        match parts.next() {
            None => Ok(XattrName::Instance(tref)),
            Some(field) if field.is_empty() || field.starts_with('$') => Err(NameError::Unknown(
                format!("'{field}' cannot be a metadata key"),
            )),
            Some(field) => Ok(XattrName::Field(tref, field.to_string())),
        }
    }

    /// The name as `listxattr` shows it.
    fn instance_name(inst: &MetadataInstance) -> String {
        format!("{PREFIX}{METADATA}{}.{}", inst.scope, inst.template)
    }
}

fn fact_name(fact: Fact) -> String {
    format!("{PREFIX}{}", fact.suffix())
}

// ---------------------------------------------------------------------------------------
// Values read

/// The lock as `user.box.lock` shows it.
#[derive(Debug, Serialize)]
struct LockView<'a> {
    holder: Option<&'a str>,
    created_at: Option<&'a str>,
    expires_at: Option<&'a str>,
    is_download_prevented: bool,
}

/// The item's lock, unless it has none or it expired (Box may report an expired lock
/// instead of none: an expired lock locks nothing).
pub(super) fn active_lock(item: &Item, now: DateTime<Utc>) -> Option<&Lock> {
    item.lock.as_ref().filter(|l| {
        l.expired_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_none_or(|t| t > now)
    })
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The value of a fact about `item` (fetched with the xattr fields), if the item has it.
fn fact_value(fact: Fact, item: &Item) -> Option<String> {
    let is_file = item.is_file();
    let v = match fact {
        Fact::Id => Some(item.id.as_str()),
        Fact::Type => non_empty(&item.kind),
        Fact::Etag => item.etag.as_deref(),
        Fact::Sha1 if is_file => item
            .sha1
            .as_deref()
            .or_else(|| item.file_version.as_ref()?.sha1.as_deref()),
        Fact::Version if is_file => item.file_version.as_ref().map(|v| v.id.as_str()),
        Fact::Sha1 | Fact::Version => None,
        Fact::Owner => item.owned_by.as_ref().and_then(|u| non_empty(&u.login)),
        Fact::ModifiedBy => item.modified_by.as_ref().and_then(|u| non_empty(&u.login)),
        Fact::CreatedAt => item.created_at.as_deref(),
        Fact::Url => item.url.as_deref(),
    };
    v.filter(|s| !s.is_empty()).map(str::to_string)
}

fn lock_value(item: &Item, now: DateTime<Utc>) -> Option<String> {
    let l = active_lock(item, now)?;
    let view = LockView {
        holder: l.created_by.as_ref().and_then(|u| non_empty(&u.login)),
        created_at: l.created_at.as_deref(),
        expires_at: l.expired_at.as_deref(),
        is_download_prevented: l.is_download_prevented,
    };
    serde_json::to_string(&view).ok()
}

fn shared_link_value(item: &Item) -> Option<String> {
    item.shared_link
        .as_ref()
        .and_then(|l| non_empty(&l.url))
        .map(str::to_string)
}

fn download_url_value(item: &Item) -> Option<String> {
    item.shared_link
        .as_ref()?
        .download_url
        .as_deref()
        .and_then(non_empty)
        .map(str::to_string)
}

/// The value of an item attribute (not metadata), if the item has it.
pub(super) fn item_value(name: &XattrName, item: &Item, now: DateTime<Utc>) -> Option<String> {
    match name {
        XattrName::Fact(f) => fact_value(*f, item),
        XattrName::Lock => lock_value(item, now),
        XattrName::SharedLink => shared_link_value(item),
        XattrName::SharedLinkDownloadUrl => download_url_value(item),
        XattrName::Offline | XattrName::Instance(_) | XattrName::Field(..) => None,
    }
}

pub(super) fn find_instance<'a>(
    instances: &'a [MetadataInstance],
    tref: &TemplateRef,
) -> Option<&'a MetadataInstance> {
    instances.iter().find(|i| tref.matches(i))
}

pub(super) fn to_json_bytes(v: &impl Serialize) -> Result<Vec<u8>, FsError> {
    serde_json::to_vec(v).map_err(|e| FsError::new(libc::EIO, e.to_string()))
}

/// Every attribute `item` has, in a stable order: facts, lock, shared link, instances.
pub fn attribute_names(
    item: &Item,
    instances: &[MetadataInstance],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut names: Vec<String> = Fact::ALL
        .iter()
        .filter(|f| fact_value(**f, item).is_some())
        .map(|f| fact_name(*f))
        .collect();
    for (name, spelled) in [
        (XattrName::Lock, "lock"),
        (XattrName::SharedLink, "shared_link"),
        (XattrName::SharedLinkDownloadUrl, "shared_link.download_url"),
    ] {
        if item_value(&name, item, now).is_some() {
            names.push(format!("{PREFIX}{spelled}"));
        }
    }
    names.extend(instances.iter().map(XattrName::instance_name));
    names
}

/// What `getxattr`/`listxattr` answer for a buffer of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrReply {
    /// The caller asked for the size only (`size == 0`).
    Size(u32),
    Data(Vec<u8>),
}

/// POSIX's sizing rules: `size == 0` asks for the size; a smaller buffer than the value is
/// ERANGE; a value beyond Linux's limit is E2BIG (no buffer can hold it).
pub fn sized_reply(value: Vec<u8>, size: u32) -> Result<XattrReply, FsError> {
    if value.len() > XATTR_SIZE_MAX {
        return Err(FsError::new(
            libc::E2BIG,
            format!(
                "the value has {} bytes, more than Linux allows",
                value.len()
            ),
        ));
    }
    if size == 0 {
        Ok(XattrReply::Size(value.len() as u32))
    } else if value.len() > size as usize {
        Err(FsError::new(
            libc::ERANGE,
            format!("the value has {} bytes, the buffer {size}", value.len()),
        ))
    } else {
        Ok(XattrReply::Data(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use box_client::types::{FileVersion, SharedLink, UserMini};
    use serde_json::{json, Map, Value};

    fn tref(scope: &str, template: &str) -> TemplateRef {
        TemplateRef {
            scope: scope.into(),
            template: template.into(),
        }
    }

    #[test]
    fn names_parse() {
        let p = |s: &str| XattrName::parse(s.as_bytes());
        assert_eq!(p("user.box.id"), Ok(XattrName::Fact(Fact::Id)));
        assert_eq!(
            p("user.box.modified_by"),
            Ok(XattrName::Fact(Fact::ModifiedBy))
        );
        assert_eq!(p("user.box.lock"), Ok(XattrName::Lock));
        assert_eq!(p("user.box.offline"), Ok(XattrName::Offline));
        assert_eq!(p("user.box.shared_link"), Ok(XattrName::SharedLink));
        assert_eq!(
            p("user.box.shared_link.download_url"),
            Ok(XattrName::SharedLinkDownloadUrl)
        );
        assert_eq!(
            p("user.box.metadata.global.properties"),
            Ok(XattrName::Instance(tref("global", "properties")))
        );
        assert_eq!(
            p("user.box.metadata.enterprise_42.contract.status"),
            Ok(XattrName::Field(
                tref("enterprise_42", "contract"),
                "status".into()
            ))
        );
        // Keys of free-form templates may hold dots.
        assert_eq!(
            p("user.box.metadata.global.properties.a.b"),
            Ok(XattrName::Field(tref("global", "properties"), "a.b".into()))
        );
        for foreign in [
            "user.other",
            "security.selinux",
            "system.posix_acl_access",
            "user.box",
        ] {
            assert_eq!(p(foreign), Err(NameError::Foreign), "{foreign}");
        }
        for unknown in [
            "user.box.",
            "user.box.ID",
            "user.box.lock.x",
            "user.box.metadata",
            "user.box.metadata.",
            "user.box.metadata.global",
            "user.box.metadata.nowhere.t",
            "user.box.metadata.enterprise_x.t",
            "user.box.metadata.global.1bad",
            "user.box.metadata.global.properties.",
            "user.box.metadata.global.properties.$id",
        ] {
            assert!(
                matches!(p(unknown), Err(NameError::Unknown(_))),
                "{unknown}"
            );
        }
        assert!(matches!(
            XattrName::parse(b"user.box.\xff"),
            Err(NameError::Unknown(_))
        ));
    }

    #[test]
    fn enterprise_is_shorthand_for_the_callers_scope() {
        let inst = MetadataInstance {
            scope: "enterprise_42".into(),
            template: "contract".into(),
            ..MetadataInstance::default()
        };
        assert!(tref("enterprise", "contract").matches(&inst));
        assert!(tref("enterprise_42", "contract").matches(&inst));
        assert!(!tref("enterprise_43", "contract").matches(&inst));
        assert!(!tref("global", "contract").matches(&inst));
        assert!(!tref("enterprise", "other").matches(&inst));
    }

    fn user(login: &str) -> UserMini {
        UserMini {
            id: "9".into(),
            name: "N".into(),
            login: login.into(),
        }
    }

    fn file() -> Item {
        Item {
            kind: "file".into(),
            id: "123".into(),
            etag: Some("3".into()),
            sha1: Some("abc".into()),
            file_version: Some(FileVersion {
                id: "77".into(),
                ..FileVersion::default()
            }),
            owned_by: Some(user("owner@example.com")),
            modified_by: Some(user("editor@example.com")),
            created_at: Some("2024-01-02T03:04:05-08:00".into()),
            ..Item::default()
        }
    }

    #[test]
    fn values_and_names_of_an_item() {
        let now = Utc::now();
        let mut f = file();
        assert_eq!(fact_value(Fact::Version, &f).as_deref(), Some("77"));
        assert_eq!(
            fact_value(Fact::Owner, &f).as_deref(),
            Some("owner@example.com")
        );
        assert_eq!(
            attribute_names(&f, &[], now),
            [
                "user.box.id",
                "user.box.type",
                "user.box.etag",
                "user.box.sha1",
                "user.box.version",
                "user.box.owner",
                "user.box.modified_by",
                "user.box.created_at"
            ]
        );
        f.lock = Some(Lock {
            created_by: Some(user("owner@example.com")),
            created_at: Some("2024-01-02T00:00:00Z".into()),
            ..Lock::default()
        });
        f.shared_link = Some(SharedLink {
            url: "https://app.box.com/s/x".into(),
            download_url: Some("https://app.box.com/shared/static/x.txt".into()),
            ..SharedLink::default()
        });
        let inst = MetadataInstance {
            scope: "global".into(),
            template: "properties".into(),
            values: Map::from_iter([("k".to_string(), json!("v"))]),
            ..MetadataInstance::default()
        };
        let names = attribute_names(&f, std::slice::from_ref(&inst), now);
        assert_eq!(
            names[8..],
            [
                "user.box.lock",
                "user.box.shared_link",
                "user.box.shared_link.download_url",
                "user.box.metadata.global.properties"
            ]
        );
        let lock: Value = serde_json::from_str(&lock_value(&f, now).unwrap()).unwrap();
        assert_eq!(
            lock,
            json!({"holder": "owner@example.com", "created_at": "2024-01-02T00:00:00Z",
                   "expires_at": null, "is_download_prevented": false})
        );

        // An expired lock is no lock.
        f.lock.as_mut().unwrap().expired_at = Some("2000-01-01T00:00:00Z".into());
        assert_eq!(lock_value(&f, now), None);

        // Folders have no sha1 or version, whatever Box sends.
        let mut folder = file();
        folder.kind = "folder".into();
        assert_eq!(fact_value(Fact::Sha1, &folder), None);
        assert_eq!(fact_value(Fact::Version, &folder), None);
        assert!(!attribute_names(&folder, &[], now).contains(&"user.box.sha1".to_string()));
    }

    #[test]
    fn sizes_follow_posix() {
        assert_eq!(
            sized_reply(b"abc".to_vec(), 0).unwrap(),
            XattrReply::Size(3)
        );
        assert_eq!(
            sized_reply(b"abc".to_vec(), 3).unwrap(),
            XattrReply::Data(b"abc".to_vec())
        );
        assert_eq!(
            sized_reply(b"abc".to_vec(), 2).unwrap_err().errno(),
            libc::ERANGE
        );
        assert_eq!(sized_reply(Vec::new(), 0).unwrap(), XattrReply::Size(0));
        assert_eq!(
            sized_reply(vec![0; XATTR_SIZE_MAX + 1], 0)
                .unwrap_err()
                .errno(),
            libc::E2BIG
        );
    }
}
