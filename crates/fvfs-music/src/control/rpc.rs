//! JSON-RPC 2.0 over one line: [`handle_line`] takes the bytes of a line (a request or a
//! batch) and gives the line to answer, or none.
//!
//! Invariants (the JSON-RPC 2.0 specification):
//! - a line that is not JSON is answered `-32700` with id null; an empty batch, a batch of
//!   more than [`MAX_BATCH`] entries or anything that is not a request is `-32600`, with
//!   the request's id when it has a valid one, else null;
//! - a notification (a valid request without an `id` member) runs and is never
//!   answered, also when it fails; a batch of notifications gets no line at all;
//! - a batch's answers are one array, in the order of its requests (they run
//!   concurrently);
//! - params are by name (an object) or absent; unknown names, wrong types and values out
//!   of range are `-32602` before the service is called;
//! - a panic of the service is contained and answered `-32603`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{ControlError, MusicControl, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT};

/// The most requests one batch may hold.
pub const MAX_BATCH: usize = 1000;

/// The answer to one line (without its newline), or `None` when nothing is to be
/// answered (notifications only, or a blank line).
pub async fn handle_line(svc: &Arc<dyn MusicControl>, line: &[u8]) -> Option<String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Some(error_line(&ControlError::Parse(e.to_string()))),
    };
    let answer = match v {
        Value::Array(batch) => {
            if batch.is_empty() {
                return Some(error_line(&ControlError::InvalidRequest(
                    "an empty batch".into(),
                )));
            }
            if batch.len() > MAX_BATCH {
                return Some(error_line(&ControlError::InvalidRequest(format!(
                    "a batch of {} requests (at most {MAX_BATCH})",
                    batch.len()
                ))));
            }
            let all = futures::future::join_all(batch.into_iter().map(|r| handle_one(svc, r)));
            let answers: Vec<Value> = all.await.into_iter().flatten().collect();
            if answers.is_empty() {
                return None;
            }
            Value::Array(answers)
        }
        one => handle_one(svc, one).await?,
    };
    Some(answer.to_string())
}

/// The answer line to a request whose id is unknown (unparsable, too long).
pub(crate) fn error_line(e: &ControlError) -> String {
    failure(Value::Null, e).to_string()
}

fn success(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn failure(id: Value, e: &ControlError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.rpc_code(), "message": e.to_string()}})
}

/// A valid request: its id (`None` for a notification), method and named params.
struct Call {
    id: Option<Value>,
    method: String,
    params: Map<String, Value>,
}

/// Checks the shape of a request; an error carries the id to answer with.
fn parse_call(v: Value) -> Result<Call, (Value, ControlError)> {
    let Value::Object(mut obj) = v else {
        return Err((
            Value::Null,
            ControlError::InvalidRequest("a request is a JSON object".into()),
        ));
    };
    let id = match obj.remove("id") {
        None => None,
        Some(id @ (Value::Null | Value::String(_) | Value::Number(_))) => Some(id),
        Some(_) => {
            return Err((
                Value::Null,
                ControlError::InvalidRequest("id must be a string, a number or null".into()),
            ))
        }
    };
    let bad = |m: &str| {
        (
            id.clone().unwrap_or(Value::Null),
            ControlError::InvalidRequest(m.into()),
        )
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(bad("\"jsonrpc\" must be \"2.0\""));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(bad("\"method\" must be a string")),
    };
    let params = match obj.remove("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(Value::Array(_)) => {
            return Err((
                id.unwrap_or(Value::Null),
                ControlError::InvalidParams(
                    "params are by name (an object), not positional".into(),
                ),
            ))
        }
        Some(_) => return Err(bad("\"params\" must be an object or an array")),
    };
    Ok(Call { id, method, params })
}

async fn handle_one(svc: &Arc<dyn MusicControl>, v: Value) -> Option<Value> {
    let call = match parse_call(v) {
        Ok(c) => c,
        Err((id, e)) => {
            tracing::debug!(error = %e, "control request refused");
            return Some(failure(id, &e));
        }
    };
    let r = AssertUnwindSafe(dispatch(svc, &call.method, call.params))
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(ControlError::Internal(panic_text(&*p))));
    match &r {
        Ok(_) => tracing::debug!(method = call.method, "control request served"),
        Err(e) if e.is_caller_error() => {
            tracing::debug!(method = call.method, error = %e, "control request refused")
        }
        Err(e) => tracing::warn!(method = call.method, error = %e, "control request failed"),
    }
    let id = call.id?;
    Some(match r {
        Ok(v) => success(id, v),
        Err(e) => failure(id, &e),
    })
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("the handler panicked: {what}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearParams {
    origin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    query: String,
    limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescanParams {
    id: Option<String>,
}

fn params<T: DeserializeOwned>(p: Map<String, Value>) -> Result<T, ControlError> {
    serde_json::from_value(Value::Object(p)).map_err(|e| ControlError::InvalidParams(e.to_string()))
}

fn to_value<T: Serialize>(t: T) -> Result<Value, ControlError> {
    serde_json::to_value(t).map_err(|e| ControlError::Internal(format!("cannot encode: {e}")))
}

/// Runs a synchronous method on the blocking pool (it may read SQLite or an index).
async fn blocking<T, F>(svc: &Arc<dyn MusicControl>, f: F) -> Result<Value, ControlError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn MusicControl) -> Result<T, ControlError> + Send + 'static,
{
    let svc = svc.clone();
    match tokio::task::spawn_blocking(move || f(svc.as_ref())).await {
        Ok(r) => to_value(r?),
        Err(e) if e.is_panic() => Err(ControlError::Internal(panic_text(&*e.into_panic()))),
        Err(e) => Err(ControlError::Internal(format!(
            "the handler task failed: {e}"
        ))),
    }
}

async fn dispatch(
    svc: &Arc<dyn MusicControl>,
    method: &str,
    p: Map<String, Value>,
) -> Result<Value, ControlError> {
    match method {
        "status" => {
            params::<NoParams>(p)?;
            blocking(svc, |s| s.status()).await
        }
        "cache.stats" => {
            params::<NoParams>(p)?;
            blocking(svc, |s| s.cache_stats()).await
        }
        "cache.clear" => {
            let ClearParams { origin } = params(p)?;
            blocking(svc, move |s| s.cache_clear(origin.as_deref())).await
        }
        "search" => {
            let SearchParams { query, limit } = params(p)?;
            let limit = match limit {
                None => DEFAULT_SEARCH_LIMIT,
                Some(n) if (1..=MAX_SEARCH_LIMIT as u64).contains(&n) => n as usize,
                Some(n) => {
                    return Err(ControlError::InvalidParams(format!(
                        "limit {n} is not within 1..={MAX_SEARCH_LIMIT}"
                    )))
                }
            };
            blocking(svc, move |s| s.search(&query, limit)).await
        }
        "origin.list" => {
            params::<NoParams>(p)?;
            blocking(svc, |s| s.origins()).await
        }
        "origin.rescan" => {
            let RescanParams { id } = params(p)?;
            to_value(svc.rescan(id).await?)
        }
        other => Err(ControlError::MethodNotFound(other.to_string())),
    }
}
