/**
 * Dependency-string matching as obs-build's provider lookup does it: the `name op version`
 * split, the operator bit sets, and the version comparison in "dependency test" mode, where a
 * side without a version or release compares equal on that part. These rules differ in small
 * ways from rpm's own range overlap (`provideMatches` in rpm-version.ts), and expansion results
 * must equal obs-build's, so they live here separately.
 */
import { rpmvercmp } from "../common/rpm-version.ts";

/**
 * Operator bit sets: 1 = greater, 2 = equal, 4 = less. `==` is an alias of `=`; anything else
 * (`=>`, `<>`, `>>` …) has no meaning and matches nothing.
 */
export const OP_BITS: Readonly<Record<string, number>> = { ">": 1, "=": 2, "==": 2, ">=": 3, "<": 4, "<=": 6 };

/** `name op version` split of a dependency string; `undefined` when it carries no operator. */
export interface VersionedDep {
  name: string;
  op: string;
  version: string;
}

const VERSIONED = /^(.*?)\s*([<=>]{1,2})\s*(.*?)$/s;

/** Splits `name op version` the way obs-build does (first operator run; minimal name). */
export function splitVersioned(dep: string): VersionedDep | undefined {
  const m = VERSIONED.exec(dep);
  if (!m) return undefined;
  return { name: m[1]!, op: m[2]!, version: m[3]! };
}

/** The provide-table key of a provide string: everything before the first blank or operator. */
export function provideName(provide: string): string {
  for (let i = 0; i < provide.length; i++) {
    const c = provide.charCodeAt(i);
    // space, '<', '=', '>'
    if (c === 32 || c === 60 || c === 61 || c === 62) return provide.slice(0, i);
  }
  return provide;
}

/**
 * The name used for `Ignore:` checks of a requirement: everything before the first blank or
 * operator (same cut as {@link provideName}).
 */
export const ignoreKey = provideName;

interface SplitEvr {
  epoch: string;
  version: string;
  release: string;
}

function splitEvr(s: string): SplitEvr {
  let epoch = "0";
  let rest = s;
  const colon = rest.indexOf(":");
  if (colon > 0) {
    let digits = true;
    for (let i = 0; i < colon; i++) {
      const c = rest.charCodeAt(i);
      if (c < 48 || c > 57) {
        digits = false;
        break;
      }
    }
    if (digits) {
      epoch = rest.slice(0, colon);
      rest = rest.slice(colon + 1);
    }
  }
  const dash = rest.lastIndexOf("-");
  if (dash >= 0) return { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) };
  return { epoch, version: rest, release: "" };
}

/**
 * rpm-style EVR comparison in dependency-test mode: an empty version or release on either side
 * compares equal on that part, so `foo >= 1.0` is met by `foo = 1.0-3`.
 */
export function rpmDepVerscmp(a: string, b: string): number {
  if (a === b) return 0;
  const x = splitEvr(a);
  const y = splitEvr(b);
  if (x.epoch !== y.epoch) {
    const r = rpmvercmp(x.epoch, y.epoch);
    if (r !== 0) return r;
  }
  if (x.version === "" || y.version === "") return 0;
  if (x.version !== y.version) {
    const r = rpmvercmp(x.version, y.version);
    if (r !== 0) return r;
  }
  if (x.release === "" || y.release === "") return 0;
  return x.release === y.release ? 0 : rpmvercmp(x.release, y.release);
}

// Debian ordering: '~' first, then control characters, digits, upper case, lower case, and the
// remaining punctuation; a string end sorts after '~' and before everything else.
const DEB_ORDER = (() => {
  const order: number[] = [];
  const push = (from: number, to: number): void => {
    for (let c = from; c <= to; c++) order.push(c);
  };
  order.push(0x7e);
  push(0x00, 0x1f);
  push(0x30, 0x39);
  push(0x41, 0x5a);
  push(0x61, 0x7a);
  push(0x20, 0x2f);
  push(0x3a, 0x40);
  push(0x5b, 0x60);
  push(0x7b, 0x7d);
  const rank = new Int16Array(128).map((_, c) => c);
  order.forEach((c, i) => (rank[c] = i));
  return rank;
})();

function debRank(c: number): number {
  return c < 128 ? DEB_ORDER[c]! : c;
}

function debPart(a: string, b: string): number {
  if (a === b) return 0;
  const pad = (s: string): string => s.replace(/[0-9]+/g, (d) => d.padStart(32, "0").slice(-32)) + "\0";
  const x = pad(a);
  const y = pad(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = debRank(x.charCodeAt(i)) - debRank(y.charCodeAt(i));
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}

/** Debian version comparison (dpkg ordering), as obs-build uses for `BinaryType: deb`. */
export function debVerscmp(a: string, b: string): number {
  const x = splitEvr(a);
  const y = splitEvr(b);
  if (x.epoch !== y.epoch) {
    const r = debPart(x.epoch, y.epoch);
    if (r !== 0) return r;
  }
  const r = debPart(x.version, y.version);
  if (r !== 0) return r;
  return debPart(x.release, y.release);
}

/**
 * Whether a provide with operator bits `pf` and version `pv` meets a requirement with operator
 * bits `rf` and version `rv`.
 */
export function versionedProvideMatches(pf: number, pv: string, rf: number, rv: string, deb: boolean): boolean {
  // Two open ranges pointing the same way always overlap.
  if (pf & rf & 5) return true;
  if (pv === rv) return (pf & rf & 2) !== 0;
  let rr = rf === 2 ? pf : rf ^ 5;
  if (!(pf & 2)) rr &= 5;
  const vv = deb ? debVerscmp(pv, rv) : rpmDepVerscmp(pv, rv);
  return (rr & (1 << (vv + 1))) !== 0;
}

/**
 * Parsed form of one provide: its table key, and its operator bits and version when versioned.
 * `bits` is 0 for an unversioned provide equal to its key, and -1 for a provide that can never
 * meet a versioned requirement (a bad operator, or text between name and operator).
 */
export interface ParsedProvide {
  name: string;
  bits: number;
  version: string;
}

const PROVIDE_REST = /^\s*([<=>]{1,2})\s*(.*?)$/s;

/** Parses one provide string. */
export function parseProvide(provide: string): ParsedProvide {
  const name = provideName(provide);
  if (name.length === provide.length) return { name, bits: 0, version: "" };
  const m = PROVIDE_REST.exec(provide.slice(name.length));
  const bits = m ? (OP_BITS[m[1]!] ?? 0) : 0;
  if (!m || bits === 0) return { name, bits: -1, version: "" };
  return { name, bits, version: m[2]! };
}
