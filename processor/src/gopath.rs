//! Go's `path/filepath` functions (Unix) as the reference processor applies them to SysFlow
//! paths, and its parsing of the collector's socket paths: the attribute mappers of its policy
//! engine (`filepath.Base` for `sf.proc.name` and `fd.name`, `filepath.Dir` for
//! `sf.file.directory`) and its exporter's flat record (`flatrecord.parseSymPath`). The
//! reference's output is defined by them, quirks included: an empty path has the name and the
//! directory `"."`.
//!
//! Nothing here allocates for a path that is already clean; the rest writes into a buffer
//! the caller keeps.

/// Go's `filepath.Base`: the last element, trailing slashes removed; `"."` for an empty path,
/// `"/"` for a path of slashes only. Borrows from `path`.
pub fn base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Whether `p` is already what Go's `filepath.Clean` returns for it.
fn is_clean(p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    if p == "/" {
        return true;
    }
    if p.ends_with('/') {
        return false;
    }
    let rooted = p.starts_with('/');
    let body = if rooted { &p[1..] } else { p };
    let mut leading_dotdots = true;
    for (i, elem) in body.split('/').enumerate() {
        match elem {
            "" | "." => return p == "." && i == 0,
            ".." => {
                // `..` stays only at the start of a relative path.
                if rooted || !leading_dotdots {
                    return false;
                }
            }
            _ => leading_dotdots = false,
        }
    }
    true
}

/// Go's `filepath.Clean`, written into `buf`.
pub fn clean_into(path: &str, buf: &mut String) {
    buf.clear();
    if path.is_empty() {
        buf.push('.');
        return;
    }
    let rooted = path.starts_with('/');
    if rooted {
        buf.push('/');
    }
    // Start of the part that `..` may remove (after the root or after leading `..`s).
    let mut dotdot = buf.len();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => {
                if buf.len() > dotdot {
                    // Remove the last element.
                    let cut = buf[dotdot..].rfind('/').map_or(dotdot, |i| dotdot + i);
                    buf.truncate(cut);
                } else if !rooted {
                    if !buf.is_empty() {
                        buf.push('/');
                    }
                    buf.push_str("..");
                    dotdot = buf.len();
                }
            }
            e => {
                if (rooted && buf.len() > 1) || (!rooted && !buf.is_empty()) {
                    buf.push('/');
                }
                buf.push_str(e);
            }
        }
    }
    if buf.is_empty() {
        buf.push('.');
    }
}

/// Go's `filepath.Dir`: everything but the last element, cleaned. Borrows from `path` when
/// that is already clean, else writes into `buf`.
pub fn dir<'a>(path: &'a str, buf: &'a mut String) -> &'a str {
    let upto = path.rfind('/').map_or(0, |i| i + 1);
    let prefix = &path[..upto];
    // The common case, `/a/b/c`: `/a/b` is clean.
    let candidate = if prefix.len() > 1 {
        &prefix[..prefix.len() - 1]
    } else {
        prefix
    };
    if is_clean(candidate) {
        return candidate;
    }
    clean_into(prefix, buf);
    buf
}

/// The reference's `parseSymPath`: a socket description `HEX->HEX PATH` gives (`PATH`,
/// `HEX->HEX` with the numbers in lower-case hex without leading zeros); so does
/// `HEX-\uHEX PATH` when both numbers fit in 64 bits. Any other path is itself, with no
/// link. Returns the path; writes the link (or nothing) into `link`.
pub fn parse_sym_path<'a>(orig: &'a str, link: &mut String) -> &'a str {
    link.clear();
    let Some((src, rest)) = hex_prefix(orig) else {
        return orig;
    };
    for sep in ["->", "-\\u"] {
        if let Some(after) = rest.strip_prefix(sep)
            && let Some((dst, tail)) = hex_prefix(after)
        {
            // `%s` skips spaces, then takes the next word.
            let tail = tail.trim_start_matches([' ', '\t']);
            let word_end = tail.find([' ', '\t', '\n', '\r']).unwrap_or(tail.len());
            if word_end == 0 {
                return orig;
            }
            use std::fmt::Write;
            let _ = write!(link, "{src:x}{sep}{dst:x}");
            return &tail[..word_end];
        }
    }
    orig
}

/// A hexadecimal number at the start of `s` (Go's `%x` into a `uint64`: leading blanks
/// skipped, not newlines, as `Sscanf` does; overflow is an error).
fn hex_prefix(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    if n == 0 {
        return None;
    }
    let v = u64::from_str_radix(&s[..n], 16).ok()?;
    Some((v, &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_follows_go() {
        for (p, want) in [
            ("", "."),
            ("/", "/"),
            ("///", "/"),
            ("/usr/bin/bash", "bash"),
            ("bash", "bash"),
            ("/etc/", "etc"),
        ] {
            assert_eq!(base(p), want, "{p:?}");
        }
    }

    #[test]
    fn dir_and_clean_follow_go() {
        for (p, want) in [
            ("", "."),
            ("/", "/"),
            ("/etc/passwd", "/etc"),
            ("/etc", "/"),
            ("passwd", "."),
            ("//sys/fs", "/sys"),
            ("/a/./b/../c/d", "/a/c"),
            ("/a/b/", "/a/b"),
            ("a/b", "a"),
            ("../../x", "../.."),
            ("/../x", "/"),
            ("./x", "."),
        ] {
            let mut buf = String::new();
            assert_eq!(dir(p, &mut buf), want, "{p:?}");
        }
        let mut buf = String::new();
        clean_into("a/../../b/./c//", &mut buf);
        assert_eq!(buf, "../b/c");
    }

    #[test]
    fn socket_paths_split_into_path_and_link() {
        let mut link = String::new();
        assert_eq!(
            parse_sym_path(
                "ffff9ce02054c800->ffff9ce02054c000 /var/run/docker.sock",
                &mut link
            ),
            "/var/run/docker.sock"
        );
        assert_eq!(link, "ffff9ce02054c800->ffff9ce02054c000");
        assert_eq!(parse_sym_path("0a->0b /x", &mut link), "/x");
        assert_eq!(link, "a->b");
        assert_eq!(parse_sym_path("/etc/passwd", &mut link), "/etc/passwd");
        assert_eq!(link, "");
        // The second number overflows 64 bits: the whole text is the path.
        let s = "ffff9ce02054c800-\\u003effff9ce02054c000 /sock/sysflow.sock";
        assert_eq!(parse_sym_path(s, &mut link), s);
        assert_eq!(link, "");
    }

    #[test]
    fn base_and_dir_of_the_exporters_cases() {
        for (path, b, d) in [
            ("/tmp/a.txt", "a.txt", "/tmp"),
            ("./testing_dir", "testing_dir", "."),
            ("a", "a", "."),
            ("/a", "a", "/"),
            ("/", "/", "/"),
            ("a/b/", "b", "a/b"),
            ("", ".", "."),
            ("/a/b/../c", "c", "/a"),
            ("//x//y", "y", "/x"),
        ] {
            let mut buf = String::new();
            assert_eq!(base(path), b, "Base({path:?})");
            assert_eq!(dir(path, &mut buf), d, "Dir({path:?})");
        }
        let mut buf = String::new();
        clean_into("../../a/./b/..", &mut buf);
        assert_eq!(buf, "../../a");
        clean_into("/../a", &mut buf);
        assert_eq!(buf, "/a");
    }

    #[test]
    fn socket_paths_split_as_sscanf_scans_them() {
        let mut link = String::new();
        assert_eq!(parse_sym_path("00ab->0c /x y", &mut link), "/x");
        assert_eq!(link, "ab->c", "leading zeros go, the path stops at a blank");
        assert_eq!(
            parse_sym_path("ab->cd", &mut link),
            "ab->cd",
            "no word after"
        );
        assert_eq!(link, "");
        assert_eq!(
            parse_sym_path("1ffffffffffffffff->1 /p", &mut link),
            "1ffffffffffffffff->1 /p",
            "more than 64 bits"
        );
        assert_eq!(
            parse_sym_path("ab->cd\n/p", &mut link),
            "ab->cd\n/p",
            "Sscanf does not skip a newline"
        );
    }
}
