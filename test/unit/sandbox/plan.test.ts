import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BUILDTIME_SERVICE_OUTDIR, renderServicesScript, rpmbuildCommand } from "../../../sandbox/index.ts";
import {
  DEPENDENCY_BINDS,
  SANDBOX_USER,
  STAGE_DIR,
  UNPACK_SCRIPT,
  baseEnv,
  buildBwrapArgs,
  buildUnpackBwrapArgs,
  computeMasks,
  renderDefines,
  renderWrapperScript,
  shq,
  substituteRelease,
} from "../../../sandbox/plan.ts";
import type { BwrapPlan, WrapperPlan } from "../../../sandbox/plan.ts";

function sh(script: string): string {
  return execFileSync("/bin/sh", ["-c", script], { encoding: "utf8" });
}

const PLAN: BwrapPlan = {
  network: false,
  command: ["rpmbuild", "-ba", "x.spec"],
  cwd: SANDBOX_USER.home,
  env: baseEnv(),
  roBinds: [{ source: `${STAGE_DIR}/ro0`, target: "/home/abuild/rpmbuild/SOURCES" }],
  masks: [],
  hostname: "kiln-build",
};

/** The value following `flag` at each of its occurrences. */
function valuesOf(args: string[], flag: string, arity = 1): string[][] {
  const out: string[][] = [];
  args.forEach((a, i) => {
    if (a === flag) out.push(args.slice(i + 1, i + 1 + arity));
  });
  return out;
}

describe("sandbox/plan", () => {
  describe("shq", () => {
    it("should quote anything so that sh reads it back unchanged", () => {
      for (const s of ["plain", "with space", "it's", "'", "$HOME `id` $(id)", "a\nb", "*", "", "-n", "%{nil}"]) {
        assert.equal(sh(`printf %s ${shq(s)}`), s, JSON.stringify(s));
      }
    });
  });

  describe("renderDefines", () => {
    it("should render one --define per macro in order, an empty body as %{nil}", () => {
      assert.deepEqual(renderDefines({ release: "3.1", disturl: "obs://a/b c", debug_package: "%{nil}", empty: "" }), [
        "--define",
        "release 3.1",
        "--define",
        "disturl obs://a/b c",
        "--define",
        "debug_package %{nil}",
        "--define",
        "empty %{nil}",
      ]);
      assert.deepEqual(renderDefines({}), []);
    });

    it("should reject macro names that are not names and bodies with line breaks", () => {
      for (const name of ["", "1abc", "a b", "a-b", "%foo", "a\nb"]) {
        assert.throws(() => renderDefines({ [name]: "x" }), { code: "ERR_INVALID_INPUT" }, JSON.stringify(name));
      }
      for (const body of ["a\nb", "a\rb", "a\0b"]) {
        assert.throws(() => renderDefines({ ok: body }), { code: "ERR_INVALID_INPUT" });
      }
    });
  });

  describe("substituteRelease", () => {
    it("should replace the first Release tag only, keeping its spacing", () => {
      const spec = "Name: x\nRelease:        1%{?dist}\nSummary: y\n%package sub\nRelease: 7\n";
      assert.equal(
        substituteRelease(spec, "3.1"),
        "Name: x\nRelease:        3.1\nSummary: y\n%package sub\nRelease: 7\n"
      );
      assert.equal(substituteRelease("release: 0\n", "2"), "release: 2\n");
      assert.equal(substituteRelease("Name: x\r\nRelease: 1\r\n", "5"), "Name: x\r\nRelease: 5\r\n");
    });

    it("should leave a spec without Release alone and reject multi-line releases", () => {
      assert.equal(substituteRelease("Name: x\n# Release: 1\n", "2"), "Name: x\n# Release: 1\n");
      assert.throws(() => substituteRelease("Release: 1\n", "2\nEpoch: 9"), { code: "ERR_INVALID_INPUT" });
      assert.throws(() => substituteRelease("Release: 1\n", " "), { code: "ERR_INVALID_INPUT" });
    });
  });

  describe("computeMasks", () => {
    const binds = [
      { source: "/usr", target: "/usr" },
      { source: "/srv/cache/job1/src", target: "/home/abuild/rpmbuild/SOURCES" },
    ];

    it("should mask hidden paths inside bound directories at their place in the sandbox", () => {
      assert.deepEqual(
        computeMasks(
          [
            { path: "/usr/local/secret", isDir: true },
            { path: "/srv/cache/job1/src/key.pem", isDir: false },
          ],
          binds
        ),
        [
          { target: "/usr/local/secret", isDir: true },
          { target: "/home/abuild/rpmbuild/SOURCES/key.pem", isDir: false },
        ]
      );
    });

    it("should not mask hidden paths that nothing binds, nor parents of bound directories", () => {
      assert.deepEqual(
        computeMasks(
          [
            { path: "/srv/cache", isDir: true },
            { path: "/var/lib/kiln", isDir: true },
            { path: "/usrx", isDir: true },
          ],
          binds
        ),
        []
      );
    });

    it("should refuse to bind a hidden path itself", () => {
      assert.throws(() => computeMasks([{ path: "/usr", isDir: true }], binds), { code: "ERR_INVALID_INPUT" });
    });
  });

  describe("buildBwrapArgs", () => {
    it("should unshare everything, network included, and drop all capabilities", () => {
      const args = buildBwrapArgs(PLAN);
      assert.ok(args.includes("--unshare-all"));
      assert.ok(!args.includes("--share-net"));
      assert.ok(args.includes("--die-with-parent"));
      assert.ok(args.includes("--new-session"));
      assert.deepEqual(valuesOf(args, "--cap-drop"), [["ALL"]]);
      assert.deepEqual(valuesOf(args, "--uid"), [[String(SANDBOX_USER.uid)]]);
      assert.ok(buildBwrapArgs({ ...PLAN, network: true }).includes("--share-net"));
    });

    it("should show /etc/alternatives links on a read-only tmpfs of their own, refusing names with a slash", () => {
      const args = buildBwrapArgs({ ...PLAN, alternatives: [["awk", "/usr/bin/mawk"]] });
      const etc = args.indexOf("/etc");
      const tmpfs = args.indexOf("/etc/alternatives");
      assert.ok(etc >= 0 && tmpfs > etc && args[tmpfs - 1] === "--tmpfs", "tmpfs after /etc is bound");
      assert.deepEqual(
        valuesOf(args, "--symlink", 2).filter(([, at]) => at!.startsWith("/etc/")),
        [["/usr/bin/mawk", "/etc/alternatives/awk"]]
      );
      assert.ok(valuesOf(args, "--remount-ro").some(([p]) => p === "/etc/alternatives"));
      assert.equal(buildBwrapArgs(PLAN).includes("/etc/alternatives"), false);
      for (const bad of ["../x", "a/b", "..", ""]) {
        assert.throws(() => buildBwrapArgs({ ...PLAN, alternatives: [[bad, "/usr/bin/x"]] }), {
          code: "ERR_INVALID_INPUT",
        });
      }
    });

    it("should clear the environment and set exactly the given one", () => {
      const args = buildBwrapArgs({ ...PLAN, env: { ...baseEnv(), FOO: "a b" } });
      const clear = args.indexOf("--clearenv");
      const sets = valuesOf(args, "--setenv", 2);
      assert.ok(clear >= 0 && clear < args.indexOf("--setenv"));
      assert.deepEqual(Object.fromEntries(sets.map(([k, v]) => [k, v])), { ...baseEnv(), FOO: "a b" });
      assert.throws(() => buildBwrapArgs({ ...PLAN, env: { "BAD NAME": "x" } }), { code: "ERR_INVALID_INPUT" });
    });

    it("should bind only stage paths, read-only except the work tree, and make the rest read-only", () => {
      const args = buildBwrapArgs({ ...PLAN, masks: [{ target: "/usr/secret", isDir: true }] });
      const ro = valuesOf(args, "--ro-bind", 2);
      const rw = valuesOf(args, "--bind", 2);
      for (const [src] of [...ro, ...rw]) assert.ok(src!.startsWith(`${STAGE_DIR}/`), src);
      assert.deepEqual(
        ro.find(([, dst]) => dst === "/etc"),
        [`${STAGE_DIR}/etc`, "/etc"]
      );
      assert.deepEqual(
        rw.map(([src, dst]) => `${src}→${dst}`),
        [
          `${STAGE_DIR}/work/shm→/dev/shm`,
          `${STAGE_DIR}/work/tmp→/tmp`,
          `${STAGE_DIR}/work/vartmp→/var/tmp`,
          `${STAGE_DIR}/work/home→${SANDBOX_USER.home}`,
        ]
      );
      assert.deepEqual(
        ro.find(([, dst]) => dst === "/usr/secret"),
        [`${STAGE_DIR}/empty`, "/usr/secret"]
      );
      assert.deepEqual(valuesOf(args, "--remount-ro"), [["/dev"], ["/"]]);
    });

    it("should end with the command after --", () => {
      const args = buildBwrapArgs(PLAN);
      assert.deepEqual(args.slice(args.lastIndexOf("--")), ["--", "rpmbuild", "-ba", "x.spec"]);
      assert.deepEqual(valuesOf(args, "--chdir"), [[SANDBOX_USER.home]]);
      assert.throws(() => buildBwrapArgs({ ...PLAN, command: [] }), { code: "ERR_INVALID_INPUT" });
    });
  });

  describe("buildUnpackBwrapArgs", () => {
    it("should have no network and write only into the unpack target", () => {
      const args = buildUnpackBwrapArgs([]);
      assert.ok(args.includes("--unshare-all") && !args.includes("--share-net"));
      assert.deepEqual(valuesOf(args, "--bind", 2), [[`${STAGE_DIR}/deps`, "/dest"]]);
      const script = args[args.length - 1]!;
      assert.match(script, /rpm2cpio < "\$f" \| bsdtar -x/);
      assert.doesNotMatch(script, /rpm -i|rpm --install/);
    });
  });

  describe("renderWrapperScript", () => {
    const base: WrapperPlan = {
      dir: "/var/cache/kiln/jobs/j 1/build",
      privileged: true,
      hostUid: 1_500_000_123,
      stageBinds: [
        { source: "/usr", name: "hostusr" },
        { source: "/srv/my sources", name: "ro0" },
        { source: "out", name: "out", writable: true },
        { source: "/srv/x.rpm", name: "rpms/00000-x.rpm", file: true },
      ],
      usrLayers: ["hostusr"],
      etcLayers: [],
      unpack: true,
      workBytes: 64 * 1024 * 1024,
      workInodes: 16384,
      rlimits: [],
      unpackArgs: buildUnpackBwrapArgs([]),
      bwrapArgs: buildBwrapArgs(PLAN),
    };

    it("should be valid sh", () => {
      for (const plan of [base, { ...base, privileged: false, unpack: false }]) {
        execFileSync("/bin/sh", ["-n", "-c", renderWrapperScript(plan as WrapperPlan)]);
      }
    });

    it("should drop to the host uid before bwrap only when privileged", () => {
      const priv = renderWrapperScript(base);
      // The two bwraps, nothing else: results are copied out by the worker (collect.ts).
      assert.equal(priv.match(/setpriv --reuid 1500000123 --regid 1500000123 --clear-groups/g)?.length, 2);
      assert.doesNotMatch(renderWrapperScript({ ...base, privileged: false }), /setpriv|chown| -o \d/);
      assert.match(renderWrapperScript(base), /^install -d -m 0755 -o 1500000123 -g 1500000123 stage\/work\/home$/m);
      const bwraps = priv.split("\n").filter((l) => /(^| )bwrap /.test(l));
      assert.equal(bwraps.length, 2);
      for (const line of bwraps) assert.match(line, /^setpriv .* -- bwrap /);
      assert.match(priv, /^ulimit -c 0$/m);
      const limited = renderWrapperScript({ ...base, rlimits: ["--as=1000"] });
      for (const line of limited.split("\n").filter((l) => /(^| )bwrap /.test(l))) {
        assert.match(line, /^setpriv .* -- prlimit --as=1000 -- bwrap /);
      }
      // Neither sandboxed step gets the status fd.
      assert.equal(priv.match(/ 3>&-/g)?.length, 2);
    });

    it("should size the work tmpfs, make binds read-only unless writable, and quote paths", () => {
      const s = renderWrapperScript(base);
      const fstab = /^printf '%s\\n' (.*) > stage\.fstab$/m.exec(s)?.[1] ?? "";
      const job = "/var/cache/kiln/jobs/j\\\\0401/build";
      const mk = "X-mount.mkdir";
      assert.match(fstab, new RegExp(`'/srv/my\\\\040sources ${job}/stage/ro0 none bind,ro,${mk}=0755 0 0'`));
      assert.match(fstab, new RegExp(`'${job}/out ${job}/stage/out none bind,${mk}=0755 0 0'`));
      assert.match(
        fstab,
        new RegExp(
          `'kiln-work ${job}/stage/work tmpfs size=67108864,nr_inodes=16384,mode=0755,uid=1500000123,gid=1500000123,${mk}=0755 0 0'`
        )
      );
      assert.match(s, /^umask 0\nmount -n -a -T stage\.fstab\numask 022$/m);
      // The stage is a tmpfs, mounted before what is in it.
      assert.match(
        fstab,
        new RegExp(`^'kiln-stage ${job}/stage tmpfs mode=0755,size=16m,nr_inodes=16384,${mk}=0755 0 0' `)
      );
      // Directories that are no mount point of their own: binds onto themselves that mount makes.
      for (const [d, mode] of [
        ["empty", "0755"],
        ["rpms", "0755"],
        ["work/tmp", "1777"],
        ["work/vartmp", "1777"],
        ["work/shm", "1777"],
      ]) {
        assert.match(fstab, new RegExp(`'${job}/stage/${d} ${job}/stage/${d} none bind,${mk}=${mode} 0 0'`), d);
      }
      assert.doesNotMatch(fstab, /work\/home/);
      assert.match(
        /^printf '%s\\n' (.*) > stage\.fstab$/m.exec(renderWrapperScript({ ...base, privileged: false }))?.[1] ?? "",
        new RegExp(`'${job}/stage/work/home ${job}/stage/work/home none bind,${mk}=0755 0 0'`)
      );
      // A file to bind: its mount point is made by the shell, then a second mount -a binds it.
      assert.match(s, /^: > stage\/rpms\/00000-x\.rpm$/m);
      assert.match(
        s,
        new RegExp(
          `^printf '%s\\\\n' '/srv/x.rpm ${job}/stage/rpms/00000-x.rpm none bind,ro 0 0' > files\\.fstab\\nmount -n -a -T files\\.fstab$`,
          "m"
        )
      );
      // No program runs for directories or the disk line.
      assert.doesNotMatch(s, /^mkdir |^mount -n -t tmpfs|\$\(stat/m);
      // After the command: the worker's turn to read the work tree, then the end.
      assert.match(s, /^echo "exit \$rc" >&3\necho finish >&3\nread -r _ <&3 \|\| :\n$/m);
    });

    it("should set the stage up for real: binds read-only or writable, files, work directories", () => {
      // The set-up lines up to the move, run in a private mount namespace (and a user namespace
      // unless root), on a plan with real sources.
      const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-plan-"));
      try {
        for (const d of ["src", "out"]) mkdirSync(path.join(dir, d));
        writeFileSync(path.join(dir, "src", "a.txt"), "A\n");
        writeFileSync(path.join(dir, "pkg.rpm"), "RPM\n");
        const plan: WrapperPlan = {
          ...base,
          dir: path.join(dir, "run"),
          privileged: false,
          stageBinds: [
            { source: path.join(dir, "src"), name: "ro0" },
            { source: path.join(dir, "out"), name: "out", writable: true },
            { source: path.join(dir, "pkg.rpm"), name: "rpms/00000-pkg.rpm", file: true },
          ],
          unpack: false,
        };
        mkdirSync(plan.dir);
        const setup = renderWrapperScript(plan).split("\n");
        const upTo = setup.findIndex((l) => l.startsWith("mount -n --move"));
        const check = [
          "stat -c '%n %a' stage/work/* stage/empty",
          "cat stage/ro0/a.txt stage/rpms/00000-pkg.rpm",
          "touch stage/ro0/x 2>/dev/null && echo ro0-writable || echo ro0-read-only",
          "touch stage/out/y && echo out-writable",
        ];
        const out = execFileSync(
          "unshare",
          [
            ...(process.getuid?.() === 0 ? [] : ["--user", "--map-root-user"]),
            ...["--mount", "--propagation", "private", "--", "/bin/sh", "-c"],
            [...setup.slice(0, upTo).filter((l) => !l.includes("cgroup.procs")), ...check].join("\n"),
          ],
          { cwd: plan.dir, encoding: "utf8" }
        );
        assert.deepEqual(out.trim().split("\n"), [
          "stage/work/home 755",
          "stage/work/shm 1777",
          "stage/work/tmp 1777",
          "stage/work/vartmp 1777",
          "stage/empty 755",
          "A",
          "RPM",
          "ro0-read-only",
          "out-writable",
        ]);
        // Nothing of the stage is left on the host's disk but the empty mount point.
        assert.deepEqual(readdirSync(path.join(plan.dir, "stage")), []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("should bind a single /usr or /etc layer in the stage's own fstab, and overlay several after unpacking", () => {
      const job = "/var/cache/kiln/jobs/j\\\\0401/build";
      const plain: WrapperPlan = {
        ...base,
        unpack: false,
        stageBinds: [...base.stageBinds, { source: "/tmp/kiln-etc-1", name: "kiln-etc" }],
      };
      const s = renderWrapperScript(plain);
      const fstab = /^printf '%s\\n' (.*) > stage\.fstab$/m.exec(s)?.[1] ?? "";
      assert.match(fstab, new RegExp(`'/usr ${job}/stage/usr none bind,ro,X-mount.mkdir=0755 0 0'`));
      assert.match(fstab, new RegExp(`'/tmp/kiln-etc-1 ${job}/stage/etc none bind,ro,X-mount.mkdir=0755 0 0'`));
      assert.doesNotMatch(s, /root\.fstab/);
      // Two etc layers: the shell decides after the stage is in place, as with packages to unpack.
      const layered = renderWrapperScript({ ...plain, etcLayers: ["layer0etc"] });
      assert.match(layered, /^for d in kiln-etc layer0etc; do /m);
      assert.match(layered, /^mount -n -a -T root\.fstab$/m);
      assert.doesNotMatch(layered, /stage\/etc none/);
      assert.match(renderWrapperScript(base), /^for d in deps\/usr hostusr; do /m);
    });

    it("should leave out unpacking and collecting when not asked for", () => {
      const s = renderWrapperScript({ ...base, unpack: false });
      assert.doesNotMatch(s, /unpack|deps\//);
    });

    it("should refuse to overlay a dependency tree whose usr or etc is a symlink", () => {
      assert.match(renderWrapperScript(base), /for d in deps\/usr deps\/etc; do if \[ -L \$d \]/);
    });

    it("should bind the dependencies' other top-level directories where the bwrap arguments say, skipping symlinks", () => {
      const args = buildBwrapArgs({ ...PLAN, dependencyBinds: true });
      assert.equal(args.filter((a) => a === DEPENDENCY_BINDS).length, 1);
      // After /etc, before the work tree's binds (/var/tmp lies in a dependency's /var).
      assert.ok(args.indexOf(DEPENDENCY_BINDS) > args.indexOf("/etc"));
      assert.ok(args.indexOf(DEPENDENCY_BINDS) < args.indexOf("/var/tmp"));
      assert.ok(!buildBwrapArgs(PLAN).includes(DEPENDENCY_BINDS));
      const s = renderWrapperScript({ ...base, bwrapArgs: args });
      assert.ok(!s.includes("\0"));
      const line = s.split("\n").find((l) => l.startsWith("for d in deps/*"));
      assert.ok(line);
      assert.match(
        s.split("\n").find((l) => / bwrap .*\/var\/tmp/.test(l)) ?? "",
        / --ro-bind \/run\/etc \/etc "\$@" --bind /
      );
      // The loop for real, on a tree as unpacking leaves it.
      const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-plan-deps-"));
      try {
        for (const d of ["usr/bin", "etc", "opt/x", "var/lib", "srv", "home/abuild", "tmp", "with space"]) {
          mkdirSync(path.join(dir, "deps", d), { recursive: true });
        }
        writeFileSync(path.join(dir, "deps", "file"), "");
        symlinkSync("/root", path.join(dir, "deps", "escape"));
        const out = execFileSync("/bin/sh", ["-c", `set -eu\n${line}\nprintf '%s|' "$@"`], {
          cwd: dir,
          encoding: "utf8",
        });
        assert.deepEqual(out.split("|").filter(Boolean), [
          ...["--ro-bind", "/run/deps/home", "/home"],
          ...["--ro-bind", "/run/deps/opt", "/opt"],
          ...["--ro-bind", "/run/deps/srv", "/srv"],
          ...["--ro-bind", "/run/deps/var", "/var"],
          ...["--ro-bind", "/run/deps/with space", "/with space"],
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("should give a dependency's /var and /home the sandbox's mount points when unpacking, refusing symlinks", () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-plan-unpack-"));
      try {
        for (const d of ["a/var/lib", "a/home", "b/opt", "c/var"]) mkdirSync(path.join(dir, d), { recursive: true });
        symlinkSync("/etc", path.join(dir, "c", "var", "tmp"));
        const run = (sub: string): string =>
          execFileSync("/bin/bash", ["-c", UNPACK_SCRIPT], { cwd: path.join(dir, sub), encoding: "utf8" });
        run("a");
        assert.ok(statSync(path.join(dir, "a/var/tmp")).isDirectory());
        assert.ok(statSync(path.join(dir, "a", SANDBOX_USER.home)).isDirectory());
        run("b");
        assert.deepEqual(readdirSync(path.join(dir, "b")), ["opt"], "nothing made where the packages brought nothing");
        assert.throws(
          () => run("c"),
          (err: { status: number; stdout: string }) =>
            err.status === 1 && /dependency packages made \/var\/tmp a symlink/.test(err.stdout)
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("should run only the command's bwrap under the personality, after dropping privileges", () => {
      const plain = renderWrapperScript(base);
      assert.doesNotMatch(plain, /setarch/);
      const s = renderWrapperScript({ ...base, rlimits: ["--as=1000"], personality: "linux32" });
      const bwraps = s.split("\n").filter((l) => /(^| )bwrap /.test(l));
      assert.equal(bwraps.length, 2);
      // The unpack step runs as the host is; the command under setarch, which it cannot skip.
      assert.doesNotMatch(bwraps[0]!, /setarch/);
      assert.match(bwraps[1]!, /^setpriv .* -- prlimit --as=1000 -- setarch linux32 bwrap /);
      execFileSync("/bin/sh", ["-n", "-c", s]);
      assert.throws(
        () => renderWrapperScript({ ...base, personality: "linux32; id" as "linux32" }),
        /unknown personality/
      );
    });
  });

  describe("rpmbuildCommand", () => {
    it("should build -ba --nodeps with the job's macros first and the fixed layout last", () => {
      assert.deepEqual(rpmbuildCommand("hello.spec", { release: "2.1", _topdir: "/elsewhere" }), [
        "rpmbuild",
        "-ba",
        "--nodeps",
        "--define",
        "release 2.1",
        "--define",
        "_topdir /elsewhere",
        "--define",
        "_topdir /home/abuild/rpmbuild",
        "--define",
        "_sourcedir /home/abuild/rpmbuild/SOURCES",
        "--define",
        "_specdir /home/abuild/rpmbuild/SPECS",
        "/home/abuild/rpmbuild/SPECS/hello.spec",
      ]);
    });

    it("should apply the debuginfo setting as OBS's build script does, before the job's macros", () => {
      const on = rpmbuildCommand("x.spec", { release: "1" }, { debuginfo: true });
      assert.deepEqual(on.slice(3, 7), ["--define", "_build_create_debug 1", "--define", "release 1"]);
      assert.ok(!on.includes("--undefine"));
      const off = rpmbuildCommand("x.spec", { release: "1" }, { debuginfo: false });
      assert.deepEqual(off.slice(3, 7), ["--undefine", "_enable_debug_packages", "--define", "release 1"]);
      assert.ok(!off.some((a) => a.includes("_build_create_debug") || a.startsWith("debug_package")));
      assert.ok(!rpmbuildCommand("x.spec", {}).some((a) => a.includes("debug")));
    });

    it("should name the build target right after the mode, and refuse one that is not a platform name", () => {
      const cmd = rpmbuildCommand("hello.spec", { release: "1" }, { target: "i586" });
      assert.deepEqual(cmd.slice(0, 4), ["rpmbuild", "-ba", "--nodeps", "--target=i586"]);
      assert.equal(cmd.filter((a) => a.startsWith("--target")).length, 1);
      assert.ok(rpmbuildCommand("x.spec", {}, { target: "i686-suse-linux" }).includes("--target=i686-suse-linux"));
      assert.ok(!rpmbuildCommand("x.spec", {}).some((a) => a.startsWith("--target")));
      for (const bad of ["", "i586 --define=x", "-i586", "i586\n", "../x"]) {
        assert.throws(() => rpmbuildCommand("x.spec", {}, { target: bad }), /invalid build target/, bad);
      }
    });
  });

  describe("renderServicesScript", () => {
    const services = {
      dir: "/srv/services",
      calls: [
        { name: "tar", args: ["--outdir", BUILDTIME_SERVICE_OUTDIR] },
        { name: "set_version", args: ["--outdir", BUILDTIME_SERVICE_OUTDIR, "--version", "1.0 $(id)'"] },
      ],
      env: { OBS_SERVICE_PROJECT: "home:me", OBS_SERVICE_PACKAGE: "it's" },
    };

    it("should be valid sh that runs each service in order and then execs rpmbuild", () => {
      const s = renderServicesScript(services, "x.spec", "3.1", rpmbuildCommand("x.spec", {}));
      execFileSync("/bin/sh", ["-n", "-c", s]);
      const lines = s.trimEnd().split("\n");
      assert.equal(lines.filter((l) => l.startsWith("svc ")).length, 2);
      assert.ok(
        lines.indexOf("svc tar --outdir /tmp/.kiln-service-out") <
          lines.findIndex((l) => l.startsWith("svc set_version"))
      );
      assert.match(lines[lines.length - 1]!, /^exec rpmbuild -ba --nodeps /);
      assert.match(s, /OBS_SERVICE_PROJECT=home:me OBS_SERVICE_PACKAGE='it'\\''s' \/kiln\/services\/"\$name" "\$@"/);
    });

    it("should set the spec's first Release tag as substituteRelease does, whatever the release holds", () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-plan-release-"));
      try {
        const spec = "Name: x\nrelease :\t 0\nSummary: y\n%package sub\nRelease: 7\n";
        for (const release of ["3.1", "1/2&3\\4", "'$(id)'"]) {
          writeFileSync(path.join(dir, "x.spec"), spec);
          const s = renderServicesScript({ ...services, calls: [] }, "x.spec", release, ["true"]);
          const sed = s.split("\n").find((l) => l.startsWith("sed "))!;
          const out = sh(`cd ${shq(dir)} && ${sed.replace(/ > .*$/, "")}`);
          assert.equal(out, substituteRelease(spec, release), release);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("should refuse service names that are not plain program names", () => {
      for (const name of ["../bin/sh", "a/b", "", "-x"]) {
        assert.throws(
          () => renderServicesScript({ ...services, calls: [{ name, args: [] }] }, "x.spec", undefined, ["true"]),
          /invalid service name/,
          name
        );
      }
    });
  });
});
