//! A recursive-descent parser over the reference's grammar (`Sfpl.g4`, v0.7.0): the
//! declarations of one policy file, with their conditions as syntax trees.
//!
//! The grammar, with the key order it imposes:
//!
//! ```text
//! policy   : (rule | filter | macro | list | required)+ EOF
//! rule     : '-' 'rule' ':' text 'desc' ':' text 'condition' ':' expression
//!            ( 'output' ':' text | 'actions' ':' items | 'priority' ':' SEVERITY
//!            | 'tags' ':' items | 'prefilter' ':' items | 'enabled' ':' atom
//!            | 'warn_evttypes' ':' atom | 'skip-if-unknown-filter' ':' atom )*
//! filter   : '-' ('filter' | 'drop') ':' ID 'condition' ':' expression ('enabled' ':' atom)?
//! macro    : '-' 'macro' ':' ID 'condition' ':' expression ('append' ':' atom)?
//! list     : '-' 'list' ':' ID 'items' ':' items
//! required : '-' 'required_engine_version' ':' atom
//! expression : term ('and' term)* ('or' term ('and' term)*)*
//! term     : ID | 'not' term | atom 'exists' | atom BINOP atom
//!          | atom ('in' | 'pmatch') '(' (atom | items) (',' (atom | items))* ')'
//!          | '(' expression ')'
//! items    : '[' (atom (',' atom)*)? ','? ']'
//! atom     : ID | PATH | NUMBER | TAG | STRING | '<' | '>'
//! text     : any tokens up to the next key word (desc, condition, actions, output,
//!            priority, tags, prefilter, enabled, warn_evttypes, skip-if-unknown-filter,
//!            append)
//! ```
//!
//! A `text` (a rule's name, `desc`, `output`) is the raw source from its first to its last
//! token, white space, line breaks and comments in between included, as the reference
//! takes it. One addition: a text also ends before a `-` that starts a new declaration
//! (`- rule:` ...), where the reference's parser has no rule either way.

use crate::lexer::{Keyword, Tok, Token, tokenize};

/// An operand as written: its token kind, raw text (quotes included) and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    /// The token kind (`Id`, `Path`, `Str`, ...).
    pub tok: Tok,
    /// The token's text as written.
    pub text: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

/// A binary comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `=`.
    Eq,
    /// `!=`.
    Neq,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `contains`.
    Contains,
    /// `icontains`.
    IContains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
}

/// `in` or `pmatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    /// `in`: equal to an item.
    In,
    /// `pmatch`: contains an item.
    PMatch,
}

/// A term of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A bare name: a macro reference.
    Macro(Atom),
    /// `not term`.
    Not(Box<Term>),
    /// `atom exists`.
    Exists(Atom),
    /// `atom op atom`.
    Binary(Atom, BinOp, Atom),
    /// `atom in (...)` / `atom pmatch (...)`. As in the reference, only the atoms written
    /// directly between the parentheses count; a bracketed `[...]` item list there is parsed
    /// and ignored.
    List(Atom, ListOp, Vec<Atom>),
    /// `( expression )`.
    Paren(Box<Expr>),
}

/// A condition: a disjunction of conjunctions of terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// `a and b or c` is `[[a, b], [c]]`.
    pub any: Vec<Vec<Term>>,
}

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleDecl {
    /// The name (raw text).
    pub name: String,
    /// The description (raw text).
    pub desc: String,
    /// The condition.
    pub condition: Option<Expr>,
    /// `priority`, if given (the first one).
    pub priority: Option<String>,
    /// `tags` items, if given.
    pub tags: Option<Vec<String>>,
    /// `prefilter` items (record types), if given.
    pub prefilter: Option<Vec<String>>,
    /// `enabled` value as written, if given.
    pub enabled: Option<String>,
    /// `actions` items, if given.
    pub actions: Option<Vec<String>>,
    /// `output` text, if given.
    pub output: Option<String>,
}

/// One declaration of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decl {
    /// `- rule:`.
    Rule(RuleDecl),
    /// `- macro:`; `append` is parsed and, as in the reference, ignored.
    Macro {
        /// Its name.
        name: String,
        /// Its condition.
        condition: Expr,
    },
    /// `- list:` with its items, each with one pair of bounding quotes removed.
    List {
        /// Its name.
        name: String,
        /// Its items.
        items: Vec<String>,
    },
    /// `- filter:` or `- drop:`: records matching it are dropped before any rule.
    Filter {
        /// Its name.
        name: String,
        /// Its condition.
        condition: Expr,
        /// `enabled` value as written, if given.
        enabled: Option<String>,
    },
    /// `- required_engine_version:` (accepted, not checked).
    Required,
}

/// A declaration with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The declaration.
    pub decl: Decl,
    /// Line of its `-`.
    pub line: u32,
    /// Column of its `-`.
    pub col: u32,
}

/// A syntax error: where, in which declaration, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}{}", decl.as_ref().map(|d| format!(" (in {d})")).unwrap_or_default())]
pub struct SyntaxError {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
    /// What is wrong.
    pub message: String,
    /// The declaration being parsed (`rule "Write below etc"`), when known.
    pub decl: Option<String>,
}

/// One pair of bounding quotes removed, as the reference's `TrimBoundingQuotes`: a leading
/// `"` or `'`, then a trailing one.
pub fn trim_bounding_quotes(s: &str) -> &str {
    let s = s
        .strip_prefix('"')
        .or_else(|| s.strip_prefix('\''))
        .unwrap_or(s);
    s.strip_suffix('"')
        .or_else(|| s.strip_suffix('\''))
        .unwrap_or(s)
}

/// The reference's list extraction: the text of a bracketed list with its tokens joined
/// without white space, the brackets removed, split on `,`, each item unquoted. So `[]` is
/// one empty item and a trailing `,` adds one.
pub fn extract_list(text: &str) -> Vec<String> {
    let inner = text.strip_prefix('[').unwrap_or(text);
    let inner = match inner.rfind(']') {
        Some(i) => &inner[..i],
        None => inner,
    };
    inner
        .split(',')
        .map(|i| trim_bounding_quotes(i).to_owned())
        .collect()
}

const TEXT_STOPS: [&str; 11] = [
    "desc",
    "condition",
    "actions",
    "output",
    "priority",
    "tags",
    "prefilter",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "append",
];

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    decl: Option<String>,
}

type PResult<T> = Result<T, SyntaxError>;

fn describe(tok: Option<&Token>, src: &str) -> String {
    match tok {
        None => "the end of the file".into(),
        Some(t) => format!("{:?}", t.text(src)),
    }
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }

    fn peek_tok(&self) -> Option<Tok> {
        self.peek().map(|t| t.tok)
    }

    fn error_at(&self, tok: Option<&Token>, message: String) -> SyntaxError {
        let (line, col) = match tok.or(self.toks.last()) {
            Some(t) if tok.is_some() => (t.line, t.col),
            Some(t) => (t.line, t.col + t.text(self.src).chars().count() as u32),
            None => (1, 1),
        };
        SyntaxError {
            line,
            col,
            message,
            decl: self.decl.clone(),
        }
    }

    fn expected(&self, what: &str) -> SyntaxError {
        let found = describe(self.peek(), self.src);
        self.error_at(self.peek(), format!("expected {what}, found {found}"))
    }

    fn eat(&mut self, tok: Tok) -> Option<Token> {
        let t = *self.peek()?;
        (t.tok == tok).then(|| {
            self.pos += 1;
            t
        })
    }

    fn expect(&mut self, tok: Tok, what: &str) -> PResult<Token> {
        self.eat(tok).ok_or_else(|| self.expected(what))
    }

    fn keyword_def(&mut self, k: Keyword, what: &str) -> PResult<()> {
        self.expect(Tok::Keyword(k), what)?;
        self.expect(Tok::Def, &format!("\":\" after {what}"))?;
        Ok(())
    }

    fn is_decl_start(&self, n: usize) -> bool {
        matches!(self.peek_at(n).map(|t| t.tok), Some(Tok::Decl))
            && matches!(
                self.peek_at(n + 1).map(|t| t.tok),
                Some(Tok::Keyword(
                    Keyword::Rule
                        | Keyword::Macro
                        | Keyword::List
                        | Keyword::Filter
                        | Keyword::Drop
                        | Keyword::Required
                ))
            )
            && matches!(self.peek_at(n + 2).map(|t| t.tok), Some(Tok::Def))
    }

    /// `text`: the raw source of one or more tokens before the next key word.
    fn text(&mut self, what: &str) -> PResult<String> {
        let first = self.pos;
        while let Some(t) = self.peek() {
            if TEXT_STOPS.contains(&t.text(self.src)) || self.is_decl_start(0) {
                break;
            }
            self.pos += 1;
        }
        if self.pos == first {
            return Err(self.expected(what));
        }
        let (a, b) = (self.toks[first].start, self.toks[self.pos - 1].end);
        Ok(self.src[a..b].to_owned())
    }

    fn atom(&mut self, what: &str) -> PResult<Atom> {
        match self.peek() {
            Some(t)
                if matches!(
                    t.tok,
                    Tok::Id | Tok::Path | Tok::Number | Tok::Tag | Tok::Str | Tok::Lt | Tok::Gt
                ) =>
            {
                let t = *t;
                self.pos += 1;
                Ok(Atom {
                    tok: t.tok,
                    text: t.text(self.src).to_owned(),
                    line: t.line,
                    col: t.col,
                })
            }
            _ => Err(self.expected(what)),
        }
    }

    /// `items`: returns the joined token text (`[a,"b c"]`) for [`extract_list`].
    fn items(&mut self, what: &str) -> PResult<String> {
        let open = self.expect(Tok::LBrack, &format!("\"[\" to start {what}"))?;
        let mut text = open.text(self.src).to_owned();
        if let Some(t) = self.eat(Tok::RBrack) {
            text.push_str(t.text(self.src));
            return Ok(text);
        }
        loop {
            let a = self.atom(&format!("an item of {what}"))?;
            text.push_str(&a.text);
            match self.peek_tok() {
                Some(Tok::ListSep) => {
                    self.pos += 1;
                    text.push(',');
                    if let Some(t) = self.eat(Tok::RBrack) {
                        text.push_str(t.text(self.src));
                        return Ok(text);
                    }
                }
                Some(Tok::RBrack) => {
                    self.pos += 1;
                    text.push(']');
                    return Ok(text);
                }
                _ => return Err(self.expected(&format!("\",\" or \"]\" in {what}"))),
            }
        }
    }

    fn expression(&mut self, depth: usize) -> PResult<Expr> {
        if depth > 200 {
            return Err(self.error_at(self.peek(), "condition nested too deeply".into()));
        }
        let mut any = Vec::new();
        loop {
            let mut all = vec![self.term(depth)?];
            while self.eat(Tok::And).is_some() {
                all.push(self.term(depth)?);
            }
            any.push(all);
            if self.eat(Tok::Or).is_none() {
                return Ok(Expr { any });
            }
        }
    }

    fn term(&mut self, depth: usize) -> PResult<Term> {
        if depth > 200 {
            return Err(self.error_at(self.peek(), "condition nested too deeply".into()));
        }
        match self.peek_tok() {
            Some(Tok::Not) => {
                self.pos += 1;
                return Ok(Term::Not(Box::new(self.term(depth + 1)?)));
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.expression(depth + 1)?;
                self.expect(Tok::RParen, "\")\" or an operator (and, or)")?;
                return Ok(Term::Paren(Box::new(e)));
            }
            _ => {}
        }
        let starts_atom = matches!(
            self.peek_tok(),
            Some(Tok::Id | Tok::Path | Tok::Number | Tok::Tag | Tok::Str | Tok::Lt | Tok::Gt)
        );
        if !starts_atom {
            return Err(self.expected("a condition (a macro name, an attribute, \"not\" or \"(\")"));
        }
        let next = self.peek_at(1).map(|t| t.tok);
        let is_operand = matches!(
            next,
            Some(
                Tok::Exists
                    | Tok::In
                    | Tok::PMatch
                    | Tok::Eq
                    | Tok::Neq
                    | Tok::Lt
                    | Tok::Le
                    | Tok::Gt
                    | Tok::Ge
                    | Tok::Contains
                    | Tok::IContains
                    | Tok::StartsWith
                    | Tok::EndsWith
            )
        );
        if self.peek_tok() == Some(Tok::Id) && !is_operand {
            let a = self.atom("a macro name")?;
            return Ok(Term::Macro(a));
        }
        let lhs = self.atom("an attribute or a value")?;
        let op_tok = self.peek().copied();
        let op = match op_tok.map(|t| t.tok) {
            Some(Tok::Exists) => {
                self.pos += 1;
                return Ok(Term::Exists(lhs));
            }
            Some(t @ (Tok::In | Tok::PMatch)) => {
                self.pos += 1;
                let op = if t == Tok::In {
                    ListOp::In
                } else {
                    ListOp::PMatch
                };
                self.expect(Tok::LParen, "\"(\" after in/pmatch")?;
                let mut items = Vec::new();
                loop {
                    if self.peek_tok() == Some(Tok::LBrack) {
                        self.items("a list")?;
                    } else {
                        items.push(self.atom("a value or a list name")?);
                    }
                    if self.eat(Tok::ListSep).is_none() {
                        break;
                    }
                }
                self.expect(Tok::RParen, "\",\" or \")\" in the list")?;
                return Ok(Term::List(lhs, op, items));
            }
            Some(Tok::Eq) => BinOp::Eq,
            Some(Tok::Neq) => BinOp::Neq,
            Some(Tok::Lt) => BinOp::Lt,
            Some(Tok::Le) => BinOp::Le,
            Some(Tok::Gt) => BinOp::Gt,
            Some(Tok::Ge) => BinOp::Ge,
            Some(Tok::Contains) => BinOp::Contains,
            Some(Tok::IContains) => BinOp::IContains,
            Some(Tok::StartsWith) => BinOp::StartsWith,
            Some(Tok::EndsWith) => BinOp::EndsWith,
            _ => return Err(self.expected("an operator (=, !=, <, contains, in, exists, ...)")),
        };
        self.pos += 1;
        let rhs = self.atom("a value or an attribute")?;
        Ok(Term::Binary(lhs, op, rhs))
    }

    fn rule(&mut self) -> PResult<Decl> {
        let name = self.text("the rule's name")?;
        self.decl = Some(format!("rule {:?}", name.trim()));
        self.keyword_def(Keyword::Desc, "\"desc\"")?;
        let desc = self.text("the rule's description")?;
        self.keyword_def(Keyword::Condition, "\"condition\"")?;
        let mut r = RuleDecl {
            name,
            desc,
            condition: Some(self.expression(0)?),
            ..RuleDecl::default()
        };
        while let Some(Tok::Keyword(k)) = self.peek_tok() {
            if self.peek_at(1).map(|t| t.tok) != Some(Tok::Def) {
                break;
            }
            let what = match k {
                Keyword::Output
                | Keyword::Actions
                | Keyword::Priority
                | Keyword::Tags
                | Keyword::Prefilter
                | Keyword::Enabled
                | Keyword::WarnEvttypes
                | Keyword::SkipUnknown => k,
                _ => break,
            };
            self.pos += 2;
            match what {
                Keyword::Output => {
                    let t = self.text("the rule's output")?;
                    r.output.get_or_insert(t);
                }
                Keyword::Actions => {
                    let t = self.items("actions")?;
                    r.actions.get_or_insert(extract_list(&t));
                }
                Keyword::Priority => {
                    let t = self.expect(
                        Tok::Severity,
                        "a priority (low, medium, high, or debug, info, informational, notice, warning, error, critical, alert, emergency)",
                    )?;
                    let p = t.text(self.src).to_owned();
                    r.priority.get_or_insert(p);
                }
                Keyword::Tags => {
                    let t = self.items("tags")?;
                    r.tags.get_or_insert(extract_list(&t));
                }
                Keyword::Prefilter => {
                    let t = self.items("prefilter")?;
                    r.prefilter.get_or_insert(extract_list(&t));
                }
                Keyword::Enabled => {
                    let a = self.atom("true or false")?;
                    r.enabled.get_or_insert(a.text);
                }
                _ => {
                    self.atom("a value")?;
                }
            }
        }
        Ok(Decl::Rule(r))
    }

    fn declaration(&mut self) -> PResult<Located> {
        self.decl = None;
        let dash = self.expect(
            Tok::Decl,
            "a declaration (\"- rule:\", \"- macro:\", \"- list:\", \"- filter:\", \"- drop:\")",
        )?;
        let kw = match self.peek_tok() {
            Some(Tok::Keyword(
                k @ (Keyword::Rule
                | Keyword::Macro
                | Keyword::List
                | Keyword::Filter
                | Keyword::Drop
                | Keyword::Required),
            )) => k,
            _ => {
                return Err(self.expected(
                    "rule, macro, list, filter, drop or required_engine_version after \"-\"",
                ));
            }
        };
        self.pos += 1;
        self.expect(Tok::Def, "\":\"")?;
        let decl = match kw {
            Keyword::Rule => self.rule()?,
            Keyword::Macro => {
                let name = self
                    .expect(Tok::Id, "the macro's name")?
                    .text(self.src)
                    .to_owned();
                self.decl = Some(format!("macro {name:?}"));
                self.keyword_def(Keyword::Condition, "\"condition\"")?;
                let condition = self.expression(0)?;
                if self.peek_tok() == Some(Tok::Keyword(Keyword::Append)) {
                    self.keyword_def(Keyword::Append, "\"append\"")?;
                    self.atom("true or false")?;
                }
                Decl::Macro { name, condition }
            }
            Keyword::List => {
                let name = self
                    .expect(Tok::Id, "the list's name")?
                    .text(self.src)
                    .to_owned();
                self.decl = Some(format!("list {name:?}"));
                self.keyword_def(Keyword::Items, "\"items\"")?;
                let text = self.items("the items")?;
                Decl::List {
                    name,
                    items: extract_list(&text),
                }
            }
            Keyword::Filter | Keyword::Drop => {
                let name = self
                    .expect(Tok::Id, "the filter's name")?
                    .text(self.src)
                    .to_owned();
                self.decl = Some(format!("filter {name:?}"));
                self.keyword_def(Keyword::Condition, "\"condition\"")?;
                let condition = self.expression(0)?;
                let mut enabled = None;
                if self.peek_tok() == Some(Tok::Keyword(Keyword::Enabled)) {
                    self.keyword_def(Keyword::Enabled, "\"enabled\"")?;
                    enabled = Some(self.atom("true or false")?.text);
                }
                Decl::Filter {
                    name,
                    condition,
                    enabled,
                }
            }
            _ => {
                self.atom("a version")?;
                Decl::Required
            }
        };
        Ok(Located {
            decl,
            line: dash.line,
            col: dash.col,
        })
    }
}

/// Parses one policy file's text.
///
/// # Errors
/// The first [`SyntaxError`], with its line and column, and the declaration it is in. A file
/// with no declaration at all is an error too (the grammar asks for one or more).
pub fn parse(src: &str) -> Result<Vec<Located>, SyntaxError> {
    let mut p = Parser {
        src,
        toks: tokenize(src),
        pos: 0,
        decl: None,
    };
    let mut decls = Vec::new();
    while p.peek().is_some() {
        decls.push(p.declaration()?);
    }
    if decls.is_empty() {
        return Err(p.error_at(None, "no declaration in the file".into()));
    }
    Ok(decls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_with_every_key_and_raw_texts() {
        let src = "- rule: Shell in a\n   container\n  desc: >\n    a shell\n    was started # here\n  condition: proc.name in (bash, sh) and not container.id = host\n  output: shell (%proc.cmdline)\n  priority: WARNING\n  tags: [shell, 'mitre:T1059']\n  prefilter: [PE]\n  enabled: false\n  actions: [tag]\n  warn_evttypes: false\n";
        let decls = parse(src).unwrap();
        let Decl::Rule(r) = &decls[0].decl else {
            panic!("{decls:?}")
        };
        assert_eq!(r.name, "Shell in a\n   container");
        assert_eq!(r.desc, "a shell\n    was started");
        assert_eq!(r.output.as_deref(), Some("shell (%proc.cmdline)"));
        assert_eq!(r.priority.as_deref(), Some("WARNING"));
        assert_eq!(
            r.tags.as_deref(),
            Some(&["shell".to_string(), "mitre:T1059".into()][..])
        );
        assert_eq!(r.prefilter.as_deref(), Some(&["PE".to_string()][..]));
        assert_eq!(r.enabled.as_deref(), Some("false"));
        let cond = r.condition.as_ref().unwrap();
        assert_eq!(cond.any.len(), 1);
        assert_eq!(cond.any[0].len(), 2);
        assert!(
            matches!(&cond.any[0][1], Term::Not(t) if matches!(**t, Term::Binary(_, BinOp::Eq, _)))
        );
    }

    #[test]
    fn lists_macros_filters_and_the_reference_list_quirks() {
        let src = "- list: a\n items: [x, \"y z\", ]\n- list: e\n  items: []\n- macro: m\n  condition: sf.type = PE\n  append: true\n- drop: __global__\n  condition: m or (x exists)\n- required_engine_version: 7\n";
        let decls = parse(src).unwrap();
        assert_eq!(
            decls[0].decl,
            Decl::List {
                name: "a".into(),
                items: vec!["x".into(), "y z".into(), "".into()]
            }
        );
        assert_eq!(
            decls[1].decl,
            Decl::List {
                name: "e".into(),
                items: vec!["".into()]
            }
        );
        assert!(matches!(&decls[2].decl, Decl::Macro { name, .. } if name == "m"));
        assert!(matches!(&decls[3].decl, Decl::Filter { name, .. } if name == "__global__"));
        assert_eq!(decls[4].decl, Decl::Required);
        assert_eq!((decls[1].line, decls[1].col), (3, 1));
    }

    #[test]
    fn in_lists_keep_only_their_direct_atoms() {
        let decls = parse("- macro: m\n  condition: a in (x, [y, z], 'w')").unwrap();
        let Decl::Macro { condition, .. } = &decls[0].decl else {
            panic!()
        };
        let Term::List(_, ListOp::In, items) = &condition.any[0][0] else {
            panic!()
        };
        let texts: Vec<&str> = items.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(texts, ["x", "'w'"]);
    }

    #[test]
    fn errors_name_the_line_column_and_declaration() {
        let err = parse("- rule: r\n  desc: d\n  condition: a = \n  priority: low\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "4:3: expected a value or an attribute, found \"priority\" (in rule \"r\")"
        );
        let err = parse("- macro: m\n  condition: a = b\n- list: l\n  items: [a b]\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "4:13: expected \",\" or \"]\" in the items, found \"b\" (in list \"l\")"
        );
        let err = parse("# nothing\n").unwrap_err();
        assert_eq!(err.to_string(), "1:1: no declaration in the file");
        let err = parse("- rule: r\n  condition: a = b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "2:3: expected the rule's name, found \"condition\" (in rule \"r\")"
                .replace("the rule's name", "\"desc\"")
        );
    }

    #[test]
    fn trim_removes_one_quote_each_side() {
        assert_eq!(trim_bounding_quotes("'\"a\"'"), "\"a\"");
        assert_eq!(trim_bounding_quotes("\"a'"), "a");
        assert_eq!(trim_bounding_quotes("'"), "");
        assert_eq!(trim_bounding_quotes("a"), "a");
    }
}
