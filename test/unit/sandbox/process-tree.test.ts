import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { descendantsOf, parseStatPpid, processAlive } from "../../../sandbox/process-tree.ts";
import { check } from "../../helpers/check.ts";

describe("sandbox/process-tree", () => {
  it("should read the ppid even when the command name has spaces and parentheses", () => {
    assert.equal(parseStatPpid("123 (bash) S 45 123 123 0 -1"), 45);
    assert.equal(parseStatPpid("7 (a) b (c) R 1 7 7 0"), 1);
    assert.equal(parseStatPpid("garbage"), undefined);
  });

  it("should list descendants parents first, without the root and without unrelated processes", () => {
    const table = new Map([
      [10, 1],
      [11, 10],
      [12, 10],
      [13, 11],
      [14, 13],
      [20, 1],
      [21, 20],
    ]);
    assert.deepEqual(descendantsOf(10, table), [11, 12, 13, 14]);
    assert.deepEqual(descendantsOf(20, table), [21]);
    assert.deepEqual(descendantsOf(99, table), []);
  });

  it("should count a running process as alive, and a zombie or a missing pid as not", async () => {
    assert.equal(processAlive(process.pid), true);
    // The shell's background child ends once the shell has become `sleep`, which never reaps it.
    // (A child that ended at once could be reaped by the shell before its exec: no zombie.)
    const sh = spawn("/bin/sh", ["-c", "sleep 0.3 & echo $!; exec sleep 30"], { stdio: ["ignore", "pipe", "ignore"] });
    try {
      const [first] = (await once(sh.stdout, "data")) as [Buffer];
      const zombie = Number(first.toString().trim());
      await check(() => existsSync(`/proc/${zombie}`) && !processAlive(zombie), { name: "zombie seen as dead" });
      assert.equal(processAlive(sh.pid!), true);
    } finally {
      sh.kill("SIGKILL");
      await once(sh, "exit");
    }
    assert.equal(processAlive(sh.pid!), false);
  });
});
