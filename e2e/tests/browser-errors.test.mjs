// Browser errors without a proxy: pages served from a test origin (a small
// node http server on its own port) include minilog.js with a token and
// throw; the reports arrive at a real `minilog serve` and are read back
// through the read API. Refusals (a disallowed origin, an expired token, a
// forged signature, the per-address limit) are checked in /metrics.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { join } from "node:path";
import { startMinilog, launchBrowser, freePort, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

// The any-language recipe of the README: one SHA-256, one HMAC.
function browserKey(secret) {
  return createHash("sha256").update("minilog-browser-v1:" + secret).digest();
}
function mint(keyId, key, expiry) {
  const sig = createHmac("sha256", key).update(`${keyId}|${expiry}`).digest("base64url");
  return `${keyId}.${expiry}.${sig}`;
}
const now = () => Math.floor(Date.now() / 1000);

test("the token recipe matches API.md's test vector", () => {
  const k = browserKey("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
  assert.equal(k.toString("hex"), "73ee9e7923920fee1f42201f346979f55dc191e53beaf7fca7457b2d8a94bc3a");
  assert.equal(mint("k7f3a9", k, 1800000000), "k7f3a9.1800000000.bI2fgUoY1FQ02oZsemytZL-wdSr_W2KndxQKD2Ihylg");
});

/** A test origin: serves pages that include minilog.js with `token()`. */
async function startSite(base, token) {
  const port = await freePort();
  const script = (t) => `<script src="${base}/minilog.js" data-token="${t}"></script>`;
  const pages = {
    // A cross-origin "Script error." (skipped), a rejection and a throw.
    "/": () => `<!doctype html><title>shop</title>${script(token())}
      <script>
        window.dispatchEvent(new ErrorEvent("error", { message: "Script error." }));
        Promise.reject(new Error("rejected in the e2e page"));
        throw new Error("boom from the e2e page");
      </script>`,
    // Eight distinct errors: the snippet sends at most five per page view.
    "/many": () => `<!doctype html><title>many</title>${script(token())}
      <script>
        for (let i = 0; i < 8; i++) setTimeout(() => { throw new Error("many " + i); }, 0);
      </script>`,
  };
  const server = http.createServer((req, res) => {
    const page = pages[new URL(req.url, "http://x").pathname];
    res.writeHead(page ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    res.end(page ? page() : "not found");
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

async function metric(base, path, reason) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const name = reason
    ? `minilog_gateway_rejected_total{path="${path}",reason="${reason}"}`
    : `minilog_gateway_accepted_total{path="${path}"}`;
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : 0;
}

/** Bounded polling of the external minilog process. */
async function until(what, check) {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting until ${what}`);
}

async function entries(base, query) {
  const auth = "Basic " + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64");
  const r = await fetch(`${base}/api/v1/entries?${query}`, { headers: { authorization: auth } });
  assert.equal(r.status, 200);
  return (await r.json()).entries;
}

test("browser errors reach minilog from allowed origins only, within the per-address limit", async () => {
  const m = await startMinilog();
  let token = "";
  const site = await startSite(m.base, () => token);
  const other = await startSite(m.base, () => token);
  const browser = await launchBrowser();
  try {
    const key = JSON.parse(
      m.cli(["key", "create", "--description", "e2e shop", "--origin", site.origin, "--json"]),
    );
    // The gateway knows the key once a preflight from its origin is answered.
    await until("the gateway knows the key's origin", async () => {
      const r = await fetch(`${m.base}/api/v1/browser`, {
        method: "OPTIONS",
        headers: { origin: site.origin, "access-control-request-method": "POST" },
      });
      return r.status === 204 && r.headers.get("access-control-allow-origin") === site.origin;
    });
    token = m.cli(["key", "browser-token", key.id]).trim();

    // 1. An allowed origin: the rejection and the throw arrive, with the page URL.
    const page = await browser.newPage();
    const ids = [];
    page.on("response", async (r) => {
      if (r.url() === `${m.base}/api/v1/browser` && r.status() === 200) {
        try {
          ids.push((await r.json()).id);
        } catch {}
      }
    });
    const posts = [];
    page.on("request", (r) => r.url() === `${m.base}/api/v1/browser` && r.method() === "POST" && posts.push(r));
    await page.goto(`${site.origin}/?from=e2e`);
    await until("two reports are answered", () => ids.length === 2);
    const got = await entries(m.base, `key=${key.id}&min_seq=${Math.max(...ids)}`);
    const messages = got.map((e) => e.message).sort();
    assert.equal(messages.length, 2);
    assert.ok(messages.some((t) => /^Unhandled rejection: rejected in the e2e page/.test(t)), messages);
    assert.ok(messages.some((t) => /boom from the e2e page/.test(t)), messages);
    for (const e of got) {
      assert.equal(e.untrusted, true);
      assert.equal(e.level, "error");
      assert.equal(e.source, "browser");
      assert.equal(e.meta.url, `${site.origin}/?from=e2e`);
      assert.equal(e.meta.origin, site.origin);
      assert.ok(e.meta.user_agent.length > 0);
    }
    const thrown = got.find((e) => /boom/.test(e.message));
    assert.equal(thrown.meta.file, `${site.origin}/?from=e2e`);
    assert.ok(Number(thrown.meta.line) > 0);
    assert.equal(posts.length, 2, "the cross-origin 'Script error.' is not sent");
    await page.screenshot({ path: join(SCREENSHOTS, "browser-errors-page.png") });

    // 2. The same token from an origin the key does not allow.
    await (await browser.newPage()).goto(`${other.origin}/`);
    await until("the other origin is refused", async () => (await metric(m.base, "browser", "origin_not_allowed")) === 2);

    // 3. An expired token, 4. a forged signature.
    const k = browserKey(key.secret);
    token = mint(key.id, k, now() - 60);
    await (await browser.newPage()).goto(`${site.origin}/`);
    await until("the expired token is refused", async () => (await metric(m.base, "browser", "token_expired")) === 2);
    token = mint(key.id, randomBytes(32), now() + 300);
    await (await browser.newPage()).goto(`${site.origin}/`);
    await until("the forged token is refused", async () => (await metric(m.base, "browser", "token_signature")) === 2);
    assert.equal(await metric(m.base, "browser"), 2, "nothing refused was stored");

    // 5. The per-address limit (7 per 12 h): 2 so far, then two views of a
    // page with 8 errors send 5 each; 5 more pass, 5 are refused.
    token = mint(key.id, k, now() + 600);
    for (let view = 0; view < 2; view++) {
      await (await browser.newPage()).goto(`${site.origin}/many`);
    }
    await until("ten more reports are answered", async () => {
      const accepted = await metric(m.base, "browser");
      const limited = await metric(m.base, "browser", "address_limited");
      return accepted + limited === 12;
    });
    assert.equal(await metric(m.base, "browser"), 7);
    assert.equal(await metric(m.base, "browser", "address_limited"), 5);
    const all = await entries(m.base, `key=${key.id}&limit=50&min_seq=${Math.max(...ids)}`);
    assert.ok(all.length <= 7);
  } finally {
    await browser.close();
    await site.close();
    await other.close();
    await m.stop();
  }
});
