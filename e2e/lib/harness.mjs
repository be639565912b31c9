// What every browser test needs: an SMTP sink, the real signet binary
// delivering to it, and Debian's Chromium launched with the flags this
// workplace requires (never a downloaded browser).
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { SmtpSink } from "./smtp-sink.mjs";
import { startSignet } from "./signet.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.resolve(HERE, "..", "artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/**
 * Starts the sink, signet and Chromium; `stop()` tears them down in reverse.
 * `options` go to `startSignet` (e.g. `smsWebhook`).
 */
export async function startWorld(options = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const sink = new SmtpSink();
  const signet = await startSignet(await sink.listen(), options);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  return {
    sink,
    signet,
    browser,
    async stop() {
      await browser.close();
      await signet.stop();
      await sink.close();
    },
  };
}

/** Saves a full-page screenshot as artifacts/NAME.png, for a person to look at. */
export async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * Collects what a person should never meet on `page`: page errors, console
 * errors, loads from any origin but `base`, and failed responses, except
 * those `expected(response)` accepts (a wrong code's 400, say). Chromium's
 * console line for a failed load names no URL, so failures are judged on
 * the response instead.
 */
export function watch(page, base, expected = () => false) {
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && !expected(r)) problems.push(`${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:")) problems.push(`third-party load: ${r.url()}`);
  });
  return problems;
}

/** The page's probe of its own session: 401 signed out. */
export function isSessionProbe(r) {
  return r.url().endsWith("/api/v1/session") && r.status() === 401;
}

/**
 * A platform authenticator that verifies the user (like Touch ID or
 * Windows Hello) attached to `page` through the DevTools protocol,
 * optionally holding `credential` already (a virtual authenticator belongs
 * to one page, so another tab gets a copy, as the person's device would
 * offer it to any tab).
 */
export async function addAuthenticator(page, credential) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  if (credential) await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
  return {
    async credentials() {
      return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
    },
    async remove() {
      await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
    },
  };
}

/** `GET /api/v1/session` as the page sees it, or `{status}` when refused. */
export async function session(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/v1/session");
    return r.ok ? r.json() : { status: r.status };
  });
}
