// Content-Security-Policy violation reports from headless Chromium, against
// a real `minilog serve`: test origins (small node servers on their own
// ports) answer pages with a policy `script-src 'self'` whose reports go to
// `/api/1/security/?sentry_key=<key id>` (a public DSN: the key has an
// --origin), and try to load a script from yet another port ("evil"). The
// browser blocks the script and sends its own report; nothing in the page
// talks to minilog.
//
// 1. `report-uri`: Chromium POSTs `application/csp-report` (no-cors, with
//    the page's Origin). From the key's origin: one untrusted `warn` entry
//    with the directive, blocked URI and document URI. From an origin the
//    key does not allow: refused (403, `origin_not_allowed` in /metrics),
//    nothing stored.
// 2. `report-to` + `Reporting-Endpoints` (the Reporting API): Chromium only
//    keeps endpoints of secure documents with https:// endpoint URLs, so the
//    page and minilog are served over TLS (a self-signed certificate from
//    openssl; minilog behind a small TLS-terminating proxy that forwards the
//    browser's requests verbatim). Chromium preflights the cross-origin
//    upload (OPTIONS), then POSTs `application/reports+json`. From the key's
//    origin: one entry; from another origin: the preflight is refused and
//    the report is never sent.
//
// Waiting: the gateway's accepted/refused counters in /metrics (bounded
// polling), then /readyz?max_lag=0 before reading entries.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMinilog, launchBrowser, freePort, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

async function metric(base, reason) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const name = reason
    ? `minilog_gateway_rejected_total{path="sentry",reason="${reason}"}`
    : `minilog_gateway_accepted_total{path="sentry"}`;
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : 0;
}

/** Bounded polling of the external processes (20 ms steps). */
async function until(what, check, steps = 500) {
  for (let i = 0; i < steps; i++) {
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

async function listen(server) {
  const port = await freePort();
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", ok);
  });
  return port;
}
const closeServer = (s) => new Promise((ok) => { s.closeAllConnections?.(); s.close(ok); });

/** The disallowed script host: counts what it is asked for (it should be asked nothing). */
async function startEvil() {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end("window.evilRan = true;");
  });
  const port = await listen(server);
  return { script: `http://127.0.0.1:${port}/evil.js`, hits, close: () => closeServer(server) };
}

/**
 * A test origin: every page carries the headers `headers()` (read per
 * request: the key is made once the origin is known), a script tag for the
 * evil host's script and one for its own /app.js. `tls` makes it https.
 */
async function startSite(evilScript, headers, tls) {
  const handler = (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/app.js") {
      // The page's own script ('self': allowed; an inline one would be a violation too).
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end("window.pageRan = true;");
    }
    if (path === "/favicon.ico") {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", ...headers() });
    res.end(`<!doctype html><title>csp e2e</title>
<p>checkout</p>
<script src="${evilScript}"></script>
<script src="/app.js"></script>`);
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const port = await listen(server);
  return { origin: `${tls ? "https" : "http"}://127.0.0.1:${port}`, close: () => closeServer(server) };
}

/** Waits until the gateway knows the key (a preflight from its origin is answered). */
async function keyKnown(m, keyId, origin) {
  await until("the gateway knows the key's origin", async () => {
    const r = await fetch(`${m.base}/api/1/security/?sentry_key=${keyId}`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    return r.status === 204 && r.headers.get("access-control-allow-origin") === origin;
  });
}

function checkEntry(e, { keyId, directive, blocked, documentUri, origin }) {
  assert.equal(e.message, `CSP: ${directive} blocked ${blocked} on ${documentUri}`);
  assert.equal(e.level, "warn");
  assert.equal(e.source, "csp");
  assert.equal(e.untrusted, true, "a public DSN's entries are untrusted");
  assert.equal(e.key_id, keyId);
  assert.equal(e.meta.directive, directive);
  assert.equal(e.meta.blocked_uri, blocked);
  assert.equal(e.meta.document_uri, documentUri);
  assert.equal(e.meta.disposition, "enforce");
  assert.equal(e.meta.origin, origin);
}

test("report-uri: Chromium's CSP report from the key's origin is stored, from another origin refused", async () => {
  const m = await startMinilog();
  const evil = await startEvil();
  let policy = "";
  const headers = () => ({ "content-security-policy": policy });
  const site = await startSite(evil.script, headers);
  const other = await startSite(evil.script, headers);
  const browser = await launchBrowser();
  try {
    const key = JSON.parse(
      m.cli(["key", "create", "--description", "e2e csp", "--origin", site.origin, "--public-url", m.base, "--json"]),
    );
    const reportUrl = `${m.base}/api/1/security/?sentry_key=${key.id}`;
    policy = `script-src 'self'; report-uri ${reportUrl}`;
    await keyKnown(m, key.id, site.origin);
    assert.equal(await metric(m.base), 0);

    // The report requests Chromium sent to minilog, per page.
    const watch = (page) => {
      const sent = [];
      page.on("request", (r) => r.url() === reportUrl && sent.push(r));
      return sent;
    };

    // 1. The key's origin: the script is blocked, the report stored.
    const page = await browser.newPage();
    const sentA = watch(page);
    const documentUri = `${site.origin}/checkout?from=e2e`;
    await page.goto(documentUri);
    assert.equal(await page.evaluate(() => window.pageRan), true, "the page's own script ran");
    assert.equal(await page.evaluate(() => window.evilRan), undefined, "the disallowed script did not run");
    await until("the report is stored", async () => (await metric(m.base)) === 1);
    assert.deepEqual(evil.hits, [], "the browser never fetched the blocked script");

    assert.equal(sentA.length, 1, "one report for one violation");
    const req = sentA[0];
    assert.equal(req.method(), "POST");
    // (playwright sees the report's headers and body, but neither the Origin
    // the network service adds nor the answer: those show in /metrics.)
    assert.equal((await req.allHeaders())["content-type"], "application/csp-report");
    const body = JSON.parse(req.postData());
    assert.equal(body["csp-report"]["document-uri"], documentUri);
    assert.equal(body["csp-report"]["blocked-uri"], evil.script);

    const got = await entriesOf(m, key.id);
    assert.equal(got.length, 1, JSON.stringify(got.map((e) => e.message)));
    checkEntry(got[0], {
      keyId: key.id,
      directive: "script-src-elem",
      blocked: evil.script,
      documentUri,
      origin: site.origin,
    });
    await page.screenshot({ path: join(SCREENSHOTS, "csp-report-uri-page.png") });

    // 2. The same policy on an origin the key does not allow: refused.
    const page2 = await browser.newPage();
    const sentB = watch(page2);
    await page2.goto(`${other.origin}/checkout?from=other`);
    assert.equal(await page2.evaluate(() => window.evilRan), undefined);
    await until("the other origin's report is refused", async () =>
      (await metric(m.base, "origin_not_allowed")) === 1);
    assert.equal(sentB.length, 1, "Chromium sent the other origin's report too");
    assert.equal(JSON.parse(sentB[0].postData())["csp-report"]["document-uri"], `${other.origin}/checkout?from=other`);
    // What the gateway answered that request: the same POST (body, Origin) replayed.
    const replay = await fetch(reportUrl, {
      method: "POST",
      headers: { origin: other.origin, "content-type": "application/csp-report" },
      body: sentB[0].postData(),
    });
    assert.equal(replay.status, 403);
    assert.equal((await replay.json()).error.code, "origin_not_allowed");
    assert.equal(replay.headers.get("access-control-allow-origin"), null);
    // Without an Origin header the document's origin decides: refused too.
    const bare = await fetch(reportUrl, {
      method: "POST",
      headers: { "content-type": "application/csp-report" },
      body: sentB[0].postData(),
    });
    assert.equal(bare.status, 403);
    assert.equal((await bare.json()).error.code, "origin_not_allowed");
    assert.equal(await metric(m.base), 1, "nothing more was stored");
    assert.equal(await metric(m.base, "origin_not_allowed"), 3, "the replays were refused too");
    const after = await entriesOf(m, key.id);
    assert.equal(after.length, 1, "exactly one entry: the allowed origin's");
    assert.ok(after.every((e) => !e.message.includes(other.origin)));
    assert.deepEqual(evil.hits, []);
  } finally {
    await browser.close();
    await site.close();
    await other.close();
    await evil.close();
    await m.stop();
  }
});

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), "minilog-e2e-tls-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * TLS in front of minilog, as a deployment would have: forwards each
 * request (method, path, headers, body) unchanged and keeps a log of what
 * came and what minilog answered.
 */
async function startTlsProxy(base, tls) {
  const log = [];
  const server = https.createServer(tls, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const entry = { method: req.method, url: req.url, headers: req.headers, body: body.toString() };
      const up = http.request(
        `${base}${req.url}`,
        { method: req.method, headers: { ...req.headers, host: new URL(base).host } },
        (upRes) => {
          const back = [];
          upRes.on("data", (c) => back.push(c));
          upRes.on("end", () => {
            entry.status = upRes.statusCode;
            entry.answerHeaders = upRes.headers;
            entry.answer = Buffer.concat(back).toString();
            log.push(entry);
            res.writeHead(upRes.statusCode, upRes.headers);
            res.end(Buffer.concat(back));
          });
        },
      );
      up.on("error", (e) => {
        entry.status = 502;
        entry.answer = String(e);
        log.push(entry);
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  const port = await listen(server);
  return { base: `https://127.0.0.1:${port}`, log, close: () => closeServer(server) };
}

let haveOpenssl = true;
try {
  execFileSync("openssl", ["version"], { stdio: "ignore" });
} catch {
  haveOpenssl = false;
}

test(
  "report-to: Chromium's Reporting API report from the key's origin is stored, from another origin never sent",
  { skip: !haveOpenssl && "openssl is needed for the https origins the Reporting API requires" },
  async () => {
    const tls = selfSigned();
    const m = await startMinilog();
    const proxy = await startTlsProxy(m.base, tls);
    const evil = await startEvil();
    let endpoint = "";
    const headers = () => ({
      "content-security-policy": "script-src 'self'; report-to csp-endpoint",
      "reporting-endpoints": `csp-endpoint="${endpoint}"`,
    });
    const site = await startSite(evil.script, headers, tls);
    const other = await startSite(evil.script, headers, tls);
    // The self-signed certificate is accepted for report uploads too;
    // --short-reporting-delay (a Chromium switch made for tests) has the
    // Reporting API's delivery agent run every 100 ms, so the upload does
    // not depend on Chromium's default batching interval.
    const browser = await launchBrowser(["--ignore-certificate-errors", "--short-reporting-delay"]);
    try {
      const key = JSON.parse(
        m.cli(["key", "create", "--description", "e2e csp report-to", "--origin", site.origin, "--json"]),
      );
      endpoint = `${proxy.base}/api/1/security/?sentry_key=${key.id}`;
      await keyKnown(m, key.id, site.origin);
      const uploads = (origin, method) =>
        proxy.log.filter((r) => r.method === method && r.headers.origin === origin && r.url.startsWith("/api/1/security/"));

      // 1. The key's origin: preflight allowed, report stored.
      const page = await browser.newPage();
      const documentUri = `${site.origin}/checkout?via=report-to`;
      await page.goto(documentUri);
      assert.equal(await page.evaluate(() => window.pageRan), true);
      assert.equal(await page.evaluate(() => window.evilRan), undefined, "the disallowed script did not run");
      // Bounded: 30 s, far above the ~100 ms the short delay gives.
      await until("the Reporting API report is stored", async () => (await metric(m.base)) === 1, 1500);

      const [pre] = uploads(site.origin, "OPTIONS");
      assert.ok(pre, `Chromium preflighted the upload: ${JSON.stringify(proxy.log)}`);
      assert.equal(pre.status, 204);
      assert.equal(pre.answerHeaders["access-control-allow-origin"], site.origin);
      const posts = uploads(site.origin, "POST");
      assert.equal(posts.length, 1, JSON.stringify(proxy.log));
      assert.equal(posts[0].headers["content-type"], "application/reports+json");
      assert.equal(posts[0].status, 200, `minilog's answer: ${posts[0].answer}`);
      const reports = JSON.parse(posts[0].body);
      assert.ok(Array.isArray(reports) && reports.some((r) => r.type === "csp-violation"), posts[0].body);

      const got = await entriesOf(m, key.id);
      assert.equal(got.length, 1, JSON.stringify(got.map((e) => e.message)));
      checkEntry(got[0], {
        keyId: key.id,
        directive: "script-src-elem",
        blocked: evil.script,
        documentUri,
        origin: site.origin,
      });

      // 2. Another origin: minilog refuses the preflight, so Chromium never
      // sends the report.
      const page2 = await browser.newPage();
      await page2.goto(`${other.origin}/checkout?via=report-to`);
      await until("the other origin's preflight is answered", async () => uploads(other.origin, "OPTIONS").length >= 1, 1500);
      const refused = uploads(other.origin, "OPTIONS")[0];
      assert.equal(refused.status, 403);
      assert.equal(refused.answerHeaders["access-control-allow-origin"], undefined);
      await page2.close();
      assert.deepEqual(uploads(other.origin, "POST"), [], "no report was sent after the refused preflight");
      assert.equal(await metric(m.base), 1, "nothing more was stored");
      assert.equal((await entriesOf(m, key.id)).length, 1);
      assert.deepEqual(evil.hits, [], "the browser never fetched the blocked script");
    } finally {
      await browser.close();
      await site.close();
      await other.close();
      await proxy.close();
      await evil.close();
      await m.stop();
    }
  },
);
