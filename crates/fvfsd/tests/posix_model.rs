//! A reference model of file contents: random writes, truncates, fsyncs and reopens on a
//! real mount, compared with an in-memory Vec after every step (proptest). After each
//! fsync, st_blocks must count exactly the 4 KiB units that hold written data (holes from
//! seeks past the end, truncation and punching excluded).

mod common;
use common::Fixture;
use proptest::prelude::*;
use std::io::{Read, Seek, SeekFrom, Write};

#[derive(Clone, Debug)]
enum Op {
    Write { off: u64, len: usize, byte: u8 },
    Truncate(u64),
    Fsync,
    Reopen,
    PunchHole { off: u64, len: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..3_000_000, 1usize..400_000, any::<u8>()).prop_map(|(off, len, byte)| Op::Write { off, len, byte }),
        1 => (0u64..3_500_000).prop_map(Op::Truncate),
        1 => Just(Op::Fsync),
        1 => Just(Op::Reopen),
        1 => (0u64..3_000_000, 1u64..300_000).prop_map(|(off, len)| Op::PunchHole { off, len }),
    ]
}

/// st_blocks (512-byte units) of the 4 KiB units holding any byte `written` marks.
fn model_blocks(written: &[bool]) -> u64 {
    written.chunks(4096).filter(|u| u.contains(&true)).count() as u64 * 8
}

fn check(file: &mut std::fs::File, model: &[u8]) {
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut got = Vec::new();
    file.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), model.len(), "size differs");
    if got != model {
        let i = got.iter().zip(model).position(|(a, b)| a != b).unwrap();
        panic!("content differs at byte {i}");
    }
}

#[test]
fn random_overwrites_match_a_model() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let mnt = f.mnt.clone();
    let case = std::sync::atomic::AtomicU32::new(0);
    let cfg = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(ops in proptest::collection::vec(op(), 1..40))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = mnt.join(format!("model-{n}"));
        let open = || std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
        let mut file = open();
        let mut model: Vec<u8> = Vec::new();
        let mut written: Vec<bool> = Vec::new();
        for op in ops {
            match op {
                Op::Write { off, len, byte } => {
                    file.seek(SeekFrom::Start(off)).unwrap();
                    file.write_all(&vec![byte; len]).unwrap();
                    let end = off as usize + len;
                    if model.len() < end { model.resize(end, 0); written.resize(end, false); }
                    model[off as usize..end].fill(byte);
                    written[off as usize..end].fill(true);
                }
                Op::Truncate(n) => {
                    file.set_len(n).unwrap();
                    model.resize(n as usize, 0);
                    written.resize(n as usize, false);
                }
                Op::Fsync => {
                    file.sync_all().unwrap();
                    let blocks = std::os::unix::fs::MetadataExt::blocks(&file.metadata().unwrap());
                    assert_eq!(blocks, model_blocks(&written), "st_blocks after fsync");
                }
                Op::Reopen => { drop(file); file = open(); }
                Op::PunchHole { off, len } => {
                    let rc = unsafe {
                        libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file),
                            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off as i64, len as i64)
                    };
                    assert_eq!(rc, 0, "punch hole failed: {}", std::io::Error::last_os_error());
                    let end = ((off + len) as usize).min(model.len());
                    if (off as usize) < end {
                        model[off as usize..end].fill(0);
                        written[off as usize..end].fill(false);
                    }
                }
            }
            check(&mut file, &model);
        }
        drop(file);
        std::fs::remove_file(&path).unwrap();
    });
}
