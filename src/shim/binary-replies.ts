// The binary replies of `delete` and `-info`, loaded only by those actions:
// protobuf and containerd's messages are most of a shim's load time, and
// `start` needs neither.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DeleteResponseSchema } from "../../gen/containerd/task/v2/shim_pb.js";
import { type RuntimeInfo, RuntimeInfoSchema } from "../../gen/containerd/types/introspection_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { DeleteResult } from "./shim-definition.js";

/** The binary DeleteResponse `delete` prints (v2 and v3 encode the same). */
export function encodeDelete(r: DeleteResult): Uint8Array {
  const msg = create(DeleteResponseSchema, {
    pid: r.pid,
    exitStatus: r.exitStatus,
    exitedAt: timestampFromDate(r.exitedAt),
  });
  return toBinary(DeleteResponseSchema, msg);
}

/** The binary RuntimeInfo `-info` prints. */
export function encodeRuntimeInfo(info: MessageInitShape<typeof RuntimeInfoSchema> | RuntimeInfo): Uint8Array {
  return toBinary(RuntimeInfoSchema, create(RuntimeInfoSchema, info));
}
