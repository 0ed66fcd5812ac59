//! Fidelity, judged by tools no one here wrote: a tree on native ext4 with every kind of
//! metadata a backup must keep (modes with setuid/setgid/sticky, owners, nanosecond
//! mtimes, hard links, symlinks, fifos, user xattrs, access and default ACLs, a sparse
//! file) is copied onto the mount with `cp -a` and with `rsync -aHAX --sparse`; then
//! `rsync -aHAXn -i --checksum` must find no difference at all, and the sparse file must
//! take as much space as on ext4 (`du`, i.e. st_blocks) within one 4 KiB block.
//!
//! The source is the fixture's directory under /var/tmp when that is ext4, else (or with
//! FVFS_FIDELITY_LOOP=1) a loop-mounted ext4 image made for the test.

mod common;

use common::{data, Fixture};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` with `args`; asserts success; returns stdout.
fn run(cmd: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fs_type(dir: &Path) -> String {
    run("stat", &["-f", "-c", "%T", "."], dir)
        .trim()
        .to_string()
}

/// A loop-mounted ext4 image, unmounted on drop.
struct LoopExt4 {
    mnt: PathBuf,
}

impl LoopExt4 {
    fn new(base: &Path) -> LoopExt4 {
        let img = base.join("ext4.img");
        let mnt = base.join("ext4");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
        run("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()], base);
        run(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
            base,
        );
        LoopExt4 { mnt }
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

const MIB: u64 = 1 << 20;

/// The source tree (see the module comment). Data first, metadata after, mtimes last.
fn build_tree(src: &Path) {
    std::fs::create_dir_all(src.join("d1/d2")).unwrap();
    for (name, len, seed) in [
        ("f1", 5000, 1),
        ("exe", 70_000, 2),
        ("ro", 10, 3),
        ("d1/f2", 3 * MIB as usize + 17, 4),
        ("d1/d2/empty", 0, 5),
    ] {
        std::fs::write(src.join(name), data(len, seed)).unwrap();
    }
    // 100 MiB with three 1 MiB data regions; the rest never written.
    let mut sparse = std::fs::File::create(src.join("sparse")).unwrap();
    for (i, at) in [10 * MIB, 50 * MIB, 90 * MIB].into_iter().enumerate() {
        sparse.seek(SeekFrom::Start(at)).unwrap();
        sparse
            .write_all(&data(MIB as usize, 10 + i as u64))
            .unwrap();
    }
    sparse.set_len(100 * MIB).unwrap();
    sparse.sync_all().unwrap();
    drop(sparse);
    let script = r#"
        umask 022
        mkdir sg priv tmp
        chmod 0644 f1; chmod 0755 exe; chmod 0444 ro; chmod 4755 d1/d2/empty
        chown 1000:1000 f1 d1 d1/f2 sg
        chmod 2775 sg; chmod 0700 priv; chmod 1777 tmp
        printf secret > priv/secret; chmod 0600 priv/secret; chown 1001:100 priv priv/secret
        ln f1 d1/f1.hard; ln f1 sg/f1.hard2
        ln -s ../f1 d1/f1.sym; ln -s nowhere dangling; chown -h 1001:100 d1/f1.sym
        mkfifo d1/pipe; chmod 0620 d1/pipe
        setfattr -n user.color -v blue f1
        setfattr -n user.bin -v 0x00ff10 d1/f2
        setfattr -n user.dir -v x d1
        setfacl -m u:1000:rw,g:100:r d1/f2
        setfacl -m u:1001:rwx sg
        setfacl -d -m u:1000:rwx,g::rx sg
        (cd sg && umask 077 && printf x > inherited && mkdir inherited.d)
        i=0
        find . -depth -print0 | while IFS= read -r -d '' p; do
          i=$((i + 1))
          touch -h -d "@$((1600000000 + i * 86400)).$(printf %09d $((i * 7919 + 1)))" "$p"
        done
    "#;
    run("bash", &["-euo", "pipefail", "-c", script], src);
}

fn du_bytes(p: &Path) -> u64 {
    let out = run("du", &["-B1", p.to_str().unwrap()], Path::new("/"));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn cp_a_and_rsync_leave_no_difference() {
    let Some(mut f) = Fixture::new() else { return };
    let base = f.dir.path().to_path_buf();
    let force_loop = std::env::var("FVFS_FIDELITY_LOOP").as_deref() == Ok("1");
    let loop_fs = (force_loop || fs_type(&base) != "ext2/ext3").then(|| LoopExt4::new(&base));
    let src = match &loop_fs {
        Some(l) => l.mnt.join("src"),
        None => base.join("src"),
    };
    std::fs::create_dir(&src).unwrap();
    assert_eq!(fs_type(&src), "ext2/ext3", "the source must be on ext4");
    build_tree(&src);
    let ext4_du = du_bytes(&src.join("sparse"));
    assert!(
        ext4_du < 4 * MIB,
        "the source file is not sparse on ext4 ({ext4_du} bytes)"
    );
    // The source has what the test claims (the script stops at a failed setfacl/setfattr).
    let listing = run(
        "bash",
        &["-c", "find . -printf '%y %m %n %U:%G %p\\n'"],
        &src,
    );
    for want in [
        "d 2775 3 1000:1000 ./sg",
        "f 644 3 1000:1000 ./f1",
        "p 620 1 0:0 ./d1/pipe",
        "l 777 1 1001:100 ./d1/f1.sym",
        "f 4755 1 0:0 ./d1/d2/empty",
    ] {
        assert!(
            listing.lines().any(|l| l == want),
            "{want:?} not in {listing}"
        );
    }

    f.mount();
    let a = f.mnt.join("a");
    let b = f.mnt.join("b");
    run(
        "cp",
        &["-a", src.to_str().unwrap(), a.to_str().unwrap()],
        &base,
    );
    let src_slash = format!("{}/", src.display());
    run(
        "rsync",
        &[
            "-aHAX",
            "--sparse",
            &src_slash,
            &format!("{}/", b.display()),
        ],
        &base,
    );
    for dst in [&a, &b] {
        let diff = run(
            "rsync",
            &[
                "-aHAXn",
                "-i",
                "--checksum",
                &src_slash,
                &format!("{}/", dst.display()),
            ],
            &base,
        );
        assert_eq!(diff, "", "rsync finds differences in {}", dst.display());
        let got = du_bytes(&dst.join("sparse"));
        assert!(
            got.abs_diff(ext4_du) <= 4096,
            "du of the sparse copy in {}: {got} bytes, ext4: {ext4_du}",
            dst.display()
        );
    }
    // The same after a remount: nothing lived only in the kernel's caches.
    f.unmount();
    f.mount();
    let diff = run(
        "rsync",
        &[
            "-aHAXn",
            "-i",
            "--checksum",
            &src_slash,
            &format!("{}/", b.display()),
        ],
        &base,
    );
    assert_eq!(diff, "", "rsync finds differences after a remount");
    assert!(du_bytes(&b.join("sparse")).abs_diff(ext4_du) <= 4096);
    f.unmount();
    drop(loop_fs);
}
