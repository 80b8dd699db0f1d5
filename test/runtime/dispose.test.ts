// `await using` on the runtime's Client and Server: leaving the scope closes
// both, client first (declarations are disposed in reverse order).

import { join } from "node:path";
import { expect, test } from "vitest";
import { type Client, connect, createServer, type Server } from "ttrpc-es";
import { createInteropClient } from "../../gen/ttrpces/interop/v1/interop_ttrpc.js";
import { Interop, interopImpl, tempDir } from "../common.js";

test("await using closes the client and the server at the end of the scope", async () => {
  let client: Client | undefined;
  let server: Server | undefined;
  let address = "";
  {
    await using s = createServer().register(Interop, interopImpl);
    server = s;
    address = await s.listen(join(tempDir(), "dispose.sock"));
    await using c = await connect(address);
    client = c;
    expect((await c.unary(Interop.method.echo, { text: "x" })).text).toBe("x");
    expect(s.connectionCount).toBe(1);
  }
  expect(client.closed).toBe(true);
  expect(server.connectionCount).toBe(0);
  // The server stopped listening: nobody answers at its address any more.
  await expect(connect(address, { connectTimeoutMs: 5000 })).rejects.toThrow(/dispose\.sock/);
});

test("a generated client closes its connection with await using or close()", async () => {
  await using server = createServer().register(Interop, interopImpl);
  const address = await server.listen(join(tempDir(), "generated.sock"));
  const raw = await connect(address);
  {
    await using interop = createInteropClient(raw);
    expect((await interop.echo({ text: "y" })).text).toBe("y");
  }
  expect(raw.closed).toBe(true);
  const again = await connect(address);
  createInteropClient(again).close();
  expect(again.closed).toBe(true);
});
