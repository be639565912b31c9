// A real HTTP listener standing in for an SMS gateway: signet's `[sms]
// webhook_url` sender POSTs JSON `{"to", "body"}` here, and a test waits for
// the text it expects.
import http from "node:http";

export class SmsSink {
  constructor() {
    this.texts = [];
    this.waiters = [];
    this.server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        let text;
        try {
          text = JSON.parse(body);
        } catch {
          res.writeHead(400).end();
          return;
        }
        this.texts.push(text);
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
        this.waiters = this.waiters.filter((w) => !w());
      });
    });
  }

  /** Listens on 127.0.0.1; returns the webhook URL. */
  async listen() {
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${this.server.address().port}/sms`;
  }

  /** The first text to `to` after the first `skip` texts to it whose body matches `pattern`. */
  waitFor(to, pattern, skip = 0, timeoutMs = 10000) {
    const find = () => this.texts.filter((t) => t.to === to).slice(skip).find((t) => pattern.test(t.body));
    return new Promise((resolve, reject) => {
      const found = find();
      if (found) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`no text to ${to} matching ${pattern}`)), timeoutMs);
      this.waiters.push(() => {
        const t = find();
        if (!t) return false;
        clearTimeout(timer);
        resolve(t);
        return true;
      });
    });
  }

  close() {
    return new Promise((r) => this.server.close(r));
  }
}
