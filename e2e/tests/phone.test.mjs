// A phone for sign-in codes by text message, in Debian's Chromium, with a
// real HTTP listener standing in for the SMS gateway: a person in the
// `texts` tier signs in with an emailed code, adds their mobile number on
// the account page and confirms it with the texted code, signs out, and
// signs in again with a code texted to that phone.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { session, shot, startWorld, watch } from "../lib/harness.mjs";
import { SmsSink } from "../lib/sms-sink.mjs";
import { textPart } from "../lib/smtp-sink.mjs";

let world;
let texts;

before(async () => {
  texts = new SmsSink();
  const smsWebhook = await texts.listen();
  world = await startWorld({ smsWebhook });
});

after(async () => {
  if (world) await world.stop();
  if (texts) await texts.close();
});

// A wrong code's 400 and the session probe while signed out are part of
// the journey; a 5xx never is.
const apiRefusal = (r) => r.status() < 500;

// A UK mobile number (in the default country allow-list).
const PHONE = "+447400123456";

const codeIn = (body) => {
  const m = /(\d{6,8})/.exec(body);
  assert.ok(m, `a code in the text: ${body}`);
  return m[1];
};

test("a phone added and confirmed on the account page, then a sign-in with a texted code", async () => {
  const { sink, signet, browser } = world;
  const email = "tex@example.com";
  await signet.cli("user", "add", email, "--name", "Tex", "--role", "texts");
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watch(page, signet.base, apiRefusal);

  // Sign in with an emailed code (the tier is aal1).
  await page.goto(`${signet.base}/login`);
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Continue" }).click();
  const skip = sink.messages.length;
  await page.getByRole("button", { name: "Email me a code" }).click();
  await page.getByText("We sent a code").waitFor();
  const mail = await sink.waitFor(email, skip);
  await page.getByLabel("Code from the email").fill(/Your code: (\d{6,8})/.exec(textPart(mail.raw))[1]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${signet.base}/account`);

  // Add the phone, written as people write it; the texted code confirms it.
  await page.getByLabel("Add a phone for sign-in codes by text message").fill("+44 7400 123 456");
  await page.getByRole("button", { name: "Text me a code" }).click();
  await page.getByText("We texted a code to that number. Type it here.").waitFor();
  const confirmation = await texts.waitFor(PHONE, /phone confirmation code/);
  await shot(page, "40-phone-code-sent");
  await page.getByLabel("The code we texted you").fill(codeIn(confirmation.body));
  await page.getByRole("button", { name: "Confirm phone" }).click();
  await page.getByText("Phone added.").waitFor();
  // Listed like any credential, the number masked.
  await page.getByRole("cell", { name: /\+44••••••••56/ }).first().waitFor();
  await shot(page, "41-phone-added");

  // Sign out, then sign in with a code texted to that phone.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${signet.base}/login`);
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Continue" }).click();
  const before = texts.texts.filter((t) => t.to === PHONE).length;
  await page.getByRole("button", { name: "Text me a code" }).click();
  await page.getByText("we texted it a code").waitFor();
  const login = await texts.waitFor(PHONE, /^\d{6,8}\b/, before);
  await page.getByLabel("Code from the text message").fill(codeIn(login.body));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${signet.base}/account`);
  const s = await session(page);
  assert.equal(s.aal, "aal1");
  assert.deepEqual(s.amr, ["sms", "otp"]);
  await shot(page, "42-signed-in-by-text");

  assert.deepEqual(problems, []);
  await context.close();
});
