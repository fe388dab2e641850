/**
 * {@link runSandboxed}: run one command in a fresh sandbox under hard limits and report how it
 * ended. The lower layer under {@link runRpmBuild}, meant to be reused by source-service and
 * post-build hook runners (network on or off, any base `/usr`, any read-only inputs).
 */
import { randomInt } from "node:crypto";
import { chownSync, lstatSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import path from "node:path";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { InvalidInputError } from "../transport/index.ts";
import { preparedEtc, readHostAlternatives, writeMinimalEtc } from "./etc.ts";
import { SandboxSetupError } from "./errors.ts";
import type { SandboxLimits } from "./limits.ts";
import { validateLimits } from "./limits.ts";
import { isolatedResolvConfOfHost, openIsolatedNetwork, validatePorts } from "./netns.ts";
import type { IsolatedNetwork } from "./netns.ts";
import {
  PIDS_OVERHEAD,
  SANDBOX_UID_RANGE,
  SANDBOX_USER,
  STAGE_DIR,
  baseEnv,
  buildBwrapArgs,
  buildUnpackBwrapArgs,
  computeMasks,
  renderWrapperScript,
  validateEnv,
} from "./plan.ts";
import type { HiddenPath, Personality, SandboxBind, StageBind } from "./plan.ts";
import { collectResults, validateCollectPlan } from "./collect.ts";
import type { CollectPlan, Collected } from "./collect.ts";
import { descendantsOf, readProcessTable, signalAll } from "./process-tree.ts";
import { Wrapper } from "./wrapper.ts";
import type { WrapperPool } from "./wrapper.ts";

/** What the sandbox's root is made of. */
export interface SandboxRoot {
  /** Host directory shown as `/usr` below everything else. @default "/usr" (the host's own) */
  baseUsr?: string;
  /** Host directories holding root trees (`usr/`, `etc/`) layered over the base, top first. */
  layers?: readonly string[];
  /** Packages unpacked (in a sandbox of their own) into a fresh top layer under the run's directory. */
  rpms?: readonly string[];
}

/** Options of {@link runSandboxed}. */
export interface SandboxRunOptions {
  /**
   * A private directory for this run (created if missing, must be empty otherwise). Holds the
   * constructed /etc, unpacked packages and `out/` with collected files; nothing the command
   * writes goes here except what {@link collect} copies.
   */
  dir: string;
  /** argv inside the sandbox. */
  command: readonly string[];
  /** Working directory inside. @default the sandbox user's home */
  cwd?: string;
  /** Added to the fixed base environment (PATH, HOME, LANG, …); the worker's own is never passed. */
  env?: Readonly<Record<string, string>>;
  /**
   * `true`: the host's own network; an {@link IsolatedNetwork}: a network namespace of the run's
   * own with outbound connectivity but no view of the host's loopback (source services).
   * @default false: a private, empty network
   */
  network?: boolean | IsolatedNetwork;
  root?: SandboxRoot;
  /** Read-only views of host paths (sources, results to check). */
  binds?: readonly SandboxBind[];
  /** Regular files to copy out of the work tree into `<dir>/out` once every process is gone. */
  collect?: CollectPlan;
  limits: SandboxLimits;
  /** The command's stdout and stderr, merged in order, as it happens; never more than `limits.logBytes`. */
  onOutput: (chunk: Buffer) => void;
  /** Abort: SIGTERM to the command's processes, SIGKILL to all of them `graceMs` later. */
  signal?: AbortSignal;
  log: Logger;
  /** Host paths that must not be visible (data directory, worker cache); masked if under a bind. */
  hiddenPaths?: readonly string[];
  hostname?: string;
  /** Between SIGTERM and SIGKILL. @default 2000 */
  graceMs?: number;
  /** Host uid the sandbox runs as when the worker is root. @default a fresh one per run */
  hostUid?: number;
  /** Personality of the command (`linux32` for i586/i686 builds on x86_64). @default the host's */
  personality?: Personality;
  /**
   * Where a wrapper started ahead may be waiting (a worker's builds and hooks); one is started
   * for the run otherwise, and always for a run in a network namespace of its own.
   */
  wrappers?: WrapperPool;
}

/** Why the sandbox killed a run (timeouts are reported as `sandbox.timedOut`). */
export const KillReason = {
  Aborted: "aborted",
  LogLimit: "logLimit",
  Memory: "memory",
  Pids: "pids",
  Disk: "disk",
} as const;
export type KillReason = (typeof KillReason)[keyof typeof KillReason];

/** Measurements of one run. */
export interface SandboxStats {
  startedAt: number;
  endedAt: number;
  wallMs: number;
  /** Output bytes produced (counted up to the point the run was stopped). */
  outputBytes: number;
  /** Peak of the run's memory cgroup, tmpfs pages included. */
  peakMemoryBytes?: number;
  /** Most of the work tmpfs seen in use. */
  diskBytes?: number;
  /** The work tmpfs was full (blocks or inodes) when last looked at. */
  diskFull: boolean;
}

/** How a sandboxed run ended. */
export type SandboxResult =
  | { type: "sandbox.exited"; code: number; files: string[]; collectOk: boolean; stats: SandboxStats }
  | { type: "sandbox.killed"; reason: KillReason; signal: "SIGTERM" | "SIGKILL"; stats: SandboxStats }
  | { type: "sandbox.timedOut"; limit: "wall" | "idle"; signal: "SIGTERM" | "SIGKILL"; stats: SandboxStats }
  | { type: "sandbox.unpackFailed"; code: number; stats: SandboxStats };

type Ending =
  | { kind: "killed"; reason: KillReason; signal: "SIGTERM" | "SIGKILL" }
  | { kind: "timedOut"; limit: "wall" | "idle"; signal: "SIGTERM" | "SIGKILL" };

const TICK_MS = 200;
const STATUS_MAX = 64 * 1024;
const STDERR_TAIL = 16 * 1024;
/** The script the wrapper runs, in the run's directory. */
const SCRIPT_FILE = "wrapper.sh";
/** The sandbox home as the wrapper sees it (bwrap binds it to the sandbox user's home). */
const WRAPPER_HOME = `${STAGE_DIR}/work/home`;

function checkAbsolute(p: string, what: string): string {
  if (!path.isAbsolute(p) || path.normalize(p) !== p.replace(/\/+$/, "") || p === "/") {
    throw new InvalidInputError(`${what} must be a normalized absolute path, got "${p}"`, { data: { path: p } });
  }
  return path.normalize(p);
}

/**
 * The sandbox runs as an unprivileged uid, so what it reads must be readable by "other". (Parent
 * directories need not be: the wrapper binds each input into a traversable stage.)
 */
function checkReadable(p: string, mode: number, dir: boolean): void {
  const need = dir ? 0o005 : 0o004;
  if ((mode & need) !== need) {
    throw new InvalidInputError(`${p} is not readable by the sandbox (mode ${(mode & 0o777).toString(8)})`, {
      data: { path: p, mode: mode & 0o777 },
    });
  }
}

// Set-up uses synchronous file-system calls: each is microseconds of metadata work on a local
// file system, while an asynchronous one costs a thread-pool round trip, and a run makes a few
// dozen of them on every build's path.

function isDir(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function hiddenEntries(paths: readonly string[]): HiddenPath[] {
  const out: HiddenPath[] = [];
  for (const p of paths) {
    const abs = checkAbsolute(p, "hidden path");
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st && !st.isSymbolicLink()) out.push({ path: abs, isDir: st.isDirectory() });
  }
  return out;
}

function stageName(i: number, file: string): string {
  let base = path.basename(file).replace(/[^A-Za-z0-9._+-]/g, "_");
  if (!base.endsWith(".rpm")) base += ".rpm";
  return `rpms/${String(i).padStart(5, "0")}-${base}`;
}

/**
 * Runs `command` in a new sandbox and resolves once every process of it is gone. A command that
 * fails or is killed is a result, not an error; throws only for invalid options
 * (InvalidInputError) or a host that could not set the sandbox up (SandboxSetupError).
 */
export async function runSandboxed(opts: SandboxRunOptions): Promise<SandboxResult> {
  const { log } = opts;
  const limits = validateLimits({ ...opts.limits });
  const dir = checkAbsolute(opts.dir, "sandbox dir");
  // The wrapper reads its script's path as one line.
  if (/[\n\0]/.test(dir)) throw new InvalidInputError("sandbox dir must not contain a newline", { data: { dir } });
  const graceMs = opts.graceMs ?? 2000;
  const network = (opts.network ?? false) !== false;
  const isolated = typeof opts.network === "object" ? opts.network : undefined;
  if (isolated) validatePorts(isolated.hostLoopbackPorts);
  const hostname = opts.hostname ?? "kiln-build";
  const privileged = process.getuid?.() === 0;
  const hostUid = privileged
    ? (opts.hostUid ?? SANDBOX_UID_RANGE.start + randomInt(SANDBOX_UID_RANGE.size))
    : (process.getuid?.() ?? 0);
  const env = { ...baseEnv(), ...(opts.env ?? {}) };
  validateEnv(env);
  const cwd = opts.cwd ?? SANDBOX_USER.home;
  checkAbsolute(cwd, "sandbox cwd");

  const baseUsr = checkAbsolute(opts.root?.baseUsr ?? "/usr", "base usr");
  const layers = (opts.root?.layers ?? []).map((l) => checkAbsolute(l, "root layer"));
  const rpms = (opts.root?.rpms ?? []).map((r) => checkAbsolute(r, "package path"));
  for (const r of rpms) {
    const st = statSync(r, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new InvalidInputError(`package ${r} is not a file`, { data: { path: r } });
    if (privileged) checkReadable(r, st.mode, false);
  }
  const binds = (opts.binds ?? []).map((b) => ({
    source: checkAbsolute(b.source, "bind source"),
    target: checkAbsolute(b.target, "bind target"),
  }));
  for (const b of binds) {
    const st = statSync(b.source, { throwIfNoEntry: false });
    if (!st) throw new InvalidInputError(`bind source ${b.source} does not exist`, { data: { path: b.source } });
    if (privileged) checkReadable(b.source, st.mode, st.isDirectory());
  }
  if (opts.collect) validateCollectPlan(opts.collect);

  // Everything the sandbox sees from the host, as (host source → sandbox target), for masking.
  const stageBinds: StageBind[] = [];
  const visible: SandboxBind[] = [];
  const roBinds: SandboxBind[] = [];
  const usrLayers: string[] = [];
  const etcLayers: string[] = [];
  stageBinds.push({ source: "/usr", name: "hostusr" });
  if (baseUsr === "/usr") usrLayers.push("hostusr");
  for (const [i, l] of layers.entries()) {
    if (isDir(path.join(l, "usr"))) {
      stageBinds.push({ source: path.join(l, "usr"), name: `layer${i}usr` });
      usrLayers.push(`layer${i}usr`);
      visible.push({ source: path.join(l, "usr"), target: "/usr" });
    }
    if (isDir(path.join(l, "etc"))) {
      stageBinds.push({ source: path.join(l, "etc"), name: `layer${i}etc` });
      etcLayers.push(`layer${i}etc`);
      visible.push({ source: path.join(l, "etc"), target: "/etc" });
    }
  }
  if (baseUsr !== "/usr") {
    stageBinds.push({ source: baseUsr, name: "baseusr" });
    usrLayers.push("baseusr");
  }
  visible.push({ source: baseUsr, target: "/usr" });
  for (const [i, b] of binds.entries()) {
    stageBinds.push({ source: b.source, name: `ro${i}`, file: !isDir(b.source) });
    roBinds.push({ source: `${STAGE_DIR}/ro${i}`, target: b.target });
    visible.push(b);
  }
  if (network && isDir("/etc/ssl/certs")) {
    stageBinds.push({ source: "/etc/ssl/certs", name: "sslcerts" });
    roBinds.push({ source: `${STAGE_DIR}/sslcerts`, target: "/etc/ssl/certs" });
    visible.push({ source: "/etc/ssl/certs", target: "/etc/ssl/certs" });
  }
  const hidden = hiddenEntries(opts.hiddenPaths ?? []);
  const masks = computeMasks(hidden, visible);
  const unpackMasks = computeMasks(hidden, [{ source: "/usr", target: "/usr" }]);

  // The run's directory: fresh, with kiln's /etc, the unpack target and out/.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (readdirSync(dir).length > 0) throw new InvalidInputError(`sandbox dir ${dir} is not empty`, { data: { dir } });
  const outDirs = ["out", ...(rpms.length > 0 ? ["deps"] : [])];
  for (const d of outDirs) {
    mkdirSync(path.join(dir, d), { mode: 0o755 });
    if (privileged) chownSync(path.join(dir, d), hostUid, hostUid);
  }
  // With network the host's resolv.conf is copied for each run (it may change at any time).
  const etcDir = network
    ? await writeMinimalEtc(path.join(dir, "etc"), { hostname, network, alternatives: baseUsr === "/usr" }).then(() =>
        path.join(dir, "etc")
      )
    : await preparedEtc({ hostname, alternatives: baseUsr === "/usr" });
  // A resolver on the host's loopback is not there in a network of the run's own.
  if (isolated) writeFileSync(path.join(etcDir, "resolv.conf"), isolatedResolvConfOfHost(), { mode: 0o644 });
  stageBinds.push({ source: etcDir, name: "kiln-etc" });
  for (const d of outDirs) stageBinds.push({ source: d, name: d, writable: true });
  for (const [i, r] of rpms.entries()) stageBinds.push({ source: r, name: stageName(i, r), file: true });

  const unpackArgs = buildUnpackBwrapArgs(unpackMasks);
  const bwrapArgs = buildBwrapArgs({
    network,
    command: opts.command,
    cwd,
    env,
    roBinds,
    masks,
    hostname,
    dependencyBinds: rpms.length > 0,
    // Without network the prepared /etc has the links already.
    ...(baseUsr === "/usr" && network ? { alternatives: await readHostAlternatives() } : {}),
  });
  const netns = isolated ? await openIsolatedNetwork(isolated, { privileged, log, dir }) : undefined;
  try {
    const wrapper =
      (netns ? undefined : opts.wrappers?.take()) ??
      new Wrapper({
        privileged,
        log,
        ...(netns ? { enter: netns.enter, joinsUserNamespace: netns.joinsUserNamespace } : {}),
      });
    const { cgroups } = wrapper;
    try {
      cgroups.setLimits({ memoryBytes: limits.memoryBytes + limits.diskBytes, pids: limits.pids + PIDS_OVERHEAD }, log);
      const rlimits: string[] = [];
      if (!cgroups.memory) rlimits.push(`--as=${limits.memoryBytes}`);
      // RLIMIT_NPROC counts per real uid; only a per-run uid makes it a per-run limit.
      if (!cgroups.pids && privileged) rlimits.push(`--nproc=${limits.pids + PIDS_OVERHEAD}`);
      const script = renderWrapperScript({
        dir,
        privileged,
        hostUid,
        stageBinds,
        usrLayers,
        etcLayers,
        unpack: rpms.length > 0,
        workBytes: limits.diskBytes,
        workInodes: Math.max(1024, Math.floor(limits.diskBytes / 4096)),
        rlimits,
        unpackArgs,
        bwrapArgs,
        ...(opts.personality ? { personality: opts.personality } : {}),
      });
      writeFileSync(path.join(dir, SCRIPT_FILE), script, { mode: 0o600 });
      return await supervise({ opts, limits, dir, wrapper, graceMs });
    } finally {
      // Also when set-up failed before the wrapper got its script: it must not linger.
      await wrapper.close(log);
    }
  } finally {
    await netns?.close();
  }
}

interface SuperviseArgs {
  opts: SandboxRunOptions;
  limits: SandboxLimits;
  dir: string;
  /** Started (maybe ahead of the run), in its cgroups, waiting for its script. */
  wrapper: Wrapper;
  graceMs: number;
}

/** Starts the wrapper and enforces the limits until it and every process below it are gone. */
async function supervise(a: SuperviseArgs): Promise<SandboxResult> {
  const { opts, limits, graceMs } = a;
  const { cgroups } = a.wrapper;
  const { log } = opts;
  const startedAt = Date.now();
  const stats: SandboxStats = { startedAt, endedAt: startedAt, wallMs: 0, outputBytes: 0, diskFull: false };
  if (opts.signal?.aborted) return { type: "sandbox.killed", reason: KillReason.Aborted, signal: "SIGTERM", stats };

  const { child, force } = a.wrapper;
  // Last resort only: the wall-time limit below ends the run first.
  const backstop = setTimeout(() => force.abort(), limits.wallMs + graceMs + 30_000);
  const wrapperPid = child.pid;
  log.debug({ wrapperPid, dir: a.dir }, "sandbox started");

  let ending: Ending | undefined;
  let lastOutputAt = Date.now();
  let status = "";
  let stderrTail = "";
  let diskMax = 0;
  let diskSeen = false;

  child.stdout.on("data", (chunk: Buffer) => {
    if (ending?.kind === "killed" && ending.reason === KillReason.LogLimit) return;
    lastOutputAt = Date.now();
    const room = limits.logBytes - stats.outputBytes;
    const part = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
    stats.outputBytes += part.length;
    if (part.length > 0) {
      try {
        opts.onOutput(part);
      } catch (err) {
        log.warn({ err }, "sandbox output callback threw");
      }
    }
    if (chunk.length > room) stop({ kind: "killed", reason: KillReason.LogLimit, signal: "SIGTERM" });
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL);
  });
  /** Reads the work tmpfs through the wrapper's view; true when it is full (blocks or inodes). */
  const lookAtDisk = async (): Promise<boolean> => {
    if (wrapperPid === undefined) return false;
    const fs = await statfs(`/proc/${wrapperPid}/root${STAGE_DIR}/work`).catch(() => undefined);
    // Until the wrapper has moved the stage, this path is the host's; only our tmpfs has this size.
    if (!fs || Math.abs(fs.blocks * fs.bsize - limits.diskBytes) > 2 * fs.bsize) return false;
    diskSeen = true;
    diskMax = Math.max(diskMax, (fs.blocks - fs.bfree) * fs.bsize);
    const full = fs.bfree === 0 || fs.ffree === 0;
    if (full) stats.diskFull = true;
    return full;
  };
  // At `finish` the command has ended and the wrapper waits, its work tree still there.
  let collected: Collected | undefined;
  const finish = async (): Promise<void> => {
    await lookAtDisk();
    if (opts.collect && !ending && wrapperPid !== undefined) {
      collected = collectResults(`/proc/${wrapperPid}/root`, WRAPPER_HOME, opts.collect, path.join(a.dir, "out"));
    }
  };
  const lines = new Map<string, string>();
  let finishing: Promise<void> | undefined;
  const statusStream = child.stdio[3];
  statusStream.on("data", (chunk: Buffer) => {
    if (status.length >= STATUS_MAX) return;
    status += chunk.toString("utf8");
    let nl: number;
    while ((nl = status.indexOf("\n")) >= 0) {
      const line = status.slice(0, nl);
      status = status.slice(nl + 1);
      const sp = line.indexOf(" ");
      lines.set(sp > 0 ? line.slice(0, sp) : line, sp > 0 ? line.slice(sp + 1).trim() : "");
      if (line === "finish" && !finishing) {
        finishing = finish()
          .catch((err: unknown) => log.warn({ err }, "sandbox results not collected"))
          // A socket both ways: the go-ahead goes back on it.
          .finally(() => (statusStream as unknown as Duplex).write("\n"));
      }
    }
  });

  const forceKill = async (): Promise<void> => {
    if (ending) ending.signal = "SIGKILL";
    await cgroups.killAll();
    if (wrapperPid !== undefined) {
      const table = await readProcessTable();
      signalAll(descendantsOf(wrapperPid, table), "SIGKILL");
    }
    force.abort();
  };
  let forceTimer: NodeJS.Timeout | undefined;
  const terminate = async (e: Ending): Promise<void> => {
    if (ending) return;
    ending = e;
    log.info({ wrapperPid, ending: e }, "sandbox stopping run");
    const immediate = e.kind === "killed" && (e.reason === KillReason.Memory || e.reason === KillReason.Pids);
    if (immediate || wrapperPid === undefined) {
      await forceKill();
      return;
    }
    // The wrapper and bwrap's outer process stay; everything below them (bwrap's init ignores
    // SIGTERM from outside its namespace) gets the chance to stop cleanly.
    const table = await readProcessTable();
    const outer = descendantsOf(wrapperPid, table).filter((p) => table.get(p) === wrapperPid);
    signalAll(
      outer.flatMap((p) => descendantsOf(p, table)),
      "SIGTERM"
    );
    forceTimer = setTimeout(() => {
      forceKill().catch((err: unknown) => log.error({ err }, "sandbox forced kill failed"));
    }, graceMs);
  };
  /** For callbacks that cannot wait: a failure to signal is logged, never an unhandled rejection. */
  const stop = (e: Ending): void => {
    terminate(e).catch((err: unknown) => log.error({ err }, "sandbox stop failed"));
  };

  const onAbort = (): void => stop({ kind: "killed", reason: KillReason.Aborted, signal: "SIGTERM" });
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const wallTimer = setTimeout(() => stop({ kind: "timedOut", limit: "wall", signal: "SIGTERM" }), limits.wallMs);
  let ticking = false;
  const ticker = setInterval(() => {
    if (ticking) return;
    ticking = true;
    void (async () => {
      try {
        if (Date.now() - lastOutputAt > limits.idleLogMs) {
          await terminate({ kind: "timedOut", limit: "idle", signal: "SIGTERM" });
        }
        const cg = await cgroups.stats();
        if (cg.oomKills > 0) await terminate({ kind: "killed", reason: KillReason.Memory, signal: "SIGKILL" });
        if (cg.pidsLimitHits > 0) await terminate({ kind: "killed", reason: KillReason.Pids, signal: "SIGKILL" });
        if (await lookAtDisk()) await terminate({ kind: "killed", reason: KillReason.Disk, signal: "SIGTERM" });
      } catch (err) {
        log.debug({ err }, "sandbox monitor tick failed");
      } finally {
        ticking = false;
      }
    })();
  }, TICK_MS);

  // Everything that watches it is in place: from here the wrapper sets up and runs.
  a.wrapper.start(path.join(a.dir, SCRIPT_FILE));
  let result: Awaited<typeof child>;
  try {
    result = await child;
  } finally {
    clearInterval(ticker);
    clearTimeout(wallTimer);
    clearTimeout(backstop);
    opts.signal?.removeEventListener("abort", onAbort);
  }
  if (forceTimer) clearTimeout(forceTimer);
  await finishing;
  // bwrap's exit implies its pid namespace is empty; this catches anything that still lingers
  // (the wrapper killed first, say).
  await cgroups.killAll();

  const cg = await cgroups.stats();
  stats.endedAt = Date.now();
  stats.wallMs = stats.endedAt - startedAt;
  if (cg.memoryPeakBytes !== undefined) stats.peakMemoryBytes = cg.memoryPeakBytes;

  if (diskSeen) stats.diskBytes = diskMax;
  log.debug(
    { wrapperPid, exitCode: result.exitCode, signal: result.signal, status: [...lines], stderr: stderrTail },
    "sandbox wrapper ended"
  );

  if (ending) {
    return ending.kind === "timedOut"
      ? { type: "sandbox.timedOut", limit: ending.limit, signal: ending.signal, stats }
      : { type: "sandbox.killed", reason: ending.reason, signal: ending.signal, stats };
  }
  if (cg.oomKills > 0) return { type: "sandbox.killed", reason: KillReason.Memory, signal: "SIGKILL", stats };
  const unpack = lines.get("unpack");
  if (unpack !== undefined && unpack !== "0") return { type: "sandbox.unpackFailed", code: Number(unpack), stats };
  const exit = lines.get("exit");
  if (exit === undefined || !/^\d+$/.test(exit)) {
    throw new SandboxSetupError(
      `sandbox set-up failed: ${lastLine(stderrTail) || `wrapper exited with ${result.exitCode}`}`,
      {
        data: { exitCode: result.exitCode, signal: result.signal, stderr: stderrTail },
      }
    );
  }
  const code = Number(exit);
  if (code !== 0 && cg.pidsLimitHits > 0) {
    return { type: "sandbox.killed", reason: KillReason.Pids, signal: "SIGKILL", stats };
  }
  const collectOk = opts.collect ? (collected?.ok ?? false) : true;
  const files = collected?.files ?? [];
  if (opts.collect && !collectOk) log.warn({ stderr: stderrTail }, "sandbox collecting results failed");
  return { type: "sandbox.exited", code, files, collectOk, stats };
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return (lines[lines.length - 1] ?? "").trim();
}
