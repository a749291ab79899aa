//! containerd's filter language (`containerd/filters`), as List receives it, and matching a
//! snapshot against it. Written from the grammar containerd documents:
//!
//! ```text
//! filters   := selectors, any one of several filter strings matches (OR)
//! selectors := selector ("," selector)*                       all must match (AND)
//! selector  := fieldpath (operator value)?                    no operator: the field is present
//! fieldpath := field ("." field)*
//! field     := quoted | [A-Za-z0-9_]+
//! operator  := "==" | "!=" | "~="                             ~= is a regular expression
//! value     := quoted | [^\s,]+
//! quoted    := "..." with Go escapes; for ~= also /.../ and |...|
//! ```
//!
//! A snapshot offers `name`, `parent`, `kind` (`active`, `view`, `committed`) and
//! `labels.<key>` (a key with dots is quoted: `labels."containerd.io/gc.root"`). As in
//! containerd, `!=` also matches a field that is absent, `==` and `~=` only present ones.
//! Pure: no I/O.

use std::collections::BTreeMap;

use regex::Regex;

use crate::error::{Error, Result};

/// The fields of one snapshot, as filters see them.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Key or name.
    pub name: &'a str,
    /// Parent key ("" for none).
    pub parent: &'a str,
    /// `active`, `view` or `committed`.
    pub kind: &'a str,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
}

impl Fields<'_> {
    fn get(&self, path: &[String]) -> Option<&str> {
        match path.first().map(String::as_str)? {
            "name" => Some(self.name),
            "parent" => Some(self.parent),
            "kind" => Some(self.kind),
            // As containerd (metadata adaptors, checkMap): the rest of the path, joined with
            // dots, is the label key; no labels means no field.
            "labels" if path.len() > 1 => self
                .labels
                .get(path[1..].join(".").as_str())
                .map(String::as_str),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// A parsed set of filter strings: matches when any of them does.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    any: Vec<Vec<Selector>>,
}

impl Filter {
    /// Parses the filter strings of a List request. No strings, or only empty ones, match
    /// everything.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the filter and the position of the problem.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Filter> {
        let mut any = Vec::new();
        for f in filters {
            let f = f.as_ref();
            if f.is_empty() {
                // containerd: an empty filter is "always".
                any.push(Vec::new());
                continue;
            }
            any.push(Parser::new(f).selectors().map_err(|(pos, why)| {
                Error::invalid(format!("filter {f:?}"), format!("at {pos}: {why}"))
            })?);
        }
        Ok(Filter { any })
    }

    /// Whether `fields` pass.
    pub fn matches(&self, fields: &Fields<'_>) -> bool {
        self.any.is_empty()
            || self
                .any
                .iter()
                .any(|all| all.iter().all(|s| s.matches(fields)))
    }
}

impl Selector {
    fn matches(&self, fields: &Fields<'_>) -> bool {
        let value = fields.get(&self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value == Some(v.as_str()),
            Op::NotEqual(v) => value.unwrap_or("") != v,
            Op::Matches(re) => re.is_match(value.unwrap_or("")),
        }
    }
}

type ParseResult<T> = std::result::Result<T, (usize, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Field(String),
    Value(String),
    Quoted(String),
    Op(String),
    Comma,
    Dot,
    Eof,
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// After an operator the scanner reads a value, not a field.
    want_value: bool,
}

fn is_field_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '/' | '|')
}

fn is_value_char(c: char) -> bool {
    c != ',' && !c.is_whitespace() && !c.is_control()
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Parser<'a> {
        Parser {
            s,
            pos: 0,
            want_value: false,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.s[start..self.pos]
    }

    fn scan(&mut self) -> ParseResult<(usize, Token)> {
        self.take_while(char::is_whitespace);
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok((start, Token::Eof));
        };
        if c == '\0' {
            return Err((start, "unexpected null".into()));
        }
        if is_quote(c) {
            return Ok((start, Token::Quoted(self.scan_quoted(c)?)));
        }
        if c == ',' || c == '.' {
            self.pos += 1;
            self.want_value = false;
            return Ok((start, if c == ',' { Token::Comma } else { Token::Dot }));
        }
        if matches!(c, '=' | '!' | '~') {
            let op = self.take_while(|c| matches!(c, '=' | '!' | '~'));
            self.want_value = true;
            return Ok((start, Token::Op(op.to_owned())));
        }
        if self.want_value {
            self.want_value = false;
            let v = self.take_while(is_value_char);
            return Ok((start, Token::Value(v.to_owned())));
        }
        if is_field_char(c) {
            let f = self.take_while(is_field_char);
            return Ok((start, Token::Field(f.to_owned())));
        }
        Err((start, format!("unexpected character {c:?}")))
    }

    fn peek(&mut self) -> ParseResult<Token> {
        let (pos, want) = (self.pos, self.want_value);
        let t = self.scan().map(|(_, t)| t);
        self.pos = pos;
        self.want_value = want;
        t
    }

    /// The raw text of a quoted literal (quotes included), unescaped later.
    fn scan_quoted(&mut self, quote: char) -> ParseResult<String> {
        let start = self.pos;
        self.pos += quote.len_utf8();
        loop {
            let Some(c) = self.peek_char() else {
                return Err((start, "quoted literal not terminated".into()));
            };
            self.pos += c.len_utf8();
            if c == '\n' {
                return Err((start, "quoted literal not terminated".into()));
            }
            if c == '\\' {
                match self.peek_char() {
                    Some(e) => self.pos += e.len_utf8(),
                    None => return Err((start, "quoted literal not terminated".into())),
                }
            } else if c == quote {
                return Ok(self.s[start..self.pos].to_owned());
            }
        }
    }

    fn selectors(&mut self) -> ParseResult<Vec<Selector>> {
        let mut all = vec![self.selector()?];
        loop {
            match self.scan()? {
                (_, Token::Comma) => all.push(self.selector()?),
                (_, Token::Eof) => return Ok(all),
                (pos, t) => return Err((pos, format!("unexpected input {t:?}"))),
            }
        }
    }

    fn selector(&mut self) -> ParseResult<Selector> {
        let path = self.fieldpath()?;
        match self.peek()? {
            Token::Comma | Token::Eof => {
                return Ok(Selector {
                    path,
                    op: Op::Present,
                })
            }
            _ => {}
        }
        let (pos, op) = match self.scan()? {
            (pos, Token::Op(op)) => (pos, op),
            (pos, _) => return Err((pos, "expected an operator (==, != or ~=)".into())),
        };
        let (vpos, tok) = self.scan()?;
        let value = match tok {
            Token::Value(v) | Token::Field(v) if !v.is_empty() => v,
            Token::Quoted(q) => unquote(&q, op == "~=").map_err(|why| (vpos, why))?,
            _ => return Err((vpos, "expected a value or a quoted string".into())),
        };
        let op = match op.as_str() {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            "~=" => Op::Matches(
                Regex::new(&value).map_err(|e| (vpos, format!("bad regular expression: {e}")))?,
            ),
            other => return Err((pos, format!("unsupported operator {other:?}"))),
        };
        Ok(Selector { path, op })
    }

    fn fieldpath(&mut self) -> ParseResult<Vec<String>> {
        let mut path = vec![self.field()?];
        while self.peek()? == Token::Dot {
            self.scan()?;
            path.push(self.field()?);
        }
        Ok(path)
    }

    fn field(&mut self) -> ParseResult<String> {
        match self.scan()? {
            (_, Token::Field(f)) => Ok(f),
            (pos, Token::Quoted(q)) => unquote(&q, false).map_err(|why| (pos, why)),
            (pos, _) => Err((pos, "expected a field or a quoted string".into())),
        }
    }
}

/// Unquotes a literal with Go's escapes; `/` and `|` quotes only where `alt` (regex values).
fn unquote(q: &str, alt: bool) -> std::result::Result<String, String> {
    let quote = q.chars().next().ok_or("empty literal")?;
    if !alt && quote != '"' {
        return Err("invalid quote".into());
    }
    let inner = &q[quote.len_utf8()..q.len() - quote.len_utf8()];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("unterminated escape")?;
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            c if c == quote => out.push(c),
            // In a regex literal other escapes belong to the regex.
            c if quote != '"' => {
                out.push('\\');
                out.push(c);
            }
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.by_ref().take(n).collect();
                let v = u32::from_str_radix(&hex, 16).map_err(|_| "bad escape")?;
                out.push(char::from_u32(v).ok_or("bad escape")?);
            }
            _ => return Err(format!("unknown escape \\{e}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(filters: &[&str], name: &str, parent: &str, kind: &str, l: &[(&str, &str)]) -> bool {
        let labels = labels(l);
        Filter::parse(filters).unwrap().matches(&Fields {
            name,
            parent,
            kind,
            labels: &labels,
        })
    }

    #[test]
    fn filter_empty_matches_everything() {
        assert!(m(&[], "a", "", "active", &[]));
        assert!(m(&[""], "a", "", "active", &[]));
    }

    #[test]
    fn filter_name_parent_kind_equality() {
        assert!(m(&["name==a"], "a", "", "active", &[]));
        assert!(!m(&["name==b"], "a", "", "active", &[]));
        assert!(m(&["parent==p"], "a", "p", "view", &[]));
        assert!(m(&["kind==committed"], "a", "", "committed", &[]));
        assert!(!m(&["kind==committed"], "a", "", "active", &[]));
        assert!(m(&["name!=b"], "a", "", "active", &[]));
        assert!(m(&[r#"name=="a b""#], "a b", "", "active", &[]));
    }

    #[test]
    fn filter_labels_quoted_keys_presence_and_regex() {
        let l = [("containerd.io/snapshot.ref", "sha256:1"), ("x", "yes")];
        assert!(m(
            &[r#"labels."containerd.io/snapshot.ref"==sha256:1,parent=="p""#],
            "a",
            "p",
            "committed",
            &l
        ));
        assert!(m(&["labels.x"], "a", "", "active", &l));
        assert!(!m(&["labels.y"], "a", "", "active", &l));
        assert!(
            m(&["labels.y!=z"], "a", "", "active", &l),
            "!= matches absent"
        );
        assert!(!m(&["labels.y==z"], "a", "", "active", &l));
        assert!(m(&["labels.x~=^y"], "a", "", "active", &l));
        assert!(m(&["name~=/^a.*$/"], "abc", "", "active", &l));
        assert!(!m(&["name~=^b"], "abc", "", "active", &l));
    }

    #[test]
    fn filter_containerd_testsuite_walk_cases_parse_and_match() {
        let gc = [("containerd.io/gc.root", "check-walk"), ("l", "2")];
        assert!(m(
            &[r#"labels."containerd.io/gc.root"==check-walk"#],
            "a",
            "",
            "active",
            &gc
        ));
        assert!(m(
            &[r#"kind==active,labels."containerd.io/gc.root"==check-walk"#],
            "a",
            "",
            "active",
            &gc
        ));
        assert!(m(
            &["name==p", "name==a-np-wl"],
            "a-np-wl",
            "",
            "active",
            &[]
        ));
        assert!(m(&["name==a-wl,labels.l"], "a-wl", "", "active", &gc));
        assert!(m(
            &[r#"parent!="",labels."containerd.io/gc.root"==check-walk"#],
            "a",
            "p",
            "view",
            &gc
        ));
        assert!(!m(
            &[r#"parent!="",labels."containerd.io/gc.root"==check-walk"#],
            "a",
            "",
            "view",
            &gc
        ));
        assert!(m(&["labels.l==2"], "a", "", "active", &gc));
    }

    #[test]
    fn filter_comma_is_and_several_strings_are_or() {
        let l = [("x", "1")];
        assert!(!m(&["name==a,labels.x==2"], "a", "", "active", &l));
        assert!(m(&["name==a,labels.x==1"], "a", "", "active", &l));
        assert!(m(&["name==b", "labels.x==1"], "a", "", "active", &l));
        assert!(!m(&["name==b", "labels.x==2"], "a", "", "active", &l));
    }

    #[test]
    fn filter_malformed_is_invalid_argument() {
        for bad in [
            "name==",
            "name=a",
            "name<>a",
            "==a",
            "name==a,",
            r#"name=="unterminated"#,
            "name~=(",
            "name==/slash/",
            "labels.",
        ] {
            let e = Filter::parse(&[bad]).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e}");
        }
    }
}
