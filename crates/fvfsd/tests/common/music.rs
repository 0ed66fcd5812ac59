//! The music view's test library: real audio (ffmpeg-encoded, lofty-tagged) spread over
//! three origins — a local directory, an S3 server of its own (not the filesystem's
//! storage, so stopping it leaves the cache readable) and Debian's sshd over SFTP — and
//! a `fvfsd music mount` process serving the view.

#![allow(dead_code)]

use super::{is_mounted, Fixture};
use fvfs_testkit::audio::{make, make_with, truncated_copy, AudioFormat, FixtureTags, Signal};
use fvfs_testkit::{S3Server, SftpServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The view every test mounts: beets' default-like path with `%aunique`.
pub const TEMPLATE: &str = "$albumartist/$album%aunique{} ($year)/$track $title.$format";

pub fn tags(artist: &str, album: &str, year: u32, track: u32, title: &str) -> FixtureTags {
    FixtureTags {
        artist: Some(artist.into()),
        album_artist: Some(artist.into()),
        album: Some(album.into()),
        year: Some(year),
        track: Some(track),
        title: Some(title.into()),
        ..FixtureTags::default()
    }
}

pub struct Library {
    pub f: Fixture,
    /// Root of the local origin.
    pub local: tempfile::TempDir,
    pub s3dir: tempfile::TempDir,
    pub s3: S3Server,
    pub sftp: SftpServer,
    pub sftp_root: PathBuf,
    /// Where each file of the view came from: view path → file on disk.
    pub files: Vec<(String, PathBuf)>,
    child: Option<Child>,
    pub log: PathBuf,
}

fn write(dir: &Path, rel: &str, make_it: impl FnOnce(&Path) -> PathBuf) -> PathBuf {
    let d = dir.join(rel);
    std::fs::create_dir_all(&d).unwrap();
    make_it(&d)
}

impl Library {
    /// The library (None: skip, see `Fixture::new`): the files, the three origins
    /// registered and scanned, the view `artists` added.
    pub fn new() -> Option<Library> {
        let f = Fixture::new()?;
        let local = tempfile::tempdir().unwrap();
        let s3dir = tempfile::tempdir().unwrap();
        let s3 =
            f.rt.block_on(S3Server::start(s3dir.path(), "music"))
                .unwrap();
        let sftp = SftpServer::start().expect("sshd (Debian openssh-server) must start");
        let sftp_root = sftp.dir().join("music");
        std::fs::create_dir_all(&sftp_root).unwrap();
        let s3root = s3dir.path().join("music/lib");
        let mut files = Vec::new();

        // Local: Björk's album in FLAC and MP3 (non-ASCII names), with a cover.
        let cover = fvfs_testkit::audio::cover_jpeg(local.path()).unwrap();
        let mut hunter = tags("Björk", "Homogenic", 1997, 1, "Hunter");
        hunter.front_cover = Some(cover);
        let p = write(local.path(), "bjork", |d| {
            make_with(d, "01", AudioFormat::Flac, Signal::Noise, 20_000, &hunter)
                .unwrap()
                .path
        });
        files.push(("Björk/Homogenic (1997)/01 Hunter.flac".into(), p));
        let p = write(local.path(), "bjork", |d| {
            make(
                d,
                "02",
                AudioFormat::Mp3,
                &tags("Björk", "Homogenic", 1997, 2, "Jóga"),
            )
            .unwrap()
            .path
        });
        files.push(("Björk/Homogenic (1997)/02 Jóga.mp3".into(), p));
        // A file with no tags at all: "unknown" placeholders, title from its name.
        let p = write(local.path(), "misc", |d| {
            make(d, "untagged", AudioFormat::Vorbis, &FixtureTags::default())
                .unwrap()
                .path
        });
        files.push(("_/()/untagged.ogg".into(), p));
        // A truncated copy: indexed as unreadable, never shown.
        truncated_copy(
            &local.path().join("bjork/01.flac"),
            &local.path().join("misc/broken.flac"),
            200,
        )
        .unwrap();

        // S3: two albums both called "Greatest Hits" by one artist (%aunique), Opus
        // and M4A.
        let p = write(&s3root, "hits1", |d| {
            make(
                d,
                "01",
                AudioFormat::Opus,
                &tags("Queen", "Greatest Hits", 1981, 1, "Bohemian Rhapsody"),
            )
            .unwrap()
            .path
        });
        files.push((
            "Queen/Greatest Hits [1981] (1981)/01 Bohemian Rhapsody.opus".into(),
            p,
        ));
        let p = write(&s3root, "hits2", |d| {
            make(
                d,
                "01",
                AudioFormat::M4a,
                &tags("Queen", "Greatest Hits", 1991, 1, "A Kind of Magic"),
            )
            .unwrap()
            .path
        });
        files.push((
            "Queen/Greatest Hits [1991] (1991)/01 A Kind of Magic.m4a".into(),
            p,
        ));

        // SFTP: Sigur Rós in Vorbis and FLAC.
        let p = write(&sftp_root, "sigur", |d| {
            make(
                d,
                "01",
                AudioFormat::Vorbis,
                &tags("Sigur Rós", "Ágætis byrjun", 1999, 1, "Intro"),
            )
            .unwrap()
            .path
        });
        files.push(("Sigur Rós/Ágætis byrjun (1999)/01 Intro.ogg".into(), p));
        let p = write(&sftp_root, "sigur", |d| {
            make(
                d,
                "02",
                AudioFormat::Flac,
                &tags("Sigur Rós", "Ágætis byrjun", 1999, 2, "Svefn-g-englar"),
            )
            .unwrap()
            .path
        });
        files.push((
            "Sigur Rós/Ágætis byrjun (1999)/02 Svefn-g-englar.flac".into(),
            p,
        ));

        let log = f.dir.path().join("music.log");
        let lib = Library {
            f,
            local,
            s3dir,
            s3,
            sftp,
            sftp_root,
            files,
            child: None,
            log,
        };
        lib.f.ok(&[
            "music",
            "origin",
            "add",
            &format!("local={}", lib.local.path().display()),
        ]);
        lib.f.ok(&[
            "music",
            "origin",
            "add",
            &format!("cloud={}&priority=2", lib.s3_location("lib")),
        ]);
        lib.f.ok(&[
            "music",
            "origin",
            "add",
            &format!("box={}", lib.sftp.location(&lib.sftp_root)),
        ]);
        lib.f.ok(&["music", "view", "add", "artists", TEMPLATE]);
        lib.f.ok(&["music", "origin", "rescan"]);
        Some(lib)
    }

    /// The music origin line of this S3 server, objects under `prefix`.
    pub fn s3_location(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region=us-east-1",
            self.s3.bucket, self.s3.endpoint
        )
    }

    /// The control socket of the mount.
    pub fn socket(&self) -> PathBuf {
        self.f.dir.path().join("music.sock")
    }

    /// Starts `fvfsd music mount` (view `artists` at the root, 256 KiB windows) with
    /// `extra` arguments and waits until it is mounted.
    pub fn mount(&mut self, extra: &[&str]) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = self
            .f
            .fvfsd()
            .args([
                "music",
                "mount",
                "--meta",
                &self.f.meta_url,
                "--view",
                "artists",
            ])
            .args(["--cache-window", "256K", "--control"])
            .arg(self.socket())
            .args(extra)
            .arg(&self.f.mnt)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(&self.f.mnt) {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "music mount exited ({st}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the music mount did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn unmount(&mut self) {
        if self.child.is_none() {
            return;
        }
        let st = std::process::Command::new("umount")
            .arg(&self.f.mnt)
            .status()
            .unwrap();
        assert!(st.success(), "umount of the music view failed");
        if let Some(mut c) = self.child.take() {
            let st = super::wait_exit(&mut c, "the music mount did not exit after umount");
            assert!(
                st.success(),
                "music mount exited with {st}: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.f.mnt.join(rel)
    }

    /// The original bytes of the file shown at `rel`.
    pub fn original(&self, rel: &str) -> Vec<u8> {
        let (_, p) = self
            .files
            .iter()
            .find(|(v, _)| v == rel)
            .unwrap_or_else(|| panic!("{rel} is not in the library"));
        std::fs::read(p).unwrap()
    }

    /// Every origin down: the S3 server and sshd stopped, the local directory moved away.
    pub fn all_origins_down(&self) -> PathBuf {
        self.f.rt.block_on(self.s3.stop());
        self.sftp.stop();
        let away = self.f.dir.path().join("local-away");
        std::fs::rename(self.local.path(), &away).unwrap();
        away
    }

    /// A JSON-RPC call on the mount's control socket through `fvfsd music rpc`.
    pub fn rpc(&self, method: &str, params: &str) -> serde_json::Value {
        let out = self.f.ok(&[
            "music",
            "rpc",
            method,
            params,
            "--control",
            self.socket().to_str().unwrap(),
        ]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.f.mnt)
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
        self.sftp.stop();
    }
}

/// Every path under `root`, relative, sorted (directories with a trailing `/`).
pub fn walk(root: &Path) -> Vec<String> {
    fn go(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                go(&e.path(), &format!("{rel}/"), out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    go(root, "", &mut out);
    out
}

/// `ffmpeg`'s MD5 of the audio stream copied as it is (the frames, no tags).
pub fn audio_md5(path: &std::path::Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-c", "copy", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ffprobe`'s format tags, keys lowercased.
pub fn ffprobe_tags(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["format"]["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes of `fLaC` and the metadata blocks of a FLAC file.
pub fn flac_metadata_len(b: &[u8]) -> u64 {
    assert_eq!(&b[..4], b"fLaC");
    let mut at = 4usize;
    loop {
        let last = b[at] & 0x80 != 0;
        let len = u32::from_be_bytes([0, b[at + 1], b[at + 2], b[at + 3]]) as usize;
        at += 4 + len;
        if last {
            return at as u64;
        }
    }
}

/// The names of directory `dir`, sorted.
pub fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
