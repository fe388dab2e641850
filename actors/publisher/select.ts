/**
 * Which binaries a published repository holds: the publishing counterpart of the pool rule
 * (obs-backend.md §8, OBS `PublishRepo::prpfinished` and `bs_publish`).
 *
 * Per arch:
 * 1. Packages are visited in OBS's package order ({@link orderPackages}).
 * 2. A package with `publish` enabled offers its current binaries: every local binary of its
 *    last successful build, except source and debug packages when its `sourceaccess` is
 *    disabled. A package with `publish` disabled offers what it had in the arch's previous
 *    publication, so that a disabled package stays as it was published (the flag "stages"
 *    releases, seed 003).
 * 3. The first package that offers a binary of a given name and arch wins it; within one
 *    package the higher epoch/version/release wins.
 *
 * Across archs, the trees are merged in the repository's arch order: where two archs publish
 * the same path (a `noarch` package built on each), the first arch wins.
 */
import { createHash } from "node:crypto";
import { rpmvercmp } from "../common/rpm-version.ts";
import { orderPackages } from "../repo/pool.ts";
import type { PublishPackage } from "../repo/protocol.ts";
import type { PublishedArch, SelectedBinary } from "./protocol.ts";

const DEBUG_NAME = /-debug(?:info|source)(?:-|$)/;

function codeUnitCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Higher epoch, then version, then release. */
function newer(a: SelectedBinary, b: SelectedBinary): boolean {
  const ea = a.epoch ?? 0;
  const eb = b.epoch ?? 0;
  if (ea !== eb) return ea > eb;
  const v = rpmvercmp(a.version, b.version);
  if (v !== 0) return v > 0;
  return rpmvercmp(a.release, b.release) > 0;
}

/** The directory of a binary in the published tree: its rpm arch (`src` for source packages). */
export function publishedPath(b: { arch: string; filename: string; isSource: boolean }): string {
  const dir = b.isSource ? (b.arch === "nosrc" ? "nosrc" : "src") : b.arch;
  return `${dir}/${b.filename}`;
}

/**
 * Selects one arch's contribution. `previous` is the arch's last publication (for packages
 * whose `publish` is disabled now).
 */
export function selectArch(
  packages: readonly PublishPackage[],
  previous: readonly SelectedBinary[] | undefined
): Pick<PublishedArch, "binaries" | "conflicts"> {
  const byPackage = new Map(packages.map((p) => [p.package, p]));
  const before = new Map<string, SelectedBinary[]>();
  for (const b of previous ?? []) {
    const list = before.get(b.package) ?? [];
    list.push(b);
    before.set(b.package, list);
  }
  const chosen = new Map<string, SelectedBinary>();
  const conflicts = new Map<string, { key: string; winner: string; losers: string[] }>();
  for (const pkg of orderPackages(byPackage.keys())) {
    const p = byPackage.get(pkg)!;
    let offer: SelectedBinary[];
    if (p.publish) {
      offer = p.binaries
        .filter((b) => p.sourceaccess || !(b.isSource || DEBUG_NAME.test(b.name)))
        .map((b) => ({ ...b, package: pkg, path: publishedPath(b) }));
    } else {
      offer = before.get(pkg) ?? [];
    }
    const mine = new Map<string, SelectedBinary>();
    for (const b of [...offer].sort((x, y) => codeUnitCompare(x.filename, y.filename))) {
      const key = `${b.name}.${b.isSource ? "src" : b.arch}`;
      const have = mine.get(key);
      if (!have || newer(b, have)) mine.set(key, b);
    }
    for (const [key, b] of mine) {
      const winner = chosen.get(key);
      if (!winner) {
        chosen.set(key, b);
        continue;
      }
      const c = conflicts.get(key) ?? { key, winner: winner.package, losers: [] };
      c.losers.push(pkg);
      conflicts.set(key, c);
    }
  }
  return {
    binaries: [...chosen.values()].sort((a, b) => codeUnitCompare(a.path, b.path)),
    conflicts: [...conflicts.values()].sort((a, b) => codeUnitCompare(a.key, b.key)),
  };
}

/** Merges the archs' contributions in arch order (first arch wins a path), sorted by path. */
export function mergeArchs(contributions: readonly { arch: string; binaries: readonly SelectedBinary[] }[]): {
  binaries: SelectedBinary[];
  digest: string;
} {
  const byPath = new Map<string, SelectedBinary>();
  for (const c of contributions) for (const b of c.binaries) if (!byPath.has(b.path)) byPath.set(b.path, b);
  const binaries = [...byPath.values()].sort((a, b) => codeUnitCompare(a.path, b.path));
  const h = createHash("sha256");
  for (const b of binaries) h.update(`${b.path}\u0000${b.sha256}\n`);
  return { binaries, digest: h.digest("hex") };
}
