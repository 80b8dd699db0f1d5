// A peer process for the peer-credential tests, run as another user with
// `runuser -u nobody -- node peer-process.mjs ...`. Plain JavaScript on
// node:net only, so that it runs without a build and reads nothing the
// other user may not read. Prints one JSON line per event on stdout.
//
//   client PATH   connects to the unix socket PATH ("@NAME": abstract), sends
//                 one ttrpc Request for a service nobody registers, and reports
//                 whether an answer came (accepted) or the socket closed first.
//   server NAME   listens on the abstract socket NAME and holds each
//                 connection until stdin closes.
import { createServer, connect } from "node:net";

const [mode, where] = process.argv.slice(2);
const say = (event) =>
  process.stdout.write(`${JSON.stringify({ pid: process.pid, uid: process.getuid(), ...event })}\n`);
const path = where.startsWith("@") ? `\0${where.slice(1)}` : where;

if (mode === "client") {
  // Request { service: "x", method: "y" }, stream 1, type 1 (request).
  const payload = Buffer.from([0x0a, 1, 0x78, 0x12, 1, 0x79]);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(1, 4);
  header[8] = 1;
  let answered = 0;
  const socket = connect({ path }, () => {
    say({ connected: true });
    socket.write(Buffer.concat([header, payload]));
  });
  socket.on("data", (chunk) => {
    answered += chunk.length;
    if (answered >= 10) socket.end();
  });
  socket.on("error", () => {});
  socket.on("close", () => say({ closed: true, answeredBytes: answered }));
} else if (mode === "server") {
  const sockets = new Set();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
  });
  server.listen({ path }, () => say({ listening: true }));
  process.stdin.resume();
  process.stdin.on("end", () => {
    for (const s of sockets) s.destroy();
    server.close();
  });
} else {
  throw new Error(`unknown mode ${mode}`);
}
