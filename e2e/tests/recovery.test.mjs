// A person with one passkey is warned they have no way back in, adds a
// backup passkey on another device, loses the first device, recovers at
// /recover with the backup, and binds a passkey on a new device through
// the recovery session, which then ends. Debian's Chromium with DevTools
// virtual authenticators: one per device.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { addAuthenticator, isSessionProbe, session, shot, startWorld, watch } from "../lib/harness.mjs";

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

// No autofill: the explicit button, so that no request waits in the background.
async function noAutofill(page) {
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
}

async function signInWithPasskey(page, email) {
  await page.goto(`${signet.base}/login`);
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL(`${signet.base}/account`);
  await page.getByText(`Signed in as ${email}`).waitFor();
}

test("lose the only device → recover with the backup passkey at /recover → bind a new passkey", async () => {
  const email = "katherine@example.com";
  await signet.cli("user", "add", email, "--name", "Katherine Johnson");
  const { link } = await signet.cli("user", "invite", email);

  // The laptop: the first passkey, and the nudge to add a backup.
  const context = await browser.newContext();
  const page = await context.newPage();
  await noAutofill(page);
  const problems = watch(page, signet.base, isSessionProbe);
  const laptop = await addAuthenticator(page);
  await page.goto(link);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${signet.base}/enroll`);
  await page.getByLabel("Name for this passkey").fill("Laptop");
  await page.getByRole("button", { name: "Create a passkey" }).click();
  await page.getByText("Your passkey is ready").waitFor();
  await page.getByText("add a second passkey on another device").waitFor();
  await shot(page, "40-first-passkey-nudge");
  await page.getByRole("button", { name: "Sign in with your passkey" }).click();
  await page.waitForURL(`${signet.base}/login`);
  await signInWithPasskey(page, email);

  // One passkey is no way back in.
  await page.locator("#no-way-back").waitFor();
  await shot(page, "41-no-way-back");

  // A security key as a backup (another device: another authenticator).
  const [laptopKey] = await laptop.credentials();
  await laptop.remove();
  const securityKey = await addAuthenticator(page);
  await page.getByLabel("Add a passkey on another device or security key").fill("Security key");
  await page.getByRole("button", { name: "Add passkey" }).click();
  await page.locator("#ways-back").waitFor();
  await page.getByText("a backup passkey").waitFor();
  await shot(page, "42-one-way-back");
  const [backup] = await securityKey.credentials();
  assert.ok(backup && laptopKey && backup.credentialId !== laptopKey.credentialId);
  await context.close();

  // The laptop is lost. On a borrowed browser, with the security key.
  const context2 = await browser.newContext();
  const page2 = await context2.newPage();
  await noAutofill(page2);
  const problems2 = watch(page2, signet.base, isSessionProbe);
  const key = await addAuthenticator(page2, backup);
  await page2.goto(`${signet.base}/login`);
  await page2.getByRole("link", { name: "Recover your account" }).click();
  await page2.waitForURL(`${signet.base}/recover`);
  await page2.getByLabel("Email address").fill(email);
  await page2.getByRole("button", { name: "Continue" }).click();
  await page2.getByRole("button", { name: "Use a passkey" }).click();
  await page2.waitForURL(`${signet.base}/enroll`);
  let s = await session(page2);
  assert.equal(s.scope, "recovery");
  assert.equal(s.aal, "aal2");
  await shot(page2, "43-recovered");

  // A new laptop: the recovery session binds its passkey, then ends.
  await key.remove();
  const newLaptop = await addAuthenticator(page2);
  await page2.getByLabel("Name for this passkey").fill("New laptop");
  await page2.getByRole("button", { name: "Create a passkey" }).click();
  await page2.getByText("Your passkey is ready").waitFor();
  assert.equal((await newLaptop.credentials()).length, 1);
  assert.equal((await session(page2)).status, 401, "the recovery session ended with the new passkey");
  await shot(page2, "44-new-passkey");

  await page2.getByRole("button", { name: "Sign in with your passkey" }).click();
  await page2.waitForURL(`${signet.base}/login`);
  await signInWithPasskey(page2, email);
  s = await session(page2);
  assert.equal(s.scope, "full");
  await page2.getByRole("cell", { name: /New laptop/ }).waitFor();

  // The owner was told of the recovery.
  const deadline = Date.now() + 15000;
  const recovered = () => world.sink.messages.some((m) => m.to.includes(email) && m.raw.includes("was recovered"));
  while (!recovered() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.ok(recovered(), "a recovery notice was mailed");

  assert.deepEqual(problems, []);
  assert.deepEqual(problems2, []);
  await context2.close();
});
