/**
 * Dependency expansion as the scheduler uses it: over the layered pools of a repository path,
 * which build dependencies a package gets (OBS `get_deps`, the "edeps" that decide blocking,
 * ordering and rebuilds) and which packages its build root gets (OBS `get_build`).
 *
 * This module is the scheduler's one doorway to expansion, so the algorithm behind it can be
 * exchanged without touching the checker.
 */
import type { BuildConfig } from "../common/prjconf.ts";
import type { PoolBinary } from "../common/model.ts";
import { parseDep, provideMatches, type Dep } from "../common/rpm-version.ts";

export interface PoolLayer {
  project: string;
  repository: string;
  binaries: readonly PoolBinary[];
}

export type Expansion = { ok: true; packages: string[] } | { ok: false; error: string };

export interface LocatedBinary {
  binary: PoolBinary;
  project: string;
  repository: string;
  /** 0 for the repository itself, higher along its path. */
  layer: number;
}

export class Expander {
  readonly #byName = new Map<string, LocatedBinary>();
  readonly #providers = new Map<string, { provide: Dep; name: string }[]>();
  readonly #config: BuildConfig;

  constructor(layers: readonly PoolLayer[], config: BuildConfig) {
    this.#config = config;
    layers.forEach((l, layer) => {
      for (const b of l.binaries) {
        // The first repository in the path that has a name wins it.
        if (this.#byName.has(b.name)) continue;
        this.#byName.set(b.name, { binary: b, project: l.project, repository: l.repository, layer });
      }
    });
    for (const [name, lb] of this.#byName) {
      const b = lb.binary;
      const self = `${b.name} = ${b.epoch ? `${b.epoch}:` : ""}${b.version}-${b.release}`;
      for (const p of [self, ...b.provides]) {
        const d = parseDep(p);
        let list = this.#providers.get(d.name);
        if (!list) this.#providers.set(d.name, (list = []));
        if (!list.some((x) => x.name === name && x.provide.op === d.op)) list.push({ provide: d, name });
      }
    }
  }

  binary(name: string): LocatedBinary | undefined {
    return this.#byName.get(name);
  }

  providers(dep: string): string[] {
    const want = parseDep(dep);
    const out = new Set<string>();
    for (const p of this.#providers.get(want.name) ?? []) if (provideMatches(p.provide, want)) out.add(p.name);
    return [...out].sort();
  }

  /** Expands requirements transitively; ambiguity is an error unless Prefer: resolves it. */
  expand(deps: readonly string[], ignoreNames: ReadonlySet<string> = new Set()): Expansion {
    const prefer = this.#config.prefer.filter((p) => !p.startsWith("-"));
    const ignore = new Set(this.#config.ignore.filter((i) => !i.includes(":")));
    const installed = new Set<string>();
    const errors: string[] = [];
    const todo: { dep: string; by?: string }[] = deps.map((dep) => ({ dep }));
    while (todo.length) {
      const { dep, by } = todo.shift()!;
      const d = parseDep(dep);
      if (ignore.has(d.name) || ignoreNames.has(d.name) || d.name.startsWith("rpmlib(") || d.name.startsWith("/"))
        continue;
      const provs = this.providers(dep);
      if (provs.some((p) => installed.has(p))) continue;
      const needed = by ? ` needed by ${by}` : "";
      if (provs.length === 0) {
        errors.push(`nothing provides ${dep}${needed}`);
        continue;
      }
      let pick = provs.length === 1 ? provs[0] : undefined;
      if (!pick) {
        pick = prefer.find((p) => provs.includes(p));
        if (!pick && provs.includes(d.name)) pick = d.name;
      }
      if (!pick) {
        errors.push(`have choice for ${dep}${needed}: ${provs.join(" ")}`);
        continue;
      }
      installed.add(pick);
      for (const r of this.#byName.get(pick)!.binary.requires) todo.push({ dep: r, by: pick });
    }
    if (errors.length) return { ok: false, error: errors.join(", ") };
    return { ok: true, packages: [...installed].sort() };
  }

  /** The build dependencies that count for blocking, order and rebuilds (OBS get_deps). */
  edeps(buildRequires: readonly string[], subpacks: readonly string[]): Expansion {
    const keep = new Set(this.#config.keep);
    const own = new Set(subpacks.filter((s) => !keep.has(s)));
    const wanted = [...buildRequires, ...this.#config.required].filter((d) => !own.has(parseDep(d).name));
    const r = this.expand(wanted, own);
    if (!r.ok) return r;
    const supportOnly = new Set([...this.#config.support, ...this.#config.preinstall]);
    const direct = new Set(wanted.map((d) => parseDep(d).name));
    return { ok: true, packages: r.packages.filter((p) => !supportOnly.has(p) || direct.has(p)) };
  }

  /** The build root: edeps plus Preinstall and Support packages, marked for the worker. */
  installSet(edeps: readonly string[]): Expansion & { notmeta?: Set<string>; preinstall?: Set<string> } {
    const extra = [...this.#config.preinstall, ...this.#config.support];
    const r = this.expand([...edeps, ...extra]);
    if (!r.ok) return r;
    const inMeta = new Set(edeps);
    const notmeta = new Set(r.packages.filter((p) => !inMeta.has(p)));
    return { ...r, notmeta, preinstall: new Set(this.#config.preinstall) };
  }
}
