// A tiny SMTP listener for the browser tests: accepts every message over
// plain SMTP (what Signet's `smtp://` transport speaks) and keeps it, with
// just enough MIME decoding (multipart, quoted-printable, base64) to read
// the text part. No dependencies.
import net from "node:net";

function decodeQuotedPrintable(s) {
  const bytes = [];
  const soft = s.replace(/=\r?\n/g, "");
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i];
    if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(soft.slice(i + 1, i + 3))) {
      bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

function splitEntity(entity) {
  const at = entity.indexOf("\n\n");
  const head = at < 0 ? entity : entity.slice(0, at);
  const body = at < 0 ? "" : entity.slice(at + 2);
  const headers = {};
  let last = null;
  for (const line of head.split("\n")) {
    if (/^[ \t]/.test(line) && last) {
      headers[last] += " " + line.trim();
    } else {
      const i = line.indexOf(":");
      if (i > 0) {
        last = line.slice(0, i).trim().toLowerCase();
        headers[last] = line.slice(i + 1).trim();
      }
    }
  }
  return { headers, body };
}

// Every leaf part of a message as { type, body } with the body decoded.
export function leaves(raw, depth = 0) {
  const { headers, body } = splitEntity(raw.replace(/\r\n/g, "\n"));
  const ctype = (headers["content-type"] || "text/plain").toLowerCase();
  if (ctype.startsWith("multipart/") && depth < 8) {
    const m = /boundary="?([^";]+)"?/i.exec(headers["content-type"]);
    if (!m) return [];
    const parts = body.split("--" + m[1]).slice(1);
    return parts
      .filter((p) => !p.startsWith("--"))
      .flatMap((p) => leaves(p.replace(/^\n/, ""), depth + 1));
  }
  const enc = (headers["content-transfer-encoding"] || "7bit").toLowerCase();
  let text = body;
  if (enc === "quoted-printable") text = decodeQuotedPrintable(body);
  if (enc === "base64") text = Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
  return [{ type: ctype.split(";")[0].trim(), body: text }];
}

export function textPart(raw) {
  const leaf = leaves(raw).find((l) => l.type === "text/plain");
  return leaf ? leaf.body : "";
}

export class SmtpSink {
  constructor() {
    this.messages = [];
    this.waiters = [];
    this.server = net.createServer((socket) => this.session(socket));
  }

  listen() {
    return new Promise((resolve) => {
      this.server.listen(0, "127.0.0.1", () => resolve(this.server.address().port));
    });
  }

  close() {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  session(socket) {
    let buffer = "";
    let inData = false;
    let data = [];
    let to = [];
    const reply = (line) => socket.write(line + "\r\n");
    reply("220 signet-e2e-sink ESMTP");
    socket.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      let nl;
      while ((nl = buffer.indexOf("\r\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            this.received({ to, raw: data.join("\r\n") });
            data = [];
            to = [];
            reply("250 OK: queued");
          } else {
            data.push(line.startsWith("..") ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") {
          reply("250-signet-e2e-sink");
          reply("250 8BITMIME");
        } else if (verb === "HELO") reply("250 signet-e2e-sink");
        else if (verb === "MAIL") reply("250 OK");
        else if (verb === "RCPT") {
          const m = /<([^>]*)>/.exec(line);
          if (m) to.push(m[1].toLowerCase());
          reply("250 OK");
        } else if (verb === "DATA") {
          inData = true;
          reply("354 End data with <CR><LF>.<CR><LF>");
        } else if (verb === "RSET") {
          to = [];
          reply("250 OK");
        } else if (verb === "NOOP") reply("250 OK");
        else if (verb === "QUIT") {
          reply("221 Bye");
          socket.end();
        } else reply("502 Command not implemented");
      }
    });
    socket.on("error", () => {});
  }

  received(message) {
    this.messages.push(message);
    this.waiters = this.waiters.filter((w) => !w(message));
  }

  // The next message to `address` after the first `skip` messages.
  waitFor(address, skip = 0, timeoutMs = 15000) {
    const wanted = address.toLowerCase();
    const found = this.messages.slice(skip).find((m) => m.to.includes(wanted));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no mail to ${address} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((m) => {
        if (!m.to.includes(wanted)) return false;
        clearTimeout(timer);
        resolve(m);
        return true;
      });
    });
  }
}
