/**
 * Source services through the `kiln` command against `kiln up`: a failing service shows in
 * `kiln service wait|status` and `kiln results`; `kiln service run` runs it again once the
 * upstream file is right, and the package builds; `--mode disabled` runs the services the server
 * leaves alone and commits their files; `kiln service wait --timeout` gives up. Services reach the
 * test's HTTP server on loopback only because `kiln up --service-allow-port` names its port.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { kiln, kilnOk, removeDir, startKilnUp, type KilnUp } from "../helpers/kiln.ts";
import { put, sha256, startLoopbackServer, tarball, type LoopbackServer } from "../helpers/service-fixtures.ts";

describe("e2e/service: kiln service run|status|wait with kiln up", function () {
  this.timeout(180_000);
  let up: KilnUp;
  let http: LoopbackServer;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-svc-"));

  before(async () => {
    http = await startLoopbackServer();
    up = await startKilnUp({ workers: 1, extraArgs: ["--service-allow-port", String(http.port)] });
  });
  after(async () => {
    await http?.close();
    if (up) {
      const code = await up.stop();
      removeDir(up.dataDir);
      assert.equal(code, 0, up.log().slice(-2000));
    }
    removeDir(tmp);
  });

  it("should show a service error, run the services again on request, and build", async () => {
    const good = await tarball("dl-1.0", { README: "the real thing\n" });
    http.files.set("/dl-1.0.tar.gz", Buffer.from("not what was promised\n"));
    const meta = path.join(tmp, "meta.xml");
    writeFileSync(
      meta,
      `<project name="svc"><title/><description/><repository name="r"><arch>x86_64</arch></repository></project>`
    );
    await kilnOk(up, ["meta", "prj", "svc", "-F", meta]);
    const dir = path.join(tmp, "dl");
    await put(
      dir,
      "dl.spec",
      [
        "Name: dl",
        "Version: 1.0",
        "Release: 1",
        "Summary: dl",
        "License: MIT",
        "BuildArch: noarch",
        "Source0: dl-1.0.tar.gz",
        "%description",
        "dl",
        "%prep",
        "%setup -q",
        "%install",
        "mkdir -p %{buildroot}/usr/share/dl",
        "cp README %{buildroot}/usr/share/dl/",
        "%files",
        "/usr/share/dl",
        "",
      ].join("\n")
    );
    await put(
      dir,
      "_service",
      `<services>
  <service name="download_url"><param name="url">${http.base}/dl-1.0.tar.gz</param></service>
  <service name="verify_file">
    <param name="file">dl-1.0.tar.gz</param>
    <param name="checksum">${sha256(good)}</param>
  </service>
</services>
`
    );
    await kilnOk(up, ["commit", "svc", "dl", dir, "-m", "with services"]);

    const waited = await kiln(up, ["service", "wait", "svc", "dl"]);
    assert.equal(waited.exitCode, 1, waited.stderr + waited.stdout);
    assert.match(waited.stdout, /run 1 \(server\) of revision 1: failed/);
    assert.match(waited.stdout, /error: verify_file: checksum mismatch for dl-1\.0\.tar\.gz/);

    const results = await kilnOk(up, ["results", "svc", "-w"], { timeoutMs: 120_000 });
    assert.match(results, /dl\s+broken\s+service error: verify_file: checksum mismatch for dl-1\.0\.tar\.gz/);

    const status = await kilnOk(up, ["service", "status", "svc", "dl"]);
    assert.match(status, /download_url\s+default\s+package/);
    assert.match(status, /\[kiln\] running service download_url/);
    assert.match(status, /download_url: .*dl-1\.0\.tar\.gz/);
    assert.match(status, /\[kiln\] service verify_file failed/);

    // Upstream is fixed: the package's services run again on request.
    http.files.set("/dl-1.0.tar.gz", good);
    const run = await kilnOk(up, ["service", "run", "svc", "dl"]);
    assert.match(run, /service run 2 of svc\/dl \(revision 1\) started/);
    const ok = await kiln(up, ["service", "wait", "svc", "dl"]);
    assert.equal(ok.exitCode, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /run 2 \(server\) of revision 1: succeeded/);
    const after = JSON.parse(await kilnOk(up, ["--json", "service", "status", "svc", "dl"])) as {
      expansion: { files: { name: string }[] };
    };
    assert.deepEqual(
      after.expansion.files.map((f) => f.name),
      ["_service:download_url:dl-1.0.tar.gz"]
    );
    assert.match(await kilnOk(up, ["results", "svc", "-w"], { timeoutMs: 120_000 }), /dl\s+succeeded/);
    assert.match(await kilnOk(up, ["binaries", "svc", "r", "x86_64", "dl"]), /dl-1\.0-1\.1\.noarch\.rpm/);

    const roles = (JSON.parse(await kilnOk(up, ["--json", "status"])) as { role: string }[]).map((p) => p.role);
    assert.ok(roles.includes("service"), `kiln up runs the service role: ${roles.join(", ")}`);
  });
  it("should run disabled services on request and commit their files, and give up waiting after --timeout", async () => {
    http.files.set("/extra.txt", Buffer.from("extra\n"));
    http.files.set("/slow.txt", Buffer.from("slow\n"));
    const meta = path.join(tmp, "meta2.xml");
    writeFileSync(
      meta,
      `<project name="svc2"><title/><description/><repository name="r"><arch>x86_64</arch></repository></project>`
    );
    await kilnOk(up, ["meta", "prj", "svc2", "-F", meta]);
    const dir = path.join(tmp, "off");
    await put(
      dir,
      "_service",
      `<services><service name="download_url" mode="disabled"><param name="url">${http.base}/extra.txt</param></service></services>\n`
    );
    await put(dir, "README", "off\n");
    await kilnOk(up, ["commit", "svc2", "off", dir, "-m", "disabled services only"]);
    const none = await kiln(up, ["service", "wait", "svc2", "off"]);
    assert.equal(none.exitCode, 0, none.stderr);
    assert.match(none.stdout, /svc2\/off has no service runs/);
    const run = await kiln(up, ["service", "run", "svc2", "off", "--mode", "disabled", "-w"]);
    assert.equal(run.exitCode, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /run 1 \(disabled\) of revision 1: succeeded after .*, committed as revision 2/);
    assert.match(await kilnOk(up, ["ls", "svc2", "off"]), /extra\.txt/);
    const bad = await kiln(up, ["service", "run", "svc2", "off", "--mode", "sometimes"]);
    assert.equal(bad.exitCode, 2, bad.stderr);
    assert.match(bad.stderr, /--mode must be one of/);

    // A run that cannot end yet: its download is held by the server.
    const held = http.hold("/slow.txt");
    const slow = path.join(tmp, "slow");
    await put(
      slow,
      "_service",
      `<services><service name="download_url"><param name="url">${http.base}/slow.txt</param></service></services>\n`
    );
    await put(slow, "README", "slow\n");
    await kilnOk(up, ["commit", "svc2", "slow", slow, "-m", "slow download"]);
    await held.held;
    const started = Date.now();
    const gaveUp = await kiln(up, ["service", "wait", "svc2", "slow", "--timeout", "1"]);
    assert.equal(gaveUp.exitCode, 1, gaveUp.stderr + gaveUp.stdout);
    assert.match(gaveUp.stderr, /service run 1 of svc2\/slow is still running after 1\.0 s/);
    assert.ok(Date.now() - started < 30_000);
    const badTimeout = await kiln(up, ["service", "wait", "svc2", "slow", "--timeout", "soon"]);
    assert.equal(badTimeout.exitCode, 2, badTimeout.stderr);
    assert.match(badTimeout.stderr, /--timeout must be a number of seconds, got 'soon'/);
    held.release();
    const done = await kiln(up, ["service", "wait", "svc2", "slow", "--timeout", "120"]);
    assert.equal(done.exitCode, 0, done.stderr + done.stdout);
    assert.match(done.stdout, /run 1 \(server\) of revision 1: succeeded/);
  });
});
