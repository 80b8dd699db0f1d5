// One call of a client, as the stream layer sees it: the stream plus the
// client's own Response handling (Data goes through the shared layer).
import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "./code.js";
import { NEVER } from "./deadline.js";
import { decodeResponse } from "./envelope.js";
import { MessageType, type Frame } from "./frame.js";
import { Stream } from "./stream.js";
import type { StreamTable } from "./stream-table.js";
import { protocolError, streamFullError, TtrpcError } from "./ttrpc-error.js";

// One call of this client: a stream with the call's method and signal.
export class ClientStream extends Stream {
  readonly #signal: AbortSignal;

  constructor(
    id: number,
    table: StreamTable<ClientStream>,
    readonly method: DescMethod,
    signal: AbortSignal,
  ) {
    super(id, table);
    this.decodeAs = method.output;
    this.#signal = signal;
    if (signal !== NEVER) signal.addEventListener("abort", this, { once: true });
  }

  get streamingServer(): boolean {
    return this.method.methodKind === "server_streaming" || this.method.methodKind === "bidi_streaming";
  }

  // The call's signal fired: the caller gave up, what is queued is dropped.
  handleEvent(): void {
    this.cancel(TtrpcError.from(this.#signal.reason, Code.Canceled));
  }

  protected override onFinish(): void {
    if (this.#signal !== NEVER) this.#signal.removeEventListener("abort", this);
  }

  protected override full(): void {
    this.close(streamFullError());
  }

  protected override returned(): void {
    this.finish();
  }

  // Response handling is the client's own; Data goes through the stream layer.
  frame(f: Frame): void {
    if (f.type === MessageType.Response) {
      let res;
      try {
        res = decodeResponse(f.payload);
      } catch (e) {
        this.cancel(protocolError(`ttrpc: malformed response: ${(e as Error).message}`));
        return;
      }
      const st = res.status;
      if (st !== undefined && st.code !== Code.Ok) {
        this.close(new TtrpcError(st.message, st.code, { details: st.details }));
        return;
      }
      // An OK Response ends a stream too (the Swift port ends streams so);
      // an empty one carries no message.
      if (!this.streamingServer || res.payload.length > 0) this.push(res.payload);
      this.close();
      return;
    }
    if (f.type === MessageType.Data) {
      if (!this.streamingServer) {
        this.cancel(protocolError("ttrpc: received data from non-streaming server"));
        return;
      }
      this.receiveData(f.flags, f.payload);
      if (this.remoteClosed) this.finish();
      return;
    }
    this.cancel(protocolError(`ttrpc: unexpected message type ${f.type} received: protocol error`));
  }
}
