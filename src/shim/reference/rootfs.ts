// The container's root filesystem: containerd hands the snapshot's mounts
// (overlay, or a bind of a directory) to Create, and the shim mounts them on
// <bundle>/rootfs, as Go's runc shim does, with mount(8).
import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Mount } from "../../../gen/containerd/types/mount_pb.js";

const run = promisify(execFile);

/** Mounts `mounts` in order on `<bundle>/rootfs`; returns the target. */
export async function mountRootfs(bundle: string, mounts: readonly Mount[]): Promise<string> {
  const target = join(bundle, "rootfs");
  mkdirSync(target, { recursive: true, mode: 0o711 });
  for (const m of mounts) {
    const options = m.options.length > 0 ? ["-o", m.options.join(",")] : [];
    await run("mount", ["-t", m.type, ...options, m.source, target]);
  }
  return target;
}

/** Unmounts what {@link mountRootfs} mounted (every layer, lazily); a target not mounted is fine. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = join(bundle, "rootfs");
  for (;;) {
    try {
      await run("umount", ["-l", target]);
    } catch {
      return; // nothing (more) mounted there
    }
  }
}
