// What the SDK does on the wire inside one service request, observed without patching the SDK:
// every REST call goes through the `fetch` the SDK accepts (ClientOpts.fetch), and every agent
// websocket is opened with node:http, which reports each request on the public diagnostics
// channel "http.client.request.start". Both run inside the request's AsyncLocalStorage context,
// so each service request learns, for itself: the last HTTP status (the SDK's errors drop it), the
// Retry-After of a 429 (the SDK folds the reset header into its message), and how many attempts
// the SDK's internal retries made (startVm 3x, connect 3x, which the SDK offers no switch for).
import { subscribe } from "node:diagnostics_channel";
import { performance } from "node:perf_hooks";

// The rate-limit buckets the SDK knows (src/utils/rate-limit.ts); the exhausted one names the reset.
const RESET_HEADERS = [
  ["x-csb-rate-hourly-remaining", "x-csb-rate-hourly-reset"],
  ["x-csb-sandbox-hourly-remaining", "x-csb-sandbox-hourly-reset"],
];

/** Which SDK step a REST request is, for attempt counts and per-step timings; null = not counted. */
export function stepOf(method, path) {
  if (method === "POST" && /\/sandbox\/[^/]+\/fork$/.test(path)) return "fork";
  if (method === "POST" && /\/vm\/[^/]+\/start$/.test(path)) return "start_vm";
  return null;
}

/** Seconds to wait from a 429's headers: Retry-After (seconds or HTTP date), else the exhausted
 * bucket's reset time (an ISO date or Unix seconds); null when neither says. */
export function retryAfterSeconds(headers, now = Date.now()) {
  const fromTime = (text) => {
    const n = Number(text);
    if (text !== "" && Number.isFinite(n)) return n > 1e9 ? Math.max(n - now / 1000, 0) : Math.max(n, 0);
    const at = Date.parse(text);
    return Number.isNaN(at) ? null : Math.max((at - now) / 1000, 0);
  };
  const retry = headers.get("retry-after");
  if (retry !== null) {
    const n = Number(retry);
    if (retry.trim() !== "" && Number.isFinite(n)) return Math.max(n, 0);
    const at = Date.parse(retry);
    if (!Number.isNaN(at)) return Math.max((at - now) / 1000, 0);
  }
  for (const [remaining, reset] of RESET_HEADERS) {
    const left = headers.get(remaining);
    const when = headers.get(reset);
    if (left !== null && Number(left) <= 0 && when) return fromTime(when.trim());
  }
  return null;
}

/** A fresh per-request record: attempts per SDK step, wire timings, last status and Retry-After. */
export function newRecord() {
  return { lastStatus: undefined, retryAfter: null, attempts: { fork: 0, start_vm: 0, connect: 0 }, wireMs: {} };
}

/** The observing fetch for the SDK, and the websocket-attempt subscription; ``als`` holds records. */
export function createObserver(als) {
  const observingFetch = async (request) => {
    const rec = als.getStore()?.record;
    const path = new URL(request.url).pathname;
    const step = stepOf(request.method, path);
    if (rec && step) rec.attempts[step] += 1;
    const start = performance.now();
    const response = await fetch(request);
    if (rec) {
      rec.lastStatus = response.status;
      if (response.status === 429) rec.retryAfter = retryAfterSeconds(response.headers);
      if (step) rec.wireMs[step] = Math.round((performance.now() - start) * 100) / 100;
    }
    return response;
  };
  const onRequest = ({ request }) => {
    const rec = als.getStore()?.record;
    if (rec && String(request.getHeader("upgrade")).toLowerCase() === "websocket") rec.attempts.connect += 1;
  };
  subscribe("http.client.request.start", onRequest);
  return { fetch: observingFetch };
}
