/**
 * The check of one repository/arch (OBS `checkpkgs`), kept incrementally.
 *
 * For every package, in build order: its code and details, and whether it must build and why.
 * Order of decisions per package (obs-backend.md §2.1): excluded, locked, disabled, broken,
 * blocked (source not ready), unresolvable, blocked (a build dependency not ready), then the
 * rebuild decision (§2.2): new build, source change, meta change; else succeeded or failed.
 *
 * {@link IncrementalChecker} remembers everything it computed and, after an input changes,
 * recomputes only what that change can affect:
 * - a package's expansion, when the package changed or the index changed under a name the
 *   expansion looked at (the expander reports those names; an inverted index maps them back);
 * - a package's state, when its expansion, its result, its job or the readiness of a package it
 *   depends on changed — readiness changes propagate to reverse dependencies in build order.
 * A fresh checker given the same inputs computes everything; the two agree (tested).
 */
import { createHash } from "node:crypto";
import { buildFlag, expandFlag, type BuildConfig } from "../common/prjconf.ts";
import { depMetaLines, genMeta } from "../common/build-meta.ts";
import { PackageCode, RepoCode, type BuildDep, type BuildResultCode, type PoolBinary } from "../common/model.ts";
import type { PackageBuildInfo } from "../source/protocol.ts";
import { getPreinstalls, getVminstalls, type TraceFilter } from "./expand.ts";
import { RepoExpansion, type Expansion, type PoolLayer } from "./expansion.ts";
import type { BuildReason } from "./protocol.ts";

/** The last build of a package as the scheduler remembers it. */
export interface LastBuild {
  code: BuildResultCode;
  /** The job that made it (to find what it recorded). */
  jobId?: string;
  /** verifymd5 of the sources the last build used. */
  srcmd5: string;
  versrel: string;
  bcnt: number;
  metaSha256?: string;
  /** Lines of the meta the build was made from; only needed when no digests were recorded. */
  meta?: readonly string[];
  /**
   * Digests of the build's dependency signature ({@link dependencySignature}), recorded when its
   * job was created: `sig` covers what each dependency contributes to the meta (equal digests
   * mean equal metas, so the rebuild decision needs no meta text), `direct` only the direct
   * identities (for `rebuild="direct"`).
   */
  digests?: SignatureDigests;
}

export interface SignatureDigests {
  sig: string;
  direct: string;
}

export interface JobRef {
  jobId: string;
  srcmd5: string;
  details?: string;
}

export interface PackageState {
  code: PackageCode;
  details: string;
}

export interface NeededBuild {
  package: string;
  reason: BuildReason;
  bdeps: BuildDep[];
  needed: number;
  /** To be recorded with the job: the next check compares against its digests. */
  depsig: string[];
  digests: SignatureDigests;
}

export type RebuildMode = "transitive" | "direct" | "local";
export type BlockMode = "all" | "local" | "never";

export interface CheckerSetup {
  project: string;
  repository: string;
  arch: string;
  rebuild: RebuildMode;
  block: BlockMode;
  config: BuildConfig;
  /** Layer 0 is this repository's own pool, then its path in order. */
  layers: readonly PoolLayer[];
  /** Meta lines of a producing build, by its meta blob id. */
  metaOf: (sha256: string) => readonly string[] | undefined;
  /**
   * The full dependency signature a package's last build recorded, when the caller keeps it at
   * hand: used to name the changed dependencies of a meta change (else the caller does later).
   */
  signatureOf?: (pkg: string) => readonly string[] | undefined;
}

/**
 * A job the check no longer wants (OBS `killunwantedjobs`, and `wipeobsolete` for a deleted
 * package): its package is gone, or now disabled, excluded or locked (`evenRunning`: kill it
 * on its worker too), or now blocked, unresolvable or broken (only while no worker has it: a
 * running build may become valid again).
 */
export interface UnwantedJob {
  package: string;
  jobId: string;
  evenRunning: boolean;
}

/** Marks the decision that a cycle's first pass puts off a meta change to its second. */
const POSTPONED: BuildReason = { explain: "postponed", time: 0 };

export interface CheckOutput {
  /** Every package's state (the checker's own map: read, do not change). */
  states: ReadonlyMap<string, PackageState>;
  /** Packages that must build now (no job yet). */
  builds: NeededBuild[];
  /** Jobs to cancel; the caller tells the checker with `setJob(pkg, undefined)` once they are. */
  unwanted: UnwantedJob[];
  notReady: ReadonlySet<string>;
  repoCode: RepoCode;
  /** Why the repository is `broken` (then no package was looked at). */
  repoDetails?: string;
  /**
   * Meta blobs (by id) a cycle's rebuild decision needed and `metaOf` did not have: the members
   * that needed them are decided again at the next check; load them and check again.
   */
  missingMetas: string[];
  /** Packages whose state was evaluated in this check. */
  evaluated: number;
  /** Packages whose expansion was recomputed in this check. */
  expanded: number;
  /** Where the check spent its time (ms): expansion, build order, states. */
  timings: { expandMs: number; orderMs: number; evaluateMs: number };
}

interface Entry {
  info: PackageBuildInfo;
  /** The package name's number (see `IncrementalChecker.#pidOf`). */
  pid: number;
  exp?: Expansion;
  /** Ids of `exp.packages` in the expansion's index (`RepoExpansion.nameId`), in the same order. */
  ids?: Int32Array;
  /** Filter of the name ids the expansion looked at (from the expander). */
  bloom?: TraceFilter;
  /** Local source packages this one depends on, by number, in the string order of their names. */
  depPids: Int32Array;
  state: PackageState;
  /** Quick key of the last check that found nothing to rebuild (OBS's `lastcheck`). */
  quick?: string;
  /**
   * For a member of a cycle: the dependency digest whose regenerated meta equalled the last
   * build's (OBS's `lastcheck` after "looked harder"), so that the next check need not look again.
   */
  accepted?: string;
  rank: number;
  /** For a member of a cycle: all its members, in OBS's order within a cycle (`cycsort`). */
  cycle?: Int32Array;
}

const keyOf = (p: string, r: string): string => `${p}/${r}`;

const NO_PIDS: Int32Array = new Int32Array(0);

/** Strongly connected components (Tarjan, iterative), dependencies before dependents. */
export function sccs(nodes: readonly string[], edges: (n: string) => readonly string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  for (const root of nodes) {
    if (idx.has(root)) continue;
    const work: { v: string; succ: readonly string[]; i: number }[] = [];
    const push = (v: string): void => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      onStack.add(v);
      work.push({ v, succ: edges(v), i: 0 });
    };
    push(root);
    while (work.length) {
      const top = work[work.length - 1]!;
      if (top.i < top.succ.length) {
        const w = top.succ[top.i++]!;
        if (!idx.has(w)) push(w);
        else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, idx.get(w)!));
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1]!.v;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.v)!));
      }
      if (low.get(top.v) === idx.get(top.v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== top.v);
        out.push(comp.sort());
      }
    }
  }
  return out;
}

const buildLists = new WeakMap<BuildConfig, { only: Set<string>; exclude: Set<string> }>();

/** `BuildFlags: onlybuild:` / `excludebuild:` (OBS's package white- and blacklist). */
/** A meta as compared for `rebuild="direct"`: without the indirect (`/`-joined) lines. */
function stripMeta(meta: readonly string[], direct: boolean): string[] {
  return direct ? meta.filter((l) => !l.includes("/")) : [...meta];
}

function excludedByBuildFlags(config: BuildConfig, pkg: string): string | undefined {
  let lists = buildLists.get(config);
  if (!lists) {
    lists = { only: new Set(), exclude: new Set() };
    for (const f of config.buildFlags) {
      if (f.startsWith("onlybuild:")) lists.only.add(f.slice(10));
      else if (f.startsWith("excludebuild:")) lists.exclude.add(f.slice(13));
    }
    buildLists.set(config, lists);
  }
  if (lists.only.size && !lists.only.has(pkg)) return "package whitelist";
  if (lists.exclude.has(pkg)) return "package blacklist";
  return undefined;
}

/**
 * Errors the source role finds before it reads the recipe (no sources, a service run): OBS
 * keeps them on the package and checks them before the build flag; the recipe's own errors
 * (no recipe, a bad one, `ExclusiveArch`) after it.
 */
function packageLevelError(p: PackageBuildInfo): boolean {
  const c = p.errorCode;
  if (c === "disabled" || c === "blocked") return true;
  if (c !== "broken") return false;
  const err = p.error ?? "";
  return err === "no source uploaded" || err.startsWith("service error");
}

/** The release number from the prjconf template (default `<CI_CNT>.<B_CNT>`). */
export function releaseOf(config: BuildConfig, rev: number, bcnt: number): string {
  const tpl = config.release && config.release.length ? config.release : "<CI_CNT>.<B_CNT>";
  return tpl.replace(/<CI_CNT>/g, String(rev)).replace(/<B_CNT>/g, String(bcnt));
}

/** Differences between two metas as OBS's `packagechange` entries, direct dependencies first. */
export function metaChanges(
  oldMeta: readonly string[],
  newMeta: readonly string[]
): NonNullable<BuildReason["packagechange"]> {
  const split = (lines: readonly string[]): Map<string, string> => {
    const m = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf("  ");
      if (i > 0) m.set(l.slice(i + 2), l.slice(0, i));
    }
    return m;
  };
  const a = split(oldMeta);
  const b = split(newMeta);
  const out: NonNullable<BuildReason["packagechange"]> = [];
  for (const [k, v] of b) {
    if (!a.has(k)) out.push({ change: "added", key: k });
    else if (a.get(k) !== v) out.push({ change: "md5sum", key: k });
  }
  for (const k of a.keys()) if (!b.has(k)) out.push({ change: "removed", key: k });
  return out.sort(
    (x, y) => x.key.split("/").length - y.key.split("/").length || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)
  );
}

/**
 * One entry per meta-relevant dependency: `name`, what the dependency contributes to the meta
 * (the producing build's meta id when there is one, else the header md5 — exactly the rule of
 * `depMetaLines`), and its "direct" identity (the producing build's source md5 when known) for
 * `rebuild="direct"`. Two builds with equal signatures write equal metas.
 */
export function dependencySignature(
  edeps: readonly string[],
  binary: (name: string) => PoolBinary | undefined,
  producerSource: (pkg: string) => string | undefined
): string[] {
  const out: string[] = [];
  for (const name of edeps) {
    const b = binary(name);
    if (!b) continue;
    const sig = b.metaSha256 ?? b.hdrmd5;
    out.push(`${name}\u0000${sig}\u0000${(b.metaSha256 ? producerSource(b.package) : undefined) ?? sig}`);
  }
  return out;
}

/** The `packagechange` list between two dependency signatures. */
export function signatureChanges(
  old: readonly string[],
  now: readonly string[],
  direct: boolean
): NonNullable<BuildReason["packagechange"]> {
  const field = direct ? 2 : 1;
  const split = (sig: readonly string[]): Map<string, string> =>
    new Map(sig.map((e) => e.split("\u0000")).map((p) => [p[0]!, p[field]!]));
  const a = split(old);
  const b = split(now);
  const out: NonNullable<BuildReason["packagechange"]> = [];
  for (const [k, v] of b) {
    if (!a.has(k)) out.push({ change: "added", key: k });
    else if (a.get(k) !== v) out.push({ change: "md5sum", key: k });
  }
  for (const k of a.keys()) if (!b.has(k)) out.push({ change: "removed", key: k });
  return out.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

/** FNV-1a over a string, from a seed: a cheap, stable 32-bit hash. */
function fnv(s: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** An order-dependent 96-bit digest of a list of strings, as hex. */
class Digest {
  #a = 0x811c9dc5;
  #b = 0x9e3779b1;
  #c = 0;
  add(x: number, y: number): void {
    this.#a = (Math.imul(this.#a, 31) + x) >>> 0;
    this.#b = (Math.imul(this.#b ^ y, 0x85ebca6b) + 0x2545f491) >>> 0;
    this.#c = (this.#c + 1) >>> 0;
  }
  hex(): string {
    return `${this.#a.toString(16)}.${this.#b.toString(16)}.${this.#c.toString(16)}`;
  }
}

const entryHashes = new WeakMap<PoolBinary, [number, number]>();

/** The two hashes of one signature entry ({@link signatureDigests}). */
function entryHash(name: string, b: PoolBinary): [number, number] {
  const e = `${name}\u0000${b.metaSha256 ?? b.hdrmd5}`;
  return [fnv(e, 0x811c9dc5), fnv(e, 0x050c5d1f)];
}

/** The digests of {@link dependencySignature}, without building its strings. */
export function signatureDigests(
  edeps: readonly string[],
  binary: (name: string) => PoolBinary | undefined,
  producerSource: (pkg: string) => string | undefined,
  withDirect: boolean
): SignatureDigests {
  const sig = new Digest();
  const direct = new Digest();
  for (const name of edeps) {
    const b = binary(name);
    if (!b) continue;
    let h = entryHashes.get(b);
    if (!h) {
      h = entryHash(name, b);
      entryHashes.set(b, h);
    }
    sig.add(h[0], h[1]);
    if (withDirect) {
      const d = `${name}\u0000${(b.metaSha256 ? producerSource(b.package) : undefined) ?? b.metaSha256 ?? b.hdrmd5}`;
      direct.add(fnv(d, 0x811c9dc5), fnv(d, 0x050c5d1f));
    }
  }
  return { sig: sig.hex(), direct: withDirect ? direct.hex() : "" };
}

/**
 * perl-BSSolv's `depsort` of vertices `0..n-1` (in the order given) over `edges` (what each
 * depends on): depth first, dependencies first, a cycle broken at the edge from the vertex where
 * it was found to the next one on the path. OBS orders a cycle's members with it (`cycsort`).
 */
export function depsortOrder(n: number, edges: readonly (readonly number[])[]): number[] {
  // 1-based as in the original, whose stack marks a finished visit with -id.
  const e = edges.map((l) => l.map((x) => x + 1));
  const mark = new Uint8Array(n + 1);
  const todo: number[] = [];
  for (let i = n; i >= 1; i--) todo.push(i);
  const out: number[] = [];
  while (todo.length) {
    let i = todo.pop()!;
    if (i < 0) {
      i = -i;
      mark[i] = 2;
      out.push(i - 1);
      continue;
    }
    if (mark[i] === 2) continue;
    if (mark[i] === 0) {
      let visits = 0;
      for (const x of e[i - 1]!) {
        if (x === -1 || mark[x] === 2) continue;
        if (!visits++) todo.push(-i);
        todo.push(x);
      }
      if (!visits) {
        mark[i] = 2;
        out.push(i - 1);
      } else mark[i] = 1;
      continue;
    }
    // Back at a vertex on the current path: a cycle; break it and walk the path again.
    let start = todo.length - 1;
    while (todo[start] !== -i) start--;
    const path: number[] = [];
    for (let j = start; j < todo.length; j++) {
      const t = todo[j]!;
      if (t < 0) {
        mark[-t] = 0;
        path.push(-t);
      }
    }
    todo[start] = i;
    const from = path[0]!;
    const to = path.length > 1 ? path[1]! : path[0]!;
    const list = e[from - 1]!;
    list[list.indexOf(to)] = -1;
    todo.length = start + 1;
  }
  return out;
}

/** The depth of a meta line (perl-BSSolv `metadepth`): 2 for a direct dependency, +1 per level. */
function lineDepth(l: string | undefined): number {
  if (l === undefined) return 0;
  let n = 2;
  for (let i = 0; i < l.length; i++) if (l.charCodeAt(i) === 47) n++;
  return n;
}

function metaLineDepth(a: string | undefined, b: string | undefined): number {
  const x = lineDepth(a);
  const y = lineDepth(b);
  if (!x) return y;
  if (!y) return x;
  return Math.min(x, y);
}

/**
 * perl-BSSolv's `diffdepth_meta`: how deep the first difference of two metas lies — 0 when they
 * are equal, 1 when the first line (the sources) differs, 2 for a direct dependency, and so on.
 */
export function diffDepth(a: readonly string[], b: readonly string[]): number {
  if (!b.length) return a.length ? 1 : 0;
  if (!a.length) return 1;
  for (let i = 0; ; i++) {
    const x = i < a.length ? a[i] : undefined;
    const y = i < b.length ? b[i] : undefined;
    if (x === undefined || y === undefined || x !== y) {
      if (i) return metaLineDepth(x, y);
      return x !== undefined || y !== undefined ? 1 : 0;
    }
  }
}

/** A min-heap of packages by build-order rank. */
class RankQueue {
  // A heap of (rank, package number) pairs in two arrays.
  readonly #rank: number[] = [];
  readonly #pid: number[] = [];
  readonly #in: Uint8Array;
  constructor(pids: number) {
    this.#in = new Uint8Array(pids);
  }
  #swap(a: number, b: number): void {
    const r = this.#rank[a]!;
    this.#rank[a] = this.#rank[b]!;
    this.#rank[b] = r;
    const p = this.#pid[a]!;
    this.#pid[a] = this.#pid[b]!;
    this.#pid[b] = p;
  }
  push(rank: number, pid: number): void {
    if (this.#in[pid] === 1) return;
    this.#in[pid] = 1;
    const h = this.#rank;
    h.push(rank);
    this.#pid.push(pid);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= h[i]!) break;
      this.#swap(p, i);
      i = p;
    }
  }
  /** The package number of lowest rank, or -1. */
  pop(): number {
    const h = this.#rank;
    if (!h.length) return -1;
    const top = this.#pid[0]!;
    const lastRank = h.pop()!;
    const lastPid = this.#pid.pop()!;
    if (h.length) {
      h[0] = lastRank;
      this.#pid[0] = lastPid;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]! < h[m]!) m = l;
        if (r < h.length && h[r]! < h[m]!) m = r;
        if (m === i) break;
        this.#swap(m, i);
        i = m;
      }
    }
    this.#in[top] = 0;
    return top;
  }
}

export class IncrementalChecker {
  readonly project: string;
  readonly repository: string;
  readonly arch: string;
  #rebuild: RebuildMode;
  #block: BlockMode;
  readonly #exp: RepoExpansion;
  readonly #metaOf: (sha256: string) => readonly string[] | undefined;
  readonly #signatureOf: ((pkg: string) => readonly string[] | undefined) | undefined;
  readonly #pkgs = new Map<string, Entry>();
  readonly #states = new Map<string, PackageState>();
  readonly #results = new Map<string, LastBuild>();
  readonly #jobs = new Map<string, JobRef>();
  readonly #force = new Set<string>();
  /** OBS relsync: per package, the highest build counter per versrel on any arch. */
  readonly #relsync = new Map<string, Map<string, number>>();
  readonly #notReadyElsewhere = new Map<string, ReadonlySet<string>>();
  readonly #notReady = new Set<string>();
  /** The same by package number (1: not ready), for the loops over dependencies. */
  #notReadyPid = new Uint8Array(0);
  /**
   * Reverse local dependencies by package number, rebuilt with the build order whenever
   * dependencies change; each list in the order packages were added.
   */
  #revByPid: (number[] | undefined)[] = [];
  /** Binary name → local package that declares it as a subpackage. */
  readonly #declared = new Map<string, string>();
  /** Binary name → package whose result holds it in this repository's pool. */
  readonly #poolOwner = new Map<string, string>();
  /** The two above merged (declared first). */
  readonly #src = new Map<string, string>();
  /**
   * The same by binary name id, as package numbers (-1: none), which the hot loop reads: it
   * runs over every package of every expansion, where map lookups by string missed the caches.
   */
  #srcPid = new Int32Array(0).fill(-1);
  /** Package name → number, kept for good (a package that comes back gets its number again). */
  readonly #pids = new Map<string, number>();
  readonly #pidNames: string[] = [];
  readonly #byPid: (Entry | undefined)[] = [];
  /** Per package number: its rank among all numbered names in string order (for sorting). */
  #pidRank: Int32Array | undefined;
  #rankPid = new Int32Array(0);
  /** Per binary name id: the binary its signature hashes below were made from. */
  #hashedBin: (PoolBinary | undefined)[] = [];
  /** Per binary name id: the two hashes of its signature entry. */
  #hashes = new Uint32Array(0);
  /** Stamps of a dedupe pass over packages (bumped per package), by package number. */
  #stamp = 0;
  #pidMark = new Uint32Array(0);
  /** Where {@link makeFilters} goes on. */
  #filtersFrom = 0;
  #scratch = new Int32Array(1024);
  /** The entries as an array, for loops over all packages; dropped when packages come or go. */
  #list: Entry[] | undefined;
  #cycles: string[][] = [];
  /** The pass of a cycle being decided (OBS `incycle`); 0 outside cycles. */
  #incycle = 0;
  /** Per package number: the depth of its meta change found in its cycle's first pass (0: none). */
  #cyclevel = new Int32Array(0);
  readonly #missingMetas = new Set<string>();
  #indexVersion = -1;
  #expandAll = true;
  #stateAll = true;
  #orderDirty = true;
  readonly #expandDirty = new Set<string>();
  readonly #stateDirty = new Set<string>();
  readonly #pending = new Set<string>();
  readonly #namesChanged = new Set<number>();

  constructor(setup: CheckerSetup) {
    this.project = setup.project;
    this.repository = setup.repository;
    this.arch = setup.arch;
    this.#rebuild = setup.rebuild;
    this.#block = setup.block;
    this.#exp = new RepoExpansion(setup.layers, setup.config);
    this.#metaOf = setup.metaOf;
    this.#signatureOf = setup.signatureOf;
  }

  get expansion(): RepoExpansion {
    return this.#exp;
  }

  // ---- inputs ------------------------------------------------------------------------------

  setModes(rebuild: RebuildMode, block: BlockMode): void {
    if (rebuild === this.#rebuild && block === this.#block) return;
    this.#rebuild = rebuild;
    this.#block = block;
    this.#stateAll = true;
  }

  /**
   * Decide every package again at the next check (expansions come from the cache where the
   * index did not change under them): what a full recheck costs once the scheduler runs.
   */
  recheckAll(): void {
    this.#expandAll = true;
    this.#stateAll = true;
  }

  setConfig(config: BuildConfig): void {
    this.#exp.setConfig(config);
    this.#expandAll = true;
    this.#stateAll = true;
  }

  upsertPackage(info: PackageBuildInfo): void {
    const e = this.#pkgs.get(info.package);
    const before = e?.info.subpacks ?? [];
    if (e) {
      e.info = info;
      e.quick = undefined;
      e.accepted = undefined;
    } else {
      const known = this.#pids.has(info.package);
      const pid = this.#pidOf(info.package);
      // A package that comes back: expansions that use binaries it left in the pool counted
      // them as not local while it was gone.
      if (known)
        for (const [name, owner] of this.#src)
          if (owner === info.package) this.#namesChanged.add(this.#exp.nameId(name));
      const entry: Entry = {
        info,
        pid,
        depPids: NO_PIDS,
        state: { code: PackageCode.Unknown, details: "" },
        rank: 0,
      };
      this.#pkgs.set(info.package, entry);
      this.#byPid[pid] = entry;
      this.#list = undefined;
      this.#filtersFrom = 0;
      this.#orderDirty = true;
    }
    if (before.join("\0") !== info.subpacks.join("\0")) this.#redeclare(info.package, before, info.subpacks);
    this.#expandDirty.add(info.package);
  }

  removePackage(name: string): void {
    const e = this.#pkgs.get(name);
    if (!e) return;
    for (const r of this.#revByPid[e.pid] ?? []) this.#expandDirty.add(this.#pidNames[r]!);
    this.#pkgs.delete(name);
    this.#byPid[e.pid] = undefined;
    this.#list = undefined;
    this.#filtersFrom = 0;
    this.#states.delete(name);
    this.#force.delete(name);
    // OBS wipes a deleted package's meta: back, it is a new build.
    this.#results.delete(name);
    this.#setReady(e.pid, name, true);
    this.#pending.delete(name);
    this.#redeclare(name, e.info.subpacks, []);
    this.#orderDirty = true;
  }

  /** A pool change of one layer of the path (layer 0: this repository). */
  applyPoolDiff(layer: number, added: readonly PoolBinary[], removed: readonly string[]): void {
    this.#exp.applyPoolDiff(layer, added, removed);
    if (layer !== 0) return;
    const addedNames = new Set(added.map((b) => b.name));
    for (const n of removed) {
      if (addedNames.has(n) || !this.#poolOwner.has(n)) continue;
      this.#poolOwner.delete(n);
      this.#resync(n);
    }
    for (const b of added) {
      this.#poolOwner.set(b.name, b.package);
      this.#resync(b.name);
    }
  }

  /**
   * Recomputes which local package builds a binary (a declared subpackage first, else the pool's
   * owner); when that changed, the packages using the binary are expanded again.
   */
  #resync(name: string): void {
    const now = this.#declared.get(name) ?? this.#poolOwner.get(name);
    if (now === this.#src.get(name)) return;
    if (now === undefined) this.#src.delete(name);
    else this.#src.set(name, now);
    const id = this.#exp.nameId(name);
    if (id >= this.#srcPid.length) {
      const grown = new Int32Array(Math.max(id + 1, this.#srcPid.length * 2, 1024)).fill(-1);
      grown.set(this.#srcPid);
      this.#srcPid = grown;
    }
    this.#srcPid[id] = now === undefined ? -1 : this.#pidOf(now);
    this.#namesChanged.add(id);
  }

  #pidOf(pkg: string): number {
    let pid = this.#pids.get(pkg);
    if (pid === undefined) {
      pid = this.#pidNames.length;
      this.#pids.set(pkg, pid);
      this.#pidNames.push(pkg);
      this.#byPid.push(undefined);
      this.#pidRank = undefined;
    }
    return pid;
  }

  // A loop, not Array.from with a mapper: that walks a typed array through the iterator protocol
  // and allocates a result object per element.
  #namesOf(pids: Int32Array): string[] {
    const out = new Array<string>(pids.length);
    for (let i = 0; i < pids.length; i++) out[i] = this.#pidNames[pids[i]!]!;
    return out;
  }

  /** Package numbers in the string order of their names. */
  #sortPids(pids: readonly number[]): Int32Array {
    const rank = this.#ranks();
    const n = pids.length;
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = rank[pids[i]!]!;
    return this.#pidsOfRanks(out);
  }

  /** Per package number, its name's place in string order. */
  #ranks(): Int32Array {
    let rank = this.#pidRank;
    if (!rank) {
      const names = this.#pidNames;
      const order = names.map((_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
      rank = new Int32Array(names.length);
      order.forEach((pid, r) => (rank![pid] = r));
      this.#rankPid = Int32Array.from(order);
      this.#pidRank = rank;
    }
    return rank;
  }

  /** Sorts name ranks and turns them into package numbers, in place. */
  #pidsOfRanks(ranks: Int32Array): Int32Array {
    ranks.sort();
    for (let i = 0; i < ranks.length; i++) ranks[i] = this.#rankPid[ranks[i]!]!;
    return ranks;
  }

  /** A package's declared subpackages changed: the users of every name whose owner moved. */
  #redeclare(pkg: string, before: readonly string[], after: readonly string[]): void {
    const names = new Set([...before, ...after]);
    for (const n of before) if (this.#declared.get(n) === pkg) this.#declared.delete(n);
    for (const n of after) this.#declared.set(n, pkg);
    // Another package may still declare a name this one gave up.
    for (const n of before) {
      if (this.#declared.has(n)) continue;
      for (const [other, oe] of this.#pkgs)
        if (other !== pkg && oe.info.subpacks.includes(n)) this.#declared.set(n, other);
    }
    for (const n of names) this.#resync(n);
  }

  setResult(pkg: string, last: LastBuild | undefined): void {
    const e = this.#pkgs.get(pkg);
    if (e) e.accepted = undefined;
    if (last) {
      this.#results.set(pkg, last);
      // A rebuild was asked for and has happened.
      this.#force.delete(pkg);
    } else this.#results.delete(pkg);
    this.#touchState(pkg);
  }

  setJob(pkg: string, job: JobRef | undefined): void {
    if (job) {
      this.#jobs.set(pkg, job);
      this.#force.delete(pkg);
    } else this.#jobs.delete(pkg);
    this.#pending.delete(pkg);
    this.#touchState(pkg);
  }

  /**
   * OBS relsync: a successful build of `versrel` got `bcnt` on some arch of the repository (this
   * one included). A package whose own last build of that versrel counted less is rebuilt
   * ("rebuild counter sync"), and its next build counter is at least this.
   */
  raiseRelsync(pkg: string, versrel: string, bcnt: number): void {
    let m = this.#relsync.get(pkg);
    if ((m?.get(versrel) ?? 0) >= bcnt) return;
    if (!m) this.#relsync.set(pkg, (m = new Map()));
    m.set(versrel, bcnt);
    this.#touchState(pkg);
  }

  /** The highest build counter a successful build of `versrel` got on any arch (0: none known). */
  relsyncMax(pkg: string, versrel: string): number {
    return this.#relsync.get(pkg)?.get(versrel) ?? 0;
  }

  /** `kiln rebuild`: ignore the last build until a new job is set or a new result arrives. */
  forceRebuild(pkg: string): void {
    this.#force.add(pkg);
    this.#jobs.delete(pkg);
    this.#touchState(pkg);
  }

  /** Packages of another repository in the path that are not ready (for blocking). */
  setNotReadyElsewhere(prpKey: string, notReady: ReadonlySet<string>): void {
    const old = this.#notReadyElsewhere.get(prpKey);
    if (old && old.size === notReady.size && [...old].every((x) => notReady.has(x))) return;
    this.#notReadyElsewhere.set(prpKey, new Set(notReady));
    this.#stateAll = true;
  }

  #touchState(pkg: string): void {
    if (this.#pkgs.has(pkg)) this.#stateDirty.add(pkg);
  }

  /**
   * Makes the expansions' filters a check left to be made (see `TraceFilter`), for at most about
   * `budgetMs`; true when some are still to be made. Meant for idle time after a check, so that
   * the first change after a cold start does not wait for all of them.
   */
  makeFilters(budgetMs = Infinity): boolean {
    const deadline = performance.now() + budgetMs;
    const list = (this.#list ??= [...this.#pkgs.values()]);
    for (let i = this.#filtersFrom; i < list.length; i++) {
      const f = list[i]!.bloom;
      if (f && !f.made) {
        f.bits();
        // Checking the clock costs more than a filter: every 64 of them.
        if ((i & 63) === 0 && performance.now() > deadline) {
          this.#filtersFrom = i + 1;
          return true;
        }
      }
    }
    this.#filtersFrom = 0;
    return false;
  }

  #markIds(ids: readonly number[]): void {
    // An indexed loop over an array: this runs over every package after every pool change.
    const list = (this.#list ??= [...this.#pkgs.values()]);
    const n = ids.length;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      const bloom = e.bloom;
      if (bloom === undefined) continue;
      for (let k = 0; k < n; k++) {
        if (bloom.has(ids[k]!)) {
          this.#expandDirty.add(e.info.package);
          break;
        }
      }
    }
  }

  // ---- reading -----------------------------------------------------------------------------

  states(): ReadonlyMap<string, PackageState> {
    return this.#states;
  }

  packages(): IterableIterator<PackageBuildInfo> {
    return [...this.#pkgs.values()].map((e) => e.info)[Symbol.iterator]();
  }

  packageInfo(name: string): PackageBuildInfo | undefined {
    return this.#pkgs.get(name)?.info;
  }

  /** The package's edeps as of the last check. */
  expansionOf(name: string): Expansion | undefined {
    return this.#pkgs.get(name)?.exp;
  }

  pkgdeps(name: string): readonly string[] {
    const e = this.#pkgs.get(name);
    return e ? this.#namesOf(e.depPids) : [];
  }

  revdeps(name: string): string[] {
    const pid = this.#pids.get(name);
    return (pid === undefined ? [] : (this.#revByPid[pid] ?? []).map((r) => this.#pidNames[r]!)).sort();
  }

  cycles(): string[][] {
    return this.#cycles;
  }

  result(pkg: string): LastBuild | undefined {
    return this.#results.get(pkg);
  }

  job(pkg: string): JobRef | undefined {
    return this.#jobs.get(pkg);
  }

  jobs(): ReadonlyMap<string, JobRef> {
    return this.#jobs;
  }

  notReady(): ReadonlySet<string> {
    return this.#notReady;
  }

  // ---- the check ---------------------------------------------------------------------------

  check(): CheckOutput {
    const exp = this.#exp;
    // OBS's expandandsort: with `ExpandFlags: preinstallexpand`, unresolvable preinstalls break
    // the whole repository before any package is looked at (what changed is looked at later).
    const broken = this.#brokenBy();
    if (broken !== undefined) {
      return {
        states: this.#states,
        builds: [],
        unwanted: [],
        notReady: this.#notReady,
        repoCode: RepoCode.Broken,
        repoDetails: broken,
        missingMetas: [],
        evaluated: 0,
        expanded: 0,
        timings: { expandMs: 0, orderMs: 0, evaluateMs: 0 },
      };
    }
    // 1. Which expansions may have changed.
    const version = exp.index.version;
    if (!this.#expandAll && version !== this.#indexVersion) {
      const changed = exp.index.changedIdsSince(this.#indexVersion);
      // Past a few thousand changed names, testing every filter costs more than expanding.
      if (!changed || changed.length > 4096) this.#expandAll = true;
      else for (const id of changed) this.#namesChanged.add(id);
    }
    if (!this.#expandAll && this.#namesChanged.size) this.#markIds([...this.#namesChanged]);
    this.#namesChanged.clear();
    const toExpand = this.#expandAll ? [...this.#pkgs.keys()] : [...this.#expandDirty].filter((p) => this.#pkgs.has(p));
    this.#expandAll = false;
    this.#expandDirty.clear();

    const tExpand = performance.now();
    // 2. Re-expand.
    const stateWork = new Set<string>(this.#stateAll ? this.#pkgs.keys() : []);
    for (const p of toExpand) {
      const e = this.#pkgs.get(p)!;
      let depPids: Int32Array = NO_PIDS;
      e.bloom = undefined;
      e.ids = undefined;
      if (e.info.error) e.exp = undefined;
      else {
        e.exp = exp.edeps(
          e.info,
          (bloom) => (e.bloom = bloom),
          (ids) => (e.ids = ids)
        );
        if (e.exp.ok) depPids = this.#localDeps(e);
      }
      const old = e.depPids;
      if (depPids.length !== old.length || depPids.some((d, i) => d !== old[i])) {
        e.depPids = depPids;
        this.#orderDirty = true;
      }
      e.quick = undefined;
      stateWork.add(p);
    }
    this.#indexVersion = version;
    // New expansions left filters to be made (makeFilters looks at every package again).
    if (toExpand.length) this.#filtersFrom = 0;

    const tOrder = performance.now();
    // 3. Build order.
    if (this.#orderDirty) {
      const list = (this.#list ??= [...this.#pkgs.values()]);
      const rev: (number[] | undefined)[] = [];
      for (let i = 0; i < this.#pidNames.length; i++) rev.push(undefined);
      for (const e of list) {
        const dp = e.depPids;
        for (let i = 0; i < dp.length; i++) {
          const l = rev[dp[i]!];
          if (l) l.push(e.pid);
          else rev[dp[i]!] = [e.pid];
        }
      }
      this.#revByPid = rev;
      // A package's rank is its component's place in build order.
      const comps = this.#components(list);
      comps.forEach((c, i) => c.forEach((pid) => (this.#byPid[pid]!.rank = i)));
      for (const e of list) e.cycle = undefined;
      const cycles: string[][] = [];
      for (const c of comps) {
        if (c.length < 2) continue;
        cycles.push(this.#namesOf(c));
        const order = this.#cycsort(c);
        for (let i = 0; i < c.length; i++) this.#byPid[c[i]!]!.cycle = order;
      }
      this.#cycles = cycles;
      this.#orderDirty = false;
    }

    const tEvaluate = performance.now();
    // 4. States, in build order, propagating readiness to reverse dependencies.
    for (const p of this.#stateDirty) stateWork.add(p);
    for (const p of this.#pending) stateWork.add(p);
    this.#stateDirty.clear();
    this.#stateAll = false;
    const queue = new RankQueue(this.#pidNames.length);
    for (const p of stateWork) {
      const e = this.#pkgs.get(p);
      if (e) queue.push(e.rank, e.pid);
    }
    const builds: NeededBuild[] = [];
    let evaluated = 0;
    this.#missingMetas.clear();
    // Ranks only grow as the queue is worked off: a cycle, decided whole, is not met again.
    let cycleRank = -1;
    for (let pid = queue.pop(); pid >= 0; pid = queue.pop()) {
      const e = this.#byPid[pid];
      if (!e) continue;
      const cycle = e.cycle;
      if (cycle !== undefined) {
        if (e.rank === cycleRank) continue;
        cycleRank = e.rank;
        const before = new Uint8Array(cycle.length);
        for (let i = 0; i < cycle.length; i++) before[i] = this.#notReadyPid[cycle[i]!] === 1 ? 1 : 0;
        this.#evaluateCycle(cycle, builds);
        evaluated += cycle.length;
        for (let i = 0; i < cycle.length; i++) {
          const m = cycle[i]!;
          if (before[i] === (this.#notReadyPid[m] === 1 ? 1 : 0)) continue;
          for (const r of this.#revByPid[m] ?? []) {
            const re = this.#byPid[r]!;
            if (re.rank !== cycleRank) queue.push(re.rank, r);
          }
        }
        continue;
      }
      evaluated++;
      const wasReady = this.#notReadyPid[pid] !== 1;
      const build = this.#evaluate(e.info.package, e);
      if (build) builds.push(build);
      const isReady = this.#notReadyPid[pid] !== 1;
      if (wasReady !== isReady) for (const r of this.#revByPid[pid] ?? []) queue.push(this.#byPid[r]!.rank, r);
    }

    // OBS: building while a job exists, blocked while a package waits for a dependency (one that
    // waits for its own sources does not count), else finished.
    let repoCode: RepoCode = RepoCode.Finished;
    let blocked = false;
    for (const e of (this.#list ??= [...this.#pkgs.values()])) {
      const code = e.state.code;
      if (code === PackageCode.Scheduled) {
        repoCode = RepoCode.Building;
        break;
      }
      if (code === PackageCode.Blocked && e.info.errorCode !== "blocked") blocked = true;
    }
    if (repoCode === RepoCode.Finished && blocked) repoCode = RepoCode.Blocked;
    const unwanted: UnwantedJob[] = [];
    for (const [pkg, job] of this.#jobs) {
      const code = this.#pkgs.get(pkg)?.state.code;
      if (
        code === undefined ||
        code === PackageCode.Disabled ||
        code === PackageCode.Excluded ||
        code === PackageCode.Locked
      ) {
        unwanted.push({ package: pkg, jobId: job.jobId, evenRunning: true });
      } else if (code === PackageCode.Blocked || code === PackageCode.Unresolvable || code === PackageCode.Broken) {
        unwanted.push({ package: pkg, jobId: job.jobId, evenRunning: false });
      }
    }
    const tEnd = performance.now();
    return {
      states: this.#states,
      builds,
      unwanted,
      notReady: this.#notReady,
      repoCode,
      missingMetas: [...this.#missingMetas],
      evaluated,
      expanded: toExpand.length,
      timings: { expandMs: tOrder - tExpand, orderMs: tEvaluate - tOrder, evaluateMs: tEnd - tEvaluate },
    };
  }

  /** Why the repository cannot be checked at all, if it cannot (OBS `expandandsort`). */
  #brokenBy(): string | undefined {
    const config = this.#exp.config;
    if (expandFlag(config, "preinstallexpand") === undefined) return undefined;
    const pre = getPreinstalls(config, this.#exp.index);
    if (!pre.ok) return `unresolvable ${pre.errors[0]}`;
    const vm = getVminstalls(config, this.#exp.index);
    if (!vm.ok) return `unresolvable ${vm.errors[0]}`;
    return undefined;
  }

  /**
   * The local source packages an expansion uses: a dependency is local when a package of this
   * repository builds it (declared subpackage, or owner in this repository's pool). Sorted.
   */
  #localDeps(e: Entry): Int32Array {
    if (this.#pidMark.length < this.#pidNames.length) {
      this.#pidMark = new Uint32Array(this.#pidNames.length * 2);
      this.#stamp = 0;
    }
    if (this.#stamp >= 0xfffffff0) {
      this.#pidMark.fill(0);
      this.#stamp = 0;
    }
    const stamp = ++this.#stamp;
    const mark = this.#pidMark;
    mark[e.pid] = stamp;
    const ids = e.ids;
    if (!ids || !e.exp?.ok) {
      const pids: number[] = [];
      for (const bin of e.exp?.ok ? e.exp.packages : []) {
        const src = this.#src.get(bin);
        if (src === undefined) continue;
        const de = this.#pkgs.get(src);
        if (de === undefined || mark[de.pid] === stamp) continue;
        mark[de.pid] = stamp;
        pids.push(de.pid);
      }
      return this.#sortPids(pids);
    }
    const srcPid = this.#srcPid;
    const byPid = this.#byPid;
    const rank = this.#ranks();
    // Name ranks of the dependencies, gathered in scratch space (at most one per package).
    if (this.#scratch.length < ids.length) this.#scratch = new Int32Array(ids.length * 2);
    const found = this.#scratch;
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id >= srcPid.length) continue;
      const pid = srcPid[id]!;
      if (pid < 0 || mark[pid] === stamp || byPid[pid] === undefined) continue;
      mark[pid] = stamp;
      found[n++] = rank[pid]!;
    }
    return this.#pidsOfRanks(found.slice(0, n));
  }

  /** Tarjan's strongly connected components over package numbers, dependencies first. */
  #components(list: readonly Entry[]): Int32Array[] {
    const n = this.#pidNames.length;
    // Roots in name order, successors in dependency (name) order: `sccs` over names.
    const roots = this.#sortPids(list.map((e) => e.pid));
    const idx = new Int32Array(n).fill(-1);
    const low = new Int32Array(n);
    const onStack = new Uint8Array(n);
    const stack: number[] = [];
    const out: Int32Array[] = [];
    const workV: number[] = [];
    const workI: number[] = [];
    let index = 0;
    const push = (v: number): void => {
      idx[v] = index;
      low[v] = index++;
      stack.push(v);
      onStack[v] = 1;
      workV.push(v);
      workI.push(0);
    };
    for (const root of roots) {
      if (idx[root]! >= 0) continue;
      push(root);
      while (workV.length) {
        const t = workV.length - 1;
        const v = workV[t]!;
        const succ = this.#byPid[v]?.depPids ?? NO_PIDS;
        if (workI[t]! < succ.length) {
          const w = succ[workI[t]!++]!;
          if (idx[w]! < 0) push(w);
          else if (onStack[w]) low[v] = Math.min(low[v]!, idx[w]!);
          continue;
        }
        workV.pop();
        workI.pop();
        if (workV.length) {
          const parent = workV[workV.length - 1]!;
          low[parent] = Math.min(low[parent]!, low[v]!);
        }
        if (low[v] === idx[v]) {
          const comp: number[] = [];
          let w: number;
          do {
            w = stack.pop()!;
            onStack[w] = 0;
            comp.push(w);
          } while (w !== v);
          out.push(this.#sortPids(comp));
        }
      }
    }
    return out;
  }

  // Methods and fields, not closures made per package: tsx keeps function names, which costs a
  // property definition for every closure it makes.
  #setState(pkg: string, e: Entry, code: PackageCode, details = "", notReady = false): undefined {
    if (e.state.code !== code || e.state.details !== details) e.state = { code, details };
    this.#states.set(pkg, e.state);
    this.#setReady(e.pid, pkg, !notReady);
    return undefined;
  }

  // A failed build's sources never reached the pool: only a succeeded one says what did.
  readonly #producerSource = (src: string): string | undefined => {
    const r = this.#results.get(src);
    return r?.code === "succeeded" ? r.srcmd5 : undefined;
  };

  readonly #binaryOf = (n: string): PoolBinary | undefined => this.#exp.binary(n)?.binary;

  #setReady(pid: number, pkg: string, ready: boolean): void {
    if (ready) {
      this.#notReady.delete(pkg);
      if (pid < this.#notReadyPid.length) this.#notReadyPid[pid] = 0;
      return;
    }
    this.#notReady.add(pkg);
    if (pid >= this.#notReadyPid.length) {
      const grown = new Uint8Array(Math.max(pid + 1, this.#notReadyPid.length * 2, 1024));
      grown.set(this.#notReadyPid);
      this.#notReadyPid = grown;
    }
    this.#notReadyPid[pid] = 1;
  }

  /**
   * `signatureDigests(...).sig` of an expansion, by the ids of its packages: the same digest,
   * with the binaries and their entry hashes found in arrays (it runs for every package).
   */
  #sigDigest(names: readonly string[], ids: Int32Array): string {
    const sig = new Digest();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const b = this.#exp.binaryById(id)?.binary;
      if (!b) continue;
      if (id >= this.#hashedBin.length) {
        const size = Math.max(2 * (id + 1), 2 * this.#hashedBin.length, 1024);
        while (this.#hashedBin.length < size) this.#hashedBin.push(undefined);
        const grown = new Uint32Array(2 * size);
        grown.set(this.#hashes);
        this.#hashes = grown;
      }
      if (this.#hashedBin[id] !== b) {
        const [h0, h1] = entryHash(names[i]!, b);
        this.#hashes[2 * id] = h0;
        this.#hashes[2 * id + 1] = h1;
        this.#hashedBin[id] = b;
      }
      sig.add(this.#hashes[2 * id]!, this.#hashes[2 * id + 1]!);
    }
    return sig.hex();
  }

  /**
   * Whether not-ready package `d` blocks `e`. In a cycle's later passes (OBS `Package::check`), a
   * member whose first pass found a meta change of depth L waits only for members whose change
   * lies less deep (a member without one counts as 1): deeper ones build after it.
   */
  #blocks(d: number, e: Entry): boolean {
    if (this.#incycle < 2) return true;
    const level = this.#cyclevel[e.pid]!;
    if (level === 0 || this.#byPid[d]!.rank !== e.rank) return true;
    return Math.max(this.#cyclevel[d]!, 1) < level;
  }

  /**
   * OBS's order within a cycle (`cycsort`): its members by name, sorted by `depsort` over their
   * dependencies on each other where these go one way only (mutual ones tell nothing).
   */
  #cycsort(members: Int32Array): Int32Array {
    const n = members.length;
    const at = new Map<number, number>();
    for (let i = 0; i < n; i++) at.set(members[i]!, i);
    const needs: Set<number>[] = [];
    const neededBy: number[][] = [];
    for (let i = 0; i < n; i++) {
      needs.push(new Set());
      neededBy.push([]);
    }
    for (let i = 0; i < n; i++) {
      const dp = this.#byPid[members[i]!]!.depPids;
      for (let k = 0; k < dp.length; k++) {
        const j = at.get(dp[k]!);
        if (j === undefined || j === i) continue;
        needs[i]!.add(j);
        neededBy[j]!.push(i);
      }
    }
    const edges: number[][] = [];
    for (let i = 0; i < n; i++) edges.push([]);
    for (let j = 0; j < n; j++) for (const q of neededBy[j]!) if (!needs[j]!.has(q)) edges[q]!.push(j);
    const order = depsortOrder(n, edges);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = members[order[i]!]!;
    return out;
  }

  /**
   * Decides a cycle's members together, as OBS's `handlecycle` does within one check. Pass 1, in
   * cycle order: new builds and source changes are built, meta changes only when their first
   * difference is at most one level deep (never: a direct dependency is level 2), deeper ones
   * are put off with their depth. Pass 2, by that depth: the rest, each waiting only for members
   * of a lesser depth. Then OBS meets the members at their own places in its build order: each
   * not yet decided is checked again, and meeting the first of pass 2 there (unless it is the
   * first member, whose place started pass 1) makes every member not ready when one is.
   * kiln takes the members' places to be their cycle order.
   */
  #evaluateCycle(order: Int32Array, builds: NeededBuild[]): void {
    const n = order.length;
    if (this.#cyclevel.length < this.#pidNames.length)
      this.#cyclevel = new Int32Array(Math.max(this.#pidNames.length, 2 * this.#cyclevel.length, 1024));
    // As in a check from scratch: nothing of the cycle is decided or not ready yet.
    for (let i = 0; i < n; i++) {
      const pid = order[i]!;
      this.#cyclevel[pid] = 0;
      this.#setReady(pid, this.#pidNames[pid]!, true);
    }
    this.#incycle = 1;
    for (let i = 0; i < n; i++) this.#cycleStep(order[i]!, builds);
    const second = Array.from(order).sort((a, b) => this.#cyclevel[a]! - this.#cyclevel[b]!);
    this.#incycle = 2;
    for (const pid of second) if (!this.#decided(pid)) this.#cycleStep(pid, builds);
    let pass = 2;
    for (let i = 1; i < n; i++) {
      const pid = order[i]!;
      if (pid === second[0] && pass === 2) {
        pass = 3;
        let any = false;
        for (let k = 0; k < n; k++) if (this.#notReadyPid[order[k]!] === 1) any = true;
        if (any) for (let k = 0; k < n; k++) this.#setReady(order[k]!, this.#pidNames[order[k]!]!, false);
        continue;
      }
      this.#incycle = pass;
      if (!this.#decided(pid)) this.#cycleStep(pid, builds);
    }
    this.#incycle = 0;
  }

  #cycleStep(pid: number, builds: NeededBuild[]): void {
    const e = this.#byPid[pid]!;
    const build = this.#evaluate(e.info.package, e);
    if (build) builds.push(build);
  }

  /** A cycle member's state is final for this check unless the check found nothing to build. */
  #decided(pid: number): boolean {
    const code = this.#byPid[pid]!.state.code;
    return code !== PackageCode.Succeeded && code !== PackageCode.Failed;
  }

  /**
   * What a package waits for, as OBS's details say it: the names of its expanded dependencies
   * whose source package is not ready (here, or in a repository of its path unless
   * `block="local"`), in expansion order, ten at most and then `...`; undefined when none.
   */
  #blockers(e: Entry, names: readonly string[]): string | undefined {
    const nr = this.#notReadyPid;
    const dp = e.depPids;
    let local = false;
    for (let i = 0; i < dp.length; i++) {
      if (nr[dp[i]!] === 1 && this.#blocks(dp[i]!, e)) {
        local = true;
        break;
      }
    }
    const elsewhere = this.#block !== "local" && this.#notReadyElsewhere.size > 0;
    if (!local && !elsewhere) return undefined;
    const ids = e.ids;
    const srcPid = this.#srcPid;
    let out: string[] | undefined;
    for (let k = 0; k < names.length; k++) {
      const name = names[k]!;
      let src = -1;
      if (ids) {
        const id = ids[k]!;
        if (id < srcPid.length) src = srcPid[id]!;
      } else {
        const owner = this.#src.get(name);
        if (owner !== undefined) src = this.#pkgs.get(owner)?.pid ?? -1;
      }
      if (src >= 0 && src !== e.pid && this.#byPid[src] !== undefined) {
        if (nr[src] !== 1 || !this.#blocks(src, e)) continue;
      } else {
        if (!elsewhere) continue;
        const lb = this.#exp.binary(name);
        if (!lb || lb.layer === 0) continue;
        if (!this.#notReadyElsewhere.get(keyOf(lb.project, lb.repository))?.has(lb.binary.package)) continue;
      }
      (out ??= []).push(name);
      if (out.length > 10) {
        out[10] = "...";
        break;
      }
    }
    return out?.join(", ");
  }

  /**
   * Decides one package; returns the build it needs, if any. The order is `checkpkgs`'s: locked,
   * the prjconf's package lists, errors of the package itself, the build flag, errors of its
   * recipe, an existing job for these sources, expansion errors, blockers, the rebuild decision.
   */
  #evaluate(pkg: string, e: Entry): NeededBuild | undefined {
    const p = e.info;
    this.#pending.delete(pkg);
    if (p.flags.lock) return this.#setState(pkg, e, PackageCode.Locked);
    const bl = excludedByBuildFlags(this.#exp.config, pkg);
    if (bl) return this.#setState(pkg, e, PackageCode.Excluded, bl);
    const ec = p.errorCode;
    if (ec !== undefined && packageLevelError(p)) {
      if (ec === "disabled") return this.#setState(pkg, e, PackageCode.Disabled);
      // Waiting for its own sources: OBS neither counts it as not ready nor as unfinished.
      if (ec === "blocked") return this.#setState(pkg, e, PackageCode.Blocked, p.error ?? "");
      return this.#setState(pkg, e, PackageCode.Broken, p.error ?? "");
    }
    if (!p.flags.build) return this.#setState(pkg, e, PackageCode.Disabled);
    if (ec === "excluded") return this.#setState(pkg, e, PackageCode.Excluded);
    if (ec !== undefined) return this.#setState(pkg, e, PackageCode.Broken, p.error ?? "");
    // A job for these sources exists: scheduled, whatever else changed meanwhile.
    const job = this.#jobs.get(pkg);
    if (job && job.srcmd5 === p.verifymd5)
      return this.#setState(pkg, e, PackageCode.Scheduled, job.details ?? "", p.flags.useforbuild);
    const exp = e.exp;
    if (!exp) return this.#setState(pkg, e, PackageCode.Broken, "no expansion");
    if (!exp.ok) return this.#setState(pkg, e, PackageCode.Unresolvable, exp.error);
    const blockers = this.#block === "never" ? undefined : this.#blockers(e, exp.packages);
    if (blockers !== undefined) {
      // rebuild="local" builds on source changes only: a build of these sources stands.
      if (this.#rebuild === "local" && !this.#force.has(pkg)) {
        const had = this.#results.get(pkg);
        if (had && (had.meta || had.digests) && had.srcmd5 === p.verifymd5)
          return this.#setState(pkg, e, had.code === "failed" ? PackageCode.Failed : PackageCode.Succeeded);
      }
      return this.#setState(pkg, e, PackageCode.Blocked, blockers, p.flags.useforbuild);
    }
    const last = this.#force.has(pkg) ? undefined : this.#results.get(pkg);
    const producerSource = this.#producerSource;
    const binary = this.#binaryOf;
    let reason: BuildReason | undefined;
    let digests: SignatureDigests | undefined;
    let postponed = false;
    if (!last || (!last.meta && !last.digests)) reason = { explain: "new build", time: 0 };
    else if (last.srcmd5 !== p.verifymd5) reason = { explain: "source change", time: 0, oldsource: last.srcmd5 };
    else if (this.#rebuild !== "local") {
      if (e.cycle !== undefined && this.#incycle > 0) {
        reason = this.#cycleMetaChange(p, e, exp.packages, last);
        if (reason === POSTPONED) {
          reason = undefined;
          postponed = true;
        }
      } else if (last.digests) {
        const direct = this.#rebuild === "direct";
        let changed: boolean;
        if (!direct && e.ids) changed = this.#sigDigest(exp.packages, e.ids) !== last.digests.sig;
        else {
          digests = signatureDigests(exp.packages, binary, producerSource, direct);
          changed = direct ? digests.direct !== last.digests.direct : digests.sig !== last.digests.sig;
        }
        if (changed) {
          reason = { explain: "meta change", time: 0 };
          const old = this.#signatureOf?.(pkg);
          if (old)
            reason.packagechange = signatureChanges(
              old,
              dependencySignature(exp.packages, binary, producerSource),
              direct
            );
        }
      } else {
        // A build from before signatures were recorded: compare metas as OBS does.
        const quick = this.#quickKey(p, exp.packages, last);
        if (quick !== e.quick) {
          const direct = this.#rebuild === "direct";
          const want = stripMeta(this.#expectedMeta(p, exp.packages), direct);
          const had = stripMeta(last.meta!, direct);
          if (want.length !== had.length || want.some((l, i) => l !== had[i])) {
            reason = { explain: "meta change", time: 0, packagechange: metaChanges(had, want) };
          } else e.quick = quick;
        }
      }
    }
    // Last, when nothing else wants a build (OBS checks relsync after the meta): another arch
    // built the same versrel with a higher counter. A failed package is left alone.
    if (
      !reason &&
      !postponed &&
      last!.code === "succeeded" &&
      this.relsyncMax(pkg, last!.versrel) > last!.bcnt &&
      buildFlag(this.#exp.config, "norelsync") === undefined
    ) {
      reason = { explain: "rebuild counter sync", time: 0 };
    }
    if (!reason) return this.#setState(pkg, e, last!.code === "failed" ? PackageCode.Failed : PackageCode.Succeeded);
    const located = this.#exp.buildDeps(p, exp.packages);
    if (!located.ok) return this.#setState(pkg, e, PackageCode.Unresolvable, located.error);
    const bdeps = located.bdeps;
    this.#setState(pkg, e, PackageCode.Scheduled, "", p.flags.useforbuild);
    // Until a job is set, the package is decided again at every check.
    this.#pending.add(pkg);
    const depsig = dependencySignature(exp.packages, binary, producerSource);
    digests = signatureDigests(exp.packages, binary, producerSource, true);
    return { package: pkg, reason, bdeps, needed: this.#revByPid[e.pid]?.length ?? 0, depsig, digests };
  }

  /**
   * The rebuild decision of a cycle member past its sources, as OBS makes it: the meta a build
   * would get now (each dependency's lines from the meta of the build that made it, the lines
   * through the package's own binaries left out) against its last build's. A dependency digest
   * equal to the recorded one, or to one found equal before, saves the comparison. In pass 1 a
   * difference deeper than one level is put off ({@link POSTPONED}) with its depth.
   */
  #cycleMetaChange(p: PackageBuildInfo, e: Entry, edeps: readonly string[], last: LastBuild): BuildReason | undefined {
    let sig: string | undefined;
    if (last.digests && e.ids) {
      sig = this.#sigDigest(edeps, e.ids);
      if (sig === last.digests.sig || sig === e.accepted) return undefined;
    }
    const had = last.meta ?? (last.metaSha256 ? this.#metaOf(last.metaSha256) : undefined);
    if (!had && last.metaSha256) this.#missingMetas.add(last.metaSha256);
    const want = this.#expectedMeta(p, edeps, true);
    if (!had || !want) {
      // Decided again once the caller has the metas (see CheckOutput.missingMetas).
      this.#stateDirty.add(p.package);
      return undefined;
    }
    if (want.length === had.length && want.every((l, i) => l === had[i])) {
      if (sig !== undefined) e.accepted = sig;
      return undefined;
    }
    if (this.#incycle === 1) {
      const level = diffDepth(want, had);
      this.#cyclevel[e.pid] = level;
      if (level > 1) return POSTPONED;
    }
    const direct = this.#rebuild === "direct";
    const a = stripMeta(had, direct);
    const b = stripMeta(want, direct);
    if (a.length === b.length && a.every((l, i) => l === b[i])) return undefined;
    return { explain: "meta change", time: 0, packagechange: metaChanges(a, b) };
  }

  /** A digest of everything the meta comparison depends on (OBS's quick `hdrmetamd5` check). */
  #quickKey(p: PackageBuildInfo, edeps: readonly string[], last: LastBuild): string {
    const h = createHash("md5");
    h.update(`${p.verifymd5}\0${last.metaSha256 ?? last.meta?.length ?? ""}\0${this.#rebuild}\0`);
    for (const name of edeps) {
      const b = this.#exp.binary(name)?.binary;
      h.update(`${name}\0${b?.hdrmd5 ?? ""}\0${b?.metaSha256 ?? ""}\n`);
    }
    return h.digest("hex");
  }

  /**
   * The meta a build of `p` would get now (what the worker writes after building it). With
   * `strict`, undefined when a producer's meta is not at hand (its id goes to the missing ones).
   */
  #expectedMeta(p: PackageBuildInfo, edeps: readonly string[]): string[];
  #expectedMeta(p: PackageBuildInfo, edeps: readonly string[], strict: true): string[] | undefined;
  #expectedMeta(p: PackageBuildInfo, edeps: readonly string[], strict = false): string[] | undefined {
    const lines: string[] = [];
    let missing = false;
    for (const name of edeps) {
      const lb = this.#exp.binary(name);
      if (!lb) continue;
      const id = lb.binary.metaSha256;
      const producer = id ? this.#metaOf(id) : undefined;
      if (strict && id && !producer) {
        this.#missingMetas.add(id);
        missing = true;
      }
      lines.push(...depMetaLines(name, lb.binary.hdrmd5, producer, p.package));
    }
    if (missing) return undefined;
    return genMeta(`${p.verifymd5}  ${p.package}`, p.subpacks, lines);
  }
}

/** Everything a from-scratch check needs (for tests and one-shot checks). */
export interface FullCheckInput extends CheckerSetup {
  packages: readonly PackageBuildInfo[];
  results: ReadonlyMap<string, LastBuild>;
  jobs: ReadonlyMap<string, JobRef>;
  notReadyElsewhere?: ReadonlyMap<string, ReadonlySet<string>>;
  forceRebuild?: ReadonlySet<string>;
}

/** A check from scratch: a new checker, all inputs, one check. */
export function checkFromScratch(input: FullCheckInput): { checker: IncrementalChecker; output: CheckOutput } {
  const c = new IncrementalChecker(input);
  for (const p of input.packages) c.upsertPackage(p);
  for (const [k, v] of input.results) c.setResult(k, v);
  for (const [k, v] of input.jobs) c.setJob(k, v);
  for (const [k, v] of input.notReadyElsewhere ?? []) c.setNotReadyElsewhere(k, v);
  for (const k of input.forceRebuild ?? []) c.forceRebuild(k);
  return { checker: c, output: c.check() };
}
