// What node-csb accepts from the farm: labels as tags, Python as one shell command, env, seconds.
// Each check fails with one line naming the field (class "config").
import { ServiceError } from "./errors.js";

export const MAX_CODE = 90 * 1024;       // base64 grows it by 4/3; one shell argument must stay < 128 KiB
const MAX_OUTPUT = 256 * 1024;    // the tail kept per run; the farm keeps less still
export const ID = /^[A-Za-z0-9_-]{1,64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PROGRAM = /^[A-Za-z0-9_./+-]{1,200}$/;
const TAG_UNSAFE = /[^A-Za-z0-9._:-]/g;
export const FARM_TAG = "farm:sandbox-farm";
export const PRIVACY = ["public", "unlisted", "private", "public-hosts"];
export const DESTROY_MODES = ["delete", "shutdown", "hibernate"];

export const bad = (message) => new ServiceError("config", message);

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

export function checkEnv(env) {
  if (env === undefined) return {};
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw bad("env must be an object of strings");
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) throw bad(`env: ${JSON.stringify(name)} is not an environment variable name`);
    if (typeof value !== "string") throw bad(`env: ${name} must be a string`);
  }
  return env;
}

export function seconds(value, name, { min = 0.001, max = 86400, fallback }) {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw bad(`${name} must be a number of seconds between ${min} and ${max}`);
  }
  return value;
}

export class LostConnection extends Error {
  constructor(state) {
    super(`connection ${state}`);
    this.state = state;
  }
}

/** A promise that rejects when ``client`` (an SDK SandboxClient) loses its agent connection. */
export function connectionLost(client) {
  let stop = () => {};
  const promise = new Promise((_, reject) => {
    const dead = (state) => state === "DISCONNECTED" || state === "HIBERNATED";
    if (dead(client.state)) return reject(new LostConnection(client.state));
    const sub = client.onStateChange?.((state) => { if (dead(state)) reject(new LostConnection(state)); });
    stop = () => sub?.dispose?.();
  });
  promise.catch(() => {});
  return { promise, stop: () => stop() };
}

export function tail(text) {
  const clean = String(text ?? "").replace(/\r\n/g, "\n"); // commands run on a PTY, which writes CRLF
  return clean.length > MAX_OUTPUT ? clean.slice(-MAX_OUTPUT) : clean;
}
