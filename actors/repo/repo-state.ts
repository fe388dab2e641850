/**
 * The repo role's state: build results, cross-arch imports, the build pool of every
 * repository/arch, the flags that decide the pool, and the histories — in LMDB, with an
 * in-memory {@link IncrementalPool} per repository/arch that has been touched.
 *
 * The pool is a function of the results (local binaries plus imports), the packages'
 * `useforbuild` flags and the repository's ExportFilter (seed "new build repo handling"): every
 * change goes through the incremental pool, whose diff is written to the stored pool and
 * announced as `repo.pool-changed` in the same LMDB transaction, and {@link RepoState.rebuildPool}
 * recomputes it from the stored results alone.
 *
 * Storage: the full results (header data with dependencies) are what `result.get`, downloads
 * and publishing read; beside each package's result a compact `bininfo` (OBS's `.bininfo`: per
 * binary only what the pool rule needs, as tuples) is written in the same transaction, and the
 * stored pool holds compact entries (which package's file, its header md5 and checksums). Loading
 * and rebuilding a pool read only those, which is what keeps them fast at distribution scale;
 * dependency data is read from the full results only for the entries that change (for
 * `repo.pool-changed`) and when the whole pool is asked for (`pool.get`).
 *
 * Concurrency: every change has an asynchronous part (fetching flags and build configs from the
 * source role, loading a repository/arch) that touches no state, and a synchronous part that runs
 * as one LMDB transaction callback. lmdb-js runs those callbacks one after another, so the
 * in-memory pools change only there, always in commit order. A transaction that fails drops the
 * in-memory pools it touched; the next use reloads them from LMDB.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { ConflictError, InternalError, UnavailableError, makeEvent } from "../../transport/index.ts";
import { keys, prefixRange, type Key, type KeyPart, type Outbox, type RoleStore } from "../../storage/index.ts";
import { evaluateFlag, type FlagName, type Flags } from "../common/flags.ts";
import { BuildResultCode, type PoolBinary as PoolRecord } from "../common/model.ts";
import { DEFAULT_EXPORT_FILTERS, exportTargets, importFilename, type ExportFilterRule } from "./export-filter.ts";
import {
  IncrementalPool,
  computePool,
  isPoolCandidate,
  type PackageResult,
  type PoolBinary as RuleBinary,
  type PoolDiff,
  type PoolEntry,
} from "./pool.ts";
import type {
  BuildHistoryEntry,
  JobHistoryEntry,
  PoolChangeCounts,
  PublishPage,
  PublishPackage,
  PublishProjectView,
  RelsyncEntry,
  RepoEvent,
  RepoPoolChangedEvent,
  StoredBinary,
  StoredImport,
  StoredResult,
} from "./protocol.ts";

/** How many versrels of a package the relsync data keeps (the most recent ones). */
const RELSYNC_VERSRELS = 8;

/** The repo role's copy of what a project's `_meta` says about flags and repositories. */
export interface ProjectFlagsRecord {
  project: string;
  flags: Flags;
  repositories: { name: string; archs: string[] }[];
}

/** The repo role's copy of a package's flags. */
export interface PackageFlagsRecord {
  project: string;
  package: string;
  flags: Flags;
}

/** What the pool needs of a repository's build configuration. */
export interface RepoBuildConfig {
  exportFilter: ExportFilterRule[];
  /** The repository path (this repository first): whose config changes concern it. */
  path: { project: string; repository: string }[];
}

/** Where the state learns what it does not own; the role asks the source role. */
export interface RepoLookups {
  /** A project's flags and repositories; undefined when the project does not exist. */
  project(project: string): Promise<Omit<ProjectFlagsRecord, "project"> | undefined>;
  /** A package's flags; undefined when the package does not exist. */
  package(project: string, pkg: string): Promise<{ flags: Flags } | undefined>;
  buildConfig(project: string, repository: string, arch: string): Promise<RepoBuildConfig>;
}

/** A finished job as the role hands it over, its files already read. */
export interface ResultInput {
  project: string;
  repository: string;
  arch: string;
  package: string;
  jobId: string;
  srcmd5: string;
  verifymd5: string;
  rev: number;
  versrel: string;
  bcnt: number;
  release: string;
  reason: string;
  readyTime: number;
  workerId: string;
  code: BuildResultCode;
  startTime: number;
  endTime: number;
  /** Local binaries of this build (empty unless it succeeded). */
  binaries: StoredBinary[];
  logSha256?: string;
  metaSha256?: string;
  statsSha256?: string;
}

/** What a stored result did. */
export interface StoreOutcome {
  pool: PoolChangeCounts;
  /** Archs that received imports (or lost them) from this build. */
  importsTo: string[];
}

/** Which results `wipe` removes. */
export interface WipeFilter {
  package?: string;
  repository?: string;
  arch?: string;
}

export interface RepoStateOptions {
  store: RoleStore;
  outbox: Outbox<RepoEvent>;
  lookups: RepoLookups;
  log: Logger;
  /** Largest estimated size of one `repo.pool-changed` event. @default 256 KiB */
  maxEventBytes?: number;
}

/** What the pool rule (and the comparison of pool entries) needs of a binary. */
export interface PoolBin extends RuleBinary {
  hdrmd5: string;
  sha256: string;
  metaSha256?: string;
}

/** A {@link PoolBin} as stored in a bininfo record. */
type BinTuple = [
  filename: string,
  name: string,
  epoch: number | null,
  version: string,
  release: string,
  arch: string,
  isSource: 0 | 1,
  hdrmd5: string,
  sha256: string,
  metaSha256: string | null,
  fromArch: string | null,
];

/** A stored pool entry (the key holds the binary name). */
type PoolIndexEntry = [pkg: string, filename: string, hdrmd5: string, sha256: string, metaSha256: string | null];

function toBin(b: StoredBinary): PoolBin {
  const r: PoolBin = {
    filename: b.filename,
    name: b.name,
    version: b.version,
    release: b.release,
    arch: b.arch,
    isSource: b.isSource,
    hdrmd5: b.hdrmd5,
    sha256: b.sha256,
  };
  if (b.epoch !== undefined) r.epoch = b.epoch;
  if (b.metaSha256 !== undefined) r.metaSha256 = b.metaSha256;
  if (b.imported) r.imported = b.imported;
  return r;
}

function toTuple(b: PoolBin): BinTuple {
  return [
    b.filename,
    b.name,
    b.epoch ?? null,
    b.version,
    b.release,
    b.arch,
    b.isSource ? 1 : 0,
    b.hdrmd5,
    b.sha256,
    b.metaSha256 ?? null,
    b.imported?.fromArch ?? null,
  ];
}

function fromTuple(t: BinTuple): PoolBin {
  const r: PoolBin = {
    filename: t[0],
    name: t[1],
    version: t[3],
    release: t[4],
    arch: t[5],
    isSource: t[6] === 1,
    hdrmd5: t[7],
    sha256: t[8],
  };
  if (t[2] !== null) r.epoch = t[2];
  if (t[9] !== null) r.metaSha256 = t[9];
  if (t[10] !== null) r.imported = { fromArch: t[10] };
  return r;
}

interface PrpaState {
  project: string;
  repository: string;
  arch: string;
  pool: IncrementalPool<PoolBin>;
  config: RepoBuildConfig;
}

type Prpa = { project: string; repository: string; arch: string };

const SEP = "\u0000";
const prpaKey = (p: string, r: string, a: string): string => `${p}${SEP}${r}${SEP}${a}`;
const FLAG_FETCH_CONCURRENCY = 8;

/** The pool record of a package's binary: what schedulers see and `repo.pool-changed` carries. */
export function poolRecord(e: { package: string; filename: string }, b: StoredBinary): PoolRecord {
  const r: PoolRecord = {
    name: b.name,
    version: b.version,
    release: b.release,
    arch: b.arch,
    provides: b.provides,
    requires: b.requires,
    conflicts: b.conflicts,
    obsoletes: b.obsoletes,
    hdrmd5: b.hdrmd5,
    package: e.package,
    filename: e.filename,
    sha256: b.sha256,
    size: b.size,
  };
  if (b.epoch !== undefined) r.epoch = b.epoch;
  if (b.recommends?.length) r.recommends = b.recommends;
  if (b.supplements?.length) r.supplements = b.supplements;
  if (b.sourceRpm !== undefined) r.sourceRpm = b.sourceRpm;
  if (b.metaSha256 !== undefined) r.metaSha256 = b.metaSha256;
  return r;
}

function indexEntry(e: PoolEntry<PoolBin>): PoolIndexEntry {
  return [e.package, e.filename, e.binary.hdrmd5, e.binary.sha256, e.binary.metaSha256 ?? null];
}

/** Whether a stored pool entry is the entry's binary (no allocation: runs for every name). */
function indexIs(x: PoolIndexEntry, e: PoolEntry<PoolBin>): boolean {
  return (
    x[0] === e.package &&
    x[1] === e.filename &&
    x[2] === e.binary.hdrmd5 &&
    x[3] === e.binary.sha256 &&
    x[4] === (e.binary.metaSha256 ?? null)
  );
}

function sameEntry(a: PoolEntry<PoolBin>, b: PoolEntry<PoolBin>): boolean {
  return (
    a.package === b.package &&
    a.filename === b.filename &&
    a.binary.sha256 === b.binary.sha256 &&
    a.binary.hdrmd5 === b.binary.hdrmd5 &&
    a.binary.metaSha256 === b.binary.metaSha256
  );
}

function estimateBytes(r: PoolRecord): number {
  // Field names, hashes and numbers take about 400 bytes in msgpack or JSON.
  let n = 400 + r.name.length + r.filename.length + r.package.length;
  for (const list of [r.provides, r.requires, r.conflicts, r.obsoletes, r.recommends, r.supplements]) {
    for (const d of list ?? []) n += d.length + 2;
  }
  return n;
}

/** The local binaries of a package's result (imports excluded). */
const localOf = (bins: readonly StoredBinary[]): StoredBinary[] => bins.filter((b) => b.imported === undefined);

export class RepoState {
  readonly #store: RoleStore;
  readonly #outbox: Outbox<RepoEvent>;
  readonly #lookups: RepoLookups;
  readonly #log: Logger;
  readonly #maxEventBytes: number;
  readonly #prpas = new Map<string, PrpaState>();
  readonly #loading = new Map<string, Promise<PrpaState>>();
  readonly #generations = new Map<string, number>();
  /** Distinguishes generations across restarts of the role. */
  readonly #instance = randomBytes(4).toString("hex");

  constructor(opts: RepoStateOptions) {
    this.#store = opts.store;
    this.#outbox = opts.outbox;
    this.#lookups = opts.lookups;
    this.#log = opts.log;
    this.#maxEventBytes = opts.maxEventBytes ?? 256 * 1024;
  }

  // ---- flags -------------------------------------------------------------------------------

  projectFlags(project: string): ProjectFlagsRecord | undefined {
    return this.#store.get<ProjectFlagsRecord>(keys.projectFlags(project));
  }

  packageFlags(project: string, pkg: string): PackageFlagsRecord | undefined {
    return this.#store.get<PackageFlagsRecord>(keys.packageFlags(project, pkg));
  }

  /** A flag of a package (or of the project, without one) for a repository/arch, package over project. */
  flag(name: FlagName, project: string, pkg: string | undefined, repository?: string, arch?: string): boolean {
    const prj = this.projectFlags(project) ?? { flags: {} };
    const pk = pkg === undefined ? undefined : (this.packageFlags(project, pkg) ?? { flags: {} });
    return evaluateFlag(name, prj, pk, repository, arch);
  }

  /** Archs of a repository as the project's meta last said, in meta order. */
  repositoryArchs(project: string, repository: string): string[] {
    return this.projectFlags(project)?.repositories.find((r) => r.name === repository)?.archs ?? [];
  }

  /** Fetches the flags of a project and packages the state has no copy of yet. */
  async ensureFlags(project: string, packages: Iterable<string>): Promise<void> {
    const needProject = !this.projectFlags(project);
    const wanted = [...new Set(packages)];
    let missing: string[];
    if (wanted.length > 64) {
      // One scan beats thousands of lookups when a whole repository is loaded.
      const have = new Set<string>();
      for (const k of this.#store.scanKeys(keys.packageFlagsOf(project))) have.add(k[2] as string);
      missing = wanted.filter((k) => !have.has(k));
    } else {
      missing = wanted.filter((k) => !this.packageFlags(project, k));
    }
    if (!needProject && missing.length === 0) return;
    const prj = needProject ? await this.#lookups.project(project) : undefined;
    const fetched: PackageFlagsRecord[] = [];
    for (let i = 0; i < missing.length; i += FLAG_FETCH_CONCURRENCY) {
      const batch = missing.slice(i, i + FLAG_FETCH_CONCURRENCY);
      const metas = await Promise.all(batch.map((k) => this.#lookups.package(project, k)));
      batch.forEach((k, j) => fetched.push({ project, package: k, flags: metas[j]?.flags ?? {} }));
    }
    await this.#store.transact(() => {
      // Whatever an event stored meanwhile is newer than what was fetched here.
      if (prj && !this.projectFlags(project)) {
        void this.#store.db.put(keys.projectFlags(project), { project, ...prj } satisfies ProjectFlagsRecord);
      }
      for (const f of fetched) {
        if (!this.packageFlags(project, f.package)) void this.#store.db.put(keys.packageFlags(project, f.package), f);
      }
    });
  }

  /**
   * A project's meta changed (or was first seen): store its flags and repositories and apply
   * `useforbuild` to every pool of the project at once.
   */
  async setProjectMeta(project: string, meta: Omit<ProjectFlagsRecord, "project">): Promise<PoolChangeCounts> {
    const prpas = this.prpasOf(project);
    const packages = new Set<string>();
    for (const x of prpas) for (const k of this.packagesIn(x.project, x.repository, x.arch)) packages.add(k);
    await this.ensureFlags(project, packages);
    for (const x of prpas) await this.ensurePrpa(x.project, x.repository, x.arch);
    const counts = zeroCounts();
    await this.#transact(
      prpas.map((x) => prpaKey(x.project, x.repository, x.arch)),
      () => {
        void this.#store.db.put(keys.projectFlags(project), { project, ...meta } satisfies ProjectFlagsRecord);
        this.#outbox.add(makeEvent<RepoEvent>({ type: "repo.flags-changed", project }));
        for (const x of prpas) {
          const st = this.#loaded(x.project, x.repository, x.arch);
          for (const k of [...st.pool.packages()]) {
            const diff = st.pool.setUseForBuild(k, this.flag("useforbuild", project, k, x.repository, x.arch));
            addCounts(counts, this.#applyDiff(st, diff));
          }
        }
      }
    );
    return counts;
  }

  /** A package's meta changed: store its flags and apply `useforbuild` to its pools at once. */
  async setPackageMeta(project: string, pkg: string, meta: { flags: Flags }): Promise<PoolChangeCounts> {
    await this.ensureFlags(project, []);
    const prpas = this.prpasOf(project).filter((x) => this.#hasResult(x.project, x.repository, x.arch, pkg));
    for (const x of prpas) await this.ensurePrpa(x.project, x.repository, x.arch);
    const counts = zeroCounts();
    await this.#transact(
      prpas.map((x) => prpaKey(x.project, x.repository, x.arch)),
      () => {
        void this.#store.db.put(keys.packageFlags(project, pkg), {
          project,
          package: pkg,
          flags: meta.flags,
        } satisfies PackageFlagsRecord);
        this.#outbox.add(makeEvent<RepoEvent>({ type: "repo.flags-changed", project, package: pkg }));
        for (const x of prpas) {
          const st = this.#loaded(x.project, x.repository, x.arch);
          const diff = st.pool.setUseForBuild(pkg, this.flag("useforbuild", project, pkg, x.repository, x.arch));
          addCounts(counts, this.#applyDiff(st, diff));
        }
      }
    );
    return counts;
  }

  /**
   * A project's build config changed: repositories whose path includes it get their pools
   * recomputed with the new ExportFilter. Repositories of the project itself are loaded for it;
   * others are updated when loaded (or verified when next loaded).
   */
  async configChanged(project: string): Promise<PoolChangeCounts> {
    const counts = zeroCounts();
    // A pool loaded now is built with the new config already: its load applies the change.
    for (const x of this.prpasOf(project)) {
      addCounts(counts, await this.ensurePrpa(x.project, x.repository, x.arch, { configChanged: true }));
    }
    const affected = [...this.#prpas.values()].filter(
      (st) => st.project === project || st.config.path.some((e) => e.project === project)
    );
    const configs = new Map<string, RepoBuildConfig>();
    for (const st of affected) {
      configs.set(
        prpaKey(st.project, st.repository, st.arch),
        await this.#lookups.buildConfig(st.project, st.repository, st.arch)
      );
    }
    await this.#transact([...configs.keys()], () => {
      for (const [k, config] of configs) {
        const old = this.#prpas.get(k);
        if (!old) continue;
        const results = new Map<string, PackageResult<PoolBin>>();
        for (const pkg of old.pool.packages()) results.set(pkg, old.pool.result(pkg)!);
        const next = this.#buildPool(old.project, old.repository, old.arch, results, config);
        const diff = diffPools(old.pool.toMap(), next.toMap());
        this.#prpas.set(k, { ...old, pool: next, config });
        addCounts(counts, this.#applyDiff(this.#prpas.get(k)!, diff));
      }
    });
    return counts;
  }

  // ---- loading -----------------------------------------------------------------------------

  /** The repository/arch pairs of a project that hold results or imports. */
  prpasOf(project: string): Prpa[] {
    const seen = new Map<string, Prpa>();
    for (const prefix of [keys.resultsOf(project), keys.resultImportsOf(project)]) {
      const end = prefixRange(prefix).end;
      let start: (KeyPart | Buffer)[] = prefix;
      for (;;) {
        const [first] = this.#store.db.getKeys({ start, end, limit: 1 } as never) as Iterable<Key>;
        if (!first) break;
        const [, , repository, arch] = first as [string, string, string, string];
        seen.set(prpaKey(project, repository, arch), { project, repository, arch });
        // Skip the rest of this repository/arch.
        start =
          prefix[0] === "result"
            ? prefixRange(keys.resultsOf(project, repository, arch)).end
            : prefixRange(keys.resultImportsOf(project, repository, arch)).end;
      }
    }
    return [...seen.values()];
  }

  /** Packages of a repository/arch with a result or imports. */
  packagesIn(project: string, repository: string, arch: string): Set<string> {
    const out = new Set<string>();
    for (const k of this.#store.scanKeys(keys.resultsOf(project, repository, arch))) out.add(k[4] as string);
    for (const k of this.#store.scanKeys(keys.resultImportsOf(project, repository, arch))) out.add(k[4] as string);
    return out;
  }

  #hasResult(project: string, repository: string, arch: string, pkg: string): boolean {
    if (this.#store.get(keys.result(project, repository, arch, pkg)) !== undefined) return true;
    for (const _ of this.#store.scanKeys(keys.resultImportsOf(project, repository, arch, pkg))) return true;
    return false;
  }

  /** Whether a repository/arch's pool is in memory. */
  isLoaded(project: string, repository: string, arch: string): boolean {
    return this.#prpas.has(prpaKey(project, repository, arch));
  }

  /** Drops in-memory pools (all, or one project's); they reload from LMDB when next needed. */
  unload(project?: string): void {
    for (const [k, st] of this.#prpas) if (project === undefined || st.project === project) this.#prpas.delete(k);
  }

  /**
   * Loads a repository/arch's pool into memory: fetches its build config and missing flags,
   * then, in one transaction, rebuilds the incremental pool from the stored results and repairs
   * the stored pool if it differs (a crash between versions, an ExportFilter changed while the
   * role was down). Resolves with what the repair changed when this call did the loading.
   * `configChanged` says the config is known to have changed, so a repair is expected.
   */
  async ensurePrpa(
    project: string,
    repository: string,
    arch: string,
    opts: { configChanged?: boolean } = {}
  ): Promise<PoolChangeCounts> {
    const k = prpaKey(project, repository, arch);
    if (this.#prpas.has(k)) return zeroCounts();
    let pending = this.#loading.get(k);
    if (pending) {
      await pending;
      return zeroCounts();
    }
    let fixed = zeroCounts();
    pending = (async () => {
      const config = await this.#lookups.buildConfig(project, repository, arch);
      await this.ensureFlags(project, this.packagesIn(project, repository, arch));
      return this.#store.transact(() => {
        const have = this.#prpas.get(k);
        if (have) return have;
        const pool = this.#buildPool(project, repository, arch, this.#readBinInfos(project, repository, arch), config);
        const st: PrpaState = { project, repository, arch, pool, config };
        this.#prpas.set(k, st);
        fixed = this.#repairStored(st, pool);
        if (fixed.added + fixed.removed + fixed.changed === 0) return st;
        if (opts.configChanged) this.#log.debug({ project, repository, arch, ...fixed }, "pool loaded with new config");
        else this.#log.warn({ project, repository, arch, ...fixed }, "stored pool repaired on load");
        return st;
      });
    })().finally(() => this.#loading.delete(k));
    this.#loading.set(k, pending);
    await pending;
    return fixed;
  }

  #loaded(project: string, repository: string, arch: string): PrpaState {
    const st = this.#prpas.get(prpaKey(project, repository, arch));
    // Dropped after a failed transaction between preparation and this one: the caller retries.
    if (!st) throw new UnavailableError(`the pool of ${project}/${repository}/${arch} is reloading; try again`);
    return st;
  }

  /**
   * The bininfo of every package of a repository/arch; inside a transaction. Packages with
   * results but no bininfo (stored by an older kiln) get theirs derived and written now.
   */
  #readBinInfos(project: string, repository: string, arch: string): Map<string, PackageResult<PoolBin>> {
    const out = new Map<string, PackageResult<PoolBin>>();
    for (const { key, value } of this.#store.scan<BinTuple[]>(keys.binInfosOf(project, repository, arch))) {
      out.set(key[4] as string, { binaries: value.map(fromTuple) });
    }
    for (const pkg of this.packagesIn(project, repository, arch)) {
      if (out.has(pkg)) continue;
      const bins = this.#binInfoFromResults(project, repository, arch, pkg);
      this.#writeBinInfo(project, repository, arch, pkg, bins);
      if (bins.length) out.set(pkg, { binaries: bins });
    }
    return out;
  }

  /** A package's bininfo derived from its full result and imports. */
  #binInfoFromResults(project: string, repository: string, arch: string, pkg: string): PoolBin[] {
    const r = this.result(project, repository, arch, pkg);
    const bins = r ? withMeta(r).map(toBin) : [];
    for (const imp of this.imports(project, repository, arch, pkg)) bins.push(...imp.binaries.map(toBin));
    return bins;
  }

  #writeBinInfo(project: string, repository: string, arch: string, pkg: string, bins: PoolBin[] | undefined): void {
    const k = keys.binInfo(project, repository, arch, pkg);
    if (bins && bins.length) void this.#store.db.put(k, bins.map(toTuple));
    else void this.#store.db.remove(k);
  }

  /** `useforbuild` of every package of a project for one repository/arch, flags read once. */
  #useforbuildOf(project: string, repository: string, arch: string): (pkg: string) => boolean {
    const prj = this.projectFlags(project) ?? { flags: {} };
    const pkgs = new Map<string, PackageFlagsRecord>();
    for (const { value } of this.#store.scan<PackageFlagsRecord>(keys.packageFlagsOf(project))) {
      pkgs.set(value.package, value);
    }
    return (pkg) => evaluateFlag("useforbuild", prj, pkgs.get(pkg) ?? { flags: {} }, repository, arch);
  }

  #buildPool(
    project: string,
    repository: string,
    arch: string,
    results: ReadonlyMap<string, PackageResult<PoolBin>>,
    config: RepoBuildConfig
  ): IncrementalPool<PoolBin> {
    const useforbuild = this.#useforbuildOf(project, repository, arch);
    return IncrementalPool.from(results, useforbuild, keepLocalOf(arch, config));
  }

  // ---- results -----------------------------------------------------------------------------

  /**
   * Stores a finished job: the result, the histories, the binaries it exports to other archs of
   * the repository, and the pool changes of every arch involved, in one transaction with the
   * `repo.built` and `repo.pool-changed` events.
   */
  async storeResult(input: ResultInput): Promise<StoreOutcome> {
    const { project: p, repository: r, arch: a, package: pkg } = input;
    const succeeded = input.code === BuildResultCode.Succeeded;
    await this.ensureFlags(p, [pkg]);
    await this.ensurePrpa(p, r, a);
    const config = this.#loaded(p, r, a).config;
    const exports = new Map<string, StoredBinary[]>();
    if (succeeded) {
      const archs = this.repositoryArchs(p, r);
      for (const b of input.binaries) {
        if (!isPoolCandidate(b)) continue;
        for (const t of exportTargets(b.filename, a, config.exportFilter).exportTo) {
          if (t === a || !archs.includes(t)) continue;
          const list = exports.get(t) ?? [];
          list.push({ ...b, filename: importFilename(a, b.filename), imported: { fromArch: a } });
          exports.set(t, list);
        }
      }
      // Archs that got imports from an earlier build of this package lose what this one lacks.
      for (const t of archs) {
        if (t !== a && !exports.has(t) && this.#store.get(keys.resultImport(p, r, t, pkg, a)) !== undefined) {
          exports.set(t, []);
        }
      }
    }
    for (const t of exports.keys()) await this.ensurePrpa(p, r, t);
    const counts = zeroCounts();
    const touched = [prpaKey(p, r, a), ...[...exports.keys()].map((t) => prpaKey(p, r, t))];
    await this.#transact(touched, () => {
      const st = this.#loaded(p, r, a);
      const rk = keys.result(p, r, a, pkg);
      const prev = this.#store.get<StoredResult>(rk);
      const binaries = succeeded ? input.binaries : prev ? withMeta(prev) : [];
      const result: StoredResult = {
        project: p,
        repository: r,
        arch: a,
        package: pkg,
        code: input.code,
        jobId: input.jobId,
        srcmd5: input.srcmd5,
        verifymd5: input.verifymd5,
        rev: input.rev,
        versrel: input.versrel,
        bcnt: input.bcnt,
        release: input.release,
        reason: input.reason,
        workerId: input.workerId,
        readyTime: input.readyTime,
        startTime: input.startTime,
        endTime: input.endTime,
        binaries,
        ...(input.logSha256 ? { logSha256: input.logSha256 } : {}),
        ...(input.metaSha256 ? { metaSha256: input.metaSha256 } : {}),
        ...(input.statsSha256 ? { statsSha256: input.statsSha256 } : {}),
      };
      void this.#store.db.put(rk, result);
      if (succeeded || input.code === BuildResultCode.Unchanged) {
        const entry: BuildHistoryEntry = {
          versrel: input.versrel,
          bcnt: input.bcnt,
          srcmd5: input.srcmd5,
          rev: input.rev,
          time: input.endTime,
          duration: Math.max(0, input.endTime - input.startTime),
          code: input.code,
          workerId: input.workerId,
          reason: input.reason,
          jobId: input.jobId,
        };
        const seq = this.#store.nextSeq(`bhist:${p}${SEP}${r}${SEP}${a}${SEP}${pkg}`);
        void this.#store.db.put(keys.buildHistory(p, r, a, pkg, seq), entry);
      }
      if (succeeded) this.#raiseRelsync(p, r, pkg, input.versrel, input.bcnt);
      const job: JobHistoryEntry = {
        package: pkg,
        jobId: input.jobId,
        srcmd5: input.srcmd5,
        verifymd5: input.verifymd5,
        rev: input.rev,
        versrel: input.versrel,
        bcnt: input.bcnt,
        release: input.release,
        reason: input.reason,
        code: input.code,
        workerId: input.workerId,
        readyTime: input.readyTime,
        startTime: input.startTime,
        endTime: input.endTime,
      };
      void this.#store.db.put(keys.jobHistory(p, r, a, this.#store.nextSeq(`jhist:${p}${SEP}${r}${SEP}${a}`)), job);
      if (succeeded || !prev) {
        const imports = (st.pool.result(pkg)?.binaries ?? []).filter((b) => b.imported !== undefined);
        const bins = [...binaries.map(toBin), ...imports];
        this.#writeBinInfo(p, r, a, pkg, bins);
        addCounts(counts, this.#setResult(st, pkg, { binaries: bins }));
      }
      this.#bump(p, r, a);
      for (const [t, bins] of exports) {
        const tst = this.#loaded(p, r, t);
        const ik = keys.resultImport(p, r, t, pkg, a);
        if (bins.length > 0) {
          const rec: StoredImport = {
            project: p,
            repository: r,
            arch: t,
            package: pkg,
            fromArch: a,
            jobId: input.jobId,
            time: input.endTime,
            binaries: bins,
          };
          void this.#store.db.put(ik, rec);
        } else {
          void this.#store.db.remove(ik);
        }
        const others = (tst.pool.result(pkg)?.binaries ?? []).filter((b) => b.imported?.fromArch !== a);
        const next = [...others, ...bins.map(toBin)];
        this.#writeBinInfo(p, r, t, pkg, next);
        const keep = next.length > 0 || this.result(p, r, t, pkg) !== undefined;
        addCounts(counts, this.#setResult(tst, pkg, keep ? { binaries: next } : undefined));
        this.#bump(p, r, t);
      }
      this.#outbox.add(
        makeEvent<RepoEvent>({
          type: "repo.built",
          project: p,
          package: pkg,
          repository: r,
          arch: a,
          jobId: input.jobId,
          code: input.code,
          srcmd5: input.srcmd5,
          versrel: input.versrel,
          bcnt: input.bcnt,
          ...(input.metaSha256 ? { metaSha256: input.metaSha256 } : {}),
        })
      );
    });
    return { pool: counts, importsTo: [...exports.keys()].sort() };
  }

  /**
   * Removes results (binaries, log, imports into the repository/arch) of the matching packages.
   * The pool follows the pure rule: a package without `useforbuild` had nothing in it, so its
   * wipe leaves the pool alone (seed 003). A locked package is refused.
   */
  async wipe(project: string, filter: WipeFilter): Promise<(Prpa & { package: string })[]> {
    await this.ensureFlags(project, filter.package ? [filter.package] : []);
    const prpas = this.prpasOf(project).filter(
      (x) =>
        (filter.repository === undefined || x.repository === filter.repository) &&
        (filter.arch === undefined || x.arch === filter.arch)
    );
    const plan: { prpa: Prpa; packages: string[] }[] = [];
    for (const x of prpas) {
      const pkgs = [...this.packagesIn(x.project, x.repository, x.arch)]
        .filter((k) => filter.package === undefined || k === filter.package)
        .sort();
      if (pkgs.length === 0) continue;
      for (const k of pkgs) {
        if (this.flag("lock", project, k, x.repository, x.arch)) {
          throw new ConflictError(`${project}/${k} is locked for ${x.repository}/${x.arch}: nothing is wiped`);
        }
      }
      plan.push({ prpa: x, packages: pkgs });
    }
    await this.#removeResults(plan, { history: false });
    return plan.flatMap((e) => e.packages.map((k) => ({ ...e.prpa, package: k })));
  }

  /** A package was deleted: its results, imports, history and flags go. */
  async deletePackage(project: string, pkg: string): Promise<void> {
    const plan = this.prpasOf(project)
      .filter((x) => this.#hasResult(x.project, x.repository, x.arch, pkg))
      .map((prpa) => ({ prpa, packages: [pkg] }));
    await this.#removeResults(plan, { history: true });
    await this.#store.transact(() => void this.#store.db.remove(keys.packageFlags(project, pkg)));
  }

  /** A project was deleted: everything the role keeps of it goes. */
  async deleteProject(project: string): Promise<void> {
    const plan = this.prpasOf(project).map((prpa) => ({
      prpa,
      packages: [...this.packagesIn(prpa.project, prpa.repository, prpa.arch)].sort(),
    }));
    await this.#removeResults(plan, { history: true });
    await this.#store.transact(() => {
      for (const prefix of [
        keys.poolOf(project),
        keys.binInfosOf(project),
        keys.jobHistoryOf(project),
        keys.buildHistoryOf(project),
        keys.relsyncOf(project),
        keys.packageFlagsOf(project),
      ]) {
        for (const k of [...this.#store.scanKeys(prefix)]) void this.#store.db.remove(k);
      }
      void this.#store.db.remove(keys.projectFlags(project));
    });
    this.unload(project);
  }

  async #removeResults(plan: { prpa: Prpa; packages: string[] }[], opts: { history: boolean }): Promise<void> {
    if (plan.length === 0) return;
    for (const { prpa: x } of plan) await this.ensurePrpa(x.project, x.repository, x.arch);
    await this.#transact(
      plan.map(({ prpa: x }) => prpaKey(x.project, x.repository, x.arch)),
      () => {
        for (const { prpa: x, packages } of plan) {
          const st = this.#loaded(x.project, x.repository, x.arch);
          for (const k of packages) {
            void this.#store.db.remove(keys.result(x.project, x.repository, x.arch, k));
            this.#writeBinInfo(x.project, x.repository, x.arch, k, undefined);
            for (const ik of [...this.#store.scanKeys(keys.resultImportsOf(x.project, x.repository, x.arch, k))]) {
              void this.#store.db.remove(ik);
            }
            if (opts.history) {
              for (const hk of [...this.#store.scanKeys(keys.buildHistoryOf(x.project, x.repository, x.arch, k))]) {
                void this.#store.db.remove(hk);
              }
            }
            this.#setResult(st, k, undefined);
          }
          this.#bump(x.project, x.repository, x.arch);
          this.#outbox.add(
            makeEvent<RepoEvent>({
              type: "repo.wiped",
              project: x.project,
              repository: x.repository,
              arch: x.arch,
              packages,
            })
          );
        }
      }
    );
  }

  /**
   * Recomputes a repository/arch's pool from the stored results alone, with freshly fetched
   * config and flags, repairs the stored pool where it differs, and restarts the incremental
   * pool from the results. The counts say how much was repaired: zero when the incrementally
   * kept pool was right. `deep` derives every package's bininfo from its full result again
   * first (and repairs bininfo that differ) instead of trusting it.
   */
  async rebuildPool(
    project: string,
    repository: string,
    arch: string,
    opts: { deep?: boolean } = {}
  ): Promise<PoolChangeCounts & { binaries: number; bininfoRepaired: number }> {
    const config = await this.#lookups.buildConfig(project, repository, arch);
    await this.ensureFlags(project, this.packagesIn(project, repository, arch));
    const k = prpaKey(project, repository, arch);
    return this.#transact([k], () => {
      let bininfoRepaired = 0;
      if (opts.deep) {
        const have = new Map<string, BinTuple[]>();
        for (const { key, value } of this.#store.scan<BinTuple[]>(keys.binInfosOf(project, repository, arch))) {
          have.set(key[4] as string, value);
        }
        const pkgs = this.packagesIn(project, repository, arch);
        for (const pkg of new Set([...pkgs, ...have.keys()])) {
          const want = pkgs.has(pkg) ? this.#binInfoFromResults(project, repository, arch, pkg).map(toTuple) : [];
          if (sameTuples(want, have.get(pkg) ?? [])) continue;
          this.#writeBinInfo(project, repository, arch, pkg, want.map(fromTuple));
          bininfoRepaired++;
        }
      }
      const results = this.#readBinInfos(project, repository, arch);
      const fresh = computePool(results, this.#useforbuildOf(project, repository, arch), keepLocalOf(arch, config));
      // The kept pool is written with every change, so any repair means it had gone wrong.
      const counts = this.#repairStored({ project, repository, arch }, fresh);
      if (counts.added + counts.removed + counts.changed > 0) {
        this.#log.error({ project, repository, arch, ...counts }, "stored pool differed from the rule");
      }
      // The incremental pool restarts from the verified results when next needed.
      this.#prpas.delete(k);
      return { ...counts, binaries: fresh.size, bininfoRepaired };
    });
  }

  /** Sets a package's result in a loaded pool and writes what changed; inside a transaction. */
  #setResult(st: PrpaState, pkg: string, result: PackageResult<PoolBin> | undefined): PoolChangeCounts {
    // A package new to this pool must take part by its flag, not the pool's default.
    const counts = zeroCounts();
    if (result !== undefined) {
      const flag = this.flag("useforbuild", st.project, pkg, st.repository, st.arch);
      addCounts(counts, this.#applyDiff(st, st.pool.setUseForBuild(pkg, flag)));
    }
    addCounts(counts, this.#applyDiff(st, st.pool.setResult(pkg, result)));
    return counts;
  }

  /** Makes the stored pool equal `want`; inside a transaction. */
  #repairStored(
    st: Prpa,
    want: { values(): Iterable<PoolEntry<PoolBin>>; get(name: string): PoolEntry<PoolBin> | undefined }
  ): PoolChangeCounts {
    const stored = new Map<string, PoolIndexEntry>();
    for (const { key, value } of this.#store.scan<PoolIndexEntry>(keys.poolOf(st.project, st.repository, st.arch))) {
      stored.set(key[4] as string, value);
    }
    const added: PoolEntry<PoolBin>[] = [];
    const removed: Removal[] = [];
    let changed = 0;
    for (const e of want.values()) {
      const old = stored.get(e.name);
      // Entries written by an older kiln were full records: rewritten as entries.
      if (old && Array.isArray(old) && indexIs(old, e)) continue;
      if (old) {
        removed.push(removalOf(e.name, old));
        changed++;
      }
      added.push(e);
    }
    for (const [name, old] of stored) if (want.get(name) === undefined) removed.push(removalOf(name, old));
    this.#writePool(st, added, removed);
    return { added: added.length - changed, removed: removed.length - changed, changed };
  }

  /** Writes a diff to the stored pool and the outbox; inside a transaction. */
  #applyDiff(st: PrpaState, diff: PoolDiff<PoolBin>): PoolChangeCounts {
    if (isEmpty(diff)) return zeroCounts();
    const added = [...diff.added, ...diff.changed.map((c) => c.after)];
    const removed = [...diff.removed, ...diff.changed.map((c) => c.before)].map((e) => ({
      name: e.name,
      package: e.package,
      filename: e.filename,
    }));
    this.#writePool(st, added, removed);
    return countsOf(diff);
  }

  #writePool(st: Prpa, added: PoolEntry<PoolBin>[], removed: Removal[]): void {
    if (added.length === 0 && removed.length === 0) return;
    const { project: p, repository: r, arch: a } = st;
    const addedNames = new Set(added.map((x) => x.name));
    for (const x of removed) if (!addedNames.has(x.name)) void this.#store.db.remove(keys.poolEntry(p, r, a, x.name));
    for (const x of added) void this.#store.db.put(keys.poolEntry(p, r, a, x.name), indexEntry(x));
    const full = new FullBinaries(this, p, r, a);
    const records = added.map((e) => full.record(e.package, e.filename));
    for (const ev of this.#poolEvents(st, records, removed)) this.#outbox.add(ev);
  }

  /** `repo.pool-changed` events for one change, split so that none grows past the size limit. */
  #poolEvents(st: Prpa, added: PoolRecord[], removed: Removal[]): RepoPoolChangedEvent[] {
    const out: RepoPoolChangedEvent[] = [];
    let cur: RepoPoolChangedEvent | undefined;
    let size = 0;
    const next = (): RepoPoolChangedEvent => {
      if (!cur || size >= this.#maxEventBytes) {
        cur = makeEvent<RepoPoolChangedEvent>({
          type: "repo.pool-changed",
          project: st.project,
          repository: st.repository,
          arch: st.arch,
          added: [],
          removed: [],
        });
        out.push(cur);
        size = 200;
      }
      return cur;
    };
    // A changed name travels as removal plus addition in the same event, so that each event
    // leaves a subscriber's view complete.
    const addedByName = new Map(added.map((x) => [x.name, x]));
    for (const x of removed) {
      const ev = next();
      ev.removed.push({ name: x.name, package: x.package, filename: x.filename });
      size += 80 + x.name.length + x.filename.length;
      const repl = addedByName.get(x.name);
      if (repl) {
        ev.added.push(repl);
        size += estimateBytes(repl);
        addedByName.delete(x.name);
      }
    }
    for (const x of addedByName.values()) {
      next().added.push(x);
      size += estimateBytes(x);
    }
    return out;
  }

  async #transact<T>(touched: string[], fn: () => T): Promise<T> {
    try {
      return await this.#store.transact(fn);
    } catch (err) {
      for (const k of touched) this.#prpas.delete(k);
      throw err;
    }
  }

  #bump(project: string, repository: string, arch: string): void {
    const k = prpaKey(project, repository, arch);
    this.#generations.set(k, (this.#generations.get(k) ?? 0) + 1);
  }

  // ---- reading -----------------------------------------------------------------------------

  result(project: string, repository: string, arch: string, pkg: string): StoredResult | undefined {
    return this.#store.get<StoredResult>(keys.result(project, repository, arch, pkg));
  }

  results(project: string, repository: string, arch: string): StoredResult[] {
    return [...this.#store.scan<StoredResult>(keys.resultsOf(project, repository, arch))].map((e) => e.value);
  }

  imports(project: string, repository: string, arch: string, pkg: string): StoredImport[] {
    return [...this.#store.scan<StoredImport>(keys.resultImportsOf(project, repository, arch, pkg))].map(
      (e) => e.value
    );
  }

  /** The stored pool with each binary's dependency data, by binary name. */
  pool(project: string, repository: string, arch: string): PoolRecord[] {
    const full = new FullBinaries(this, project, repository, arch);
    return [...this.#store.scan<PoolIndexEntry>(keys.poolOf(project, repository, arch))].map(({ value }) =>
      // Entries written by an older kiln are full records already.
      Array.isArray(value) ? full.record(value[0], value[1]) : (value as PoolRecord)
    );
  }

  /** A page of the stored pool: entries by binary name after `after`. */
  poolPage(
    project: string,
    repository: string,
    arch: string,
    after?: string,
    limit = 1000
  ): { binaries: PoolRecord[]; next?: string } {
    const prefix = keys.poolOf(project, repository, arch);
    const start = after === undefined ? prefix : prefixRange(keys.poolEntry(project, repository, arch, after)).end;
    const full = new FullBinaries(this, project, repository, arch);
    const binaries: PoolRecord[] = [];
    for (const { value } of this.#store.db.getRange({
      start,
      end: prefixRange(prefix).end,
      limit: limit + 1,
    } as never) as Iterable<{ value: PoolIndexEntry | PoolRecord }>) {
      if (binaries.length === limit) return { binaries, next: binaries[binaries.length - 1]!.name };
      binaries.push(Array.isArray(value) ? full.record(value[0], value[1]) : value);
    }
    return { binaries };
  }

  /** The in-memory pool (for tests and benchmarks), undefined when not loaded. */
  memoryPool(project: string, repository: string, arch: string): PoolRecord[] | undefined {
    const st = this.#prpas.get(prpaKey(project, repository, arch));
    if (!st) return undefined;
    const full = new FullBinaries(this, project, repository, arch);
    return st.pool.entries().map((e) => full.record(e.package, e.filename));
  }

  /**
   * OBS's relsync, kept across archs: the highest counter of a successful build of the package's
   * versrel on any arch of the repository. Only the most recent {@link RELSYNC_VERSRELS} versrels
   * are kept (a scheduler asks about the current one and its last build's).
   */
  #raiseRelsync(p: string, r: string, pkg: string, versrel: string, bcnt: number): void {
    const k = keys.relsync(p, r, pkg);
    const had = this.#store.get<Record<string, number>>(k) ?? {};
    if ((had[versrel] ?? 0) >= bcnt) return;
    const next: Record<string, number> = {};
    // Insertion order is recency: the raised versrel goes last, the oldest ones fall out.
    const kept = Object.keys(had)
      .filter((v) => v !== versrel)
      .slice(-(RELSYNC_VERSRELS - 1));
    for (const v of kept) next[v] = had[v]!;
    next[versrel] = bcnt;
    void this.#store.db.put(k, next);
  }

  /** The relsync data of a repository: each package's highest build counter per recent versrel, over all archs. */
  relsync(project: string, repository: string): RelsyncEntry[] {
    const out: RelsyncEntry[] = [];
    for (const { key, value } of this.#store.scan<Record<string, number>>(keys.relsyncOf(project, repository))) {
      const pkg = String(key[key.length - 1]);
      for (const [versrel, bcnt] of Object.entries(value)) out.push({ package: pkg, versrel, bcnt });
    }
    return out;
  }

  buildHistory(project: string, repository: string, arch: string, pkg: string, limit?: number): BuildHistoryEntry[] {
    const out = [
      ...this.#store.scan<BuildHistoryEntry>(keys.buildHistoryOf(project, repository, arch, pkg), {
        reverse: true,
        ...(limit ? { limit } : {}),
      }),
    ].map((e) => e.value);
    return out.reverse();
  }

  /** Newest first. */
  jobHistory(project: string, repository: string, arch: string, pkg?: string, limit = 100): JobHistoryEntry[] {
    const out: JobHistoryEntry[] = [];
    for (const { value } of this.#store.scan<JobHistoryEntry>(keys.jobHistoryOf(project, repository, arch), {
      reverse: true,
    })) {
      if (pkg !== undefined && value.package !== pkg) continue;
      out.push(value);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** What the publisher needs to know of a project, or null when the role has no copy of it. */
  publishProject(project: string): PublishProjectView | null {
    const rec = this.projectFlags(project);
    return rec ? { project, repositories: rec.repositories, flags: rec.flags } : null;
  }

  /**
   * A page of the publishable binaries of a repository/arch: packages in name order after
   * `after`, as many as fit `limit` binaries (at least one package per page).
   */
  publishPage(project: string, repository: string, arch: string, after?: string, limit = 1500): PublishPage {
    const prefix = keys.resultsOf(project, repository, arch);
    const start = after === undefined ? prefix : prefixRange(keys.result(project, repository, arch, after)).end;
    const packages: PublishPackage[] = [];
    let count = 0;
    let next: string | undefined;
    for (const { value } of this.#store.db.getRange({ start, end: prefixRange(prefix).end } as never) as Iterable<{
      value: StoredResult;
    }>) {
      if (packages.length > 0 && count + value.binaries.length > limit) {
        next = packages[packages.length - 1]!.package;
        break;
      }
      const bins = localOf(value.binaries);
      packages.push({
        package: value.package,
        publish: this.flag("publish", project, value.package, repository, arch),
        sourceaccess: this.flag("sourceaccess", project, value.package, repository, arch),
        binaries: bins.map((b) => ({
          filename: b.filename,
          name: b.name,
          ...(b.epoch !== undefined ? { epoch: b.epoch } : {}),
          version: b.version,
          release: b.release,
          arch: b.arch,
          isSource: b.isSource,
          sha256: b.sha256,
          md5: b.md5,
          size: b.size,
        })),
      });
      count += bins.length;
    }
    return {
      project,
      repository,
      arch,
      generation: `${this.#instance}:${this.#generations.get(prpaKey(project, repository, arch)) ?? 0}`,
      packages,
      ...(next !== undefined ? { next } : {}),
    };
  }
}

/** Binaries of a stored result, each carrying the meta of the build that made it. */
function withMeta(r: StoredResult): StoredBinary[] {
  // Results stored before binaries carried their meta: the result's own meta made them.
  return r.binaries.map((b) =>
    b.metaSha256 !== undefined || r.metaSha256 === undefined ? b : { ...b, metaSha256: r.metaSha256 }
  );
}

/** The pool options of an ExportFilter: which local binaries stay in this arch's pool. */
function keepLocalOf(arch: string, config: RepoBuildConfig): { keepLocal?: (filename: string) => boolean } {
  const filters = config.exportFilter;
  // OBS's defaults for most archs only discard debug packages, which never enter a pool anyway
  // (a file name matching `-debuginfo-.*\.rpm$` has a debug package name): no filter to run.
  const defaults = DEFAULT_EXPORT_FILTERS[arch] ?? [];
  if (filters.length === 0 && defaults.every((f) => f.archs.length === 0 && DEBUG_FILTERS.has(f.regex))) return {};
  return { keepLocal: (f) => exportTargets(f, arch, filters).local };
}

const DEBUG_FILTERS = new Set(["-debuginfo-.*\\.rpm$", "-debugsource-.*\\.rpm$"]);

/** The diff that turns pool `a` into pool `b`. */
export function diffPools(
  a: ReadonlyMap<string, PoolEntry<PoolBin>>,
  b: ReadonlyMap<string, PoolEntry<PoolBin>>
): PoolDiff<PoolBin> {
  const diff: PoolDiff<PoolBin> = { added: [], removed: [], changed: [] };
  for (const [name, e] of b) {
    const old = a.get(name);
    if (!old) diff.added.push(e);
    else if (!sameEntry(old, e)) diff.changed.push({ before: old, after: e });
  }
  for (const [name, e] of a) if (!b.has(name)) diff.removed.push(e);
  return diff;
}

function isEmpty(d: PoolDiff<PoolBin>): boolean {
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}

function zeroCounts(): PoolChangeCounts {
  return { added: 0, removed: 0, changed: 0 };
}

function countsOf(d: PoolDiff<PoolBin>): PoolChangeCounts {
  return { added: d.added.length, removed: d.removed.length, changed: d.changed.length };
}

function addCounts(into: PoolChangeCounts, c: PoolChangeCounts): void {
  into.added += c.added;
  into.removed += c.removed;
  into.changed += c.changed;
}

/** A pool entry that leaves, as `repo.pool-changed` names it. */
interface Removal {
  name: string;
  package: string;
  filename: string;
}

function removalOf(name: string, old: PoolIndexEntry | PoolRecord): Removal {
  return Array.isArray(old)
    ? { name, package: old[0], filename: old[1] }
    : { name, package: old.package, filename: old.filename };
}

/**
 * Full binaries (with dependency data) of one repository/arch's pool entries, read from the
 * results and imports; each package's records are read once. Inside a transaction it sees the
 * transaction's own writes.
 */
class FullBinaries {
  readonly #state: RepoState;
  readonly #p: string;
  readonly #r: string;
  readonly #a: string;
  readonly #cache = new Map<string, StoredBinary[]>();

  constructor(state: RepoState, project: string, repository: string, arch: string) {
    this.#state = state;
    this.#p = project;
    this.#r = repository;
    this.#a = arch;
  }

  record(pkg: string, filename: string): PoolRecord {
    let bins = this.#cache.get(pkg);
    if (!bins) {
      const r = this.#state.result(this.#p, this.#r, this.#a, pkg);
      bins = r ? withMeta(r) : [];
      for (const imp of this.#state.imports(this.#p, this.#r, this.#a, pkg)) bins.push(...imp.binaries);
      this.#cache.set(pkg, bins);
    }
    const b = bins.find((x) => x.filename === filename);
    if (!b) throw new InternalError(`pool entry ${pkg}/${filename} of ${this.#p}/${this.#r}/${this.#a} has no result`);
    return poolRecord({ package: pkg, filename }, b);
  }
}

function sameTuples(a: readonly BinTuple[], b: readonly BinTuple[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.length !== y.length) return false;
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false;
  }
  return true;
}
