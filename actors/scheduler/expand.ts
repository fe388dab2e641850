/**
 * Build dependency expansion, as obs-build's `Build::Expand::expand`, `Build::get_deps` and
 * `Build::get_build` do it (reference/obs-backend.md §3).
 *
 * Expansion is deterministic and never chooses by version: a dependency with several possible
 * providers is resolved by conflicts, `Prefer:`, the `a | b` order or Recommends of packages
 * already chosen, and is otherwise an error ("have choice for …"). Results and error messages
 * are those of obs-build, in its order.
 *
 * The expander works on the integer ids of a {@link ProviderIndex}; a project config is
 * compiled once per index (cached by object identity, so a config must not be mutated after
 * it has been used).
 *
 * Known differences from obs-build: the `dorecommends`/`dosupplements` expand flags (and
 * their `--dorecommends--`/`--dosupplements--` markers), Debian multiarch extraction and the
 * recipe-type specific parts of `get_build` (kiwi, docker, livebuild… build-packages,
 * `get_sysbuild`, cross builds) are not implemented; when several candidates are preferred only
 * through `origin:name` Prefer entries, obs-build picks an undefined package while kiln leaves
 * the choice open; names sort by UTF-16 code units, which differs from obs-build's byte order
 * only for characters outside the Basic Multilingual Plane.
 */
import { DepFlag } from "./provider-index.ts";
import type { ProviderIndex, ProviderView } from "./provider-index.ts";
import { RichKind, normalizeRich } from "./rich-dep.ts";
import type { CondClause, RichContext } from "./rich-dep.ts";

/**
 * The project-config fields expansion reads; a `BuildConfig` from prjconf.ts fits as is.
 * Lists are as `Build::read_config` leaves them (`!x` removals already applied).
 */
export interface ExpandConfig {
  preinstall: readonly string[];
  vminstall: readonly string[];
  required: readonly string[];
  support: readonly string[];
  keep: readonly string[];
  runscripts: readonly string[];
  prefer: readonly string[];
  ignore: readonly string[];
  conflict: readonly string[];
  ignoreRebuild: readonly string[];
  expandFlags: readonly string[];
  substitute: Readonly<Record<string, readonly string[]>>;
  fileProvides: Readonly<Record<string, readonly string[]>>;
  binaryType?: string;
}

/** Outcome of an expansion: the sorted package names, or obs-build's error messages. */
export type ExpandResult = { ok: true; packages: string[] } | { ok: false; errors: string[] };

/**
 * Which obs-build behaviour to reproduce. `current` is today's `Build/Expand.pm`;
 * `20210120` is the obs-build release Debian ships (the oracle the tests compare with), which
 * lacks global `Conflict:` entries, conflict pruning of direct dependencies, `otherproviders()`,
 * `keepfilerequires`, `IgnoreRebuild:`, and reports unmet rich-dependency clauses as conflicts.
 */
export const ObsBuildCompat = { Current: "current", V20210120: "20210120" } as const;
export type ObsBuildCompat = (typeof ObsBuildCompat)[keyof typeof ObsBuildCompat];

/** Options of the expansion functions. */
export interface ExpandOptions {
  /** @default "current" */
  compat?: ObsBuildCompat;
  /** Reuse results of earlier identical expansions while the index has not changed under them. */
  cache?: ExpansionCache;
  /**
   * With a cache: given the filter of the name ids the expansion looked at, so a caller can tell
   * which results a change of the index can affect ({@link TraceFilter.has} with the ids of
   * `ProviderIndex.changedIdsSince`).
   */
  onTraced?: (filter: TraceFilter) => void;
  /** Return the cached result object itself (the caller promises not to change it). */
  shareResult?: boolean;
  /**
   * Given the string ids (`ProviderIndex.strs`) of a successful result's packages, in its order,
   * so a caller can look the names up in arrays instead of maps. Read it, do not change it.
   */
  onIds?: (ids: Int32Array) => void;
}

/** One package of a job's install set (`get_build` plus the scheduler's flags). */
export interface BuildDep {
  name: string;
  /** Installed before everything else (Preinstall). */
  preinstall: boolean;
  /** Installed into the VM image (VMinstall). */
  vminstall: boolean;
  /** Its install scripts are run (Runscripts). */
  runscripts: boolean;
  /** Not part of the rebuild meta: changes of it never trigger a rebuild. */
  notmeta: boolean;
}

/** Outcome of {@link getBuild}. */
export type BuildResult = { ok: true; packages: BuildDep[] } | { ok: false; errors: string[] };

/** Options of {@link getBuild}. */
export interface BuildOptions extends ExpandOptions {
  /** `PreReq:` dependencies; they are expanded after `--directdepsend--`. */
  prereqs?: readonly string[];
  /** The package's {@link getDeps} result, when the caller already has it. */
  edeps?: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Config compilation

interface Compiled {
  view: ProviderView;
  keepFileRequires: boolean;
  flags: Set<string>;
  prefer: readonly string[];
  preferSet: Set<string>;
  /** Ignore keys without a package part, as string ids. */
  ignore: Set<number>;
  /** `pkg:dep` ignore keys: package name id → dep key ids. */
  ignorePkg: Map<number, Set<number>>;
  /** Per string id: whether it is a package part of a `pkg:dep` ignore key. */
  ignorePkgMask: Uint8Array;
  /** `Conflict: a:b` pairs by package name. */
  conflicts: Map<string, string[]>;
  /** `Conflict: a` (current obs-build only). */
  globalConflicts: string[];
  substitute: Map<string, string[]>;
  fileProvides: Map<string, string[]>;
  preinstall: string[];
  vminstall: string[];
  required: string[];
  support: string[];
  keep: string[];
  runscripts: string[];
  ignoreRebuild: string[];
  /** Preinstall ∪ Support (unexpanded). */
  bdeps: Set<string>;
  /** The same as string ids: 1 at the id of each name. */
  bdepsMask: Uint8Array;
  pre?: { version: number; compat: ObsBuildCompat; error?: string; pre: string[]; vm: string[] };
}

function unify<T>(list: readonly T[]): T[] {
  return list.length > 1 ? Array.from(new Set(list)) : [...list];
}

// Perl's split(/[,:]/): trailing empty fields are dropped.
function splitList(s: string): string[] {
  const parts = s.split(/[,:]/);
  while (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

// Registers key "a:b:c" under every package/dep split, since obs-build looks keys up as
// `"$pkg:$dep"` strings.
function addPkgKey(ix: ProviderIndex, map: Map<number, Set<number>>, key: string): void {
  for (let i = key.indexOf(":"); i >= 0; i = key.indexOf(":", i + 1)) {
    const p = ix.intern(key.slice(0, i));
    let set = map.get(p);
    if (!set) map.set(p, (set = new Set()));
    set.add(ix.intern(key.slice(i + 1)));
  }
}

function compile(ix: ProviderIndex, config: ExpandConfig): Compiled {
  const cached = ix.compiled.get(config) as Compiled | undefined;
  if (cached) return cached;
  const binaryType = config.binaryType || "rpm";
  const fileProvides = new Map<string, string[]>();
  for (const [k, v] of Object.entries(config.fileProvides ?? {})) fileProvides.set(k, [...v]);
  const fileMode = fileProvides.size > 0 || binaryType !== "rpm";
  const flags = new Set<string>();
  for (const f of config.expandFlags ?? []) flags.add(f);
  const ignore = new Set<number>();
  const ignorePkg = new Map<number, Set<number>>();
  for (const x of config.ignore ?? []) {
    if (!x.includes(":")) {
      ignore.add(ix.intern(x));
      continue;
    }
    const [s, ...rest] = splitList(x);
    for (const r of rest) addPkgKey(ix, ignorePkg, `${s}:${r}`);
  }
  const conflicts = new Map<string, string[]>();
  const globalConflicts: string[] = [];
  for (const x of config.conflict ?? []) {
    const [s, ...rest] = splitList(x);
    if (s === undefined) continue;
    if (s && rest.length === 0) globalConflicts.push(s);
    const add = (k: string, v: string): void => {
      const l = conflicts.get(k);
      if (l) l.push(v);
      else conflicts.set(k, [v]);
    };
    for (const r of rest) {
      add(s, r);
      add(r, s);
    }
  }
  for (const [k, v] of conflicts) conflicts.set(k, unify(v));
  const substitute = new Map<string, string[]>();
  for (const [k, v] of Object.entries(config.substitute ?? {})) {
    substitute.set(
      k,
      unify(v).map((x) => x.replace(/=$/, ""))
    );
  }
  const c: Compiled = {
    view: ix.view(binaryType === "deb", fileMode, fileProvides),
    keepFileRequires: flags.has("keepfilerequires") || (binaryType !== "rpm" && binaryType !== "UNDEFINED"),
    flags,
    prefer: [...(config.prefer ?? [])],
    preferSet: new Set(config.prefer ?? []),
    ignore,
    ignorePkg,
    conflicts,
    globalConflicts: unify(globalConflicts),
    substitute,
    fileProvides,
    preinstall: unify(config.preinstall ?? []),
    vminstall: unify(config.vminstall ?? []),
    required: unify(config.required ?? []),
    support: unify(config.support ?? []),
    keep: unify(config.keep ?? []),
    runscripts: unify(config.runscripts ?? []),
    ignoreRebuild: [...(config.ignoreRebuild ?? [])],
    bdeps: new Set([...(config.preinstall ?? []), ...(config.support ?? [])]),
    bdepsMask: new Uint8Array(0),
    ignorePkgMask: new Uint8Array(ix.strs.length),
  };
  for (const k of ignorePkg.keys()) c.ignorePkgMask[k] = 1;
  const bdepIds = [...c.bdeps].map((x) => ix.intern(x));
  c.bdepsMask = new Uint8Array(ix.strs.length);
  for (const k of bdepIds) c.bdepsMask[k] = 1;
  ix.compiled.set(config, c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// The expander

function stripOps(r: string): string {
  return r.replace(/\s*[<=>]{1,2}.*$/, "");
}

/** What a {@link TraceFilter} is made from. */
type TraceLists = Pick<Trace, "deps" | "names" | "slots">;

/** Dependency ids consulted by one expansion, for result caching. */
interface Trace {
  deps: number[];
  /** Dependencies interned after the trace arrays were sized. */
  late: Set<number>;
  names: number[];
  /** Installed packages: the names of everything they depend on count (`slotNamesOf`). */
  slots: Int32Array;
  mark: number;
}

/**
 * A growable list of int32 pairs or ints. The expander's work lists live in these and are
 * reused from one expansion to the next: plain arrays, dropped and regrown every pass, were most
 * of what a full check allocated.
 */
class IntList {
  a = new Int32Array(256);
  n = 0;

  push(x: number): void {
    if (this.n === this.a.length) this.grow();
    this.a[this.n++] = x;
  }

  push2(x: number, y: number): void {
    if (this.n + 2 > this.a.length) this.grow();
    this.a[this.n++] = x;
    this.a[this.n++] = y;
  }

  private grow(): void {
    const g = new Int32Array(this.a.length * 2);
    g.set(this.a);
    this.a = g;
  }
}

/** The work lists of one expansion (taken from {@link spareLists}, given back after it). */
interface WorkLists {
  /** Pairs (dependency id, or -1 - clause index; requiring slot or -1). */
  todo: IntList;
  /** The next pass's pairs. */
  next: IntList;
  /** Slots to install. */
  inst: IntList;
  /** Slots installed, in order. */
  installed: IntList;
}

const spareLists: WorkLists[] = [];

const NO_SLOTS = new Int32Array(0);

/** Scratch of getDeps: which packages of a result stay. */
let bdepsKeep = new Uint8Array(1024);

class Run {
  private readonly ix: ProviderIndex;
  private readonly view: ProviderView;
  private readonly legacy: boolean;
  private readonly stamp: number;
  private readonly inst: Uint32Array;
  private readonly sat: Uint32Array;
  private readonly installed: IntList;
  private readonly lists: WorkLists;
  /** (dependency, requiring slot) pairs still to resolve. */
  private todo: IntList;
  private readonly todoInst: IntList;
  private readonly conds: CondClause[] = [];
  private readonly todoCond = new Map<number, [CondClause, number][]>();
  private readonly aconflicts = new Map<number, string[]>();
  private readonly recommended = new Set<number>();
  /** Installed packages before this index have had their Recommends collected. */
  private recDone = 0;
  private readonly errors: string[] = [];
  private readonly xignore: Set<number>;
  private readonly xignorePkg: Map<number, Set<number>>;
  private readonly cfgIgnore: boolean;
  private readonly ignoreActive: boolean;
  private readonly globalIgnoreActive: boolean;
  private readonly ignoreConflicts: boolean;
  private readonly keepFileRequires: boolean;
  /** String ids of the result's packages, in its order, after a successful run. */
  resultIds: Int32Array | undefined;

  constructor(
    private readonly cc: Compiled,
    ix: ProviderIndex,
    compat: ObsBuildCompat,
    xignoreKeys: Set<string>,
    private readonly trace: Trace | undefined
  ) {
    this.ix = ix;
    this.view = cc.view;
    this.lists = spareLists.pop() ?? {
      todo: new IntList(),
      next: new IntList(),
      inst: new IntList(),
      installed: new IntList(),
    };
    this.lists.todo.n = 0;
    this.lists.next.n = 0;
    this.lists.inst.n = 0;
    this.lists.installed.n = 0;
    this.todo = this.lists.todo;
    this.todoInst = this.lists.inst;
    this.installed = this.lists.installed;
    this.legacy = compat === ObsBuildCompat.V20210120;
    this.stamp = ix.nextStamp();
    this.inst = ix.instStamp;
    this.sat = ix.satStamp;
    this.xignore = new Set();
    this.xignorePkg = new Map();
    for (const k of xignoreKeys) {
      this.xignore.add(ix.intern(k));
      if (k.includes(":")) addPkgKey(ix, this.xignorePkg, k);
    }
    this.cfgIgnore = !xignoreKeys.has("-ignoreignore--");
    this.globalIgnoreActive = this.xignore.size > 0 || (this.cfgIgnore && cc.ignore.size > 0);
    this.ignoreActive =
      this.globalIgnoreActive || this.xignorePkg.size > 0 || (this.cfgIgnore && cc.ignorePkg.size > 0);
    this.ignoreConflicts = cc.flags.has("ignoreconflicts") || xignoreKeys.has("-ignoreconflicts--");
    this.keepFileRequires = !this.legacy && (cc.keepFileRequires || xignoreKeys.has("-keepfilerequires--"));
  }

  private prov(d: number): Int32Array {
    const t = this.trace;
    if (t) {
      const seen = this.ix.traceDepStamp;
      if (d < seen.length) {
        if (seen[d] !== t.mark) {
          seen[d] = t.mark;
          t.deps.push(d);
        }
      } else if (!t.late.has(d)) {
        t.late.add(d);
        t.deps.push(d);
      }
    }
    return this.view.providers(d);
  }

  private provOf(dep: string): Int32Array {
    return this.prov(this.ix.internDep(dep));
  }

  private visible(name: string): number | undefined {
    const n = this.ix.intern(name);
    this.trace?.names.push(n);
    return this.ix.visibleSlot.get(n);
  }

  private isIgnored(key: number): boolean {
    return (this.cfgIgnore && this.cc.ignore.has(key)) || this.xignore.has(key);
  }

  // Whether an ignore rule can apply to a dependency of the package in slot p at all.
  private hasIgnoresFor(p: number): boolean {
    if (this.globalIgnoreActive) return true;
    const pn = this.ix.slotNameId[p]!;
    const mask = this.cc.ignorePkgMask;
    return (
      (this.cfgIgnore && pn < mask.length && mask[pn] === 1) || (this.xignorePkg.size > 0 && this.xignorePkg.has(pn))
    );
  }

  private isIgnoredFor(p: number, key: number): boolean {
    const pn = this.ix.slotNameId[p]!;
    return (
      (this.cfgIgnore && this.cc.ignorePkg.get(pn)?.has(key) === true) || this.xignorePkg.get(pn)?.has(key) === true
    );
  }

  private name(s: number): string {
    return this.ix.slotName[s]!;
  }

  private sortedNames(slots: readonly number[]): string[] {
    return this.ix.sortByName(slots);
  }

  private richContext(p: number, withIgnore: boolean): RichContext {
    return {
      providers: (dep) => Array.from(this.provOf(dep)),
      ignored: (key) => {
        if (!withIgnore || !this.ignoreActive) return false;
        const k = this.ix.intern(key);
        return this.isIgnored(k) || (p >= 0 && this.isIgnoredFor(p, k));
      },
    };
  }

  private normalize(dep: string, d: number, kind: RichKind, p: number, errors: string[] | undefined): CondClause[] {
    const tree = this.ix.richTree(d);
    const n = normalizeRich(
      this.richContext(p, kind === RichKind.Requires && p >= 0),
      tree,
      dep,
      kind,
      p,
      p >= 0 ? this.name(p) : undefined
    );
    if (n.error !== undefined && errors) errors.push(n.error);
    return n.clauses;
  }

  private pushCond(c: CondClause, p: number): void {
    this.conds.push(c);
    this.todo.push2(-this.conds.length, p);
  }

  // obs-build's check_conddeps_inst
  private condInst(
    p: number,
    clauses: readonly CondClause[],
    naconf: Map<number, string>,
    todoCond: Map<number, [CondClause, number][]> | undefined
  ): void {
    const inst = this.inst;
    const st = this.stamp;
    const pName = p >= 0 ? this.name(p) : undefined;
    for (const c of clauses) {
      const cond = c.cond;
      if (cond === undefined) continue;
      if (c.q.some((q) => inst[q] === st)) continue;
      const cx = cond.filter((x) => inst[x] !== st);
      if (cx.length === 0) {
        c.cond = undefined;
        if (c.q.length > 0) this.pushCond(c, p);
        else if (cond.length > 0) {
          if (!this.legacy && c.kind === RichKind.Requires) {
            this.errors.push(
              pName !== undefined ? `nothing provides ${c.dep} needed by ${pName}` : `nothing provides ${c.dep}`
            );
            continue;
          }
          for (const x of this.sortedNames(cond)) {
            this.errors.push(pName !== undefined ? `${pName} conflicts with ${x}` : `conflicts with ${x}`);
          }
        }
      } else if (c.q.length === 0 && cx.length === 1) {
        if (!this.legacy && c.kind === RichKind.Requires) {
          naconf.set(
            cx[0]!,
            pName !== undefined ? `conflicts with ${c.dep} needed by ${pName}` : `conflicts with ${c.dep}`
          );
        } else {
          naconf.set(cx[0]!, pName !== undefined ? `is in conflict with ${pName}` : "is in conflict");
        }
      } else if (todoCond) {
        for (const x of cx) {
          const l = todoCond.get(x);
          if (l) l.push([c, p]);
          else todoCond.set(x, [[c, p]]);
        }
      }
    }
  }

  private mergeConflicts(naconf: Map<number, string>): void {
    for (const [k, v] of naconf) {
      const l = this.aconflicts.get(k);
      if (l) l.push(v);
      else this.aconflicts.set(k, [v]);
    }
  }

  private nevrmatch(r: string, q: ArrayLike<number>): number[] {
    const rn = stripOps(r);
    const out: number[] = [];
    for (let i = 0; i < q.length; i++) if (this.name(q[i]!) === rn) out.push(q[i]!);
    return out;
  }

  // obs-build's checkconflicts: does candidate q conflict with something installed?
  private checkConflicts(q: number, eq: string[]): boolean {
    let ret = false;
    const ix = this.ix;
    for (const d of ix.slotCon[q]!) {
      if (ix.depFlags[d]! & DepFlag.Rich) {
        const clauses = this.normalize(ix.depStr[d]!, d, RichKind.Conflicts, q, undefined);
        for (const c of clauses) {
          if (c.q.length > 0 || !c.cond || c.cond.length === 0) continue;
          if (c.cond.some((x) => this.inst[x] !== this.stamp)) continue;
          for (const x of this.sortedNames(c.cond)) eq.push(`(provider ${this.name(q)} conflicts with ${x})`);
          ret = true;
        }
        continue;
      }
      const hit = Array.from(this.prov(d)).filter((x) => this.inst[x] === this.stamp);
      if (hit.length === 0) continue;
      for (const x of hit) eq.push(`(provider ${this.name(q)} conflicts with ${this.name(x)})`);
      ret = true;
    }
    return ret;
  }

  private checkObsoletes(q: number, eq: string[]): boolean {
    let ret = false;
    for (const d of this.ix.slotObs[q]!) {
      const hit = this.nevrmatch(this.ix.depStr[d]!, this.prov(d)).filter((x) => this.inst[x] === this.stamp);
      if (hit.length === 0) continue;
      for (const x of hit) eq.push(`(provider ${this.name(q)} obsoletes ${this.name(x)})`);
      ret = true;
    }
    return ret;
  }

  private fail(): ExpandResult {
    return { ok: false, errors: this.errors };
  }

  /** Expands; the trace (if any) refers to this run's lists until {@link release}. */
  run(input: readonly string[]): ExpandResult {
    const r = this.expand(input);
    // Everything an installed package depends on, conflicts with, obsoletes or recommends; the
    // view keeps those names per package, so the trace only lists the packages.
    if (this.trace) this.trace.slots = this.installed.a.subarray(0, this.installed.n);
    return r;
  }

  /** Gives the work lists back for the next expansion. */
  release(): void {
    spareLists.push(this.lists);
  }

  private expand(input: readonly string[]): ExpandResult {
    const ix = this.ix;
    const cc = this.cc;
    let p = [...input];
    let directDepsEnd: string[] = [];
    if (p.includes("--directdepsend--")) {
      const i = p.indexOf("--directdepsend--");
      directDepsEnd = p.slice(i + 1).filter((x) => !x.startsWith("-"));
      p = p.slice(0, i);
    }

    if (!this.legacy) for (const n of cc.globalConflicts) this.addConflict(n, "is in conflict");

    for (const x of p) {
      if (!x.startsWith("!")) continue;
      const exact = x.startsWith("!!");
      const r = x.slice(exact ? 2 : 1);
      if (r.startsWith("(") && r.endsWith(")")) {
        const naconf = new Map<number, string>();
        const clauses = this.normalize(r, ix.internDep(r), RichKind.Conflicts, -1, this.errors);
        this.condInst(-1, clauses, naconf, this.todoCond);
        this.mergeConflicts(naconf);
        continue;
      }
      let q: ArrayLike<number> = this.provOf(r);
      if (exact) q = this.nevrmatch(r, q);
      for (let i = 0; i < q.length; i++) this.pushConflict(q[i]!, "is in conflict");
    }
    p = p.filter((x) => !x.startsWith("-") && !x.startsWith("!"));

    // Direct dependencies are installed even when something already provides them, and an
    // exact name match settles a choice.
    const rest: string[] = [];
    // Their dependency ids, not to intern them twice (-1: not interned yet).
    const restIds: number[] = [];
    for (const r of p) {
      if (r.startsWith("(") && r.endsWith(")")) {
        rest.push(r);
        restIds.push(-1);
        continue;
      }
      const d = ix.internDep(r);
      let q: ArrayLike<number> = this.prov(d);
      if (!this.legacy && q.length > 1 && this.aconflicts.size > 0) {
        q = Array.from(q).filter((s) => !this.aconflicts.has(s));
      }
      const pn = ix.depHead(d);
      let hit = -1;
      let count = 0;
      for (let i = 0; i < q.length; i++) {
        if (ix.slotNameId[q[i]!] === pn) {
          hit = q[i]!;
          count++;
        }
      }
      if (count !== 1) {
        rest.push(r);
        restIds.push(d);
      } else this.todoInst.push(hit);
    }
    for (const r of directDepsEnd) {
      rest.push(r);
      restIds.push(-1);
    }
    for (let i = 0; i < rest.length; i++) {
      const r = rest[i]!;
      if (r.startsWith("(") && r.endsWith(")")) {
        const naconf = new Map<number, string>();
        const clauses = this.normalize(r, ix.internDep(r), RichKind.Requires, -1, this.errors);
        this.condInst(-1, clauses, naconf, this.todoCond);
        this.mergeConflicts(naconf);
      } else {
        const d = restIds[i]! >= 0 ? restIds[i]! : ix.internDep(r);
        if (this.trace) this.prov(d);
        this.todo.push2(d, -1);
      }
    }
    for (let i = 0; i < this.todoInst.n; i++) {
      const q = this.todoInst.a[i]!;
      const a = this.aconflicts.get(q);
      if (a) for (const m of a) this.errors.push(`${this.name(q)} ${m}`);
    }
    if (this.errors.length > 0) return this.fail();

    while (this.todo.n > 0 || this.todoInst.n > 0) {
      if (this.todoInst.n > 0 && !this.install()) return this.fail();
      this.passes();
      if (this.errors.length > 0) return this.fail();
    }
    const ids = ix.sortedNameIds(this.installed.a, this.installed.n);
    this.resultIds = ids;
    return { ok: true, packages: ix.namesOf(ids) };
  }

  private addConflict(name: string, why: string): void {
    const s = this.visible(name);
    if (s !== undefined) this.pushConflict(s, why);
  }

  private pushConflict(s: number, why: string): void {
    const l = this.aconflicts.get(s);
    if (l) l.push(why);
    else this.aconflicts.set(s, [why]);
  }

  // Installs todoInst; false when that produced errors.
  private install(): boolean {
    const ix = this.ix;
    const cc = this.cc;
    const inst = this.inst;
    const st = this.stamp;
    // The list is emptied once installed, so repeats are dropped in place.
    const list = this.todoInst.a;
    let count = this.todoInst.n;
    if (count > 1) {
      const mark = ix.nextMark();
      const marks = ix.markStamp;
      let w = 0;
      for (let i = 0; i < count; i++) {
        const q = list[i]!;
        if (marks[q] === mark) continue;
        marks[q] = mark;
        list[w++] = q;
      }
      count = w;
    }
    const aconflicts = this.aconflicts;
    if (aconflicts.size > 0) {
      for (let i = 0; i < count; i++) {
        const q = list[i]!;
        const a = aconflicts.get(q);
        if (a) for (const m of a) this.errors.push(`${this.name(q)} ${m}`);
      }
      if (this.errors.length > 0) return false;
    }
    const todoCond = this.todoCond;
    for (let i = 0; i < count; i++) {
      const q = list[i]!;
      inst[q] = st;
      this.installed.push(q);
      if (todoCond.size > 0) {
        const pending = todoCond.get(q);
        if (pending) {
          todoCond.delete(q);
          for (const [c, cp] of pending) {
            const naconf = new Map<number, string>();
            this.condInst(cp, [c], naconf, undefined);
            this.mergeConflicts(naconf);
          }
        }
      }
      if (aconflicts.size > 0) aconflicts.delete(q);
    }
    if (this.errors.length > 0) return false;

    const fileMode = this.view.fileMode;
    const ignoreActive = this.ignoreActive;
    const globalIgnore = this.globalIgnoreActive;
    const sat = this.sat;
    // Lookups here are for dependencies of installed packages, which the trace takes in as a
    // whole (Trace.slots), so they skip the per-lookup tracing.
    const provCache = this.view.prov;
    let single = this.view.single;
    const todo = this.todo;
    for (let li = 0; li < count; li++) {
      const p = list[li]!;
      let pIgn: Set<number> | undefined;
      let pXIgn: Set<number> | undefined;
      if (ignoreActive) {
        const pn = ix.slotNameId[p]!;
        pIgn =
          this.cfgIgnore && pn < cc.ignorePkgMask.length && cc.ignorePkgMask[pn] ? cc.ignorePkg.get(pn) : undefined;
        pXIgn = this.xignorePkg.size > 0 ? this.xignorePkg.get(pn) : undefined;
      }
      const checkIgnore = pIgn !== undefined || pXIgn !== undefined || globalIgnore;
      let naconf: Map<number, string> | undefined;
      // The name only where a conflict needs it: reading it for every package costs a cache miss.
      const cfgCon = cc.conflicts.size > 0 ? cc.conflicts.get(ix.slotName[p]!) : undefined;
      if (cfgCon) {
        const pName = ix.slotName[p]!;
        naconf = new Map();
        for (const n of cfgCon) {
          const s = this.visible(n);
          if (s !== undefined) naconf.set(s, `is in conflict with ${pName}`);
        }
      }
      const reqs = ix.reqLists.data;
      const reqEnd = ix.reqLists.start[p]! + ix.reqLists.count[p]!;
      for (let i = ix.reqLists.start[p]!; i < reqEnd; i++) {
        const d = reqs[i]!;
        // The common case first: a dependency with one provider is plain (no rich or file
        // flags; see ProviderView.single), so only an ignore rule could make it count less.
        const sg0 = d < single.length ? single[d]! : -2;
        if (sg0 >= 0 && !checkIgnore) {
          if (inst[sg0] !== st) todo.push2(d, p);
          continue;
        }
        const fl = ix.depFlags[d]!;
        if (fl !== 0) {
          if (fl & DepFlag.Rich) {
            naconf ??= new Map();
            const clauses = this.normalize(ix.depStr[d]!, d, RichKind.Requires, p, this.errors);
            this.condInst(p, clauses, naconf, this.todoCond);
            continue;
          }
          // Without FileProvides, rpm file dependencies are not part of the repository data.
          if (fl & DepFlag.File && !fileMode) continue;
        }
        if (checkIgnore) {
          const key = ix.depKey[d]!;
          if (pIgn?.has(key) || pXIgn?.has(key) || (globalIgnore && this.isIgnored(key))) continue;
        }
        // Already satisfied requirements would be dropped first thing in pass 0; dropping them
        // here is the same and keeps the todo list short. Satisfied stays satisfied.
        const sg = d < single.length ? single[d]! : -2;
        if (sg >= 0) {
          if (inst[sg] === st) continue;
          todo.push2(d, p);
          continue;
        }
        if (sat[d] === st) continue;
        const q = provCache[d] ?? this.view.providers(d);
        if (sg === -2) single = this.view.single;
        let met = false;
        for (let k = 0; k < q.length; k++) {
          if (inst[q[k]!] === st) {
            met = true;
            break;
          }
        }
        if (met) {
          sat[d] = st;
          continue;
        }
        todo.push2(d, p);
      }
      let naobs: Map<number, string> | undefined;
      if (!this.ignoreConflicts && ix.slotConObs[p] === 1) {
        const pName = ix.slotName[p]!;
        const cons = ix.slotCon[p]!;
        for (let i = 0; i < cons.length; i++) {
          const d = cons[i]!;
          naconf ??= new Map();
          if (ix.depFlags[d]! & DepFlag.Rich) {
            const clauses = this.normalize(ix.depStr[d]!, d, RichKind.Conflicts, p, this.errors);
            this.condInst(p, clauses, naconf, this.todoCond);
            continue;
          }
          const str = ix.depStr[d]!;
          const other = !this.legacy && /^otherproviders\((.*)\)$/s.exec(str);
          const q = other ? this.provOf(other[1]!) : this.prov(d);
          for (let k = 0; k < q.length; k++) naconf.set(q[k]!, `is in conflict with ${pName}`);
        }
        const obs = ix.slotObs[p]!;
        for (let i = 0; i < obs.length; i++) {
          const d = obs[i]!;
          naobs ??= new Map();
          for (const q of this.nevrmatch(ix.depStr[d]!, this.prov(d))) naobs.set(q, `is obsoleted by ${pName}`);
        }
      }
      if (naconf && naconf.size > 0) {
        const pName = ix.slotName[p]!;
        for (const n of this.installedOthers(naconf, p)) this.errors.push(`${pName} conflicts with ${n}`);
        this.mergeConflicts(naconf);
      }
      if (naobs && naobs.size > 0) {
        const pName = ix.slotName[p]!;
        for (const n of this.installedOthers(naobs, p)) this.errors.push(`${pName} obsoletes ${n}`);
        this.mergeConflicts(naobs);
      }
    }
    if (this.errors.length > 0) return false;
    this.todoInst.n = 0;
    return true;
  }

  /**
   * Names of the installed packages among `slots` other than `p`, sorted. A method of its own:
   * a closure over `p` in the install loop would cost an allocation per installed package.
   */
  private installedOthers(slots: Map<number, string>, p: number): string[] {
    const hits: number[] = [];
    for (const s of slots.keys()) if (s !== p && this.inst[s] === this.stamp) hits.push(s);
    return this.sortedNames(hits);
  }

  private passes(): void {
    const ix = this.ix;
    const cc = this.cc;
    const inst = this.inst;
    const st = this.stamp;
    const legacy = this.legacy;
    // Todo items are dependencies of installed packages (traced at the end) or inputs (traced
    // when queued).
    const provCache = this.view.prov;
    for (let pass = 0; pass <= 5; pass++) {
      const todo = this.todo;
      const next = todo === this.lists.todo ? this.lists.next : this.lists.todo;
      next.n = 0;
      // Installs during the pass add to `next`; this pass reads only what was there before.
      this.todo = next;
      const n = todo.n;
      const items = todo.a;
      // A copy made before a provider list was computed in this loop only lacks newer entries.
      const single = this.view.single;
      outer: for (let i = 0; i < n; i += 2) {
        const d = items[i]!;
        const p = items[i + 1]!;
        // The common case first: one plain provider, no ignore rule in play, nothing against it.
        const sg = d >= 0 && d < single.length ? single[d]! : -2;
        if (sg >= 0) {
          if (inst[sg] === st) continue;
          if (
            !(p >= 0 && this.ignoreActive && this.hasIgnoresFor(p)) &&
            (this.aconflicts.size === 0 || !this.aconflicts.has(sg)) &&
            (this.ignoreConflicts || ix.slotConObs[sg] === 0)
          ) {
            this.todoInst.push(sg);
            continue;
          }
        }
        const q: ArrayLike<number> = d >= 0 ? (provCache[d] ?? this.view.providers(d)) : this.conds[-d - 1]!.q;
        const ql = q.length;
        for (let k = 0; k < ql; k++) if (inst[q[k]!] === st) continue outer;
        if (p >= 0 && this.ignoreActive && ql > 0) {
          if (this.globalIgnoreActive) {
            for (let k = 0; k < ql; k++) if (this.isIgnored(ix.slotNameId[q[k]!]!)) continue outer;
          }
          const pn = ix.slotNameId[p]!;
          const pIgn =
            this.cfgIgnore && pn < cc.ignorePkgMask.length && cc.ignorePkgMask[pn] ? cc.ignorePkg.get(pn) : undefined;
          const pXIgn = this.xignorePkg.size > 0 ? this.xignorePkg.get(pn) : undefined;
          if (pIgn || pXIgn) {
            for (let k = 0; k < ql; k++) {
              const qn = ix.slotNameId[q[k]!]!;
              if (pIgn?.has(qn) || pXIgn?.has(qn)) continue outer;
            }
          }
        }
        if (ql === 0) {
          const r = d >= 0 ? ix.depStr[d]! : this.conds[-d - 1]!.dep;
          if (p >= 0) {
            if (legacy) {
              if (r.startsWith("/")) continue;
            } else {
              if (r.startsWith("rpmlib(")) continue;
              if (!this.keepFileRequires && r.startsWith("/")) continue;
            }
          }
          this.errors.push(p >= 0 ? `nothing provides ${r} needed by ${this.name(p)}` : `nothing provides ${r}`);
          continue;
        }
        if (ql > 1 && pass === 0) {
          next.push2(d, p);
          continue;
        }
        // The common case: one provider, nothing against it.
        if (ql === 1) {
          const q0 = q[0]!;
          if (
            (this.aconflicts.size === 0 || !this.aconflicts.has(q0)) &&
            (this.ignoreConflicts || ix.slotConObs[q0] === 0)
          ) {
            this.todoInst.push(q0);
            continue;
          }
        }
        this.choose(d, p, q, pass, next);
      }
      if (this.todoInst.n > 0) break;
    }
  }

  // A dependency that is not simply one conflict-free provider: conflicts, Prefer, `a | b`
  // order and Recommends decide, pass by pass as obs-build's expand does. Kept apart from the
  // pass loop, whose closures would otherwise cost an allocation per dependency looked at.
  private choose(d: number, p: number, q: ArrayLike<number>, pass: number, next: IntList): void {
    const ix = this.ix;
    const cc = this.cc;
    const ql = q.length;
    const r = d >= 0 ? ix.depStr[d]! : this.conds[-d - 1]!.dep;
    const pName = p >= 0 ? this.name(p) : undefined;
    const pn = pName !== undefined ? ` needed by ${pName}` : "";
    const eq: string[] = [];
    let cand: number[] = [];
    for (let k = 0; k < ql; k++) {
      const s = q[k]!;
      const a = this.aconflicts.get(s);
      if (a) for (const m of a) eq.push(`(provider ${this.name(s)} ${m})`);
      else cand.push(s);
    }
    if (!this.ignoreConflicts) {
      cand = cand.filter((s) => !(ix.slotCon[s]!.length > 0 && this.checkConflicts(s, eq)));
      cand = cand.filter((s) => !(ix.slotObs[s]!.length > 0 && this.checkObsoletes(s, eq)));
    }
    if (cand.length === 0) {
      this.errors.push(`conflict for providers of ${r}${pn}`, ...eq.sort());
      return;
    }
    if (cand.length === 1) {
      this.todoInst.push(cand[0]!);
      return;
    }
    if (pass < 2) {
      next.push2(d, p);
      return;
    }
    const pp = pName !== undefined ? `${pName}:` : "";
    const prefer = cc.preferSet;
    if (prefer.size > 0) {
      let pq = cand.filter((s) => !prefer.has(`-${this.name(s)}`) && !prefer.has(`-${pp}${this.name(s)}`));
      if (pq.length > 0) cand = pq;
      pq = cand.filter((s) => prefer.has(this.name(s)) || prefer.has(`${pp}${this.name(s)}`));
      if (pq.length === 1) cand = pq;
    }
    if (cand.length === 1) {
      this.todoInst.push(cand[0]!);
      return;
    }
    if (pass < 3) {
      next.push2(d, p);
      return;
    }
    if (prefer.size > 0) {
      const pq = cand.filter((s) => prefer.has(this.name(s)) || prefer.has(`${pp}${this.name(s)}`));
      if (pq.length > 1) {
        const byNameMap = new Map(pq.map((s) => [this.name(s), s] as const));
        const first = cc.prefer.find((x) => byNameMap.has(x));
        // obs-build would pick an undefined package here; keeping the choice open is the
        // closest sane behaviour (see the module notes on known differences).
        if (first !== undefined) cand = [byNameMap.get(first)!];
      } else if (pq.length === 1) cand = pq;
    }
    if (cand.length > 1 && r.includes("|")) {
      const set = new Set(cand);
      for (const alt of r.split(/\s*\|\s*/)) {
        const pq = Array.from(this.provOf(alt)).filter((s) => set.has(s));
        if (pq.length === 0) continue;
        cand = pq;
        break;
      }
    }
    if (cand.length === 1) {
      this.todoInst.push(cand[0]!);
      return;
    }
    if (pass < 4) {
      next.push2(d, p);
      return;
    }
    // Recommends of packages installed since the last look (obs-build's rec_todo).
    while (this.recDone < this.installed.n) {
      const s = this.installed.a[this.recDone++]!;
      for (const rd of ix.slotRec[s]!) for (const x of this.prov(rd)) this.recommended.add(x);
    }
    const rq = cand.filter((s) => this.recommended.has(s));
    if (rq.length > 0) cand = rq;
    if (cand.length === 1) {
      this.todoInst.push(cand[0]!);
      return;
    }
    if (pass < 5) {
      next.push2(d, p);
      return;
    }
    const names = this.sortedNames(cand).join(" ");
    this.errors.push(
      pName !== undefined ? `have choice for ${r} needed by ${pName}: ${names}` : `have choice for ${r}: ${names}`
    );
  }
}

/**
 * murmur3's finaliser: every output bit depends on every input bit. A plain multiplication
 * would not do: masked to a filter's low bits it depends only on the id's low bits, so ids
 * that differ by a multiple of the filter size collide in every filter (and a name interned
 * early — a core library every expansion looks at — would make its late twins look touched
 * everywhere).
 */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The names an expansion looked at, as a Bloom filter (no false negatives) made when first asked
 * for: a cold check of a whole repository need not wait for the filters of every expansion,
 * which only matter once the index changes. Until then it keeps what it is made from: the
 * expansion's own lookups and its installed packages. Made after the index changed, it takes the
 * installed packages' names from the index as it is then: a package that changed (or went) has
 * changed names, which were looked at to pick it, so the expansion is affected either way.
 */
export class TraceFilter {
  #bits: Uint32Array | undefined;
  #from: { ix: ProviderIndex; view: ProviderView; trace: TraceLists } | undefined;

  constructor(ix: ProviderIndex, view: ProviderView, trace: TraceLists) {
    this.#from = { ix, view, trace };
  }

  /** Whether it is made already. */
  get made(): boolean {
    return this.#bits !== undefined;
  }

  /** Whether the expansion may have looked at name id `n`. */
  has(n: number): boolean {
    return bloomHas(this.bits(), n);
  }

  /** The filter's words (made now if not yet). */
  bits(): Uint32Array {
    if (this.#bits === undefined) {
      const f = this.#from!;
      this.#bits = bloomOf(f.ix, f.view, f.trace);
      this.#from = undefined;
    }
    return this.#bits;
  }
}

/** The dependency ids and names an expansion looked at, as a small Bloom filter. */
function bloomOf(ix: ProviderIndex, view: ProviderView, trace: TraceLists): Uint32Array {
  const seen = ix.traceNameStamp;
  // A fresh mark: the filter may be made long after the expansion.
  const mark = ix.nextTraceMark();
  const names = bloomNames;
  names.n = 0;
  for (const n of trace.names) {
    if (n < seen.length) {
      if (seen[n] === mark) continue;
      seen[n] = mark;
    }
    names.push(n);
  }
  // Loops written out rather than a local helper: tsx keeps function names, which costs a
  // property definition for every closure made per expansion.
  for (const d of trace.deps) {
    const dn = view.namesOf(d);
    for (let i = 0; i < dn.length; i++) {
      const n = dn[i]!;
      if (n < seen.length) {
        if (seen[n] === mark) continue;
        seen[n] = mark;
      }
      names.push(n);
    }
  }
  const slots = trace.slots;
  for (let j = 0; j < slots.length; j++) {
    const s = slots[j]!;
    // A package gone since: its names changed, and one of them picked it.
    if (ix.slotPkg[s] === undefined) continue;
    view.slotNamesOf(s);
    const lists = view.slotNames;
    const all = lists.data;
    const at = lists.start[s]!;
    const end = at + lists.count[s]!;
    for (let i = at; i < end; i++) {
      const n = all[i]!;
      if (n < seen.length) {
        if (seen[n] === mark) continue;
        seen[n] = mark;
      }
      names.push(n);
    }
  }
  let bits = 256;
  while (bits < names.n * 16) bits <<= 1;
  const bloom = new Uint32Array(bits >>> 5);
  const mask = bits - 1;
  for (let i = 0; i < names.n; i++) {
    const n = names.a[i]!;
    const h1 = mix32(n);
    const h2 = mix32(n ^ 0x5bd1e995) | 1;
    for (let k = 0, h = h1; k < 3; k++, h = (h + h2) >>> 0) bloom[(h & mask) >>> 5]! |= 1 << (h & 31);
  }
  return bloom;
}

/** Scratch list of {@link bloomOf}. */
const bloomNames = new IntList();

/** Whether a Bloom filter of an expansion may contain name id `n` (no false negatives). */
export function bloomHas(bloom: Uint32Array, n: number): boolean {
  const mask = bloom.length * 32 - 1;
  const h1 = mix32(n);
  const h2 = mix32(n ^ 0x5bd1e995) | 1;
  for (let k = 0, h = h1; k < 3; k++, h = (h + h2) >>> 0)
    if (!(bloom[(h & mask) >>> 5]! & (1 << (h & 31)))) return false;
  return true;
}

interface CacheEntry {
  version: number;
  filter: TraceFilter;
  result: ExpandResult;
  /** String ids of a successful result's packages. */
  ids?: Int32Array;
}

/**
 * Remembers expansion results per index, config and input list. An entry stays valid while no
 * package providing a name the expansion looked at has changed, which the index's change log
 * tells; a hit is therefore exactly the result a fresh expansion would give.
 */
export class ExpansionCache {
  private readonly byIndex = new WeakMap<ProviderIndex, WeakMap<object, Map<string, CacheEntry>>>();
  private count = 0;
  private order: Map<string, CacheEntry>[] = [];
  private head = 0;
  /** Lookups answered from the cache. */
  hits = 0;
  /** Lookups that had to expand. */
  misses = 0;

  /** @param maxEntries bound on remembered results (oldest go first). @default 100000 */
  constructor(private readonly maxEntries = 100_000) {}

  /** @internal a still valid entry, or `undefined`. */
  lookup(ix: ProviderIndex, config: object, key: string): CacheEntry | undefined {
    const e = this.byIndex.get(ix)?.get(config)?.get(key);
    if (!e) return undefined;
    if (e.version !== ix.version) {
      const changed = ix.changedIdsSince(e.version);
      if (!changed || changed.some((n) => e.filter.has(n))) return undefined;
      e.version = ix.version;
    }
    return e;
  }

  /** @internal */
  set(ix: ProviderIndex, config: object, key: string, entry: CacheEntry): void {
    let perIndex = this.byIndex.get(ix);
    if (!perIndex) this.byIndex.set(ix, (perIndex = new WeakMap()));
    let map = perIndex.get(config);
    if (!map) perIndex.set(config, (map = new Map()));
    if (!map.has(key)) {
      this.count++;
      this.order.push(map);
    }
    map.set(key, entry);
    while (this.count > this.maxEntries && this.head < this.order.length) {
      const oldest = this.order[this.head++]!;
      const k = oldest.keys().next();
      if (k.done) continue;
      oldest.delete(k.value);
      this.count--;
    }
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Expands dependencies as `Build::Expand::expand`: `deps` holds `name [op version]` items, rich
 * dependencies, `-name` (ignore), `!name`/`!!name` (conflicts) and the `--directdepsend--`,
 * `--ignoreignore--`, `--ignoreconflicts--`, `--keepfilerequires--` markers.
 */
export function expand(
  config: ExpandConfig,
  index: ProviderIndex,
  deps: readonly string[],
  opts: ExpandOptions = {}
): ExpandResult {
  return expandEntry(config, index, deps, opts, true).result;
}

// Expands (or answers from the cache) and returns what a cache entry for a derived result
// (getDeps) needs: the expansion's dependency trace and the index version it saw.
function expandEntry(
  config: ExpandConfig,
  index: ProviderIndex,
  deps: readonly string[],
  opts: ExpandOptions,
  store: boolean
): { result: ExpandResult; entry?: CacheEntry; ids?: Int32Array } {
  const cc = compile(index, config);
  const compat = opts.compat ?? ObsBuildCompat.Current;
  const cache = opts.cache;
  let key = "";
  if (cache && store) {
    key = `${compat}\n${deps.join("\n")}`;
    const hit = cache.lookup(index, config, key);
    if (hit) {
      cache.hits++;
      return { result: cloneResult(hit.result), entry: hit, ...(hit.ids ? { ids: hit.ids } : {}) };
    }
    cache.misses++;
  }
  const xignore = new Set<string>();
  for (const x of deps) if (x.startsWith("-")) xignore.add(x.slice(1));
  xignore.delete("-directdepsend--");
  const trace: Trace | undefined = cache
    ? { deps: [], late: new Set(), names: [], slots: NO_SLOTS, mark: index.nextTraceMark() }
    : undefined;
  const version = index.version;
  const run = new Run(cc, index, compat, xignore, trace);
  const result = run.run(deps);
  const ids = run.resultIds;
  if (!cache || !trace) {
    run.release();
    return ids ? { result, ids } : { result };
  }
  // The installed packages are in a work list the next expansion reuses: copied.
  const lists: TraceLists = { deps: trace.deps, names: trace.names, slots: trace.slots.slice() };
  const entry: CacheEntry = { version, filter: new TraceFilter(index, cc.view, lists), result };
  run.release();
  if (ids) entry.ids = ids;
  if (store) {
    entry.result = cloneResult(result);
    cache.set(index, config, key, entry);
  }
  return ids ? { result, entry, ids } : { result, entry };
}

function cloneResult(r: ExpandResult): ExpandResult {
  return r.ok ? { ok: true, packages: [...r.packages] } : { ok: false, errors: [...r.errors] };
}

// ---------------------------------------------------------------------------------------------
// get_deps / get_build

function doSubst(cc: Compiled, deps: readonly string[]): string[] {
  if (cc.substitute.size === 0) return unify(deps);
  const res: string[] = [];
  const done = new Set<string>();
  const queue = [...deps].reverse();
  while (queue.length > 0) {
    const d = queue.pop()!;
    if (done.has(d)) continue;
    const ds = d.replace(/\s*[<=>].*$/s, "");
    const sub = cc.substitute.get(ds);
    if (sub) {
      for (let i = sub.length - 1; i >= 0; i--) queue.push(sub[i]!);
      if (sub.includes(ds)) res.push(d);
    } else res.push(d);
    done.add(d);
  }
  return res;
}

function expandPreinstalls(
  cc: Compiled,
  config: ExpandConfig,
  index: ProviderIndex,
  compat: ObsBuildCompat
): string | undefined {
  if (!cc.flags.has("preinstallexpand")) return undefined;
  if (cc.pre && cc.pre.version === index.version && cc.pre.compat === compat) return cc.pre.error;
  let pre: string[] = [];
  let vm: string[] = [];
  let error: string | undefined;
  if (cc.preinstall.length > 0) {
    const r = expand(config, index, cc.preinstall, { compat });
    if (!r.ok) error = `preinstalls: ${r.errors[0]}`;
    else pre = r.packages;
  }
  if (error === undefined && cc.vminstall.length > 0) {
    const preSet = new Set(pre);
    const vmx = new Set(cc.vminstall.map((x) => `-${x}`));
    const pren = cc.preinstall.filter((x) => x.startsWith("-") && !vmx.has(x));
    const r = expand(config, index, [...pre, ...pren, ...cc.vminstall], { compat });
    if (!r.ok) error = `vminstalls: ${r.errors[0]}`;
    else vm = r.packages.filter((x) => !preSet.has(x));
  }
  cc.pre = { version: index.version, compat, pre, vm, ...(error !== undefined ? { error } : {}) };
  return error;
}

function preinstallList(cc: Compiled): string[] {
  return cc.pre && cc.flags.has("preinstallexpand") ? cc.pre.pre : cc.preinstall;
}

/**
 * The Preinstall packages (`Build::get_preinstalls`), expanded first when
 * `ExpandFlags: preinstallexpand` is set.
 */
export function getPreinstalls(config: ExpandConfig, index: ProviderIndex, opts: ExpandOptions = {}): ExpandResult {
  const cc = compile(index, config);
  const err = expandPreinstalls(cc, config, index, opts.compat ?? ObsBuildCompat.Current);
  if (err !== undefined) return { ok: false, errors: [err] };
  return { ok: true, packages: [...preinstallList(cc)] };
}

/** The VMinstall packages (`Build::get_vminstalls`). */
export function getVminstalls(config: ExpandConfig, index: ProviderIndex, opts: ExpandOptions = {}): ExpandResult {
  const cc = compile(index, config);
  const err = expandPreinstalls(cc, config, index, opts.compat ?? ObsBuildCompat.Current);
  if (err !== undefined) return { ok: false, errors: [err] };
  return { ok: true, packages: [...(cc.pre && cc.flags.has("preinstallexpand") ? cc.pre.vm : cc.vminstall)] };
}

/**
 * The scheduler's expanded build dependencies (`Build::get_deps`): BuildRequires plus
 * `Required:`, with `Substitute:` applied to these direct dependencies, the package's own
 * subpackages ignored unless listed in `Keep:`, `IgnoreRebuild:` packages cut, and packages
 * that are only there as Preinstall/Support left out. This set decides blocking, build order
 * and the rebuild meta.
 */
export function getDeps(
  config: ExpandConfig,
  subpacks: readonly string[],
  buildRequires: readonly string[],
  index: ProviderIndex,
  opts: ExpandOptions = {}
): ExpandResult {
  const cc = compile(index, config);
  const compat = opts.compat ?? ObsBuildCompat.Current;
  const cache = opts.cache;
  // An expanded Preinstall list depends on the index in ways the trace does not cover.
  const cacheable = cache !== undefined && !cc.flags.has("preinstallexpand");
  let key = "";
  if (cacheable) {
    key = `getdeps\0${compat}\0${subpacks.join("\0")}\0\0${buildRequires.join("\0")}`;
    const hit = cache.lookup(index, config, key);
    if (hit) {
      cache.hits++;
      opts.onTraced?.(hit.filter);
      if (hit.ids) opts.onIds?.(hit.ids);
      return opts.shareResult ? hit.result : cloneResult(hit.result);
    }
    cache.misses++;
  }
  const err = expandPreinstalls(cc, config, index, compat);
  if (err !== undefined) return { ok: false, errors: [err] };
  const preinstall = preinstallList(cc);
  const ndeps: string[] = [];
  for (const x of buildRequires) if (x.startsWith("-")) ndeps.push(x);
  let extra = cc.required;
  if (cc.keep.length > 0) {
    const keep = new Set([...buildRequires, ...cc.keep, ...preinstall]);
    for (const s of subpacks) if (!keep.has(s)) ndeps.push(`-${s}`);
  } else if (subpacks.length > 0 && extra.length > 0) {
    // "Empty keep" mode: subpackages only drop out of Required.
    const own = new Set(subpacks);
    extra = extra.filter((x) => !own.has(x));
  }
  let deps: string[];
  if (ndeps.length === 0) {
    deps = doSubst(cc, buildRequires.length === 0 ? extra : [...buildRequires, ...extra]);
  } else {
    const nd = new Set(ndeps);
    deps = buildRequires.filter((x) => !nd.has(x));
    deps.push(...extra);
    deps = deps.filter((x) => !nd.has(`-${x}`));
    deps = doSubst(cc, deps).filter((x) => !nd.has(`-${x}`));
  }
  if (compat !== ObsBuildCompat.V20210120) {
    for (const x of cc.ignoreRebuild) ndeps.push(`-${x}`);
    if (cc.flags.has("ignorerebuildforsupport")) for (const x of [...preinstall, ...cc.support]) ndeps.push(`-${x}`);
  }
  const input = ndeps.length === 0 ? deps : [...deps, ...ndeps];
  // getDeps keeps its own cache entry; the inner expansion's would only duplicate it.
  const { result: r, entry, ids: rIds } = expandEntry(config, index, input, opts, !cacheable);
  let out = r;
  let outIds = rIds;
  // Packages that are there only because of Preinstall/Support do not count.
  const bdeps = preinstall === cc.preinstall ? cc.bdeps : new Set([...preinstall, ...cc.support]);
  if (r.ok && bdeps.size > 0) {
    // The names' ids spare a string lookup per package; without them (no cache) the names do.
    const mask = preinstall === cc.preinstall && rIds ? cc.bdepsMask : undefined;
    let direct: Set<string> | undefined;
    const all = r.packages;
    // Marks what stays in place (1 keep, 0 drop), then copies into arrays of the right size.
    const keep = bdepsKeep.length >= all.length ? bdepsKeep : (bdepsKeep = new Uint8Array(all.length * 2));
    let kept = 0;
    for (let i = 0; i < all.length; i++) {
      const x = all[i]!;
      keep[i] = 1;
      if (mask ? rIds![i]! < mask.length && mask[rIds![i]!] === 1 : bdeps.has(x)) {
        direct ??= new Set(deps);
        if (!direct.has(x)) {
          keep[i] = 0;
          continue;
        }
      }
      kept++;
    }
    if (kept < all.length) {
      const packages = new Array<string>(kept);
      // The ids of a fresh expansion are this call's own: compacted in place.
      const keptIds = rIds ? (cacheable ? rIds : new Int32Array(kept)) : undefined;
      for (let i = 0, w = 0; i < all.length; i++) {
        if (keep[i] === 0) continue;
        packages[w] = all[i]!;
        if (keptIds) keptIds[w] = rIds![i]!;
        w++;
      }
      out = { ok: true, packages };
      outIds = keptIds && keptIds.length > kept ? keptIds.subarray(0, kept) : keptIds;
    }
  }
  if (cacheable && entry) {
    const e: CacheEntry = {
      version: entry.version,
      filter: entry.filter,
      // Shared results are the cache's own: no copy needed for the caller.
      result: opts.shareResult ? out : cloneResult(out),
    };
    if (out.ok && outIds) e.ids = outIds;
    cache.set(index, config, key, e);
  }
  if (entry) opts.onTraced?.(entry.filter);
  if (out.ok && outIds) opts.onIds?.(outIds);
  return out;
}

/**
 * The full install set of a build (`Build::get_build` for spec recipes): BuildRequires plus
 * Preinstall, Required and Support, with substitutes and subpackage handling; `prereqs`-style
 * items follow a `--directdepsend--` marker. Returns sorted names.
 */
export function expandBuild(
  config: ExpandConfig,
  subpacks: readonly string[],
  deps: readonly string[],
  index: ProviderIndex,
  opts: ExpandOptions = {}
): ExpandResult {
  const cc = compile(index, config);
  const compat = opts.compat ?? ObsBuildCompat.Current;
  const err = expandPreinstalls(cc, config, index, compat);
  if (err !== undefined) return { ok: false, errors: [err] };
  const preinstall = preinstallList(cc);
  let list = [...deps];
  const ndeps = list.filter((x) => x.startsWith("-"));
  const nd = new Set(ndeps);
  let directDepsEnd: string[] = [];
  if (nd.has("--directdepsend--")) {
    const i = list.indexOf("--directdepsend--");
    directDepsEnd = list.slice(i + 1).filter((x) => !x.startsWith("-"));
    list = list.slice(0, i);
  }
  let extra = [...cc.required, ...cc.support];
  if (cc.keep.length > 0) {
    const keep = new Set([...list, ...cc.keep, ...preinstall]);
    for (const s of subpacks) {
      if (keep.has(s)) continue;
      ndeps.push(`-${s}`);
      nd.add(`-${s}`);
    }
  } else {
    const own = new Set(subpacks);
    extra = extra.filter((x) => !own.has(x));
  }
  list = list.filter((x) => !nd.has(x));
  list.push(...preinstall, ...extra);
  list = list.filter((x) => !nd.has(`-${x}`));
  list = doSubst(cc, list).filter((x) => !nd.has(`-${x}`));
  if (directDepsEnd.length > 0) {
    directDepsEnd = doSubst(cc, directDepsEnd).filter((x) => !nd.has(`-${x}`));
    if (directDepsEnd.length > 0) directDepsEnd.unshift("--directdepsend--");
  }
  return expand(config, index, [...list, ...ndeps, ...directDepsEnd], opts);
}

/**
 * A job's install set with the scheduler's per-package flags, as `BuildJob::Package::create`
 * assembles it: Preinstall, VMinstall, the {@link getDeps} packages and the {@link expandBuild}
 * packages, each marked preinstall/vminstall/runscripts, and `notmeta` when it is not part of
 * the getDeps set. Fails like the scheduler does when expansion fails or a Preinstall/VMinstall
 * package is missing from the pool.
 */
export function getBuild(
  config: ExpandConfig,
  subpacks: readonly string[],
  buildRequires: readonly string[],
  index: ProviderIndex,
  opts: BuildOptions = {}
): BuildResult {
  const cc = compile(index, config);
  const eopts: ExpandOptions = {};
  if (opts.compat) eopts.compat = opts.compat;
  if (opts.cache) eopts.cache = opts.cache;
  let edeps = opts.edeps;
  if (!edeps) {
    const r = getDeps(config, subpacks, buildRequires, index, eopts);
    if (!r.ok) return r;
    edeps = r.packages;
  }
  const input = [...buildRequires];
  const prereqs = (opts.prereqs ?? []).filter((x) => !x.startsWith("/") || cc.fileProvides.has(x));
  if (prereqs.length > 0) input.push("--directdepsend--", ...prereqs);
  const b = expandBuild(config, subpacks, input, index, eopts);
  if (!b.ok) return b;
  const pre = getPreinstalls(config, index, eopts);
  if (!pre.ok) return pre;
  const vm = getVminstalls(config, index, eopts);
  if (!vm.ok) return vm;
  const missing = unify([...pre.packages, ...vm.packages].filter((x) => !index.has(x))).sort();
  if (missing.length > 0) return { ok: false, errors: [`missing pre/vminstalls: ${missing.join(", ")}`] };
  const preSet = new Set(pre.packages);
  const vmSet = new Set(vm.packages);
  const runscripts = new Set(cc.runscripts);
  const meta = new Set(edeps);
  const all = unify([...pre.packages, ...vm.packages, ...edeps, ...b.packages]);
  return {
    ok: true,
    packages: all.map((name) => ({
      name,
      preinstall: preSet.has(name),
      vminstall: vmSet.has(name),
      runscripts: runscripts.has(name),
      notmeta: !meta.has(name),
    })),
  };
}

/** The Runscripts packages (`Build::get_runscripts`). */
export function getRunscripts(config: ExpandConfig): string[] {
  return unify(config.runscripts ?? []);
}
