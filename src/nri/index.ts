/**
 * Write NRI (Node Resource Interface) plugins in TypeScript. A plugin
 * implements handlers; `createStub` connects it to the runtime (containerd,
 * CRI-O) over NRI's multiplexed socket.
 *
 * @module ttrpc-es/nri
 */

export {
  createStub,
  type Stub,
  type StubOptions,
  DEFAULT_SOCKET_PATH,
  DEFAULT_REGISTRATION_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  PLUGIN_SOCKET_ENV,
  PLUGIN_NAME_ENV,
  PLUGIN_IDX_ENV,
} from "./stub.js";
export type {
  PluginHandlers,
  NriContext,
  ContainerUpdateInit,
  ContainerAdjustmentInit,
  ContainerEvictionInit,
  HandlerResult,
} from "./plugin-handlers.js";
export { eventBit, eventMask, eventsOf, handledEvents, NRI_0_6_EVENTS } from "./event-mask.js";

// Below: the multiplexer, for runtimes and tools that speak NRI's transport.
export { createMultiplexer, type Multiplexer, type MultiplexerOptions } from "./multiplexer.js";
export {
  MuxFrameError,
  MUX_HEADER_LENGTH,
  MAX_MUX_PAYLOAD,
  PLUGIN_SERVICE_CONN,
  RUNTIME_SERVICE_CONN,
  DEFAULT_READ_QUEUE_LENGTH,
} from "./mux-frame.js";
export { GoReadSplitter, GO_READ_BUFFER } from "./go-read-splitter.js";

// The NRI API: messages, enums and ttrpc services of nri.pkg.api.v1alpha1.
export * from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";
export * from "../../gen/nri/pkg/api/v1alpha1/api_ttrpc.js";
