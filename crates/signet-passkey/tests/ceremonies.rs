//! The ceremonies end to end against a software authenticator, and one
//! negative test per WebAuthn L3 §7.2 check (plus the registration and
//! policy checks), each changing exactly one thing in an otherwise valid,
//! validly signed response. One test binary on purpose (fast to link).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use signet_core::policy::{PasskeyPolicy, UserVerification};
use signet_core::session::Aal;
use signet_core::user::UserId;
use signet_passkey::{
    Assertion, AuthenticationState, CounterPolicy, CredentialId, CredentialPublicKey, NewPasskey, PasskeyError,
    RegistrationState, RelyingParty, RelyingPartyConfig, StoredPasskey, Verified, Verifier,
};
use support::*;
use url::Url;
use uuid::Uuid;

const DECOY_KEY: &[u8] = b"a server secret of 32 bytes.....";

fn rp() -> RelyingParty {
    let mut c = RelyingPartyConfig::new(Url::parse(ORIGIN).unwrap());
    c.rp_id = Some(RP_ID.into());
    RelyingParty::new(&c).unwrap()
}

fn default_policy() -> PasskeyPolicy {
    PasskeyPolicy::default()
}

fn preferred() -> PasskeyPolicy {
    PasskeyPolicy {
        user_verification: UserVerification::Preferred,
        ..PasskeyPolicy::default()
    }
}

fn device_bound() -> PasskeyPolicy {
    PasskeyPolicy {
        device_bound_only: true,
        ..PasskeyPolicy::default()
    }
}

fn allow_only(aaguid: &str) -> PasskeyPolicy {
    PasskeyPolicy {
        allowed_aaguids: vec![Uuid::parse_str(aaguid).unwrap()],
        ..PasskeyPolicy::default()
    }
}

/// What the store would give back for a freshly inserted passkey.
fn stored(new: &NewPasskey) -> StoredPasskey {
    StoredPasskey {
        id: Uuid::new_v4(),
        user_id: new.user_id,
        credential_id: new.credential_id.clone(),
        passkey: new.passkey.clone(),
        counter: new.counter,
        backup_eligible: new.backup_eligible,
        backup_state: new.backup_state,
        aaguid: new.aaguid,
        transports: new.transports.clone(),
    }
}

/// The single UPDATE a login makes.
fn apply(s: &mut StoredPasskey, v: &Verified) {
    assert_eq!(s.counter, v.previous_counter);
    s.counter = v.counter;
    s.backup_state = v.backup_state;
}

async fn register(
    rp: &RelyingParty,
    auth: &mut SoftAuthenticator,
    user: UserId,
    policy: &PasskeyPolicy,
) -> Result<NewPasskey, PasskeyError> {
    let (options, state) = rp.start_registration(user, "ada@example.com", "Ada", &[], policy)?;
    let response = auth.create(&options).await;
    rp.finish_registration(state, &response, policy)
}

async fn enrolled(aaguid: &str, counting: bool) -> (RelyingParty, SoftAuthenticator, StoredPasskey) {
    let rp = rp();
    let mut auth = SoftAuthenticator::new(aaguid, true, counting);
    let new = register(&rp, &mut auth, UserId::new(), &default_policy())
        .await
        .unwrap();
    (rp, auth, stored(&new))
}

/// Finishes with the server's verifier (aws-lc-rs), and holds the previous
/// path (webauthn-rs-core verifying the signature itself) to the same
/// verdict, so every ceremony test below is also an agreement test.
fn finish(
    rp: &RelyingParty,
    state: AuthenticationState,
    response: &Value,
    s: &StoredPasskey,
    policy: &PasskeyPolicy,
) -> Result<Verified, PasskeyError> {
    let assertion = Assertion::parse(response)?;
    let reference = rp.finish_authentication_by(
        Verifier::WebauthnCore,
        state.clone(),
        &assertion,
        s,
        policy,
        CounterPolicy::Strict,
    );
    let verdict = rp.finish_authentication(state, &assertion, s, policy, CounterPolicy::Strict);
    assert_eq!(
        verdict.as_ref().map_err(PasskeyError::code),
        reference.as_ref().map_err(PasskeyError::code),
        "aws-lc-rs and webauthn-rs-core disagree"
    );
    verdict
}

fn code(r: Result<impl std::fmt::Debug, PasskeyError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.code().as_str(),
    }
}

// ---------------------------------------------------------------- happy paths

#[tokio::test]
async fn registration_creates_a_discoverable_uv_credential_and_reads_the_aaguid() {
    let rp = rp();
    let user = UserId::new();
    let (options, state) = rp
        .start_registration(user, "ada@example.com", "Ada Lovelace", &[], &default_policy())
        .unwrap();
    // The options: L3 JSON, base64url without padding, discoverable, UV required.
    assert_eq!(options["rp"], json!({"id": RP_ID, "name": "Signet"}));
    assert_eq!(options["user"]["id"], json!(b64(user.0.as_bytes())));
    assert_eq!(options["user"]["name"], "ada@example.com");
    assert_eq!(options["user"]["displayName"], "Ada Lovelace");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["requireResidentKey"], true);
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(options["attestation"], "none");
    assert_eq!(options["extensions"]["credProps"], true);
    assert_eq!(
        options["extensions"]["credentialProtectionPolicy"],
        "userVerificationRequired"
    );
    assert_eq!(options["pubKeyCredParams"][0], json!({"type": "public-key", "alg": -7}));
    let challenge = options["challenge"].as_str().unwrap();
    assert_eq!(unb64(challenge).len(), 32);
    assert!(!challenge.contains('=') && !challenge.contains('+') && !challenge.contains('/'));

    let mut auth = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    let response = auth.create(&options).await;
    // webauthn-rs-core drops the AAGUID of a "none" attestation; we read it.
    let new = rp.finish_registration(state, &response, &default_policy()).unwrap();
    assert_eq!(new.user_id, user);
    assert_eq!(new.aaguid, Uuid::parse_str(ONE_PASSWORD).unwrap());
    assert_eq!(new.authenticator_name, Some("1Password"));
    assert_eq!(new.credential_id.as_bytes(), auth.passkey().credential_id.as_slice());
    assert!(new.user_verified);
    // passkey-authenticator is a synced authenticator, like 1Password's.
    assert!(new.backup_eligible && new.backup_state);
    assert_eq!(new.counter, 0);
    assert_eq!(new.transports, vec!["internal", "hybrid"]);
    assert_eq!(new.discoverable, Some(true));
}

#[tokio::test]
async fn sign_in_with_an_identifier_lists_the_users_passkeys() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    assert_eq!(options["rpId"], RP_ID);
    assert_eq!(options["userVerification"], "required");
    assert_eq!(
        options["allowCredentials"],
        json!([{"type": "public-key", "id": s.credential_id.to_base64url(), "transports": ["internal", "hybrid"]}])
    );
    assert_eq!(state.identified_user(), Some(s.user_id));

    let response = auth.get(&options).await;
    let v = finish(&rp, state, &response, &s, &default_policy()).unwrap();
    assert_eq!(
        (v.user_id, v.credential, v.credential_id.clone()),
        (s.user_id, s.id, s.credential_id.clone())
    );
    assert!(v.user_verified && v.backup_eligible && v.backup_state && !v.counter_regressed);
    let proof = v.proof(&default_policy());
    assert_eq!(proof.aal, Aal::Aal2);
    assert_eq!(proof.amr, vec!["swk", "user", "mfa"]);
    assert!(proof.phishing_resistant);
    assert_eq!(proof.credential_id, Some(s.id));
}

#[tokio::test]
async fn usernameless_sign_in_identifies_the_user_from_the_credential() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp.start_authentication(None, &default_policy()).unwrap();
    assert_eq!(
        options["allowCredentials"],
        json!([]),
        "discoverable: the authenticator offers its passkeys"
    );
    assert!(state.is_discoverable() && state.identified_user().is_none());

    let response = auth.get(&options).await;
    let assertion = Assertion::parse(&response).unwrap();
    // The caller looks the credential up by id; the user handle is only checked.
    assert_eq!(assertion.credential_id(), &s.credential_id);
    assert_eq!(assertion.user_handle(), Some(s.user_id));
    let v = rp
        .finish_authentication(state, &assertion, &s, &default_policy(), CounterPolicy::Strict)
        .unwrap();
    assert_eq!(v.user_id, s.user_id);
}

#[tokio::test]
async fn the_lookup_convenience_finishes_or_reports_an_unknown_credential() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp.start_authentication(None, &default_policy()).unwrap();
    let response = auth.get(&options).await;
    let found = rp.finish_authentication_with(
        state.clone(),
        &response,
        |id| (id == &s.credential_id).then(|| s.clone()),
        &default_policy(),
        CounterPolicy::Strict,
    );
    assert_eq!(found.unwrap().user_id, s.user_id);
    let r = rp.finish_authentication_with(state, &response, |_| None, &default_policy(), CounterPolicy::Strict);
    assert_eq!(code(r), "credential_not_found");
}

#[tokio::test]
async fn the_default_development_url_works_on_localhost() {
    let rp = RelyingParty::new(&RelyingPartyConfig::new(Url::parse("http://localhost:8080").unwrap())).unwrap();
    let mut auth = SoftAuthenticator::new(ONE_PASSWORD, true, false).at("http://localhost:8080");
    let new = register(&rp, &mut auth, UserId::new(), &default_policy())
        .await
        .unwrap();
    let s = stored(&new);
    let (options, state) = rp.start_authentication(None, &default_policy()).unwrap();
    let response = auth.get(&options).await;
    assert_eq!(
        finish(&rp, state, &response, &s, &default_policy()).unwrap().user_id,
        s.user_id
    );
}

#[tokio::test]
async fn ceremony_state_survives_the_store_as_json_and_hides_its_challenge() {
    let rp = rp();
    let mut auth = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    let (options, state) = rp
        .start_registration(UserId::new(), "ada@example.com", "", &[], &default_policy())
        .unwrap();
    assert_eq!(
        options["user"]["displayName"], "ada@example.com",
        "display name falls back to the account name"
    );
    let challenge = options["challenge"].as_str().unwrap().to_owned();
    assert!(!format!("{state:?}").contains(&challenge));
    let state = RegistrationState::from_json(&state.to_json()).unwrap();
    let response = auth.create(&options).await;
    let s = stored(&rp.finish_registration(state, &response, &default_policy()).unwrap());
    // The stored record survives a round trip through the TEXT column too.
    let s = StoredPasskey {
        passkey: signet_passkey::SerializedPasskey::from_stored(s.passkey.as_str().to_owned()),
        ..s
    };

    let (options, state) = rp.start_authentication(None, &default_policy()).unwrap();
    let challenge = options["challenge"].as_str().unwrap().to_owned();
    assert!(!format!("{state:?}").contains(&challenge));
    let state = AuthenticationState::from_json(&state.to_json()).unwrap();
    let response = auth.get(&options).await;
    assert!(finish(&rp, state, &response, &s, &default_policy()).is_ok());

    assert_eq!(code(AuthenticationState::from_json("{}")), "ceremony_invalid");
    assert_eq!(code(RegistrationState::from_json("not json")), "ceremony_invalid");
}

#[tokio::test]
async fn a_counting_authenticator_moves_the_counter_up() {
    let (rp, mut auth, mut s) = enrolled(YUBIKEY, true).await;
    for expected in 1..=3 {
        let (options, state) = rp
            .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
            .unwrap();
        let response = auth.get(&options).await;
        let v = finish(&rp, state, &response, &s, &default_policy()).unwrap();
        assert!(v.counter > v.previous_counter, "{expected}: {v:?}");
        apply(&mut s, &v);
    }
}

#[tokio::test]
async fn preferred_uv_admits_a_passkey_without_uv_at_aal1() {
    let rp = rp();
    let mut auth = SoftAuthenticator::new(ONE_PASSWORD, false, false);
    let (options, state) = rp
        .start_registration(UserId::new(), "ada@example.com", "Ada", &[], &preferred())
        .unwrap();
    assert_eq!(options["authenticatorSelection"]["userVerification"], "preferred");
    assert!(options["extensions"].get("credentialProtectionPolicy").is_none());
    let new = rp
        .finish_registration(state, &auth.create(&options).await, &preferred())
        .unwrap();
    assert!(!new.user_verified);
    let s = stored(&new);

    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &preferred())
        .unwrap();
    assert_eq!(options["userVerification"], "preferred");
    let v = finish(&rp, state, &auth.get(&options).await, &s, &preferred()).unwrap();
    let proof = v.proof(&preferred());
    assert_eq!(
        (proof.aal, proof.amr),
        (Aal::Aal1, vec!["swk".to_owned(), "user".to_owned()])
    );

    // The same credential in a tier that requires UV is refused at login.
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &preferred())
        .unwrap();
    let r = finish(&rp, state, &auth.get(&options).await, &s, &default_policy());
    assert_eq!(code(r), "user_verification_required");
}

// ------------------------------------------------------- forged, validly signed

/// The forge is a faithful authenticator: its unmodified output is accepted,
/// so each refusal below is caused by the one field that test changes.
#[tokio::test]
async fn control_a_forged_assertion_with_nothing_changed_is_accepted() {
    let (rp, auth, s) = enrolled(ONE_PASSWORD, false).await;
    let forge = auth.forge();
    for start in [None, Some(std::slice::from_ref(&s))] {
        let (options, state) = rp.start_authentication(start, &default_policy()).unwrap();
        let response = forge.assertion(&forge.parts(challenge_of(&options)));
        assert_eq!(
            finish(&rp, state, &response, &s, &default_policy()).unwrap().user_id,
            s.user_id
        );
    }
}

async fn refused(change: impl Fn(&mut AssertionParts)) -> &'static str {
    let (rp, auth, s) = enrolled(ONE_PASSWORD, false).await;
    let forge = auth.forge();
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let mut parts = forge.parts(challenge_of(&options));
    change(&mut parts);
    code(finish(&rp, state, &forge.assertion(&parts), &s, &default_policy()))
}

#[tokio::test]
async fn step_13_wrong_origin_is_refused() {
    assert_eq!(
        refused(|p| p.origin = "https://login.example.com.evil.test".into()).await,
        "origin_mismatch"
    );
    assert_eq!(
        refused(|p| p.origin = "https://evil.example.com".into()).await,
        "origin_mismatch"
    );
    assert_eq!(
        refused(|p| p.origin = "http://login.example.com".into()).await,
        "origin_mismatch"
    );
    assert_eq!(
        refused(|p| p.origin = "https://login.example.com:8443".into()).await,
        "origin_mismatch"
    );
}

#[tokio::test]
async fn step_14_cross_origin_iframe_is_refused() {
    assert_eq!(refused(|p| p.cross_origin = true).await, "origin_mismatch");
    let framed = |p: &mut AssertionParts| p.top_origin = Some("https://evil.example".into());
    assert_eq!(refused(framed).await, "origin_mismatch");
}

#[tokio::test]
async fn step_15_wrong_rp_id_hash_is_refused() {
    assert_eq!(refused(|p| p.rp_id = "evil.com".into()).await, "rp_id_mismatch");
    assert_eq!(
        refused(|p| p.rp_id = "login.example.com".into()).await,
        "rp_id_mismatch"
    );
}

#[tokio::test]
async fn step_16_user_not_present_is_refused() {
    assert_eq!(refused(|p| p.flags &= !UP).await, "user_presence_required");
}

#[tokio::test]
async fn step_17_no_user_verification_when_required_is_refused() {
    assert_eq!(refused(|p| p.flags &= !UV).await, "user_verification_required");
}

/// A device-bound credential (BE=0) registered the way a security key does.
fn enrolled_device_bound(aaguid: &str, policy: &PasskeyPolicy) -> (RelyingParty, Forge, StoredPasskey) {
    let rp = rp();
    let user = UserId::new();
    let (options, state) = rp
        .start_registration(user, "ada@example.com", "Ada", &[], policy)
        .unwrap();
    let forge = Forge::new_credential(7, vec![0xab; 64], user.0.as_bytes().to_vec());
    let new = rp
        .finish_registration(
            state,
            &forge.registration(&challenge_of(&options), UP | UV, aaguid),
            policy,
        )
        .unwrap();
    assert!(!new.backup_eligible && !new.backup_state);
    (rp, forge, stored(&new))
}

#[tokio::test]
async fn step_18_backup_eligibility_flipped_on_is_refused() {
    let (rp, forge, s) = enrolled_device_bound(YUBIKEY, &default_policy());
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let ok = forge.assertion(&forge.parts(challenge_of(&options)));
    let v = finish(&rp, state, &ok, &s, &default_policy()).unwrap();
    assert_eq!(
        v.proof(&default_policy()).amr,
        vec!["hwk", "user", "mfa"],
        "control: device-bound"
    );
    for flags in [UP | UV | BE, UP | UV | BE | BS] {
        let (options, state) = rp
            .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
            .unwrap();
        let flipped = forge.assertion(&AssertionParts {
            flags,
            ..forge.parts(challenge_of(&options))
        });
        assert_eq!(
            code(finish(&rp, state, &flipped, &s, &default_policy())),
            "backup_eligibility_changed"
        );
    }
}

#[tokio::test]
async fn step_18_backup_eligibility_flipped_off_is_refused() {
    // The synced passkey (BE=1) presenting BE=0, or BS without BE.
    assert_eq!(refused(|p| p.flags &= !(BE | BS)).await, "backup_eligibility_changed");
    assert_eq!(refused(|p| p.flags &= !BE).await, "backup_eligibility_changed");
    // BS alone may change (a passkey whose syncing was switched off): fine.
    let (rp, auth, s) = enrolled(ONE_PASSWORD, false).await;
    let forge = auth.forge();
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let response = forge.assertion(&AssertionParts {
        flags: UP | UV | BE,
        ..forge.parts(challenge_of(&options))
    });
    let v = finish(&rp, state, &response, &s, &default_policy()).unwrap();
    assert!(
        v.backup_eligible && !v.backup_state,
        "the new BS is reported for the update"
    );
}

#[tokio::test]
async fn step_21_tampered_signature_is_refused() {
    assert_eq!(refused(|p| p.corrupt_signature = true).await, "invalid_signature");
}

#[tokio::test]
async fn step_21_a_real_assertion_with_altered_bytes_is_refused() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let mut response = auth.get(&options).await;
    // Same flags, counter 1 instead of 0: authenticatorData is signed.
    let mut ad = unb64(response["response"]["authenticatorData"].as_str().unwrap());
    ad[36] ^= 1;
    response["response"]["authenticatorData"] = json!(b64(&ad));
    assert_eq!(
        code(finish(&rp, state.clone(), &response, &s, &default_policy())),
        "invalid_signature"
    );

    let mut response = auth.get(&options).await;
    let mut sig = unb64(response["response"]["signature"].as_str().unwrap());
    let n = sig.len();
    sig[n - 2] ^= 0x40;
    response["response"]["signature"] = json!(b64(&sig));
    assert_eq!(
        code(finish(&rp, state, &response, &s, &default_policy())),
        "invalid_signature"
    );
}

#[tokio::test]
async fn step_11_an_assertion_of_another_ceremony_type_is_refused() {
    assert_eq!(
        refused(|p| p.client_type = "webauthn.create".into()).await,
        "ceremony_type_mismatch"
    );
}

#[tokio::test]
async fn step_12_a_replayed_assertion_is_refused_by_a_new_ceremony() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, first) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let response = auth.get(&options).await;
    assert!(finish(&rp, first, &response, &s, &default_policy()).is_ok());
    // The attacker captured the response and replays it into their own ceremony.
    for start in [None, Some(std::slice::from_ref(&s))] {
        let (_, second) = rp.start_authentication(start, &default_policy()).unwrap();
        assert_eq!(
            code(finish(&rp, second, &response, &s, &default_policy())),
            "challenge_mismatch"
        );
    }
    assert_eq!(refused(|p| p.challenge = vec![0; 32]).await, "challenge_mismatch");
}

#[tokio::test]
async fn step_12_a_replayed_state_is_refused_by_the_counter() {
    // The store takes state out once; if a copy were replayed anyway, a
    // counting authenticator's assertion cannot be accepted twice.
    let (rp, mut auth, mut s) = enrolled(YUBIKEY, true).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let copy = state.clone();
    let response = auth.get(&options).await;
    let v = finish(&rp, state, &response, &s, &default_policy()).unwrap();
    apply(&mut s, &v);
    assert_eq!(
        code(finish(&rp, copy, &response, &s, &default_policy())),
        "counter_regression"
    );
}

#[tokio::test]
async fn step_6_user_handle_of_another_user_is_refused() {
    let other = UserId::new();
    assert_eq!(
        refused(|p| p.user_handle = Some(other.0.as_bytes().to_vec())).await,
        "user_handle_mismatch"
    );
    // Usernameless: the handle must be present and be the owner's.
    let (rp, auth, s) = enrolled(ONE_PASSWORD, false).await;
    let forge = auth.forge();
    for handle in [Some(other.0.as_bytes().to_vec()), None, Some(vec![1, 2, 3])] {
        let (options, state) = rp.start_authentication(None, &default_policy()).unwrap();
        let response = forge.assertion(&AssertionParts {
            user_handle: handle,
            ..forge.parts(challenge_of(&options))
        });
        assert_eq!(
            code(finish(&rp, state, &response, &s, &default_policy())),
            "user_handle_mismatch"
        );
    }
}

#[tokio::test]
async fn step_5_a_credential_of_another_user_is_refused() {
    let (rp, _, alice) = enrolled(ONE_PASSWORD, false).await;
    let mut bobs = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    let bob = stored(
        &register(&rp, &mut bobs, UserId::new(), &default_policy())
            .await
            .unwrap(),
    );
    // Alice's identifier, Bob's passkey (with Bob's own, consistent user handle).
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&alice)), &default_policy())
        .unwrap();
    let forge = bobs.forge();
    let response = forge.assertion(&forge.parts(challenge_of(&options)));
    assert_eq!(
        code(finish(&rp, state, &response, &bob, &default_policy())),
        "credential_not_found"
    );
    // And a lookup that returned the wrong record is caught too.
    let (options, state) = rp.start_authentication(None, &default_policy()).unwrap();
    let response = forge.assertion(&forge.parts(challenge_of(&options)));
    assert_eq!(
        code(finish(&rp, state, &response, &alice, &default_policy())),
        "credential_not_found"
    );
}

#[tokio::test]
async fn step_22_counter_regression_is_refused_unless_the_tier_relaxes_it() {
    let (rp, auth, mut s) = enrolled(YUBIKEY, true).await;
    s.counter = 5;
    let forge = auth.forge();
    for counter in [3, 5] {
        let (options, state) = rp
            .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
            .unwrap();
        let response = forge.assertion(&AssertionParts {
            counter,
            ..forge.parts(challenge_of(&options))
        });
        assert_eq!(
            code(finish(&rp, state, &response, &s, &default_policy())),
            "counter_regression"
        );
    }
    // Relaxed: accepted, flagged for the audit log, and the counter never goes down.
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let response = forge.assertion(&AssertionParts {
        counter: 3,
        ..forge.parts(challenge_of(&options))
    });
    let v = rp
        .finish_authentication(
            state,
            &Assertion::parse(&response).unwrap(),
            &s,
            &default_policy(),
            CounterPolicy::AllowRegression,
        )
        .unwrap();
    assert!(v.counter_regressed);
    assert_eq!(v.counter, 5);
    // Relaxed still refuses everything else (here a bad signature).
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let response = forge.assertion(&AssertionParts {
        counter: 3,
        corrupt_signature: true,
        ..forge.parts(challenge_of(&options))
    });
    let r = rp.finish_authentication(
        state,
        &Assertion::parse(&response).unwrap(),
        &s,
        &default_policy(),
        CounterPolicy::AllowRegression,
    );
    assert_eq!(code(r), "invalid_signature");
    // An increase is fine.
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let response = forge.assertion(&AssertionParts {
        counter: 6,
        ..forge.parts(challenge_of(&options))
    });
    let v = finish(&rp, state, &response, &s, &default_policy()).unwrap();
    assert_eq!((v.counter, v.previous_counter, v.counter_regressed), (6, 5, false));
}

// ------------------------------------------------------------- registration

#[tokio::test]
async fn one_credential_id_cannot_be_registered_for_two_users() {
    let rp = rp();
    let mut alices = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    let alice = UserId::new();
    let registered = register(&rp, &mut alices, alice, &default_policy()).await.unwrap();

    // Mallory registers a key of her own under Alice's credential id, to
    // hijack lookups by credential id. The ceremony itself is valid...
    let mallory = UserId::new();
    let (options, state) = rp
        .start_registration(mallory, "m@example.com", "M", &[], &default_policy())
        .unwrap();
    let forge = Forge::new_credential(
        9,
        registered.credential_id.as_bytes().to_vec(),
        mallory.0.as_bytes().to_vec(),
    );
    let dup = rp
        .finish_registration(
            state,
            &forge.registration(&challenge_of(&options), UP | UV, ONE_PASSWORD),
            &default_policy(),
        )
        .unwrap();
    // ...so the refusal is the store's: a unique index on the credential id
    // (conformance: passkeys_round_trip_and_are_unique_across_users), which
    // the server answers with 409 credential_already_registered
    // (integration: passkeys::a_credential_id_registered_to_one_account_is_refused_for_another).
    assert_eq!(dup.credential_id, registered.credential_id);
}

#[tokio::test]
async fn existing_credentials_are_excluded_and_refused() {
    let rp = rp();
    let user = UserId::new();
    let existing = CredentialId::from_bytes(vec![0x11; 16]);
    let (options, state) = rp
        .start_registration(
            user,
            "ada@example.com",
            "Ada",
            std::slice::from_ref(&existing),
            &default_policy(),
        )
        .unwrap();
    assert_eq!(
        options["excludeCredentials"],
        json!([{"type": "public-key", "id": existing.to_base64url()}])
    );
    let forge = Forge::new_credential(3, existing.as_bytes().to_vec(), user.0.as_bytes().to_vec());
    let r = rp.finish_registration(
        state,
        &forge.registration(&challenge_of(&options), UP | UV, ONE_PASSWORD),
        &default_policy(),
    );
    assert_eq!(code(r), "credential_already_registered");
}

#[tokio::test]
async fn registration_checks_origin_challenge_up_and_uv() {
    let rp = rp();
    let user = UserId::new();
    let forge = Forge::new_credential(5, vec![0x22; 16], user.0.as_bytes().to_vec());
    let attempt = |flags: u8, challenge: Option<Vec<u8>>, policy: PasskeyPolicy| {
        let rp = rp.clone();
        let forge = forge.clone();
        let (options, state) = rp
            .start_registration(user, "ada@example.com", "Ada", &[], &policy)
            .unwrap();
        let c = challenge.unwrap_or_else(|| challenge_of(&options));
        rp.finish_registration(state, &forge.registration(&c, flags, ONE_PASSWORD), &policy)
    };
    assert!(attempt(UP | UV, None, default_policy()).is_ok(), "control");
    assert_eq!(
        code(attempt(UP | UV, Some(vec![9; 32]), default_policy())),
        "challenge_mismatch"
    );
    assert_eq!(code(attempt(UV, None, default_policy())), "user_presence_required");
    assert_eq!(code(attempt(UP, None, default_policy())), "user_verification_required");
    assert!(attempt(UP, None, preferred()).is_ok());
    // BS without BE is not a state an honest authenticator reports.
    assert_eq!(
        code(attempt(UP | UV | BS, None, default_policy())),
        "invalid_credential"
    );

    // The passkey crate's client at another origin.
    let mut elsewhere = SoftAuthenticator::new(ONE_PASSWORD, true, false).at("https://evil.example.com");
    let (options, state) = rp
        .start_registration(user, "ada@example.com", "Ada", &[], &default_policy())
        .unwrap();
    let response = elsewhere.create(&options).await;
    assert_eq!(
        code(rp.finish_registration(state, &response, &default_policy())),
        "origin_mismatch"
    );
}

// ------------------------------------------------------------------- policy

#[tokio::test]
async fn device_bound_only_refuses_synced_passkeys_at_registration() {
    let rp = rp();
    let user = UserId::new();
    // A real synced authenticator.
    let mut synced = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    assert_eq!(
        code(register(&rp, &mut synced, user, &device_bound()).await),
        "synced_passkey_not_allowed"
    );
    let forge = Forge::new_credential(4, vec![0x33; 20], user.0.as_bytes().to_vec());
    for flags in [UP | UV | BE, UP | UV | BE | BS] {
        // Requested at start (webauthn-rs refuses) ...
        let (options, state) = rp
            .start_registration(user, "a@example.com", "A", &[], &device_bound())
            .unwrap();
        let response = forge.registration(&challenge_of(&options), flags, ONE_PASSWORD);
        assert_eq!(
            code(rp.finish_registration(state, &response, &device_bound())),
            "synced_passkey_not_allowed"
        );
        // ... or only by the tier at finish (we refuse).
        let (options, state) = rp
            .start_registration(user, "a@example.com", "A", &[], &default_policy())
            .unwrap();
        let response = forge.registration(&challenge_of(&options), flags, ONE_PASSWORD);
        assert_eq!(
            code(rp.finish_registration(state, &response, &device_bound())),
            "synced_passkey_not_allowed"
        );
    }
    // A device-bound one is fine.
    let (options, state) = rp
        .start_registration(user, "a@example.com", "A", &[], &device_bound())
        .unwrap();
    let response = forge.registration(&challenge_of(&options), UP | UV, YUBIKEY);
    assert!(
        !rp.finish_registration(state, &response, &device_bound())
            .unwrap()
            .backup_eligible
    );
}

#[tokio::test]
async fn device_bound_only_refuses_synced_passkeys_at_login() {
    // Registered while the tier allowed synced passkeys; the user's tier
    // became device-bound-only since.
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &device_bound())
        .unwrap();
    let response = auth.get(&options).await;
    assert_eq!(
        code(finish(&rp, state, &response, &s, &device_bound())),
        "synced_passkey_not_allowed"
    );
    // A device-bound credential passes the same policy.
    let (rp, forge, s) = enrolled_device_bound(YUBIKEY, &device_bound());
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &device_bound())
        .unwrap();
    let response = forge.assertion(&forge.parts(challenge_of(&options)));
    assert!(finish(&rp, state, &response, &s, &device_bound()).is_ok());
}

#[tokio::test]
async fn allowed_aaguids_are_enforced_and_make_aal3_for_device_bound_keys() {
    let rp = rp();
    let mut onepw = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    let r = register(&rp, &mut onepw, UserId::new(), &allow_only(YUBIKEY)).await;
    assert_eq!(code(r), "authenticator_not_allowed");

    let (rp, forge, s) = enrolled_device_bound(YUBIKEY, &allow_only(YUBIKEY));
    assert_eq!(s.aaguid, Uuid::parse_str(YUBIKEY).unwrap());
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &allow_only(YUBIKEY))
        .unwrap();
    let response = forge.assertion(&forge.parts(challenge_of(&options)));
    let v = finish(&rp, state, &response, &s, &allow_only(YUBIKEY)).unwrap();
    assert_eq!(v.proof(&allow_only(YUBIKEY)).aal, Aal::Aal3);
    assert_eq!(v.proof(&default_policy()).aal, Aal::Aal2, "no allow-list, no aal3");

    // At login too: the tier's list no longer has this model.
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let response = forge.assertion(&forge.parts(challenge_of(&options)));
    assert_eq!(
        code(finish(&rp, state, &response, &s, &allow_only(ONE_PASSWORD))),
        "authenticator_not_allowed"
    );

    // A synced passkey of an allowed model proves aal2, never aal3.
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &allow_only(ONE_PASSWORD))
        .unwrap();
    let v = finish(&rp, state, &auth.get(&options).await, &s, &allow_only(ONE_PASSWORD)).unwrap();
    assert_eq!(v.proof(&allow_only(ONE_PASSWORD)).aal, Aal::Aal2);
}

// ------------------------------------------------------------------- decoys

fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::String(_) => json!("s"),
        Value::Number(_) => json!(0),
        other => other.clone(),
    }
}

#[tokio::test]
async fn an_unknown_identifier_gets_options_shaped_like_a_real_users_and_never_succeeds() {
    let (rp, auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (real, _) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let (decoy, state) = rp
        .start_decoy_authentication(DECOY_KEY, "nobody@example.com", &default_policy())
        .unwrap();
    assert_eq!(shape(&real), shape(&decoy));
    assert!(!decoy["allowCredentials"].as_array().unwrap().is_empty());
    assert_eq!(
        format!("{state:?}"),
        format!(
            "{:?}",
            rp.start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
                .unwrap()
                .1
        )
    );

    // Stable across requests (a changing list would give the game away), fresh challenge.
    let (again, _) = rp
        .start_decoy_authentication(DECOY_KEY, "nobody@example.com", &default_policy())
        .unwrap();
    assert_eq!(decoy["allowCredentials"], again["allowCredentials"]);
    assert_ne!(decoy["challenge"], again["challenge"]);

    // Even a real, validly signed credential cannot finish a decoy ceremony.
    let forge = auth.forge();
    let response = forge.assertion(&forge.parts(challenge_of(&decoy)));
    assert_eq!(
        code(finish(&rp, state, &response, &s, &default_policy())),
        "credential_not_found"
    );

    // A known user without passkeys is answered the same way.
    assert_eq!(
        code(rp.start_authentication(Some(&[]), &default_policy())),
        "credential_not_found"
    );
}

// ---------------------------------------------------------------- bad input

/// A tiny deterministic generator (xorshift), so the mutations are the same
/// on every run; randomness from the OS is not needed for this.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

fn mutate(value: &Value, rng: &mut XorShift, fields: &[&str]) -> Value {
    let mut v = value.clone();
    let field = fields[rng.below(fields.len())];
    let mut bytes = unb64(v["response"][field].as_str().unwrap());
    match rng.below(4) {
        0 if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        1 => bytes.truncate(rng.below(bytes.len() + 1)),
        2 => bytes.extend((0..rng.below(64)).map(|_| (rng.next() & 0xff) as u8)),
        _ => {
            let i = rng.below(bytes.len() + 1);
            bytes.insert(i, (rng.next() & 0xff) as u8);
        }
    }
    v["response"][field] = json!(b64(&bytes));
    v
}

#[tokio::test]
async fn hostile_assertions_are_4xx_never_a_panic_and_never_accepted() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let good = auth.get(&options).await;
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    for _ in 0..1500 {
        let bad = mutate(
            &good,
            &mut rng,
            &["authenticatorData", "clientDataJSON", "signature", "userHandle"],
        );
        if bad == good {
            continue;
        }
        let r = finish(&rp, state.clone(), &bad, &s, &default_policy());
        let e = r.expect_err("a changed signed field must never verify");
        assert!(PasskeyError::ALL_CODES.contains(&e.code()));
    }
    for junk in [
        json!(null),
        json!("credential"),
        json!([]),
        json!({}),
        json!({"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}),
        json!({"id": "!!", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": "", "authenticatorData": "", "signature": ""}}),
        json!({"id": 5, "rawId": [1, 2], "type": "public-key", "response": {"clientDataJSON": 1}}),
        {
            let mut g = good.clone();
            g["type"] = json!("password");
            g
        },
        {
            let mut g = good.clone();
            g["id"] = json!("AAAA");
            g
        },
        {
            let mut g = good.clone();
            g["response"]["clientDataJSON"] = json!(b64(b"{\"type\":\"webauthn.get\""));
            g
        },
        {
            let mut g = good.clone();
            g["response"]["clientDataJSON"] = json!(b64(&vec![b'['; 100_000]));
            g
        },
        {
            let mut g = good.clone();
            g["response"]["signature"] = json!(b64(&[0x30; 4000]));
            g
        },
    ] {
        let r = Assertion::parse(&junk)
            .and_then(|a| rp.finish_authentication(state.clone(), &a, &s, &default_policy(), CounterPolicy::Strict));
        let e = r.expect_err("junk");
        let core: signet_core::Error = e.into();
        assert!(
            matches!(
                core,
                signet_core::Error::Invalid { .. } | signet_core::Error::Forbidden { .. }
            ),
            "{core:?}"
        );
    }
}

#[tokio::test]
async fn hostile_registrations_are_4xx_never_a_panic() {
    let rp = rp();
    let user = UserId::new();
    let mut auth = SoftAuthenticator::new(ONE_PASSWORD, true, false);
    let (options, state) = rp
        .start_registration(user, "ada@example.com", "Ada", &[], &default_policy())
        .unwrap();
    let good = auth.create(&options).await;
    let mut rng = XorShift(0xdead_beef_0bad_cafe);
    for _ in 0..1500 {
        let bad = mutate(&good, &mut rng, &["attestationObject", "clientDataJSON"]);
        // "none" attestation signs nothing, so a mutated attestation object
        // may still be a well-formed registration of another key; it must
        // simply never panic, and a refusal is always one of our 4xx codes.
        if let Err(e) = rp.finish_registration(state.clone(), &bad, &default_policy()) {
            assert!(PasskeyError::ALL_CODES.contains(&e.code()));
        }
    }
    for junk in [
        json!(null),
        json!({"id": "AA", "rawId": "AA", "type": "public-key", "response": {"attestationObject": "", "clientDataJSON": ""}}),
        {
            let mut g = good.clone();
            g["rawId"] = json!("AAAA");
            g
        },
        {
            let mut g = good.clone();
            g["response"]["attestationObject"] = json!(b64(&vec![0x81; 50_000]));
            g
        },
        {
            let mut g = good.clone();
            g["response"]["attestationObject"] = json!(b64(&vec![0; 70_000]));
            g
        },
    ] {
        let e = rp
            .finish_registration(state.clone(), &junk, &default_policy())
            .expect_err("junk");
        assert_eq!(e.code().as_str(), "invalid_credential", "{e:?}");
    }
    // The untouched response still registers: the junk above changed nothing.
    assert!(rp.finish_registration(state, &good, &default_policy()).is_ok());
}

// ------------------------------------------- the two signature verifiers agree

/// The whole ceremony, both verifiers, on the same hostile mutations of a
/// real assertion: the same verdict (and the same error code) every time.
#[tokio::test]
async fn both_verifiers_give_the_same_verdict_on_mutated_assertions() {
    let (rp, mut auth, s) = enrolled(ONE_PASSWORD, false).await;
    let (options, state) = rp
        .start_authentication(Some(std::slice::from_ref(&s)), &default_policy())
        .unwrap();
    let good = auth.get(&options).await;
    let mut rng = XorShift(0x0a11_ce5a_9eed_0042);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let bad = mutate(&good, &mut rng, &["authenticatorData", "clientDataJSON", "signature"]);
        if let Err(e) = finish(&rp, state.clone(), &bad, &s, &default_policy()) {
            codes.insert(e.code().as_str());
        }
    }
    // The mutations reach the signature check and the checks before it.
    assert!(codes.contains("invalid_signature"), "{codes:?}");
    assert!(codes.len() >= 3, "{codes:?}");
    assert_eq!(
        finish(&rp, state, &good, &s, &default_policy()).unwrap().user_id,
        s.user_id
    );
}

/// A signature and what to do to it.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    None,
    FlipSignatureBit,
    FlipMessageBit,
    HighS,
    WrongKey,
    TruncateDer,
    TrailingByte,
    RawRs,
    Empty,
}

/// `true` when the verifier accepts.
fn both(key: &CredentialPublicKey, sig: &[u8], msg: &[u8]) -> bool {
    let new = Verifier::AwsLc.verify(key, sig, msg);
    let old = Verifier::WebauthnCore.verify(key, sig, msg);
    assert_eq!(
        new.as_ref().map_err(PasskeyError::code),
        old.as_ref().map_err(PasskeyError::code),
        "sig {sig:02x?}"
    );
    new.is_ok()
}

/// ES256 at the signature level: keys and signatures from RustCrypto's
/// signer, random messages, and each kind of tampering. Both verifiers
/// accept exactly the untampered signatures and the high-S twins (ECDSA
/// verification as specified, FIPS 186-5 §6.4.2, does not constrain s to
/// the lower half, and WebAuthn does not either).
#[test]
fn es256_verifiers_agree_on_valid_and_tampered_signatures() {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};

    let mut rng = XorShift(0x00e5_2560_dead_beef);
    let mut accepted = 0;
    let mut refused = 0;
    for round in 0..300 {
        let mut seed = [0u8; 32];
        seed.iter_mut().for_each(|b| *b = (rng.next() & 0xff) as u8);
        let Ok(signer) = SigningKey::from_slice(&seed) else {
            continue;
        };
        let point = signer.verifying_key().to_sec1_point(false);
        let key = CredentialPublicKey::es256(&point.as_bytes()[1..33], &point.as_bytes()[33..65]);
        let mut msg: Vec<u8> = (0..37 + rng.below(200)).map(|_| (rng.next() & 0xff) as u8).collect();
        let sig: Signature = signer.sign(&msg);
        let mut der = sig.to_der().as_bytes().to_vec();
        let tamper = [
            Tamper::None,
            Tamper::FlipSignatureBit,
            Tamper::FlipMessageBit,
            Tamper::HighS,
            Tamper::WrongKey,
            Tamper::TruncateDer,
            Tamper::TrailingByte,
            Tamper::RawRs,
            Tamper::Empty,
        ][round % 9];
        let mut verify_key = key.clone();
        let expect = match tamper {
            Tamper::None => true,
            Tamper::FlipSignatureBit => {
                let i = rng.below(der.len());
                der[i] ^= 1 << rng.below(8);
                false
            }
            Tamper::FlipMessageBit => {
                let i = rng.below(msg.len());
                msg[i] ^= 1 << rng.below(8);
                false
            }
            Tamper::HighS => {
                let (r, s) = sig.split_scalars();
                let twin = Signature::from_scalars(r, -s).unwrap();
                der = twin.to_der().as_bytes().to_vec();
                true
            }
            Tamper::WrongKey => {
                let other = SigningKey::from_slice(&[7; 32]).unwrap();
                let p = other.verifying_key().to_sec1_point(false);
                verify_key = CredentialPublicKey::es256(&p.as_bytes()[1..33], &p.as_bytes()[33..65]);
                false
            }
            Tamper::TruncateDer => {
                der.truncate(rng.below(der.len()));
                false
            }
            Tamper::TrailingByte => {
                der.push(0);
                false
            }
            Tamper::RawRs => {
                der = sig.to_bytes().to_vec();
                false
            }
            Tamper::Empty => {
                der.clear();
                false
            }
        };
        let verdict = both(&verify_key, &der, &msg);
        assert_eq!(verdict, expect, "{tamper:?}");
        if verdict {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted > 50 && refused > 200, "{accepted} accepted, {refused} refused");
}

/// ES384 and RS256, the other algorithms registration offers: keys and
/// signatures from aws-lc-rs's signer this time, checked by both.
#[test]
fn es384_and_rs256_verifiers_agree_on_valid_and_tampered_signatures() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256};

    let random = SystemRandom::new();
    let mut rng = XorShift(0x384_0257);
    let ec = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let point = ec.public_key().as_ref().to_vec();
    let es384 = CredentialPublicKey::es384(&point[1..49], &point[49..97]);
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let n = rsa.public_key().modulus().big_endian_without_leading_zero().to_vec();
    let e = rsa.public_key().exponent().big_endian_without_leading_zero().to_vec();
    let mut e3 = [0u8; 3];
    e3[3 - e.len()..].copy_from_slice(&e);
    let rs256 = CredentialPublicKey::rs256(&n, e3);

    for round in 0..60 {
        let msg: Vec<u8> = (0..37 + rng.below(100)).map(|_| (rng.next() & 0xff) as u8).collect();
        let (key, sig) = if round % 2 == 0 {
            (&es384, ec.sign(&random, &msg).unwrap().as_ref().to_vec())
        } else {
            let mut sig = vec![0; rsa.public_modulus_len()];
            rsa.sign(&RSA_PKCS1_SHA256, &random, &msg, &mut sig).unwrap();
            (&rs256, sig)
        };
        assert!(both(key, &sig, &msg), "round {round}");
        let mut flipped = sig.clone();
        let i = rng.below(flipped.len());
        flipped[i] ^= 1 << rng.below(8);
        assert!(!both(key, &flipped, &msg));
        let mut other = msg.clone();
        other[0] ^= 0x80;
        assert!(!both(key, &sig, &other));
        assert!(!both(key, &sig[..sig.len() - 1], &msg));
        let wrong = if round % 2 == 0 { &rs256 } else { &es384 };
        assert!(!both(wrong, &sig, &msg));
    }
}
