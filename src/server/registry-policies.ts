// The registry API's edge policies (`registry.policies`: CORS, rate limits): a route's compiled chain run on the
// registry's plain node:http requests through the hook the registry API leaves before its own auth.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HeaderBag, PolicyExchange, RouteChain } from "../policy/chain.ts";
import type { TrustedProxies } from "../policy/client-address.ts";
import { sendError } from "../proxy/errors.ts";
import { clientAddress, requestIdOf } from "../proxy/headers.ts";
import type { RegistryRequestHook } from "./registry-api.ts";

/** The hook for `chain`: answers preflights and 429s itself, else sets the CORS and RateLimit headers on `res`. */
export function registryPolicyHook(chain: RouteChain, trusted: TrustedProxies): RegistryRequestHook {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const ex: PolicyExchange = {
      req,
      client: clientAddress(req, trusted),
      subject: undefined,
      target: undefined,
      policyState: undefined,
      dropUpstreamHeader: () => undefined,
    };
    const answer = await chain.request?.(ex);
    const headers: HeaderBag = answer ? { ...answer.headers } : {};
    if (!answer) {
      chain.response?.(ex, 200, headers);
      for (const [name, value] of Object.entries(headers))
        if (value !== undefined) res.setHeader(name, value);
      return false;
    }
    if ("error" in answer) {
      chain.response?.(ex, answer.error === "unauthorized" ? 401 : 429, headers);
      const extra: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers))
        if (value !== undefined) extra[name] = String(value);
      sendError(res, answer.error, requestIdOf(req), { message: answer.message, headers: extra });
      return true;
    }
    chain.response?.(ex, answer.status, headers);
    res.writeHead(answer.status, { ...headers, "content-length": 0 });
    res.end();
    return true;
  };
}
