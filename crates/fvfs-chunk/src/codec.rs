//! Block codec: plain bytes ⇄ stored bytes, and the content id.
//!
//! Invariants: a block's id is BLAKE3 of its plain bytes; [`decode_block`] never
//! returns bytes that do not hash to the id it was given; a zstd-stored block is one
//! zstd frame and is only chosen when strictly smaller than the plain bytes (a large
//! block is compressed only if three samples of it compress, see [`worth_compressing`]);
//! decompression never allocates more than [`MAX_BLOCK_SIZE`].

use bytes::Bytes;
use fvfs_types::{BlockId, Codec, Compression};

use crate::error::ChunkError;

/// Largest plain block this crate stores or decodes (FastCDC v2020's max cut).
pub const MAX_BLOCK_SIZE: usize = 16 << 20;
/// zstd level used for new blocks: fast, most of the ratio of the default.
pub const ZSTD_LEVEL: i32 = 1;

/// A block ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBlock {
    pub id: BlockId,
    pub codec: Codec,
    /// Plain size in bytes.
    pub size: u32,
    /// The bytes to store (plain for [`Codec::Raw`], a zstd frame for [`Codec::Zstd`]).
    pub stored: Bytes,
}

/// The content id of plain bytes.
pub fn block_id(plain: &[u8]) -> BlockId {
    BlockId(*blake3::hash(plain).as_bytes())
}

/// Bytes of each of the three samples [`worth_compressing`] tries.
const SAMPLE: usize = 16 << 10;

/// Whether compressing the whole block is worth trying. A block larger than four
/// samples is judged by compressing three of them (its start, middle and end): media,
/// archives and encrypted data, most of a personal archive's bytes, then cost a 48 KiB
/// trial instead of a wasted compression of the whole block (btrfs and ZFS decide the
/// same way). A block that compresses only in its unsampled parts is stored plain: a
/// small loss of ratio, never of data.
fn worth_compressing(plain: &[u8]) -> bool {
    if plain.len() <= 4 * SAMPLE {
        return true;
    }
    let mid = plain.len() / 2 - SAMPLE / 2;
    let mut sample = Vec::with_capacity(3 * SAMPLE);
    sample.extend_from_slice(&plain[..SAMPLE]);
    sample.extend_from_slice(&plain[mid..mid + SAMPLE]);
    sample.extend_from_slice(&plain[plain.len() - SAMPLE..]);
    // At least 3 % saved on the samples.
    compress_block(&sample).is_ok_and(|f| f.len() * 100 < sample.len() * 97)
}

thread_local! {
    /// One compression context per thread: creating one per block (ZSTD_createCCtx)
    /// showed in the write path's profile.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `zstd::bulk::compress(plain, ZSTD_LEVEL)` with this thread's reused context.
fn compress_block(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("set above").compress(plain)
    })
}

/// Computes the id and the stored form of `plain` (at most [`MAX_BLOCK_SIZE`] bytes;
/// larger input is a caller bug: its `size` saturates).
pub fn encode_block(plain: &[u8], compression: Compression) -> EncodedBlock {
    debug_assert!(plain.len() <= MAX_BLOCK_SIZE);
    let id = block_id(plain);
    let size = u32::try_from(plain.len()).unwrap_or(u32::MAX);
    if compression == Compression::Zstd && worth_compressing(plain) {
        if let Ok(frame) = compress_block(plain) {
            if frame.len() < plain.len() {
                return EncodedBlock {
                    id,
                    codec: Codec::Zstd,
                    size,
                    stored: Bytes::from(frame),
                };
            }
        }
    }
    EncodedBlock {
        id,
        codec: Codec::Raw,
        size,
        stored: Bytes::copy_from_slice(plain),
    }
}

/// The stored bytes of `plain` in a given codec (a zstd frame even when not smaller):
/// re-creates a copy of an existing block for repair or promotion.
pub fn encode_as(plain: &[u8], codec: Codec) -> Bytes {
    match codec {
        Codec::Raw => Bytes::copy_from_slice(plain),
        Codec::Zstd => match compress_block(plain) {
            Ok(frame) => Bytes::from(frame),
            Err(_) => Bytes::copy_from_slice(plain),
        },
    }
}

/// As [`decode_block`], for bytes already in a `Bytes`: a raw block is verified and
/// returned as it is, without a copy.
pub fn decode_block_bytes(id: &BlockId, codec: Codec, stored: Bytes) -> Result<Bytes, ChunkError> {
    match codec {
        Codec::Raw => {
            if stored.len() > MAX_BLOCK_SIZE || block_id(&stored) != *id {
                return Err(ChunkError::Corrupt { id: *id });
            }
            Ok(stored)
        }
        Codec::Zstd => decode_block(id, codec, &stored),
    }
}

/// Decodes stored bytes and verifies them against `id`. Any mismatch, undecodable
/// frame or oversize content is [`ChunkError::Corrupt`].
pub fn decode_block(id: &BlockId, codec: Codec, stored: &[u8]) -> Result<Bytes, ChunkError> {
    let corrupt = || ChunkError::Corrupt { id: *id };
    let plain = match codec {
        Codec::Raw => {
            if stored.len() > MAX_BLOCK_SIZE {
                return Err(corrupt());
            }
            Bytes::copy_from_slice(stored)
        }
        Codec::Zstd => {
            // The frame header carries the content size (bulk::compress writes it);
            // use it to allocate exactly, never above the cap.
            let cap = match zstd::zstd_safe::get_frame_content_size(stored) {
                Ok(Some(n)) if n <= MAX_BLOCK_SIZE as u64 => n as usize,
                Ok(None) => MAX_BLOCK_SIZE,
                _ => return Err(corrupt()),
            };
            Bytes::from(zstd::bulk::decompress(stored, cap).map_err(|_| corrupt())?)
        }
    };
    if block_id(&plain) != *id {
        return Err(corrupt());
    }
    Ok(plain)
}

/// zstd level of [`compress_bytes`]: whole objects written rarely (metadata backups),
/// where ratio matters more than speed.
pub const OBJECT_ZSTD_LEVEL: i32 = 3;

/// Compresses arbitrary bytes (not a block: no id) into one zstd frame that records its
/// content size. For objects such as metadata backups; read back with
/// [`decompress_bytes`].
pub fn compress_bytes(plain: &[u8]) -> Result<Vec<u8>, ChunkError> {
    zstd::bulk::compress(plain, OBJECT_ZSTD_LEVEL)
        .map_err(|e| ChunkError::io("zstd compression", e))
}

/// [`compress_bytes`] from file `src` into file `dst`, streamed (memory stays at the
/// encoder's buffers whatever the size): one frame recording its content size, which
/// [`decompress_bytes`] reads back. Returns the bytes written to `dst`.
pub fn compress_file(src: &std::path::Path, dst: &std::path::Path) -> Result<u64, ChunkError> {
    let err = |what: &str, e| ChunkError::io(format!("zstd compression ({what})"), e);
    let mut input = std::fs::File::open(src).map_err(|e| err("opening the source", e))?;
    let len = input
        .metadata()
        .map_err(|e| err("sizing the source", e))?
        .len();
    let out = std::fs::File::create(dst).map_err(|e| err("creating the output", e))?;
    let mut enc = zstd::stream::Encoder::new(std::io::BufWriter::new(out), OBJECT_ZSTD_LEVEL)
        .map_err(|e| err("starting", e))?;
    enc.include_contentsize(true)
        .map_err(|e| err("starting", e))?;
    enc.set_pledged_src_size(Some(len))
        .map_err(|e| err("starting", e))?;
    std::io::copy(&mut input, &mut enc).map_err(|e| err("writing", e))?;
    let out = enc.finish().map_err(|e| err("finishing", e))?;
    let file = out
        .into_inner()
        .map_err(|e| err("writing", e.into_error()))?;
    file.sync_all().map_err(|e| err("syncing", e))?;
    Ok(file
        .metadata()
        .map_err(|e| err("sizing the output", e))?
        .len())
}

/// Decompresses one zstd frame written by [`compress_bytes`], refusing (without
/// allocating it) content larger than `limit` bytes. A malformed frame or one over the
/// limit is an [`ChunkError::Io`] of kind `InvalidData`.
pub fn decompress_bytes(stored: &[u8], limit: u64) -> Result<Vec<u8>, ChunkError> {
    use std::io::Read;
    let invalid = |why: String| {
        ChunkError::io(
            "zstd decompression",
            std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        )
    };
    let hint = match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n > limit => {
            return Err(invalid(format!(
                "content of {n} bytes exceeds the {limit} byte limit"
            )))
        }
        Ok(Some(n)) => n,
        Ok(None) => 0,
        Err(_) => return Err(invalid("not a zstd frame".into())),
    };
    let decoder = zstd::stream::read::Decoder::new(stored)
        .map_err(|e| ChunkError::io("zstd decompression", e))?;
    // Read at most one byte past the limit, so a frame that lied about its size is caught
    // without unbounded allocation.
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ChunkError::io("zstd decompression", e))?;
    if out.len() as u64 > limit {
        return Err(invalid(format!("content exceeds the {limit} byte limit")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_round_trip_and_limit() {
        let plain = text(300_000);
        let z = compress_bytes(&plain).expect("compress");
        assert!(z.len() < plain.len());
        assert_eq!(decompress_bytes(&z, 300_000).expect("decompress"), plain);
        assert!(decompress_bytes(&z, 299_999).is_err(), "over the limit");
        assert!(
            decompress_bytes(&plain[..1000], 1 << 20).is_err(),
            "not zstd"
        );
        assert!(
            decompress_bytes(&z[..z.len() / 2], 1 << 20).is_err(),
            "truncated"
        );
        let empty = compress_bytes(&[]).expect("empty");
        assert!(decompress_bytes(&empty, 0).expect("empty").is_empty());
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"abcdefgh"[(i / 7) % 8]).collect()
    }

    #[test]
    fn round_trip_both_codecs() {
        let plain = text(100_000);
        let z = encode_block(&plain, Compression::Zstd);
        assert_eq!(z.codec, Codec::Zstd);
        assert!(z.stored.len() < plain.len());
        assert_eq!(z.size, 100_000);
        assert_eq!(z.id, block_id(&plain));
        assert_eq!(
            decode_block(&z.id, z.codec, &z.stored).expect("zstd"),
            plain
        );

        let r = encode_block(&plain, Compression::None);
        assert_eq!(r.codec, Codec::Raw);
        assert_eq!(r.id, z.id, "id does not depend on the codec");
        assert_eq!(decode_block(&r.id, r.codec, &r.stored).expect("raw"), plain);
    }

    #[test]
    fn decoding_from_bytes_verifies_and_shares_a_raw_block() {
        let plain = text(100_000);
        let r = encode_block(&plain, Compression::None);
        let stored = Bytes::copy_from_slice(&r.stored);
        let out = decode_block_bytes(&r.id, r.codec, stored.clone()).expect("raw");
        assert_eq!(out, plain);
        assert_eq!(out.as_ptr(), stored.as_ptr(), "no copy");
        let mut bad = stored.to_vec();
        bad[500] ^= 1;
        assert!(matches!(
            decode_block_bytes(&r.id, r.codec, Bytes::from(bad)),
            Err(ChunkError::Corrupt { .. })
        ));
        let z = encode_block(&plain, Compression::Zstd);
        let zs = Bytes::copy_from_slice(&z.stored);
        assert_eq!(decode_block_bytes(&z.id, z.codec, zs).expect("zstd"), plain);
    }

    #[test]
    fn incompressible_is_raw() {
        let plain: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut rnd = plain.clone();
        for (i, b) in rnd.iter_mut().enumerate() {
            *b ^= blake3::hash(&(i as u64).to_le_bytes()).as_bytes()[0];
        }
        let e = encode_block(&rnd, Compression::Zstd);
        assert_eq!(e.codec, Codec::Raw);
        assert_eq!(&e.stored[..], &rnd[..]);
        let empty = encode_block(&[], Compression::Zstd);
        assert_eq!(empty.codec, Codec::Raw);
        assert_eq!(
            decode_block(&empty.id, empty.codec, &empty.stored)
                .expect("empty")
                .len(),
            0
        );
    }

    fn random(n: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut v);
        v
    }

    #[test]
    fn large_blocks_are_judged_by_samples() {
        let mb = 1 << 20;
        // Random: the samples do not compress, so the block is stored plain.
        let r = random(mb, 1);
        assert!(!worth_compressing(&r));
        assert_eq!(encode_block(&r, Compression::Zstd).codec, Codec::Raw);
        // Text compresses.
        let t = text(mb);
        assert!(worth_compressing(&t));
        assert_eq!(encode_block(&t, Compression::Zstd).codec, Codec::Zstd);
        // Compressible only between the samples: stored plain (the documented loss).
        let mut mixed = r.clone();
        mixed[100_000..400_000].copy_from_slice(&text(300_000));
        assert_eq!(encode_block(&mixed, Compression::Zstd).codec, Codec::Raw);
        // Compressible samples over a random rest: tried, and kept if smaller.
        let mut edges = r.clone();
        edges[..SAMPLE].copy_from_slice(&text(SAMPLE));
        edges[mb / 2 - SAMPLE / 2..mb / 2 + SAMPLE / 2].copy_from_slice(&text(SAMPLE));
        edges[mb - SAMPLE..].copy_from_slice(&text(SAMPLE));
        assert!(worth_compressing(&edges));
        let e = encode_block(&edges, Compression::Zstd);
        assert_eq!(e.codec, Codec::Zstd);
        assert_eq!(
            decode_block(&e.id, e.codec, &e.stored).expect("decode"),
            edges
        );
        // Small blocks are always tried.
        assert!(worth_compressing(&random(4 * SAMPLE, 2)));
    }

    #[test]
    fn corruption_is_detected() {
        let plain = text(50_000);
        for compression in [Compression::Zstd, Compression::None] {
            let e = encode_block(&plain, compression);
            let mut bad = e.stored.to_vec();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x40;
            assert!(matches!(
                decode_block(&e.id, e.codec, &bad),
                Err(ChunkError::Corrupt { id }) if id == e.id
            ));
            // Truncated.
            assert!(decode_block(&e.id, e.codec, &e.stored[..10]).is_err());
            // Wrong codec.
            let other = if e.codec == Codec::Raw {
                Codec::Zstd
            } else {
                Codec::Raw
            };
            assert!(decode_block(&e.id, other, &e.stored).is_err());
        }
        // A frame claiming more than the cap is refused before allocating.
        let big = zstd::bulk::compress(&vec![0u8; MAX_BLOCK_SIZE + 1], 1).expect("zstd");
        let id = block_id(&[]);
        assert!(matches!(
            decode_block(&id, Codec::Zstd, &big),
            Err(ChunkError::Corrupt { .. })
        ));
    }
}
