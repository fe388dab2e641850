import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from "node:fs/promises";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { readRpmHeader } from "../../actors/repo/rpm-header.ts";
import type { RpmHeaderInfo } from "../../actors/repo/rpm-header.ts";

// Oracles nobody here wrote: rpm(8) itself, and obs-build's Perl header query (Debian package
// obs-build), which defines the shape OBS's bininfo and the scheduler work with.

const run = promisify(execFile);
const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "rpm");
const specs = readdirSync(fixtures)
  .filter((f) => f.endsWith(".spec"))
  .sort();
const OBS_BUILD = "/usr/lib/obs-build";

async function need(cmd: string, args: string[], hint: string): Promise<void> {
  try {
    await run(cmd, args);
  } catch (err) {
    throw new Error(`${cmd} is needed for this test (${hint}): ${(err as Error).message}`);
  }
}

async function rpmq(file: string, format: string): Promise<string> {
  return (await run("rpm", ["-qp", "--nosignature", "--nodigest", "--queryformat", format, file])).stdout;
}

/** One dependency list as rpm prints it, joined the way obs-build formats dependencies. */
async function rpmDeps(file: string, tag: string): Promise<string[]> {
  const out = await rpmq(file, `[%{${tag}NAME}\\t%{${tag}FLAGS:depflags}\\t%{${tag}VERSION}\\n]`);
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [name, op, version] = l.split("\t") as [string, string, string];
      return op.trim() === "" ? name : `${name} ${op.trim()} ${version}`;
    });
}

interface RpmView {
  name: string;
  epoch?: number;
  version: string;
  release: string;
  arch: string;
  sourceRpm: string;
  buildTime: number;
  provides: string[];
  requires: string[];
  conflicts: string[];
  obsoletes: string[];
  recommends: string[];
  suggests: string[];
  supplements: string[];
  enhances: string[];
}

async function rpmView(file: string): Promise<RpmView> {
  const [name, epoch, version, release, arch, sourceRpm, buildTime] = (
    await rpmq(file, "%{NAME}\\n%{EPOCH}\\n%{VERSION}\\n%{RELEASE}\\n%{ARCH}\\n%{SOURCERPM}\\n%{BUILDTIME}\\n")
  ).split("\n") as [string, string, string, string, string, string, string];
  const view: RpmView = {
    name,
    version,
    release,
    arch,
    sourceRpm,
    buildTime: Number(buildTime),
    provides: await rpmDeps(file, "PROVIDE"),
    requires: await rpmDeps(file, "REQUIRE"),
    conflicts: await rpmDeps(file, "CONFLICT"),
    obsoletes: await rpmDeps(file, "OBSOLETE"),
    recommends: await rpmDeps(file, "RECOMMEND"),
    suggests: await rpmDeps(file, "SUGGEST"),
    supplements: await rpmDeps(file, "SUPPLEMENT"),
    enhances: await rpmDeps(file, "ENHANCE"),
  };
  if (epoch !== "(none)") view.epoch = Number(epoch);
  return view;
}

type PerlQuery = Record<string, unknown> & { leadsigmd5?: string };

/** obs-build's own reading of each file: `Build::Rpm::query` with everything kiln asks for. */
async function obsQuery(files: string[]): Promise<Record<string, PerlQuery>> {
  const script = [
    "my %out;",
    "for my $f (@ARGV) {",
    "  my $q = Build::Rpm::query($f, evra => 1, conflicts => 1, weakdeps => 1, buildtime => 1);",
    "  my $leadsig;",
    "  Build::Rpm::queryhdrmd5($f, \\$leadsig);",
    "  $q->{leadsigmd5} = $leadsig;",
    "  $out{$f} = $q;",
    "}",
    "print JSON::PP->new->canonical->encode(\\%out);",
  ].join("\n");
  const { stdout } = await run("perl", [`-I${OBS_BUILD}`, "-MBuild::Rpm", "-MJSON::PP", "-e", script, ...files], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout) as Record<string, PerlQuery>;
}

/** Where the main header starts and ends, worked out independently of the reader under test. */
async function layout(file: string): Promise<{ mainStart: number; mainEnd: number }> {
  const bytes = await readFile(file);
  const sigEntries = bytes.readUInt32BE(96 + 8);
  const sigData = bytes.readUInt32BE(96 + 12);
  const mainStart = 96 + 16 + sigEntries * 16 + Math.ceil(sigData / 8) * 8;
  const mainEntries = bytes.readUInt32BE(mainStart + 8);
  const mainData = bytes.readUInt32BE(mainStart + 12);
  return { mainStart, mainEnd: mainStart + 16 + mainEntries * 16 + mainData };
}

function list(v: unknown): string[] {
  return v === undefined ? [] : (v as string[]);
}

async function assertMalformed(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(readRpmHeader(file), (err: Error & { code?: string }) => {
    assert.equal(err.code, "ERR_INVALID_INPUT", `${err.name}: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("actors/repo/rpm-header (oracle: rpm -qp and obs-build)", function () {
  let top: string;
  const built = new Map<string, string[]>();
  let obs: Record<string, PerlQuery> = {};

  before(async function () {
    await need("rpmbuild", ["--version"], "package rpm, installed by ops/setup.sh");
    await need("perl", [`-I${OBS_BUILD}`, "-MBuild::Rpm", "-e", "1"], "package obs-build");
    top = await mkdtemp(join(tmpdir(), "kiln-rpm-oracle-"));
    await mkdir(join(top, "SOURCES"), { recursive: true });
    // nosrc.spec names a source that it leaves out of its package; rpmbuild still wants to see it.
    await writeFile(join(top, "SOURCES", "kiln-dummy.tar.gz"), "");
    for (const spec of specs) {
      const before = new Set(await allRpms(top));
      await run("rpmbuild", ["-ba", "--define", `_topdir ${top}`, join(fixtures, spec)], {
        maxBuffer: 16 * 1024 * 1024,
      });
      built.set(
        spec,
        (await allRpms(top)).filter((f) => !before.has(f))
      );
    }
    obs = await obsQuery([...built.values()].flat());
  });

  after(async function () {
    if (top) await rm(top, { recursive: true, force: true });
  });

  async function allRpms(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const sub of ["RPMS", "SRPMS"]) {
      const root = join(dir, sub);
      const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
      for (const e of entries) if (e.isFile() && e.name.endsWith(".rpm")) out.push(join(e.parentPath, e.name));
    }
    return out.sort();
  }

  it("should build the fixtures into source, binary, noarch and nosrc packages", function () {
    const names = [...built.values()].flat().map((f) => basename(f));
    assert.ok(names.some((n) => n.endsWith(".src.rpm")));
    assert.ok(names.some((n) => n.endsWith(".nosrc.rpm")));
    assert.ok(names.some((n) => n.endsWith(".noarch.rpm")));
    assert.ok(names.some((n) => n.startsWith("kiln-oracle-basic-devel-")));
    assert.ok(names.length >= 10, names.join(", "));
  });

  for (const spec of specs) {
    it(`should read every package built from ${spec} as rpm -qp does`, async function () {
      const files = built.get(spec)!;
      assert.ok(files.length > 0);
      for (const file of files) {
        const got = await readRpmHeader(file);
        const want = await rpmView(file);
        const what = basename(file);
        assert.equal(got.name, want.name, what);
        assert.equal(got.epoch, want.epoch, what);
        assert.equal(got.version, want.version, what);
        assert.equal(got.release, want.release, what);
        assert.equal(got.buildTime, want.buildTime, what);
        // rpm prints "(none)" as the source of a source package, whose arch obs-build reports as
        // src or nosrc instead of the build host's.
        const isSource = want.sourceRpm === "(none)";
        assert.equal(got.isSource, isSource, what);
        if (isSource) {
          assert.equal(got.arch, what.endsWith(".nosrc.rpm") ? "nosrc" : "src", what);
          assert.equal(got.sourceRpm, undefined, what);
        } else {
          assert.equal(got.arch, want.arch, what);
          assert.equal(got.sourceRpm, want.sourceRpm, what);
          assert.equal(got.source, want.sourceRpm.replace(/-[^-]+-[^-]+\.(?:no)?src\.rpm$/, ""), what);
        }
        // obs-build drops rpmlib() and file dependencies from provides and requires ...
        const kept = (d: string) => !d.startsWith("rpmlib(") && !d.startsWith("/");
        const provides = want.provides.filter(kept);
        // ... and, for binary packages, appends the self-provide unless it is one of the last two.
        const self = `${want.name} = `;
        if (!isSource && !provides.slice(-2).some((p) => p.startsWith(self))) {
          provides.push(`${self}${want.epoch ? `${want.epoch}:` : ""}${want.version}-${want.release}`);
        }
        assert.deepEqual(got.provides, provides, `${what} provides`);
        assert.deepEqual(got.requires, want.requires.filter(kept), `${what} requires`);
        assert.deepEqual(got.conflicts, want.conflicts, `${what} conflicts`);
        assert.deepEqual(got.obsoletes, want.obsoletes, `${what} obsoletes`);
        assert.deepEqual(list(got.recommends), want.recommends, `${what} recommends`);
        assert.deepEqual(list(got.suggests), want.suggests, `${what} suggests`);
        assert.deepEqual(list(got.supplements), want.supplements, `${what} supplements`);
        assert.deepEqual(list(got.enhances), want.enhances, `${what} enhances`);
      }
    });

    it(`should read every package built from ${spec} as obs-build's Build::Rpm::query does`, async function () {
      for (const file of built.get(spec)!) {
        const got: RpmHeaderInfo = await readRpmHeader(file);
        const want = obs[file]!;
        const what = basename(file);
        assert.ok(want, `obs-build could not read ${what}`);
        assert.equal(got.name, want.name, what);
        assert.equal(got.epoch, want.epoch === undefined ? undefined : Number(want.epoch), what);
        assert.equal(got.version, want.version, what);
        assert.equal(got.release, want.release, what);
        assert.equal(got.arch, want.arch, what);
        assert.equal(got.source, want.source, what);
        assert.equal(got.buildTime, want.buildtime === undefined ? undefined : Number(want.buildtime), what);
        assert.deepEqual(got.provides, want.provides, `${what} provides`);
        assert.deepEqual(got.requires, want.requires, `${what} requires`);
        assert.deepEqual(got.conflicts, list(want.conflicts), `${what} conflicts`);
        assert.deepEqual(got.obsoletes, list(want.obsoletes), `${what} obsoletes`);
        for (const weak of ["recommends", "suggests", "supplements", "enhances"] as const) {
          assert.deepEqual(got[weak], want[weak], `${what} ${weak}`);
        }
        assert.match(got.hdrmd5, /^[0-9a-f]{32}$/);
        assert.equal(got.hdrmd5, want.hdrmd5, `${what} hdrmd5`);
        assert.equal(got.leadsigmd5, want.leadsigmd5, `${what} leadsigmd5`);
      }
    });
  }

  describe("with damaged files", function () {
    let scratch: string;
    let sample: string;

    before(async function () {
      scratch = await mkdtemp(join(tmpdir(), "kiln-rpm-damaged-"));
      sample = built
        .get("basic.spec")!
        .find((f) => basename(f).startsWith("kiln-oracle-basic-1") && !f.endsWith(".src.rpm"))!;
      assert.ok(sample, "basic.spec built no binary package");
    });

    after(async function () {
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    async function copyCut(length: number): Promise<string> {
      const f = join(scratch, `cut-${length}.rpm`);
      await copyFile(sample, f);
      await truncate(f, length);
      return f;
    }

    it("should not need the payload: a file cut inside its payload reads the same", async function () {
      const whole = await readRpmHeader(sample);
      const size = (await stat(sample)).size;
      const cut = await copyCut(size - 16);
      assert.deepEqual(await readRpmHeader(cut), whole);
    });

    for (const length of [0, 50, 96, 100, 111]) {
      it(`should refuse a file cut to ${length} bytes, inside the lead or signature intro`, async function () {
        await assertMalformed(await copyCut(length), /truncated/);
      });
    }

    it("should refuse a file cut anywhere inside the signature or main header", async function () {
      const { mainStart, mainEnd } = await layout(sample);
      const cuts = [
        120,
        mainStart - 1,
        mainStart + 8,
        mainStart + 20,
        Math.floor((mainStart + mainEnd) / 2),
        mainEnd - 1,
      ];
      for (const length of cuts) await assertMalformed(await copyCut(length), /truncated/);
    });

    it("should refuse a directory and a character device without reading them", async function () {
      await assertMalformed(scratch, /not a regular file/);
      await assertMalformed("/dev/zero", /not a regular file/);
    });
  });
});
