import type { TextMapGetter, TextMapSetter } from "@opentelemetry/api";
import type { Metadata } from "../metadata.js";

// W3C trace context travels in the Request metadata under the propagator's
// lower-case keys (`traceparent`, `tracestate`, `baggage`), as otelttrpc's
// metadataSupplier puts it there: Set replaces a key, other keys stay.

export const metadataGetter: TextMapGetter<Metadata> = {
  get: (md, key) => md.get(key),
  keys: (md) => Object.keys(md.toJSON()),
};

export const metadataSetter: TextMapSetter<Metadata> = {
  set: (md, key, value) => {
    md.set(key, value);
  },
};
