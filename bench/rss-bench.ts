// Memory at rest and after an attack (issue 29), as whole processes read from
// /proc, without forcing a GC: what an operator sees on a node.
//
//   rss-idle-server   the bench's Interop server at rest, beside `node -e 0`'s
//                     peak, a Node process that loads only @bufbuild/protobuf
//                     and the Interop schemas (the floor any protobuf-es
//                     program pays), and the Go ttrpc server;
//   rss-after-flood   the same server some seconds after a scripted flood
//                     (calls whose answers are never read, connections that
//                     announce 4 MiB bodies and send half, connections reset),
//                     against its own idle figure; the Go server beside it.
//
//   npm run bench -- --only '^rss-(idle-server|after-flood)'
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { encodeRequestFrame } from "../src/envelope.js";
import { EchoRequestSchema } from "../gen/ttrpces/interop/v1/interop_pb.js";
import { ServerProc, ensureGoPeer, root } from "./procs.js";
import type { GroupRunner, GroupSettings } from "./row-group.js";

export const RSS_BENCHMARKS = ["rss-idle-server", "rss-after-flood"] as const;

/** How hard the flood hits, and how long the server then rests before it is read. */
interface Flood {
  unreadCalls: number;
  halfBodies: number;
  resets: number;
  restSeconds: number;
}
const FULL: Flood = { unreadCalls: 20_000, halfBodies: 200, resets: 1_000, restSeconds: 30 };
const QUICK: Flood = { unreadCalls: 2_000, halfBodies: 20, resets: 100, restSeconds: 2 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process now, from /proc (no GC asked for). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

function runNode(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, args, { cwd: root, timeout: 30_000 }, (err, out) => (err ? reject(err) : resolve(out))),
  );
}

/** `node -e 0`'s peak RSS: the figure the targets are stated against. */
async function nodePeak(): Promise<number> {
  const out = await runNode([
    "-e",
    "process.on('exit', () => process.stdout.write(String(process.resourceUsage().maxRSS)))",
  ]);
  return Number(out) * 1024;
}

/** A Node process that loads what any protobuf-es program with these schemas loads, at rest. */
async function protobufFloor(): Promise<number> {
  const script = [
    'await import("@bufbuild/protobuf");',
    'await import("./dist-bench/gen/ttrpces/interop/v1/interop_pb.js");',
    "await new Promise((r) => setTimeout(r, 1000));",
    "process.stdout.write(String(process.memoryUsage().rss));",
  ].join("\n");
  return Number(await runNode(["--input-type=module", "-e", script]));
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    s.on("error", () => {}); // the server may drop a hostile connection
    s.once("connect", () => resolve(s));
    s.connect({ path }).once("error", reject);
  });
}

/** An Echo asking for 1 KiB back: the body is encoded once, the frame per stream id. */
const ECHO_BODY = toBinary(EchoRequestSchema, create(EchoRequestSchema, { replySize: 1024 }));
function echoFrame(streamId: number): Buffer {
  return Buffer.concat(encodeRequestFrame(streamId, 0, "ttrpces.interop.v1.Interop", "Echo", ECHO_BODY, 0, []));
}

/** The hostile-input catalogue's three floods, one after another; every socket closed at the end. */
async function flood(socket: string, f: Flood): Promise<void> {
  const open: Socket[] = [];
  try {
    const unread = await connect(socket);
    open.push(unread);
    for (let i = 0; i < f.unreadCalls; i++) unread.write(echoFrame(2 * i + 1));
    for (let i = 0; i < f.halfBodies; i++) {
      const s = await connect(socket);
      open.push(s);
      const header = Buffer.alloc(10);
      header.writeUInt32BE(4 << 20, 0);
      header.writeUInt32BE(1, 4);
      header[8] = 1;
      s.write(header);
      s.write(Buffer.alloc(2 << 20));
    }
    for (let i = 0; i < f.resets; i++) {
      const s = await connect(socket);
      s.write(echoFrame(1));
      s.destroy();
    }
    // Let the server take in what was sent before the connections go.
    await sleep(2000);
  } finally {
    for (const s of open) s.destroy();
  }
}

interface Measured {
  idle: number;
  afterFlood: number;
}

async function measureServer(side: "ttrpc-es" | "go", dir: string, f: Flood): Promise<Measured> {
  const socket = join(dir, `${side}.sock`);
  const server = await ServerProc.start(side, socket);
  try {
    await sleep(1000);
    const idle = rssOf(server.pid);
    await flood(socket, f);
    await sleep(f.restSeconds * 1000);
    return { idle, afterFlood: rssOf(server.pid) };
  } finally {
    await server.stop();
  }
}

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

async function run({ quick, log }: GroupSettings) {
  const f = quick ? QUICK : FULL;
  await ensureGoPeer();
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-rss-"));
  try {
    const nodeE0 = await nodePeak();
    const floor = await protobufFloor();
    const es = await measureServer("ttrpc-es", dir, f);
    log(`  rss / ttrpc-es: idle ${mb(es.idle)}, after flood ${mb(es.afterFlood)}`);
    const go = await measureServer("go", dir, f);
    log(`  rss / go-ttrpc: idle ${mb(go.idle)}, after flood ${mb(go.afterFlood)}`);
    const row = (benchmark: string, implementation: string, value: number, extra: object = {}) => ({
      benchmark,
      implementation,
      value,
      unit: "bytes",
      ...extra,
    });
    const rows = [
      row("rss-idle-server", "ttrpc-es", es.idle, { nodeE0Peak: nodeE0, protobufEsFloor: floor }),
      row("rss-idle-server", "go-ttrpc", go.idle),
      row("rss-idle-server", "node -e 0 (peak)", nodeE0),
      row("rss-idle-server", "protobuf-es floor", floor),
      row("rss-after-flood", "ttrpc-es", es.afterFlood, { idle: es.idle, flood: f }),
      row("rss-after-flood", "go-ttrpc", go.afterFlood, { idle: go.idle, flood: f }),
    ];
    const table = [
      "| benchmark | ttrpc-es | go-ttrpc | node -e 0 (peak) | protobuf-es floor | target |",
      "|---|---:|---:|---:|---:|---|",
      `| rss-idle-server | ${mb(es.idle)} (${ratio(es.idle, nodeE0)} node, ${ratio(es.idle, floor)} floor) | ${mb(go.idle)} | ${mb(nodeE0)} | ${mb(floor)} (${ratio(floor, nodeE0)}) | ≤ 1.25× node -e 0 |`,
      `| rss-after-flood | ${mb(es.afterFlood)} (${ratio(es.afterFlood, es.idle)} own idle) | ${mb(go.afterFlood)} (${ratio(go.afterFlood, go.idle)}) | | | ≤ 1.5× own idle |`,
      "",
      `Whole processes read from /proc, no GC forced. Flood: ${f.unreadCalls} calls never read, ${f.halfBodies} connections announcing 4 MiB and sending 2 MiB, ${f.resets} connections reset; read ${f.restSeconds} s after the last socket closed.`,
    ].join("\n");
    return { rows, table };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const rssGroup: GroupRunner = { run };
