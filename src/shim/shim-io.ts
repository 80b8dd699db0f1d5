// The process the shim binary runs in, as an object: the commands take it so
// that tests run them in process, on the same bytes containerd exchanges.
import { writeSync } from "node:fs";

/** The shim process's stdin, stdout, stderr, environment and working directory. */
export interface ShimIo {
  /** All of stdin, once it ends. */
  readStdin(): Promise<Uint8Array>;
  /** Writes to stdout before the process exits. */
  writeStdout(bytes: Uint8Array | string): void;
  /** Writes to stderr. */
  writeStderr(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** The command that runs this shim again: node, its flags and the script. */
  readonly self: readonly string[];
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

/** The real process. */
export function processIo(): ShimIo {
  return {
    readStdin: () => readAll(process.stdin),
    // Synchronous: the start process exits right after, and a pipe write must not be lost.
    writeStdout: (bytes) => void writeSync(1, typeof bytes === "string" ? Buffer.from(bytes) : bytes),
    writeStderr: (text) => void writeSync(2, text),
    env: process.env,
    cwd: process.cwd(),
    self: [process.execPath, ...process.execArgv, process.argv[1] ?? ""],
  };
}
