// A person accepts an invitation, creates a passkey, and signs in with it
// by the "Sign in with a passkey" button and by autofill (conditional
// mediation), in Debian's Chromium with the DevTools virtual authenticator
// (CTAP2, internal transport, resident keys, user verification).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { addAuthenticator, isSessionProbe, session, shot, startWorld, watch } from "../lib/harness.mjs";

let world;
let sink;
let signet;
let browser;

before(async () => {
  world = await startWorld();
  ({ sink, signet, browser } = world);
});

after(async () => {
  if (world) await world.stop();
});

async function signOut(page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${signet.base}/login`);
}

test("invitation → create a passkey → sign in with the button → sign in through autofill", async () => {
  const email = "grace@example.com";
  await signet.cli("user", "add", email, "--name", "Grace Hopper");
  const { link } = await signet.cli("user", "invite", email);

  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watch(page, signet.base, isSessionProbe);
  const authenticator = await addAuthenticator(page);

  // The invitation.
  await page.goto(link);
  await page.getByRole("heading", { name: "You're invited" }).waitFor();
  await shot(page, "10-invitation");
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${signet.base}/enroll`);
  await page.getByRole("heading", { name: "Create your passkey" }).waitFor();
  await shot(page, "11-create-passkey");

  // The first passkey.
  await page.getByLabel("Name for this passkey").fill("Work laptop");
  await page.getByRole("button", { name: "Create a passkey" }).click();
  await page.getByText("Your passkey is ready").waitFor();
  await shot(page, "12-passkey-ready");
  const creds = await authenticator.credentials();
  assert.equal(creds.length, 1, "one credential on the authenticator");
  assert.equal(creds[0].isResidentCredential, true, "a discoverable credential");
  assert.equal((await session(page)).scope, "enrollment");

  // "Sign in with your passkey" ends the setup session and goes to /login.
  // First the explicit button, as in a browser without autofill support:
  // the page then leaves no request waiting in the background.
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await page.getByRole("button", { name: "Sign in with your passkey" }).click();
  await page.waitForURL(`${signet.base}/login`);
  assert.equal((await session(page)).status, 401, "the setup session ended");
  await page.getByRole("button", { name: "Sign in with a passkey" }).waitFor();
  await shot(page, "13-login");
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL(`${signet.base}/account`);
  await page.getByText(`Signed in as ${email}`).waitFor();
  let s = await session(page);
  assert.equal(s.user.email, email);
  assert.equal(s.scope, "full");
  assert.equal(s.aal, "aal2");
  assert.equal(s.phishing_resistant, true);
  assert.ok(s.amr.includes("user") && s.amr.includes("mfa"), JSON.stringify(s.amr));
  await page.getByRole("cell", { name: /Work laptop/ }).waitFor();
  await shot(page, "14-account");

  // Adding this same device again: the browser refuses (the request
  // excludes credentials the account has) and the page says why.
  await page.getByRole("button", { name: "Add passkey" }).click();
  await page.getByText("This device already has a passkey for your account").waitFor();
  await shot(page, "15-already-registered");
  assert.equal((await authenticator.credentials()).length, 1);

  // Rename it on the account page.
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("New name for Work laptop").fill("Grace's laptop");
  await shot(page, "15-renaming");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Renamed to “Grace's laptop”.").waitFor();
  await shot(page, "15-renamed");
  await signOut(page);

  // Autofill: a fresh page (no override this time) starts a conditional
  // request on load; the person picks the passkey from the email field's
  // suggestions. (Under DevTools automation Chromium resolves a
  // conditional request as soon as an authenticator holds a credential,
  // standing in for the pick.) No button is clicked.
  const autofillPage = await context.newPage();
  const problems2 = watch(autofillPage, signet.base, isSessionProbe);
  // Its current state: a stale copy would be refused for its signature
  // counter (a cloned key), which is the point of the counter.
  const [current] = await authenticator.credentials();
  const auth2 = await addAuthenticator(autofillPage, current);
  const loginRequests = [];
  autofillPage.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/api/v1/login")) loginRequests.push(r.postData());
  });

  await page.close();
  await autofillPage.goto(`${signet.base}/login`);
  await autofillPage.waitForURL(`${signet.base}/account`);
  await autofillPage.getByText(`Signed in as ${email}`).waitFor();
  assert.deepEqual(loginRequests, ["{}"], "one usernameless flow, started by the page itself");
  s = await session(autofillPage);
  assert.equal(s.user.email, email);
  assert.equal(s.aal, "aal2");
  assert.equal((await auth2.credentials())[0].signCount >= 1, true);
  await shot(autofillPage, "16-signed-in-by-autofill");

  assert.deepEqual(problems, []);
  assert.deepEqual(problems2, []);
  await context.close();
});
