# bench/music_gen.py: the synthetic library of bench/music.sh. Owns its layout: N
# placeholder "audio" files (a few unique bytes each: tags only, no audio) under
# ROOT/files in an artist/album/track shape, three large files of random bytes for the
# sequential reads, and a beets library (ROOT/library.db) holding their tags, which
# `fvfsd music import-beets` reads. Deterministic for a given N (seeded).
#   python3 bench/music_gen.py ROOT N BIG_MIB
import os
import random
import sqlite3
import sys
import time

root, total, big_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = os.path.join(root, "files")
rng = random.Random(11)

ASCII = """amber arrow autumn black blue bright broken burning city cold crystal dark dawn
deep desert diamond distant dream dust echo electric empty endless falling fire frozen
ghost glass golden gravity green grey heart heavy hidden hollow horizon iron jade last
light liquid lonely lost lunar machine magnetic midnight mirror moon neon night northern
ocean orange paper pale phantom purple quiet radio rain red river rose rust salt satellite
secret shadow silent silver sky slow solar southern static steel stone storm street summer
sun thunder tide velvet violet wild winter wire wolf wooden yellow young zero""".split()
# Part of the names are not ASCII (accents, Nordic letters, CJK, Cyrillic).
OTHER = """Björk Sigur Rós Ágætis Mötley Motörhead Hüsker Dü Café Tango Señor Niño Ærø Øresund
Ólafur Jóga Håkan Göteborg Zürich Éclair Crème Brûlée Déjà Vu Fête Noël Garçon Łódź Kraków
Dvořák Škoda Ünïcode 東京 大阪 夜明け 青い 空 森 Москва Звезда Ночь Ветер Αθήνα Θάλασσα""".split()
GENRES = ["Rock", "Pop", "Jazz", "Electronic", "Hip-Hop", "Classical", "Folk", "Metal",
          "Ambient", "Soul", "Reggae", "Blues", "Punk", "Indie", "Chanson"]
COMMON_ALBUMS = ["Greatest Hits", "Live", "Best Of", "Demos", "Untitled", "Remixes"]


def word():
    return rng.choice(OTHER) if rng.random() < 0.15 else rng.choice(ASCII).capitalize()


def phrase(lo, hi):
    return " ".join(word() for _ in range(rng.randint(lo, hi)))


def safe(name):
    return name.replace("/", "_")


t0 = time.time()
con = sqlite3.connect(os.path.join(root, "library.db.tmp"))
con.executescript("""
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS albums;
CREATE TABLE albums (id INTEGER PRIMARY KEY, album TEXT, albumartist TEXT,
    albumtype TEXT, label TEXT, year INTEGER);
CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, album_id INTEGER, title TEXT,
    artist TEXT, albumartist TEXT, album TEXT, genre TEXT, year INTEGER, track INTEGER,
    tracktotal INTEGER, disc INTEGER, length REAL, bitrate INTEGER, samplerate INTEGER,
    format TEXT, comp INTEGER);
""")
items, albums = [], []
artists_seen = set()
n = 0
album_id = 0
made_dirs = 0
while n < total:
    artist = phrase(1, 3)
    while artist in artists_seen:
        artist = phrase(1, 3) + " " + str(rng.randint(2, 99))
    artists_seen.add(artist)
    genre = rng.choice(GENRES)
    for _ in range(rng.randint(1, 9)):
        if n >= total:
            break
        album_id += 1
        album = rng.choice(COMMON_ALBUMS) if rng.random() < 0.05 else phrase(1, 4)
        year = rng.randint(1960, 2025)
        adir = os.path.join(files, safe(artist), safe(f"{album} ({year}) {album_id}"))
        os.makedirs(adir, exist_ok=True)
        made_dirs += 1
        albums.append((album_id, album, artist, "album", "Label " + word(), year))
        ntracks = min(rng.randint(6, 14), total - n)
        for t in range(1, ntracks + 1):
            n += 1
            title = phrase(1, 5)
            p = os.path.join(adir, safe(f"{t:02d} {title}.flac"))
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, f"fvfs bench track {n}\n".encode())
            os.close(fd)
            items.append((n, os.fsencode(p), album_id, title, artist, artist, album, genre,
                          year, t, ntracks, 1, rng.uniform(90, 420), 900000, 44100, "FLAC", 0))
        if len(items) >= 50000:
            con.executemany("INSERT INTO items VALUES (%s)" % ",".join("?" * 17), items)
            items.clear()
    if n and n % 100000 < 10:
        print(f"  {n} tracks, {time.time() - t0:.0f} s", flush=True)
# The large files (random bytes, named .flac: served raw, no overlay).
album_id += 1
bdir = os.path.join(files, "Bench Sequential", "Noise (2025)")
os.makedirs(bdir, exist_ok=True)
albums.append((album_id, "Noise", "Bench Sequential", "album", "Label Bench", 2025))
for k in range(1, 4):
    n += 1
    p = os.path.join(bdir, f"{k:02d} Noise {k}.flac")
    with open("/dev/urandom", "rb") as src, open(p, "wb") as dst:
        for _ in range(big_mib):
            dst.write(src.read(1 << 20))
    items.append((n, os.fsencode(p), album_id, f"Noise {k}", "Bench Sequential",
                  "Bench Sequential", "Noise", "Noise", 2025, k, 3, 1, 600.0, 900000, 44100,
                  "FLAC", 0))
con.executemany("INSERT INTO items VALUES (%s)" % ",".join("?" * 17), items)
con.executemany("INSERT INTO albums VALUES (?,?,?,?,?,?)", albums)
con.commit()
con.close()
os.replace(os.path.join(root, "library.db.tmp"), os.path.join(root, "library.db"))
print(f"{n} items ({len(artists_seen)} artists, {album_id} albums) in {time.time() - t0:.0f} s")
