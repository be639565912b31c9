//! The JSON API routes (`/api/v1/...`) and operational endpoints.

pub mod admin;
pub mod credentials;
pub mod dev_outbox;
pub mod health;
pub mod invitations;
pub mod login;
pub mod oidc;
pub mod oidc_admin;
pub mod oidc_consent;
pub mod oidc_logout;
pub mod recovery;
pub mod session;
pub mod step_up;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::AppState;

pub fn api(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/session", get(session::current).delete(session::logout))
        .route("/api/v1/sessions", get(session::list))
        .route("/api/v1/sessions/{id}", delete(session::end_one))
        .route("/api/v1/invitations/redeem", post(invitations::redeem))
        .route("/api/v1/credentials", get(credentials::list))
        .route("/api/v1/credentials/phone", post(credentials::add_phone))
        .route("/api/v1/credentials/phone/verify", post(credentials::verify_phone))
        .route("/api/v1/credentials/recovery-codes", post(credentials::recovery_codes))
        .route("/api/v1/credentials/{method}/begin", post(credentials::begin))
        .route("/api/v1/credentials/{method}/finish", post(credentials::finish))
        .route(
            "/api/v1/credentials/{id}",
            delete(credentials::remove).patch(credentials::rename),
        )
        .route("/api/v1/login", post(login::start))
        .route("/api/v1/login/{flow_id}/{method}/send", post(login::send))
        .route("/api/v1/login/{flow_id}/{method}", post(login::step))
        .route("/api/v1/recovery", post(recovery::start))
        .route("/api/v1/recovery/redeem", post(recovery::redeem))
        .route("/api/v1/recovery/{flow_id}/{method}/send", post(login::send))
        .route("/api/v1/recovery/{flow_id}/{method}", post(login::step))
        .route("/api/v1/step-up", post(step_up::start).get(step_up::check))
        .route("/api/v1/step-up/{flow_id}/{method}/send", post(login::send))
        .route("/api/v1/step-up/{flow_id}/{method}", post(login::step))
        .route("/api/v1/admin/users", post(admin::create_user).get(admin::list_users))
        .route("/api/v1/admin/users/{id}", get(admin::get_user))
        .route("/api/v1/admin/users/{id}/disable", post(admin::disable_user))
        .route("/api/v1/admin/users/{id}/enable", post(admin::enable_user))
        .route("/api/v1/admin/users/{id}/invitations", post(admin::invite_user))
        .route(
            "/api/v1/admin/recovery-tickets",
            post(admin::create_recovery_ticket).get(admin::list_recovery_tickets),
        )
        .route(
            "/api/v1/admin/recovery-tickets/{id}/approve",
            post(admin::approve_recovery_ticket),
        )
        .route("/api/v1/admin/audit", get(admin::audit))
        .route("/api/v1/admin/outbox/retry", post(admin::retry_outbox))
        .route(
            "/api/v1/admin/oidc/clients",
            post(oidc_admin::create).get(oidc_admin::list),
        )
        .route(
            "/api/v1/admin/oidc/clients/{client_id}",
            get(oidc_admin::show)
                .delete(oidc_admin::delete)
                .patch(oidc_admin::update),
        )
        .route(
            "/api/v1/admin/oidc/clients/{client_id}/secret",
            post(oidc_admin::rotate_secret),
        )
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route(signet_app::oidc::discovery::JWKS_PATH, get(oidc::jwks))
        .route(signet_app::oidc::discovery::TOKEN_PATH, post(oidc::token))
        .route(
            signet_app::oidc::authorize::AUTHORIZATION_PATH,
            get(oidc::authorize_get).post(oidc::authorize_post),
        )
        .route("/oauth2/authorize/resume/{id}", get(oidc::authorize_resume))
        .route(
            "/oauth2/consent/{id}",
            get(oidc_consent::page).post(oidc_consent::decide),
        )
        .route("/api/v1/oidc/apps", get(oidc_consent::apps))
        .route("/api/v1/oidc/apps/{client_id}", delete(oidc_consent::revoke))
        .route("/account/apps/{client_id}/revoke", post(oidc_consent::revoke_from_page))
        .route(
            signet_app::oidc::discovery::USERINFO_PATH,
            get(oidc::userinfo).post(oidc::userinfo),
        )
        .route(signet_app::oidc::discovery::INTROSPECTION_PATH, post(oidc::introspect))
        .route(signet_app::oidc::discovery::REVOCATION_PATH, post(oidc::revoke))
        .route(
            signet_app::oidc::logout::END_SESSION_PATH,
            get(oidc_logout::end_session).post(oidc_logout::end_session),
        )
        .route(signet_app::oidc::logout::CONFIRM_PATH, post(oidc_logout::confirm))
}

/// Parses a UUID path segment; a malformed id is just "not found".
pub(crate) fn parse_id(raw: &str, code: signet_core::ErrorCode) -> Result<uuid::Uuid, signet_core::Error> {
    uuid::Uuid::parse_str(raw).map_err(|_| signet_core::Error::not_found(code, "no such resource"))
}
