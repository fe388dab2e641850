import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { downloadBlob } from "../../transport/index.ts";
import type { SourceApi } from "../../actors/index.ts";
import { commitFiles, projectXml, startSourceHarness, type SourceHarness } from "../helpers/source-role.ts";
import { refused } from "../helpers/refused.ts";

type Events = SourceApi["events.read"]["res"]["events"];

/** Rejects with a kiln error of `code` whose message matches `why`. */
describe("source/role (integration)", function () {
  this.timeout(60_000);
  let h: SourceHarness;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-source-test-"));

  before(async () => {
    h = await startSourceHarness();
  });
  after(async () => {
    await h?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** The events since `after` (a stream sequence), read through the role as admin. */
  async function eventsSince(after: number, want: number): Promise<Events> {
    const out: Events = [];
    let cursor = after;
    for (let i = 0; i < 20 && out.length < want; i++) {
      const r = await h.client(h.admin).call("events.read", { after: cursor, waitMs: 1000 }, { timeoutMs: 5000 });
      out.push(...r.events);
      cursor = r.next - 1;
    }
    return out;
  }
  async function cursor(): Promise<number> {
    return (await h.client(h.admin).call("events.read", { waitMs: 0, max: 1 }, { timeoutMs: 5000 })).next - 1;
  }

  describe("projects", () => {
    it("should store a project meta normalised, and not change it when the same meta is written again", async () => {
      const src = h.client(h.admin);
      const xml = `<project name="base">\n  <description>the base</description><title> Base </title>\n<repository name="std"><arch>x86_64</arch></repository></project>`;
      const r1 = await src.call("project.put-meta", { project: "base", xml });
      assert.equal(r1.created, true);
      const got = await src.call("project.get-meta", { project: "base" });
      assert.equal(got.xml, r1.xml);
      assert.equal(got.meta.title, "Base");
      const before = await h.digest();
      const r2 = await src.call("project.put-meta", { project: "base", xml: got.xml });
      assert.equal(r2.created, false);
      assert.equal(r2.xml, got.xml);
      assert.deepEqual(await h.digest(), before);
    });

    it("should announce meta changes with the repositories before and after", async () => {
      const src = h.client(h.admin);
      const c = await cursor();
      await src.call("project.put-meta", {
        project: "base",
        xml: projectXml("base", { repos: [{ name: "std" }, { name: "other", archs: ["aarch64"] }] }),
      });
      const [e] = await eventsSince(c, 1);
      assert.equal(e?.event.type, "project.meta-changed");
      assert.deepEqual(e.event.previous, [{ name: "std", archs: ["x86_64"] }]);
      assert.deepEqual(e.event.repositories, [
        { name: "std", archs: ["x86_64"] },
        { name: "other", archs: ["aarch64"] },
      ]);
      assert.equal(e.event.created, false);
      assert.equal(e.event.user, "admin");
    });

    it("should keep the config with history and combine the configs along a path, base first", async () => {
      const src = h.client(h.admin);
      const c = await cursor();
      assert.deepEqual(await src.call("project.put-config", { project: "base", text: "Macros:\n%base 1\n" }), {
        rev: 1,
      });
      assert.deepEqual(await src.call("project.put-config", { project: "base", text: "BuildFlags: b\n" }), { rev: 2 });
      assert.equal((await src.call("project.get-config", { project: "base", rev: 1 })).text, "Macros:\n%base 1\n");
      assert.equal((await src.call("project.get-config", { project: "base" })).rev, 2);
      const evs = await eventsSince(c, 2);
      assert.deepEqual(
        evs.map((e) => [e.event.type, e.event.rev]),
        [
          ["project.config-changed", 1],
          ["project.config-changed", 2],
        ]
      );
      await src.call("project.put-meta", {
        project: "mid",
        xml: projectXml("mid", { repos: [{ name: "m", paths: [["base", "std"]] }] }),
      });
      await src.call("project.put-config", { project: "mid", text: "BuildFlags: m\n" });
      await src.call("project.put-meta", {
        project: "top",
        xml: projectXml("top", { repos: [{ name: "t", paths: [["mid", "m"]] }] }),
      });
      const view = await src.call("project.build-config", { project: "top", repository: "t" });
      assert.deepEqual(
        view.path.map((e) => `${e.project}/${e.repository}`),
        ["top/t", "mid/m", "base/std"]
      );
      assert.deepEqual(
        view.layers.map((l) => l.project),
        ["base", "mid", "top"]
      );
      // OBS's source server: `%define _project`, then each config that exists, base first.
      assert.ok(
        view.text.startsWith(
          "%define _project top\n" +
            "\n### from base\n%define _repository std\n%define _is_this_project 0\n%define _is_in_project 0\nBuildFlags: b\n" +
            "\n### from mid\n%define _repository m\nBuildFlags: m\n"
        ),
        view.text
      );
      assert.doesNotMatch(view.text, /### from top\n%define _repository/, "top has no config");
    });

    it("should refuse to delete a project others build against, unless forced", async () => {
      const src = h.client(h.admin);
      await refused(
        src.call("project.delete", { project: "mid" }),
        "ERR_CONFLICT",
        /project 'mid' is used by 'top'; delete with --force/
      );
      const c = await cursor();
      await src.call("project.delete", { project: "mid", force: true });
      await refused(src.call("project.get-meta", { project: "mid" }), "ERR_NOT_FOUND", /project 'mid' does not exist/);
      const [e] = await eventsSince(c, 1);
      assert.equal(e?.event.type, "project.deleted");
      assert.deepEqual(e.event.repositories, [{ name: "m", archs: ["x86_64"] }]);
      assert.deepEqual(
        (await src.call("project.list", {})).map((p) => p.name),
        ["base", "top"]
      );
    });

    it("should remove a repository others build against only when forced", async () => {
      const src = h.client(h.admin);
      await src.call("project.put-meta", { project: "lib", xml: projectXml("lib", { repos: [{ name: "std" }] }) });
      await src.call("project.put-meta", {
        project: "user",
        xml: projectXml("user", { repos: [{ name: "u", paths: [["lib", "std"]] }] }),
      });
      const kept = projectXml("lib", { repos: [{ name: "other", archs: ["aarch64"] }] });
      await refused(
        src.call("project.put-meta", { project: "lib", xml: kept }),
        "ERR_CONFLICT",
        /project 'lib': cannot remove repository 'std', used by 'user\/u'; change with --force/
      );
      assert.match((await src.call("project.get-meta", { project: "lib" })).xml, /<repository name="std">/);
      // Adding a repository removes nothing.
      await src.call("project.put-meta", {
        project: "lib",
        xml: projectXml("lib", { repos: [{ name: "std" }, { name: "more" }] }),
      });
      const c = await cursor();
      await src.call("project.put-meta", { project: "lib", xml: kept, force: true });
      const [e] = await eventsSince(c, 1);
      assert.equal(e?.event.type, "project.meta-changed");
      assert.deepEqual(e.event.repositories, [{ name: "other", archs: ["aarch64"] }]);
      assert.doesNotMatch((await src.call("project.get-meta", { project: "lib" })).xml, /name="std"/);
    });

    it("should expand a path as OBS does: only the last entry's own path is followed", async () => {
      const src = h.client(h.admin);
      for (const [p, r, paths] of [
        ["pc", "z", []],
        ["pd", "w", []],
        ["pa", "x", [["pc", "z"]]],
        ["pb", "y", [["pd", "w"]]],
        [
          "ptop",
          "t",
          [
            ["pa", "x"],
            ["pb", "y"],
          ],
        ],
      ] as [string, string, [string, string][]][]) {
        await src.call("project.put-meta", { project: p, xml: projectXml(p, { repos: [{ name: r, paths }] }) });
        await src.call("project.put-config", { project: p, text: `BuildFlags: from-${p}\n` });
      }
      const view = await src.call("project.build-config", { project: "ptop", repository: "t" });
      assert.deepEqual(
        view.path.map((e) => `${e.project}/${e.repository}`),
        ["ptop/t", "pa/x", "pb/y", "pd/w"]
      );
      assert.deepEqual(
        view.layers.map((l) => l.project),
        ["pd", "pb", "pa", "ptop"]
      );
      assert.doesNotMatch(view.text, /from-pc/, "pa's own path is not part of ptop's");
      assert.match(view.text, /from-pd[\s\S]*from-pb[\s\S]*from-pa[\s\S]*from-ptop/);
    });
  });

  describe("sources and revisions", () => {
    const spec = "Name: hello\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n%description\nd\n";
    const tarball = Buffer.alloc(300_000, 7);

    it("should commit with osc's protocol and announce the revision", async () => {
      const src = h.client(h.admin);
      const c = await cursor();
      const r = await commitFiles(src, "base", "hello", { "hello.spec": spec, "hello.tar.gz": tarball }, "first");
      assert.equal(r.revision.rev, 1);
      assert.equal(r.uploadedFiles, 2);
      assert.equal(r.revision.user, "admin");
      assert.equal(r.revision.comment, "first");
      assert.deepEqual(
        r.revision.files.map((f) => f.name),
        ["hello.spec", "hello.tar.gz"]
      );
      const [e] = await eventsSince(c, 1);
      assert.equal(e?.event.type, "source.committed");
      assert.equal(e.event.package, "hello");
      assert.equal(e.event.rev, 1);
      assert.equal(e.event.srcmd5, r.revision.srcmd5);
      assert.equal(e.event.files, 2);
      assert.equal(e.event.created, true);
    });

    it("should upload nothing and make no revision when the same files are committed again", async () => {
      const src = h.client(h.admin);
      const before = await h.digest();
      const r = await commitFiles(src, "base", "hello", { "hello.spec": spec, "hello.tar.gz": tarball }, "again");
      assert.equal(r.uploadedBytes, 0);
      assert.equal(r.revision.rev, 1);
      assert.deepEqual(await h.digest(), before);
    });

    it("should upload only the changed file in a new revision", async () => {
      const src = h.client(h.admin);
      const r = await commitFiles(src, "base", "hello", { "hello.spec": spec + "#\n", "hello.tar.gz": tarball }, "2");
      assert.equal(r.uploadedFiles, 1);
      assert.equal(r.uploadedBytes, Buffer.byteLength(spec + "#\n"));
      assert.equal(r.revision.rev, 2);
    });

    it("should check out any revision, and list the history", async () => {
      const src = h.client(h.admin);
      const r1 = await src.call("package.get", { project: "base", package: "hello", rev: 1 });
      const r2 = await src.call("package.get", { project: "base", package: "hello" });
      assert.equal(r2.rev, 2);
      const f1 = r1.files.find((f) => f.name === "hello.spec")!;
      await downloadBlob(src, f1.sha256, path.join(tmp, "spec1"));
      assert.equal(readFileSync(path.join(tmp, "spec1"), "utf8"), spec);
      const hist = await src.call("package.history", { project: "base", package: "hello" });
      assert.deepEqual(
        hist.map((x) => [x.rev, x.srcmd5, x.user, x.comment]),
        [
          [1, r1.srcmd5, "admin", "first"],
          [2, r2.srcmd5, "admin", "2"],
        ]
      );
      assert.ok(hist.every((x) => typeof x.time === "number" && !("files" in x)));
      await refused(
        src.call("package.get", { project: "base", package: "hello", rev: 3 }),
        "ERR_NOT_FOUND",
        /no revision 3/
      );
    });

    it("should give schedulers the parsed build info", async () => {
      const info = await h
        .client(h.service)
        .call("package.buildinfo", { project: "base", package: "hello", repository: "std", arch: "x86_64" });
      assert.equal(info.specFile, "hello.spec");
      assert.equal(info.version, "1");
      assert.equal(info.flags.build, true);
    });

    it("should delete a package and announce it", async () => {
      const src = h.client(h.admin);
      await commitFiles(src, "base", "gone", { "gone.spec": "Name: gone\n" });
      const c = await cursor();
      await src.call("package.delete", { project: "base", package: "gone", comment: "obsolete" });
      await refused(src.call("package.get", { project: "base", package: "gone" }), "ERR_NOT_FOUND", /'gone'/);
      assert.deepEqual(await src.call("package.list", { project: "base" }), ["hello"]);
      const [e] = await eventsSince(c, 1);
      assert.deepEqual([e?.event.type, e?.event.package, e?.event.comment], ["package.deleted", "gone", "obsolete"]);
    });

    it("should announce package meta changes, saying when the package is new", async () => {
      const src = h.client(h.admin);
      const c = await cursor();
      const xml = `<package name="meta-only" project="base"><title>t</title><description/></package>`;
      assert.equal((await src.call("package.put-meta", { project: "base", package: "meta-only", xml })).created, true);
      const [e] = await eventsSince(c, 1);
      assert.deepEqual(
        [e?.event.type, e?.event.package, e?.event.created],
        ["package.meta-changed", "meta-only", true]
      );
    });

    it("should keep the history of a meta with each change's user and comment, and drop it with the project", async () => {
      const src = h.client(h.admin);
      const pkgXml = (title: string) =>
        `<package name="p" project="metahist"><title>${title}</title><description/></package>`;
      await src.call("project.put-meta", { project: "metahist", xml: projectXml("metahist"), comment: "created" });
      await src.call("project.put-meta", { project: "metahist", xml: projectXml("metahist") }); // no change
      const second = await src.call("project.put-meta", {
        project: "metahist",
        xml: projectXml("metahist", { repos: [{ name: "std" }] }),
        comment: "add std",
      });
      const hist = await src.call("project.meta-history", { project: "metahist" });
      assert.deepEqual(
        hist.map((r) => [r.rev, r.user, r.comment]),
        [
          [1, "admin", "created"],
          [2, "admin", "add std"],
        ]
      );
      assert.equal(hist[1]?.xml, second.xml);
      await src.call("package.put-meta", { project: "metahist", package: "p", xml: pkgXml("one") });
      await src.call("package.put-meta", { project: "metahist", package: "p", xml: pkgXml("two"), comment: "retitle" });
      assert.deepEqual(
        (await src.call("package.meta-history", { project: "metahist", package: "p" })).map((r) => [r.rev, r.comment]),
        [
          [1, ""],
          [2, "retitle"],
        ]
      );
      const c = await cursor();
      await src.call("project.delete", { project: "metahist", comment: "done with it" });
      const [e] = await eventsSince(c, 1);
      assert.deepEqual([e?.event.type, e?.event.comment], ["project.deleted", "done with it"]);
      // Created again, it starts a new history.
      await src.call("project.put-meta", { project: "metahist", xml: projectXml("metahist") });
      assert.deepEqual(
        (await src.call("project.meta-history", { project: "metahist" })).map((r) => r.rev),
        [1]
      );
      await src.call("package.put-meta", { project: "metahist", package: "p", xml: pkgXml("again") });
      assert.equal((await src.call("package.meta-history", { project: "metahist", package: "p" })).length, 1);
      await src.call("project.delete", { project: "metahist" });
    });
  });

  describe("users, groups and roles", () => {
    it("should register users and answer who they are", async () => {
      const alice = await h.addUser("alice");
      const w = await h.client(alice).call("user.whoami", {});
      assert.deepEqual(w, { user: "alice", admin: false, service: false, anonymous: false, groups: [] });
      const anon = await h.client().call("user.whoami", {});
      assert.equal(anon.anonymous, true);
      const users = await h.client(alice).call("user.list", {});
      assert.deepEqual(
        users.map((u) => [u.name, u.admin, u.service]),
        [
          ["admin", true, false],
          ["alice", false, false],
          ["kiln-roles", false, true],
        ]
      );
      await refused(h.client().call("user.list", {}), "ERR_UNAUTHENTICATED");
      await refused(
        h.client(alice).call("user.add", { name: "mallory", pubkey: alice.publicKey }),
        "ERR_FORBIDDEN",
        /user 'alice' may not add users/
      );
      await refused(h.client(h.admin).call("user.remove", { name: "admin" }), "ERR_CONFLICT", /last admin/);
    });

    it("should let only admins, maintainers or the owner of a home project create projects", async () => {
      const bob = await h.addUser("bob");
      const src = h.client(bob);
      await refused(
        src.call("project.put-meta", { project: "bobs", xml: projectXml("bobs") }),
        "ERR_FORBIDDEN",
        /user 'bob' may not create project 'bobs': that needs an admin \(or it must be 'home:bob'\)/
      );
      // His home project: he becomes its maintainer.
      const r = await src.call("project.put-meta", { project: "home:bob", xml: projectXml("home:bob") });
      assert.match(r.xml, /<person userid="bob" role="maintainer"\/>/);
      await src.call("project.put-meta", { project: "home:bob:sub", xml: projectXml("home:bob:sub") });
      await refused(
        src.call("project.put-meta", { project: "base:bobs", xml: projectXml("base:bobs") }),
        "ERR_FORBIDDEN",
        /may not create project 'base:bobs': that needs an admin or a maintainer of 'base'/
      );
    });

    it("should let a project's maintainers change its meta, config and packages, and nobody else", async () => {
      const carol = await h.addUser("carol");
      const dave = await h.addUser("dave");
      await h.client(h.admin).call("project.put-meta", {
        project: "team",
        xml: projectXml("team", {
          extra: `<person userid="carol" role="maintainer"/><person userid="dave" role="bugowner"/>`,
        }),
      });
      const c = h.client(carol);
      await c.call("project.put-config", { project: "team", text: "BuildFlags: x\n" });
      const rev = await commitFiles(c, "team", "pkg", { "pkg.spec": "Name: pkg\n" });
      assert.equal(rev.revision.user, "carol");
      const d = h.client(dave);
      await refused(
        commitFiles(d, "team", "pkg", { "pkg.spec": "Name: evil\n" }),
        "ERR_FORBIDDEN",
        /user 'dave' may not commit to package 'team\/pkg': that needs an admin or a maintainer of project 'team' or of the package/
      );
      await refused(
        d.call("project.put-config", { project: "team", text: "" }),
        "ERR_FORBIDDEN",
        /user 'dave' may not change the config of project 'team'/
      );
      await refused(
        d.call("project.delete", { project: "team" }),
        "ERR_FORBIDDEN",
        /user 'dave' may not delete project 'team'/
      );
      await refused(
        h.client().call("project.put-config", { project: "team", text: "" }),
        "ERR_UNAUTHENTICATED",
        /must be signed by a registered user/
      );
    });

    it("should let a package's maintainers change that package only", async () => {
      const erin = await h.addUser("erin");
      await h.client(h.admin).call("package.put-meta", {
        project: "team",
        package: "erins",
        xml: `<package name="erins" project="team"><title/><description/><person userid="erin" role="maintainer"/></package>`,
      });
      const e = h.client(erin);
      await commitFiles(e, "team", "erins", { "erins.spec": "Name: erins\n" });
      await refused(commitFiles(e, "team", "pkg", { "x.spec": "x" }), "ERR_FORBIDDEN", /user 'erin' may not commit/);
      await refused(commitFiles(e, "team", "newpkg", { "x.spec": "x" }), "ERR_FORBIDDEN", /project 'team'/);
      await refused(
        e.call("project.put-meta", { project: "team", xml: projectXml("team") }),
        "ERR_FORBIDDEN",
        /user 'erin' may not change the meta of project 'team'/
      );
      await e.call("package.delete", { project: "team", package: "erins" });
    });

    it("should let only a maintainer unlock a locked project, and then take changes again", async () => {
      const gina = await h.addUser("gina");
      const hank = await h.addUser("hank");
      const people = `<person userid="gina" role="maintainer"/><person userid="hank" role="bugowner"/>`;
      const open = projectXml("vault", { extra: people, repos: [{ name: "std" }] });
      const locked = projectXml("vault", { extra: `${people}<lock><enable/></lock>`, repos: [{ name: "std" }] });
      await h.client(h.admin).call("project.put-meta", { project: "vault", xml: locked });
      const g = h.client(gina);
      await refused(commitFiles(g, "vault", "pkg", { "pkg.spec": "Name: pkg\n" }), "ERR_CONFLICT", /is locked/);
      await refused(
        h.client(hank).call("project.put-meta", { project: "vault", xml: open }),
        "ERR_FORBIDDEN",
        /user 'hank' may not change the meta of project 'vault'/
      );
      await g.call("project.put-meta", { project: "vault", xml: open, comment: "unlock for the fix" });
      assert.doesNotMatch((await g.call("project.get-meta", { project: "vault" })).xml, /<lock>/);
      assert.equal((await commitFiles(g, "vault", "pkg", { "pkg.spec": "Name: pkg\n" })).revision.rev, 1);
      // A package's own lock is lifted by its maintainers the same way.
      const pkgXml = (lock: string) => `<package name="pkg" project="vault"><title/><description/>${lock}</package>`;
      await g.call("package.put-meta", { project: "vault", package: "pkg", xml: pkgXml("<lock><enable/></lock>") });
      await refused(
        commitFiles(g, "vault", "pkg", { "pkg.spec": "x" }),
        "ERR_CONFLICT",
        /package 'vault\/pkg' is locked/
      );
      await commitFiles(g, "vault", "other", { "other.spec": "Name: other\n" });
      await g.call("package.put-meta", { project: "vault", package: "pkg", xml: pkgXml("<lock><disable/></lock>") });
      assert.equal((await commitFiles(g, "vault", "pkg", { "pkg.spec": "x" })).revision.rev, 2);
    });

    it("should give group members the group's role", async () => {
      const frank = await h.addUser("frank");
      await refused(h.client(frank).call("project.put-config", { project: "team", text: "y" }), "ERR_FORBIDDEN");
      await h.client(h.admin).call("group.set", { name: "builders", members: ["frank"] });
      const meta = await h.client(h.admin).call("project.get-meta", { project: "team" });
      await h.client(h.admin).call("project.put-meta", {
        project: "team",
        xml: meta.xml.replace("</project>", `<group groupid="builders" role="maintainer"/></project>`),
      });
      assert.deepEqual((await h.client(frank).call("user.whoami", {})).groups, ["builders"]);
      await h.client(frank).call("project.put-config", { project: "team", text: "y" });
      await refused(
        h.client(frank).call("group.set", { name: "builders", members: [] }),
        "ERR_FORBIDDEN",
        /may not change groups/
      );
      assert.deepEqual(
        (await h.client(frank).call("group.list", {})).map((g) => [g.name, g.members]),
        [["builders", ["frank"]]]
      );
      await h.client(h.admin).call("user.remove", { name: "frank" });
      assert.deepEqual(
        (await h.client(h.admin).call("group.list", {})).map((g) => [g.name, g.members]),
        [["builders", []]]
      );
      await refused(h.client(frank).call("user.whoami", {}), "ERR_UNAUTHENTICATED", /is not registered with this kiln/);
    });
  });
});
