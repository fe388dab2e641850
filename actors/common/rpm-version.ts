/**
 * rpm's version comparison, and EVR and dependency parsing on top of it.
 *
 * {@link rpmvercmp} follows rpm's rules (rpmio/rpmvercmp.c semantics): strings are split into
 * alternating runs of digits and letters, separators are skipped, `~` sorts before everything
 * (even the end of the string), `^` sorts after the end of the string but before anything else,
 * numeric runs compare numerically and beat alphabetic runs, and when one string runs out the
 * longer one is newer.
 */

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}
function isAlpha(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
}
function isAlnum(c: string): boolean {
  return isDigit(c) || isAlpha(c);
}

/** Compares two version (or release) strings as rpm does: -1, 0 or 1. */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  for (;;) {
    // Skip separators (anything not alphanumeric and not ~ or ^).
    while (i < a.length && !isAlnum(a[i]!) && a[i] !== "~" && a[i] !== "^") i++;
    while (j < b.length && !isAlnum(b[j]!) && b[j] !== "~" && b[j] !== "^") j++;

    // Tilde sorts before everything else.
    if (a[i] === "~" || b[j] === "~") {
      if (a[i] !== "~") return 1;
      if (b[j] !== "~") return -1;
      i++;
      j++;
      continue;
    }
    // Caret is like tilde, except that the end of the string sorts before it.
    if (a[i] === "^" || b[j] === "^") {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== "^") return 1;
      if (b[j] !== "^") return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;

    const numeric = isDigit(a[i]!);
    const ie = segmentEnd(a, i, numeric);
    const je = segmentEnd(b, j, numeric);
    let sa = a.slice(i, ie);
    let sb = b.slice(j, je);
    // A numeric segment is newer than an alphabetic one.
    if (sb.length === 0) return numeric ? 1 : -1;
    if (numeric) {
      sa = sa.replace(/^0+/, "");
      sb = sb.replace(/^0+/, "");
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = ie;
    j = je;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** Where the digit (or letter) run starting at `k` ends. */
function segmentEnd(s: string, k: number, numeric: boolean): number {
  while (k < s.length && (numeric ? isDigit(s[k]!) : isAlpha(s[k]!))) k++;
  return k;
}

export interface Evr {
  epoch: number;
  version: string;
  /** Absent when the dependency names only a version. */
  release?: string;
}

/** Parses `[epoch:]version[-release]`. */
export function parseEvr(s: string): Evr {
  let rest = s;
  let epoch = 0;
  const colon = rest.indexOf(":");
  if (colon > 0 && /^\d+$/.test(rest.slice(0, colon))) {
    epoch = Number(rest.slice(0, colon));
    rest = rest.slice(colon + 1);
  }
  const dash = rest.lastIndexOf("-");
  if (dash >= 0) return { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) };
  return { epoch, version: rest };
}

export function formatEvr(e: Evr): string {
  return `${e.epoch ? `${e.epoch}:` : ""}${e.version}${e.release !== undefined ? `-${e.release}` : ""}`;
}

/**
 * Compares two EVRs as rpm does for dependency matching: epochs, then versions, then releases
 * only when both sides have one.
 */
export function compareEvr(a: Evr, b: Evr): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  const v = rpmvercmp(a.version, b.version);
  if (v !== 0) return v;
  if (a.release === undefined || b.release === undefined) return 0;
  return rpmvercmp(a.release, b.release);
}

export const DepOp = { LT: "<", LE: "<=", EQ: "=", GE: ">=", GT: ">" } as const;
export type DepOp = (typeof DepOp)[keyof typeof DepOp];

export interface Dep {
  name: string;
  op?: DepOp;
  evr?: Evr;
}

const OPS = new Set<string>(["<", "<=", "=", "==", ">=", ">"]);

/** Parses `name [op evr]` (as in Requires/Provides lists); `==` is read as `=`. */
export function parseDep(s: string): Dep {
  const parts = s.trim().split(/\s+/);
  const name = parts[0] ?? "";
  if (parts.length >= 3 && OPS.has(parts[1]!)) {
    const op = (parts[1] === "==" ? "=" : parts[1]) as DepOp;
    return { name, op, evr: parseEvr(parts[2]!) };
  }
  return { name };
}

export function formatDep(d: Dep): string {
  return d.op && d.evr ? `${d.name} ${d.op} ${formatEvr(d.evr)}` : d.name;
}

function opAllows(op: DepOp, cmp: number): { lt: boolean; eq: boolean; gt: boolean } {
  void cmp;
  return { lt: op === "<" || op === "<=", eq: op === "<=" || op === "=" || op === ">=", gt: op === ">" || op === ">=" };
}

/**
 * Whether a provide satisfies a requirement (rpm's range overlap): an unversioned provide or
 * requirement matches any version of the same name; two ranges match when they overlap.
 */
export function provideMatches(provide: Dep, require: Dep): boolean {
  if (provide.name !== require.name) return false;
  if (!require.op || !require.evr || !provide.op || !provide.evr) return true;
  const cmp = compareEvr(provide.evr, require.evr);
  const p = opAllows(provide.op, cmp);
  const r = opAllows(require.op, cmp);
  if (cmp < 0) return p.gt || r.lt;
  if (cmp > 0) return p.lt || r.gt;
  return (p.eq && r.eq) || (p.lt && r.lt) || (p.gt && r.gt);
}
