import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { check } from "../helpers/check.ts";
import { kilnOk, removeDir, startKilnUp, type KilnUp } from "../helpers/kiln.ts";

/** Processes whose command line contains `marker`. */
function processesWith(marker: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(marker)) found.push(`${e}: ${cmd}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe("e2e/workers and abort", function () {
  this.timeout(180_000);
  let up: KilnUp;
  const src = mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-abort-"));
  const marker = `${9_000_000 + (process.pid % 1_000_000)}`;

  before(async () => {
    up = await startKilnUp({ workers: 1 });
    await kilnOk(up, ["meta", "prj", "abortme", "-F", "-"], {
      input: `<project name="abortme"><title/><description/><repository name="standard"><arch>x86_64</arch></repository></project>`,
    });
  });

  after(async () => {
    if (up) {
      await up.stop();
      removeDir(up.dataDir);
    }
    rmSync(src, { recursive: true, force: true });
  });

  it("should show the worker building its job, and kill the whole tree on kiln abort within 5 seconds", async () => {
    writeFileSync(
      path.join(src, "stuck.spec"),
      [
        "Name: stuck",
        "Version: 1.0",
        "Release: 1",
        "Summary: ignores SIGTERM and never ends",
        "License: MIT",
        "BuildArch: noarch",
        "%description",
        "stuck",
        "%build",
        "trap '' TERM",
        `sleep ${marker}1 &`,
        "echo KILN-STUCK-READY",
        `sleep ${marker}2`,
        "%files",
        "",
      ].join("\n")
    );
    await kilnOk(up, ["commit", "abortme", "stuck", src]);
    await check(() => processesWith(`${marker}2`).length > 0, { timeoutMs: 90_000, name: "build running" });
    const workers = JSON.parse(await kilnOk(up, ["--json", "workers"])) as {
      workerId: string;
      state: string;
      running: { project: string; package: string }[];
    }[];
    assert.equal(workers.length, 1);
    assert.equal(workers[0]!.state, "building");
    assert.deepEqual(
      workers[0]!.running.map((r) => `${r.project}/${r.package}`),
      ["abortme/stuck"]
    );

    // The 5 seconds count from the moment the user runs `kiln abort` (its own start included).
    const abortStarted = Date.now();
    const out = await kilnOk(up, ["abort", "abortme", "stuck"]);
    assert.match(out, /aborted 1 job/);
    // SIGTERM is ignored; the sandbox's SIGKILL follows after its grace period.
    await check(() => processesWith(marker).length === 0, {
      timeoutMs: Math.max(0, 5_000 - (Date.now() - abortStarted)),
      intervalMs: 50,
      name: "process tree gone within 5 s of kiln abort",
    });
    const took = Date.now() - abortStarted;
    assert.ok(took <= 5_000, `the build's processes were gone ${took} ms after kiln abort started`);

    await check(
      async () => {
        const rs = JSON.parse(await kilnOk(up, ["--json", "results", "abortme", "stuck"])) as { code: string }[];
        return rs[0]?.code === "failed";
      },
      { timeoutMs: 30_000, name: "stuck failed" }
    );
    const buildLog = await kilnOk(up, ["log", "abortme", "standard", "x86_64", "stuck"]);
    assert.match(buildLog, /KILN-STUCK-READY/);
    assert.match(buildLog, /\[kiln\] build failed: killed: aborted/);
    await check(
      async () => (JSON.parse(await kilnOk(up, ["--json", "workers"])) as { state: string }[])[0]?.state === "idle",
      { timeoutMs: 10_000, name: "worker idle again" }
    );
  });
});
