import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { renderWrapperStub } from "../../../sandbox/wrapper.ts";

describe("sandbox/wrapper", () => {
  describe("renderWrapperStub", () => {
    it("should join every cgroup before it reads its script", () => {
      const lines = renderWrapperStub([
        "/sys/fs/cgroup/memory/kiln-sandbox-1-ab/cgroup.procs",
        "/x y/cgroup.procs",
      ]).split("\n");
      assert.equal(lines[0], "set -eu");
      assert.equal(lines[1], "echo $$ > /sys/fs/cgroup/memory/kiln-sandbox-1-ab/cgroup.procs");
      assert.equal(lines[2], "echo $$ > '/x y/cgroup.procs'");
      assert.ok(lines.findIndex((l) => l.startsWith("IFS= read")) > 2);
    });

    it("should run the script named by its first line of input, from the script's directory, with stdin closed", () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-stub-"));
      try {
        const procs = path.join(dir, "procs");
        const script = path.join(dir, "run dir", "wrapper.sh");
        execFileSync("mkdir", [path.dirname(script)]);
        // The script's programs must not read what else arrives on the wrapper's stdin.
        writeFileSync(script, 'echo "pwd=$(pwd)"\necho "stdin=$(cat)"\n');
        const out = execFileSync("/bin/sh", ["-c", renderWrapperStub([procs]), "kiln-sandbox"], {
          input: `${script}\nNOT FOR THE SCRIPT\n`,
          encoding: "utf8",
        });
        assert.equal(out, `pwd=${path.dirname(script)}\nstdin=\n`);
        // The cgroup "join" wrote the shell's own pid.
        assert.match(readFileSync(procs, "utf8"), /^\d+\n$/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("should end quietly when its input ends before a script is named", () => {
      const out = execFileSync("/bin/sh", ["-c", renderWrapperStub([]), "kiln-sandbox"], {
        input: "",
        encoding: "utf8",
      });
      assert.equal(out, "");
    });
  });
});
