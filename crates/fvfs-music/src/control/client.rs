//! [`call`]: one JSON-RPC request to a running mount over its control socket, blocking,
//! for the CLI (`fvfsd music status|cache|search|origin`).
//!
//! Invariants: the whole call (connect, write, read) is bounded by its timeout; a socket
//! that is missing or that nobody answers on is [`ControlError::NoDaemon`]; an answer is
//! one line of at most [`MAX_ANSWER`] bytes.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ControlError;

/// The longest answer line read.
pub const MAX_ANSWER: usize = 64 << 20;

/// The id of the request [`call`] sends.
const ID: u64 = 1;

/// Calls `method` with `params` (an object, or null for none) on the mount serving
/// `path`: its `result`, or its error as [`ControlError::Remote`].
pub fn call(
    path: &Path,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, ControlError> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ControlError::Timeout(timeout))
    };
    let mut s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NoDaemon {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
        Err(e) => {
            return Err(ControlError::io(
                format!("cannot connect to {}", path.display()),
                e,
            ))
        }
    };
    let mut req = json!({"jsonrpc": "2.0", "id": ID, "method": method});
    if !params.is_null() {
        req["params"] = params;
    }
    let mut line = req.to_string().into_bytes();
    line.push(b'\n');
    let timed_out = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    s.set_write_timeout(Some(left()?))
        .map_err(|e| ControlError::io("control socket", e))?;
    if let Err(e) = s.write_all(&line) {
        return Err(if timed_out(&e) {
            ControlError::Timeout(timeout)
        } else {
            ControlError::io("cannot send the request", e)
        });
    }
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        s.set_read_timeout(Some(left()?))
            .map_err(|e| ControlError::io("control socket", e))?;
        let n = match s.read(&mut chunk) {
            Ok(0) => {
                return Err(ControlError::Protocol(
                    "the connection closed before an answer".into(),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => return Err(ControlError::Timeout(timeout)),
            Err(e) => return Err(ControlError::io("cannot read the answer", e)),
        };
        let start = answer.len();
        answer.extend_from_slice(&chunk[..n]);
        if let Some(i) = answer[start..].iter().position(|&b| b == b'\n') {
            answer.truncate(start + i);
            break;
        }
        if answer.len() > MAX_ANSWER {
            return Err(ControlError::Protocol(format!(
                "an answer over {MAX_ANSWER} bytes"
            )));
        }
    }
    parse_answer(&answer)
}

/// The result of an answer line to request [`ID`], or its error.
fn parse_answer(line: &[u8]) -> Result<Value, ControlError> {
    let v: Value =
        serde_json::from_slice(line).map_err(|e| ControlError::Protocol(e.to_string()))?;
    let Value::Object(mut obj) = v else {
        return Err(ControlError::Protocol("not a JSON object".into()));
    };
    if let Some(err) = obj.remove("error") {
        // An error may carry id null (the server could not read our id).
        let code = err.get("code").and_then(Value::as_i64);
        let message = err.get("message").and_then(Value::as_str);
        return match (code, message) {
            (Some(code), Some(message)) => Err(ControlError::Remote {
                code,
                message: message.to_string(),
            }),
            _ => Err(ControlError::Protocol(format!("a malformed error: {err}"))),
        };
    }
    if obj.get("id") != Some(&json!(ID)) {
        return Err(ControlError::Protocol(format!(
            "an answer to another request (id {})",
            obj.get("id").unwrap_or(&Value::Null)
        )));
    }
    obj.remove("result")
        .ok_or_else(|| ControlError::Protocol("neither result nor error".into()))
}
