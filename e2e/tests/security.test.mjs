// Attacks a hostile web page makes on a minilog its visitor uses (issue 11):
// a plain cross-site form posting to the triage API while the browser holds
// Basic credentials for minilog, and framing minilog's pages (clickjacking),
// from another site (localhost) and from the same site on another port.
// Also: the Content-Security-Policy breaks none of minilog's own pages.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { join } from "node:path";
import { startMinilog, launchBrowser, freePort, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

const AUTH = "Basic " + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64");

/** A hostile site: `pages` maps a path to its HTML. */
async function startSite(host, pages) {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    const page = pages[new URL(req.url, "http://x").pathname];
    res.writeHead(page ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    res.end(page ?? "not found");
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { origin: `http://${host}:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

async function logEntry(m, message) {
  const key = JSON.parse(m.cli(["key", "create", "--description", "victim service", "--json"]));
  await m.ready();
  const r = await fetch(`${m.base}/api/v1/entries`, {
    method: "POST",
    headers: { authorization: `Bearer ${key.secret}`, "content-type": "application/json" },
    body: JSON.stringify({ message, level: "error" }),
  });
  assert.equal(r.status, 200);
  const [id] = (await r.json()).ids;
  return id;
}

async function entry(m, id) {
  const r = await fetch(`${m.base}/api/v1/entries/${id}`, { headers: { authorization: AUTH } });
  assert.equal(r.status, 200);
  return r.json();
}

test("a cross-site form cannot resolve entries with the visitor's cached Basic credentials", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const id = await logEntry(m, "must stay open");
    // The visitor has used the JSON API in this browser: it holds the
    // credentials and answers minilog's Basic challenge with them.
    const context = await browser.newContext({ httpCredentials: { username: "admin", password: ADMIN_PASSWORD } });
    const page = await context.newPage();
    const own = await page.goto(`${m.base}/api/v1/entries`);
    assert.equal(own.status(), 200, "the credentials work on minilog itself");

    const target = `${m.base}/api/v1/entries/${id}/resolve`;
    const matching = `${m.base}/api/v1/entries/resolve-matching`;
    const site = await startSite("localhost", {
      // text/plain holding JSON: {"level":["error"],"x":"="}
      "/plain": `<!doctype html><form method="post" enctype="text/plain" action="${matching}">
        <input type="hidden" name='{"level":["error"],"x":"' value='"}'></form>
        <script>document.forms[0].submit()</script>`,
      "/form": `<!doctype html><form method="post" action="${target}"></form>
        <script>document.forms[0].submit()</script>`,
    });
    const samesite = await startSite("127.0.0.1", {
      "/form": `<!doctype html><form method="post" action="${target}"></form>
        <script>document.forms[0].submit()</script>`,
    });
    try {
      for (const url of [`${site.origin}/plain`, `${site.origin}/form`, `${samesite.origin}/form`]) {
        const answered = page.waitForResponse((r) => r.url().startsWith(m.base) && r.request().method() === "POST");
        await page.goto(url);
        const resp = await answered;
        assert.equal(resp.status(), 403, `${url} was refused (${resp.status()})`);
      }
      await page.screenshot({ path: join(SCREENSHOTS, "cross-site-refused.png") });
    } finally {
      await site.close();
      await samesite.close();
    }
    const e = await entry(m, id);
    assert.equal(e.resolved, null, "the entry is still open");
    // The API itself still acts for a program.
    const ok = await fetch(target, { method: "POST", headers: { authorization: AUTH } });
    assert.equal(ok.status, 200);
  } finally {
    await browser.close();
    await m.stop();
  }
});

test("no other page, on another site or on this one, can frame minilog", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    // Signed in, as the victim would be.
    await page.goto(`${m.base}/login`);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    // A sign-in without a target lands on the groups.
    await page.waitForURL(/\/log\/groups\/$/);
    const frame = (src) => `<!doctype html><title>waiting</title>
      <iframe id="f" src="${src}" width="800" height="600" onload="document.title='loaded'"></iframe>`;
    for (const host of ["localhost", "127.0.0.1"]) {
      const site = await startSite(host, { "/": frame(`${m.base}/log/users/`) });
      try {
        await page.goto(`${site.origin}/`);
        await page.waitForFunction(() => document.title === "loaded");
        const inner = page.frames().find((f) => f !== page.mainFrame());
        const html = inner ? await inner.content().catch(() => "") : "";
        assert.ok(!html.includes("Users") && !html.includes("minilog"), `the users page rendered in a frame on ${host}`);
        await page.screenshot({ path: join(SCREENSHOTS, `framed-${host}.png`) });
      } finally {
        await site.close();
      }
    }
  } finally {
    await browser.close();
    await m.stop();
  }
});

test("the Content-Security-Policy breaks none of minilog's own pages", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const violations = [];
    page.on("console", (msg) => {
      if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
    });
    await page.goto(`${m.base}/login`);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    // A sign-in without a target lands on the groups.
    await page.waitForURL(/\/log\/groups\/$/);
    for (const path of ["/log/groups/", "/log/list/", "/log/new/", "/log/audit/", "/log/users/", "/log/health/", "/log/password/"]) {
      await page.goto(`${m.base}${path}`);
    }
    // The key page's copy button comes from a script file.
    await page.goto(`${m.base}/log/keys/`);
    await page.fill("#description", "csp check");
    await page.click("form[action='/log/keys/'] button[type=submit]");
    await page.locator("#copy").waitFor({ state: "visible" });
    const cardStyle = await page.evaluate(() => getComputedStyle(document.querySelector(".card")).display);
    assert.ok(cardStyle, "the stylesheet applies");
    assert.deepEqual(violations, []);
  } finally {
    await browser.close();
    await m.stop();
  }
});
