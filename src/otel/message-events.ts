import type { Span } from "@opentelemetry/api";

/** Adds otelttrpc's `message` event: `message.type` SENT or RECEIVED, `message.id` from 1. */
export function messageEvent(span: Span, type: "SENT" | "RECEIVED", id: number): void {
  if (span.isRecording()) span.addEvent("message", { "message.type": type, "message.id": id });
}

/** A counter of one direction's messages that adds an event per message when enabled. */
export function messageCounter(span: Span, type: "SENT" | "RECEIVED", enabled: boolean): () => void {
  let id = 0;
  return enabled ? () => messageEvent(span, type, ++id) : () => {};
}
