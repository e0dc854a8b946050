// The dashboard in a real browser: log in, see an entry sent through the
// original's /log/add/ form protocol, resolve it, undo it, create and
// revoke a key. Screenshots go to target/screenshots/ for people to look at.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startMinilog, launchBrowser, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

test("log in, triage an entry, manage keys", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const key = JSON.parse(m.cli(["key", "create", "--description", "billing service", "--json"]));
    await m.ready();
    const sent = await fetch(`${m.base}/log/add/`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ key: key.secret, description: "Backup failed\nexit code 3", status: "error" }),
    });
    assert.equal(sent.status, 200);
    const id = sent.headers.get("minilog-entry-id");
    await m.ready();

    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${m.base}/log/list/`);
    assert.match(page.url(), /\/login\?next=/);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/log\/list\/$/);

    const row = page.locator(`#entry-${id}`);
    assert.match(await row.innerText(), /Backup failed/);
    assert.match(await row.innerText(), /billing service/);
    assert.match(await page.locator(".counts").innerText(), /1 unresolved/);
    await page.screenshot({ path: join(SCREENSHOTS, "list.png"), fullPage: true });

    await row.getByRole("button", { name: "Resolve" }).click();
    await page.waitForURL(/\/log\/list\/$/);
    assert.equal(await page.locator(`#entry-${id}`).count(), 0, "resolved entries leave the open list");

    await page.goto(`${m.base}/log/list/?resolved=all`);
    await page.locator(`#entry-${id}`).getByRole("button", { name: "Undo" }).click();
    await page.waitForURL(/resolved=all/);
    assert.match(await page.locator(`#entry-${id}`).innerText(), /from 127\.0\.0\.1/);

    await page.goto(`${m.base}/log/entry/${id}/`);
    const history = await page.locator("table.history").innerText();
    assert.match(history, /logged[\s\S]*resolved[\s\S]*admin[\s\S]*unresolved/);
    await page.screenshot({ path: join(SCREENSHOTS, "entry.png"), fullPage: true });

    await page.goto(`${m.base}/log/keys/`);
    await page.fill("#description", "nightly jobs");
    await page.click("form[action='/log/keys/'] button[type=submit]");
    const secret = (await page.locator("#secret").innerText()).trim();
    assert.equal(secret.length, 32);
    assert.match(await page.locator("#curl").innerText(), new RegExp(secret));
    await page.screenshot({ path: join(SCREENSHOTS, "key-created.png"), fullPage: true });

    await page.goto(`${m.base}/log/keys/`);
    const keyRow = page.locator("tr", { hasText: "nightly jobs" });
    await keyRow.getByRole("button", { name: "Revoke" }).click();
    await page.waitForURL(/\/log\/keys\/\?done=/);
    assert.match(await page.locator("tr", { hasText: "nightly jobs" }).innerText(), /revoked/);
    await page.screenshot({ path: join(SCREENSHOTS, "keys.png"), fullPage: true });

    // The revoked secret no longer sends.
    const refused = await fetch(`${m.base}/log/add/`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ key: secret, message: "should not arrive" }),
    });
    assert.equal(refused.status, 401);

    // A phone-sized screen.
    const phone = await browser.newPage({ viewport: { width: 390, height: 800 } });
    await phone.context().addCookies(await page.context().cookies());
    await phone.goto(`${m.base}/log/list/?resolved=all`);
    await phone.screenshot({ path: join(SCREENSHOTS, "list-phone.png"), fullPage: true });
  } finally {
    await browser.close();
    await m.stop();
  }
});
