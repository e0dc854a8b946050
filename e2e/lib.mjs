// Shared helpers for the browser tests: start a real `minilog serve` (with
// its embedded nats-server) on a free port with its own data directory,
// wait for /readyz, and launch Debian's headless Chromium via playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "..");
export const BIN = process.env.MINILOG_BIN || join(ROOT, "target/debug/minilog");
export const ADMIN_PASSWORD = "e2e-admin-password";
export const SCREENSHOTS = join(ROOT, "target/screenshots");

export function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

/** Starts `minilog serve` (on `port`, else a free one); returns { base, data, cli(args, env), stop() }. */
export async function startMinilog(extraArgs = [], { port } = {}) {
  const data = mkdtempSync(join(tmpdir(), "minilog-e2e-"));
  port ??= await freePort();
  const child = spawn(BIN, ["serve", "--data", data, "--listen", `127.0.0.1:${port}`, ...extraArgs], {
    env: { ...process.env, MINILOG_ADMIN_PASSWORD: ADMIN_PASSWORD, MINILOG_LOG: "warn" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  const cli = (args, env = {}) =>
    execFileSync(BIN, [...args, "--data", data], { env: { ...process.env, ...env }, encoding: "utf8" });
  let exited = null;
  child.once("exit", (code) => (exited = code));
  const ready = async () => {
    for (let i = 0; i < 1000; i++) {
      if (exited !== null) throw new Error(`minilog serve exited with ${exited}`);
      try {
        const r = await fetch(`${base}/readyz?max_lag=0`);
        if (r.status === 200) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("minilog did not become ready");
  };
  await ready();
  return {
    base,
    data,
    cli,
    ready,
    async stop() {
      if (exited === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium; `extraArgs` are added to the usual switches. */
export async function launchBrowser(extraArgs = []) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // playwright gives every launch a fresh, empty profile directory.
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}
