/**
 * The check of one repository/arch (OBS `checkpkgs`): for every package, in build order, its code
 * and details, and which packages must build and why. A pure function of its input, so the
 * incremental scheduler and a from-scratch recomputation can be compared, and so it is testable
 * without NATS.
 *
 * Order of decisions per package (obs-backend.md §2.1): excluded, locked, disabled, broken,
 * blocked (source not ready), unresolvable, blocked (a build dependency not ready), then the
 * rebuild decision (§2.2): new build, source change, meta change; otherwise succeeded/failed.
 */
import type { BuildConfig } from "../common/prjconf.ts";
import { depMetaLines, genMeta } from "../common/build-meta.ts";
import { PackageCode, RepoCode, type BuildDep, type BuildResultCode } from "../common/model.ts";
import type { PackageBuildInfo } from "../source/protocol.ts";
import { Expander, type PoolLayer } from "./expansion.ts";
import type { BuildReason } from "./protocol.ts";

/** The last build of a package as the scheduler remembers it. */
export interface LastBuild {
  code: BuildResultCode;
  srcmd5: string;
  versrel: string;
  bcnt: number;
  /** Lines of the meta the build was made from; undefined when it has none. */
  meta?: readonly string[];
}

export interface CheckInput {
  project: string;
  repository: string;
  arch: string;
  rebuild: "transitive" | "direct" | "local";
  block: "all" | "local" | "never";
  config: BuildConfig;
  packages: readonly PackageBuildInfo[];
  /** Layer 0 is this repository's own pool, then its path in order. */
  layers: readonly PoolLayer[];
  results: ReadonlyMap<string, LastBuild>;
  /** Packages with a queued or running job, and that job's srcmd5. */
  jobs: ReadonlyMap<string, { srcmd5: string; details?: string }>;
  /** Not-ready packages of other repositories in the path, keyed `project/repository`. */
  notReadyElsewhere: ReadonlyMap<string, ReadonlySet<string>>;
  /** Meta lines of a producing build, by its meta blob id. */
  metaOf: (sha256: string) => readonly string[] | undefined;
  /** Packages whose last meta is to be ignored (`kiln rebuild`). */
  forceRebuild?: ReadonlySet<string>;
}

export interface PackageState {
  code: PackageCode;
  details: string;
}

export interface NeededBuild {
  package: string;
  reason: BuildReason;
  bdeps: BuildDep[];
  meta: string[];
  needed: number;
}

export interface CheckOutput {
  states: Map<string, PackageState>;
  builds: NeededBuild[];
  notReady: Set<string>;
  repoCode: RepoCode;
  /** package → local source packages it depends on (for ordering and `builddepinfo`). */
  pkgdeps: Map<string, string[]>;
  cycles: string[][];
  /** package → the edeps expansion (for `buildinfo`), or the error. */
  expansions: Map<string, { ok: true; packages: string[] } | { ok: false; error: string }>;
}

const keyOf = (p: string, r: string): string => `${p}/${r}`;

/** Strongly connected components (Tarjan), each sorted, in reverse topological order. */
export function sccs(nodes: readonly string[], edges: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  const strong = (v: string): void => {
    // Iterative to survive deep dependency chains.
    const work: { v: string; i: number }[] = [{ v, i: 0 }];
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    while (work.length) {
      const top = work[work.length - 1]!;
      const succ = edges.get(top.v) ?? [];
      if (top.i < succ.length) {
        const w = succ[top.i++]!;
        if (!idx.has(w)) {
          idx.set(w, index);
          low.set(w, index++);
          stack.push(w);
          onStack.add(w);
          work.push({ v: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(top.v, Math.min(low.get(top.v)!, idx.get(w)!));
        }
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
  };
  for (const n of nodes) if (!idx.has(n)) strong(n);
  return out;
}

function excludedByBuildFlags(config: BuildConfig, pkg: string): string | undefined {
  const only = config.buildFlags.filter((f) => f.startsWith("onlybuild:")).map((f) => f.slice(10));
  if (only.length && !only.includes(pkg)) return "package whitelist";
  if (config.buildFlags.some((f) => f === `excludebuild:${pkg}`)) return "package blacklist";
  return undefined;
}

/** The release number from the prjconf template (default `<CI_CNT>.<B_CNT>`). */
export function releaseOf(config: BuildConfig, rev: number, bcnt: number): string {
  const tpl = config.release && config.release.length ? config.release : "<CI_CNT>.<B_CNT>";
  return tpl.replace(/<CI_CNT>/g, String(rev)).replace(/<B_CNT>/g, String(bcnt));
}

/** Differences between two metas, as OBS's `packagechange` entries (first level only). */
export function metaChanges(oldMeta: readonly string[], newMeta: readonly string[]): BuildReason["packagechange"] {
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
  // The direct dependencies first: they are what a user recognises.
  return out.sort(
    (x, y) => x.key.split("/").length - y.key.split("/").length || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)
  );
}

export function checkRepository(input: CheckInput): CheckOutput {
  const expander = new Expander(input.layers, input.config);
  const states = new Map<string, PackageState>();
  const builds: NeededBuild[] = [];
  const notReady = new Set<string>();
  const expansions: CheckOutput["expansions"] = new Map();
  const byName = new Map(input.packages.map((p) => [p.package, p]));

  // Binary name → local source package: declared subpackages first, then this pool's owners.
  const dep2src = new Map<string, string>();
  for (const b of input.layers[0]?.binaries ?? []) dep2src.set(b.name, b.package);
  for (const p of input.packages) for (const s of p.subpacks) dep2src.set(s, p.package);

  // Expand every buildable package's edeps up front; they decide the order.
  const pkgdeps = new Map<string, string[]>();
  for (const p of input.packages) {
    if (p.error) continue;
    const e = expander.edeps(p.buildRequires, p.subpacks);
    expansions.set(p.package, e);
    if (!e.ok) continue;
    const deps = new Set<string>();
    for (const bin of e.packages) {
      const lb = expander.binary(bin);
      if (lb && lb.layer !== 0) continue;
      const src = dep2src.get(bin);
      if (src && src !== p.package && byName.has(src)) deps.add(src);
    }
    pkgdeps.set(p.package, [...deps].sort());
  }
  const names = input.packages.map((p) => p.package).sort();
  const comps = sccs(names, pkgdeps);
  const compOf = new Map<string, number>();
  comps.forEach((c, i) => c.forEach((n) => compOf.set(n, i)));
  const cycles = comps.filter((c) => c.length > 1);
  // Tarjan yields dependencies before dependents: that is the build order.
  const order = comps.flat();

  const needed = new Map<string, number>();
  for (const deps of pkgdeps.values()) for (const d of deps) needed.set(d, (needed.get(d) ?? 0) + 1);

  for (const pkg of order) {
    const p = byName.get(pkg)!;
    const set = (code: PackageCode, details = ""): void => void states.set(pkg, { code, details });
    const bl = excludedByBuildFlags(input.config, pkg);
    if (p.errorCode === "excluded" || bl) {
      set(PackageCode.Excluded, bl ?? "");
      continue;
    }
    if (p.flags.lock) {
      set(PackageCode.Locked);
      continue;
    }
    if (!p.flags.build || p.errorCode === "disabled") {
      set(PackageCode.Disabled);
      continue;
    }
    if (p.errorCode === "broken") {
      set(PackageCode.Broken, p.error ?? "");
      continue;
    }
    if (p.errorCode === "blocked") {
      set(PackageCode.Blocked, p.error ?? "");
      notReady.add(pkg);
      continue;
    }
    const e = expansions.get(pkg)!;
    if (!e.ok) {
      set(PackageCode.Unresolvable, e.error);
      continue;
    }
    if (input.block !== "never") {
      const blockers: string[] = [];
      for (const bin of e.packages) {
        const lb = expander.binary(bin);
        if (!lb) continue;
        if (lb.layer === 0 || dep2src.has(bin)) {
          const src = dep2src.get(bin);
          if (
            src &&
            src !== pkg &&
            notReady.has(src) &&
            compOf.get(src) !== compOf.get(pkg) &&
            !blockers.includes(src)
          ) {
            blockers.push(src);
          }
        } else if (input.block !== "local") {
          const others = input.notReadyElsewhere.get(keyOf(lb.project, lb.repository));
          const who = `${lb.project}/${lb.repository}/${lb.binary.package}`;
          if (others?.has(lb.binary.package) && !blockers.includes(who)) blockers.push(who);
        }
      }
      if (blockers.length) {
        set(PackageCode.Blocked, blockers.slice(0, 10).join(", "));
        if (p.flags.useforbuild) notReady.add(pkg);
        continue;
      }
    }
    // The rebuild decision.
    const job = input.jobs.get(pkg);
    if (job && job.srcmd5 === p.verifymd5) {
      set(PackageCode.Scheduled, job.details ?? "");
      if (p.flags.useforbuild) notReady.add(pkg);
      continue;
    }
    const last = input.forceRebuild?.has(pkg) ? undefined : input.results.get(pkg);
    const meta = expectedMeta(p, e.packages, expander, input.metaOf);
    let reason: BuildReason | undefined;
    if (!last || !last.meta) reason = { explain: "new build", time: 0 };
    else if (last.srcmd5 !== p.verifymd5) reason = { explain: "source change", time: 0, oldsource: last.srcmd5 };
    else if (input.rebuild !== "local") {
      const strip = (m: readonly string[]): string[] =>
        input.rebuild === "direct" ? m.filter((l) => !l.includes("/")) : [...m];
      const want = strip(meta);
      const had = strip(last.meta);
      if (want.join("\n") !== had.join("\n")) {
        reason = { explain: "meta change", time: 0, packagechange: metaChanges(had, want) };
      }
    }
    if (!reason) {
      set(last!.code === "failed" ? PackageCode.Failed : PackageCode.Succeeded);
      continue;
    }
    const inst = expander.installSet(e.packages);
    if (!inst.ok) {
      set(PackageCode.Unresolvable, inst.error);
      continue;
    }
    const bdeps: BuildDep[] = inst.packages.map((name) => {
      const lb = expander.binary(name)!;
      const b = lb.binary;
      const d: BuildDep = {
        name,
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
      if (b.epoch) d.epoch = b.epoch;
      if (b.metaSha256) d.metaSha256 = b.metaSha256;
      if (inst.notmeta?.has(name)) d.notmeta = true;
      if (inst.preinstall?.has(name)) d.preinstall = true;
      return d;
    });
    builds.push({ package: pkg, reason, bdeps, meta, needed: needed.get(pkg) ?? 0 });
    set(PackageCode.Scheduled, "");
    if (p.flags.useforbuild) notReady.add(pkg);
  }

  let repoCode: RepoCode = RepoCode.Finished;
  const codes = [...states.values()].map((s) => s.code);
  if (codes.includes(PackageCode.Scheduled)) repoCode = RepoCode.Building;
  else if (codes.includes(PackageCode.Blocked)) repoCode = RepoCode.Blocked;
  return { states, builds, notReady, repoCode, pkgdeps, cycles, expansions };
}

/** The meta a build of `p` would get now (what the worker will write after building it). */
export function expectedMeta(
  p: PackageBuildInfo,
  edeps: readonly string[],
  expander: Expander,
  metaOf: (sha256: string) => readonly string[] | undefined
): string[] {
  const lines: string[] = [];
  for (const name of edeps) {
    const lb = expander.binary(name);
    if (!lb) continue;
    const producer = lb.binary.metaSha256 ? metaOf(lb.binary.metaSha256) : undefined;
    lines.push(...depMetaLines(name, lb.binary.hdrmd5, producer, p.package));
  }
  return genMeta(`${p.verifymd5}  ${p.package}`, p.subpacks, lines);
}
