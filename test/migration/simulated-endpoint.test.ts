// The endpoint descriptor carried in CreateDuplicateSocketRequest.protocol_info:
// strict parsing, and through a shim, INVALID_ARGUMENT with nothing left open.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code, TtrpcError, connect } from "ttrpc-es";
import { MemoryTransport, createMigrationClient, encodeSandboxConfig, sessionNumber } from "ttrpc-es/migration";
import { createEndpointPair, encodeEndpointDescriptor, parseEndpointDescriptor } from "ttrpc-es/migration/simulated";
import { createMigrationServer } from "ttrpc-es/migration";
import { createSimulatedBackend } from "ttrpc-es/migration/simulated";
import { onTestFinished } from "vitest";
import { tempDir } from "../common.js";

const MiB = 1024 * 1024;

const TOKEN = new Uint8Array(16).fill(7);
const good = () =>
  Buffer.from(
    encodeEndpointDescriptor({
      transport: "unix",
      role: "listen",
      sessionNumber: 42,
      token: TOKEN,
      address: "/tmp/x.sock",
    }),
  );

function problem(bytes: Uint8Array, session?: number): string {
  try {
    parseEndpointDescriptor(bytes, session);
  } catch (e) {
    expect(e).toBeInstanceOf(TtrpcError);
    expect((e as TtrpcError).code).toBe(Code.InvalidArgument);
    return (e as Error).message;
  }
  throw new Error("parsed");
}

describe("endpoint descriptor", () => {
  it("round-trips unix and tcp descriptors", () => {
    expect(parseEndpointDescriptor(good(), 42)).toMatchObject({
      version: 1,
      transport: "unix",
      role: "listen",
      sessionNumber: 42,
      address: "/tmp/x.sock",
    });
    const pair = createEndpointPair({ transport: "tcp", address: "127.0.0.1:4567", sessionNumber: 9 });
    expect(parseEndpointDescriptor(pair.destination)).toMatchObject({
      transport: "tcp",
      role: "listen",
      address: "127.0.0.1:4567",
    });
    expect(parseEndpointDescriptor(pair.source)).toMatchObject({ role: "connect", token: pair.token });
  });

  it("rejects every malformed descriptor with a message naming the problem", () => {
    const with_ = (at: number, value: number) => {
      const b = good();
      b[at] = value;
      return b;
    };
    expect(problem(new Uint8Array())).toMatch(/shorter than the 30-byte/);
    expect(problem(with_(0, 0x57))).toMatch(/magic/);
    expect(problem(with_(4, 2))).toMatch(/unknown endpoint descriptor version 2/);
    expect(problem(with_(5, 3))).toMatch(/unknown transport 3/);
    expect(problem(with_(6, 0))).toMatch(/unknown role 0/);
    expect(problem(with_(7, 1))).toMatch(/reserved flags/);
    expect(problem(good(), 43)).toMatch(/session number 42, this session's is 43/);
    expect(problem(Buffer.concat([good(), Buffer.from([0])]))).toMatch(/1 trailing bytes/);
    expect(problem(good().subarray(0, 35))).toMatch(/address truncated/);
    const noAddress = good().subarray(0, 30);
    noAddress.writeUInt16BE(0, 28);
    expect(problem(noAddress)).toMatch(/missing address/);
    const zeroToken = good();
    zeroToken.fill(0, 12, 28);
    expect(problem(zeroToken)).toMatch(/token is all zero/);
    expect(() =>
      encodeEndpointDescriptor({
        transport: "unix",
        role: "listen",
        sessionNumber: 1,
        token: TOKEN,
        address: "relative.sock",
      }),
    ).toThrow(/not an absolute path/);
    expect(() =>
      encodeEndpointDescriptor({
        transport: "tcp",
        role: "listen",
        sessionNumber: 1,
        token: TOKEN,
        address: "127.0.0.1:0",
      }),
    ).toThrow(/port must be 1-65535/);
    expect(() =>
      encodeEndpointDescriptor({
        transport: "tcp",
        role: "listen",
        sessionNumber: 1,
        token: TOKEN,
        address: "example.com:80",
      }),
    ).toThrow(/IPv4/);
  });

  it("a shim answers a malformed or unusable protocol_info with INVALID_ARGUMENT and keeps no listener", async () => {
    const backend = createSimulatedBackend();
    const dst = createMigrationServer({ backend });
    const address = await dst.server.listen(`unix:${join(tempDir(), "dst.sock")}`);
    onTestFinished(() => dst.server.close());
    const conn = await connect(address);
    const client = createMigrationClient(conn);
    const sessionId = "session-endpoint";
    const config = encodeSandboxConfig({
      schemaVersion: 1,
      sandboxId: "sb",
      sessionId,
      vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: MiB, pageSize: 4096 } },
      containers: [],
      annotations: {},
    });
    const prepare = async () => {
      await client.importSandbox({ sessionId, sandboxId: "sb", config });
      await client.prepareSandbox({ sessionId, initOptions: { memoryTransport: MemoryTransport.TCP } });
    };
    await prepare();
    // A descriptor that fails fails the session (as hcsshim's does): each try gets a fresh one.
    const call = async (protocolInfo: Uint8Array) => {
      try {
        await client.createDuplicateSocket({ sessionId, protocolInfo });
      } catch (e) {
        expect(dst.service.session.state).toBe("Failed");
        await client.cancel({ sessionId });
        await client.cleanup({ sessionId });
        await prepare();
        throw e;
      }
    };
    await expect(call(new Uint8Array(372).fill(0x41))).rejects.toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/magic/),
    });
    const number = sessionNumber(sessionId);
    const trailing = Buffer.concat([
      createEndpointPair({ transport: "unix", address: join(tempDir(), "m.sock"), sessionNumber: number }).destination,
      Buffer.from([1, 2]),
    ]);
    await expect(call(trailing)).rejects.toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/2 trailing bytes/),
    });
    // Well-formed, but the listener cannot bind (no such directory).
    const unusable = join(tempDir(), "missing-dir", "m.sock");
    await expect(
      call(createEndpointPair({ transport: "unix", address: unusable, sessionNumber: number }).destination),
    ).rejects.toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/cannot listen on unix/),
    });
    expect(dst.service.session.socketAttached).toBe(false);
    // A good one still works afterwards (nothing half-attached), and Cleanup closes its listener.
    const path = join(tempDir(), "ok.sock");
    await call(createEndpointPair({ transport: "unix", address: path, sessionNumber: number }).destination);
    expect(existsSync(path)).toBe(true);
    await client.cancel({ sessionId });
    await client.finalizeSandbox({ sessionId, action: 1 });
    await client.cleanup({ sessionId });
    expect(existsSync(path)).toBe(false);
    conn.close();
  });
});
