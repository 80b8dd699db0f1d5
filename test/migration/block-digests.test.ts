// The image digest kept up to date during a transfer (block-digests.ts):
// blocks hashed ahead on workers, again only once written since, must give
// exactly the digest of the image as it is at the end, however the writes
// and the hashing interleave.
import { describe, expect, it } from "vitest";
import { BlockDigests, DigestClosed } from "../../src/migration/simulated/block-digests.js";
import { imageDigest } from "../../src/migration/simulated/image-digest.js";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { startWorkers } from "../../src/migration/simulated/page-workers.js";
import { MiB } from "./simulated-shim.js";

describe("block digests", () => {
  it("equal the image digest after guest writes landed while blocks were being hashed", async () => {
    const m = new MemoryImage({ sizeBytes: 48 * MiB, fill: "pattern", zeroFraction: 0.5 });
    const workers = startWorkers(m, 1);
    const digests = new BlockDigests(m, () => workers);
    try {
      const before = imageDigest(m);
      digests.touch(0, m.pageCount);
      // Writes (recorded as the guest's are) while the first jobs run, and after.
      for (let round = 0; round < 20; round++) {
        const page = (round * 7919) % m.pageCount;
        m.page(page)[200]! ^= 0x5a;
        m.markDirty(page);
        await new Promise((r) => setImmediate(r));
      }
      digests.touchStale();
      const got = await digests.digest();
      expect(got).toBe(imageDigest(m));
      expect(got).not.toBe(before);
      // A write after the digest: the next digest sees it.
      m.writePage(3, Buffer.alloc(m.pageSize, 1));
      expect(await digests.digest()).toBe(imageDigest(m));
    } finally {
      digests.close();
      await (await workers)?.close();
    }
  });

  it("starts its workers with the first digest when not hashing ahead, at once when it is", async () => {
    const m = new MemoryImage({ sizeBytes: 8 * MiB, fill: "pattern" });
    let started = 0;
    const count = () => {
      started++;
      return Promise.resolve(undefined);
    };
    const after = new BlockDigests(m, count, { ahead: false });
    after.touch(0, m.pageCount);
    after.touchStale();
    // Booting workers during the passes would take the cores the transfer needs.
    expect(started).toBe(0);
    expect(await after.digest()).toBe(imageDigest(m));
    expect(await after.digest()).toBe(imageDigest(m));
    expect(started).toBe(1);
    after.close();
    const ahead = new BlockDigests(m, count, { ahead: true });
    expect(started).toBe(2);
    ahead.close();
  });

  it("hashes on this thread without workers, and a closed digest is an error, not a hang", async () => {
    const m = new MemoryImage({ sizeBytes: 8 * MiB, fill: "pattern" });
    const digests = new BlockDigests(m, () => Promise.resolve(undefined));
    m.zeroPages(0, 100);
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
    await expect(digests.digest()).rejects.toBeInstanceOf(DigestClosed);
  });
});
