// Every endpoint of the service, in-process, with @codesandbox/sdk replaced at the SDK-object seam by
// test/sdk-double.js (which runs commands in a real local bash).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApp, eventually, KEY, TOKEN } from "./helpers.js";
import { labelsToTags, pythonCommand, FARM_TAG } from "../lib/app.js";

const journalDir = mkdtempSync(join(tmpdir(), "node-csb-test-"));
const journalPath = join(journalDir, "journal.jsonl");
process.env.CSB_DOUBLE_JOURNAL = journalPath;
const journal = () => (existsSync(journalPath) ? readFileSync(journalPath, "utf8").trim().split("\n").map(JSON.parse) : []);
const LABELS = { farm: "sandbox-farm", "farm-run": "20260101-000000-abc123", "farm-provider": "codesandbox",
  "farm-snippet": "hello", "farm-rep": "3" };

let svc;
before(async () => { svc = await startApp(); });
after(async () => {
  await svc.close();
  rmSync(journalDir, { recursive: true, force: true });
});

describe("auth", () => {
  test("health needs no token and tells nothing secret", async () => {
    const r = await svc.call("GET", "/health", undefined, null);
    assert.equal(r.status, 200);
    assert.equal(r.json.ok, true);
    assert.equal(r.json.key_set, true);
    assert.equal(r.json.token_required, true);
    assert.equal(r.json.sdk.double, true);
    assert.ok(!r.text.includes(KEY) && !r.text.includes(TOKEN));
  });

  for (const [method, path, body] of [["GET", "/key-check"], ["POST", "/sandboxes", {}],
    ["POST", "/sandboxes/list", {}], ["POST", "/sandboxes/abc/run", { code: "print(1)" }],
    ["DELETE", "/sandboxes/abc"]]) {
    test(`${method} ${path} refuses a missing or wrong token`, async () => {
      for (const token of [null, "wrong-token", TOKEN + "x"]) {
        const r = await svc.call(method, path, body, token);
        assert.equal(r.status, 401);
        assert.equal(r.json.error.class, "config");
        assert.equal(r.json.error.code, "service_token");
        assert.match(r.json.error.message, /CSB_SERVICE_TOKEN/);
      }
    });
  }

  test("without a token configured, calls are open (loopback use)", async () => {
    const open = await startApp({ token: "" });
    try {
      const r = await open.call("GET", "/key-check", undefined, null);
      assert.equal(r.status, 200);
      assert.equal((await open.call("GET", "/health", undefined, null)).json.token_required, false);
    } finally {
      await open.close();
    }
  });
});

describe("sandbox lifecycle", () => {
  test("create tags the sandbox, run returns merged output and exit codes, destroy deletes it", async () => {
    const created = await svc.call("POST", "/sandboxes", { labels: LABELS, vm_tier: "nano", hibernation_timeout_s: 300 });
    assert.equal(created.status, 201, created.text);
    const { id } = created.json;
    assert.equal(created.json.bootup_type, "FORK");
    assert.ok(created.json.timings_ms.create >= 0 && created.json.timings_ms.connect >= 0);
    const made = journal().find((e) => e.op === "create" && e.id === id);
    assert.deepEqual(made.tags.sort(), ["farm-provider:codesandbox", "farm-rep:3", "farm-run:20260101-000000-abc123",
      "farm-snippet:hello", FARM_TAG, "sdk"].sort());
    assert.equal(made.privacy, "private");
    assert.equal(made.vm_tier, "Nano");
    assert.equal(made.hibernation_timeout_s, 300);

    const ok = await svc.call("POST", `/sandboxes/${id}/run`, {
      code: "import os, sys\nprint('out', os.environ['FARM_X'], repr(os.environ.get('CSB_API_KEY')))\n" +
        "print('err line', file=sys.stderr)\n", env: { FARM_X: "it's \"quoted\"" }, timeout_s: 30 });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.exit_code, 0);
    assert.equal(ok.json.merged_output, true);
    assert.match(ok.json.output, /out it's "quoted" None\n/);   // env reached it; the API key did not
    assert.match(ok.json.output, /err line\n/);                // stderr merged into the same stream
    assert.ok(!ok.json.output.includes("\r"), "PTY line ends are normalised");
    assert.ok(ok.json.timings_ms.run > 0);
    assert.deepEqual(journal().filter((e) => e.op === "run" && e.id === id).at(-1).env_keys, ["FARM_X"]);

    const failed = await svc.call("POST", `/sandboxes/${id}/run`, { code: "print('before'); raise SystemExit(7)" });
    assert.equal(failed.status, 200);
    assert.equal(failed.json.exit_code, 7);
    assert.match(failed.json.output, /before/);

    const shell = await svc.call("POST", `/sandboxes/${id}/run`, { command: "echo from-shell; pwd" });
    assert.equal(shell.json.exit_code, 0);
    assert.match(shell.json.output, /from-shell\n/);

    const gone = await svc.call("DELETE", `/sandboxes/${id}`);
    assert.equal(gone.status, 200, gone.text);
    assert.equal(gone.json.mode, "delete");
    assert.ok("dispose" in gone.json.timings_ms && "delete" in gone.json.timings_ms);
    assert.ok(journal().some((e) => e.op === "dispose" && e.id === id));
    const again = await svc.call("DELETE", `/sandboxes/${id}`);
    assert.equal(again.status, 404);
    assert.equal(again.json.error.class, "not_found");
    const after = await svc.call("POST", `/sandboxes/${id}/run`, { code: "print(1)" });
    assert.equal(after.json.error.class, "not_found");
  });

  test("a run over its deadline is killed and answered as a timeout", async () => {
    const { json: { id } } = await svc.call("POST", "/sandboxes", { labels: LABELS });
    const start = Date.now();
    const r = await svc.call("POST", `/sandboxes/${id}/run`, { code: "import time; time.sleep(30)", timeout_s: 0.5 });
    assert.equal(r.status, 504);
    assert.equal(r.json.error.class, "timeout");
    assert.match(r.json.error.message, /still running after 0.5 s/);
    assert.ok(Date.now() - start < 5000);
    const next = await svc.call("POST", `/sandboxes/${id}/run`, { code: "print('still usable')" });
    assert.match(next.json.output, /still usable/);
    await svc.call("DELETE", `/sandboxes/${id}`);
  });

  test("shutdown and hibernate are destroy modes; a bad mode is refused", async () => {
    for (const mode of ["shutdown", "hibernate"]) {
      const { json: { id } } = await svc.call("POST", "/sandboxes", { labels: LABELS });
      const r = await svc.call("DELETE", `/sandboxes/${id}?mode=${mode}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(journal().some((e) => e.op === mode && e.id === id));
      await svc.call("DELETE", `/sandboxes/${id}`);
    }
    const bad = await svc.call("DELETE", "/sandboxes/abc?mode=explode");
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /mode must be one of delete, shutdown, hibernate/);
  });

  test("hibernate then resume (the resume scenario): files kept, bootup_type from the SDK, reconnected", async () => {
    const { json: { id } } = await svc.call("POST", "/sandboxes", { labels: LABELS });
    await svc.call("POST", `/sandboxes/${id}/run`, { code: "open('kept.txt', 'w').write('yes')" });
    const paused = await svc.call("POST", `/sandboxes/${id}/hibernate`, {});
    assert.equal(paused.status, 200, paused.text);
    assert.ok(paused.json.timings_ms.hibernate >= 0);
    assert.ok(!svc.app.open.has(id)); // disconnected before hibernating
    const resumed = await svc.call("POST", `/sandboxes/${id}/resume`, { timeout_s: 30 });
    assert.equal(resumed.status, 200, resumed.text);
    assert.equal(resumed.json.bootup_type, "RESUME");
    assert.ok(resumed.json.timings_ms.resume >= 0 && resumed.json.timings_ms.connect >= 0);
    assert.ok(svc.app.open.has(id));
    const r = await svc.call("POST", `/sandboxes/${id}/run`, { code: "print(open('kept.txt').read())" });
    assert.match(r.json.output, /yes/);
    assert.ok(journal().some((e) => e.op === "hibernate" && e.id === id));
    await svc.call("DELETE", `/sandboxes/${id}`);
    const gone = await svc.call("POST", `/sandboxes/${id}/resume`, {});
    assert.equal(gone.json.error.class, "not_found");
  });

  test("a sandbox this process did not open is resumed and reconnected, and the answer says so", async () => {
    const { json: { id } } = await svc.call("POST", "/sandboxes", { labels: LABELS });
    svc.app.open.delete(id); // as if the service had restarted
    const r = await svc.call("POST", `/sandboxes/${id}/run`, { code: "print('back')" });
    assert.equal(r.json.exit_code, 0, r.text);
    assert.ok(r.json.timings_ms.reconnect >= 0);
    assert.ok(journal().some((e) => e.op === "resume" && e.id === id));
    await svc.call("DELETE", `/sandboxes/${id}`);
  });
});

describe("list (farm sweep)", () => {
  test("lists only sandboxes carrying every requested tag, always farm-tagged", async () => {
    const mine = await svc.call("POST", "/sandboxes", { labels: { ...LABELS, "farm-run": "sweep-a" } });
    const other = await svc.call("POST", "/sandboxes", { labels: { ...LABELS, "farm-run": "sweep-b" } });
    const r = await svc.call("POST", "/sandboxes/list", { labels: { "farm-run": "sweep-a" } });
    assert.equal(r.status, 200, r.text);
    // the double filters by "any tag" (farm:sandbox-farm matches both): the service must narrow it
    assert.deepEqual(r.json.sandboxes.map((s) => s.id), [mine.json.id]);
    assert.ok(journal().filter((e) => e.op === "list").at(-1).tags.includes(FARM_TAG));
    const all = await svc.call("POST", "/sandboxes/list", {});
    const ids = all.json.sandboxes.map((s) => s.id);
    assert.ok(ids.includes(mine.json.id) && ids.includes(other.json.id));
    await svc.call("DELETE", `/sandboxes/${mine.json.id}`);
    await svc.call("DELETE", `/sandboxes/${other.json.id}`);
    const empty = await svc.call("POST", "/sandboxes/list", { labels: { "farm-run": "sweep-a" } });
    assert.deepEqual(empty.json.sandboxes, []);
  });
});

describe("error mapping", () => {
  const cases = [
    ["tpl-missing", 404, "not_found", /Sandbox not found/],
    ["tpl-ratelimited", 429, "rate_limited", /rate limit/],
    ["tpl-broken", 502, "provider_error", /Bad gateway/],
    ["tpl-noconnect", 502, "provider_error", /socket hang up/],
  ];
  for (const [template, status, cls, pattern] of cases) {
    test(`${template} -> ${status} ${cls}`, async () => {
      const r = await svc.call("POST", "/sandboxes", { template, labels: { ...LABELS, "farm-run": template } });
      assert.equal(r.status, status, r.text);
      assert.equal(r.json.error.class, cls);
      assert.match(r.json.error.message, pattern);
      assert.ok(!r.json.error.message.includes("\n"));
    });
  }

  test("a fork that failed to start is a real leftover that list finds; a failed connect is cleaned up", async () => {
    const broken = await svc.call("POST", "/sandboxes/list", { labels: { "farm-run": "tpl-broken" } });
    assert.equal(broken.json.sandboxes.length, 1);
    await svc.call("DELETE", `/sandboxes/${broken.json.sandboxes[0].id}`);
    const noconnect = await svc.call("POST", "/sandboxes/list", { labels: { "farm-run": "tpl-noconnect" } });
    assert.deepEqual(noconnect.json.sandboxes, []);
  });

  test("a create past its deadline is a timeout, and the late sandbox is deleted when it arrives", async () => {
    const labels = { ...LABELS, "farm-run": "late-one" };
    const r = await svc.call("POST", "/sandboxes", { template: "tpl-slow-400", labels, timeout_s: 0.1 });
    assert.equal(r.status, 504);
    assert.equal(r.json.error.class, "timeout");
    const made = await eventually(() => journal().find((e) => e.op === "create" && e.tags.includes("farm-run:late-one")));
    await eventually(() => journal().some((e) => e.op === "delete" && e.id === made.id));
    assert.ok(svc.lines.some((l) => l.includes(`deleted sandbox ${made.id} (created after its deadline)`)));
  });

  test("bad input is a one-line 400 naming the field", async () => {
    const cases = [
      [{ labels: "nope" }, /labels must be an object/],
      [{ vm_tier: "Gigantic" }, /unknown vm_tier "Gigantic"; known: Pico, Nano/],
      [{ privacy: "secret" }, /privacy must be one of/],
      [{ template: "../etc" }, /template must be/],
      [{ hibernation_timeout_s: 5 }, /hibernation_timeout_s must be a number of seconds between 60/],
      [{ labels: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, "v"])) }, /at most 8 labels/],
    ];
    for (const [body, pattern] of cases) {
      const r = await svc.call("POST", "/sandboxes", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.class, "config");
      assert.match(r.json.error.message, pattern);
    }
    const runs = [
      [{}, /needs "code"/], [{ code: "x".repeat(100 * 1024) }, /at most/], [{ code: "1", env: { "BAD-NAME": "x" } }, /not an environment variable name/],
      [{ code: "1", env: { A: 1 } }, /env: A must be a string/], [{ code: "1", timeout_s: -1 }, /timeout_s must be/],
      [{ code: "1", python: "python3; rm -rf /" }, /python must be a program name/],
    ];
    for (const [body, pattern] of runs) {
      const r = await svc.call("POST", "/sandboxes/abc/run", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.json.error.message, pattern);
    }
    const raw = await fetch(`${svc.url}/sandboxes`, { method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: "{oops" });
    assert.equal(raw.status, 400);
    assert.match((await raw.json()).error.message, /not valid JSON/);
    const nowhere = await svc.call("GET", "/nowhere");
    assert.equal(nowhere.status, 404);
    assert.match(nowhere.json.error.message, /no endpoint GET \/nowhere; endpoints: GET \/health/);
  });
});

describe("key check", () => {
  test("an accepted key", async () => {
    const r = await svc.call("GET", "/key-check");
    assert.equal(r.status, 200);
    assert.equal(r.json.key, "accepted");
  });

  test("a revoked key is auth with the fix; unreachable API is network; a missing key says so", async () => {
    const revoked = await startApp({ apiKey: "csb_revoked_key_abcdef" });
    const offline = await startApp({ apiKey: "csb_offline_key_abcdef" });
    const missing = await startApp({ apiKey: "" });
    try {
      const a = await revoked.call("GET", "/key-check");
      assert.equal(a.status, 403);
      assert.equal(a.json.error.class, "auth");
      assert.match(a.json.error.message, /expired or revoked: create a new key at .* set CSB_API_KEY/);
      const b = await offline.call("GET", "/key-check");
      assert.equal(b.status, 502);
      assert.equal(b.json.error.class, "network");
      assert.match(b.json.error.message, /could not reach the CodeSandbox API \(ECONNREFUSED\).*key itself was not checked/);
      const c = await missing.call("GET", "/key-check");
      assert.equal(c.json.error.class, "auth");
      assert.equal(c.json.error.code, "key_missing");
      assert.match(c.json.error.message, /CSB_API_KEY is not set: set it in node-csb's environment/);
      assert.equal((await missing.call("GET", "/health")).json.key_set, false);
      const create = await revoked.call("POST", "/sandboxes", { labels: LABELS });
      assert.equal(create.json.error.class, "auth");
    } finally {
      await Promise.all([revoked.close(), offline.close(), missing.close()]);
    }
  });
});

describe("secrets", () => {
  test("the API key and token never appear in answers or logs, even when the SDK quotes them", async () => {
    const r = await svc.call("POST", "/sandboxes", { template: "tpl-leaky", labels: LABELS });
    assert.equal(r.status, 502);
    assert.match(r.json.error.message, /token \*\*\* is not valid/);
    assert.ok(!r.text.includes(KEY));
    const logs = svc.lines.join("\n");
    assert.ok(svc.lines.length > 10);
    assert.ok(!logs.includes(KEY) && !logs.includes(TOKEN));
  });
});

describe("helpers", () => {
  test("labels become sanitised key:value tags", () => {
    assert.deepEqual(labelsToTags({ "farm-run": "a b,c", n: 2 }), [FARM_TAG, "farm-run:a_b_c", "n:2"]);
    assert.deepEqual(labelsToTags(undefined), [FARM_TAG]);
  });

  test("python code survives quoting through base64", () => {
    const cmd = pythonCommand("python3", "print('it''s', \"$HOME\")\n");
    assert.match(cmd, /^python3 -c "\$\(echo [A-Za-z0-9+/=]+ \| base64 -d\)"$/);
  });
});
