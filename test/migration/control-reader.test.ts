// The control messages of a memory transfer (control-reader.ts): the peer's
// Abort becomes a PeerAbort, a failure told to the reader ends any read or
// wait with that first failure, a cancelled signal ends a wait, and once
// watching, frames read ahead come out in order while a background Abort is
// seen at once. A real FrameReader on a real unix socket pair; the peer
// writes encoded frames.
import { getEventListeners } from "node:events";
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { ControlReader, PeerAbort } from "../../src/migration/simulated/control-reader.js";
import { FrameReader } from "../../src/migration/simulated/frame-io.js";
import type { Link } from "../../src/migration/simulated/transfer-link.js";
import {
  AbortReason,
  encodeAbort,
  encodeEmpty,
  encodePassAck,
  type Frame,
  MessageType,
  WireError,
} from "../../src/migration/simulated/wire-protocol.js";
import { rejection, unixSocketPair } from "../common.js";

/** A link whose reader reads the accepted end of a unix socket pair; `peer` writes to it. */
async function linkPair(): Promise<{ link: Link; peer: Socket }> {
  const [peer, socket] = await unixSocketPair();
  return { link: { socket, reader: new FrameReader(socket, { maxPayload: 1 << 20 }) }, peer };
}

describe("ControlReader", () => {
  it("reads the control channel's frames in order, showing each to onFrame first", async () => {
    const { link, peer } = await linkPair();
    const seen: MessageType[] = [];
    const control = new ControlReader(link, new AbortController().signal, (f) => seen.push(f.type));
    peer.write(Buffer.concat([encodeEmpty(MessageType.Ready), encodePassAck(4)]));
    expect((await control.read()).type).toBe(MessageType.Ready);
    const ack = await control.next();
    expect([ack.type, ack.payload.readUInt32BE(0)]).toEqual([MessageType.PassAck, 4]);
    expect(seen).toEqual([MessageType.Ready, MessageType.PassAck]);
  });

  it("reads another channel's reader when given one, and shows its frames to onFrame too", async () => {
    const control = await linkPair();
    const data = await linkPair();
    const seen: Frame[] = [];
    const reader = new ControlReader(control.link, new AbortController().signal, (f) => seen.push(f));
    data.peer.write(encodePassAck(11));
    const f = await reader.read(data.link.reader);
    expect([f.type, f.payload.readUInt32BE(0)]).toEqual([MessageType.PassAck, 11]);
    expect(seen).toEqual([f]);
  });

  it("turns the peer's Abort into a PeerAbort with its reason and message, after onFrame saw it", async () => {
    const { link, peer } = await linkPair();
    const seen: MessageType[] = [];
    const control = new ControlReader(link, new AbortController().signal, (f) => seen.push(f.type));
    peer.write(encodeAbort({ reason: AbortReason.Cancelled, message: "stopped by the operator" }));
    const err = await rejection(control.read(), PeerAbort);
    expect(err).toMatchObject({ name: "PeerAbort", reason: AbortReason.Cancelled, message: "stopped by the operator" });
    expect(seen).toEqual([MessageType.Abort]);
  });

  it("expect() returns a frame of the type asked for and refuses another", async () => {
    const { link, peer } = await linkPair();
    const control = new ControlReader(link, new AbortController().signal);
    peer.write(Buffer.concat([encodeEmpty(MessageType.Ready), encodeEmpty(MessageType.OfflineAck)]));
    expect((await control.expect(MessageType.Ready)).type).toBe(MessageType.Ready);
    const err = await rejection(control.expect(MessageType.Ready), WireError);
    expect(err.message).toBe("memory stream: expected Ready, got OfflineAck");
  });

  it("fail() ends a read under way, and every later check, read and wait, with the first failure only", async () => {
    const { link } = await linkPair();
    const control = new ControlReader(link, new AbortController().signal);
    const reading = control.read();
    const first = new Error("a data channel broke");
    control.fail(first);
    control.fail(new Error("a later failure"));
    expect(await rejection(reading)).toBe(first);
    expect(control.error).toBe(first);
    expect(() => control.check()).toThrow(first);
    expect(await rejection(control.failed)).toBe(first);
    expect(await rejection(control.next())).toBe(first);
  });

  it("a failure no one waits for is not an unhandled rejection", async () => {
    const { link, peer } = await linkPair();
    const control = new ControlReader(link, new AbortController().signal);
    control.fail(new Error("nobody is reading"));
    // A round trip on the socket: the rejection had every chance to be reported unhandled meanwhile.
    const echoed = new Promise((resolve) => link.socket.once("data", resolve));
    peer.write(encodeEmpty(MessageType.Ready));
    await echoed;
    expect(control.error?.message).toBe("nobody is reading");
  });

  it("check() passes while all is well, throws the signal's Error reason, or a plain 'cancelled'", async () => {
    const { link } = await linkPair();
    const withError = new AbortController();
    const a = new ControlReader(link, withError.signal);
    expect(() => a.check()).not.toThrow();
    const reason = new Error("the orchestrator cancelled");
    withError.abort(reason);
    expect(() => a.check()).toThrow(reason);
    const withString = new AbortController();
    const b = new ControlReader(link, withString.signal);
    withString.abort("not an Error");
    expect(() => b.check()).toThrow(new Error("cancelled"));
  });

  it("watching, sees the peer's Abort while no one reads, and fails with it", async () => {
    const { link, peer } = await linkPair();
    const control = new ControlReader(link, new AbortController().signal);
    control.watch();
    peer.write(encodeAbort({ reason: AbortReason.ChecksumMismatch, message: "page 7" }));
    const err = await rejection(control.failed);
    expect(err).toMatchObject({ name: "PeerAbort", reason: AbortReason.ChecksumMismatch, message: "page 7" });
    expect(control.error).toBe(err);
    expect(await rejection(control.next())).toBe(err);
  });

  it("watching, hands out the frames read ahead in order, waking a waiter, and leaves no listener on the signal", async () => {
    const { link, peer } = await linkPair();
    const signal = new AbortController().signal;
    const control = new ControlReader(link, signal);
    control.watch();
    const waiting = control.next();
    expect(getEventListeners(signal, "abort")).toHaveLength(1);
    peer.write(Buffer.concat([encodePassAck(1), encodePassAck(2)]));
    const first = await waiting;
    expect(first.payload.readUInt32BE(0)).toBe(1);
    expect((await control.next()).payload.readUInt32BE(0)).toBe(2);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("watching, a wait ends when the signal aborts, before a frame that comes later", async () => {
    const { link, peer } = await linkPair();
    const controller = new AbortController();
    const control = new ControlReader(link, controller.signal);
    control.watch();
    const waiting = control.next();
    const reason = new Error("cancelled by the orchestrator");
    controller.abort(reason);
    peer.write(encodeEmpty(MessageType.Ready));
    expect(await rejection(waiting)).toBe(reason);
  });

  it("watching, next() runs the check it is given before each wait", async () => {
    const { link, peer } = await linkPair();
    const control = new ControlReader(link, new AbortController().signal);
    control.watch();
    let calls = 0;
    const stop = new Error("the pass is over");
    const waiting = control.next(() => {
      calls++;
      if (calls === 2) throw stop;
    });
    peer.write(encodeEmpty(MessageType.Ready));
    // The first check passed; the frame's arrival wakes the wait, and the second check throws before it is taken.
    expect(await rejection(waiting)).toBe(stop);
    expect((await control.next()).type).toBe(MessageType.Ready);
  });
});
