//! Cookie names and `Set-Cookie` values.
//!
//! Session cookies are `HttpOnly; SameSite=Lax; Path=/`. When `public_url`
//! is https they are also `Secure` and carry the `__Host-` prefix, which
//! browsers only accept from a secure origin without a `Domain` attribute,
//! so a sibling subdomain cannot plant or overwrite them.

use axum::http::{header, HeaderMap, HeaderValue};
use signet_core::secret::{PlainToken, TokenHash, TokenKind};

#[derive(Clone, Debug)]
pub struct CookieNames {
    pub session: &'static str,
    /// Binds a flow to the browser that started it.
    pub flow: &'static str,
    /// Tells a browser the account used before from a new one
    /// (`signet_app::devices`). Authenticates nothing.
    pub device: &'static str,
    secure: bool,
}

impl CookieNames {
    pub fn new(secure: bool) -> Self {
        if secure {
            Self {
                session: "__Host-signet_session",
                flow: "__Host-signet_flow",
                device: "__Host-signet_device",
                secure,
            }
        } else {
            Self {
                session: "signet_session",
                flow: "signet_flow",
                device: "signet_device",
                secure,
            }
        }
    }

    pub fn is_ours(&self, name: &str) -> bool {
        name == self.session || name == self.flow
    }

    /// The `Set-Cookie` value carrying a freshly issued session, living as
    /// long as the session's absolute lifetime.
    pub fn for_session(&self, issued: &signet_app::sessions::Issued) -> Option<HeaderValue> {
        let s = &issued.session;
        let secs = (s.absolute_expires_at.as_millis() - s.created_at.as_millis()) / 1000;
        self.set(
            self.session,
            issued.token.expose_secret(),
            Some(u64::try_from(secs).unwrap_or(0)),
        )
    }

    /// A `Set-Cookie` value; `max_age` of `None` deletes the cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> Option<HeaderValue> {
        let age = max_age.unwrap_or(0);
        let value = if max_age.is_some() { value } else { "" };
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}"
        ))
        .ok()
    }
}

/// The value of cookie `name` in the request, if present exactly once.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name {
                    if found.is_some() {
                        // Two cookies with our name: someone planted one. Trust neither.
                        return None;
                    }
                    found = Some(v);
                }
            }
        }
    }
    found
}

/// How long a browser keeps its device cookie: 400 days, the most a
/// browser honours (RFC 6265bis §5.6.2).
pub const DEVICE_MAX_AGE: u64 = 400 * 86_400;

/// The device cookie of a request that had none, minted when first asked
/// for: by the handler, as the request's device ([`device`]), or by the
/// response that issues a session. A request that needs neither (a relying
/// party's call to the token endpoint) costs no random bits and no hash.
#[derive(Clone, Default)]
pub struct NewDevice(std::sync::Arc<std::sync::OnceLock<(PlainToken, TokenHash)>>);

impl NewDevice {
    fn minted(&self) -> &(PlainToken, TokenHash) {
        self.0.get_or_init(|| {
            let token = PlainToken::generate(TokenKind::Device);
            let hash = token.hash();
            (token, hash)
        })
    }
}

/// The device of the request: its device cookie's hash, or the one minted
/// for it ([`device_cookie`]).
pub fn device(headers: &HeaderMap, extensions: &axum::http::Extensions, names: &CookieNames) -> Option<TokenHash> {
    read(headers, names.device)
        .and_then(|v| PlainToken::parse(TokenKind::Device, v))
        .map(|t| t.hash())
        .or_else(|| extensions.get::<NewDevice>().map(|d| d.minted().1))
}

/// Gives a browser its device cookie with the first session issued to it
/// (`signet_app::devices`): a request without one gets a token (minted when
/// first asked for, [`NewDevice`]), whose hash the handler sees as the
/// request's device, and the response sets it only when it sets a session
/// cookie, so a visitor who never signs in is given nothing. Only a POST
/// can issue a session, so only a POST gets a token.
pub async fn device_cookie(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let names = state.cookies.clone();
    let has = read(req.headers(), names.device)
        .and_then(|v| PlainToken::parse(TokenKind::Device, v))
        .is_some();
    // Sessions are only ever issued to a POST.
    let new = (!has && req.method() == axum::http::Method::POST).then(NewDevice::default);
    if let Some(new) = &new {
        req.extensions_mut().insert(new.clone());
    }
    let mut resp = next.run(req).await;
    let Some(new) = new else { return resp };
    // A session cookie set, not deleted (`name=;`).
    let issues_session = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix(names.session)?.strip_prefix('='))
        .any(|value| !value.starts_with(';'));
    if issues_session {
        let (token, _) = new.minted();
        if let Some(v) = names.set(names.device, token.expose_secret(), Some(DEVICE_MAX_AGE)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Whether the request carries any of our cookies.
pub fn has_ours(headers: &HeaderMap, names: &CookieNames) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(';'))
        .filter_map(|p| p.trim().split_once('=').map(|(k, _)| k))
        .any(|k| names.is_ours(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_names_use_host_prefix() {
        let c = CookieNames::new(true);
        assert_eq!(c.session, "__Host-signet_session");
        let v = c.set(c.session, "abc", Some(60)).unwrap();
        let v = v.to_str().unwrap();
        assert!(v.contains("Secure") && v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.contains("Path=/"));
        assert!(!v.contains("Domain"));
    }

    #[test]
    fn duplicate_cookie_is_distrusted() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("signet_session=a; other=1; signet_session=b"),
        );
        assert_eq!(read(&h, "signet_session"), None);
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; signet_session=a"));
        assert_eq!(read(&h, "signet_session"), Some("a"));
    }
}
