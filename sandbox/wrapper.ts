/**
 * The wrapper process of a sandboxed run (the outer layer in plan.ts): `unshare` into a private
 * mount namespace (and a user namespace unless the worker is root), `setpriv --pdeathsig KILL`
 * so that it dies with the worker, then a shell that joins the run's cgroups and waits for the
 * path of its script on stdin.
 *
 * Starting one costs a fork of the worker (a large process: page tables to copy), three programs
 * and, on kernels whose cgroups are not mounted with `favordynmods`, an RCU grace period for the
 * cgroup join (6–15 ms measured): together a third of a trivial build's overhead. So a
 * {@link WrapperPool} starts the next run's wrapper while the current one runs, and a run that
 * finds one ready only writes its limits and hands it the script.
 */
import type { Readable, Writable } from "node:stream";
import { execa } from "execa";
import type { ResultPromise } from "execa";
import type { Logger } from "pino";
import { createRunCgroups } from "./cgroup.ts";
import type { RunCgroups } from "./cgroup.ts";
import { shq } from "./plan.ts";

const SPAWN = {
  cwd: "/",
  env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
  extendEnv: false,
  stdio: ["pipe", "pipe", "pipe", "pipe"],
  buffer: false,
  reject: false,
  killSignal: "SIGKILL",
} as const;

type WrapperProcess = ResultPromise<typeof SPAWN & { cancelSignal: AbortSignal }>;

/** How to start a wrapper. */
export interface WrapperOptions {
  /** The worker is real root: no user namespace of the wrapper's own. */
  privileged: boolean;
  /** A command prefix that enters the run's network namespace (source services). */
  enter?: readonly string[];
  /** `enter` joins a user namespace too: the wrapper needs none of its own. */
  joinsUserNamespace?: boolean;
  log: Logger;
}

/**
 * The shell of a wrapper before it has its script: joins the cgroups (first, so that nothing it
 * starts is outside them), reads one line (the script's path; end of input: not needed after
 * all), stops reading stdin so no program of the script can, and sources the script from the
 * run's directory. Exported for tests.
 */
export function renderWrapperStub(procsFiles: readonly string[]): string {
  return [
    "set -eu",
    ...procsFiles.map((f) => `echo $$ > ${shq(f)}`),
    "IFS= read -r script || exit 0",
    "exec </dev/null",
    'cd -- "${script%/*}"',
    '. "$script"',
    "",
  ].join("\n");
}

/** A started wrapper, with the cgroups it has joined. */
export class Wrapper {
  readonly child: WrapperProcess;
  readonly pid: number | undefined;
  readonly cgroups: RunCgroups;
  /** Aborting it SIGKILLs the wrapper. */
  readonly force = new AbortController();
  readonly startedAt = Date.now();

  constructor(opts: WrapperOptions) {
    this.cgroups = createRunCgroups(undefined, opts.log);
    const unshare =
      opts.privileged || opts.joinsUserNamespace
        ? ["--mount", "--propagation", "private"]
        : ["--user", "--map-root-user", "--mount", "--propagation", "private"];
    const argv = [
      ...(opts.enter ?? []),
      "unshare",
      ...unshare,
      "--",
      "setpriv",
      "--pdeathsig",
      "KILL",
      "--",
      "/bin/sh",
      "-c",
      renderWrapperStub(this.cgroups.procsFiles),
      "kiln-sandbox",
    ];
    this.child = execa(argv[0]!, argv.slice(1), { ...SPAWN, cancelSignal: this.force.signal });
    // A wrapper that died before it got its script makes writing it fail; the run then reports
    // a set-up failure from what the wrapper wrote on stderr.
    this.child.stdin.on("error", (err) => opts.log.debug({ err }, "sandbox wrapper stdin"));
    this.pid = this.child.pid;
  }

  /** Whether the process has ended (it should be waiting for its script). */
  get ended(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Hands the wrapper its script, which it runs from the script's directory. */
  start(scriptFile: string): void {
    this.child.stdin.end(`${scriptFile}\n`);
  }

  /** An idle wrapper must not keep the worker's event loop alive; a claimed one must. */
  hold(held: boolean): void {
    const handles: (Readable | Writable | null | undefined)[] = [...this.child.stdio];
    for (const h of [this.child, ...handles]) {
      const ref = h as unknown as { ref?: () => void; unref?: () => void } | null | undefined;
      if (held) ref?.ref?.();
      else ref?.unref?.();
    }
  }

  /** Ends the wrapper (at once, if it still runs: unused, or its run is over) and removes its cgroups. */
  async close(log: Logger): Promise<void> {
    this.hold(true);
    this.force.abort();
    await this.child;
    await this.cgroups.killAll();
    await this.cgroups.remove(log);
  }
}

/** Options of {@link WrapperPool}. */
export interface WrapperPoolOptions {
  log: Logger;
  /** How many wrappers to keep ready: the runs that may start at once (a worker's slots). @default 1 */
  size?: number;
  /**
   * A ready wrapper older than this is replaced: its mount namespace is a copy of the host's
   * from when it started, and mounts made on the host since are not in it. @default 60000
   */
  maxIdleMs?: number;
}

/**
 * Keeps wrappers started ahead for the next runs of this process (builds and post-build hooks of
 * a worker). Runs in a network namespace of their own (source services) start theirs when they
 * need it. Close it when the worker stops.
 */
export class WrapperPool {
  readonly #log: Logger;
  readonly #size: number;
  readonly #maxIdleMs: number;
  readonly #privileged = process.getuid?.() === 0;
  /** Oldest first. */
  #ready: Wrapper[] = [];
  #closed = false;
  #refill: NodeJS.Immediate | undefined;
  readonly #refresh: NodeJS.Timeout;

  constructor(opts: WrapperPoolOptions) {
    this.#log = opts.log;
    this.#size = Math.max(1, Math.floor(opts.size ?? 1));
    this.#maxIdleMs = opts.maxIdleMs ?? 60_000;
    this.#refresh = setInterval(() => this.#replaceStale(), Math.max(1000, this.#maxIdleMs / 2));
    this.#refresh.unref();
    this.#fillSoon();
  }

  /** The pids of the wrappers waiting for runs, oldest first (status, tests). */
  get readyPids(): number[] {
    return this.#ready.filter((w) => !w.ended && w.pid !== undefined).map((w) => w.pid!);
  }

  /** The oldest ready wrapper, claimed for a run; undefined when there is none (start one yourself). */
  take(): Wrapper | undefined {
    const w = this.#ready.shift();
    this.#fillSoon();
    if (!w) return undefined;
    if (this.#stale(w)) {
      this.#drop(w);
      return undefined;
    }
    w.hold(true);
    return w;
  }

  /** Stops the ready wrappers; nothing is started any more. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#refresh);
    if (this.#refill) clearImmediate(this.#refill);
    const ready = this.#ready;
    this.#ready = [];
    await Promise.all(ready.map((w) => w.close(this.#log)));
  }

  #stale(w: Wrapper): boolean {
    return w.ended || Date.now() - w.startedAt > this.#maxIdleMs;
  }

  // One at a time, each after the current event-loop turn: a run that just took one starts first.
  #fillSoon(): void {
    if (this.#closed || this.#refill || this.#ready.length >= this.#size) return;
    this.#refill = setImmediate(() => {
      this.#refill = undefined;
      if (this.#closed || this.#ready.length >= this.#size) return;
      try {
        const w = new Wrapper({ privileged: this.#privileged, log: this.#log });
        w.hold(false);
        this.#ready.push(w);
      } catch (err) {
        this.#log.warn({ err }, "sandbox wrapper not started ahead");
        return;
      }
      this.#fillSoon();
    });
    this.#refill.unref();
  }

  #replaceStale(): void {
    const stale = this.#ready.filter((w) => this.#stale(w));
    if (stale.length === 0) return;
    this.#ready = this.#ready.filter((w) => !stale.includes(w));
    for (const w of stale) this.#drop(w);
    this.#fillSoon();
  }

  #drop(w: Wrapper): void {
    w.close(this.#log).catch((err: unknown) => this.#log.warn({ err }, "sandbox wrapper not stopped"));
  }
}
