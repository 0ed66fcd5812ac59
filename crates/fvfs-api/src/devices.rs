//! Clients seen recently (`GET /v1/devices`): keyed by device name and token, in memory.

use fvfs_types::api::Device;
use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Default)]
pub struct DeviceTable {
    seen: Mutex<HashMap<(String, String), Device>>,
}

impl DeviceTable {
    /// Records one request from `name` at `address` with token `token`.
    pub fn seen(&self, name: &str, address: &str, token: &str, user_agent: Option<&str>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut seen = self.seen.lock();
        let d = seen
            .entry((name.to_string(), token.to_string()))
            .or_insert_with(|| Device {
                name: name.to_string(),
                address: address.to_string(),
                token: token.to_string(),
                user_agent: None,
                last_seen_unix: now,
                requests: 0,
            });
        d.address = address.to_string();
        d.user_agent = user_agent.map(str::to_string);
        d.last_seen_unix = now;
        d.requests += 1;
    }

    /// Devices seen within the last `window_secs`, most recent first.
    pub fn recent(&self, window_secs: i64) -> Vec<Device> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut v: Vec<Device> = self
            .seen
            .lock()
            .values()
            .filter(|d| now - d.last_seen_unix <= window_secs)
            .cloned()
            .collect();
        v.sort_by_key(|d| std::cmp::Reverse(d.last_seen_unix));
        v
    }
}
