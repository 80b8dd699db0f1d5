import type { Attributes } from "@opentelemetry/api";
import { Code } from "../code.js";

/** The instrumentation scope, otelttrpc's own, so spans line up with Go services in one trace. */
export const INSTRUMENTATION_NAME = "github.com/containerd/otelttrpc";

/** otelttrpc's attribute for the numeric status code of a call. */
export const STATUS_CODE_ATTRIBUTE = "rpc.ttrpc.status_code";

/**
 * A span name and its attributes from `/service/Method`, as otelttrpc's
 * `ParseFullMethod`: the name is the method without the leading slash.
 */
export function spanInfo(fullMethod: string): SpanInfo {
  let info = cache.get(fullMethod);
  if (info === undefined) {
    info = parse(fullMethod);
    // Methods are few (a server only traces registered ones); the bound is for a client fed arbitrary names.
    if (cache.size >= 1024) cache.clear();
    cache.set(fullMethod, info);
  }
  return info;
}

interface SpanInfo {
  readonly name: string;
  readonly attributes: Readonly<Attributes>;
}

const cache = new Map<string, SpanInfo>();

function parse(fullMethod: string): SpanInfo {
  const name = fullMethod.replace(/^\/+/, "");
  const attributes: Attributes = { "rpc.system": "ttrpc" };
  const i = name.indexOf("/");
  if (i < 0) return { name, attributes };
  const service = name.slice(0, i);
  const method = name.slice(i + 1);
  if (service !== "") attributes["rpc.service"] = service;
  if (method !== "") attributes["rpc.method"] = method;
  return { name, attributes };
}

// otelttrpc's serverStatus: a server span is an error only for the codes that
// mean the server failed; the rest are the caller's doing.
const SERVER_ERROR_CODES: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

export function isServerError(code: Code): boolean {
  return SERVER_ERROR_CODES.has(code);
}
