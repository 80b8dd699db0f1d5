// Without koffi the credential checks refuse every connection. koffi is
// installed here, so its absence is made up: vi.mock gives the module a
// factory that throws, which makes `import("koffi")` in the runtime reject as
// it does when the optional dependency was not installed. Nothing else is
// mocked: the server, the socket and the client are real.
import { randomUUID } from "node:crypto";
import { expect, onTestFinished, test, vi } from "vitest";
import { Code, TtrpcError, createServer, dial, peerCredentials, requireSameUser } from "ttrpc-es";
import { checkLeaksAfterAll } from "../leak-check.js";

vi.mock("koffi", () => {
  throw Object.assign(new Error("Cannot find package 'koffi'"), { code: "ERR_MODULE_NOT_FOUND" });
});

test("without koffi, requireSameUser() refuses a same-user connection and says why", async () => {
  const refused: unknown[] = [];
  const server = createServer({ authorize: requireSameUser(), onConnectionError: (e) => refused.push(e) });
  const address = await server.listen(`unix-abstract:ttrpc-es-nokoffi-${randomUUID()}`);
  onTestFinished(() => server.close());
  const socket = await dial(address);
  await new Promise<void>((resolve) => socket.on("close", () => resolve()).resume());
  expect(refused).toHaveLength(1);
  const e = refused[0] as TtrpcError;
  expect(e).toBeInstanceOf(TtrpcError);
  expect(e.code).toBe(Code.FailedPrecondition);
  expect(e.message).toMatch(/koffi cannot be loaded/);
  // The failed import, for whoever has to find out why.
  expect(e.cause).toBeInstanceOf(Error);
  // The client side refuses the same way.
  await expect(peerCredentials(socket)).rejects.toSatisfy(
    (r) => r instanceof TtrpcError && r.code === Code.FailedPrecondition,
  );
});

checkLeaksAfterAll();
