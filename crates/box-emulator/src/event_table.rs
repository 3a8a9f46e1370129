//! Which action produces which event, as data: one row per action the emulator performs,
//! naming the event type a user stream shows (Box's `Event.event_type` enum), the name the
//! enterprise stream (`admin_logs`) gives it (the enum of the `event_type` filter of
//! `GET /events`), and whether the `changes` stream carries it. Handlers record events by
//! action ([`crate::store::Store::item_event`]); the event stream reads the stream and
//! enterprise columns from here; `tests/emulator_events.rs` performs every row's action over
//! HTTP and checks the events it produced.
//!
//! Box documents the split of the user streams (developer.box.com, "Get User Events"): tree
//! and content changes, locks, collaborations and metadata are "available in all feeds";
//! downloads, previews, comments, tags and shared-link changes only in `all`. The emulator
//! does not model Box Sync, so `sync` carries what `changes` carries.

/// Something a user does that Box reports in the event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateFolder,
    CreateWebLink,
    UploadFile,
    UploadVersion,
    Rename,
    Move,
    /// Description, tags or `content_modified_at` changed (no rename or move).
    EditInfo,
    Copy,
    Trash,
    RestoreFromTrash,
    PromoteVersion,
    Download,
    Lock,
    Unlock,
    CreateSharedLink,
    UpdateSharedLink,
    RemoveSharedLink,
    AddCollaborator,
    ChangeCollaboratorRole,
    RemoveCollaborator,
    CreateMetadata,
    UpdateMetadata,
    DeleteMetadata,
}

/// One action and the event it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRow {
    pub action: Action,
    /// The call that performs it.
    pub call: &'static str,
    /// `event_type` in the user streams.
    pub event_type: &'static str,
    /// `event_type` in the enterprise streams.
    pub enterprise_type: &'static str,
    /// Whether `stream_type=changes` (and `sync`) carries it; `all` carries every event.
    pub in_changes: bool,
}

impl Action {
    /// Every action, in the table's order.
    pub const ALL: [Action; 23] = [
        Action::CreateFolder,
        Action::CreateWebLink,
        Action::UploadFile,
        Action::UploadVersion,
        Action::Rename,
        Action::Move,
        Action::EditInfo,
        Action::Copy,
        Action::Trash,
        Action::RestoreFromTrash,
        Action::PromoteVersion,
        Action::Download,
        Action::Lock,
        Action::Unlock,
        Action::CreateSharedLink,
        Action::UpdateSharedLink,
        Action::RemoveSharedLink,
        Action::AddCollaborator,
        Action::ChangeCollaboratorRole,
        Action::RemoveCollaborator,
        Action::CreateMetadata,
        Action::UpdateMetadata,
        Action::DeleteMetadata,
    ];

    /// This action's row.
    pub const fn row(self) -> EventRow {
        let (call, event_type, enterprise_type, in_changes) = match self {
            // Box's enterprise stream logs a new folder as an upload too.
            Action::CreateFolder => ("POST /folders", "ITEM_CREATE", "UPLOAD", true),
            // Rows of one user-stream type agree on the others, so a web link's creation is
            // an UPLOAD in the enterprise stream too.
            Action::CreateWebLink => ("POST /web_links", "ITEM_CREATE", "UPLOAD", true),
            Action::UploadFile => (
                "POST /files/content, or committing an upload session",
                "ITEM_UPLOAD",
                "UPLOAD",
                true,
            ),
            Action::UploadVersion => (
                "POST /files/{id}/content, or committing a version's upload session",
                "ITEM_UPLOAD",
                "UPLOAD",
                true,
            ),
            Action::Rename => (
                "PUT /files/{id}, /folders/{id} or /web_links/{id} with a new name",
                "ITEM_RENAME",
                "RENAME",
                true,
            ),
            Action::Move => (
                "PUT /files/{id}, /folders/{id} or /web_links/{id} with a new parent",
                "ITEM_MOVE",
                "MOVE",
                true,
            ),
            Action::EditInfo => (
                "PUT /files/{id} or /folders/{id} with a new description, tags or content time, \
                 or /web_links/{id} with a new url or description",
                "ITEM_MODIFY",
                "EDIT",
                true,
            ),
            Action::Copy => (
                "POST /files/{id}/copy or /folders/{id}/copy",
                "ITEM_COPY",
                "COPY",
                true,
            ),
            Action::Trash => (
                "DELETE /files/{id}, /folders/{id} or /web_links/{id}",
                "ITEM_TRASH",
                "DELETE",
                true,
            ),
            Action::RestoreFromTrash => (
                "POST /files/{id}, /folders/{id} or /web_links/{id} of a trashed item",
                "ITEM_UNDELETE_VIA_TRASH",
                "UNDELETE",
                true,
            ),
            Action::PromoteVersion => (
                "POST /files/{id}/versions/current",
                "ITEM_MAKE_CURRENT_VERSION",
                "FILE_VERSION_RESTORE",
                true,
            ),
            Action::Download => (
                "GET /files/{id}/content",
                "ITEM_DOWNLOAD",
                "DOWNLOAD",
                false,
            ),
            Action::Lock => ("PUT /files/{id} with a lock", "LOCK_CREATE", "LOCK", true),
            Action::Unlock => (
                "PUT /files/{id} with lock: null",
                "LOCK_DESTROY",
                "UNLOCK",
                true,
            ),
            Action::CreateSharedLink => (
                "PUT /files/{id} or /folders/{id} with a new shared_link",
                "ITEM_SHARED_CREATE",
                "SHARE",
                false,
            ),
            Action::UpdateSharedLink => (
                "PUT /files/{id} or /folders/{id} changing the shared_link",
                "ITEM_SHARED_UPDATE",
                "ITEM_SHARED_UPDATE",
                false,
            ),
            Action::RemoveSharedLink => (
                "PUT /files/{id} or /folders/{id} with shared_link: null",
                "ITEM_SHARED_UNSHARE",
                "UNSHARE",
                false,
            ),
            Action::AddCollaborator => (
                "POST /collaborations",
                "COLLAB_ADD_COLLABORATOR",
                "COLLABORATION_INVITE",
                true,
            ),
            Action::ChangeCollaboratorRole => (
                "PUT /collaborations/{id}",
                "COLLAB_ROLE_CHANGE",
                "COLLABORATION_ROLE_CHANGE",
                true,
            ),
            Action::RemoveCollaborator => (
                "DELETE /collaborations/{id}",
                "COLLAB_REMOVE_COLLABORATOR",
                "COLLABORATION_REMOVE",
                true,
            ),
            Action::CreateMetadata => (
                "POST /files/{id}/metadata/{scope}/{template}",
                "METADATA_INSTANCE_CREATE",
                "METADATA_INSTANCE_CREATE",
                true,
            ),
            Action::UpdateMetadata => (
                "PUT /files/{id}/metadata/{scope}/{template}",
                "METADATA_INSTANCE_UPDATE",
                "METADATA_INSTANCE_UPDATE",
                true,
            ),
            Action::DeleteMetadata => (
                "DELETE /files/{id}/metadata/{scope}/{template}",
                "METADATA_INSTANCE_DELETE",
                "METADATA_INSTANCE_DELETE",
                true,
            ),
        };
        EventRow {
            action: self,
            call,
            event_type,
            enterprise_type,
            in_changes,
        }
    }

    /// The user-stream event type it produces.
    pub const fn event_type(self) -> &'static str {
        self.row().event_type
    }
}

/// Every action the emulator reports and the event it produces, in one place.
pub static EVENT_TABLE: [EventRow; Action::ALL.len()] = {
    let mut rows = [Action::CreateFolder.row(); Action::ALL.len()];
    let mut i = 0;
    while i < rows.len() {
        rows[i] = Action::ALL[i].row();
        i += 1;
    }
    rows
};

/// The first row producing `event_type` (rows sharing a type agree on the other columns).
fn row_of_type(event_type: &str) -> Option<&'static EventRow> {
    EVENT_TABLE.iter().find(|r| r.event_type == event_type)
}

/// Whether `changes` carries an event of this type. A type no row has (a state file from
/// another version) counts as a change: a client that misses one goes stale.
pub fn in_changes(event_type: &str) -> bool {
    row_of_type(event_type).is_none_or(|r| r.in_changes)
}

/// The enterprise stream's name for a user-stream event type.
pub fn enterprise_type(event_type: &str) -> &str {
    row_of_type(event_type).map_or(event_type, |r| r.enterprise_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    fn spec() -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
        serde_json::from_slice(&std::fs::read(path).expect("openapi.json")).expect("json")
    }

    fn strings(v: &Value) -> HashSet<String> {
        v.as_array()
            .expect("an enum")
            .iter()
            .map(|s| s.as_str().expect("a name").to_string())
            .collect()
    }

    #[test]
    fn every_name_is_in_boxs_enums() {
        let spec = spec();
        let user_types = strings(
            &spec["components"]["schemas"]["Event"]["properties"]["event_type"]["allOf"][0]["enum"],
        );
        let params = spec["paths"]["/events"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let filter = params
            .iter()
            .find(|p| p["name"] == "event_type")
            .expect("the event_type filter");
        let enterprise_types = strings(&filter["schema"]["items"]["enum"]);
        assert!(user_types.len() > 100 && enterprise_types.len() > 100);
        for r in &EVENT_TABLE {
            assert!(
                user_types.contains(r.event_type),
                "{:?}: {} is not in Event.event_type",
                r.action,
                r.event_type
            );
            assert!(
                enterprise_types.contains(r.enterprise_type),
                "{:?}: {} is not in the event_type filter's enum",
                r.action,
                r.enterprise_type
            );
        }
    }

    #[test]
    fn one_row_per_action_and_rows_of_a_type_agree() {
        let mut actions = HashSet::new();
        for r in &EVENT_TABLE {
            assert!(actions.insert(r.action), "{:?} has two rows", r.action);
            assert_eq!(&r.action.row(), r);
            let first = row_of_type(r.event_type).expect("found");
            assert_eq!(
                (first.enterprise_type, first.in_changes),
                (r.enterprise_type, r.in_changes),
                "rows of {} disagree",
                r.event_type
            );
        }
    }

    /// `ALL` names every action: a new variant stops this match from compiling until it
    /// is placed here, next to its entry in `ALL`.
    #[test]
    fn all_names_every_action() {
        fn position(a: Action) -> usize {
            use Action::*;
            match a {
                CreateFolder => 0,
                CreateWebLink => 1,
                UploadFile => 2,
                UploadVersion => 3,
                Rename => 4,
                Move => 5,
                EditInfo => 6,
                Copy => 7,
                Trash => 8,
                RestoreFromTrash => 9,
                PromoteVersion => 10,
                Download => 11,
                Lock => 12,
                Unlock => 13,
                CreateSharedLink => 14,
                UpdateSharedLink => 15,
                RemoveSharedLink => 16,
                AddCollaborator => 17,
                ChangeCollaboratorRole => 18,
                RemoveCollaborator => 19,
                CreateMetadata => 20,
                UpdateMetadata => 21,
                DeleteMetadata => 22,
            }
        }
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(position(*a), i, "{a:?}");
        }
    }

    /// The split Box documents ("Get User Events": the events "available in all feeds",
    /// and those only in `all`), pinned here so that the table cannot drift from it.
    #[test]
    fn only_downloads_and_shared_link_changes_are_left_out_of_changes() {
        let only_in_all: HashSet<&str> = EVENT_TABLE
            .iter()
            .filter(|r| !r.in_changes)
            .map(|r| r.event_type)
            .collect();
        assert_eq!(
            only_in_all,
            HashSet::from([
                "ITEM_DOWNLOAD",
                "ITEM_SHARED_CREATE",
                "ITEM_SHARED_UPDATE",
                "ITEM_SHARED_UNSHARE"
            ])
        );
        for t in ["ITEM_UPLOAD", "ITEM_TRASH", "LOCK_CREATE", "SOMETHING_NEW"] {
            assert!(in_changes(t), "{t}");
        }
        assert!(!in_changes("ITEM_DOWNLOAD"));
        assert_eq!(enterprise_type("ITEM_TRASH"), "DELETE");
        assert_eq!(enterprise_type("SOMETHING_NEW"), "SOMETHING_NEW");
    }
}
