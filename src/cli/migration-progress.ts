// Live output of `migration run` and `migration demo`: a phase timeline and,
// on a TTY, a progress bar for the memory transfer redrawn in place (plain
// lines otherwise).

import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { MigrationEvent } from "../migration/orchestrator.js";
import type { TransferEvent } from "../migration/simulated/transfer-events.js";
import { formatBytes } from "./migration-options.js";

export class ProgressView {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #bar = "";
  #start = performance.now();
  #lastBytes = 0;
  #lastAt = performance.now();
  #rate = 0;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = out.isTTY === true && process.env.TERM !== "dumb";
  }

  /** Restarts the clock of the timeline (at the start of the migration, as the orchestrator's times). */
  startClock(): void {
    this.#start = performance.now();
  }

  /** A line of the timeline (above the bar on a TTY). */
  line(text: string): void {
    if (this.#tty && this.#bar !== "") this.#out.write(`\r\x1b[2K${text}\n${this.#bar}`);
    else this.#out.write(`${text}\n`);
  }

  #stamp(atMs?: number): string {
    const t = atMs ?? performance.now() - this.#start;
    return `+${(t / 1000).toFixed(3).padStart(7)}s`;
  }

  orchestrator(e: MigrationEvent): void {
    if (e.type === "step") {
      const what = `${e.step}${e.detail === undefined ? "" : ` ${e.detail}`}`;
      const outcome = e.error === undefined ? `ok (${e.ms.toFixed(1)} ms)` : `error: ${e.error}`;
      this.line(`${this.#stamp(e.atMs)}  ${e.side.padEnd(11)} ${what.padEnd(28)} ${outcome}`);
    } else if (e.type === "notification") {
      const state = e.state === PhaseState.SUCCESS ? "" : ` / ${PhaseState[e.state] ?? e.state}`;
      const extra = e.blackoutMs === undefined ? "" : `  blackout ${e.blackoutMs} ms`;
      this.line(`${this.#stamp(e.atMs)}  ${e.side.padEnd(11)} ● PHASE_${Phase[e.phase] ?? e.phase}${state}${extra}`);
    } else {
      this.line(`${this.#stamp(e.atMs)}  orchestrator ✗ abort: ${e.reason}`);
    }
  }

  transfer(e: TransferEvent): void {
    if (e.side !== "source") return;
    if (e.type === "pass") {
      const kind = e.blackout ? "blackout pass" : "brownout pass";
      this.line(
        `${this.#stamp()}  source      ${kind} ${e.pass}: ${e.pages} dirty pages, guest at ${e.throttlePercent} %`,
      );
    } else if (e.type === "pass-end") {
      this.line(
        `${this.#stamp()}  source        pass ${e.pass} done in ${e.ms.toFixed(1)} ms; ` +
          `${e.remainingDirty} pages dirtied meanwhile, projected blackout ${e.projectedBlackoutMs.toFixed(1)} ms`,
      );
    } else if (e.type === "progress") {
      const now = performance.now();
      if (now - this.#lastAt >= 50) {
        const inst = ((e.pageBytes - this.#lastBytes) / (now - this.#lastAt)) * 1000;
        this.#rate = this.#rate === 0 ? inst : this.#rate * 0.6 + inst * 0.4;
        this.#lastBytes = e.pageBytes;
        this.#lastAt = now;
      }
      if (!this.#tty) return;
      const width = 30;
      const frac = e.passPages === 0 ? 1 : e.passDone / e.passPages;
      const filled = Math.round(frac * width);
      const bar = `[${"█".repeat(filled)}${"░".repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%`;
      const pass = e.blackout ? "blackout" : `pass ${e.pass}`;
      const moved = `moved ${formatBytes(e.pageBytes)} of a ${formatBytes(e.imageBytes)} image`;
      this.#bar = `  ${bar}  ${pass}  ${moved}  ${formatBytes(this.#rate)}/s`;
      this.#out.write(`\r\x1b[2K${this.#bar}`);
    }
  }

  /** Removes the bar before the summary. */
  finish(): void {
    if (this.#tty && this.#bar !== "") this.#out.write("\r\x1b[2K");
    this.#bar = "";
  }
}
