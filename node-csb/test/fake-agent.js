// The sandbox agent ("pitcher") side of the fake CodeSandbox: what the SDK's connect() joins and
// its commands run over. msgpack messages on a websocket: requests {id, method, params} answered
// with {id, result} or {id, error}; notifications {method, params}. Only what the SDK uses on the
// farm's path: client/join, setup/get, port/list, shell/create|rename|terminate, and the
// shell/out and shell/exit notifications. Commands run in a local bash inside the sandbox's folder.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { encode, decode } from "./wire.js";

/** Kill a shell's whole process group (bash and what it started). */
export function killShell(child) {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch { /* already exited */ }
}

/**
 * Serve one agent connection ``ws`` for sandbox ``box`` ({dir, sockets, shells}); ``takeFailure("run")``
 * returns an injected failure for the next shell/create, ``nextId()`` a fresh number.
 */
export function serveAgent(box, ws, { takeFailure, nextId }) {
  box.sockets.add(ws);
  ws.onClose(() => box.sockets.delete(ws));
  const notify = (method, params) => ws.send(encode({ method, params }));
  // Output is held until the SDK renames the shell: it sends shell/rename right before it builds the
  // Command that listens for output, so nothing reaches it before it can hear.
  const held = new Map();
  const emitter = (shellId) => (method, params) =>
    (held.has(shellId) ? held.get(shellId).push([method, params]) : notify(method, params));

  function createShell(msg, params) {
    const failure = takeFailure("run");
    if (failure) return ws.send(encode({ id: msg.id, error: { code: failure.status, message: "fake failure" } }));
    const shellId = `sh${nextId()}`;
    const child = spawn("bash", ["-c", params.command], { cwd: box.dir, detached: true,
      env: { PATH: process.env.PATH, HOME: join(box.dir, "home"), LANG: "C.UTF-8" } });
    box.shells.set(shellId, child);
    held.set(shellId, []);
    const emit = emitter(shellId);
    child.stdout.on("data", (d) => emit("shell/out", { shellId, out: d.toString("utf8") }));
    child.stderr.on("data", (d) => emit("shell/out", { shellId, out: d.toString("utf8") }));
    child.on("close", (code) => {
      box.shells.delete(shellId);
      emit("shell/exit", { shellId, exitCode: code ?? 1 });
    });
    return ws.send(encode({ id: msg.id, result: { shellId, name: "", status: "RUNNING", buffer: [],
      shellType: params.type, isSystemShell: true } }));
  }

  ws.onMessage((payload, isText) => {
    if (isText) return notify("system/pong", {}); // the SDK's heartbeat is an empty text frame
    const msg = decode(payload);
    const reply = (result) => ws.send(encode({ id: msg.id, result }));
    const p = msg.params ?? {};
    switch (msg.method) {
      case "client/join": return reply({ client: { username: "fake" }, reconnectToken: "fake-reconnect" });
      case "setup/get": return reply({ state: "FINISHED", currentStepIndex: 0,
        steps: [{ name: "fake", command: "true", shellId: null, finishStatus: "SUCCEEDED" }] });
      case "port/list": return reply({ list: [] });
      case "shell/create": return createShell(msg, p);
      case "shell/rename": {
        reply(null);
        for (const [method, params] of held.get(p.shellId) ?? []) notify(method, params);
        return held.delete(p.shellId);
      }
      case "shell/terminate": {
        const child = box.shells.get(p.shellId);
        if (child) killShell(child);
        return reply({ shellId: p.shellId });
      }
      default: return ws.send(encode({ id: msg.id, error: { code: -32601, message: `fake agent has no ${msg.method}` } }));
    }
  });
}
