// The shim's socket, named as Go's pkg/shim names it (CreateSocketAddress):
// unix://<socket dir>/<sha256 of join(containerd's address, namespace, id)>.
// A short fixed-length name under /run/containerd/s, so the path always fits
// sun_path whatever the id, and two containerd instances never collide.
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join, posix } from "node:path";

/** Where Go's shims make their sockets unless containerd says otherwise (BootstrapParams.socket_dir). */
export const DEFAULT_SOCKET_DIR = "/run/containerd/s";

/** The address of the shim socket for task `id` in `namespace` of the containerd at `grpcAddress`. */
export function shimSocketAddress(socketDir: string, grpcAddress: string, namespace: string, id: string): string {
  const digest = createHash("sha256")
    .update(posix.join(grpcAddress, namespace, id))
    .digest("hex");
  return `unix://${join(socketDir, digest)}`;
}

/** The socket's path without the scheme. */
export function socketPath(address: string): string {
  return address.replace(/^unix:\/\//, "");
}

/** Makes the socket directory as Go does: 0700, owner only (the socket itself is 0600). */
export function makeSocketDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
