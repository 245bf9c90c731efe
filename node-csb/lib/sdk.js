// The real SDK factory. Any module that exports the same four names can replace it through
// CSB_SDK_MODULE (the test double in test/sdk-double.js does): createSdk, VMTier, CommandError, describe.
import { readFileSync } from "node:fs";
import { CodeSandbox, CommandError, VMTier } from "@codesandbox/sdk";

export { CommandError, VMTier };

const pkg = JSON.parse(readFileSync(new URL("../node_modules/@codesandbox/sdk/package.json", import.meta.url)));

/** Name and version of the SDK behind the service, for health and the run manifest. */
export const describe = Object.freeze({ name: pkg.name, version: pkg.version, double: false });

/**
 * Build the SDK client. ``fetch`` (optional) is used for every API call: the service passes one that
 * records each answer's HTTP status, because the SDK's errors do not keep it.
 */
export function createSdk(apiKey, { fetch } = {}) {
  const opts = {};
  if (fetch) {
    // A custom fetch replaces the SDK's own wrapper, so keep the User-Agent it would have sent.
    opts.fetch = (request) => {
      const headers = new Headers(request.headers);
      headers.set("User-Agent", `codesandbox-sdk/${pkg.version} sandbox-farm-node-csb`);
      return fetch(new Request(request, { headers }));
    };
  }
  return new CodeSandbox(apiKey, opts);
}
