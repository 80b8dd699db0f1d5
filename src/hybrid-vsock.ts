import { Socket } from "node:net";
import { Code } from "./code.js";
import { TtrpcError } from "./ttrpc-error.js";

/**
 * Timing of a hybrid vsock dial. The defaults are Kata Containers' (its
 * agent client in virtcontainers/pkg/agent/protocols/client).
 */
export interface HybridVsockOptions {
  /** How long one attempt waits for the VMM's `OK`; default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** How long attempts go on (a booting guest's agent is not listening yet); default 30 000 ms. */
  dialTimeoutMs?: number;
  /** At most this many attempts; default: as many as the dial timeout allows. */
  maxAttempts?: number;
  /**
   * The pause between attempts; default 10 ms. Kata retries at once; a short
   * pause spares a VMM that refuses at once a busy loop.
   */
  retryDelayMs?: number;
  signal?: AbortSignal;
}

// A line longer than this is no handshake answer ("OK " and a u32 port).
const MAX_ANSWER = 64;

/** How one attempt failed: the VMM refused the port, did not answer in time, answered garbage, or was not there. */
type Failure =
  | { kind: "refused" }
  | { kind: "timeout" }
  | { kind: "malformed"; answer: string }
  | { kind: "socket"; error: Error };

/**
 * Connects to a guest's vsock port through the VMM's hybrid vsock socket
 * (Firecracker and Cloud Hypervisor docs/vsock.md): connect to the unix
 * socket, send `CONNECT <port>\n`, read `OK <host port>\n`. A VMM with nothing
 * listening on the port closes the connection. Bytes after the answer's
 * newline are the guest's and stay in the socket. Retries as Kata does until
 * the dial timeout; the error names the socket, the port and why the last
 * attempt failed.
 */
export async function dialHybridVsock(
  target: { path: string; port: number },
  options: HybridVsockOptions = {},
): Promise<Socket> {
  const handshakeMs = options.handshakeTimeoutMs ?? 10_000;
  const dialMs = options.dialTimeoutMs ?? 30_000;
  const retryMs = options.retryDelayMs ?? 10;
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  const { signal } = options;
  const start = performance.now();
  let attempts = 0;
  for (;;) {
    if (signal?.aborted) throw new TtrpcError("connect cancelled", Code.Canceled, { cause: signal.reason });
    const left = dialMs - (performance.now() - start);
    attempts++;
    // The last attempt gets only what is left of the dial timeout.
    const attemptMs = Math.max(1, Math.min(handshakeMs, left));
    const r = await attempt(target, attemptMs, signal);
    if (r instanceof Socket) return r;
    const after = dialMs - (performance.now() - start);
    if (signal?.aborted) throw new TtrpcError("connect cancelled", Code.Canceled, { cause: signal.reason });
    if (after <= retryMs || attempts >= maxAttempts) throw failureError(target, r, attemptMs, attempts);
    await pause(retryMs, signal);
  }
}

function failureError(
  { path, port }: { path: string; port: number },
  f: Failure,
  attemptMs: number,
  attempts: number,
): TtrpcError {
  const where = `hybrid vsock unix:${path} port ${port}`;
  const tries = attempts === 1 ? "" : ` (${attempts} attempts)`;
  switch (f.kind) {
    case "refused":
      return new TtrpcError(
        `${where}: the VMM refused port ${port}: nothing in the guest listens on vsock port ${port}${tries}`,
        Code.Unavailable,
      );
    case "timeout":
      return new TtrpcError(
        `${where}: the VMM did not answer CONNECT ${port} within ${Math.round(attemptMs)} ms${tries}`,
        Code.DeadlineExceeded,
      );
    case "malformed":
      return new TtrpcError(
        `${where}: the VMM answered ${JSON.stringify(f.answer)} to CONNECT ${port}, not "OK <port>"${tries}`,
        Code.Unavailable,
      );
    case "socket":
      return new TtrpcError(`cannot connect to ${where}: ${f.error.message}${tries}`, Code.Unavailable, {
        cause: f.error,
      });
  }
}

/** One connect and handshake; resolves with the socket or how it failed. */
function attempt(
  { path, port }: { path: string; port: number },
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Socket | Failure> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let answer = Buffer.alloc(0);
    let settled = false;
    // The error listener stays: until the caller attaches its own, an error
    // (EPIPE, ECONNRESET) must not become an uncaught exception.
    const done = (r: Socket | Failure) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("readable", onReadable).off("end", onEnd).off("close", onEnd);
      if (!(r instanceof Socket)) socket.destroy();
      resolve(r);
    };
    const onAbort = () => done({ kind: "socket", error: new Error("cancelled") });
    const onEnd = () => done({ kind: "refused" });
    const onError = (error: Error) => done({ kind: "socket", error });
    const onReadable = () => {
      for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
        answer = Buffer.concat([answer, chunk]);
        const nl = answer.indexOf(0x0a);
        if (nl < 0) {
          if (answer.length > MAX_ANSWER) return done({ kind: "malformed", answer: answer.toString("latin1") });
          continue;
        }
        const line = answer.subarray(0, nl).toString("latin1");
        if (!/^OK \d+$/.test(line)) return done({ kind: "malformed", answer: line });
        const rest = answer.subarray(nl + 1);
        done(socket);
        // Already the guest's bytes: the connection's reader gets them first.
        if (rest.length > 0) socket.unshift(rest);
        return;
      }
    };
    const timer = setTimeout(() => done({ kind: "timeout" }), timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.on("error", onError).on("end", onEnd).on("close", onEnd).on("readable", onReadable);
    socket.connect({ path }, () => socket.write(`CONNECT ${port}\n`));
  });
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
