/**
 * Hidden projects, hidden sources and binary downloads, through the real source role: what
 * members, outsiders, anonymous callers and kiln's own roles see, and the `access.check` verb
 * other roles ask.
 */
import assert from "node:assert/strict";
import { AccessGate, AccessNeed } from "../../actors/index.ts";
import { Identity, Role, RpcClient, subjects } from "../../transport/index.ts";
import { commitFiles, md5Of, projectXml, startSourceHarness, type SourceHarness } from "../helpers/source-role.ts";
import { refused } from "../helpers/refused.ts";

describe("source/access (integration)", function () {
  this.timeout(60_000);
  let h: SourceHarness;
  let member: Identity;
  let outsider: Identity;
  let secretSpec: string;

  before(async () => {
    h = await startSourceHarness();
    member = await h.addUser("member");
    outsider = await h.addUser("outsider");
    const admin = h.client(h.admin);
    await admin.call("project.put-meta", {
      project: "secret",
      xml: projectXml("secret", {
        extra: `<person userid="member" role="reader"/><access><disable/></access>`,
        repos: [{ name: "std" }],
      }),
    });
    secretSpec = "Name: secret\nVersion: 1\n# the hidden recipe\n";
    await commitFiles(admin, "secret", "s", { "s.spec": secretSpec });
    await admin.call("project.put-meta", {
      project: "closed",
      xml: projectXml("closed", {
        extra: `<person userid="member" role="maintainer"/><sourceaccess><disable/></sourceaccess><binarydownload><disable repository="std"/></binarydownload>`,
        repos: [{ name: "std" }, { name: "open" }],
      }),
    });
    await commitFiles(admin, "closed", "c", { "c.spec": "Name: c\n# closed recipe\n" });
    await admin.call("project.put-meta", {
      project: "public",
      xml: projectXml("public", { repos: [{ name: "std" }] }),
    });
    await commitFiles(admin, "public", "p", { "p.spec": "Name: p\n" });
  });
  after(async () => {
    await h?.stop();
  });

  describe("access disabled: hidden projects", () => {
    it("should list, show and read the project for members, admins and roles only", async () => {
      for (const who of [h.admin, member, h.service]) {
        const c = h.client(who);
        assert.ok((await c.call("project.list", {})).some((p) => p.name === "secret"));
        assert.match((await c.call("project.get-meta", { project: "secret" })).xml, /<access>/);
        assert.deepEqual(await c.call("package.list", { project: "secret" }), ["s"]);
        assert.equal((await c.call("package.get", { project: "secret", package: "s" })).rev, 1);
      }
      for (const who of [outsider, undefined]) {
        const c = h.client(who);
        assert.deepEqual(
          (await c.call("project.list", {})).map((p) => p.name),
          ["closed", "public"]
        );
        const gone = /project 'secret' does not exist/;
        await refused(c.call("project.get-meta", { project: "secret" }), "ERR_NOT_FOUND", gone);
        await refused(c.call("project.get-config", { project: "secret" }), "ERR_NOT_FOUND", gone);
        await refused(c.call("package.list", { project: "secret" }), "ERR_NOT_FOUND", gone);
        await refused(c.call("package.get-meta", { project: "secret", package: "s" }), "ERR_NOT_FOUND", gone);
        await refused(c.call("package.get", { project: "secret", package: "s" }), "ERR_NOT_FOUND", gone);
        await refused(c.call("package.history", { project: "secret", package: "s" }), "ERR_NOT_FOUND", gone);
        await refused(c.call("project.build-config", { project: "secret", repository: "std" }), "ERR_NOT_FOUND", gone);
        await refused(
          c.call("project.buildinfo", { project: "secret", repository: "std", arch: "x86_64" }),
          "ERR_NOT_FOUND",
          gone
        );
      }
    });

    it("should refuse an outsider's changes to it as if it did not exist", async () => {
      await refused(
        commitFiles(h.client(outsider), "secret", "s", { "s.spec": "x" }),
        "ERR_NOT_FOUND",
        /project 'secret' does not exist/
      );
      // A reader is a member but not a maintainer.
      await refused(
        commitFiles(h.client(member), "secret", "s", { "s.spec": "x" }),
        "ERR_FORBIDDEN",
        /user 'member' may not commit to package 'secret\/s'/
      );
    });

    it("should not let an existing project be hidden afterwards", async () => {
      await refused(
        h.client(h.admin).call("project.put-meta", {
          project: "public",
          xml: projectXml("public", { extra: "<access><disable/></access>", repos: [{ name: "std" }] }),
        }),
        "ERR_CONFLICT",
        /'access' can only be disabled when the project is created/
      );
    });

    it("should show its events to members only", async () => {
      const start = (await h.client(h.admin).call("events.read", { waitMs: 0 })).next - 1;
      await h.client(h.admin).call("project.put-config", { project: "secret", text: "BuildFlags: s\n" });
      await h.client(h.admin).call("project.put-config", { project: "public", text: "BuildFlags: p\n" });
      const read = async (who?: Identity): Promise<string[]> => {
        const out: string[] = [];
        let after = start;
        for (let i = 0; i < 10; i++) {
          const r = await h.client(who).call("events.read", { after, waitMs: 1000 }, { timeoutMs: 5000 });
          out.push(...r.events.map((e) => `${e.event.type} ${e.event.project}`));
          after = r.next - 1;
          if (out.includes("project.config-changed public")) break;
        }
        return out;
      };
      assert.deepEqual(await read(member), ["project.config-changed secret", "project.config-changed public"]);
      assert.deepEqual(await read(outsider), ["project.config-changed public"]);
      assert.deepEqual(await read(), ["project.config-changed public"]);
    });

    it("should not name hidden projects when refusing to delete what they build against", async () => {
      const mine = h.client(outsider);
      const admin = h.client(h.admin);
      await mine.call("project.put-meta", {
        project: "home:outsider",
        xml: projectXml("home:outsider", { repos: [{ name: "r" }] }),
      });
      const on = (name: string, extra = "") => ({
        project: name,
        xml: projectXml(name, { extra, repos: [{ name: "u", paths: [["home:outsider", "r"]] }] }),
      });
      await admin.call("project.put-meta", on("hidden-user", `<access><disable/></access>`));
      await admin.call("project.put-meta", on("open-user"));
      const e1 = await refused(
        mine.call("project.delete", { project: "home:outsider" }),
        "ERR_CONFLICT",
        /^project 'home:outsider' is used by 'open-user', 1 project you cannot see; delete with --force/
      );
      const e2 = await refused(
        mine.call("project.put-meta", { project: "home:outsider", xml: projectXml("home:outsider") }),
        "ERR_CONFLICT",
        /cannot remove repository 'r', used by 'open-user\/u', 1 repository of a project you cannot see;/
      );
      for (const e of [e1, e2]) assert.doesNotMatch(JSON.stringify({ m: e.message, d: e.data }), /hidden-user/);
      // Those who may see it are told its name.
      await refused(
        admin.call("project.delete", { project: "home:outsider" }),
        "ERR_CONFLICT",
        /used by 'hidden-user', 'open-user';/
      );
      for (const p of ["hidden-user", "open-user", "home:outsider"]) await admin.call("project.delete", { project: p });
    });
  });

  describe("sourceaccess disabled", () => {
    it("should show the package but not its files to outsiders", async () => {
      for (const who of [outsider, undefined]) {
        const c = h.client(who);
        assert.deepEqual(await c.call("package.list", { project: "closed" }), ["c"]);
        await c.call("package.get-meta", { project: "closed", package: "c" });
        const why = /may not read the (sources|history) of package 'closed\/c': its sources are hidden/;
        await refused(c.call("package.get", { project: "closed", package: "c" }), "ERR_FORBIDDEN", why);
        await refused(c.call("package.history", { project: "closed", package: "c" }), "ERR_FORBIDDEN", why);
        await refused(
          c.call("package.buildinfo", { project: "closed", package: "c", repository: "std", arch: "x86_64" }),
          "ERR_FORBIDDEN"
        );
        assert.deepEqual(
          await c.call("project.buildinfo", { project: "closed", repository: "std", arch: "x86_64" }),
          []
        );
      }
    });

    it("should still give the files to members and to kiln's roles, so builds work", async () => {
      for (const who of [member, h.service]) {
        const c = h.client(who);
        assert.equal((await c.call("package.get", { project: "closed", package: "c" })).files.length, 1);
        const infos = await c.call("project.buildinfo", { project: "closed", repository: "std", arch: "x86_64" });
        assert.deepEqual(
          infos.map((i) => [i.package, i.specFile]),
          [["c", "c.spec"]]
        );
      }
    });

    it("should not hand hidden content to a committer who only names its md5", async () => {
      await h.client(h.admin).call("project.put-meta", {
        project: "home:outsider",
        xml: projectXml("home:outsider", { extra: `<person userid="outsider" role="maintainer"/>` }),
      });
      const src = h.client(outsider);
      const entry = { name: "stolen.spec", md5: md5Of(secretSpec), size: Buffer.byteLength(secretSpec) };
      const r = await src.call("package.commit", { project: "home:outsider", package: "x", files: [entry] });
      assert.deepEqual(r, { missing: [entry] }, "the server must ask for the content");
      // Having it, they upload it and the commit goes through (the store keeps one copy).
      const done = await commitFiles(src, "home:outsider", "x", { "stolen.spec": secretSpec });
      assert.equal(done.uploadedFiles, 1);
      assert.equal(done.revision.rev, 1);
    });

    it("should not let readable sources be hidden afterwards", async () => {
      await refused(
        h.client(h.admin).call("package.put-meta", {
          project: "public",
          package: "p",
          xml: `<package name="p" project="public"><title/><description/><sourceaccess><disable/></sourceaccess></package>`,
        }),
        "ERR_CONFLICT",
        /'sourceaccess' can only be disabled before the first commit/
      );
    });
  });

  describe("access.check for other roles", () => {
    // As the repo role does: the caller's request, exactly as received, checked by the source role.
    const gate = (): AccessGate => new AccessGate(new RpcClient(h.ctx.nc, { signer: h.service }));
    const request = (who: Identity | undefined, args: Record<string, unknown>) => {
      const subject = subjects.rpc(Role.Repo, "binaries.list");
      return { subject, args, ...(who ? { auth: who.sign(subject, args) } : {}) };
    };
    const target = { project: "closed", repository: "std", arch: "x86_64", package: "c" };

    it("should refuse binary downloads where binarydownload is disabled, to non-members only", async () => {
      assert.equal(await gate().require(request(member, target), target, AccessNeed.Binaries), "member");
      await refused(
        gate().require(request(outsider, target), target, AccessNeed.Binaries),
        "ERR_FORBIDDEN",
        /user 'outsider' may not download the binaries of package 'closed\/c': binary downloads are disabled/
      );
      const open = { ...target, repository: "open" };
      assert.equal(await gate().require(request(outsider, open), open, AccessNeed.Binaries), "outsider");
      assert.equal(await gate().require(request(undefined, open), open, AccessNeed.Binaries), "anonymous");
    });

    it("should hide hidden projects' results from outsiders", async () => {
      const t = { project: "secret" };
      assert.equal(await gate().require(request(member, t), t, AccessNeed.See), "member");
      await refused(
        gate().require(request(outsider, t), t, AccessNeed.See),
        "ERR_NOT_FOUND",
        /'secret' does not exist/
      );
      await refused(gate().require(request(undefined, t), t, AccessNeed.See), "ERR_NOT_FOUND");
    });

    it("should refuse a passed request replayed or tampered with", async () => {
      const t = { project: "public" };
      const req = request(member, t);
      await gate().require(req, t, AccessNeed.See);
      await refused(gate().require(req, t, AccessNeed.See), "ERR_UNAUTHENTICATED", /replayed/);
      const forged = { ...request(member, t), args: { project: "other" } };
      await refused(gate().require(forged, t, AccessNeed.See), "ERR_UNAUTHENTICATED", /digest does not match/);
    });

    it("should let only maintainers change through another role", async () => {
      const t = { project: "closed" };
      const call = (who: Identity | undefined): Promise<string> => {
        const subject = subjects.sched("x86_64", "rebuild.request");
        const args = { project: "closed" };
        return gate().require(
          { subject, args, ...(who ? { auth: who.sign(subject, args) } : {}) },
          t,
          AccessNeed.Write
        );
      };
      assert.equal(await call(member), "member");
      await refused(call(outsider), "ERR_FORBIDDEN", /user 'outsider' may not rebuild.request for project 'closed'/);
      await refused(call(undefined), "ERR_UNAUTHENTICATED");
    });
  });

  describe("service users", () => {
    it("should let kiln's roles read everything but change nothing", async () => {
      const c = h.client(h.service);
      assert.ok((await c.call("user.whoami", {})).service);
      await refused(
        c.call("project.put-config", { project: "public", text: "x" }),
        "ERR_FORBIDDEN",
        /user 'kiln-roles' may not change the config of project 'public'/
      );
      await refused(
        c.call("project.put-meta", { project: "new", xml: projectXml("new") }),
        "ERR_FORBIDDEN",
        /may not create project 'new'/
      );
    });

    it("should register a service user given with --service, and refuse admin and service at once", async () => {
      const role = await h.addUser("remote-scheduler", { service: true });
      assert.equal((await h.client(role).call("package.get", { project: "secret", package: "s" })).rev, 1);
      const other = Identity.create();
      await refused(
        h.client(h.admin).call("user.add", { name: "both", pubkey: other.publicKey, admin: true, service: true }),
        "ERR_INVALID_INPUT",
        /either an admin or a service/
      );
    });
  });
});
