// The real server.js process, started with the SDK double (CSB_SDK_MODULE): startup rules, the
// ready file, signals, and logs that never carry the key.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { eventually, KEY, TOKEN } from "./helpers.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DOUBLE = fileURLToPath(new URL("./sdk-double.js", import.meta.url));

const dirs = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function start(env, args = []) {
  const dir = mkdtempSync(join(tmpdir(), "node-csb-proc-"));
  dirs.push(dir);
  const ready = join(dir, "ready.json");
  const proc = spawn(process.execPath, ["server.js", ...args], {
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH, CSB_SDK_MODULE: DOUBLE, CSB_SERVICE_PORT: "0", CSB_SERVICE_READY_FILE: ready, ...env },
  });
  let out = "";
  proc.stdout.on("data", (d) => { out += d; });
  proc.stderr.on("data", (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, ready, exited, output: () => out };
}

test("starts on a free port, writes the ready file, serves, stops on SIGTERM, never logs the key", async () => {
  const svc = start({ CSB_API_KEY: KEY, CSB_SERVICE_TOKEN: TOKEN });
  const info = await eventually(() => existsSync(svc.ready) && JSON.parse(readFileSync(svc.ready, "utf8")), 10000);
  assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(info.pid, svc.proc.pid);
  const health = await (await fetch(`${info.url}/health`)).json();
  assert.equal(health.ok, true);
  const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  const leaky = await fetch(`${info.url}/sandboxes`, { method: "POST", headers: auth, body: JSON.stringify({ template: "tpl-leaky" }) });
  assert.equal(leaky.status, 502);
  assert.ok(!(await leaky.text()).includes(KEY));
  svc.proc.kill("SIGTERM");
  assert.equal(await svc.exited, 0);
  const out = svc.output();
  assert.match(out, /listening on http:\/\/127\.0\.0\.1:\d+ \(@codesandbox\/sdk test-double, TEST DOUBLE; key set; token required\)/);
  assert.match(out, /POST \/sandboxes 502 provider_error/);
  assert.match(out, /SIGTERM: shutting down/);
  assert.ok(!out.includes(KEY) && !out.includes(TOKEN));
});

test("refuses a non-loopback address without a token, in one line", async () => {
  const svc = start({ CSB_API_KEY: KEY }, ["--host", "0.0.0.0"]);
  assert.equal(await svc.exited, 2);
  const out = svc.output().trim();
  assert.equal(out.split("\n").length, 1);
  assert.match(out, /^node-csb: refusing to listen on 0\.0\.0\.0 without CSB_SERVICE_TOKEN: .*bind to 127\.0\.0\.1$/);
});

test("a non-loopback address with a token is allowed", async () => {
  const svc = start({ CSB_API_KEY: KEY, CSB_SERVICE_TOKEN: TOKEN, CSB_SERVICE_HOST: "0.0.0.0" });
  const info = await eventually(() => existsSync(svc.ready) && JSON.parse(readFileSync(svc.ready, "utf8")), 10000);
  assert.match(info.url, /^http:\/\/0\.0\.0\.0:\d+$/);
  svc.proc.kill("SIGTERM");
  assert.equal(await svc.exited, 0);
});

test("bad port and a missing SDK module are one-line errors", async () => {
  const port = start({}, ["--port", "99999"]);
  assert.equal(await port.exited, 2);
  assert.match(port.output(), /^node-csb: port must be 0-65535, got "99999"\n$/);
  const mod = start({ CSB_SDK_MODULE: join(tmpdir(), "no-such-sdk-module.js") });
  assert.equal(await mod.exited, 2);
  assert.match(mod.output(), /^node-csb: cannot load the SDK module .*no-such-sdk-module\.js: .*\n$/);
  const flag = start({}, ["--bogus"]);
  assert.equal(await flag.exited, 2);
  assert.match(flag.output(), /usage: node node-csb\/server.js \[--host HOST\] \[--port PORT\]/);
});
