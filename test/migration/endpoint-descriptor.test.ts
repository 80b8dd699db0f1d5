// The endpoint descriptor's address rules and its length checks, byte by
// byte: what a backend accepts in protocol_info, and the exact problem it
// names (the message is what an operator reads in the INVALID_ARGUMENT).
import { describe, expect, it } from "vitest";
import { encodeEndpointDescriptor, parseEndpointDescriptor } from "ttrpc-es/migration/simulated";
import { addressProblem, parseHostPort } from "../../src/migration/endpoint-descriptor.js";
import { invalidArgument } from "./invalid-argument.js";

const TOKEN = new Uint8Array(16).fill(7);

/** A descriptor written by hand: header fields as given, `length` may lie about the address. */
function raw(options: { transport?: number; address: Uint8Array | string; length?: number }): Buffer {
  const address = typeof options.address === "string" ? Buffer.from(options.address, "utf8") : options.address;
  const b = Buffer.alloc(30 + address.length);
  b.write("TMEP", 0, "latin1");
  b[4] = 1;
  b[5] = options.transport ?? 1;
  b[6] = 1;
  b[7] = 0;
  b.writeUInt32BE(5, 8);
  b.set(TOKEN, 12);
  b.writeUInt16BE(options.length ?? address.length, 28);
  Buffer.from(address).copy(b, 30);
  return b;
}

/** The rawMessage of the INVALID_ARGUMENT the parser throws. */
const parseProblem = (bytes: Uint8Array): string => invalidArgument(() => parseEndpointDescriptor(bytes));

/** The rawMessage of the INVALID_ARGUMENT the encoder throws for a connect descriptor. */
const encodeProblem = (transport: "unix" | "tcp", address: string, token = TOKEN): string =>
  invalidArgument(() => encodeEndpointDescriptor({ transport, role: "connect", sessionNumber: 1, token, address }));

describe("addressProblem", () => {
  it("names an empty address and one with a NUL, for either transport", () => {
    expect(addressProblem("unix", "")).toBe("empty address");
    expect(addressProblem("tcp", "")).toBe("empty address");
    expect(addressProblem("unix", "/tmp/a\0b.sock")).toBe("address contains NUL");
    expect(addressProblem("tcp", "127.0.0.1:80\0")).toBe("address contains NUL");
    expect(encodeProblem("unix", "")).toBe("protocol_info: empty address");
  });

  it("takes a unix path of up to 107 bytes, counted in UTF-8", () => {
    const at107 = `/${"a".repeat(106)}`;
    expect(addressProblem("unix", at107)).toBeUndefined();
    expect(addressProblem("unix", `${at107}b`)).toBe("unix address is longer than 107 bytes");
    // Two-byte characters: 55 UTF-16 units, but 109 bytes.
    expect(addressProblem("unix", `/${"é".repeat(54)}`)).toBe("unix address is longer than 107 bytes");
    expect(addressProblem("unix", `/${"é".repeat(53)}`)).toBeUndefined();
    expect(addressProblem("unix", "relative.sock")).toBe('unix address "relative.sock" is not an absolute path');
  });

  it("checks a tcp address as HOST:PORT", () => {
    expect(addressProblem("tcp", "127.0.0.1:80")).toBeUndefined();
    expect(addressProblem("tcp", "127.0.0.1")).toBe('tcp address "127.0.0.1" is not HOST:PORT');
  });
});

describe("parseHostPort", () => {
  it("needs a host before the last colon", () => {
    expect(parseHostPort(":80")).toBe('tcp address ":80" is not HOST:PORT');
    expect(parseHostPort("nothing")).toBe('tcp address "nothing" is not HOST:PORT');
  });

  it("takes IPv4, localhost and a bracketed IPv6 address, without the brackets", () => {
    expect(parseHostPort("10.1.2.3:4567")).toEqual({ host: "10.1.2.3", port: 4567 });
    expect(parseHostPort("localhost:22")).toEqual({ host: "localhost", port: 22 });
    expect(parseHostPort("[::1]:8080")).toEqual({ host: "::1", port: 8080 });
    expect(parseHostPort("[fe80::1:2]:9")).toEqual({ host: "fe80::1:2", port: 9 });
  });

  it("refuses a bracketed host that is not IPv6, naming the host inside the brackets", () => {
    expect(parseHostPort("[127.0.0.1]:80")).toBe('tcp address "[127.0.0.1]:80": "127.0.0.1" is not an IPv6 address');
    expect(parseHostPort("[]:80")).toBe('tcp address "[]:80": "" is not an IPv6 address');
  });

  it("refuses an unbracketed IPv6 address, a half-bracketed one and a host name", () => {
    const hostRule = (a: string) => `tcp address "${a}": host must be an IPv4 address, [IPv6] or localhost`;
    expect(parseHostPort("::1:80")).toBe(hostRule("::1:80"));
    expect(parseHostPort("[::1:80")).toBe(hostRule("[::1:80"));
    expect(parseHostPort("::1]:80")).toBe(hostRule("::1]:80"));
    expect(parseHostPort("example.com:80")).toBe(hostRule("example.com:80"));
    expect(parseHostPort("LOCALHOST:80")).toBe(hostRule("LOCALHOST:80"));
  });

  it("takes ports 1 to 65535 written as 1 to 5 digits, nothing else", () => {
    const portRule = (a: string) => `tcp address "${a}": port must be 1-65535`;
    expect(parseHostPort("127.0.0.1:1")).toEqual({ host: "127.0.0.1", port: 1 });
    expect(parseHostPort("127.0.0.1:65535")).toEqual({ host: "127.0.0.1", port: 65535 });
    expect(parseHostPort("127.0.0.1:00080")).toEqual({ host: "127.0.0.1", port: 80 });
    for (const bad of ["0", "65536", "99999", "", "a80", "80a", "+80", " 80", "8 0", "000080", "1e3"]) {
      expect(parseHostPort(`127.0.0.1:${bad}`)).toBe(portRule(`127.0.0.1:${bad}`));
    }
  });
});

describe("encodeEndpointDescriptor", () => {
  it("refuses a token that is not 16 bytes", () => {
    expect(encodeProblem("unix", "/tmp/a.sock", new Uint8Array(15).fill(1))).toBe(
      "protocol_info: token must be 16 bytes",
    );
    expect(encodeProblem("unix", "/tmp/a.sock", new Uint8Array(17).fill(1))).toBe(
      "protocol_info: token must be 16 bytes",
    );
  });

  it("refuses what the parser would refuse, with the same problem", () => {
    expect(encodeProblem("tcp", "[127.0.0.1]:80")).toBe(
      'protocol_info: tcp address "[127.0.0.1]:80": "127.0.0.1" is not an IPv6 address',
    );
  });
});

describe("parseEndpointDescriptor", () => {
  it("says a foreign blob needs the Windows shim", () => {
    const b = raw({ address: "/tmp/a.sock" });
    b.write("WSAP", 0, "latin1");
    expect(parseProblem(b)).toBe(
      'protocol_info: not a ttrpc-es endpoint descriptor (magic is not "TMEP"; a WSAPROTOCOL_INFOW needs the Windows shim)',
    );
  });

  it("takes an address of up to 1024 bytes by length, then applies the transport's rules", () => {
    const address = `/${"a".repeat(1023)}`;
    expect(parseProblem(raw({ address }))).toBe("protocol_info: unix address is longer than 107 bytes");
    expect(parseProblem(raw({ address: `${address}a` }))).toBe("protocol_info: address length 1025 is over 1024");
    expect(parseProblem(raw({ address: "/tmp/a.sock", length: 1025 }))).toBe(
      "protocol_info: address length 1025 is over 1024",
    );
  });

  it("counts a truncated address and trailing bytes exactly", () => {
    const address = "/tmp/a.sock"; // 11 bytes
    expect(parseProblem(raw({ address, length: 20 }))).toBe("protocol_info: address truncated: 11 of 20 bytes");
    expect(parseProblem(raw({ address, length: 8 }))).toBe("protocol_info: 3 trailing bytes after the descriptor");
  });

  it("refuses an address that is not valid UTF-8", () => {
    const address = Buffer.from([0x2f, 0x74, 0xff, 0x2e, 0x73]);
    expect(parseProblem(raw({ address }))).toBe("protocol_info: address is not valid UTF-8");
    // A lone surrogate's bytes, which a lenient decoder would turn into U+FFFD.
    const surrogate = Buffer.from([0x2f, 0xed, 0xa0, 0x80]);
    expect(parseProblem(raw({ address: surrogate }))).toBe("protocol_info: address is not valid UTF-8");
  });

  it("checks the address with the rules of its transport", () => {
    expect(parseProblem(raw({ transport: 1, address: "/tmp/a\0.sock" }))).toBe("protocol_info: address contains NUL");
    expect(parseProblem(raw({ transport: 2, address: "localhost:0" }))).toBe(
      'protocol_info: tcp address "localhost:0": port must be 1-65535',
    );
    expect(parseEndpointDescriptor(raw({ transport: 2, address: "[::1]:65535" }))).toMatchObject({
      transport: "tcp",
      role: "listen",
      sessionNumber: 5,
      token: TOKEN,
      address: "[::1]:65535",
    });
  });
});
