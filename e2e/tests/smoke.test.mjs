// The browser harness itself works: Chromium loads minilog's health page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startMinilog, launchBrowser } from "../lib.mjs";

test("headless chromium reaches a running minilog", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const resp = await page.goto(`${m.base}/healthz`);
    assert.equal(resp.status(), 200);
    assert.equal((await page.textContent("body")).trim(), "ok");
  } finally {
    await browser.close();
    await m.stop();
  }
});
