//! Clients seen recently (`GET /v1/devices`): keyed by device name and token, in memory.
//!
//! Invariants: the names come from clients, so nothing they send grows the table or an
//! entry without bound: the table holds at most `cap` entries (the least recently seen goes
//! first), none unseen for longer than `max_age_secs`, and a stored device name is at most
//! [`MAX_NAME`] bytes and a User-Agent at most [`MAX_USER_AGENT`] bytes (cut at a char
//! boundary).

use fvfs_types::api::Device;
use lru::LruCache;
use parking_lot::Mutex;
use std::num::NonZeroUsize;

/// Entries kept by default.
pub const DEFAULT_CAP: usize = 256;
/// Entries unseen for this long go (30 days).
pub const DEFAULT_MAX_AGE_SECS: i64 = 30 * 86_400;
/// Longest device name stored (bytes).
pub const MAX_NAME: usize = 64;
/// Longest User-Agent stored (bytes).
pub const MAX_USER_AGENT: usize = 256;

pub struct DeviceTable {
    seen: Mutex<LruCache<(String, String), Device>>,
    max_age_secs: i64,
}

impl Default for DeviceTable {
    fn default() -> Self {
        DeviceTable::new(DEFAULT_CAP, DEFAULT_MAX_AGE_SECS)
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl DeviceTable {
    /// A table of at most `cap` entries (at least 1) that forgets those unseen for
    /// `max_age_secs`.
    pub fn new(cap: usize, max_age_secs: i64) -> DeviceTable {
        let cap = NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN);
        DeviceTable {
            seen: Mutex::new(LruCache::new(cap)),
            max_age_secs,
        }
    }

    /// Records one request from `name` at `address` with token `token`.
    pub fn seen(&self, name: &str, address: &str, token: &str, user_agent: Option<&str>) {
        self.seen_at(now_unix(), name, address, token, user_agent)
    }

    /// [`DeviceTable::seen`] at the Unix time `now`.
    pub fn seen_at(
        &self,
        now: i64,
        name: &str,
        address: &str,
        token: &str,
        user_agent: Option<&str>,
    ) {
        let name = truncate(name, MAX_NAME);
        let user_agent = user_agent.map(|u| truncate(u, MAX_USER_AGENT).to_string());
        let mut seen = self.seen.lock();
        self.prune(&mut seen, now);
        let key = (name.to_string(), token.to_string());
        match seen.get_mut(&key) {
            Some(d) => {
                d.address = address.to_string();
                d.user_agent = user_agent;
                d.last_seen_unix = now;
                d.requests += 1;
            }
            None => {
                // Evicts the least recently seen entry when the table is full.
                seen.push(
                    key,
                    Device {
                        name: name.to_string(),
                        address: address.to_string(),
                        token: token.to_string(),
                        user_agent,
                        last_seen_unix: now,
                        requests: 1,
                    },
                );
            }
        }
    }

    /// Drops the entries unseen for longer than the maximum age. The least recently seen
    /// end is the oldest while the clock moves forward; after a step back an old entry may
    /// stay until the cap pushes it out.
    fn prune(&self, seen: &mut LruCache<(String, String), Device>, now: i64) {
        while let Some((_, d)) = seen.peek_lru() {
            if now - d.last_seen_unix <= self.max_age_secs {
                break;
            }
            seen.pop_lru();
        }
    }

    /// Devices seen within the last `window_secs`, most recent first.
    pub fn recent(&self, window_secs: i64) -> Vec<Device> {
        self.recent_at(now_unix(), window_secs)
    }

    /// [`DeviceTable::recent`] at the Unix time `now`.
    pub fn recent_at(&self, now: i64, window_secs: i64) -> Vec<Device> {
        let mut seen = self.seen.lock();
        self.prune(&mut seen, now);
        let mut v: Vec<Device> = seen
            .iter()
            .map(|(_, d)| d)
            .filter(|d| now - d.last_seen_unix <= window_secs)
            .cloned()
            .collect();
        v.sort_by_key(|d| std::cmp::Reverse(d.last_seen_unix));
        v
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.seen.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &DeviceTable, now: i64) -> Vec<String> {
        let mut v: Vec<String> = t
            .recent_at(now, i64::MAX)
            .into_iter()
            .map(|d| d.name)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn least_recently_seen_goes_at_the_cap() {
        let t = DeviceTable::new(3, DEFAULT_MAX_AGE_SECS);
        t.seen_at(100, "a", "10.0.0.1", "tok", None);
        t.seen_at(101, "b", "10.0.0.2", "tok", None);
        t.seen_at(102, "c", "10.0.0.3", "tok", None);
        // `a` seen again: `b` is now the least recently seen.
        t.seen_at(103, "a", "10.0.0.9", "tok", Some("ua/2"));
        t.seen_at(104, "d", "10.0.0.4", "tok", None);
        assert_eq!(t.len(), 3);
        assert_eq!(names(&t, 104), ["a", "c", "d"]);
        let a = t
            .recent_at(104, i64::MAX)
            .into_iter()
            .find(|d| d.name == "a")
            .unwrap();
        assert_eq!(
            (a.address.as_str(), a.user_agent.as_deref(), a.requests),
            ("10.0.0.9", Some("ua/2"), 2)
        );
        // The same name under another token is another entry.
        t.seen_at(105, "d", "10.0.0.4", "other", None);
        assert_eq!(t.len(), 3);
        assert_eq!(names(&t, 105), ["a", "d", "d"]);
        // Many distinct names never grow the table past the cap.
        for i in 0..1000 {
            t.seen_at(200 + i, &format!("n{i}"), "10.0.0.5", "tok", None);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(names(&t, 1200), ["n997", "n998", "n999"]);
    }

    #[test]
    fn entries_unseen_for_the_max_age_go() {
        let day = 86_400;
        let t = DeviceTable::new(10, 30 * day);
        t.seen_at(0, "old", "10.0.0.1", "tok", None);
        t.seen_at(10 * day, "mid", "10.0.0.2", "tok", None);
        // Exactly the max age: kept.
        assert_eq!(names(&t, 30 * day), ["mid", "old"]);
        // One second more: `old` goes, even from a plain listing.
        assert_eq!(names(&t, 30 * day + 1), ["mid"]);
        assert_eq!(t.len(), 1);
        // A request prunes too.
        t.seen_at(41 * day, "new", "10.0.0.3", "tok", None);
        assert_eq!(t.len(), 1);
        assert_eq!(names(&t, 41 * day), ["new"]);
        // The window of `recent` filters without dropping.
        assert!(t.recent_at(42 * day, 60).is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn names_and_user_agents_are_truncated_at_a_char_boundary() {
        let t = DeviceTable::default();
        // 63 ASCII bytes then a 2-byte char: 64 bytes would split it.
        let name = format!("{}é{}", "x".repeat(63), "y".repeat(100));
        let ua = format!("{}€tail", "u".repeat(255));
        t.seen_at(1, &name, "10.0.0.1", "tok", Some(&ua));
        let d = t.recent_at(1, 10).pop().unwrap();
        assert_eq!(d.name, "x".repeat(63));
        assert_eq!(d.user_agent.unwrap(), "u".repeat(255));
        // Names equal up to the cut are one device.
        t.seen_at(
            2,
            &format!("{}é-other", "x".repeat(63)),
            "10.0.0.1",
            "tok",
            None,
        );
        assert_eq!(t.len(), 1);
        assert_eq!(truncate("abc", 64), "abc");
        assert_eq!(truncate(&"é".repeat(40), 64), "é".repeat(32));
    }
}
