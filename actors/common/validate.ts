/**
 * Checks on untrusted request arguments. Each function reads one field of a decoded msgpack
 * object and either returns it typed or throws InvalidInputError naming the field, so handlers
 * turn `unknown` into their request type in a few readable lines.
 */
import { InvalidInputError } from "../../transport/index.ts";
import { validateArch, validatePackageName, validateProjectName, validateRepositoryName } from "./names.ts";

export type Raw = Record<string, unknown>;

/** The request arguments as an object. */
export function obj(raw: unknown, what = "arguments"): Raw {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw) || raw instanceof Uint8Array) {
    throw new InvalidInputError(`${what} must be an object`);
  }
  return raw as Raw;
}

export function str(o: Raw, field: string, opts: { max?: number; allowEmpty?: boolean } = {}): string {
  const v = o[field];
  if (typeof v !== "string") throw new InvalidInputError(`'${field}' must be a string`);
  if (!opts.allowEmpty && v.length === 0) throw new InvalidInputError(`'${field}' must not be empty`);
  const max = opts.max ?? 64 * 1024;
  if (v.length > max) throw new InvalidInputError(`'${field}' is longer than ${max} characters`);
  return v;
}

export function optStr(o: Raw, field: string, opts: { max?: number; allowEmpty?: boolean } = {}): string | undefined {
  return o[field] === undefined || o[field] === null ? undefined : str(o, field, opts);
}

export function int(o: Raw, field: string, opts: { min?: number; max?: number } = {}): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new InvalidInputError(`'${field}' must be an integer`);
  if (opts.min !== undefined && v < opts.min) throw new InvalidInputError(`'${field}' must be at least ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) throw new InvalidInputError(`'${field}' must be at most ${opts.max}`);
  return v;
}

export function optInt(o: Raw, field: string, opts: { min?: number; max?: number } = {}): number | undefined {
  return o[field] === undefined || o[field] === null ? undefined : int(o, field, opts);
}

export function bool(o: Raw, field: string, dflt: boolean): boolean {
  const v = o[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw new InvalidInputError(`'${field}' must be true or false`);
  return v;
}

export function bytes(o: Raw, field: string): Uint8Array {
  const v = o[field];
  if (!(v instanceof Uint8Array)) throw new InvalidInputError(`'${field}' must be bytes`);
  return v;
}

/** An array field, each element checked by `each` (given the element and its index). */
export function arr<T>(o: Raw, field: string, each: (v: unknown, i: number) => T, opts: { max?: number } = {}): T[] {
  const v = o[field];
  if (!Array.isArray(v)) throw new InvalidInputError(`'${field}' must be a list`);
  const max = opts.max ?? 100_000;
  if (v.length > max) throw new InvalidInputError(`'${field}' has more than ${max} entries`);
  return v.map((x, i) => each(x, i));
}

export function optArr<T>(
  o: Raw,
  field: string,
  each: (v: unknown, i: number) => T,
  opts: { max?: number } = {}
): T[] | undefined {
  return o[field] === undefined || o[field] === null ? undefined : arr(o, field, each, opts);
}

export function oneOf<T extends string>(o: Raw, field: string, values: readonly T[]): T {
  const v = str(o, field);
  if (!(values as readonly string[]).includes(v)) {
    throw new InvalidInputError(`'${field}' must be one of ${values.join(", ")}`);
  }
  return v as T;
}

const HEX = (n: number): RegExp => new RegExp(`^[0-9a-f]{${n}}$`);
const MD5 = HEX(32);
const SHA256 = HEX(64);

export function md5(o: Raw, field: string): string {
  const v = str(o, field);
  if (!MD5.test(v)) throw new InvalidInputError(`'${field}' must be an md5 (32 lower-case hex digits)`);
  return v;
}

export function sha256(o: Raw, field: string): string {
  const v = str(o, field);
  if (!SHA256.test(v)) throw new InvalidInputError(`'${field}' must be a sha256 (64 lower-case hex digits)`);
  return v;
}

export function optSha256(o: Raw, field: string): string | undefined {
  return o[field] === undefined || o[field] === null ? undefined : sha256(o, field);
}

/**
 * A field holding a name that kiln's name rules (names.ts) check. The length bound is generous
 * so that the rule, not the string check, names what is wrong with a long name.
 */
function nameField(o: Raw, field: string, rule: (name: string) => void, max = 4096): string {
  const v = str(o, field, { max });
  rule(v);
  return v;
}

export const projectField = (o: Raw, field = "project"): string => nameField(o, field, validateProjectName);
export const packageField = (o: Raw, field = "package"): string => nameField(o, field, validatePackageName);
export const repositoryField = (o: Raw, field = "repository"): string => nameField(o, field, validateRepositoryName);
export const archField = (o: Raw, field = "arch"): string => nameField(o, field, validateArch, 50);

/** A field read by `read` when it is there. */
export function optField<T>(o: Raw, field: string, read: (o: Raw, field: string) => T): T | undefined {
  return o[field] === undefined || o[field] === null ? undefined : read(o, field);
}
