// A scripted QMP peer on a real unix socket, standing in for QEMU's monitor
// in unit tests: it speaks QMP's JSON lines (greeting, qmp_capabilities,
// command answers by id, events in between) and does what each test's script
// says. A real QEMU cannot be made to fail, cancel or reorder on cue, and
// takes a second to boot; test/interop/qemu runs the same code against it.
import { watch, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { onTestFinished } from "vitest";
import type { ProgressPhase, TransferReporter } from "ttrpc-es/migration";
import { QmpClient, type QemuExit, type QemuProcess } from "ttrpc-es/migration/qemu";
import { tempDir } from "../../common.js";

export const GREETING = {
  QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: "test" }, capabilities: [] },
};

/** A command as the client sent it. */
export interface QmpCommand {
  readonly execute: string;
  readonly arguments?: Record<string, unknown>;
  readonly id?: number;
}

/** What a script does with the connected client. */
export interface QmpPeer {
  /** Answers `c` with `return: value`. */
  reply(c: QmpCommand, value?: unknown): void;
  /** Answers `c` with an error of QMP class `errorClass`. */
  fail(c: QmpCommand, errorClass: string, desc: string): void;
  /** Sends an event (QEMU's timestamp: `seconds` and `microseconds`). */
  event(name: string, data?: Record<string, unknown>, timestamp?: { seconds: number; microseconds: number }): void;
  /** Closes the connection, as QEMU exiting does. */
  drop(): void;
}

/**
 * Answers one command. Left unanswered unless the script calls `peer.reply`
 * or `peer.fail`; a command with no script gets `return: {}`.
 */
export type QmpScript = (c: QmpCommand, peer: QmpPeer) => void;

export interface ScriptedQmp extends QmpPeer {
  readonly path: string;
  /** Every command after qmp_capabilities, in arrival order. */
  readonly received: QmpCommand[];
  /** The names of {@link ScriptedQmp.received}. */
  names(): string[];
  /** A client connected to this peer, disposed of after the test. */
  client(): Promise<QmpClient>;
}

/** Listens on a fresh unix socket; `scripts` answers commands by name. */
export async function scriptedQmp(
  scripts: Record<string, QmpScript> = {},
  path = join(tempDir(), "qmp.sock"),
): Promise<ScriptedQmp> {
  const received: QmpCommand[] = [];
  const sockets = new Set<Socket>();
  const send = (o: object) => {
    for (const s of sockets) s.write(`${JSON.stringify(o)}\n`);
  };
  const peer: QmpPeer = {
    reply: (c, value = {}) => send({ return: value, id: c.id }),
    fail: (c, errorClass, desc) => send({ error: { class: errorClass, desc }, id: c.id }),
    event: (event, data = {}, timestamp = { seconds: 1_700_000_000, microseconds: 0 }) =>
      send({ event, data, timestamp }),
    drop: () => {
      for (const s of sockets) s.destroy();
    },
  };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.write(`${JSON.stringify(GREETING)}\n`);
    createInterface({ input: socket }).on("line", (line) => {
      const c = JSON.parse(line) as QmpCommand;
      if (c.execute === "qmp_capabilities") return void socket.write(`${JSON.stringify({ return: {}, id: c.id })}\n`);
      received.push(c);
      const script = scripts[c.execute];
      if (script === undefined) peer.reply(c);
      else script(c, peer);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  onTestFinished(async () => {
    peer.drop();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    ...peer,
    path,
    received,
    names: () => received.map((c) => c.execute),
    async client() {
      const client = await QmpClient.connect(path);
      onTestFinished(() => client[Symbol.asyncDispose]());
      return client;
    },
  };
}

/**
 * A QemuProcess stand-in around a connected QMP client, for the transfer
 * modules, which take the process as a parameter and use only its monitor,
 * its exit and its stderr. (QemuProcess itself needs a spawned binary.)
 */
export function fakeVm(
  qmp: QmpClient,
  o: { stderr?: string; exit?: QemuExit; exited?: Promise<QemuExit> } = {},
): QemuProcess {
  const vm = {
    qmp,
    exit: o.exit,
    exited: o.exited ?? new Promise<QemuExit>(() => undefined),
    stderrTail: () => o.stderr ?? "",
    status: async () => (await qmp.execute<{ status: string }>("query-status")).status,
  };
  return vm as unknown as QemuProcess;
}

/** A reporter that records each call, in order, as text. */
export function recordingReporter(): TransferReporter & { readonly log: string[] } {
  const log: string[] = [];
  return {
    log,
    phase: (p: ProgressPhase) => void log.push(`phase ${p}`),
    blackoutExited: (r) => void log.push(`blackout ${JSON.stringify(r ?? {})}`),
  };
}

/** A promise and its resolve (Promise.withResolvers is Node 22's; we support 20). */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A started fake QEMU: the argv it was given and the scripted monitor it "serves". */
export interface FakeQemuRun {
  readonly argv: string[];
  readonly pid: number;
  readonly peer: ScriptedQmp;
}

/**
 * A stand-in `qemu-system-x86_64` (a shell script) for QemuProcess and the
 * backend, which spawn a binary: it answers `--version` and `-machine help`
 * as QEMU 7.2.22 does, and otherwise records its argv, says one line on
 * stderr and sleeps. The test then serves its monitor with a scripted peer
 * on the `-qmp` path; `quit` is answered and ends the process (SIGTERM).
 */
export function fakeQemu(
  scripts: Record<string, QmpScript> = {},
  o: { version?: string; machines?: string[] } = {},
): { binary: string; started(): Promise<FakeQemuRun> } {
  const dir = tempDir();
  const binary = join(dir, "qemu-system-x86_64");
  const machines = (o.machines ?? ["pc-q35-7.2", "pc-i440fx-7.2"]).map((m) => `${m}  Standard PC\\n`).join("");
  writeFileSync(
    binary,
    [
      "#!/bin/sh",
      'case "$1 $2" in',
      `  "--version ") echo "QEMU emulator version ${o.version ?? "7.2.22"} (Debian 1:7.2+dfsg-7)"; exit 0 ;;`,
      `  "-machine help") printf 'Supported machines are:\\n${machines}'; exit 0 ;;`,
      "esac",
      'echo "fake qemu: up" >&2',
      `{ echo $$; printf '%s\\n' "$@"; } > "${dir}/argv.tmp" && mv "${dir}/argv.tmp" "${dir}/argv"`,
      "exec sleep 60",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  const watcher = watch(dir);
  onTestFinished(() => watcher.close());
  const written = new Promise<void>((resolve) =>
    watcher.on("change", (_type, name) => {
      if (name === "argv") resolve();
    }),
  );
  return {
    binary,
    async started() {
      await written;
      const [pidText, ...argv] = (await readFile(join(dir, "argv"), "utf8")).trimEnd().split("\n");
      const pid = Number(pidText);
      const qmpArg = argv[argv.indexOf("-qmp") + 1]!;
      const path = qmpArg.slice("unix:".length, qmpArg.indexOf(","));
      const quit: QmpScript = (c, p) => {
        p.reply(c);
        process.kill(pid, "SIGTERM");
      };
      const peer = await scriptedQmp({ quit, ...scripts }, path);
      return { argv, pid, peer };
    },
  };
}
