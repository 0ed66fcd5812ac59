//! How a track's bytes split into cache pieces, and each piece's key.
//!
//! With a known audio span (FLAC, MP3: `MusicTrack::audio`) a file is `head ++ audio ++
//! tail`: the tags before the audio, the tag-free audio, the tags after it (ID3v1,
//! APE). The audio piece is keyed by the audio id, so a tag edit (which changes the head,
//! maybe the tail, and moves the audio) finds the audio cached under the same key; head
//! and tail are keyed by the file's quick id. Without a span the whole file is one piece
//! keyed by its quick id. Empty pieces are left out; the pieces cover `[0, size)` in
//! order, without gaps.

use fvfs_meta::MusicTrack;

/// What part of a file a piece is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceKind {
    Head,
    Audio,
    Tail,
    File,
}

impl PieceKind {
    fn tag(self) -> &'static [u8] {
        match self {
            PieceKind::Head => b"head",
            PieceKind::Audio => b"audio",
            PieceKind::Tail => b"tail",
            PieceKind::File => b"file",
        }
    }
}

/// A contiguous part of a track's file, cached under its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub kind: PieceKind,
    pub key: [u8; 32],
    /// Offset of the piece in the origin file.
    pub start: u64,
    pub len: u64,
}

fn key(kind: PieceKind, identity: &[u8; 32], start: u64, len: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"fvfs-music piece 1\0");
    h.update(kind.tag());
    h.update(identity);
    h.update(&start.to_le_bytes());
    h.update(&len.to_le_bytes());
    *h.finalize().as_bytes()
}

/// A file that is not a track (a folder's cover image) as one piece, keyed by an
/// identity the caller derives from what names and stamps it.
pub fn whole_file(identity: &[u8; 32], len: u64) -> Piece {
    Piece {
        kind: PieceKind::File,
        key: key(PieceKind::File, identity, 0, len),
        start: 0,
        len,
    }
}

/// The pieces of `t`'s file, in file order.
pub fn pieces(t: &MusicTrack) -> Vec<Piece> {
    let size = t.size;
    let span = t
        .audio
        .filter(|a| a.start.checked_add(a.len).is_some_and(|end| end <= size) && a.len > 0);
    let Some(a) = span else {
        return vec![Piece {
            kind: PieceKind::File,
            key: key(PieceKind::File, &t.quick_id, 0, size),
            start: 0,
            len: size,
        }];
    };
    let mut out = Vec::with_capacity(3);
    if a.start > 0 {
        out.push(Piece {
            kind: PieceKind::Head,
            key: key(PieceKind::Head, &t.quick_id, 0, a.start),
            start: 0,
            len: a.start,
        });
    }
    out.push(Piece {
        kind: PieceKind::Audio,
        // Only the audio id and the length: the offset moves with the tags.
        key: key(PieceKind::Audio, &a.id, 0, a.len),
        start: a.start,
        len: a.len,
    });
    let end = a.start + a.len;
    if end < size {
        out.push(Piece {
            kind: PieceKind::Tail,
            key: key(PieceKind::Tail, &t.quick_id, end, size - end),
            start: end,
            len: size - end,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_meta::AudioSpan;

    fn track(size: u64, audio: Option<AudioSpan>) -> MusicTrack {
        MusicTrack {
            size,
            quick_id: [7; 32],
            audio,
            ..MusicTrack::default()
        }
    }

    #[test]
    fn pieces_cover_the_file_in_order() {
        let span = AudioSpan {
            start: 100,
            len: 800,
            id: [1; 32],
        };
        let p = pieces(&track(1028, Some(span)));
        let kinds: Vec<_> = p.iter().map(|p| (p.kind, p.start, p.len)).collect();
        assert_eq!(
            kinds,
            vec![
                (PieceKind::Head, 0, 100),
                (PieceKind::Audio, 100, 800),
                (PieceKind::Tail, 900, 128)
            ]
        );
        let whole = pieces(&track(1028, None));
        assert_eq!(whole.len(), 1);
        assert_eq!(
            (whole[0].kind, whole[0].start, whole[0].len),
            (PieceKind::File, 0, 1028)
        );
    }

    #[test]
    fn a_tag_edit_keeps_the_audio_key_and_changes_the_head_key() {
        let before = track(
            1000,
            Some(AudioSpan {
                start: 100,
                len: 900,
                id: [1; 32],
            }),
        );
        let mut after = track(
            1300,
            Some(AudioSpan {
                start: 400,
                len: 900,
                id: [1; 32],
            }),
        );
        after.quick_id = [8; 32];
        let (b, a) = (pieces(&before), pieces(&after));
        assert_eq!(b[1].key, a[1].key);
        assert_ne!(b[0].key, a[0].key);
    }

    #[test]
    fn a_span_past_the_end_is_ignored() {
        let p = pieces(&track(
            50,
            Some(AudioSpan {
                start: 10,
                len: 100,
                id: [1; 32],
            }),
        ));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, PieceKind::File);
    }
}
