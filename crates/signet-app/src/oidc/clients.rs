//! Registered relying parties: registration (`signet client add`),
//! clients declared in configuration (`[[oidc.clients]]`), and client
//! authentication at the token endpoint.
//!
//! # Secrets
//!
//! A generated secret is 256 random bits behind the `sgcs_` prefix, shown
//! once and stored as its SHA-256 hash (DESIGN.md: only hashes of tokens
//! are stored; a secret of that entropy needs no slow hash). A secret
//! written in the configuration file must be at least
//! [`MIN_CONFIG_SECRET_LEN`] characters for the same reason.
//!
//! # Authentication (RFC 6749 §2.3.1)
//!
//! `client_secret_basic` (HTTP Basic, both parts form-urlencoded first, per
//! RFC 6749 §2.3.1 and Appendix B) and `client_secret_post` (form fields).
//! Using both at once is `invalid_request` (§2.3: "MUST NOT use more than
//! one authentication method in each request"). The presented secret is
//! hashed and compared in constant time; an unknown client is hashed too,
//! so the answer takes as long as for a wrong secret.
//!
//! # Redirect URIs
//!
//! Stored exactly as registered and compared exactly (RFC 9700 §4.1.3). At
//! registration a URI must be absolute without a fragment (RFC 6749
//! §3.1.2), and either `https`, `http` on a loopback host (RFC 8252 §7.3),
//! or a private-use scheme with a dot in it (RFC 8252 §7.1), so no URI can
//! send a code over plain HTTP across a network.

use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::{ClientSettings, ClientSource, GrantType, OidcClient};
use signet_core::secret::{PlainToken, TokenHash, TokenKind};
use signet_core::store::StoreError;
use signet_core::{Error, ErrorCode, Result};
use uuid::Uuid;

use super::error::{OAuthCode, OAuthError};
use crate::App;

/// The shortest client secret accepted from the configuration file.
pub const MIN_CONFIG_SECRET_LEN: usize = 32;
/// Longest name and client id accepted.
const MAX_NAME_LEN: usize = 100;

/// A client to register from the CLI (or, later, the admin API).
#[derive(Clone, Debug)]
pub struct NewClient {
    pub name: String,
    /// Confidential clients get a secret; public ones must use PKCE.
    pub public: bool,
    pub settings: ClientSettings,
}

/// A client declared in `[[oidc.clients]]`. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfiguredClient {
    pub client_id: String,
    pub name: String,
    /// `None`: a public client.
    pub secret: Option<String>,
    pub settings: ClientSettings,
}

impl std::fmt::Debug for ConfiguredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("settings", &self.settings)
            .finish()
    }
}

/// Checks a client's settings. The message names the offending value.
pub fn validate_settings(settings: &ClientSettings) -> Result<()> {
    let invalid = |m: String| Error::invalid(ErrorCode::InvalidRequest, m);
    if settings.grant_types.is_empty() {
        return Err(invalid("a client needs at least one grant type".into()));
    }
    if settings.grant_types.contains(&GrantType::AuthorizationCode) && settings.redirect_uris.is_empty() {
        return Err(invalid(
            "a client using the authorization code grant needs at least one redirect URI".into(),
        ));
    }
    for uri in settings.redirect_uris.iter().chain(&settings.post_logout_redirect_uris) {
        check_redirect_uri(uri).map_err(|why| invalid(format!("redirect URI {uri:?}: {why}")))?;
    }
    if let Some(uri) = &settings.backchannel_logout_uri {
        check_redirect_uri(uri).map_err(|why| invalid(format!("back-channel logout URI {uri:?}: {why}")))?;
        // Signet POSTs the logout token itself: only http(s) can be reached.
        if !(uri.starts_with("https://") || uri.starts_with("http://")) {
            return Err(invalid(format!(
                "back-channel logout URI {uri:?}: must be https (or http on loopback)"
            )));
        }
    }
    if let Some(alg) = &settings.id_token_signed_response_alg {
        if super::keys::Alg::parse(alg).is_none() {
            return Err(invalid(format!(
                "id_token_signed_response_alg {alg:?} is not ES256 or RS256"
            )));
        }
    }
    for ttl in [
        settings.id_token_ttl_secs,
        settings.access_token_ttl_secs,
        settings.refresh_token_ttl_secs,
    ] {
        if ttl == 0 {
            return Err(invalid("token lifetimes must be positive".into()));
        }
    }
    Ok(())
}

/// Why a redirect URI cannot be registered.
pub fn check_redirect_uri(uri: &str) -> std::result::Result<(), &'static str> {
    let parsed = url::Url::parse(uri).map_err(|_| "not an absolute URI")?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err("must not contain a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain user information");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => match parsed.host() {
            Some(url::Host::Domain("localhost")) => Ok(()),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            _ => Err("plain http is allowed only on a loopback host"),
        },
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("scheme must be https, http on loopback, or a private-use scheme like com.example.app"),
    }
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            ErrorCode::InvalidRequest,
            format!("a client name is 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_client_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_NAME_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::invalid(
            ErrorCode::InvalidRequest,
            format!("a client_id is 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(())
}

fn id_taken(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(_) => Error::conflict(
            ErrorCode::OidcClientIdTaken,
            "a client with this client_id is already registered",
        ),
        other => other.into(),
    }
}

/// A fresh `client_id`: 16 random bytes in base64url (22 characters),
/// drawn again while the first character is `-` or `_`, so that a shell or
/// a command line never reads an id as an option. That leaves about 127.95
/// random bits.
fn fresh_client_id() -> String {
    loop {
        let mut raw = [0u8; 16];
        signet_core::secret::fill_random(&mut raw);
        let id = URL_SAFE_NO_PAD.encode(raw);
        if id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return id;
        }
    }
}

/// Registers a client with a fresh random `client_id` (128 bits) and, for
/// a confidential client, a fresh secret, returned once.
pub async fn register(
    app: &App,
    actor: &Actor,
    origin: &Origin,
    new: NewClient,
    source: ClientSource,
) -> Result<(OidcClient, Option<PlainToken>)> {
    let name = check_name(&new.name)?;
    check_client(new.public, &new.settings)?;
    let secret = (!new.public).then(|| PlainToken::generate(TokenKind::ClientSecret));
    let now = app.clock.now();
    let client = OidcClient {
        id: Uuid::new_v4(),
        client_id: fresh_client_id(),
        name,
        secret_hash: secret.as_ref().map(PlainToken::hash),
        settings: new.settings,
        source,
        created_at: now,
        updated_at: now,
        previous_secret: None,
    };
    let mut tx = app.store.begin().await?;
    tx.insert_oidc_client(&client).await.map_err(id_taken)?;
    let record = AuditEvent::new(EventType::OidcClientRegistered, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({
            "client_id": client.client_id,
            "name": client.name,
            "public": client.is_public(),
            "redirect_uris": client.settings.redirect_uris,
        }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    app.oidc.clients.forget(&client.client_id);
    Ok((client, secret))
}

/// Writes the clients of `[[oidc.clients]]` at start. A client whose
/// stored registration already matches is left alone (no write, no audit
/// record), so restarting a cluster does not flood the audit log; one that
/// changed is rewritten and audited. Several nodes starting together may
/// each write the same values: the write is idempotent.
pub async fn apply_config(app: &App, clients: &[ConfiguredClient]) -> Result<usize> {
    let mut prepared = Vec::with_capacity(clients.len());
    for c in clients {
        check_client_id(&c.client_id)?;
        let name = check_name(&c.name)?;
        validate_settings(&c.settings)
            .map_err(|e| Error::internal_msg(format!("[[oidc.clients]] {}: {e}", c.client_id)))?;
        if let Some(secret) = &c.secret {
            if secret.len() < MIN_CONFIG_SECRET_LEN {
                return Err(Error::internal_msg(format!(
                    "[[oidc.clients]] {}: client_secret must be at least {MIN_CONFIG_SECRET_LEN} characters",
                    c.client_id
                )));
            }
        }
        let existing = app.store.oidc_client(&c.client_id).await?;
        let secret_hash = c.secret.as_deref().map(|s| TokenHash::of(s.as_bytes()));
        if let Some(e) = &existing {
            if e.source == ClientSource::Config
                && e.name == name
                && e.settings == c.settings
                && e.secret_hash.as_ref().map(TokenHash::as_bytes) == secret_hash.as_ref().map(TokenHash::as_bytes)
            {
                continue;
            }
        }
        let now = app.clock.now();
        prepared.push(OidcClient {
            id: existing.as_ref().map(|e| e.id).unwrap_or_else(Uuid::new_v4),
            client_id: c.client_id.clone(),
            name,
            secret_hash,
            settings: c.settings.clone(),
            source: ClientSource::Config,
            created_at: existing.as_ref().map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            previous_secret: None,
        });
    }
    if prepared.is_empty() {
        return Ok(0);
    }
    let mut tx = app.store.begin().await?;
    for client in &prepared {
        tx.put_config_oidc_client(client).await.map_err(id_taken)?;
        let record = AuditEvent::new(EventType::OidcClientConfigured, Actor::System, Outcome::Success).details(json!({
            "client_id": client.client_id,
            "name": client.name,
            "public": client.is_public(),
            "redirect_uris": client.settings.redirect_uris,
        }));
        app.audit().append(&mut *tx, &record).await?;
    }
    tx.commit().await?;
    for client in &prepared {
        app.oidc.clients.forget(&client.client_id);
    }
    Ok(prepared.len())
}

/// Deletes a client and revokes everything it was granted (its codes,
/// refresh tokens and the access tokens issued from them), in one unit
/// with the audit record; `oidc_client_not_found` if there is none. A
/// client of `[[oidc.clients]]` comes back at the next start unless it is
/// removed from the file too.
pub async fn delete(app: &App, actor: &Actor, origin: &Origin, client_id: &str) -> Result<()> {
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    if !tx.delete_oidc_client(client_id).await? {
        return Err(Error::not_found(ErrorCode::OidcClientNotFound, "no such OIDC client"));
    }
    let revoked = tx.revoke_oidc_client_grants(client_id, None, now).await?;
    let record = AuditEvent::new(EventType::OidcClientDeleted, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "client_id": client_id, "grants_revoked": revoked }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    app.oidc.clients.forget(client_id);
    Ok(())
}

/// Changes to a client's settings; `None` keeps a value. Whether the client
/// is public cannot change (a secret would appear or vanish): register a
/// new client instead.
#[derive(Clone, Debug, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub first_party: Option<bool>,
    pub id_token_ttl_secs: Option<u64>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    /// `Some(None)` removes the URI.
    pub backchannel_logout_uri: Option<Option<String>>,
    pub assurance: Option<signet_core::oidc_client::ClientAssurance>,
    pub id_token_signed_response_alg: Option<String>,
}

impl ClientChanges {
    fn apply(self, settings: &mut ClientSettings) {
        let ClientChanges {
            name: _,
            redirect_uris,
            post_logout_redirect_uris,
            scopes,
            grant_types,
            first_party,
            id_token_ttl_secs,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            backchannel_logout_uri,
            assurance,
            id_token_signed_response_alg,
        } = self;
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        set(&mut settings.redirect_uris, redirect_uris);
        set(&mut settings.post_logout_redirect_uris, post_logout_redirect_uris);
        set(&mut settings.scopes, scopes);
        set(&mut settings.grant_types, grant_types);
        set(&mut settings.first_party, first_party);
        set(&mut settings.id_token_ttl_secs, id_token_ttl_secs);
        set(&mut settings.access_token_ttl_secs, access_token_ttl_secs);
        set(&mut settings.refresh_token_ttl_secs, refresh_token_ttl_secs);
        set(&mut settings.backchannel_logout_uri, backchannel_logout_uri);
        set(&mut settings.assurance, assurance);
        if let Some(alg) = id_token_signed_response_alg {
            settings.id_token_signed_response_alg = Some(alg);
        }
    }
}

fn managed_by_config() -> Error {
    Error::conflict(
        ErrorCode::OidcClientManagedByConfig,
        "this client is declared in [[oidc.clients]]: change it in the configuration file",
    )
}

/// Checks what only a whole client can tell: a public client has no secret
/// for `client_credentials`.
fn check_client(public: bool, settings: &ClientSettings) -> Result<()> {
    validate_settings(settings)?;
    if public && settings.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(Error::invalid(
            ErrorCode::InvalidRequest,
            "a public client cannot use the client_credentials grant (it has no secret)",
        ));
    }
    Ok(())
}

/// Changes a client's settings (audited as `oidc.client_updated` with the
/// names of the settings that changed). A client of `[[oidc.clients]]` is
/// `409 oidc_client_managed_by_config`: the file would undo the change at
/// the next start. Narrowing the redirect URIs or scopes affects new
/// authorizations; grants already issued keep working until they expire
/// or are revoked.
pub async fn update(
    app: &App,
    actor: &Actor,
    origin: &Origin,
    client_id: &str,
    changes: ClientChanges,
) -> Result<OidcClient> {
    let mut client = get(app, client_id).await?;
    if client.source == ClientSource::Config {
        return Err(managed_by_config());
    }
    let before = view(&client);
    if let Some(name) = &changes.name {
        client.name = check_name(name)?;
    }
    changes.apply(&mut client.settings);
    check_client(client.is_public(), &client.settings)?;
    client.updated_at = app.clock.now();
    let after = view(&client);
    let changed: Vec<&String> = after
        .as_object()
        .map(|a| {
            a.iter()
                .filter(|(k, v)| k.as_str() != "updated_at" && before.get(k.as_str()) != Some(v))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    let mut tx = app.store.begin().await?;
    if !tx.update_oidc_client(&client).await? {
        return Err(Error::not_found(ErrorCode::OidcClientNotFound, "no such OIDC client"));
    }
    let record = AuditEvent::new(EventType::OidcClientUpdated, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "client_id": client.client_id, "changed": changed }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    app.oidc.clients.forget(&client.client_id);
    Ok(client)
}

/// The default and the longest grace period of a rotated-out client secret.
pub const DEFAULT_SECRET_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
pub const MAX_SECRET_GRACE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Gives a confidential client a new secret, returned once. The secret it
/// replaces keeps authenticating for `grace` (default
/// [`DEFAULT_SECRET_GRACE`], at most [`MAX_SECRET_GRACE`]; zero ends it at
/// once) so the app can be redeployed without an outage; a secret replaced
/// before is forgotten, so at most two are ever valid. Audited as
/// `oidc.client_secret_rotated`, never with either secret.
pub async fn rotate_secret(
    app: &App,
    actor: &Actor,
    origin: &Origin,
    client_id: &str,
    grace: Option<std::time::Duration>,
) -> Result<(OidcClient, PlainToken)> {
    let grace = grace.unwrap_or(DEFAULT_SECRET_GRACE);
    if grace > MAX_SECRET_GRACE {
        return Err(Error::invalid(
            ErrorCode::InvalidRequest,
            format!("grace_secs is at most {}", MAX_SECRET_GRACE.as_secs()),
        ));
    }
    let client = get(app, client_id).await?;
    if client.source == ClientSource::Config {
        return Err(managed_by_config());
    }
    if client.is_public() {
        return Err(Error::invalid(
            ErrorCode::InvalidRequest,
            "a public client has no secret to rotate",
        ));
    }
    let secret = PlainToken::generate(TokenKind::ClientSecret);
    let now = app.clock.now();
    let previous_expires_at = now.plus(grace);
    let mut tx = app.store.begin().await?;
    if !tx
        .rotate_oidc_client_secret(client_id, &secret.hash(), previous_expires_at, now)
        .await?
    {
        return Err(Error::not_found(ErrorCode::OidcClientNotFound, "no such OIDC client"));
    }
    let record = AuditEvent::new(EventType::OidcClientSecretRotated, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({
            "client_id": client_id,
            "previous_secret_expires_at": previous_expires_at.to_rfc3339(),
        }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    app.oidc.clients.forget(client_id);
    let client = get(app, client_id).await?;
    Ok((client, secret))
}

/// One client, `oidc_client_not_found` if there is none.
pub async fn get(app: &App, client_id: &str) -> Result<OidcClient> {
    app.store
        .oidc_client(client_id)
        .await?
        .ok_or_else(|| Error::not_found(ErrorCode::OidcClientNotFound, "no such OIDC client"))
}

/// What the admin API and the CLI show of a client: never the secret or
/// its hash.
pub fn view(client: &OidcClient) -> serde_json::Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public(),
        "source": client.source.as_str(),
        "redirect_uris": client.settings.redirect_uris,
        "post_logout_redirect_uris": client.settings.post_logout_redirect_uris,
        "scopes": client.settings.scopes,
        "grant_types": client.settings.grant_types,
        "first_party": client.settings.first_party,
        "id_token_ttl_secs": client.settings.id_token_ttl_secs,
        "access_token_ttl_secs": client.settings.access_token_ttl_secs,
        "refresh_token_ttl_secs": client.settings.refresh_token_ttl_secs,
        "backchannel_logout_uri": client.settings.backchannel_logout_uri,
        "backchannel_logout_session_required": client.settings.backchannel_logout_session_required,
        "assurance": client.settings.assurance,
        "id_token_signed_response_alg": client.settings.id_token_signed_response_alg.as_deref().unwrap_or("ES256"),
        "previous_secret_expires_at": client.previous_secret.as_ref().map(|p| p.expires_at.to_rfc3339()),
        "created_at": client.created_at.to_rfc3339(),
        "updated_at": client.updated_at.to_rfc3339(),
    })
}

/// How a client presented itself at the token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` (`client_secret_basic`).
    Basic { client_id: String, secret: String },
    /// `client_id` and `client_secret` form fields (`client_secret_post`).
    Post { client_id: String, secret: String },
    /// Only a `client_id` (a public client).
    None { client_id: String },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Basic { client_id, .. } => write!(f, "Basic({client_id}, <redacted>)"),
            ClientAuth::Post { client_id, .. } => write!(f, "Post({client_id}, <redacted>)"),
            ClientAuth::None { client_id } => write!(f, "None({client_id})"),
        }
    }
}

impl ClientAuth {
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Basic { client_id, .. }
            | ClientAuth::Post { client_id, .. }
            | ClientAuth::None { client_id } => client_id,
        }
    }

    /// Decides the method from what the request carried: the `Authorization`
    /// header's value (if any) and the `client_id`/`client_secret` form
    /// fields. More than one method, or none, is `invalid_request`; a
    /// malformed Basic header is `invalid_client`.
    pub fn from_request(
        authorization: Option<&str>,
        form_client_id: Option<&str>,
        form_secret: Option<&str>,
    ) -> std::result::Result<Self, OAuthError> {
        match (authorization, form_client_id, form_secret) {
            (Some(header), id, secret) => {
                let (client_id, secret_basic) = parse_basic(header).ok_or_else(|| {
                    OAuthError::new(
                        OAuthCode::InvalidClient,
                        "the Authorization header is not valid HTTP Basic",
                    )
                })?;
                if secret.is_some() || id.is_some_and(|id| id != client_id) {
                    return Err(OAuthError::new(
                        OAuthCode::InvalidRequest,
                        "use one client authentication method per request",
                    ));
                }
                Ok(ClientAuth::Basic {
                    client_id,
                    secret: secret_basic,
                })
            }
            (None, Some(client_id), Some(secret)) => Ok(ClientAuth::Post {
                client_id: client_id.to_owned(),
                secret: secret.to_owned(),
            }),
            (None, Some(client_id), None) => Ok(ClientAuth::None {
                client_id: client_id.to_owned(),
            }),
            (None, None, _) => Err(OAuthError::new(
                OAuthCode::InvalidClient,
                "client authentication is required",
            )),
        }
    }
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one value (RFC 6749
/// Appendix B): `+` is a space, `%XX` a byte. A malformed escape is `None`.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Authenticates the client. Every failure is the same `invalid_client`
/// ("Client authentication failed", RFC 6749 §5.2), whether the client is
/// unknown, the secret wrong, or a secret was sent for a public client.
///
/// The client comes from the node's memory ([`super::client_cache`]); one
/// that fails is read again, so a secret rotated through another node is
/// accepted at once.
pub async fn authenticate(app: &App, auth: &ClientAuth) -> std::result::Result<OidcClient, OAuthError> {
    let failed = || OAuthError::new(OAuthCode::InvalidClient, "client authentication failed");
    let presented = match auth {
        ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. } => Some(TokenHash::of(secret.as_bytes())),
        ClientAuth::None { .. } => None,
    };
    let now = app.clock.now();
    let cache = &app.oidc.clients;
    let (client, just_read) = cache.lookup(app, auth.client_id()).await?;
    if let Some(client) = client.filter(|c| accepts(c, presented.as_ref(), now)) {
        return Ok(client);
    }
    // Every failure costs one read: a remembered client is read again (its
    // secret may have been rotated elsewhere), one just read is not.
    if just_read {
        return Err(failed());
    }
    match cache.read(app, auth.client_id()).await? {
        Some(client) if accepts(&client, presented.as_ref(), now) => Ok(client),
        _ => Err(failed()),
    }
}

/// Whether `client` accepts the secret presented (or its absence).
fn accepts(client: &OidcClient, presented: Option<&TokenHash>, now: signet_core::clock::Timestamp) -> bool {
    match (&client.secret_hash, presented) {
        // The current secret, or the previous one in its grace period.
        // Every accepted hash is compared, so the time taken does not tell
        // which one matched.
        (Some(_), Some(presented)) => client
            .accepted_secret_hashes(now)
            .into_iter()
            .fold(false, |any, h| h.ct_eq(presented) | any),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_client_id_never_reads_as_a_command_line_option() {
        // One in 32 encodings starts with `-` or `_`: 2,000 draws would
        // almost surely have met one.
        for _ in 0..2_000 {
            let id = fresh_client_id();
            assert_eq!(id.len(), 22);
            assert!(id.starts_with(|c: char| c.is_ascii_alphanumeric()), "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:s%2Bcr+t%3A"));
        assert_eq!(parse_basic(&header), Some(("my app".into(), "s+cr t:".into())));
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic(&format!("Basic {}", STANDARD.encode("nocolon"))), None);
        assert_eq!(parse_basic(&format!("Basic {}", STANDARD.encode("a:%zz"))), None);
    }

    #[test]
    fn two_authentication_methods_at_once_are_refused() {
        let header = format!("Basic {}", STANDARD.encode("app:secret"));
        let both = ClientAuth::from_request(Some(&header), Some("app"), Some("secret"));
        assert!(matches!(
            both,
            Err(OAuthError::Refused {
                code: OAuthCode::InvalidRequest,
                ..
            })
        ));
        assert!(matches!(
            ClientAuth::from_request(None, None, None),
            Err(OAuthError::Refused {
                code: OAuthCode::InvalidClient,
                ..
            })
        ));
        assert_eq!(
            ClientAuth::from_request(None, Some("app"), Some("s")).unwrap(),
            ClientAuth::Post {
                client_id: "app".into(),
                secret: "s".into()
            }
        );
    }

    #[test]
    fn redirect_uris_must_not_leak_codes() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8400/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user@app.example.com/cb",
            "/relative/cb",
            "javascript:alert(1)",
            "myapp:/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_configured_secret_never_shows_in_debug_output() {
        let c = ConfiguredClient {
            client_id: "wiki".into(),
            name: "Wiki".into(),
            secret: Some("super-secret-value-0123456789abcdef".into()),
            settings: ClientSettings::default(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn a_code_client_needs_a_redirect_uri() {
        let settings = ClientSettings::default();
        assert!(validate_settings(&settings).is_err());
        let settings = ClientSettings {
            redirect_uris: vec!["https://app.example.com/cb".into()],
            ..Default::default()
        };
        assert!(validate_settings(&settings).is_ok());
    }
}
