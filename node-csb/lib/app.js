// The HTTP service: JSON in and out, one handler per endpoint, every SDK call timed server-side.
// Secrets (the CodeSandbox key, the service token) are scrubbed from everything it writes.
import http from "node:http";
import { AsyncLocalStorage } from "node:async_hooks";
import { performance } from "node:perf_hooks";
import { classify, scrub, ServiceError, KEY_FIX } from "./errors.js";
import { checkRequest, isLoopback, tokenCheck } from "./guard.js";
import { createObserver, newRecord } from "./observe.js";
import { bad, checkEnv, connectionLost, DESTROY_MODES, FARM_TAG, ID, labelsToTags, LostConnection, MAX_CODE,
  PRIVACY, pythonCommand, seconds, tail } from "./inputs.js";

export { FARM_TAG, isLoopback, labelsToTags, pythonCommand };

export const SERVICE_VERSION = "0.1.0";
const MAX_BODY = 1 << 20;
const LIST_PAGE_SIZE = 50;
const ENDPOINTS = "GET /health, GET /key-check, POST /sandboxes, POST /sandboxes/list, " +
  "POST /sandboxes/{id}/run, POST /sandboxes/{id}/hibernate, POST /sandboxes/{id}/resume, DELETE /sandboxes/{id}";
const ms = (start) => Math.round((performance.now() - start) * 100) / 100;
const sleep = (msec) => new Promise((r) => setTimeout(r, msec));
const GONE_FIRST_MS = 5;
export const GONE_MAX_MS = 25; // destroy's wait-until-gone asks again at most this far apart

/**
 * Build the service. ``sdkModule`` exports createSdk/VMTier/CommandError/describe (lib/sdk.js or a
 * double); ``apiKey`` may be empty (calls then answer a clear auth error); ``token`` guards every
 * endpoint but /health when set; ``loopbackOnly`` (the service listens on loopback) makes it answer
 * loopback Host names only (lib/guard.js).
 */
export function createApp({ sdkModule, apiKey = "", token = "", log = console.log, defaults = {}, loopbackOnly = true }) {
  const als = new AsyncLocalStorage();
  const secrets = [apiKey, token].filter(Boolean);
  const say = (line) => log(scrub(line, secrets));
  const python = defaults.python ?? "python3";
  const observer = createObserver(als);
  const sdk = apiKey ? sdkModule.createSdk(apiKey, { fetch: observer.fetch }) : null;
  const open = new Map();       // sandbox id -> { sandbox, client, tags }
  const authorized = tokenCheck(token);

  /** Run one SDK call; a failure becomes a classified ServiceError naming ``what``. */
  async function call(what, fn) {
    if (!sdk) {
      throw new ServiceError("auth", `${what}: CSB_API_KEY is not set: set it in node-csb's environment ` +
        "and restart node-csb", { code: "key_missing" });
    }
    const rec = als.getStore()?.record ?? newRecord();
    rec.lastStatus = undefined;
    rec.retryAfter = null;
    try {
      return await fn();
    } catch (err) {
      throw classify(err, { what, status: rec.lastStatus, retryAfter: rec.retryAfter });
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
    const rec = als.getStore()?.record ?? newRecord();
    return {
      id: sandbox.id, bootup_type: sandbox.bootupType, cluster: sandbox.cluster, tags,
      // usable = connected: the agent's join answered and setup progress read; a command can run now
      timings_ms: { ...rec.wireMs, create: createMs, connect: ms(connectStart) },
      sdk_attempts: { ...rec.attempts },
    };
  }

  /** Resolve when the API still has sandbox ``id``; a 404 (not_found) also forgets its client. */
  async function existing(id) {
    try {
      await call(`run in ${id}`, () => sdk.sandboxes.get(id));
    } catch (err) {
      if (err.errorClass === "not_found") {
        open.get(id)?.client.dispose();
        open.delete(id);
      }
      throw err;
    }
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
    let stopWatching = () => {};
    const running = (async () => {
      const client = await clientFor(id, timings);
      // Not connected (the SDK may be reconnecting, and queues commands until it is): ask the API
      // whether the sandbox still exists, so a dead one is not_found now rather than a timeout later.
      if (client.state !== undefined && client.state !== "CONNECTED") await existing(id);
      const lost = connectionLost(client);
      stopWatching = lost.stop;
      cmd = await Promise.race([lost.promise,
        call(`run in ${id}`, () => client.commands.runBackground(command, { env, name: "sandbox-farm" }))]);
      return Promise.race([lost.promise, cmd.waitUntilComplete()]);
    })().catch(async (err) => {
      if (!(err instanceof LostConnection)) throw err;
      await existing(id);
      open.delete(id);
      throw new ServiceError("provider_error", `run in ${id}: lost the connection to the sandbox (${err.state})`);
    }).finally(() => stopWatching());
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

  /** The resume scenario's pause: disconnect, then hibernate (answers once the API accepted it). */
  async function hibernate(id) {
    const timings = {};
    const entry = open.get(id);
    if (entry) {
      open.delete(id);
      try {
        entry.client.dispose();
      } catch (err) {
        say(`dispose of ${id} failed: ${err.message}`);
      }
    }
    const start = performance.now();
    await call(`hibernate ${id}`, () => sdk.sandboxes.hibernate(id));
    timings.hibernate = ms(start);
    return { id, timings_ms: timings };
  }

  /** The resume scenario's resume: sandboxes.resume (startVm; the API answers once the VM is up)
   * then connect; bootup_type says RESUME, or CLEAN when the hibernation snapshot was gone. */
  async function resume(id, body) {
    const timeout = seconds(body.timeout_s, "timeout_s", { max: 3600, fallback: 120 });
    const start = performance.now();
    const resuming = call(`resume ${id}`, () => sdk.sandboxes.resume(id));
    const sandbox = await withDeadline(resuming, timeout, null, `resume did not finish within ${timeout} s`);
    const resumeMs = ms(start);
    const connectStart = performance.now();
    const connecting = call(`connect ${id}`, () => sandbox.connect());
    const lateClient = () => connecting.then((c) => c.dispose(), () => {});
    const client = await withDeadline(connecting, Math.max(timeout - resumeMs / 1000, 1), lateClient,
      `connect after resume did not finish within ${timeout} s`);
    open.get(id)?.client.dispose();
    open.set(id, { sandbox, client, tags: [] });
    const rec = als.getStore()?.record ?? newRecord();
    return { id, bootup_type: sandbox.bootupType,
      timings_ms: { ...rec.wireMs, resume: resumeMs, connect: ms(connectStart) }, sdk_attempts: { ...rec.attempts } };
  }

  /** Poll the API until ``id`` answers 404, 5 ms rising to GONE_MAX_MS apart; returns the polls made. */
  async function waitGone(id, timeout) {
    const deadline = performance.now() + timeout * 1000;
    let interval = GONE_FIRST_MS;
    for (let polls = 1; ; polls++) {
      try {
        await call(`wait for ${id} to go`, () => sdk.sandboxes.get(id));
      } catch (err) {
        if (err.errorClass === "not_found") return polls;
        throw err;
      }
      if (performance.now() >= deadline) {
        throw new ServiceError("timeout", `delete of ${id} answered, but the sandbox was still there after ${timeout} s`);
      }
      await sleep(interval);
      interval = Math.min(interval * 2, GONE_MAX_MS);
    }
  }

  async function destroy(id, mode, timeoutText) {
    if (!DESTROY_MODES.includes(mode)) throw bad(`mode must be one of ${DESTROY_MODES.join(", ")}`);
    const timeout = seconds(timeoutText === null ? undefined : Number(timeoutText), "timeout_s", { max: 3600, fallback: 60 });
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
    // Only a delete has an API answer that says "gone" (GET /sandbox/{id} -> 404); shutdown and
    // hibernate return when the API accepted them.
    const polls = mode === "delete" ? await waitGone(id, timeout) : 0;
    if (polls) timings.gone = ms(start);
    return { id, mode, polls, timings_ms: timings };
  }

  async function list(body) {
    const tags = labelsToTags(body.labels);
    const start = performance.now();
    // No limit: the SDK follows pagination.next_page until the API has no next page.
    const result = await call("list", () => sdk.sandboxes.list({ tags, limit: Number.MAX_SAFE_INTEGER,
      pagination: { page: 1, pageSize: LIST_PAGE_SIZE } }));
    // Filter here too (unless asked for the API's own answer): the API's tag filter is not
    // documented as "all of these".
    const sandboxes = result.sandboxes
      .filter((s) => body.raw === true || tags.every((t) => (s.tags ?? []).includes(t)))
      .map((s) => ({ id: s.id, tags: s.tags ?? [], created_at: s.createdAt ?? null }));
    return { sandboxes, count: sandboxes.length, total: result.totalCount ?? null, timings_ms: { list: ms(start) } };
  }

  // --- plumbing --------------------------------------------------------------------------------
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
    checkRequest(req, { loopbackOnly });
    if (req.method === "GET" && path === "/health") return [200, health()];
    if (!authorized(req)) {
      throw new ServiceError("config", "node-csb refused the request: missing or wrong service token; give the " +
        "farm the same CSB_SERVICE_TOKEN as the service", { status: 401, code: "service_token" });
    }
    if (req.method === "GET" && path === "/key-check") return [200, await keyCheck()];
    if (req.method === "POST" && path === "/sandboxes") return [201, await create(await readJson(req))];
    if (req.method === "POST" && path === "/sandboxes/list") return [200, await list(await readJson(req))];
    const m = /^\/sandboxes\/([^/]+)(\/run|\/hibernate|\/resume)?$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1]);
      if (!ID.test(id)) throw bad("sandbox id must be letters, digits, - and _");
      if (m[2] === "/run" && req.method === "POST") return [200, await run(id, await readJson(req))];
      if (m[2] === "/hibernate" && req.method === "POST") return [200, await hibernate(id)];
      if (m[2] === "/resume" && req.method === "POST") return [200, await resume(id, await readJson(req))];
      if (!m[2] && req.method === "DELETE") {
        return [200, await destroy(id, url.searchParams.get("mode") ?? "delete", url.searchParams.get("timeout_s"))];
      }
    }
    throw new ServiceError("config", `no endpoint ${req.method} ${path}; endpoints: ${ENDPOINTS}`,
      { status: 404, code: "no_endpoint" });
  }

  const server = http.createServer((req, res) => {
    const start = performance.now();
    const url = new URL(req.url ?? "/", "http://node-csb");
    als.run({ record: newRecord() }, async () => {
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
        if (e.retryAfter !== null && e.retryAfter !== undefined) payload.error.retry_after_s = e.retryAfter;
      }
      const text = scrub(JSON.stringify(payload), secrets);
      const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(text) };
      if (payload.error?.retry_after_s !== undefined) headers["retry-after"] = String(payload.error.retry_after_s);
      res.writeHead(status, headers);
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
