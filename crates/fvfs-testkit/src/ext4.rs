//! [`Ext4Image`]: a fresh ext4 filesystem in an image file, loop-mounted on a temporary
//! directory for one test (root only), unmounted and removed when dropped. The HSM tests
//! run on it: fanotify pre-content events need a real filesystem (not tmpfs) and tests
//! must never touch the machine's own.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Ext4Image {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> io::Result<()> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl Ext4Image {
    /// Makes an image of `mib` MiB (`mkfs.ext4` from e2fsprogs) under `/var/tmp` and
    /// mounts it.
    pub fn mount(mib: u64) -> io::Result<Ext4Image> {
        let dir = tempfile::Builder::new()
            .prefix("fvfs-ext4-")
            .tempdir_in("/var/tmp")?;
        let img = dir.path().join("img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        std::fs::File::create(&img)?.set_len(mib << 20)?;
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), img.as_os_str()],
        )?;
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                img.as_os_str(),
                mnt.as_os_str(),
            ],
        )?;
        Ok(Ext4Image { dir, mnt })
    }

    /// Where the filesystem is mounted.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    /// A scratch directory beside the mount (not on the image).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Ext4Image {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds the filesystem (a panicking test's blocked thread).
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}
