// Who a plugin stub says it is, and where it connects, as Go's pkg/stub
// decides: the options, else NRI_PLUGIN_NAME / NRI_PLUGIN_IDX, else a script
// named "NN-name"; a bad index, an empty name or a bad NRI_PLUGIN_SOCKET is
// refused with INVALID_ARGUMENT before anything is dialled.
import { afterEach, describe, expect, it } from "vitest";
import { Code } from "../../src/code.js";
import { PLUGIN_IDX_ENV, PLUGIN_NAME_ENV, PLUGIN_SOCKET_ENV, createStub } from "../../src/nri/stub.js";
import { TtrpcError } from "../../src/ttrpc-error.js";

const handlers = { runPodSandbox() {} };
const script = process.argv[1];
afterEach(() => {
  process.argv[1] = script!;
});

function refusal(f: () => unknown): TtrpcError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TtrpcError);
    expect((e as TtrpcError).code).toBe(Code.InvalidArgument);
    return e as TtrpcError;
  }
  throw new Error("not refused");
}

describe("a stub's name and index", () => {
  it("come from the options, over the environment", () => {
    const env = { [PLUGIN_NAME_ENV]: "from-env", [PLUGIN_IDX_ENV]: "20" };
    expect(createStub(handlers, { env })).toMatchObject({ name: "from-env", idx: "20" });
    expect(createStub(handlers, { env, name: "mine", idx: "07" })).toMatchObject({ name: "mine", idx: "07" });
  });

  it('come from a script named "NN-name" when neither gives them', () => {
    process.argv[1] = "/opt/nri/plugins/05-adjust.mjs";
    expect(createStub(handlers, { env: {} })).toMatchObject({ name: "adjust", idx: "05" });
    expect(createStub(handlers, { env: { [PLUGIN_IDX_ENV]: "42" } })).toMatchObject({ name: "adjust", idx: "42" });
    process.argv[1] = "/opt/nri/plugins/logger.js";
    expect(createStub(handlers, { env: {}, idx: "11" })).toMatchObject({ name: "logger", idx: "11" });
  });

  it("refuse an index that is not two digits, and an empty name", () => {
    process.argv[1] = "/opt/nri/plugins/logger.js";
    expect(refusal(() => createStub(handlers, { env: {} })).message).toContain(
      'nri: plugin index must be two digits (00-99), got ""',
    );
    expect(refusal(() => createStub(handlers, { env: {}, idx: "1" })).message).toContain('got "1"');
    expect(refusal(() => createStub(handlers, { env: {}, idx: "100" })).message).toContain('got "100"');
    process.argv[1] = "";
    expect(refusal(() => createStub(handlers, { env: {}, idx: "01" })).message).toContain("nri: plugin name is empty");
  });
});

it("refuses an NRI_PLUGIN_SOCKET that is not a descriptor number", async () => {
  const stub = createStub(handlers, { name: "p", idx: "01", env: { [PLUGIN_SOCKET_ENV]: "3x" } });
  const e = await stub.run().catch((err: unknown) => err);
  expect(e).toBeInstanceOf(TtrpcError);
  expect((e as TtrpcError).code).toBe(Code.InvalidArgument);
  expect((e as TtrpcError).message).toContain('nri: invalid socket in environment (NRI_PLUGIN_SOCKET="3x")');
  await stub.stop();
});
