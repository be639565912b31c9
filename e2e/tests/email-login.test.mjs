// A person signs in with an emailed magic link (and with an emailed code)
// in Debian's Chromium, driven by Playwright, against the real signet
// binary delivering mail over SMTP to a sink in this process.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { shot, startWorld, watch } from "../lib/harness.mjs";
import { leaves, textPart } from "../lib/smtp-sink.mjs";

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

// A 4xx answer from the API is part of these journeys (a wrong code, the
// session probe while signed out); a 5xx never is.
const apiRefusal = (r) => r.status() < 500;

async function startLogin(page, email, choice) {
  await page.goto(`${signet.base}/login`);
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("button", { name: choice }).click();
  await page.getByText("We sent").waitFor();
}

function linkIn(text) {
  const m = new RegExp(`${signet.base.replace(/[.]/g, "\\.")}/login/magic/sgm_[A-Za-z0-9_-]{43}`).exec(text);
  assert.ok(m, `a magic link in the mail:\n${text}`);
  return m[0];
}

function codeIn(text) {
  const m = /Your code: (\d{6,8})/.exec(text);
  assert.ok(m, `a code in the mail:\n${text}`);
  return m[1];
}

test("a person signs in with the magic link from the email, in the same browser", async () => {
  const email = "ada@example.com";
  await signet.cli("user", "add", email, "--role", "partner", "--name", "Ada");
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watch(page, signet.base, apiRefusal);

  const skip = sink.messages.length;
  await startLogin(page, email, "Email me a link");
  await shot(page, "01-login-link-sent");

  const mail = await sink.waitFor(email, skip);
  const text = textPart(mail.raw);
  const link = linkIn(text);
  assert.match(text, /valid for 10 minutes/);
  assert.match(text, /If you did not ask to sign in/);
  // How the HTML part looks in a browser (offline: it must load nothing).
  const html = leaves(mail.raw).find((l) => l.type === "text/html");
  assert.ok(html, "an HTML part");
  const viewer = await browser.newContext({ javaScriptEnabled: false, offline: true });
  const letter = await viewer.newPage();
  await letter.setContent(html.body);
  await shot(letter, "00-sign-in-email");
  await viewer.close();

  await page.goto(link);
  await page.getByRole("heading", { name: "Continue signing in" }).waitFor();
  await shot(page, "02-magic-link-page");
  await page.getByRole("button", { name: "Continue signing in" }).click();
  await page.waitForURL(`${signet.base}/account`);
  await page.getByText(`Signed in as ${email}`).waitFor();
  await shot(page, "03-signed-in");

  const session = await page.evaluate(async () => (await fetch("/api/v1/session")).json());
  assert.equal(session.user.email, email);
  assert.equal(session.aal, "aal1");
  assert.deepEqual(session.amr, ["mail"]);
  assert.equal(session.phishing_resistant, false);
  assert.deepEqual(problems, []);
  await context.close();
});

test("a link opened in another browser does not sign it in; the code typed in the first one does", async () => {
  const email = "bo@example.com";
  await signet.cli("user", "add", email, "--role", "partner");
  const laptop = await browser.newContext();
  const page = await laptop.newPage();
  const problems = watch(page, signet.base, apiRefusal);
  const skip = sink.messages.length;
  await startLogin(page, email, "Email me a link");
  const text = textPart((await sink.waitFor(email, skip)).raw);

  const phone = await browser.newContext();
  const other = await phone.newPage();
  await other.goto(linkIn(text));
  await other.getByRole("button", { name: "Continue signing in" }).click();
  await other.getByRole("heading", { name: "Finish signing in where you started" }).waitFor();
  await shot(other, "04-other-device");
  const refused = await other.evaluate(async () => (await fetch("/api/v1/session")).status);
  assert.equal(refused, 401);
  await phone.close();

  await page.getByLabel("Code from the email").fill(codeIn(text));
  await shot(page, "05-code-typed");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${signet.base}/account`);
  const session = await page.evaluate(async () => (await fetch("/api/v1/session")).json());
  assert.deepEqual(session.amr, ["otp", "mail"]);
  assert.deepEqual(problems, []);
  await laptop.close();
});

test("a wrong code is refused with a message, then the right one signs in", async () => {
  const email = "cy@example.com";
  await signet.cli("user", "add", email, "--role", "partner");
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watch(page, signet.base, apiRefusal);
  const skip = sink.messages.length;
  await startLogin(page, email, "Email me a code");
  const code = codeIn(textPart((await sink.waitFor(email, skip)).raw));
  const wrong = code === "000000" ? "111111" : "000000";
  await page.getByLabel("Code from the email").fill(wrong);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That code is not right").waitFor();
  await shot(page, "06-wrong-code");
  await page.getByLabel("Code from the email").fill(code);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${signet.base}/account`);
  assert.deepEqual(problems, []);
  await context.close();
});
