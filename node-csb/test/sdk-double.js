// A test double for @codesandbox/sdk at the SDK-object seam: start node-csb with
// CSB_SDK_MODULE=node-csb/test/sdk-double.js. It has the SDK's shape (sandboxes.create/list/delete/
// shutdown/hibernate/resume, sandbox.connect(), client.commands.runBackground(), command
// waitUntilComplete()/kill(), client.dispose()) and throws what the SDK throws: the SDK's own
// CommandError, Errors worded like its handleResponse(), a rate-limit error with type "rate-limit",
// and undici's TypeError("fetch failed") for network failures.
//
// Commands really run, in a local bash inside a private directory per sandbox, with output merged
// and CRLF line ends as on the SDK's PTY. Failures are chosen by input:
//   API key containing "revoked" -> every call "Unauthorized"; containing "offline" -> fetch failed
//   template "tpl-missing" -> not found; "tpl-ratelimited" -> rate limit; "tpl-broken" -> the fork
//   exists but starting it fails (a real leftover); "tpl-leaky" -> an error quoting the key;
//   "tpl-noconnect" -> connect fails; "tpl-slow-<ms>" -> create takes <ms>.
// CSB_DOUBLE_JOURNAL=<file> appends one JSON line per call (tags, options, env names; never values).
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { CommandError, VMTier } from "@codesandbox/sdk";

export { CommandError, VMTier };
export const describe = Object.freeze({ name: "@codesandbox/sdk", version: "test-double", double: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function journal(entry) {
  const file = process.env.CSB_DOUBLE_JOURNAL;
  if (file) appendFileSync(file, JSON.stringify({ ...entry, at: Date.now() }) + "\n");
}

function networkError() {
  const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:443"), { code: "ECONNREFUSED" });
  return new TypeError("fetch failed", { cause });
}

class DoubleCommand {
  constructor(proc) {
    this.proc = proc;
    this.chunks = [];
    this.status = "RUNNING";
    const collect = (data) => this.chunks.push(data.toString("utf8").replace(/\r?\n/g, "\r\n"));
    proc.stdout.on("data", collect);
    proc.stderr.on("data", collect);
    this.done = new Promise((resolve) => proc.on("close", (code, signal) => resolve({ code, signal })));
  }

  async waitUntilComplete() {
    const { code } = await this.done;
    const output = this.chunks.join("");
    if (this.status === "KILLED") throw new CommandError("Command failed with exit code unknown", 1, output);
    this.status = code === 0 ? "FINISHED" : "ERROR";
    if (code === 0) return output;
    throw new CommandError(`Command failed with exit code ${code}`, code, output);
  }

  async kill() {
    this.status = "KILLED";
    try {
      process.kill(-this.proc.pid, "SIGKILL"); // the whole group: bash and what it started
    } catch { /* already gone */ }
  }
}

class DoubleClient {
  constructor(sdk, record) {
    this.sdk = sdk;
    this.record = record;
    this.disposed = false;
    this.commands = { runBackground: (command, opts) => this.runBackground(command, opts) };
  }

  async runBackground(command, opts = {}) {
    if (this.disposed) throw new Error("Failed to create shell: client disposed");
    const rec = this.sdk.records.get(this.record.id);
    if (!rec || rec.status !== "running") throw new Error(`Failed to create shell: sandbox ${this.record.id} is not running`);
    const env = opts.env ?? {};
    journal({ op: "run", id: rec.id, env_keys: Object.keys(env).sort(), name: opts.name ?? null });
    const proc = spawn("bash", ["-c", command], {
      cwd: rec.dir, detached: true, stdio: ["ignore", "pipe", "pipe"],
      // like a VM: nothing of the service's own environment (its API key above all) gets in
      env: { PATH: process.env.PATH, HOME: rec.dir, LANG: "C.UTF-8", ...env },
    });
    const cmd = new DoubleCommand(proc);
    rec.commands.add(cmd);
    cmd.done.then(() => rec.commands.delete(cmd));
    return cmd;
  }

  dispose() {
    this.disposed = true;
    journal({ op: "dispose", id: this.record.id });
  }
}

class DoubleSandbox {
  constructor(sdk, record, bootupType) {
    this.sdk = sdk;
    this.id = record.id;
    this.record = record;
    this.bootupType = bootupType;
    this.cluster = "double.invalid";
  }

  async connect() {
    this.sdk.gate(`connect ${this.id}`);
    if (this.record.template === "tpl-noconnect") throw new Error(`Failed to connect to sandbox ${this.id}: socket hang up`);
    journal({ op: "connect", id: this.id });
    return new DoubleClient(this.sdk, this.record);
  }
}

class DoubleSandboxes {
  constructor(sdk) {
    this.sdk = sdk;
  }

  get defaultTemplateId() {
    return "tpl-universal";
  }

  async create(opts = {}) {
    const sdk = this.sdk;
    const template = opts.id ?? this.defaultTemplateId;
    sdk.gate("Failed to fork sandbox");
    const slow = /^tpl-slow-(\d+)$/.exec(template);
    if (slow) await sleep(Number(slow[1]));
    if (template === "tpl-missing") throw new Error(`Failed to fork sandbox ${template}: Sandbox not found`);
    if (template === "tpl-ratelimited") {
      throw Object.assign(new Error("Failed to fork sandbox: 0 of 100 sandboxes remaining. Contact hello@codesandbox.io " +
        "to raise your rate limit."), { type: "rate-limit" });
    }
    if (template === "tpl-leaky") throw new Error(`Failed to create sandbox: token ${sdk.apiKey} is not valid here`);
    const tags = opts.tags ?? ["sdk"];
    const allTags = tags.includes("sdk") ? tags : [...tags, "sdk"];
    if (allTags.length > 10) throw new Error("Failed to fork sandbox: too many tags");
    const record = {
      id: `dbl${randomBytes(4).toString("hex")}`, template, tags: allTags, status: "running",
      dir: mkdtempSync(join(tmpdir(), "csb-double-")), createdAt: new Date(), commands: new Set(),
    };
    sdk.records.set(record.id, record);
    journal({
      op: "create", id: record.id, template, tags: allTags, privacy: opts.privacy ?? null, title: opts.title ?? null,
      vm_tier: opts.vmTier?.name ?? null, hibernation_timeout_s: opts.hibernationTimeoutSeconds ?? null,
    });
    if (template === "tpl-broken") throw new Error(`Failed to start VM ${record.id}: Bad gateway`);
    return new DoubleSandbox(sdk, record, "FORK");
  }

  async list(opts = {}) {
    this.sdk.gate("Failed to list sandboxes");
    const wanted = opts.tags ?? [];
    // "any of the tags", the loosest reading of the API's filter: the service must filter itself
    const found = [...this.sdk.records.values()]
      .filter((r) => !wanted.length || wanted.some((t) => r.tags.includes(t)))
      .slice(0, opts.limit ?? 50)
      .map((r) => ({ id: r.id, createdAt: r.createdAt, updatedAt: r.createdAt, privacy: "private", tags: r.tags }));
    journal({ op: "list", tags: wanted });
    return { sandboxes: found, hasMore: false, totalCount: found.length,
      pagination: { currentPage: 1, nextPage: null, pageSize: found.length } };
  }

  async get(id) {
    const record = this.#find("Failed to get sandbox", id);
    return { id: record.id, createdAt: record.createdAt, updatedAt: record.createdAt, privacy: "private", tags: record.tags };
  }

  #find(what, id) {
    this.sdk.gate(`${what} ${id}`);
    const record = this.sdk.records.get(id);
    if (!record) throw new Error(`${what} ${id}: Sandbox not found`);
    return record;
  }

  #stop(record) {
    for (const cmd of record.commands) cmd.kill();
  }

  async delete(id) {
    const record = this.#find("Failed to delete VM", id);
    this.#stop(record);
    this.sdk.records.delete(id);
    rmSync(record.dir, { recursive: true, force: true });
    journal({ op: "delete", id });
  }

  async shutdown(id) {
    const record = this.#find("Failed to shutdown VM", id);
    this.#stop(record);
    record.status = "shutdown";
    journal({ op: "shutdown", id });
  }

  async hibernate(id) {
    const record = this.#find("Failed to hibernate VM", id);
    this.#stop(record);
    record.status = "hibernated";
    journal({ op: "hibernate", id });
  }

  async resume(id) {
    const record = this.#find("Failed to start VM", id);
    record.status = "running";
    journal({ op: "resume", id });
    return new DoubleSandbox(this.sdk, record, "RESUME");
  }
}

class DoubleSdk {
  constructor(apiKey) {
    this.apiKey = apiKey;
    this.records = new Map();
    this.sandboxes = new DoubleSandboxes(this);
  }

  /** Fail the way the SDK does when the key is refused or the API cannot be reached. */
  gate(prefix) {
    if (this.apiKey.includes("offline")) throw networkError();
    if (this.apiKey.includes("revoked")) throw new Error(`${prefix}: Unauthorized`);
  }
}

// The double's "VMs" live in temp directories: they go when the process goes.
const allSdks = new Set();
process.on("exit", () => {
  for (const sdk of allSdks) for (const r of sdk.records.values()) rmSync(r.dir, { recursive: true, force: true });
});

/** Same signature as lib/sdk.js: the service passes its status-recording fetch, unused here. */
export function createSdk(apiKey, _opts = {}) {
  if (!apiKey) throw new Error("CSB_API_KEY is not set");
  const sdk = new DoubleSdk(apiKey);
  allSdks.add(sdk);
  return sdk;
}
