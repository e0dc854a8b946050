// Groups in a real browser: repeats of one problem sent over HTTP (the JSON
// API and the /log/add/ form, one key) fold into one group on the landing
// page, with a 24-hour sparkline; a group's page has its hourly chart and
// its entries; resolving the group asks first (6 open entries > 3), then
// the open Groups page has one group left; one more repeat brings it back
// as regressed. Screenshots (desktop and a 390x844 phone) go to
// target/screenshots/.
//
// Waiting: /readyz?max_lag=0 (m.ready()) after every post, before reading
// pages; page actions wait on the URL they answer with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startMinilog, launchBrowser, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

const TEMPLATE = "timeout after <n> ms talking to <ip>";
const REPEATS = [
  "timeout after 130 ms talking to 10.0.0.7",
  "timeout after 4100 ms talking to 10.0.0.9",
  "timeout after 27 ms talking to 192.168.1.20",
  "timeout after 980 ms talking to 10.0.0.7",
  "timeout after 15000 ms talking to 172.16.4.2",
  "timeout after 301 ms talking to 10.1.2.3",
];
const OTHER_TEMPLATE = "cache warmup failed for tenant <n>";
const OTHERS = ["cache warmup failed for tenant 17", "cache warmup failed for tenant 4242"];

/** Sends entries over the JSON API, one request; returns their ids. */
async function postJson(base, secret, items) {
  const r = await fetch(`${base}/api/v1/entries`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify(items),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()).ids;
}

/** Sends one entry through the seed's form protocol; returns its id. */
async function postForm(base, secret, message, status) {
  const r = await fetch(`${base}/log/add/`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ key: secret, message, status }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return Number(r.headers.get("minilog-entry-id"));
}

/** No horizontal overflow: the page fits the viewport's width. */
async function fitsWidth(page) {
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
}

/** The phone measurements of the Groups page, taken by the first test. */
let phoneGroups = null;

test("repeats fold into groups; a group charts, resolves after asking, and regresses", async () => {
  const m = await startMinilog();
  const browser = await launchBrowser();
  try {
    const key = JSON.parse(m.cli(["key", "create", "--description", "checkout service", "--json"]));
    await m.ready();

    // Six repeats of one problem (JSON API, mixed numbers and addresses),
    // two of another (the form, same key).
    const bigIds = await postJson(
      m.base,
      key.secret,
      REPEATS.map((message) => ({ message, level: "error", source: "api-1" })),
    );
    assert.equal(bigIds.length, 6);
    for (const message of OTHERS) await postForm(m.base, key.secret, message, "warn");
    await m.ready();

    // 1. Log in from `/`: the landing page is the Groups page.
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${m.base}/`);
    assert.match(page.url(), /\/login\?next=/);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/log\/groups\/$/);
    assert.equal(await page.title(), "Groups · minilog");
    const nav = (await page.locator("header > a").allInnerTexts()).map((t) => t.trim());
    assert.ok(nav.indexOf("Groups") >= 0 && nav.indexOf("Groups") + 1 === nav.indexOf("Entries"), nav.join("|"));

    const rows = page.locator("table.groups tr.group");
    assert.equal(await rows.count(), 2, "exactly two groups");
    const big = rows.filter({ hasText: TEMPLATE });
    const small = rows.filter({ hasText: OTHER_TEMPLATE });
    assert.equal(await big.count(), 1);
    assert.equal(await small.count(), 1);
    const bigId = (await big.getAttribute("id")).replace(/^group-/, "");
    assert.match(bigId, /^[0-9a-f]{16}$/);
    // Title: the newest entry's message, linking to the group's page.
    const link = big.locator(`a[href="/log/groups/${bigId}/"]`);
    assert.equal((await link.innerText()).trim(), REPEATS[REPEATS.length - 1]);
    assert.equal((await big.locator(".meta bdi").first().innerText()).trim(), TEMPLATE);
    assert.match(await big.locator(".level").innerText(), /error/);
    assert.match(await small.locator(".level").innerText(), /warn/);
    const counts = (row) => row.locator("td").nth(2).innerText();
    assert.match(await counts(big), /^6\s*\(6 open\)$/);
    assert.match(await counts(small), /^2\s*\(2 open\)$/);
    assert.equal(await page.locator(".badge.regressed").count(), 0, "nothing regressed yet");
    // Both sparklines render: visible, a real box, bars inside.
    const sparks = page.locator("svg.spark");
    assert.equal(await sparks.count(), 2);
    for (const [row, n] of [[big, 6], [small, 2]]) {
      const spark = row.locator("svg.spark");
      assert.ok(await spark.isVisible(), "the sparkline is visible");
      const box = await spark.boundingBox();
      assert.ok(box && box.width > 0 && box.height > 0, `sparkline box ${JSON.stringify(box)}`);
      assert.ok((await spark.locator("rect").count()) >= 1, "the sparkline has bars");
      assert.equal(await spark.getAttribute("aria-label"), `${n} in the last 24 hours`);
    }
    await page.screenshot({ path: join(SCREENSHOTS, "groups-page.png"), fullPage: true });

    // 2. The big group's page: a 24-bar hourly chart and its six entries.
    await link.click();
    await page.waitForURL(new RegExp(`/log/groups/${bigId}/$`));
    const chart = page.locator("svg.chart");
    assert.ok(await chart.isVisible(), "the chart is visible");
    const chartBox = await chart.boundingBox();
    assert.ok(chartBox && chartBox.width > 0 && chartBox.height > 0, `chart box ${JSON.stringify(chartBox)}`);
    assert.equal(await chart.locator("rect").count(), 24, "24 hourly bars");
    const perHour = (await chart.locator("rect > title").allTextContents()).map(Number);
    assert.equal(perHour.reduce((a, b) => a + b, 0), 6, `hourly counts ${perHour}`);
    const entryRows = page.locator("table.entries tr.entry");
    assert.equal(await entryRows.count(), 6);
    const listed = (await entryRows.evaluateAll((trs) => trs.map((tr) => tr.id))).sort();
    assert.deepEqual(listed, bigIds.map((id) => `entry-${id}`).sort());
    for (const message of REPEATS) {
      assert.equal(await entryRows.filter({ hasText: message }).count(), 1, message);
    }
    assert.equal(await page.getByText("The newest entry's exception").count(), 0, "no exception was sent");
    await page.screenshot({ path: join(SCREENSHOTS, "group-page.png"), fullPage: true });

    // 3. Resolve it from the Groups page: 6 open entries (> 3) ask first.
    await page.goto(`${m.base}/log/groups/`);
    await page.locator(`#group-${bigId}`).getByRole("button", { name: "Resolve" }).click();
    await page.waitForURL(new RegExp(`/log/groups/${bigId}/resolve$`));
    assert.equal((await page.locator("h1").innerText()).trim(), "Resolve 6 entries?");
    await page.screenshot({ path: join(SCREENSHOTS, "group-confirm.png"), fullPage: true });
    await page.getByRole("button", { name: "Resolve 6 entries" }).click();
    await page.waitForURL(/\/log\/groups\/\?done=/);
    assert.equal((await page.locator(".flash").innerText()).trim(), "Resolved 6 entries of the group.");
    assert.equal(await rows.count(), 1, "one open group left");
    assert.equal(await page.locator(`#group-${bigId}`).count(), 0);
    assert.match(await rows.first().innerText(), /cache warmup failed for tenant <n>/);

    await page.goto(`${m.base}/log/groups/?resolved=true`);
    const done = page.locator(`#group-${bigId}`);
    assert.equal(await rows.count(), 1, "the resolved view lists the resolved group only");
    assert.match((await done.getAttribute("class")) ?? "", /resolved-row/);
    assert.match(await done.innerText(), /resolved by admin/);
    assert.match(await counts(done), /^6$/, "no entry open");
    assert.equal(await done.getByRole("button", { name: "Reopen" }).count(), 1);

    // 4. One more repeat: back on the open Groups page, regressed.
    const [lateId] = await postJson(m.base, key.secret, [
      { message: "timeout after 77 ms talking to 10.0.0.8", level: "error", source: "api-1" },
    ]);
    await m.ready();
    await page.goto(`${m.base}/log/groups/`);
    assert.equal(await rows.count(), 2);
    const back = page.locator(`#group-${bigId}`);
    assert.ok(await back.locator(".badge.regressed").isVisible(), "the regressed badge shows");
    assert.equal((await back.locator(".badge.regressed").innerText()).trim(), "regressed");
    assert.match(await counts(back), /^7\s*\(1 open\)$/);
    assert.equal(
      (await back.locator(`a[href="/log/groups/${bigId}/"]`).innerText()).trim(),
      "timeout after 77 ms talking to 10.0.0.8",
    );
    await page.screenshot({ path: join(SCREENSHOTS, "groups-regressed.png"), fullPage: true });
    await page.goto(`${m.base}/log/groups/${bigId}/`);
    assert.ok(await page.locator(".badge.regressed").isVisible(), "the group page says regressed too");
    assert.equal(await page.locator(`#entry-${lateId}`).count(), 1);

    // 5. A phone. The group's page fits; the Groups page is measured here
    // and judged in the next test.
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await phone.context().addCookies(await page.context().cookies());
    await phone.goto(`${m.base}/log/groups/`);
    const phoneRow = phone.locator(`#group-${bigId}`);
    assert.ok(await phoneRow.locator(`a[href="/log/groups/${bigId}/"]`).isVisible(), "the title link shows");
    const resolveButton = phoneRow.getByRole("button", { name: "Resolve" });
    assert.ok(await resolveButton.isVisible(), "the Resolve button is in the page");
    const buttonBox = await resolveButton.boundingBox();
    phoneGroups = { ...(await fitsWidth(phone)), resolveButtonRight: buttonBox.x + buttonBox.width };
    await phone.screenshot({ path: join(SCREENSHOTS, "groups-phone.png"), fullPage: true });
    await phone.goto(`${m.base}/log/groups/${bigId}/`);
    const fit = await fitsWidth(phone);
    assert.ok(fit.scrollWidth <= fit.innerWidth, `group page overflows on a phone: ${JSON.stringify(fit)}`);
    assert.ok(await phone.locator("svg.chart").isVisible());
    await phone.screenshot({ path: join(SCREENSHOTS, "group-phone.png"), fullPage: true });
  } finally {
    await browser.close();
    await m.stop();
  }
});

// A group's title wraps (`.group .msg` in minilog.css): the table fits a
// 390 px phone and the Resolve button stays on screen.
test(
  "the Groups page fits a 390x844 phone (no horizontal overflow, Resolve on screen)",
  () => {
    assert.ok(phoneGroups, "the first test measured the phone page");
    const { scrollWidth, innerWidth, resolveButtonRight } = phoneGroups;
    assert.ok(scrollWidth <= innerWidth, `groups page overflows on a phone: ${JSON.stringify(phoneGroups)}`);
    assert.ok(resolveButtonRight <= innerWidth, `the Resolve button is off screen: ${JSON.stringify(phoneGroups)}`);
  },
);
