import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { collectResults, namePattern, validateCollectPlan } from "../../../sandbox/collect.ts";

describe("sandbox/collect", () => {
  describe("namePattern", () => {
    it("should match as find -name does, a leading dot included", () => {
      const rpm = namePattern("*.rpm");
      for (const n of ["a.rpm", ".hidden.rpm", "x-1.0-1.noarch.rpm", "..rpm"]) assert.ok(rpm.test(n), n);
      for (const n of ["a.rpmx", "a.rp", "rpm", "a.rpm\n.txt"]) assert.ok(!rpm.test(n), n);
      assert.ok(namePattern("*").test(".obsinfo"));
      assert.ok(namePattern("a?c").test("abc"));
      assert.ok(!namePattern("a.c").test("abc"), "a dot is a dot");
      assert.ok(namePattern("a+(b)").test("a+(b)"));
    });

    it("should refuse patterns with brackets, backslashes or slashes, and the empty one", () => {
      for (const n of ["[ab].rpm", "a\\*", "x/*.rpm", ""]) assert.throws(() => namePattern(n), /wildcards/, n);
    });
  });

  describe("validateCollectPlan", () => {
    const ok = { dir: "rpmbuild", paths: ["SRPMS", "RPMS"], maxDepth: 2, name: "*.rpm" };
    it("should accept relative plans and refuse escapes, nested paths and odd depths", () => {
      validateCollectPlan(ok);
      validateCollectPlan({ ...ok, dir: "." });
      assert.throws(() => validateCollectPlan({ ...ok, dir: "/etc" }), /collect.dir/);
      assert.throws(() => validateCollectPlan({ ...ok, dir: "a/../.." }), /collect.dir/);
      assert.throws(() => validateCollectPlan({ ...ok, paths: ["../x"] }), /directory name/);
      assert.throws(() => validateCollectPlan({ ...ok, paths: ["RPMS/noarch"] }), /directory name/);
      assert.throws(() => validateCollectPlan({ ...ok, paths: ["."] }), /directory name/);
      assert.throws(() => validateCollectPlan({ ...ok, maxDepth: 0 }), /maxDepth/);
      assert.throws(() => validateCollectPlan({ ...ok, maxDepth: 1.5 }), /maxDepth/);
    });
  });

  describe("collectResults", () => {
    let tmp: string;
    let home: string;
    let outside: string;
    let out: string;
    const plan = { dir: "rpmbuild", paths: ["SRPMS", "RPMS"], maxDepth: 2, name: "*.rpm" };

    beforeEach(() => {
      tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-collect-"));
      home = path.join(tmp, "home");
      outside = path.join(tmp, "outside");
      out = path.join(tmp, "out");
      for (const d of [outside, out, path.join(home, "rpmbuild")]) mkdirSync(d, { recursive: true });
      writeFileSync(path.join(outside, "secret.rpm"), "SECRET");
    });
    afterEach(() => rmSync(tmp, { recursive: true, force: true }));

    const rel = (files: string[]): string[] => files.map((f) => path.relative(out, f));

    it("should copy the matching regular files up to maxDepth, as plain readable files", () => {
      const top = path.join(home, "rpmbuild");
      mkdirSync(path.join(top, "RPMS", "noarch", "deeper"), { recursive: true });
      mkdirSync(path.join(top, "SRPMS"));
      writeFileSync(path.join(top, "SRPMS", "a-1-1.src.rpm"), "SRC");
      writeFileSync(path.join(top, "RPMS", "noarch", "a-1-1.noarch.rpm"), "BIN");
      writeFileSync(path.join(top, "RPMS", "noarch", ".hidden.rpm"), "H");
      writeFileSync(path.join(top, "RPMS", "noarch", "notes.txt"), "no");
      writeFileSync(path.join(top, "RPMS", "noarch", "deeper", "too-deep.rpm"), "no");
      writeFileSync(path.join(top, "RPMS", "noarch", "setuid.rpm"), "S");
      chmodSync(path.join(top, "RPMS", "noarch", "setuid.rpm"), 0o4755);
      execFileSync("mkfifo", [path.join(top, "RPMS", "fifo.rpm")]);
      const c = collectResults("", home, plan, out);
      assert.equal(c.ok, true);
      assert.deepEqual(rel(c.files), [
        "RPMS/noarch/.hidden.rpm",
        "RPMS/noarch/a-1-1.noarch.rpm",
        "RPMS/noarch/setuid.rpm",
        "SRPMS/a-1-1.src.rpm",
      ]);
      assert.equal(readFileSync(path.join(out, "RPMS/noarch/a-1-1.noarch.rpm"), "utf8"), "BIN");
      assert.equal(statSync(path.join(out, "RPMS/noarch/setuid.rpm")).mode & 0o7777, 0o644);
    });

    it("should follow no symlink: not the searched directories, not below them, not the files", () => {
      const top = path.join(home, "rpmbuild");
      mkdirSync(path.join(top, "RPMS"));
      symlinkSync(outside, path.join(top, "SRPMS"));
      symlinkSync(outside, path.join(top, "RPMS", "noarch"));
      symlinkSync(path.join(outside, "secret.rpm"), path.join(top, "RPMS", "link.rpm"));
      const c = collectResults("", home, plan, out);
      assert.deepEqual(c, { ok: true, files: [] });
      assert.deepEqual(execFileSync("find", [out, "-mindepth", "1"], { encoding: "utf8" }), "");
    });

    it("should collect nothing, and say so, when the build turned its directory into a symlink", () => {
      rmSync(path.join(home, "rpmbuild"), { recursive: true });
      mkdirSync(path.join(outside, "RPMS"));
      writeFileSync(path.join(outside, "RPMS", "x.rpm"), "SECRET");
      symlinkSync(outside, path.join(home, "rpmbuild"));
      assert.deepEqual(collectResults("", home, plan, out), { ok: false, files: [] });
    });

    it("should find nothing without failing when the directory is not there", () => {
      rmSync(path.join(home, "rpmbuild"), { recursive: true });
      assert.deepEqual(collectResults("", home, plan, out), { ok: true, files: [] });
    });
  });
});
