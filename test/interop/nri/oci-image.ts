// Builds a one-layer OCI image archive holding Debian's static busybox, for
// `ctr images import`: the pod sandbox ("pause") image and the workload image
// of the containerd NRI test. Nothing is pulled from a registry.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const BUSYBOX = "/bin/busybox";

/** Writes `dir/image.tar` for image `name` whose entrypoint is `entrypoint`; returns its path. */
export function buildBusyboxImage(dir: string, name: string, entrypoint: string[]): string {
  const layout = join(dir, "oci");
  const blobs = join(layout, "blobs/sha256");
  const rootfs = join(dir, "rootfs");
  mkdirSync(blobs, { recursive: true });
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin/busybox"));
  const layerTar = join(dir, "layer.tar");
  execFileSync("tar", ["--owner=0", "--group=0", "-C", rootfs, "-cf", layerTar, "bin"]);
  const blob = (bytes: Buffer) => {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    writeFileSync(join(blobs, digest.slice(7)), bytes);
    return { digest, size: bytes.length };
  };
  const layer = blob(readFileSync(layerTar));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Entrypoint: entrypoint },
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":").pop() },
        },
      ],
    }),
  );
  const archive = join(dir, "image.tar");
  execFileSync("tar", ["-C", layout, "-cf", archive, "."]);
  return archive;
}
