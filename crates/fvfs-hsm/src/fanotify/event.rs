//! Parsing of the byte stream `read(2)` returns on a fanotify group: a sequence of
//! `struct fanotify_event_metadata` (24 bytes), each followed by variable-length info
//! records (`struct fanotify_event_info_header` = type u8, pad u8, len u16), walked by their
//! header length. Only the range record is interpreted; unknown record types are skipped.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{FanError, FAN_EVENT_INFO_TYPE_RANGE};

/// `FANOTIFY_METADATA_VERSION`: the only layout this parser understands.
const METADATA_VERSION: u8 = 3;
/// `sizeof(struct fanotify_event_metadata)`.
pub(crate) const METADATA_LEN: usize = 24;
/// `sizeof(struct fanotify_event_info_header)`.
const INFO_HEADER_LEN: usize = 4;
/// `sizeof(struct fanotify_event_info_range)`: header, u32 pad, u64 offset, u64 count.
const INFO_RANGE_LEN: usize = 24;

/// The byte range a pre-content event is about (from the `FAN_EVENT_INFO_TYPE_RANGE` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte of the access.
    pub offset: u64,
    /// Length of the access in bytes (0 for a truncate, see the crate docs).
    pub count: u64,
}

/// One event that carries a file descriptor (every permission / pre-content event does).
///
/// The caller must answer it with [`super::Group::respond`] using `fd.as_raw_fd()`, *then* drop
/// the event (closing `fd`). Dropping an event without answering leaves the accessing process
/// blocked until the group is closed.
#[derive(Debug)]
pub struct Event {
    /// An fd of the accessed file opened by the kernel for us (`O_RDWR | O_LARGEFILE` as given to
    /// `fanotify_init`); I/O through it generates no fanotify events.
    pub fd: OwnedFd,
    /// The accessing thread (`FAN_REPORT_TID`: its thread id; `/proc/ID` names its
    /// process too).
    pub pid: i32,
    /// The event mask, e.g. [`super::FAN_PRE_ACCESS`] or `libc::FAN_OPEN_PERM`.
    pub mask: u64,
    /// The accessed range, for pre-content events.
    pub range: Option<Range>,
}

/// What one `read(2)` buffer contained besides the events with an fd.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub events: Vec<Event>,
    /// Number of `FAN_Q_OVERFLOW` records.
    pub overflows: u64,
    /// Number of other records without an fd (`FAN_NOFD`).
    pub no_fd: u64,
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// Walks the info records of one event (`records` = the bytes after the metadata).
fn parse_range(mut records: &[u8]) -> Option<Range> {
    let mut range = None;
    while records.len() >= INFO_HEADER_LEN {
        let kind = records[0];
        let len = usize::from(u16_at(records, 2)?);
        if len < INFO_HEADER_LEN || len > records.len() {
            tracing::warn!(
                kind,
                len,
                "fanotify: malformed info record, ignoring the rest"
            );
            break;
        }
        if kind == FAN_EVENT_INFO_TYPE_RANGE && len >= INFO_RANGE_LEN {
            range = Some(Range {
                offset: u64_at(records, 8)?,
                count: u64_at(records, 16)?,
            });
        }
        records = &records[len..];
    }
    range
}

/// Parses one `read(2)` result. Every fd found is taken into an `OwnedFd` before anything can
/// fail, so a malformed tail never leaks descriptors (they are closed on error).
pub(crate) fn parse(mut buf: &[u8]) -> Result<Parsed, FanError> {
    let mut out = Parsed::default();
    while !buf.is_empty() {
        let malformed = |what: &'static str| FanError::Malformed { what };
        let event_len = u32_at(buf, 0).ok_or(malformed("truncated metadata"))? as usize;
        let vers = *buf.get(4).ok_or(malformed("truncated metadata"))?;
        let metadata_len = usize::from(u16_at(buf, 6).ok_or(malformed("truncated metadata"))?);
        let mask = u64_at(buf, 8).ok_or(malformed("truncated metadata"))?;
        let fd: RawFd = i32_at(buf, 16).ok_or(malformed("truncated metadata"))?;
        let pid = i32_at(buf, 20).ok_or(malformed("truncated metadata"))?;
        // Take ownership first: even if the rest is bad, the fd gets closed.
        let owned = (fd >= 0).then(|| {
            // SAFETY: the kernel just installed `fd` in our table for this event and nothing
            // else refers to it; this `OwnedFd` becomes its only owner.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        if vers != METADATA_VERSION {
            return Err(malformed("unknown fanotify metadata version"));
        }
        if event_len < METADATA_LEN || event_len > buf.len() || metadata_len < METADATA_LEN {
            return Err(malformed("bad event length"));
        }
        let records = buf
            .get(metadata_len.min(event_len)..event_len)
            .unwrap_or(&[]);
        let range = parse_range(records);
        buf = &buf[event_len..];
        match owned {
            Some(fd) => out.events.push(Event {
                fd,
                pid,
                mask,
                range,
            }),
            None if mask & libc::FAN_Q_OVERFLOW != 0 => out.overflows += 1,
            None => out.no_fd += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanotify::FAN_PRE_ACCESS;

    fn metadata(event_len: u32, mask: u64, fd: i32, pid: i32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&event_len.to_ne_bytes());
        v.push(METADATA_VERSION);
        v.push(0);
        v.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&fd.to_ne_bytes());
        v.extend_from_slice(&pid.to_ne_bytes());
        v
    }

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0];
        v.extend_from_slice(&((INFO_HEADER_LEN + body.len()) as u16).to_ne_bytes());
        v.extend_from_slice(body);
        v
    }

    fn range_body(offset: u64, count: u64) -> Vec<u8> {
        let mut v = 0u32.to_ne_bytes().to_vec();
        v.extend_from_slice(&offset.to_ne_bytes());
        v.extend_from_slice(&count.to_ne_bytes());
        v
    }

    #[test]
    fn parses_range_after_unknown_record_and_overflow() {
        // An unknown record (type 99, 8 bytes) then the range record.
        let unknown = record(99, &[1, 2, 3, 4]);
        let range = record(FAN_EVENT_INFO_TYPE_RANGE, &range_body(1 << 20, 4096));
        let len = (METADATA_LEN + unknown.len() + range.len()) as u32;
        let mut buf = metadata(len, FAN_PRE_ACCESS, -1, 42);
        buf.extend(unknown);
        buf.extend(range);
        buf.extend(metadata(METADATA_LEN as u32, libc::FAN_Q_OVERFLOW, -1, 0));
        let parsed = parse(&buf).expect("valid buffer");
        // fd -1 is not an event we can answer: counted, not returned.
        assert_eq!(parsed.events.len(), 0);
        assert_eq!(parsed.overflows, 1);
        assert_eq!(parsed.no_fd, 1);
        let rec = &buf[METADATA_LEN..len as usize];
        assert_eq!(
            parse_range(rec),
            Some(Range {
                offset: 1 << 20,
                count: 4096
            })
        );
    }

    #[test]
    fn event_with_fd_is_owned() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let raw = std::os::fd::IntoRawFd::into_raw_fd(a);
        let range = record(FAN_EVENT_INFO_TYPE_RANGE, &range_body(7, 9));
        let mut buf = metadata((METADATA_LEN + range.len()) as u32, FAN_PRE_ACCESS, raw, 5);
        buf.extend(range);
        let mut parsed = parse(&buf).expect("valid buffer");
        let ev = parsed.events.pop().expect("one event");
        assert_eq!((ev.pid, ev.mask), (5, FAN_PRE_ACCESS));
        assert_eq!(
            ev.range,
            Some(Range {
                offset: 7,
                count: 9
            })
        );
        drop(ev); // closes `raw`: the peer now sees EOF.
        let mut byte = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &b, &mut byte).expect("read"), 0);
    }

    #[test]
    fn rejects_malformed() {
        let short = metadata(8, FAN_PRE_ACCESS, -1, 1);
        assert!(matches!(parse(&short), Err(FanError::Malformed { .. })));
        let long = metadata(100, FAN_PRE_ACCESS, -1, 1);
        assert!(matches!(parse(&long), Err(FanError::Malformed { .. })));
        let mut bad_vers = metadata(METADATA_LEN as u32, FAN_PRE_ACCESS, -1, 1);
        bad_vers[4] = 2;
        assert!(matches!(parse(&bad_vers), Err(FanError::Malformed { .. })));
        // A record whose length runs past the event is ignored, not a panic.
        let mut buf = metadata((METADATA_LEN + 4) as u32, FAN_PRE_ACCESS, -1, 1);
        buf.extend([FAN_EVENT_INFO_TYPE_RANGE, 0, 200, 0]);
        assert_eq!(parse(&buf).expect("parsed").no_fd, 1);
    }
}
