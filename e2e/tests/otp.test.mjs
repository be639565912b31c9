// An account without a passkey (the `codes` tier: an emailed code, then an
// authenticator app or a recovery code) in Debian's Chromium: enroll an
// authenticator app on the account page by reading the secret shown there
// (this test is the app: RFC 6238 in a few lines of Node crypto), sign in
// with an email code plus a TOTP code, then make recovery codes and sign in
// with one of them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { isSessionProbe, session, shot, startWorld, watch } from "../lib/harness.mjs";
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

/** RFC 4648 base32 (spaces ignored) to bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) at `offset` steps from now. */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const word = mac.readUInt32BE(at) & 0x7fffffff;
  return String(word % 1_000_000).padStart(6, "0");
}

/** Signs in up to "one more step" with an emailed code. */
async function emailStep(page, email) {
  await page.goto(`${signet.base}/login`);
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Continue" }).click();
  const skip = sink.messages.length;
  await page.getByRole("button", { name: "Email me a code" }).click();
  await page.getByText("We sent a code").waitFor();
  const mail = await sink.waitFor(email, skip);
  const code = /Your code: (\d{6,8})/.exec(textPart(mail.raw))[1];
  await page.getByLabel("Code from the email").fill(code);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("One more step").waitFor();
}

test("an authenticator app from the account page, then an email code + TOTP; recovery codes, then one of them", async () => {
  const email = "otto@example.com";
  await signet.cli("user", "add", email, "--name", "Otto", "--role", "codes");
  const { link } = await signet.cli("user", "invite", email);

  const context = await browser.newContext();
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: signet.base });
  const page = await context.newPage();
  const problems = watch(page, signet.base, (r) => isSessionProbe(r));
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });

  // The invitation's page offers an authenticator app next to a passkey.
  await page.goto(link);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${signet.base}/enroll`);

  // Set up the app: the QR code and the secret on the page, then a code.
  await page.getByLabel(/Add an authenticator app/).fill("Phone app");
  await page.getByRole("button", { name: "Set up authenticator app" }).click();
  await page.getByRole("img", { name: "QR code for your authenticator app" }).waitFor();
  const secret = (await page.locator("#totp-secret").textContent()).trim();
  assert.match(secret.replace(/ /g, ""), /^[A-Z2-7]{32}$/);
  await shot(page, "30-totp-setup");
  await page.getByLabel("Then type the 6-digit code the app shows").fill(totp(secret));
  await page.getByRole("button", { name: "Confirm" }).click();
  await page.getByText("Authenticator app “Phone app” added.").waitFor();
  await page.getByRole("link", { name: "Sign in with an emailed code and the app" }).click();
  await page.waitForURL(`${signet.base}/login`);

  // Sign in with an email code and the app's next code (the one that
  // confirmed the app counts as used).
  await emailStep(page, email);
  await shot(page, "32-app-or-recovery-code");
  await page.getByRole("button", { name: "Use an authenticator app" }).click();
  await page.getByLabel("Code from your authenticator app").fill(totp(secret, 1));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${signet.base}/account`);
  let s = await session(page);
  assert.equal(s.aal, "aal2");
  assert.ok(s.amr.includes("otp"), JSON.stringify(s.amr));
  await page.getByRole("cell", { name: /Phone app/ }).waitFor();

  // Recovery codes: ten, shown once, with copy, download and print.
  await page.getByRole("button", { name: "Generate recovery codes" }).click();
  await page.locator("#recovery-code-list li").nth(9).waitFor();
  const codes = await page.locator("#recovery-code-list li").allTextContents();
  assert.equal(codes.length, 10);
  for (const c of codes) assert.match(c, /^([2-9A-HJ-NP-Z]{4}-){5}[2-9A-HJ-NP-Z]{4}$/);
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByText("Copied.").waitFor();
  assert.ok((await page.evaluate(() => navigator.clipboard.readText())).includes(codes[0]));
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "recovery-codes.txt");
  await shot(page, "31-recovery-codes");


  // Sign out; this time a recovery code, typed in lower case.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${signet.base}/login`);
  await emailStep(page, email);
  await page.getByRole("button", { name: "Use a recovery code" }).click();
  await page.getByLabel(/Recovery code/).fill(codes[0].toLowerCase());
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${signet.base}/account`);
  s = await session(page);
  assert.equal(s.aal, "aal2");
  assert.ok(s.amr.includes("rc"), JSON.stringify(s.amr));
  await page.getByText("9 of 10 codes left").waitFor();
  await shot(page, "33-signed-in-with-a-recovery-code");

  assert.deepEqual(problems, []);
  await context.close();
});
