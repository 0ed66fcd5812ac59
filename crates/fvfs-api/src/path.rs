//! Path normalisation (docs/API.md, "Paths"): the `{path}` of a URL is percent-decoded
//! exactly once, then split on `/`; empty segments are dropped; `.`/`..`, NUL and other
//! control bytes and invalid UTF-8 are `invalid_path`; a segment over 255 bytes is
//! `name_too_long`; names starting with `.fvfs-put.` (uploads in progress) are refused.
//!
//! Invariant: an [`ApiPath`] holds only plain names (no `/`, no `.`/`..`, no control
//! bytes), so walking it from the root can never leave the filesystem's namespace.

use crate::error::ApiError;
use fvfs_types::NAME_MAX;
use fvfs_vfs::UPLOAD_PREFIX;
use percent_encoding::percent_decode_str;

/// A normalised path: its components from the root (empty = the root).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiPath {
    comps: Vec<String>,
}

impl ApiPath {
    /// Parses the still percent-encoded rest of a URL.
    pub fn from_url(raw: &str) -> Result<ApiPath, ApiError> {
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        let s = String::from_utf8(bytes)
            .map_err(|_| ApiError::invalid_path("the path is not valid UTF-8"))?;
        Self::parse(&s)
    }

    /// Parses a plain (not percent-encoded) path, as given in JSON bodies.
    pub fn parse(s: &str) -> Result<ApiPath, ApiError> {
        let mut comps = Vec::new();
        for seg in s.split('/') {
            if seg.is_empty() {
                continue;
            }
            check_name(seg)?;
            comps.push(seg.to_string());
        }
        Ok(ApiPath { comps })
    }

    pub fn components(&self) -> &[String] {
        &self.comps
    }

    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    /// The parent's components and the last name; None for the root.
    pub fn split_last(&self) -> Option<(&[String], &str)> {
        let (last, parent) = self.comps.split_last()?;
        Some((parent, last.as_str()))
    }

    /// A child path.
    pub fn join(&self, name: &str) -> ApiPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_string());
        ApiPath { comps }
    }

    /// The normalised path as shown in answers: `/` + components joined by `/`.
    pub fn display(&self) -> String {
        format!("/{}", self.comps.join("/"))
    }
}

impl std::fmt::Display for ApiPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// Checks one path segment.
pub fn check_name(seg: &str) -> Result<(), ApiError> {
    if seg == "." || seg == ".." {
        return Err(ApiError::invalid_path(
            "`.` and `..` are not allowed in paths",
        ));
    }
    if seg.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(ApiError::invalid_path(
            "control characters are not allowed in paths",
        ));
    }
    if seg.len() > NAME_MAX {
        return Err(ApiError::name_too_long(format!(
            "a path segment is over {NAME_MAX} bytes"
        )));
    }
    if is_hidden(seg) {
        return Err(ApiError::invalid_path(format!(
            "names starting with {UPLOAD_PREFIX} are reserved"
        )));
    }
    Ok(())
}

/// Names the API never shows (uploads in progress).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with(UPLOAD_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_types::api::ErrorCode;

    fn code(raw: &str) -> ErrorCode {
        ApiPath::from_url(raw).unwrap_err().code
    }

    #[test]
    fn normalises() {
        let p = ApiPath::from_url("a//b/%20c/").unwrap();
        assert_eq!(p.components(), ["a", "b", " c"]);
        assert_eq!(p.display(), "/a/b/ c");
        assert!(ApiPath::from_url("").unwrap().is_root());
        assert!(ApiPath::from_url("///").unwrap().is_root());
        assert_eq!(
            ApiPath::from_url("%C3%A9t%C3%A9").unwrap().display(),
            "/été"
        );
        // Decoded once only: %252e is a literal "%2e" name.
        assert_eq!(
            ApiPath::from_url("%252e%252e").unwrap().display(),
            "/%2e%2e"
        );
        assert_eq!(ApiPath::from_url("a%2Fb").unwrap().components(), ["a", "b"]);
        assert_eq!(ApiPath::from_url("a\\b").unwrap().components(), ["a\\b"]);
        assert_eq!(ApiPath::from_url("...").unwrap().components(), ["..."]);
    }

    #[test]
    fn refuses_traversal_and_bad_bytes() {
        for raw in [
            "..",
            "a/../../etc",
            "%2e%2e",
            "%2E%2E/etc/passwd",
            "a/%2F..%2F/b",
            "x/%2e",
            ".",
            "./a",
            "a/..",
            "%00",
            "a%00b",
            "a%0ab",
            "a%7f",
            "%ff",
            "a/%c3%28",
            ".fvfs-put.123",
            "d/.fvfs-put.x",
        ] {
            assert_eq!(code(raw), ErrorCode::InvalidPath, "{raw}");
        }
        let long = "x".repeat(256);
        assert_eq!(code(&long), ErrorCode::NameTooLong);
        assert!(ApiPath::from_url(&"x".repeat(255)).is_ok());
        assert_eq!(
            ApiPath::parse("/a/../b").unwrap_err().code,
            ErrorCode::InvalidPath
        );
    }

    #[test]
    fn split_and_join() {
        let p = ApiPath::parse("/a/b").unwrap();
        let (parent, name) = p.split_last().unwrap();
        assert_eq!(parent, ["a"]);
        assert_eq!(name, "b");
        assert_eq!(p.join("c").display(), "/a/b/c");
        assert!(ApiPath::default().split_last().is_none());
    }
}
