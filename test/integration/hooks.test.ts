import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { HookExit, defaultHooks } from "../../actors/index.ts";

// The shipped build-compare hook on packages built by the host's rpmbuild, run as the worker runs
// it (its stage as argument, paths in the environment; the sandbox is the worker tests' part).

const program = defaultHooks().find((h) => h.name === "build-compare")!.program;

describe("hooks/build-compare", function () {
  this.timeout(60_000);
  let tmp: string;
  let n = 0;

  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-build-compare-"));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** Builds `spec` (with `release`) and returns a directory holding SRPMS/ and RPMS/. */
  const build = async (
    release: string,
    opts: { content?: string; requires?: string; sub?: boolean; specComment?: string } = {}
  ) => {
    const top = path.join(tmp, `top${++n}`);
    mkdirSync(top);
    const spec = path.join(top, "cmp.spec");
    writeFileSync(
      spec,
      [
        "Name: cmp",
        "Version: 1.0",
        `Release: ${release}`,
        "Summary: build-compare test",
        "License: MIT",
        "BuildArch: noarch",
        ...(opts.specComment ? [`# ${opts.specComment}`] : []),
        ...(opts.requires ? [`Requires: ${opts.requires}`] : []),
        "%description",
        "test",
        ...(opts.sub ? ["%package extra", "Summary: extra", "%description extra", "extra", "%files extra"] : []),
        "%install",
        "mkdir -p %{buildroot}/usr/share/cmp",
        `echo '${opts.content ?? "same"}' > %{buildroot}/usr/share/cmp/data`,
        "%files",
        "/usr/share/cmp/data",
        "",
      ].join("\n")
    );
    await execa("rpmbuild", ["-ba", "--quiet", "--define", `_topdir ${top}`, spec]);
    const out = path.join(tmp, `out${n}`);
    mkdirSync(out);
    cpSync(path.join(top, "RPMS"), path.join(out, "RPMS"), { recursive: true });
    cpSync(path.join(top, "SRPMS"), path.join(out, "SRPMS"), { recursive: true });
    return out;
  };

  const compare = async (rpms: string, old: string | undefined) => {
    const r = await execa(program, ["postbuild"], {
      env: {
        KILN_HOOK_STAGE: "postbuild",
        KILN_BUILD_RESULT: "succeeded",
        KILN_RPMS: rpms,
        ...(old ? { KILN_OLD_RPMS: old } : {}),
        PATH: "/usr/bin:/bin",
      },
      extendEnv: false,
      reject: false,
    });
    return { code: r.exitCode, out: r.stdout };
  };

  it("should call packages that differ only in release and build time unchanged", async () => {
    const old = await build("3.1");
    const neu = await build("3.2");
    const r = await compare(neu, old);
    assert.equal(r.code, HookExit.Unchanged, r.out);
    assert.match(r.out, /the packages are the same as the previous build's \(2 compared\)/);
  });

  it("should see a changed file, a changed dependency and a changed set of packages", async () => {
    const old = await build("4.1");
    const content = await compare(await build("4.2", { content: "other" }), old);
    assert.equal(content.code, 0);
    assert.match(content.out, /cmp\.noarch differs/);
    const requires = await compare(await build("4.3", { requires: "bash" }), old);
    assert.equal(requires.code, 0);
    assert.match(requires.out, /req bash/);
    const sub = await compare(await build("4.4", { sub: true }), old);
    assert.equal(sub.code, 0);
    assert.match(sub.out, /the set of packages changed/);
    // Only the spec changed (a comment): the binary package is the same, the source package not.
    const spec = await compare(await build("4.5", { specComment: "a note" }), old);
    assert.equal(spec.code, 0, spec.out);
    assert.match(spec.out, /^build-compare: cmp\.src differs$/m);
    assert.doesNotMatch(spec.out, /cmp\.noarch differs/);
  });

  it("should do nothing without a previous build", async () => {
    const r = await compare(await build("5.1"), undefined);
    assert.equal(r.code, 0);
    assert.match(r.out, /no previous build to compare with/);
    const empty = path.join(tmp, "empty");
    mkdirSync(empty);
    assert.equal((await compare(await build("5.2"), empty)).code, 0);
  });
});
