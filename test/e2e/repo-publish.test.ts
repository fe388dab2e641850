import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { check } from "../helpers/check.ts";
import { REPO_ROOT, freePort, kilnOk, removeDir, startKilnUp, type KilnUp } from "../helpers/kiln.ts";
import { dnfInstall } from "../helpers/publish-dnf.ts";

const fixtures = path.join(REPO_ROOT, "test", "fixtures", "publish");
const P = "pubdemo";
const R = "standard";

interface Line {
  package: string;
  code: string;
}

describe("e2e/repo and publishing", function () {
  this.timeout(300_000);
  let up: KilnUp;
  let port: number;
  const scratch = mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-pub-"));
  const cleanup: string[] = [scratch];

  const json = async <T>(args: string[]): Promise<T> => JSON.parse(await kilnOk(up, ["--json", ...args])) as T;
  const published = async (): Promise<{ version: number; binaries: number } | undefined> => {
    try {
      return (await json<{ repository: string; version: number; binaries: number }[]>(["published", P])).find(
        (r) => r.repository === R
      );
    } catch {
      return undefined;
    }
  };
  const pool = async (): Promise<string[]> =>
    (await json<{ name: string }[]>(["admin", "pool", P, R, "x86_64"])).map((b) => b.name).sort();

  before(async () => {
    port = await freePort();
    up = await startKilnUp({ workers: 1, extraArgs: ["--publish-port", String(port)] });
  });

  after(async () => {
    if (up) {
      const code = await up.stop();
      removeDir(up.dataDir);
      assert.equal(code, 0, `kiln up did not shut down cleanly:\n${up.log().slice(-3000)}`);
    }
    for (const d of cleanup) removeDir(d);
  });

  it("should build, publish when the repository is finished, and let dnf install with requirements", async () => {
    const meta = path.join(scratch, "meta.xml");
    writeFileSync(
      meta,
      `<project name="${P}"><title/><description/><repository name="${R}"><arch>x86_64</arch></repository></project>`
    );
    await kilnOk(up, ["meta", "prj", P, "-F", meta]);
    await kilnOk(up, ["commit", P, "greet", path.join(fixtures, "greet")]);
    await kilnOk(up, ["commit", P, "greet-world", path.join(fixtures, "greet-world")]);
    const lines = await json<Line[]>(["results", P, "-w", "--timeout", "240"]);
    assert.deepEqual(
      lines.map((l) => [l.package, l.code]),
      [
        ["greet", "succeeded"],
        ["greet-world", "succeeded"],
      ]
    );
    const pub = await check(async () => ((await published())?.binaries === 4 ? published() : undefined), {
      name: "published with 2 rpms and 2 srpms",
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    assert.ok(pub.version >= 1);
    const tree = path.join(up.dataDir, "publish", P, R);
    assert.ok(existsSync(path.join(tree, "repodata", "repomd.xml")));
    const byPath = await dnfInstall(tree, ["greet-world"]);
    cleanup.push(path.dirname(byPath.root));
    assert.deepEqual(byPath.installed, ["greet", "greet-world"]);
    assert.equal(readFileSync(path.join(byPath.root, "usr/share/greet/greeting"), "utf8").trim(), "hello from greet");
    const byUrl = await dnfInstall(`http://127.0.0.1:${port}/${P}/${R}`, ["greet-world"]);
    cleanup.push(path.dirname(byUrl.root));
    assert.deepEqual(byUrl.installed, ["greet", "greet-world"]);
  });

  it("should keep job and build histories", async () => {
    const jobs = await json<{ package: string; code: string }[]>(["jobhistory", P, R, "x86_64"]);
    assert.deepEqual(jobs.map((j) => [j.package, j.code]).sort(), [
      ["greet", "succeeded"],
      ["greet-world", "succeeded"],
    ]);
    const builds = await json<{ versrel: string; bcnt: number }[]>(["buildhistory", P, R, "x86_64", "greet"]);
    assert.equal(builds.length, 1);
    assert.equal(builds[0]!.versrel, "1.0-1");
  });

  it("should take a package out of the pool when useforbuild is disabled, without a build", async () => {
    assert.deepEqual(await pool(), ["greet", "greet-world"]);
    const meta = path.join(scratch, "greet.xml");
    writeFileSync(
      meta,
      `<package name="greet" project="${P}"><title/><description/><useforbuild><disable/></useforbuild></package>`
    );
    await kilnOk(up, ["meta", "pkg", P, "greet", "-F", meta]);
    await check(async () => !(await pool()).includes("greet"), { name: "greet leaves the pool", timeoutMs: 30_000 });
    const jobs = await json<unknown[]>(["jobhistory", P, R, "x86_64"]);
    assert.equal(jobs.length, 2);
    const r = await json<{ added: number; removed: number; changed: number; binaries: number }>([
      "admin",
      "rebuild-pool",
      P,
      R,
      "x86_64",
    ]);
    assert.deepEqual([r.added, r.removed, r.changed, r.binaries], [0, 0, 0, 1]);
  });

  it("should wipe a package's results, which the scheduler then builds again", async () => {
    const poolFiles = async (): Promise<string[]> =>
      (await json<{ filename: string }[]>(["admin", "pool", P, R, "x86_64"])).map((b) => b.filename);
    const [built] = await poolFiles();
    assert.match(built ?? "", /^greet-world-/);
    // -r and -a narrow the wipe: another repository or arch has nothing of it.
    assert.deepEqual(await json<unknown[]>(["wipe", P, "greet-world", "-r", "elsewhere"]), []);
    assert.deepEqual(await json<unknown[]>(["wipe", P, "greet-world", "-r", R, "-a", "i586"]), []);
    assert.deepEqual(await poolFiles(), [built]);
    const wiped = await json<{ repository: string; arch: string; package: string }[]>([
      "wipe",
      P,
      "greet-world",
      "-r",
      R,
      "-a",
      "x86_64",
    ]);
    assert.deepEqual(wiped, [{ repository: R, arch: "x86_64", package: "greet-world" }]);
    // The pool follows the wipe at once (the rebuild that follows brings a new release).
    assert.ok(!(await poolFiles()).includes(built!), "the wiped binary left the pool");
    await check(async () => (await json<unknown[]>(["jobhistory", P, R, "x86_64", "greet-world"])).length === 2, {
      name: "greet-world built again",
      timeoutMs: 240_000,
      intervalMs: 500,
    });
    const rebuilt = await check(async () => (await poolFiles()).find((f) => f.startsWith("greet-world-")), {
      name: "the new build in the pool",
    });
    assert.notEqual(rebuilt, built);
    const lines = await json<Line[]>(["results", P, "-w", "--timeout", "240"]);
    assert.ok(
      lines.every((l) => l.code === "succeeded"),
      JSON.stringify(lines)
    );
  });
});
