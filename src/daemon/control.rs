//! The control channel of a mount daemon: a Unix socket (mode 0600) next to the daemon's
//! record in the runtime directory, through which `boxfs status` and `boxfs unmount` ask a
//! running mount how it is doing, and `boxfs search`, `events` and `whoami` borrow its
//! session with Box (`crate::cli::session`).
//!
//! The protocol is one exchange per connection: the client sends one JSON object on one
//! line (`{"request":"status"}`), the daemon answers one JSON object on one line and closes.
//! An answer with an `error` key is a refusal (an unknown request, say). `status` is
//! answered from figures kept in memory, never after a network wait, so a client may use
//! short timeouts; `session` may have to refresh the token first ([`SESSION_TIMEOUT`]).
//! `session` hands out the mount's access token, so it is answered only to a process of
//! the daemon's own user (or root), as the kernel reports the peer: the socket's mode and
//! its 0700 directory already keep others out, and this holds even if they did not.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

/// The longest request line the daemon reads.
const MAX_REQUEST: u64 = 4096;
/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client waits for a `session` answer, which may need a token refresh.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a client may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum ControlRequest {
    /// The mount's figures (a [`crate::daemon::status::MountStatus`]).
    Status,
    /// The mount's session with Box (a [`MountSession`]), for a command run against it.
    Session,
}

/// What `session` answers: where the mount's Box is, and a token valid now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSession {
    pub api_url: String,
    pub upload_url: String,
    pub oauth_url: String,
    pub authorize_url: String,
    pub access_token: String,
    /// The As-User the mount acts as.
    pub as_user: Option<String>,
    pub mountpoint: PathBuf,
}

/// Answers requests (in the daemon).
pub type Handler = Arc<dyn Fn(ControlRequest) -> BoxFuture<'static, Value> + Send + Sync>;

/// Listens on `path` (replacing a socket left by a daemon that died) and answers each
/// connection with `handler`, until the returned task is aborted.
pub fn serve(path: &Path, handler: Handler) -> std::io::Result<JoinHandle<()>> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::from_std(bind_private(path)?)?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, handler).await {
                            log::debug!("control connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    log::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

/// A listening socket at `path` that is 0600 from the moment it exists. The socket's mode is
/// set on its descriptor before `bind` (Linux gives the file the socket inode's mode, less
/// the umask), so there is no window in which others may connect and no `chmod` by path,
/// which could be sent elsewhere by a swapped name. The umask is process-wide and other
/// threads create files meanwhile, so it is left alone. The runtime directory the socket
/// sits in is 0700 as well ([`crate::daemon::record`]), which alone already keeps others out.
fn bind_private(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let bytes = path.as_os_str().as_encoded_bytes();
    // SAFETY: an all-zero sockaddr_un is valid; it is filled in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the socket path is too long or holds a NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = std::os::unix::net::UnixListener::from(socket);
    use std::os::fd::AsRawFd;
    let raw = listener.as_raw_fd();
    // SAFETY: fchmod, bind and listen on our own descriptor with a valid, initialized address.
    let failed = unsafe {
        libc::fchmod(raw, 0o600) != 0
            || libc::bind(
                raw,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            ) != 0
            || libc::listen(raw, 128) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn answer(stream: tokio::net::UnixStream, handler: Handler) -> std::io::Result<()> {
    let owner = peer_is_owner(&stream);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    tokio::time::timeout(TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let reply = match serde_json::from_str::<ControlRequest>(line.trim()) {
        Ok(ControlRequest::Session) if !owner => {
            json!({ "error": "the session is lent only to the mount's own user" })
        }
        Ok(request) => handler(request).await,
        Err(e) => json!({ "error": format!("not a request this daemon knows: {e}") }),
    };
    let mut bytes = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    tokio::time::timeout(TIMEOUT, write.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "reply not taken"))??;
    write.shutdown().await
}

/// Whether the process at the other end runs as this daemon's user, or as root.
fn peer_is_owner(stream: &tokio::net::UnixStream) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    stream
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == me || cred.uid() == 0)
}

/// Asks the daemon listening on `socket` (from the command line: blocking, with timeouts).
pub fn ask(socket: &Path, request: ControlRequest) -> Result<Value, String> {
    ask_waiting(socket, request, TIMEOUT)
}

/// [`ask`], waiting up to `wait` for the answer.
pub fn ask_waiting(
    socket: &Path,
    request: ControlRequest,
    wait: Duration,
) -> Result<Value, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(fail)?;
    stream.set_read_timeout(Some(wait)).map_err(fail)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    let mut line = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream.write_all(&line).map_err(fail)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(fail)?;
    let value: Value = serde_json::from_str(reply.trim())
        .map_err(|e| format!("{}: the daemon's answer is not JSON: {e}", socket.display()))?;
    match value.get("error").and_then(Value::as_str) {
        Some(message) => Err(format!("the daemon refused: {message}")),
        None => Ok(value),
    }
}

/// The longest socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The socket of the daemon whose record is at `record` (`NAME.json` → `NAME.sock`). A deep
/// mount point makes a long name: then the name is a digest of it, which still fits.
pub fn socket_beside(record: &Path) -> PathBuf {
    let plain = record.with_extension("sock");
    if plain.as_os_str().len() <= MAX_SOCKET_PATH {
        return plain;
    }
    use sha1::{Digest, Sha1};
    let digest = hex::encode(Sha1::digest(record.as_os_str().as_encoded_bytes()));
    record.with_file_name(format!("{}.sock", &digest[..20]))
}

/// Starts answering `boxfs status` for `mounted` on its control socket: the socket's path
/// and the task (abort it when the daemon exits). Best effort: a mount works without it.
pub fn serve_control(
    mounted: &super::mount::Mounted,
) -> Option<(PathBuf, tokio::task::JoinHandle<()>)> {
    let daemon = Arc::new(super::status::Daemon {
        fs: mounted.fs.clone(),
        account: mounted.account.clone(),
        mountpoint: mounted.mountpoint.clone(),
        started: Instant::now(),
    });
    let api = mounted.api.clone();
    let mountpoint = mounted.mountpoint.clone();
    let handler: Handler = Arc::new(move |request| match request {
        ControlRequest::Status => {
            let status = serde_json::to_value(daemon.status())
                .unwrap_or_else(|e| json!({ "error": e.to_string() }));
            futures_util::future::ready(status).boxed()
        }
        ControlRequest::Session => {
            let (api, mountpoint) = (api.clone(), mountpoint.clone());
            async move { session_of(&api, mountpoint).await }.boxed()
        }
    });
    let started = super::record::control_socket_path(&mounted.mountpoint).and_then(|path| {
        serve(&path, handler)
            .map(|task| (path.clone(), task))
            .map_err(|e| format!("{}: {e}", path.display()))
    });
    match started {
        Ok(served) => Some(served),
        Err(e) => {
            log::warn!("no control socket (boxfs status will not reach this mount): {e}");
            None
        }
    }
}

/// The `session` answer for a mount whose client is `api`.
async fn session_of(api: &box_client::Client, mountpoint: PathBuf) -> Value {
    let token = match api.authenticator().access_token().await {
        Ok(token) => token,
        Err(e) => return json!({ "error": format!("the mount has no valid token: {e}") }),
    };
    let e = api.endpoints();
    let session = MountSession {
        api_url: e.api.to_string(),
        upload_url: e.upload.to_string(),
        oauth_url: e.oauth.to_string(),
        authorize_url: e.authorize.to_string(),
        access_token: token.expose().to_string(),
        as_user: api.acting_as().map(str::to_string),
        mountpoint,
    };
    json!({ "session": session })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_request_gets_the_handlers_answer_and_nonsense_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let handler: Handler =
            Arc::new(|r| futures_util::future::ready(json!({ "asked": format!("{r:?}") })).boxed());
        let task = serve(&path, handler).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let p = path.clone();
        let reply = tokio::task::spawn_blocking(move || ask(&p, ControlRequest::Status))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply["asked"], "Status");
        let p = path.clone();
        let raw = tokio::task::spawn_blocking(move || {
            let mut s = UnixStream::connect(&p).unwrap();
            s.write_all(b"{\"request\":\"reboot\"}\n").unwrap();
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(raw.contains("\"error\""), "{raw}");
        task.abort();
        let gone = dir.path().join("none.sock");
        assert!(ask(&gone, ControlRequest::Status).is_err());
    }

    #[test]
    fn a_deep_mount_point_still_gets_a_socket_path_that_fits() {
        let short = Path::new("/run/user/1000/boxfs/home-me-Box.json");
        assert_eq!(
            socket_beside(short),
            Path::new("/run/user/1000/boxfs/home-me-Box.sock")
        );
        let long = PathBuf::from(format!("/run/user/1000/boxfs/{}.json", "a".repeat(120)));
        let socket = socket_beside(&long);
        assert!(socket.as_os_str().len() <= MAX_SOCKET_PATH, "{socket:?}");
        assert!(socket.starts_with("/run/user/1000/boxfs"));
        assert_ne!(socket, socket_beside(&long.with_file_name("b.json")));
    }
}
