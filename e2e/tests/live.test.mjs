// The live tail in a real browser: the entries list shows an entry sent
// over HTTP without a reload (EventSource on /api/v1/entries/stream with
// the page's filters, from static/live.js under the page's CSP), a
// filtered list shows only what matches, and the groups page updates its
// table in place (new groups, counts). Waiting: playwright's own waits for elements, which
// poll the page; no sleeps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startMinilog, launchBrowser, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

const WAIT = { timeout: 60_000 };

async function send(m, secret, entries) {
  const r = await fetch(`${m.base}/api/v1/entries`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify(entries),
  });
  assert.equal(r.status, 200);
  return (await r.json()).ids;
}

test("the entries list shows new entries live, with its filters", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const key = JSON.parse(m.cli(["key", "create", "--description", "billing service", "--json"]));
    await m.ready();
    const [old] = await send(m, key.secret, [{ level: "warn", message: "from before the page" }]);
    await m.ready();

    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const problems = [];
    page.on("console", (msg) => {
      // The browser's own asking for /favicon.ico is no problem of the page.
      if (msg.type() === "error" && !msg.location().url.endsWith("/favicon.ico")) {
        problems.push(`${msg.text()} (${msg.location().url})`);
      }
    });
    page.on("pageerror", (e) => problems.push(String(e)));
    await page.goto(`${m.base}/log/list/`);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/log\/list\/$/);
    assert.equal(await page.locator(`#entry-${old}`).count(), 1);
    await page.locator("#live", { hasText: "Live" }).waitFor(WAIT);

    const [id] = await send(m, key.secret, [{ level: "error", message: "Backup failed\nexit code 3" }]);
    const row = page.locator(`#entry-${id}`);
    await row.waitFor(WAIT);
    const text = await row.innerText();
    assert.match(text, /Backup failed/);
    assert.match(text, /billing service/);
    assert.match(text, /from 127\.0\.0\.1/);
    // Newest first, above the entry that was there, and only once.
    assert.equal(await page.locator("table.entries tbody tr").first().getAttribute("id"), `entry-${id}`);
    assert.equal(await page.locator(`#entry-${old}`).count(), 1);
    await page.screenshot({ path: join(SCREENSHOTS, "list-live.png"), fullPage: true });
    // "Resolve all that match" reaches the new row too.
    assert.equal(await page.locator("form[action='/log/resolve-matching/'] input[name=upto]").inputValue(), String(id));

    // Its Resolve button works like the server-drawn ones.
    await row.getByRole("button", { name: "Resolve" }).click();
    await page.waitForURL(/\/log\/list\/$/);
    assert.equal(await page.locator(`#entry-${id}`).count(), 0);

    // A filtered list: the info entry is not shown, the error after it is.
    await page.goto(`${m.base}/log/list/?level=error`);
    await page.locator("#live", { hasText: "Live" }).waitFor(WAIT);
    const [info, error] = await send(m, key.secret, [
      { level: "info", message: "routine work" },
      { level: "error", message: "disk full" },
    ]);
    await page.locator(`#entry-${error}`).waitFor(WAIT);
    assert.equal(await page.locator(`#entry-${info}`).count(), 0);

    // The groups page: a new group appears, and a repeat counts, in place.
    await m.ready();
    await page.goto(`${m.base}/log/groups/`);
    await page.locator("#live", { hasText: "Live" }).waitFor(WAIT);
    await page.evaluate(() => { window.notReloaded = true; });
    await send(m, key.secret, [{ level: "critical", message: "a new kind of trouble" }]);
    const group = page.locator("table.groups tbody tr", { hasText: "a new kind of trouble" });
    await group.waitFor(WAIT);
    await group.locator("td", { hasText: "1 open" }).waitFor(WAIT);
    await send(m, key.secret, [{ level: "critical", message: "a new kind of trouble" }]);
    await group.locator("td", { hasText: "2 open" }).waitFor(WAIT);
    assert.equal(await page.evaluate(() => window.notReloaded), true, "updated without a reload");
    await page.screenshot({ path: join(SCREENSHOTS, "groups-live.png"), fullPage: true });
    assert.deepEqual(problems, [], "no script errors or CSP violations");
  } finally {
    await browser.close();
    await m.stop();
  }
});

test("without JavaScript the list is the same page, without the live notice", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const key = JSON.parse(m.cli(["key", "create", "--description", "billing service", "--json"]));
    await m.ready();
    const [id] = await send(m, key.secret, [{ level: "error", message: "shown on load" }]);
    await m.ready();
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${m.base}/log/list/`);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/log\/list\/$/);
    assert.match(await page.locator(`#entry-${id}`).innerText(), /shown on load/);
    assert.equal(await page.locator("#live").isVisible(), false);
    // The groups page too: its table as drawn, and a reload shows what came since.
    await page.goto(`${m.base}/log/groups/`);
    assert.equal(await page.locator("#live").isVisible(), false);
    assert.match(await page.locator("table.groups tbody").innerText(), /shown on load/);
    await send(m, key.secret, [{ level: "error", message: "sent after the page" }]);
    await m.ready();
    await page.reload();
    assert.match(await page.locator("table.groups tbody").innerText(), /sent after the page/);
    await context.close();
  } finally {
    await browser.close();
    await m.stop();
  }
});
