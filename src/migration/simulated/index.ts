/**
 * The simulated backend of the reference Migration shim: a VM with a memory
 * image and a guest workload, and a real pre-copy live migration of that
 * memory over a unix or TCP socket.
 *
 * @module ttrpc-es/migration/simulated
 */
export {
  createSimulatedBackend,
  SimulatedBackend,
  DIRTY_RATE_ANNOTATION,
  type SimulatedBackendOptions,
} from "./simulated-backend.js";
export {
  createEndpointPair,
  encodeEndpointDescriptor,
  parseEndpointDescriptor,
  ENDPOINT_DESCRIPTOR_MAGIC,
  ENDPOINT_DESCRIPTOR_VERSION,
  type EndpointDescriptor,
  type EndpointRole,
  type EndpointTransport,
} from "../endpoint-descriptor.js";
export {
  SimulatedVm,
  DEFAULT_MEMORY_BYTES,
  DEFAULT_DIRTY_PAGES_PER_SECOND,
  type SimulatedVmOptions,
  type SimulatedVmStatus,
  type DeviceState,
} from "./simulated-vm.js";
export { MemoryImage, type MemoryImageOptions } from "./memory-image.js";
export { GuestWorkload, type GuestWorkloadState } from "./guest-workload.js";
export { preCopyParams, PRE_COPY_DEFAULTS, type PreCopyParams } from "./pre-copy-params.js";
export type { SourceFaults } from "./page-frames.js";
export { MAX_CHANNELS } from "./transfer-link.js";
export { DIGEST_BLOCK_BYTES, imageDigest, type DigestedMemory } from "./image-digest.js";
export type { TransferEvent, TransferObserver, TransferStats } from "./transfer-events.js";
