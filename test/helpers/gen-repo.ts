/**
 * Deterministic (seeded) random repositories for expansion tests: layered pools with versioned
 * and virtual provides, `a | b` alternatives, rich dependencies, conflicts, obsoletes,
 * recommends, file dependencies, and a project config (Prefer/Ignore/Conflict/Substitute/…)
 * that resolves some of the choices. Also writes them in the formats obs-build's `expanddeps`
 * reads, so the same data can be expanded by both.
 */
import type { BinaryPackage } from "../../actors/scheduler/provider-index.ts";
import type { ExpandConfig } from "../../actors/scheduler/expand.ts";

/** A small, fast, seedable PRNG (mulberry32). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  /** `k` distinct elements (fewer when the list is shorter). */
  sample<T>(list: readonly T[], k: number): T[] {
    const copy = [...list];
    const out: T[] = [];
    while (out.length < k && copy.length > 0) out.push(copy.splice(this.int(copy.length), 1)[0]!);
    return out;
  }
}

/** Knobs of {@link generateRepo}. */
export interface GenRepoOptions {
  seed: number;
  /** Distinct binary names. @default 300 */
  names?: number;
  /** Repository layers (the first wins). @default 2 */
  layers?: number;
  /** Virtual capabilities provided by several packages. @default 40 */
  capabilities?: number;
  /** Use FileProvides (file dependencies become visible). @default random */
  fileProvides?: boolean;
  /** Emit rich dependencies. @default true */
  rich?: boolean;
  /** Set `Keep:` (switches subpackage handling from "empty keep" mode). @default false */
  keep?: boolean;
}

/** A generated repository path with its config. */
export interface GeneratedRepo {
  layers: BinaryPackage[][];
  config: ExpandConfig;
  /** All binary names (any layer). */
  names: string[];
  /** Virtual capability names. */
  capabilities: string[];
  /** File paths used in dependencies. */
  files: string[];
}

const VERSIONS = ["0.9", "1.0", "1.1", "1.2", "2.0", "2.0.1", "3.0~rc1", "3.0"];

function depOn(rng: Rng, target: string, versions: ReadonlyMap<string, string>): string {
  const v = versions.get(target);
  if (v === undefined || !rng.chance(0.25)) return target;
  // Mostly satisfiable (the target may come from another layer with another version).
  if (rng.chance(0.7)) return `${target} >= ${rng.pick(["0.9", "1.0"])}`;
  const op = rng.pick([">=", "<", "=", ">", "<="]);
  const ver = rng.chance(0.7) ? v : rng.pick(VERSIONS);
  return `${target} ${op} ${ver}`;
}

/** Generates a layered repository and a config, deterministically from `seed`. */
export function generateRepo(opts: GenRepoOptions): GeneratedRepo {
  const rng = new Rng(opts.seed);
  const nNames = opts.names ?? 300;
  const nLayers = opts.layers ?? 2;
  const nCaps = opts.capabilities ?? 40;
  const useFiles = opts.fileProvides ?? rng.chance(0.3);
  const useRich = opts.rich ?? true;
  const names = Array.from({ length: nNames }, (_, i) => `pkg${i}`);
  const caps = Array.from({ length: nCaps }, (_, i) => `cap${i}`);
  const files = Array.from({ length: 8 }, (_, i) => `/usr/bin/tool${i}`);
  // The arch of a name never changes between layers (expanddeps ranks arches before layers).
  const archOf = (n: string): string => (n.length % 3 === 0 ? "noarch" : "x86_64");

  // Capability providers: 1–4 packages each; some capabilities versioned.
  const capProviders = new Map<string, string[]>();
  for (const c of caps) capProviders.set(c, rng.sample(names, 1 + rng.int(4)));

  const layers: BinaryPackage[][] = [];
  for (let l = 0; l < nLayers; l++) {
    // Layer 0 (the project) has a part of the names; the last layer (the base) has all of them.
    const inLayer = l === nLayers - 1 ? names : names.filter(() => rng.chance(0.3));
    const versions = new Map<string, string>();
    for (const n of inLayer) versions.set(n, rng.pick(VERSIONS));
    const pkgs: BinaryPackage[] = [];
    for (const n of inLayer) {
      const version = versions.get(n)!;
      const release = String(1 + rng.int(3));
      const epoch = rng.chance(0.1) ? 1 : undefined;
      const provides: string[] = [];
      for (const [c, ps] of capProviders) {
        if (!ps.includes(n)) continue;
        provides.push(rng.chance(0.4) ? `${c} = ${rng.pick(VERSIONS)}` : c);
      }
      if (useFiles && rng.chance(0.05)) provides.push(rng.pick(files));
      const requires: string[] = [];
      const idx = names.indexOf(n);
      // Base packages (the tail) only require other base packages, so that Preinstall and
      // Required do not make every expansion fail.
      const isBase = idx >= names.length - Math.max(10, nNames >> 4);
      const nReq = isBase ? rng.int(2) : rng.int(3);
      // Mostly requirements on later names, so closures stay small enough to succeed often;
      // a few go backwards and make cycles.
      const later = idx + 1 < names.length && !rng.chance(0.05) ? names.slice(idx + 1) : names;
      for (let k = 0; k < nReq; k++) {
        if (isBase) {
          if (idx + 1 < names.length) requires.push(rng.pick(names.slice(idx + 1)));
          continue;
        }
        const x = rng.next();
        if (x < 0.45) requires.push(depOn(rng, rng.pick(later), versions));
        else if (x < 0.75) {
          const c = rng.pick(caps);
          requires.push(rng.chance(0.2) ? `${c} >= ${rng.pick(VERSIONS)}` : c);
        } else if (x < 0.82) requires.push(`${rng.pick(caps)} | ${rng.pick(names)}`);
        else if (x < 0.88) requires.push(rng.pick(files));
        else if (x < 0.935 && useRich) {
          const op = rng.pick(["or", "and", "if", "unless", "with", "without"]);
          requires.push(`(${rng.pick([...names, ...caps])} ${op} ${rng.pick([...names, ...caps])})`);
        } else if (x < 0.94) requires.push(`missing${rng.int(20)}`);
        else requires.push(rng.pick(later));
      }
      const conflicts = rng.chance(0.06) ? [depOn(rng, rng.pick(names), versions)] : [];
      if (useRich && rng.chance(0.01)) conflicts.push(`(${rng.pick(names)} and ${rng.pick(names)})`);
      const obsoletes = rng.chance(0.04) ? [rng.chance(0.5) ? rng.pick(names) : `${rng.pick(names)} < 2.0`] : [];
      const recommends = rng.chance(0.15) ? [rng.pick([...names, ...caps])] : [];
      pkgs.push({
        name: n,
        ...(epoch !== undefined ? { epoch } : {}),
        version,
        release,
        arch: archOf(n),
        provides,
        requires: [...new Set(requires)],
        conflicts,
        obsoletes,
        recommends,
      });
    }
    layers.push(pkgs);
  }

  // A config that resolves some choices, cuts some edges and adds some conflicts.
  const prefer: string[] = [];
  for (const c of caps) {
    const ps = capProviders.get(c)!;
    if (ps.length < 2 || !rng.chance(0.85)) continue;
    const x = rng.next();
    if (x < 0.6) prefer.push(ps[0]!);
    else if (x < 0.8) prefer.push(`-${ps[1]!}`);
    else prefer.push(`${rng.pick(names)}:${ps[0]!}`);
  }
  const ignore: string[] = [];
  for (let i = 0; i < 3; i++) {
    const x = rng.next();
    if (x < 0.4) ignore.push(rng.pick(caps));
    else if (x < 0.8) ignore.push(`${rng.pick(names)}:${rng.pick([...names, ...caps])}`);
    else ignore.push(`${rng.pick(names)}:${rng.pick(names)},${rng.pick(caps)}`);
  }
  const conflict = rng.chance(0.5) ? [`${rng.pick(names)}:${rng.pick(names)}`] : [];
  const substitute: Record<string, string[]> = {};
  if (rng.chance(0.5)) substitute[`sub${rng.int(3)}`] = rng.sample(names, 1 + rng.int(2));
  if (rng.chance(0.3)) {
    const n = rng.pick(names);
    substitute[n] = [n, rng.pick(names)];
  }
  const fileProvides: Record<string, string[]> = {};
  if (useFiles) for (const f of files) if (rng.chance(0.7)) fileProvides[f] = rng.sample(names, 1 + rng.int(2));
  // Base packages sit at the end of the list, where closures are small.
  const base = names.slice(-Math.max(10, nNames >> 4));
  const config: ExpandConfig = {
    preinstall: rng.sample(base, rng.int(3)),
    vminstall: [],
    required: rng.sample(base, rng.int(2)),
    support: rng.sample(base, rng.int(2)),
    keep: opts.keep ? rng.sample(names, 1 + rng.int(2)) : [],
    runscripts: [],
    prefer,
    ignore,
    conflict,
    ignoreRebuild: [],
    expandFlags: [],
    substitute,
    fileProvides,
    binaryType: "rpm",
  };
  return { layers, config, names, capabilities: caps, files };
}

/** A random BuildRequires list for `repo` (names, capabilities, versions, negatives, …). */
export function randomRequest(repo: GeneratedRepo, rng: Rng): string[] {
  const out: string[] = [];
  const n = 1 + rng.int(5);
  for (let i = 0; i < n; i++) {
    const x = rng.next();
    if (x < 0.5) out.push(rng.pick(repo.names));
    else if (x < 0.65) out.push(rng.pick(repo.capabilities));
    else if (x < 0.72) out.push(`${rng.pick(repo.names)} >= ${rng.pick(VERSIONS)}`);
    else if (x < 0.77) out.push(`-${rng.pick(repo.names)}`);
    else if (x < 0.8) out.push(`!${rng.pick(repo.names)}`);
    else if (x < 0.84) out.push(`(${rng.pick(repo.names)} or ${rng.pick(repo.capabilities)})`);
    else if (x < 0.87) out.push(`${rng.pick(repo.capabilities)} | ${rng.pick(repo.names)}`);
    else if (x < 0.9) out.push(`sub${rng.int(3)}`);
    else if (x < 0.92) out.push(rng.pick(repo.files));
    else if (x < 0.93) out.push(`nosuch${rng.int(5)}`);
    else out.push(rng.pick(repo.names));
  }
  return [...new Set(out)];
}

// expanddeps glues a token starting with "(" to the plain dependency before it (Debian's
// "foo (>= 1)" syntax), so rich dependencies go first on a line.
function depLine(deps: readonly string[]): string {
  const rich = deps.filter((d) => d.startsWith("("));
  return [...rich, ...deps.filter((d) => !d.startsWith("("))].join(" ");
}

/** A spec-file build: its name, subpackages, BuildRequires and PreReq. */
export interface RandomSpec {
  name: string;
  subpacks: string[];
  buildRequires: string[];
  prereqs: string[];
}

/** A random spec build whose subpackages are binaries of the repository. */
export function randomSpec(repo: GeneratedRepo, rng: Rng): RandomSpec {
  const [name, ...more] = rng.sample(repo.names, 1 + rng.int(3));
  // Spec files have no negatives, conflicts or Debian-style "a | b" alternatives.
  const buildRequires = randomRequest(repo, rng).filter((d) => !/^[-!]/.test(d) && !d.includes("|"));
  // Building against one's own subpackage is what Keep: is about.
  if (rng.chance(0.5) && more.length > 0) buildRequires.push(more[0]!);
  const prereqs = rng.chance(0.3) ? [rng.pick(repo.names)] : [];
  return { name: name!, subpacks: [name!, ...more], buildRequires: [...new Set(buildRequires)], prereqs };
}

/** The spec as a recipe file obs-build can parse. */
export function toSpec(s: RandomSpec): string {
  const lines = [`Name: ${s.name}`, "Version: 1.0", "Release: 1", "Summary: s", "License: MIT"];
  for (const d of s.buildRequires) lines.push(`BuildRequires: ${d}`);
  for (const d of s.prereqs) lines.push(`PreReq: ${d}`);
  lines.push("", "%description", "s");
  for (const sub of s.subpacks.slice(1))
    lines.push("", `%package -n ${sub}`, "Summary: s", "", `%description -n ${sub}`, "s");
  return `${lines.join("\n")}\n`;
}

function evrOf(p: BinaryPackage): string {
  const e = p.epoch !== undefined && Number(p.epoch) !== 0 ? `${p.epoch}:` : "";
  return `${e}${p.version}-${p.release}`;
}

/**
 * The repository in the dependency-file format obs-build's `expanddeps --depfile` reads
 * (`P:`/`R:`/`C:`/`O:`/`r:` lines per package, `I:` last, `D:` closing each repository).
 */
export function toDepfile(layers: readonly (readonly BinaryPackage[])[]): string {
  const lines: string[] = [];
  for (const pkgs of layers) {
    for (const p of pkgs) {
      const id = `${p.name}.${p.arch}-1/1/1:`;
      const self = `${p.name} = ${evrOf(p)}`;
      const provides = p.provides.includes(self) ? p.provides : [...p.provides, self];
      lines.push(`F:${id} ${p.name}-${p.version}-${p.release}.${p.arch}.rpm`);
      lines.push(`P:${id} ${provides.join(" ")}`);
      lines.push(`R:${id} ${depLine(p.requires)}`);
      if (p.conflicts.length > 0) lines.push(`C:${id} ${depLine(p.conflicts)}`);
      if (p.obsoletes.length > 0) lines.push(`O:${id} ${depLine(p.obsoletes)}`);
      if (p.recommends && p.recommends.length > 0) lines.push(`r:${id} ${depLine(p.recommends)}`);
      lines.push(`I:${id} ${p.name}-${evrOf(p)} 1`);
    }
    lines.push("D:");
  }
  return `${lines.join("\n")}\n`;
}

/** The config as a project config file (`Build::read_config` syntax). */
export function toPrjconf(c: ExpandConfig): string {
  const lines = ["Type: spec", "BinaryType: rpm"];
  const list = (k: string, v: readonly string[]): void => {
    if (v.length > 0) lines.push(`${k}: ${v.join(" ")}`);
  };
  list("Preinstall", c.preinstall);
  list("VMinstall", c.vminstall);
  list("Required", c.required);
  list("Support", c.support);
  list("Keep", c.keep);
  list("Runscripts", c.runscripts);
  list("Prefer", c.prefer);
  list("Ignore", c.ignore);
  list("Conflict", c.conflict);
  list("ExpandFlags", c.expandFlags);
  for (const [k, v] of Object.entries(c.substitute)) lines.push(`Substitute: ${k} ${v.join(" ")}`);
  for (const [k, v] of Object.entries(c.fileProvides)) lines.push(`FileProvides: ${k} ${v.join(" ")}`);
  return `${lines.join("\n")}\n`;
}
