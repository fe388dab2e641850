/**
 * The build pool rule: which binary of which package is in a repository/arch's pool (OBS's
 * `:full` tree), as a pure function of the stored build results and the packages' `useforbuild`
 * flags (seed "new build repo handling"), plus an incremental structure that maintains the same
 * function cheaply and reports what each change did to it.
 *
 * The rule:
 * 1. Only packages whose `useforbuild` is enabled take part; `_volatile` (binaries owned by no
 *    package) always does.
 * 2. A binary is a candidate when it has a name, is not a source package, is not a debug package
 *    (`-debuginfo`, `-debugsource`), has a binary suffix and is not a `.delta.rpm`; a local
 *    (non-imported) binary must also stay local under the ExportFilter, when one is given.
 * 3. Packages are visited in {@link orderPackages} order and, within a package, files in
 *    file-name order with imported files after local ones.
 * 4. The first package that has a binary of a given name wins the name. Within that package a
 *    later file replaces the earlier choice only when it is better by OBS's `volatile_cmp`: a
 *    local file beats an imported one; between different archs a real arch beats
 *    `noarch`/`all`/`any` and otherwise the lexically greater arch wins; for the same arch the
 *    higher epoch, then version, then release wins.
 *
 * (OBS's server applies the within-package replacement of step 4 only to `_volatile`, where
 * several versions of a name can pile up, while obs-build's pbuild applies it to every package;
 * kiln does the latter. The two agree whenever a package has one file per name, which a single
 * spec build always produces.)
 *
 * {@link computePool} evaluates the rule from scratch; {@link IncrementalPool} keeps, per package,
 * its best binary per name and, per name, the enabled packages that have one, so a change
 * re-decides only the names the changed package has (or had). Both decide a name with the same
 * two functions, so they agree by construction; the property test checks it anyway.
 */
import { rpmvercmp } from "../common/rpm-version.ts";
import { IMPORT_PREFIX } from "./export-filter.ts";

/** One binary of a package's stored result, as the pool rule needs it. */
export interface PoolBinary {
  /** File name in the package's result; imports are stored as `::import::<arch>::<file>`. */
  filename: string;
  name: string;
  epoch?: number;
  version: string;
  release: string;
  arch: string;
  isSource: boolean;
  /** Marks a debug package explicitly; names ending in `-debuginfo`/`-debugsource` are anyway. */
  isDebug?: boolean;
  /** Set for a binary imported from another arch's build (see ExportFilter). */
  imported?: { fromArch: string };
  /** Header MD5; when given, a rebuilt binary under the same file name counts as a change. */
  hdrmd5?: string;
}

/** A package's stored build result in one repository/arch. */
export interface PackageResult<B extends PoolBinary = PoolBinary> {
  binaries: readonly B[];
}

/** The pool's binary for one name. */
export interface PoolEntry<B extends PoolBinary = PoolBinary> {
  /** The binary name, the pool's key. */
  name: string;
  package: string;
  filename: string;
  binary: B;
}

/** What one change did to the pool; applying it to the old pool gives the new one. */
export interface PoolDiff<B extends PoolBinary = PoolBinary> {
  /** Names that were not in the pool and now are. */
  added: PoolEntry<B>[];
  /** Names that were in the pool and no longer are (the entries as they were). */
  removed: PoolEntry<B>[];
  /** Names whose binary changed: another package, another file, or the same file rebuilt. */
  changed: { before: PoolEntry<B>; after: PoolEntry<B> }[];
}

/** Options shared by {@link computePool} and {@link IncrementalPool}. */
export interface PoolOptions {
  /**
   * ExportFilter decision for local binaries: whether a binary built here stays in this arch's
   * pool (for example `(f) => compileExportFilter(arch, filters).targets(f).local`). Imported
   * binaries are not asked. Absent: every local binary stays.
   */
  keepLocal?: (filename: string) => boolean;
  /** Order packages as in a `maintenance_release` project (incident number first). */
  maintenanceRelease?: boolean;
}

/** The package that holds binaries owned by no package; always used for building, ordered last. */
export const VOLATILE_PACKAGE = "_volatile";

const BINARY_SUFFIXES = [".rpm", ".deb", ".pkg.tar.gz", ".pkg.tar.xz", ".pkg.tar.zst", ".obsbinlnk"] as const;
const DEBUG_NAME = /-debug(?:info|source)(?:-|$)/;
const NOARCH = new Set(["noarch", "all", "any"]);
/** OBS's sort key for names without an incident number: after every real number. */
const NO_INCIDENT = 99999999999999;

function codeUnitCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface OrderKey {
  name: string;
  base: string;
  incident: number;
}

/**
 * Splits `pkg:flavor` into base and flavor (with its colon). Any colon followed by a character
 * makes a multibuild name, unless it directly follows a leading `_product` or `_patchinfo` (those
 * containers use colons of their own); the split is then at the last colon.
 */
function splitFlavor(name: string): { base: string; flavor: string } {
  for (let i = name.indexOf(":"); i >= 0 && i < name.length - 1; i = name.indexOf(":", i + 1)) {
    const before = name.slice(0, i);
    if (before !== "_product" && before !== "_patchinfo") {
      const last = name.lastIndexOf(":");
      return { base: name.slice(0, last), flavor: name.slice(last) };
    }
  }
  return { base: name, flavor: "" };
}

function orderKey(name: string): OrderKey {
  const { base, flavor } = splitFlavor(name);
  // "\0" sorts a base before anything that extends it, so `pkg` and `pkg:flavor` stay together
  // ahead of `pkg-foo`.
  const suffix = `\0${flavor}`;
  if (!/\d$/.test(base)) return { name, base: base + suffix, incident: NO_INCIDENT };
  let m = /^(.*)\.(\d+)$/.exec(base);
  if (m) return { name, base: m[1]! + suffix, incident: Number(m[2]) };
  // Code 11 maintenance imports: `pkg.imported_<something><number>`, ordered below real incidents.
  m = /^(.*)\.imported_.*?(\d+)$/.exec(base);
  if (m) return { name, base: m[1]! + suffix, incident: Number(m[2]) - 1000000 };
  return { name, base: base + suffix, incident: NO_INCIDENT };
}

function compareKeys(a: OrderKey, b: OrderKey, maintenanceRelease: boolean): number {
  if (maintenanceRelease) {
    if (a.incident !== b.incident) return b.incident - a.incident;
    return codeUnitCompare(a.base, b.base) || codeUnitCompare(a.name, b.name);
  }
  return codeUnitCompare(a.base, b.base) || b.incident - a.incident || codeUnitCompare(a.name, b.name);
}

/**
 * Sorts package names as OBS's `orderpackids` does: lexicographically, except that for
 * maintenance incidents `base.NNN` the higher number comes first within the same base, code 11
 * imports `base.imported_…NNN` come after all incidents of their base, multibuild flavors
 * `pkg:flavor` come right after `pkg`, and `_volatile` comes last. With `maintenanceRelease`, the
 * incident number is the primary key (highest first).
 */
export function orderPackages(names: Iterable<string>, options?: { maintenanceRelease?: boolean }): string[] {
  const mr = options?.maintenanceRelease ?? false;
  const keys: OrderKey[] = [];
  let volatile = false;
  for (const n of names) {
    if (n === VOLATILE_PACKAGE) volatile = true;
    else keys.push(orderKey(n));
  }
  keys.sort((a, b) => compareKeys(a, b, mr));
  const out = keys.map((k) => k.name);
  if (volatile) out.push(VOLATILE_PACKAGE);
  return out;
}

function isImported(b: PoolBinary): boolean {
  return b.imported !== undefined || b.filename.startsWith(IMPORT_PREFIX);
}

/**
 * Whether `b` can enter a pool at all (rule 2 of the module comment). `keepLocal` is the
 * ExportFilter's decision for local binaries.
 */
export function isPoolCandidate(b: PoolBinary, keepLocal?: (filename: string) => boolean): boolean {
  if (!b.name || b.isSource || b.arch === "src" || b.arch === "nosrc") return false;
  if (b.isDebug || DEBUG_NAME.test(b.name)) return false;
  const f = b.filename;
  if (f.endsWith(".delta.rpm")) return false;
  if (!BINARY_SUFFIXES.some((s) => f.endsWith(s))) return false;
  if (keepLocal && !isImported(b) && !keepLocal(f)) return false;
  return true;
}

/** OBS `volatile_cmp`: does `r`, met later in the same package, replace the earlier `or`? */
function replaces(r: PoolBinary, or: PoolBinary): boolean {
  const ri = isImported(r);
  const oi = isImported(or);
  if (ri !== oi) return oi;
  if (r.arch !== or.arch) {
    if (NOARCH.has(r.arch)) return false;
    if (NOARCH.has(or.arch)) return true;
    return r.arch > or.arch;
  }
  const re = r.epoch ?? 0;
  const oe = or.epoch ?? 0;
  if (re !== oe) return re > oe;
  const v = rpmvercmp(r.version, or.version);
  if (v !== 0) return v > 0;
  return rpmvercmp(r.release, or.release) > 0;
}

function fileOrder(a: PoolBinary, b: PoolBinary): number {
  return Number(isImported(a)) - Number(isImported(b)) || codeUnitCompare(a.filename, b.filename);
}

/** A package's choice per binary name (rules 2–4 within one package). */
function packageBest<B extends PoolBinary>(
  result: PackageResult<B>,
  keepLocal: ((filename: string) => boolean) | undefined
): Map<string, B> {
  const files = result.binaries.filter((b) => isPoolCandidate(b, keepLocal));
  files.sort(fileOrder);
  const best = new Map<string, B>();
  for (const b of files) {
    const or = best.get(b.name);
    if (or === undefined || replaces(b, or)) best.set(b.name, b);
  }
  return best;
}

function entryOf<B extends PoolBinary>(pkg: string, binary: B): PoolEntry<B> {
  return { name: binary.name, package: pkg, filename: binary.filename, binary };
}

/** Same pool content for the diff's purpose: same package, file and build of the binary. */
function sameEntry(a: PoolEntry, b: PoolEntry): boolean {
  if (a.package !== b.package || a.filename !== b.filename) return false;
  const x = a.binary;
  const y = b.binary;
  return (
    x.hdrmd5 === y.hdrmd5 &&
    x.arch === y.arch &&
    (x.epoch ?? 0) === (y.epoch ?? 0) &&
    x.version === y.version &&
    x.release === y.release &&
    isImported(x) === isImported(y)
  );
}

/**
 * Evaluates the pool rule from scratch: binary name → the pool's entry. `useforbuild` is asked
 * once per package that has a result (never for `_volatile`, which always takes part).
 */
export function computePool<B extends PoolBinary>(
  results: ReadonlyMap<string, PackageResult<B>>,
  useforbuild: (pkg: string) => boolean,
  options?: PoolOptions
): Map<string, PoolEntry<B>> {
  const pool = new Map<string, PoolEntry<B>>();
  const order = orderPackages(results.keys(), { maintenanceRelease: options?.maintenanceRelease });
  for (const pkg of order) {
    if (pkg !== VOLATILE_PACKAGE && !useforbuild(pkg)) continue;
    for (const [name, b] of packageBest(results.get(pkg)!, options?.keepLocal)) {
      if (!pool.has(name)) pool.set(name, entryOf(pkg, b));
    }
  }
  return pool;
}

/** Applies `diff` to `pool` in place (what a subscriber to `repo.pool-changed` does). */
export function applyPoolDiff<B extends PoolBinary>(pool: Map<string, PoolEntry<B>>, diff: PoolDiff<B>): void {
  for (const e of diff.removed) pool.delete(e.name);
  for (const e of diff.added) pool.set(e.name, e);
  for (const c of diff.changed) pool.set(c.after.name, c.after);
}

/** True when a diff changes nothing. */
export function isEmptyPoolDiff(diff: PoolDiff): boolean {
  return diff.added.length === 0 && diff.removed.length === 0 && diff.changed.length === 0;
}

/** Options of {@link IncrementalPool}. */
export interface IncrementalPoolOptions extends PoolOptions {
  /**
   * `useforbuild` of a package never passed to {@link IncrementalPool.setUseForBuild}.
   * @default true (OBS's default for the flag)
   */
  defaultUseForBuild?: boolean;
}

/**
 * The pool of one repository/arch, maintained incrementally. Each operation returns the
 * {@link PoolDiff} it caused, which the repo role publishes as `repo.pool-changed`.
 *
 * Invariant: after every operation, the entries equal
 * `computePool(results, useforbuild, options)` for the stored results and flags.
 */
export class IncrementalPool<B extends PoolBinary = PoolBinary> {
  private readonly keepLocal: ((filename: string) => boolean) | undefined;
  private readonly maintenanceRelease: boolean;
  private readonly defaultUseForBuild: boolean;
  private readonly results = new Map<string, PackageResult<B>>();
  private readonly flags = new Map<string, boolean>();
  /** Per package with a result: its best binary per name, whether or not it is enabled. */
  private readonly best = new Map<string, Map<string, B>>();
  /** Per binary name: the enabled packages that have one. */
  private readonly providers = new Map<string, Set<string>>();
  private readonly keys = new Map<string, OrderKey>();
  private readonly pool = new Map<string, PoolEntry<B>>();

  constructor(options?: IncrementalPoolOptions) {
    this.keepLocal = options?.keepLocal;
    this.maintenanceRelease = options?.maintenanceRelease ?? false;
    this.defaultUseForBuild = options?.defaultUseForBuild ?? true;
  }

  /**
   * Builds a pool from existing results and flags (a role restoring its state); the same as
   * calling {@link setUseForBuild} and {@link setResult} for each package.
   */
  static from<B extends PoolBinary>(
    results: ReadonlyMap<string, PackageResult<B>>,
    useforbuild: (pkg: string) => boolean,
    options?: IncrementalPoolOptions
  ): IncrementalPool<B> {
    const p = new IncrementalPool<B>(options);
    for (const [pkg, result] of results) {
      p.flags.set(pkg, useforbuild(pkg));
      p.setResult(pkg, result);
    }
    return p;
  }

  /** Whether `pkg` takes part in the pool (`_volatile` always does). */
  useForBuild(pkg: string): boolean {
    return pkg === VOLATILE_PACKAGE || (this.flags.get(pkg) ?? this.defaultUseForBuild);
  }

  /** The stored result of `pkg`. */
  result(pkg: string): PackageResult<B> | undefined {
    return this.results.get(pkg);
  }

  /** The packages that have a result, in no particular order. */
  packages(): IterableIterator<string> {
    return this.results.keys();
  }

  /** The pool's entry for binary `name`. */
  get(name: string): PoolEntry<B> | undefined {
    return this.pool.get(name);
  }

  /** Number of binary names in the pool. */
  get size(): number {
    return this.pool.size;
  }

  /** All entries, sorted by binary name. */
  entries(): PoolEntry<B>[] {
    return [...this.pool.values()].sort((a, b) => codeUnitCompare(a.name, b.name));
  }

  /** The entries, unsorted and uncopied. */
  values(): IterableIterator<PoolEntry<B>> {
    return this.pool.values();
  }

  /** A copy of the pool as binary name → entry. */
  toMap(): Map<string, PoolEntry<B>> {
    return new Map(this.pool);
  }

  /** Stores the result of `pkg` (a successful build, an import), or wipes it with `undefined`. */
  setResult(pkg: string, result: PackageResult<B> | undefined): PoolDiff<B> {
    const oldBest = this.best.get(pkg);
    let newBest: Map<string, B> | undefined;
    if (result === undefined) {
      this.results.delete(pkg);
      this.best.delete(pkg);
    } else {
      newBest = packageBest(result, this.keepLocal);
      this.results.set(pkg, result);
      this.best.set(pkg, newBest);
    }
    const diff = emptyDiff<B>();
    if (!this.useForBuild(pkg)) {
      if (result === undefined) this.keys.delete(pkg);
      return diff;
    }
    const touched = new Set<string>(oldBest?.keys());
    for (const name of newBest?.keys() ?? []) touched.add(name);
    for (const name of touched) {
      const had = oldBest?.has(name) ?? false;
      const has = newBest?.has(name) ?? false;
      if (had && !has) this.dropProvider(name, pkg);
      else if (has && !had) this.addProvider(name, pkg);
      this.decide(name, pkg, diff);
    }
    if (result === undefined) this.keys.delete(pkg);
    return sortDiff(diff);
  }

  /** Changes the `useforbuild` flag of `pkg`; it takes effect on the pool at once. */
  setUseForBuild(pkg: string, enabled: boolean): PoolDiff<B> {
    const diff = emptyDiff<B>();
    const was = this.useForBuild(pkg);
    this.flags.set(pkg, enabled);
    const now = this.useForBuild(pkg);
    if (was === now) return diff;
    const best = this.best.get(pkg);
    if (!best) return diff;
    for (const name of best.keys()) {
      if (now) this.addProvider(name, pkg);
      else this.dropProvider(name, pkg);
      this.decide(name, pkg, diff);
    }
    return sortDiff(diff);
  }

  private keyOf(pkg: string): OrderKey {
    let k = this.keys.get(pkg);
    if (!k) {
      k = orderKey(pkg);
      this.keys.set(pkg, k);
    }
    return k;
  }

  /** Package order as a comparison; `_volatile` after everything. */
  private before(a: string, b: string): boolean {
    if (a === VOLATILE_PACKAGE) return false;
    if (b === VOLATILE_PACKAGE) return true;
    return compareKeys(this.keyOf(a), this.keyOf(b), this.maintenanceRelease) < 0;
  }

  private addProvider(name: string, pkg: string): void {
    let s = this.providers.get(name);
    if (!s) {
      s = new Set();
      this.providers.set(name, s);
    }
    s.add(pkg);
  }

  private dropProvider(name: string, pkg: string): void {
    const s = this.providers.get(name);
    if (!s) return;
    s.delete(pkg);
    if (s.size === 0) this.providers.delete(name);
  }

  /**
   * Re-decides `name` after a change to package `changed`, recording the outcome in `diff`. Only
   * when the changed package was the winner and left does every provider need looking at;
   * otherwise the winner is either unchanged or the changed package itself.
   */
  private decide(name: string, changed: string, diff: PoolDiff<B>): void {
    const old = this.pool.get(name);
    const providers = this.providers.get(name);
    let winner: string | undefined;
    if (!providers) {
      winner = undefined;
    } else if (old !== undefined && old.package !== changed) {
      winner = providers.has(changed) && this.before(changed, old.package) ? changed : old.package;
    } else if (old !== undefined && providers.has(changed)) {
      winner = changed;
    } else {
      for (const p of providers) if (winner === undefined || this.before(p, winner)) winner = p;
    }
    const next = winner === undefined ? undefined : entryOf(winner, this.best.get(winner)!.get(name)!);
    if (old === undefined) {
      if (next !== undefined) {
        this.pool.set(name, next);
        diff.added.push(next);
      }
    } else if (next === undefined) {
      this.pool.delete(name);
      diff.removed.push(old);
    } else {
      this.pool.set(name, next);
      if (!sameEntry(old, next)) diff.changed.push({ before: old, after: next });
    }
  }
}

function emptyDiff<B extends PoolBinary>(): PoolDiff<B> {
  return { added: [], removed: [], changed: [] };
}

function sortDiff<B extends PoolBinary>(d: PoolDiff<B>): PoolDiff<B> {
  d.added.sort((a, b) => codeUnitCompare(a.name, b.name));
  d.removed.sort((a, b) => codeUnitCompare(a.name, b.name));
  d.changed.sort((a, b) => codeUnitCompare(a.before.name, b.before.name));
  return d;
}
