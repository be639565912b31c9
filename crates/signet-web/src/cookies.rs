//! Cookie names and `Set-Cookie` values.
//!
//! Session cookies are `HttpOnly; SameSite=Lax; Path=/`. When `public_url`
//! is https they are also `Secure` and carry the `__Host-` prefix, which
//! browsers only accept from a secure origin without a `Domain` attribute,
//! so a sibling subdomain cannot plant or overwrite them.

use axum::http::{header, HeaderMap, HeaderValue};

#[derive(Clone, Debug)]
pub struct CookieNames {
    pub session: &'static str,
    /// Binds a flow to the browser that started it.
    pub flow: &'static str,
    secure: bool,
}

impl CookieNames {
    pub fn new(secure: bool) -> Self {
        if secure {
            Self {
                session: "__Host-signet_session",
                flow: "__Host-signet_flow",
                secure,
            }
        } else {
            Self {
                session: "signet_session",
                flow: "signet_flow",
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
