// The parts of `start`'s reply that need no protobuf: the task API version
// to announce and the reply to containerd up to 2.2 (JSON, or the bare
// address for 1.6). Kept apart from bootstrap.ts so that a `start` given
// nothing on stdin, as containerd usually gives it, never loads protobuf.
import type { Any } from "@bufbuild/protobuf/wkt";
import type { BootstrapParams } from "../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";

/** The first task API version containerd 2.x speaks, and the newest one. */
export const TASK_API_V3 = 3;
/** The task API every containerd since 1.2 speaks. */
export const TASK_API_V2 = 2;

/** How containerd started this shim: the 2.3+ protocol, or the older one. */
export type StartInput =
  | { readonly format: "bootstrap"; readonly params: BootstrapParams }
  | { readonly format: "legacy"; readonly options: Any | undefined };

/** What an empty stdin means: containerd up to 2.2 with no runtime options. */
export const NO_START_INPUT: StartInput = { format: "legacy", options: undefined };

/** Where the long-lived server listens, and which task API it offers containerd. */
export interface StartReply {
  /** `unix:///run/containerd/s/<hash>`. */
  readonly address: string;
  /** 2 or 3: the task API containerd should call. */
  readonly version: number;
}

/**
 * The reply to containerd up to 2.2: JSON when it announces MAX_SHIM_VERSION
 * (1.7, 2.x), else the bare address (1.6).
 */
export function legacyStartReply(reply: StartReply, maxShimVersion: string | undefined): Uint8Array {
  if (maxShimVersion === undefined || maxShimVersion === "") return new TextEncoder().encode(reply.address);
  const json = { version: reply.version, address: reply.address, protocol: "ttrpc" };
  return new TextEncoder().encode(JSON.stringify(json));
}

/**
 * The task API version to announce. 2.3+ (the bootstrap protocol) gets v3;
 * older containerd gets the smaller of v3 and MAX_SHIM_VERSION, so that
 * containerd 1.7, which rejects a version above 2, is never offered v3.
 */
export function taskApiVersion(input: StartInput, maxShimVersion: string | undefined): number {
  if (input.format === "bootstrap") return TASK_API_V3;
  const max = Number.parseInt(maxShimVersion ?? "", 10);
  return Number.isInteger(max) && max >= TASK_API_V2 ? Math.min(max, TASK_API_V3) : TASK_API_V2;
}
