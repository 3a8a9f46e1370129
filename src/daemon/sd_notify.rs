//! systemd's readiness protocol: a service of `Type=notify` (the `boxfs@.service` user unit)
//! sends `READY=1` to the datagram socket named in `$NOTIFY_SOCKET` once it serves, so that
//! `systemctl --user start` returns when the mount is ready rather than when the process
//! started. Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells systemd `message` (`READY=1`, `STOPPING=1`, …) if it is listening.
pub fn notify(message: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = notify_to(&socket, message) {
        log::warn!("cannot tell systemd {message}: {e}");
    }
}

/// Sends `message` to the socket `path`: a file, or an abstract socket when it starts with `@`.
pub fn notify_to(path: &OsStr, message: &str) -> std::io::Result<()> {
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("boxfs-test-{}", std::process::id());
        let abstract_listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(notify_to(dir.path().join("absent").as_os_str(), "READY=1").is_err());
    }
}
