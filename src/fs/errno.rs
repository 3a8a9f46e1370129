//! The one place where a failure becomes an errno. Every filesystem operation fails with an
//! [`FsError`], which carries the errno the kernel will see, a message for the log (Box's
//! request id included when Box answered) and whether Box refused because of a lock.
//! [`errno_of`] is the mapping from [`BoxError`]; nothing else in `fs` picks errnos for Box
//! failures. [`FsError::should_warn`] decides whether the failure deserves a warning in the log:
//! ordinary outcomes such as a lookup miss do not.

use libc::c_int;

use box_client::error::BoxError;

/// Box's code for an item another user locked. It answers 403, like any other refusal.
const CODE_ITEM_LOCKED: &str = "access_denied_item_locked";

/// The errno the kernel should see for `err`.
///
/// Box's error code decides first, because one status covers several meanings (403 is a
/// refusal, a lock or a full account; 409 is a name clash or a temporary block). The status
/// decides for codes we do not know, and the variant for errors that never reached Box.
pub fn errno_of(err: &BoxError) -> c_int {
    match err {
        BoxError::Api(info) => errno_of_api(info.status, &info.code),
        // The token endpoint refused our credentials: nothing the caller can fix by retrying.
        BoxError::OAuth { .. } | BoxError::Auth(_) => libc::EACCES,
        // The client already retried dropped connections and resumed cut bodies with backoff
        // (`box_client::RetryPolicy`), so by now the retries are exhausted. EIO, not EAGAIN:
        // EAGAIN on a blocking descriptor means "would block" to most programs, which then spin
        // or report the confusing "Resource temporarily unavailable"; EIO is how every
        // filesystem says its backing store failed, and `cp`, editors and databases handle it
        // as such.
        BoxError::Network(_) => libc::EIO,
        // Box cannot be reached at all (offline): what needs Box fails at once with "Network
        // is unreachable", which says what is wrong and that nothing is broken. The README
        // documents it: content not cached, and mkdir/rename/unlink of items on Box.
        BoxError::Unreachable(_) => libc::ENETUNREACH,
        // A certificate refused before anything was sent: Box is out of reach from here.
        BoxError::Certificate { .. } => libc::EIO,
        BoxError::Decode(_) => libc::EIO,
        BoxError::Invalid(_) => libc::EINVAL,
        // Configuration and token-store failures mean we cannot talk to Box at all.
        BoxError::Config(_) | BoxError::Store(_) => libc::EIO,
        BoxError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }
}

fn errno_of_api(status: u16, code: &str) -> c_int {
    match code {
        "item_name_in_use" => return libc::EEXIST,
        "not_found" | "trashed" => return libc::ENOENT,
        "access_denied_insufficient_permissions" | "forbidden" | "forbidden_by_policy" => {
            return libc::EACCES
        }
        // A lock is still a refusal for open/write/rename; flock contexts use
        // `FsError::flock_errno`, which turns it into EWOULDBLOCK.
        CODE_ITEM_LOCKED => return libc::EACCES,
        "storage_limit_exceeded" => return libc::ENOSPC,
        "file_size_limit_exceeded" => return libc::EFBIG,
        "folder_not_empty" => return libc::ENOTEMPTY,
        "item_name_invalid" | "cyclical_folder_structure" => return libc::EINVAL,
        "item_name_too_long" => return libc::ENAMETOOLONG,
        // 412 on an `If-Match` upload or update: someone changed the item on Box since we read
        // its etag. ESTALE ("the file you hold changed underneath you", as NFS uses it) rather
        // than EAGAIN, because a blind retry would overwrite the other change, and rather than
        // EIO, because nothing failed: the writer must resolve the conflict (fetch the new
        // version, keep ours as a conflict copy) before anything is retried.
        "precondition_failed" => return libc::ESTALE,
        // Box answers 409 operation_blocked_temporary while another operation holds the item;
        // the client retried it like a 429, so it is now a failure like any exhausted retry.
        "operation_blocked_temporary" => return libc::EIO,
        _ => {}
    }
    match status {
        400 => libc::EINVAL,
        401 | 403 => libc::EACCES,
        404 | 410 => libc::ENOENT,
        412 => libc::ESTALE,
        413 => libc::EFBIG,
        507 => libc::ENOSPC,
        // 429 and 5xx were retried by the client; see `BoxError::Network` above for why EIO.
        _ => libc::EIO,
    }
}

/// The errno for a failed metadata request (extended attributes), where some of Box's
/// answers mean something other than they do for files and folders: "no such instance" is an
/// absent attribute (ENODATA), not a missing file; an instance that exists already is EEXIST;
/// an unknown template (404 `instance_tuple_not_found` on create) is a bad name, EINVAL.
///
/// A 409 on a patch is a `test` that no longer matches: someone changed the instance since we
/// read it, and the caller must read again before deciding. The errno that says so is EBUSY
/// (another writer holds it), because the two obvious ones cannot reach the caller: the
/// kernel retries a path-based `setxattr`/`removexattr` that failed with ESTALE once, with a
/// fresh lookup, and that retry, made after the cache was dropped, would test the other
/// writer's value, pass, and overwrite it without anyone being told; and the VFS turns EAGAIN
/// from `setxattr` into EOPNOTSUPP (EAGAIN is its own "no handler took this" signal).
pub fn metadata_errno_of(err: &BoxError) -> c_int {
    match err.code() {
        Some("instance_not_found") => libc::ENODATA,
        Some("tuple_already_exists") => libc::EEXIST,
        Some("instance_tuple_not_found") => libc::EINVAL,
        _ if err.status() == Some(409) => libc::EBUSY,
        _ => errno_of(err),
    }
}

/// Whether Box refused because another user locked the item.
pub fn is_lock(err: &BoxError) -> bool {
    err.code() == Some(CODE_ITEM_LOCKED)
}

/// A failed filesystem operation: the errno for the kernel and a message for the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} (errno {errno})")]
pub struct FsError {
    errno: c_int,
    message: String,
    locked: bool,
}

impl FsError {
    /// Box is out of reach: nothing was asked of it (see `crate::fs::offline`).
    pub fn is_unreachable(&self) -> bool {
        self.errno == libc::ENETUNREACH
    }

    pub fn new(errno: c_int, message: impl Into<String>) -> FsError {
        FsError {
            errno,
            message: message.into(),
            locked: false,
        }
    }

    /// The name does not exist: an answer, not a failure.
    pub fn not_found(message: impl Into<String>) -> FsError {
        FsError::new(libc::ENOENT, message)
    }

    /// A failed metadata request, with the errno [`metadata_errno_of`] gives it.
    pub fn from_metadata(err: BoxError) -> FsError {
        FsError {
            errno: metadata_errno_of(&err),
            ..FsError::from(err)
        }
    }

    /// The errno to answer the kernel with.
    pub fn errno(&self) -> c_int {
        self.errno
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether Box refused because the item is locked by someone else.
    pub fn is_lock(&self) -> bool {
        self.locked
    }

    /// The errno for `flock`/`fcntl` lock requests: a Box lock held by someone else is
    /// EWOULDBLOCK there (the caller asked "can I take the lock?"), otherwise the usual errno.
    pub fn flock_errno(&self) -> c_int {
        if self.locked {
            libc::EWOULDBLOCK
        } else {
            self.errno
        }
    }

    /// Whether this failure deserves a warning in the log. Missing names (every shell's
    /// `stat` of a file that is not there), existing names (`O_EXCL`, `mkdir -p`), non-empty
    /// folders (`rmdir` of a tree) and over-long names are what callers ask about on purpose;
    /// they are answers, logged at debug level at most, and so are absent extended
    /// attributes. Everything else is a warning.
    pub fn should_warn(&self) -> bool {
        !matches!(
            self.errno,
            libc::ENOENT
                | libc::EEXIST
                | libc::ENOTEMPTY
                | libc::ENAMETOOLONG
                // An absent extended attribute (`ls` asks for `security.selinux` of every
                // file) and a buffer too small for one (the caller asks again, larger).
                | libc::ENODATA
                | libc::ERANGE
        )
    }
}

impl From<BoxError> for FsError {
    fn from(err: BoxError) -> FsError {
        FsError {
            errno: errno_of(&err),
            locked: is_lock(&err),
            // BoxError's Display carries the status, code, method, URL and request id.
            message: err.to_string(),
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(err: std::io::Error) -> FsError {
        FsError::new(err.raw_os_error().unwrap_or(libc::EIO), err.to_string())
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;
    use box_client::error::ApiErrorInfo;
    use box_emulator::error_codes::{statuses_of, BOX_ERROR_CODES};

    /// Every code this module gives its own errno is one Box documents (a misspelt code
    /// would never match), and maps so at each status Box documents it for.
    #[test]
    fn the_mapping_follows_box_error_table() {
        let expected: &[(&str, c_int)] = &[
            ("item_name_in_use", libc::EEXIST),
            ("not_found", libc::ENOENT),
            ("trashed", libc::ENOENT),
            ("access_denied_insufficient_permissions", libc::EACCES),
            ("forbidden", libc::EACCES),
            ("forbidden_by_policy", libc::EACCES),
            (CODE_ITEM_LOCKED, libc::EACCES),
            ("storage_limit_exceeded", libc::ENOSPC),
            ("file_size_limit_exceeded", libc::EFBIG),
            ("folder_not_empty", libc::ENOTEMPTY),
            ("item_name_invalid", libc::EINVAL),
            ("cyclical_folder_structure", libc::EINVAL),
            ("item_name_too_long", libc::ENAMETOOLONG),
            ("precondition_failed", libc::ESTALE),
            ("operation_blocked_temporary", libc::EIO),
        ];
        for (code, errno) in expected {
            let statuses = statuses_of(code);
            assert!(!statuses.is_empty(), "{code} is not in Box's error table");
            for status in statuses {
                assert_eq!(errno_of_api(status, code), *errno, "{status} {code}");
            }
        }
        // Every documented code gets an errno by its status at least: none is 0, and a
        // refusal (401, 403) is never reported as a missing file or an I/O failure.
        for (status, code, _) in BOX_ERROR_CODES {
            let errno = errno_of(&api(*status, code));
            assert_ne!(errno, 0, "{status} {code}");
            if matches!(status, 401 | 403) {
                assert!(
                    matches!(errno, libc::EACCES | libc::ENOSPC | libc::EFBIG),
                    "{status} {code}: {errno}"
                );
            }
        }
    }

    fn api(status: u16, code: &str) -> BoxError {
        BoxError::Api(Box::new(ApiErrorInfo {
            status,
            code: code.to_string(),
            message: format!("message for {code}"),
            request_id: Some("req-123".to_string()),
            context_info: None,
            retry_after: None,
            method: "POST".to_string(),
            url: "https://api.box.com/2.0/folders".to_string(),
        }))
    }

    #[test]
    fn box_codes_map_to_their_errno() {
        let cases: &[(u16, &str, c_int)] = &[
            (409, "item_name_in_use", libc::EEXIST),
            (404, "not_found", libc::ENOENT),
            (404, "trashed", libc::ENOENT),
            (403, "access_denied", libc::EACCES),
            (403, "access_denied_insufficient_permissions", libc::EACCES),
            (403, "forbidden", libc::EACCES),
            (403, "forbidden_by_policy", libc::EACCES),
            (403, "access_denied_item_locked", libc::EACCES),
            (403, "storage_limit_exceeded", libc::ENOSPC),
            (403, "file_size_limit_exceeded", libc::EFBIG),
            (400, "folder_not_empty", libc::ENOTEMPTY),
            (400, "item_name_invalid", libc::EINVAL),
            (400, "item_name_too_long", libc::ENAMETOOLONG),
            (412, "precondition_failed", libc::ESTALE),
            (409, "operation_blocked_temporary", libc::EIO),
            (400, "cyclical_folder_structure", libc::EINVAL),
        ];
        for &(status, code, want) in cases {
            assert_eq!(errno_of(&api(status, code)), want, "{status} {code}");
        }
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        let cases: &[(u16, c_int)] = &[
            (400, libc::EINVAL),
            (401, libc::EACCES),
            (403, libc::EACCES),
            (404, libc::ENOENT),
            (410, libc::ENOENT),
            (412, libc::ESTALE),
            (413, libc::EFBIG),
            (429, libc::EIO),
            (500, libc::EIO),
            (502, libc::EIO),
            (503, libc::EIO),
            (504, libc::EIO),
            (507, libc::ENOSPC),
            (418, libc::EIO),
        ];
        for &(status, want) in cases {
            assert_eq!(errno_of(&api(status, "something_new")), want, "{status}");
        }
    }

    #[test]
    fn errors_that_never_reached_box_map_by_variant() {
        let oauth = BoxError::OAuth {
            status: 400,
            error: "invalid_grant".into(),
            description: "expired".into(),
            request_id: None,
        };
        assert_eq!(errno_of(&oauth), libc::EACCES);
        assert_eq!(errno_of(&BoxError::Auth("no token".into())), libc::EACCES);
        assert_eq!(errno_of(&BoxError::Network("reset".into())), libc::EIO);
        let untrusted = BoxError::Certificate {
            origin: "https://api.box.com".into(),
            problem: box_client::error::CertificateProblem::UnknownIssuer,
        };
        assert_eq!(errno_of(&untrusted), libc::EIO);
        assert_eq!(errno_of(&BoxError::Decode("bad json".into())), libc::EIO);
        assert_eq!(errno_of(&BoxError::Invalid("empty".into())), libc::EINVAL);
        assert_eq!(errno_of(&BoxError::Config("x".into())), libc::EIO);
        assert_eq!(errno_of(&BoxError::Store("x".into())), libc::EIO);
        let os = BoxError::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(errno_of(&os), libc::ENOSPC);
        let plain = BoxError::Io(std::io::Error::other("no os error"));
        assert_eq!(errno_of(&plain), libc::EIO);
    }

    #[test]
    fn a_lock_is_eacces_except_for_flock() {
        let err = FsError::from(api(403, "access_denied_item_locked"));
        assert!(err.is_lock());
        assert_eq!(err.errno(), libc::EACCES);
        assert_eq!(err.flock_errno(), libc::EWOULDBLOCK);

        let denied = FsError::from(api(403, "access_denied_insufficient_permissions"));
        assert!(!denied.is_lock());
        assert_eq!(denied.flock_errno(), libc::EACCES);
        assert!(is_lock(&api(403, "access_denied_item_locked")));
        assert!(!is_lock(&BoxError::Network("x".into())));
    }

    #[test]
    fn the_message_keeps_the_request_id() {
        let err = FsError::from(api(409, "item_name_in_use"));
        assert_eq!(err.errno(), libc::EEXIST);
        assert!(err.message().contains("req-123"), "{}", err.message());
        assert!(err.message().contains("item_name_in_use"));
        assert!(err.to_string().contains(&format!("errno {}", libc::EEXIST)));
    }

    #[test]
    fn metadata_answers_mean_attribute_errnos() {
        let cases: &[(u16, &str, c_int)] = &[
            (404, "instance_not_found", libc::ENODATA),
            (409, "tuple_already_exists", libc::EEXIST),
            (404, "instance_tuple_not_found", libc::EINVAL),
            (409, "conflict", libc::EBUSY),
            (400, "schema_validation_failed", libc::EINVAL),
            (404, "not_found", libc::ENOENT),
            (403, "forbidden", libc::EACCES),
        ];
        for &(status, code, want) in cases {
            assert_eq!(
                metadata_errno_of(&api(status, code)),
                want,
                "{status} {code}"
            );
            let err = FsError::from_metadata(api(status, code));
            assert_eq!(err.errno(), want);
            assert!(err.message().contains("req-123"));
        }
    }

    #[test]
    fn only_real_failures_are_worth_a_warning() {
        assert!(!FsError::new(libc::ENODATA, "no such attribute").should_warn());
        assert!(!FsError::not_found("lookup miss").should_warn());
        assert!(!FsError::from(api(409, "item_name_in_use")).should_warn());
        assert!(!FsError::from(api(400, "folder_not_empty")).should_warn());
        assert!(!FsError::from(api(400, "item_name_too_long")).should_warn());
        assert!(FsError::from(api(503, "unavailable")).should_warn());
        assert!(FsError::from(api(403, "access_denied_item_locked")).should_warn());
        assert!(FsError::from(api(412, "precondition_failed")).should_warn());
        assert!(FsError::from(BoxError::Network("reset".into())).should_warn());
    }

    #[test]
    fn io_errors_keep_their_errno() {
        let err = FsError::from(std::io::Error::from_raw_os_error(libc::EROFS));
        assert_eq!(err.errno(), libc::EROFS);
        let err = FsError::from(std::io::Error::other("weird"));
        assert_eq!(err.errno(), libc::EIO);
    }
}
