/**
 * The source role's side of source services, with the test playing the service role: which
 * commits start runs, what schedulers are told while runs go on and after, who may deliver
 * results, and that stale or malformed results change nothing.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import type { SourceApi } from "../../actors/index.ts";
import { computeSrcmd5 } from "../../actors/source/srcmd5.ts";
import { uploadStream, type RoleClient } from "../../transport/index.ts";
import { commitFiles, md5Of, projectXml, startSourceHarness, type SourceHarness } from "../helpers/source-role.ts";
import { refused } from "../helpers/refused.ts";

const SPEC = "Name: p\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n";
const SERVICE = `<services><service name="download_url"><param name="url">http://example.invalid/p-1.tar</param></service><service name="tar" mode="buildtime"/></services>`;
/** With a manual service too. */
const SERVICE_Q = SERVICE.replace("</services>", `<service name="set_version" mode="manual"/></services>`);

describe("source/services (integration)", function () {
  this.timeout(60_000);
  let h: SourceHarness;
  let admin: RoleClient<SourceApi>;
  let roles: RoleClient<SourceApi>;
  let alice: RoleClient<SourceApi>;

  before(async () => {
    h = await startSourceHarness();
    admin = h.client(h.admin);
    roles = h.client(h.service);
    alice = h.client(await h.addUser("alice"));
    await admin.call("project.put-meta", {
      project: "svc",
      xml: projectXml("svc", { repos: [{ name: "r" }], extra: `<person userid="alice" role="maintainer"/>` }),
    });
  });
  after(async () => {
    await h?.stop();
  });

  const info = (pkg: string) =>
    admin.call("package.buildinfo", { project: "svc", package: pkg, repository: "r", arch: "x86_64" });

  /** Uploads content as kiln's roles do before delivering it. */
  async function upload(text: string): Promise<{ md5: string; size: number }> {
    const b = Buffer.from(text);
    await uploadStream(roles, Readable.from([b]), { md5: md5Of(b), size: b.length });
    return { md5: md5Of(b), size: b.length };
  }

  it("should block a package while its services run and expand its sources with their files afterwards", async () => {
    const { revision } = await commitFiles(alice, "svc", "p", { "p.spec": SPEC, _service: SERVICE });
    const st = await alice.call("package.service-status", { project: "svc", package: "p" });
    assert.equal(st.run?.state, "running");
    assert.equal(st.run?.user, "alice");
    assert.deepEqual(
      st.services.map((s) => [s.name, s.mode, s.origin]),
      [
        ["download_url", "default", "package"],
        ["tar", "buildtime", "package"],
      ]
    );
    let bi = await info("p");
    assert.equal(bi.errorCode, "blocked");
    assert.equal(bi.error, "service in progress");
    assert.deepEqual(await roles.call("service.pending", {}), [{ project: "svc", package: "p", runId: 1 }]);

    const job = await roles.call("package.service-job", { project: "svc", package: "p", runId: 1 });
    assert.deepEqual(
      job?.services.map((s) => s.name),
      ["download_url"],
      "only the services the server runs"
    );
    assert.deepEqual(
      job?.files.map((f) => f.name),
      ["_service", "p.spec"]
    );

    const out = await upload("a tarball\n");
    const r = await roles.call("package.service-result", {
      project: "svc",
      package: "p",
      runId: 1,
      ok: true,
      files: [{ name: "_service:download_url:p-1.tar", ...out }],
      output: "download_url: downloaded\n",
    });
    assert.deepEqual(r, { accepted: true });
    bi = await info("p");
    assert.equal(bi.errorCode, undefined);
    assert.deepEqual(
      bi.files.map((f) => f.name),
      ["_service", "_service:download_url:p-1.tar", "p.spec"]
    );
    assert.equal(bi.verifymd5, computeSrcmd5(bi.files));
    assert.equal(bi.srcmd5, bi.verifymd5);
    assert.notEqual(bi.verifymd5, revision.srcmd5);
    assert.deepEqual(bi.buildtimeServices, [{ name: "tar", params: [] }]);
    assert.deepEqual(await roles.call("service.pending", {}), []);
    // The user's revision is untouched: the service files are linked to it, not part of it.
    const head = await alice.call("package.get", { project: "svc", package: "p" });
    assert.deepEqual(head.files, revision.files);
  });

  it("should let only kiln's roles and admins fetch runs and deliver results", async () => {
    await commitFiles(alice, "svc", "q", { "q.spec": SPEC, _service: SERVICE_Q });
    const before = await h.digest();
    const delivery = { project: "svc", package: "q", runId: 1, ok: false, files: [], error: "x", output: "" };
    await refused(alice.call("package.service-result", delivery), "ERR_FORBIDDEN", /only kiln's roles/);
    await refused(h.client().call("package.service-result", delivery), "ERR_UNAUTHENTICATED");
    await refused(alice.call("package.service-job", { project: "svc", package: "q", runId: 1 }), "ERR_FORBIDDEN");
    await refused(alice.call("service.pending", {}), "ERR_FORBIDDEN");
    assert.deepEqual(await h.digest(), before, "a refused delivery changed the store");
    // Kiln's roles may not change anything else.
    await refused(
      roles.call("package.commit", { project: "svc", package: "q", files: [] }),
      "ERR_FORBIDDEN",
      /may not commit to/
    );
  });

  it("should refuse service files that are not named _service:<service>:<file> or were not uploaded", async () => {
    const out = await upload("payload\n");
    const before = await h.digest();
    const base = { project: "svc", package: "q", runId: 1, ok: true, output: "" };
    for (const [name, why] of [
      ["p-1.tar", /not named _service:<service>:<file>/],
      ["_service:bad name:x", /invalid service name/],
      ["_service:a:.hidden", /must not start with '\.'/],
      ["_service:a:_service:b:c", /reserved for the output of source services/],
    ] as const) {
      await refused(
        roles.call("package.service-result", { ...base, files: [{ name, ...out }] }),
        "ERR_INVALID_INPUT",
        why
      );
    }
    await refused(
      roles.call("package.service-result", {
        ...base,
        files: [{ name: "_service:a:x", md5: md5Of("never uploaded"), size: 14 }],
      }),
      "ERR_INVALID_INPUT",
      /was not uploaded/
    );
    const after = await h.digest();
    assert.equal(after.db, before.db, "a refused delivery changed the records");
    assert.equal((await alice.call("package.service-status", { project: "svc", package: "q" })).run?.state, "running");
  });

  it("should make a failed run's error the package's and drop results of superseded runs", async () => {
    await roles.call("package.service-result", {
      project: "svc",
      package: "q",
      runId: 1,
      ok: false,
      files: [],
      error: "download_url: download of http://example.invalid/p-1.tar failed",
      output: "lots of output\n",
    });
    const bi = await info("q");
    assert.equal(bi.errorCode, "broken");
    assert.equal(bi.error, "service error: download_url: download of http://example.invalid/p-1.tar failed");
    const st = await alice.call("package.service-status", { project: "svc", package: "q" });
    assert.equal(st.run?.output, "lots of output\n");

    // Run 2 on request, superseded by a commit (run 3) before it delivers.
    const { runId } = await alice.call("package.service-run", { project: "svc", package: "q" });
    assert.equal(runId, 2);
    assert.equal((await info("q")).errorCode, "blocked");
    await refused(
      alice.call("package.service-run", { project: "svc", package: "q", kind: "manual" }),
      "ERR_CONFLICT",
      /has not ended yet/
    );
    await commitFiles(alice, "svc", "q", { "q.spec": SPEC + "\n", _service: SERVICE_Q });
    const st2 = await alice.call("package.service-status", { project: "svc", package: "q" });
    assert.equal(st2.run?.runId, 3);
    assert.equal(st2.rev, 2);
    assert.equal(await roles.call("package.service-job", { project: "svc", package: "q", runId: 2 }), null);
    const before = await h.digest();
    const stale = await roles.call("package.service-result", {
      project: "svc",
      package: "q",
      runId: 2,
      ok: true,
      files: [],
      output: "",
    });
    assert.deepEqual(stale, { accepted: false });
    assert.equal((await h.digest()).db, before.db);
    assert.equal((await info("q")).error, "service in progress");
  });

  it("should keep runs across a restart and forget them with the package", async () => {
    await h.restart();
    admin = h.client(h.admin);
    roles = h.client(h.service);
    assert.deepEqual(await roles.call("service.pending", {}), [{ project: "svc", package: "q", runId: 3 }]);
    assert.equal((await info("p")).errorCode, undefined);
    await admin.call("package.delete", { project: "svc", package: "q" });
    assert.deepEqual(await roles.call("service.pending", {}), []);
    await refused(admin.call("package.service-status", { project: "svc", package: "q" }), "ERR_NOT_FOUND");
  });

  it("should not run services of a package without a _service, nor on request", async () => {
    await commitFiles(alice, "svc", "plain", { "plain.spec": SPEC });
    const st = await alice.call("package.service-status", { project: "svc", package: "plain" });
    assert.equal(st.run, undefined);
    assert.equal((await info("plain")).errorCode, undefined);
    await refused(
      alice.call("package.service-run", { project: "svc", package: "plain" }),
      "ERR_NOT_FOUND",
      /has no services the server runs/
    );
    await refused(h.client().call("package.service-run", { project: "svc", package: "p" }), "ERR_UNAUTHENTICATED");
  });
});
