//! Benchmark of the search index at scale (not run by CI): builds a synthetic music store
//! of N tracks (a real SQLite store, `music_track_put`), syncs a fresh index from it (full
//! sync), syncs again (no change), changes 1% of the tracks and syncs (incremental), then
//! times a few hundred varied queries and prints p50/p95/p99/max by kind.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-search cargo run --release -p fvfs-search --example bench -- \
//!     --tracks 1000000 --dir /tmp/fvfs-search-bench [--queries 400] [--limit 100]
//! ```
//! The store in `--dir` is kept and topped up to `--tracks` (so a re-run skips building it);
//! the index is rebuilt on every run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fvfs_meta::{MusicStore, MusicTrack};
use fvfs_music::search::TrackSearch;
use fvfs_search::SearchIndex;

struct Args {
    tracks: u64,
    dir: PathBuf,
    queries: usize,
    limit: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        tracks: 1_000_000,
        dir: std::env::temp_dir().join("fvfs-search-bench"),
        queries: 400,
        limit: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--tracks" => a.tracks = value.parse().map_err(bad)?,
            "--dir" => a.dir = PathBuf::from(&value),
            "--queries" => a.queries = value.parse().map_err(bad)?,
            "--limit" => a.limit = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

/// xorshift64*: a deterministic generator, so every run builds the same library.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed towards 0 (a rough Zipf): popular words and artists come up often.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as usize
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ren", "tor", "sha", "vel", "dun", "bri", "ex", "al", "on", "ber", "ti",
    "qua", "zor", "fen", "gal", "mor", "sun", "ra", "ne", "vo", "lin", "dra", "ko", "sel", "um",
    "pa", "wen", "gor", "li", "ste", "an", "cy", "hol", "jo", "mar", "nis", "ul",
];
const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Jazz",
    "Blues",
    "Electronic",
    "Hip Hop",
    "Classical",
    "Folk",
    "Metal",
    "Heavy Metal",
    "Punk",
    "Soul",
    "Funk",
    "Reggae",
    "Country",
    "Ambient",
    "Techno",
    "House",
    "Trip Hop",
    "Drum and Bass",
    "Indie Rock",
    "Alternative",
    "Grunge",
    "Disco",
    "Gospel",
    "Latin",
    "Bossa Nova",
    "Chanson",
    "Krautrock",
    "Post-Rock",
    "Shoegaze",
    "Synthpop",
    "New Wave",
    "Ska",
    "Dub",
    "Garage",
    "Trance",
    "Downtempo",
    "World",
    "Soundtrack",
];
const FORMATS: &[&str] = &["flac", "mp3", "ogg", "opus", "m4a"];

struct Vocab {
    words: Vec<String>,
    artists: Vec<String>,
}

fn vocab(rng: &mut Rng) -> Vocab {
    let accent = |c: char| match c {
        'e' => 'é',
        'o' => 'ö',
        'a' => 'á',
        'u' => 'ü',
        c => c,
    };
    let mut words = Vec::with_capacity(30_000);
    while words.len() < 30_000 {
        let n = 1 + rng.below(4);
        let mut w: String = (0..n)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
            .collect();
        if rng.below(20) == 0 {
            w = w.chars().map(accent).collect();
        }
        let mut c = w.chars();
        let cap: String = c
            .next()
            .into_iter()
            .flat_map(char::to_uppercase)
            .chain(c)
            .collect();
        words.push(cap);
    }
    let artists = (0..50_000)
        .map(|_| {
            let n = 1 + rng.below(3);
            (0..n)
                .map(|_| words[rng.below(words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Vocab { words, artists }
}

fn phrase(rng: &mut Rng, v: &Vocab, max: usize) -> String {
    let n = 1 + rng.below(max);
    (0..n)
        .map(|_| v.words[rng.skewed(v.words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn synthetic(i: u64, v: &Vocab) -> MusicTrack {
    let album_no = i / 12;
    let mut arng = Rng(album_no.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let artist = v.artists[arng.skewed(v.artists.len())].clone();
    let album = phrase(&mut arng, v, 3);
    let year = 1950 + arng.below(75) as u32;
    let genre = GENRES[arng.below(GENRES.len())].to_string();
    let format = FORMATS[arng.below(FORMATS.len())].to_string();
    let mut rng = Rng(i.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    let title = phrase(&mut rng, v, 4);
    let no = (i % 12) as u32 + 1;
    let extra = if rng.below(3) == 0 {
        vec![("label".to_string(), phrase(&mut rng, v, 2) + " Records")]
    } else {
        Vec::new()
    };
    MusicTrack {
        origin: "bench".into(),
        path: format!("{artist}/{album} ({year})/{no:02} {title}.{format}"),
        size: 5_000_000 + i,
        mtime_ns: i as i64,
        format,
        title: Some(title),
        artist: Some(artist),
        album: Some(album),
        genre: Some(genre),
        year: Some(year),
        track: Some(no),
        extra,
        scanned: 1,
        ..MusicTrack::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A query of `kind` built from a real track, so most queries find something.
fn query(kind: &str, t: &MusicTrack, rng: &mut Rng) -> String {
    let words = |s: &Option<String>| -> Vec<String> {
        s.as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_lowercase)
            .collect()
    };
    let pick = |ws: &[String], rng: &mut Rng| ws[rng.below(ws.len())].clone();
    let title = words(&t.title);
    let artist = words(&t.artist);
    let album = words(&t.album);
    match kind {
        "exact" => pick(&title, rng),
        "prefix" => {
            let w: Vec<char> = pick(&title, rng).chars().collect();
            let n = (3 + rng.below(3)).min(w.len());
            w[..n].iter().collect()
        }
        "short-prefix" => {
            let w: Vec<char> = pick(&artist, rng).chars().collect();
            w[..(1 + rng.below(2)).min(w.len())].iter().collect()
        }
        "fuzzy" => {
            let all: Vec<String> = title.iter().chain(&artist).cloned().collect();
            let mut w: Vec<char> = pick(&all, rng).chars().collect();
            let at = rng.below(w.len());
            w[at] = if w[at] == 'x' { 'q' } else { 'x' };
            w.into_iter().collect()
        }
        "two-words" => format!("{} {}", pick(&artist, rng), pick(&title, rng)),
        _ => match rng.below(4) {
            0 => format!("artist:{}", pick(&artist, rng)),
            1 => format!("album:{}", pick(&album, rng)),
            2 => format!("year:{} {}", t.year.unwrap_or(1999), pick(&title, rng)),
            _ => format!(
                "genre:{} format:{}",
                t.genre
                    .as_deref()
                    .unwrap_or("rock")
                    .split(' ')
                    .next()
                    .unwrap_or("rock"),
                t.format
            ),
        },
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    std::fs::create_dir_all(&a.dir)?;
    let url = format!("sqlite://{}", a.dir.join("meta.db").display());
    let meta = fvfs_meta::open(&url, true)?;
    let store: &dyn MusicStore = &*meta;
    let mut rng = Rng(0x5EED);
    let v = vocab(&mut rng);

    let have = store.music_track_count(None)?;
    if have < a.tracks {
        let t0 = Instant::now();
        for i in have..a.tracks {
            store.music_track_put(&synthetic(i, &v))?;
            if (i + 1) % 100_000 == 0 {
                eprintln!("  store: {} tracks, {:.0?}", i + 1, t0.elapsed());
            }
        }
        println!(
            "store: {} tracks put in {:.1?}",
            a.tracks - have,
            t0.elapsed()
        );
    }
    let total = store.music_track_count(None)?;

    let index_dir = a.dir.join("index");
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir)?;
    }
    let ix = SearchIndex::open(&index_dir)?;
    let t0 = Instant::now();
    let s = ix.sync(store)?;
    println!("full sync of {total} tracks: {:.1?} ({s:?})", t0.elapsed());
    let t0 = Instant::now();
    let s = ix.sync(store)?;
    println!("no-change sync: {:.1?} ({s:?})", t0.elapsed());

    // 1% retagged (a new stamp), spread over the whole store.
    let step = (total / (total / 100).max(1)).max(1);
    let mut changed = 0;
    for t in (0..total).step_by(step as usize) {
        if let Some(mut tr) = store.music_track_get(t + 1)? {
            tr.scanned += 1;
            tr.title = Some(format!("{} remastered", tr.title.unwrap_or_default()));
            store.music_track_put(&tr)?;
            changed += 1;
        }
    }
    let t0 = Instant::now();
    let s = ix.sync(store)?;
    println!(
        "incremental sync ({changed} retagged): {:.1?} ({s:?})",
        t0.elapsed()
    );
    let size: u64 = std::fs::read_dir(&index_dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("index size: {:.0} MiB", size as f64 / (1 << 20) as f64);

    let kinds = [
        "exact",
        "prefix",
        "short-prefix",
        "fuzzy",
        "two-words",
        "field",
    ];
    let mut queries = Vec::new();
    let mut qrng = Rng(0xC0FFEE);
    while queries.len() < a.queries {
        let id = 1 + qrng.below(total as usize) as u64;
        let Some(t) = store.music_track_get(id)? else {
            continue;
        };
        let kind = kinds[queries.len() % kinds.len()];
        queries.push((kind, query(kind, &t, &mut qrng)));
    }
    // Warm the page cache and tantivy's caches once, as a running daemon would be.
    for (_, q) in &queries {
        ix.search(q, a.limit)?;
    }
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut all = Vec::new();
    let mut hits = 0usize;
    let mut slowest = (Duration::ZERO, String::new());
    for (kind, q) in &queries {
        let t0 = Instant::now();
        let found = ix.search(q, a.limit)?;
        let d = t0.elapsed();
        hits += found.len();
        by_kind.entry(kind).or_default().push(d);
        all.push(d);
        if d > slowest.0 {
            slowest = (d, q.clone());
        }
    }
    println!(
        "{} queries, limit {}, {:.1} hits on average",
        queries.len(),
        a.limit,
        hits as f64 / queries.len() as f64
    );
    let report = |name: &str, ds: &mut Vec<Duration>| {
        ds.sort();
        println!(
            "  {name:<13} n={:<4} p50 {:>9}  p95 {:>9}  p99 {:>9}  max {:>9}",
            ds.len(),
            ms(percentile(ds, 0.5)),
            ms(percentile(ds, 0.95)),
            ms(percentile(ds, 0.99)),
            ms(*ds.last().unwrap_or(&Duration::ZERO)),
        );
    };
    for (kind, ds) in by_kind.iter_mut() {
        report(kind, ds);
    }
    report("all", &mut all);
    println!("slowest: {:?} in {}", slowest.1, ms(slowest.0));
    Ok(())
}
