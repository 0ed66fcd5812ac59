//! The query language (see `fvfs_music::search`) parsed into terms, and the terms into a
//! tantivy query.
//!
//! Owns: parsing and matching rules. Invariants:
//! - Words are separated by whitespace; `field:word` restricts a word to a field (a known
//!   name, else the query is bad); a word is analysed like indexed text, and each of its
//!   tokens ("AC/DC" gives two) is a [`Clause`] that must match.
//! - A clause matches a document when one of the field's words is the clause's token, or
//!   starts with it, or is within [`fuzzy_distance`] edits of it (a transposition is one
//!   edit). Scores: BM25 of the exact word plus [`PREFIX_SCORE`] for a prefix match plus
//!   [`FUZZY_SCORE`] for a fuzzy match; an exact match also is a prefix and a fuzzy match,
//!   so for one clause exact > prefix > fuzzy only.
//! - A query without a clause is bad.

use fvfs_music::search::SearchError;
use tantivy::query::{BooleanQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

use crate::schema::{Fields, TextField};

/// What a clause scores for an indexed word it is a prefix of.
pub(crate) const PREFIX_SCORE: f32 = 1.0;
/// What a clause scores for an indexed word within its edit distance.
pub(crate) const FUZZY_SCORE: f32 = 0.5;

/// One token that must match, in one field or (None) in any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Clause {
    pub(crate) field: Option<TextField>,
    pub(crate) token: String,
}

/// The edits a token may be away from an indexed word: none under 4 characters (every
/// short word is a typo of many others), 1 from 4, 2 from 8; none for a token with a digit
/// (1997 is no typo of 1998).
pub(crate) fn fuzzy_distance(token: &str) -> u8 {
    if token.chars().any(|c| c.is_ascii_digit()) {
        return 0;
    }
    match token.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn bad(query: &str, reason: impl Into<String>) -> SearchError {
    SearchError::BadQuery {
        query: query.to_string(),
        reason: reason.into(),
    }
}

/// The clauses of `query`, in order, without repeats.
pub(crate) fn parse(query: &str, analyzer: &mut TextAnalyzer) -> Result<Vec<Clause>, SearchError> {
    let mut clauses: Vec<Clause> = Vec::new();
    for word in query.split_whitespace() {
        let (field, text) = match word.split_once(':') {
            Some((name, text)) => match TextField::parse(name) {
                Some(f) => (Some(f), text),
                None => {
                    let known: Vec<_> = TextField::ALL.iter().map(|f| f.name()).collect();
                    return Err(bad(
                        query,
                        format!("unknown field {name:?} (known: {})", known.join(", ")),
                    ));
                }
            },
            None => (None, word),
        };
        let mut stream = analyzer.token_stream(text);
        while stream.advance() {
            let c = Clause {
                field,
                token: stream.token().text.clone(),
            };
            if !clauses.contains(&c) {
                clauses.push(c);
            }
        }
    }
    if clauses.is_empty() {
        return Err(bad(query, "nothing to search for"));
    }
    Ok(clauses)
}

/// The query every clause of which must match.
pub(crate) fn build(clauses: &[Clause], fields: &Fields) -> Box<dyn Query> {
    let must = clauses
        .iter()
        .map(|c| {
            let field = c.field.map_or(fields.all, |f| fields.text(f));
            (Occur::Must, clause_query(field, &c.token))
        })
        .collect();
    Box::new(BooleanQuery::new(must))
}

fn clause_query(field: Field, token: &str) -> Box<dyn Query> {
    let term = Term::from_field_text(field, token);
    let mut should: Vec<(Occur, Box<dyn Query>)> = vec![
        (
            Occur::Should,
            Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
        ),
        (
            Occur::Should,
            Box::new(ConstScoreQuery::new(
                Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, false)),
                PREFIX_SCORE,
            )),
        ),
    ];
    let distance = fuzzy_distance(token);
    if distance > 0 {
        should.push((
            Occur::Should,
            Box::new(ConstScoreQuery::new(
                Box::new(FuzzyTermQuery::new(term, distance, true)),
                FUZZY_SCORE,
            )),
        ));
    }
    Box::new(BooleanQuery::new(should))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::analyzer;

    fn clauses(q: &str) -> Result<Vec<(Option<&'static str>, String)>, SearchError> {
        Ok(parse(q, &mut analyzer())?
            .into_iter()
            .map(|c| (c.field.map(|f| f.name()), c.token))
            .collect())
    }

    #[test]
    fn words_fields_and_tokens() {
        assert_eq!(
            clauses("  Björk artist:AC/DC  year:1997 björk").unwrap(),
            [
                (None, "bjork".to_string()),
                (Some("artist"), "ac".to_string()),
                (Some("artist"), "dc".to_string()),
                (Some("year"), "1997".to_string()),
            ]
        );
    }

    #[test]
    fn bad_queries() {
        for q in ["", "   ", "-- !!", "composer:bach", "artist:", ":x"] {
            assert!(
                matches!(clauses(q), Err(SearchError::BadQuery { .. })),
                "{q:?} should be bad"
            );
        }
    }

    #[test]
    fn distance_grows_with_length() {
        assert_eq!(fuzzy_distance("abc"), 0);
        assert_eq!(fuzzy_distance("abcd"), 1);
        assert_eq!(fuzzy_distance("abcdefg"), 1);
        assert_eq!(fuzzy_distance("abcdefgh"), 2);
        assert_eq!(fuzzy_distance("déjà"), 1);
        assert_eq!(fuzzy_distance("1997"), 0);
        assert_eq!(fuzzy_distance("remix2000"), 0);
    }
}
