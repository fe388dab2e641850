/**
 * Resource limits of one sandboxed run, their defaults, and parsing of the human forms used in
 * worker configuration ("4G", "90m").
 */
import { InvalidInputError } from "../transport/index.ts";

/** Hard limits of one sandboxed run; every one of them ends the run when exceeded. */
export interface SandboxLimits {
  /** Total wall-clock time. */
  wallMs: number;
  /** Kill when the command printed nothing for this long. */
  idleLogMs: number;
  /** Kill when the output exceeds this many bytes; output beyond it is never delivered. */
  logBytes: number;
  /**
   * Memory of the run's processes. The writable tree is a tmpfs, whose pages the kernel charges to
   * the same cgroup, so the cgroup limit is `memoryBytes + diskBytes`.
   */
  memoryBytes: number;
  /** Size of the writable tree (home, /tmp, /var/tmp, /dev/shm), a size-limited tmpfs. */
  diskBytes: number;
  /** Processes and threads, not counting the few the sandbox itself needs. */
  pids: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * Defaults for a package build. The writable tree lives in RAM (tmpfs), so a worker running `n`
 * jobs needs about `n * (memoryBytes + diskBytes)` of memory at worst.
 */
export const DEFAULT_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  wallMs: 4 * 3600 * 1000,
  idleLogMs: 30 * 60 * 1000,
  logBytes: 512 * MiB,
  memoryBytes: 2 * GiB,
  diskBytes: 4 * GiB,
  pids: 4096,
});

/** Limits below these cannot even start rpmbuild; refusing them early gives a clear message. */
const MINIMA: Readonly<SandboxLimits> = {
  wallMs: 100,
  idleLogMs: 100,
  logBytes: 1024,
  memoryBytes: 16 * MiB,
  diskBytes: 1 * MiB,
  pids: 8,
};

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: MiB,
  mb: 1000 ** 2,
  mib: MiB,
  g: GiB,
  gb: 1000 ** 3,
  gib: GiB,
  t: 1024 * GiB,
  tb: 1000 ** 4,
  tib: 1024 * GiB,
};

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  "": 1000,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a byte size: a plain number of bytes or a number with a unit. Single letters and IEC
 * units are binary (`4G` = `4GiB`), `kB`/`MB`/`GB` are decimal, as in `df -h` vs `df -H`.
 */
export function parseByteSize(text: string | number): number {
  if (typeof text === "number") return checkNonNegative(text, "byte size");
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidInputError(`invalid byte size "${text}"`, { data: { value: text } });
  return Math.round(Number(m[1]) * unit);
}

/** Parses a duration: a plain number of seconds or a number with `ms`, `s`, `m`/`min`, `h` or `d`. */
export function parseDuration(text: string | number): number {
  if (typeof text === "number") return checkNonNegative(text * 1000, "duration");
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? DURATION_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidInputError(`invalid duration "${text}"`, { data: { value: text } });
  return Math.round(Number(m[1]) * unit);
}

function checkNonNegative(n: number, what: string): number {
  if (!Number.isFinite(n) || n < 0) throw new InvalidInputError(`invalid ${what} ${n}`, { data: { value: n } });
  return Math.round(n);
}

/** Limits as they appear in configuration: numbers (bytes / ms) or strings with units. */
export type SandboxLimitsInput = Partial<{ [K in keyof SandboxLimits]: number | string }>;

/**
 * Fills missing limits from `base` (default {@link DEFAULT_LIMITS}), parses strings, and rejects
 * values that are not positive integers or are too small to run anything.
 */
export function resolveLimits(input: SandboxLimitsInput = {}, base: SandboxLimits = DEFAULT_LIMITS): SandboxLimits {
  const out = { ...base };
  for (const key of Object.keys(input) as (keyof SandboxLimits)[]) {
    const v = input[key];
    if (v === undefined) continue;
    if (!(key in MINIMA)) throw new InvalidInputError(`unknown limit "${key}"`, { data: { limit: key } });
    if (typeof v === "number") out[key] = v;
    else out[key] = key === "wallMs" || key === "idleLogMs" ? parseDuration(v) : parseByteSize(v);
  }
  return validateLimits(out);
}

/** Throws InvalidInputError unless every limit is an integer at or above its minimum. */
export function validateLimits(limits: SandboxLimits): SandboxLimits {
  for (const key of Object.keys(MINIMA) as (keyof SandboxLimits)[]) {
    const v = limits[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < MINIMA[key]) {
      throw new InvalidInputError(`limit ${key} must be an integer >= ${MINIMA[key]}, got ${String(v)}`, {
        data: { limit: key, value: v, minimum: MINIMA[key] },
      });
    }
  }
  return limits;
}

/** "600 s", "1.5 s": the form used in kill reasons. */
export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : Number(s.toFixed(3))} s`;
}
