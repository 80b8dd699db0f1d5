/**
 * A simulated VM: identity, shape, a memory image and a guest workload.
 *
 * @module
 */
import type { StatedContainer } from "../stated-state.js";
import { GuestWorkload, type GuestWorkloadState } from "./guest-workload.js";
import { MemoryImage } from "./memory-image.js";

/** A simulated VM's run state. */
export type SimulatedVmStatus = "created" | "running" | "paused" | "stopped";

/** The sandbox a {@link SimulatedVm} simulates. */
export interface SimulatedVmOptions {
  readonly sandboxId: string;
  /** Guest memory in bytes. Default 64 MiB. */
  readonly memoryBytes?: number;
  /** Default 4096. */
  readonly pageSize?: number;
  readonly processorCount?: number;
  /** Page writes per second while running at 100 %. Default 2000. */
  readonly dirtyPagesPerSecond?: number;
  readonly containers?: readonly StatedContainer[];
  /** "pattern" for a guest that has been running, "zero" for a fresh destination VM. Default "pattern". */
  readonly fill?: "zero" | "pattern";
  /** With "pattern": the fraction (0 … 1) of pages the guest has left zero. Default 0. */
  readonly zeroFraction?: number;
}

/** What travels in the blackout besides memory: vCPU and device state. */
export interface DeviceState {
  readonly version: 1;
  readonly sandboxId: string;
  readonly processorCount: number;
  readonly workload: GuestWorkloadState;
  readonly dirtyPagesPerSecond: number;
  /** Simulated vCPU registers, one per processor. */
  readonly vcpus: readonly { readonly rip: string; readonly rsp: string }[];
}

/** Guest memory when {@link SimulatedVmOptions.memoryBytes} is left out: 64 MiB. */
export const DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024;
/** The guest's write rate when {@link SimulatedVmOptions.dirtyPagesPerSecond} is left out. */
export const DEFAULT_DIRTY_PAGES_PER_SECOND = 2000;

/**
 * A simulated VM: a memory image, a guest workload that dirties it while the
 * VM runs, and vCPU and device state; what the simulated backend migrates.
 */
export class SimulatedVm {
  readonly sandboxId: string;
  readonly processorCount: number;
  readonly containers: StatedContainer[];
  readonly memory: MemoryImage;
  workload: GuestWorkload;
  #status: SimulatedVmStatus = "created";

  constructor(options: SimulatedVmOptions) {
    this.sandboxId = options.sandboxId;
    this.processorCount = options.processorCount ?? 2;
    this.containers = [...(options.containers ?? [])];
    this.memory = new MemoryImage({
      sizeBytes: options.memoryBytes ?? DEFAULT_MEMORY_BYTES,
      ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
      fill: options.fill ?? "pattern",
      ...(options.zeroFraction === undefined ? {} : { zeroFraction: options.zeroFraction }),
    });
    this.workload = new GuestWorkload(this.memory, {
      dirtyPagesPerSecond: options.dirtyPagesPerSecond ?? DEFAULT_DIRTY_PAGES_PER_SECOND,
    });
  }

  get status(): SimulatedVmStatus {
    return this.#status;
  }

  /** Starts or resumes the guest at full speed. */
  run(): void {
    if (this.#status === "stopped") throw new Error(`VM ${this.sandboxId} is stopped`);
    this.workload.throttle(100);
    this.workload.start();
    this.#status = "running";
  }

  /** Stops the guest's writes (the blackout). */
  pause(): void {
    this.workload.pause();
    if (this.#status === "running") this.#status = "paused";
  }

  /** Stops the VM for good. */
  stop(): void {
    this.workload.pause();
    this.#status = "stopped";
  }

  /** The vCPU and device state sent in the blackout. */
  deviceState(): DeviceState {
    const w = this.workload.state();
    return {
      version: 1,
      sandboxId: this.sandboxId,
      processorCount: this.processorCount,
      workload: w,
      dirtyPagesPerSecond: this.workload.dirtyPagesPerSecond,
      vcpus: Array.from({ length: this.processorCount }, (_, i) => ({
        // BigInt: a double near 2^64 steps by 2048, which would lose the vCPU's index and most writes.
        rip: `0x${(0xffffffff81000000n + BigInt(w.writes) * 16n + BigInt(i)).toString(16)}`,
        rsp: `0x${(0xffffc90000000000n + BigInt(i) * 0x4000n).toString(16)}`,
      })),
    };
  }

  /** Loads the source's device state into a created (not started) VM. */
  loadDeviceState(state: DeviceState): void {
    if (state.version !== 1) throw new Error(`device state version ${String(state.version)} is not supported`);
    if (state.processorCount !== this.processorCount) {
      throw new Error(`device state has ${state.processorCount} processors, the VM has ${this.processorCount}`);
    }
    this.workload = new GuestWorkload(this.memory, {
      dirtyPagesPerSecond: state.dirtyPagesPerSecond,
      state: state.workload,
    });
  }
}
