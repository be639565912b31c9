use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::MetricsScraper;
use crate::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    // Any failure to answer means "not ready" (503), whatever its cause.
    state.app.store.ping().await.map_err(signet_core::Error::unavailable)?;
    Ok(Json(
        json!({ "status": "ready", "database": state.app.store.backend() }),
    ))
}

/// Prometheus / OpenMetrics exposition.
pub async fn metrics(_scraper: MetricsScraper, State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.render(),
    )
}
