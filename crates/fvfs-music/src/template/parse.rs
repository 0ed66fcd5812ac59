//! Template text → AST. Owns the syntax: `$name`, `${name}`, `$`-escapes, `%func{a,b}`
//! calls and the literal `/` that separates path components.
//!
//! Invariants of the AST this produces (the evaluator relies on them):
//! - A template is a non-empty list of components, one per literal top-level `/` plus
//!   one; no `Node` ever stands for a separator, so a `/` that reaches a rendered
//!   component came from a value and is sanitised, never a directory.
//! - Adjacent literal text (escapes included) is merged into one `Node::Text`, and no
//!   `Node::Text` is empty: rendering copies each literal with one `push_str`.
//! - Every `Call` names a known function with an argument count inside its arity; an
//!   integer argument that is pure literal text is a valid integer (or empty).
//! - Nesting is at most `MAX_NESTING` calls deep, so evaluation recursion is bounded.
//!
//! Syntax decisions (beets' grammar, with its silent fallbacks made errors):
//! - `$` escapes `$ % , } ( )`; `${` always opens a braced field (as in beets), so a
//!   literal `{` needs no escape: it is only special right after `%name`. `$/` (not in
//!   beets) is a literal `/` that never separates components, e.g. a `%first` separator;
//!   if it reaches a rendered name it is sanitised like a `/` in a value.
//! - `,` and `}` are literal at the top level and delimit arguments inside a call.
//! - A `$` with no name, a `%` that does not start `%name{`, an unknown function and a
//!   wrong argument count are errors (beets would print the text as is).
//! - A `/` inside a function argument is an error: a template has a fixed depth, so the
//!   music face can map every directory level to the fields of one component.

use super::TemplateError;

/// Deepest nesting of function calls accepted; bounds the evaluator's recursion.
pub(crate) const MAX_NESTING: usize = 32;

/// A run of nodes rendered one after the other.
pub(crate) type Seq = Vec<Node>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// Literal text, never empty.
    Text(Box<str>),
    /// A field reference (`$name` / `${name}`); the name is `[A-Za-z0-9_]+`.
    Field(Box<str>),
    Call(Box<Call>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub func: Func,
    /// Each argument is itself a template sequence; `%f{}` has no argument.
    pub args: Vec<Seq>,
}

/// The built-in functions. Regex functions (`%replace`) and `%time` are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Lower,
    Upper,
    Capitalize,
    Title,
    Left,
    Right,
    If,
    Asciify,
    First,
    Ifdef,
    Aunique,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            "capitalize" => Func::Capitalize,
            "title" => Func::Title,
            "left" => Func::Left,
            "right" => Func::Right,
            "if" => Func::If,
            "asciify" => Func::Asciify,
            "first" => Func::First,
            "ifdef" => Func::Ifdef,
            "aunique" => Func::Aunique,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Capitalize => "capitalize",
            Func::Title => "title",
            Func::Left => "left",
            Func::Right => "right",
            Func::If => "if",
            Func::Asciify => "asciify",
            Func::First => "first",
            Func::Ifdef => "ifdef",
            Func::Aunique => "aunique",
        }
    }

    /// Accepted argument counts (inclusive) and how the error message words them.
    fn arity(self) -> (usize, usize, &'static str) {
        match self {
            Func::Lower | Func::Upper | Func::Capitalize | Func::Title | Func::Asciify => {
                (1, 1, "1")
            }
            Func::Left | Func::Right => (2, 2, "2"),
            Func::If => (2, 3, "2 or 3"),
            Func::First => (1, 5, "1 to 5"),
            Func::Ifdef => (1, 3, "1 to 3"),
            Func::Aunique => (0, 3, "0 to 3"),
        }
    }

    /// Indexes of the arguments read as integers.
    fn integer_args(self) -> &'static [usize] {
        match self {
            Func::Left | Func::Right => &[1],
            Func::First => &[1, 2],
            _ => &[],
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses an integer as beets' `int(s.strip())` does, for ASCII digits with an optional
/// sign; saturates instead of growing without bound. `None` when `s` is not one.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    Some(if neg { -v } else { v })
}

/// Parses `src` into its components (see the module invariants).
pub(crate) fn parse(src: &str) -> Result<Vec<Seq>, TemplateError> {
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
    };
    let mut components = Vec::new();
    loop {
        components.push(p.seq(false)?);
        match p.peek() {
            Some(b'/') => p.pos += 1,
            // `seq(false)` only stops at `/` or the end.
            _ => break,
        }
    }
    Ok(components)
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next unread byte; always on a char boundary because every
    /// byte the parser stops at is ASCII.
    pos: usize,
    /// Calls currently open around `pos`.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + off).copied()
    }

    /// Reads a run of name bytes starting at `pos`; may be empty.
    fn name(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    /// Parses nodes up to the end, a top-level `/` (when `!in_arg`), or the `,`/`}`
    /// ending an argument (when `in_arg`). The terminator is left unread.
    fn seq(&mut self, in_arg: bool) -> Result<Seq, TemplateError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        while let Some(b) = self.peek() {
            match b {
                b'/' if in_arg => return Err(TemplateError::SeparatorInArgument { pos: self.pos }),
                b'/' => break,
                b',' | b'}' if in_arg => break,
                b'$' => match self.peek_at(1) {
                    Some(c @ (b'$' | b'%' | b',' | b'}' | b'(' | b')' | b'/')) => {
                        text.push(char::from(c));
                        self.pos += 2;
                    }
                    Some(b'{') => {
                        let field = self.braced_field()?;
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Field(field.into()));
                    }
                    Some(c) if is_name_byte(c) => {
                        self.pos += 1;
                        let field = self.name();
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Field(field.into()));
                    }
                    _ => return Err(TemplateError::DollarWithoutName { pos: self.pos }),
                },
                b'%' => {
                    let call = self.call()?;
                    flush(&mut text, &mut nodes);
                    nodes.push(Node::Call(Box::new(call)));
                }
                _ => {
                    // Copy the whole run of ordinary text at once.
                    let start = self.pos;
                    let rest = &self.src.as_bytes()[start..];
                    let len = rest
                        .iter()
                        .position(|&c| matches!(c, b'$' | b'%' | b'/' | b',' | b'}'))
                        .unwrap_or(rest.len())
                        .max(1);
                    // `len` ends before an ASCII byte or at the end: a char boundary.
                    text.push_str(&self.src[start..start + len]);
                    self.pos += len;
                }
            }
        }
        flush(&mut text, &mut nodes);
        Ok(nodes)
    }

    /// `${name}` at `pos`; returns the name.
    fn braced_field(&mut self) -> Result<&'a str, TemplateError> {
        let dollar = self.pos;
        self.pos += 2;
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        let end = self.pos;
        match self.peek() {
            Some(b'}') if end > start => {
                self.pos += 1;
                Ok(&self.src[start..end])
            }
            None => Err(TemplateError::Unclosed { pos: dollar + 1 }),
            _ => Err(TemplateError::BadBracedField { pos: dollar }),
        }
    }

    /// `%name{arg,...}` at `pos`.
    fn call(&mut self) -> Result<Call, TemplateError> {
        let percent = self.pos;
        self.pos += 1;
        let name = self.name();
        if name.is_empty() || self.peek() != Some(b'{') {
            return Err(TemplateError::StrayPercent { pos: percent });
        }
        let func = Func::from_name(name).ok_or_else(|| TemplateError::UnknownFunction {
            pos: percent,
            name: name.to_string(),
        })?;
        let open = self.pos;
        self.pos += 1;
        if self.depth == MAX_NESTING {
            return Err(TemplateError::TooDeep {
                pos: percent,
                max: MAX_NESTING,
            });
        }
        self.depth += 1;
        let mut args = Vec::new();
        let mut arg_starts = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                arg_starts.push(self.pos);
                args.push(self.seq(true)?);
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(TemplateError::Unclosed { pos: open }),
                }
            }
        }
        self.depth -= 1;
        let (min, max, expected) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(TemplateError::ArgCount {
                pos: percent,
                name: func.name(),
                expected,
                got: args.len(),
            });
        }
        for &i in func.integer_args() {
            // Only a literal can be checked now; a computed one is checked at render.
            if let Some([Node::Text(t)]) = args.get(i).map(Vec::as_slice) {
                if parse_int(t).is_none() {
                    return Err(TemplateError::NotAnInteger {
                        pos: arg_starts[i],
                        name: func.name(),
                        index: i + 1,
                        got: t.to_string(),
                    });
                }
            }
        }
        Ok(Call { func, args })
    }
}

fn flush(text: &mut String, nodes: &mut Seq) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text).into_boxed_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Node {
        Node::Text(s.into())
    }
    fn field(s: &str) -> Node {
        Node::Field(s.into())
    }

    #[test]
    fn components_split_on_top_level_slash_only() {
        let c = parse("$a/x ${b}y/$c").unwrap();
        assert_eq!(
            c,
            vec![
                vec![field("a")],
                vec![text("x "), field("b"), text("y")],
                vec![field("c")],
            ]
        );
        assert_eq!(parse("").unwrap(), vec![vec![]]);
        assert_eq!(
            parse("a//b").unwrap(),
            vec![vec![text("a")], vec![], vec![text("b")]]
        );
    }

    #[test]
    fn escapes_merge_into_one_text_node() {
        let c = parse("$$5 $%$,$}$($)$/ {x} a,b}").unwrap();
        assert_eq!(c, vec![vec![text("$5 %,}()/ {x} a,b}")]]);
    }

    #[test]
    fn field_name_stops_at_non_name_byte() {
        let c = parse("$format_upper.$f2-é").unwrap();
        assert_eq!(
            c,
            vec![vec![
                field("format_upper"),
                text("."),
                field("f2"),
                text("-é")
            ]]
        );
    }

    #[test]
    fn calls_nest_and_split_arguments() {
        let c = parse("%if{$a,%upper{x$b},}").unwrap();
        let upper = Node::Call(Box::new(Call {
            func: Func::Upper,
            args: vec![vec![text("x"), field("b")]],
        }));
        let want = Node::Call(Box::new(Call {
            func: Func::If,
            args: vec![vec![field("a")], vec![upper], vec![]],
        }));
        assert_eq!(c, vec![vec![want]]);
        let c = parse("%aunique{}").unwrap();
        let want = Node::Call(Box::new(Call {
            func: Func::Aunique,
            args: vec![],
        }));
        assert_eq!(c, vec![vec![want]]);
    }

    #[test]
    fn errors_carry_byte_positions() {
        use TemplateError::*;
        assert_eq!(parse("ab$"), Err(DollarWithoutName { pos: 2 }));
        assert_eq!(parse("é$ x"), Err(DollarWithoutName { pos: 2 }));
        assert_eq!(parse("x${abc"), Err(Unclosed { pos: 2 }));
        assert_eq!(parse("x${a b}"), Err(BadBracedField { pos: 1 }));
        assert_eq!(parse("x${}"), Err(BadBracedField { pos: 1 }));
        assert_eq!(parse("a/%lower{$b"), Err(Unclosed { pos: 8 }));
        assert_eq!(parse("%if{$a,%lower{b}"), Err(Unclosed { pos: 3 }));
        assert_eq!(parse("50% off"), Err(StrayPercent { pos: 2 }));
        assert_eq!(parse("%lower x"), Err(StrayPercent { pos: 0 }));
        assert_eq!(
            parse("ab%nope{x}"),
            Err(UnknownFunction {
                pos: 2,
                name: "nope".into()
            })
        );
        assert_eq!(
            parse("%left{x}"),
            Err(ArgCount {
                pos: 0,
                name: "left",
                expected: "2",
                got: 1
            })
        );
        assert_eq!(
            parse("$a%if{1,2,3,4}"),
            Err(ArgCount {
                pos: 2,
                name: "if",
                expected: "2 or 3",
                got: 4
            })
        );
        assert_eq!(
            parse("%lower{}"),
            Err(ArgCount {
                pos: 0,
                name: "lower",
                expected: "1",
                got: 0
            })
        );
        assert_eq!(
            parse("%left{$a,x}"),
            Err(NotAnInteger {
                pos: 9,
                name: "left",
                index: 2,
                got: "x".into()
            })
        );
        assert_eq!(parse("%lower{a/b}"), Err(SeparatorInArgument { pos: 8 }));
        let deep = "%lower{".repeat(MAX_NESTING + 1) + &"}".repeat(MAX_NESTING + 1);
        assert_eq!(
            parse(&deep),
            Err(TooDeep {
                pos: MAX_NESTING * 7,
                max: MAX_NESTING
            })
        );
        let ok = "%lower{".repeat(MAX_NESTING) + "x" + &"}".repeat(MAX_NESTING);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn error_messages_are_readable() {
        let e = parse("%left{x}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template byte 0: `%left` takes 2 argument(s), got 1"
        );
        let e = parse("ab%nope{x}").unwrap_err();
        assert_eq!(e.to_string(), "template byte 2: unknown function `%nope`");
        assert_eq!(e.pos(), 2);
    }

    #[test]
    fn integers_follow_python_int_of_stripped_text() {
        assert_eq!(parse_int(" 12 "), Some(12));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("+0"), Some(0));
        assert_eq!(parse_int("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("-"), None);
    }
}
