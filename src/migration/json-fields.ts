/**
 * Reading parsed JSON field by field, as the migration's JSON documents
 * (StatedState, HCS's migration options) are validated: each check throws an
 * Error that starts with the JSON path of the offending key.
 *
 * @module
 */

/** The largest uint32, Go's bound for those fields. */
export const UINT32_MAX = 2 ** 32 - 1;

export type Json = Record<string, unknown>;

// Validation errors start with the JSON path of the offending key.
export function fail(path: string, problem: string): never {
  throw new Error(`${path}: ${problem}`);
}

export function object(value: unknown, path: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, "must be an object");
  return value as Json;
}

export function required(json: Json, key: string, path: string): unknown {
  const value = json[key];
  if (value === undefined || value === null) fail(path, "is required");
  return value;
}

export function string(value: unknown, path: string): string {
  if (typeof value !== "string") fail(path, "must be a string");
  return value;
}

export function nonEmptyString(value: unknown, path: string): string {
  const s = string(value, path);
  if (s === "") fail(path, "must not be empty");
  return s;
}

export function integer(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) fail(path, "must be an integer");
  if (value < min || value > max) fail(path, `must be from ${min} to ${max}, not ${value}`);
  return value;
}

export function oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) fail(path, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
  return value as T;
}

export function boolean(value: unknown, path: string): boolean {
  if (typeof value !== "boolean") fail(path, "must be a boolean");
  return value;
}
