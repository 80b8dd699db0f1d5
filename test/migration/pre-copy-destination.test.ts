// The destination side of the pre-copy transfer, driven frame by frame by
// the test as the source: the layout agreed, pages applied from every
// channel, passes acknowledged, the device state loaded, the image verified;
// and each way the source (or the transfer) can go wrong ends in the result
// and the Abort the source is owed. Real unix sockets; the test speaks the
// wire protocol with its own encoders, and reads the answers with the real
// frame reader.
import { once } from "node:events";
import type { Socket } from "node:net";
import { crc32, deflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferResult } from "../../src/migration/backend.js";
import { FrameReader } from "../../src/migration/simulated/frame-io.js";
import { runDestination } from "../../src/migration/simulated/pre-copy-destination.js";
import { SimulatedVm } from "../../src/migration/simulated/simulated-vm.js";
import type { TransferEvent } from "../../src/migration/simulated/transfer-events.js";
import {
  AbortReason,
  decodeAbort,
  decodePassAck,
  decodeResult,
  encodeDeviceState,
  encodeEmpty,
  encodeFrame,
  encodePassBegin,
  encodePassEnd,
  encodeSetup,
  encodeVerify,
  encodeZeroPages,
  type Frame,
  MessageType,
} from "../../src/migration/simulated/wire-protocol.js";
import { unixSocketPair } from "../common.js";

const PAGE = 512;
const PAGES = 64;
const MAX_PAYLOAD = 1 << 20;

/** The test's end of one channel: it writes as the source and reads what the destination answers. */
interface Peer {
  readonly socket: Socket;
  readonly reader: FrameReader;
}

function vm(processorCount = 2, fill: "zero" | "pattern" = "zero"): SimulatedVm {
  return new SimulatedVm({ sandboxId: "sb", memoryBytes: PAGES * PAGE, pageSize: PAGE, fill, processorCount });
}

/** `early`: frames the source wrote on the control channel that are read before the transfer starts. */
async function start(channels: number, o: { compressionWorkers?: number; early?: Buffer } = {}) {
  const links = [];
  const peers: Peer[] = [];
  for (let c = 0; c < channels; c++) {
    const [mine, theirs] = await unixSocketPair();
    links.push({ socket: theirs, reader: new FrameReader(theirs, { maxPayload: MAX_PAYLOAD }) });
    peers.push({ socket: mine, reader: new FrameReader(mine, { maxPayload: MAX_PAYLOAD }) });
  }
  const closed = peers.map((p) => once(p.socket, "close"));
  let sent = 0;
  if (o.early !== undefined) {
    // Our listener runs after the reader's: once it fires, the reader holds the frames.
    const arrived = once(links[0]!.socket, "data");
    peers[0]!.socket.write(o.early);
    sent += o.early.length;
    await arrived;
  }
  const target = vm();
  const events: TransferEvent[] = [];
  const phases: number[] = [];
  const abort = new AbortController();
  const result: Promise<TransferResult> = runDestination({
    vm: target,
    links,
    report: { phase: (p) => phases.push(p), blackoutExited: () => {} },
    signal: abort.signal,
    observe: (e) => events.push(e),
    compressionWorkers: o.compressionWorkers ?? 1,
    digestAhead: false,
  });
  /** Writes frames on channel `c`, counting their bytes. */
  const send = (c: number, ...frames: Buffer[]) => {
    for (const f of frames) {
      sent += f.length;
      peers[c]!.socket.write(f);
    }
  };
  const next = (c = 0): Promise<Frame> => peers[c]!.reader.next();
  return { target, events, phases, abort, result, peers, closed, send, next, sent: () => sent };
}

type Run = Awaited<ReturnType<typeof start>>;

function setup(o: { pageSize?: number; pageCount?: number; checksums?: boolean } = {}): Buffer {
  return encodeSetup({
    pageSize: o.pageSize ?? PAGE,
    pageCount: o.pageCount ?? PAGES,
    checksums: o.checksums ?? false,
    compression: false,
  });
}

function pagesFrame(source: SimulatedVm, first: number, count: number, checksums = false): Buffer {
  const data = Buffer.concat(source.memory.views(first, count));
  const sums = Buffer.alloc(checksums ? 4 * count : 0);
  for (let k = 0; checksums && k < count; k++) sums.writeUInt32BE(crc32(source.memory.page(first + k)), 4 * k);
  const list = Buffer.alloc(12);
  list.writeUInt32BE(1, 0);
  list.writeUInt32BE(first, 4);
  list.writeUInt32BE(count, 8);
  return encodeFrame(MessageType.Pages, Buffer.concat([list, sums, data]));
}

/** Setup sent, Ready read. */
async function agreed(run: Run, checksums = false): Promise<void> {
  run.send(0, setup({ checksums }));
  expect((await run.next()).type).toBe(MessageType.Ready);
}

/** The Abort the destination sent on the control channel before it closed. */
async function abortFrame(run: Run): Promise<{ reason: AbortReason; message: string }> {
  for (;;) {
    const f = await run.next();
    if (f.type === MessageType.Abort) return decodeAbort(f.payload);
  }
}

async function failed(run: Run, state: PhaseState, message: string, reason: AbortReason): Promise<void> {
  const result = await run.result;
  expect(result).toMatchObject({ ok: false, state, message });
  expect(await abortFrame(run)).toEqual({ reason, message });
  expect(run.events.filter((e) => e.type === "failed")).toEqual([
    expect.objectContaining({ side: "destination", message }),
  ]);
}

describe("the destination", () => {
  it("applies pages from every channel, acknowledges each pass, loads the device state and verifies the image", async () => {
    const source = vm(2, "pattern");
    // The guest left pages 40 … 43 zero: they go as a marker.
    source.memory.zeroPages(40, 4);
    // The Setup is in before the transfer starts: it is still the control channel's.
    const run = await start(2, { early: setup() });
    expect((await run.next()).type).toBe(MessageType.Ready);
    run.send(0, encodePassBegin({ pass: 1, pages: PAGES, blackout: false }));
    // Pages on both channels; zero pages and more pages on the data channel after each other.
    run.send(0, pagesFrame(source, 0, 20));
    run.send(1, pagesFrame(source, 20, 20), encodeZeroPages([40, 4]), pagesFrame(source, 44, 20));
    run.send(0, encodePassEnd({ pass: 1, last: false }));
    run.send(1, encodePassEnd({ pass: 1, last: false }));
    const ack = await run.next();
    expect(ack.type).toBe(MessageType.PassAck);
    expect(decodePassAck(ack.payload)).toBe(1);
    // The blackout: a page changed, the device state, its end.
    source.memory.page(3).fill(9);
    run.send(0, encodePassBegin({ pass: 2, pages: 1, blackout: true }));
    run.send(1, pagesFrame(source, 3, 1));
    run.send(0, encodePassEnd({ pass: 2, last: true }));
    run.send(1, encodePassEnd({ pass: 2, last: true }));
    run.send(0, encodeDeviceState(source.deviceState()), encodeEmpty(MessageType.BlackoutEnd));
    expect((await run.next()).type).toBe(MessageType.OfflineAck);
    const digest = source.memory.digest();
    run.send(0, encodeVerify({ digest, blackoutMs: 12, stoppedAtMs: 1_700_000_000_000 }));
    const answer = await run.next();
    expect(answer.type).toBe(MessageType.Result);
    expect(decodeResult(answer.payload)).toEqual({ ok: true, digest, message: "" });
    expect(await run.result).toEqual({ ok: true });
    expect(run.target.memory.equals(source.memory)).toBe(true);
    // Every channel is closed once the transfer ended (the data channel has no other reason to).
    await run.closed[1];
    const done = run.events.find((e) => e.type === "done");
    // Every frame the source sent is counted, framing included.
    expect(done).toMatchObject({ stats: { wireBytes: run.sent(), zeroPages: 4, blackoutPages: 1, channels: 2 } });
  });

  it("refuses a stream that does not start with Setup", async () => {
    const run = await start(1);
    run.send(0, encodePassBegin({ pass: 1, pages: 0, blackout: false }));
    const message = "memory stream: expected Setup, got PassBegin";
    await failed(run, PhaseState.DESTINATION_FAILED, message, AbortReason.Error);
    // Nothing agreed yet: no checksums.
    expect(run.events.find((e) => e.type === "failed")).toMatchObject({ stats: { checksums: false, wireBytes: 15 } });
  });

  it.each([
    [1024, PAGES, `memory layout mismatch: source has ${PAGES} pages of 1024 bytes, destination ${PAGES} of ${PAGE}`],
    [PAGE, 32, `memory layout mismatch: source has 32 pages of ${PAGE} bytes, destination ${PAGES} of ${PAGE}`],
  ])(
    "refuses a source whose layout is not its own (%i-byte pages, %i of them)",
    async (pageSize, pageCount, message) => {
      const run = await start(1);
      run.send(0, setup({ pageSize, pageCount }));
      await failed(run, PhaseState.DESTINATION_FAILED, message, AbortReason.ChecksumMismatch);
    },
  );

  // Each after the layout was agreed: one frame on one channel, and the failure it ends in.
  it.each([
    [
      "refuses a message the destination never gets",
      1,
      0,
      encodeEmpty(MessageType.Ready),
      "memory stream: unexpected Ready on the destination",
      AbortReason.Error,
    ],
    [
      "refuses a control message on a data channel",
      2,
      1,
      setup(),
      "memory stream: unexpected Setup on a data channel",
      AbortReason.Error,
    ],
    [
      "refuses a device state its VM cannot load",
      1,
      0,
      encodeDeviceState(vm(4).deviceState()),
      "device state rejected: device state has 4 processors, the VM has 2",
      AbortReason.ChecksumMismatch,
    ],
    [
      "refuses the end of the blackout without a device state",
      1,
      0,
      encodeEmpty(MessageType.BlackoutEnd),
      "blackout ended without device state",
      AbortReason.ChecksumMismatch,
    ],
  ])("%s", async (_, channels, channel, frame, message, reason) => {
    const run = await start(channels);
    await agreed(run);
    run.send(channel, frame);
    await failed(run, PhaseState.DESTINATION_FAILED, message, reason);
  });

  it("fails the transfer when a compressed frame's checksum does not match", async () => {
    const source = vm(2, "pattern");
    const run = await start(2);
    await agreed(run, true);
    run.send(0, encodePassBegin({ pass: 1, pages: 4, blackout: false }));
    const list = Buffer.alloc(12);
    list.writeUInt32BE(1, 0);
    list.writeUInt32BE(8, 4);
    list.writeUInt32BE(4, 8);
    const sums = Buffer.alloc(16);
    for (let k = 0; k < 4; k++) sums.writeUInt32BE(crc32(source.memory.page(8 + k)), 4 * k);
    sums[8]! ^= 1;
    const data = deflateRawSync(Buffer.concat(source.memory.views(8, 4)));
    run.send(1, encodeFrame(MessageType.CompressedPages, Buffer.concat([list, sums, data])));
    const message = "checksum mismatch on page 10 in pass 1";
    await failed(run, PhaseState.DESTINATION_FAILED, message, AbortReason.ChecksumMismatch);
  });

  it("ends cancelled when its signal aborts, closing every channel", async () => {
    const run = await start(2);
    await agreed(run);
    run.abort.abort();
    expect(await run.result).toMatchObject({ ok: false, state: PhaseState.CANCELLED, message: "cancelled" });
    await Promise.all(run.closed);
    expect(run.events.filter((e) => e.type === "failed")).toEqual([expect.objectContaining({ message: "cancelled" })]);
  });
});
