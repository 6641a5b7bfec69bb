// The catalog of errors the gateway answers itself: each code's status and sentence, and the one JSON writer
// (for an HTTP response, or as raw bytes on a socket taken over by an upgrade request).
import { STATUS_CODES, type ServerResponse } from "node:http";
import type { HeaderBag } from "./phases.ts";

export const GATEWAY_ERRORS = {
  bad_request: { status: 400, message: "The request path is malformed or climbs above /." },
  unauthorized: { status: 401, message: "This endpoint needs the admin API key." },
  forbidden: {
    status: 403,
    message: "No admin API key is set, so this endpoint answers loopback clients only.",
  },
  no_route: { status: 404, message: "No route matches this request." },
  not_found: { status: 404, message: "No such allocation or service in the registry." },
  port_unavailable: { status: 409, message: "The required preferred port is taken." },
  range_exhausted: { status: 409, message: "No free port in the type's range, nor in its fallback." },
  // The rest of an over-large body is never read, so the connection cannot carry another request after it.
  payload_too_large: { status: 413, message: "The request body is larger than maxBodySize.", close: true },
  rate_limited: { status: 429, message: "Too many requests: a rate limit of this route is exceeded." },
  bad_gateway: { status: 502, message: "The upstream failed and retries are spent." },
  no_upstream: { status: 503, message: "No upstream is available in this pool." },
  upstream_timeout: { status: 504, message: "The upstream sent no response headers in time." },
  store_unavailable: { status: 503, message: "The registry store is unreachable; try again shortly." },
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

export interface ErrorBody {
  error: GatewayErrorCode;
  message: string;
  requestId: string;
}

/** The JSON body of an error answer. */
export function errorBody(code: GatewayErrorCode, requestId: string, message?: string): string {
  const body: ErrorBody = { error: code, message: message ?? GATEWAY_ERRORS[code].message, requestId };
  return JSON.stringify(body);
}

/** The headers of an error answer: `extra` (Retry-After, WWW-Authenticate…) plus the fixed ones, which win. */
export function errorHeaders(
  code: GatewayErrorCode,
  requestId: string,
  body: string,
  extra?: HeaderBag,
): HeaderBag {
  const entry: { status: number; close?: boolean } = GATEWAY_ERRORS[code];
  return {
    ...extra,
    ...(entry.close ? { connection: "close" } : {}),
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-request-id": requestId,
  };
}

/** An answer as raw HTTP/1.1 bytes, for a socket taken over by an upgrade request; the connection closes after. */
export function rawResponse(status: number, headers: HeaderBag, body: string): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name === "connection") continue;
    if (Array.isArray(value)) for (const v of value) head += `${name}: ${v}\r\n`;
    else head += `${name}: ${value}\r\n`;
  }
  return `${head}connection: close\r\n\r\n${body}`;
}

/** The same error as raw HTTP/1.1 bytes, for a socket taken over by an upgrade request. */
export function rawErrorResponse(
  code: GatewayErrorCode,
  requestId: string,
  message?: string,
  headers?: HeaderBag,
): string {
  const text = errorBody(code, requestId, message);
  return rawResponse(GATEWAY_ERRORS[code].status, errorHeaders(code, requestId, text, headers), text);
}

/** Writes a complete answer of the gateway's own; a response already begun is cut instead (see sendError). */
export function writeAnswer(res: ServerResponse, status: number, headers: HeaderBag, body: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Answers `{"error","message","requestId"}` with the code's status. Once a response has begun there is no way to
 * tell the client in-band, so the connection is cut instead: a truncated body must not look complete.
 */
export function sendError(
  res: ServerResponse,
  code: GatewayErrorCode,
  requestId: string,
  options: { message?: string; headers?: Record<string, string> } = {},
): void {
  const text = errorBody(code, requestId, options.message);
  writeAnswer(res, GATEWAY_ERRORS[code].status, errorHeaders(code, requestId, text, options.headers), text);
}
