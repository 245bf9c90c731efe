// A local fake of the CodeSandbox API for the REAL @codesandbox/sdk, reached through its base-URL
// setting (CSB_BASE_URL): the REST API (fork, start, list, get, delete, shutdown, hibernate) here,
// and the sandbox agent ("pitcher") websocket the SDK's connect() joins in ./fake-agent.js.
//
// The truth it keeps (and what it assumes about the real API; providers/codesandbox/assumptions.py):
// - a fork answers at once; its VM is up exactly `bootMs` after the fork request arrived, and
//   POST /vm/{id}/start answers then, saying how it booted (csb_bootup_type): FORK for a fresh fork,
//   RUNNING when already up, RESUME after hibernate, CLEAN after shutdown; with `expire` set, a
//   hibernation snapshot has expired: the start after hibernate is CLEAN and the VM's files are gone;
// - GET /sandbox?tags=a,b lists sandboxes carrying every tag (csb_list_filter_all_tags), newest first,
//   at most `pageSize` per page, with pagination.next_page; tags are kept verbatim (csb_tags_verbatim);
// - DELETE /vm/{id} removes the record `deleteLagMs` later: GET /sandbox/{id} answers 404 from then on
//   (csb_delete_removes_record);
// - a 429 carries Retry-After and the x-csb-rate-hourly-* headers (remaining 0, reset time).
//
//   node test/fake-api.js            (CSB_FAKE_READY_FILE gets {"url"}; controls under /_fake/)
import http from "node:http";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { acceptWebSocket } from "./wire.js";
import { killShell, serveAgent } from "./fake-agent.js";

export const TEMPLATES = new Set(["pcz35m", "7ngcrf"]);
const OPERATION_OF = { create: "fork", start: "start", destroy: "delete", list: "list", get: "get", run: "run" };
const BOOTUP_OF = { forked: "FORK", running: "RUNNING", hibernated: "RESUME", shutdown: "CLEAN" };

function send(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function sendFailure(res, status, retryAfter) {
  const headers = {};
  if (status === 429) {
    const wait = retryAfter ?? 1;
    Object.assign(headers, { "retry-after": String(wait), "x-csb-rate-hourly-remaining": "0",
      "x-csb-rate-hourly-used": "1000", "x-csb-rate-hourly-reset": new Date(Date.now() + wait * 1000).toISOString() });
  }
  send(res, status, { errors: [status === 429 ? "rate limit exceeded" : `fake failure ${status}`] }, headers);
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  if (!chunks.length) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return {};
  }
}

/** Which operation a REST request is, for injected failures. */
function operationOf(method, path) {
  if (method === "POST" && /\/fork$/.test(path)) return "fork";
  if (method === "POST" && /\/start$/.test(path)) return "start";
  if (method === "DELETE") return "delete";
  if (method === "GET" && path === "/sandbox") return "list";
  if (method === "GET") return "get";
  return null;
}

const info = (b) => ({ id: b.id, alias: b.id, title: b.title, tags: b.tags, privacy: 2, created_at: b.createdAt,
  updated_at: b.createdAt, description: null });

export class FakeCodeSandbox {
  constructor({ bootMs = 0, pageSize = 50, deleteLagMs = 0 } = {}) {
    this.state = { bootMs, pageSize, deleteLagMs, failures: [], requests: [], seq: 0, expire: false };
    this.boxes = new Map(); // id -> { id, tags, title, createdAt, vm, forkedAt, dir, token, sockets, shells }
    this.root = mkdtempSync(join(tmpdir(), "fake-csb-"));
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on("upgrade", (req, socket) => this.upgrade(req, socket));
  }

  async listen() {
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  // --- controls ----------------------------------------------------------------------------------
  setBootMs(ms) { this.state.bootMs = ms; }
  setPageSize(n) { this.state.pageSize = n; }
  setDeleteLagMs(ms) { this.state.deleteLagMs = ms; }
  setExpire(on) { this.state.expire = Boolean(on); }
  failNext(operation, status, retryAfter) { this.state.failures.push({ operation, status, retry_after: retryAfter }); }
  alive() { return [...this.boxes.values()].filter((b) => !b.gone).map((b) => b.id); }
  kill(id) { const b = this.live(id); if (b) this.forget(b); }

  takeFailure(operation) {
    const i = this.state.failures.findIndex((f) => (OPERATION_OF[f.operation] ?? f.operation) === operation);
    return i < 0 ? null : this.state.failures.splice(i, 1)[0];
  }

  live(id) {
    const b = this.boxes.get(id);
    return b && !b.gone ? b : null;
  }

  dropVm(b, why) {
    for (const sock of b.sockets) sock.close();
    b.sockets.clear();
    for (const child of b.shells.values()) killShell(child);
    b.shells.clear();
    b.vm = why;
  }

  forget(b) {
    this.dropVm(b, "deleted");
    b.gone = true;
    rmSync(b.dir, { recursive: true, force: true });
  }

  // --- the REST API ------------------------------------------------------------------------------
  async handle(req, res) {
    const url = new URL(req.url, "http://fake");
    if (url.pathname.startsWith("/_fake/")) return this.control(req, res, url);
    const entry = { method: req.method, path: url.pathname, at: performance.now() };
    this.state.requests.push(entry);
    const failure = this.takeFailure(operationOf(req.method, url.pathname));
    if (failure) {
      await readBody(req);
      return sendFailure(res, failure.status, failure.retry_after);
    }
    try {
      await this.rest(req, res, url, entry);
    } catch (err) {
      send(res, 500, { errors: [`fake API error: ${err.message}`] });
    }
  }

  async rest(req, res, url, entry) {
    const path = url.pathname;
    let m;
    if (req.method === "POST" && (m = /^\/sandbox\/([^/]+)\/fork$/.exec(path))) {
      entry.body = await readBody(req); // what the SDK sent: tags, privacy, title, path
      return this.fork(res, m[1], entry.body);
    }
    if (req.method === "POST" && (m = /^\/vm\/([^/]+)\/(start|shutdown|hibernate)$/.exec(path))) {
      entry.body = await readBody(req); // start: tier, hibernation_timeout_seconds
      const b = this.live(m[1]);
      if (!b) return send(res, 404, { errors: ["not found"] });
      if (m[2] === "start") return this.start(res, b);
      this.dropVm(b, m[2] === "shutdown" ? "shutdown" : "hibernated");
      return send(res, 200, { data: { id: b.id } });
    }
    if (req.method === "DELETE" && (m = /^\/vm\/([^/]+)$/.exec(path))) return this.remove(res, m[1]);
    if (req.method === "GET" && (m = /^\/sandbox\/([^/]+)$/.exec(path))) {
      const b = this.live(m[1]);
      return b ? send(res, 200, { data: info(b) }) : send(res, 404, { errors: ["not found"] });
    }
    if (req.method === "GET" && path === "/sandbox") return this.list(res, url.searchParams);
    return send(res, 500, { errors: [`fake API has no ${req.method} ${path}`] });
  }

  fork(res, template, body) {
    if (!TEMPLATES.has(template) && !this.live(template)) return send(res, 404, { errors: ["not found"] });
    const seq = ++this.state.seq;
    const id = `fk${seq.toString(36)}${randomBytes(3).toString("hex")}`;
    const dir = join(this.root, id);
    mkdirSync(join(dir, "home"), { recursive: true });
    this.boxes.set(id, { id, tags: body.tags ?? [], title: body.title ?? null, createdAt: new Date().toISOString(),
      vm: "forked", forkedAt: performance.now(), dir, sockets: new Set(), shells: new Map(), seq });
    return send(res, 201, { data: { id, alias: id, title: body.title ?? null } });
  }

  /** Answer once the VM is up: `bootMs` after the fork arrived (or after this request, from a pause). */
  async start(res, b) {
    const arrived = performance.now();
    let bootup = BOOTUP_OF[b.vm];
    if (b.vm === "hibernated" && this.state.expire) { // the snapshot expired: a clean boot, files gone
      bootup = "CLEAN";
      rmSync(join(b.dir, "home"), { recursive: true, force: true });
      mkdirSync(join(b.dir, "home"), { recursive: true });
    }
    const upAt = b.vm === "forked" ? b.forkedAt + this.state.bootMs : b.vm === "running" ? arrived : arrived + this.state.bootMs;
    b.vm = "booting";
    const wait = upAt - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (b.gone) return send(res, 404, { errors: ["not found"] });
    b.vm = "running";
    b.token = randomBytes(12).toString("hex");
    return send(res, 200, { data: { bootup_type: bootup, cluster: "fake-cluster",
      pitcher_url: `ws://127.0.0.1:${this.server.address().port}/pitcher/${b.id}`, pitcher_token: b.token,
      workspace_path: b.dir, user_workspace_path: b.dir, pitcher_manager_version: "fake",
      pitcher_version: "0.367.10", latest_pitcher_version: "0.367.10" } });
  }

  remove(res, id) {
    const b = this.live(id);
    if (!b || b.deleting) return send(res, 404, { errors: ["not found"] });
    b.deleting = true;
    this.dropVm(b, "deleting");
    if (this.state.deleteLagMs > 0) setTimeout(() => this.forget(b), this.state.deleteLagMs);
    else this.forget(b);
    return send(res, 200, { data: { id: b.id } });
  }

  list(res, query) {
    const want = (query.get("tags") ?? "").split(",").filter(Boolean);
    const size = Math.max(1, Math.min(Number(query.get("page_size") ?? 50), this.state.pageSize));
    const page = Math.max(1, Number(query.get("page") ?? 1));
    const all = [...this.boxes.values()].filter((b) => !b.gone && want.every((t) => b.tags.includes(t)))
      .sort((a, b) => b.seq - a.seq);
    const slice = all.slice((page - 1) * size, page * size);
    return send(res, 200, { data: { sandboxes: slice.map(info), pagination: { total_records: all.length,
      current_page: page, next_page: page * size < all.length ? page + 1 : null } } });
  }

  // --- the agent websocket -----------------------------------------------------------------------
  upgrade(req, socket) {
    const url = new URL(req.url, "http://fake");
    const m = /^\/pitcher\/([^/]+)\/?$/.exec(url.pathname);
    const b = m && this.live(m[1]);
    if (!b || b.vm !== "running" || url.searchParams.get("token") !== b.token) {
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    serveAgent(b, acceptWebSocket(req, socket), { takeFailure: (op) => this.takeFailure(op),
      nextId: () => ++this.state.seq });
  }

  // --- controls over HTTP, for the Python side (tests/fakes/codesandbox_server.py) -----------------
  async control(req, res, url) {
    const body = await readBody(req);
    const name = url.pathname.slice("/_fake/".length);
    const actions = {
      boot: () => this.setBootMs(body.ms), "page-size": () => this.setPageSize(body.n),
      "delete-lag": () => this.setDeleteLagMs(body.ms), fail: () => this.state.failures.push(body),
      kill: () => this.kill(body.id), expire: () => this.setExpire(body.on),
    };
    if (name === "alive") return send(res, 200, { ids: this.alive() });
    if (name === "requests") return send(res, 200, { requests: this.state.requests });
    if (!actions[name]) return send(res, 404, { error: `no control ${name}` });
    actions[name]();
    return send(res, 200, { ok: true });
  }

  close() {
    return new Promise((r) => {
      for (const b of this.boxes.values()) this.dropVm(b, "closed");
      this.server.closeAllConnections?.();
      this.server.close(() => {
        rmSync(this.root, { recursive: true, force: true });
        r();
      });
    });
  }
}

/** Start the fake on 127.0.0.1:0. */
export function startFakeApi(options) {
  return new FakeCodeSandbox(options).listen();
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
