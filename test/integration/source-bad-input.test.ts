/**
 * Bad input to the real source role: each refused with an error naming the problem, and the
 * store (every LMDB key/value except the replay cache, and every file under the blob directory)
 * unchanged afterwards.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import {
  CHUNK_BYTES,
  Identity,
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  decode,
  encode,
  subjects,
  unwrapEnvelope,
  uploadStream,
  type BlobApi,
  type SignedAuth,
} from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import {
  commitFiles,
  log,
  md5Of,
  projectXml,
  startSourceHarness,
  type SourceHarness,
  type StoreDigest,
} from "../helpers/source-role.ts";
import { MD5_COLLISION } from "../helpers/md5-collision.ts";
import { refused } from "../helpers/refused.ts";

describe("source/bad input (integration)", function () {
  this.timeout(60_000);
  let h: SourceHarness;
  let stored: StoreDigest;
  let alice: Identity;

  before(async () => {
    h = await startSourceHarness({
      uploadIdleMs: 300,
      limits: { maxFileBytes: 1024 * 1024, maxFiles: 20, maxConfigBytes: 4096 },
    });
    const src = h.client(h.admin);
    await src.call("project.put-meta", { project: "good", xml: projectXml("good", { repos: [{ name: "std" }] }) });
    await src.call("project.put-config", { project: "good", text: "BuildFlags: a\n" });
    await commitFiles(src, "good", "pkg", { "pkg.spec": "Name: pkg\n", "data.bin": randomBytes(3 * CHUNK_BYTES) });
    await src.call("project.put-meta", {
      project: "secret",
      xml: projectXml("secret", { extra: "<access><disable/></access>" }),
    });
    alice = await h.addUser("alice");
  });
  after(async () => {
    await h?.stop();
  });

  beforeEach(async () => {
    stored = await h.digest();
    assert.ok(stored.entries > 10, "the store has content to compare");
  });
  afterEach(async function () {
    if (this.currentTest?.state === "passed") assert.deepEqual(await h.digest(), stored, "the store changed");
  });

  const putMeta = (xml: string, project = "good"): Promise<unknown> =>
    h.client(h.admin).call("project.put-meta", { project, xml });

  describe("XML", () => {
    it("should refuse malformed XML, naming where", async () => {
      await refused(
        putMeta(`<project name="good"><title>t</title><description></project>`),
        "ERR_INVALID_INPUT",
        /project meta: malformed XML at line 1, column \d+/
      );
    });

    it("should refuse an entity-expansion bomb without expanding it", async () => {
      const bomb =
        `<?xml version="1.0"?>\n<!DOCTYPE project [\n <!ENTITY lol "lol">\n` +
        Array.from({ length: 9 }, (_, i) => ` <!ENTITY lol${i + 1} "${`&lol${i || ""};`.repeat(10)}">`).join("\n") +
        `\n]>\n<project name="good"><title>&lol9;</title><description/></project>`;
      await refused(putMeta(bomb), "ERR_INVALID_INPUT", /DOCTYPE at line 2, column 1 is not allowed \(no DTDs/);
      await refused(
        putMeta(`<project name="good"><title>&lol9;</title><description/></project>`),
        "ERR_INVALID_INPUT",
        /entity reference "&lol9;" .* is not allowed/
      );
    });

    it("should refuse unknown elements", async () => {
      await refused(
        putMeta(`<project name="good"><title/><description/><frobnicate/></project>`),
        "ERR_INVALID_INPUT",
        /unknown element <frobnicate>/
      );
    });

    it("should refuse attributes of the wrong type", async () => {
      await refused(
        putMeta(`<project name="good"><title/><description/><repository name="r" rebuild="sometimes"/></project>`),
        "ERR_INVALID_INPUT",
        /rebuild.*sometimes/
      );
      await refused(
        putMeta(`<project name="good"><title/><description/><person userid="alice" role="overlord"/></project>`),
        "ERR_INVALID_INPUT",
        /role.*overlord/
      );
    });
  });

  describe("repository paths", () => {
    it("should refuse a path to a missing project", async () => {
      await refused(
        putMeta(projectXml("good", { repos: [{ name: "std", paths: [["nowhere", "std"]] }] })),
        "ERR_INVALID_INPUT",
        /repository 'std' has a path to project 'nowhere', which does not exist/
      );
    });

    it("should refuse a path to a project hidden from the caller as if it did not exist", async () => {
      await h.client(h.admin).call("project.put-meta", {
        project: "home:alice",
        xml: projectXml("home:alice", { extra: `<person userid="alice" role="maintainer"/>`, repos: [{ name: "r" }] }),
      });
      stored = await h.digest();
      await refused(
        h.client(alice).call("project.put-meta", {
          project: "home:alice",
          xml: projectXml("home:alice", {
            extra: `<person userid="alice" role="maintainer"/>`,
            repos: [{ name: "r", paths: [["secret", "std"]] }],
          }),
        }),
        "ERR_INVALID_INPUT",
        /has a path to project 'secret', which does not exist/
      );
    });

    it("should refuse a self-referencing path loop", async () => {
      await refused(
        putMeta(projectXml("good", { repos: [{ name: "std", paths: [["good", "std"]] }] })),
        "ERR_INVALID_INPUT",
        /repository 'std': repository path loop: good\/std -> good\/std/
      );
    });

    it("should refuse a loop through another project", async () => {
      await h.client(h.admin).call("project.put-meta", {
        project: "other",
        xml: projectXml("other", { repos: [{ name: "o", paths: [["good", "std"]] }] }),
      });
      stored = await h.digest();
      await refused(
        putMeta(projectXml("good", { repos: [{ name: "std", paths: [["other", "o"]] }] })),
        "ERR_INVALID_INPUT",
        /repository path loop: good\/std -> other\/o -> good\/std/
      );
    });

    it("should refuse to remove a repository that another project builds against", async () => {
      await h.client(h.admin).call("project.put-meta", {
        project: "user",
        xml: projectXml("user", { repos: [{ name: "u", paths: [["good", "std"]] }] }),
      });
      stored = await h.digest();
      await refused(
        putMeta(projectXml("good", { repos: [{ name: "next" }] })),
        "ERR_CONFLICT",
        /project 'good': cannot remove repository 'std', used by '(other\/o', 'user\/u|user\/u', 'other\/o)'; change with --force/
      );
    });
  });

  describe("names", () => {
    for (const [label, bad] of [
      ["'..'", ".."],
      ["'/'", "a/b"],
      ["NUL", "a\u0000b"],
      ["300 characters", "x".repeat(300)],
    ] as const) {
      it(`should refuse project, package and file names with ${label}`, async () => {
        await refused(
          h.client(h.admin).call("project.put-meta", { project: bad, xml: projectXml("good") }),
          "ERR_INVALID_INPUT",
          /invalid project name/
        );
        await refused(
          h.client(h.admin).call("package.commit", { project: "good", package: bad, files: [] }),
          "ERR_INVALID_INPUT",
          /invalid package name/
        );
        await refused(
          h.client(h.admin).call("package.commit", {
            project: "good",
            package: "pkg",
            files: [{ name: bad, md5: md5Of("x"), size: 1 }],
          }),
          "ERR_INVALID_INPUT",
          /invalid file name/
        );
      });
    }

    it("should refuse file names reserved for service output", async () => {
      await refused(
        h.client(h.admin).call("package.commit", {
          project: "good",
          package: "pkg",
          files: [{ name: "_service:tar:pkg.tar", md5: md5Of("x"), size: 1 }],
        }),
        "ERR_INVALID_INPUT",
        /prefix '_service:' is reserved/
      );
    });
  });

  describe("uploads", () => {
    it("should refuse an upload that does not match the md5 the file list claims", async () => {
      const src = h.client(h.admin);
      const claimed = { name: "new.txt", md5: md5Of("what was announced"), size: 18 };
      const r = await src.call("package.commit", { project: "good", package: "pkg", files: [claimed] });
      assert.deepEqual(r, { missing: [claimed] });
      await refused(
        uploadStream(src, Readable.from([Buffer.from("something else!!!!")]), { md5: claimed.md5, size: 18 }),
        "ERR_INTEGRITY",
        new RegExp(`uploaded content does not match: md5 [0-9a-f]{32}, expected ${claimed.md5}`)
      );
      assert.deepEqual(await src.call("package.commit", { project: "good", package: "pkg", files: [claimed] }), {
        missing: [claimed],
      });
    });

    it("should keep what an md5 names when content colliding in md5 is uploaded", async () => {
      const [first, second] = MD5_COLLISION;
      const src = h.client(h.admin);
      const r = await commitFiles(src, "good", "collide", { "block.bin": first });
      stored = await h.digest();
      await refused(
        uploadStream(src, Readable.from([second]), { md5: md5Of(second), size: second.length }),
        "ERR_CONFLICT",
        /content with md5 [0-9a-f]{32} is already stored and differs from this upload \(an md5 collision\)/
      );
      // A commit naming the md5 still gets the first content.
      const again = await commitFiles(src, "good", "collide", { "block.bin": second });
      assert.equal(again.uploadedFiles, 0);
      assert.deepEqual(again.revision, r.revision);
    });

    it("should leave nothing behind of an interrupted upload", async () => {
      const nc = await connectNats({ servers: h.server.url, name: "interrupted", log, reconnectForever: false });
      const up = new RoleClient<BlobApi>(new RpcClient(nc, { signer: h.admin }), (t) => subjects.rpc(Role.Source, t));
      const { uploadId } = await up.call("upload.begin", { size: 4 * CHUNK_BYTES });
      for (let i = 0; i < 2; i++) {
        await up.call("upload.chunk", { uploadId, offset: i * CHUNK_BYTES, data: randomBytes(CHUNK_BYTES) });
      }
      const during = await h.digest();
      assert.notDeepEqual(during.files, stored.files, "the partial upload is on disk");
      await nc.close();
      await check(async () => JSON.stringify((await h.digest()).files) === JSON.stringify(stored.files), {
        timeoutMs: 20_000,
        name: "partial upload discarded",
      });
      // The upload is gone: finishing it now is refused.
      await refused(
        h.client(h.admin).call("upload.commit", { uploadId }),
        "ERR_NOT_FOUND",
        /no upload .* \(finished, aborted or expired\)/
      );
    });

    it("should refuse uploads without a signature", async () => {
      await refused(
        h.client().call("upload.begin", { size: 10 }),
        "ERR_UNAUTHENTICATED",
        /uploads must be signed by a registered user/
      );
      const data = new TextEncoder().encode("anonymous\n");
      await refused(
        h.client().call("upload.put", { size: data.length, data }),
        "ERR_UNAUTHENTICATED",
        /uploads must be signed by a registered user/
      );
      const sha256 = createHash("sha256").update(data).digest("hex");
      assert.equal(await h.client(h.admin).call("blob.stat", { sha256 }), null);
    });
  });

  describe("signatures", () => {
    const subject = subjects.rpc(Role.Source, "project.put-config");
    const args = { project: "good", text: "BuildFlags: changed\n" };
    const send = async (auth: SignedAuth, a: unknown = args): Promise<unknown> => {
      const reply = await h.nc.request(subject, encode({ args: a, auth }), { timeout: 5000 });
      return unwrapEnvelope(decode(reply.data));
    };

    it("should refuse a bad signature", async () => {
      const auth = h.admin.sign(subject, args);
      const sig = Buffer.from(auth.sig, "base64");
      sig[0]! ^= 1;
      await refused(send({ ...auth, sig: sig.toString("base64") }), "ERR_UNAUTHENTICATED", /bad request signature/);
      // Signed for other arguments.
      await refused(
        send(h.admin.sign(subject, { ...args, text: "other" })),
        "ERR_UNAUTHENTICATED",
        /digest does not match/
      );
    });

    it("should refuse a stale request", async () => {
      await refused(
        send(h.admin.sign(subject, args, Date.now() - 10 * 60_000)),
        "ERR_UNAUTHENTICATED",
        /request time is stale \(600 s off\)/
      );
    });

    it("should refuse a replayed request", async () => {
      const auth = h.admin.sign(subject, args);
      await send(auth);
      stored = await h.digest();
      await refused(send(auth), "ERR_UNAUTHENTICATED", /request replayed \(nonce already used\)/);
    });

    it("should refuse a key nobody registered", async () => {
      const stranger = Identity.create();
      await refused(send(stranger.sign(subject, args)), "ERR_UNAUTHENTICATED", /key U[A-Z0-9]+ is not registered/);
    });
  });

  describe("access", () => {
    it("should refuse a commit by a user who is not a maintainer", async () => {
      await refused(
        commitFiles(h.client(alice), "good", "pkg", { "pkg.spec": "Name: evil\n" }),
        "ERR_FORBIDDEN",
        /user 'alice' may not commit to package 'good\/pkg': that needs an admin or a maintainer/
      );
    });

    it("should answer an outsider reading a hidden project as if it did not exist", async () => {
      const msg = /project 'secret' does not exist/;
      await refused(h.client(alice).call("project.get-meta", { project: "secret" }), "ERR_NOT_FOUND", msg);
      await refused(h.client().call("package.list", { project: "secret" }), "ERR_NOT_FOUND", msg);
      await refused(h.client(alice).call("project.put-config", { project: "secret", text: "x" }), "ERR_NOT_FOUND", msg);
      assert.ok(!(await h.client(alice).call("project.list", {})).some((p) => p.name === "secret"));
    });

    it("should refuse a change without a signature before looking at its target", async () => {
      await refused(
        h.client().call("project.delete", { project: "secret" }),
        "ERR_UNAUTHENTICATED",
        /must be signed by a registered user/
      );
    });
  });

  describe("locks", () => {
    const lockedBy = (what: string): RegExp =>
      new RegExp(`^${what} is locked: nothing in it may change until a maintainer unlocks it`);

    it("should refuse every change to a locked project, to admins too", async () => {
      const admin = h.client(h.admin);
      const open = projectXml("frozen", { repos: [{ name: "std" }] });
      await admin.call("project.put-meta", { project: "frozen", xml: open });
      await commitFiles(admin, "frozen", "pkg", { "pkg.spec": "Name: pkg\n" });
      const locked = projectXml("frozen", { extra: "<lock><enable/></lock>", repos: [{ name: "std" }] });
      await admin.call("project.put-meta", { project: "frozen", xml: locked });
      stored = await h.digest();
      const is = lockedBy("project 'frozen'");
      const where = { project: "frozen", package: "pkg" };
      await refused(
        admin.call("project.put-config", { project: "frozen", text: "BuildFlags: x\n" }),
        "ERR_CONFLICT",
        is
      );
      await refused(commitFiles(admin, "frozen", "pkg", { "pkg.spec": "Name: pkg\n# 2\n" }), "ERR_CONFLICT", is);
      await refused(commitFiles(admin, "frozen", "new", { "new.spec": "Name: new\n" }), "ERR_CONFLICT", is);
      await refused(
        admin.call("package.put-meta", {
          ...where,
          xml: `<package name="pkg" project="frozen"><title>t</title></package>`,
        }),
        "ERR_CONFLICT",
        is
      );
      await refused(admin.call("package.delete", where), "ERR_CONFLICT", is);
      await refused(admin.call("package.service-run", where), "ERR_CONFLICT", is);
      await refused(admin.call("project.delete", { project: "frozen", force: true }), "ERR_CONFLICT", is);
      // Only unlocking is allowed: not unlocking together with another change, nor a narrower lock.
      await refused(
        admin.call("project.put-meta", {
          project: "frozen",
          xml: projectXml("frozen", { repos: [{ name: "std" }, { name: "more" }] }),
        }),
        "ERR_CONFLICT",
        is
      );
      await refused(
        admin.call("project.put-meta", {
          project: "frozen",
          xml: projectXml("frozen", { extra: `<lock><enable repository="std"/></lock>`, repos: [{ name: "std" }] }),
        }),
        "ERR_CONFLICT",
        is
      );
      // Writing the stored meta again changes nothing and is no error.
      assert.equal((await admin.call("project.put-meta", { project: "frozen", xml: locked })).created, false);
    });

    it("should refuse changes to a locked package", async () => {
      const admin = h.client(h.admin);
      const where = { project: "good", package: "latched" };
      const pkgXml = (extra = ""): string =>
        `<package name="latched" project="good"><title/><description/>${extra}</package>`;
      await commitFiles(admin, "good", "latched", { "latched.spec": "Name: latched\n" });
      await admin.call("package.put-meta", { ...where, xml: pkgXml("<lock><enable/></lock>") });
      stored = await h.digest();
      const is = lockedBy("package 'good/latched'");
      await refused(commitFiles(admin, "good", "latched", { "latched.spec": "Name: x\n" }), "ERR_CONFLICT", is);
      await refused(admin.call("package.delete", where), "ERR_CONFLICT", is);
      await refused(
        admin.call("package.put-meta", { ...where, xml: pkgXml("<lock><enable/></lock><url>http://x</url>") }),
        "ERR_CONFLICT",
        is
      );
      // Unlocking together with another change is refused as well.
      await refused(
        admin.call("package.put-meta", { ...where, xml: pkgXml().replace("<title/>", "<title>x</title>") }),
        "ERR_CONFLICT",
        is
      );
    });
  });

  describe("size limits", () => {
    it("should refuse a file larger than the limit", async () => {
      await refused(
        h.client(h.admin).call("package.commit", {
          project: "good",
          package: "pkg",
          files: [{ name: "big.tar", md5: md5Of("x"), size: 2 * 1024 * 1024 }],
        }),
        "ERR_TOO_LARGE",
        /file 'big.tar' is 2097152 bytes, more than the limit of 1048576/
      );
      await refused(
        h.client(h.admin).call("upload.begin", { size: 2 * 1024 * 1024 }),
        "ERR_TOO_LARGE",
        /exceeds the limit of 1048576 bytes/
      );
    });

    it("should refuse too many files", async () => {
      const files = Array.from({ length: 21 }, (_, i) => ({ name: `f${i}`, md5: md5Of(String(i)), size: 1 }));
      await refused(
        h.client(h.admin).call("package.commit", { project: "good", package: "pkg", files }),
        "ERR_TOO_LARGE",
        /a package may hold at most 20 files \(the commit lists 21\)/
      );
    });

    it("should refuse a project config larger than the limit", async () => {
      await refused(
        h.client(h.admin).call("project.put-config", { project: "good", text: "#".repeat(5000) }),
        "ERR_TOO_LARGE",
        /project config of 'good' is 5000 bytes, more than the limit of 4096/
      );
    });
  });
});
