import assert from "node:assert/strict";
import { lstat, readFile, readdir, readlink, rm, stat } from "node:fs/promises";
import path from "node:path";
import { minimalEtc, preparedEtc, readHostAlternatives } from "../../sandbox/etc.ts";

// The constructed /etc on a real file system: written once per process, read-only in each run.

describe("sandbox/etc (real files)", () => {
  it("should write the constructed /etc once and hand the same directory to every run", async () => {
    const a = await preparedEtc({ hostname: "etc-test", alternatives: true });
    const b = await preparedEtc({ hostname: "etc-test", alternatives: true });
    assert.equal(a, b);
    const other = await preparedEtc({ hostname: "etc-other" });
    assert.notEqual(other, a);
    for (const [name, content] of Object.entries(minimalEtc({ hostname: "etc-test", network: false }))) {
      if (typeof content === "string") {
        assert.equal(await readFile(path.join(a, name), "utf8"), content, name);
        assert.equal((await stat(path.join(a, name))).mode & 0o777, 0o644, name);
      } else assert.equal(await readlink(path.join(a, name)), content.link, name);
    }
    assert.equal((await stat(path.join(a, "alternatives"))).isDirectory(), true);
    // The host's links are in it: bwrap need not make them for each run.
    const links = await readHostAlternatives();
    assert.deepEqual((await readdir(path.join(a, "alternatives"))).sort(), links.map(([n]) => n).sort());
    for (const [name, target] of links) assert.equal(await readlink(path.join(a, "alternatives", name)), target, name);
    await assert.rejects(lstat(path.join(other, "alternatives")), { code: "ENOENT" });
    await assert.rejects(lstat(path.join(a, "resolv.conf")), { code: "ENOENT" }, "no network, no resolv.conf");
  });

  it("should make it again when something removed it (a tmp cleaner)", async () => {
    const a = await preparedEtc({ hostname: "etc-gone" });
    await rm(a, { recursive: true, force: true });
    const b = await preparedEtc({ hostname: "etc-gone" });
    assert.notEqual(b, a);
    assert.equal(await readFile(path.join(b, "hostname"), "utf8"), "etc-gone\n");
  });

  it("should read the host's alternatives that point into /usr, without manual pages", async () => {
    const links = await readHostAlternatives();
    for (const [name, target] of links) {
      assert.ok(target.startsWith("/usr/"), `${name} -> ${target}`);
      assert.ok(!/\.(gz|xz)$/.test(name), name);
    }
    const awk = await readlink("/etc/alternatives/awk").catch(() => undefined);
    if (awk?.startsWith("/usr/"))
      assert.deepEqual(
        links.find(([n]) => n === "awk"),
        ["awk", awk]
      );
  });
});
