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

/** Starts the sink, signet and Chromium; `stop()` tears them down in reverse. */
export async function startWorld() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const sink = new SmtpSink();
  const signet = await startSignet(await sink.listen());
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
