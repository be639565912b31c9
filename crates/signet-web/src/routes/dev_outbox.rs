//! `/dev/outbox`: the development mailbox, mounted only when no real email
//! or SMS delivery is configured. It shows every queued message with its
//! bodies, which is the point in development and why it never exists in a
//! deployment with real delivery.

use askama::Template;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use signet_core::outbox::Message;

use crate::error::ApiResult;
use crate::pages::PageResult;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dev/outbox", get(page))
        .route("/dev/outbox.json", get(json_list))
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    messages: Vec<Message>,
}

async fn page(State(state): State<AppState>) -> PageResult {
    let messages = state
        .app
        .store
        .recent_messages(50)
        .await
        .map_err(signet_core::Error::from)?;
    crate::pages::render(&OutboxPage { messages })
}

async fn json_list(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let messages = state
        .app
        .store
        .recent_messages(200)
        .await
        .map_err(signet_core::Error::from)?;
    Ok(Json(json!({ "messages": messages })))
}
