//! Telling systemd how the service is doing (the service's health, as the metrics are) (`Type=notify`): `READY=1` once the
//! listeners are bound and the queue is loaded, `RELOADING=1` / `READY=1` around a
//! reload (SIGHUP), `STOPPING=1` when a stop begins, and `STATUS=` lines that
//! `systemctl status postern` shows.
//!
//! The protocol is one datagram per message to the Unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace); see
//! sd_notify(3). Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing.
//!
//! # Security
//! Only the socket systemd names is written to, and only fixed `KEY=VALUE` text built
//! here; nothing is read from it.

use std::os::unix::net::UnixDatagram;

/// Send `state` (newline-separated `KEY=VALUE` assignments) to systemd, if it listens.
/// Failures are logged, never fatal: the service works the same without systemd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(
            "cannot notify systemd via NOTIFY_SOCKET={}: {e}",
            path.to_string_lossy()
        );
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// `RELOADING=1`: a reload has begun; follow it with [`ready`].
pub fn reloading() {
    notify("RELOADING=1\nSTATUS=Reloading");
}

/// `STOPPING=1`: the stop has begun.
pub fn stopping(status: &str) {
    notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        send(p.as_os_str(), "READY=1\nSTATUS=ok").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("postern-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "RELOADING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"RELOADING=1");
    }
}
