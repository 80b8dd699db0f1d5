import { createHash } from "node:crypto";

// A GUID as Windows and Go's guid package print it, optionally in braces.
const guidPattern = /^(\{)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\})?$/i;

/**
 * The session id as it is hashed: a GUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`,
 * with or without one pair of surrounding braces, any case) becomes its
 * lower-case form without braces, so `{0A1B…}` and `0a1b…` name the same
 * session on both hosts. Any other string is used unchanged (no trimming, no
 * case folding), since only GUIDs have a canonical form.
 */
export function normalizeSessionId(sessionId: string): string {
  const match = guidPattern.exec(sessionId);
  if (match === null || (match[1] === undefined) !== (match[3] === undefined)) return sessionId;
  return match[2]!.toLowerCase();
}

/**
 * The HCS migration session number both hosts derive from a migration's
 * `session_id`: the first 4 bytes, big-endian, of the SHA-256 of the
 * normalized id (see {@link normalizeSessionId}) in UTF-8. Always an integer
 * in [0, 2^32).
 */
export function sessionNumber(sessionId: string): number {
  const digest = createHash("sha256").update(normalizeSessionId(sessionId), "utf8").digest();
  return digest.readUInt32BE(0);
}
