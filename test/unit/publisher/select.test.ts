/**
 * The publishing selection: which binaries of an arch's packages a published repository holds
 * (selectArch), and how the archs' contributions are merged (mergeArchs).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mergeArchs, publishedPath, selectArch } from "../../../actors/publisher/select.ts";
import type { SelectedBinary } from "../../../actors/publisher/protocol.ts";
import type { PublishBinary, PublishPackage } from "../../../actors/repo/protocol.ts";

/** A binary from its rpmbuild file name, `[E:]name-version-release.arch.rpm`. */
function bin(spec: string): PublishBinary {
  const m = /^(?:(\d+):)?(.+)-([^-]+)-([^-]+)\.([^.]+)\.rpm$/.exec(spec);
  assert.ok(m, `fixture ${spec}`);
  const filename = spec.replace(/^\d+:/, "");
  const b: PublishBinary = {
    filename,
    name: m[2]!,
    version: m[3]!,
    release: m[4]!,
    arch: m[5]!,
    isSource: m[5] === "src" || m[5] === "nosrc",
    sha256: createHash("sha256").update(spec).digest("hex"),
    md5: createHash("md5").update(spec).digest("hex"),
    size: spec.length,
  };
  if (m[1] !== undefined) b.epoch = Number(m[1]);
  return b;
}

function pkg(name: string, files: string[], flags: { publish?: boolean; sourceaccess?: boolean } = {}): PublishPackage {
  return {
    package: name,
    publish: flags.publish ?? true,
    sourceaccess: flags.sourceaccess ?? true,
    binaries: files.map(bin),
  };
}

/** A previous publication's entry, as the publisher stored it. */
function published(pkgName: string, spec: string): SelectedBinary {
  const b = bin(spec);
  return { ...b, package: pkgName, path: publishedPath(b) };
}

/** path → package, the readable form of a selection. */
function view(binaries: readonly SelectedBinary[]): Record<string, string> {
  return Object.fromEntries(binaries.map((b) => [b.path, b.package]));
}

describe("publisher/select", () => {
  describe("selectArch", () => {
    it("should give a binary name to the first package in OBS's package order, whatever the versions", () => {
      // Listed out of order on purpose: the order is OBS's, not the input's.
      const sel = selectArch(
        [
          pkg("zlib-ng", ["zlib-9.0-1.x86_64.rpm"]),
          pkg("zlib", ["zlib-1.2-1.x86_64.rpm", "zlib-devel-1.2-1.x86_64.rpm"]),
        ],
        undefined
      );
      assert.deepEqual(view(sel.binaries), {
        "x86_64/zlib-1.2-1.x86_64.rpm": "zlib",
        "x86_64/zlib-devel-1.2-1.x86_64.rpm": "zlib",
      });
      assert.deepEqual(sel.conflicts, [{ key: "zlib.x86_64", winner: "zlib", losers: ["zlib-ng"] }]);
    });

    it("should order maintenance incidents by number, the highest first, after the package itself", () => {
      const incidents = [pkg("foo.99", ["foo-1.0-99.x86_64.rpm"]), pkg("foo.100", ["foo-1.0-100.x86_64.rpm"])];
      const sel = selectArch(incidents, undefined);
      assert.deepEqual(view(sel.binaries), { "x86_64/foo-1.0-100.x86_64.rpm": "foo.100" });
      assert.deepEqual(sel.conflicts, [{ key: "foo.x86_64", winner: "foo.100", losers: ["foo.99"] }]);
      // As OBS's orderpackids: a name without an incident number sorts before its incidents.
      const withBase = selectArch([...incidents, pkg("foo", ["foo-1.0-1.x86_64.rpm"])], undefined);
      assert.deepEqual(view(withBase.binaries), { "x86_64/foo-1.0-1.x86_64.rpm": "foo" });
      assert.deepEqual(withBase.conflicts, [{ key: "foo.x86_64", winner: "foo", losers: ["foo.100", "foo.99"] }]);
    });

    it("should keep the highest epoch, version and release of a name within one package", () => {
      const sel = selectArch(
        [
          pkg("a", ["tool-1.10-1.x86_64.rpm", "tool-1.9-7.x86_64.rpm", "tool-1.10-0.x86_64.rpm"]),
          pkg("b", ["lib-2.0-1.x86_64.rpm", "1:lib-0.5-1.x86_64.rpm"]),
        ],
        undefined
      );
      assert.deepEqual(view(sel.binaries), {
        "x86_64/lib-0.5-1.x86_64.rpm": "b",
        "x86_64/tool-1.10-1.x86_64.rpm": "a",
      });
      // Versions within one package are not conflicts between packages.
      assert.deepEqual(sel.conflicts, []);
    });

    it("should decide per name and arch: the same name of another arch, and the source package, are separate", () => {
      const sel = selectArch(
        [
          pkg("a", ["foo-1-1.x86_64.rpm", "foo-1-1.src.rpm"]),
          pkg("b", ["foo-2-1.noarch.rpm", "foo-2-1.src.rpm", "foo-2-1.x86_64.rpm"]),
        ],
        undefined
      );
      assert.deepEqual(view(sel.binaries), {
        "noarch/foo-2-1.noarch.rpm": "b",
        "src/foo-1-1.src.rpm": "a",
        "x86_64/foo-1-1.x86_64.rpm": "a",
      });
      assert.deepEqual(
        sel.conflicts.map((c) => [c.key, c.winner, c.losers]),
        [
          ["foo.src", "a", ["b"]],
          ["foo.x86_64", "a", ["b"]],
        ]
      );
    });

    it("should keep what a publish-disabled package published before, and nothing it built since", () => {
      const previous = [
        published("old", "old-1.0-1.x86_64.rpm"),
        published("old", "old-doc-1.0-1.noarch.rpm"),
        published("other", "other-1-1.x86_64.rpm"),
      ];
      const sel = selectArch(
        [
          pkg("old", ["old-2.0-1.x86_64.rpm", "old-new-2.0-1.x86_64.rpm"], { publish: false }),
          pkg("other", ["other-2-1.x86_64.rpm"]),
          pkg("never", ["never-1-1.x86_64.rpm"], { publish: false }),
        ],
        previous
      );
      assert.deepEqual(view(sel.binaries), {
        "noarch/old-doc-1.0-1.noarch.rpm": "old",
        "x86_64/old-1.0-1.x86_64.rpm": "old",
        "x86_64/other-2-1.x86_64.rpm": "other",
      });
      // The kept binaries are the published ones, content included.
      assert.equal(sel.binaries.find((b) => b.name === "old")?.sha256, previous[0]!.sha256);
    });

    it("should let a publish-disabled package keep its names against packages after it", () => {
      const sel = selectArch(
        [pkg("a", ["shared-3-1.x86_64.rpm"], { publish: false }), pkg("b", ["shared-5-1.x86_64.rpm"])],
        [published("a", "shared-1-1.x86_64.rpm")]
      );
      assert.deepEqual(view(sel.binaries), { "x86_64/shared-1-1.x86_64.rpm": "a" });
      assert.deepEqual(sel.conflicts, [{ key: "shared.x86_64", winner: "a", losers: ["b"] }]);
    });

    it("should leave out source and debug packages of a package whose sources are hidden", () => {
      const files = [
        "s-1-1.x86_64.rpm",
        "s-1-1.src.rpm",
        "s-debuginfo-1-1.x86_64.rpm",
        "s-debugsource-1-1.x86_64.rpm",
        "s-debugger-1-1.x86_64.rpm",
      ];
      const hidden = selectArch([pkg("s", files, { sourceaccess: false })], undefined);
      assert.deepEqual(
        hidden.binaries.map((b) => b.filename),
        ["s-1-1.x86_64.rpm", "s-debugger-1-1.x86_64.rpm"]
      );
      const open = selectArch([pkg("s", files)], undefined);
      assert.equal(open.binaries.length, files.length);
    });
  });

  describe("mergeArchs", () => {
    const arch = (a: string, pkgs: PublishPackage[]): { arch: string; binaries: SelectedBinary[] } => ({
      arch: a,
      binaries: selectArch(pkgs, undefined).binaries,
    });

    it("should take a path from the first arch in the repository's order, and the rest from each arch", () => {
      const x86 = arch("x86_64", [pkg("a", ["a-1-1.x86_64.rpm", "a-doc-1-1.noarch.rpm", "a-1-1.src.rpm"])]);
      const i586 = arch("i586", [pkg("a", ["a-1-1.i586.rpm", "a-doc-1-1.noarch.rpm", "a-1-1.src.rpm"])]);
      // Same paths, different content on each arch (a rebuilt noarch package differs).
      for (const b of i586.binaries) b.sha256 = `i586-${b.sha256}`;
      const merged = mergeArchs([x86, i586]);
      assert.deepEqual(
        merged.binaries.map((b) => b.path),
        ["i586/a-1-1.i586.rpm", "noarch/a-doc-1-1.noarch.rpm", "src/a-1-1.src.rpm", "x86_64/a-1-1.x86_64.rpm"]
      );
      assert.ok(!merged.binaries.find((b) => b.path === "noarch/a-doc-1-1.noarch.rpm")!.sha256.startsWith("i586-"));
      assert.ok(!merged.binaries.find((b) => b.path === "src/a-1-1.src.rpm")!.sha256.startsWith("i586-"));
      const reversed = mergeArchs([i586, x86]);
      assert.ok(reversed.binaries.find((b) => b.path === "noarch/a-doc-1-1.noarch.rpm")!.sha256.startsWith("i586-"));
      assert.notEqual(reversed.digest, merged.digest);
    });

    it("should give equal trees equal digests and any change of content another", () => {
      const one = arch("x86_64", [pkg("a", ["a-1-1.x86_64.rpm"]), pkg("b", ["b-1-1.x86_64.rpm"])]);
      const same = arch("x86_64", [pkg("b", ["b-1-1.x86_64.rpm"]), pkg("a", ["a-1-1.x86_64.rpm"])]);
      assert.equal(mergeArchs([one]).digest, mergeArchs([same]).digest);
      const changed = arch("x86_64", [pkg("a", ["a-1-1.x86_64.rpm"]), pkg("b", ["b-1-1.x86_64.rpm"])]);
      changed.binaries[1]!.sha256 = "0".repeat(64);
      assert.notEqual(mergeArchs([changed]).digest, mergeArchs([one]).digest);
      assert.deepEqual(mergeArchs([]), { binaries: [], digest: createHash("sha256").digest("hex") });
    });
  });
});
