/**
 * The backends' stand-in for `WSAPROTOCOL_INFOW`: a small, versioned
 * binary endpoint descriptor carried in
 * `CreateDuplicateSocketRequest.protocol_info`. It names the memory-transfer
 * socket both shims meet on, which side listens, and a one-time token the
 * listener checks before it accepts the connection. It lives with the
 * service, not in a backend, because the orchestrator makes the default pair
 * and backends depend on the service, never the other way.
 *
 * Layout, version 1 (all integers big-endian), exactly `30 + N` bytes:
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 4 | magic `"TMEP"` (0x54 0x4d 0x45 0x50) |
 * | 4 | 1 | version, `1` |
 * | 5 | 1 | transport: `1` unix, `2` tcp |
 * | 6 | 1 | role: `1` listen, `2` connect |
 * | 7 | 1 | flags, `0` (reserved) |
 * | 8 | 4 | HCS session number of the migration (`sessionNumber(session_id)`) |
 * | 12 | 16 | token: random, the same in both sides' descriptors |
 * | 28 | 2 | N, the address length, 1 … 1024 |
 * | 30 | N | address, UTF-8 (below) |
 *
 * The address: for unix, an absolute socket path (≤ 107 bytes, no NUL); for
 * tcp, `HOST:PORT` (IPv4, `[IPv6]` or `localhost`, port 1 … 65535).
 *
 * Anything else (short input, wrong magic, unknown version, transport, role
 * or flags, a session number of another migration, a bad address, trailing
 * bytes) is rejected with INVALID_ARGUMENT naming the problem.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";

/** The four bytes every endpoint descriptor starts with. */
export const ENDPOINT_DESCRIPTOR_MAGIC = "TMEP";
/** The descriptor version this build writes and reads. */
export const ENDPOINT_DESCRIPTOR_VERSION = 1;
const HEADER = 30;
const MAX_ADDRESS = 1024;
const MAX_UNIX_PATH = 107;

/** The socket the memory transfer runs over. */
export type EndpointTransport = "unix" | "tcp";
/** Whether a side listens on the address (the destination) or connects to it (the source). */
export type EndpointRole = "listen" | "connect";

/**
 * What a backend carries in `protocol_info` where hcsshim carries a
 * duplicated socket (`WSAPROTOCOL_INFOW`): where and how to meet the other side.
 */
export interface EndpointDescriptor {
  readonly version: 1;
  readonly transport: EndpointTransport;
  readonly role: EndpointRole;
  readonly sessionNumber: number;
  /** 16 bytes. */
  readonly token: Uint8Array;
  /** unix: the socket path; tcp: `HOST:PORT`. */
  readonly address: string;
}

const TRANSPORTS: Record<number, EndpointTransport> = { 1: "unix", 2: "tcp" };
const ROLES: Record<number, EndpointRole> = { 1: "listen", 2: "connect" };

function invalid(problem: string): TtrpcError {
  return new TtrpcError(`protocol_info: ${problem}`, Code.InvalidArgument);
}

/** Checks an address for a transport; returns the problem, or undefined when fine. */
export function addressProblem(transport: EndpointTransport, address: string): string | undefined {
  if (address === "") return "empty address";
  if (address.includes("\0")) return "address contains NUL";
  if (transport === "unix") {
    if (!address.startsWith("/")) return `unix address "${address}" is not an absolute path`;
    if (Buffer.byteLength(address) > MAX_UNIX_PATH) return `unix address is longer than ${MAX_UNIX_PATH} bytes`;
    return undefined;
  }
  const parsed = parseHostPort(address);
  return typeof parsed === "string" ? parsed : undefined;
}

/** `HOST:PORT` → host and port, or the problem. */
export function parseHostPort(address: string): { host: string; port: number } | string {
  const i = address.lastIndexOf(":");
  if (i <= 0) return `tcp address "${address}" is not HOST:PORT`;
  let host = address.slice(0, i);
  const portText = address.slice(i + 1);
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) return `tcp address "${address}": "${host}" is not an IPv6 address`;
  } else if (host !== "localhost" && isIP(host) !== 4) {
    return `tcp address "${address}": host must be an IPv4 address, [IPv6] or localhost`;
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return `tcp address "${address}": port must be 1-65535`;
  }
  return { host, port: Number(portText) };
}

/** Encodes a descriptor (validating it like the parser does). */
export function encodeEndpointDescriptor(d: Omit<EndpointDescriptor, "version">): Uint8Array {
  const problem = addressProblem(d.transport, d.address);
  if (problem !== undefined) throw invalid(problem);
  if (d.token.length !== 16) throw invalid("token must be 16 bytes");
  const address = Buffer.from(d.address, "utf8");
  const out = Buffer.alloc(HEADER + address.length);
  out.write(ENDPOINT_DESCRIPTOR_MAGIC, 0, "latin1");
  out[4] = ENDPOINT_DESCRIPTOR_VERSION;
  out[5] = d.transport === "unix" ? 1 : 2;
  out[6] = d.role === "listen" ? 1 : 2;
  out[7] = 0;
  out.writeUInt32BE(d.sessionNumber >>> 0, 8);
  out.set(d.token, 12);
  out.writeUInt16BE(address.length, 28);
  address.copy(out, HEADER);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * Parses and strictly validates `protocol_info`. `sessionNumber`, when
 * given, must match the descriptor's. Throws TtrpcError(INVALID_ARGUMENT).
 */
export function parseEndpointDescriptor(bytes: Uint8Array, sessionNumber?: number): EndpointDescriptor {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < HEADER) throw invalid(`${b.length} bytes, shorter than the ${HEADER}-byte endpoint descriptor header`);
  if (b.toString("latin1", 0, 4) !== ENDPOINT_DESCRIPTOR_MAGIC) {
    throw invalid(
      `not a ttrpc-es endpoint descriptor (magic is not "${ENDPOINT_DESCRIPTOR_MAGIC}"; ` +
        "a WSAPROTOCOL_INFOW needs the Windows shim)",
    );
  }
  if (b[4] !== ENDPOINT_DESCRIPTOR_VERSION)
    throw invalid(`unknown endpoint descriptor version ${b[4]} (supported: ${ENDPOINT_DESCRIPTOR_VERSION})`);
  const transport = TRANSPORTS[b[5]!];
  if (transport === undefined) throw invalid(`unknown transport ${b[5]} (1 = unix, 2 = tcp)`);
  const role = ROLES[b[6]!];
  if (role === undefined) throw invalid(`unknown role ${b[6]} (1 = listen, 2 = connect)`);
  if (b[7] !== 0) throw invalid(`reserved flags are 0x${b[7]!.toString(16)}, must be 0`);
  const number = b.readUInt32BE(8);
  if (sessionNumber !== undefined && number !== sessionNumber >>> 0) {
    throw invalid(`descriptor is for session number ${number}, this session's is ${sessionNumber >>> 0}`);
  }
  const token = Uint8Array.from(b.subarray(12, 28));
  if (token.every((x) => x === 0)) throw invalid("token is all zero");
  const length = b.readUInt16BE(28);
  if (length === 0) throw invalid("missing address (length 0)");
  if (length > MAX_ADDRESS) throw invalid(`address length ${length} is over ${MAX_ADDRESS}`);
  if (b.length < HEADER + length) throw invalid(`address truncated: ${b.length - HEADER} of ${length} bytes`);
  if (b.length > HEADER + length) throw invalid(`${b.length - HEADER - length} trailing bytes after the descriptor`);
  const raw = b.subarray(HEADER, HEADER + length);
  const address = raw.toString("utf8");
  if (!Buffer.from(address, "utf8").equals(raw)) throw invalid("address is not valid UTF-8");
  const problem = addressProblem(transport, address);
  if (problem !== undefined) throw invalid(problem);
  return { version: 1, transport, role, sessionNumber: number, token, address };
}

/**
 * Makes the two descriptors of one migration: the destination listens, the
 * source connects, both with the same fresh token. For the orchestrator.
 */
export function createEndpointPair(options: {
  transport: EndpointTransport;
  address: string;
  sessionNumber: number;
  /** Which side listens. Default "destination". */
  listener?: "source" | "destination";
}): { source: Uint8Array; destination: Uint8Array; token: Uint8Array } {
  const token = new Uint8Array(randomBytes(16));
  const listener = options.listener ?? "destination";
  const make = (side: "source" | "destination") =>
    encodeEndpointDescriptor({
      transport: options.transport,
      address: options.address,
      sessionNumber: options.sessionNumber,
      token,
      role: side === listener ? "listen" : "connect",
    });
  return { source: make("source"), destination: make("destination"), token };
}
