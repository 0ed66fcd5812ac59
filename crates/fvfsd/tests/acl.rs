//! POSIX ACLs on a real mount, as on ext4: the kernel enforces them (FUSE_POSIX_ACL), the
//! mode's group bits show the mask, chmod rewrites the mask, default ACLs are inherited,
//! the umask applies only where no default ACL does, and `cp -a` keeps modes exactly.
//! Every script runs on the mount and on native ext4 (the fixture's directory under
//! /var/tmp), and the outputs must match each other and the values written here; reads
//! as `daemon` (uid 1) and `nobody` (uid 65534) go through the kernel's checks.

mod common;

use common::Fixture;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Runs `script` with bash in `dir`; asserts success; returns stdout.
fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "script failed in {}:\n{script}\nstderr: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` on native ext4 and on the mount; asserts both print the same.
fn same_as_ext4(f: &Fixture, name: &str, script: &str) -> String {
    let ext4 = f.dir.path().join(format!("ext4-{name}"));
    std::fs::create_dir(&ext4).unwrap();
    let fs_type = sh(&ext4, "stat -f -c %T .");
    assert_eq!(fs_type.trim(), "ext2/ext3", "the reference must be ext4");
    let mnt = f.mnt.join(name);
    std::fs::create_dir(&mnt).unwrap();
    let want = sh(&ext4, script);
    let got = sh(&mnt, script);
    assert_eq!(got, want, "the mount differs from ext4 for:\n{script}");
    got
}

/// `cat path` as uid:gid (no supplementary groups): "ok <content>", or "denied" when cat
/// reports EACCES exactly (anything else fails the test).
fn read_as(uid: u32, gid: u32, path: &Path) -> String {
    let out = Command::new("cat")
        .arg(path)
        .uid(uid)
        .gid(gid)
        .output()
        .expect("cat");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert_eq!(stderr, "");
        return format!("ok {}", String::from_utf8_lossy(&out.stdout));
    }
    assert_eq!(
        stderr,
        format!("cat: {}: Permission denied\n", path.display()),
        "not EACCES"
    );
    "denied".into()
}

/// [`read_as`] of `name/rel` on the mount, asserted equal to the same on ext4.
fn read_both(f: &Fixture, name: &str, rel: &str, who: (u32, u32)) -> String {
    let on_ext4 = read_as(
        who.0,
        who.1,
        &f.dir.path().join(format!("ext4-{name}/{rel}")),
    );
    let got = read_as(who.0, who.1, &f.mnt.join(name).join(rel));
    assert_eq!(
        got, on_ext4,
        "{name}/{rel} as {who:?}: the mount differs from ext4"
    );
    got
}

const DAEMON: (u32, u32) = (1, 1);
const NOBODY: (u32, u32) = (65534, 65534);

#[test]
fn named_entries_are_enforced_and_the_mask_is_the_group_bits() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let out = same_as_ext4(
        &f,
        "enforce",
        "umask 022; mkdir d; printf secret > d/f; chmod 0600 d/f
         setfacl -m u:daemon:rx d/f; stat -c %a d/f; getfacl -nc d/f",
    );
    assert_eq!(
        out,
        "650\nuser::rw-\nuser:1:r-x\ngroup::---\nmask::r-x\nother::---\n\n"
    );
    assert_eq!(read_both(&f, "enforce", "d/f", DAEMON), "ok secret");
    assert_eq!(read_both(&f, "enforce", "d/f", NOBODY), "denied");

    // The mask limits the named entry, and is the mode's group bits.
    let out = same_as_ext4(
        &f,
        "mask",
        "printf secret > f; chmod 0600 f; setfacl -m u:daemon:rwx f; setfacl -m m::r f
         stat -c %a f; getfacl -nc f",
    );
    assert_eq!(
        out,
        "640\nuser::rw-\nuser:1:rwx\t#effective:r--\ngroup::---\nmask::r--\nother::---\n\n"
    );
    assert_eq!(read_both(&f, "mask", "f", DAEMON), "ok secret");

    // chmod rewrites the mask (and owner, other): the named user loses read, `other`
    // gains it, and the kernel enforces the new ACL at once. (With a mask of `---` the
    // kernel skips the ACL and judges by the mode alone, on ext4 too: hence `--x`.)
    let out = same_as_ext4(
        &f,
        "chmod",
        "printf secret > f; chmod 0600 f; setfacl -m u:daemon:r f; chmod 0614 f
         stat -c %a f; getfacl -nc f",
    );
    assert_eq!(
        out,
        "614\nuser::rw-\nuser:1:r--\t#effective:---\ngroup::---\nmask::--x\nother::r--\n\n"
    );
    assert_eq!(read_both(&f, "chmod", "f", DAEMON), "denied");
    assert_eq!(read_both(&f, "chmod", "f", NOBODY), "ok secret");

    // Removing the extended entries leaves a plain mode; an equivalent ACL is not stored.
    let out = same_as_ext4(
        &f,
        "strip",
        "umask 022; printf x > f; setfacl -m u:daemon:rwx f; setfacl -b f; stat -c %a f
         getfattr -m - -d f | grep -c posix_acl || true
         setfacl -m u::rwx,g::r-x,o::x f; stat -c %a f; getfattr -m - -d f | grep -c posix_acl || true",
    );
    assert_eq!(out, "644\n0\n751\n0\n");
}

#[test]
fn default_acls_are_inherited_and_the_umask_applies_only_without_one() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let out = same_as_ext4(
        &f,
        "inherit",
        "mkdir inh plain; chmod 0755 inh plain
         setfacl -d -m u:daemon:rwx,g::r-x,o::- inh
         for u in 022 077; do
           (umask $u; touch inh/f$u plain/f$u; mkdir inh/d$u plain/d$u
            mkfifo inh/p$u plain/p$u; ln -s f$u inh/l$u)
         done
         stat -c '%n %a' inh/* plain/*
         getfacl -nc inh/f077 inh/d022",
    );
    assert_eq!(
        out,
        "inh/d022 770\ninh/d077 770\ninh/f022 660\ninh/f077 660\n\
         inh/l022 777\ninh/l077 777\ninh/p022 660\ninh/p077 660\n\
         plain/d022 755\nplain/d077 700\nplain/f022 644\nplain/f077 600\n\
         plain/p022 644\nplain/p077 600\n\
         user::rw-\nuser:1:rwx\t#effective:rw-\ngroup::r-x\t#effective:r--\nmask::rw-\nother::---\n\n\
         user::rwx\nuser:1:rwx\ngroup::r-x\nmask::rwx\nother::---\n\
         default:user::rwx\ndefault:user:1:rwx\ndefault:group::r-x\ndefault:mask::rwx\ndefault:other::---\n\n"
    );
    // The inherited entry is enforced: daemon writes into the new directory.
    let out = Command::new("touch")
        .arg(f.mnt.join("inherit/inh/d022/by-daemon"))
        .uid(DAEMON.0)
        .gid(DAEMON.1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A setgid parent with a default ACL: the group and setgid pass on as well.
    let out = same_as_ext4(
        &f,
        "setgid",
        "mkdir s; chown 0:1 s; chmod 2750 s; setfacl -d -m g::rwx,o::- s
         (umask 077; mkdir s/sub; touch s/file)
         stat -c '%n %a %g' s/sub s/file",
    );
    assert_eq!(out, "s/sub 2770 1\ns/file 660 1\n");
}

#[test]
fn cp_a_keeps_modes_owners_and_acls() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let src = f.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let tree = "for m in 0755 0750 0700 0640 0600 0444 0400 4755 2755 1644; do
                  printf $m > f$m; chmod $m f$m; mkdir d$m; chmod $m d$m
                done
                mkdir sg; chown 1000:1000 sg; chmod 2775 sg; mkdir sg/in; chmod 2770 sg/in
                printf x > sg/own; chown 1001:100 sg/own; chmod 0640 sg/own
                printf x > acl; chmod 0640 acl; setfacl -m u:1000:rw,g:100:r acl
                setfacl -d -m u:1000:rwx sg";
    sh(&src, tree);
    let dst = f.mnt.join("copy");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp -a: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = "find . -printf '%p %m %U:%G\\n' | sort; getfacl -Rnc . 2>/dev/null | sort";
    let want = sh(&src, list);
    let got = sh(&dst, list);
    assert_eq!(got, want, "cp -a changed modes, owners or ACLs");
    // The values themselves, not only their agreement.
    for line in [
        "./f0755 755 0:0",
        "./f0640 640 0:0",
        "./f4755 4755 0:0",
        "./f2755 2755 0:0",
        "./d0700 700 0:0",
        "./d1644 1644 0:0",
        "./sg 2775 1000:1000",
        "./sg/in 2770 0:1000",
        "./sg/own 640 1001:100",
        "./acl 660 0:0",
    ] {
        assert!(
            got.lines().any(|l| l == line),
            "missing {line:?} in:\n{got}"
        );
    }
    assert!(got.contains("user:1000:rw-\n") && got.contains("default:user:1000:rwx\n"));
}
