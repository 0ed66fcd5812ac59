//! The identity rules where the daemon's FUSE mount takes part, against the real `fvfsd
//! serve` over TCP on 127.0.0.1: a `nobody` process cannot gain root through the mount
//! (`nosuid,nodev`), `fvfsc mount` works with a non-admin token, and the API's checks
//! read POSIX ACLs set through the mount as the kernel does.

mod common;

use common::api::ApiDaemon as Daemon;
use common::who::*;
use common::Fixture;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn nobody_cannot_gain_root_through_the_daemon_mount() {
    let Some(f) = Fixture::new() else { return };
    let cfg = config(
        &f,
        "mount.toml",
        &format!(
            "allow_devices = true\nmount_path = \"{}\"\n",
            f.mnt.display()
        ),
    );
    let d = Daemon::start_with(&f, &["--port", "0", "--config", &cfg]);
    assert!(
        common::is_mounted(&f.mnt),
        "the daemon mounts at {}",
        f.mnt.display()
    );
    let opts = mount_options(&f.mnt);
    assert!(
        opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"),
        "mount options {opts}"
    );

    // A setuid-root copy of id(1) and /dev/zero's device, made by the admin token.
    let id = std::fs::read("/usr/bin/id").unwrap();
    ok(
        call(
            &d,
            &d.token,
            "PUT",
            "/v1/files/id?uid=0&gid=0&mode=493",
            &id,
        ),
        201,
        "copy of id",
    );
    let body = json!({"mode": 0o4755}).to_string();
    ok(
        call(&d, &d.token, "PATCH", "/v1/meta/id", body.as_bytes()),
        200,
        "chmod 04755",
    );
    let dev = json!({"kind": "char_dev", "rdev": MAKEDEV_1_5, "mode": 0o666}).to_string();
    ok(
        call(&d, &d.token, "POST", "/v1/mknod/zero", dev.as_bytes()),
        201,
        "device 1:5",
    );
    let m = std::fs::metadata(f.mnt.join("id")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid()),
        (0o4755, 0),
        "the mount shows a setuid-root file"
    );

    // `nobody` runs it: the euid stays nobody's (the mount is nosuid).
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            f.mnt.join("id").to_str().unwrap(),
            "-u",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "id as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "65534\n");
    // The device node cannot be opened (nodev), by anyone.
    let e = std::fs::File::open(f.mnt.join("zero")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    d.stop();
    assert!(!common::is_mounted(&f.mnt));
}

/// The options of the mount at `mnt` (from /proc/self/mountinfo).
fn mount_options(mnt: &std::path::Path) -> String {
    let want = mnt.canonicalize().unwrap().to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&want.as_str()))
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| panic!("{want} is not mounted"))
}

#[test]
fn client_mount_with_a_non_admin_token() {
    let Some(f) = Fixture::new() else { return };
    let (u1000, _) = token(&f, "laptop", &["--uid", "1000", "--gid", "1000"]);
    let d = Daemon::start(&f, &[]);
    let body = json!({"mode": 0o777}).to_string();
    ok(
        call(&d, &d.token, "POST", "/v1/mkdir/shared", body.as_bytes()),
        201,
        "shared",
    );
    let mnt = f.dir.path().join("cmnt");
    let cache = f.dir.path().join("ccache");
    std::fs::create_dir_all(&mnt).unwrap();
    let c = d
        .fvfsc()
        .env("FVFS_TOKEN", &u1000)
        .args([
            "mount",
            "--foreground",
            "--cache-dir",
            cache.to_str().unwrap(),
            mnt.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = ClientMount {
        child: c,
        mnt: mnt.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::is_mounted(&mnt) {
        assert!(c.child.try_wait().unwrap().is_none(), "fvfsc mount exited");
        assert!(Instant::now() < deadline, "fvfsc mount did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Local root (uid 0) creates: the daemon gives the token's identity, no refusal.
    std::fs::write(mnt.join("shared/new.txt"), b"from the laptop").unwrap();
    std::fs::create_dir(mnt.join("shared/dir")).unwrap();
    let m = meta(&d, "shared/new.txt").unwrap();
    assert_eq!(
        (m["uid"].as_u64(), m["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    let m = meta(&d, "shared/dir").unwrap();
    assert_eq!(
        (m["uid"].as_u64(), m["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        call(&d, &d.token, "GET", "/v1/files/shared/new.txt", b""),
        (200, b"from the laptop".to_vec())
    );
    // A rewrite keeps it (the owner is not named, so not refused).
    std::fs::write(mnt.join("shared/new.txt"), b"again").unwrap();
    assert_eq!(
        call(&d, &d.token, "GET", "/v1/files/shared/new.txt", b""),
        (200, b"again".to_vec())
    );
    // chown through the mount: refused by the daemon (EPERM), whatever local root may.
    let e = std::os::unix::fs::chown(mnt.join("shared/new.txt"), Some(0), None).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    let p = std::fs::metadata(mnt.join("shared/new.txt"))
        .unwrap()
        .permissions();
    assert_eq!(p.mode() & 0o7777, 0o644);
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "fvfsc mount did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.stop();
}

/// A `fvfsc mount` child, unmounted and killed if the test fails before its `umount`.
struct ClientMount {
    child: std::process::Child,
    mnt: std::path::PathBuf,
}

impl Drop for ClientMount {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The API's checks read a file's POSIX ACL as the kernel does for the mount: a named-user
/// entry lets that identity read a file its mode bits refuse it, and the mask limits it.
#[test]
fn the_api_honours_posix_acls() {
    let Some(f) = Fixture::new() else { return };
    let (u1000, _) = token(&f, "u1000", &["--uid", "1000", "--gid", "1000"]);
    let cfg = config(
        &f,
        "acl.toml",
        &format!("mount_path = \"{}\"\n", f.mnt.display()),
    );
    let d = Daemon::start_with(&f, &["--port", "0", "--config", &cfg]);
    let file = f.mnt.join("acl.txt");
    std::fs::write(&file, b"for 1000's eyes").unwrap();
    std::os::unix::fs::chown(&file, Some(1001), Some(1001)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let get = || call(&d, &u1000, "GET", "/v1/files/acl.txt", b"");
    refused(get(), 403, "permission_denied", "0640 of 1001:1001, no ACL");
    let setfacl = |spec: &str| {
        let st = Command::new("setfacl")
            .args(["-m", spec])
            .arg(&file)
            .status()
            .unwrap();
        assert!(st.success(), "setfacl -m {spec}");
    };
    setfacl("u:1000:r");
    let (st, body) = get();
    assert_eq!(
        (st, body.as_slice()),
        (200, &b"for 1000's eyes"[..]),
        "user:1000:r--"
    );
    // chmod 0600 sets the mask to ---: the named entry no longer grants anything.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(get(), 403, "permission_denied", "mask ---");
    // The ACL is in the API's stat, in getfacl's text form.
    let st = ok(
        call(&d, &d.token, "GET", "/v1/meta/acl.txt", b""),
        200,
        "stat",
    );
    assert_eq!(
        st["acl_access"].as_str(),
        Some("user::rw-,user:1000:r--,group::r--,mask::---,other::---")
    );
}
