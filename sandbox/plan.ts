/**
 * Pure construction of everything a sandboxed run executes: the bwrap argument lists, the wrapper
 * shell script that assembles the build root, rpm `--define` arguments and the Release rewrite.
 * Nothing here touches the file system, so all of it is unit-tested.
 *
 * The run is three nested layers (see {@link renderWrapperScript}):
 * 1. the *wrapper*, a shell script in a private mount namespace, as real root (or as root of a
 *    user namespace when the worker is not root). It joins the run's cgroups, assembles a
 *    *stage* tmpfs holding bind mounts of everything the sandbox may see, moves it to `/run`
 *    (a path every uid can traverse, unlike the worker's private directories), mounts the overlay
 *    of dependency packages' `/usr` over the base `/usr` (and their `/etc` over kiln's), binds
 *    their other top-level directories (`/opt`, `/var`, …) in place, and afterwards copies
 *    results out;
 * 2. `bwrap`, started as an unprivileged host uid (a fresh one per run), so nothing the sandbox
 *    does is done with real root's identity, not even through a user namespace;
 * 3. the command, as uid 399 ("abuild") inside bwrap's user namespace.
 */
import { InvalidInputError } from "../transport/index.ts";

/** The user a command runs as inside the sandbox, as in OBS. */
export const SANDBOX_USER = Object.freeze({ name: "abuild", uid: 399, gid: 399, home: "/home/abuild" });

/** Where the stage is mounted in the wrapper's mount namespace. */
export const STAGE_DIR = "/run";

/** Host uids for sandboxed runs are drawn from this range, one per run. */
export const SANDBOX_UID_RANGE = Object.freeze({ start: 1_500_000_000, size: 1_000_000 });

/** Processes the sandbox machinery itself needs in the run's pids cgroup (wrapper, bwrap ×2, copy). */
export const PIDS_OVERHEAD = 8;

/** PATH inside the sandbox (Debian is usr-merged; /bin and /sbin are links). */
export const SANDBOX_PATH = "/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin";

/** A path as fstab(5) wants it: space, tab, newline and backslash as octal escapes. */
export function fstabEscape(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/** Quotes a string for POSIX sh. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const MACRO_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Turns rpm macro definitions into `--define` arguments, after checking that each name is a
 * macro name and each body is one line (a newline would end the definition early and let the
 * rest be read as something else).
 */
export function renderDefines(defines: Readonly<Record<string, string>>): string[] {
  const args: string[] = [];
  for (const [name, body] of Object.entries(defines)) {
    if (!MACRO_NAME.test(name)) throw new InvalidInputError(`invalid rpm macro name "${name}"`, { data: { name } });
    if (typeof body !== "string" || /[\n\r\0]/.test(body)) {
      throw new InvalidInputError(`rpm macro "${name}" must be a single line`, { data: { name } });
    }
    args.push("--define", `${name} ${body === "" ? "%{nil}" : body}`);
  }
  return args;
}

/**
 * Replaces the value of the spec's first `Release:` tag, as OBS's build script does with the
 * release the scheduler computed; rpm gives a tag in the spec precedence over `--define release`,
 * so the define alone would not reach the packages. Returns the spec unchanged when it has no
 * Release tag.
 */
export function substituteRelease(spec: string, release: string): string {
  if (/[\n\r\0]/.test(release) || release.trim() === "") {
    throw new InvalidInputError("release must be a non-empty single line", { data: { release } });
  }
  return spec.replace(/^(Release[ \t]*:[ \t]*)[^\r\n]*/im, (_, tag: string) => `${tag}${release}`);
}

/** A read-only view of a host path at `target` inside the sandbox. */
export interface SandboxBind {
  source: string;
  target: string;
}

/** A host path that must not be visible, and whether it is a directory. */
export interface HiddenPath {
  path: string;
  isDir: boolean;
}

/** A mount of something empty over a hidden path that would otherwise show through a bind. */
export interface Mask {
  target: string;
  isDir: boolean;
}

function isUnder(child: string, parent: string): boolean {
  return parent === "/" ? child !== "/" : child.startsWith(parent + "/");
}

/**
 * Hidden paths that lie inside a bound host directory are masked at their place in the sandbox;
 * binding a hidden path itself (or a parent of it as a whole is fine, a child is masked) is refused.
 */
export function computeMasks(hidden: readonly HiddenPath[], binds: readonly SandboxBind[]): Mask[] {
  const masks: Mask[] = [];
  for (const h of hidden) {
    for (const b of binds) {
      if (h.path === b.source) {
        throw new InvalidInputError(`hidden path ${h.path} would be visible in the sandbox`, {
          data: { path: h.path, target: b.target },
        });
      }
      if (isUnder(h.path, b.source)) {
        const rel = h.path.slice(b.source === "/" ? 1 : b.source.length + 1);
        masks.push({ target: `${b.target === "/" ? "" : b.target}/${rel}`, isDir: h.isDir });
      }
    }
  }
  return masks;
}

/** Options of {@link buildBwrapArgs}. */
export interface BwrapPlan {
  /** Share the host's network (source services); default is a private, empty network namespace. */
  network: boolean;
  /** Command and arguments; the first is looked up in the sandbox's PATH by bwrap. */
  command: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  /** Stage path → sandbox path, read-only. */
  roBinds: readonly SandboxBind[];
  masks: readonly Mask[];
  hostname: string;
  /**
   * Show the top-level directories of the unpacked dependency packages other than usr and etc
   * (`/opt`, `/var`, `/srv`, …) read-only at their place. Which ones exist is known only after
   * unpacking, so the wrapper script fills them in (see {@link DEPENDENCY_BINDS}).
   */
  dependencyBinds?: boolean;
  /**
   * Links (name → target) shown in `/etc/alternatives`, which must exist (empty) in the /etc:
   * made by bwrap on a tmpfs of its own, for runs whose /etc is written for each run (with
   * network), where that costs far less than writing them. A prepared /etc has them already.
   */
  alternatives?: readonly (readonly [string, string])[];
}

/** The environment every sandboxed command starts with (the worker's own is never passed on). */
export function baseEnv(): Record<string, string> {
  return {
    PATH: SANDBOX_PATH,
    HOME: SANDBOX_USER.home,
    USER: SANDBOX_USER.name,
    LOGNAME: SANDBOX_USER.name,
    SHELL: "/bin/sh",
    LANG: "C.UTF-8",
    TMPDIR: "/tmp",
  };
}

/** Checks names and values of an environment for the sandbox. */
export function validateEnv(env: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k)) throw new InvalidInputError(`invalid environment variable name "${k}"`, { data: { k } });
    if (typeof v !== "string" || v.includes("\0")) {
      throw new InvalidInputError(`invalid value of environment variable ${k}`, { data: { k } });
    }
  }
}

/** Sandbox root skeleton shared by the build and the unpack step: usr-merge links, /proc, /dev. */
function skeleton(usr: string): string[] {
  return [
    "--ro-bind",
    usr,
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/sbin",
    "/sbin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
  ];
}

function maskArgs(masks: readonly Mask[]): string[] {
  return masks.flatMap((m) =>
    m.isDir ? ["--ro-bind", `${STAGE_DIR}/empty`, m.target] : ["--ro-bind", "/dev/null", m.target]
  );
}

/**
 * bwrap arguments of the command's sandbox: every namespace new (network unless allowed), the
 * merged `/usr` and the constructed `/etc` read-only, home, /tmp, /var/tmp and /dev/shm on the
 * size-limited work tmpfs, everything else (the bwrap root, /dev) read-only.
 */
export function buildBwrapArgs(plan: BwrapPlan): string[] {
  if (plan.command.length === 0) throw new InvalidInputError("empty sandbox command");
  validateEnv(plan.env);
  const w = `${STAGE_DIR}/work`;
  const args = [
    "--unshare-all",
    ...(plan.network ? ["--share-net"] : []),
    "--uid",
    String(SANDBOX_USER.uid),
    "--gid",
    String(SANDBOX_USER.gid),
    "--hostname",
    plan.hostname,
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--clearenv",
    ...Object.entries(plan.env).flatMap(([k, v]) => ["--setenv", k, v]),
    ...skeleton(`${STAGE_DIR}/usr`),
    "--ro-bind",
    `${STAGE_DIR}/etc`,
    "/etc",
    ...alternativesArgs(plan.alternatives ?? []),
    // Before the work tree's binds: /var/tmp is mounted over a dependency's /var.
    ...(plan.dependencyBinds ? [DEPENDENCY_BINDS] : []),
    "--bind",
    `${w}/shm`,
    "/dev/shm",
    "--bind",
    `${w}/tmp`,
    "/tmp",
    "--bind",
    `${w}/vartmp`,
    "/var/tmp",
    "--bind",
    `${w}/home`,
    SANDBOX_USER.home,
    ...plan.roBinds.flatMap((b) => ["--ro-bind", b.source, b.target]),
    ...maskArgs(plan.masks),
    "--remount-ro",
    "/dev",
    "--remount-ro",
    "/",
    "--chdir",
    plan.cwd,
    "--",
    ...plan.command,
  ];
  return args;
}

/**
 * Stands in a bwrap argument list for the binds of the dependency packages' top-level directories,
 * which the wrapper script puts there. It contains a NUL, so no real argument can be mistaken for it.
 */
export const DEPENDENCY_BINDS = "\0kiln-dependency-binds";

/**
 * Top-level names of the unpacked packages that are not bound on their own: usr and etc are
 * overlays, bin/sbin/lib/lib64 were merged into usr, and the rest the sandbox makes itself.
 */
const NOT_BOUND = ["usr", "etc", "bin", "sbin", "lib", "lib64", "proc", "dev", "sys", "tmp"];

/** Where the sandbox mounts its work tree inside directories a dependency package may bring. */
const WORK_MOUNTS_UNDER_DEPS = ["var/tmp", SANDBOX_USER.home.slice(1)];

function alternativesArgs(links: readonly (readonly [string, string])[]): string[] {
  if (links.length === 0) return [];
  const args = ["--tmpfs", "/etc/alternatives"];
  for (const [name, target] of links) {
    if (name === "" || name === "." || name === ".." || name.includes("/") || target.includes("\0")) {
      throw new InvalidInputError(`bad alternatives link ${JSON.stringify(name)}`);
    }
    args.push("--symlink", target, `/etc/alternatives/${name}`);
  }
  args.push("--remount-ro", "/etc/alternatives");
  return args;
}

/**
 * Unpacks every package in /rpms into the current directory with `rpm2cpio | bsdtar` (never
 * `rpm -i`: no scriptlets, no rpm database). Top-level bin, sbin, lib and lib64 are rewritten into
 * usr/ because the host is usr-merged (symlink targets are left alone; they resolve through the
 * sandbox's own /bin → usr/bin links); the top-level entries themselves (often symlinks in
 * filesystem-like packages) are dropped. bsdtar refuses `..`, absolute names and extraction through
 * symlinks by default.
 */
export const UNPACK_SCRIPT = [
  "set -euo pipefail",
  "umask 022",
  "shopt -s nullglob",
  "for f in /rpms/*.rpm; do",
  '  echo "[kiln] unpacking ${f#/rpms/?????-}"',
  '  rpm2cpio < "$f" | bsdtar -x -f - --no-same-owner --no-xattrs --no-acls --no-fflags \\',
  "    -s ',^\\(\\./\\)*\\(bin\\|sbin\\|lib\\|lib64\\)$,.kiln-usrmerge/\\2,' \\",
  "    -s ',^\\(\\./\\)*\\(bin\\|sbin\\|lib\\|lib64\\)/,usr/\\2/,S'",
  "done",
  "rm -rf ./.kiln-usrmerge",
  // The sandbox mounts its work tree at these paths; a package's /var or /home needs the mount
  // point, and one the packages made a symlink would be followed.
  `for m in ${WORK_MOUNTS_UNDER_DEPS.join(" ")}; do`,
  "  top=${m%%/*}",
  '  if [ -d "$top" ] && [ ! -L "$top" ]; then',
  '    if [ -L "$m" ]; then echo "[kiln] dependency packages made /$m a symlink"; exit 1; fi',
  '    [ -d "$m" ] || mkdir -p "$m"',
  "  fi",
  "done",
].join("\n");

/** bwrap arguments of the unpack step: host /usr for the tools, the packages, the target; no network. */
export function buildUnpackBwrapArgs(masks: readonly Mask[]): string[] {
  return [
    "--unshare-all",
    // Root of its own user namespace (mapped to the run's host uid) so that bsdtar may write into
    // read-only directories an earlier package created, as rpm itself would.
    "--uid",
    "0",
    "--gid",
    "0",
    "--cap-drop",
    "ALL",
    "--cap-add",
    "CAP_DAC_OVERRIDE",
    "--cap-add",
    "CAP_FOWNER",
    "--die-with-parent",
    "--new-session",
    "--clearenv",
    "--setenv",
    "PATH",
    SANDBOX_PATH,
    "--setenv",
    "LANG",
    "C.UTF-8",
    ...skeleton(`${STAGE_DIR}/hostusr`),
    "--ro-bind",
    `${STAGE_DIR}/kiln-etc`,
    "/etc",
    "--ro-bind",
    `${STAGE_DIR}/rpms`,
    "/rpms",
    "--bind",
    `${STAGE_DIR}/deps`,
    "/dest",
    ...maskArgs(masks),
    "--remount-ro",
    "/",
    "--chdir",
    "/dest",
    "--",
    "/usr/bin/bash",
    "-c",
    UNPACK_SCRIPT,
  ];
}

/** A bind of a host path into the stage; `source` is absolute or relative to the job directory. */
export interface StageBind {
  source: string;
  /** Name in the stage; the wrapper and bwrap refer to it as `/run/<name>`. */
  name: string;
  writable?: boolean;
  /** A file rather than a directory (the mount point is created as an empty file). */
  file?: boolean;
}

/** Everything {@link renderWrapperScript} needs. */
export interface WrapperPlan {
  /** The run's directory (absolute): the wrapper's cwd, with an empty `stage` directory for the stage. */
  dir: string;
  /** The worker is real root: drop to `hostUid` before bwrap; otherwise we are in a user namespace. */
  privileged: boolean;
  hostUid: number;
  stageBinds: readonly StageBind[];
  /** Stage names of usr layers below the unpacked packages, top first (the base last). */
  usrLayers: readonly string[];
  /** Stage names of etc layers below kiln's own /etc, top first. */
  etcLayers: readonly string[];
  /** Whether packages are to be unpacked (stage `rpms` → stage `deps`). */
  unpack: boolean;
  workBytes: number;
  workInodes: number;
  /** Extra prlimit options (no core dumps is always set, by the wrapper's `ulimit -c 0`). */
  rlimits: readonly string[];
  unpackArgs: readonly string[];
  bwrapArgs: readonly string[];
  /**
   * Personality the command runs under (OBS's helper from BSCando: `linux32` makes an x86_64 host
   * look like i686 to `uname` and rpm, for i586/i686 builds). Set by `setarch` in front of bwrap,
   * so the command cannot see or skip it; no extra program for native builds.
   */
  personality?: Personality;
}

/** Personalities `setarch` gives a sandboxed command (OBS's helpers of the same names). */
export const PERSONALITIES = ["linux32", "linux64"] as const;
export type Personality = (typeof PERSONALITIES)[number];

/**
 * The wrapper's script: sourced by the wrapper's shell (wrapper.ts) once that has joined the run's
 * cgroups; runs with cwd = the job directory in a fresh private mount namespace and reports on
 * fd 3, one line per event: `unpack <rc>`, `exit <rc>`, then `finish`, after which it waits for a
 * line on fd 3 (the worker's go-ahead to end; until then the work tree can be read). A missing
 * `exit` line means set-up failed (details on stderr). The sandboxed commands get neither fd 3
 * nor the wrapper's stderr, so they cannot forge these.
 */
export function renderWrapperScript(plan: WrapperPlan): string {
  const dropTo = plan.privileged
    ? `setpriv --reuid ${plan.hostUid} --regid ${plan.hostUid} --clear-groups --bounding-set=-all --inh-caps=-all --no-new-privs --`
    : "";
  // No core dumps for anything the wrapper starts: a shell builtin rather than one more program
  // per sandboxed step. prlimit only when fallback rlimits are wanted (no cgroups).
  const limit = plan.rlimits.length ? ["prlimit", ...plan.rlimits, "--"].join(" ") : "";
  const owner = plan.privileged ? `,uid=${plan.hostUid},gid=${plan.hostUid}` : "";
  // Every line that runs a program costs a fork and exec on each build's path, and on many hosts
  // every directory made on the job's disk costs a journal write. So the stage is a tmpfs, and it,
  // the binds, the work tmpfs and the directories in both are one `mount -a` over a generated
  // fstab: X-mount.mkdir makes each mount point (under umask 0, so that 1777 stays), directories
  // that are not mount points are made as binds onto themselves, and read-only binds are
  // remounted read-only by mount itself (util-linux ≥ 2.27). Files to bind (packages) need their
  // mount points made by the shell in the stage first: a second `mount -a`.
  const abs = (p: string): string => fstabEscape(p.startsWith("/") ? p : `${plan.dir}/${p}`);
  const mkdirOpt = (mode = "0755"): string => `X-mount.mkdir=${mode}`;
  const self = (at: string, mode?: string): string => `${abs(at)} ${abs(at)} none bind,${mkdirOpt(mode)} 0 0`;
  const fstab: string[] = [
    `kiln-stage ${abs("stage")} tmpfs mode=0755,size=16m,nr_inodes=16384,${mkdirOpt()} 0 0`,
    // What bwrap binds over hidden directories.
    self("stage/empty"),
  ];
  const fileBinds: StageBind[] = [];
  for (const b of plan.stageBinds) {
    if (b.file) {
      fileBinds.push(b);
      continue;
    }
    fstab.push(`${abs(b.source)} ${abs(`stage/${b.name}`)} none ${b.writable ? "bind" : "bind,ro"},${mkdirOpt()} 0 0`);
  }
  fstab.push(
    `kiln-work ${abs("stage/work")} tmpfs size=${plan.workBytes},nr_inodes=${plan.workInodes},mode=0755${owner},${mkdirOpt()} 0 0`,
    self("stage/work/tmp", "1777"),
    self("stage/work/vartmp", "1777"),
    self("stage/work/shm", "1777"),
    // As root the home must belong to the sandbox's uid, which X-mount.mkdir cannot do.
    ...(plan.privileged ? [] : [self("stage/work/home")])
  );
  // /usr and /etc: an overlay of the layers that exist, or a bind of the only one. Which exist is
  // known only after unpacking packages, so the shell writes them into one more fstab (printf is
  // a builtin) for one more `mount -a`; a single layer known now (nothing to unpack, the case of
  // most builds) is a bind in the stage's fstab, straight from its host source.
  const rootMounts: string[] = [];
  const rootLayer = (target: string, candidates: string[]): void => {
    const only = candidates.length === 1 ? plan.stageBinds.find((b) => b.name === candidates[0] && !b.file) : undefined;
    if (only) {
      fstab.push(`${abs(only.source)} ${abs(`stage/${target}`)} none bind,ro,${mkdirOpt()} 0 0`);
      return;
    }
    rootMounts.push(
      "lower=",
      `for d in ${candidates.map(shq).join(" ")}; do if [ -d "$d" ] && [ ! -L "$d" ]; then lower="\${lower:+$lower:}${STAGE_DIR}/$d"; fi; done`,
      `case "$lower" in *:*) printf '%s\\n' "kiln-${target} ${STAGE_DIR}/${target} overlay ro,lowerdir=$lower,X-mount.mkdir 0 0" ;; *) printf '%s\\n' "$lower ${STAGE_DIR}/${target} none bind,ro,X-mount.mkdir 0 0" ;; esac >> root.fstab`
    );
  };
  rootLayer("usr", [...(plan.unpack ? ["deps/usr"] : []), ...plan.usrLayers]);
  rootLayer("etc", ["kiln-etc", ...(plan.unpack ? ["deps/etc"] : []), ...plan.etcLayers]);
  const fileDirs = [...new Set(fileBinds.map((b) => `stage/${b.name}`.replace(/\/[^/]*$/, "")))];
  fstab.push(...fileDirs.filter((d) => d !== "stage").map((d) => self(d)));
  const L: string[] = [
    "set -eu",
    "umask 022",
    "ulimit -c 0",
    `printf '%s\\n' ${fstab.map(shq).join(" ")} > stage.fstab`,
    "umask 0",
    "mount -n -a -T stage.fstab",
    "umask 022",
  ];
  if (fileBinds.length > 0) {
    const files = fileBinds.map((b) => `${abs(b.source)} ${abs(`stage/${b.name}`)} none bind,ro 0 0`);
    L.push(
      ...fileBinds.map((b) => `: > ${shq(`stage/${b.name}`)}`),
      `printf '%s\\n' ${files.map(shq).join(" ")} > files.fstab`,
      "mount -n -a -T files.fstab"
    );
  }
  if (plan.privileged) L.push(`install -d -m 0755 -o ${plan.hostUid} -g ${plan.hostUid} stage/work/home`);
  L.push(`mount -n --move stage ${STAGE_DIR}`, `cd ${STAGE_DIR}`);
  if (plan.unpack) {
    L.push(
      "set +e",
      [dropTo, limit, "bwrap", ...plan.unpackArgs.map(shq)].filter(Boolean).join(" ") + " 2>&1 3>&-",
      "rc=$?",
      "set -e",
      // A package that turned usr or etc into a symlink would make the overlay below follow it
      // on the host, as root.
      'for d in deps/usr deps/etc; do if [ -L $d ]; then echo "[kiln] dependency packages made /${d#deps/} a symlink"; rc=100; fi; done',
      'echo "unpack $rc" >&3',
      '[ "$rc" = 0 ] || exit 0',
      // The packages' other top-level directories, read-only at their place (shell builtins
      // only: nothing more to start). A symlink is skipped: bwrap would follow it on the host.
      "set --",
      `for d in deps/*; do n=\${d#deps/}; case "$n" in ${NOT_BOUND.join("|")}) continue ;; esac; if [ -d "$d" ] && [ ! -L "$d" ]; then set -- "$@" --ro-bind "${STAGE_DIR}/$d" "/$n"; fi; done`
    );
  }
  if (plan.personality !== undefined && !PERSONALITIES.includes(plan.personality)) {
    throw new InvalidInputError(`unknown personality "${String(plan.personality)}"`);
  }
  const setarch = plan.personality ? `setarch ${plan.personality}` : "";
  if (rootMounts.length > 0) L.push(...rootMounts, "mount -n -a -T root.fstab");
  L.push(
    "set +e",
    [dropTo, limit, setarch, "bwrap", ...plan.bwrapArgs.map((a) => (a === DEPENDENCY_BINDS ? '"$@"' : shq(a)))]
      .filter(Boolean)
      .join(" ") + " 2>&1 3>&- </dev/null",
    "rc=$?",
    "set -e",
    'echo "exit $rc" >&3',
    // The worker now reads the work tree's disk use and copies the results out through this
    // process's view of it (collect.ts), and answers on the same socket when it is done: the
    // work tree lives as long as this mount namespace does.
    "echo finish >&3",
    "read -r _ <&3 || :"
  );
  return L.join("\n") + "\n";
}
