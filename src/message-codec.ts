import { ScalarType, create, isMessage, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";

/** An encoded message as buffers to write back to back, and their total length. */
export interface EncodedMessage {
  readonly parts: readonly Uint8Array[];
  readonly length: number;
}

// Bytes fields at least this long are written as they are, not copied.
const LARGE = 16 * 1024;
const IMPLICIT = 2; // google.protobuf.FeatureSet.FieldPresence.IMPLICIT
const EXPLICIT = 1;
const EMPTY = new Uint8Array(0);

const bytesFieldsOf = new WeakMap<DescMessage, DescField[]>();

function bytesFields(desc: DescMessage): DescField[] {
  let fields = bytesFieldsOf.get(desc);
  if (fields === undefined) {
    fields = desc.fields.filter(
      (f) =>
        f.fieldKind === "scalar" &&
        f.scalar === ScalarType.BYTES &&
        f.oneof === undefined &&
        (f.presence === IMPLICIT || f.presence === EXPLICIT),
    );
    bytesFieldsOf.set(desc, fields);
  }
  return fields;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 128) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/**
 * Encodes a message (or an init object) to protobuf binary. Large top-level
 * bytes fields are left out of protobuf-es's encoder and appended after the
 * rest as their own buffers: its writer grows a zero-filled buffer by
 * doubling and copies it again at the end, which cost more than all the rest
 * for 64 KiB messages. Fields may then appear out of number order, which
 * every protobuf parser (Go's included) accepts.
 */
export function encodeMessage(desc: DescMessage, message: unknown): EncodedMessage {
  const m = (isMessage(message, desc) ? message : create(desc, message as never)) as Record<string, unknown>;
  let large: DescField[] | undefined;
  for (const f of bytesFields(desc)) {
    const v = m[f.localName];
    if (v instanceof Uint8Array && v.length >= LARGE) {
      large ??= [];
      large.push(f);
    }
  }
  if (large === undefined) {
    const bytes = toBinary(desc, m as never);
    return { parts: [bytes], length: bytes.length };
  }
  const rest: Record<string, unknown> = { ...m };
  for (const f of large) rest[f.localName] = f.presence === IMPLICIT ? EMPTY : undefined;
  const head = toBinary(desc, rest as never);
  const parts: Uint8Array[] = [head];
  let length = head.length;
  for (const f of large) {
    const value = m[f.localName] as Uint8Array;
    const prefix = Uint8Array.from([...varint(f.number * 8 + 2), ...varint(value.length)]);
    parts.push(prefix, value);
    length += prefix.length + value.length;
  }
  return { parts, length };
}
