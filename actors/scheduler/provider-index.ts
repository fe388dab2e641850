/**
 * The provider index: which binary packages of a layered repository path provide what.
 *
 * The path is a list of layers (repositories), the first one first; a binary name present in
 * an earlier layer hides the same name in every later layer ("the first repository in the
 * path that has a name wins"). Packages get small integer ids ("slots") and dependency strings
 * are interned once, so the expander works on integers; provider lists are computed per
 * dependency string on first use and dropped only when a package providing one of the names
 * they depend on changes, which keeps pool updates cheap.
 */
import { InvalidInputError } from "../../transport/index.ts";
import { OP_BITS, parseProvide, provideName, splitVersioned, versionedProvideMatches } from "./dep-match.ts";
import { isRich, parseRichDep } from "./rich-dep.ts";
import type { RichNode } from "./rich-dep.ts";

/** A binary package as the pool knows it. Dependency strings look like `"foo >= 1.2"`. */
export interface BinaryPackage {
  name: string;
  epoch?: number | string;
  version: string;
  release: string;
  arch: string;
  provides: readonly string[];
  requires: readonly string[];
  conflicts: readonly string[];
  obsoletes: readonly string[];
  recommends?: readonly string[];
  supplements?: readonly string[];
}

/** Bits of {@link ProviderIndex.depFlags}. */
export const DepFlag = { Rich: 1, File: 2, Or: 4 } as const;

const EMPTY = new Int32Array(0);
const CHANGE_LOG_MAX = 1 << 18;

// Collapses blank runs the way obs-build's dependency-line reader rejoins tokens.
function normalizeDep(s: string): string {
  let clean = s.length > 0;
  let prevSpace = true;
  for (let i = 0; i < s.length && clean; i++) {
    const c = s.charCodeAt(i);
    if (c === 32) {
      if (prevSpace) clean = false;
      prevSpace = true;
    } else if (c === 9 || c === 10 || c === 13 || c === 11 || c === 12) clean = false;
    else prevSpace = false;
  }
  if (clean && !prevSpace) return s;
  return s.trim().split(/\s+/).join(" ");
}

function selfProvide(p: BinaryPackage): string {
  const epoch = p.epoch !== undefined && p.epoch !== "" && Number(p.epoch) !== 0 ? `${p.epoch}:` : "";
  return `${p.name} = ${epoch}${p.version}-${p.release}`;
}

/**
 * Lists of ints per slot, one after the other in one array. Expansions read a few lists for
 * every package they install; one compact array stays in the caches where an array object per
 * package did not. A list that is replaced leaves garbage behind, which is dropped by copying
 * the live lists when the array is full and at least half of it is garbage.
 * @internal
 */
export class SlotLists {
  data = new Int32Array(4096);
  /** Per slot: where its list starts in {@link data}, -1 when it has none. */
  start = new Int32Array(0);
  /** Per slot: the length of its list. */
  count = new Int32Array(0);
  private used = 0;
  private live = 0;

  has(s: number): boolean {
    return s < this.start.length && this.start[s]! >= 0;
  }

  /** Sets the list of slot `s` (`data` may move). */
  set(s: number, values: ArrayLike<number>): void {
    this.drop(s);
    if (s >= this.start.length) {
      const size = Math.max(s + 1, this.start.length * 2, 1024);
      const start = new Int32Array(size).fill(-1);
      start.set(this.start);
      this.start = start;
      const count = new Int32Array(size);
      count.set(this.count);
      this.count = count;
    }
    if (this.used + values.length > this.data.length) this.makeRoom(values.length);
    const at = this.used;
    for (let i = 0; i < values.length; i++) this.data[at + i] = values[i]!;
    this.used += values.length;
    this.live += values.length;
    this.start[s] = at;
    this.count[s] = values.length;
  }

  drop(s: number): void {
    if (!this.has(s)) return;
    this.live -= this.count[s]!;
    this.start[s] = -1;
    this.count[s] = 0;
  }

  private makeRoom(extra: number): void {
    const live = this.live;
    const grow = this.used - live > live ? 0 : 2 * this.data.length;
    const next = new Int32Array(Math.max(1024, 2 * (live + extra), grow));
    let used = 0;
    for (let s = 0; s < this.start.length; s++) {
      const at = this.start[s]!;
      if (at < 0) continue;
      const n = this.count[s]!;
      next.set(this.data.subarray(at, at + n), used);
      this.start[s] = used;
      used += n;
    }
    this.data = next;
    this.used = used;
  }
}

/**
 * Provider semantics that depend on the project config: Debian matching rules, and whether
 * file dependencies exist at all (they do when `FileProvides:` is set or the binaries are not
 * rpms) together with the `FileProvides:` table.
 * @internal
 */
export class ProviderView {
  /** Provider slots per dependency id; `undefined` until computed or after invalidation. */
  readonly prov: (Int32Array | undefined)[] = [];
  /**
   * Per dependency id: its only provider's slot, -1 when it has none or several or is not a
   * plain dependency (rich, file or `a | b`), -2 when not computed yet. Most dependencies have
   * exactly one provider, and this flat array keeps the expander's hottest check to two
   * typed-array reads.
   */
  single = new Int32Array(1024).fill(-2);
  private readonly registered: boolean[] = [];
  private readonly depNames: (Int32Array | undefined)[] = [];
  private readonly nameDeps = new Map<number, number[]>();
  /** The name lists of {@link slotNamesOf}. */
  readonly slotNames = new SlotLists();

  constructor(
    private readonly index: ProviderIndex,
    readonly deb: boolean,
    readonly fileMode: boolean,
    private readonly fileProvides: ReadonlyMap<string, readonly string[]>
  ) {}

  /** Providers (slots) of dependency `d`. */
  providers(d: number): Int32Array {
    return this.prov[d] ?? this.compute(d);
  }

  /** Providers of an arbitrary dependency string (interned on the way). */
  providersOf(dep: string): Int32Array {
    return this.providers(this.index.internDep(dep));
  }

  /** Names whose providers the provider list of `d` depends on (once computed). */
  namesOf(d: number): Int32Array {
    if (!this.registered[d]) this.providers(d);
    return this.depNames[d] ?? EMPTY;
  }

  /**
   * Makes sure {@link slotNames} has the names the provider lists of every non-rich requirement,
   * conflict, obsoletes and recommends of the package in slot `s` depend on, without repeats:
   * what an expansion that installs it looked at. Kept until the slot changes.
   */
  slotNamesOf(s: number): void {
    if (this.slotNames.has(s)) return;
    const ix = this.index;
    const names: number[] = [];
    for (const list of [ix.slotReq[s]!, ix.slotCon[s]!, ix.slotObs[s]!, ix.slotRec[s]!]) {
      for (let i = 0; i < list.length; i++) {
        const d = list[i]!;
        // Rich dependencies are traced leaf by leaf while an expansion normalises them.
        if (ix.depFlags[d]! & DepFlag.Rich) continue;
        const dn = this.namesOf(d);
        for (let k = 0; k < dn.length; k++) if (!names.includes(dn[k]!)) names.push(dn[k]!);
      }
    }
    this.slotNames.set(s, names);
  }

  /** Forgets what {@link slotNamesOf} knew of slot `s` (its package changed). */
  dropSlot(s: number): void {
    this.slotNames.drop(s);
  }

  /** Drops cached provider lists that depend on name `n`. */
  invalidateName(n: number): void {
    const deps = this.nameDeps.get(n);
    if (!deps) return;
    for (const d of deps) {
      this.prov[d] = undefined;
      this.single[d] = -2;
    }
  }

  private compute(d: number): Int32Array {
    const names: number[] = [];
    const list = this.lookup(this.index.depStr[d]!, names);
    const out = list.length === 0 ? EMPTY : Int32Array.from(list);
    // Keep the per-dependency arrays dense (holey arrays fall back to slow dictionary mode).
    while (this.prov.length <= d) {
      this.prov.push(undefined);
      this.registered.push(false);
      this.depNames.push(undefined);
    }
    this.prov[d] = out;
    if (this.single.length <= d) {
      const grown = new Int32Array(Math.max(d + 1, this.single.length * 2)).fill(-2);
      grown.set(this.single);
      this.single = grown;
    }
    // Only plain dependencies: the expander's fast path skips the rich and file checks for them.
    this.single[d] = out.length === 1 && this.index.depFlags[d] === 0 ? out[0]! : -1;
    if (!this.registered[d]) {
      this.registered[d] = true;
      const unique = names.length === 1 ? names : Array.from(new Set(names));
      this.depNames[d] = Int32Array.from(unique);
      for (const n of unique) {
        const l = this.nameDeps.get(n);
        if (l) l.push(d);
        else this.nameDeps.set(n, [d]);
      }
    }
    return out;
  }

  private lookup(r: string, names: number[]): readonly number[] {
    const ix = this.index;
    if (r.includes("|")) {
      const out: number[] = [];
      for (const alt of r.split(/\s*\|\s*/)) out.push(...this.lookup(alt, names));
      return out.length > 1 ? Array.from(new Set(out)) : out;
    }
    const v = splitVersioned(r);
    if (!v) {
      if (this.deb && r.endsWith(":any")) return this.lookup(r.slice(0, -4), names);
      return this.byName(r, names);
    }
    const rf = OP_BITS[v.op];
    // An unknown operator still depends on nothing, so nothing needs registering.
    if (!rf) return [];
    const rn = this.deb && v.name.endsWith(":any") ? v.name.slice(0, -4) : v.name;
    const out: number[] = [];
    const candidates = this.byName(rn, names);
    const rnId = ix.strIds.get(rn);
    for (const s of candidates) {
      const pn = ix.slotProvName[s]!;
      const pb = ix.slotProvBits[s]!;
      const pv = ix.slotProvVer[s]!;
      for (let i = 0; i < pn.length; i++) {
        if (pn[i] !== rnId) continue;
        const pf = pb[i]!;
        if (pf === 0) {
          // Debian: an unversioned provide does not meet a versioned requirement.
          if (this.deb) continue;
          out.push(s);
          break;
        }
        if (pf < 0) continue;
        if (versionedProvideMatches(pf, pv[i]!, rf, v.version, this.deb)) {
          out.push(s);
          break;
        }
      }
    }
    return out.length > 1 ? Array.from(new Set(out)) : out;
  }

  private byName(name: string, names: number[]): readonly number[] {
    const ix = this.index;
    const n = ix.intern(name);
    names.push(n);
    if (!this.fileMode && name.startsWith("/")) return [];
    const explicit = ix.whatProvidesName.get(n) ?? [];
    const extra = this.fileMode ? this.fileProvides.get(name) : undefined;
    if (!extra) return explicit;
    const out = [...explicit];
    for (const pkg of extra) {
      const pn = ix.intern(pkg);
      names.push(pn);
      const s = ix.visibleSlot.get(pn);
      if (s !== undefined) out.push(s);
    }
    return Array.from(new Set(out));
  }
}

/**
 * Binary packages of a layered repository path, indexed for dependency expansion.
 *
 * @example
 * const index = new ProviderIndex([projectPool, basePool]);
 * index.setPackages(0, [rebuiltBinary]);
 */
export class ProviderIndex {
  /** @internal string interner (package names, provide names, ignore keys). */
  readonly strIds = new Map<string, number>();
  /** @internal */
  readonly strs: string[] = [];

  /** @internal per slot: the package, or `undefined` for a free slot. */
  readonly slotPkg: (BinaryPackage | undefined)[] = [];
  /** @internal */
  readonly slotName: string[] = [];
  /** @internal */
  readonly slotNameId: number[] = [];
  /** @internal */
  readonly slotLayer: number[] = [];
  /** @internal requirement dependency ids (rpmlib() dropped). */
  readonly slotReq: Int32Array[] = [];
  /** @internal the same lists in one array, for the expander's install loop. */
  readonly reqLists = new SlotLists();
  /** @internal */
  readonly slotCon: Int32Array[] = [];
  /**
   * @internal per slot: 1 when its package has conflicts or obsoletes. The expander asks this of
   * every package it installs and every candidate; a flat array answers without touching them.
   */
  slotConObs = new Uint8Array(1024);
  /** @internal */
  readonly slotObs: Int32Array[] = [];
  /** @internal */
  readonly slotRec: Int32Array[] = [];
  /** @internal provide table keys per provide. */
  readonly slotProvName: Int32Array[] = [];
  /** @internal provide operator bits (0 unversioned, -1 unusable). */
  readonly slotProvBits: Int8Array[] = [];
  /** @internal */
  readonly slotProvVer: string[][] = [];
  private readonly freeSlots: number[] = [];

  /** @internal visible slot per package name. */
  readonly visibleSlot = new Map<number, number>();
  /** @internal visible providers per provide name. */
  readonly whatProvidesName = new Map<number, number[]>();
  private readonly layers: Map<number, number>[];

  /** @internal interned dependency strings. */
  readonly depIds = new Map<string, number>();
  /** @internal */
  readonly depStr: string[] = [];
  /** @internal ignore key (text before the first blank or operator) as a string id. */
  readonly depKey: number[] = [];
  /** @internal {@link DepFlag} bits. */
  readonly depFlags: number[] = [];
  /** Per dependency id: the string id of its text before the first blank (-1: not yet known). */
  private depHeads = new Int32Array(0);
  private readonly depRich: (RichNode | null | undefined)[] = [];

  private readonly views = new Map<string, ProviderView>();
  private versionCounter = 0;
  private readonly logVersion: number[] = [];
  private readonly logName: number[] = [];
  private logFloor = 0;
  private building = true;

  /** @internal scratch for the expander: per-slot install stamps. */
  instStamp = new Uint32Array(1024);
  /** @internal */
  stamp = 0;
  /** @internal scratch for the expander: per-dependency "known satisfied" stamps. */
  satStamp = new Uint32Array(1024);
  /** @internal scratch for result tracing: per-dependency and per-name "seen" marks. */
  traceDepStamp = new Uint32Array(0);
  /** @internal */
  traceNameStamp = new Uint32Array(0);
  /** @internal */
  traceMark = 0;
  /** @internal scratch for the expander: per-slot "already queued" marks. */
  markStamp = new Uint32Array(1024);
  /** @internal */
  mark = 0;
  private nameRank = new Int32Array(0);
  private rankName = new Int32Array(0);
  private ranksDirty = true;
  /** @internal cache owned by the expander (compiled configs). */
  readonly compiled = new WeakMap<object, unknown>();

  /** Builds the index; `layers[0]` is the first repository of the path. */
  constructor(layers: readonly (readonly BinaryPackage[])[]) {
    this.layers = layers.map(() => new Map<number, number>());
    layers.forEach((pkgs, l) => {
      const seen = new Set<string>();
      for (const p of pkgs) {
        if (seen.has(p.name)) throw new InvalidInputError(`duplicate binary ${p.name} in repository layer ${l}`);
        seen.add(p.name);
      }
    });
    // Fill from the last layer to the first so that each name is made visible once.
    for (let l = layers.length - 1; l >= 0; l--) for (const p of layers[l]!) this.put(l, p);
    this.building = false;
  }

  /** Number of layers in the path. */
  get layerCount(): number {
    return this.layers.length;
  }

  /** Increases with every change; see {@link ProviderIndex.changedSince}. */
  get version(): number {
    return this.versionCounter;
  }

  /** The visible package of that name (the one of the first layer that has it). */
  lookup(name: string): BinaryPackage | undefined {
    const n = this.strIds.get(name);
    const s = n === undefined ? undefined : this.visibleSlot.get(n);
    return s === undefined ? undefined : this.slotPkg[s];
  }

  /** @internal the slot of the visible package of that name. */
  slotOf(name: string): number | undefined {
    const n = this.strIds.get(name);
    return n === undefined ? undefined : this.visibleSlot.get(n);
  }

  /** Whether a package of that name is visible. */
  has(name: string): boolean {
    return this.lookup(name) !== undefined;
  }

  /** The layer the visible package of that name comes from. */
  layerOf(name: string): number | undefined {
    const n = this.strIds.get(name);
    const s = n === undefined ? undefined : this.visibleSlot.get(n);
    return s === undefined ? undefined : this.slotLayer[s];
  }

  /** Names of all visible packages, sorted. */
  names(): string[] {
    return [...this.visibleSlot.values()].map((s) => this.slotName[s]!).sort();
  }

  /** Number of visible packages. */
  get size(): number {
    return this.visibleSlot.size;
  }

  /**
   * Visible providers of a dependency (plain, versioned or `a | b`) under rpm rules and
   * without file provides, in index order.
   */
  whatProvides(dep: string): string[] {
    return [...this.view(false, false, new Map()).providersOf(normalizeDep(dep))].map((s) => this.slotName[s]!);
  }

  /** Adds packages to a layer, replacing those of the same names. */
  setPackages(layer: number, pkgs: readonly BinaryPackage[]): void {
    this.checkLayer(layer);
    for (const p of pkgs) {
      const old = this.layers[layer]!.get(this.intern(p.name));
      // The same object again changes nothing; callers may resend whole pools.
      if (old !== undefined && this.slotPkg[old] === p) continue;
      this.put(layer, p);
    }
  }

  /** Removes packages by name from a layer; names not present are ignored. */
  removePackages(layer: number, names: readonly string[]): void {
    this.checkLayer(layer);
    for (const name of names) {
      const n = this.strIds.get(name);
      if (n === undefined) continue;
      const s = this.layers[layer]!.get(n);
      if (s === undefined) continue;
      this.layers[layer]!.delete(n);
      this.refreshVisibility(n);
      this.freeSlot(s);
    }
  }

  /** Makes a layer hold exactly `pkgs`. */
  replaceLayer(layer: number, pkgs: readonly BinaryPackage[]): void {
    this.checkLayer(layer);
    const keep = new Set(pkgs.map((p) => p.name));
    if (keep.size !== pkgs.length) throw new InvalidInputError(`duplicate binary names in repository layer ${layer}`);
    const gone: string[] = [];
    for (const n of this.layers[layer]!.keys()) if (!keep.has(this.strs[n]!)) gone.push(this.strs[n]!);
    this.removePackages(layer, gone);
    this.setPackages(layer, pkgs);
  }

  /**
   * Names (package and provide names) whose providers changed after `version`, or `undefined`
   * when that is too long ago to tell.
   */
  changedSince(version: number): Set<string> | undefined {
    if (version < this.logFloor) return undefined;
    const out = new Set<string>();
    for (let i = this.logVersion.length - 1; i >= 0 && this.logVersion[i]! > version; i--) {
      out.add(this.strs[this.logName[i]!]!);
    }
    return out;
  }

  /** @internal like {@link changedSince} but with string ids. */
  changedIdsSince(version: number): number[] | undefined {
    if (version < this.logFloor) return undefined;
    const out: number[] = [];
    for (let i = this.logVersion.length - 1; i >= 0 && this.logVersion[i]! > version; i--) out.push(this.logName[i]!);
    return out;
  }

  /** @internal */
  intern(s: string): number {
    let id = this.strIds.get(s);
    if (id === undefined) {
      id = this.strs.length;
      this.strs.push(s);
      this.strIds.set(s, id);
    }
    return id;
  }

  /** @internal interns a dependency string (already normalised). */
  internDep(dep: string): number {
    let d = this.depIds.get(dep);
    if (d !== undefined) return d;
    d = this.depStr.length;
    this.depIds.set(dep, d);
    this.depStr.push(dep);
    this.depKey.push(this.intern(provideName(dep)));
    let flags = 0;
    if (isRich(dep)) flags |= DepFlag.Rich;
    if (dep.startsWith("/")) flags |= DepFlag.File;
    if (dep.includes("|")) flags |= DepFlag.Or;
    this.depFlags.push(flags);
    return d;
  }

  /** @internal the string id of a dependency's text before its first blank (its package name). */
  depHead(d: number): number {
    if (d < this.depHeads.length && this.depHeads[d]! >= 0) return this.depHeads[d]!;
    if (d >= this.depHeads.length) {
      const grown = new Int32Array(Math.max(d + 1, this.depHeads.length * 2, 1024)).fill(-1);
      grown.set(this.depHeads);
      this.depHeads = grown;
    }
    const r = this.depStr[d]!;
    const sp = r.indexOf(" ");
    const id = this.intern(sp >= 0 ? r.slice(0, sp) : r);
    this.depHeads[d] = id;
    return id;
  }

  /** @internal parse tree of a rich dependency (cached). */
  richTree(d: number): RichNode | undefined {
    let t = this.depRich[d];
    if (t === undefined) {
      t = parseRichDep(this.depStr[d]!) ?? null;
      this.depRich[d] = t;
    }
    return t ?? undefined;
  }

  /** @internal the provider view for a set of config-dependent rules. */
  view(deb: boolean, fileMode: boolean, fileProvides: ReadonlyMap<string, readonly string[]>): ProviderView {
    const key = `${deb ? "deb" : "rpm"}\0${fileMode ? JSON.stringify([...fileProvides]) : "-"}`;
    let v = this.views.get(key);
    if (!v) {
      v = new ProviderView(this, deb, fileMode, fileMode ? fileProvides : new Map());
      this.views.set(key, v);
    }
    return v;
  }

  /**
   * @internal Sorts visible slots by package name (JavaScript string order, which is
   * obs-build's byte order for the ASCII names packages have) using precomputed ranks.
   */
  sortByName(slots: readonly number[]): string[] {
    return this.namesOf(this.sortedNameIds(slots, slots.length));
  }

  /** @internal the name ids of the first `n` visible slots in {@link sortByName} order. */
  sortedNameIds(slots: ArrayLike<number>, n: number): Int32Array {
    if (this.ranksDirty) this.rebuildRanks();
    const ranks = new Int32Array(n);
    for (let i = 0; i < n; i++) ranks[i] = this.nameRank[this.slotNameId[slots[i]!]!]!;
    // A typed array's sort of a hundred integers beats a bitmap of ranks scanned in order (the
    // ranks of one expansion spread over all of them).
    ranks.sort();
    for (let i = 0; i < n; i++) ranks[i] = this.rankName[ranks[i]!]!;
    return ranks;
  }

  /** @internal the strings of string ids. */
  namesOf(ids: ArrayLike<number>): string[] {
    const n = ids.length;
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = this.strs[ids[i]!]!;
    return out;
  }

  // Ranks are per name, so replacing a package keeps them; only new or vanished names
  // make them stale.
  private rebuildRanks(): void {
    const names = [...this.visibleSlot.keys()];
    names.sort((a, b) => {
      const x = this.strs[a]!;
      const y = this.strs[b]!;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    this.nameRank = new Int32Array(this.strs.length).fill(-1);
    this.rankName = Int32Array.from(names);
    names.forEach((n, i) => (this.nameRank[n] = i));
    this.ranksDirty = false;
  }

  /** @internal a fresh trace mark, with the trace arrays sized to the current tables. */
  nextTraceMark(): number {
    if (this.traceDepStamp.length < this.depStr.length || this.traceNameStamp.length < this.strs.length) {
      this.traceDepStamp = new Uint32Array(this.depStr.length * 2 + 1024);
      this.traceNameStamp = new Uint32Array(this.strs.length * 2 + 1024);
      this.traceMark = 0;
    }
    if (this.traceMark >= 0xfffffff0) {
      this.traceDepStamp.fill(0);
      this.traceNameStamp.fill(0);
      this.traceMark = 0;
    }
    return ++this.traceMark;
  }

  /** @internal a fresh "queued" mark. */
  nextMark(): number {
    if (this.markStamp.length < this.slotPkg.length) {
      this.markStamp = new Uint32Array(Math.max(this.slotPkg.length, this.markStamp.length * 2));
      this.mark = 0;
    }
    if (this.mark >= 0xfffffff0) {
      this.markStamp.fill(0);
      this.mark = 0;
    }
    return ++this.mark;
  }

  /** @internal a fresh install stamp (scratch arrays sized to the slot count). */
  nextStamp(): number {
    if (this.instStamp.length < this.slotPkg.length) {
      this.instStamp = new Uint32Array(Math.max(this.slotPkg.length, this.instStamp.length * 2));
      this.satStamp.fill(0);
      this.stamp = 0;
    }
    if (this.satStamp.length < this.depStr.length) {
      const grown = new Uint32Array(Math.max(this.depStr.length * 2, 1024));
      grown.set(this.satStamp);
      this.satStamp = grown;
    }
    if (this.stamp >= 0xfffffff0) {
      this.instStamp.fill(0);
      this.satStamp.fill(0);
      this.stamp = 0;
    }
    return ++this.stamp;
  }

  private checkLayer(layer: number): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.layers.length) {
      throw new InvalidInputError(`no repository layer ${layer} (the path has ${this.layers.length})`);
    }
  }

  private depList(list: readonly string[] | undefined, dropRpmlib: boolean): Int32Array {
    if (!list || list.length === 0) return EMPTY;
    const out: number[] = [];
    for (const raw of list) {
      const dep = normalizeDep(raw);
      if (dep === "" || (dropRpmlib && dep.startsWith("rpmlib("))) continue;
      out.push(this.internDep(dep));
    }
    return out.length === 0 ? EMPTY : Int32Array.from(out);
  }

  private put(layer: number, p: BinaryPackage): void {
    if (!p.name) throw new InvalidInputError("a binary package needs a name");
    const n = this.intern(p.name);
    const s = this.freeSlots.pop() ?? this.slotPkg.length;
    for (const v of this.views.values()) v.dropSlot(s);
    this.slotPkg[s] = p;
    this.slotName[s] = p.name;
    this.slotNameId[s] = n;
    this.slotLayer[s] = layer;
    // rpm headers carry rpmlib() requirements that no package provides; obs-build drops them.
    this.slotReq[s] = this.depList(p.requires, true);
    this.reqLists.set(s, this.slotReq[s]);
    this.slotCon[s] = this.depList(p.conflicts, true);
    this.slotObs[s] = this.depList(p.obsoletes, true);
    if (s >= this.slotConObs.length) {
      const grown = new Uint8Array(Math.max(s + 1, this.slotConObs.length * 2));
      grown.set(this.slotConObs);
      this.slotConObs = grown;
    }
    this.slotConObs[s] = this.slotCon[s].length > 0 || this.slotObs[s].length > 0 ? 1 : 0;
    this.slotRec[s] = this.depList(p.recommends, true);
    const provides = p.provides.map(normalizeDep).filter((x) => x !== "" && !x.startsWith("rpmlib("));
    const self = selfProvide(p);
    if (!provides.includes(self)) provides.push(self);
    const pn = new Int32Array(provides.length);
    const pb = new Int8Array(provides.length);
    const pv: string[] = [];
    provides.forEach((x, i) => {
      const pp = parseProvide(x);
      pn[i] = this.intern(pp.name);
      pb[i] = pp.bits;
      pv.push(pp.version);
    });
    this.slotProvName[s] = pn;
    this.slotProvBits[s] = pb;
    this.slotProvVer[s] = pv;
    const old = this.layers[layer]!.get(n);
    this.layers[layer]!.set(n, s);
    this.refreshVisibility(n);
    if (old !== undefined) this.freeSlot(old);
  }

  private freeSlot(s: number): void {
    for (const v of this.views.values()) v.dropSlot(s);
    this.slotPkg[s] = undefined;
    this.slotReq[s] = EMPTY;
    this.reqLists.drop(s);
    this.slotConObs[s] = 0;
    this.slotCon[s] = EMPTY;
    this.slotObs[s] = EMPTY;
    this.slotRec[s] = EMPTY;
    this.slotProvName[s] = EMPTY;
    this.slotProvBits[s] = new Int8Array(0);
    this.slotProvVer[s] = [];
    this.freeSlots.push(s);
  }

  private refreshVisibility(n: number): void {
    let next: number | undefined;
    for (const layer of this.layers) {
      next = layer.get(n);
      if (next !== undefined) break;
    }
    const prev = this.visibleSlot.get(n);
    if (prev === next) return;
    if (prev === undefined || next === undefined) this.ranksDirty = true;
    const changed = new Set<number>();
    if (prev !== undefined) {
      for (const pn of new Set(this.slotProvName[prev]!)) {
        changed.add(pn);
        const l = this.whatProvidesName.get(pn);
        if (!l) continue;
        const i = l.indexOf(prev);
        if (i >= 0) l.splice(i, 1);
        if (l.length === 0) this.whatProvidesName.delete(pn);
      }
      this.visibleSlot.delete(n);
    }
    if (next !== undefined) {
      for (const pn of new Set(this.slotProvName[next]!)) {
        changed.add(pn);
        const l = this.whatProvidesName.get(pn);
        if (l) l.push(next);
        else this.whatProvidesName.set(pn, [next]);
      }
      this.visibleSlot.set(n, next);
    }
    changed.add(n);
    if (this.building) return;
    const version = ++this.versionCounter;
    for (const c of changed) {
      for (const v of this.views.values()) v.invalidateName(c);
      this.logVersion.push(version);
      this.logName.push(c);
    }
    if (this.logVersion.length > CHANGE_LOG_MAX) {
      const cut = this.logVersion.length >> 1;
      this.logFloor = this.logVersion[cut - 1]!;
      this.logVersion.splice(0, cut);
      this.logName.splice(0, cut);
    }
  }
}
