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

/** A page's problems, less the relying party's own pages (it is the other origin here on purpose). */
function watchBoth(page) {
  const problems = watch(page, signet.base, (r) => isSessionProbe(r));
  return {
    list: () => problems.filter((p) => !p.includes(rp.base)),
  };
}

/** Signet's login page, opened for a stored authorization request. */
function atSignetLogin(u) {
  return u.origin === signet.base && u.pathname === "/login" && u.searchParams.has("return_to");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("an app with openid-client signs a person in with a passkey (acr_values=phr), again silently, and again with a fresh proof", async () => {
  // The app, registered with the CLI (a confidential client, the default).
  const reg = await signet.cli("client", "add", "Example app", "--redirect-uri", `${rp.base}/cb`);
  assert.ok(reg.client_id && reg.client_secret, JSON.stringify(Object.keys(reg)));
  const config = await rp.register("app", reg.client_id, reg.client_secret);
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, signet.base);
  assert.equal(meta.authorization_response_iss_parameter_supported, true);
  assert.ok(meta.code_challenge_methods_supported.includes("S256"));
  assert.ok(meta.acr_values_supported.includes("phr"));

  // A person with a passkey (invitation → passkey), then signed out of
  // Signet so that the app's request meets no session.
  const email = "ada@example.com";
  await signet.cli("user", "add", email, "--name", "Ada Lovelace");
  const { link } = await signet.cli("user", "invite", email);
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watchBoth(page);
  const authenticator = await addAuthenticator(page);
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

  // 1. The app's login link: Signet's login page, resuming the request.
  await page.goto(`${rp.base}/login`);
  await page.waitForURL(atSignetLogin);
  const returnTo = new URL(page.url()).searchParams.get("return_to");
  assert.match(returnTo, /^\/oauth2\/authorize\/resume\/[0-9a-f-]{36}$/);
  await page.getByRole("button", { name: "Sign in with a passkey" }).waitFor();
  await shot(page, "60-oidc-login");
  const signCount = (await authenticator.credentials())[0].signCount;
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL((u) => u.href.startsWith(`${rp.base}/cb?`));
  await page.getByRole("heading", { name: "Signed in to Example app" }).waitFor();
  await shot(page, "61-oidc-app-signed-in");
  assert.ok((await authenticator.credentials())[0].signCount > signCount, "the passkey was used");

  assert.equal(rp.results.length, 1);
  const first = rp.results[0];
  assert.equal(first.error, undefined, `${first.error}: ${first.errorDescription}`);
  // RFC 9207: the authorization response names its issuer.
  assert.equal(first.query.iss, signet.base);
  assert.match(first.query.code, /^sgac_/);
  const c1 = first.claims;
  assert.equal(c1.iss, signet.base);
  assert.equal(c1.aud, reg.client_id);
  assert.equal(c1.acr, "phr", "a passkey is phishing-resistant");
  // docs/passkeys.md "What a passkey session proves": hwk for a
  // device-bound key (the virtual authenticator's credential is not
  // backup-eligible), user presence, and mfa for user verification.
  assert.deepEqual([...c1.amr].sort(), ["hwk", "mfa", "user"]);
  assert.equal(typeof c1.auth_time, "number");
  assert.ok(Math.abs(c1.auth_time - Date.now() / 1000) < 60, "auth_time is now");
  assert.equal(typeof c1.sid, "string");
  assert.ok(c1.sid.length > 0);
  assert.equal(c1.email, email);
  assert.equal(c1.email_verified, true);
  assert.equal(c1.name, "Ada Lovelace");
  assert.equal(first.tokens.token_type.toLowerCase(), "bearer");
  assert.equal(first.tokens.refresh_token, undefined, "no offline_access, no refresh token");
  // UserInfo with the access token: the same person.
  assert.equal(first.userinfo.sub, c1.sub);
  assert.equal(first.userinfo.email, email);
  assert.equal(first.userinfo.email_verified, true);
  assert.equal(first.userinfo.name, "Ada Lovelace");
  // The Signet session the login left behind is the one named by sid.
  // (Checked from a Signet page: the session probe is same-origin.)
  await page.goto(`${signet.base}/login`);
  const s = await session(page);
  assert.equal(s.aal, "aal2");
  assert.equal(s.phishing_resistant, true);

  // 2. prompt=none with the Signet session alive: no page at all, only
  //    redirects (the RP's /login, Signet's authorize, the RP's callback).
  const documents = [];
  const onResponse = (r) => {
    if (r.request().resourceType() === "document") documents.push(`${r.status()} ${r.url().split("?")[0]}`);
  };
  page.on("response", onResponse);
  await page.goto(`${rp.base}/login?prompt=none`);
  await page.getByRole("heading", { name: "Signed in to Example app" }).waitFor();
  page.off("response", onResponse);
  assert.deepEqual(documents, [`302 ${rp.base}/login`, `303 ${signet.base}/oauth2/authorize`, `200 ${rp.base}/cb`]);
  const silent = rp.results[1];
  assert.equal(silent.error, undefined, `${silent.error}: ${silent.errorDescription}`);
  assert.equal(silent.query.iss, signet.base);
  assert.equal(silent.claims.sub, c1.sub, "sub is stable");
  assert.equal(silent.claims.sid, c1.sid, "the same Signet session");
  assert.equal(silent.claims.auth_time, c1.auth_time, "no new authentication");
  assert.equal(silent.claims.acr, "phr");
  assert.equal(silent.userinfo.sub, c1.sub);

  // 3. prompt=login with the session alive: the login page again, a new
  //    passkey proof, and a newer auth_time (whole seconds: wait past one).
  await sleep(1100);
  const before3 = (await authenticator.credentials())[0].signCount;
  await page.goto(`${rp.base}/login?prompt=login`);
  await page.waitForURL(atSignetLogin);
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.getByRole("heading", { name: "Signed in to Example app" }).waitFor();
  assert.ok((await authenticator.credentials())[0].signCount > before3, "a new passkey proof");
  const fresh = rp.results[2];
  assert.equal(fresh.error, undefined, `${fresh.error}: ${fresh.errorDescription}`);
  assert.equal(fresh.claims.sub, c1.sub);
  assert.ok(fresh.claims.auth_time > c1.auth_time, `${fresh.claims.auth_time} > ${c1.auth_time}`);
  assert.equal(fresh.claims.acr, "phr");

  assert.deepEqual(problems.list(), []);
  await context.close();
});
