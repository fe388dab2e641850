/**
 * The process tree below a pid, read from /proc. Used to signal a run's processes when no cgroup
 * lists them, and to tell the sandboxed processes apart from the wrapper that must outlive them.
 */
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";

/** Parses the ppid out of a /proc/<pid>/stat line (the command name may contain spaces and parens). */
export function parseStatPpid(stat: string): number | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(" ");
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

/** pid → parent pid of every process visible in /proc. */
export async function readProcessTable(): Promise<Map<number, number>> {
  const table = new Map<number, number>();
  const entries = await readdir("/proc").catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        const stat = await readFile(`/proc/${e}/stat`, "utf8").catch(() => undefined);
        const ppid = stat === undefined ? undefined : parseStatPpid(stat);
        if (ppid !== undefined) table.set(Number(e), ppid);
      })
  );
  return table;
}

/** All descendants of `root` (not `root` itself), parents before children. */
export function descendantsOf(root: number, table: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of table) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Sends `signal` to each pid, ignoring those that are already gone. Returns how many were signalled. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): number {
  let n = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      // ESRCH: exited meanwhile.
    }
  }
  return n;
}

/**
 * Whether a process runs: its /proc entry exists (under any user) and it is not a zombie (a dead
 * process nobody reaped). For finding what a dead worker left behind.
 */
export function processAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.charAt(stat.lastIndexOf(")") + 2);
  return state !== "Z" && state !== "X";
}
