//! A small JSON writer into a byte buffer, for the hot path of both encoders: numbers through
//! `itoa`, strings escaped as the reference's JSON writer (easyjson's `jwriter`) escapes them
//! (`"`, `\`, control characters, and `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`; U+2028
//! and U+2029 as `\u2028`, `\u2029`), so that the bytes, not only the parsed values, are the
//! reference's.

/// Per byte: 0 copied as is, 1 escaped, 2 the first byte of a possible U+2028/U+2029.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 1;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 1;
    t[b'<' as usize] = 1;
    t[b'>' as usize] = 1;
    t[b'&' as usize] = 1;
    t[0xE2] = 2;
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string, quotes included.
#[inline]
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    string_body(out, s);
    out.push(b'"');
}

/// Appends `s` escaped, without quotes.
#[inline]
pub fn string_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match ESCAPE[b as usize] {
            0 => {
                i += 1;
            }
            2 => {
                if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9))
                {
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(if bytes[i + 2] == 0xA8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    i += 3;
                    start = i;
                } else {
                    i += 1;
                }
            }
            _ => {
                out.extend_from_slice(&bytes[start..i]);
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => {
                        out.extend_from_slice(b"\\u00");
                        out.push(HEX[(b >> 4) as usize]);
                        out.push(HEX[(b & 0xF) as usize]);
                    }
                }
                i += 1;
                start = i;
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends an integer.
#[inline]
pub fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// Appends `true` or `false`.
#[inline]
pub fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends an IPv4 address stored as SysFlow stores it (network byte order in an `int`: the
/// low byte is the first) as a dotted quad, quotes included.
#[inline]
pub fn ipv4(out: &mut Vec<u8>, ip: i64) {
    out.push(b'"');
    ipv4_body(out, ip);
    out.push(b'"');
}

/// [`ipv4`] without the quotes.
#[inline]
pub fn ipv4_body(out: &mut Vec<u8>, ip: i64) {
    for shift in [0, 8, 16, 24] {
        if shift > 0 {
            out.push(b'.');
        }
        int(out, (ip >> shift) & 0xFF);
    }
}

/// Appends `["a","b"]`, each element a JSON string.
pub fn str_array<'s>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

/// Appends `[1,2]`.
pub fn int_array(out: &mut Vec<u8>, items: impl IntoIterator<Item = i64>) {
    out.push(b'[');
    for (i, n) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        int(out, n);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_the_reference_writer_does() {
        assert_eq!(s("plain"), r#""plain""#);
        assert_eq!(s("<NA> & \"q\" \\"), r#""\u003cNA\u003e \u0026 \"q\" \\""#);
        assert_eq!(s("a\nb\tc\r\u{0}\u{1f}"), r#""a\nb\tc\r\u0000\u001f""#);
        assert_eq!(s("x\u{2028}y\u{2029}z€"), "\"x\\u2028y\\u2029z€\"");
        for text in ["<NA> & \"q\"", "a\nb\u{0}", "x\u{2028}y€✓", ""] {
            let v: serde_json::Value = serde_json::from_str(&s(text)).unwrap();
            assert_eq!(v, text, "round trip of {text:?}");
        }
    }

    #[test]
    fn numbers_and_addresses() {
        let mut out = Vec::new();
        int(&mut out, -17i64);
        out.push(b' ');
        ipv4(&mut out, 16777343);
        out.push(b' ');
        int_array(&mut out, [1, 2]);
        out.push(b' ');
        str_array(&mut out, ["a", "b"]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"-17 "127.0.0.1" [1,2] ["a","b"]"#
        );
    }
}
