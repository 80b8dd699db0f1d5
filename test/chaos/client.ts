// A chaos client process: keeps `concurrency` calls in flight over a few
// connections, each call's shape, size, deadline, abort and fault drawn from
// its seed, and checks every call as it settles: an allowed code, the right
// answer, and settled: a call with a deadline or an abort by that cut plus the
// hang limit, else by its work plus the hang limit (a watchdog checks calls
// still running). How late past its cut a call settled is a reported metric
// (the latest, and how many past --slack-ms), not a failure: the machine's
// load decides it, a hang does not. Faults of its
// own: socket destroys and half-closes. Reports counts and violations to the runner over IPC.
import type { Socket } from "node:net";
import { Code, codeName, createClient, dial, TtrpcError, type Client } from "../../src/index.js";
import { create } from "@bufbuild/protobuf";
import { EchoRequestSchema, Interop, type EchoRequest } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { prng } from "./prng.js";
import { activeResources, count, settle, stdio, type ClientMessage, type Shape } from "./messages.js";

interface Args {
  address: string;
  seed: number;
  index: number;
  generation: number;
  concurrency: number;
  connections: number;
  slackMs: number;
  hangMs: number;
}
const args = JSON.parse(process.argv[2]!) as Args;
// The runner may ask to stop before this process has opened its connections.
const stopAsked = new Promise<void>((resolve) => {
  process.on("message", (m: { type: string }) => {
    if (m.type === "stop") resolve();
  });
});
// After the IPC channel is in use (a listener holds it) and stdio is open
// (Node opens it on first use, and keeps it), before anything else.
stdio();
const base = activeResources();
const rand = prng(args.seed, args.index, args.generation);
const MAX = 4 * 1024 * 1024; // the server's limit (the default)

const send = (m: ClientMessage) => process.send?.(m);
const events: string[] = [];
const started = performance.now();
function event(line: string): void {
  events.push(`${(performance.now() - started).toFixed(0).padStart(6)} ms c${args.index}.${args.generation} ${line}`);
  if (events.length > 200) events.shift();
}
function violation(message: string): void {
  event(`VIOLATION ${message}`);
  send({ type: "violation", message: `client ${args.index}.${args.generation}: ${message}`, events: [...events] });
}

// One connection: its socket (for faults) and its client. `faulted` is set
// when this process destroyed or half-closed the socket: only then may its
// calls fail UNAVAILABLE.
interface Conn {
  n: number;
  socket: Socket;
  client: Client;
  faulted: boolean;
}
const opened = new Set<Conn>(); // all ever opened, for the report of leftovers
async function open(): Promise<Conn> {
  const socket = (await dial(args.address)) as Socket;
  // Above the server's limit, so that oversize requests reach the server.
  const conn = { n: opened.size, socket, client: createClient(socket, { maxMessageSize: 2 * MAX }), faulted: false };
  opened.add(conn);
  return conn;
}

const calls: Record<string, number> = {};
const codes: Record<string, number> = {};
const faults: Record<string, number> = {};
let maxOverrunMs = 0;
let lateCalls = 0;

interface Plan {
  id: number;
  shape: Shape;
  request: EchoRequest;
  messages: number;
  timeoutMs: number | undefined;
  abortAfterMs: number | undefined;
  expected: Code;
  /** Milliseconds from start by which the call must have settled; plus slack when `strict`. */
  boundMs: number;
  strict: boolean;
}

let nextId = 0;
const FAIL_CODES = [Code.InvalidArgument, Code.NotFound, Code.FailedPrecondition, Code.Internal, Code.Aborted];

function plan(): Plan {
  const shape = rand.weighted<Shape>({ unary: 4, serverStream: 2, clientStream: 2, bidi: 2 });
  let messages = shape === "unary" ? 1 : rand.int(0, 12);
  const big = rand.chance(0.03);
  const payload = new Uint8Array(big ? rand.int(64 * 1024, 1024 * 1024) : rand.int(0, 512));
  const delayMs = rand.chance(0.5) ? 0 : rand.int(1, 60);
  const request = create(EchoRequestSchema, { payload, text: `t${nextId}`, delayMs });
  let expected = Code.Ok;
  const oversize = shape !== "serverStream" && shape !== "bidi" && rand.chance(0.03);
  if (oversize) {
    count(faults, "oversizeRequest");
    request.payload = new Uint8Array(MAX + rand.int(1, 1024 * 1024));
    messages = Math.min(Math.max(messages, 1), 2); // one is refused; at most two this big are sent
    expected = Code.ResourceExhausted;
  } else if (shape === "unary" && rand.chance(0.03)) {
    count(faults, "oversizeReply");
    request.replySize = MAX + rand.int(1, 1024);
    expected = Code.ResourceExhausted;
  } else if (rand.chance(0.05)) {
    count(faults, "failCode");
    request.failCode = rand.pick(FAIL_CODES);
    request.failMessage = "chaos";
    if (shape !== "serverStream") messages = Math.max(messages, 1); // those fail on a message: one must be sent
    expected = request.failCode;
  }
  const timeoutMs = rand.chance(0.5) ? rand.int(1, 400) : undefined;
  if (timeoutMs !== undefined) count(faults, "deadline");
  const abortAfterMs = rand.chance(0.15) ? rand.int(0, 300) : undefined;
  if (abortAfterMs !== undefined) count(faults, "abort");
  // A deadline or an abort bounds the call strictly (plus slack). Without
  // either, the bound is the server's work plus the hang limit: how long the
  // work takes on a loaded machine is not this test's business, a hang is.
  const cutMs = Math.min(timeoutMs ?? Number.POSITIVE_INFINITY, abortAfterMs ?? Number.POSITIVE_INFINITY);
  const strict = Number.isFinite(cutMs);
  const boundMs = strict ? cutMs : delayMs * Math.max(messages, 1) + args.hangMs;
  return { id: nextId++, shape, request, messages, timeoutMs, abortAfterMs, expected, boundMs, strict };
}

/** Runs the call; resolves with its code, or throws a string describing a wrong answer. */
async function perform(conn: Conn, p: Plan, signal: AbortSignal): Promise<Code> {
  const options = { signal, ...(p.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }) };
  const req = p.request;
  const inputs = () => Array.from({ length: p.messages }, () => req);
  try {
    if (p.shape === "unary") {
      const r = await conn.client.unary(Interop.method.echo, req, options);
      const length = req.replySize > 0 ? req.replySize : req.payload.length;
      if (r.text !== req.text || r.payload.length !== length) throw "unary: wrong answer";
    } else if (p.shape === "serverStream") {
      let seq = 0;
      for await (const r of conn.client.serverStream(
        Interop.method.serverStream,
        { ...req, count: p.messages },
        options,
      )) {
        if (r.seq !== seq++ || r.text !== req.text) throw `serverStream: message ${r.seq} out of order`;
      }
      if (seq !== p.messages) throw `serverStream: ${seq} of ${p.messages} messages`;
    } else if (p.shape === "clientStream") {
      const r = await conn.client.clientStream(Interop.method.clientStream, inputs(), options);
      if (r.seq !== p.messages || r.totalBytes !== BigInt(p.messages * req.payload.length))
        throw `clientStream: counted ${r.seq} messages, ${r.totalBytes} bytes`;
    } else {
      // The inputs end after the last message: the half-close of the stream,
      // after which the echoes must still all arrive.
      let seq = 0;
      for await (const r of conn.client.bidiStream(Interop.method.bidi, inputs(), options)) {
        if (r.seq !== seq++ || r.text !== req.text) throw `bidi: echo ${r.seq} out of order`;
      }
      if (seq !== p.messages) throw `bidi: ${seq} of ${p.messages} echoes`;
    }
    return Code.Ok;
  } catch (e) {
    if (typeof e === "string") throw e;
    if (!(e instanceof TtrpcError)) throw `not a TtrpcError: ${String(e)}`;
    return e.code;
  }
}

const limit = (p: Plan) => p.boundMs + (p.strict ? args.hangMs : 0);
const describe = (p: Plan) =>
  `${p.shape} n=${p.messages} bytes=${p.request.payload.length} delay=${p.request.delayMs} timeout=${p.timeoutMs} abort=${p.abortAfterMs} expect=${codeName(p.expected)}`;

// Every call in flight, checked by the watchdog.
const inFlight = new Map<number, { p: Plan; start: number }>();
function watchdog(): void {
  const now = performance.now();
  for (const { p, start } of inFlight.values()) {
    if (now - start > limit(p)) {
      violation(
        `call ${p.id} (${describe(p)}) still running ${(now - start).toFixed(0)} ms after start; limit ${limit(p).toFixed(0)} ms`,
      );
      inFlight.delete(p.id);
    }
  }
}

async function call(conn: Conn): Promise<void> {
  const p = plan();
  const controller = new AbortController();
  const abort = p.abortAfterMs === undefined ? undefined : setTimeout(() => controller.abort(), p.abortAfterMs);
  const start = performance.now();
  inFlight.set(p.id, { p, start });
  event(
    `call ${p.id} ${p.shape} n=${p.messages} bytes=${p.request.payload.length} timeout=${p.timeoutMs} abort=${p.abortAfterMs} expect=${codeName(p.expected)}`,
  );
  let code: Code;
  try {
    code = await perform(conn, p, controller.signal);
  } catch (wrong) {
    violation(`call ${p.id}: ${String(wrong)}`);
    return;
  } finally {
    clearTimeout(abort);
    inFlight.delete(p.id);
  }
  const took = performance.now() - start;
  if (p.strict) {
    maxOverrunMs = Math.max(maxOverrunMs, took - p.boundMs);
    if (took - p.boundMs > args.slackMs) lateCalls++;
  }
  count(calls, p.shape);
  count(codes, codeName(code));
  event(`done ${p.id} ${codeName(code)} in ${took.toFixed(0)} ms`);
  const allowed = new Set([p.expected]);
  if (p.timeoutMs !== undefined) allowed.add(Code.DeadlineExceeded);
  if (p.abortAfterMs !== undefined) allowed.add(Code.Canceled);
  if (conn.faulted) allowed.add(Code.Unavailable);
  if (!allowed.has(code)) {
    violation(
      `call ${p.id} (${describe(p)}) settled ${codeName(code)}; allowed ${[...allowed].map(codeName).join(", ")}`,
    );
  }
  if (took > limit(p))
    violation(`call ${p.id} (${describe(p)}) settled after ${took.toFixed(0)} ms; limit ${limit(p).toFixed(0)} ms`);
}

const conns: Conn[] = [];
const retired = new Set<Conn>();
let stopping = false;

/** Destroys or half-closes connection `i` and puts a new one in its place. */
async function fault(i: number): Promise<void> {
  const conn = conns[i]!;
  if (conn.faulted) return; // another worker's fault: its replacement is on the way
  conn.faulted = true;
  if (rand.chance(0.5)) {
    count(faults, "socketDestroy");
    event(`fault: destroy connection ${i} (conn ${conn.n})`);
    conn.socket.destroy();
  } else {
    count(faults, "halfClose");
    event(`fault: half-close connection ${i} (conn ${conn.n})`);
    conn.socket.end();
  }
  // The calls on a half-closed connection go on as the server lets them;
  // it is closed at the end if the server has not closed it by then.
  retired.add(conn);
  void conn.client.done.then(() => retired.delete(conn));
  conns[i] = await open();
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function worker(): Promise<void> {
  while (!stopping) {
    // A call on a connection already closed fails without I/O: without this
    // turn the workers could chain such calls and starve the event loop.
    await turn();
    const i = rand.int(0, conns.length - 1);
    if (rand.chance(0.01)) await fault(i);
    else await call(conns[i]!);
  }
}

for (let i = 0; i < args.connections; i++) conns.push(await open());
const timers = [
  setInterval(watchdog, 100),
  setInterval(() => {
    send({ type: "stats", calls: { ...calls }, codes: { ...codes }, faults: { ...faults }, lateCalls, maxOverrunMs });
    for (const c of [calls, codes, faults]) for (const k of Object.keys(c)) delete c[k];
    lateCalls = 0;
  }, 250),
];
const workers = Array.from({ length: args.concurrency }, () => worker());

await stopAsked;
stopping = true;
await Promise.all(workers);
for (const c of [...conns, ...retired]) c.client.close();
for (const t of timers) clearInterval(t);
send({ type: "stats", calls, codes, faults, lateCalls, maxOverrunMs });
const left = await settle(base, 5000);
if (left.length > 0) {
  const open = [...opened].filter((c) => !c.socket.destroyed);
  event(
    `left open: ${open.map((c) => `conn ${c.n} faulted=${c.faulted} closed=${c.client.closed} state=${c.socket.readyState}`).join("; ")}`,
  );
}
send({ type: "stopped", leftover: left, maxOverrunMs, events: [...events] });
process.disconnect();
