export { normalizeSessionId, sessionNumber } from "./session-number.js";
export {
  STATED_STATE_SCHEMA_VERSION,
  StatedStateType,
  decodeStatedState,
  encodeStatedState,
  hcsMigrationOptions,
} from "./stated-state.js";
export type {
  HcsMemoryTransferThrottleParams,
  HcsMigrationOptions,
  HcsMigrationOrigin,
  StatedContainer,
  StatedContainerState,
  StatedGuestOs,
  StatedMemory,
  StatedState,
  StatedVm,
} from "./stated-state.js";
