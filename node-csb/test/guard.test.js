// node-csb without a token (its loopback mode) must not be drivable from a web page: no cross-origin
// "simple" POST (text/plain), no browser Origin, no foreign Host name (DNS rebinding). With or
// without a token. Requests are sent with node:http so every header is exactly what a browser or a
// rebinding attacker would send.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startApp } from "./helpers.js";
import { hostName } from "../lib/guard.js";

let svc;
let port;
before(async () => {
  svc = await startApp({ token: "" }); // the token-less loopback mode
  port = new URL(svc.url).port;
});
after(() => svc.close());

function send(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let text = "";
      res.on("data", (c) => { text += c; });
      res.on("end", () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const CREATE = JSON.stringify({ labels: { "farm-run": "csrf" } });

test("a browser's cross-origin text/plain POST is refused and creates nothing", async () => {
  const r = await send("POST", "/sandboxes", { host: `127.0.0.1:${port}`, "content-type": "text/plain",
    origin: "https://evil.example" }, CREATE);
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, "browser_origin");
  const plain = await send("POST", "/sandboxes", { host: `127.0.0.1:${port}`, "content-type": "text/plain" }, CREATE);
  assert.equal(plain.status, 415);
  assert.equal(plain.json.error.code, "content_type");
  const fetchSite = await send("POST", "/sandboxes", { host: `localhost:${port}`, "content-type": "application/json",
    "sec-fetch-site": "cross-site" }, CREATE);
  assert.equal(fetchSite.status, 403);
  const listed = await send("POST", "/sandboxes/list", { host: `127.0.0.1:${port}`, "content-type": "application/json" }, "{}");
  assert.equal(listed.status, 200);
  assert.equal(listed.json.sandboxes.filter((s) => s.tags.includes("farm-run:csrf")).length, 0);
});

test("a foreign Host name (DNS rebinding) is refused on every endpoint", async () => {
  for (const [method, path] of [["GET", "/health"], ["POST", "/sandboxes"], ["POST", "/sandboxes/abc/run"]]) {
    const r = await send(method, path, { host: `rebind.evil.example:${port}`, "content-type": "application/json" },
      method === "POST" ? "{}" : undefined);
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.equal(r.json.error.code, "bad_host");
  }
});

test("the farm's own requests pass: loopback names, JSON, no Origin", async () => {
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, "127.0.0.1"]) {
    const r = await send("GET", "/health", { host });
    assert.equal(r.status, 200, host);
  }
  const made = await send("POST", "/sandboxes", { host: `127.0.0.1:${port}`, "content-type": "application/json; charset=utf-8" }, CREATE);
  assert.equal(made.status, 201);
  await send("DELETE", `/sandboxes/${made.json.id}`, { host: `127.0.0.1:${port}` });
  assert.equal(hostName("[::1]:80"), "::1");
  assert.equal(hostName("LOCALHOST:8787"), "localhost");
});
