// The statuses the migration server answers with: which code each helper
// gives, what it keeps as the cause, and MigrationInvalidStateError's own
// brand (TtrpcError brands every subclass alike).
import { describe, expect, it } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { MigrationInvalidStateError } from "ttrpc-es/migration";
import { backendError, plain, sessionMismatch } from "../../src/migration/migration-errors.js";

describe("plain", () => {
  it("is UNKNOWN and keeps the cause only when there is one", () => {
    const cause = new RangeError("inner");
    const withCause = plain("outer", cause);
    expect(withCause).toBeInstanceOf(TtrpcError);
    expect(withCause.code).toBe(Code.Unknown);
    expect(withCause.rawMessage).toBe("outer");
    expect(withCause.cause).toBe(cause);
    // A falsy cause is still a cause.
    expect(plain("outer", 0).cause).toBe(0);
    const without = plain("alone");
    expect(without.code).toBe(Code.Unknown);
    expect(without.cause).toBeUndefined();
  });
});

describe("backendError", () => {
  it("passes a TtrpcError through unchanged", () => {
    const e = new TtrpcError("busy", Code.ResourceExhausted);
    expect(backendError(e, "prepare")).toBe(e);
  });

  it("makes anything else INTERNAL, named by the step, with the original as the cause", () => {
    const cause = new Error("disk full");
    const e = backendError(cause, "prepare the source");
    expect(e.code).toBe(Code.Internal);
    expect(e.rawMessage).toBe("prepare the source: disk full");
    expect(e.cause).toBe(cause);
    const thrown = { toString: () => "a thrown object" };
    const other = backendError(thrown, "transfer");
    expect(other.rawMessage).toBe("transfer: a thrown object");
    expect(other.cause).toBe(thrown);
  });
});

describe("sessionMismatch", () => {
  it("is INVALID_ARGUMENT naming both session ids", () => {
    const e = sessionMismatch("b", "a");
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toBe('session id "b" does not match active session "a"');
  });
});

describe("MigrationInvalidStateError", () => {
  it("is an UNKNOWN TtrpcError with its own name and a default message", () => {
    const e = new MigrationInvalidStateError();
    expect(e).toBeInstanceOf(TtrpcError);
    expect(e).toBeInstanceOf(MigrationInvalidStateError);
    expect(e.code).toBe(Code.Unknown);
    expect(e.name).toBe("MigrationInvalidStateError");
    expect(e.rawMessage).toBe("the live migration is in a state that cannot be cancelled");
    expect(new MigrationInvalidStateError("already done").rawMessage).toBe("already done");
  });

  it("recognizes its brand, not other TtrpcErrors, other values or a branded function", () => {
    const brand = Symbol.for("ttrpc-es.MigrationInvalidStateError");
    expect(new TtrpcError("x", Code.Unknown) instanceof MigrationInvalidStateError).toBe(false);
    expect(new Error("x") instanceof MigrationInvalidStateError).toBe(false);
    expect({} instanceof MigrationInvalidStateError).toBe(false);
    // Another copy of the library (another realm) brands the same way.
    expect({ [brand]: true } instanceof MigrationInvalidStateError).toBe(true);
    expect({ [brand]: "yes" } instanceof MigrationInvalidStateError).toBe(false);
    expect((null as unknown) instanceof MigrationInvalidStateError).toBe(false);
    expect((undefined as unknown) instanceof MigrationInvalidStateError).toBe(false);
    expect(("x" as unknown) instanceof MigrationInvalidStateError).toBe(false);
    const fn = Object.assign(() => undefined, { [brand]: true });
    expect((fn as unknown) instanceof MigrationInvalidStateError).toBe(false);
  });
});
