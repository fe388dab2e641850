/**
 * Dependency expansion as one repository's scheduler uses it: a provider index over the layered
 * pools of its repository path (layer 0 is the repository itself; the first layer that has a
 * name wins it), kept up to date from pool diffs, with an expansion cache in front of obs-build's
 * algorithms (`expand.ts`: `getDeps` for the edeps that decide blocking, order and rebuilds;
 * `getBuild` for a job's build root).
 *
 * This module is the checker's one doorway to expansion.
 */
import type { BuildConfig } from "../common/prjconf.ts";
import type { BuildDep, PoolBinary } from "../common/model.ts";
import { ExpansionCache, getBuild, getDeps, type BuildResult, type TraceFilter } from "./expand.ts";
import { ProviderIndex } from "./provider-index.ts";

export interface PoolLayer {
  project: string;
  repository: string;
  binaries: readonly PoolBinary[];
}

export type Expansion = { ok: true; packages: readonly string[] } | { ok: false; error: string };

export interface LocatedBinary {
  binary: PoolBinary;
  project: string;
  repository: string;
  /** 0 for the repository itself, higher along its path. */
  layer: number;
}

interface Layer {
  project: string;
  repository: string;
  byName: Map<string, PoolBinary>;
}

/** What expansion needs to know of a package. */
export interface ExpandablePackage {
  subpacks: readonly string[];
  buildRequires: readonly string[];
}

export class RepoExpansion {
  readonly index: ProviderIndex;
  readonly cache: ExpansionCache;
  readonly #layers: Layer[];
  /** The binary that wins each name (first layer that has it): the checker asks this a lot. */
  readonly #winners = new Map<string, LocatedBinary>();
  /** The same by the name's id in the index (what expansions report with their results). */
  readonly #winnersById: (LocatedBinary | undefined)[] = [];
  #config: BuildConfig;

  constructor(layers: readonly PoolLayer[], config: BuildConfig, cacheEntries = 200_000) {
    this.#layers = layers.map((l) => ({
      project: l.project,
      repository: l.repository,
      byName: new Map(l.binaries.map((b) => [b.name, b])),
    }));
    this.index = new ProviderIndex(this.#layers.map((l) => [...l.byName.values()]));
    this.cache = new ExpansionCache(cacheEntries);
    this.#config = config;
    this.#layers.forEach((l, layer) => {
      for (const binary of l.byName.values()) {
        if (!this.#winners.has(binary.name))
          this.#setWinner(binary.name, { binary, project: l.project, repository: l.repository, layer });
      }
    });
  }

  #setWinner(name: string, lb: LocatedBinary | undefined): void {
    if (lb) this.#winners.set(name, lb);
    else this.#winners.delete(name);
    const id = this.index.intern(name);
    // Dense up to the id: a holey array would fall back to dictionary mode.
    while (this.#winnersById.length < id) this.#winnersById.push(undefined);
    this.#winnersById[id] = lb;
  }

  #rewin(name: string): void {
    for (let layer = 0; layer < this.#layers.length; layer++) {
      const l = this.#layers[layer]!;
      const binary = l.byName.get(name);
      if (binary) {
        this.#setWinner(name, { binary, project: l.project, repository: l.repository, layer });
        return;
      }
    }
    this.#setWinner(name, undefined);
  }

  get config(): BuildConfig {
    return this.#config;
  }

  /** A new build config: cached expansions made under the old one no longer apply. */
  setConfig(config: BuildConfig): void {
    this.#config = config;
  }

  /** `project/repository` of each layer, in path order. */
  layerKeys(): string[] {
    return this.#layers.map((l) => `${l.project}/${l.repository}`);
  }

  /** Applies a pool change of one layer (binaries added or replaced, names removed). */
  applyPoolDiff(layer: number, added: readonly PoolBinary[], removed: readonly string[]): void {
    const l = this.#layers[layer];
    if (!l) return;
    const addedNames = new Set(added.map((b) => b.name));
    const gone = removed.filter((n) => !addedNames.has(n) && l.byName.has(n));
    for (const n of gone) l.byName.delete(n);
    if (gone.length) this.index.removePackages(layer, gone);
    for (const b of added) l.byName.set(b.name, b);
    if (added.length) this.index.setPackages(layer, added);
    for (const n of gone) this.#rewin(n);
    for (const b of added) this.#rewin(b.name);
  }

  /** Replaces a whole layer (a pool read again from the repo role). */
  replaceLayer(layer: number, binaries: readonly PoolBinary[]): void {
    const l = this.#layers[layer];
    if (!l) return;
    const names = new Set([...l.byName.keys(), ...binaries.map((b) => b.name)]);
    l.byName = new Map(binaries.map((b) => [b.name, b]));
    this.index.replaceLayer(layer, [...l.byName.values()]);
    for (const n of names) this.#rewin(n);
  }

  /** The binary that wins a name, with where it comes from. */
  binary(name: string): LocatedBinary | undefined {
    return this.#winners.get(name);
  }

  /** The same by the name's id (as {@link edeps} reports them). */
  binaryById(id: number): LocatedBinary | undefined {
    return id < this.#winnersById.length ? this.#winnersById[id] : undefined;
  }

  /** Binaries of layer 0 (the repository's own pool). */
  ownBinaries(): IterableIterator<PoolBinary> {
    return (this.#layers[0]?.byName ?? new Map<string, PoolBinary>()).values();
  }

  /**
   * The edeps of a package (`get_deps`). `onTraced` gets a filter of the names the expansion
   * depended on, so the caller can tell which packages a change of the index affects; `onIds` the
   * ids of the packages ({@link nameId}, {@link binaryById}).
   */
  edeps(p: ExpandablePackage, onTraced?: (filter: TraceFilter) => void, onIds?: (ids: Int32Array) => void): Expansion {
    const r = getDeps(this.#config, p.subpacks, p.buildRequires, this.index, {
      cache: this.cache,
      shareResult: true,
      ...(onTraced ? { onTraced } : {}),
      ...(onIds ? { onIds } : {}),
    });
    return r.ok ? { ok: true, packages: r.packages } : { ok: false, error: r.errors.join(", ") };
  }

  /** The build root of a package (`get_build`), with the worker's per-package flags. */
  installSet(p: ExpandablePackage, edeps: readonly string[]): BuildResult {
    return getBuild(this.#config, p.subpacks, p.buildRequires, this.index, { cache: this.cache, edeps });
  }

  /**
   * A job's build dependencies: the build root located in the pools (OBS `bdep` entries), or the
   * expansion error.
   */
  buildDeps(
    p: ExpandablePackage,
    edeps: readonly string[]
  ): { ok: true; bdeps: BuildDep[] } | { ok: false; error: string } {
    const inst = this.installSet(p, edeps);
    if (!inst.ok) return { ok: false, error: inst.errors.join(", ") };
    const bdeps: BuildDep[] = [];
    for (const d of inst.packages) {
      const lb = this.binary(d.name);
      if (!lb) continue;
      const b = lb.binary;
      const dep: BuildDep = {
        name: d.name,
        version: b.version,
        release: b.release,
        arch: b.arch,
        project: lb.project,
        repository: lb.repository,
        package: b.package,
        filename: b.filename,
        sha256: b.sha256,
        hdrmd5: b.hdrmd5,
        size: b.size,
      };
      if (b.epoch) dep.epoch = b.epoch;
      if (b.metaSha256) dep.metaSha256 = b.metaSha256;
      if (d.notmeta) dep.notmeta = true;
      if (d.preinstall) dep.preinstall = true;
      if (d.vminstall) dep.vminstall = true;
      if (d.runscripts) dep.runscripts = true;
      bdeps.push(dep);
    }
    return { ok: true, bdeps };
  }

  /** Id of a name in the index's change log (for dependency tracking of declared subpackages). */
  nameId(name: string): number {
    return this.index.intern(name);
  }
}
