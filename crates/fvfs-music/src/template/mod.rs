//! Beets-style path templates: `$artist/$album%aunique{}/$track $title`. A [`Template`]
//! is parsed once and rendered many times (a whole library at mount or refresh) into
//! sanitised path components.
//!
//! Layout: `parse.rs` the syntax and the AST, `eval.rs` the functions, `sanitize.rs`
//! turning rendered text into a legal file name, `aunique.rs` the helper a library uses
//! to answer [`Fields::aunique`].
//!
//! Invariants:
//! - Only a `/` written at the top level of the template separates components, so
//!   [`Template::depth`] is fixed and every render returns exactly that many
//!   components. A `/` (or NUL, or any control character) in a field value ends up as
//!   `_` inside its component, never as a directory.
//! - Every rendered component is a legal, non-hidden POSIX name: non-empty, not `.` or
//!   `..`, no `/` or control character, no leading or trailing whitespace, at most
//!   [`RenderOptions::max_component_bytes`] bytes, cut on a char boundary.
//! - A missing field renders as empty text; a component that renders empty (or only
//!   whitespace, or `.`/`..`) becomes [`RenderOptions::unknown`]. One placeholder for
//!   every level keeps the engine free of tag semantics: a caller that wants "Unknown
//!   Artist" supplies it per template, or writes `%if{$artist,$artist,Unknown Artist}`.
//! - Rendering allocates the output strings and, only for function calls whose
//!   arguments are not plain text or a single field, a temporary per argument; no
//!   regex, no per-literal allocation.
//!
//! Differences from beets, on purpose: beets prints an unknown `$field`, a stray `%` or
//! an unknown `%func{}` literally; here a missing field is empty text and the other two
//! are parse errors. `%right{t,0}` is empty (beets' slice returns the whole text).
//! `%time` and the regex functions are not provided.

mod aunique;
mod eval;
mod parse;
mod sanitize;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::str::FromStr;

pub use aunique::aunique_disambiguator;
pub use sanitize::sanitize_component;

use parse::{Func, Node, Seq};

/// Default `%aunique` identifiers (beets' `aunique.keys`).
pub const AUNIQUE_IDENTIFIERS: &[&str] = &["albumartist", "album"];
/// Default `%aunique` disambiguators (beets' `aunique.disambiguators`).
pub const AUNIQUE_DISAMBIGUATORS: &[&str] = &[
    "albumtype",
    "year",
    "label",
    "catalognum",
    "albumdisambig",
    "releasegroupdisambig",
];

/// A malformed template. `pos` is the byte offset in the template text where the
/// problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "template byte {pos}: `$` must be followed by a field name ([A-Za-z0-9_]+), \
         `{{name}}`, or one of `$ % , }} ( ) /` to escape it"
    )]
    DollarWithoutName { pos: usize },
    #[error(
        "template byte {pos}: `${{...}}` needs a field name of [A-Za-z0-9_] characters \
         followed by `}}`"
    )]
    BadBracedField { pos: usize },
    #[error("template byte {pos}: this `{{` is never closed by `}}`")]
    Unclosed { pos: usize },
    #[error(
        "template byte {pos}: `%` must start a function call `%name{{...}}`; write `$%` \
         for a literal `%`"
    )]
    StrayPercent { pos: usize },
    #[error("template byte {pos}: unknown function `%{name}`")]
    UnknownFunction { pos: usize, name: String },
    #[error("template byte {pos}: `%{name}` takes {expected} argument(s), got {got}")]
    ArgCount {
        pos: usize,
        name: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("template byte {pos}: argument {index} of `%{name}` must be an integer, got `{got}`")]
    NotAnInteger {
        pos: usize,
        name: &'static str,
        index: usize,
        got: String,
    },
    #[error(
        "template byte {pos}: `/` separates path components and is not allowed inside a \
         function argument; write `$/` for a literal `/`"
    )]
    SeparatorInArgument { pos: usize },
    #[error("template byte {pos}: function calls nest deeper than {max}")]
    TooDeep { pos: usize, max: usize },
}

impl TemplateError {
    /// Byte offset in the template text where the problem starts.
    pub fn pos(&self) -> usize {
        match *self {
            TemplateError::DollarWithoutName { pos }
            | TemplateError::BadBracedField { pos }
            | TemplateError::Unclosed { pos }
            | TemplateError::StrayPercent { pos }
            | TemplateError::UnknownFunction { pos, .. }
            | TemplateError::ArgCount { pos, .. }
            | TemplateError::NotAnInteger { pos, .. }
            | TemplateError::SeparatorInArgument { pos }
            | TemplateError::TooDeep { pos, .. } => pos,
        }
    }
}

/// What a template is rendered against: one track (and its album).
pub trait Fields {
    /// The value of a field, `None` when the track does not have it. `Some("")` counts
    /// as defined for `%ifdef`; both render as empty text.
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;

    /// `%aunique`: the text that tells this track's album apart from the other albums
    /// sharing the `identifiers` (without brackets), `None` when the album is unique
    /// (or the track has no album). [`aunique_disambiguator`] implements beets' rule.
    /// The default says every album is unique.
    fn aunique(&self, identifiers: &[&str], disambiguators: &[&str]) -> Option<String> {
        let _ = (identifiers, disambiguators);
        None
    }
}

impl<S: BuildHasher> Fields for HashMap<String, String, S> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl Fields for BTreeMap<String, String> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// How rendered text becomes file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions<'a> {
    /// Replaces a component that renders empty, whitespace-only, `.` or `..`. It is
    /// sanitised like a component; if that leaves nothing usable, `_` is used.
    pub unknown: &'a str,
    /// Longest component in bytes (255 is NAME_MAX on Linux); values below 4 count as
    /// 4 so one character always fits.
    pub max_component_bytes: usize,
    /// Replace a leading `.` with `_` (beets does), so no rendered name is hidden.
    pub replace_leading_dot: bool,
}

impl Default for RenderOptions<'_> {
    fn default() -> Self {
        RenderOptions {
            unknown: "_",
            max_component_bytes: 255,
            replace_leading_dot: true,
        }
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// One sequence per path component; never empty.
    components: Vec<Seq>,
}

impl Template {
    /// Parses `src`; see the module doc for the syntax and [`TemplateError`].
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            components: parse::parse(src)?,
        })
    }

    /// Number of path components every render returns.
    pub fn depth(&self) -> usize {
        self.components.len()
    }

    /// Field names the template reads, so an index knows which tags matter: every
    /// `$field`, the literal field of `%ifdef`, and the identifiers and disambiguators
    /// of `%aunique` (album fields; the defaults when not given literally).
    pub fn fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for seq in &self.components {
            collect_fields(seq, &mut out);
        }
        out
    }

    /// Renders with [`RenderOptions::default`].
    pub fn render(&self, fields: &dyn Fields) -> Vec<String> {
        self.render_with(fields, &RenderOptions::default())
    }

    /// Renders every component; the result has [`Template::depth`] entries.
    pub fn render_with(&self, fields: &dyn Fields, opts: &RenderOptions<'_>) -> Vec<String> {
        let unknown = sanitize::placeholder(opts);
        let last = self.components.len() - 1;
        self.components
            .iter()
            .enumerate()
            .map(|(i, seq)| render_one(seq, i == last, fields, opts, &unknown))
            .collect()
    }

    /// Renders component `index` alone (a directory level), `None` past the depth. The
    /// last component keeps its extension when truncated, as in a full render.
    pub fn render_component(
        &self,
        index: usize,
        fields: &dyn Fields,
        opts: &RenderOptions<'_>,
    ) -> Option<String> {
        let seq = self.components.get(index)?;
        let unknown = sanitize::placeholder(opts);
        let last = index + 1 == self.components.len();
        Some(render_one(seq, last, fields, opts, &unknown))
    }
}

impl FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

fn render_one(
    seq: &Seq,
    last: bool,
    fields: &dyn Fields,
    opts: &RenderOptions<'_>,
    unknown: &str,
) -> String {
    let mut out = String::with_capacity(64);
    eval::eval_seq(seq, fields, &mut out);
    sanitize::sanitize_in_place(&mut out, last, opts, unknown);
    out
}

fn collect_fields(seq: &[Node], out: &mut BTreeSet<String>) {
    for node in seq {
        match node {
            Node::Text(_) => {}
            Node::Field(name) => {
                out.insert(name.to_string());
            }
            Node::Call(call) => {
                for arg in &call.args {
                    collect_fields(arg, out);
                }
                let literal = |i: usize| match call.args.get(i).map(Vec::as_slice) {
                    None | Some([]) => Some(""),
                    Some([Node::Text(t)]) => Some(&**t),
                    Some(_) => None,
                };
                match call.func {
                    Func::Ifdef => {
                        if let Some(name) = literal(0).map(str::trim).filter(|n| !n.is_empty()) {
                            out.insert(name.to_string());
                        }
                    }
                    Func::Aunique => {
                        for (i, defaults) in [(0, AUNIQUE_IDENTIFIERS), (1, AUNIQUE_DISAMBIGUATORS)]
                        {
                            match literal(i) {
                                Some(t) if t.trim().is_empty() => {
                                    out.extend(defaults.iter().map(|d| d.to_string()));
                                }
                                Some(t) => out.extend(t.split_whitespace().map(String::from)),
                                None => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
