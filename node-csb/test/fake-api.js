// A local fake of the CodeSandbox API for the REAL @codesandbox/sdk, reached through its base-URL
// setting (CSB_BASE_URL): the REST API (fork, start, list, get, delete, shutdown, hibernate) and the
// sandbox agent ("pitcher") websocket the SDK's connect() joins and runs commands over. Commands
// run in a local bash inside a per-sandbox directory.
//
// The truth it keeps (and what it assumes about the real API; providers/codesandbox/assumptions.py):
// - a fork answers at once; its VM is up exactly `bootMs` after the fork request arrived, and
//   POST /vm/{id}/start answers then, saying how it booted (csb_bootup_type): FORK for a fresh fork,
//   RUNNING when already up, RESUME after hibernate, CLEAN after shutdown;
// - GET /sandbox?tags=a,b lists sandboxes carrying every tag (csb_list_filter_all_tags), newest first,
//   at most `pageSize` per page, with pagination.next_page; tags are kept verbatim (csb_tags_verbatim);
// - DELETE /vm/{id} removes the record `deleteLagMs` later: GET /sandbox/{id} answers 404 from then on
//   (csb_delete_removes_record);
// - a 429 carries Retry-After and the x-csb-rate-hourly-* headers (remaining 0, reset time).
//
//   node test/fake-api.js            (CSB_FAKE_READY_FILE gets {"url"}; controls under /_fake/)
import http from "node:http";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { acceptWebSocket, encode, decode } from "./wire.js";

export const TEMPLATES = new Set(["pcz35m", "7ngcrf"]);
const OPERATION_OF = { create: "fork", start: "start", destroy: "delete", list: "list", get: "get" };

/** Start the fake on 127.0.0.1:0; returns {url, controls..., close()}. */
export async function startFakeApi({ bootMs = 0, pageSize = 50, deleteLagMs = 0 } = {}) {
  const root = mkdtempSync(join(tmpdir(), "fake-csb-"));
  const state = { bootMs, pageSize, deleteLagMs, failures: [], requests: [], seq: 0 };
  const boxes = new Map(); // id -> { id, tags, title, createdAt, vm, forkedAt, dir, token, sockets, shells }

  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res, status, retryAfter) => {
    const headers = {};
    if (status === 429) {
      const wait = retryAfter ?? 1;
      Object.assign(headers, { "retry-after": String(wait), "x-csb-rate-hourly-remaining": "0",
        "x-csb-rate-hourly-used": "1000", "x-csb-rate-hourly-reset": new Date(Date.now() + wait * 1000).toISOString() });
    }
    send(res, status, { errors: [status === 429 ? "rate limit exceeded" : `fake failure ${status}`] }, headers);
  };
  const takeFailure = (operation) => {
    const i = state.failures.findIndex((f) => OPERATION_OF[f.operation] === operation || f.operation === operation);
    return i < 0 ? null : state.failures.splice(i, 1)[0];
  };
  const info = (b) => ({ id: b.id, alias: b.id, title: b.title, tags: b.tags, privacy: 2, created_at: b.createdAt,
    updated_at: b.createdAt, description: null });
  const live = (id) => { const b = boxes.get(id); return b && !b.gone ? b : null; };

  function dropVm(b, why) {
    for (const sock of b.sockets) sock.close();
    b.sockets.clear();
    for (const child of b.shells.values()) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* exited */ } }
    b.shells.clear();
    b.vm = why;
  }

  function forget(b) {
    dropVm(b, "deleted");
    b.gone = true;
    rmSync(b.dir, { recursive: true, force: true });
  }

  async function start(req, res, b) {
    const arrived = performance.now();
    const bootup = { forked: "FORK", running: "RUNNING", hibernated: "RESUME", shutdown: "CLEAN" }[b.vm];
    const upAt = b.vm === "forked" ? b.forkedAt + state.bootMs : b.vm === "running" ? arrived : arrived + state.bootMs;
    b.vm = "booting";
    const wait = upAt - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (b.gone) return fail(res, 404);
    b.vm = "running";
    b.token = randomBytes(12).toString("hex");
    const port = server.address().port;
    send(res, 200, { data: { bootup_type: bootup, cluster: "fake-cluster", pitcher_url: `ws://127.0.0.1:${port}/pitcher/${b.id}`,
      pitcher_token: b.token, workspace_path: b.dir, user_workspace_path: b.dir, pitcher_manager_version: "fake",
      pitcher_version: "0.367.10", latest_pitcher_version: "0.367.10" } });
  }

  async function rest(req, res, url) {
    const path = url.pathname;
    let m;
    if (req.method === "POST" && (m = /^\/sandbox\/([^/]+)\/fork$/.exec(path))) {
      const body = await readBody(req);
      state.requests.at(-1).body = body; // what the SDK sent: tags, privacy, title, path
      if (!TEMPLATES.has(m[1]) && !live(m[1])) return send(res, 404, { errors: ["not found"] });
      const id = `fk${(++state.seq).toString(36)}${randomBytes(3).toString("hex")}`;
      const dir = join(root, id);
      mkdirSync(join(dir, "home"), { recursive: true });
      boxes.set(id, { id, tags: body.tags ?? [], title: body.title ?? null, createdAt: new Date().toISOString(),
        vm: "forked", forkedAt: performance.now(), dir, sockets: new Set(), shells: new Map(), seq: state.seq });
      return send(res, 201, { data: { id, alias: id, title: body.title ?? null } });
    }
    if ((m = /^\/vm\/([^/]+)\/(start|shutdown|hibernate)$/.exec(path)) && req.method === "POST") {
      state.requests.at(-1).body = await readBody(req); // start: tier, hibernation_timeout_seconds
      const b = live(m[1]);
      if (!b) return send(res, 404, { errors: ["not found"] });
      if (m[2] === "start") return start(req, res, b);
      dropVm(b, m[2] === "shutdown" ? "shutdown" : "hibernated");
      return send(res, 200, { data: { id: b.id } });
    }
    if (req.method === "DELETE" && (m = /^\/vm\/([^/]+)$/.exec(path))) {
      const b = live(m[1]);
      if (!b || b.deleting) return send(res, 404, { errors: ["not found"] });
      b.deleting = true;
      dropVm(b, "deleting");
      if (state.deleteLagMs > 0) setTimeout(() => forget(b), state.deleteLagMs);
      else forget(b);
      return send(res, 200, { data: { id: b.id } });
    }
    if (req.method === "GET" && (m = /^\/sandbox\/([^/]+)$/.exec(path))) {
      const b = live(m[1]);
      return b ? send(res, 200, { data: info(b) }) : send(res, 404, { errors: ["not found"] });
    }
    if (req.method === "GET" && path === "/sandbox") {
      const want = (url.searchParams.get("tags") ?? "").split(",").filter(Boolean);
      const size = Math.max(1, Math.min(Number(url.searchParams.get("page_size") ?? 50), state.pageSize));
      const page = Math.max(1, Number(url.searchParams.get("page") ?? 1));
      const all = [...boxes.values()].filter((b) => !b.gone && want.every((t) => b.tags.includes(t)))
        .sort((a, b) => b.seq - a.seq);
      const slice = all.slice((page - 1) * size, page * size);
      return send(res, 200, { data: { sandboxes: slice.map(info), pagination: { total_records: all.length,
        current_page: page, next_page: page * size < all.length ? page + 1 : null } } });
    }
    return send(res, 500, { errors: [`fake API has no ${req.method} ${path}`] });
  }

  const operationOf = (method, path) => {
    if (method === "POST" && /\/fork$/.test(path)) return "fork";
    if (method === "POST" && /\/start$/.test(path)) return "start";
    if (method === "DELETE") return "delete";
    if (method === "GET" && path === "/sandbox") return "list";
    if (method === "GET") return "get";
    return null;
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://fake");
    if (url.pathname.startsWith("/_fake/")) return control(req, res, url);
    state.requests.push({ method: req.method, path: url.pathname, at: performance.now(),
      key: (req.headers.authorization ?? "").replace(/^Bearer /, "") });
    const failure = takeFailure(operationOf(req.method, url.pathname));
    if (failure) {
      await readBody(req);
      return fail(res, failure.status, failure.retry_after);
    }
    try {
      await rest(req, res, url);
    } catch (err) {
      send(res, 500, { errors: [`fake API error: ${err.message}`] });
    }
  });

  server.on("upgrade", (req, socket) => {
    const url = new URL(req.url, "http://fake");
    const m = /^\/pitcher\/([^/]+)\/?$/.exec(url.pathname);
    const b = m && live(m[1]);
    if (!b || b.vm !== "running" || url.searchParams.get("token") !== b.token) {
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    pitcher(b, acceptWebSocket(req, socket));
  });

  function pitcher(b, ws) {
    b.sockets.add(ws);
    ws.onClose(() => b.sockets.delete(ws));
    const notify = (method, params) => ws.send(encode({ method, params }));
    const held = new Map(); // shellId -> notifications held until the SDK has its Command listening
    ws.onMessage((payload, text) => {
      if (text) return notify("system/pong", {}); // the SDK's heartbeat is an empty text frame
      const msg = decode(payload);
      const reply = (result) => ws.send(encode({ id: msg.id, result }));
      const p = msg.params ?? {};
      switch (msg.method) {
        case "client/join": return reply({ client: { username: "fake" }, reconnectToken: "fake-reconnect" });
        case "setup/get": return reply({ state: "FINISHED", currentStepIndex: 0,
          steps: [{ name: "fake", command: "true", shellId: null, finishStatus: "SUCCEEDED" }] });
        case "port/list": return reply({ list: [] });
        case "shell/create": {
          const failure = takeFailure("run");
          if (failure) return ws.send(encode({ id: msg.id, error: { code: failure.status, message: "fake failure" } }));
          const shellId = `sh${++state.seq}`;
          const child = spawn("bash", ["-c", p.command], { cwd: b.dir, detached: true,
            env: { PATH: process.env.PATH, HOME: join(b.dir, "home"), LANG: "C.UTF-8" } });
          b.shells.set(shellId, child);
          held.set(shellId, []);
          const emit = (method, params) => (held.has(shellId) ? held.get(shellId).push([method, params]) : notify(method, params));
          child.stdout.on("data", (d) => emit("shell/out", { shellId, out: d.toString("utf8") }));
          child.stderr.on("data", (d) => emit("shell/out", { shellId, out: d.toString("utf8") }));
          child.on("close", (code) => { b.shells.delete(shellId); emit("shell/exit", { shellId, exitCode: code ?? 1 }); });
          return reply({ shellId, name: "", status: "RUNNING", buffer: [], shellType: p.type, isSystemShell: true });
        }
        case "shell/rename": { // sent right before the SDK builds the Command: now it hears output
          reply(null);
          for (const [method, params] of held.get(p.shellId) ?? []) notify(method, params);
          return held.delete(p.shellId);
        }
        case "shell/terminate": {
          const child = b.shells.get(p.shellId);
          if (child) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* exited */ } }
          return reply({ shellId: p.shellId });
        }
        default: return ws.send(encode({ id: msg.id, error: { code: -32601, message: `fake agent has no ${msg.method}` } }));
      }
    });
  }

  async function control(req, res, url) {
    const body = await readBody(req);
    const name = url.pathname.slice("/_fake/".length);
    if (name === "boot") state.bootMs = body.ms;
    else if (name === "page-size") state.pageSize = body.n;
    else if (name === "delete-lag") state.deleteLagMs = body.ms;
    else if (name === "fail") state.failures.push(body);
    else if (name === "kill") { const b = live(body.id); if (b) forget(b); }
    else if (name === "alive") return send(res, 200, { ids: [...boxes.values()].filter((b) => !b.gone).map((b) => b.id) });
    else if (name === "requests") return send(res, 200, { requests: state.requests });
    else return send(res, 404, { error: `no control ${name}` });
    return send(res, 200, { ok: true });
  }

  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url, state, boxes,
    setBootMs: (ms) => { state.bootMs = ms; },
    setPageSize: (n) => { state.pageSize = n; },
    setDeleteLagMs: (ms) => { state.deleteLagMs = ms; },
    failNext: (operation, status, retryAfter) => state.failures.push({ operation, status, retry_after: retryAfter }),
    alive: () => [...boxes.values()].filter((b) => !b.gone).map((b) => b.id),
    kill: (id) => { const b = live(id); if (b) forget(b); },
    close: () => new Promise((r) => {
      for (const b of boxes.values()) dropVm(b, "closed");
      server.closeAllConnections?.();
      server.close(() => { rmSync(root, { recursive: true, force: true }); r(); });
    }),
  };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  if (!chunks.length) return {};
  try { return JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch { return {}; }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fake = await startFakeApi({ bootMs: Number(process.env.CSB_FAKE_BOOT_MS ?? 0) });
  if (process.env.CSB_FAKE_READY_FILE) {
    writeFileSync(`${process.env.CSB_FAKE_READY_FILE}.tmp`, JSON.stringify({ url: fake.url, pid: process.pid }));
    renameSync(`${process.env.CSB_FAKE_READY_FILE}.tmp`, process.env.CSB_FAKE_READY_FILE);
  }
  const stop = () => fake.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
