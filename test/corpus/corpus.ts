// The generator's real-world .proto corpus, laid out by test/corpus/setup.sh
// from Debian's Go source packages (see the set list there). Tests call
// ensureCorpus() before reading it: setup.sh is quick when nothing changed and
// serializes concurrent runs, so a fresh clone builds it on first use.
import { fileURLToPath } from "node:url";
import { runSetupScript } from "../interop/go-peer.js";

const here = fileURLToPath(new URL("./", import.meta.url));

/** The corpus directory: one folder per set, each holding its include roots. */
export const corpus = `${here}.build/corpus`;

let setup: Promise<string> | undefined;

/** Lays out the corpus once per process; rejects with setup's stderr (a missing corpus fails, never skips). */
export function ensureCorpus(): Promise<string> {
  setup ??= runSetupScript(`${here}setup.sh`).then(() => corpus);
  return setup;
}
