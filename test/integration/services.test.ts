/**
 * kiln's source service programs (ops/services/*), called the way OBS calls them:
 * `<service> --outdir DIR --<param> <value> …` in the package's source directory.
 *
 * The tests play the service runner: every call gets a fresh, empty outdir, an environment with
 * only PATH and TMPDIR (no HOME, as in the sandbox), and after a successful call the outputs move
 * into the working directory under their plain names before the next service runs. Sources come
 * from real git repositories served over HTTP (git's "dumb" protocol) by a node:http server on
 * loopback, started here.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

const SERVICES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../ops/services");

const T1 = 1700000000; // 2023-11-14T22:13:20Z, first commit, tagged 1.0
const T2 = 1700086400; // 2023-11-15T22:13:20Z, second commit (HEAD of main)

interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  outdir: string;
  outputs: string[];
}

/** One test area: a package working directory, outdirs, a private TMPDIR. */
class Area {
  readonly pkg: string;
  readonly tmp: string;
  #n = 0;
  constructor(readonly root: string) {
    this.pkg = path.join(root, "pkg");
    this.tmp = path.join(root, "tmp");
  }

  static async create(): Promise<Area> {
    const a = new Area(await mkdtemp(path.join(tmpdir(), "kiln-services-")));
    await mkdir(a.pkg);
    await mkdir(a.tmp);
    await mkdir(path.join(a.root, "outs"));
    return a;
  }

  /** Runs a service like the runner does; params are passed in order, repeated names allowed. */
  async run(service: string, params: [string, string][], env: Record<string, string> = {}): Promise<RunResult> {
    const outdir = path.join(this.root, "outs", String(++this.#n));
    await mkdir(outdir);
    const args = ["--outdir", outdir, ...params.flatMap(([k, v]) => [`--${k}`, v])];
    const r = await execa(path.join(SERVICES, service), args, {
      cwd: this.pkg,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: this.tmp, ...env },
      extendEnv: false,
      reject: false,
      stdin: "ignore",
    });
    // Every service cleans its scratch space, whatever the outcome.
    assert.deepEqual(await readdir(this.tmp), [], `${service} left files in TMPDIR`);
    return {
      exitCode: r.exitCode ?? -1,
      stdout: String(r.stdout),
      stderr: String(r.stderr),
      outdir,
      outputs: (await readdir(outdir)).sort(),
    };
  }

  /** Runs a service that must succeed and moves its outputs into the working directory. */
  async step(service: string, params: [string, string][], env: Record<string, string> = {}): Promise<string[]> {
    const r = await this.run(service, params, env);
    assert.equal(r.exitCode, 0, `${service} failed: ${r.stderr}`);
    for (const f of r.outputs) await rename(path.join(r.outdir, f), path.join(this.pkg, f));
    return r.outputs;
  }

  file(name: string): string {
    return path.join(this.pkg, name);
  }

  /** Every path below the area except the outdirs: what a service must never change. */
  async snapshot(): Promise<string[]> {
    const all = await readdir(this.root, { recursive: true });
    return all.filter((p) => !p.startsWith("outs")).sort();
  }

  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Runs a service that must fail; checks the exit code, the one-line message and that nothing was written. */
async function expectFailure(
  area: Area,
  service: string,
  params: [string, string][],
  message: RegExp,
  env: Record<string, string> = {}
): Promise<RunResult> {
  const before = await area.snapshot();
  const r = await area.run(service, params, env);
  assert.notEqual(r.exitCode, 0, `${service} should have failed; stdout: ${r.stdout}`);
  const lines = r.stderr.trim().split("\n");
  const last = lines[lines.length - 1];
  assert.ok(last.startsWith(`${service}: `), `error should name the service: ${r.stderr}`);
  assert.match(last, message);
  assert.deepEqual(r.outputs, [], `${service} wrote outputs although it failed`);
  assert.deepEqual(await area.snapshot(), before, `${service} changed files outside its outdir`);
  return r;
}

async function sh(cwd: string, cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await execa(cmd, args, { cwd, env: { GIT_CONFIG_GLOBAL: "/dev/null", ...env } });
  return String(r.stdout);
}

function git(cwd: string, args: string[], when = T1): Promise<string> {
  const date = `@${when} +0000`;
  return sh(cwd, "git", args, {
    GIT_AUTHOR_NAME: "Kiln Test",
    GIT_AUTHOR_EMAIL: "test@kiln.invalid",
    GIT_COMMITTER_NAME: "Kiln Test",
    GIT_COMMITTER_EMAIL: "test@kiln.invalid",
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_DATE: date,
  });
}

async function put(dir: string, rel: string, content: string | Buffer): Promise<void> {
  await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await writeFile(path.join(dir, rel), content);
}

function sha256(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** An archive in the "newc" cpio format (what .obscpio files are), written by hand to craft hostile ones. */
function newc(entries: { name: string; mode: number; data?: string }[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const all = [...entries, { name: "TRAILER!!!", mode: 0 }];
  all.forEach((e, i) => {
    const data = Buffer.from(e.data ?? "");
    const name = Buffer.from(`${e.name}\0`);
    const fields = [i + 1, e.mode, 0, 0, 1, T1, data.length, 0, 0, 0, 0, name.length, 0];
    const header = Buffer.from("070701" + fields.map((f) => f.toString(16).toUpperCase().padStart(8, "0")).join(""));
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  });
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// The loopback HTTP server: plain files, error statuses, redirects and git repositories (dumb
// protocol: static files of bare repositories below /git/).

const files = new Map<string, Buffer>();
let gitRoot = "";
let server: http.Server;
let base = "";
let port = 0;

async function serveStatic(res: http.ServerResponse, file: string): Promise<void> {
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found\n");
  }
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://loopback");
  const p = decodeURIComponent(url.pathname);
  if (p.startsWith("/git/")) {
    const rel = path.normalize(p.slice("/git/".length));
    if (rel.startsWith("..") || path.isAbsolute(rel)) {
      res.writeHead(403).end();
      return;
    }
    void serveStatic(res, path.join(gitRoot, rel));
  } else if (p === "/status/500") {
    res.writeHead(500).end("boom\n");
  } else if (p === "/redirect/file") {
    res.writeHead(302, { location: "file:///etc/passwd" }).end();
  } else if (p === "/stream/big.bin") {
    // No content-length: the size limit must hold while the body streams.
    res.writeHead(200, { "content-type": "application/octet-stream" });
    for (let i = 0; i < 64; i++) res.write(Buffer.alloc(1024, i));
    res.end();
  } else if (files.has(p)) {
    const body = files.get(p)!;
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(body);
  } else {
    res.writeHead(404).end("not found\n");
  }
}

/** Creates a work repository with `build`, then publishes a bare clone at /git/<name>.git. */
async function publishRepo(name: string, build: (work: string) => Promise<void>): Promise<string> {
  const work = path.join(gitRoot, "work", name);
  await mkdir(work, { recursive: true });
  await git(work, ["init", "--quiet", "--initial-branch=main"]);
  await build(work);
  const bare = path.join(gitRoot, `${name}.git`);
  await sh(gitRoot, "git", ["clone", "--quiet", "--bare", work, bare]);
  await sh(bare, "git", ["update-server-info"]);
  return work;
}

const SPEC = ["Name:           obslight", "Version:        0.1", "Release:        3", "Summary:        test", ""].join(
  "\n"
);

let obslightWork = "";
let canary = "";

before(async () => {
  gitRoot = await mkdtemp(path.join(tmpdir(), "kiln-services-git-"));
  canary = path.join(gitRoot, "canary");
  await mkdir(canary);
  server = http.createServer(handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;

  obslightWork = await publishRepo("obslight", async (w) => {
    await put(w, "obslight.spec", SPEC);
    await put(w, "src/README", "obslight\n");
    await put(w, "src/main.c", "int main(void) { return 0; }\n");
    await put(w, "src/rpm/obslight.spec", SPEC);
    await put(w, "src/deb/obslight.dsc", "Source: obslight\nVersion: 0.1-1\nFiles: @VERSION@\n");
    await put(w, "src/doc/notes.txt", "notes\n");
    await git(w, ["add", "-A"]);
    await git(w, ["commit", "--quiet", "-m", "first"], T1);
    await git(w, ["tag", "1.0"], T1);
    await put(w, "src/NEWS", "second\n");
    await git(w, ["add", "-A"]);
    await git(w, ["commit", "--quiet", "-m", "second"], T2);
  });

  await publishRepo("hostile", async (w) => {
    await put(w, "README", "hostile\n");
    await symlink("/etc/passwd", path.join(w, "passwd"));
    await symlink(canary, path.join(w, "outside"));
    await symlink("../../../../../../../../../../tmp", path.join(w, "updir"));
    await git(w, ["add", "-A"]);
    await git(w, ["commit", "--quiet", "-m", "symlinks"], T1);
  });
});

after(async () => {
  server?.close();
  if (gitRoot) await rm(gitRoot, { recursive: true, force: true });
});

async function headCommit(): Promise<string> {
  return (await sh(obslightWork, "git", ["rev-parse", "HEAD"])).trim();
}

/** Names in a tar archive, as GNU tar lists them. */
async function tarNames(file: string): Promise<string[]> {
  return (await sh(path.dirname(file), "tar", ["-tf", file])).split("\n").filter(Boolean);
}

// ---------------------------------------------------------------------------------------------

describe("ops/services/download_url", () => {
  let area: Area;
  const tarball = Buffer.from("krabber 1.0 tarball contents\n".repeat(100));
  beforeEach(async () => {
    area = await Area.create();
    files.set("/pub/kde/stuff/krabber-1.0.tar.gz", tarball);
  });
  afterEach(() => area.dispose());

  it("should download with the old --protocol/--host/--port/--path form and pass verify_file (seed 004 example 1)", async () => {
    const out = await area.step("download_url", [
      ["protocol", "http"],
      ["host", "127.0.0.1"],
      ["port", String(port)],
      ["path", "pub/kde/stuff/krabber-1.0.tar.gz"],
    ]);
    assert.deepEqual(out, ["krabber-1.0.tar.gz"]);
    assert.deepEqual(await readFile(area.file("krabber-1.0.tar.gz")), tarball);

    const ok = await area.run("verify_file", [
      ["file", "_service:download_url:krabber-1.0.tar.gz"],
      ["verifier", "sha256"],
      ["checksum", sha256(tarball)],
    ]);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.deepEqual(ok.outputs, []);
    assert.ok(await stat(area.file("krabber-1.0.tar.gz")));
  });

  it("should fail verify_file with the checksum error for a wrong sha256 (seed 004 example 1)", async () => {
    await area.step("download_url", [["url", `${base}/pub/kde/stuff/krabber-1.0.tar.gz`]]);
    const wrong = "7f535a96a834b31ba2201a90c4d365990785dead92be02d4cf846713be938b78";
    await expectFailure(
      area,
      "verify_file",
      [
        ["file", "_service:download_url:krabber-1.0.tar.gz"],
        ["verifier", "sha256"],
        ["checksum", wrong],
      ],
      new RegExp(
        `^verify_file: checksum mismatch for _service:download_url:krabber-1\\.0\\.tar\\.gz: expected ${wrong}, got ${sha256(tarball)}$`
      )
    );
  });

  it("should store the download under --filename", async () => {
    const out = await area.step("download_url", [
      ["url", `${base}/pub/kde/stuff/krabber-1.0.tar.gz?raw=1`],
      ["filename", "krabber.tar.gz"],
    ]);
    assert.deepEqual(out, ["krabber.tar.gz"]);
  });

  it("should fail clearly on HTTP errors", async () => {
    await expectFailure(
      area,
      "download_url",
      [["url", `${base}/missing.tar.gz`]],
      /^download_url: download of http:\/\/127\.0\.0\.1:\d+\/missing\.tar\.gz failed: HTTP status 404$/
    );
    await expectFailure(area, "download_url", [["url", `${base}/status/500`]], /failed: HTTP status 500$/);
  });

  it("should refuse --filename with a path and URLs other than http(s)/ftp, also through redirects", async () => {
    const r = await expectFailure(
      area,
      "download_url",
      [
        ["url", `${base}/pub/kde/stuff/krabber-1.0.tar.gz`],
        ["filename", "../x"],
      ],
      /^download_url: parameter --filename '\.\.\/x' is not a plain file name/
    );
    assert.equal(r.exitCode, 2);
    await expectFailure(
      area,
      "download_url",
      [["url", "file:///etc/passwd"]],
      /only http:\/\/, https:\/\/ and ftp:\/\//
    );
    await expectFailure(
      area,
      "download_url",
      [["url", `${base}/redirect/file`]],
      /^download_url: download of .* failed/
    );
  });

  it("should enforce --maxsize with and without a content-length", async () => {
    await expectFailure(
      area,
      "download_url",
      [
        ["url", `${base}/pub/kde/stuff/krabber-1.0.tar.gz`],
        ["maxsize", "100"],
      ],
      /larger than --maxsize 100 bytes$/
    );
    await expectFailure(
      area,
      "download_url",
      [
        ["url", `${base}/stream/big.bin`],
        ["maxsize", "5000"],
      ],
      /larger than --maxsize 5000 bytes$/
    );
  });

  it("should fail with a clear error when no URL is given", async () => {
    const r = await expectFailure(area, "download_url", [], /^download_url: missing required parameter --url/);
    assert.equal(r.exitCode, 2);
    await expectFailure(area, "download_url", [["bogus", "x"]], /^download_url: unknown parameter --bogus$/);
  });
});

describe("ops/services/verify_file", () => {
  let area: Area;
  beforeEach(async () => {
    area = await Area.create();
    await writeFile(area.file("data.bin"), "payload\n");
  });
  afterEach(() => area.dispose());

  for (const algo of ["md5", "sha1", "sha512"] as const) {
    it(`should accept a correct ${algo} checksum`, async () => {
      const sum = createHash(algo).update("payload\n").digest("hex");
      const r = await area.run("verify_file", [
        ["file", "data.bin"],
        ["verifier", algo],
        ["checksum", sum.toUpperCase()],
      ]);
      assert.equal(r.exitCode, 0, r.stderr);
    });
  }

  it("should not follow a symlink out of the working directory", async () => {
    await symlink("/etc/passwd", area.file("link"));
    await expectFailure(
      area,
      "verify_file",
      [
        ["file", "link"],
        ["checksum", "00"],
      ],
      /^verify_file: file link not found/
    );
  });

  it("should fail with a clear error when a required parameter is missing", async () => {
    await expectFailure(
      area,
      "verify_file",
      [["file", "data.bin"]],
      /^verify_file: missing required parameter --checksum$/
    );
    await expectFailure(area, "verify_file", [["checksum", "00"]], /^verify_file: missing required parameter --file$/);
    await expectFailure(
      area,
      "verify_file",
      [
        ["file", "data.bin"],
        ["checksum", "00"],
        ["verifier", "crc32"],
      ],
      /^verify_file: parameter --verifier: invalid value 'crc32'/
    );
  });
});

describe("ops/services/tar_scm", () => {
  let area: Area;
  beforeEach(async () => {
    area = await Area.create();
  });
  afterEach(() => area.dispose());

  const url = () => `${base}/git/obslight.git`;

  it("should create <filename>-<versionprefix>.<commit timestamp>.tar of --subdir (seed 004 example 2)", async () => {
    const params: [string, string][] = [
      ["scm", "git"],
      ["url", url()],
      ["subdir", "src"],
      ["filename", "obslight"],
      ["versionprefix", "0.4.git"],
    ];
    const out = await area.step("tar_scm", params);
    const top = `obslight-0.4.git.${T2}`;
    assert.deepEqual(out, [`${top}.tar`]);
    const names = await tarNames(area.file(`${top}.tar`));
    assert.deepEqual(names, [
      `${top}/`,
      `${top}/NEWS`,
      `${top}/README`,
      `${top}/deb/`,
      `${top}/deb/obslight.dsc`,
      `${top}/doc/`,
      `${top}/doc/notes.txt`,
      `${top}/main.c`,
      `${top}/rpm/`,
      `${top}/rpm/obslight.spec`,
    ]);
    const verbose = await sh(area.pkg, "tar", ["--numeric-owner", "-tvf", `${top}.tar`]);
    for (const line of verbose.split("\n").filter(Boolean)) assert.match(line, / 0\/0 /);
    const x = path.join(area.root, "x");
    await mkdir(x);
    await sh(x, "tar", ["-xf", area.file(`${top}.tar`)]);
    assert.equal(await readFile(path.join(x, top, "README"), "utf8"), "obslight\n");
    assert.equal((await stat(path.join(x, top, "main.c"))).mtimeMs, T2 * 1000);

    // Reproducible: the same revision gives the same bytes.
    const again = await area.run("tar_scm", params);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(
      sha256(await readFile(path.join(again.outdir, `${top}.tar`))),
      sha256(await readFile(area.file(`${top}.tar`)))
    );

    // extract_file, recompress, set_version as in the seed's complete _service example.
    assert.deepEqual(
      await area.step("extract_file", [
        ["archive", "*.tar"],
        ["files", "*/rpm/obslight.spec */deb/*"],
      ]),
      ["obslight.dsc", "obslight.spec"]
    );
    assert.equal(await readFile(area.file("obslight.spec"), "utf8"), SPEC);
    assert.deepEqual(
      await area.step("recompress", [
        ["file", "*git*.tar"],
        ["compression", "gz"],
      ]),
      [`${top}.tar.gz`]
    );
    await assert.rejects(stat(area.file(`${top}.tar`)), /ENOENT/);
    assert.deepEqual(await tarNames(area.file(`${top}.tar.gz`)), names);
    assert.deepEqual(await area.step("set_version", []), ["obslight.dsc", "obslight.spec"]);
    const spec = await readFile(area.file("obslight.spec"), "utf8");
    assert.match(spec, new RegExp(`^Version:        0\\.4\\.git\\.${T2}$`, "m"));
    assert.match(spec, /^Release: {8}0$/m);
    const dsc = await readFile(area.file("obslight.dsc"), "utf8");
    assert.match(dsc, new RegExp(`^Version: 0\\.4\\.git\\.${T2}-0$`, "m"));
    assert.match(dsc, new RegExp(`^Files: 0\\.4\\.git\\.${T2}$`, "m"));
  });

  it("should honour --revision and the version formats %cd, %h, @PARENT_TAG@ and @TAG_OFFSET@", async () => {
    const common: [string, string][] = [
      ["scm", "git"],
      ["url", url()],
    ];
    const byTag = await area.run("tar_scm", [...common, ["revision", "1.0"]]);
    assert.equal(byTag.exitCode, 0, byTag.stderr);
    assert.deepEqual(byTag.outputs, [`obslight-${T1}.tar`]);

    const short = (await sh(obslightWork, "git", ["rev-parse", "--short", "HEAD"])).trim();
    const fmt = await area.run("tar_scm", [...common, ["versionformat", "@PARENT_TAG@+git@TAG_OFFSET@.%cd.%h"]]);
    assert.equal(fmt.exitCode, 0, fmt.stderr);
    assert.deepEqual(fmt.outputs, [`obslight-1.0+git1.20231115.${short}.tar`]);

    const none = await area.run("tar_scm", [...common, ["version", "_none_"], ["filename", "plain"]]);
    assert.deepEqual(none.outputs, ["plain.tar"]);

    const missing = await area.run("tar_scm", [...common, ["revision", "no-such-branch"]]);
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /^tar_scm: parameter --revision: 'no-such-branch' not found in /m);
  });

  it("should leave out SCM metadata unless --package-meta yes, and apply --exclude", async () => {
    const r = await area.run("tar_scm", [
      ["scm", "git"],
      ["url", url()],
      ["exclude", "src/doc"],
      ["exclude", "*.spec"],
    ]);
    assert.equal(r.exitCode, 0, r.stderr);
    const names = await tarNames(path.join(r.outdir, `obslight-${T2}.tar`));
    assert.ok(!names.some((n) => n.includes("/.git")), names.join(" "));
    assert.ok(!names.some((n) => n.includes("/doc") || n.endsWith(".spec")), names.join(" "));
    assert.ok(names.includes(`obslight-${T2}/src/main.c`));

    const meta = await area.run("tar_scm", [
      ["scm", "git"],
      ["url", url()],
      ["package-meta", "yes"],
    ]);
    assert.ok((await tarNames(path.join(meta.outdir, `obslight-${T2}.tar`))).includes(`obslight-${T2}/.git/HEAD`));
  });

  it("should refuse --filename ../x and an absolute --subdir", async () => {
    await expectFailure(
      area,
      "tar_scm",
      [
        ["scm", "git"],
        ["url", url()],
        ["filename", "../x"],
      ],
      /^tar_scm: parameter --filename '\.\.\/x' is not a plain file name/
    );
    await expectFailure(
      area,
      "tar_scm",
      [
        ["scm", "git"],
        ["url", url()],
        ["subdir", "/etc"],
      ],
      /^tar_scm: parameter --subdir: '\/etc' must be a relative path inside the repository$/
    );
  });

  it("should not escape through symlinks of the repository (--extract, --subdir)", async () => {
    const hostile: [string, string][] = [
      ["scm", "git"],
      ["url", `${base}/git/hostile.git`],
    ];
    await expectFailure(
      area,
      "tar_scm",
      [...hostile, ["extract", "passwd"]],
      /--extract 'passwd': passwd points outside the repository$/
    );
    await expectFailure(
      area,
      "tar_scm",
      [...hostile, ["subdir", "outside"]],
      /--subdir outside: points outside the repository$/
    );
    await expectFailure(
      area,
      "tar_scm",
      [...hostile, ["subdir", "updir"]],
      /--subdir updir: points outside the repository$/
    );
    assert.deepEqual(await readdir(canary), []);

    // The links themselves are archived as links, never followed.
    const ok = await area.step("tar_scm", hostile);
    const verbose = await sh(area.pkg, "tar", ["-tvf", ok[0]]);
    assert.match(verbose, /hostile-\d+\/passwd -> \/etc\/passwd/);
    await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "hostile-*.tar"],
        ["files", "*/passwd"],
      ],
      /^extract_file: refusing symbolic link member 'hostile-\d+\/passwd'/
    );
  });

  it("should refuse local and helper URLs", async () => {
    await expectFailure(
      area,
      "tar_scm",
      [
        ["scm", "git"],
        ["url", obslightWork],
      ],
      /^tar_scm: parameter --url: only http\(s\):\/\/, ftp\(s\):\/\/, git:\/\/ and ssh URLs are allowed/
    );
    await expectFailure(
      area,
      "tar_scm",
      [
        ["scm", "git"],
        ["url", "ext::sh -c touch% /tmp/pwned"],
      ],
      /parameter --url: only/
    );
  });

  it("should fail with a clear error when a required parameter is missing", async () => {
    await expectFailure(area, "tar_scm", [["scm", "git"]], /^tar_scm: missing required parameter --url$/);
    await expectFailure(area, "tar_scm", [["url", url()]], /^tar_scm: missing required parameter --scm$/);
    await expectFailure(
      area,
      "tar_scm",
      [
        ["scm", "svn"],
        ["url", url()],
      ],
      /^tar_scm: parameter --scm: 'svn' is not supported by kiln \(only git\)$/
    );
  });
});

describe("ops/services/obs_scm", () => {
  let area: Area;
  beforeEach(async () => {
    area = await Area.create();
  });
  afterEach(() => area.dispose());

  it("should write .obscpio and .obsinfo, then tar, recompress xz and set_version at build time (seed 003 §22.4.2)", async () => {
    const out = await area.step("obs_scm", [
      ["url", `${base}/git/obslight.git`],
      ["scm", "git"],
      ["versionformat", "@PARENT_TAG@+git@TAG_OFFSET@.%cd"],
      ["extract", "obslight.spec"],
    ]);
    const version = "1.0+git1.20231115";
    const top = `obslight-${version}`;
    assert.deepEqual(out, [`${top}.obscpio`, "obslight.obsinfo", "obslight.spec"]);
    assert.equal(
      await readFile(area.file("obslight.obsinfo"), "utf8"),
      `name: obslight\nversion: ${version}\nmtime: ${T2}\ncommit: ${await headCommit()}\n`
    );
    const members = (await sh(area.pkg, "cpio", ["--quiet", "-it", "-F", `${top}.obscpio`]))
      .split("\n")
      .filter(Boolean);
    assert.deepEqual(members, [
      `${top}/obslight.spec`,
      `${top}/src`,
      `${top}/src/NEWS`,
      `${top}/src/README`,
      `${top}/src/deb`,
      `${top}/src/deb/obslight.dsc`,
      `${top}/src/doc`,
      `${top}/src/doc/notes.txt`,
      `${top}/src/main.c`,
      `${top}/src/rpm`,
      `${top}/src/rpm/obslight.spec`,
    ]);
    const verbose = await sh(area.pkg, "cpio", ["--quiet", "-itv", "--numeric-uid-gid", "-F", `${top}.obscpio`]);
    for (const line of verbose.split("\n").filter(Boolean)) assert.match(line, /^\S+\s+\d+\s+0\s+0\s/);

    assert.deepEqual(await area.step("tar", []), [`${top}.tar`]);
    const names = await tarNames(area.file(`${top}.tar`));
    const dirs = new Set(["src", "src/deb", "src/doc", "src/rpm"].map((d) => `${top}/${d}`));
    assert.deepEqual(names, [`${top}/`, ...members.map((m) => (dirs.has(m) ? `${m}/` : m))]);
    const x = path.join(area.root, "x");
    await mkdir(x);
    await sh(x, "tar", ["-xf", area.file(`${top}.tar`)]);
    assert.equal((await stat(path.join(x, top, "src", "README"))).mtimeMs, T2 * 1000);

    assert.deepEqual(
      await area.step("recompress", [
        ["file", "*.tar"],
        ["compression", "xz"],
      ]),
      [`${top}.tar.xz`]
    );
    assert.deepEqual(await tarNames(area.file(`${top}.tar.xz`)), names);

    assert.deepEqual(await area.step("set_version", []), ["obslight.spec"]);
    const spec = await readFile(area.file("obslight.spec"), "utf8");
    assert.match(spec, /^Version: {8}1\.0\+git1\.20231115$/m);
    assert.match(spec, /^Release: {8}0$/m);
  });

  it("should refuse to extract a file through a symlink of the repository", async () => {
    await expectFailure(
      area,
      "obs_scm",
      [
        ["scm", "git"],
        ["url", `${base}/git/hostile.git`],
        ["extract", "outside"],
      ],
      /^obs_scm: --extract 'outside': outside (points outside the repository|is not a regular file)$/
    );
    await expectFailure(
      area,
      "obs_scm",
      [
        ["scm", "git"],
        ["url", `${base}/git/hostile.git`],
        ["extract", "../x"],
      ],
      /must be a relative path without '\.\.'/
    );
    assert.deepEqual(await readdir(canary), []);
  });

  it("should fail with a clear error when a required parameter is missing", async () => {
    await expectFailure(
      area,
      "obs_scm",
      [["url", `${base}/git/obslight.git`]],
      /^obs_scm: missing required parameter --scm$/
    );
  });
});

describe("ops/services/tar", () => {
  let area: Area;
  beforeEach(async () => {
    area = await Area.create();
  });
  afterEach(() => area.dispose());

  it("should use an already extracted <name>-<version>/ directory", async () => {
    await put(area.pkg, "foo.obsinfo", `name: foo\nversion: 2.1\nmtime: ${T1}\ncommit: abc\n`);
    await put(area.pkg, "foo-2.1/a.txt", "a\n");
    await put(area.pkg, "foo-2.1/.git/HEAD", "ref\n");
    assert.deepEqual(await area.step("tar", []), ["foo-2.1.tar"]);
    assert.deepEqual(await tarNames(area.file("foo-2.1.tar")), ["foo-2.1/", "foo-2.1/a.txt"]);
  });

  it("should refuse an .obscpio that writes through a symlink or climbs out with ..", async () => {
    await put(area.pkg, "evil.obsinfo", `name: evil\nversion: 1\nmtime: ${T1}\n`);
    await writeFile(
      area.file("evil-1.obscpio"),
      newc([
        { name: "evil-1", mode: 0o40755 },
        { name: "evil-1/link", mode: 0o120777, data: canary },
        { name: "evil-1/link/pwned", mode: 0o100644, data: "pwned\n" },
        { name: "evil-1/../../escaped", mode: 0o100644, data: "pwned\n" },
      ])
    );
    await expectFailure(area, "tar", [], /^tar: cannot extract evil-1\.obscpio: /);
    assert.deepEqual(await readdir(canary), []);
  });

  it("should fail with a clear error without an .obsinfo", async () => {
    await expectFailure(
      area,
      "tar",
      [],
      /^tar: no \.obsinfo file found in the working directory and no --filename given$/
    );
    await put(area.pkg, "bad.obsinfo", "name: ../bad\nversion: 1\n");
    await expectFailure(area, "tar", [], /^tar: name \(from \.\/bad\.obsinfo\) '\.\.\/bad' is not a plain file name/);
  });
});

describe("ops/services/recompress", () => {
  let area: Area;
  const content = "some archive content\n".repeat(200);
  beforeEach(async () => {
    area = await Area.create();
  });
  afterEach(() => area.dispose());

  const decompressors: Record<string, string[]> = {
    gz: ["gzip", "-dc"],
    bz2: ["bzip2", "-dc"],
    xz: ["xz", "-dc"],
    zst: ["zstd", "-dcq"],
  };
  for (const [compression, suffix] of [
    ["gz", "gz"],
    ["bz2", "bz2"],
    ["xz", "xz"],
    ["zstd", "zst"],
  ]) {
    it(`should compress to ${compression} and recompress back to none`, async () => {
      await writeFile(area.file("data.tar"), content);
      const out = await area.step("recompress", [
        ["file", "data.tar"],
        ["compression", compression],
      ]);
      assert.deepEqual(out, [`data.tar.${suffix}`]);
      const [cmd, ...args] = decompressors[suffix];
      assert.equal(await sh(area.pkg, cmd, [...args, `data.tar.${suffix}`]), content.trimEnd());
      assert.deepEqual(
        await area.step("recompress", [
          ["file", `*.${suffix}`],
          ["compression", "none"],
        ]),
        ["data.tar"]
      );
      assert.equal(await readFile(area.file("data.tar"), "utf8"), content);
    });
  }

  it("should keep the input with --keep enable", async () => {
    await writeFile(area.file("data.tar"), content);
    await area.step("recompress", [
      ["file", "data.tar"],
      ["compression", "gz"],
      ["keep", "enable"],
    ]);
    assert.ok(await stat(area.file("data.tar")));
  });

  it("should fail with a clear error when a parameter is missing or wrong", async () => {
    await expectFailure(area, "recompress", [["compression", "gz"]], /^recompress: missing required parameter --file$/);
    await expectFailure(
      area,
      "recompress",
      [
        ["file", "nothing*.tar"],
        ["compression", "gz"],
      ],
      /^recompress: no file matches --file 'nothing\*\.tar'$/
    );
    await expectFailure(
      area,
      "recompress",
      [
        ["file", "../*.tar"],
        ["compression", "gz"],
      ],
      /must be a file name pattern without '\/'$/
    );
    await writeFile(area.file("data.tar"), content);
    await expectFailure(
      area,
      "recompress",
      [
        ["file", "data.tar"],
        ["compression", "lzma"],
      ],
      /^recompress: parameter --compression: invalid value 'lzma'/
    );
  });
});

describe("ops/services/extract_file", () => {
  let area: Area;
  beforeEach(async () => {
    area = await Area.create();
    await put(area.pkg, "src/foo-1.0/rpm/foo.spec", SPEC);
    await put(area.pkg, "src/foo-1.0/README", "readme\n");
    await sh(area.pkg, "tar", ["-czf", "foo-1.0.tar.gz", "-C", "src", "foo-1.0"]);
    await rm(path.join(area.pkg, "src"), { recursive: true });
  });
  afterEach(() => area.dispose());

  it("should extract matching members under their base names or --outfilename", async () => {
    assert.deepEqual(
      await area.step("extract_file", [
        ["archive", "*.tar.gz"],
        ["files", "*/rpm/foo.spec"],
        ["outfilename", "renamed.spec"],
      ]),
      ["renamed.spec"]
    );
    assert.equal(await readFile(area.file("renamed.spec"), "utf8"), SPEC);
  });

  it("should refuse an archive member ../evil", async () => {
    const mk = path.join(area.root, "mk");
    await put(mk, "sub/keep", "x\n");
    await put(mk, "evil", "evil\n");
    await sh(path.join(mk, "sub"), "tar", ["-cPf", area.file("hostile.tar"), "keep", "../evil"]);
    await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "hostile.tar"],
        ["files", "*evil"],
      ],
      /^extract_file: refusing archive member '\.\.\/evil' of hostile\.tar: absolute path or '\.\.' component$/
    );
    await writeFile(
      area.file("hostile.obscpio"),
      newc([
        { name: "x-1/ok", mode: 0o100644, data: "ok\n" },
        { name: "/tmp/abs-evil", mode: 0o100644, data: "evil\n" },
      ])
    );
    await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "hostile.obscpio"],
        ["files", "*evil"],
      ],
      /^extract_file: refusing archive member '\/tmp\/abs-evil' of hostile\.obscpio/
    );
    assert.deepEqual(
      await area.step("extract_file", [
        ["archive", "hostile.obscpio"],
        ["files", "*/ok"],
      ]),
      ["ok"]
    );
  });

  it("should refuse an absolute or path-like --outfilename", async () => {
    const r = await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "*.tar.gz"],
        ["files", "*/rpm/foo.spec"],
        ["outfilename", "/etc/foo.spec"],
      ],
      /^extract_file: parameter --outfilename '\/etc\/foo\.spec' is not a plain file name/
    );
    assert.equal(r.exitCode, 2);
    await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "*.tar.gz"],
        ["files", "*/rpm/foo.spec"],
        ["outfilename", ".."],
      ],
      /is not a plain file name/
    );
  });

  it("should fail with a clear error when a parameter is missing or matches nothing", async () => {
    await expectFailure(
      area,
      "extract_file",
      [["files", "*/x"]],
      /^extract_file: missing required parameter --archive$/
    );
    await expectFailure(
      area,
      "extract_file",
      [["archive", "*.tar.gz"]],
      /^extract_file: missing required parameter --files$/
    );
    await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "*.tar.gz"],
        ["files", "*/nothing"],
      ],
      /^extract_file: no member of foo-1\.0\.tar\.gz matches '\*\/nothing'$/
    );
    await expectFailure(
      area,
      "extract_file",
      [
        ["archive", "*.zip"],
        ["files", "x"],
      ],
      /^extract_file: no archive matches --archive '\*\.zip'$/
    );
  });
});

describe("ops/services/set_version", () => {
  let area: Area;
  beforeEach(async () => {
    area = await Area.create();
    await put(area.pkg, "foo.spec", "%define version_unconverted 0.1\nName: foo\nVersion: 0.1%{?suffix}\nRelease: 7\n");
  });
  afterEach(() => area.dispose());

  it("should set an explicit --version in the given --file only", async () => {
    await put(area.pkg, "other.spec", "Version: 0.1\n");
    assert.deepEqual(
      await area.step("set_version", [
        ["version", "3.4.5"],
        ["file", "foo.spec"],
      ]),
      ["foo.spec"]
    );
    assert.equal(
      await readFile(area.file("foo.spec"), "utf8"),
      "%define version_unconverted 3.4.5\nName: foo\nVersion: 3.4.5%{?suffix}\nRelease: 0\n"
    );
  });

  it("should detect the version from the top directory of a tarball, then from a file name", async () => {
    await put(area.root, "src/foo-2.0/x", "x\n");
    await sh(area.root, "tar", ["-czf", area.file("foo-2.0.tar.gz"), "-C", "src", "foo-2.0"]);
    await area.step("set_version", []);
    assert.match(await readFile(area.file("foo.spec"), "utf8"), /^Version: 2\.0%\{\?suffix\}$/m);

    await rm(area.file("foo-2.0.tar.gz"));
    await writeFile(area.file("foo_3.1~rc1.tar.bz2"), "not really an archive");
    await area.step("set_version", [["basename", "foo"]]);
    assert.match(await readFile(area.file("foo.spec"), "utf8"), /^Version: 3\.1~rc1%\{\?suffix\}$/m);
  });

  it("should fail with a clear error when no version can be found", async () => {
    await expectFailure(area, "set_version", [], /^set_version: unable to detect the version/);
    await expectFailure(
      area,
      "set_version",
      [["file", "../foo.spec"]],
      /^set_version: parameter --file '\.\.\/foo\.spec' is not a plain file name/
    );
    await expectFailure(
      area,
      "set_version",
      [
        ["version", "1.0"],
        ["file", "missing.spec"],
      ],
      /^set_version: missing\.spec is not a regular file/
    );
  });

  it("should fail with a clear error when --outdir is missing", async () => {
    const r = await execa(path.join(SERVICES, "set_version"), ["--version", "1"], {
      cwd: area.pkg,
      reject: false,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      extendEnv: false,
    });
    assert.equal(r.exitCode, 2);
    assert.equal(String(r.stderr), "set_version: missing required parameter --outdir");
  });
});
