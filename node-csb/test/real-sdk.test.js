// The REAL @codesandbox/sdk (lib/sdk.js) behind the service, pointed at a local fake of the
// CodeSandbox REST API through the SDK's base-URL setting (CSB_BASE_URL). This checks that the
// service classifies what the real SDK throws by the HTTP status it recorded, not by wording.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import * as realSdk from "../lib/sdk.js";
import { startApp } from "./helpers.js";

const seen = [];
const SANDBOXES = [
  { id: "s1", tags: ["farm:sandbox-farm", "farm-run:r1", "sdk"] },
  { id: "s2", tags: ["farm:sandbox-farm", "farm-run:r2", "sdk"] },
  { id: "s3", tags: ["farm-run:r1", "sdk"] }, // not farm-marked: never ours to sweep
].map((s) => ({ ...s, created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z", privacy: 2, title: "x" }));

const fakeApi = http.createServer((req, res) => {
  const key = (req.headers.authorization ?? "").replace(/^Bearer /, "");
  seen.push({ method: req.method, url: req.url, key });
  const send = (status, body, headers = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  if (key.includes("expired")) return send(401, { errors: ["invalid token"] });
  if (key.includes("revoked")) return send(403, { errors: ["forbidden"] });
  if (key.includes("limited")) {
    return send(429, { errors: ["slow down"] }, { "x-csb-rate-hourly-remaining": "0", "x-csb-rate-hourly-used": "1000",
      "x-csb-rate-hourly-reset": "2026-01-01T01:00:00Z" });
  }
  if (key.includes("broken")) return send(500, { errors: ["internal error"] });
  const url = new URL(req.url, "http://fake");
  if (req.method === "GET" && url.pathname === "/sandbox") {
    return send(200, { data: { sandboxes: SANDBOXES, pagination: { total_records: SANDBOXES.length, next_page: null, current_page: 1 } } });
  }
  if (req.method === "POST" && url.pathname === "/sandbox/missing-tpl/fork") return send(404, { errors: ["not found"] });
  if (req.method === "DELETE" && url.pathname === "/vm/s1") return send(200, { data: { id: "s1" } });
  if (req.method === "DELETE") return send(404, { errors: ["not found"] });
  return send(500, { errors: [`fake API has no ${req.method} ${url.pathname}`] });
});

let base;
before(async () => {
  await new Promise((resolve) => fakeApi.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${fakeApi.address().port}`;
  process.env.CSB_BASE_URL = base; // read by the SDK itself when the client is built
});
after(() => new Promise((resolve) => fakeApi.close(resolve)));

async function withService(apiKey, fn) {
  const svc = await startApp({ sdkModule: realSdk, apiKey });
  try {
    return await fn(svc);
  } finally {
    await svc.close();
  }
}

test("the real SDK module describes itself with its installed version", () => {
  assert.equal(realSdk.describe.name, "@codesandbox/sdk");
  assert.match(realSdk.describe.version, /^2\.4\.\d+$/);
});

test("key check: accepted, expired (401), revoked (403), rate limited, upstream 5xx", async () => {
  await withService("csb_good_key_0001", async (svc) => {
    const r = await svc.call("GET", "/key-check");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.key, "accepted");
    assert.equal(seen.at(-1).key, "csb_good_key_0001"); // the SDK really sent the key upstream...
    assert.ok(!r.text.includes("csb_good_key_0001"));   // ...and the service never echoed it
  });
  for (const [key, status] of [["csb_expired_key_0002", 401], ["csb_revoked_key_0003", 403]]) {
    await withService(key, async (svc) => {
      const r = await svc.call("GET", "/key-check");
      assert.equal(r.status, 403);
      assert.equal(r.json.error.class, "auth");
      assert.equal(r.json.error.upstream_status, status);
      assert.match(r.json.error.message, new RegExp(`HTTP ${status}\\): it is expired or revoked: create a new key`));
      assert.ok(!r.text.includes(key));
    });
  }
  await withService("csb_limited_key_0004", async (svc) => {
    const r = await svc.call("GET", "/key-check");
    assert.equal(r.status, 429);
    assert.equal(r.json.error.class, "rate_limited");
    assert.match(r.json.error.message, /0 of 1000 requests remaining/);
  });
  await withService("csb_broken_key_0005", async (svc) => {
    const r = await svc.call("GET", "/key-check");
    assert.equal(r.status, 502);
    assert.equal(r.json.error.class, "provider_error");
    assert.match(r.json.error.message, /Failed to list sandboxes: internal error/);
  });
});

test("an unreachable API is network, not auth", async () => {
  const saved = process.env.CSB_BASE_URL;
  const closed = http.createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = closed.address().port;
  await new Promise((resolve) => closed.close(resolve)); // a port that refuses connections
  process.env.CSB_BASE_URL = `http://127.0.0.1:${port}`;
  try {
    await withService("csb_good_key_0006", async (svc) => {
      const r = await svc.call("GET", "/key-check");
      assert.equal(r.status, 502);
      assert.equal(r.json.error.class, "network");
      assert.match(r.json.error.message, /could not reach the CodeSandbox API \(ECONNREFUSED\).*not checked/);
    });
  } finally {
    process.env.CSB_BASE_URL = saved;
  }
});

// create, connect, run, list and delete through the real SDK: test/fake-api.test.js
