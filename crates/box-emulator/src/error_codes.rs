//! Box's documented error codes, per HTTP status: the one table the emulator's error answers
//! must come from (the test harness checks every error body it sends against it) and that
//! the filesystem's errno mapping (`fs/errno.rs`) is tested against.
//!
//! Sources: Box's developer guide "Common errors" (`common`), the error lists of single
//! endpoints in Box's API reference (`reference`, naming the endpoint), and OAuth 2.0
//! (RFC 6749) for the token endpoint, whose errors are not in this shape at all.

/// (status, code, where Box documents it).
pub const BOX_ERROR_CODES: &[(u16, &str, &str)] = &[
    (400, "bad_digest", "common"),
    (400, "bad_request", "common"),
    (400, "cannot_make_collaborated_subfolder_private", "common"),
    (400, "collaborations_not_available_on_root_folder", "common"),
    (400, "cyclical_folder_structure", "common"),
    (400, "folder_not_empty", "common"),
    (400, "invalid_collaboration_item", "common"),
    (400, "invalid_grant", "common"),
    (400, "invalid_limit", "common"),
    (400, "invalid_offset", "common"),
    (
        400,
        "invalid_parameter",
        "reference: most endpoints, for a malformed parameter",
    ),
    (400, "invalid_request_parameters", "common"),
    (400, "invalid_status", "common"),
    (400, "invalid_upload_session_id", "common"),
    (400, "item_name_invalid", "common"),
    (400, "item_name_too_long", "common"),
    (400, "metadata_after_file_contents", "common"),
    (400, "password_reset_required", "common"),
    (400, "requested_page_out_of_range", "common"),
    (400, "requested_preview_unavailable", "common"),
    (400, "sync_item_move_failure", "common"),
    (400, "task_assignee_not_allowed", "common"),
    (400, "terms_of_service_required", "common"),
    (400, "user_already_collaborator", "common"),
    (
        400,
        "schema_validation_failed",
        "reference: metadata instances and templates",
    ),
    (
        400,
        "invalid_file_size",
        "reference: POST /files/upload_sessions",
    ),
    (
        400,
        "file_size_too_small",
        "reference: POST /files/upload_sessions",
    ),
    (
        400,
        "missing_destination",
        "reference: POST /files/upload_sessions",
    ),
    (
        400,
        "missing_file_name",
        "reference: POST /files/upload_sessions",
    ),
    (
        400,
        "missing_file_size",
        "reference: POST /files/upload_sessions",
    ),
    (
        400,
        "invalid_vanity_name",
        "reference: PUT /files/:id (shared_link.vanity_name)",
    ),
    (
        400,
        "parts_mismatch",
        "reference: POST /files/upload_sessions/:id/commit",
    ),
    (
        400,
        "digest_mismatch",
        "reference: upload part and commit, a Digest that does not match the content",
    ),
    (
        400,
        "invalid_folder_id",
        "reference: POST /files/upload_sessions (folder_id)",
    ),
    (401, "unauthorized", "common"),
    (403, "access_denied_insufficient_permissions", "common"),
    (403, "access_denied_item_locked", "common"),
    (403, "access_from_location_blocked", "common"),
    (403, "file_size_limit_exceeded", "common"),
    (403, "forbidden", "common"),
    (403, "forbidden_by_policy", "common"),
    (403, "incorrect_shared_item_password", "common"),
    (403, "insufficient_scope", "common"),
    (403, "storage_limit_exceeded", "common"),
    (403, "cors_origin_not_whitelisted", "common"),
    (
        403,
        "operation_limit_exceeded",
        "reference: PUT /folders/:id, a move combined with other changes",
    ),
    (404, "not_found", "common"),
    (404, "not_trashed", "common"),
    (404, "preview_cannot_be_generated", "common"),
    (404, "trashed", "common"),
    (
        404,
        "instance_not_found",
        "reference: metadata instances; Java SDK fixture",
    ),
    (
        404,
        "instance_tuple_not_found",
        "reference: POST metadata instance",
    ),
    (405, "method_not_allowed", "common"),
    (409, "conflict", "common"),
    (409, "item_name_in_use", "common"),
    (409, "name_temporarily_reserved", "common"),
    (409, "operation_blocked_temporary", "common"),
    (409, "recent_similar_comment", "common"),
    (409, "user_login_already_used", "common"),
    (
        409,
        "tuple_already_exists",
        "reference: POST metadata instance",
    ),
    (410, "session_expired", "common"),
    (410, "upload_failed", "common"),
    (411, "length_required", "common"),
    (412, "precondition_failed", "common"),
    (412, "sync_state_precondition_failed", "common"),
    (413, "request_entity_too_large", "common"),
    (415, "unsupported_media_type", "common"),
    (
        416,
        "requested_range_not_satisfiable",
        "reference: PUT /files/upload_sessions/:id",
    ),
    (429, "rate_limit_exceeded", "common"),
    (500, "internal_server_error", "common"),
    (502, "bad_gateway", "common"),
    (503, "unavailable", "common"),
];

/// Whether Box documents `code` for `status`.
pub fn is_documented(status: u16, code: &str) -> bool {
    BOX_ERROR_CODES
        .iter()
        .any(|(s, c, _)| *s == status && *c == code)
}

/// The statuses Box documents `code` for.
pub fn statuses_of(code: &str) -> Vec<u16> {
    BOX_ERROR_CODES
        .iter()
        .filter(|(_, c, _)| *c == code)
        .map(|(s, _, _)| *s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_unique() {
        let mut rows: Vec<(u16, &str)> = BOX_ERROR_CODES.iter().map(|(s, c, _)| (*s, *c)).collect();
        let n = rows.len();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), n);
        assert!(is_documented(409, "item_name_in_use"));
        assert!(!is_documented(404, "item_name_in_use"));
        assert_eq!(statuses_of("trashed"), [404]);
    }
}
