/**
 * The testing backend of the reference Migration server: it keeps every call
 * in memory, answers at once, and fails the operations a test names, so a
 * client or orchestrator can be tested without a VM.
 *
 * @module ttrpc-es/migration/testing
 */
export { createTestingBackend, testingEndpoint } from "./testing-backend.js";
export type {
  TestingBackend,
  TestingBackendOptions,
  TestingCall,
  TestingEndpoint,
  TestingOperation,
  TestingTransfer,
} from "./testing-backend.js";
