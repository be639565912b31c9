// Starts the built `signet` binary for a browser test: a fresh SQLite
// database in a temp dir, real SMTP delivery to the test's sink, and a
// policy with a low tier where an emailed link or code is enough.
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const run = promisify(execFile);
const root = path.resolve(HERE, "..", "..");

export const POLICY = `
[tiers.low]
login = ["magic_link", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey", "totp"]
required_aal = "aal2"
recovery = ["backup_passkey"]
session = { idle = "30m", absolute = "12h" }

# Accounts without a passkey: an emailed code, then an authenticator app or
# a recovery code (aal2 together).
[tiers.codes]
login = ["email_otp"]
second_factor = ["totp", "recovery_code", "passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }

# Accounts that sign in with an emailed or a texted code (aal1).
[tiers.texts]
login = ["email_otp", "sms_otp"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

# Help-desk recovery: two people, and a day of cooling-off for the passkey
# bound through it.
[tiers.desk]
login = ["passkey", "email_otp"]
second_factor = ["passkey", "totp"]
required_aal = "aal2"
recovery = ["backup_passkey", "helpdesk"]
session = { idle = "30m", absolute = "12h" }

[tiers.desk.helpdesk]
approvals = 2
cooling_off = "24h"

[assignment]
default = "standard"
roles = { partner = "low", codes = "codes", texts = "texts", desk = "desk" }

# Removing a passkey needs a proof from the last 2 seconds, so that a test
# can see the page ask for one.
[actions.remove_credential]
aal = "aal2"
max_age = "2s"
`;

export function binary() {
  const bin = process.env.SIGNET_BIN || path.join(root, "target", "debug", "signet");
  if (!existsSync(bin)) {
    throw new Error(`the signet binary is missing at ${bin}: run \`cargo build -p signet\` first (or set SIGNET_BIN)`);
  }
  return bin;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts signet delivering mail to `smtpPort`; `options.smsWebhook` sends
 * texts to that URL (`[sms] webhook_url`) instead of the dev outbox.
 */
export async function startSignet(smtpPort, options = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "signet-e2e-"));
  const port = await freePort();
  // WebAuthn needs a host name in public_url (an IP address cannot be an RP
  // ID); the browser reaches localhost on the loopback interface. Node's own
  // requests go to 127.0.0.1 directly, where the server listens.
  const base = `http://localhost:${port}`;
  const direct = `http://127.0.0.1:${port}`;
  writeFileSync(path.join(dir, "policy.toml"), POLICY);
  const config = path.join(dir, "signet.toml");
  writeFileSync(
    config,
    [
      `listen = "127.0.0.1:${port}"`,
      `public_url = "${base}"`,
      `policy = "${path.join(dir, "policy.toml")}"`,
      "[database]",
      `url = "sqlite://${path.join(dir, "signet.db")}"`,
      "[email]",
      `from = "Signet <signet@example.com>"`,
      `smtp_url = "smtp://127.0.0.1:${smtpPort}"`,
      // Every browser here is 127.0.0.1; the per-address start limit has an
      // integration test of its own.
      "[login]",
      "starts_per_ip = 10000",
      ...(options.smsWebhook ? ["[sms]", `webhook_url = "${options.smsWebhook}"`] : []),
      "",
    ].join("\n"),
  );
  // The CLI and the server read only the config file: no SIGNET_* leaks in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SIGNET_")));
  const bin = binary();
  const cli = async (...args) => {
    const { stdout } = await run(bin, [...args, "--config", config, "--json"], { env, cwd: dir });
    return JSON.parse(stdout);
  };
  const child = spawn(bin, ["serve", "--config", config], { env, cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`signet exited early (${child.exitCode}):\n${log}`);
    try {
      const r = await fetch(`${direct}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`signet did not answer /healthz within 30 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    direct,
    cli,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
