// `npm run chaos -- [--seconds N] [--seed S] [--clients N] [--concurrency N] [--slack-ms N] [--hang-ms N] [--verbose]`
//
// A randomized soak: one server process, several client processes (see
// client.ts) drawing a mix of the four call shapes, aborts, deadlines,
// oversize messages, failures, half-closes and socket destroys from the seed,
// while this runner SIGKILLs and restarts client processes at seeded moments
// and probes the server with a fresh connection. Invariants, throughout and
// at the end:
//   - every call settles with an allowed code and the right answer; none
//     hangs: it settles within --hang-ms of its deadline or abort, or of its
//     work when it has neither (checked in the clients). How late past a
//     deadline calls settle is reported (the latest, how many past
//     --slack-ms), as is the slowest probe: the machine's load decides those;
//   - a fresh probe connection is always served (within --hang-ms);
//   - the run did something: floors per call shape, per fault kind, on OK
//     answers and on probes, scaled to --seconds (FLOORS below);
//   - no handle or timer is left in any process at the end;
//   - the server's heap after GC ends within 5 % of where it stood after the
//     warm-up (the first tenth of the run, at most 10 s, same mix);
//   - every process's RSS stays within --rss-mib of its first sample.
// A violation prints the seed and the last events, and exits 1.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "../../src/index.js";
import { Interop } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { freshSeed, prng } from "./prng.js";
import {
  activeResources,
  count,
  settle,
  stdio,
  type ClientMessage,
  type ServerMessage,
  type ServerRequest,
} from "./messages.js";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    seed: { type: "string" },
    clients: { type: "string", default: "4" },
    concurrency: { type: "string", default: "8" },
    connections: { type: "string", default: "2" },
    "slack-ms": { type: "string", default: "2000" },
    "hang-ms": { type: "string", default: "30000" },
    "kill-mean-ms": { type: "string", default: "1500" },
    "rss-mib": { type: "string", default: "512" },
    verbose: { type: "boolean", default: false },
  },
});
function numberFlag(name: keyof typeof flags): number {
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, not ${flags[name]}`);
  return n;
}
const seconds = numberFlag("seconds");
const seed = flags.seed === undefined ? freshSeed() : numberFlag("seed");
const clientCount = numberFlag("clients");
const slackMs = numberFlag("slack-ms");
const rssLimit = numberFlag("rss-mib") * 1024 * 1024;
const rand = prng(seed);
stdio();
const base = activeResources();
const started = performance.now();
const warmupMs = Math.min(10_000, (seconds * 1000) / 10);

console.log(
  `chaos: seed ${seed}, ${seconds} s, ${clientCount} client processes (replay: npm run chaos -- --seconds ${seconds} --seed ${seed})`,
);

const events: string[] = [];
function event(line: string): void {
  events.push(`${(performance.now() - started).toFixed(0).padStart(6)} ms runner ${line}`);
  if (flags.verbose) console.error(events[events.length - 1]);
  if (events.length > 40) events.shift();
}

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const children = new Set<ChildProcess>();
function stopAll(): void {
  for (const c of children) c.kill("SIGKILL");
}

function fail(message: string, clientEvents: string[] = []): never {
  console.error(`\nCHAOS VIOLATION (seed ${seed}): ${message}`);
  console.error("last events of the runner:");
  for (const e of events) console.error(`  ${e}`);
  if (clientEvents.length > 0) {
    console.error("last events of the client:");
    for (const e of clientEvents) console.error(`  ${e}`);
  }
  console.error(`replay: npm run chaos -- --seconds ${seconds} --seed ${seed}`);
  stopAll();
  console.log(`chaos: FAILED (seed ${seed})`);
  process.exit(1);
}

let lateCalls = 0;
let maxOverrunMs = 0;
const totals = {
  calls: {} as Record<string, number>,
  codes: {} as Record<string, number>,
  faults: {} as Record<string, number>,
};
const add = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, n] of Object.entries(from)) count(into, k, n);
};

// --- the server
let finishing = false; // from here on, exits are expected
const server = fork(here("./server.js"), [], {
  execArgv: ["--expose-gc"],
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
children.add(server);
const serverReplies: ((m: ServerMessage) => void)[] = [];
server.on("message", (m: ServerMessage) => serverReplies.shift()?.(m));
server.on("exit", (code, signal) => {
  children.delete(server);
  if (!finishing) fail(`the server process exited (code ${code}, signal ${signal})`);
});
function ask(request: ServerRequest | undefined): Promise<ServerMessage> {
  return new Promise((resolve) => {
    serverReplies.push(resolve);
    if (request !== undefined) server.send(request);
  });
}
const ready = await ask(undefined);
if (ready.type !== "ready") fail("the server did not start");
const address = ready.address;

// --- the clients, each restarted after every SIGKILL with the next generation
interface Slot {
  index: number;
  generation: number;
  child: ChildProcess;
  killed: boolean;
  stopped?: Extract<ClientMessage, { type: "stopped" }>;
  firstRss?: number;
}
const slots: Slot[] = [];
function startClient(index: number, generation: number): Slot {
  const arg = JSON.stringify({
    address,
    seed,
    index,
    generation,
    concurrency: numberFlag("concurrency"),
    connections: numberFlag("connections"),
    slackMs,
    hangMs: numberFlag("hang-ms"),
  });
  const child = fork(here("./client.js"), [arg], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.add(child);
  const slot: Slot = { index, generation, child, killed: false };
  child.on("message", (m: ClientMessage) => {
    if (m.type === "stats") {
      add(totals.calls, m.calls);
      add(totals.codes, m.codes);
      add(totals.faults, m.faults);
      lateCalls += m.lateCalls;
      maxOverrunMs = Math.max(maxOverrunMs, m.maxOverrunMs);
    } else if (m.type === "violation") fail(m.message, m.events);
    else slot.stopped = m;
  });
  child.on("exit", (code, signal) => {
    children.delete(child);
    if (slot.killed) {
      event(`client ${index}.${generation} killed; restarting as ${index}.${generation + 1}`);
      if (!finishing) slots[index] = startClient(index, generation + 1);
    } else if (slot.stopped === undefined || code !== 0) {
      fail(`client ${index}.${generation} exited by itself (code ${code}, signal ${signal})`);
    }
  });
  return slot;
}
for (let i = 0; i < clientCount; i++) slots.push(startClient(i, 0));

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
  );
function stoppedReport(slot: Slot): Promise<void> {
  return new Promise((resolve) => {
    if (slot.stopped !== undefined) resolve();
    else slot.child.on("message", (m: ClientMessage) => m.type === "stopped" && resolve());
  });
}

const deadline = started + seconds * 1000;
const running = () => performance.now() < deadline;

// --- faults of the runner: SIGKILL at seeded moments (exponential gaps)
async function killer(): Promise<void> {
  const meanMs = numberFlag("kill-mean-ms");
  while (running()) {
    await sleep(Math.min(-Math.log(1 - rand.next()) * meanMs, Math.max(0, deadline - performance.now())));
    if (!running() || clientCount === 0) break;
    const slot = slots[rand.int(0, clientCount - 1)]!;
    if (slot.killed) continue; // still restarting
    slot.killed = true;
    count(totals.faults, "sigkill");
    event(`SIGKILL client ${slot.index}.${slot.generation}`);
    slot.child.kill("SIGKILL");
  }
}

// --- a fresh connection must always be served
let probes = 0;
let maxProbeMs = 0;
async function prober(): Promise<void> {
  while (running()) {
    const t0 = performance.now();
    const timeoutMs = numberFlag("hang-ms");
    try {
      const client = await connect(address, { connectTimeoutMs: timeoutMs });
      try {
        const r = await client.unary(Interop.method.echo, { text: "probe" }, { timeoutMs });
        if (r.text !== "probe") fail("the probe got a wrong answer");
      } finally {
        client.close();
      }
    } catch (e) {
      fail(`a fresh probe connection was not served: ${String(e)}`);
    }
    maxProbeMs = Math.max(maxProbeMs, performance.now() - t0);
    probes++;
    await sleep(200);
  }
}

// --- RSS of every process, from /proc
const rssOf = (pid: number): number | undefined => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined; // exited meanwhile
  }
};
let serverFirstRss: number | undefined;
let maxServerRss = 0;
async function rssWatch(): Promise<void> {
  while (running()) {
    const s = rssOf(server.pid!);
    if (s !== undefined) {
      serverFirstRss ??= s;
      maxServerRss = Math.max(maxServerRss, s);
      if (s - serverFirstRss > rssLimit) fail(`server RSS grew from ${mib(serverFirstRss)} to ${mib(s)}`);
    }
    for (const slot of slots) {
      const r = rssOf(slot.child.pid!);
      if (r === undefined) continue;
      slot.firstRss ??= r;
      if (r - slot.firstRss > rssLimit)
        fail(`client ${slot.index}.${slot.generation} RSS grew from ${mib(slot.firstRss)} to ${mib(r)}`);
    }
    await sleep(1000);
  }
}
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

// --- floors: a run that made next to no calls or faults proves nothing.
// Per second of run, for the defaults (4 clients, 8 calls in flight each),
// at a fifth to a tenth of the slowest of two 10 s runs (seeds 1 and 2) on a
// shared, loaded 2-core machine: unary 39/s, each stream shape 18/s, OK 69/s,
// deadlines 48/s, aborts 14/s, fail codes 4.6/s, oversize requests 2/s and
// replies 0.9/s, socket destroys 0.6/s, half-closes 0.4/s, SIGKILLs 0.3/s,
// probes 2.6/s. Only a run that stalled or stopped drawing a kind falls short.
const FLOORS_PER_SECOND = {
  calls: { unary: 5, serverStream: 2, clientStream: 2, bidi: 2 },
  faults: {
    deadline: 5,
    abort: 2,
    failCode: 0.5,
    oversizeRequest: 0.3,
    oversizeReply: 0.1,
    socketDestroy: 0.1,
    halfClose: 0.05,
    sigkill: 0.05,
  },
  ok: 10,
  probes: 0.5,
};

/** Fails unless every shape, fault kind, OK answers and probes reached their floor for this run's length. */
function checkFloors(): void {
  const floor = (perSecond: number) => Math.floor(perSecond * seconds * (clientCount / 4));
  const short: string[] = [];
  const need = (what: string, got: number, perSecond: number) => {
    if (got < floor(perSecond)) short.push(`${what} ${got} < ${floor(perSecond)}`);
  };
  for (const [shape, r] of Object.entries(FLOORS_PER_SECOND.calls)) need(`${shape} calls`, totals.calls[shape] ?? 0, r);
  for (const [kind, r] of Object.entries(FLOORS_PER_SECOND.faults)) need(`${kind} faults`, totals.faults[kind] ?? 0, r);
  need("OK answers", totals.codes.OK ?? 0, FLOORS_PER_SECOND.ok);
  // Probes come from the runner alone, whatever the client count.
  const probeFloor = Math.floor(FLOORS_PER_SECOND.probes * seconds);
  if (probes < probeFloor) short.push(`probes ${probes} < ${probeFloor}`);
  if (short.length > 0) fail(`the run fell short of its floors: ${short.join("; ")}`);
}

// --- the run
const loops = [killer(), prober(), rssWatch()];
await sleep(warmupMs);
const heapStart = await ask({ type: "heap" });
event(`heap after warm-up: ${heapStart.type === "heap" ? mib(heapStart.heapUsed) : "?"}`);
await Promise.all(loops);

// --- the end: clients stop (finishing their calls), then everything must be gone
finishing = true;
event("stopping the clients");
// A client that reports leftovers may not exit at all: the reports come first.
const reports = slots.map((s) => (s.killed ? Promise.resolve() : stoppedReport(s)));
for (const s of slots) if (!s.killed) s.child.send({ type: "stop" });
const stopLimitMs = numberFlag("hang-ms");
const stopStart = performance.now();
let stopTimer: NodeJS.Timeout | undefined;
await Promise.race([
  Promise.all(reports),
  new Promise<void>((resolve) => {
    stopTimer = setTimeout(resolve, stopLimitMs);
  }),
]);
clearTimeout(stopTimer);
const silent = slots.filter((s) => !s.killed && s.stopped === undefined);
if (silent.length > 0)
  fail(`client ${silent.map((s) => `${s.index}.${s.generation}`).join(", ")} did not stop within ${stopLimitMs} ms`);
const stopMs = performance.now() - stopStart;
for (const s of slots) {
  if (s.killed) continue;
  if (s.stopped!.leftover.length > 0)
    fail(`client ${s.index}.${s.generation} left: ${s.stopped!.leftover.join(", ")}`, s.stopped!.events);
  maxOverrunMs = Math.max(maxOverrunMs, s.stopped!.maxOverrunMs);
}
await Promise.all(slots.map((s) => exited(s.child)));
// Every client has sent its last stats: the totals are final.
checkFloors();
const settled = await ask({ type: "settle" });
if (settled.type !== "settled") fail("the server did not settle");
if (settled.activeHandlers !== 0) fail(`${settled.activeHandlers} handlers still running on the server`);
if (settled.leftover.length > 0) fail(`the server left: ${settled.leftover.join(", ")}`);
const heapEnd = await ask({ type: "heap" });
if (heapStart.type !== "heap" || heapEnd.type !== "heap") fail("no heap figures from the server");
const growth = heapEnd.heapUsed / heapStart.heapUsed - 1;
if (growth > 0.05)
  fail(
    `server heap after GC grew ${(growth * 100).toFixed(1)} % (${mib(heapStart.heapUsed)} -> ${mib(heapEnd.heapUsed)})`,
  );
server.send({ type: "stop" });
await exited(server);
const mine = await settle(base, 5000);
if (mine.length > 0) fail(`the runner left: ${mine.join(", ")}`);

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
const list = (r: Record<string, number>) =>
  Object.entries(r)
    .sort()
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
console.log(`chaos: seed ${seed}, ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(`  calls settled: ${sum(totals.calls)} (${list(totals.calls)}); probes served: ${probes}`);
console.log(`  codes: ${list(totals.codes)}`);
// A deadline is a setting, not a fault; the deadlines that expired show in the codes.
const { deadline: deadlines = 0, ...faults } = totals.faults;
console.log(`  faults injected: ${sum(faults)} (${list(faults)}); calls with a deadline: ${deadlines}`);
console.log(
  `  server heap after GC: ${mib(heapStart.heapUsed)} after warm-up -> ${mib(heapEnd.heapUsed)} at the end (${(growth * 100).toFixed(1)} %)`,
);
console.log(`  server RSS: first ${mib(serverFirstRss ?? 0)}, max ${mib(maxServerRss)}`);
console.log(
  `  timing (reported, not judged): latest settle past its deadline or abort ${maxOverrunMs.toFixed(0)} ms, ${lateCalls} calls past ${slackMs} ms; slowest probe ${maxProbeMs.toFixed(0)} ms; clients stopped in ${stopMs.toFixed(0)} ms`,
);
console.log(
  "  invariants held: settle codes, no hang, answers, probes, floors, no leftover handles or timers, heap, RSS",
);
console.log(`chaos: passed (seed ${seed})`);
