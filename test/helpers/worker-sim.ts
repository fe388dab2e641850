/**
 * Simulated workers for dispatcher tests and benchmarks: plain NATS clients that speak the
 * worker protocol (register, heartbeat, answer `job.assign`, report `job.done`) but build
 * nothing. The real dispatcher role cannot tell them from real workers.
 */
import { randomBytes } from "node:crypto";
import type { NatsConnection, Subscription } from "nats";
import pino, { type Logger } from "pino";
import type { BuildJob, DispatcherApi, WorkerRegistration } from "../../actors/index.ts";
import { Role, RoleClient, RpcClient, serve, subjects } from "../../transport/index.ts";
import { jobFields } from "./jobs.ts";

export interface SimWorkerOptions {
  workerId: string;
  archs?: string[];
  jobs?: number;
  hostLabels?: string[];
  memoryMb?: number;
  diskMb?: number;
  /** Report every job done as soon as it was accepted. */
  autoFinish?: boolean;
  /** Refuse jobs (answer `accepted: false` with this reason). */
  refuse?: string;
  /** Hold the answer to `job.assign` until this resolves. */
  acceptGate?: () => Promise<void>;
  log?: Logger;
}

export class SimWorker {
  readonly opts: SimWorkerOptions;
  /** Every job accepted, in order. */
  readonly accepted: BuildJob[] = [];
  readonly running = new Map<string, BuildJob>();
  readonly aborted: string[] = [];
  readonly #nc: NatsConnection;
  readonly #dispatcher: RoleClient<DispatcherApi>;
  readonly #log: Logger;
  #sub?: Subscription;
  #beat?: NodeJS.Timeout;
  #heartbeatMs = 1000;
  #stopped = false;
  #onAccept: ((job: BuildJob) => void)[] = [];

  constructor(nc: NatsConnection, opts: SimWorkerOptions) {
    this.opts = opts;
    this.#nc = nc;
    this.#log = opts.log ?? pino({ level: "silent" });
    this.#dispatcher = new RoleClient<DispatcherApi>(new RpcClient(nc), (t) => subjects.rpc(Role.Dispatcher, t));
  }

  get registration(): WorkerRegistration {
    const o = this.opts;
    return {
      workerId: o.workerId,
      hostArch: "x86_64",
      buildArchs: o.archs ?? ["x86_64"],
      hostLabels: o.hostLabels ?? [],
      sandbox: "bwrap",
      linux: { version: "6.1.0" },
      cpuFlags: ["sse4_2"],
      processors: 4,
      jobs: o.jobs ?? 1,
      memoryMb: o.memoryMb ?? 8192,
      swapMb: 0,
      diskMb: o.diskMb ?? 65536,
    };
  }

  /** Calls `fn` for every job accepted from now on. */
  onAccept(fn: (job: BuildJob) => void): void {
    this.#onAccept.push(fn);
  }

  async start(): Promise<void> {
    this.#sub = serve(this.#nc, {
      subject: subjects.workerAll(this.opts.workerId),
      prefixTokens: 4,
      log: this.#log,
      handler: async (args, meta) => {
        const a = args as { job?: BuildJob; jobId?: string };
        switch (meta.type) {
          case "job.assign": {
            const job = a.job!;
            if (this.opts.refuse) return { accepted: false, reason: this.opts.refuse };
            if (this.opts.acceptGate) await this.opts.acceptGate();
            if (this.#stopped) return { accepted: false, reason: "stopped" };
            if (!this.running.has(job.jobId)) {
              this.running.set(job.jobId, job);
              this.accepted.push(job);
              for (const fn of this.#onAccept) fn(job);
              if (this.opts.autoFinish) setImmediate(() => void this.finish(job.jobId).catch(() => undefined));
            }
            return { accepted: true };
          }
          case "job.abort":
            this.aborted.push(a.jobId!);
            return { aborted: this.running.delete(a.jobId!) };
          case "log.read":
            return null;
          case "worker.info":
            return { workerId: this.opts.workerId, running: [...this.running.keys()], slots: this.opts.jobs ?? 1 };
          default:
            throw new Error(`unexpected ${meta.type}`);
        }
      },
    });
    const reg = await this.#dispatcher.call("worker.register", this.registration, { timeoutMs: 5000 });
    this.#heartbeatMs = reg.heartbeatMs;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#beat = setTimeout(() => {
      void this.heartbeat().finally(() => this.#schedule());
    }, this.#heartbeatMs);
  }

  async heartbeat(): Promise<void> {
    try {
      const r = await this.#dispatcher.call(
        "worker.heartbeat",
        { workerId: this.opts.workerId, running: [...this.running.keys()] },
        { timeoutMs: 5000 }
      );
      if (!r.known) await this.#dispatcher.call("worker.register", this.registration, { timeoutMs: 5000 });
      for (const id of r.abort) this.running.delete(id);
    } catch {
      // The dispatcher may be restarting.
    }
  }

  /** Reports a running job done. */
  async finish(jobId: string, result: "succeeded" | "failed" = "succeeded"): Promise<void> {
    this.running.delete(jobId);
    await this.#dispatcher.call("job.done", { jobId, workerId: this.opts.workerId, result }, { idempotent: true });
  }

  /** Stops answering; with `leave`, tells the dispatcher (otherwise it just goes silent). */
  async stop(leave = true): Promise<void> {
    this.#stopped = true;
    if (this.#beat) clearTimeout(this.#beat);
    this.#sub?.unsubscribe();
    if (leave) {
      await this.#dispatcher
        .call("worker.leave", { workerId: this.opts.workerId }, { timeoutMs: 2000 })
        .catch(() => undefined);
    }
  }
}

/** A build job as the scheduler would submit it, for dispatcher tests (nothing can build it). */
export function simJob(project: string, pkg: string, over: Partial<BuildJob> = {}): BuildJob {
  const id = randomBytes(16).toString("hex");
  return { jobId: id, ...jobFields({ project, package: pkg, srcmd5: id }), ...over };
}
