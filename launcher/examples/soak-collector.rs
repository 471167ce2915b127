//! The collector side of the soak benchmark (`bench/soak.sh`): connects to a pipeline's
//! socket like the SysFlow collector, sends every record of a trace (one Avro datum per
//! `SOCK_SEQPACKET` message), disconnects, and does it again, `CONNECTIONS` times.
//!
//! ```text
//! soak-collector SOCKET TRACE CONNECTIONS [REPORT_EVERY]
//! ```
//!
//! Prints `connection N: R records in all, S s` to standard error every `REPORT_EVERY`
//! connections (default 100), so that the script can sample the pipeline meanwhile.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, send, socket,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, sock, trace, connections, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: soak-collector SOCKET TRACE CONNECTIONS [REPORT_EVERY]");
    };
    let connections: u64 = connections.parse()?;
    let every: u64 = rest.first().map_or(Ok(100), |s| s.parse())?;
    // The trace's datums byte for byte, as the collector would send them.
    let messages = sf_oracle::datums(&std::fs::read(Path::new(trace))?)
        .map_err(|e| anyhow::anyhow!("{trace}: {e}"))?;
    let addr = UnixAddr::new(Path::new(sock))?;
    let started = Instant::now();
    let mut sent = 0u64;
    for c in 1..=connections {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = connect(fd.as_raw_fd(), &addr) {
            anyhow::ensure!(Instant::now() < deadline, "connect {sock}: {e}");
            std::thread::sleep(Duration::from_millis(20));
        }
        for m in &messages {
            send(fd.as_raw_fd(), m, MsgFlags::empty())?;
        }
        sent += messages.len() as u64;
        drop(fd);
        if c % every == 0 || c == connections {
            eprintln!(
                "connection {c}: {sent} records in all, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
