//! The socket driver: a `SOCK_SEQPACKET` Unix socket server receiving the live SysFlow stream
//! from the collector, one Avro binary `SysFlow` datum per message (no schema on the wire),
//! as the reference processor's streaming driver does.
//!
//! - The socket file is created readable and writable by the owner only (mode 0600).
//! - One collector at a time; when it disconnects, the next connection is accepted. A
//!   reconnecting collector re-sends a header, which starts a new generation of the entity
//!   tables in every handler (as the reference does).
//! - Datums are decoded with the SysFlow schema the collector writes (version 5, the one in
//!   `resources/schemas/sysflow-v5.avsc`).
//! - A message that is not a datum, or larger than the receive buffer, is reported with the
//!   connection and message number and skipped; the stream goes on.
//! - When the socket has nothing more to read, everything received is flushed to the rings,
//!   so a quiet collector's last records are not held back.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::driver::{NoConsumers, Sink};
use crate::fast::SysFlowDecoder;
use crate::generate::SCHEMA_V5;

/// Largest message accepted, in bytes (a SysFlow datum is a few KiB at most; the kernel caps
/// a `SOCK_SEQPACKET` message near 208 KiB by default); larger ones are reported and skipped.
pub const MAX_MESSAGE: usize = 128 << 10;

/// How often a blocked wait looks at the stop flag, in milliseconds.
const POLL_MS: u16 = 200;

/// Counters of one socket run, for the closing log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SocketSummary {
    /// Collector connections accepted.
    pub connections: u64,
    /// Records decoded and published.
    pub records: u64,
    /// Messages skipped: not a SysFlow datum.
    pub undecodable: u64,
    /// Messages skipped: larger than [`MAX_MESSAGE`].
    pub oversized: u64,
}

/// The listening socket; the socket file is removed when this is dropped.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// (device, inode) of the socket file we created: removed on drop only if still ours.
    file_id: Option<(u64, u64)>,
}

impl Listener {
    /// Creates the socket file at `path` (replacing a stale socket file, never another kind
    /// of file nor a socket someone listens on) with mode 0600 and listens on it.
    ///
    /// # Errors
    /// A message naming the path when the socket cannot be created, or when another process
    /// (another `sf-launch --socket`, say) is listening on it.
    pub fn bind(path: &Path) -> Result<Listener, String> {
        let what = |e: &dyn std::fmt::Display| format!("{}: cannot listen: {e}", path.display());
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "{}: exists and is not a socket; not replacing it",
                    path.display()
                ));
            }
            if listening(path) {
                return Err(format!(
                    "{}: another process is listening on this socket (another sf-launch --socket?); not replacing it",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|e| what(&e))?;
        }
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| what(&e))?;
        let addr = SocketAddrUnix::new(path).map_err(|e| what(&e))?;
        rustix::net::bind(&fd, &addr).map_err(|e| what(&e))?;
        // Owner only, before anyone can connect: listen() comes after.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| what(&e))?;
        rustix::net::listen(&fd, 4).map_err(|e| what(&e))?;
        Ok(Listener {
            fd,
            path: path.to_owned(),
            file_id: file_id(path),
        })
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.file_id.is_some() && file_id(&self.path) == self.file_id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Whether a process listens on the socket file at `path`: a non-blocking connect succeeds
/// (or finds the backlog full) on a live socket and is refused on a stale one.
fn listening(path: &Path) -> bool {
    let Ok(fd) = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    ) else {
        return false;
    };
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return false;
    };
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INPROGRESS,
    }
}

/// Waits until `fd` is readable or `stop` is set; true when readable.
fn wait_readable(fd: &impl AsFd, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return true,
            Err(e) => {
                log::error!("poll: {e}");
                return false;
            }
        }
    }
}

/// Zero-byte reads in a row after the peer closed that mean the end of the connection.
const END_ZEROS: u32 = 64;

/// Whether the peer of connection `fd` has shut down its sending side (`POLLRDHUP` or
/// `POLLHUP`): after a 0-byte read, tells a zero-length message from the end of the
/// connection while the peer is still connected.
fn peer_closed(fd: &impl AsFd) -> bool {
    use rustix::event::{PollFd as RPollFd, PollFlags as RPollFlags};
    let mut fds = [RPollFd::new(fd, RPollFlags::RDHUP)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .intersects(RPollFlags::RDHUP | RPollFlags::HUP)
}

/// Serves collectors on `listener` until `stop` is set, publishing every record.
///
/// # Errors
/// [`NoConsumers`] when there is nobody left to publish to.
pub fn serve(
    listener: &Listener,
    publisher: &mut impl Sink,
    stop: &AtomicBool,
) -> Result<SocketSummary, NoConsumers> {
    let decoder = match SysFlowDecoder::from_schema_json(SCHEMA_V5) {
        Ok(d) => d,
        Err(e) => {
            log::error!("the embedded SysFlow schema does not load: {e}");
            return Ok(SocketSummary::default());
        }
    };
    let mut summary = SocketSummary::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let name = listener.path.display().to_string();
    log::info!("{name}: waiting for the collector");
    while wait_readable(&listener.fd, stop) {
        let conn: OwnedFd = match rustix::net::accept_with(&listener.fd, SocketFlags::CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                log::error!("{name}: accept: {e}");
                continue;
            }
        };
        summary.connections += 1;
        let c = summary.connections;
        log::info!("{name}: collector connected (connection {c})");
        let mut message = 0u64;
        // Zero-byte reads in a row since the peer closed (see below).
        let mut zeros = 0u32;
        loop {
            // Nothing pending: make what we have visible before blocking.
            match rustix::net::recv(&conn, &mut buf[..], RecvFlags::DONTWAIT | RecvFlags::TRUNC)
                .map(|(_, len)| len)
            {
                Err(Errno::AGAIN) => {
                    publisher.flush();
                    if !wait_readable(&conn, stop) {
                        break;
                    }
                    continue;
                }
                Err(Errno::INTR) => continue,
                Err(e) => {
                    log::error!("{name}: connection {c}: {e}");
                    break;
                }
                // SOCK_SEQPACKET reads a zero-length message and the end of the connection
                // alike, as 0 bytes. While the peer is connected, it is a message. Once the
                // peer has closed, the end repeats for ever while queued empty messages do
                // not: only a run of END_ZEROS zero reads is the end.
                Ok(0) if zeros == 0 && !peer_closed(&conn) => {
                    message += 1;
                    summary.undecodable += 1;
                    log::error!(
                        "{name}: connection {c}, message {message}: empty message; skipped"
                    );
                }
                Ok(0) if zeros + 1 < END_ZEROS => zeros += 1,
                Ok(0) => {
                    log::info!(
                        "{name}: collector disconnected (connection {c}, {message} messages)"
                    );
                    break;
                }
                Ok(len) => {
                    for _ in 0..std::mem::take(&mut zeros) {
                        message += 1;
                        summary.undecodable += 1;
                        log::error!(
                            "{name}: connection {c}, message {message}: empty message; skipped"
                        );
                    }
                    message += 1;
                    if len > buf.len() {
                        summary.oversized += 1;
                        log::error!(
                            "{name}: connection {c}, message {message}: {len} bytes, larger than the {MAX_MESSAGE}-byte buffer; skipped"
                        );
                        continue;
                    }
                    let mut pos = 0;
                    match decoder.decode_datum(&buf[..len], &mut pos) {
                        Ok(record) if pos == len => {
                            summary.records += 1;
                            publisher.deliver(record)?;
                        }
                        Ok(_) => {
                            summary.undecodable += 1;
                            log::error!(
                                "{name}: connection {c}, message {message}: {} bytes left after the datum; skipped",
                                len - pos
                            );
                        }
                        Err(e) => {
                            summary.undecodable += 1;
                            log::error!(
                                "{name}: connection {c}, message {message}: not a SysFlow datum: {e}; skipped"
                            );
                        }
                    }
                }
            }
        }
        publisher.flush();
    }
    Ok(summary)
}
