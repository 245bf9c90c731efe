// The REAL @codesandbox/sdk (lib/sdk.js) behind the service, pointed through CSB_BASE_URL at
// test/fake-api.js: a fake of the CodeSandbox REST API *and* of the sandbox agent's websocket
// (pitcher protocol: client/join, setup/get, shell/create, output and exit notifications). So the
// fork -> start -> connect -> command path runs the SDK's own code; only the far side is fake.
// Each test names the assumption (providers/codesandbox/assumptions.py) the fake encodes for it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import * as realSdk from "../lib/sdk.js";
import { startApp } from "./helpers.js";
import { startFakeApi } from "./fake-api.js";
import { retryAfterSeconds } from "../lib/observe.js";

let fake;
let svc;
before(async () => {
  fake = await startFakeApi();
  process.env.CSB_BASE_URL = fake.url; // read by the SDK itself when the client is built
  svc = await startApp({ sdkModule: realSdk, apiKey: "csb_fake_key_0042" });
});
after(async () => {
  await svc.close();
  await fake.close();
});

const labels = (run, rep = 0) => ({ "farm-run": run, "farm-provider": "codesandbox", "farm-snippet": "s", "farm-rep": String(rep) });

test("create ends when the VM is up and connected: boot time, bootupType, attempts, timings (csb_bootup_type)", async () => {
  fake.setBootMs(300);
  const start = performance.now();
  const r = await svc.call("POST", "/sandboxes", { labels: labels("boot") });
  const took = performance.now() - start;
  fake.setBootMs(0);
  assert.equal(r.status, 201, r.text);
  assert.ok(took >= 300, `create answered after ${took} ms, before the 300 ms boot`);
  assert.ok(took < 300 + 2000, `create took ${took} ms for a 300 ms boot`);
  assert.equal(r.json.bootup_type, "FORK");
  assert.deepEqual(r.json.sdk_attempts, { fork: 1, start_vm: 1, connect: 1 });
  assert.ok(r.json.timings_ms.start_vm > 0 && r.json.timings_ms.connect > 0 && r.json.timings_ms.create >= 300);
  const ran = await svc.call("POST", `/sandboxes/${r.json.id}/run`, { command: "echo out; echo err >&2; echo $FOO", env: { FOO: "bar" } });
  assert.equal(ran.status, 200, ran.text);
  assert.equal(ran.json.exit_code, 0);
  assert.match(ran.json.output, /out/);
  assert.match(ran.json.output, /err/);
  assert.match(ran.json.output, /bar/);
  const failed = await svc.call("POST", `/sandboxes/${r.json.id}/run`, { command: "echo bye; exit 3" });
  assert.equal(failed.json.exit_code, 3);
  assert.match(failed.json.output, /bye/);
  const gone = await svc.call("DELETE", `/sandboxes/${r.json.id}`);
  assert.equal(gone.status, 200, gone.text);
  assert.ok(!fake.alive().includes(r.json.id));
});

test("the SDK's hidden startVm retries are counted, not hidden", async () => {
  fake.failNext("start", 500);
  fake.failNext("start", 502);
  const r = await svc.call("POST", "/sandboxes", { labels: labels("retried") });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.sdk_attempts.start_vm, 3); // two failures retried inside the SDK, 200 ms apart
  assert.ok(r.json.timings_ms.create >= 400, "the SDK's two 200 ms retry waits are inside create");
  await svc.call("DELETE", `/sandboxes/${r.json.id}`);
});

test("a 429 passes its Retry-After on, in the body and as a header", async () => {
  fake.failNext("create", 429, 1.5);
  const r = await svc.call("POST", "/sandboxes", { labels: labels("limited") });
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json.error.class, "rate_limited");
  assert.equal(r.json.error.retry_after_s, 1.5);
  assert.match(r.json.error.message, /0 of 1000 requests remaining/);
  const headers = new Headers({ "x-csb-rate-hourly-remaining": "0", "x-csb-rate-hourly-reset": new Date(10_000).toISOString() });
  assert.equal(retryAfterSeconds(headers, 4_000), 6); // no Retry-After: the exhausted bucket's reset time
  assert.equal(retryAfterSeconds(new Headers({ "x-csb-rate-hourly-remaining": "5" })), null);
});

test("a sandbox killed behind the service is not_found on run, not a timeout", async () => {
  const r = await svc.call("POST", "/sandboxes", { labels: labels("killed") });
  fake.kill(r.json.id);
  const ran = await svc.call("POST", `/sandboxes/${r.json.id}/run`, { command: "echo hi", timeout_s: 20 });
  assert.equal(ran.status, 404, ran.text);
  assert.equal(ran.json.error.class, "not_found");
});

test("destroy waits until the API says the sandbox is gone (csb_delete_removes_record)", async () => {
  const r = await svc.call("POST", "/sandboxes", { labels: labels("lagging") });
  fake.setDeleteLagMs(200);
  const start = performance.now();
  const d = await svc.call("DELETE", `/sandboxes/${r.json.id}`);
  const took = performance.now() - start;
  fake.setDeleteLagMs(0);
  assert.equal(d.status, 200, d.text);
  assert.ok(took >= 200, `destroy answered after ${took} ms, before the record went (200 ms)`);
  assert.ok(d.json.polls > 1);
  const again = await svc.call("DELETE", `/sandboxes/${r.json.id}`);
  assert.equal(again.status, 404);
  assert.equal(again.json.error.class, "not_found");
});

test("list follows every page and filters on all tags (csb_list_filter_all_tags, csb_tags_verbatim)", async () => {
  fake.setPageSize(2);
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await svc.call("POST", "/sandboxes", { labels: labels("paged", i) })).json.id);
  const other = (await svc.call("POST", "/sandboxes", { labels: labels("other") })).json.id;
  const listed = await svc.call("POST", "/sandboxes/list", { labels: { "farm-run": "paged" } });
  fake.setPageSize(50);
  assert.equal(listed.status, 200, listed.text);
  assert.deepEqual(new Set(listed.json.sandboxes.map((s) => s.id)), new Set(ids));
  assert.ok(listed.json.sandboxes.every((s) => s.tags.includes("farm-run:paged") && s.tags.includes("farm:sandbox-farm")));
  for (const id of [...ids, other]) await svc.call("DELETE", `/sandboxes/${id}`);
  const missing = await svc.call("POST", "/sandboxes", { template: "missing-tpl", labels: labels("missing") });
  assert.equal(missing.status, 404, missing.text);
  assert.equal(missing.json.error.upstream_status, 404);
});
