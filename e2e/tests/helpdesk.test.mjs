// A person loses their only passkey. The help desk opens a recovery ticket
// and a second admin approves it (two admin tokens, through the API); the
// link goes to the person's registered email only, never to an admin. The
// person follows it, binds a new passkey, and signs in with it (at aal1
// during the tier's cooling-off). Debian's Chromium with DevTools virtual
// authenticators: one per device.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { addAuthenticator, isSessionProbe, session, shot, startWorld, watch } from "../lib/harness.mjs";
import { textPart } from "../lib/smtp-sink.mjs";

let world;
let signet;
let browser;

before(async () => {
  world = await startWorld();
  ({ signet, browser } = world);
});

after(async () => {
  if (world) await world.stop();
});

async function noAutofill(page) {
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
}

async function admin(token, method, path, body) {
  const r = await fetch(`${signet.direct}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(!text.includes("/recover/"), `an admin answer carries the link: ${text}`);
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

test("lose the only passkey → two admins approve a ticket → the emailed link binds a new passkey → sign in", async () => {
  const email = "grace@example.com";
  const { id } = await signet.cli("user", "add", email, "--role", "desk", "--name", "Grace Hopper");
  const { link: invitation } = await signet.cli("user", "invite", email);

  // The laptop: the only passkey.
  const context = await browser.newContext();
  const page = await context.newPage();
  await noAutofill(page);
  const laptop = await addAuthenticator(page);
  await page.goto(invitation);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${signet.base}/enroll`);
  await page.getByLabel("Name for this passkey").fill("Laptop");
  await page.getByRole("button", { name: "Create a passkey" }).click();
  await page.getByText("Your passkey is ready").waitFor();
  const [lost] = await laptop.credentials();
  assert.ok(lost);
  // The laptop is lost: its authenticator is gone.
  await laptop.remove();
  await context.close();

  // The help desk: two people, two admin tokens.
  const { token: deskA } = await signet.cli("admin-token", "create", "desk-a");
  const { token: deskB } = await signet.cli("admin-token", "create", "desk-b");
  const skip = world.sink.messages.length;
  const opened = await admin(deskA, "POST", "/api/v1/admin/recovery-tickets", {
    user_id: id,
    reason: "laptop stolen; no other device",
    evidence: { kind: "video_call", reference: "CASE-1906" },
  });
  assert.equal(opened.status, 201);
  assert.equal(opened.body.status, "pending");
  assert.equal((await admin(deskA, "POST", `/api/v1/admin/recovery-tickets/${opened.body.id}/approve`)).status, 403);
  const approved = await admin(deskB, "POST", `/api/v1/admin/recovery-tickets/${opened.body.id}/approve`);
  assert.equal(approved.status, 200);
  assert.equal(approved.body.status, "approved");

  // The link arrives by email, to the registered address.
  const deadline = Date.now() + 15000;
  const pattern = new RegExp(`${signet.base.replace(/[.]/g, "\\.")}/recover/sgr_[A-Za-z0-9_-]+`);
  let link;
  while (!link && Date.now() < deadline) {
    link = world.sink.messages
      .slice(skip)
      .filter((m) => m.to.includes(email))
      .map((m) => pattern.exec(textPart(m.raw)))
      .find(Boolean)?.[0];
    if (!link) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(link, "the recovery link was mailed");
  assert.ok(!signet.log().includes(link.split("/recover/")[1]), "the link is in no server log line");

  // A new laptop: follow the link, bind a passkey, sign in with it.
  const context2 = await browser.newContext();
  const page2 = await context2.newPage();
  await noAutofill(page2);
  const problems = watch(page2, signet.base, isSessionProbe);
  const newLaptop = await addAuthenticator(page2);
  await page2.goto(link);
  await page2.getByText(email).waitFor();
  await shot(page2, "50-helpdesk-link");
  await page2.getByRole("button", { name: "Continue" }).click();
  await page2.waitForURL(`${signet.base}/enroll`);
  let s = await session(page2);
  assert.equal(s.scope, "recovery");
  await page2.getByLabel("Name for this passkey").fill("New laptop");
  await page2.getByRole("button", { name: "Create a passkey" }).click();
  await page2.getByText("Your passkey is ready").waitFor();
  assert.equal((await newLaptop.credentials()).length, 1);
  assert.equal((await session(page2)).status, 401, "the recovery session ended with the new passkey");
  await shot(page2, "51-helpdesk-new-passkey");

  await page2.getByRole("button", { name: "Sign in with your passkey" }).click();
  await page2.waitForURL(`${signet.base}/login`);
  await page2.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page2.waitForURL(`${signet.base}/account`);
  await page2.getByText(`Signed in as ${email}`).waitFor();
  s = await session(page2);
  assert.equal(s.scope, "full");
  assert.equal(s.aal, "aal1", "a passkey bound through recovery is capped during the cooling-off");
  await page2.getByRole("cell", { name: /New laptop/ }).waitFor();
  await shot(page2, "52-helpdesk-signed-in");

  // The link works once.
  await page2.goto(link);
  await page2.getByText("This link no longer works").waitFor();

  assert.deepEqual(problems.filter((p) => !p.startsWith("410 for GET")), []);
  await context2.close();
});
