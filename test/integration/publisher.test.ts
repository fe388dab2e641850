import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { RepoCode, type PublisherApi, type RepoStateChangedEvent } from "../../actors/index.ts";
import type { RepoPublishedEvent } from "../../actors/publisher/protocol.ts";
import { Role, RoleClient, makeEvent, publishEvent, subjects } from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { dnfInstall } from "../helpers/publish-dnf.ts";
import { RepoHarness } from "../helpers/repo-harness.ts";
import { buildTestRpms, type BuiltRpms } from "../helpers/repo-rpms.ts";

const P = "pub:int";
const R = "standard";

describe("integration/publisher", function () {
  this.timeout(90_000);
  let h: RepoHarness;
  let dir: string;
  let greet: BuiltRpms;
  let world: BuiltRpms;
  let tool: BuiltRpms;
  const cleanup: string[] = [];

  const finished = async (project: string, arch: string, code: RepoCode = RepoCode.Finished): Promise<void> => {
    await publishEvent(
      h.nc.jetstream(),
      makeEvent<RepoStateChangedEvent>({ type: "repo.state-changed", project, repository: R, arch, code })
    );
  };
  const served = (project: string): string => path.join(h.dataDir, "publish", project, R);
  const publishedVersion = async (project: string): Promise<number | undefined> => {
    try {
      const list = await h.publisherClient.call("publish.status", { project });
      return list.find((x) => x.repository === R)?.version;
    } catch {
      return undefined;
    }
  };
  const treeFiles = (project: string): string[] => {
    const out: string[] = [];
    const base = served(project);
    for (const d of readdirSync(base)) {
      if (d === "repodata") continue;
      for (const f of readdirSync(path.join(base, d))) out.push(`${d}/${f}`);
    }
    return out.sort();
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-pub-rpms-"));
    greet = await buildTestRpms(dir, "noarch", [{ name: "greet" }]);
    world = await buildTestRpms(dir, "noarch", [{ name: "greet-world", requires: ["greet"] }]);
    tool = await buildTestRpms(dir, "x86_64", [{ name: "tool" }]);
    h = await RepoHarness.start({ publisher: { httpPort: 0 } });
    await h.putProject(P, `<repository name="${R}"><arch>x86_64</arch><arch>i586</arch></repository>`);
    await h.storeBuild({
      project: P,
      repository: R,
      arch: "x86_64",
      package: "greet",
      files: [greet.rpms.get("greet")!, greet.srpm],
    });
    await h.storeBuild({
      project: P,
      repository: R,
      arch: "x86_64",
      package: "world",
      files: [world.rpms.get("greet-world")!, world.srpm],
    });
    await h.storeBuild({ project: P, repository: R, arch: "x86_64", package: "tool", files: [tool.rpms.get("tool")!] });
    // The same noarch package built on i586 too: one copy in the merged tree.
    await h.storeBuild({
      project: P,
      repository: R,
      arch: "i586",
      package: "greet",
      files: [greet.rpms.get("greet")!],
    });
  });

  after(async () => {
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const d of cleanup) rmSync(d, { recursive: true, force: true });
  });

  it("should publish a finished repository as rpm-md from which dnf installs a package with its requirement", async () => {
    await finished(P, "x86_64");
    await check(() => publishedVersion(P), { name: "published", timeoutMs: 30_000 });
    const link = served(P);
    assert.ok(lstatSync(link).isSymbolicLink(), "served path is a link to a complete version");
    assert.ok(existsSync(path.join(link, "repodata", "repomd.xml")));
    assert.deepEqual(treeFiles(P), [
      `noarch/${path.basename(greet.rpms.get("greet")!)}`,
      `noarch/${path.basename(world.rpms.get("greet-world")!)}`,
      `src/${path.basename(greet.srpm)}`,
      `src/${path.basename(world.srpm)}`,
      `x86_64/${path.basename(tool.rpms.get("tool")!)}`,
    ]);
    const { root, installed } = await dnfInstall(link, ["greet-world"]);
    cleanup.push(path.dirname(root));
    assert.deepEqual(installed, ["greet", "greet-world"]);
    assert.equal(readFileSync(path.join(root, "usr/share/greet/marker"), "utf8").trim(), "greet");
    const ev = h.seen<{ type: string; version: number; binaries: number } & RepoStateChangedEvent>("repo.published", P);
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.binaries, 5);
  });

  it("should serve the published tree read-only over HTTP, hiding the version directories", async () => {
    const url = h.publisher!.httpUrl!;
    const repomd = await fetch(`${url}/${encodeURIComponent(P)}/${R}/repodata/repomd.xml`);
    assert.equal(repomd.status, 200);
    assert.match(await repomd.text(), /<repomd/);
    assert.equal((await fetch(`${url}/${encodeURIComponent(P)}/.kiln/`)).status, 404);
    assert.equal((await fetch(`${url}/${encodeURIComponent(P)}/${R}/../../etc/passwd`)).status, 404);
    assert.equal(
      (await fetch(`${url}/${encodeURIComponent(P)}/${R}/repodata/repomd.xml`, { method: "POST" })).status,
      405
    );
    const { root, installed } = await dnfInstall(`${url}/${encodeURIComponent(P)}/${R}`, ["tool"]);
    cleanup.push(path.dirname(root));
    assert.deepEqual(installed, ["tool"]);
  });

  it("should leave out source packages of a package whose sourceaccess is disabled", async () => {
    const v = (await publishedVersion(P))!;
    await h.putPackage(P, "world", `<sourceaccess><disable/></sourceaccess>`);
    await check(async () => ((await publishedVersion(P)) ?? 0) > v, { name: "republished", timeoutMs: 30_000 });
    const files = treeFiles(P);
    assert.ok(!files.includes(`src/${path.basename(world.srpm)}`), files.join(" "));
    assert.ok(files.includes(`src/${path.basename(greet.srpm)}`));
    assert.ok(files.includes(`noarch/${path.basename(world.rpms.get("greet-world")!)}`));
  });

  it("should not republish when nothing changed, and keep the served tree when createrepo_c fails", async () => {
    const v = (await publishedVersion(P))!;
    const target = readlinkSync(served(P));
    const again = await h.publisherClient.call("publish.now", { project: P, repository: R });
    assert.equal(again.outcome, "unchanged");
    await h.publisher!.stop();
    h.publisher = undefined;
    const { startPublisherRole } = await import("../../actors/index.ts");
    const broken = await startPublisherRole(h.ctx, { createrepo: "false" });
    h.publisher = broken;
    try {
      await h.storeBuild({
        project: P,
        repository: R,
        arch: "x86_64",
        package: "tool",
        files: [tool.rpms.get("tool")!, tool.srpm],
      });
      await assert.rejects(
        h.publisherClient.call("publish.now", { project: P, repository: R }, { timeoutMs: 30_000 }),
        /createrepo_c failed/
      );
      assert.equal(readlinkSync(served(P)), target);
      assert.ok(existsSync(path.join(served(P), "repodata", "repomd.xml")));
      assert.equal(await publishedVersion(P), v);
    } finally {
      await broken.stop();
      h.publisher = undefined;
    }
    // A publisher that starts again resumes what a failure or crash left undone.
    h.publisher = await startPublisherRole(h.ctx, {});
    await check(async () => ((await publishedVersion(P)) ?? 0) > v, { name: "republished", timeoutMs: 30_000 });
    assert.ok(treeFiles(P).includes(`src/${path.basename(tool.srpm)}`));
  });

  it("should refuse to publish on an unsigned request", async () => {
    const anonymous = new RoleClient<PublisherApi>(h.ctx.rpc, (t) => subjects.rpc(Role.Publisher, t));
    await assert.rejects(anonymous.call("publish.now", { project: P, repository: R }), { code: "ERR_UNAUTHENTICATED" });
  });

  it("should publish a finished repository once its publish flag is enabled", async () => {
    const Q = "pub:staged";
    await h.putProject(Q, `<publish><disable/></publish><repository name="${R}"><arch>x86_64</arch></repository>`);
    await h.storeBuild({
      project: Q,
      repository: R,
      arch: "x86_64",
      package: "greet",
      files: [greet.rpms.get("greet")!],
    });
    await finished(Q, "x86_64");
    // publish.status answers once the publisher recorded the finished state, which also started
    // a publish run; publish.now joins that run or queues behind it, so its answer comes after
    // the run ended and tells what a run with publish disabled does.
    await check(() => h.publisherClient.call("publish.status", { project: Q }).catch(() => undefined), {
      name: "publisher saw the repository",
    });
    const run = await h.publisherClient.call("publish.now", { project: Q, repository: R });
    assert.equal(run.outcome, "unpublished");
    assert.deepEqual(await h.publisherClient.call("publish.status", { project: Q }), []);
    assert.ok(!existsSync(served(Q)));
    assert.deepEqual(h.seen("repo.published", Q), []);

    await h.putProject(Q, `<repository name="${R}"><arch>x86_64</arch></repository>`);
    const published = await check(
      async () => (await h.publisherClient.call("publish.status", { project: Q })).find((x) => x.repository === R),
      { name: "published after enabling", timeoutMs: 30_000 }
    );
    // The first tree of this repository: nothing was published while the flag was disabled.
    assert.equal(published.version, 1);
    assert.equal(published.binaries, 1);
    assert.deepEqual(treeFiles(Q), [`noarch/${path.basename(greet.rpms.get("greet")!)}`]);
    await check(() => h.seen("repo.published", Q).length > 0, { name: "repo.published" });
    const events = h.seen<RepoPublishedEvent>("repo.published", Q);
    assert.deepEqual(
      events.map((e) => [e.repository, e.version, e.binaries]),
      [[R, 1, 1]]
    );
  });
});
