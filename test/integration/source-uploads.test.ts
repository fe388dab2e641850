/**
 * Who may upload to the source role, and what becomes of content nobody commits: the real role on
 * a real nats-server, with its real LMDB and blob directory.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { uploadStream, type BlobInfo } from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { refused } from "../helpers/refused.ts";
import { commitFiles, md5Of, projectXml, startSourceHarness, type SourceHarness } from "../helpers/source-role.ts";

describe("source/uploads (integration)", function () {
  this.timeout(60_000);
  let h: SourceHarness;

  before(async () => {
    h = await startSourceHarness();
  });
  after(async () => {
    await h?.stop();
  });

  const upload = (who: Parameters<SourceHarness["client"]>[0], text: string): Promise<BlobInfo> =>
    uploadStream(h.client(who), Readable.from([Buffer.from(text)]), {
      md5: md5Of(text),
      size: Buffer.byteLength(text),
    });
  const stored = (info: { sha256: string }): boolean =>
    existsSync(path.join(h.dataDir, "source", "blobs", "objects", info.sha256.slice(0, 2), info.sha256));

  it("should refuse uploads by a user who may commit nowhere, and take them once they maintain something", async () => {
    const bob = await h.addUser("bob");
    const before = await h.digest();
    const why =
      /user 'bob' may not upload: uploads are for commits, which need an admin or a maintainer of some project or package/;
    await refused(upload(bob, "bob's first file"), "ERR_FORBIDDEN", why);
    await refused(h.client(bob).call("upload.begin", { size: 10 }), "ERR_FORBIDDEN", why);
    assert.deepEqual(await h.digest(), before, "nothing was stored");
    // His home project makes him a maintainer.
    await h.client(bob).call("project.put-meta", { project: "home:bob", xml: projectXml("home:bob") });
    assert.ok(stored(await upload(bob, "bob's first file")));

    // A package's maintainer, and a group's member, may upload too.
    const carol = await h.addUser("carol");
    const dave = await h.addUser("dave");
    await h.client(h.admin).call("project.put-meta", { project: "team", xml: projectXml("team") });
    await refused(upload(carol, "carol's"), "ERR_FORBIDDEN", /user 'carol' may not upload/);
    await h.client(h.admin).call("package.put-meta", {
      project: "team",
      package: "tool",
      xml: `<package name="tool" project="team"><title/><description/><person userid="carol" role="maintainer"/></package>`,
    });
    assert.ok(stored(await upload(carol, "carol's")));
    await refused(upload(dave, "dave's"), "ERR_FORBIDDEN", /user 'dave' may not upload/);
    await h.client(h.admin).call("group.set", { name: "team-maintainers", members: ["dave"] });
    await h.client(h.admin).call("project.put-meta", {
      project: "team",
      xml: projectXml("team", { extra: `<group groupid="team-maintainers" role="maintainer"/>` }),
    });
    assert.ok(stored(await upload(dave, "dave's")));
    // Kiln's roles deliver service output.
    assert.ok(stored(await upload(h.service, "service output")));
  });

  it("should collect content no revision refers to once past the grace period, at start and periodically", async () => {
    const admin = h.client(h.admin);
    await admin.call("project.put-meta", { project: "keep", xml: projectXml("keep") });
    const kept = await commitFiles(admin, "keep", "pkg", {
      "pkg.spec": "Name: pkg\n",
      "shared.txt": "in two packages",
    });
    await commitFiles(admin, "keep", "doomed", { "doomed.spec": "Name: doomed\n", "shared.txt": "in two packages" });
    const doomedSpec = (await admin.call("package.get", { project: "keep", package: "doomed" })).files.find(
      (f) => f.name === "doomed.spec"
    )!;
    await admin.call("package.delete", { project: "keep", package: "doomed" });
    const loose = await upload(h.admin, "uploaded and never committed");
    assert.ok(stored(loose) && stored(doomedSpec), "nothing is collected within the grace period");

    // Restarted with no grace and no periodic run: the collection at start takes them.
    const noGrace = { blobGraceMs: 0, uploadGrantMs: 0 };
    await h.restart({ ...noGrace, blobGcIntervalMs: 3600_000 });
    const gone = async (info: { sha256: string }): Promise<boolean> =>
      !stored(info) && (await h.client(h.admin).call("blob.stat", { sha256: info.sha256 })) === null;
    await check(async () => (await gone(loose)) && (await gone(doomedSpec)), { name: "collected at start" });
    for (const f of kept.revision.files) {
      assert.ok(stored(f), `${f.name} of a live revision stays`);
    }
    const co = await admin.call("package.get", { project: "keep", package: "pkg" });
    assert.deepEqual(
      co.files.map((f) => f.name),
      ["pkg.spec", "shared.txt"]
    );

    // Periodically: content uploaded after the start goes as well.
    await h.restart({ ...noGrace, blobGcIntervalMs: 100 });
    const later = await upload(h.admin, "uploaded after the start");
    await check(() => gone(later), { name: "collected periodically" });
    for (const f of kept.revision.files) assert.ok(stored(f));
    await h.restart({});
  });
});
