// A VMM stand-in: the host side of a hybrid vsock device as Firecracker's
// docs/vsock.md describes it. THE ONE MOCK of these tests: Firecracker and
// Cloud Hypervisor are not in Debian's archive, so nothing real can play the
// VMM here. Everything behind it is real (a ttrpc-es server on a unix socket
// standing for the guest's agent), and so is everything in front.
//
// Host-initiated: the host connects to `path`, writes `CONNECT <port>\n`
// ("connect" in any case); when a guest listens on the port the stand-in
// answers `OK <host port>\n` (host ports counted from 2^30, as Firecracker
// assigns them) and forwards bytes both ways; otherwise it closes the
// connection. Guest-initiated: the stand-in connects to `<path>_<port>`.
import { Server as NetServer, type Socket, createConnection } from "node:net";

export interface StandInOptions {
  /** Hold the next N connections open without an answer (a slow VMM). */
  stall?: number;
  /** Refuse the next N CONNECTs even to listened ports (the agent not up yet). */
  refuse?: number;
  /** Bytes sent right after the OK line, in the same write (the guest spoke first). */
  extra?: Uint8Array;
  /** An answer line to send instead of OK (a broken VMM). */
  answer?: string;
}

export class VmmStandIn {
  /** Every handshake line received, in order. */
  readonly lines: string[] = [];
  readonly #guests = new Map<number, string>();
  readonly #sockets = new Set<Socket>();
  readonly #server = new NetServer((s) => this.#accept(s));
  #hostPort = 1 << 30;

  private constructor(
    readonly path: string,
    readonly options: StandInOptions,
  ) {}

  static async start(path: string, options: StandInOptions = {}): Promise<VmmStandIn> {
    const vmm = new VmmStandIn(path, options);
    await new Promise<void>((resolve, reject) => {
      vmm.#server.once("error", reject);
      vmm.#server.listen(path, () => resolve());
    });
    return vmm;
  }

  /** A guest program listens on a vsock port: here, a unix socket the stand-in forwards to. */
  guestListen(port: number, backend: string): void {
    this.#guests.set(port, backend);
  }

  /** The guest connects to a host port: the VMM connects to `<path>_<port>`. */
  guestConnect(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = this.#track(createConnection({ path: `${this.path}_${port}` }));
      s.once("error", reject);
      s.once("connect", () => {
        s.off("error", reject);
        resolve(s);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(s: Socket): Socket {
    this.#sockets.add(s);
    s.on("error", () => {}).on("close", () => this.#sockets.delete(s));
    return s;
  }

  #accept(host: Socket): void {
    this.#track(host);
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) return;
      host.off("data", onData);
      host.pause();
      const line = buf.subarray(0, nl).toString("latin1");
      this.lines.push(line);
      this.#handshake(host, line, buf.subarray(nl + 1));
    };
    host.on("data", onData);
  }

  #handshake(host: Socket, line: string, rest: Buffer): void {
    const o = this.options;
    if (o.stall !== undefined && o.stall > 0) {
      o.stall--;
      return; // silent until the host gives up
    }
    const m = /^connect (\d+)$/i.exec(line);
    const backend = m === null ? undefined : this.#guests.get(Number(m[1]));
    if (backend === undefined || (o.refuse !== undefined && o.refuse-- > 0)) {
      host.destroy(); // nothing listens on that port: Firecracker closes the connection
      return;
    }
    const guest = this.#track(createConnection({ path: backend }));
    guest.once("connect", () => {
      const ok = Buffer.from(o.answer ?? `OK ${this.#hostPort++}\n`, "latin1");
      host.write(o.extra === undefined ? ok : Buffer.concat([ok, o.extra]));
      if (rest.length > 0) guest.write(rest);
      host.pipe(guest).pipe(host);
      host.resume();
    });
    guest.on("close", () => host.destroy());
    host.on("close", () => guest.destroy());
  }
}
