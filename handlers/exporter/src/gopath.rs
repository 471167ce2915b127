//! Go's `path/filepath` functions as the reference exporter applies them to SysFlow paths
//! (`Base`, `Dir`, `Clean`), and its parsing of the collector's `SRC->DST PATH` socket paths
//! (`flatrecord.parseSymPath`). The reference's output is defined by them, quirks included:
//! an empty path has the name and directory `"."`.

/// Go's `filepath.Base`: the last element of `path`, trailing slashes ignored; `"."` for an
/// empty path, `"/"` for a path of slashes. No cleaning (`Base("a/..")` is `".."`).
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

/// Go's `filepath.Dir`: everything before the last slash, cleaned ([`clean`]); `"."` when
/// there is no slash (an empty path included).
pub fn dir(path: &str) -> String {
    let head = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    clean(head)
}

/// Go's `path.Clean`: the shortest equivalent path (one slash between elements, no `.`
/// elements, `..` resolved lexically, no trailing slash but for `/`); `"."` for an empty
/// result.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The reference's `parseSymPath`: a path of the form `SRC->DST PATH` (hex kernel addresses of
/// a connected Unix socket, then its path), as Go's `fmt.Sscanf(orig, "%x->%x %s")` reads it,
/// gives `(PATH, "src->dst")` (hex in lower case, without leading zeros; `PATH` stops at the
/// first blank); the other form it knows, `SRC-\uDST PATH`, likewise. Any other string is
/// `(path, "")`.
pub fn parse_sym_path(orig: &str) -> (&str, String) {
    for sep in ["->", "-\\u"] {
        if let Some((src, dst, target)) = scan_sym(orig, sep) {
            return (target, format!("{src:x}{sep}{dst:x}"));
        }
    }
    (orig, String::new())
}

/// `Sscanf(s, "%x" + sep + "%x %s")`: both numbers must fit in 64 bits and a word must
/// follow.
fn scan_sym<'a>(s: &'a str, sep: &str) -> Option<(u64, u64, &'a str)> {
    let (src, rest) = scan_hex(s)?;
    let rest = rest.strip_prefix(sep)?;
    let (dst, rest) = scan_hex(rest)?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let end = rest.find([' ', '\t', '\n', '\r']).unwrap_or(rest.len());
    let word = &rest[..end];
    (!word.is_empty()).then_some((src, dst, word))
}

/// Go's `%x` scan of an unsigned number: blanks skipped, hex digits, at most 64 bits.
fn scan_hex(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let end = s.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let value = u64::from_str_radix(&s[..end], 16).ok()?;
    Some((value, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_dir_are_gos() {
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
            assert_eq!(base(path), b, "Base({path:?})");
            assert_eq!(dir(path), d, "Dir({path:?})");
        }
        assert_eq!(clean("../../a/./b/.."), "../../a");
        assert_eq!(clean("/../a"), "/a");
    }

    #[test]
    fn socket_paths_split_as_the_reference_scans_them() {
        assert_eq!(
            parse_sym_path("ffff9ce02054c800->ffff9ce02054c000 /sock/sysflow.sock"),
            (
                "/sock/sysflow.sock",
                "ffff9ce02054c800->ffff9ce02054c000".into()
            )
        );
        assert_eq!(
            parse_sym_path("00ab->0c /x y"),
            ("/x", "ab->c".into()),
            "leading zeros go, the path stops at a blank"
        );
        assert_eq!(
            parse_sym_path("/etc/passwd"),
            ("/etc/passwd", String::new())
        );
        assert_eq!(
            parse_sym_path("ab->cd"),
            ("ab->cd", String::new()),
            "no word after"
        );
        assert_eq!(
            parse_sym_path("1ffffffffffffffff->1 /p"),
            ("1ffffffffffffffff->1 /p", String::new()),
            "more than 64 bits"
        );
    }
}
