// The HTTP client of the registry API (global fetch), for the `gateway ports` commands: one method per endpoint.

// The wire shapes are the registry's own (type-only: the CLI loads none of the server).
import type { AllocateRequest, AllocationView as Allocation } from "../registry/registry.ts";

export type { AllocateRequest, Allocation };

export interface TypeInfo {
  range: string;
  fallback: string | null;
  capacity: number;
  allocated: number;
  free: number;
}

export interface Stats {
  total: number;
  active: number;
  expired: number;
  by_type: Record<string, { active: number; expired: number; capacity: number; utilization: number | null }>;
}

export interface ListQuery {
  name?: string;
  type?: string;
  port?: number;
  host?: string;
  status?: string;
}

/** The registry answered with an error: `status` and `code` are its, `message` is its sentence. */
export class RegistryError extends Error {
  override name = "RegistryError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** No answer at all (connection refused, timeout): the registry may be back later, unlike a refusal. */
export class RegistryUnreachable extends Error {
  override name = "RegistryUnreachable";
}

export interface ClientOptions {
  /** The gateway's base URL (admin listener, or the main one). */
  url: string;
  key?: string;
  /** Per request; a hung gateway must not hang a heartbeat loop. */
  timeoutMs?: number;
}

/** One method per endpoint; each resolves with the answer's whole body, which `--json` prints as it came. */
export class RegistryClient {
  private readonly base: string;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, "");
  }

  allocate(body: AllocateRequest): Promise<{ allocation: Allocation }> {
    return this.call("POST", "/registry/allocations", body);
  }

  heartbeat(id: string): Promise<{ allocation: Allocation }> {
    return this.call("POST", `/registry/allocations/${enc(id)}/heartbeat`);
  }

  release(id: string): Promise<{ allocation: Allocation }> {
    return this.call("DELETE", `/registry/allocations/${enc(id)}`);
  }

  list(query: ListQuery = {}): Promise<{ allocations: Allocation[] }> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") qs.set(k, String(v));
    const q = qs.toString();
    return this.call("GET", `/registry/allocations${q ? `?${q}` : ""}`);
  }

  services(): Promise<{ services: Record<string, Allocation[]> }> {
    return this.call("GET", "/registry/services");
  }

  service(name: string): Promise<{ service_name: string; instances: Allocation[] }> {
    return this.call("GET", `/registry/services/${enc(name)}`);
  }

  types(): Promise<{ types: Record<string, TypeInfo> }> {
    return this.call("GET", "/registry/types");
  }

  stats(): Promise<Stats> {
    return this.call("GET", "/registry/stats");
  }

  cleanup(): Promise<{ removed: number }> {
    return this.call("POST", "/registry/cleanup");
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.options.key) headers["x-api-key"] = this.options.key;
    if (body !== undefined) headers["content-type"] = "application/json";
    const url = `${this.base}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new RegistryUnreachable(`cannot reach ${url}: ${why}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new RegistryUnreachable(`${url}: the answer broke off: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = isRecord(json) ? json : {};
      const code = typeof e.error === "string" ? e.error : `http_${res.status}`;
      const message =
        typeof e.message === "string"
          ? e.message
          : `${method} ${url} answered ${res.status}: ${text.slice(0, 200)}`;
      throw new RegistryError(res.status, code, message);
    }
    if (json === undefined) throw new RegistryError(res.status, "bad_answer", `${method} ${url}: not JSON`);
    return json as T;
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
