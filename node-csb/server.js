#!/usr/bin/env node
// node-csb: Sandbox Farm's HTTP bridge to @codesandbox/sdk (the SDK is JavaScript-only).
//
//   CSB_API_KEY=... CSB_SERVICE_TOKEN=... node node-csb/server.js [--host 127.0.0.1] [--port 8787]
//
// Environment: CSB_API_KEY (read only here, never echoed), CSB_SERVICE_TOKEN (shared with the farm;
// required unless bound to loopback), CSB_SERVICE_HOST / CSB_SERVICE_PORT, CSB_SERVICE_PYTHON,
// CSB_SERVICE_READY_FILE (JSON {url, pid} written once listening), CSB_SDK_MODULE (replace the SDK,
// for tests), CSB_BASE_URL (read by the SDK itself).
import { writeFileSync, renameSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createApp, isLoopback } from "./lib/app.js";
import { scrub } from "./lib/errors.js";

function fail(message) {
  process.stderr.write(`node-csb: ${message}\n`);
  process.exit(2);
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({ options: { host: { type: "string" }, port: { type: "string" } } }));
  } catch (err) {
    fail(`${err.message}; usage: node node-csb/server.js [--host HOST] [--port PORT]`);
  }
  const env = process.env;
  const host = args.host ?? env.CSB_SERVICE_HOST ?? "127.0.0.1";
  const portText = args.port ?? env.CSB_SERVICE_PORT ?? "8787";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) fail(`port must be 0-65535, got ${JSON.stringify(portText)}`);
  const token = env.CSB_SERVICE_TOKEN ?? "";
  const apiKey = env.CSB_API_KEY ?? "";
  if (!token && !isLoopback(host)) {
    fail(`refusing to listen on ${host} without CSB_SERVICE_TOKEN: anyone who can reach it could spend ` +
      "your CodeSandbox account; set CSB_SERVICE_TOKEN (the farm needs the same value) or bind to 127.0.0.1");
  }
  const log = (line) => process.stdout.write(`${new Date().toISOString()} ${scrub(line, [apiKey, token])}\n`);

  const modulePath = env.CSB_SDK_MODULE
    ? pathToFileURL(resolve(env.CSB_SDK_MODULE)).href
    : new URL("./lib/sdk.js", import.meta.url).href;
  let sdkModule;
  try {
    sdkModule = await import(modulePath);
  } catch (err) {
    if (err?.code === "ERR_MODULE_NOT_FOUND" && /@codesandbox\/sdk/.test(err.message)) {
      fail("@codesandbox/sdk is not installed: run (cd node-csb && npm ci)");
    }
    fail(`cannot load the SDK module ${env.CSB_SDK_MODULE ?? "lib/sdk.js"}: ${err.message.split("\n")[0]}`);
  }
  for (const name of ["createSdk", "VMTier", "CommandError", "describe"]) {
    if (!(name in sdkModule)) fail(`SDK module ${env.CSB_SDK_MODULE} does not export ${name}`);
  }

  const app = createApp({ sdkModule, apiKey, token, log, defaults: { python: env.CSB_SERVICE_PYTHON },
    loopbackOnly: isLoopback(host) });
  // The SDK starts some agent requests it never awaits (ports on connect); one failing when a
  // sandbox goes away must not take the service, and every other sandbox, down with it.
  process.on("unhandledRejection", (err) => log(`unhandled rejection inside the SDK: ${String(err?.message ?? err).split("\n")[0]}`));
  app.server.on("error", (err) => fail(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
  app.server.listen(port, host, () => {
    const addr = app.server.address();
    const shown = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    const url = `http://${shown}:${addr.port}`;
    const sdk = sdkModule.describe;
    log(`listening on ${url} (${sdk.name} ${sdk.version}${sdk.double ? ", TEST DOUBLE" : ""}; ` +
      `key ${apiKey ? "set" : "NOT set"}; token ${token ? "required" : "not required (loopback only)"})`);
    if (env.CSB_SERVICE_READY_FILE) {
      // write-then-rename: a reader never sees half a file
      const tmp = `${env.CSB_SERVICE_READY_FILE}.tmp`;
      writeFileSync(tmp, JSON.stringify({ url, pid: process.pid }));
      renameSync(tmp, env.CSB_SERVICE_READY_FILE);
    }
  });

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    await app.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

await main();
