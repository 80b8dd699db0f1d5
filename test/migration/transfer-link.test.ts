// The listening side of the memory transfer accepts only connections whose
// hello proves the migration's token and session number and comes from the
// other side: anything else is closed unanswered, and the right peer is
// still accepted after it. Real unix sockets; the impostors speak the real
// hello (wire-protocol.ts's encoder), one field wrong each.
import { connect as dial, type Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type EndpointDescriptor, parseEndpointDescriptor } from "../../src/migration/endpoint-descriptor.js";
import { createEndpointPair } from "../../src/migration/simulated/index.js";
import { acceptPeer, bindListener, connectPeer } from "../../src/migration/simulated/transfer-link.js";
import { encodeHello, type Hello } from "../../src/migration/simulated/wire-protocol.js";
import { tempDir } from "../common.js";

const MAX_PAYLOAD = 1 << 20;

/** Sends `hello` on a fresh connection; resolves with the bytes the listener answered before it closed. */
function impostor(path: string, hello: Hello): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = dial(path, () => socket.write(encodeHello(hello)));
    const got: Buffer[] = [];
    socket.on("data", (c: Buffer) => got.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(got)));
  });
}

describe("the memory-transfer listener", () => {
  it("closes, unanswered, a hello with a wrong token, another session or its own side, and accepts the peer", async () => {
    const path = join(tempDir(), "memory.sock");
    const pair = createEndpointPair({ transport: "unix", address: path, sessionNumber: 77 });
    const listen: EndpointDescriptor = parseEndpointDescriptor(pair.destination);
    const server = await bindListener(listen);
    const signal = new AbortController().signal;
    const accepted = acceptPeer(server, listen, "destination", signal, MAX_PAYLOAD, 1);
    const right: Hello = { token: pair.token, sessionNumber: 77, sender: "source", channel: 0, channels: 1 };
    const wrongToken = Uint8Array.from(pair.token, (b) => b ^ 1);
    const answers = await Promise.all([
      impostor(path, { ...right, token: wrongToken }),
      impostor(path, { ...right, sessionNumber: 78 }),
      impostor(path, { ...right, sender: "destination" }),
      impostor(path, { ...right, channel: 1 }),
    ]);
    expect(answers.map((a) => a.length)).toEqual([0, 0, 0, 0]);
    const dialed = await connectPeer(parseEndpointDescriptor(pair.source), "source", signal, MAX_PAYLOAD, 1);
    const links = await accepted;
    expect(links).toHaveLength(1);
    for (const l of [...links, ...dialed]) l.socket.destroy();
  });
});
