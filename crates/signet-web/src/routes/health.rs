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

/// Readiness: a write can commit (see `signet_app::readiness`). While it
/// cannot, 503 with the storage code (`storage_full`, `storage_busy`,
/// `unavailable`) and `Retry-After`.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    state.app.readiness.check(&state.app).await?;
    Ok(Json(
        json!({ "status": "ready", "database": state.app.store.backend() }),
    ))
}

/// Prometheus / OpenMetrics exposition.
pub async fn metrics(_scraper: MetricsScraper, State(state): State<AppState>) -> impl IntoResponse {
    let app = &state.app;
    app.metrics.refresh(&*app.store, app.clock.now()).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.render(),
    )
}
