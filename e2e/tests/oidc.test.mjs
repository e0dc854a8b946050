// Sign-in with OpenID Connect through the whole redirect dance, in headless
// Chromium, against a real provider: panva's `oidc-provider` (the certified
// Node implementation), run here on its own port with its development login
// form. minilog's --oidc-issuer points at a thin front of that provider
// which, when told to, swaps the ID token in the token endpoint's answer for
// one an attacker made (another key, expired, another nonce, unsigned): each
// must be refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Provider from "oidc-provider";
import * as jose from "jose";
import { startMinilog, launchBrowser, freePort, ADMIN_PASSWORD, SCREENSHOTS } from "../lib.mjs";

const CLIENT_ID = "minilog";
const CLIENT_SECRET = "e2e-client-secret-0123456789";
const GROUPS = { ann: ["dev", "ops"], bo: ["dev"] };
// Accounts whose chosen name is another's: mallory renamed to "bo".
const NAMES = { mallory: "bo" };

let m, browser, front, issuer;
let mode = "pass"; // how the front treats the next token answer
let realKey;

before(async () => {
  const providerPort = await freePort();
  const frontPort = await freePort();
  issuer = `http://127.0.0.1:${frontPort}`;
  const secretFile = join(process.env.TMPDIR || "/tmp", `minilog-oidc-secret-${process.pid}`);
  writeFileSync(secretFile, CLIENT_SECRET + "\n");
  // minilog first: the provider must know its callback address.
  const minilogPort = await freePort();
  const base = `http://127.0.0.1:${minilogPort}`;

  const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  realKey = privateKey;
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: "real", alg: "RS256", use: "sig" };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${base}/login/oidc/callback`],
        post_logout_redirect_uris: [`${base}/login`],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    scopes: ["openid", "profile", "groups"],
    claims: { openid: ["sub"], profile: ["preferred_username"], groups: ["groups"] },
    // The scopes' claims in the ID token itself, as most providers send them.
    conformIdTokenClaims: false,
    findAccount: async (ctx, id) => ({
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: NAMES[id] ?? id, groups: GROUPS[id] ?? [] };
      },
    }),
    cookies: { keys: ["e2e-cookie-key"] },
  });
  provider.proxy = false;
  const upstream = http.createServer(provider.callback());
  await new Promise((ok) => upstream.listen(providerPort, "127.0.0.1", ok));

  // The front: the issuer's address; forwards everything, and on the token
  // endpoint rewrites the answer as `mode` says.
  front = http.createServer((req, res) => {
    const fwd = http.request(
      { host: "127.0.0.1", port: providerPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (!req.url.startsWith("/token") || mode === "pass") {
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
          return;
        }
        let body = "";
        up.on("data", (c) => (body += c));
        up.on("end", async () => {
          const answer = JSON.parse(body);
          if (answer.id_token) answer.id_token = await attack(answer.id_token, mode);
          const out = JSON.stringify(answer);
          const headers = { ...up.headers, "content-length": Buffer.byteLength(out) };
          res.writeHead(up.statusCode, headers);
          res.end(out);
        });
      },
    );
    req.pipe(fwd);
  });
  front.upstream = upstream;
  await new Promise((ok) => front.listen(frontPort, "127.0.0.1", ok));

  m = await startMinilog([
    "--public-url",
    base,
    "--oidc-issuer",
    issuer,
    "--oidc-client-id",
    CLIENT_ID,
    "--oidc-client-secret-file",
    secretFile,
    "--oidc-admin-claim",
    "groups=ops",
    "--oidc-scopes",
    "profile,groups",
    "--oidc-label",
    "Team ID",
    "--oidc-single-logout",
  ], { port: minilogPort });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await m?.stop();
  front?.close();
  front?.upstream.close();
});

/** An ID token as an attacker would swap in for `real`. */
async function attack(real, how) {
  const claims = jose.decodeJwt(real);
  const now = Math.floor(Date.now() / 1000);
  if (how === "forged") {
    // Same claims and key id, signed with a key of the attacker's.
    const { privateKey } = await jose.generateKeyPair("RS256");
    return new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "real" }).sign(privateKey);
  }
  if (how === "expired") {
    // The provider's own key, but an hour past its expiry.
    return new jose.SignJWT({ ...claims, iat: now - 7200, exp: now - 3600 })
      .setProtectedHeader({ alg: "RS256", kid: "real" })
      .sign(realKey);
  }
  if (how === "skewed") {
    // Not an attack: a provider whose clock is ahead made a token that,
    // by minilog's clock, expired 20 s ago (--oidc-clock-skew is 60 s).
    return new jose.SignJWT({ ...claims, iat: now - 320, exp: now - 20 })
      .setProtectedHeader({ alg: "RS256", kid: "real" })
      .sign(realKey);
  }
  if (how === "nonce") {
    return new jose.SignJWT({ ...claims, nonce: "another-sign-in" })
      .setProtectedHeader({ alg: "RS256", kid: "real" })
      .sign(realKey);
  }
  if (how === "unsigned") {
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    return `${enc({ alg: "none" })}.${enc(claims)}.`;
  }
  throw new Error(`unknown attack ${how}`);
}

/** Goes from a dashboard page through the provider's login and consent. */
async function signInAs(page, login) {
  await page.goto(`${m.base}/log/groups/`);
  assert.match(page.url(), /\/login\?next=/);
  await page.click("#oidc");
  // The provider's own forms (its development interactions).
  await page.waitForSelector('input[name="login"]');
  assert.ok(page.url().startsWith(issuer), `at the provider: ${page.url()}`);
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "anything");
  await page.click('button[type="submit"]');
  await page.waitForSelector('button[type="submit"]:has-text("Continue")');
  await page.click('button[type="submit"]');
  await page.waitForURL((u) => u.toString().startsWith(m.base));
}

test("the login page offers the provider beside the password form", async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${m.base}/login`);
    assert.equal((await page.textContent("#oidc")).trim(), "Sign in with Team ID");
    assert.equal(await page.locator('input[name="password"]').count(), 1);
  } finally {
    await page.close();
  }
});

test("someone in the admin group signs in through the provider and is an admin", async () => {
  mode = "pass";
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await signInAs(page, "ann");
    assert.equal(new URL(page.url()).pathname, "/log/groups/");
    assert.equal((await page.textContent(".me bdi")).trim(), "ann");
    await page.screenshot({ path: join(SCREENSHOTS, "oidc-signed-in.png") });
    // Admin pages open: the claim made ann an admin.
    const keys = await page.goto(`${m.base}/log/keys/`);
    assert.equal(keys.status(), 200);
    // The user was made by the sign-in, as an event the audit shows.
    const audit = await (await page.goto(`${m.base}/log/audit/`)).text();
    assert.match(audit, /<bdi>ann<\/bdi><\/td><td>user created/);
    assert.match(audit, /user ann \(admin\)/);
  } finally {
    await ctx.close();
  }
});

test("someone outside the admin group is a member", async () => {
  mode = "pass";
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await signInAs(page, "bo");
    assert.equal(new URL(page.url()).pathname, "/log/groups/");
    const keys = await page.goto(`${m.base}/log/keys/`);
    assert.equal(keys.status(), 403);
    // No password was made for bo: the password form does not let bo in.
    const r = await fetch(`${m.base}/api/v1/entries`, {
      headers: { authorization: "Basic " + Buffer.from("bo:minilog dummy password").toString("base64") },
    });
    assert.equal(r.status, 401);
  } finally {
    await ctx.close();
  }
});

for (const [how, why] of [
  ["forged", /signature/i],
  ["expired", /expired/i],
  ["nonce", /nonce/i],
  ["unsigned", /refused/i],
]) {
  test(`an ID token swapped for a ${how} one is refused`, async () => {
    mode = how;
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    try {
      await signInAs(page, "ann");
      // Back on minilog's login page, with the reason, and no session.
      assert.equal(new URL(page.url()).pathname, "/login/oidc/callback");
      const error = await page.textContent(".flash.error");
      assert.match(error, /ID token was refused/);
      assert.match(error, why);
      const cookies = await ctx.cookies(m.base);
      assert.ok(!cookies.some((c) => c.name.endsWith("minilog_session")), JSON.stringify(cookies));
      const again = await page.goto(`${m.base}/log/groups/`);
      assert.match(again.url(), /\/login\?next=/);
    } finally {
      mode = "pass";
      await ctx.close();
    }
  });
}

test("a token that expired within the clock skew is accepted", async () => {
  mode = "skewed";
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await signInAs(page, "ann");
    assert.equal(new URL(page.url()).pathname, "/log/groups/");
    assert.equal((await page.textContent(".me bdi")).trim(), "ann");
  } finally {
    mode = "pass";
    await ctx.close();
  }
});

test("a provider's user named like a password account cannot take it over", async () => {
  mode = "pass";
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    // "admin" at the provider is not minilog's break-glass admin.
    await signInAs(page, "admin");
    assert.equal(new URL(page.url()).pathname, "/login/oidc/callback");
    assert.match(await page.textContent(".flash.error"), /account with a password/);
    const cookies = await ctx.cookies(m.base);
    assert.ok(!cookies.some((c) => c.name.endsWith("minilog_session")), JSON.stringify(cookies));
  } finally {
    await ctx.close();
  }
});

test("a provider's user renamed to another's name cannot take that account", async () => {
  mode = "pass";
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    // bo signed in above (sub "bo"); mallory's token says preferred_username "bo".
    await signInAs(page, "mallory");
    assert.equal(new URL(page.url()).pathname, "/login/oidc/callback");
    assert.match(await page.textContent(".flash.error"), /belongs to another account at this provider/);
    const cookies = await ctx.cookies(m.base);
    assert.ok(!cookies.some((c) => c.name.endsWith("minilog_session")), JSON.stringify(cookies));
    // bo, the one the name was first given to, still signs in.
    const own = await browser.newContext();
    const bo = await own.newPage();
    await signInAs(bo, "bo");
    assert.equal(new URL(bo.url()).pathname, "/log/groups/");
    assert.equal((await bo.textContent(".me bdi")).trim(), "bo");
    await own.close();
  } finally {
    await ctx.close();
  }
});

test("signing out of minilog signs out at the provider too (--oidc-single-logout)", async () => {
  mode = "pass";
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await signInAs(page, "ann");
    assert.equal(new URL(page.url()).pathname, "/log/groups/");
    await page.click('form[action="/logout"] button');
    // The provider's own sign-out page asks, then sends the browser back.
    await page.waitForSelector('button[name="logout"]');
    assert.ok(page.url().startsWith(issuer), `at the provider: ${page.url()}`);
    await page.click('button[name="logout"]');
    await page.waitForURL(`${m.base}/login`);
    const cookies = await ctx.cookies(m.base);
    assert.ok(!cookies.some((c) => c.name.endsWith("minilog_session")), JSON.stringify(cookies));
    // The provider's session is gone too: signing in asks for the login again
    // (with it alive, the provider would send ann straight back).
    await page.click("#oidc");
    await page.waitForSelector('input[name="login"]');
    assert.ok(page.url().startsWith(issuer), page.url());
  } finally {
    await ctx.close();
  }
});

test("a password user's sign-out stays at minilog", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await page.goto(`${m.base}/login`);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click('button[type="submit"].primary');
    await page.waitForURL(`${m.base}/log/groups/`);
    await page.click('form[action="/logout"] button');
    await page.waitForURL(`${m.base}/login`);
  } finally {
    await ctx.close();
  }
});

test("the password form still lets the break-glass admin in", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  try {
    await page.goto(`${m.base}/login`);
    await page.fill("#name", "admin");
    await page.fill("#password", ADMIN_PASSWORD);
    await page.click('button[type="submit"].primary');
    await page.waitForURL(`${m.base}/log/groups/`);
    assert.equal((await page.goto(`${m.base}/log/keys/`)).status(), 200);
  } finally {
    await ctx.close();
  }
});
