// What "this machine" means for the registry, and the advisory bind probe: is some process listening on a port?
import net from "node:net";
import { networkInterfaces } from "node:os";
import { hostKey } from "./allocate.ts";

// Reading the interfaces is a system call that cost ~1.5 ms here: once every few seconds is enough.
const INTERFACES_TTL_MS = 5_000;
let interfaces: { at: number; addresses: Set<string> } | undefined;

function ownAddresses(): Set<string> {
  const now = Date.now();
  if (!interfaces || now - interfaces.at > INTERFACES_TTL_MS) {
    const addresses = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) addresses.add(a.address.toLowerCase());
    interfaces = { at: now, addresses };
  }
  return interfaces.addresses;
}

/** A loopback name, a wildcard, or one of this machine's interface addresses. */
export function isLocalHost(host: string): boolean {
  const key = hostKey(host);
  if (key === "127.0.0.1" || key === "0.0.0.0" || key === "::") return true;
  return ownAddresses().has(key);
}

/** Whether two host names share a port space: the same host, or both this machine. */
export function sameHost(a: string, b: string): boolean {
  return hostKey(a) === hostKey(b) || (isLocalHost(a) && isLocalHost(b));
}

/**
 * Whether another process listens on `port` here: a listen on the wildcard address collides with a listener on
 * any address. Advisory only (the port may be taken between this probe and the service's bind, TOCTOU); the
 * service's own bind is the truth. Errors other than "in use" or "denied" count as free.
 */
export function portBound(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", (err: NodeJS.ErrnoException) =>
      resolve(err.code === "EADDRINUSE" || err.code === "EACCES"),
    );
    server.listen({ port, host: "0.0.0.0", exclusive: true }, () => server.close(() => resolve(false)));
  });
}
