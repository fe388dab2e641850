/**
 * The service role (OBS bs_service + bs_servicedispatch): runs the source services of packages
 * in sandboxes and hands their output to the source role.
 *
 * - It learns of wanted runs from `service.requested` events (its durable consumer) and, at
 *   start, from the source role's list of runs that have not ended (`service.pending`), so a run
 *   cut short by a crash or a stop runs again.
 * - The ServiceRunner actor queues runs and starts up to `concurrency` of them; a newer run of a
 *   package aborts and replaces an older one still running or queued.
 * - A run fetches its job (`package.service-job`: the revision's files and the services, or null
 *   when the run is no longer current), downloads the files into a private working directory,
 *   runs the services (runner.ts; outbound network in a namespace of their own without the
 *   host's loopback, kiln's data directory invisible, limits per service), uploads what they
 *   made and delivers it (`package.service-result`). A service that
 *   fails is a result too: its error and output are delivered.
 * - When kiln itself fails (source role unreachable, sandbox not set up), nothing is delivered and
 *   the run is tried again later, as OBS retries transient service errors.
 *
 * Delivering needs the role identity to be a service user: the one change service users may make.
 */
import { randomUUID } from "node:crypto";
import { chmod, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { dispatch, spawn, stop, type Ref } from "nact";
import {
  KilnError,
  Role,
  RoleClient,
  bridgeActor,
  consumeEvents,
  downloadBlob,
  subjects,
  uploadFile,
  type BridgedRequest,
  type EventConsumer,
} from "../../transport/index.ts";
import {
  checkIsolatedNetworkTools,
  validateLimits,
  validatePorts,
  type IsolatedNetwork,
  type SandboxLimits,
} from "../../sandbox/index.ts";
import { answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import type { CommitEntry, ServiceJob, ServiceRequestedEvent, SourceApi } from "../source/protocol.ts";
import type { RunView, ServiceApi, ServiceRunnerMsg } from "./protocol.ts";
import {
  DEFAULT_MAX_SERVICE_FILES,
  DEFAULT_SERVICE_LIMITS,
  DEFAULT_SERVICES_DIR,
  runServices,
  type ServicesOutcome,
} from "./runner.ts";
import { ServiceRunKind } from "./service-xml.ts";

export interface ServiceRoleOptions {
  /** Where the service programs are. @default kiln's own, ops/services */
  servicesDir?: string;
  /** Limits of each service. @default {@link DEFAULT_SERVICE_LIMITS} */
  limits?: Partial<SandboxLimits>;
  /** Most files one service may write. @default 1000 */
  maxFiles?: number;
  /** CPU seconds each process of a service may use. @default 600 */
  cpuSeconds?: number;
  /** Runs at the same time. @default 2 */
  concurrency?: number;
  /** Host paths services must never see besides kiln's data directory. */
  hiddenPaths?: string[];
  /**
   * TCP ports of this host's loopback that services may connect to (as 127.0.0.1:<port> inside
   * their sandbox), e.g. a local mirror. Nothing else of the host's loopback, where kiln's NATS
   * server listens, is reachable from a service. @default none
   */
  hostLoopbackPorts?: number[];
  /** First wait before a run that kiln failed is tried again (doubling, up to 10 minutes). @default 5 s */
  retryMs?: number;
}

const keyOf = (project: string, pkg: string): string => `${project}\u0000${pkg}`;

/** Refusals that an admin can lift (registering the role identity): keep the run and try later. */
const KEEP_TRYING = new Set<string>(["ERR_UNAUTHENTICATED", "ERR_FORBIDDEN", "ERR_NOT_FOUND"]);

const validators: Validators<ServiceApi> = {
  "runs.list": () => ({}),
};

export async function startServiceRole(ctx: RoleContext, opts: ServiceRoleOptions = {}): Promise<RunningRole> {
  const log = ctx.log.child({ role: "service" });
  // Without these no service could run: refuse to start rather than fail every run.
  checkIsolatedNetworkTools();
  const network: IsolatedNetwork = { type: "isolated", hostLoopbackPorts: validatePorts(opts.hostLoopbackPorts ?? []) };
  const lease = await acquireLease(ctx, "service");
  const runsDir = path.join(ctx.dataDir, "service", "runs");
  // What a previous process left is of no use: runs start from their job again.
  await rm(runsDir, { recursive: true, force: true });
  await mkdir(runsDir, { recursive: true, mode: 0o700 });
  const servicesDir = opts.servicesDir ?? DEFAULT_SERVICES_DIR;
  const limits = validateLimits({ ...DEFAULT_SERVICE_LIMITS, ...opts.limits });
  const concurrency = Math.max(1, opts.concurrency ?? 2);
  const retryMs = opts.retryMs ?? 5000;
  const hiddenPaths = [ctx.dataDir, ...(opts.hiddenPaths ?? [])];
  const source = new RoleClient<SourceApi>(ctx.rpc, (t) => subjects.rpc(Role.Source, t));
  const startedAt = Date.now();
  let stopping = false;
  const failures = new Map<string, number>();

  /** Runs one job to its delivery; resolves with a retry delay when kiln (not the service) failed. */
  const execute = async (
    want: { project: string; package: string; runId: number },
    signal: AbortSignal
  ): Promise<number | undefined> => {
    const rlog = log.child({ project: want.project, package: want.package, runId: want.runId });
    const dir = path.join(runsDir, randomUUID());
    try {
      const job: ServiceJob | null = await source.call("package.service-job", want, { idempotent: true, signal });
      if (!job) {
        rlog.debug({}, "service run no longer current");
        return undefined;
      }
      // The sandbox reads the sources as an unprivileged uid ("other").
      const workDir = path.join(dir, "src");
      await mkdir(workDir, { recursive: true, mode: 0o755 });
      await chmod(dir, 0o755);
      for (const f of job.files) {
        await downloadBlob(source, f.sha256, path.join(workDir, f.name), { signal });
        await chmod(path.join(workDir, f.name), 0o644);
      }
      if (job.old.length > 0) {
        const oldDir = path.join(workDir, ".old");
        await mkdir(oldDir, { mode: 0o755 });
        for (const f of job.old) {
          await downloadBlob(source, f.sha256, path.join(oldDir, f.name), { signal });
          await chmod(path.join(oldDir, f.name), 0o644);
        }
      }
      rlog.info({ services: job.services.map((s) => s.name), kind: job.kind }, "service run started");
      let outcome: ServicesOutcome;
      try {
        outcome = await runServices(job.services, {
          workDir,
          scratchDir: path.join(dir, "sandbox"),
          servicesDir,
          network,
          limits,
          maxFiles: opts.maxFiles ?? DEFAULT_MAX_SERVICE_FILES,
          package: { project: job.project, package: job.package },
          ...(opts.cpuSeconds !== undefined ? { cpuSeconds: opts.cpuSeconds } : {}),
          hiddenPaths,
          log: rlog,
          signal,
        });
      } catch (err) {
        if (err instanceof KilnError && err.retryable) throw err;
        const error = `the services could not be run: ${(err as Error).message}`;
        outcome = { type: "services.failed", service: "", error, output: `[kiln] ${error}\n` };
      }
      if (signal.aborted) return undefined;
      const where = { project: job.project, package: job.package, runId: job.runId };
      let delivery: SourceApi["package.service-result"]["req"];
      if (outcome.type === "services.succeeded") {
        const files: CommitEntry[] = [];
        for (const f of outcome.files) {
          const info = await uploadFile(source, f.path, {}, { signal });
          // A server run's files are service files; a manual run's become ordinary files.
          files.push({ name: job.kind === ServiceRunKind.Server ? f.name : f.plain, md5: info.md5, size: info.size });
        }
        delivery = { ...where, ok: true, files, output: outcome.output };
      } else {
        delivery = { ...where, ok: false, files: [], error: outcome.error, output: outcome.output };
      }
      let r: { accepted: boolean };
      try {
        r = await source.call("package.service-result", delivery, { timeoutMs: 60_000, signal });
      } catch (err) {
        // Output the source role will never take (over a size limit, say) fails the run.
        if (!delivery.ok || !(err instanceof KilnError) || err.retryable || KEEP_TRYING.has(err.code)) throw err;
        const error = `the services' output was refused: ${err.message}`;
        delivery = { ...where, ok: false, files: [], error, output: `${delivery.output}[kiln] ${error}\n` };
        r = await source.call("package.service-result", delivery, { timeoutMs: 60_000, signal });
      }
      rlog.info(
        {
          ok: delivery.ok,
          accepted: r.accepted,
          files: delivery.files.length,
          ...(delivery.error ? { error: delivery.error } : {}),
        },
        "service run ended"
      );
      return undefined;
    } catch (err) {
      if (signal.aborted) return undefined;
      // The package or project went: nothing left to deliver to.
      if (err instanceof KilnError && err.code === "ERR_NOT_FOUND") {
        rlog.info({ err }, "service run dropped");
        return undefined;
      }
      const n = (failures.get(keyOf(want.project, want.package)) ?? 0) + 1;
      failures.set(keyOf(want.project, want.package), n);
      const wait = Math.min(600_000, retryMs * 2 ** Math.min(n - 1, 8));
      rlog.error({ err, retryInMs: wait }, "service run failed, will retry");
      return wait;
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  // ---- the ServiceRunner actor ------------------------------------------------------------------

  interface Running extends RunView {
    abort: AbortController;
  }
  const queued = new Map<string, RunView>();
  const inflight = new Set<Promise<void>>();
  const running = new Map<string, Running>();
  let runner: Ref<ServiceRunnerMsg> | undefined;

  const pump = (): void => {
    for (const [key, want] of queued) {
      if (running.size >= concurrency || stopping) return;
      if (running.has(key)) continue;
      queued.delete(key);
      const abort = new AbortController();
      running.set(key, { ...want, since: Date.now(), abort });
      const done = execute(want, abort.signal).then((retryInMs) => {
        inflight.delete(done);
        if (runner) {
          dispatch(runner, {
            type: "run.ended",
            project: want.project,
            package: want.package,
            runId: want.runId,
            ...(retryInMs !== undefined ? { retryInMs } : {}),
          });
        }
      });
      inflight.add(done);
    }
  };

  const handle = (msg: ServiceRunnerMsg): void => {
    switch (msg.type) {
      case "run.wanted": {
        const key = keyOf(msg.project, msg.package);
        const cur = running.get(key);
        const waiting = queued.get(key);
        if ((cur && cur.runId >= msg.runId) || (waiting && waiting.runId >= msg.runId)) return;
        // A newer run supersedes: the older one's result would be refused anyway.
        if (cur) cur.abort.abort();
        queued.set(key, { project: msg.project, package: msg.package, runId: msg.runId, since: Date.now() });
        pump();
        return;
      }
      case "run.ended": {
        const key = keyOf(msg.project, msg.package);
        if (running.get(key)?.runId === msg.runId) running.delete(key);
        if (msg.retryInMs === undefined) failures.delete(key);
        else {
          const again: ServiceRunnerMsg = {
            type: "run.wanted",
            project: msg.project,
            package: msg.package,
            runId: msg.runId,
          };
          setTimeout(() => {
            if (runner && !stopping) dispatch(runner, again);
          }, msg.retryInMs).unref();
        }
        pump();
        return;
      }
      case "runs.list":
        void answer(msg.replyTo, () => ({
          running: [...running.values()].map(({ abort: _a, ...v }) => v),
          queued: [...queued.values()],
        }));
        return;
      default:
        assertNever(msg);
    }
  };

  runner = spawn(
    ctx.system,
    (_s: undefined, msg: ServiceRunnerMsg | BridgedRequest) => {
      if (msg.type === "run.wanted" || msg.type === "run.ended") handle(msg as ServiceRunnerMsg);
      else {
        const req = validated(validators, msg as BridgedRequest);
        if (req) handle(req);
      }
      return undefined;
    },
    "service"
  );
  const want = (project: string, pkg: string, runId: number): void => {
    if (runner) dispatch(runner, { type: "run.wanted", project, package: pkg, runId });
  };

  const consumer: EventConsumer = await consumeEvents<ServiceRequestedEvent>(ctx.nc, {
    durable: "service",
    filterSubject: subjects.eventFilter({ type: "service.requested" }),
    handler: async (ev) => {
      if (ev.type === "service.requested") want(ev.project, ev.package, ev.runId);
    },
    log,
  });
  // Runs that never ended (this role was down, or stopped in the middle of them).
  const resume = async (attempt = 0): Promise<void> => {
    try {
      for (const p of await source.call("service.pending", {}, { idempotent: true }))
        want(p.project, p.package, p.runId);
    } catch (err) {
      if (stopping) return;
      const wait = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6));
      log.warn({ err, retryInMs: wait }, "pending service runs not read, will retry");
      setTimeout(() => void resume(attempt + 1), wait).unref();
    }
  };
  void resume();
  const sub = bridgeActor(ctx.nc, runner as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Service),
    queue: Role.Service,
    prefixTokens: 3,
    log,
  });
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo("service", ctx.nodeId, startedAt, { running: running.size, queued: queued.size })
  );
  log.info({ servicesDir, concurrency, limits, hostLoopbackPorts: network.hostLoopbackPorts }, "service role started");
  return {
    role: "service",
    async stop(): Promise<void> {
      stopping = true;
      stopPing();
      await sub.drain();
      await consumer.stop();
      // Aborted runs are not delivered; the source role still lists them, so they run again.
      for (const r of running.values()) r.abort.abort();
      await Promise.allSettled([...inflight]);
      if (runner) stop(runner);
      runner = undefined;
      await lease.release();
      log.info({}, "service role stopped");
    },
  };
}
