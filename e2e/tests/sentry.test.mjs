// The Sentry SDK protocol with the real SDKs from npm, against a real
// `minilog serve`:
//
// 1. @sentry/browser, bundled by esbuild into one IIFE script (`Sentry`
//    global) served by a test origin, inits with the key's PUBLIC DSN: a
//    captured exception and an uncaught error arrive, marked untrusted,
//    with their frames. The same page from an origin the key does not
//    allow is refused (403 without CORS headers, so the browser blocks the
//    SDK's requests) and nothing of it is stored.
// 2. @sentry/node, in a child process, with the SERVER DSN: an exception
//    and a message arrive, trusted.
//
// Waiting: the gateway's accepted/refused counters in /metrics, then
// /readyz?max_lag=0 (the projection holds everything stored) before reading.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import * as esbuild from "esbuild";
import { startMinilog, launchBrowser, freePort, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

const E2E = join(import.meta.dirname, "..");
const version = (pkg) =>
  JSON.parse(readFileSync(join(E2E, "node_modules", pkg, "package.json"), "utf8")).version;
const BROWSER_SDK = version("@sentry/browser");
const NODE_SDK = version("@sentry/node");

/** @sentry/browser as one classic script defining `window.Sentry`. */
async function bundleBrowserSdk() {
  const out = await esbuild.build({
    stdin: { contents: 'export * from "@sentry/browser";', resolveDir: E2E, loader: "js" },
    bundle: true,
    format: "iife",
    globalName: "Sentry",
    platform: "browser",
    target: "chrome110",
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

/**
 * A test origin serving the SDK bundle at /sentry.js and, at /, a page that
 * inits Sentry with `dsn()`, captures an exception from `checkout()`, throws
 * an uncaught error from `placeOrder()`, and sets `window.flushed` to the
 * promise of `Sentry.flush(5000)`.
 */
async function startSite(bundle, dsn, marker) {
  // `dsn()` is read per request: the key is made once the origin is known.
  const port = await freePort();
  const page = () => `<!doctype html><title>sentry e2e</title>
<script src="/sentry.js"></script>
<script>
  Sentry.init({ dsn: ${JSON.stringify(dsn())}, release: "e2e-web@1.0.0", environment: "e2e" });
  function checkout() {
    Sentry.captureException(new Error(${JSON.stringify(marker + " from the browser")}));
  }
  checkout();
</script>
<script>
  function placeOrder() {
    throw new Error(${JSON.stringify(marker + " uncaught in the browser")});
  }
  placeOrder();
</script>
<script>window.flushed = Sentry.flush(5000);</script>`;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/sentry.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      res.end(bundle);
    } else if (path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(page());
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

async function metric(base, reason) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const name = reason
    ? `minilog_gateway_rejected_total{path="sentry",reason="${reason}"}`
    : `minilog_gateway_accepted_total{path="sentry"}`;
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

const auth = { authorization: "Basic " + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64") };

/** Every entry of a key, once the projection holds everything stored. */
async function entriesOf(m, keyId) {
  await m.ready();
  const r = await fetch(`${m.base}/api/v1/entries?key=${keyId}&limit=100`, { headers: auth });
  assert.equal(r.status, 200);
  return (await r.json()).entries;
}

async function detail(m, id) {
  const r = await fetch(`${m.base}/api/v1/entries/${id}`, { headers: auth });
  assert.equal(r.status, 200);
  return r.json();
}

/** The raising frame of an entry's outermost exception, when the API carries exceptions. */
function checkException(d, { type, value, fn, file, line }) {
  if (!("exception" in d)) return; // an API without the field: nothing to check
  assert.ok(Array.isArray(d.exception) && d.exception.length >= 1, `an exception chain: ${JSON.stringify(d)}`);
  const [outer] = d.exception;
  assert.equal(outer.type, type);
  assert.equal(outer.value, value);
  assert.ok(outer.frames.length >= 1, "the exception has frames");
  // Oldest call first: the frame that raised is the last one.
  const raised = outer.frames.at(-1);
  assert.equal(raised.function, fn, JSON.stringify(outer.frames));
  assert.ok(file(raised.filename), `the raising frame's file: ${raised.filename}`);
  assert.ok(raised.lineno > 0 && raised.colno > 0, JSON.stringify(raised));
  assert.equal(raised.in_app, true);
  if (line) assert.match(raised.context_line ?? "", line, "the raising line's source");
}

const isEnvelope = (base, url) => url.startsWith(`${base}/api/1/envelope/`);

test("@sentry/browser with the public DSN reports from the key's origin only", async () => {
  const m = await startMinilog();
  const bundle = await bundleBrowserSdk();
  const marker = `sentry-e2e-${randomBytes(4).toString("hex")}`;
  const refusedMarker = `${marker}-refused`;
  let dsn = "";
  const site = await startSite(bundle, () => dsn, marker);
  const other = await startSite(bundle, () => dsn, refusedMarker);
  const browser = await launchBrowser();
  try {
    const host = new URL(m.base).host;
    const key = JSON.parse(
      m.cli([
        "key", "create", "--description", "e2e sentry web", "--origin", site.origin,
        "--public-url", m.base, "--json",
      ]),
    );
    assert.equal(key.public_dsn, `http://${key.id}@${host}/1`);
    assert.match(key.dsn, new RegExp(`^http://[0-9a-f]{32}@${host.replace(/\./g, "\\.")}/1$`));
    dsn = key.public_dsn;
    const preflight = (origin) =>
      fetch(`${m.base}/api/1/envelope/?sentry_key=${key.id}&sentry_version=7`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      });
    // The gateway knows the key once a preflight from its origin is answered.
    await until("the gateway knows the key's origin", async () => {
      const r = await preflight(site.origin);
      return r.status === 204 && r.headers.get("access-control-allow-origin") === site.origin;
    });
    const allowedPreflight = await preflight(site.origin);
    assert.match(allowedPreflight.headers.get("access-control-allow-methods"), /POST/);
    assert.match(allowedPreflight.headers.get("access-control-allow-headers"), /content-type/i);
    const refusedPreflight = await preflight(other.origin);
    assert.equal(refusedPreflight.status, 403);
    assert.equal(refusedPreflight.headers.get("access-control-allow-origin"), null);

    // 1. The key's origin: the captured exception and the uncaught error arrive.
    const page = await browser.newPage();
    const answered = [];
    const failedA = [];
    const consoleA = [];
    page.on("response", (r) => isEnvelope(m.base, r.url()) && answered.push(r));
    page.on("requestfailed", (r) => isEnvelope(m.base, r.url()) && failedA.push(r));
    page.on("console", (msg) => msg.type() === "error" && consoleA.push(msg.text()));
    await page.goto(`${site.origin}/?from=e2e`);
    assert.equal(await page.evaluate(() => window.flushed), true, "Sentry.flush(5000) sent everything");
    await until("both events are stored", async () => (await metric(m.base)) === 2);
    assert.deepEqual(failedA.map((r) => r.failure()?.errorText), [], "no envelope request failed");
    assert.ok(answered.length >= 2, `the SDK's envelopes were answered: ${answered.length}`);
    for (const r of answered) {
      assert.equal(r.status(), 200, `${r.url()}: ${r.status()}`);
      assert.equal(r.headers()["access-control-allow-origin"], site.origin);
      assert.ok(new URL(r.url()).searchParams.get("sentry_key") === key.id, "the public DSN's key");
      assert.match(await r.text(), /^\{"id":/);
    }
    assert.deepEqual(consoleA.filter((t) => /CORS|envelope/.test(t)), [], "no CORS errors on the key's origin");

    const got = await entriesOf(m, key.id);
    assert.deepEqual(
      got.map((e) => e.message).sort(),
      [`Error: ${marker} from the browser`, `Error: ${marker} uncaught in the browser`],
    );
    const pageUrl = `${site.origin}/?from=e2e`;
    for (const e of got) {
      assert.equal(e.untrusted, true, "a public DSN's entries are untrusted");
      assert.equal(e.level, "error");
      assert.equal(e.key_id, key.id);
      assert.equal(e.source, "javascript");
      assert.equal(e.meta.platform, "javascript");
      assert.equal(e.meta.sdk, `sentry.javascript.browser/${BROWSER_SDK}`);
      assert.equal(e.meta.release, "e2e-web@1.0.0");
      assert.equal(e.meta.environment, "e2e");
      assert.equal(e.meta["request.url"], pageUrl);
    }
    const captured = got.find((e) => e.message.endsWith("from the browser"));
    const uncaught = got.find((e) => e.message.endsWith("uncaught in the browser"));
    const onPage = (f) => f === pageUrl;
    checkException(await detail(m, captured.id), {
      type: "Error", value: `${marker} from the browser`, fn: "checkout", file: onPage,
    });
    checkException(await detail(m, uncaught.id), {
      type: "Error", value: `${marker} uncaught in the browser`, fn: "placeOrder", file: onPage,
    });
    await page.screenshot({ path: join(SCREENSHOTS, "sentry-browser-page.png") });

    // 2. The same page from an origin the key does not allow: the SDK's
    // requests reach the gateway, are refused with 403 and no CORS
    // headers, so the browser blocks them; nothing is stored.
    const page2 = await browser.newPage();
    const failedB = [];
    const responsesB = [];
    const consoleB = [];
    page2.on("requestfailed", (r) => isEnvelope(m.base, r.url()) && failedB.push(r));
    page2.on("response", (r) => isEnvelope(m.base, r.url()) && responsesB.push(r));
    page2.on("console", (msg) => msg.type() === "error" && consoleB.push(msg.text()));
    await page2.goto(`${other.origin}/`);
    await page2.evaluate(() => window.flushed);
    const bodies = failedB.map((r) => r.postData() || "");
    assert.ok(bodies.some((b) => b.includes(`${refusedMarker} from the browser`)), "the captured exception was sent and failed");
    assert.ok(bodies.some((b) => b.includes(`${refusedMarker} uncaught in the browser`)), "the uncaught error was sent and failed");
    for (const r of failedB) assert.match(r.failure().errorText, /ERR_FAILED|blocked/i);
    assert.deepEqual(responsesB.map((r) => r.status()), [], "the page got no answer to read");
    assert.ok(
      consoleB.some((t) => /CORS policy/.test(t) && t.includes(other.origin)),
      `the browser reports the CORS refusal: ${JSON.stringify(consoleB)}`,
    );
    // Every blocked request was a refusal at the gateway (none was stored).
    await until("the refused origin's requests are counted", async () =>
      (await metric(m.base, "origin_not_allowed")) === failedB.length);
    assert.equal(await metric(m.base), 2, "nothing more was stored");
    // What the gateway answered the blocked request: the same POST (URL,
    // body, Origin) replayed from here is a 403 without CORS headers.
    const blocked = failedB.find((r) => (r.postData() || "").includes(`${refusedMarker} from the browser`));
    const replay = await fetch(blocked.url(), {
      method: "POST",
      headers: { origin: other.origin, "content-type": "text/plain;charset=UTF-8" },
      body: blocked.postData(),
    });
    assert.equal(replay.status, 403);
    assert.equal(replay.headers.get("access-control-allow-origin"), null);
    assert.equal((await replay.json()).error.code, "origin_not_allowed");
    assert.equal(await metric(m.base), 2, "the replay was not stored either");
    const after = await entriesOf(m, key.id);
    assert.equal(after.length, 2);
    assert.ok(after.every((e) => !e.message.includes(refusedMarker)));
  } finally {
    await browser.close();
    await site.close();
    await other.close();
    await m.stop();
  }
});

test("@sentry/node with the server DSN reports trusted entries", async () => {
  const m = await startMinilog();
  try {
    const marker = `sentry-node-e2e-${randomBytes(4).toString("hex")}`;
    const key = JSON.parse(
      m.cli(["key", "create", "--description", "e2e sentry node", "--public-url", m.base, "--json"]),
    );
    assert.match(key.dsn, /^http:\/\/[0-9a-f]{32}@/);
    assert.ok(!key.dsn.includes(key.id), "the server DSN is not the key id");
    // The gateway knows the key once an empty envelope with its DSN is
    // refused as empty rather than as an unknown key.
    await until("the gateway knows the key", async () => {
      const r = await fetch(`${m.base}/api/1/envelope/`, {
        method: "POST",
        headers: { "x-sentry-auth": `Sentry sentry_key=${new URL(key.dsn).username}, sentry_version=7` },
        body: "{}\n",
      });
      return r.status === 400 && (await r.json()).error?.code === "empty_envelope";
    });

    const { stdout } = await promisify(execFile)(process.execPath, [join(E2E, "fixtures/sentry-node.mjs")], {
      cwd: E2E,
      env: { ...process.env, SENTRY_DSN: key.dsn, MARKER: marker },
      timeout: 30_000,
    });
    const child = JSON.parse(stdout.trim().split("\n").at(-1));
    assert.equal(child.flushed, true, "Sentry.close(5000) sent everything");
    await until("both events are stored", async () => (await metric(m.base)) === 2);

    const got = await entriesOf(m, key.id);
    assert.equal(got.length, 2, JSON.stringify(got.map((e) => e.message)));
    const exc = got.find((e) => e.message === `TypeError: ${marker} from node`);
    const msg = got.find((e) => e.message === `${marker} message from node`);
    assert.ok(exc && msg, JSON.stringify(got.map((e) => e.message)));
    assert.equal(exc.level, "error");
    assert.equal(msg.level, "warn");
    for (const e of got) {
      assert.equal(e.untrusted, false, "a server DSN's entries are trusted");
      assert.equal(e.key_id, key.id);
      assert.equal(e.source, "node");
      assert.equal(e.meta.sdk, `sentry.javascript.node/${NODE_SDK}`);
      assert.equal(e.meta.release, "e2e-node@1.0.0");
      assert.equal(e.meta.environment, "e2e");
      assert.equal(e.meta.server_name, "e2e-host");
    }
    checkException(await detail(m, exc.id), {
      type: "TypeError",
      value: `${marker} from node`,
      fn: "chargeCard",
      file: (f) => typeof f === "string" && f.endsWith("sentry-node.mjs"),
      line: /throw new TypeError/,
    });
    const d = await detail(m, msg.id);
    if ("exception" in d) assert.equal(d.exception, null, "a message has no exception");
  } finally {
    await m.stop();
  }
});
