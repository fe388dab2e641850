/**
 * Per-run cgroups: the memory and pids limits, peak memory, OOM and fork-failure counters, and a
 * kill that reaches every process of the run at once.
 *
 * Hosts differ: pure cgroup v2, hybrid (v1 controllers plus an empty v2 tree, which still offers
 * `cgroup.kill`), or no writable cgroups at all (unprivileged, containers). Each controller is
 * taken from whichever hierarchy offers it; what is missing is reported so the caller can fall
 * back to rlimits.
 *
 * The cgroup file system is read and written with synchronous calls: each is a few microseconds
 * in the kernel, while an asynchronous one costs a thread-pool round trip, and a run makes about
 * twenty of them on every build's path.
 */
import { randomBytes } from "node:crypto";
import { accessSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { processAlive } from "./process-tree.ts";

/** Run cgroups are named `kiln-sandbox-<worker pid>-<random>`, so stale ones can be told apart. */
export const CGROUP_PREFIX = "kiln-sandbox-";
const STALE_NAME = /^kiln-sandbox-(\d+)-[0-9a-f]+$/;

/** Where one hierarchy is mounted and which cgroup it shows at the mount point. */
export interface CgroupMount {
  mountPoint: string;
  root: string;
}

/** The cgroup hierarchies of this host as seen in /proc/self/mountinfo. */
export interface CgroupMounts {
  v2?: CgroupMount;
  /** Keyed by controller name ("memory", "pids", …). */
  v1: Map<string, CgroupMount>;
}

/** The cgroups this process belongs to, from /proc/self/cgroup. */
export interface ProcCgroups {
  v2?: string;
  v1: Map<string, string>;
}

/** Undoes the octal escapes mountinfo uses for blanks and backslashes. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo for cgroup and cgroup2 mounts. */
export function parseCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v1: new Map() };
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(" ");
    const post = line.slice(sep + 3).split(" ");
    const fstype = post[0];
    const root = unescapeMountinfo(pre[3] ?? "/");
    const mountPoint = unescapeMountinfo(pre[4] ?? "");
    if (fstype === "cgroup2") {
      out.v2 ??= { mountPoint, root };
    } else if (fstype === "cgroup") {
      for (const opt of (post[2] ?? "").split(",")) {
        if (opt === "rw" || opt === "ro" || opt.includes("=")) continue;
        if (!out.v1.has(opt)) out.v1.set(opt, { mountPoint, root });
      }
    }
  }
  return out;
}

/** Parses /proc/self/cgroup ("hierarchy-ID:controller-list:path" per line). */
export function parseProcCgroup(text: string): ProcCgroups {
  const out: ProcCgroups = { v1: new Map() };
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, p] = m;
    if (id === "0" && controllers === "") out.v2 = p!;
    else for (const c of controllers!.split(",")) if (c && !c.startsWith("name=")) out.v1.set(c, p!);
  }
  return out;
}

/** The directory of a cgroup path under a mount, allowing for mounts of a sub-tree (containers). */
export function cgroupDir(mount: CgroupMount, cgroupPath: string): string {
  let rel = cgroupPath;
  if (mount.root !== "/" && (rel === mount.root || rel.startsWith(mount.root + "/")))
    rel = rel.slice(mount.root.length);
  return path.join(mount.mountPoint, rel).replace(/(.)\/+$/, "$1");
}

/** Counters read while a run is going; missing fields mean the controller is not available. */
export interface CgroupStats {
  memoryPeakBytes?: number;
  memoryCurrentBytes?: number;
  oomKills: number;
  pidsLimitHits: number;
}

type Version = "v1" | "v2";

interface Controller {
  version: Version;
  dir: string;
}

/** Limits applied by {@link createRunCgroups}. */
export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

/** The cgroups of one run. `procsFiles` must be joined by the run's first process before it forks. */
export class RunCgroups {
  #memory: Controller | undefined;
  #pids: Controller | undefined;
  /** A v2 cgroup with `cgroup.kill`, if the kernel has it. */
  readonly killDir?: string;
  readonly #dirs: string[];

  constructor(parts: { memory?: Controller; pids?: Controller; killDir?: string; dirs: string[] }) {
    this.#memory = parts.memory;
    this.#pids = parts.pids;
    if (parts.killDir) this.killDir = parts.killDir;
    this.#dirs = parts.dirs;
  }

  /** The memory controller, while it is usable (absent: the caller falls back to rlimits). */
  get memory(): Controller | undefined {
    return this.#memory;
  }

  get pids(): Controller | undefined {
    return this.#pids;
  }

  /**
   * Sets the limits; possible at any time, also after processes joined (a wrapper started ahead
   * of its run). A controller whose limit the kernel refuses is dropped, as if it were missing.
   */
  setLimits(limits: CgroupLimits, log: Logger): void {
    const m = this.#memory;
    if (m) {
      try {
        if (m.version === "v2") {
          writeFileSync(path.join(m.dir, "memory.max"), String(limits.memoryBytes));
          tryWrite(path.join(m.dir, "memory.swap.max"), "0");
        } else {
          writeFileSync(path.join(m.dir, "memory.limit_in_bytes"), String(limits.memoryBytes));
          // Without swap accounting this file is absent; with it, swap must not extend the limit.
          tryWrite(path.join(m.dir, "memory.memsw.limit_in_bytes"), String(limits.memoryBytes));
        }
      } catch (err) {
        log.debug({ dir: m.dir, err }, "sandbox memory limit not set");
        this.#memory = undefined;
      }
    }
    const p = this.#pids;
    if (p) {
      try {
        writeFileSync(path.join(p.dir, "pids.max"), String(limits.pids));
      } catch (err) {
        log.debug({ dir: p.dir, err }, "sandbox pids limit not set");
        this.#pids = undefined;
      }
    }
  }

  /** One `cgroup.procs` per hierarchy; writing a pid to each moves that process (and its future children). */
  get procsFiles(): string[] {
    return this.#dirs.map((d) => path.join(d, "cgroup.procs"));
  }

  /** Pids of all processes in the run's cgroups (empty if there are none). */
  async listPids(): Promise<number[]> {
    const dir = this.#dirs[0];
    if (!dir) return [];
    const text = readText(path.join(dir, "cgroup.procs")) ?? "";
    return text
      .split("\n")
      .filter(Boolean)
      .map((s) => Number(s));
  }

  async stats(): Promise<CgroupStats> {
    const out: CgroupStats = { oomKills: 0, pidsLimitHits: 0 };
    if (this.memory) {
      const m = this.memory;
      const peak = readNumber(path.join(m.dir, m.version === "v2" ? "memory.peak" : "memory.max_usage_in_bytes"));
      if (peak !== undefined) out.memoryPeakBytes = peak;
      const cur = readNumber(path.join(m.dir, m.version === "v2" ? "memory.current" : "memory.usage_in_bytes"));
      if (cur !== undefined) out.memoryCurrentBytes = cur;
      const events = readKeyed(path.join(m.dir, m.version === "v2" ? "memory.events" : "memory.oom_control"));
      out.oomKills = events.get("oom_kill") ?? 0;
    }
    if (this.pids) {
      const events = readKeyed(path.join(this.pids.dir, "pids.events"));
      out.pidsLimitHits = events.get("max") ?? 0;
    }
    return out;
  }

  /**
   * SIGKILLs every process in the run. `cgroup.kill` is atomic against forks; without it, pids are
   * killed in rounds until none is left or the rounds run out (the pids limit bounds a fork race).
   */
  async killAll(): Promise<void> {
    if (this.killDir) {
      try {
        writeFileSync(path.join(this.killDir, "cgroup.kill"), "1");
        return;
      } catch {
        // Fall through to killing pid by pid.
      }
    }
    for (let round = 0; round < 50; round++) {
      const pids = await this.listPids();
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
  }

  /** Removes the cgroups; waits (bounded) for exiting processes to leave them first. */
  async remove(log: Logger, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const dir of [...this.#dirs].reverse()) {
      for (;;) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          if (code !== "EBUSY" || Date.now() > deadline) {
            log.warn({ dir, err }, "sandbox cgroup not removed");
            break;
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  }
}

/** A file's text, or `undefined` when it cannot be read. */
function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function readNumber(file: string): number | undefined {
  const t = readText(file);
  if (t === undefined) return undefined;
  const n = Number(t.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** Reads "key value" lines (memory.events, memory.oom_control, pids.events). */
function readKeyed(file: string): Map<string, number> {
  const out = new Map<string, number>();
  // A missing file: the counter is not available here.
  for (const line of (readText(file) ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

function exists(p: string): boolean {
  try {
    accessSync(p);
    return true;
  } catch {
    return false;
  }
}

function readWords(file: string): Set<string> {
  return new Set((readText(file) ?? "").split(/\s+/).filter(Boolean));
}

/** Writes a cgroup file; false when the kernel refused. */
function tryWrite(file: string, value: string): boolean {
  try {
    writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

/** Reads this process's cgroup layout from /proc. */
export function detectCgroups(): { mounts: CgroupMounts; own: ProcCgroups } {
  return {
    mounts: parseCgroupMounts(readText("/proc/self/mountinfo") ?? ""),
    own: parseProcCgroup(readText("/proc/self/cgroup") ?? ""),
  };
}

/** The directories under which {@link createRunCgroups} may create run cgroups. */
async function parentDirs(): Promise<string[]> {
  const { mounts, own } = detectCgroups();
  const dirs: string[] = [];
  if (mounts.v2 && own.v2 !== undefined) {
    const ownDir = cgroupDir(mounts.v2, own.v2);
    dirs.push(ownDir);
    if (path.resolve(ownDir) !== path.resolve(mounts.v2.mountPoint)) dirs.push(path.dirname(ownDir));
  }
  for (const ctrl of ["memory", "pids"]) {
    const mount = mounts.v1.get(ctrl);
    const ownPath = own.v1.get(ctrl);
    if (mount && ownPath !== undefined) dirs.push(cgroupDir(mount, ownPath));
  }
  return [...new Set(dirs)];
}

/**
 * Removes run cgroups left behind by a worker that died (its pid is gone), killing anything still
 * in them. Returns the directories removed. Meant for worker start-up.
 */
export async function removeStaleCgroups(log: Logger): Promise<string[]> {
  const removed: string[] = [];
  for (const parent of await parentDirs()) {
    const entries = await readdir(parent).catch(() => [] as string[]);
    for (const name of entries) {
      const m = STALE_NAME.exec(name);
      if (!m || processAlive(Number(m[1]))) continue;
      const dir = path.join(parent, name);
      const cg = new RunCgroups({
        dirs: [dir],
        ...(exists(path.join(dir, "cgroup.kill")) ? { killDir: dir } : {}),
      });
      await cg.killAll();
      await cg.remove(log, 2000);
      if (!exists(dir)) removed.push(dir);
    }
  }
  if (removed.length > 0) log.info({ removed }, "stale sandbox cgroups removed");
  return removed;
}

/**
 * Creates the cgroups of one run and sets their limits (none when `limits` is undefined: they are
 * set later with {@link RunCgroups.setLimits}). Never throws: controllers that cannot be set up
 * here are simply absent from the result (and logged), so the caller can fall back.
 */
export function createRunCgroups(limits: CgroupLimits | undefined, log: Logger): RunCgroups {
  const { mounts, own } = detectCgroups();
  const name = `${CGROUP_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`;
  const dirs: string[] = [];
  let memory: Controller | undefined;
  let pids: Controller | undefined;
  let killDir: string | undefined;

  if (mounts.v2 && own.v2 !== undefined) {
    const ownDir = cgroupDir(mounts.v2, own.v2);
    // Our own cgroup holds the worker, so (no internal processes) it can only have controllers in
    // its children if it is the root; otherwise a sibling under the parent may have them.
    const candidates = [ownDir];
    if (path.resolve(ownDir) !== path.resolve(mounts.v2.mountPoint)) candidates.push(path.dirname(ownDir));
    let best: { dir: string; ctrls: Set<string> } | undefined;
    for (const parent of candidates) {
      let ctrls = readWords(path.join(parent, "cgroup.subtree_control"));
      if (!ctrls.has("memory") || !ctrls.has("pids")) {
        const avail = readWords(path.join(parent, "cgroup.controllers"));
        const want = ["memory", "pids"].filter((c) => avail.has(c) && !ctrls.has(c));
        if (want.length > 0) {
          tryWrite(path.join(parent, "cgroup.subtree_control"), want.map((c) => `+${c}`).join(" "));
          ctrls = readWords(path.join(parent, "cgroup.subtree_control"));
        }
      }
      const score = (ctrls.has("memory") ? 1 : 0) + (ctrls.has("pids") ? 1 : 0);
      const bestScore = best ? (best.ctrls.has("memory") ? 1 : 0) + (best.ctrls.has("pids") ? 1 : 0) : -1;
      if (score > bestScore) best = { dir: parent, ctrls };
      if (score === 2) break;
    }
    if (best) {
      const dir = path.join(best.dir, name);
      try {
        mkdirSync(dir);
        dirs.push(dir);
        if (exists(path.join(dir, "cgroup.kill"))) killDir = dir;
        if (best.ctrls.has("memory")) memory = { version: "v2", dir };
        if (best.ctrls.has("pids")) pids = { version: "v2", dir };
      } catch (err) {
        log.debug({ dir, err }, "sandbox cgroup v2 not usable");
      }
    }
  }

  for (const ctrl of ["memory", "pids"] as const) {
    if (ctrl === "memory" ? memory : pids) continue;
    const mount = mounts.v1.get(ctrl);
    const ownPath = own.v1.get(ctrl);
    if (!mount || ownPath === undefined) continue;
    const dir = path.join(cgroupDir(mount, ownPath), name);
    try {
      mkdirSync(dir);
      dirs.push(dir);
      if (ctrl === "memory") memory = { version: "v1", dir };
      else pids = { version: "v1", dir };
    } catch (err) {
      log.debug({ dir, err }, "sandbox cgroup v1 not usable");
    }
  }

  const parts: ConstructorParameters<typeof RunCgroups>[0] = { dirs };
  if (memory) parts.memory = memory;
  if (pids) parts.pids = pids;
  if (killDir) parts.killDir = killDir;
  const cg = new RunCgroups(parts);
  if (limits) cg.setLimits(limits, log);
  log.debug({ memory: cg.memory?.version, pids: cg.pids?.version, kill: Boolean(killDir) }, "sandbox cgroups");
  return cg;
}
