import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT, kiln, kilnOk, removeDir, startKilnUp, type KilnUp } from "../helpers/kiln.ts";

const examples = path.join(REPO_ROOT, "ops", "examples");

interface ResultLine {
  project: string;
  repository: string;
  arch: string;
  package: string;
  code: string;
  details: string;
}

describe("e2e/walking skeleton", function () {
  this.timeout(300_000);
  let up: KilnUp;
  const out = mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-out-"));

  before(async () => {
    up = await startKilnUp({ workers: 1 });
  });

  after(async () => {
    if (up) {
      const code = await up.stop();
      removeDir(up.dataDir);
      assert.equal(code, 0, `kiln up did not shut down cleanly:\n${up.log().slice(-3000)}`);
    }
    removeDir(out);
  });

  it("should store a project meta and print it back", async () => {
    await kilnOk(up, ["meta", "prj", "demo", "-F", path.join(examples, "demo-meta.xml")]);
    const xml = await kilnOk(up, ["meta", "prj", "demo"]);
    assert.match(xml, /<project name="demo">/);
    assert.match(xml, /<repository name="standard">/);
    assert.match(xml, /<arch>x86_64<\/arch>/);
  });

  it("should commit the bundled packages as new revisions", async () => {
    for (const pkg of ["hello", "world", "needs-missing"]) {
      const r = await kilnOk(up, ["--json", "commit", "demo", pkg, path.join(examples, pkg), "-m", `add ${pkg}`]);
      const rev = JSON.parse(r) as { rev: number; srcmd5: string; files: unknown[] };
      assert.equal(rev.rev, 1);
      assert.match(rev.srcmd5, /^[0-9a-f]{32}$/);
      assert.ok(rev.files.length >= 1);
    }
    const hist = JSON.parse(await kilnOk(up, ["--json", "history", "demo", "hello"])) as {
      rev: number;
      comment: string;
      user: string;
    }[];
    assert.deepEqual(
      hist.map((h) => [h.rev, h.comment, h.user]),
      [[1, "add hello", "admin"]]
    );
  });

  it("should build hello, then world against it, and find needs-missing unresolvable", async () => {
    const r = await kilnOk(up, ["--json", "results", "demo", "-w", "--timeout", "240"], { timeoutMs: 250_000 });
    const lines = JSON.parse(r) as ResultLine[];
    const by = new Map(lines.map((l) => [l.package, l]));
    assert.deepEqual([...by.keys()].sort(), ["hello", "needs-missing", "world"]);
    for (const l of lines) {
      assert.equal(l.project, "demo");
      assert.equal(l.repository, "standard");
      assert.equal(l.arch, "x86_64");
    }
    assert.equal(by.get("hello")!.code, "succeeded", JSON.stringify(lines));
    assert.equal(by.get("world")!.code, "succeeded", JSON.stringify(lines));
    assert.equal(by.get("needs-missing")!.code, "unresolvable");
    assert.match(by.get("needs-missing")!.details, /nothing provides no-such-package/);
  });

  it("should show the build logs", async () => {
    const helloLog = await kilnOk(up, ["log", "demo", "standard", "x86_64", "hello"]);
    assert.match(helloLog, /rpmbuild|Executing\(%install\)/);
    assert.match(helloLog, /\[kiln\] finished: succeeded/);
    // world's build ran hello from the build root: its output is in world's log.
    const worldLog = await kilnOk(up, ["log", "demo", "standard", "x86_64", "world"]);
    assert.match(worldLog, /Hello from kiln!/);
  });

  it("should list and download the built RPMs, which rpm reads as the right package", async () => {
    const list = JSON.parse(await kilnOk(up, ["--json", "binaries", "demo", "standard", "x86_64", "hello"])) as {
      filename: string;
    }[];
    assert.deepEqual(list.map((b) => b.filename).sort(), ["hello-1.0-1.1.noarch.rpm", "hello-1.0-1.1.src.rpm"]);
    await kilnOk(up, ["binaries", "demo", "standard", "x86_64", "hello", "-o", out]);
    assert.deepEqual(readdirSync(out).sort(), ["hello-1.0-1.1.noarch.rpm", "hello-1.0-1.1.src.rpm"]);
    const q = await execa("rpm", [
      "-qp",
      "--nosignature",
      "--queryformat",
      "%{NAME} %{VERSION} %{RELEASE}\n",
      path.join(out, "hello-1.0-1.1.noarch.rpm"),
    ]);
    assert.equal(q.stdout.trim(), "hello 1.0 1.1");
  });

  it("should explain builds: buildinfo lists hello for world, reason says new build", async () => {
    const bi = JSON.parse(await kilnOk(up, ["--json", "buildinfo", "demo", "standard", "x86_64", "world"])) as {
      bdeps: { name: string; version: string }[];
    };
    assert.deepEqual(
      bi.bdeps.map((d) => [d.name, d.version]),
      [["hello", "1.0"]]
    );
    const reason = JSON.parse(await kilnOk(up, ["--json", "reason", "demo", "standard", "x86_64", "world"])) as {
      explain: string;
    };
    assert.equal(reason.explain, "new build");
  });

  it("should follow a running build's log live with log -f", async () => {
    await kilnOk(up, ["commit", "demo", "slow", path.join(REPO_ROOT, "test", "fixtures", "e2e", "slow")]);
    const follow = await kiln(up, ["log", "demo", "standard", "x86_64", "slow", "-f"], { timeoutMs: 180_000 });
    assert.equal(follow.exitCode, 0, follow.stderr);
    const steps = follow.stdout.split("\n").filter((l) => /^slow build step \d+$/.test(l));
    assert.deepEqual(
      steps,
      Array.from({ length: 10 }, (_, i) => `slow build step ${i + 1}`)
    );
    assert.match(follow.stdout, /\[kiln\] finished: succeeded/);
  });

  it("should answer status with every role and exit cleanly on SIGTERM", async () => {
    const st = JSON.parse(await kilnOk(up, ["--json", "status"])) as {
      role: string;
      nodeId: string;
      uptimeMs: number;
    }[];
    for (const role of ["source", "repo", "dispatcher", "scheduler:x86_64", "worker"]) {
      assert.ok(
        st.some((s) => s.role === role),
        `${role} missing from status`
      );
    }
    assert.ok(st.every((s) => s.uptimeMs >= 0));
    // One `kiln up`, one node: the id it keeps in its data directory.
    const nodeId = readFileSync(path.join(up.dataDir, "node-id"), "utf8").trim();
    assert.deepEqual([...new Set(st.map((s) => s.nodeId))], [nodeId]);
    const bad = await kiln(up, ["meta", "prj", "no-such-project"]);
    assert.equal(bad.exitCode, 3);
    assert.match(bad.stderr, /project 'no-such-project' does not exist/);
  });
});
