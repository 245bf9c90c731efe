// Who may talk to node-csb. The service token (when set) is one gate; these hold with or without it,
// because a token-less service on loopback is otherwise reachable from any web page the user opens:
// a browser sends cross-origin "simple" POSTs (text/plain) without asking, and DNS rebinding makes
// a foreign name resolve to 127.0.0.1. So: the Host header must be a loopback name when the service
// listens on loopback; any request a browser marks (Origin, Sec-Fetch-Site) is refused; request
// bodies must be declared application/json (which a browser cannot send cross-origin unasked).
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { ServiceError } from "./errors.js";

/** True for addresses only this machine can reach. */
export function isLoopback(host) {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/** The host name of a Host header ("127.0.0.1:8787", "[::1]:80", "localhost") without its port. */
export function hostName(header) {
  const text = String(header ?? "").trim().toLowerCase();
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (v6) return v6[1];
  return text.replace(/:\d+$/, "");
}

const refuse = (message, code) => new ServiceError("config", message, { status: 403, code });

/** Throw unless ``req`` may be served; ``loopbackOnly``: the service listens on a loopback address. */
export function checkRequest(req, { loopbackOnly }) {
  if (loopbackOnly && !isLoopback(hostName(req.headers.host))) {
    throw refuse(`node-csb refused a request for host ${JSON.stringify(String(req.headers.host ?? ""))}: it ` +
      "answers only loopback names (localhost, 127.x, ::1)", "bad_host");
  }
  if (req.headers.origin !== undefined || req.headers["sec-fetch-site"] !== undefined) {
    throw refuse("node-csb refused a browser request (Origin / Sec-Fetch-Site present): it serves the farm only",
      "browser_origin");
  }
  const hasBody = Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
  const type = String(req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
  if ((req.method === "POST" || hasBody) && type !== "application/json") {
    throw new ServiceError("config", `node-csb accepts only application/json bodies, got ${JSON.stringify(type || "none")}`,
      { status: 415, code: "content_type" });
  }
}

const digest = (text) => createHash("sha256").update(String(text)).digest();

/** A bearer-token check in constant time; always true without a token. */
export function tokenCheck(token) {
  const want = token ? digest(token) : null;
  return (req) => {
    if (!want) return true;
    const header = req.headers.authorization ?? "";
    return timingSafeEqual(digest(header.startsWith("Bearer ") ? header.slice(7) : ""), want);
  };
}
