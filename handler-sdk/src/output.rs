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
