// A standard-tier account (aal2) in Debian's Chromium: an emailed code is
// only a first step, and the page offers the passkey as the second on the
// same flow; later, removing a passkey with a stale session asks for a
// fresh passkey on the account page itself, then removes it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { addAuthenticator, isSessionProbe, session, shot, startWorld, watch } from "../lib/harness.mjs";
import { textPart } from "../lib/smtp-sink.mjs";

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

test("an emailed code, then a passkey on the same flow; a fresh passkey before removing one", async () => {
  const email = "lin@example.com";
  await signet.cli("user", "add", email, "--name", "Lin");
  const { link } = await signet.cli("user", "invite", email);

  const context = await browser.newContext();
  const page = await context.newPage();
  // The session probe's 401, and the 403 step_up_required that the page
  // answers by asking for a passkey, are part of the journey.
  const problems = watch(page, signet.base, (r) => isSessionProbe(r) || (r.status() === 403 && r.url().includes("/api/v1/credentials/")));
  // No autofill here: under automation a waiting conditional request would
  // sign in with the passkey at once, and this test types the address.
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  const laptop = await addAuthenticator(page);

  await page.goto(link);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${signet.base}/enroll`);
  await page.getByLabel("Name for this passkey").fill("Laptop");
  await page.getByRole("button", { name: "Create a passkey" }).click();
  await page.getByText("Your passkey is ready").waitFor();
  await page.getByRole("button", { name: "Sign in with your passkey" }).click();
  await page.waitForURL(`${signet.base}/login`);

  // Step one: the address and an emailed code (aal1).
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Continue" }).click();
  const skip = sink.messages.length;
  await page.getByRole("button", { name: "Email me a code" }).click();
  await page.getByText("We sent a code").waitFor();
  const mail = await sink.waitFor(email, skip);
  const code = /Your code: (\d{6,8})/.exec(textPart(mail.raw))[1];
  await page.getByLabel("Code from the email").fill(code);
  await page.getByRole("button", { name: "Sign in" }).click();

  // Step two, on the same flow: the tier needs aal2, so the passkey.
  await page.getByText("One more step").waitFor();
  await shot(page, "20-one-more-step");
  assert.equal((await session(page)).status, 401, "no session after the first step");
  await page.getByRole("button", { name: "Use a passkey" }).click();
  await page.waitForURL(`${signet.base}/account`);
  const s = await session(page);
  assert.equal(s.aal, "aal2");
  assert.ok(s.amr.includes("otp") && s.amr.includes("mfa"), JSON.stringify(s.amr));
  await shot(page, "21-signed-in-in-two-steps");

  // A second passkey, on another device (the session is fresh).
  await laptop.remove();
  const phone = await addAuthenticator(page);
  await page.getByLabel("Add a passkey on another device or security key").fill("Phone");
  await page.getByRole("button", { name: "Add passkey" }).click();
  await page.getByRole("cell", { name: /Phone/ }).waitFor();
  assert.equal((await phone.credentials()).length, 1);

  // Two seconds later the session is too old to remove one: the page asks
  // for a passkey right there, then removes it.
  await page.waitForTimeout(2500);
  const laptopRow = page.getByRole("row", { name: /Laptop/ });
  await laptopRow.getByRole("button", { name: "Remove" }).click();
  await laptopRow.getByRole("button", { name: "Click again to remove" }).click();
  await page.getByText("For your security, confirm it's you first.").waitFor();
  await shot(page, "22-confirm-before-removing");
  await page.locator("#step-up-methods").getByRole("button", { name: "Use a passkey" }).click();
  await page.waitForLoadState("load");
  await page.getByRole("cell", { name: /Phone/ }).waitFor();
  await page.getByText("Laptop").waitFor({ state: "detached" });
  await shot(page, "23-removed-after-confirming");
  const after = await session(page);
  assert.equal(after.aal, "aal2");

  assert.deepEqual(problems, []);
  await context.close();
});
