// `ttrpc-es call --address hvsock:PATH:PORT`, the CLI as a child process,
// through the VMM stand-in (the one mock: see vmm-stand-in.ts) to a real
// ttrpc-es server standing for the guest's agent.
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { createServer } from "ttrpc-es";
import { interopProto, runCli, useCli } from "../cli/harness.js";
import { Interop, interopImpl, tempDir } from "../common.js";
import { VmmStandIn } from "./vmm-stand-in.js";

const cli = useCli();

describe("the CLI through hybrid vsock", () => {
  it("calls the guest's service through hvsock:PATH:PORT and hvsock://PATH:PORT", async () => {
    const dir = tempDir();
    const agent = createServer().register(Interop, interopImpl);
    await agent.listen(join(dir, "agent.sock"));
    const vmm = await VmmStandIn.start(join(dir, "fc.vsock"));
    vmm.guestListen(1024, join(dir, "agent.sock"));
    onTestFinished(async () => {
      await vmm.close();
      await agent.close();
    });
    for (const address of [`hvsock:${vmm.path}:1024`, `hvsock://${vmm.path}:1024`]) {
      const r = await runCli(cli(), [
        "call",
        "--address",
        address,
        ...interopProto,
        "-d",
        '{"text":"via the vmm"}',
        "Interop/Echo",
      ]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ text: "via the vmm" });
    }
    expect(vmm.lines).toEqual(["CONNECT 1024", "CONNECT 1024"]);
  });

  it("a refused port: the CLI says which port and fails", async () => {
    const dir = tempDir();
    const vmm = await VmmStandIn.start(join(dir, "fc.vsock"));
    onTestFinished(() => vmm.close());
    const r = await runCli(cli(), [
      "call",
      "--address",
      `hvsock:${vmm.path}:1024`,
      "--connect-timeout",
      "50ms",
      ...interopProto,
      "Interop/EchoEmpty",
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("port 1024");
  });
});
