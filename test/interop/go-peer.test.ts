// The Go peers against each other: proves the peers the interop suite relies on
// before any TypeScript is involved.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ensureGoPeer, runGoClient, runTypeurlPeer, startGoServer, type GoPeers, type GoServer } from "./go-peer.js";

let peers: GoPeers;
let dir: string;
let newServer: GoServer;
let oldServer: GoServer;
const newSocket = () => join(dir, "new.sock");
const oldSocket = () => join(dir, "old.sock");

beforeAll(async () => {
  peers = await ensureGoPeer();
  dir = mkdtempSync(join(tmpdir(), "ttrpc-es-go-"));
  [newServer, oldServer] = await Promise.all([
    startGoServer(peers.peer, newSocket()),
    startGoServer(peers.oldPeer, oldSocket()),
  ]);
});

afterAll(async () => {
  await Promise.all([newServer?.close(), oldServer?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("Go ttrpc 1.2.4 client against Go ttrpc 1.2.4 server", () => {
  test("unary echoes text, payload and metadata", async () => {
    const r = await runGoClient(peers.peer, newSocket(), "unary");
    expect(r).toMatchObject({
      ok: true,
      text: "hello from go",
      payload: Buffer.from([0, 1, 2, 0xfe, 0xff]).toString("base64"),
      metadata: ["x-interop=go", "x-multi=one", "x-multi=two"],
      deadline_ms: 0,
    });
  });

  test("server stream sends five messages, then ends cleanly", async () => {
    const r = await runGoClient(peers.peer, newSocket(), "server-stream");
    expect(r).toMatchObject({ ok: true, seqs: [0, 1, 2, 3, 4], eof: true });
  });

  test("bidi echoes each message in order", async () => {
    const r = await runGoClient(peers.peer, newSocket(), "bidi");
    expect(r).toMatchObject({
      ok: true,
      seqs: [0, 1, 2, 3, 4],
      texts: ["bidi-0", "bidi-1", "bidi-2", "bidi-3", "bidi-4"],
      eof: true,
    });
  });

  test("an oversized request fails that call only, with RESOURCE_EXHAUSTED", async () => {
    const r = await runGoClient(peers.peer, newSocket(), "oversize-request");
    expect(r).toMatchObject({ ok: false, kind: "status", code: 8, after_ok: true });
  });
});

describe("Debian 12's Go ttrpc 1.1.1", () => {
  test("old client, new server: unary", async () => {
    const r = await runGoClient(peers.oldPeer, newSocket(), "unary");
    expect(r).toMatchObject({
      ok: true,
      text: "hello from go",
      metadata: ["x-interop=go", "x-multi=one", "x-multi=two"],
    });
  });

  test("new client, old server: unary, and streams are unknown methods", async () => {
    expect(await runGoClient(peers.peer, oldSocket(), "unary")).toMatchObject({ ok: true, text: "hello from go" });
    expect(await runGoClient(peers.peer, oldSocket(), "server-stream")).toMatchObject({
      ok: false,
      code: 12,
      message: "method ServerStream",
    });
  });
});

test("typeurl: Go decodes what Go encodes", async () => {
  const any = await runTypeurlPeer(peers.typeurlPeer, "encode");
  expect(any.type_url).toBe("sandbox-spec/vm/v2/StatedState/StatedState");
  const decoded = await runTypeurlPeer(peers.typeurlPeer, "decode", any);
  expect(JSON.parse(Buffer.from(any.value_base64, "base64").toString("utf8"))).toEqual(decoded);
});
