// A real relying party signs a person in through Signet (OpenID Connect,
// authorization code flow with PKCE S256), in Debian's Chromium with a
// passkey on the DevTools virtual authenticator.
//
// The relying party is independent of Signet: a small Node HTTP server,
// run by the test, whose OpenID Connect side is npm `openid-client` (v6,
// on oauth4webapi). It discovers Signet, builds the authorization URL and,
// on its callback, redeems the code and validates the ID token itself
// (signature against the JWK Set, `iss`, `aud`, `exp`, `nonce`, `auth_time`
// against `max_age`) and the authorization response's `iss` (RFC 9207, as
// discovery says `authorization_response_iss_parameter_supported`).
// Its transaction (PKCE verifier, state, nonce) is bound to the browser by
// a cookie of its own, as a real app's is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import * as client from "openid-client";
import { addAuthenticator, isSessionProbe, session, shot, startWorld, watch } from "../lib/harness.mjs";

let world;
let signet;
let browser;
let rp;

/**
 * The relying party: `GET /login?client=NAME&...` starts a sign-in (extra
 * query parameters such as `prompt`, `max_age` or `redirect_uri` go into
 * the authorization request), `GET /cb` finishes it and shows the result.
 * Every finished sign-in is kept in `results` for the test to read.
 */
async function startRelyingParty() {
  const clients = new Map(); // name → openid-client Configuration
  const pending = new Map(); // transaction cookie → { name, verifier, state, nonce, maxAge }
  const results = [];
  const requests = []; // every path the browser asked the RP for
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, rp.base);
    requests.push(url.pathname + url.search);
    try {
      if (url.pathname === "/login") {
        const name = url.searchParams.get("client") || "app";
        const config = clients.get(name);
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const nonce = client.randomNonce();
        const params = {
          redirect_uri: `${rp.base}/cb`,
          scope: "openid email profile",
          acr_values: "phr",
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: "S256",
          state,
          nonce,
        };
        for (const [k, v] of url.searchParams) if (k !== "client") params[k] = v;
        const tx = randomBytes(16).toString("base64url");
        pending.set(tx, { name, verifier, state, nonce, maxAge: params.max_age });
        const to = client.buildAuthorizationUrl(config, params);
        res.writeHead(302, { location: to.href, "set-cookie": `rp_tx=${tx}; Path=/; HttpOnly; SameSite=Lax` });
        res.end();
        return;
      }
      if (url.pathname === "/cb") {
        const tx = /(?:^|;\s*)rp_tx=([^;]+)/.exec(req.headers.cookie || "")?.[1];
        const t = tx && pending.get(tx);
        if (!t) throw new Error("no sign-in in progress in this browser");
        pending.delete(tx);
        const config = clients.get(t.name);
        const result = { query: Object.fromEntries(url.searchParams) };
        try {
          const tokens = await client.authorizationCodeGrant(config, url, {
            pkceCodeVerifier: t.verifier,
            expectedState: t.state,
            expectedNonce: t.nonce,
            idTokenExpected: true,
            ...(t.maxAge !== undefined ? { maxAge: Number(t.maxAge) } : {}),
          });
          result.tokens = tokens;
          result.claims = tokens.claims();
          result.userinfo = await client.fetchUserInfo(config, tokens.access_token, result.claims.sub);
        } catch (e) {
          result.error = e.error || e.code || e.message;
          result.errorDescription = e.error_description || e.message;
        }
        results.push(result);
        res.writeHead(result.error ? 400 : 200, { "content-type": "text/html; charset=utf-8" });
        res.end(resultPage(result));
        return;
      }
      res.writeHead(404).end();
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" }).end(String(e));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    results,
    requests,
    /** Discovers Signet for the client `name` (a secret makes it confidential). */
    async register(name, clientId, clientSecret) {
      const config = await client.discovery(new URL(signet.base), clientId, clientSecret, undefined, {
        execute: [client.allowInsecureRequests],
      });
      clients.set(name, config);
      return config;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

function escape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function resultPage(r) {
  if (r.error) {
    return `<!doctype html><title>Example app</title><h1>Sign-in failed</h1><p id="error">${escape(r.error)}</p><p>${escape(r.errorDescription)}</p>`;
  }
  const c = r.claims;
  const rows = ["sub", "email", "name", "acr", "amr", "auth_time", "sid", "iss", "aud"]
    .map((k) => `<tr><th>${k}</th><td>${escape(JSON.stringify(c[k]))}</td></tr>`)
    .join("");
  return `<!doctype html><title>Example app</title><h1>Signed in to Example app</h1><p>as ${escape(c.email)}</p><table>${rows}</table>`;
}

before(async () => {
  world = await startWorld();
  ({ signet, browser } = world);
  rp = await startRelyingParty();
});

after(async () => {
  if (rp) await rp.close();
  if (world) await world.stop();
});

/** A page's problems; the relying party is the one other origin it may load, on purpose. */
function watchBoth(page) {
  const problems = watch(page, signet.base, (r) => isSessionProbe(r));
  return {
    list: () => problems.filter((p) => !p.startsWith(`third-party load: ${rp.base}/`)),
  };
}

/** Signet's login page, opened for a stored authorization request. */
function atSignetLogin(u) {
  return u.origin === signet.base && u.pathname === "/login" && u.searchParams.has("return_to");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// What the tests below share: one person in one browser, with the passkey
// on the page's virtual authenticator, and the app registered by the CLI.
let reg;
let context;
let page;
let authenticator;
let problems;
let first; // the claims of the first sign-in
let latest; // the claims of the latest sign-in with a new proof
const email = "ada@example.com";

/** Clicks "Sign in with a passkey" on Signet's login page; the proof is new. */
async function signInWithPasskey() {
  const before = (await authenticator.credentials())[0].signCount;
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await backAtApp();
  assert.ok((await authenticator.credentials())[0].signCount > before, "a new passkey proof");
}

/**
 * The signed-in session is too old for the request (max_age): Signet's
 * login page asks the same session for a fresh proof (a step-up, not a new
 * sign-in), then the request resumes.
 */
async function confirmWithPasskey() {
  assert.equal(new URL(page.url()).searchParams.get("step_up"), "1", page.url());
  await page.getByText("This app needs a stronger or more recent sign-in").waitFor();
  const before = (await authenticator.credentials())[0].signCount;
  await page.getByRole("button", { name: "Use a passkey" }).click();
  await backAtApp();
  assert.ok((await authenticator.credentials())[0].signCount > before, "a new passkey proof");
}

/** Waits for the browser to land on the app's callback page. */
async function backAtApp() {
  await page.waitForURL((u) => u.origin === rp.base && u.pathname === "/cb");
  await page.waitForLoadState();
}

/** The result of the latest sign-in at the app, which must have succeeded. */
async function lastSuccess() {
  const r = rp.results.at(-1);
  assert.equal(r.error, undefined, `${r.error}: ${r.errorDescription}`);
  await page.getByRole("heading", { name: "Signed in to Example app" }).waitFor();
  assert.equal(r.query.iss, signet.base, "iss in the authorization response (RFC 9207)");
  assert.equal(r.claims.sub, first?.sub ?? r.claims.sub, "sub is stable");
  assert.equal(r.userinfo.sub, r.claims.sub);
  return r;
}

test("an app with openid-client signs a person in with a passkey through Signet's login (acr_values=phr)", async () => {
  // The app, registered with the CLI (a confidential client, the default).
  reg = await signet.cli("client", "add", "Example app", "--redirect-uri", `${rp.base}/cb`);
  assert.ok(reg.client_id && reg.client_secret, JSON.stringify(Object.keys(reg)));
  const config = await rp.register("app", reg.client_id, reg.client_secret);
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, signet.base);
  assert.equal(meta.authorization_response_iss_parameter_supported, true);
  assert.ok(meta.code_challenge_methods_supported.includes("S256"));
  assert.ok(meta.acr_values_supported.includes("phr"));

  // A person with a passkey (invitation → passkey), then without any
  // Signet session, so that the app's request meets none.
  await signet.cli("user", "add", email, "--name", "Ada Lovelace");
  const { link } = await signet.cli("user", "invite", email);
  context = await browser.newContext();
  page = await context.newPage();
  problems = watchBoth(page);
  authenticator = await addAuthenticator(page);
  // The explicit "Sign in with a passkey" button, not autofill: under
  // DevTools automation a conditional request resolves by itself, and the
  // point here is that the login page is shown.
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await page.goto(link);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${signet.base}/enroll`);
  await page.getByLabel("Name for this passkey").fill("Laptop");
  await page.getByRole("button", { name: "Create a passkey" }).click();
  await page.getByText("Your passkey is ready").waitFor();
  await context.clearCookies();
  assert.equal((await session(page)).status, 401, "no Signet session");

  // The app's login link: Signet's login page, which resumes the request.
  await page.goto(`${rp.base}/login`);
  await page.waitForURL(atSignetLogin);
  const returnTo = new URL(page.url()).searchParams.get("return_to");
  assert.match(returnTo, /^\/oauth2\/authorize\/resume\/[0-9a-f-]{36}$/);
  await page.getByRole("button", { name: "Sign in with a passkey" }).waitFor();
  // The page says which app the sign-in continues to.
  assert.equal((await page.locator("#continue-to").textContent()).trim(), "to continue to Example app");
  await shot(page, "60-oidc-login");
  // A third-party app (the CLI's default): after the passkey, Signet asks
  // once whether the app may have the scopes.
  const before = (await authenticator.credentials())[0].signCount;
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.getByRole("heading", { name: "Allow Example app to use your account?" }).waitFor();
  assert.ok((await authenticator.credentials())[0].signCount > before, "a new passkey proof");
  await shot(page, "60b-oidc-consent");
  await page.getByRole("button", { name: "Allow" }).click();
  await backAtApp();
  assert.equal(rp.results.length, 1);
  const r = await lastSuccess();
  await shot(page, "61-oidc-app-signed-in");
  assert.match(r.query.code, /^sgac_/);
  const c = r.claims;
  assert.equal(c.iss, signet.base);
  assert.equal(c.aud, reg.client_id);
  assert.equal(c.acr, "phr", "a passkey is phishing-resistant");
  // docs/passkeys.md "What a passkey session proves": hwk for a
  // device-bound key (the virtual authenticator's credential is not
  // backup-eligible), user presence, and mfa for user verification.
  assert.deepEqual([...c.amr].sort(), ["hwk", "mfa", "user"]);
  assert.equal(typeof c.auth_time, "number");
  assert.ok(Math.abs(c.auth_time - Date.now() / 1000) < 60, "auth_time is now");
  assert.equal(typeof c.sid, "string");
  assert.ok(c.sid.length > 0);
  assert.equal(c.email, email);
  assert.equal(c.email_verified, true);
  assert.equal(c.name, "Ada Lovelace");
  // Signed with Signet's default ES256 key, published in the JWK Set
  // (openid-client verified the signature with it).
  const header = JSON.parse(Buffer.from(r.tokens.id_token.split(".")[0], "base64url"));
  assert.equal(header.alg, "ES256");
  const jwks = await (await fetch(`${signet.direct}/oauth2/jwks`)).json();
  assert.ok(jwks.keys.some((k) => k.kid === header.kid && k.alg === "ES256"), "the kid is in the JWK Set");
  assert.equal(r.tokens.token_type.toLowerCase(), "bearer");
  assert.equal(r.tokens.refresh_token, undefined, "no offline_access, no refresh token");
  // UserInfo with the access token: the same person.
  assert.equal(r.userinfo.email, email);
  assert.equal(r.userinfo.email_verified, true);
  assert.equal(r.userinfo.name, "Ada Lovelace");
  // The Signet session the login left behind is phishing-resistant aal2.
  await page.goto(`${signet.base}/login`);
  const s = await session(page);
  assert.equal(s.aal, "aal2");
  assert.equal(s.phishing_resistant, true);
  first = c;
  latest = c;
});

test("prompt=none with the Signet session alive: no page, only redirects, the same session", async () => {
  const documents = [];
  const onResponse = (r) => {
    if (r.request().resourceType() === "document") documents.push(`${r.status()} ${r.url().split("?")[0]}`);
  };
  page.on("response", onResponse);
  await page.goto(`${rp.base}/login?prompt=none`);
  await backAtApp();
  page.off("response", onResponse);
  assert.deepEqual(documents, [`302 ${rp.base}/login`, `303 ${signet.base}/oauth2/authorize`, `200 ${rp.base}/cb`]);
  const c = (await lastSuccess()).claims;
  assert.equal(c.sid, first.sid, "the same Signet session");
  assert.equal(c.auth_time, first.auth_time, "no new authentication");
  assert.equal(c.acr, "phr");
  assert.deepEqual(c.amr, first.amr);
});

test("prompt=login with the session alive: the login page, a new passkey proof, a newer auth_time", async () => {
  await sleep(1100); // auth_time is in whole seconds
  await page.goto(`${rp.base}/login?prompt=login`);
  await page.waitForURL(atSignetLogin);
  await signInWithPasskey();
  const c = (await lastSuccess()).claims;
  assert.ok(c.auth_time > latest.auth_time, `${c.auth_time} > ${latest.auth_time}`);
  assert.equal(c.acr, "phr");
  latest = c;
});

// The OIDF module oidcc-max-age-1 uses 1 s; 2 s leaves room for a busy
// machine between the first sign-in and this request.
test("max_age=2 with an older sign-in: a step-up with the passkey, a newer auth_time, checked by openid-client", async () => {
  await sleep(3100);
  await page.goto(`${rp.base}/login?max_age=2`);
  await page.waitForURL(atSignetLogin);
  await confirmWithPasskey();
  const c = (await lastSuccess()).claims;
  assert.ok(c.auth_time > latest.auth_time, `${c.auth_time} > ${latest.auth_time}`);
  latest = c;
});

// OpenID Connect Core §3.1.2.1: "max_age=0 is equivalent to prompt=login".
// A proof made after the request arrived meets any max_age.
test(
  "max_age=0 with the session alive: a fresh passkey proof on the same session and a newer auth_time",
  async () => {
    await sleep(1100);
    await page.goto(`${rp.base}/login?max_age=0`);
    await page.waitForURL(atSignetLogin);
    await confirmWithPasskey();
    const c = (await lastSuccess()).claims;
    assert.ok(c.auth_time > latest.auth_time, `${c.auth_time} > ${latest.auth_time}`);
    latest = c;
  },
);

test("a redirect_uri that is not registered exactly: an error page at Signet, never a redirect", async () => {
  const other = await context.newPage();
  const seen = [];
  other.on("response", (r) => {
    if (r.request().resourceType() === "document") seen.push(`${r.status()} ${r.url().split("?")[0]}`);
  });
  const cbRequests = () => rp.requests.filter((p) => p.startsWith("/cb")).length;
  const before = cbRequests();
  for (const [i, uri] of [`${rp.base}/cb/`, `${rp.base}/cb?x=1`, `${rp.base}/CB`].entries()) {
    seen.length = 0;
    await other.goto(`${rp.base}/login?redirect_uri=${encodeURIComponent(uri)}`);
    await other.getByRole("alert").getByText("The redirect URI is not registered for this app").waitFor();
    if (i === 0) await shot(other, "62-oidc-redirect-uri-mismatch");
    await sleep(500);
    assert.equal(new URL(other.url()).origin, signet.base, "the page stays at Signet");
    assert.equal(new URL(other.url()).pathname, "/oauth2/authorize");
    assert.deepEqual(seen, [`302 ${rp.base}/login`, `400 ${signet.base}/oauth2/authorize`], uri);
  }
  assert.equal(cbRequests(), before, "nothing reached the app's callback");
  await other.close();
});

test("refresh with offline_access (a client allowed it, by the admin API): rotation, and a replay revokes the family", async () => {
  // The CLI registers clients with the default scopes and grants only; the
  // admin API sets both.
  const { token } = await signet.cli("admin-token", "create", "e2e-oidc");
  const resp = await fetch(`${signet.direct}/api/v1/admin/oidc/clients`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      name: "Offline app",
      redirect_uris: [`${rp.base}/cb`],
      scopes: ["openid", "email", "profile", "offline_access"],
      grant_types: ["authorization_code", "refresh_token"],
      // The organisation's own app: no consent page.
      first_party: true,
    }),
  });
  const created = await resp.json();
  assert.equal(resp.status, 201, JSON.stringify(created));
  const config = await rp.register("offline", created.client_id, created.client_secret);

  // The Signet session is alive and phishing-resistant: no page.
  await page.goto(`${rp.base}/login?client=offline&prompt=none&scope=${encodeURIComponent("openid email offline_access")}`);
  await backAtApp();
  const r = await lastSuccess();
  assert.equal(r.claims.aud, created.client_id);
  const rt1 = r.tokens.refresh_token;
  assert.match(rt1, /^sgrt_/);

  const second = await client.refreshTokenGrant(config, rt1);
  const rt2 = second.refresh_token;
  assert.match(rt2, /^sgrt_/);
  assert.notEqual(rt2, rt1, "rotated");
  assert.ok(second.scope.split(" ").includes("offline_access"));
  const info = await client.fetchUserInfo(config, second.access_token, first.sub);
  assert.equal(info.email, email);

  // The rotated-out token again: invalid_grant, and the whole family dies,
  // the access token issued by the refresh included.
  await assert.rejects(client.refreshTokenGrant(config, rt1), (e) => e.error === "invalid_grant");
  await assert.rejects(client.refreshTokenGrant(config, rt2), (e) => e.error === "invalid_grant");
  await assert.rejects(client.fetchUserInfo(config, second.access_token, first.sub), (e) => {
    assert.equal(e.response?.status, 401);
    return true;
  });
});

test("the browser met no error along the way", async () => {
  assert.deepEqual(problems.list(), []);
  await context.close();
});
