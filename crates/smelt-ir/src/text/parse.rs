//! The parser: text → graph. A lexer that keeps line and column, and a recursive-descent parser
//! over its tokens. It accepts everything [`super::print`] prints and gives the graph back, so
//! that `to_text(parse(to_text(g))) == to_text(g)` byte for byte; docs/ir.md has the grammar.
//!
//! Errors name the line and column (1-based, columns in characters) and what was expected; the
//! parser never panics, whatever the input. Values must be defined before they are used, names
//! are unique within a graph, and a subgraph sees the values around it only through its
//! `captures(…)` list.

use super::random::random_tensor;
use crate::attr::Attr;
use crate::graph::{Graph, Value, ValueId};
use crate::ops::OpaqueOp;
use crate::types::{Dim, TensorType, Type};
use crate::{DType, Model, Op, Tensor};
use half::{bf16, f16};
use std::collections::HashMap;
use std::fmt;

/// Where the constants that the text summarises as `#hash` come from.
pub trait ConstSource {
    /// The tensor whose [`Tensor::content_hash`] is `hash`, if this source has it.
    fn get(&self, hash: u64) -> Option<Tensor>;
}

/// A source with no constants: every `#hash` in the text is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoConsts;

impl ConstSource for NoConsts {
    fn get(&self, _hash: u64) -> Option<Tensor> {
        None
    }
}

impl ConstSource for HashMap<u64, Tensor> {
    fn get(&self, hash: u64) -> Option<Tensor> {
        HashMap::get(self, &hash).cloned()
    }
}

/// A syntax or meaning error in a text, at a line and column (both 1-based; columns count
/// characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line of the offending token.
    pub line: usize,
    /// The column of the offending token.
    pub column: usize,
    /// What the parser expected there, for syntax errors (`` `)` ``).
    pub expected: Option<String>,
    /// What it found there (`` `,` ``, `end of input`), for syntax errors.
    pub found: Option<String>,
    /// The whole message: `expected `)` but found `,`` or a sentence for other errors.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn at(pos: Pos, message: impl Into<String>) -> ParseError {
        ParseError {
            line: pos.line,
            column: pos.col,
            expected: None,
            found: None,
            message: message.into(),
        }
    }

    fn expected(pos: Pos, expected: impl Into<String>, found: String) -> ParseError {
        let expected = expected.into();
        ParseError {
            line: pos.line,
            column: pos.col,
            message: format!("expected {expected} but found {found}"),
            expected: Some(expected),
            found: Some(found),
        }
    }

    /// The error with the offending line of `src` under it and a caret at the column, for
    /// people reading a terminal.
    pub fn render(&self, src: &str) -> String {
        let text = src.lines().nth(self.line.saturating_sub(1)).unwrap_or("");
        let pad: String = text
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{self}\n  {text}\n  {pad}^")
    }
}

/// Deepest nesting the parser accepts, a guard for its stack: a type counts 1 and a subgraph
/// [`GRAPH_DEPTH_COST`], so at most 64 levels of types or 16 of subgraphs.
const MAX_DEPTH: usize = 64;
/// What one level of subgraph counts against [`MAX_DEPTH`] (its frames are much larger).
const GRAPH_DEPTH_COST: usize = 4;

// ---- lexer --------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok<'a> {
    /// A run of name characters (names, numbers, keywords, dtypes), never ending with `:`.
    Word(&'a str),
    /// A quoted string, unescaped.
    Str(Vec<u8>),
    /// One of `( ) { } [ ] < > , = : % ? *`.
    Punct(char),
    /// `->`.
    Arrow,
    /// `#` and the characters after it.
    Hash(&'a str),
    /// `@op_type` or `@domain::op_type`.
    Opaque {
        domain: String,
        op_type: String,
    },
    Eof,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => {
                let q = super::print::quote(s);
                match q.char_indices().nth(40) {
                    Some((cut, _)) => format!("string {}…", &q[..cut]),
                    None => format!("string {q}"),
                }
            }
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Arrow => "`->`".into(),
            Tok::Hash(h) => format!("`#{h}`"),
            Tok::Opaque { domain, op_type } if domain.is_empty() => format!("`@{op_type}`"),
            Tok::Opaque { domain, op_type } => format!("`@{domain}::{op_type}`"),
            Tok::Eof => "end of input".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    pos: Pos,
}

struct Lexer<'a> {
    src: &'a str,
    off: usize,
    pos: Pos,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            off: 0,
            pos: Pos { line: 1, col: 1 },
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.off..].chars().next()
    }

    fn peek_char2(&self) -> Option<char> {
        let mut it = self.src[self.off..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.off += c.len_utf8();
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    fn skip_trivia(&mut self) {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.peek_char() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// A run of characters satisfying `f`, from the current offset.
    fn run(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.off;
        while let Some(c) = self.peek_char() {
            if !f(c) {
                break;
            }
            self.bump();
        }
        &self.src[start..self.off]
    }

    fn string(&mut self) -> Result<Vec<u8>, ParseError> {
        let start = self.pos;
        self.bump(); // the opening quote
        let mut out = Vec::new();
        loop {
            let here = self.pos;
            match self.bump() {
                None => return Err(ParseError::at(start, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push(b'"'),
                    Some('\\') => out.push(b'\\'),
                    Some('n') => out.push(b'\n'),
                    Some('t') => out.push(b'\t'),
                    Some('x') => {
                        let hex: String = (0..2).filter_map(|_| self.bump()).collect();
                        match u8::from_str_radix(&hex, 16) {
                            Ok(b)
                                if hex.len() == 2 && hex.chars().all(|c| c.is_ascii_hexdigit()) =>
                            {
                                out.push(b)
                            }
                            _ => {
                                return Err(ParseError::at(
                                    here,
                                    "`\\x` must be followed by two hex digits",
                                ))
                            }
                        }
                    }
                    Some(c) => {
                        return Err(ParseError::at(
                            here,
                            format!("unknown escape `\\{c}` (known: \\\" \\\\ \\n \\t \\xNN)"),
                        ))
                    }
                    None => return Err(ParseError::at(start, "unterminated string")),
                },
                Some(c) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// One part of an opaque op name: a string, or name characters other than `:`.
    fn op_part(&mut self) -> Result<String, ParseError> {
        let pos = self.pos;
        if self.peek_char() == Some('"') {
            let s = self.string()?;
            return String::from_utf8(s)
                .map_err(|_| ParseError::at(pos, "an op name must be valid UTF-8"));
        }
        let w = self.run(|c| super::is_name_char(c) && c != ':');
        if w.is_empty() {
            let found = self
                .peek_char()
                .map(|c| format!("`{c}`"))
                .unwrap_or_else(|| "end of input".into());
            return Err(ParseError::expected(pos, "an op name", found));
        }
        Ok(w.to_string())
    }

    fn next_token(&mut self) -> Result<Token<'a>, ParseError> {
        self.skip_trivia();
        let pos = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            '"' => Tok::Str(self.string()?),
            '-' if self.peek_char2() == Some('>') => {
                self.bump();
                self.bump();
                Tok::Arrow
            }
            '#' => {
                self.bump();
                Tok::Hash(self.run(|c| c.is_ascii_alphanumeric()))
            }
            '@' => {
                self.bump();
                let first = self.op_part()?;
                if self.peek_char() == Some(':') && self.peek_char2() == Some(':') {
                    self.bump();
                    self.bump();
                    let op_type = self.op_part()?;
                    Tok::Opaque {
                        domain: first,
                        op_type,
                    }
                } else {
                    Tok::Opaque {
                        domain: String::new(),
                        op_type: first,
                    }
                }
            }
            c if super::is_name_char(c) => {
                // A bare name never ends with `:`, so trailing colons belong to what follows
                // (`x: f32[2]`).
                let rest = &self.src[self.off..];
                let run = rest
                    .find(|ch| !super::is_name_char(ch))
                    .unwrap_or(rest.len());
                let word = rest[..run].trim_end_matches(':');
                if word.is_empty() {
                    self.bump();
                    Tok::Punct(':')
                } else {
                    // Name characters are ASCII: one byte, one column each.
                    self.off += word.len();
                    self.pos.col += word.len();
                    Tok::Word(word)
                }
            }
            '(' | ')' | '{' | '}' | '[' | ']' | '<' | '>' | ',' | '=' | '%' | '?' | '*' => {
                self.bump();
                Tok::Punct(c)
            }
            c => {
                return Err(ParseError::at(
                    pos,
                    format!("unexpected character `{}`", c.escape_debug()),
                ))
            }
        };
        Ok(Token { tok, pos })
    }
}

// ---- parser -------------------------------------------------------------------------------------

struct Parser<'a, 'c> {
    lex: Lexer<'a>,
    peeked: Option<Token<'a>>,
    consts: &'c dyn ConstSource,
    depth: usize,
}

/// One graph's names: value name → (value, where it was defined).
type Scope = HashMap<String, (ValueId, Pos)>;

/// A `name: type` entry of a signature.
struct Param {
    name: String,
    ty: Type,
    pos: Pos,
}

fn is_int_word(w: &str) -> bool {
    let digits = w.strip_prefix('-').unwrap_or(w);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn is_float_word(w: &str) -> bool {
    matches!(w, "nan" | "inf" | "-inf")
        || (w.chars().any(|c| c.is_ascii_digit())
            && w.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-')))
}

impl<'a, 'c> Parser<'a, 'c> {
    fn new(src: &'a str, consts: &'c dyn ConstSource) -> Parser<'a, 'c> {
        Parser {
            lex: Lexer::new(src),
            peeked: None,
            consts,
            depth: 0,
        }
    }

    fn peek(&mut self) -> Result<&Token<'a>, ParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next_token()?);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => Err(ParseError::at(self.lex.pos, "internal: no token")),
        }
    }

    fn next(&mut self) -> Result<Token<'a>, ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    fn peek_is(&mut self, tok: &Tok) -> Result<bool, ParseError> {
        Ok(&self.peek()?.tok == tok)
    }

    fn eat(&mut self, tok: &Tok) -> Result<bool, ParseError> {
        if self.peek_is(tok)? {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn fail<T>(&mut self, expected: &str) -> Result<T, ParseError> {
        let t = self.peek()?.clone();
        Err(ParseError::expected(t.pos, expected, t.tok.describe()))
    }

    fn expect(&mut self, tok: Tok) -> Result<Pos, ParseError> {
        let t = self.next()?;
        if t.tok == tok {
            Ok(t.pos)
        } else {
            Err(ParseError::expected(
                t.pos,
                tok.describe(),
                t.tok.describe(),
            ))
        }
    }

    fn expect_punct(&mut self, c: char) -> Result<Pos, ParseError> {
        self.expect(Tok::Punct(c))
    }

    fn enter(&mut self, pos: Pos, cost: usize) -> Result<(), ParseError> {
        if self.depth + cost > MAX_DEPTH {
            return Err(ParseError::at(
                pos,
                format!(
                    "nested too deeply (at most {MAX_DEPTH} levels of types, {} of subgraphs)",
                    MAX_DEPTH / GRAPH_DEPTH_COST
                ),
            ));
        }
        self.depth += cost;
        Ok(())
    }

    fn leave(&mut self, cost: usize) {
        self.depth -= cost;
    }

    fn end(&mut self) -> Result<(), ParseError> {
        if self.peek_is(&Tok::Eof)? {
            Ok(())
        } else {
            self.fail("end of input")
        }
    }

    /// A name: a bare word or a quoted string.
    fn name(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) => Ok((w.to_string(), t.pos)),
            Tok::Str(s) => String::from_utf8(s)
                .map(|s| (s, t.pos))
                .map_err(|_| ParseError::at(t.pos, format!("{what} must be valid UTF-8"))),
            tok => Err(ParseError::expected(t.pos, what, tok.describe())),
        }
    }

    fn int(&mut self) -> Result<(i64, Pos), ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) if is_int_word(w) => w
                .parse()
                .map(|v| (v, t.pos))
                .map_err(|_| ParseError::at(t.pos, format!("integer `{w}` is out of range"))),
            tok => Err(ParseError::expected(t.pos, "an integer", tok.describe())),
        }
    }

    // ---- types --------------------------------------------------------------------------------

    fn ty(&mut self) -> Result<Type, ParseError> {
        let t = self.next()?;
        self.enter(t.pos, 1)?;
        let r = self.ty_inner(t);
        self.leave(1);
        r
    }

    fn ty_inner(&mut self, t: Token<'a>) -> Result<Type, ParseError> {
        match t.tok {
            Tok::Punct('?') => {
                if self.peek_is(&Tok::Punct('['))? {
                    Ok(Type::Tensor(TensorType {
                        dtype: None,
                        shape: self.shape()?,
                    }))
                } else {
                    Ok(Type::Unknown)
                }
            }
            Tok::Word(w @ ("seq" | "opt" | "map" | "sparse")) => {
                self.expect_punct('<')?;
                let ty = match w {
                    "seq" => Type::Sequence(Box::new(self.ty()?)),
                    "opt" => Type::Optional(Box::new(self.ty()?)),
                    "map" => {
                        let key = self.dtype()?;
                        self.expect_punct(',')?;
                        Type::Map(key, Box::new(self.ty()?))
                    }
                    _ => {
                        let pos = self.peek()?.pos;
                        match self.ty()? {
                            Type::Tensor(t) => Type::SparseTensor(t),
                            other => {
                                return Err(ParseError::at(
                                    pos,
                                    format!(
                                        "sparse<…> holds a tensor type, not `{}`",
                                        super::fmt_type(&other)
                                    ),
                                ))
                            }
                        }
                    }
                };
                self.expect_punct('>')?;
                Ok(ty)
            }
            Tok::Word(w) => match DType::from_name(w) {
                Some(d) => Ok(Type::Tensor(TensorType {
                    dtype: Some(d),
                    shape: self.shape()?,
                })),
                None => Err(ParseError::at(t.pos, format!("unknown dtype `{w}`"))),
            },
            tok => Err(ParseError::expected(t.pos, "a type", tok.describe())),
        }
    }

    fn dtype(&mut self) -> Result<DType, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) => DType::from_name(w)
                .ok_or_else(|| ParseError::at(t.pos, format!("unknown dtype `{w}`"))),
            tok => Err(ParseError::expected(t.pos, "a dtype", tok.describe())),
        }
    }

    /// `[*]` (unknown rank) or `[d, …]`.
    fn shape(&mut self) -> Result<Option<Vec<Dim>>, ParseError> {
        self.expect_punct('[')?;
        if self.eat(&Tok::Punct('*'))? {
            self.expect_punct(']')?;
            return Ok(None);
        }
        let mut dims = vec![];
        if self.eat(&Tok::Punct(']'))? {
            return Ok(Some(dims));
        }
        loop {
            let t = self.next()?;
            dims.push(match t.tok {
                Tok::Punct('?') => Dim::Unknown,
                Tok::Word(w) if w.chars().all(|c| c.is_ascii_digit()) => Dim::Known(
                    w.parse()
                        .map_err(|_| ParseError::at(t.pos, format!("dim `{w}` is out of range")))?,
                ),
                Tok::Word(w) => Dim::Sym(w.to_string()),
                Tok::Str(s) => Dim::Sym(
                    String::from_utf8(s)
                        .map_err(|_| ParseError::at(t.pos, "a symbolic dim must be valid UTF-8"))?,
                ),
                tok => {
                    return Err(ParseError::expected(
                        t.pos,
                        "a dim (a number, a symbol or `?`)",
                        tok.describe(),
                    ))
                }
            });
            let t = self.next()?;
            match t.tok {
                Tok::Punct(',') => {}
                Tok::Punct(']') => return Ok(Some(dims)),
                tok => return Err(ParseError::expected(t.pos, "`,` or `]`", tok.describe())),
            }
        }
    }

    // ---- constants ----------------------------------------------------------------------------

    /// `TYPE [elements]`, `TYPE #hash` or `TYPE random(seed=N)`.
    fn tensor(&mut self) -> Result<Tensor, ParseError> {
        let pos = self.peek()?.pos;
        let ty = self.ty()?;
        let (dtype, dims) = match &ty {
            Type::Tensor(TensorType {
                dtype: Some(d),
                shape: Some(_),
            }) => match ty.static_dims() {
                Some(dims) => (*d, dims),
                None => {
                    return Err(ParseError::at(
                        pos,
                        format!(
                            "a constant needs known dims, found `{}`",
                            super::fmt_type(&ty)
                        ),
                    ))
                }
            },
            _ => {
                return Err(ParseError::at(
                    pos,
                    format!(
                        "a constant needs a dtype and a shape, found `{}`",
                        super::fmt_type(&ty)
                    ),
                ))
            }
        };
        let Some(count) = crate::tensor::element_count(&dims) else {
            return Err(ParseError::at(pos, "the shape has too many elements"));
        };
        let t = self.next()?;
        match t.tok {
            Tok::Punct('[') => self.elements(dtype, dims, count, t.pos),
            Tok::Hash(h) => {
                let hash = (h.len() == 16)
                    .then(|| u64::from_str_radix(h, 16).ok())
                    .flatten()
                    .ok_or_else(|| {
                        ParseError::at(t.pos, format!("`#{h}` is not a hash of 16 hex digits"))
                    })?;
                let c = self.consts.get(hash).ok_or_else(|| {
                    ParseError::at(
                        t.pos,
                        format!(
                            "no constant #{hash:016x}: the text summarises it by hash and the \
                             constant source (the blob file) has nothing under that hash"
                        ),
                    )
                })?;
                if c.dtype() != dtype || c.dims() != dims.as_slice() {
                    return Err(ParseError::at(
                        t.pos,
                        format!(
                            "constant #{hash:016x} is {} in the constant source but {} in the text",
                            TensorType::new(c.dtype(), c.dims()),
                            TensorType::new(dtype, &dims)
                        ),
                    ));
                }
                if c.content_hash() != hash {
                    return Err(ParseError::at(
                        t.pos,
                        format!(
                            "the constant source gave a tensor with hash #{:016x} for #{hash:016x}",
                            c.content_hash()
                        ),
                    ));
                }
                Ok(c)
            }
            Tok::Word("random") => {
                self.expect_punct('(')?;
                self.expect(Tok::Word("seed"))?;
                self.expect_punct('=')?;
                let s = self.next()?;
                let seed = match s.tok {
                    Tok::Word(w) if w.chars().all(|c| c.is_ascii_digit()) => {
                        w.parse::<u64>().map_err(|_| {
                            ParseError::at(s.pos, format!("seed `{w}` is out of range"))
                        })?
                    }
                    tok => {
                        return Err(ParseError::expected(
                            s.pos,
                            "a seed (an unsigned integer)",
                            tok.describe(),
                        ))
                    }
                };
                self.expect_punct(')')?;
                random_tensor(dtype, &dims, seed).map_err(|e| ParseError::at(t.pos, e.to_string()))
            }
            tok => Err(ParseError::expected(
                t.pos,
                "`[`, `#hash` or `random(seed=N)`",
                tok.describe(),
            )),
        }
    }

    /// The elements of an inline constant, after its `[`.
    fn elements(
        &mut self,
        dtype: DType,
        dims: Vec<usize>,
        count: usize,
        open: Pos,
    ) -> Result<Tensor, ParseError> {
        use DType::*;
        let mut words: Vec<(Tok<'a>, Pos)> = vec![];
        if !self.eat(&Tok::Punct(']'))? {
            loop {
                let t = self.next()?;
                match t.tok {
                    Tok::Word(_) | Tok::Str(_) => words.push((t.tok, t.pos)),
                    tok => return Err(ParseError::expected(t.pos, "an element", tok.describe())),
                }
                let t = self.next()?;
                match t.tok {
                    Tok::Punct(',') => {}
                    Tok::Punct(']') => break,
                    tok => return Err(ParseError::expected(t.pos, "`,` or `]`", tok.describe())),
                }
            }
        }
        let ty = TensorType::new(dtype, &dims);
        if words.len() != count {
            return Err(ParseError::at(
                open,
                format!("{ty} needs {count} elements, found {}", words.len()),
            ));
        }
        let word = |tok: &Tok<'a>, pos: Pos, what: &str| -> Result<&'a str, ParseError> {
            match tok {
                Tok::Word(w) => Ok(*w),
                tok => Err(ParseError::expected(pos, what, tok.describe())),
            }
        };
        let float = |tok: &Tok<'a>, pos: Pos| -> Result<f64, ParseError> {
            let w = word(tok, pos, "a number")?;
            parse_float::<f64>(w)
                .ok_or_else(|| ParseError::expected(pos, "a number", format!("`{w}`")))
        };
        let made = match dtype {
            F32 => {
                let mut v = Vec::with_capacity(count);
                for (tok, pos) in &words {
                    let w = word(tok, *pos, "a number")?;
                    v.push(
                        parse_float::<f32>(w).ok_or_else(|| {
                            ParseError::expected(*pos, "a number", format!("`{w}`"))
                        })?,
                    );
                }
                Tensor::from_vec(dims, &v)
            }
            F64 => {
                let v = words
                    .iter()
                    .map(|(t, p)| float(t, *p))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::from_vec(dims, &v)
            }
            F16 => {
                let v = words
                    .iter()
                    .map(|(t, p)| float(t, *p).map(f16::from_f64))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::from_vec(dims, &v)
            }
            BF16 => {
                let v = words
                    .iter()
                    .map(|(t, p)| float(t, *p).map(bf16::from_f64))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::from_vec(dims, &v)
            }
            Bool => {
                let mut v = Vec::with_capacity(count);
                for (tok, pos) in &words {
                    v.push(match word(tok, *pos, "`true` or `false`")? {
                        "true" | "1" => 1,
                        "false" | "0" => 0,
                        w => {
                            return Err(ParseError::expected(
                                *pos,
                                "`true` or `false`",
                                format!("`{w}`"),
                            ))
                        }
                    });
                }
                Tensor::from_i64s(dtype, dims, &v)
            }
            U64 => {
                let mut v = Vec::with_capacity(count);
                for (tok, pos) in &words {
                    let w = word(tok, *pos, "an integer")?;
                    v.push(
                        w.parse::<u64>()
                            .map_err(|_| ParseError::at(*pos, format!("`{w}` is not a u64")))?,
                    );
                }
                Tensor::from_vec(dims, &v)
            }
            I8 | U8 | I16 | U16 | I32 | U32 | I64 | I4 | U4 => {
                let (lo, hi): (i64, i64) = match dtype {
                    I8 => (i8::MIN.into(), i8::MAX.into()),
                    U8 => (0, u8::MAX.into()),
                    I16 => (i16::MIN.into(), i16::MAX.into()),
                    U16 => (0, u16::MAX.into()),
                    I32 => (i32::MIN.into(), i32::MAX.into()),
                    U32 => (0, u32::MAX.into()),
                    I4 => (-8, 7),
                    U4 => (0, 15),
                    _ => (i64::MIN, i64::MAX),
                };
                let mut v = Vec::with_capacity(count);
                for (tok, pos) in &words {
                    let w = word(tok, *pos, "an integer")?;
                    match w.parse::<i64>() {
                        Ok(x) if is_int_word(w) && (lo..=hi).contains(&x) => v.push(x),
                        _ => {
                            return Err(ParseError::at(
                                *pos,
                                format!("`{w}` is not a {dtype} (from {lo} to {hi})"),
                            ))
                        }
                    }
                }
                Tensor::from_i64s(dtype, dims, &v)
            }
            String => {
                let mut v = Vec::with_capacity(count);
                for (tok, pos) in words {
                    match tok {
                        Tok::Str(s) => v.push(s),
                        tok => return Err(ParseError::expected(pos, "a string", tok.describe())),
                    }
                }
                Tensor::from_strings(dims, v)
            }
            C64 | C128 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F4E2M1 | F8E8M0 | U2
            | I2 => {
                return Err(ParseError::at(
                    open,
                    format!(
                        "{dtype} constants have no inline form: use `#hash` or `random(seed=N)`"
                    ),
                ))
            }
        };
        made.map_err(|e| ParseError::at(open, e.to_string()))
    }

    // ---- attributes ---------------------------------------------------------------------------

    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        self.expect_punct('[')?;
        let mut out = vec![];
        if self.eat(&Tok::Punct(']'))? {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            let t = self.next()?;
            match t.tok {
                Tok::Punct(',') => {}
                Tok::Punct(']') => return Ok(out),
                tok => return Err(ParseError::expected(t.pos, "`,` or `]`", tok.describe())),
            }
        }
    }

    fn float_attr(&mut self) -> Result<f32, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) => parse_float::<f32>(w)
                .ok_or_else(|| ParseError::expected(t.pos, "a float", format!("`{w}`"))),
            tok => Err(ParseError::expected(t.pos, "a float", tok.describe())),
        }
    }

    fn str_item(&mut self) -> Result<Vec<u8>, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) => Ok(s),
            tok => Err(ParseError::expected(t.pos, "a string", tok.describe())),
        }
    }

    fn attr_value(&mut self) -> Result<Attr, ParseError> {
        let t = self.peek()?.clone();
        match t.tok {
            Tok::Str(_) => Ok(Attr::Str(self.str_item()?)),
            Tok::Punct('[') => Ok(Attr::Ints(self.list(|p| p.int().map(|(v, _)| v))?)),
            Tok::Word("graph") => Ok(Attr::Graph(Box::new(self.graph()?))),
            Tok::Word(
                w @ ("tensor" | "type" | "floats" | "strs" | "tensors" | "types" | "graphs"),
            ) => {
                self.next()?;
                Ok(match w {
                    "tensor" => Attr::Tensor(self.tensor()?),
                    "type" => Attr::Type(self.ty()?),
                    "floats" => Attr::Floats(self.list(|p| p.float_attr())?),
                    "strs" => Attr::Strs(self.list(|p| p.str_item())?),
                    "tensors" => Attr::Tensors(self.list(|p| p.tensor())?),
                    "types" => Attr::Types(self.list(|p| p.ty())?),
                    _ => Attr::Graphs(self.list(|p| p.graph())?),
                })
            }
            Tok::Word(w) => {
                self.next()?;
                if let Some(d) = DType::from_name(w) {
                    Ok(Attr::DType(d))
                } else if is_int_word(w) {
                    w.parse().map(Attr::Int).map_err(|_| {
                        ParseError::at(t.pos, format!("integer `{w}` is out of range"))
                    })
                } else if let Some(f) = parse_float::<f32>(w) {
                    Ok(Attr::Float(f))
                } else {
                    Err(ParseError::expected(
                        t.pos,
                        "an attribute value",
                        format!("`{w}`"),
                    ))
                }
            }
            tok => Err(ParseError::expected(
                t.pos,
                "an attribute value",
                tok.describe(),
            )),
        }
    }

    /// `{name=value, …}`, after its `{`.
    fn attrs(&mut self) -> Result<Vec<(String, Attr)>, ParseError> {
        let mut out: Vec<(String, Attr)> = vec![];
        if self.eat(&Tok::Punct('}'))? {
            return Ok(out);
        }
        loop {
            let (name, pos) = self.name("an attribute name")?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(ParseError::at(
                    pos,
                    format!("attribute `{name}` is given twice"),
                ));
            }
            self.expect_punct('=')?;
            out.push((name, self.attr_value()?));
            let t = self.next()?;
            match t.tok {
                Tok::Punct(',') => {}
                Tok::Punct('}') => return Ok(out),
                tok => return Err(ParseError::expected(t.pos, "`,` or `}`", tok.describe())),
            }
        }
    }

    // ---- graphs -------------------------------------------------------------------------------

    /// `(name: type, …)`.
    fn params(&mut self) -> Result<Vec<Param>, ParseError> {
        self.expect_punct('(')?;
        let mut out = vec![];
        if self.eat(&Tok::Punct(')'))? {
            return Ok(out);
        }
        loop {
            let (name, pos) = self.name("a name")?;
            self.expect_punct(':')?;
            out.push(Param {
                name,
                ty: self.ty()?,
                pos,
            });
            let t = self.next()?;
            match t.tok {
                Tok::Punct(',') => {}
                Tok::Punct(')') => return Ok(out),
                tok => return Err(ParseError::expected(t.pos, "`,` or `)`", tok.describe())),
            }
        }
    }

    fn define(scope: &mut Scope, name: &str, v: ValueId, pos: Pos) -> Result<(), ParseError> {
        if name.is_empty() {
            return Ok(());
        }
        if let Some((_, first)) = scope.get(name) {
            return Err(ParseError::at(
                pos,
                format!(
                    "value `%{}` is defined twice (first at {}:{})",
                    super::fmt_name(name),
                    first.line,
                    first.col
                ),
            ));
        }
        scope.insert(name.to_string(), (v, pos));
        Ok(())
    }

    /// `%name`, resolved in `scope`.
    fn value_ref(&mut self, scope: &Scope) -> Result<ValueId, ParseError> {
        self.expect_punct('%')?;
        let (name, pos) = self.name("a value name")?;
        match scope.get(&name) {
            Some((v, _)) => Ok(*v),
            None => Err(ParseError::at(
                pos,
                format!(
                    "unknown value `%{}` (values are defined before use; a subgraph sees outer \
                     values only through `captures(…)`)",
                    super::fmt_name(&name)
                ),
            )),
        }
    }

    fn graph(&mut self) -> Result<Graph, ParseError> {
        let pos = self.expect(Tok::Word("graph"))?;
        self.enter(pos, GRAPH_DEPTH_COST)?;
        let r = self.graph_inner();
        self.leave(GRAPH_DEPTH_COST);
        r
    }

    fn graph_inner(&mut self) -> Result<Graph, ParseError> {
        let (name, _) = self.name("a graph name")?;
        let mut g = Graph::new(name);
        let mut scope = Scope::new();
        for p in self.params()? {
            let v = g.add_input(p.name.clone(), p.ty);
            Self::define(&mut scope, &p.name, v, p.pos)?;
        }
        self.expect(Tok::Arrow)?;
        let outputs = self.params()?;
        if self.eat(&Tok::Word("captures"))? {
            for p in self.params()? {
                let v = g.add_capture(p.name.clone(), p.ty);
                Self::define(&mut scope, &p.name, v, p.pos)?;
            }
        }
        self.expect_punct('{')?;
        loop {
            let t = self.peek()?.clone();
            if t.tok == Tok::Word("return") {
                self.next()?;
                self.ret(&mut g, &scope, outputs, t.pos)?;
                self.expect_punct('}')?;
                return Ok(g);
            }
            if matches!(t.tok, Tok::Punct('%') | Tok::Punct('=') | Tok::Word("_")) {
                self.node(&mut g, &mut scope)?;
            } else {
                return self.fail("a node (`%name = …`) or `return`");
            }
        }
    }

    fn ret(
        &mut self,
        g: &mut Graph,
        scope: &Scope,
        sig: Vec<Param>,
        pos: Pos,
    ) -> Result<(), ParseError> {
        let mut rets = vec![];
        if self.peek_is(&Tok::Punct('%'))? {
            loop {
                let p = self.peek()?.pos;
                rets.push((self.value_ref(scope)?, p));
                if !self.eat(&Tok::Punct(','))? {
                    break;
                }
            }
        }
        if rets.len() != sig.len() {
            return Err(ParseError::at(
                pos,
                format!(
                    "the signature lists {} output(s) but `return` gives {}",
                    sig.len(),
                    rets.len()
                ),
            ));
        }
        for ((v, p), s) in rets.iter().zip(&sig) {
            let val = g.value(*v);
            if val.name != s.name {
                return Err(ParseError::at(
                    *p,
                    format!(
                        "`return` gives `%{}` where the signature lists `{}`",
                        super::fmt_name(&val.name),
                        super::fmt_name(&s.name)
                    ),
                ));
            }
            if val.ty == Type::Unknown {
                g.set_value_type(*v, s.ty.clone());
            } else if val.ty != s.ty {
                return Err(ParseError::at(
                    s.pos,
                    format!(
                        "output `{}` is `{}` in the signature but `{}` where it is defined",
                        super::fmt_name(&s.name),
                        super::fmt_type(&s.ty),
                        super::fmt_type(&val.ty)
                    ),
                ));
            }
        }
        g.set_outputs(rets.into_iter().map(|(v, _)| v).collect())
            .map_err(|e| ParseError::at(pos, e.to_string()))
    }

    /// `outs = const …`, or `outs = Op(ins) {attrs} : types`.
    fn node(&mut self, g: &mut Graph, scope: &mut Scope) -> Result<(), ParseError> {
        // Outputs: `%name` or `_`, comma-separated; none at all before a bare `=`.
        let mut outs: Vec<(String, Pos)> = vec![];
        if !self.peek_is(&Tok::Punct('='))? {
            loop {
                let t = self.peek()?.clone();
                match t.tok {
                    Tok::Word("_") => {
                        self.next()?;
                        outs.push((String::new(), t.pos));
                    }
                    Tok::Punct('%') => {
                        self.next()?;
                        let (name, pos) = self.name("a value name")?;
                        if !name.is_empty() && outs.iter().any(|(n, _)| *n == name) {
                            return Err(ParseError::at(
                                pos,
                                format!("value `%{}` is defined twice", super::fmt_name(&name)),
                            ));
                        }
                        outs.push((name, pos));
                    }
                    _ => return self.fail("`%name` or `_`"),
                }
                if !self.eat(&Tok::Punct(','))? {
                    break;
                }
            }
        }
        for (name, pos) in &outs {
            if let Some((_, first)) = scope.get(name) {
                return Err(ParseError::at(
                    *pos,
                    format!(
                        "value `%{}` is defined twice (first at {}:{})",
                        super::fmt_name(name),
                        first.line,
                        first.col
                    ),
                ));
            }
        }
        self.expect_punct('=')?;
        let t = self.next()?;
        let op_pos = t.pos;
        let (domain, op_type, opaque) = match t.tok {
            Tok::Word("const") => {
                if outs.len() != 1 {
                    return Err(ParseError::at(
                        op_pos,
                        format!("a constant has one output, here {}", outs.len()),
                    ));
                }
                let tensor = self.tensor()?;
                let (name, pos) = outs.remove(0);
                let v = g.add_const(name.clone(), tensor);
                return Self::define(scope, &name, v, pos);
            }
            Tok::Word(w) => (String::new(), w.to_string(), false),
            Tok::Opaque { domain, op_type } => (domain, op_type, true),
            tok => {
                return Err(ParseError::expected(
                    op_pos,
                    "an op (`Relu`, `@Custom`, `@domain::Custom`) or `const`",
                    tok.describe(),
                ))
            }
        };
        self.expect_punct('(')?;
        let mut inputs = vec![];
        if !self.eat(&Tok::Punct(')'))? {
            loop {
                if self.eat(&Tok::Word("_"))? {
                    inputs.push(None);
                } else if self.peek_is(&Tok::Punct('%'))? {
                    inputs.push(Some(self.value_ref(scope)?));
                } else {
                    return self.fail("`%name` or `_`");
                }
                let t = self.next()?;
                match t.tok {
                    Tok::Punct(',') => {}
                    Tok::Punct(')') => break,
                    tok => return Err(ParseError::expected(t.pos, "`,` or `)`", tok.describe())),
                }
            }
        }
        let attrs = if self.eat(&Tok::Punct('{'))? {
            self.attrs()?
        } else {
            vec![]
        };
        let mut types = vec![Type::Unknown; outs.len()];
        let colon = self.peek()?.pos;
        if self.eat(&Tok::Punct(':'))? && !outs.is_empty() {
            let mut given = vec![self.ty()?];
            while self.eat(&Tok::Punct(','))? {
                given.push(self.ty()?);
            }
            if given.len() != outs.len() {
                return Err(ParseError::at(
                    colon,
                    format!(
                        "{} output(s) but {} type(s): give one type per output",
                        outs.len(),
                        given.len()
                    ),
                ));
            }
            types = given;
        }
        let op = if opaque {
            Op::Opaque(OpaqueOp {
                domain,
                op_type,
                attrs,
            })
        } else {
            Op::from_parts(&op_type, attrs).map_err(|e| {
                let hint = match e {
                    crate::OpError::UnknownOp(_) => {
                        " (ops smelt does not type are written `@Name` or `@domain::Name`)"
                    }
                    _ => "",
                };
                ParseError::at(op_pos, format!("{e}{hint}"))
            })?
        };
        let values: Vec<Value> = outs
            .iter()
            .zip(types)
            .map(|((name, _), ty)| Value {
                name: name.clone(),
                ty,
            })
            .collect();
        let id = g
            .add_node(String::new(), op, &inputs, values)
            .map_err(|e| ParseError::at(op_pos, e.to_string()))?;
        for (port, (name, pos)) in outs.iter().enumerate() {
            Self::define(scope, name, ValueId::new(id, port as u32), *pos)?;
        }
        Ok(())
    }

    fn model(&mut self) -> Result<Model, ParseError> {
        let header = if self.eat(&Tok::Word("model"))? {
            self.expect(Tok::Word("ir_version"))?;
            self.expect_punct('=')?;
            let (ir, _) = self.int()?;
            self.expect(Tok::Word("opset"))?;
            self.expect_punct('(')?;
            let mut opsets: Vec<(String, i64)> = vec![];
            if !self.eat(&Tok::Punct(')'))? {
                loop {
                    // A domain imported twice is kept as it is: the printer prints it so.
                    let (d, _) = self.name("a domain")?;
                    let d = if d == "ai.onnx" { String::new() } else { d };
                    self.expect_punct('=')?;
                    let (v, _) = self.int()?;
                    opsets.push((d, v));
                    let t = self.next()?;
                    match t.tok {
                        Tok::Punct(',') => {}
                        Tok::Punct(')') => break,
                        tok => {
                            return Err(ParseError::expected(t.pos, "`,` or `)`", tok.describe()))
                        }
                    }
                }
            }
            Some((ir, opsets))
        } else {
            None
        };
        let g = self.graph()?;
        self.end()?;
        let mut m = Model::new(g, DEFAULT_OPSET);
        if let Some((ir, opsets)) = header {
            m.ir_version = ir;
            m.opsets = opsets;
        }
        Ok(m)
    }
}

/// The default-domain opset of a model whose text has no `model …` header line.
pub const DEFAULT_OPSET: i64 = 17;

/// A float word: digits with `.`/`e`/`-`, or `nan`, `inf`, `-inf` (integers are accepted).
fn parse_float<T: std::str::FromStr>(w: &str) -> Option<T> {
    if is_float_word(w) {
        w.parse().ok()
    } else {
        None
    }
}

/// Parses the text of one graph (`graph name(…) -> (…) { … }`), resolving `#hash` constants
/// through `consts`. Types after ` : ` become the declared types of the node outputs; run
/// [`crate::infer::infer_graph`] and [`crate::verify()`] afterwards to check or complete them.
pub fn parse_graph(src: &str, consts: &dyn ConstSource) -> Result<Graph, ParseError> {
    let mut p = Parser::new(src, consts);
    if let Ok(Token {
        tok: Tok::Word("model"),
        pos,
    }) = p.peek().cloned()
    {
        return Err(ParseError::expected(
            pos,
            "`graph`",
            "`model` (a model's text reads with `Model::from_text`)".into(),
        ));
    }
    let g = p.graph()?;
    p.end()?;
    Ok(g)
}

/// Parses the text of a model: an optional `model ir_version=N opset(ai.onnx=N, …)` line, then
/// its graph. Without the header line the model imports [`DEFAULT_OPSET`] of the default domain.
pub fn parse_model(src: &str, consts: &dyn ConstSource) -> Result<Model, ParseError> {
    Parser::new(src, consts).model()
}

/// Parses a type as the text form writes it (`f32[1,3,?]`, `seq<i64[*]>`, `?`).
pub fn parse_type(src: &str) -> Result<Type, ParseError> {
    let mut p = Parser::new(src, &NoConsts);
    let t = p.ty()?;
    p.end()?;
    Ok(t)
}

/// Parses a constant as [`super::fmt_tensor`] writes it (`f32[2] [1.0, 2.0]`, `i64[3,4]
/// random(seed=1)`, `f32[64,64] #9f31c2a07b44d610`).
pub fn parse_tensor(src: &str, consts: &dyn ConstSource) -> Result<Tensor, ParseError> {
    let mut p = Parser::new(src, consts);
    let t = p.tensor()?;
    p.end()?;
    Ok(t)
}
