// Tells a gRPC (HTTP/2) socket from a ttrpc one after a call fails on it: an
// HTTP/2 server opens with a SETTINGS frame before reading anything, while a
// ttrpc server says nothing until it gets a request. Pointing the CLI at
// containerd's gRPC socket otherwise ends in a bare "connection closed".

import { dial } from "../address.js";

/** HTTP/2 frame header: 24-bit length, type (4 = SETTINGS), flags, stream 0. */
function isSettingsFrame(b: Buffer): boolean {
  return b.length >= 9 && b[3] === 0x04 && b.readUInt32BE(5) === 0 && b.readUIntBE(0, 3) % 6 === 0;
}

/**
 * Dials the address again and reports whether it opens with an HTTP/2
 * SETTINGS frame within `waitMs`. Any failure means "not known to be HTTP/2".
 */
export async function speaksHttp2(address: string, waitMs = 2000): Promise<boolean> {
  let socket: Awaited<ReturnType<typeof dial>>;
  try {
    socket = await dial(address, { timeoutMs: waitMs });
  } catch {
    return false;
  }
  return new Promise<boolean>((resolve) => {
    let got = Buffer.alloc(0);
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    // A bound on a diagnostic, not on the call: a quiet server is not HTTP/2.
    const timer = setTimeout(() => done(false), waitMs);
    socket.on("data", (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 9) done(isSettingsFrame(got));
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}
