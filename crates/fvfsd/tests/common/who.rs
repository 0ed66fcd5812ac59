//! Helpers of the identity tests: requests written by hand with a given token, exact
//! refusals, tokens with an identity, daemon configs.

use super::api::{raw, ApiDaemon as Daemon};
use super::Fixture;
use serde_json::Value;

/// One request with `token`: (status, body).
pub fn call(d: &Daemon, token: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    call_h(d, token, method, path, "", body)
}

/// [`call`] with extra header lines (`Name: value`, separated by `\r\n`).
pub fn call_h(
    d: &Daemon,
    token: &str,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}",
        body.len()
    );
    if !extra.is_empty() {
        head.push_str("\r\n");
        head.push_str(extra);
    }
    let (st, _, b) = raw(&d.addr, &head, body);
    (st, b)
}

pub fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// Asserts an exact refusal: `status` and error `code`.
pub fn refused(r: (u16, Vec<u8>), status: u16, code: &str, what: &str) {
    let got = serde_json::from_slice::<Value>(&r.1).ok();
    let got = got
        .as_ref()
        .and_then(|v| v["error"]["code"].as_str())
        .unwrap_or("(no error code)");
    assert_eq!(
        (r.0, got),
        (status, code),
        "{what}: {}",
        String::from_utf8_lossy(&r.1)
    );
}

/// Asserts `status` and returns the JSON body.
pub fn ok(r: (u16, Vec<u8>), status: u16, what: &str) -> Value {
    assert_eq!(r.0, status, "{what}: {}", String::from_utf8_lossy(&r.1));
    json_of(&r.1)
}

/// The `Stat` of `path` as the admin token sees it, or the status if not 200.
pub fn meta(d: &Daemon, path: &str) -> Result<Value, u16> {
    let (st, b) = call(d, &d.token, "GET", &format!("/v1/meta/{path}"), b"");
    if st == 200 {
        Ok(json_of(&b))
    } else {
        Err(st)
    }
}

/// `fvfsd token create NAME ARGS`: the secret (stdout's first line) and stderr.
pub fn token(f: &Fixture, name: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "create", name];
    all.extend(args);
    all.extend(["--meta", &f.meta_url]);
    let out = f.run(&all);
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(secret.starts_with("fvfs_"), "{secret}");
    (secret, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A config file in the fixture's directory with these `[daemon]` lines.
pub fn config(f: &Fixture, name: &str, daemon: &str) -> String {
    let p = f.dir.path().join(name);
    std::fs::write(&p, format!("[daemon]\nmdns = false\n{daemon}")).unwrap();
    p.to_str().unwrap().to_string()
}

pub const MAKEDEV_1_5: u32 = (1 << 8) | 5;
