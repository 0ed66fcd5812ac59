//! The `/v1` routes, one file per family. OWNER: helper H1.

use crate::ApiState;
use std::sync::Arc;

/// Every route of the API (without auth: `server.rs` wraps it). `/metrics` and
/// `/v1/openapi.json` included.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    let _ = state;
    axum::Router::new()
}
