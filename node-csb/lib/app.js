// The HTTP service: JSON in and out, one handler per endpoint, every SDK call timed server-side.
// Secrets (the CodeSandbox key, the service token) are scrubbed from everything it writes.
import http from "node:http";
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { performance } from "node:perf_hooks";
import { classify, scrub, ServiceError, KEY_FIX } from "./errors.js";

export const SERVICE_VERSION = "0.1.0";
const MAX_BODY = 1 << 20;
const MAX_CODE = 90 * 1024;       // base64 grows it by 4/3; one shell argument must stay < 128 KiB
const MAX_OUTPUT = 256 * 1024;    // the tail kept per run; the farm keeps less still
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PROGRAM = /^[A-Za-z0-9_./+-]{1,200}$/;
const TAG_UNSAFE = /[^A-Za-z0-9._:-]/g;
export const FARM_TAG = "farm:sandbox-farm";
const PRIVACY = ["public", "unlisted", "private", "public-hosts"];
const DESTROY_MODES = ["delete", "shutdown", "hibernate"];
const ENDPOINTS = "GET /health, GET /key-check, POST /sandboxes, POST /sandboxes/list, " +
  "POST /sandboxes/{id}/run, DELETE /sandboxes/{id}";

const ms = (start) => Math.round((performance.now() - start) * 100) / 100;
const bad = (message) => new ServiceError("config", message);

/** True for addresses only this machine can reach. */
export function isLoopback(host) {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/** Labels {key: value} become CodeSandbox tags "key:value"; the farm marker is always among them. */
export function labelsToTags(labels) {
  if (labels === undefined) return [FARM_TAG];
  if (typeof labels !== "object" || labels === null || Array.isArray(labels)) {
    throw bad("labels must be an object of string values, e.g. {\"farm-run\": \"<run id>\"}");
  }
  const tags = new Set([FARM_TAG]);
  for (const [key, value] of Object.entries(labels)) {
    if (typeof value !== "string" && typeof value !== "number") throw bad(`label ${key} must be a string`);
    tags.add(`${key}:${value}`.replace(TAG_UNSAFE, "_").slice(0, 100));
  }
  // CodeSandbox allows 10 tags and the SDK adds "sdk" itself
  if (tags.size > 9) throw bad(`at most 8 labels besides the farm marker fit on a sandbox (got ${tags.size - 1})`);
  return [...tags];
}

/** Python source as one shell command: base64 keeps quotes and newlines out of the shell's way. */
export function pythonCommand(python, code) {
  if (!PROGRAM.test(python)) throw bad(`python must be a program name or path, got ${JSON.stringify(python)}`);
  const b64 = Buffer.from(code, "utf8").toString("base64");
  return `${python} -c "$(echo ${b64} | base64 -d)"`;
}

function checkEnv(env) {
  if (env === undefined) return {};
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw bad("env must be an object of strings");
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) throw bad(`env: ${JSON.stringify(name)} is not an environment variable name`);
    if (typeof value !== "string") throw bad(`env: ${name} must be a string`);
  }
  return env;
}

function seconds(value, name, { min = 0.001, max = 86400, fallback }) {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw bad(`${name} must be a number of seconds between ${min} and ${max}`);
  }
  return value;
}

function tail(text) {
  const clean = String(text ?? "").replace(/\r\n/g, "\n"); // commands run on a PTY, which writes CRLF
  return clean.length > MAX_OUTPUT ? clean.slice(-MAX_OUTPUT) : clean;
}

function digest(text) {
  return createHash("sha256").update(String(text)).digest();
}

/**
 * Build the service. ``sdkModule`` exports createSdk/VMTier/CommandError/describe (lib/sdk.js or a
 * double); ``apiKey`` may be empty (calls then answer a clear auth error); ``token`` guards every
 * endpoint but /health when set.
 */
export function createApp({ sdkModule, apiKey = "", token = "", log = console.log, defaults = {} }) {
  const als = new AsyncLocalStorage();
  const secrets = [apiKey, token].filter(Boolean);
  const say = (line) => log(scrub(line, secrets));
  const python = defaults.python ?? "python3";
  const recordingFetch = async (request) => {
    const response = await fetch(request);
    const ctx = als.getStore();
    if (ctx) ctx.lastStatus = response.status;
    return response;
  };
  const sdk = apiKey ? sdkModule.createSdk(apiKey, { fetch: recordingFetch }) : null;
  const open = new Map();       // sandbox id -> { sandbox, client, tags }
  const tokenDigest = token ? digest(token) : null;

  /** Run one SDK call; a failure becomes a classified ServiceError naming ``what``. */
  async function call(what, fn) {
    if (!sdk) {
      throw new ServiceError("auth", `${what}: CSB_API_KEY is not set: set it in node-csb's environment ` +
        "and restart node-csb", { code: "key_missing" });
    }
    const ctx = als.getStore() ?? {};
    ctx.lastStatus = undefined;
    try {
      return await fn();
    } catch (err) {
      throw classify(err, { what, status: ctx.lastStatus });
    }
  }

  async function withDeadline(promise, seconds_, onLate, message) {
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new ServiceError("timeout", message)), seconds_ * 1000);
    });
    try {
      return await Promise.race([promise, deadline]);
    } catch (err) {
      if (err instanceof ServiceError && err.errorClass === "timeout" && onLate) onLate();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async function destroyQuietly(id, why) {
    try {
      await call(`cleanup of ${id}`, () => sdk.sandboxes.delete(id));
      say(`deleted sandbox ${id} (${why})`);
    } catch (err) {
      say(`could not delete sandbox ${id} (${why}): ${err.message}; \`farm sweep\` will find it`);
    }
  }

  // --- handlers ------------------------------------------------------------------------------
  function health() {
    return {
      ok: true, service: "node-csb", version: SERVICE_VERSION, node: process.version,
      sdk: sdkModule.describe, key_set: Boolean(apiKey), token_required: Boolean(token),
      sandboxes_open: open.size, output: "merged",
    };
  }

  async function keyCheck() {
    const start = performance.now();
    try {
      await call("key check", () => sdk.sandboxes.list({ limit: 1 }));
    } catch (err) {
      if (err.errorClass === "network") {
        err.message = `${err.message}; the key itself was not checked`;
      } else if (err.errorClass === "auth" && err.code !== "key_missing") {
        err.message = `key check: CodeSandbox rejected CSB_API_KEY (HTTP ${err.upstreamStatus ?? "401/403"}): ` +
          `it is expired or revoked: ${KEY_FIX}`;
      }
      throw err;
    }
    return { ok: true, key: "accepted", timings_ms: { list: ms(start) } };
  }

  async function create(body) {
    const template = body.template ?? undefined;
    if (template !== undefined && (typeof template !== "string" || !ID.test(template))) {
      throw bad("template must be a CodeSandbox sandbox/template id (letters, digits, - and _)");
    }
    const tags = labelsToTags(body.labels);
    const privacy = body.privacy ?? "private";
    if (!PRIVACY.includes(privacy)) throw bad(`privacy must be one of ${PRIVACY.join(", ")}`);
    let vmTier;
    if (body.vm_tier !== undefined && body.vm_tier !== null) {
      const names = sdkModule.VMTier.All.map((t) => t.name);
      vmTier = sdkModule.VMTier.All.find((t) => t.name.toLowerCase() === String(body.vm_tier).toLowerCase());
      if (!vmTier) throw bad(`unknown vm_tier ${JSON.stringify(body.vm_tier)}; known: ${names.join(", ")}`);
    }
    const hibernation = seconds(body.hibernation_timeout_s, "hibernation_timeout_s", { min: 60, max: 86400 });
    const timeout = seconds(body.timeout_s, "timeout_s", { max: 3600, fallback: 120 });
    const opts = { tags, privacy, title: "sandbox-farm", path: "/sandbox-farm" };
    if (template) opts.id = template;
    if (vmTier) opts.vmTier = vmTier;
    if (hibernation) opts.hibernationTimeoutSeconds = hibernation;

    const start = performance.now();
    const creating = call("create", () => sdk.sandboxes.create(opts));
    // A create that outlives its deadline still makes a sandbox: delete it when it arrives.
    const late = () => creating.then((sb) => destroyQuietly(sb.id, "created after its deadline"), () => {});
    const sandbox = await withDeadline(creating, timeout, late, `create did not finish within ${timeout} s`);
    const createMs = ms(start);
    const left = Math.max(timeout - createMs / 1000, 1);
    const connectStart = performance.now();
    let client;
    try {
      const connecting = call("connect", () => sandbox.connect());
      const lateClient = () => connecting.then((c) => c.dispose(), () => {});
      client = await withDeadline(connecting, left, lateClient, `connect did not finish within ${timeout} s`);
    } catch (err) {
      await destroyQuietly(sandbox.id, "connect failed");
      throw err;
    }
    open.set(sandbox.id, { sandbox, client, tags });
    return {
      id: sandbox.id, bootup_type: sandbox.bootupType, cluster: sandbox.cluster, tags,
      timings_ms: { create: createMs, connect: ms(connectStart) },
    };
  }

  async function clientFor(id, timings) {
    const entry = open.get(id);
    if (entry) return entry.client;
    // Not opened by this process (the service restarted): resume and connect again, and say so.
    const start = performance.now();
    const sandbox = await call(`resume ${id}`, () => sdk.sandboxes.resume(id));
    const client = await call(`connect ${id}`, () => sandbox.connect());
    open.set(id, { sandbox, client, tags: [] });
    timings.reconnect = ms(start);
    return client;
  }

  async function run(id, body) {
    let command;
    if (typeof body.command === "string") {
      command = body.command;
    } else if (typeof body.code === "string") {
      if (body.code.length > MAX_CODE) throw bad(`code is ${body.code.length} characters; at most ${MAX_CODE} fit`);
      command = pythonCommand(body.python ?? python, body.code);
    } else {
      throw bad("run needs \"code\" (Python source) or \"command\" (a shell command)");
    }
    const env = checkEnv(body.env);
    const timeout = seconds(body.timeout_s, "timeout_s", { max: 86400, fallback: 120 });
    const timings = {};
    const start = performance.now();
    let cmd;
    const running = (async () => {
      const client = await clientFor(id, timings);
      cmd = await call(`run in ${id}`, () => client.commands.runBackground(command, { env, name: "sandbox-farm" }));
      return cmd.waitUntilComplete();
    })();
    const kill = () => {
      running.catch(() => {});
      if (cmd) cmd.kill().catch(() => {});
    };
    let output;
    let exitCode = 0;
    try {
      output = await withDeadline(running, timeout, kill, `command still running after ${timeout} s: killed`);
    } catch (err) {
      if (err instanceof sdkModule.CommandError) {
        exitCode = err.exitCode;
        output = err.output;
      } else {
        throw err instanceof ServiceError ? err : classify(err, { what: `run in ${id}` });
      }
    }
    timings.run = ms(start);
    return { exit_code: exitCode, output: tail(output), merged_output: true, timings_ms: timings };
  }

  async function destroy(id, mode) {
    if (!DESTROY_MODES.includes(mode)) throw bad(`mode must be one of ${DESTROY_MODES.join(", ")}`);
    const timings = {};
    const entry = open.get(id);
    if (entry) {
      open.delete(id);
      const start = performance.now();
      try {
        entry.client.dispose();
      } catch (err) {
        say(`dispose of ${id} failed: ${err.message}`);
      }
      timings.dispose = ms(start);
    }
    const start = performance.now();
    await call(`${mode} ${id}`, () => sdk.sandboxes[mode](id));
    timings[mode] = ms(start);
    return { id, mode, timings_ms: timings };
  }

  async function list(body) {
    const tags = labelsToTags(body.labels);
    const limit = Number.isInteger(body.limit) && body.limit > 0 ? Math.min(body.limit, 5000) : 1000;
    const start = performance.now();
    const result = await call("list", () => sdk.sandboxes.list({ tags, limit }));
    // Filter here too: the API's tag filter is not documented as "all of these".
    const sandboxes = result.sandboxes
      .filter((s) => tags.every((t) => (s.tags ?? []).includes(t)))
      .map((s) => ({ id: s.id, tags: s.tags ?? [], created_at: s.createdAt ?? null }));
    return { sandboxes, count: sandboxes.length, has_more: Boolean(result.hasMore), timings_ms: { list: ms(start) } };
  }

  // --- plumbing --------------------------------------------------------------------------------
  function authorized(req) {
    if (!tokenDigest) return true;
    const header = req.headers.authorization ?? "";
    const given = header.startsWith("Bearer ") ? header.slice(7) : "";
    return timingSafeEqual(digest(given), tokenDigest);
  }

  async function readJson(req) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > MAX_BODY) throw bad(`request body over ${MAX_BODY} bytes`);
      chunks.push(chunk);
    }
    if (!size) return {};
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      throw bad("request body is not valid JSON");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw bad("request body must be a JSON object");
    return body;
  }

  async function route(req, url) {
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (req.method === "GET" && path === "/health") return [200, health()];
    if (!authorized(req)) {
      throw new ServiceError("config", "node-csb refused the request: missing or wrong service token; give the " +
        "farm the same CSB_SERVICE_TOKEN as the service", { status: 401, code: "service_token" });
    }
    if (req.method === "GET" && path === "/key-check") return [200, await keyCheck()];
    if (req.method === "POST" && path === "/sandboxes") return [201, await create(await readJson(req))];
    if (req.method === "POST" && path === "/sandboxes/list") return [200, await list(await readJson(req))];
    const m = /^\/sandboxes\/([^/]+)(\/run)?$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1]);
      if (!ID.test(id)) throw bad("sandbox id must be letters, digits, - and _");
      if (m[2] && req.method === "POST") return [200, await run(id, await readJson(req))];
      if (!m[2] && req.method === "DELETE") return [200, await destroy(id, url.searchParams.get("mode") ?? "delete")];
    }
    throw new ServiceError("config", `no endpoint ${req.method} ${path}; endpoints: ${ENDPOINTS}`,
      { status: 404, code: "no_endpoint" });
  }

  const server = http.createServer((req, res) => {
    const start = performance.now();
    const url = new URL(req.url ?? "/", "http://node-csb");
    als.run({}, async () => {
      let status;
      let payload;
      try {
        [status, payload] = await route(req, url);
      } catch (err) {
        const e = err instanceof ServiceError ? err : classify(err, {});
        if (!(err instanceof ServiceError)) say(`unexpected error on ${req.method} ${url.pathname}: ${err?.stack ?? err}`);
        status = e.status;
        payload = { error: { class: e.errorClass, message: scrub(e.message, secrets) } };
        if (e.code) payload.error.code = e.code;
        if (e.upstreamStatus) payload.error.upstream_status = e.upstreamStatus;
      }
      const text = scrub(JSON.stringify(payload), secrets);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
      const cls = payload.error ? ` ${payload.error.class}` : "";
      say(`${req.method} ${url.pathname} ${status}${cls} ${ms(start)} ms`);
    });
  });
  // Keep pooled client connections open longer than clients keep them idle (avoids reset races).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  /** Stop accepting, disconnect from every open sandbox; sandboxes themselves are left to destroy/sweep. */
  async function close() {
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections?.();
    });
    for (const [id, entry] of open) {
      try {
        entry.client.dispose();
      } catch { /* already gone */ }
      say(`sandbox ${id} still open at shutdown: destroy it or run \`farm sweep\``);
    }
    open.clear();
  }

  return { server, close, open };
}
