//! AST → text for one component, against one track's [`Fields`]. Owns the semantics
//! of the built-in functions (beets' documented behaviour, noted per function).
//!
//! Invariants:
//! - Output is appended to the caller's `String`; text-shaping functions evaluate their
//!   argument straight into it and rewrite that tail in place (ASCII case changes and
//!   `%left`/`%right` cuts never allocate).
//! - An argument that is plain text or a single field is read without copying
//!   (`arg_text`); only a computed argument is evaluated into a temporary.
//! - Evaluation never fails: an integer argument that is not an integer at render
//!   time (a computed one; literals are checked by the parser) takes the default, and
//!   `%left`/`%right` then leave the text whole. Sanitising is not done here.
//! - Character counts (`%left`, `%right`) are Unicode scalar values, as Python's.

use std::borrow::Cow;

use super::parse::{parse_int, Call, Func, Node};
use super::{Fields, AUNIQUE_DISAMBIGUATORS, AUNIQUE_IDENTIFIERS};

/// Appends the rendering of `seq` to `out`.
pub(crate) fn eval_seq(seq: &[Node], f: &dyn Fields, out: &mut String) {
    for node in seq {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Field(name) => {
                if let Some(v) = f.field(name) {
                    out.push_str(&v);
                }
            }
            Node::Call(call) => eval_call(call, f, out),
        }
    }
}

/// The text of argument `arg` (empty when absent), borrowed when it is plain text or a
/// single field.
fn arg_text<'a>(arg: Option<&'a Vec<Node>>, f: &'a dyn Fields) -> Cow<'a, str> {
    match arg.map(Vec::as_slice) {
        None | Some([]) => Cow::Borrowed(""),
        Some([Node::Text(t)]) => Cow::Borrowed(t),
        Some([Node::Field(name)]) => f.field(name).unwrap_or(Cow::Borrowed("")),
        Some(seq) => {
            let mut s = String::new();
            eval_seq(seq, f, &mut s);
            Cow::Owned(s)
        }
    }
}

/// An integer argument; `None` when absent, empty or not an integer.
fn arg_int(arg: Option<&Vec<Node>>, f: &dyn Fields) -> Option<i64> {
    parse_int(&arg_text(arg, f))
}

/// beets' `%if` condition: an integer (after stripping) is true when non-zero;
/// otherwise the text is false when it is empty or `false` in any case.
pub(crate) fn truthy(cond: &str) -> bool {
    match parse_int(cond) {
        Some(n) => n != 0,
        None => !cond.is_empty() && !cond.eq_ignore_ascii_case("false"),
    }
}

/// A Python slice index over `len` items: negative counts from the end, both clamp.
fn py_index(i: i64, len: usize) -> usize {
    if i < 0 {
        len.saturating_sub(usize::try_from(i.unsigned_abs()).unwrap_or(usize::MAX))
    } else {
        usize::try_from(i).unwrap_or(usize::MAX).min(len)
    }
}

/// Keeps characters `from..to` of `out[start..]`, dropping the rest of the tail.
fn keep_chars(out: &mut String, start: usize, from: usize, to: usize) {
    let tail = &out[start..];
    let byte_of = |k: usize| tail.char_indices().nth(k).map_or(tail.len(), |(b, _)| b);
    let (from_b, to_b) = (byte_of(from), byte_of(to.max(from)));
    out.truncate(start + to_b);
    out.drain(start..start + from_b);
}

/// Replaces `out[start..]` with `new`.
fn replace_tail(out: &mut String, start: usize, new: &str) {
    out.truncate(start);
    out.push_str(new);
}

/// First character upper-cased, the rest lower-cased (Python's `str.capitalize`).
fn push_capitalized(word: &str, dst: &mut String) {
    let mut chars = word.chars();
    if let Some(c) = chars.next() {
        dst.extend(c.to_uppercase());
        for c in chars {
            dst.extend(c.to_lowercase());
        }
    }
}

fn eval_call(call: &Call, f: &dyn Fields, out: &mut String) {
    let args = &call.args;
    let start = out.len();
    match call.func {
        Func::Lower | Func::Upper => {
            eval_seq(&args[0], f, out);
            let lower = call.func == Func::Lower;
            if out[start..].is_ascii() {
                if lower {
                    out[start..].make_ascii_lowercase();
                } else {
                    out[start..].make_ascii_uppercase();
                }
            } else {
                // `str::to_lowercase` knows context rules (final sigma) per-char mapping lacks.
                let mapped = if lower {
                    out[start..].to_lowercase()
                } else {
                    out[start..].to_uppercase()
                };
                replace_tail(out, start, &mapped);
            }
        }
        Func::Capitalize => {
            eval_seq(&args[0], f, out);
            let mut s = String::with_capacity(out.len() - start);
            push_capitalized(&out[start..], &mut s);
            replace_tail(out, start, &s);
        }
        Func::Title => {
            // beets uses Python's `string.capwords`: split on whitespace runs, capitalise
            // each word, join with one space (so outer whitespace disappears).
            eval_seq(&args[0], f, out);
            let mut s = String::with_capacity(out.len() - start);
            for (i, word) in out[start..].split_whitespace().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                push_capitalized(word, &mut s);
            }
            replace_tail(out, start, &s);
        }
        Func::Left | Func::Right => {
            eval_seq(&args[0], f, out);
            let Some(n) = arg_int(args.get(1), f) else {
                return;
            };
            let len = out[start..].chars().count();
            let (from, to) = match call.func {
                // Python `s[0:n]`.
                Func::Left => (0, py_index(n, len)),
                // The documented "last n characters": 0 gives nothing, where Python's
                // `s[-0:]` would give the whole text.
                _ if n == 0 => (len, len),
                // Python `s[-n:]`.
                _ => (py_index(n.saturating_neg(), len), len),
            };
            keep_chars(out, start, from, to);
        }
        Func::If => {
            let cond = arg_text(args.first(), f);
            if truthy(&cond) {
                eval_seq(&args[1], f, out);
            } else if let Some(other) = args.get(2) {
                eval_seq(other, f, out);
            }
        }
        Func::Asciify => {
            eval_seq(&args[0], f, out);
            // Characters without a transliteration are dropped, as unidecode does.
            if let Cow::Owned(ascii) = deunicode::deunicode_with_tofu_cow(&out[start..], "") {
                replace_tail(out, start, &ascii);
            }
        }
        Func::First => {
            // beets: `join.join(text.split(sep)[skip:skip + count])`.
            let text = arg_text(args.first(), f);
            let count = arg_int(args.get(1), f).unwrap_or(1);
            let skip = arg_int(args.get(2), f).unwrap_or(0);
            let sep = args
                .get(3)
                .map_or(Cow::Borrowed("; "), |a| arg_text(Some(a), f));
            let join = args
                .get(4)
                .map_or(Cow::Borrowed("; "), |a| arg_text(Some(a), f));
            // Python rejects an empty separator; here the text is then one item.
            let items: Vec<&str> = if sep.is_empty() {
                vec![text.as_ref()]
            } else {
                text.split(&*sep).collect()
            };
            let from = py_index(skip, items.len());
            let to = py_index(skip.saturating_add(count), items.len());
            for (i, item) in items[from..to.max(from)].iter().enumerate() {
                if i > 0 {
                    out.push_str(&join);
                }
                out.push_str(item);
            }
        }
        Func::Ifdef => {
            // beets: defined → `truetext` when it renders non-empty, else the value.
            let name = arg_text(args.first(), f);
            match f.field(name.trim()) {
                Some(value) => {
                    if let Some(then) = args.get(1) {
                        eval_seq(then, f, out);
                    }
                    if out.len() == start {
                        out.push_str(&value);
                    }
                }
                None => {
                    if let Some(other) = args.get(2) {
                        eval_seq(other, f, out);
                    }
                }
            }
        }
        Func::Aunique => eval_aunique(args, f, out),
    }
}

/// `%aunique{identifiers,disambiguators,brackets}`: empty lists take the defaults; an
/// absent bracket argument is `[]`, and a given one that is not exactly two characters
/// means no brackets. Emits ` [text]` (leading space, as beets) or nothing.
fn eval_aunique(args: &[Vec<Node>], f: &dyn Fields, out: &mut String) {
    let ids_text = arg_text(args.first(), f);
    let dis_text = arg_text(args.get(1), f);
    let ids_list: Vec<&str>;
    let dis_list: Vec<&str>;
    let ids = if ids_text.trim().is_empty() {
        AUNIQUE_IDENTIFIERS
    } else {
        ids_list = ids_text.split_whitespace().collect();
        &ids_list
    };
    let dis = if dis_text.trim().is_empty() {
        AUNIQUE_DISAMBIGUATORS
    } else {
        dis_list = dis_text.split_whitespace().collect();
        &dis_list
    };
    let Some(text) = f.aunique(ids, dis).filter(|t| !t.is_empty()) else {
        return;
    };
    let brackets = args
        .get(2)
        .map_or(Cow::Borrowed("[]"), |a| arg_text(Some(a), f));
    let mut chars = brackets.chars();
    let pair = match (chars.next(), chars.next(), chars.next()) {
        (Some(l), Some(r), None) => Some((l, r)),
        _ => None,
    };
    out.push(' ');
    if let Some((l, _)) = pair {
        out.push(l);
    }
    out.push_str(&text);
    if let Some((_, r)) = pair {
        out.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_beets() {
        for t in ["1", " 2 ", "-1", "x", "0.0", " ", "no", "False!"] {
            assert!(truthy(t), "{t:?} should be true");
        }
        for t in ["", "0", " 0 ", "-0", "+00", "false", "FALSE", "False"] {
            assert!(!truthy(t), "{t:?} should be false");
        }
    }

    #[test]
    fn py_index_clamps_like_python() {
        assert_eq!(py_index(2, 5), 2);
        assert_eq!(py_index(9, 5), 5);
        assert_eq!(py_index(-2, 5), 3);
        assert_eq!(py_index(-9, 5), 0);
        assert_eq!(py_index(i64::MIN, 5), 0);
    }

    #[test]
    fn keep_chars_cuts_on_char_boundaries() {
        let mut s = String::from("ab/Björk");
        keep_chars(&mut s, 3, 1, 4);
        assert_eq!(s, "ab/jör");
        let mut s = String::from("xyz");
        keep_chars(&mut s, 0, 2, 1);
        assert_eq!(s, "");
    }
}
