// Signet's page script: small, dependency-free, served from our origin only.
"use strict";

async function api(method, path, body) {
  const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  if (resp.status !== 204) {
    try { data = await resp.json(); } catch (_) { data = null; }
  }
  return { ok: resp.ok, status: resp.status, data };
}

function say(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

// Says `text` in `id` once the page has reloaded (to list what was just
// added), so the person still sees what happened.
function sayAfterReload(id, text) {
  try {
    sessionStorage.setItem("signet-status", JSON.stringify([id, text]));
  } catch {
    // Storage refused (private mode): the new row in the list says it.
  }
  window.location.reload();
}

function sayWhatReloadKept() {
  let kept = null;
  try {
    kept = sessionStorage.getItem("signet-status");
    sessionStorage.removeItem("signet-status");
  } catch {
    return;
  }
  if (!kept) return;
  try {
    const [id, text] = JSON.parse(kept);
    say(id, text);
  } catch {
    // Not ours: ignore.
  }
}

// The page knows no sign-in method by name: the server describes each
// offered method (its `label`, its `input` — "webauthn" or "code" — whether
// it has a `send` step, the `channel` it sends on, and what to say once
// `sent`), and the page renders that. Only WebAuthn's own calls are here.
const INPUTS = ["webauthn", "code"];

// What the code field is called, by the channel that delivered the code.
function codeLabel(channel) {
  if (channel === "email") return "Code from the email";
  if (channel === "sms") return "Code from the text message";
  return "Code";
}

function resendLabel(channel) {
  return channel === "sms" ? "Send another text message" : "Send another email";
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function element(tag, props, text) {
  const el = document.createElement(tag);
  Object.assign(el, props || {});
  if (text) el.textContent = text;
  return el;
}

function errorText(r, fallback) {
  if (r.status === 429 && r.data && r.data.retry_after) {
    const mins = Math.ceil(r.data.retry_after / 60);
    return "Too many attempts. Try again in " + (mins > 1 ? mins + " minutes." : "a minute.");
  }
  return (r.data && r.data.message) ? r.data.message.charAt(0).toUpperCase() + r.data.message.slice(1) + "." : fallback;
}

// ---------------------------------------------------------------- passkeys
//
// WebAuthn JSON (base64url, Level 3) in and out. Current browsers parse and
// serialise it themselves (parseCreationOptionsFromJSON,
// parseRequestOptionsFromJSON, PublicKeyCredential.toJSON); the fallback
// below does the same by hand for older ones.

const webauthn = {
  supported() {
    return typeof window.PublicKeyCredential === "function" && !!navigator.credentials;
  },

  toBuffer(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  },

  fromBuffer(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },

  // Drops null members: the server's JSON may carry them, the browser's
  // dictionaries want them absent.
  clean(v) {
    if (Array.isArray(v)) return v.map((x) => webauthn.clean(x));
    if (v && typeof v === "object") {
      const o = {};
      for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) o[k] = webauthn.clean(x);
      return o;
    }
    return v;
  },

  creationOptions(json) {
    json = webauthn.clean(json);
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const o = Object.assign({}, json, {
      challenge: webauthn.toBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: webauthn.toBuffer(json.user.id) }),
    });
    if (json.excludeCredentials) {
      o.excludeCredentials = json.excludeCredentials.map((c) => Object.assign({}, c, { id: webauthn.toBuffer(c.id) }));
    }
    return o;
  },

  requestOptions(json) {
    json = webauthn.clean(json);
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const o = Object.assign({}, json, { challenge: webauthn.toBuffer(json.challenge) });
    if (json.allowCredentials) {
      o.allowCredentials = json.allowCredentials.map((c) => Object.assign({}, c, { id: webauthn.toBuffer(c.id) }));
    }
    return o;
  },

  toJSON(cred) {
    if (typeof cred.toJSON === "function") {
      try { return cred.toJSON(); } catch (_) { /* fall through */ }
    }
    const r = cred.response;
    const out = {
      id: cred.id,
      rawId: webauthn.fromBuffer(cred.rawId),
      type: cred.type,
      clientExtensionResults: typeof cred.getClientExtensionResults === "function" ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: webauthn.fromBuffer(r.clientDataJSON) },
    };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = webauthn.fromBuffer(r.attestationObject);
      out.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = webauthn.fromBuffer(r.authenticatorData);
      out.response.signature = webauthn.fromBuffer(r.signature);
      if (r.userHandle) out.response.userHandle = webauthn.fromBuffer(r.userHandle);
    }
    return out;
  },

  // WebAuthn Signal API: tells the authenticator (password manager,
  // platform) that this site does not know the credential, so it can stop
  // offering it. Only where the browser has it; never fails the page.
  signalUnknown(rpId, credentialId) {
    if (rpId && credentialId && typeof PublicKeyCredential.signalUnknownCredential === "function") {
      PublicKeyCredential.signalUnknownCredential({ rpId, credentialId }).catch(() => {});
    }
  },

  // What a WebAuthn failure means, for a person.
  explain(e, creating) {
    switch (e && e.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out. Try again when you're ready.";
      case "InvalidStateError":
        return creating
          ? "This device already has a passkey for your account. Use it to sign in, or add a different device."
          : "This passkey can't be used here.";
      case "NotSupportedError":
        return "This browser or device can't create the kind of passkey this site needs. Try another device or a security key.";
      case "SecurityError":
        return "Passkeys can't be used on this address. Open the site at its usual address and try again.";
      case "ConstraintError":
        return "Your authenticator can't check that it's you (it needs a PIN, fingerprint or face unlock). Set one up, or use another device.";
      case "AbortError":
        return "";
      default:
        return "Something went wrong with the passkey" + (e && e.message ? ": " + e.message : ".");
    }
  },
};

// What the server said, for a person, with passkey-specific hints.
function passkeyErrorText(r, fallback) {
  const code = r.data && r.data.error;
  if (code === "credential_not_found") return "This passkey isn't registered for any account here. Pick another one, or ask for an invitation.";
  if (code === "ceremony_expired" || code === "flow_expired") return "That took too long. Try again.";
  if (code === "step_up_required") return "For your security, sign in again with an existing passkey before changing your passkeys.";
  if (code === "last_credential") return "This is your only passkey, so removing it would lock you out. Add another passkey first.";
  if (code === "synced_passkey_not_allowed") return "Your account needs a passkey that stays on one device, such as a security key. Synced passkeys aren't accepted.";
  if (code === "authenticator_not_allowed") return "This kind of authenticator isn't accepted for your account. Ask your administrator which ones are.";
  if (code === "user_verification_required") return "Your authenticator must check that it's you (PIN, fingerprint or face). Try again and unlock it when asked.";
  if (code === "credential_already_registered") return "This passkey is already registered.";
  return errorText(r, fallback);
}

// Runs navigator.credentials.get for a flow's WebAuthn entry and posts the
// result to the flow's step for that entry. Resolves to the step's response, or null when the
// person cancelled (the message is already shown).
async function passkeyStep(flow, entry, options, statusId, base) {
  const status = statusId || "login-status";
  const steps = base || "/api/v1/login/";
  let cred;
  try {
    cred = await navigator.credentials.get(Object.assign({ publicKey: webauthn.requestOptions(entry.publicKey) }, options || {}));
  } catch (e) {
    const text = webauthn.explain(e, false);
    if (text) say(status, text);
    return null;
  }
  if (!cred) return null;
  say(status, "Checking your passkey…");
  const r = await api("POST", steps + encodeURIComponent(flow) + "/" + encodeURIComponent(entry.method), { credential: webauthn.toJSON(cred) });
  // A passkey this site does not know (for example one removed from the
  // account): let the authenticator forget it.
  if (r.data && r.data.error === "credential_not_found") webauthn.signalUnknown(entry.publicKey.rpId, cred.id);
  return r;
}

// Creates a passkey through /api/v1/credentials/passkey/{begin,finish}.
// Returns the created credential, or null (the message is already shown).
async function createPasskey(name, statusId) {
  say(statusId, "Preparing…");
  const begun = await api("POST", "/api/v1/credentials/passkey/begin", name ? { name } : {});
  if (begun.status === 403 && begun.data && begun.data.error === "step_up_required") return { stepUp: true };
  if (!begun.ok) {
    say(statusId, passkeyErrorText(begun, "Could not start creating a passkey."));
    return null;
  }
  say(statusId, "Follow your browser's prompt to create the passkey.");
  let cred;
  try {
    cred = await navigator.credentials.create({ publicKey: webauthn.creationOptions(begun.data.publicKey) });
  } catch (e) {
    say(statusId, webauthn.explain(e, true) || "Cancelled.");
    return null;
  }
  const done = await api("POST", "/api/v1/credentials/passkey/finish", {
    ceremony_id: begun.data.ceremony_id,
    credential: webauthn.toJSON(cred),
  });
  if (!done.ok) {
    // Refused after the authenticator made it: nothing was stored here, so
    // the authenticator should not keep offering it.
    const refused = ["synced_passkey_not_allowed", "authenticator_not_allowed", "user_verification_required"];
    if (done.data && refused.includes(done.data.error)) {
      webauthn.signalUnknown(begun.data.publicKey.rp && begun.data.publicKey.rp.id, cred.id);
    }
    say(statusId, passkeyErrorText(done, "The passkey could not be saved."));
    return null;
  }
  return done.data;
}

const ONE_MORE_STEP = "One more step: your account needs a stronger sign-in. Choose how to continue.";

// One step of a flow (a login, or a step-up) on this page: offer `methods`
// as buttons, have a code or link sent, take the code or the passkey, and
// either finish or offer the next step's methods on the same flow. `ui`:
// `list` (the element that holds the buttons), `status` (the id of the
// status line), `intro` (what to say first), `done(r)` (what to do once the
// flow is complete; by default, go where the flow returns to), `base` (the
// journey's step URLs; a login's by default).
function loginFlow(flow, methods, identifier, ui) {
  const list = ui.list;
  const status = ui.status || "login-status";
  const base = ui.base || "/api/v1/login/";
  const done = ui.done || ((r) => {
    say(status, "Signed in.");
    window.location.assign(r.data.return_to || "/account");
  });
  // The address form and the passkey button of /login, when this is it.
  const start = document.getElementById("login-form");
  const passkeyBox = document.getElementById("passkey-login");

  function finished(r) {
    if (r.data.state === "complete") {
      done(r);
      return;
    }
    loginFlow(flow, r.data.methods || [], identifier, Object.assign({}, ui, { intro: ONE_MORE_STEP }));
  }

  function codeForm(m) {
    const length = m.code_length || 6;
    clear(list);
    // The address is settled now; offer a way back instead of the form.
    if (start) start.hidden = true;
    if (passkeyBox) passkeyBox.hidden = true;
    const form = element("form", { className: "code-form", noValidate: true });
    const inputId = "code-" + status;
    // An offer may say its code has letters too (`code_charset`) and how to
    // call it (`code_hint`); the default is digits, named by the channel.
    const letters = m.code_charset === "alphanumeric";
    form.appendChild(element("label", { htmlFor: inputId }, m.code_hint || codeLabel(m.channel)));
    const row = element("div", { className: "code-row" });
    row.appendChild(element("input", {
      id: inputId, name: "code", type: "text", inputMode: letters ? "text" : "numeric",
      autocomplete: letters ? "off" : "one-time-code", autocapitalize: letters ? "characters" : "off",
      spellcheck: false, pattern: letters ? "[A-Za-z0-9 \\-]*" : "[0-9 \\-]*",
      maxLength: letters ? length * 2 : length + 2, required: true,
    }));
    row.appendChild(element("button", { type: "submit", className: "primary" }, ui.submitLabel || "Sign in"));
    form.appendChild(row);
    const p = element("p", { className: "small actions" });
    if (m.send) {
      const again = element("button", { type: "button", className: "link", id: "send-again" }, resendLabel(m.channel));
      again.addEventListener("click", () => send(m));
      p.appendChild(again);
    }
    if (start) {
      const other = element("button", { type: "button", className: "link" }, "Use a different email address");
      p.appendChild(other);
      other.addEventListener("click", () => {
        clear(list);
        say(status, "");
        start.hidden = false;
        if (passkeyBox && webauthn.supported()) passkeyBox.hidden = false;
        start.elements.identifier.focus();
      });
    }
    form.appendChild(p);
    list.appendChild(form);
    form.elements.code.focus();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const code = form.elements.code.value.replace(/[\s-]/g, "");
      if (code.length !== length) {
        say(status, "The code is " + length + (letters ? " letters and digits." : " digits."));
        return;
      }
      say(status, "Checking the code…");
      const r = await api("POST", base + encodeURIComponent(flow) + "/" + encodeURIComponent(m.method), { code });
      if (r.ok) { finished(r); return; }
      if (r.status === 410) {
        clear(list);
        say(status, errorText(r, "This sign-in has ended.") + " Start again.");
        return;
      }
      say(status, errorText(r, "That code did not work."));
    });
  }

  async function send(m) {
    say(status, "Sending…");
    const r = await api("POST", base + encodeURIComponent(flow) + "/" + encodeURIComponent(m.method) + "/send", {});
    if (!r.ok) {
      say(status, errorText(r, "Could not send it. Try again."));
      return;
    }
    say(status, m.sent || "Sent.");
    codeForm(m);
  }

  clear(list);
  const usable = (methods || []).filter((m) => INPUTS.includes(m.input) && (m.input !== "webauthn" || webauthn.supported()));
  if (usable.length === 0) {
    say(status, ui.none || "No sign-in method this page supports is available for this account. If you were invited, use the link in your invitation email.");
    return;
  }
  say(status, ui.intro || "Choose how to sign in.");
  // The flow offers its own WebAuthn button now (for this account).
  if (passkeyBox) passkeyBox.hidden = true;
  for (const m of usable) {
    const b = element("button", { type: "button", className: m.input === "webauthn" ? "method primary" : "method" }, m.label);
    b.dataset.method = m.method;
    b.addEventListener("click", async () => {
      if (m.input === "code") {
        if (m.send) send(m); else codeForm(m);
        return;
      }
      autofill.stop();
      say(status, "Follow your browser's prompt to use your passkey.");
      const r = await passkeyStep(flow, m, undefined, status, base);
      if (!r) return;
      if (r.ok) { finished(r); return; }
      // The challenge is used up either way: start over for another try.
      clear(list);
      say(status, passkeyErrorText(r, "That passkey did not work.") + " Start again to try once more.");
    });
    list.appendChild(b);
  }
}

// Asks for a fresh, stronger sign-in before a sensitive action on /account
// (a 403 step_up_required), on the same page, then runs `retry`.
async function stepUp(action, status, retry) {
  const list = document.getElementById("step-up-methods");
  const r = await api("POST", "/api/v1/step-up", { action });
  if (!r.ok || !list) {
    say(status, errorText(r, "Could not ask you to confirm. Sign in again."));
    return;
  }
  loginFlow(r.data.flow_id, r.data.methods, "", {
    list,
    status,
    intro: "For your security, confirm it's you first.",
    submitLabel: "Confirm",
    done: () => {
      clear(list);
      say(status, "Confirmed.");
      retry();
    },
  });
}

// Passkey autofill (WebAuthn conditional mediation): on page load, a
// discoverable request waits in the background; the browser offers the
// person's passkeys in the email field's autofill list (the field has
// autocomplete="username webauthn"). Picking one signs in. Only one
// WebAuthn request may be pending, so the explicit buttons stop it first.
const autofill = {
  controller: null,

  async start() {
    if (!webauthn.supported() || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
    let available = false;
    try { available = await PublicKeyCredential.isConditionalMediationAvailable(); } catch (_) { available = false; }
    if (!available) return;
    const r = await api("POST", "/api/v1/login", loginStart(""));
    const entry = r.ok && (r.data.methods || []).find((m) => m.input === "webauthn");
    if (!entry) return;
    const controller = new AbortController();
    autofill.controller = controller;
    const result = await passkeyStep(r.data.flow_id, entry, { mediation: "conditional", signal: controller.signal });
    if (autofill.controller !== controller) return;
    autofill.controller = null;
    if (!result) return;
    if (result.ok && result.data.state === "complete") {
      say("login-status", "Signed in.");
      window.location.assign(result.data.return_to || "/account");
      return;
    }
    if (result.ok) {
      loginFlow(r.data.flow_id, result.data.methods, "", { list: document.getElementById("login-methods"), intro: ONE_MORE_STEP });
      return;
    }
    say("login-status", passkeyErrorText(result, "That passkey did not work."));
    autofill.start();
  },

  stop() {
    if (autofill.controller) {
      autofill.controller.abort();
      autofill.controller = null;
    }
  },
};

// The body that starts a login on /login: where to go afterwards (an app's
// sign-in request resumes there) when the page was opened with
// `?return_to=`, and the address typed, if any.
function loginStart(identifier) {
  const body = {};
  const returnTo = new URLSearchParams(window.location.search).get("return_to");
  if (returnTo) body.return_to = returnTo;
  if (identifier) body.identifier = identifier;
  return body;
}

// Prefills the address from `?login_hint=` (OpenID Connect Core §3.1.2.1).
function prefillLoginHint(form) {
  const hint = new URLSearchParams(window.location.search).get("login_hint");
  if (hint && form.elements.identifier && !form.elements.identifier.value) form.elements.identifier.value = hint;
}

// An app's sign-in request that the current session falls short of (too
// old, too weak) opens /login with `?step_up=1`: the signed-in person
// confirms with a stronger or fresher proof on the same session instead of
// signing in again. Without a usable session, the page is a normal login.
async function stepUpForApp(form) {
  const params = new URLSearchParams(window.location.search);
  const returnTo = params.get("return_to");
  if (params.get("step_up") !== "1" || !returnTo) return false;
  const r = await api("POST", "/api/v1/step-up", { return_to: returnTo });
  if (!r.ok) return false;
  form.hidden = true;
  const passkeyBox = document.getElementById("passkey-login");
  if (passkeyBox) passkeyBox.hidden = true;
  loginFlow(r.data.flow_id, r.data.methods || [], "", {
    list: document.getElementById("login-methods"),
    base: "/api/v1/step-up/",
    intro: "This app needs a stronger or more recent sign-in. Confirm it's you to continue.",
  });
  return true;
}

function setUpLogin() {
  const form = document.getElementById("login-form");
  if (!form) return;
  prefillLoginHint(form);
  stepUpForApp(form).then((stepping) => {
    if (!stepping) setUpSignIn(form);
  });
}

function setUpSignIn(form) {
  const passkeyBox = document.getElementById("passkey-login");
  if (passkeyBox && webauthn.supported()) {
    passkeyBox.hidden = false;
    document.getElementById("passkey-button").addEventListener("click", async () => {
      autofill.stop();
      say("login-status", "Follow your browser's prompt to choose a passkey.");
      const r = await api("POST", "/api/v1/login", loginStart(""));
      if (!r.ok) {
        say("login-status", errorText(r, "Sign-in could not start. Try again."));
        return;
      }
      const entry = (r.data.methods || []).find((m) => m.input === "webauthn");
      if (!entry) {
        say("login-status", "Passkeys are not enabled here. Enter your email address instead.");
        return;
      }
      const result = await passkeyStep(r.data.flow_id, entry);
      if (!result) return;
      if (result.ok && result.data.state === "complete") {
        say("login-status", "Signed in.");
        window.location.assign(result.data.return_to || "/account");
      } else if (result.ok) {
        loginFlow(r.data.flow_id, result.data.methods, "", { list: document.getElementById("login-methods"), intro: ONE_MORE_STEP });
      } else {
        say("login-status", passkeyErrorText(result, "That passkey did not work."));
      }
    });
  }
  autofill.start();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    autofill.stop();
    const identifier = form.elements.identifier.value.trim();
    say("login-status", "Checking…");
    const r = await api("POST", "/api/v1/login", loginStart(identifier));
    if (!r.ok) {
      say("login-status", errorText(r, "Sign-in could not start. Try again."));
      return;
    }
    loginFlow(r.data.flow_id, r.data.methods, identifier, { list: document.getElementById("login-methods") });
  });
}

// /recover: regaining access. The flow's methods are rendered like a
// login's; completing gives a session that can only add a passkey, on
// /enroll.
function setUpRecover() {
  const form = document.getElementById("recover-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const identifier = form.elements.identifier.value.trim();
    say("recover-status", "Checking…");
    const r = await api("POST", "/api/v1/recovery", { identifier });
    if (!r.ok) {
      say("recover-status", errorText(r, "Recovery could not start. Try again."));
      return;
    }
    form.hidden = true;
    loginFlow(r.data.flow_id, r.data.methods, identifier, {
      list: document.getElementById("recover-methods"),
      status: "recover-status",
      base: "/api/v1/recovery/",
      submitLabel: "Continue",
      intro: "Prove it is you. Your account's policy may ask for more than one proof.",
      none: "This account cannot be recovered on its own. Contact your help desk: they can send a recovery link to the addresses on file.",
      done: () => {
        say("recover-status", "Recovered. Now add a new passkey.");
        window.location.assign("/enroll");
      },
    });
  });
}

// The page a magic link leads to when the account needs another step: it
// carries the flow's next methods, to finish on the same flow.
function setUpContinue() {
  const data = document.getElementById("flow-continue");
  if (!data) return;
  let next;
  try { next = JSON.parse(data.textContent); } catch (_) { return; }
  loginFlow(next.flow_id, next.methods, "", { list: document.getElementById("login-methods"), intro: ONE_MORE_STEP });
}

function setUpAccount() {
  for (const b of document.querySelectorAll("[data-end-session]")) {
    b.addEventListener("click", async () => {
      const r = await api("DELETE", "/api/v1/sessions/" + encodeURIComponent(b.dataset.endSession));
      if (r.ok) {
        b.closest("tr").remove();
        say("account-status", "Session ended.");
      } else {
        say("account-status", (r.data && r.data.message) || "Could not end that session.");
      }
    });
  }
  const out = document.getElementById("sign-out");
  if (out) {
    out.addEventListener("click", async () => {
      await api("DELETE", "/api/v1/session");
      window.location.assign("/login");
    });
  }
}

// /account: an authenticator app (TOTP). `begin` returns the secret, its
// otpauth URI and a QR code (SVG, parsed as XML, never as HTML); the
// credential exists once a first code from the app confirms it.
function setUpAuthenticatorApp() {
  const form = document.getElementById("add-totp-form");
  if (!form) return;
  const setup = document.getElementById("totp-setup");
  let ceremony = null;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const begin = async () => {
      const name = form.elements.name.value.trim();
      const r = await api("POST", "/api/v1/credentials/totp/begin", name ? { name } : {});
      if (r.status === 403 && r.data && r.data.error === "step_up_required") {
        stepUp("add_credential", "totp-status", begin);
        return;
      }
      if (!r.ok) {
        say("totp-status", errorText(r, "Could not start setting up the app."));
        return;
      }
      ceremony = r.data.ceremony_id;
      const qr = document.getElementById("totp-qr");
      clear(qr);
      const svg = new DOMParser().parseFromString(r.data.qr_svg, "image/svg+xml").documentElement;
      if (svg && svg.nodeName === "svg") {
        svg.setAttribute("role", "img");
        svg.setAttribute("aria-label", "QR code for your authenticator app");
        qr.appendChild(document.importNode(svg, true));
      }
      document.getElementById("totp-secret").textContent = r.data.secret.replace(/(.{4})/g, "$1 ").trim();
      setup.hidden = false;
      say("totp-status", "");
      document.getElementById("totp-code").focus();
    };
    begin();
  });
  document.getElementById("totp-confirm-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const code = document.getElementById("totp-code").value.replace(/[\s-]/g, "");
    const r = await api("POST", "/api/v1/credentials/totp/finish", { ceremony_id: ceremony, code });
    if (!r.ok) {
      say("totp-status", errorText(r, "That code did not work. Check the app and try again."));
      return;
    }
    say("totp-status", "Authenticator app “" + r.data.name + "” added.");
    if (document.getElementById("enroll-start")) {
      // The invitation's page: what follows is a sign-in with the app.
      setup.hidden = true;
      form.hidden = true;
      const next = element("a", { href: "/login", className: "button primary" }, "Sign in with an emailed code and the app");
      document.getElementById("totp-status").after(next);
      return;
    }
    window.location.reload();
  });
}

// /account: recovery codes, shown once, with copy, download and print.
function setUpRecoveryCodes() {
  const button = document.getElementById("generate-recovery-codes");
  if (!button) return;
  let codes = [];
  const text = () => "Recovery codes for " + window.location.host + "\n\n" + codes.join("\n") + "\n";
  button.addEventListener("click", async () => {
    const generate = async () => {
      const r = await api("POST", "/api/v1/credentials/recovery-codes", {});
      if (r.status === 403 && r.data && r.data.error === "step_up_required") {
        stepUp("regenerate_recovery_codes", "recovery-status", generate);
        return;
      }
      if (!r.ok) {
        say("recovery-status", errorText(r, "Could not make recovery codes."));
        return;
      }
      codes = r.data.codes;
      const list = document.getElementById("recovery-code-list");
      clear(list);
      for (const c of codes) list.appendChild(element("li", { className: "recovery-code" }, c));
      document.getElementById("recovery-codes").hidden = false;
      say("recovery-status", "New recovery codes made. Earlier codes no longer work.");
    };
    generate();
  });
  document.getElementById("copy-recovery-codes").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      say("recovery-status", "Copied.");
    } catch (_) {
      say("recovery-status", "Could not copy; select the codes and copy them yourself.");
    }
  });
  document.getElementById("download-recovery-codes").addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([text()], { type: "text/plain" }));
    const a = element("a", { href: url, download: "recovery-codes.txt" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    URL.revokeObjectURL(url);
  });
  document.getElementById("print-recovery-codes").addEventListener("click", () => window.print());
}

function setUpPasskeys() {
  // /account: add.
  const addForm = document.getElementById("add-passkey-form");
  if (addForm) {
    addForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!webauthn.supported()) {
        say("passkey-status", "This browser does not support passkeys.");
        return;
      }
      const add = async () => {
        const created = await createPasskey(addForm.elements.name.value.trim(), "passkey-status");
        if (created && created.stepUp) {
          stepUp("add_credential", "passkey-status", add);
          return;
        }
        if (created) {
          sayAfterReload("passkey-status", "Passkey “" + created.name + "” added.");
        }
      };
      add();
    });
  }
  // /account: rename, inline.
  for (const b of document.querySelectorAll("[data-rename-credential]")) {
    b.addEventListener("click", () => {
      const row = b.closest("tr");
      const nameEl = row.querySelector(".credential-name");
      if (row.querySelector(".rename-row")) return;
      const form = element("form", { className: "rename-row", noValidate: true });
      const input = element("input", { type: "text", maxLength: 64, value: nameEl.textContent });
      input.setAttribute("aria-label", "New name for " + nameEl.textContent);
      form.appendChild(input);
      form.appendChild(element("button", { type: "submit", className: "primary" }, "Save"));
      const cancel = element("button", { type: "button" }, "Cancel");
      form.appendChild(cancel);
      nameEl.hidden = true;
      nameEl.after(form);
      input.focus();
      input.select();
      cancel.addEventListener("click", () => { form.remove(); nameEl.hidden = false; });
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const r = await api("PATCH", "/api/v1/credentials/" + encodeURIComponent(b.dataset.renameCredential), { name: input.value });
        if (!r.ok) {
          say("passkey-status", passkeyErrorText(r, "Could not rename the passkey."));
          return;
        }
        nameEl.textContent = r.data.name;
        form.remove();
        nameEl.hidden = false;
        say("passkey-status", "Renamed to “" + r.data.name + "”.");
      });
    });
  }
  // /account: remove, with a second click to confirm.
  for (const b of document.querySelectorAll("[data-remove-credential]")) {
    b.addEventListener("click", async () => {
      if (b.dataset.confirming !== "true") {
        b.dataset.confirming = "true";
        b.textContent = "Click again to remove";
        return;
      }
      const remove = async () => {
        const r = await api("DELETE", "/api/v1/credentials/" + encodeURIComponent(b.dataset.removeCredential));
        if (r.status === 403 && r.data && r.data.error === "step_up_required") {
          stepUp("remove_credential", "passkey-status", remove);
          return;
        }
        if (r.ok) {
          say("passkey-status", "Passkey removed. Sessions signed in with it have ended.");
          window.location.reload();
          return;
        }
        b.dataset.confirming = "false";
        b.textContent = "Remove";
        say("passkey-status", passkeyErrorText(r, "Could not remove the passkey."));
      };
      await remove();
    });
  }
  // /enroll: the first passkey, then sign in with it.
  const first = document.querySelector("#create-passkey[data-first]");
  if (first) {
    first.addEventListener("click", async () => {
      if (!webauthn.supported()) {
        say("passkey-status", "This browser does not support passkeys. Open the invitation in an up-to-date browser.");
        return;
      }
      first.disabled = true;
      const created = await createPasskey(document.getElementById("passkey-name").value.trim(), "passkey-status");
      first.disabled = false;
      if (!created) return;
      // Nothing was created: this session may not add a passkey yet.
      if (created.stepUp) {
        say("passkey-status", "No passkey was created: this account already has a way to sign in, so adding one needs a stronger sign-in. Sign in, or recover your account if you lost your passkey.");
        return;
      }
      document.getElementById("enroll-start").hidden = true;
      document.getElementById("enroll-done").hidden = false;
      say("passkey-status", "");
      document.getElementById("continue-sign-in").focus();
    });
    document.getElementById("continue-sign-in").addEventListener("click", async () => {
      // The setup session has done its job; the passkey signs in from now on.
      await api("DELETE", "/api/v1/session");
      window.location.assign("/login");
    });
  }
}

// /account: add a phone (POST /api/v1/credentials/phone), then confirm it
// with the texted code (.../phone/verify). Removal and renaming are the
// generic credential buttons above.
function setUpPhone() {
  const addForm = document.getElementById("add-phone-form");
  const verifyForm = document.getElementById("verify-phone-form");
  if (!addForm || !verifyForm) return;
  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const add = async () => {
      const r = await api("POST", "/api/v1/credentials/phone", { phone: addForm.elements.phone.value.trim() });
      if (r.status === 403 && r.data && r.data.error === "step_up_required") {
        stepUp("add_credential", "phone-status", add);
        return;
      }
      if (!r.ok) {
        say("phone-status", errorText(r, "Could not send a code to that number."));
        return;
      }
      verifyForm.hidden = false;
      verifyForm.elements.code.focus();
      say("phone-status", "We texted a code to that number. Type it here.");
    };
    add();
  });
  verifyForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const verify = async () => {
      const r = await api("POST", "/api/v1/credentials/phone/verify", { code: verifyForm.elements.code.value.trim() });
      if (r.status === 403 && r.data && r.data.error === "step_up_required") {
        stepUp("add_credential", "phone-status", verify);
        return;
      }
      if (!r.ok) {
        say("phone-status", errorText(r, "Could not confirm the phone."));
        return;
      }
      sayAfterReload("phone-status", "Phone added.");
    };
    verify();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  sayWhatReloadKept();
  setUpLogin();
  setUpRecover();
  setUpPhone();
  setUpContinue();
  setUpAccount();
  setUpPasskeys();
  setUpAuthenticatorApp();
  setUpRecoveryCodes();
});
