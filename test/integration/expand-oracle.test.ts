/**
 * Oracle test: kiln's expansion against obs-build's own Perl `expanddeps` on random
 * repositories (layered, with versioned and virtual provides, alternatives, rich dependencies,
 * conflicts, obsoletes, recommends, file dependencies, Prefer/Ignore/Conflict/Substitute and
 * Preinstall/Required/Support). Debian's obs-build is release 20210120, so kiln runs in that
 * compatibility mode here.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expandBuild, getPreinstalls, ObsBuildCompat } from "../../actors/scheduler/expand.ts";
import { ProviderIndex } from "../../actors/scheduler/provider-index.ts";
import { generateRepo, randomRequest, randomSpec, Rng, toDepfile, toPrjconf, toSpec } from "../helpers/gen-repo.ts";
import type { GeneratedRepo, RandomSpec } from "../helpers/gen-repo.ts";

const run = promisify(execFile);
const OBS_BUILD_DIR = "/usr/lib/obs-build";
const EXPANDDEPS = join(OBS_BUILD_DIR, "expanddeps");
const REPOS = 28;
const REQUESTS_PER_REPO = 15;
const CONCURRENCY = 3;

interface Outcome {
  ok: boolean;
  /** Packages in expanddeps' print order, or the error lines. */
  lines: string[];
}

async function obsBuild(dir: string, deps: string[], spec?: string): Promise<Outcome> {
  const args = [
    EXPANDDEPS,
    "--dist",
    join(dir, "prj.conf"),
    "--depfile",
    join(dir, "repo.deps"),
    "--archpath",
    "x86_64",
  ];
  try {
    const { stdout } = await run("perl", [...args, ...(spec ? [spec] : []), ...deps], {
      env: { ...process.env, BUILD_DIR: OBS_BUILD_DIR },
    });
    const lines = stdout
      .split("\n")
      .filter((l) => l !== "" && !/^(rpmid|preinstall|vminstall|runscripts|dist):/.test(l))
      .map((l) => l.split(" ")[0]!);
    return { ok: true, lines };
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    if (err.code !== 1 || !err.stderr?.startsWith("expansion error")) throw e;
    return {
      ok: false,
      lines: err.stderr
        .split("\n")
        .filter((l) => l.startsWith("  "))
        .map((l) => l.slice(2)),
    };
  }
}

// What expanddeps prints: get_build's result, then the preinstalls, which must all exist.
function kiln(repo: GeneratedRepo, index: ProviderIndex, deps: string[], spec?: RandomSpec): Outcome {
  const opts = { compat: ObsBuildCompat.V20210120 };
  let input = deps;
  if (spec) {
    // expanddeps puts PreReq: after a --directdepsend-- marker, minus what is already listed.
    const listed = new Set([...spec.buildRequires, ...spec.subpacks]);
    const prereqs = spec.prereqs.filter((p) => !listed.has(p));
    input = [...spec.buildRequires, ...(prereqs.length > 0 ? ["--directdepsend--", ...prereqs] : [])];
  }
  const r = expandBuild(repo.config, spec?.subpacks ?? [], input, index, opts);
  if (!r.ok) return { ok: false, lines: r.errors };
  const pre = getPreinstalls(repo.config, index, opts);
  assert.ok(pre.ok);
  const missing = [...new Set(pre.packages.filter((p) => !index.has(p)))].sort();
  if (missing.length > 0) return { ok: false, lines: [`missing pre/vminstalls: ${missing.join(", ")}`] };
  return { ok: true, lines: [...new Set([...r.packages, ...pre.packages])] };
}

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

describe("integration/expand-oracle", function () {
  this.timeout(120_000);
  let root = "";

  before(function () {
    if (!existsSync(EXPANDDEPS) || !existsSync(join(OBS_BUILD_DIR, "Build.pm"))) {
      throw new Error(`obs-build is missing (${EXPANDDEPS}); install it: apt-get install obs-build`);
    }
    root = mkdtempSync(join(tmpdir(), "kiln-expand-oracle-"));
  });

  after(function () {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("should expand random repositories exactly like obs-build's expanddeps", async function () {
    const jobs: { repo: GeneratedRepo; index: ProviderIndex; dir: string; deps: string[]; spec?: RandomSpec }[] = [];
    for (let seed = 1; seed <= REPOS; seed++) {
      const repo = generateRepo({ seed, names: 200 + (seed % 5) * 50, layers: 1 + (seed % 3), keep: seed % 4 === 0 });
      const dir = join(root, `r${seed}`);
      mkdirSync(dir);
      writeFileSync(join(dir, "repo.deps"), toDepfile(repo.layers));
      writeFileSync(join(dir, "prj.conf"), toPrjconf(repo.config));
      const index = new ProviderIndex(repo.layers);
      const rng = new Rng(seed * 7919);
      for (let i = 0; i < REQUESTS_PER_REPO; i++) {
        // Every third build comes from a spec file, with subpackages and PreReq:.
        if (i % 3 === 2) jobs.push({ repo, index, dir, deps: [], spec: randomSpec(repo, rng) });
        else jobs.push({ repo, index, dir, deps: randomRequest(repo, rng) });
      }
    }
    const mismatches: string[] = [];
    let resolved = 0;
    await pool(jobs, CONCURRENCY, async (job) => {
      let specFile: string | undefined;
      if (job.spec) {
        specFile = join(job.dir, `${job.spec.name}-${Math.random().toString(36).slice(2)}.spec`);
        writeFileSync(specFile, toSpec(job.spec));
      }
      const want = await obsBuild(job.dir, job.deps, specFile);
      const got = kiln(job.repo, job.index, job.deps, job.spec);
      if (want.ok) resolved++;
      if (JSON.stringify(want) !== JSON.stringify(got)) {
        mismatches.push(
          `${job.dir} ${JSON.stringify(job.deps)}\n  obs-build: ${JSON.stringify(want)}\n  kiln:      ${JSON.stringify(got)}`
        );
      }
    });
    console.log(
      `      compared ${jobs.length} expansions (${resolved} resolvable, ${jobs.length - resolved} with errors)`
    );
    assert.equal(mismatches.length, 0, mismatches.slice(0, 5).join("\n"));
    // The generator must exercise both outcomes, or the comparison says little.
    assert.ok(resolved > jobs.length / 5 && resolved < jobs.length, `resolved ${resolved} of ${jobs.length}`);
  });
});
