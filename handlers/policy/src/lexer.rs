//! The tokens of the policy language, as the reference's ANTLR lexer cuts them
//! (`core/policyengine/policy/falco/lang/Sfpl.g4`, v0.7.0).
//!
//! The reference reads policy files with this grammar, not with a YAML parser, and its files
//! rely on that (list items indented by one space, tabs, `desc` texts kept raw). The lexer
//! follows ANTLR's rules: at each position the longest match of any token rule wins, and of
//! two matches of the same length the rule listed first in the grammar (so `rule` is the
//! keyword, `rules` an identifier, `high` a severity, `in` the operator). White space and
//! `#` comments are skipped (the grammar's hidden channel) but every token keeps its byte
//! range, so a rule's `desc` can be taken raw from the source as the reference takes it.

/// What a token is. Keywords and operators are spelled as in the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// A declaration keyword or key name (`rule`, `desc`, `condition`, ...).
    Keyword(Keyword),
    /// `and`.
    And,
    /// `or`.
    Or,
    /// `not`.
    Not,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `=`.
    Eq,
    /// `!=`.
    Neq,
    /// `in`.
    In,
    /// `contains`.
    Contains,
    /// `icontains`.
    IContains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
    /// `pmatch`.
    PMatch,
    /// `exists`.
    Exists,
    /// `[`.
    LBrack,
    /// `]`.
    RBrack,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    ListSep,
    /// `-`, which starts a declaration.
    Decl,
    /// `:`, optionally followed by spaces and `>` (a folded-text marker, part of the token).
    Def,
    /// A priority word (`high`, `warning`, ...; any case).
    Severity,
    /// An identifier: attribute names, macro and list names, bare words.
    Id,
    /// A number (only where no identifier is as long: identifiers may start with digits).
    Number,
    /// A path-like word (`/bin/sh`, `k8s.gcr.io/pause`).
    Path,
    /// A quoted string, quotes included.
    Str,
    /// `ID:ID`, e.g. `mitre:T1059`.
    Tag,
    /// Any other single character.
    Any,
}

/// The keywords of declarations and their keys, in the grammar's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// `rule`.
    Rule,
    /// `filter`.
    Filter,
    /// `drop`.
    Drop,
    /// `macro`.
    Macro,
    /// `list`.
    List,
    /// `name`.
    Name,
    /// `items`.
    Items,
    /// `condition`.
    Condition,
    /// `desc`.
    Desc,
    /// `actions`.
    Actions,
    /// `output`.
    Output,
    /// `priority`.
    Priority,
    /// `tags`.
    Tags,
    /// `prefilter`.
    Prefilter,
    /// `enabled`.
    Enabled,
    /// `warn_evttypes`.
    WarnEvttypes,
    /// `skip-if-unknown-filter`.
    SkipUnknown,
    /// `append`.
    Append,
    /// `required_engine_version`.
    Required,
}

const KEYWORDS: [(&str, Keyword); 19] = [
    ("rule", Keyword::Rule),
    ("filter", Keyword::Filter),
    ("drop", Keyword::Drop),
    ("macro", Keyword::Macro),
    ("list", Keyword::List),
    ("name", Keyword::Name),
    ("items", Keyword::Items),
    ("condition", Keyword::Condition),
    ("desc", Keyword::Desc),
    ("actions", Keyword::Actions),
    ("output", Keyword::Output),
    ("priority", Keyword::Priority),
    ("tags", Keyword::Tags),
    ("prefilter", Keyword::Prefilter),
    ("enabled", Keyword::Enabled),
    ("warn_evttypes", Keyword::WarnEvttypes),
    ("skip-if-unknown-filter", Keyword::SkipUnknown),
    ("append", Keyword::Append),
    ("required_engine_version", Keyword::Required),
];

const WORD_OPERATORS: [(&str, Tok); 10] = [
    ("and", Tok::And),
    ("or", Tok::Or),
    ("not", Tok::Not),
    ("in", Tok::In),
    ("contains", Tok::Contains),
    ("icontains", Tok::IContains),
    ("startswith", Tok::StartsWith),
    ("endswith", Tok::EndsWith),
    ("pmatch", Tok::PMatch),
    ("exists", Tok::Exists),
];

/// The priority words of the grammar's `SEVERITY` token (case-insensitive).
const SEVERITIES: [&str; 12] = [
    "high",
    "medium",
    "low",
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "informational",
    "debug",
];

/// One token: its kind and where it is (byte range, 1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Line of the first byte, from 1.
    pub line: u32,
    /// Column of the first byte (in characters), from 1.
    pub col: u32,
}

impl Token {
    /// The token's text in `src`.
    pub fn text<'s>(&self, src: &'s str) -> &'s str {
        &src[self.start..self.end]
    }
}

fn is_id_start(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'*')
}

fn is_path_start(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.')
}

fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'*')
}

/// Length of the grammar's `PATH` at `s[i..]` (0: none).
fn path_len(s: &[u8], i: usize) -> usize {
    if i >= s.len() || !is_path_start(s[i]) {
        return 0;
    }
    let mut j = i + 1;
    while j < s.len() && is_path_char(s[j]) {
        j += 1;
    }
    j - i
}

/// Length of the grammar's `NUMBER` at `s[i..]`: digits, optionally `.` and digits.
fn number_len(s: &[u8], i: usize) -> usize {
    let digits = |mut j: usize| {
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let j = digits(i);
    if j == i {
        return 0;
    }
    if j + 1 < s.len() && s[j] == b'.' && s[j + 1].is_ascii_digit() {
        return digits(j + 1) - i;
    }
    j - i
}

/// Length of the grammar's `ID` at `s[i..]`: a word character, then word characters, `-`,
/// `.`, `*`, or a bracketed suffix `[PATH(:PATH)*]`, optionally after `:`.
fn id_len(s: &[u8], i: usize) -> usize {
    if i >= s.len() || !is_id_start(s[i]) {
        return 0;
    }
    let mut j = i + 1;
    loop {
        if j < s.len() && is_id_char(s[j]) {
            j += 1;
            continue;
        }
        // `:`? `[` (NUMBER|PATH) (`:` PATH)* `]`
        let open = if j < s.len() && s[j] == b':' {
            j + 1
        } else {
            j
        };
        if open < s.len() && s[open] == b'[' {
            let mut k = open + 1;
            let first = path_len(s, k).max(number_len(s, k));
            if first > 0 {
                k += first;
                while k < s.len() && s[k] == b':' {
                    let n = path_len(s, k + 1);
                    if n == 0 {
                        break;
                    }
                    k += 1 + n;
                }
                if k < s.len() && s[k] == b']' {
                    j = k + 1;
                    continue;
                }
            }
        }
        break;
    }
    j - i
}

const QUOTES: [&[u8]; 4] = [b"\"", b"'", b"\\\"", b"''"];

/// The first `needle` in `s[from..]` before a line end: its position.
fn find_on_line(s: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let mut k = from;
    while k + needle.len() <= s.len() {
        if s[k] == b'\n' || s[k] == b'\r' {
            return None;
        }
        if s[k..].starts_with(needle) {
            return Some(k);
        }
        k += 1;
    }
    None
}

/// Length of the grammar's `STRING` at `s[i..]` (0: none). Its alternatives are `"` `'` `\"`
/// and `''` around either a nested `STRING` or a non-greedy run of characters other than line
/// ends. As ANTLR runs them: the run ends at the first closing quote, while the nested
/// alternative (of higher priority) goes on to the first place where a nested string's
/// closing quote is followed by the outer one; the longer of the two wins. So
/// `'"a 'b' c"'` is one string (the reference's `falco.yaml` has such items).
fn string_len(s: &[u8], i: usize) -> usize {
    let mut best = 0;
    for q in QUOTES {
        if !s[i..].starts_with(q) {
            continue;
        }
        let j = i + q.len();
        if let Some(k) = find_on_line(s, j, q) {
            best = best.max(k + q.len() - i);
        }
        for q2 in QUOTES {
            if !s[j..].starts_with(q2) {
                continue;
            }
            let close: Vec<u8> = [q2, q].concat();
            if let Some(k) = find_on_line(s, j + q2.len(), &close) {
                best = best.max(k + close.len() - i);
            }
        }
    }
    best
}

/// The tokens of `src` (hidden ones dropped).
pub fn tokenize(src: &str) -> Vec<Token> {
    let s = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1u32;
    let mut line_start = 0usize;
    while i < s.len() {
        let b = s[i];
        // Hidden: white space and comments.
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c') {
            if b == b'\n' {
                line += 1;
                line_start = i + 1;
            }
            i += 1;
            continue;
        }
        if b == b'#' {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let col = src[line_start..i].chars().count() as u32 + 1;
        // Candidates: (length, token), in grammar order; the longest wins, the first on ties.
        let mut best: (usize, Tok) = (0, Tok::Any);
        let mut offer = |len: usize, tok: Tok| {
            if len > best.0 {
                best = (len, tok);
            }
        };
        let word = id_len(s, i);
        let word_text = &src[i..i + word];
        // Keywords: fixed strings (`skip-if-unknown-filter` is longer than its ID prefix).
        for (kw, k) in KEYWORDS {
            if s[i..].starts_with(kw.as_bytes()) {
                offer(kw.len(), Tok::Keyword(k));
            }
        }
        for (op, t) in WORD_OPERATORS {
            if s[i..].starts_with(op.as_bytes()) {
                offer(op.len(), t);
            }
        }
        match b {
            b'<' if s.get(i + 1) == Some(&b'=') => offer(2, Tok::Le),
            b'<' => offer(1, Tok::Lt),
            b'>' if s.get(i + 1) == Some(&b'=') => offer(2, Tok::Ge),
            b'>' => offer(1, Tok::Gt),
            b'=' => offer(1, Tok::Eq),
            b'!' if s.get(i + 1) == Some(&b'=') => offer(2, Tok::Neq),
            b'[' => offer(1, Tok::LBrack),
            b']' => offer(1, Tok::RBrack),
            b'(' => offer(1, Tok::LParen),
            b')' => offer(1, Tok::RParen),
            b',' => offer(1, Tok::ListSep),
            b'-' => offer(1, Tok::Decl),
            b':' => {
                // ':' ((' ')* '>')?
                let mut j = i + 1;
                while j < s.len() && s[j] == b' ' {
                    j += 1;
                }
                if j < s.len() && s[j] == b'>' {
                    offer(j + 1 - i, Tok::Def);
                } else {
                    offer(1, Tok::Def);
                }
            }
            _ => {}
        }
        // SEVERITY is listed before ID: it wins when the whole word is a priority name.
        if word > 0 && SEVERITIES.iter().any(|w| w.eq_ignore_ascii_case(word_text)) {
            offer(word, Tok::Severity);
        }
        offer(word, Tok::Id);
        offer(number_len(s, i), Tok::Number);
        offer(path_len(s, i), Tok::Path);
        offer(string_len(s, i), Tok::Str);
        if word > 0 && s.get(i + word) == Some(&b':') {
            let second = id_len(s, i + word + 1);
            if second > 0 {
                offer(word + 1 + second, Tok::Tag);
            }
        }
        let (mut len, tok) = best;
        if len == 0 {
            // ANY: one character.
            len = src[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push(Token {
            tok,
            start: i,
            end: i + len,
            line,
            col,
        });
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Tok, &str)> {
        tokenize(src).iter().map(|t| (t.tok, t.text(src))).collect()
    }

    #[test]
    fn keywords_win_ties_identifiers_win_longer_words() {
        assert_eq!(
            kinds("rule rules in init high highway"),
            [
                (Tok::Keyword(Keyword::Rule), "rule"),
                (Tok::Id, "rules"),
                (Tok::In, "in"),
                (Tok::Id, "init"),
                (Tok::Severity, "high"),
                (Tok::Id, "highway"),
            ]
        );
        assert_eq!(
            kinds("skip-if-unknown-filter: WARNING"),
            [
                (Tok::Keyword(Keyword::SkipUnknown), "skip-if-unknown-filter"),
                (Tok::Def, ":"),
                (Tok::Severity, "WARNING"),
            ]
        );
    }

    #[test]
    fn attributes_paths_numbers_strings_and_tags() {
        assert_eq!(
            kinds(
                r#"proc.aname[2]=sshd sf.ke.message[items.0.namespace] /usr/bin/* 1024 127.0.0.1 '"(systemd)"' "\u003cNA\u003e" mitre:T1059"#
            ),
            [
                (Tok::Id, "proc.aname[2]"),
                (Tok::Eq, "="),
                (Tok::Id, "sshd"),
                (Tok::Id, "sf.ke.message[items.0.namespace]"),
                (Tok::Path, "/usr/bin/*"),
                (Tok::Id, "1024"),
                (Tok::Id, "127.0.0.1"),
                (Tok::Str, "'\"(systemd)\"'"),
                (Tok::Str, r#""\u003cNA\u003e""#),
                (Tok::Tag, "mitre:T1059"),
            ]
        );
        assert_eq!(
            kinds("k8s.gcr.io/pause:3.1 evt.dir=< !x"),
            [
                (Tok::Path, "k8s.gcr.io/pause"),
                (Tok::Def, ":"),
                (Tok::Id, "3.1"),
                (Tok::Id, "evt.dir"),
                (Tok::Eq, "="),
                (Tok::Lt, "<"),
                (Tok::Any, "!"),
                (Tok::Id, "x"),
            ]
        );
    }

    #[test]
    fn hidden_text_is_skipped_but_positions_count_it() {
        let src = "- rule: a # note\n\tdesc: >\n  b";
        let toks = tokenize(src);
        let got: Vec<(&str, u32, u32)> =
            toks.iter().map(|t| (t.text(src), t.line, t.col)).collect();
        assert_eq!(
            got,
            [
                ("-", 1, 1),
                ("rule", 1, 3),
                (":", 1, 7),
                ("a", 1, 9),
                ("desc", 2, 2),
                (": >", 2, 6),
                ("b", 3, 3),
            ]
        );
    }

    #[test]
    fn an_unclosed_quote_is_a_character_of_its_own() {
        let item = r#"'"sh -c node -e \"require(''nan'')\""', 'x'"#;
        assert_eq!(
            kinds(item),
            [
                (Tok::Str, r#"'"sh -c node -e \"require(''nan'')\""'"#),
                (Tok::ListSep, ","),
                (Tok::Str, "'x'"),
            ]
        );
        assert_eq!(
            kinds("it's"),
            [(Tok::Id, "it"), (Tok::Any, "'"), (Tok::Id, "s")]
        );
    }
}
