//! Every stable error code Signet can put in `{"error": "<code>"}`, as a type.
//!
//! Why an enum and not `&'static str`: a code is part of the public API
//! (clients branch on it, docs/api.md lists it), and a string literal at a
//! call site can be misspelled, invented ad hoc, or drift from the docs
//! without anything noticing. With [`ErrorCode`]:
//! - the set of codes is closed and listed once ([`ErrorCode::ALL`]);
//! - each code carries its HTTP status class ([`Status`]), so `signet-web`
//!   derives the status from the code instead of matching on strings;
//! - a test in `signet-web` parses the error-code table of docs/api.md and
//!   compares it with [`ErrorCode::ALL`] both ways, so code and docs cannot
//!   drift (ADR 0008).
//!
//! What must stay true: [`ErrorCode::as_str`] values never change once
//! released (rename a variant freely, never its string). A string may appear
//! under two variants only when the two mean different things at different
//! statuses, and docs/api.md then lists both (today: `credential_not_found`
//! as a 400 at passkey login versus a 404 on `/api/v1/credentials/{id}`, and
//! `method_not_allowed` for an authentication method (400) versus an HTTP
//! method (405)). The pair (string, status) is unique.
//!
//! OAuth 2.0 / OpenID Connect endpoints will not use these codes: RFC 6749
//! §5.2 fixes their error body (`{"error": "invalid_grant",
//! "error_description": ...}`, mostly with status 400 or 401) and its code
//! set. They will get their own error type next to the OIDC provider instead
//! of bending this one to fit.

/// The HTTP status class of an error code. `core` knows no HTTP library, so
/// this is a plain enum with the number attached; `signet-web` converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    Gone,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl Status {
    pub const fn http_status(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::Conflict => 409,
            Status::Gone => 410,
            Status::PayloadTooLarge => 413,
            Status::UnsupportedMediaType => 415,
            Status::TooManyRequests => 429,
            Status::Internal => 500,
            Status::Unavailable => 503,
        }
    }
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal => $status:ident, )*) => {
        /// A stable error code. See the module docs and docs/api.md#error-codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of docs/api.md's table.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable snake_case string sent as `{"error": ...}`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $code, )*
                }
            }

            /// The status class every response with this code gets.
            pub const fn status(self) -> Status {
                match self {
                    $( ErrorCode::$variant => Status::$status, )*
                }
            }

            pub const fn http_status(self) -> u16 {
                self.status().http_status()
            }
        }
    };
}

error_codes! {
    // 400: the request is malformed or a value is invalid.
    /// The body is not valid JSON (or is empty).
    InvalidJson = "invalid_json" => BadRequest,
    /// The body has the wrong shape, cannot be read, or the framework refused it with 400.
    InvalidRequest = "invalid_request" => BadRequest,
    InvalidQuery = "invalid_query" => BadRequest,
    InvalidEmail = "invalid_email" => BadRequest,
    InvalidPhone = "invalid_phone" => BadRequest,
    /// A valid number Signet will not text: a country off `[sms] allowed_countries`,
    /// or a range that cannot take or must not get a code (premium rate, VoIP, fixed line).
    PhoneNotAllowed = "phone_not_allowed" => BadRequest,
    InvalidRole = "invalid_role" => BadRequest,
    InvalidName = "invalid_name" => BadRequest,
    /// A recovery ticket's reason or evidence is missing or too long.
    InvalidTicket = "invalid_ticket" => BadRequest,
    /// An admin token's ceiling names no tier of the policy.
    InvalidTier = "invalid_tier" => BadRequest,
    InvalidIdentifier = "invalid_identifier" => BadRequest,
    InvalidReturnTo = "invalid_return_to" => BadRequest,
    InvalidUserId = "invalid_user_id" => BadRequest,
    InvalidEventType = "invalid_event_type" => BadRequest,
    /// The *authentication* method named in a path is not offered at this step.
    MethodNotAllowed = "method_not_allowed" => BadRequest,
    MethodHasNoSend = "method_has_no_send" => BadRequest,
    IdentifierRequired = "identifier_required" => BadRequest,
    InvalidCode = "invalid_code" => BadRequest,
    UnknownAction = "unknown_action" => BadRequest,
    // Passkey responses that are malformed or fail a WebAuthn check (signet-passkey).
    InvalidCredential = "invalid_credential" => BadRequest,
    CeremonyTypeMismatch = "ceremony_type_mismatch" => BadRequest,
    ChallengeMismatch = "challenge_mismatch" => BadRequest,
    OriginMismatch = "origin_mismatch" => BadRequest,
    RpIdMismatch = "rp_id_mismatch" => BadRequest,
    UserPresenceRequired = "user_presence_required" => BadRequest,
    InvalidSignature = "invalid_signature" => BadRequest,
    UserHandleMismatch = "user_handle_mismatch" => BadRequest,
    AlgorithmNotAllowed = "algorithm_not_allowed" => BadRequest,
    CeremonyInvalid = "ceremony_invalid" => BadRequest,
    InvalidUserName = "invalid_user_name" => BadRequest,
    /// At passkey login: the passkey is not registered here (also every decoy).
    PasskeyNotRegistered = "credential_not_found" => BadRequest,
    // 401
    Unauthenticated = "unauthenticated" => Unauthorized,
    // 403
    CrossOriginRequest = "cross_origin_request" => Forbidden,
    FlowBindingMismatch = "flow_binding_mismatch" => Forbidden,
    StepUpSessionMismatch = "step_up_session_mismatch" => Forbidden,
    FallbackLimitReached = "fallback_limit_reached" => Forbidden,
    InsufficientScope = "insufficient_scope" => Forbidden,
    UserVerificationRequired = "user_verification_required" => Forbidden,
    BackupEligibilityChanged = "backup_eligibility_changed" => Forbidden,
    CounterRegression = "counter_regression" => Forbidden,
    SyncedPasskeyNotAllowed = "synced_passkey_not_allowed" => Forbidden,
    AuthenticatorNotAllowed = "authenticator_not_allowed" => Forbidden,
    UserMismatch = "user_mismatch" => Forbidden,
    OtherDevice = "other_device" => Forbidden,
    StepUpRequired = "step_up_required" => Forbidden,
    /// An admin may not approve a ticket it created itself.
    OwnTicket = "own_ticket" => Forbidden,
    /// The user's tier ranks above the admin token's ceiling.
    AboveCeiling = "above_ceiling" => Forbidden,
    /// The user's tier does not list the `helpdesk` recovery path.
    HelpdeskNotAllowed = "helpdesk_not_allowed" => Forbidden,
    // 404
    NotFound = "not_found" => NotFound,
    UserNotFound = "user_not_found" => NotFound,
    SessionNotFound = "session_not_found" => NotFound,
    /// On `/api/v1/credentials/{id}`: no such credential of the caller's.
    CredentialNotFound = "credential_not_found" => NotFound,
    UnknownMethod = "unknown_method" => NotFound,
    AdminTokenNotFound = "admin_token_not_found" => NotFound,
    /// No OIDC client with this `client_id`.
    OidcClientNotFound = "oidc_client_not_found" => NotFound,
    /// No help-desk recovery ticket with this id.
    TicketNotFound = "ticket_not_found" => NotFound,
    // Framework statuses (signet-web's `json_errors` layer).
    /// The *HTTP* method is not supported on this path.
    HttpMethodNotAllowed = "method_not_allowed" => MethodNotAllowed,
    RequestTimeout = "request_timeout" => RequestTimeout,
    PayloadTooLarge = "payload_too_large" => PayloadTooLarge,
    UnsupportedMediaType = "unsupported_media_type" => UnsupportedMediaType,
    // 409
    EmailTaken = "email_taken" => Conflict,
    UserDisabled = "user_disabled" => Conflict,
    /// An invitation for an account that can already sign in: it could not
    /// add a credential (binding one needs a step-up the invitation cannot
    /// give). The account is recovered instead.
    AccountHasCredentials = "account_has_credentials" => Conflict,
    AdminTokenNameTaken = "admin_token_name_taken" => Conflict,
    /// An OIDC client with this `client_id` is registered already.
    OidcClientIdTaken = "oidc_client_id_taken" => Conflict,
    /// The client comes from `[[oidc.clients]]`: change it in the file.
    OidcClientManagedByConfig = "oidc_client_managed_by_config" => Conflict,
    /// The admin already approved (or created) this ticket.
    TicketAlreadyApproved = "ticket_already_approved" => Conflict,
    /// The ticket is approved already, or expired: it takes no approvals.
    TicketClosed = "ticket_closed" => Conflict,
    FlowConflict = "flow_conflict" => Conflict,
    CredentialAlreadyRegistered = "credential_already_registered" => Conflict,
    LastCredential = "last_credential" => Conflict,
    CredentialInUse = "credential_in_use" => Conflict,
    SecretExists = "secret_exists" => Conflict,
    /// A passkey ceremony with the same id already exists (a random UUID: not in practice).
    CeremonyExists = "ceremony_exists" => Conflict,
    /// The account has a verified phone already: remove it before adding another.
    PhoneExists = "phone_exists" => Conflict,
    CodeReplayed = "code_replayed" => Conflict,
    // 410
    CeremonyExpired = "ceremony_expired" => Gone,
    /// `phone/verify` without a live `phone` enrollment of this session (none, expired, or ended by five wrong codes).
    NoPhonePending = "no_phone_pending" => Gone,
    InvitationInvalid = "invitation_invalid" => Gone,
    NotMeLinkInvalid = "not_me_link_invalid" => Gone,
    /// A help-desk recovery link that is malformed, unknown, used or expired.
    RecoveryLinkInvalid = "recovery_link_invalid" => Gone,
    FlowExpired = "flow_expired" => Gone,
    TooManyAttempts = "too_many_attempts" => Gone,
    CodeUsed = "code_used" => Gone,
    CodeExpired = "code_expired" => Gone,
    LinkInvalid = "link_invalid" => Gone,
    // 429
    RateLimited = "rate_limited" => TooManyRequests,
    // 503: always with `Retry-After`.
    /// A dependency such as the database cannot be reached.
    Unavailable = "unavailable" => Unavailable,
    /// Storage cannot take a write because it is out of space.
    StorageFull = "storage_full" => Unavailable,
    /// Storage cannot take a write now because a lock was held too long.
    StorageBusy = "storage_busy" => Unavailable,
    /// Admission control refused the request (its class's in-flight budget, or the
    /// connection cap, is full): nothing was done.
    Overloaded = "overloaded" => Unavailable,
    /// The request did not finish within `[limits] request_timeout`; its unit of
    /// work was rolled back unless the deadline struck during the commit.
    DeadlineExceeded = "deadline_exceeded" => Unavailable,
    // 500
    Internal = "internal" => Internal,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_snake_case_and_each_string_status_pair_is_unique() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(
                seen.insert((s, c.http_status())),
                "{s} {} listed twice",
                c.http_status()
            );
        }
    }

    #[test]
    fn a_string_is_shared_only_by_the_two_documented_pairs() {
        let mut strings: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        strings.sort_unstable();
        let mut dup: Vec<&str> = strings.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        dup.dedup();
        assert_eq!(dup, ["credential_not_found", "method_not_allowed"]);
    }

    /// The `(code, status)` pairs of the table under `## Error codes` in
    /// docs/api.md. A row may name several codes (`a`, `b`) and several
    /// statuses (`400 / 404`): each code exists at each status.
    fn documented_pairs() -> HashSet<(String, u16)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let doc = std::fs::read_to_string(path).expect("docs/api.md");
        let table = doc
            .split("\n## Error codes\n")
            .nth(1)
            .expect("an `## Error codes` section");
        let table = table.split("\n## ").next().unwrap_or(table);
        let mut pairs = HashSet::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (codes, statuses) = (cells[1], cells[2]);
            let statuses: Vec<u16> = statuses
                .split('/')
                .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("status in {row}")))
                .collect();
            for code in codes.split(',').map(|c| c.trim().trim_matches('`')) {
                for status in &statuses {
                    pairs.insert((code.to_owned(), *status));
                }
            }
        }
        pairs
    }

    #[test]
    fn docs_api_md_lists_every_code_with_its_status_and_no_other() {
        let documented = documented_pairs();
        let built: HashSet<(String, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), c.http_status()))
            .collect();
        let mut undocumented: Vec<_> = built.difference(&documented).collect();
        undocumented.sort();
        assert!(
            undocumented.is_empty(),
            "codes missing from docs/api.md (or with another status there): {undocumented:?}"
        );
        let mut unknown: Vec<_> = documented.difference(&built).collect();
        unknown.sort();
        assert!(
            unknown.is_empty(),
            "docs/api.md lists codes that ErrorCode does not have (or at another status): {unknown:?}"
        );
    }

    #[test]
    fn storage_codes_are_503() {
        for c in [
            ErrorCode::Unavailable,
            ErrorCode::StorageFull,
            ErrorCode::StorageBusy,
            ErrorCode::Overloaded,
            ErrorCode::DeadlineExceeded,
        ] {
            assert_eq!(c.http_status(), 503);
        }
    }
}
