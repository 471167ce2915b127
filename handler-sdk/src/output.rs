//! Helpers for handlers that append lines to a file.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

/// Cuts off a last line without its newline: what a predecessor killed in the middle of its
/// `write(2)` left (a fatal signal can cut a write to a regular file at a page boundary).
/// Call it when opening the file (read and append access), before the first write: the
/// record that line was for was not acknowledged, so this process writes it again, whole.
/// Looks at the last 1 MiB at most (a longer last line is left as it is).
///
/// # Errors
/// When the file cannot be read or truncated.
pub fn cut_torn_line(file: &File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 || !file.metadata()?.is_file() {
        return Ok(());
    }
    let start = len.saturating_sub(1 << 20);
    let mut tail = vec![0; (len - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None if start == 0 => 0,
        // No newline in the last 1 MiB: not a torn line of ours.
        None => return Ok(()),
    };
    file.set_len(keep)
}

/// Writes `pending` (whole lines) to `file` and takes what was written out of it, so that
/// what is left is exactly what was not written (and must not be acknowledged): a handler's
/// commit on a file or standard output. On a full disk no partial line is left behind:
///
/// - on a regular file, the space is reserved first (`fallocate(FALLOC_FL_KEEP_SIZE)`; the
///   file's size does not change): no space, nothing is written, `ENOSPC` is returned;
/// - if a write still stops in the middle of a line (another writer took the space in
///   between, or the file system cannot reserve), and `exclusive` (the file is this
///   handler's alone, not a standard output shared with other processes), the partial line
///   is cut off the file again and stays in `pending`.
///
/// After a failure, call it again later (at the next commit): the lines go out whole, in
/// order, once there is room.
///
/// # Errors
/// The write's error (`ENOSPC`, `EIO`, ...); `pending` then holds what was not written.
pub fn write_lines(file: &File, pending: &mut Vec<u8>, exclusive: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    if pending.is_empty() {
        return Ok(());
    }
    let meta = file.metadata()?;
    if meta.is_file() {
        use nix::fcntl::{FallocateFlags, fallocate};
        match fallocate(
            file,
            FallocateFlags::FALLOC_FL_KEEP_SIZE,
            meta.len() as i64,
            pending.len() as i64,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOSPC) => {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ENOSPC));
            }
            // Not supported here (NFS, FUSE, ...): the write says.
            Err(_) => {}
        }
    }
    let mut done = 0;
    let mut out = file;
    let result = loop {
        if done == pending.len() {
            break Ok(());
        }
        match out.write(&pending[done..]) {
            Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let mut keep_from = done;
    if result.is_err() && exclusive && meta.is_file() {
        let whole = pending[..done]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let partial = (done - whole) as u64;
        if partial > 0 {
            let len = file.metadata()?.len();
            file.set_len(len.saturating_sub(partial))?;
            keep_from = whole;
        }
    }
    pending.drain(..keep_from);
    result
}

#[cfg(test)]
mod tests {
    use super::cut_torn_line;
    use std::io::Write as _;

    fn after(content: &[u8]) -> Vec<u8> {
        let dir =
            std::env::temp_dir().join(format!("sdk-torn-{}-{}", std::process::id(), content.len()));
        std::fs::write(&dir, content).unwrap();
        let mut f = std::fs::File::options()
            .append(true)
            .read(true)
            .open(&dir)
            .unwrap();
        cut_torn_line(&f).unwrap();
        // Appending goes on after what was kept.
        f.write_all(b"next\n").unwrap();
        let kept = std::fs::read(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        kept
    }

    #[test]
    fn a_torn_last_line_is_cut_and_whole_lines_are_kept() {
        assert_eq!(after(b"1\ta\n2\tb\n3\tpar"), b"1\ta\n2\tb\nnext\n");
        assert_eq!(after(b"1\ta\n2\tb\n"), b"1\ta\n2\tb\nnext\n");
        assert_eq!(after(b"torn"), b"next\n");
        assert_eq!(after(b""), b"next\n");
    }
}
