// A row group: benchmarks with their own pairs (NRI, the shim, the CLI,
// memory at rest), so their own table after the main one. bench/main.ts runs
// the groups `--only` selects, in order, each loaded only when selected.

/** The run's settings a group may scale itself by. */
export interface GroupSettings {
  quick: boolean;
  reps: number;
  seconds: number;
  warmup: number;
  log: (s: string) => void;
}

export interface GroupResult {
  /** One JSON object per benchmark and implementation, as the main rows. */
  rows: object[];
  /** A markdown table with the ratios the group's targets are stated in. */
  table: string;
}

/** What a group's module exports. */
export interface GroupRunner {
  run(settings: GroupSettings): Promise<GroupResult>;
}

export interface RowGroup {
  /** The benchmark names, matched by `--only`. */
  benchmarks: readonly string[];
  load(): Promise<GroupRunner>;
}
