// Error classes shared with the Python side (providers/base.py ERROR_CLASSES), and the mapping from
// what @codesandbox/sdk throws to them. The SDK keeps no status code on its errors, so the service
// records the HTTP status of the SDK's last API answer (see lib/sdk.js) and classifies by that first;
// the message patterns are the fallback the SDK's own handleResponse() produces.

export const ERROR_CLASSES = Object.freeze([
  "auth", "rate_limited", "not_found", "timeout", "provider_error", "network", "snippet_failed", "config",
]);

// The service's own HTTP status for each class. 401 is kept for a wrong *service* token, so a
// rejected CodeSandbox key (403 here) can never be mistaken for it.
export const HTTP_STATUS = Object.freeze({
  auth: 403, rate_limited: 429, not_found: 404, timeout: 504, provider_error: 502, network: 502,
  snippet_failed: 422, config: 400,
});

export const KEY_FIX = "create a new key at https://codesandbox.io/t/api, set CSB_API_KEY in node-csb's " +
  "environment and restart node-csb";

/** An error the service answers with: a class, a one-line message, and optionally a code. */
export class ServiceError extends Error {
  constructor(errorClass, message, { status, code, upstreamStatus, retryAfter } = {}) {
    if (!ERROR_CLASSES.includes(errorClass)) throw new TypeError(`unknown error class ${errorClass}`);
    super(message);
    this.errorClass = errorClass;
    this.status = status ?? HTTP_STATUS[errorClass];
    this.code = code;
    this.upstreamStatus = upstreamStatus;
    this.retryAfter = retryAfter ?? null; // seconds CodeSandbox asked us to wait (429), passed on to the farm
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
  "EPIPE", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_SOCKET", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT",
  "CERT_HAS_EXPIRED", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "DEPTH_ZERO_SELF_SIGNED_CERT",
]);

function networkCode(err) {
  // undici wraps the socket error: TypeError("fetch failed", { cause: { code } })
  for (let e = err, depth = 0; e && depth < 4; e = e.cause, depth++) {
    if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) return e.code;
  }
  if (err instanceof TypeError && /fetch failed/i.test(err.message)) return "fetch failed";
  return null;
}

function classOfStatus(status) {
  if (status === 401 || status === 403) return "auth";
  if (status === 404) return "not_found";
  if (status === 429) return "rate_limited";
  if (status === 408 || status === 504) return "timeout";
  return "provider_error";
}

/** Map anything the SDK threw to a ServiceError; ``status`` is the last HTTP status the SDK saw and
 * ``retryAfter`` the wait a 429 asked for (from its headers, which the SDK's error drops). */
export function classify(err, { what, status, retryAfter } = {}) {
  if (err instanceof ServiceError) return err;
  const raw = String(err?.message ?? err).split("\n")[0].slice(0, 300);
  // the SDK's own messages already say what failed ("Failed to fork sandbox x: ...")
  const prefix = what && !/^Failed to /.test(raw) ? `${what}: ` : "";
  const net = networkCode(err);
  if (net) {
    return new ServiceError("network", `${prefix}could not reach the CodeSandbox API (${net}): check ` +
      "node-csb's network, proxy or CSB_BASE_URL; nothing was changed");
  }
  if (/CSB_API_KEY is not set/.test(raw)) {
    return new ServiceError("auth", `${prefix}CSB_API_KEY is not set: set it in node-csb's environment ` +
      "and restart node-csb", { code: "key_missing" });
  }
  let cls = null;
  if (err?.type === "rate-limit") cls = "rate_limited";
  else if (status && status >= 400) cls = classOfStatus(status);
  else if (/: Unauthorized\b|\b(unauthori[sz]ed|forbidden|invalid (api )?(key|token))\b/i.test(raw)) cls = "auth";
  else if (/: Sandbox not found\b|\bnot found\b/i.test(raw)) cls = "not_found";
  else if (/\btimed? ?out\b/i.test(raw)) cls = "timeout";
  else cls = "provider_error";
  if (cls === "auth") {
    const code = status ? ` (HTTP ${status})` : "";
    return new ServiceError("auth", `${prefix}CodeSandbox rejected the API key${code}: it is expired, ` +
      `revoked or lacks access: ${KEY_FIX}`, { code: "key_rejected", upstreamStatus: status });
  }
  return new ServiceError(cls, `${prefix}${raw}`,
    { upstreamStatus: status, retryAfter: cls === "rate_limited" ? retryAfter : null });
}

/** Replace every occurrence of each secret with ***: no key ever leaves the service. */
export function scrub(text, secrets) {
  let out = String(text);
  for (const secret of secrets) {
    if (secret && secret.length >= 4) out = out.split(secret).join("***");
  }
  return out;
}
