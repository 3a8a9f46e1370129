//! `--demo`: a small, realistic tree in the admin's root for trying boxfs without an
//! account and for tests that want something to look at. Created only when the root has
//! never held anything, so a restart with `--data` does not add it twice.
//!
//! ```text
//! All Files/
//!   Welcome.txt                        shared link (open, downloadable)
//!   Documents/
//!     README.md                        global.properties metadata
//!     notes.txt                        two versions
//!     Contract - Acme.pdf              enterprise `contract` metadata
//!     Reports/2026/sales.csv
//!   Photos/
//!     photo.jpg                        300 KB of deterministic bytes, global.properties
//!   Projects/boxfs/
//!     design.md                        locked by the admin for 30 days
//!     todo.txt
//!   Archive/                           empty
//! ```
//!
//! Every creation is recorded as an event, so the event stream starts non-empty.

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::event_table::Action;
use super::store::{
    Id, ItemKind, Lock, MetadataInstance, MetadataTemplate, SharedLink, Store, TemplateField,
    Version,
};

const README: &str = "# Welcome to boxfs\n\n\
This tree lives in a Box API emulator. Mount it with boxfs and use it like any\n\
directory: `ls`, `cat`, `cp`, editors and `rsync` all work.\n\n\
- Documents/ holds text, a CSV and a contract with metadata\n\
- Photos/ holds a binary file\n\
- Projects/boxfs/design.md is locked\n";

const NOTES_V1: &str = "Notes\n- buy milk\n";
const NOTES_V2: &str = "Notes\n- buy milk\n- call the bank about the mortgage\n\
- book flights for the offsite (3rd week of May)\n- review Q1 numbers in Reports/2026\n";

const SALES_CSV: &str = "region,quarter,revenue,units\n\
North,Q1,125000.50,410\n\
South,Q1,98000.00,322\n\
East,Q1,143250.75,501\n\
West,Q1,87700.10,290\n";

const WELCOME: &str = "Hello from the Box emulator!\nThis file is shared with an open link.\n";

const DESIGN: &str =
    "# boxfs design\n\nThe kernel talks to boxfs through FUSE; boxfs talks to Box.\n\
This file is locked while it is being edited.\n";

const TODO: &str =
    "[ ] chunked uploads above 20 MB\n[x] listings with one call\n[ ] xattrs from metadata\n";

/// A PDF-looking file (a header and some text; not meant to render).
fn contract_pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend_from_slice(
        b"1 0 obj << /Type /Catalog >> endobj\n% Master services agreement between Acme Corp and \
          Emulated Enterprise.\n",
    );
    v.extend_from_slice(b"%%EOF\n");
    v
}

/// About 300 KB that look like a JPEG: SOI/APP0 markers around deterministic noise.
fn photo_jpg() -> Vec<u8> {
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00,
        0x48, 0x00, 0x48, 0x00, 0x00,
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while v.len() < 300 * 1024 - 2 {
        // xorshift64*: the same bytes on every start.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(300 * 1024 - 2);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// Builds the tree for one owner.
struct Builder<'a> {
    store: &'a mut Store,
    owner: Id,
    now: DateTime<Utc>,
}

impl Builder<'_> {
    fn folder(&mut self, parent: Id, name: &str) -> Id {
        let item = self.store.new_item(
            ItemKind::Folder,
            name,
            parent,
            self.owner,
            self.owner,
            self.now,
        );
        let id = self.store.insert_item(item);
        self.store
            .item_event(Action::CreateFolder, self.owner, id, self.now);
        id
    }

    /// Stores content and returns its version record.
    fn version(&mut self, name: &str, content: &[u8], at: DateTime<Utc>) -> Version {
        let sha1 = hex::encode(Sha1::digest(content));
        self.store
            .blobs
            .entry(sha1.clone())
            .or_insert_with(|| Bytes::copy_from_slice(content).into());
        Version {
            id: self.store.alloc_id(),
            sha1,
            size: content.len() as u64,
            name: name.to_string(),
            created_at: at,
            modified_by: self.owner,
        }
    }

    /// A file whose content was last changed `days_ago`.
    fn file(&mut self, parent: Id, name: &str, content: &[u8], days_ago: i64) -> Id {
        let at = self.now - Duration::days(days_ago);
        let mut item = self.store.new_item(
            ItemKind::File,
            name,
            parent,
            self.owner,
            self.owner,
            self.now,
        );
        item.content_created_at = at;
        item.content_modified_at = at;
        item.versions.push(self.version(name, content, at));
        let id = self.store.insert_item(item);
        self.store
            .item_event(Action::UploadFile, self.owner, id, self.now);
        id
    }

    fn new_version(&mut self, id: Id, content: &[u8]) {
        let name = self.store.items[&id].name.clone();
        let version = self.version(&name, content, self.now);
        let (owner, now) = (self.owner, self.now);
        let item = self.store.items.get_mut(&id).expect("demo file exists");
        item.versions.push(version);
        item.content_modified_at = now;
        item.touch(owner, now);
        self.store.item_event(Action::UploadVersion, owner, id, now);
    }

    fn metadata(&mut self, id: Id, scope: &str, template: &str, values: Value) {
        let values: Map<String, Value> = values.as_object().cloned().unwrap_or_default();
        let (owner, now) = (self.owner, self.now);
        let item = self.store.items.get_mut(&id).expect("demo item exists");
        item.metadata.insert(
            format!("{scope}/{template}"),
            MetadataInstance {
                id: uuid::Uuid::new_v4().to_string(),
                scope: scope.to_string(),
                template: template.to_string(),
                version: 0,
                type_version: 0,
                values,
            },
        );
        item.touch(owner, now);
        self.store
            .item_event(Action::CreateMetadata, owner, id, now);
    }

    fn lock(&mut self, id: Id, days: i64) {
        let lock = Lock {
            id: self.store.alloc_id(),
            created_by: self.owner,
            created_at: self.now,
            expires_at: Some(self.now + Duration::days(days)),
            is_download_prevented: false,
        };
        let (owner, now) = (self.owner, self.now);
        let item = self.store.items.get_mut(&id).expect("demo file exists");
        item.lock = Some(lock);
        item.touch(owner, now);
        self.store.item_event(Action::Lock, owner, id, now);
    }

    fn share(&mut self, id: Id) {
        let token = super::users::random_token(32);
        let (owner, now) = (self.owner, self.now);
        let item = self.store.items.get_mut(&id).expect("demo item exists");
        item.shared_link = Some(SharedLink {
            token: token.clone(),
            access: "open".into(),
            password: None,
            unshared_at: None,
            vanity_name: None,
            can_download: true,
            can_edit: false,
            download_count: 0,
            preview_count: 0,
        });
        item.touch(owner, now);
        self.store.shared_links.insert(token, id);
        self.store
            .item_event(Action::CreateSharedLink, owner, id, now);
    }
}

/// The enterprise template `contract`, created if missing; returns its scope.
fn contract_template(store: &mut Store) -> String {
    let scope = format!("enterprise_{}", store.enterprise_id);
    let field = |key: &str, field_type: &str, display: &str, options: &[&str]| TemplateField {
        id: uuid::Uuid::new_v4().to_string(),
        field_type: field_type.to_string(),
        key: key.to_string(),
        display_name: display.to_string(),
        description: None,
        hidden: false,
        options: options.iter().map(|o| o.to_string()).collect(),
    };
    store
        .templates
        .entry(format!("{scope}/contract"))
        .or_insert_with(|| MetadataTemplate {
            id: uuid::Uuid::new_v4().to_string(),
            scope: scope.clone(),
            template_key: "contract".into(),
            display_name: "Contract".into(),
            hidden: false,
            copy_instance_on_item_copy: true,
            fields: vec![
                field("client", "string", "Client", &[]),
                field("value", "float", "Contract value", &[]),
                field("signedOn", "date", "Signed on", &[]),
                field("status", "enum", "Status", &["draft", "signed", "expired"]),
                field(
                    "regions",
                    "multiSelect",
                    "Regions",
                    &["EMEA", "AMER", "APAC"],
                ),
            ],
        });
    scope
}

/// Fills the admin's root with the demo tree, unless it has ever held anything.
pub fn populate(store: &mut Store) {
    let owner = store.admin;
    let Some(root) = store.users.get(&owner).map(|u| u.root_folder) else {
        return;
    };
    if store.children.get(&root).is_some_and(|c| !c.is_empty()) {
        return;
    }
    let scope = contract_template(store);
    let mut b = Builder {
        store,
        owner,
        now: Utc::now(),
    };

    let welcome = b.file(root, "Welcome.txt", WELCOME.as_bytes(), 1);
    b.share(welcome);

    let documents = b.folder(root, "Documents");
    let readme = b.file(documents, "README.md", README.as_bytes(), 3);
    b.metadata(
        readme,
        "global",
        "properties",
        json!({"audience": "new users", "language": "en"}),
    );
    let notes = b.file(documents, "notes.txt", NOTES_V1.as_bytes(), 10);
    b.new_version(notes, NOTES_V2.as_bytes());
    let contract = b.file(documents, "Contract - Acme.pdf", &contract_pdf(), 40);
    let signed = Utc
        .with_ymd_and_hms(2026, 1, 15, 0, 0, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    b.metadata(
        contract,
        &scope,
        "contract",
        json!({
            "client": "Acme Corp",
            "value": 125000.5,
            "signedOn": signed,
            "status": "signed",
            "regions": ["EMEA", "AMER"],
        }),
    );
    let reports = b.folder(documents, "Reports");
    let year = b.folder(reports, "2026");
    b.file(year, "sales.csv", SALES_CSV.as_bytes(), 5);

    let photos = b.folder(root, "Photos");
    let photo = b.file(photos, "photo.jpg", &photo_jpg(), 20);
    b.metadata(
        photo,
        "global",
        "properties",
        json!({"camera": "Emulated EOS", "width": "1024", "height": "768"}),
    );

    let projects = b.folder(root, "Projects");
    let boxfs = b.folder(projects, "boxfs");
    let design = b.file(boxfs, "design.md", DESIGN.as_bytes(), 2);
    b.lock(design, 30);
    b.file(boxfs, "todo.txt", TODO.as_bytes(), 0);

    b.folder(root, "Archive");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_bytes_are_deterministic_and_jpeg_shaped() {
        let a = photo_jpg();
        assert_eq!(a, photo_jpg());
        assert_eq!(a.len(), 300 * 1024);
        assert_eq!(&a[..3], &[0xFF, 0xD8, 0xFF]);
        assert_eq!(&a[a.len() - 2..], &[0xFF, 0xD9]);
    }
}
