/**
 * The pool rule in its plain form: packages in name order, the first package that has a binary
 * name wins it, source and debug packages never enter.
 */
import type { PoolBinary } from "../common/model.ts";
import type { StoredResult } from "./protocol.ts";

const DEBUG = /-(debuginfo|debugsource)$/;

export function computePoolSimple(results: Map<string, StoredResult>): Map<string, PoolBinary> {
  const pool = new Map<string, PoolBinary>();
  const names = [...results.keys()].sort();
  for (const pkg of names) {
    const r = results.get(pkg)!;
    const bins = [...r.binaries].sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
    for (const b of bins) {
      if (b.isSource || DEBUG.test(b.name) || pool.has(b.name)) continue;
      const { md5: _m, isSource: _s, importedFrom: _i, ...info } = b;
      pool.set(b.name, { ...info, package: pkg, ...(r.metaSha256 ? { metaSha256: r.metaSha256 } : {}) });
    }
  }
  return pool;
}
