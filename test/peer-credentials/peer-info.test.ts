// authorize's PeerInfo and a handler's context.peer carry the credentials.
import { randomUUID } from "node:crypto";
import { expect, onTestFinished, test } from "vitest";
import { createServer, type PeerCredentials } from "ttrpc-es";
import { checkLeaksAfterAll } from "../leak-check.js";
import { startPeer } from "./peer-process.js";

test("peer.credentials in authorize carries the client's real pid and uid", async () => {
  const seen: PeerCredentials[] = [];
  const server = createServer({
    async authorize(_socket, peer) {
      seen.push(await peer.credentials);
    },
  });
  const name = `ttrpc-es-peerinfo-${randomUUID()}`;
  await server.listen(`unix-abstract:${name}`);
  onTestFinished(() => server.close());
  const peer = startPeer(["client", `@${name}`], "nobody");
  const connected = await peer.next((e) => e.connected === true);
  await peer.next((e) => e.closed === true);
  await peer.stop();
  expect(seen).toEqual([{ pid: connected.pid, uid: 65534, gid: 65534 }]);
});

checkLeaksAfterAll();
