// Opening a listener: the one-line error an operator reads when a port cannot be had, and the port one got.
import type http from "node:http";
import { once } from "node:events";
import type { ListenAddress } from "../config/types.ts";

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied",
  EADDRNOTAVAIL: "address not available on this machine",
};

/** A listener that could not be opened: the CLI prints its message as one line, without a stack. */
export class ListenError extends Error {
  override name = "ListenError";
  constructor(
    readonly address: string,
    readonly code: string | undefined,
    detail: string,
  ) {
    super(`cannot listen on ${address}: ${detail}`);
  }
}

export async function listen(server: http.Server, addr: ListenAddress): Promise<void> {
  server.listen(addr.port, addr.host);
  try {
    await once(server, "listening");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const host = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
    const detail = (e.code && LISTEN_ERRORS[e.code]) ?? e.message;
    throw new ListenError(`${host}:${addr.port}`, e.code, detail);
  }
}

export function portOf(server: http.Server): number {
  const a = server.address();
  return typeof a === "object" && a ? a.port : 0;
}
