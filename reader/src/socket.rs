//! The socket driver: a `SOCK_SEQPACKET` Unix socket server receiving the live SysFlow stream
//! from the collector, one Avro binary `SysFlow` datum per message (no schema on the wire),
//! as the reference processor's streaming driver does.
//!
//! - The socket file is created readable and writable by the owner only (mode 0600).
//! - One collector at a time; when it disconnects, the next connection is accepted. A
//!   reconnecting collector re-sends a header, which starts a new generation of the entity
//!   tables in every handler (as the reference does).
//! - No schema travels on the socket, and the header's `version` does not name the layout
//!   (1000 covers three). The layout is chosen **per connection** among the known ones
//!   ([`crate::layout::LAYOUTS`]): those whose header datum reads the connection's first
//!   message exactly, filtered by the header's `version`; then, datum by datum, every layout
//!   still in the running must decode each message **exactly, to its last byte**, or it drops
//!   out. Once one is left it is chosen (and said on the log: `connection 1: layout
//!   v1000-2019-01 ...`). While several are left, each datum they all decode to the same record
//!   is delivered at once; a datum on which they disagree waits, with the ones after it, until
//!   one layout is left, or [`MAX_UNDECIDED`] datums wait, or the connection ends: then the
//!   newest of them is taken. A message no layout in the running decodes is reported and
//!   skipped. [`SocketOptions::layout`] (`--socket-layout`) forces one layout instead.
//! - A message that is not a datum, or larger than [`SocketOptions::max_message`] (128 KiB by
//!   default, `--max-message`), is reported with the connection and message number and
//!   skipped; the stream goes on.
//! - Reports of each kind are rate-limited ([`sf_processor::limited!`]): a flood of garbage
//!   gives one line per kind every 10 s and the totals at the end.
//! - When the socket has nothing more to read, everything received is flushed to the rings,
//!   so a quiet collector's last records are not held back (only datums that wait for the
//!   layout to be decided wait on).

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketAddrUnix, SocketFlags, SocketType};
use sf_processor::model::Record;

use crate::driver::{NoConsumers, Sink};
use crate::fast::SysFlowDecoder;
use crate::layout::{self, LAYOUTS, Layout};

/// The default of [`SocketOptions::max_message`]: 128 KiB (a SysFlow datum is a few KiB at
/// most; the kernel caps a `SOCK_SEQPACKET` message near 208 KiB by default, its
/// `net.core.wmem_max`).
pub const MAX_MESSAGE: usize = 128 << 10;

/// The range [`SocketOptions::max_message`] may be set in: 1 KiB to 16 MiB.
pub const MAX_MESSAGE_RANGE: std::ops::RangeInclusive<usize> = (1 << 10)..=(16 << 20);

/// Most datums of a connection that wait while the layouts still in the running decode them
/// to different records; past it, the newest of those layouts is taken.
pub const MAX_UNDECIDED: usize = 256;

/// Settings of the socket driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// Largest message accepted, in bytes ([`MAX_MESSAGE`] by default, within
    /// [`MAX_MESSAGE_RANGE`]); a larger one is reported and skipped.
    pub max_message: usize,
    /// Read every connection with this layout instead of choosing one.
    pub layout: Option<&'static Layout>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            max_message: MAX_MESSAGE,
            layout: None,
        }
    }
}

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
    /// Messages skipped: larger than [`SocketOptions::max_message`].
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

/// The decoders of every known layout, built once.
fn layout_decoders() -> Result<Vec<(&'static Layout, SysFlowDecoder)>, String> {
    LAYOUTS
        .iter()
        .map(|l| {
            SysFlowDecoder::from_schema_json(l.schema)
                .map(|d| (l, d))
                .map_err(|e| format!("layout {}: {e}", l.name))
        })
        .collect()
}

/// The record of a message that one layout decodes exactly (every byte of the message).
fn decode_exact(decoder: &SysFlowDecoder, message: &[u8]) -> Result<Record, String> {
    let mut pos = 0;
    match decoder.decode_datum(message, &mut pos) {
        Ok(record) if pos == message.len() => Ok(record),
        Ok(_) => Err(format!(
            "{} bytes left after the datum",
            message.len() - pos
        )),
        Err(e) => Err(format!("not a SysFlow datum: {e}")),
    }
}

/// Finds the layout of one connection and decodes its messages (see the module's rules).
struct Connection<'d> {
    decoders: &'d [(&'static Layout, SysFlowDecoder)],
    /// `name: connection N`, for the log.
    label: String,
    /// Layouts still in the running (indices into `decoders`), preferred first; empty until a
    /// message decodes.
    candidates: Vec<usize>,
    chosen: Option<usize>,
    /// Messages decoded by every candidate, waiting because the candidates disagree on the
    /// first of them.
    waiting: VecDeque<Vec<u8>>,
    /// Messages decoded while choosing.
    seen: u64,
    /// The header's version, once read.
    version: Option<i64>,
}

impl<'d> Connection<'d> {
    fn new(
        decoders: &'d [(&'static Layout, SysFlowDecoder)],
        label: String,
        forced: Option<&'static Layout>,
    ) -> Self {
        let chosen = forced.and_then(|f| decoders.iter().position(|(l, _)| l.name == f.name));
        if let Some(i) = chosen {
            log::info!(
                "{label}: layout {} ({}), as --socket-layout says",
                decoders[i].0.name,
                decoders[i].0.description
            );
        }
        Connection {
            decoders,
            label,
            candidates: Vec::new(),
            chosen,
            waiting: VecDeque::new(),
            seen: 0,
            version: None,
        }
    }

    fn decoder(&self, i: usize) -> &'d SysFlowDecoder {
        &self.decoders[i].1
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self
            .candidates
            .iter()
            .map(|&i| self.decoders[i].0.name)
            .collect();
        names.join(", ")
    }

    /// Decodes the next message and delivers what can be delivered (counted in `records`);
    /// `Ok(Err(reason))` when no layout in the running decodes it (the message is skipped).
    ///
    /// # Errors
    /// [`NoConsumers`] from the sink.
    fn message(
        &mut self,
        message: &[u8],
        sink: &mut impl Sink,
        records: &mut u64,
    ) -> Result<Result<(), String>, NoConsumers> {
        if let Some(i) = self.chosen {
            return match decode_exact(self.decoder(i), message) {
                Ok(record) => {
                    *records += 1;
                    sink.deliver(record).map(Ok)
                }
                Err(e) => Ok(Err(e)),
            };
        }
        let pool: Vec<usize> = if self.candidates.is_empty() {
            (0..self.decoders.len()).collect()
        } else {
            self.candidates.clone()
        };
        let mut first_error = None;
        let mut fits = Vec::new();
        for &i in &pool {
            match decode_exact(self.decoder(i), message) {
                Ok(record) => fits.push((i, record)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if fits.is_empty() {
            return Ok(Err(first_error.unwrap_or_default()));
        }
        if self.candidates.is_empty() {
            // The first message: a header names its version, which keeps its layouts.
            let version = fits.iter().find_map(|(_, r)| match r {
                Record::Header(h) => Some(h.version),
                _ => None,
            });
            self.version = version;
            let mut keep: Vec<usize> = fits.iter().map(|(i, _)| *i).collect();
            if let Some(v) = version {
                let of_version: Vec<usize> = keep
                    .iter()
                    .copied()
                    .filter(|&i| layout::for_version(v).contains(&self.decoders[i].0))
                    .collect();
                if of_version.is_empty() {
                    log::warn!(
                        "{}: header version {v} is no known layout's; choosing among those that read it ({})",
                        self.label,
                        keep.iter()
                            .map(|&i| self.decoders[i].0.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                } else {
                    keep = of_version;
                }
            }
            self.candidates = keep;
        } else {
            self.candidates = fits.iter().map(|(i, _)| *i).collect();
        }
        self.seen += 1;
        self.waiting.push_back(message.to_vec());
        self.settle(sink, records, false).map(Ok)
    }

    /// Delivers the waiting messages that can be: all of them once one layout is left (or
    /// `force`, or too many wait: then the first candidate is taken), else those on which
    /// every candidate agrees.
    ///
    /// # Errors
    /// [`NoConsumers`] from the sink.
    fn settle(
        &mut self,
        sink: &mut impl Sink,
        records: &mut u64,
        force: bool,
    ) -> Result<(), NoConsumers> {
        let Some(&first) = self.candidates.first() else {
            return Ok(());
        };
        let version = self
            .version
            .map_or_else(|| "no header".to_owned(), |v| format!("header version {v}"));
        if self.candidates.len() == 1 {
            self.chosen = Some(first);
            log::info!(
                "{}: layout {} ({}), the only one that reads the first {} datum(s) exactly ({version})",
                self.label,
                self.decoders[first].0.name,
                self.decoders[first].0.description,
                self.seen
            );
        } else if force || self.waiting.len() >= MAX_UNDECIDED {
            if !self.waiting.is_empty() {
                log::warn!(
                    "{}: layouts {} all read the first {} datum(s) exactly ({version}), with different records; taking {} ({})",
                    self.label,
                    self.names(),
                    self.seen,
                    self.decoders[first].0.name,
                    self.decoders[first].0.description
                );
            }
            self.chosen = Some(first);
        }
        if let Some(i) = self.chosen {
            while let Some(message) = self.waiting.pop_front() {
                // It read the message exactly when it came (it is still in the running).
                if let Ok(record) = decode_exact(self.decoder(i), &message) {
                    *records += 1;
                    sink.deliver(record)?;
                }
            }
            return Ok(());
        }
        while let Some(message) = self.waiting.front() {
            let mut decoded = self
                .candidates
                .iter()
                .map(|&i| decode_exact(self.decoder(i), message).ok());
            let Some(Some(record)) = decoded.next() else {
                break;
            };
            if !decoded.all(|r| r.as_ref() == Some(&record)) {
                break;
            }
            self.waiting.pop_front();
            *records += 1;
            sink.deliver(record)?;
        }
        Ok(())
    }

    /// The connection ended: what still waits is decoded with the first candidate.
    fn finish(&mut self, sink: &mut impl Sink, records: &mut u64) -> Result<(), NoConsumers> {
        if self.chosen.is_none() && self.candidates.len() > 1 {
            if self.waiting.is_empty() {
                log::info!(
                    "{}: layouts {} read every datum alike ({} datums)",
                    self.label,
                    self.names(),
                    self.seen
                );
            }
            self.settle(sink, records, true)?;
        }
        Ok(())
    }
}

/// Serves collectors on `listener` until `stop` is set, publishing every record.
///
/// # Errors
/// [`NoConsumers`] when there is nobody left to publish to.
pub fn serve(
    listener: &Listener,
    publisher: &mut impl Sink,
    stop: &AtomicBool,
    options: &SocketOptions,
) -> Result<SocketSummary, NoConsumers> {
    let decoders = match layout_decoders() {
        Ok(d) => d,
        Err(e) => {
            log::error!("the embedded SysFlow schemas do not load: {e}");
            return Ok(SocketSummary::default());
        }
    };
    let max = options.max_message;
    let mut summary = SocketSummary::default();
    let mut buf = vec![0u8; max];
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
        let mut connection =
            Connection::new(&decoders, format!("{name}: connection {c}"), options.layout);
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
                    sf_processor::limited!(
                        error,
                        "socket: empty messages",
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
                        sf_processor::limited!(
                            error,
                            "socket: empty messages",
                            "{name}: connection {c}, message {message}: empty message; skipped"
                        );
                    }
                    message += 1;
                    if len > buf.len() {
                        summary.oversized += 1;
                        sf_processor::limited!(
                            error,
                            "socket: messages too large",
                            "{name}: connection {c}, message {message}: {len} bytes, larger than the {max}-byte message limit (--max-message); skipped"
                        );
                        continue;
                    }
                    if let Err(e) =
                        connection.message(&buf[..len], publisher, &mut summary.records)?
                    {
                        summary.undecodable += 1;
                        sf_processor::limited!(
                            error,
                            "socket: messages not SysFlow datums",
                            "{name}: connection {c}, message {message}: {e}; skipped"
                        );
                    }
                }
            }
        }
        connection.finish(publisher, &mut summary.records)?;
        publisher.flush();
    }
    Ok(summary)
}
