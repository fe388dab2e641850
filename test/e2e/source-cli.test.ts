/**
 * Identities, users and access control through the `kiln` command, as people use it: several
 * identity files against one `kiln up`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { check } from "../helpers/check.ts";
import {
  KILN_BIN,
  kiln,
  kilnOk,
  removeDir,
  startKilnUp,
  type KilnEnv,
  type KilnRun,
  type KilnUp,
} from "../helpers/kiln.ts";

/** A long-running `kiln` command (like `kiln events`) whose output lines are read as they come. */
function follow(env: KilnEnv, args: string[]): { lines<T>(): T[]; output(): string; stop(): Promise<void> } {
  const proc = execa("node", [KILN_BIN, ...args], {
    env: { KILN_DATA: env.dataDir, KILN_NATS_URL: env.natsUrl, KILN_LOG_LEVEL: "warn", HOME: env.dataDir },
    extendEnv: true,
    reject: false,
    buffer: false,
    stdin: "ignore",
  });
  let out = "";
  let err = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return {
    lines: <T>() =>
      out
        .split("\n")
        .slice(0, -1)
        .map((l) => JSON.parse(l) as T),
    output: () => out + err,
    async stop() {
      proc.kill("SIGTERM");
      await proc;
    },
  };
}

describe("e2e/source: identities and access through the CLI", function () {
  this.timeout(120_000);
  let up: KilnUp;
  const tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-src-"));
  const aliceId = path.join(tmp, "alice.identity");
  const bobId = path.join(tmp, "bob.identity");
  const nobody = path.join(tmp, "no-data");
  const pkgDir = path.join(tmp, "pkg");

  before(async () => {
    up = await startKilnUp({ workers: 1, extraArgs: ["--max-file-size", "64K"] });
    mkdirSync(pkgDir);
    writeFileSync(path.join(pkgDir, "pkg.spec"), "Name: pkg\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n");
    writeFileSync(path.join(pkgDir, "notes.txt"), "first\n");
  });
  after(async () => {
    if (up) {
      const code = await up.stop();
      removeDir(up.dataDir);
      assert.equal(code, 0, up.log().slice(-2000));
    }
    removeDir(tmp);
  });

  const as = (identity: string, args: string[], input?: string) =>
    kiln(up, ["--identity", identity, ...args], input !== undefined ? { input } : {});
  const anonymous = (args: string[], input?: string) =>
    kiln(up, ["--data", nobody, ...args], input !== undefined ? { input } : {});
  /** `kiln` as the admin with more environment (an editor, a temp directory). */
  const withEnv = async (env: Record<string, string>, args: string[]): Promise<KilnRun> => {
    const r = await execa("node", [KILN_BIN, ...args], {
      env: { KILN_DATA: up.dataDir, KILN_NATS_URL: up.natsUrl, KILN_LOG_LEVEL: "warn", HOME: up.dataDir, ...env },
      extendEnv: true,
      reject: false,
      timeout: 120_000,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  /** A small executable script in the test's directory. */
  const script = (name: string, body: string): string => {
    const file = path.join(tmp, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  };

  it("should create identities and let the admin register them as users", async () => {
    const key = (await kilnOk(up, ["identity", "new", "--out", aliceId])).trim();
    assert.match(key, /^U[A-Z2-7]{55}$/);
    assert.equal(statSync(aliceId).mode & 0o777, 0o600);
    const again = await kiln(up, ["identity", "new", "--out", aliceId]);
    assert.equal(again.exitCode, 5);
    assert.match(again.stderr, /already exists; refusing to overwrite/);
    const bob = JSON.parse(await kilnOk(up, ["--json", "identity", "new", "--out", bobId])) as { pubkey: string };
    assert.match(await kilnOk(up, ["user", "add", "alice", "--pubkey", key]), /added user alice/);
    await kilnOk(up, ["user", "add", "bob", "--pubkey", bob.pubkey]);
    assert.equal((await kilnOk(up, ["--identity", aliceId, "user", "whoami"])).trim(), "alice");
    const users = JSON.parse(await kilnOk(up, ["--json", "user", "list"])) as { name: string; service: boolean }[];
    assert.deepEqual(
      users.map((u) => u.name).filter((n) => !n.startsWith("kiln-roles-")),
      ["admin", "alice", "bob"]
    );
    assert.ok(
      users.some((u) => u.name.startsWith("kiln-roles-") && u.service),
      "kiln up registered its roles"
    );
    const denied = await as(aliceId, ["user", "add", "carol", "--pubkey", key]);
    assert.equal(denied.exitCode, 4);
    assert.match(denied.stderr, /user 'alice' may not add users/);
  });

  it("should let a project's maintainer commit, and refuse others with exit 4", async () => {
    await kilnOk(up, ["meta", "prj", "shared", "-F", "-"], {
      input: `<project name="shared"><title>Shared</title><description/><person userid="alice" role="maintainer"/></project>`,
    });
    const first = await kiln(up, ["commit", "shared", "pkg", pkgDir, "-m", "by the admin"]);
    assert.equal(first.exitCode, 0, first.stderr);
    // KILN_IDENTITY works like --identity.
    const byEnv = await execa("node", [KILN_BIN, "user", "whoami"], {
      env: { KILN_DATA: up.dataDir, KILN_NATS_URL: up.natsUrl, KILN_IDENTITY: aliceId, HOME: up.dataDir },
      reject: false,
    });
    assert.equal(String(byEnv.stdout).trim(), "alice");
    writeFileSync(path.join(pkgDir, "notes.txt"), "second\n");
    const mine = JSON.parse((await as(aliceId, ["--json", "commit", "shared", "pkg", pkgDir, "-m", "2"])).stdout) as {
      rev: number;
      user: string;
      uploadedFiles: number;
    };
    assert.deepEqual([mine.rev, mine.user, mine.uploadedFiles], [2, "alice", 1]);
    const theirs = await as(bobId, ["commit", "shared", "pkg", pkgDir]);
    assert.equal(theirs.exitCode, 4);
    assert.match(theirs.stderr, /user 'bob' may not commit to package 'shared\/pkg'/);
    const del = await as(bobId, ["rdelete", "shared", "pkg"]);
    assert.equal(del.exitCode, 4);
    const anon = await anonymous(["meta", "prjconf", "shared", "-F", "-"], "BuildFlags: x\n");
    assert.equal(anon.exitCode, 4);
    assert.match(anon.stderr, /must be signed by a registered user/);
  });

  it("should check out any revision", async () => {
    const out = path.join(tmp, "co1");
    await kilnOk(up, ["checkout", "shared", "pkg", out, "-r", "1"]);
    assert.equal(readFileSync(path.join(out, "notes.txt"), "utf8"), "first\n");
    const hist = JSON.parse(await kilnOk(up, ["--json", "history", "shared", "pkg"])) as { user: string }[];
    assert.deepEqual(
      hist.map((h) => h.user),
      ["admin", "alice"]
    );
  });

  it("should hide a hidden project from outsiders everywhere, with exit 3", async () => {
    await kilnOk(up, ["meta", "prj", "secret", "-F", "-"], {
      input: `<project name="secret"><title/><description/><access><disable/></access><repository name="std"><arch>x86_64</arch></repository></project>`,
    });
    await kilnOk(up, ["commit", "secret", "s", pkgDir]);
    for (const args of [
      ["meta", "prj", "secret"],
      ["ls", "secret"],
      ["checkout", "secret", "s", path.join(tmp, "co2")],
      ["results", "secret"],
    ]) {
      const r = await as(bobId, args);
      assert.equal(r.exitCode, 3, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /project 'secret' does not exist/);
    }
    assert.doesNotMatch(await kilnOk(up, ["--identity", bobId, "ls"]), /secret/);
    assert.doesNotMatch((await anonymous(["ls"])).stdout, /secret/);
    assert.match(await kilnOk(up, ["ls"]), /secret/, "the admin sees it");
    // The repo role refuses too, once it has learnt the project's flags from the events.
    await check(
      async () => {
        const r = await as(bobId, ["binaries", "secret", "std", "x86_64", "s"]);
        return r.exitCode === 3 && /project 'secret' does not exist/.test(r.stderr);
      },
      { timeoutMs: 30_000, name: "repo role refuses an outsider" }
    );
  });

  it("should show outsiders only the events of projects they may see", async () => {
    type Line = { seq: number; type: string; project: string };
    const admin = follow(up, ["events", "--from", "1"]);
    const outsider = follow(up, ["--identity", bobId, "events", "--from", "1"]);
    try {
      // A hidden event, then a public one: both printers reach the marker only past the hidden one.
      await kilnOk(up, ["meta", "prjconf", "secret", "-F", "-"], { input: "BuildFlags: hidden\n" });
      await kilnOk(up, ["meta", "prjconf", "shared", "-F", "-"], { input: "BuildFlags: marker\n" });
      const isMarker = (e: Line): boolean => e.type === "project.config-changed" && e.project === "shared";
      const marker = await check(() => admin.lines<Line>().find(isMarker), {
        timeoutMs: 30_000,
        name: "the admin's kiln events printing the marker",
      });
      assert.ok(
        admin.lines<Line>().some((e) => e.project === "secret" && e.type === "project.config-changed"),
        "the admin sees secret's events"
      );
      await check(() => outsider.lines<Line>().some((e) => e.seq >= marker.seq), {
        timeoutMs: 30_000,
        name: "the outsider's kiln events reaching the marker",
      });
      const seen = outsider.lines<Line>().filter((e) => e.seq <= marker.seq);
      assert.ok(
        seen.some((e) => e.project === "shared"),
        outsider.output()
      );
      assert.ok(!seen.some((e) => e.project === "secret"), `secret's events are hidden:\n${outsider.output()}`);
    } finally {
      await admin.stop();
      await outsider.stop();
    }
  });

  it("should edit a meta in $EDITOR, keeping the edit when the server refuses it and removing it once stored", async () => {
    const edTmp = path.join(tmp, "edit-tmp");
    mkdirSync(edTmp);
    const editor = (file: string) => ({ VISUAL: file, EDITOR: file, TMPDIR: edTmp });
    // tsx keeps its cache in TMPDIR too.
    const edits = (): string[] => readdirSync(edTmp).filter((n) => n.startsWith("kiln-edit-"));
    const broken = script("broken-editor", `printf '<project name="shared"><frobnicate/></project>\\n' > "$1"`);
    const retitle = script("retitle-editor", `sed -i 's|<title>[^<]*</title>|<title>Edited</title>|' "$1"`);

    const bad = await withEnv(editor(broken), ["meta", "prj", "shared", "-e"]);
    assert.equal(bad.exitCode, 2, bad.stderr);
    assert.match(bad.stderr, /unknown element <frobnicate>/);
    const kept = /your edit is kept in (\S+) \(send it again with -F/.exec(bad.stderr)?.[1];
    assert.ok(kept, bad.stderr);
    assert.ok(kept.startsWith(path.join(edTmp, "kiln-edit-")), kept);
    assert.match(readFileSync(kept, "utf8"), /frobnicate/, "the user's edit is what is kept");
    assert.equal(statSync(path.dirname(kept)).mode & 0o777, 0o700, "a private directory");
    removeDir(path.dirname(kept));

    const ok = await withEnv(editor(retitle), ["meta", "prj", "shared", "-e", "-m", "retitled in the editor"]);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.deepEqual(edits(), [], "the edit is removed once stored");
    assert.match(await kilnOk(up, ["meta", "prj", "shared"]), /<title>Edited<\/title>/);
    const hist = JSON.parse(await kilnOk(up, ["--json", "history", "shared", "--meta"])) as {
      user: string;
      comment: string;
    }[];
    assert.deepEqual(hist.at(-1) && [hist.at(-1)!.user, hist.at(-1)!.comment], ["admin", "retitled in the editor"]);
    assert.match(await kilnOk(up, ["history", "shared", "--meta"]), /admin\s+\S+\s+retitled in the editor/);

    const same = await withEnv(editor("true"), ["meta", "pkg", "shared", "pkg", "-e"]);
    assert.equal(same.exitCode, 0, same.stderr);
    assert.match(same.stdout, /no change/);
    assert.deepEqual(edits(), []);
  });

  it("should say where kiln up created the admin identity, and use it by default", async () => {
    const file = path.join(up.dataDir, "admin.identity");
    assert.ok(
      up
        .log()
        .includes(`identity: created admin identity ${file} (user 'admin'); kiln commands on this machine use it`),
      up.log().slice(0, 3000)
    );
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal((await kilnOk(up, ["user", "whoami"])).trim(), "admin (admin)");
  });

  it("should list the files of a package with kiln ls PROJECT PACKAGE", async () => {
    const out = await kilnOk(up, ["ls", "shared", "pkg"]);
    const rows = out.trim().split("\n");
    assert.match(rows[0] ?? "", /^NAME\s+SIZE\s+MD5$/);
    const row = (name: string): string[] => {
      const data = readFileSync(path.join(pkgDir, name));
      return [name, String(data.length), createHash("md5").update(data).digest("hex")];
    };
    assert.deepEqual(
      rows.slice(1).map((r) => r.split(/\s+/)),
      [row("notes.txt"), row("pkg.spec")]
    );
    const json = JSON.parse(await kilnOk(up, ["--json", "ls", "shared", "pkg"])) as { rev: number; files: unknown[] };
    assert.deepEqual([json.rev, json.files.length], [2, 2]);
    const none = await kiln(up, ["ls", "shared", "nothing"]);
    assert.equal(none.exitCode, 3);
    assert.match(none.stderr, /package 'nothing' does not exist in project 'shared'/);
  });

  it("should refuse rdelete and repository removal for a project others build against, unless --force", async () => {
    const base = `<project name="lib"><title/><description/><repository name="std"><arch>x86_64</arch></repository></project>`;
    await kilnOk(up, ["meta", "prj", "lib", "-F", "-"], { input: base });
    await kilnOk(up, ["meta", "prj", "app", "-F", "-"], {
      input: `<project name="app"><title/><description/><repository name="std"><path project="lib" repository="std"/><arch>x86_64</arch></repository></project>`,
    });
    const noRepos = path.join(tmp, "lib-without-std.xml");
    writeFileSync(noRepos, `<project name="lib"><title/><description/></project>`);
    const removal = await kiln(up, ["meta", "prj", "lib", "-F", noRepos]);
    assert.equal(removal.exitCode, 5, removal.stderr);
    assert.match(
      removal.stderr,
      /project 'lib': cannot remove repository 'std', used by 'app\/std'; change with --force/
    );
    assert.match(await kilnOk(up, ["meta", "prj", "lib"]), /<repository name="std">/, "nothing changed");

    const refusedDelete = await kiln(up, ["rdelete", "lib"]);
    assert.equal(refusedDelete.exitCode, 5, refusedDelete.stderr);
    assert.match(refusedDelete.stderr, /project 'lib' is used by 'app'; delete with --force to break them/);
    assert.match(await kilnOk(up, ["ls"]), /^lib$/m);

    await kilnOk(up, ["meta", "prj", "lib", "-F", noRepos, "--force"]);
    assert.doesNotMatch(await kilnOk(up, ["meta", "prj", "lib"]), /<repository/);
    await kilnOk(up, ["meta", "prj", "lib", "-F", "-"], { input: base });
    assert.match(await kilnOk(up, ["rdelete", "lib", "--force", "-m", "replaced"]), /deleted project lib/);
    assert.doesNotMatch(await kilnOk(up, ["ls"]), /^lib$/m);
    assert.match(await kilnOk(up, ["rdelete", "app"]), /deleted project app/);
  });

  it("should remove a user, whose identity then counts for nothing", async () => {
    const carolId = path.join(tmp, "carol.identity");
    const key = (await kilnOk(up, ["identity", "new", "--out", carolId])).trim();
    await kilnOk(up, ["user", "add", "carol", "--pubkey", key]);
    assert.equal((await as(carolId, ["user", "whoami"])).stdout.trim(), "carol");
    const denied = await as(aliceId, ["user", "remove", "carol"]);
    assert.equal(denied.exitCode, 4);
    assert.match(denied.stderr, /user 'alice' may not remove users: only admins may/);
    assert.match(await kilnOk(up, ["user", "remove", "carol"]), /removed user carol/);
    const users = JSON.parse(await kilnOk(up, ["--json", "user", "list"])) as { name: string }[];
    assert.ok(!users.some((u) => u.name === "carol"));
    const gone = await as(carolId, ["meta", "prjconf", "shared", "-F", "-"], "BuildFlags: x\n");
    assert.equal(gone.exitCode, 4, gone.stderr);
    assert.match(gone.stderr, new RegExp(`key ${key} is not registered with this kiln`));
  });

  it("should refuse a file over the size limit given to kiln up, with exit 6", async () => {
    const big = path.join(tmp, "big");
    mkdirSync(big);
    writeFileSync(path.join(big, "big.tar"), Buffer.alloc(65 * 1024));
    const r = await kiln(up, ["commit", "shared", "big", big]);
    assert.equal(r.exitCode, 6);
    assert.match(r.stderr, /file 'big.tar' is 66560 bytes, more than the limit of 65536/);
  });

  it("should document the options in --help", async () => {
    assert.match(await kilnOk(up, ["user", "add", "--help"]), /--service/);
    assert.match(await kilnOk(up, ["up", "--help"]), /--max-file-size <size>/);
    assert.match(await kilnOk(up, ["group", "--help"]), /set <name> \[members\.\.\.\]/);
  });
});
