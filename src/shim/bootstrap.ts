// What `shim start` reads on stdin and prints on stdout. containerd 2.3+
// writes a binary BootstrapParams and reads a binary BootstrapResult;
// containerd up to 2.2 writes the runtime options Any (or nothing) and reads
// JSON {"version","address","protocol"}, and containerd 1.6 reads only a bare
// address. Go's pkg/shim takes stdin as BootstrapParams only when it parses
// and its id and namespace match the flags; anything else is the old format.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import {
  type BootstrapParams,
  BootstrapParamsSchema,
  type BootstrapResult,
  BootstrapResultSchema,
} from "../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";
import { legacyStartReply, type StartInput, type StartReply } from "./start-reply.js";

export {
  type StartInput,
  type StartReply,
  TASK_API_V2,
  TASK_API_V3,
  taskApiVersion,
} from "./start-reply.js";

/** Reads `start`'s stdin, deciding the format as Go's pkg/shim does (parseBootstrapParams). */
export function readStartInput(stdin: Uint8Array, id: string, namespace: string): StartInput {
  if (stdin.length > 0) {
    let params: BootstrapParams | undefined;
    try {
      params = fromBinary(BootstrapParamsSchema, stdin);
    } catch {
      // Not a BootstrapParams: the runtime options of the old protocol.
    }
    if (params && params.instanceId === id && params.namespace === namespace) return { format: "bootstrap", params };
  }
  return { format: "legacy", options: legacyOptions(stdin) };
}

function legacyOptions(stdin: Uint8Array): Any | undefined {
  if (stdin.length === 0) return undefined;
  try {
    return fromBinary(AnySchema, stdin);
  } catch {
    // containerd never sends anything else; unreadable options are no options.
    return undefined;
  }
}

/**
 * The bytes `start` prints. 2.3+ gets a binary BootstrapResult (version 3).
 * Older containerd gets JSON when it announces MAX_SHIM_VERSION (1.7 and 2.x
 * set it), else the bare address containerd 1.6 reads.
 */
export function encodeStartReply(input: StartInput, reply: StartReply, maxShimVersion: string | undefined): Uint8Array {
  if (input.format === "bootstrap") return toBinary(BootstrapResultSchema, bootstrapResult(reply));
  return legacyStartReply(reply, maxShimVersion);
}

/** The BootstrapResult for a ttrpc server at `reply.address`. */
export function bootstrapResult(reply: StartReply): BootstrapResult {
  return create(BootstrapResultSchema, { version: reply.version, address: reply.address, protocol: "ttrpc" });
}
