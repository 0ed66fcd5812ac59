//! Rendered text → a legal file name. Owns the rules that make every component a
//! usable, visible POSIX name, in this order (beets' default `replace` order for the
//! rules it shares):
//! 1. `/` and every control character (C0, DEL, C1; NUL included) become `_`;
//! 2. leading and trailing whitespace (Unicode) is stripped;
//! 3. an empty result, `.` or `..` becomes the placeholder (already sanitised);
//! 4. a leading `.` becomes `_` when asked (beets does), so no name is hidden;
//! 5. the name is cut to the byte limit on a char boundary, keeping the extension
//!    (text after the last `.`, at most `MAX_EXT_BYTES`) of the last component, and
//!    whitespace left at the cut is stripped.
//!
//! Invariant: the result is non-empty, within the limit (never below 4 bytes), free of
//! `/` and control characters, has no outer whitespace and is not `.` or `..`.
//! Characters legal on Linux but not on Windows (`\ : * ? " < > |`) are kept: the
//! music face is a Linux filesystem. Text is not normalised (NFC as given).

use std::borrow::Cow;

use super::RenderOptions;

/// Longest extension kept whole when a last component is cut.
pub(crate) const MAX_EXT_BYTES: usize = 16;

/// Fallback when the caller's placeholder sanitises to nothing usable.
const FALLBACK: &str = "_";

fn is_bad(c: char) -> bool {
    c == '/' || c.is_control()
}

/// The placeholder to use for `opts`: `opts.unknown` sanitised, or `_`.
pub(crate) fn placeholder<'a>(opts: &RenderOptions<'a>) -> Cow<'a, str> {
    let mut s = opts.unknown.to_string();
    sanitize_in_place(&mut s, false, opts, FALLBACK);
    if s == opts.unknown {
        Cow::Borrowed(opts.unknown)
    } else {
        Cow::Owned(s)
    }
}

/// Sanitises one component as a render does (`last`: keep the extension when cutting).
/// For callers that name files outside a template, such as an import's file names.
pub fn sanitize_component(name: &str, last: bool, opts: &RenderOptions<'_>) -> String {
    let mut s = name.to_string();
    let unknown = placeholder(opts);
    sanitize_in_place(&mut s, last, opts, &unknown);
    s
}

/// Applies the module's rules to `s`; `unknown` must already be sanitised.
pub(crate) fn sanitize_in_place(
    s: &mut String,
    last: bool,
    opts: &RenderOptions<'_>,
    unknown: &str,
) {
    // 1. Rare, so the rebuild is only paid when needed.
    if s.chars().any(is_bad) {
        *s = s.chars().map(|c| if is_bad(c) { '_' } else { c }).collect();
    }
    // 2.
    let end = s.trim_end().len();
    s.truncate(end);
    let lead = s.len() - s.trim_start().len();
    s.drain(..lead);
    // 3.
    if s.is_empty() || s == "." || s == ".." {
        s.clear();
        s.push_str(unknown);
        return;
    }
    // 4.
    if opts.replace_leading_dot && s.starts_with('.') {
        s.replace_range(..1, "_");
    }
    // 5.
    truncate(s, opts.max_component_bytes.max(4), last);
}

/// The largest char boundary of `s` at or below `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    (0..=i).rev().find(|&b| s.is_char_boundary(b)).unwrap_or(0)
}

/// Cuts `s` (trimmed, non-empty) to at most `max` bytes (`max >= 4`).
fn truncate(s: &mut String, max: usize, keep_ext: bool) {
    if s.len() <= max {
        return;
    }
    // The extension's dot must not be the first byte (that is a hidden name, not an
    // extension), and the stem must keep at least one 4-byte character.
    let ext_dot = s
        .rfind('.')
        .filter(|&dot| keep_ext && dot > 0 && s.len() - dot - 1 <= MAX_EXT_BYTES)
        .filter(|&dot| max >= s.len() - dot + 4);
    match ext_dot {
        Some(dot) => {
            let stem_max = max - (s.len() - dot);
            let cut = floor_boundary(s, stem_max);
            // The stem starts with a non-space character, so this stays non-empty.
            let keep = s[..cut].trim_end().len();
            s.drain(keep..dot);
        }
        None => {
            let cut = floor_boundary(s, max);
            let keep = s[..cut].trim_end().len();
            s.truncate(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(name: &str, last: bool) -> String {
        sanitize_component(name, last, &RenderOptions::default())
    }

    #[test]
    fn separators_and_controls_become_underscores() {
        assert_eq!(clean("AC/DC", false), "AC_DC");
        assert_eq!(clean("a\0b\tc\u{7f}d\u{85}e", false), "a_b_c_d_e");
        // Control characters are replaced before trimming, as in beets.
        assert_eq!(clean("\nx", false), "_x");
    }

    #[test]
    fn whitespace_is_trimmed() {
        assert_eq!(clean("  Sigur Rós \u{3000}", false), "Sigur Rós");
    }

    #[test]
    fn empty_dot_and_dotdot_become_the_placeholder() {
        for v in ["", "   ", ".", "..", " .. "] {
            assert_eq!(clean(v, false), "_", "{v:?}");
        }
        let opts = RenderOptions {
            unknown: "Unknown Artist",
            ..RenderOptions::default()
        };
        assert_eq!(sanitize_component(" ", false, &opts), "Unknown Artist");
        // A placeholder that is itself unusable falls back to `_`.
        let opts = RenderOptions {
            unknown: " .. ",
            ..RenderOptions::default()
        };
        assert_eq!(sanitize_component("", false, &opts), "_");
        let opts = RenderOptions {
            unknown: "a/b",
            ..RenderOptions::default()
        };
        assert_eq!(sanitize_component("", false, &opts), "a_b");
    }

    #[test]
    fn leading_dot_is_replaced_unless_disabled() {
        assert_eq!(clean(".hidden", false), "_hidden");
        assert_eq!(clean("...", false), "_..");
        let opts = RenderOptions {
            replace_leading_dot: false,
            ..RenderOptions::default()
        };
        assert_eq!(sanitize_component(".hidden", false, &opts), ".hidden");
    }

    #[test]
    fn long_names_cut_on_char_boundaries() {
        // 'é' is two bytes: 200 of them are 400 bytes; 127 fit in 255 bytes.
        let long = "é".repeat(200);
        let cut = clean(&long, false);
        assert_eq!(cut, "é".repeat(127));
        // Last component: the extension survives, the stem is cut.
        let cut = clean(&format!("{long}.flac"), true);
        assert_eq!(cut, format!("{}.flac", "é".repeat(125)));
        assert_eq!(cut.len(), 255);
        // Not the last component: no extension logic.
        let cut = clean(&format!("{long}.flac"), false);
        assert_eq!(cut, "é".repeat(127));
        // An "extension" longer than 16 bytes is not one.
        let name = format!("{long}.{}", "x".repeat(17));
        assert_eq!(clean(&name, true), "é".repeat(127));
    }

    #[test]
    fn whitespace_at_the_cut_is_trimmed() {
        let name = format!("{} {}.mp3", "a".repeat(250), "b".repeat(10));
        // Stem budget 255 - 4 = 251 bytes ends just after the space.
        assert_eq!(clean(&name, true), format!("{}.mp3", "a".repeat(250)));
        let opts = RenderOptions {
            max_component_bytes: 5,
            ..RenderOptions::default()
        };
        assert_eq!(sanitize_component("abc  def", false, &opts), "abc");
        // Limits below 4 act as 4, so a 4-byte character always fits.
        let opts = RenderOptions {
            max_component_bytes: 1,
            ..RenderOptions::default()
        };
        assert_eq!(sanitize_component("😀😀", false, &opts), "😀");
    }

    #[test]
    fn floor_boundary_never_splits_a_char() {
        let s = "aé😀";
        assert_eq!(floor_boundary(s, 0), 0);
        assert_eq!(floor_boundary(s, 2), 1);
        assert_eq!(floor_boundary(s, 5), 3);
        assert_eq!(floor_boundary(s, 7), 7);
        assert_eq!(floor_boundary(s, 99), 7);
    }
}
