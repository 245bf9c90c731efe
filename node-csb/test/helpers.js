// Shared by the node:test files: start the service in-process on a free loopback port.
import { createApp } from "../lib/app.js";
import * as double from "./sdk-double.js";

export const TOKEN = "svc-token-for-tests-1234";
export const KEY = "csb_test_key_0123456789abcdef";

/** Start createApp() on 127.0.0.1:0; returns {url, lines (log), call(method, path, body, token), close}. */
export async function startApp({ sdkModule = double, apiKey = KEY, token = TOKEN, defaults = {} } = {}) {
  const lines = [];
  const app = createApp({ sdkModule, apiKey, token, log: (line) => lines.push(line), defaults });
  await new Promise((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${app.server.address().port}`;
  async function call(method, path, body, useToken = token) {
    const headers = { "content-type": "application/json" };
    if (useToken) headers.authorization = `Bearer ${useToken}`;
    const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, text, json: JSON.parse(text) };
  }
  return { app, url, lines, call, close: () => app.close() };
}

/** Poll ``fn`` until it returns truthy or ``ms`` pass. */
export async function eventually(fn, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}
