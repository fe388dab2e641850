/**
 * Benchmark of kiln's request/reply transport against raw nats.js request/reply, in one run on
 * one freshly started nats-server (loopback).
 *
 * - raw: a nats.js subscriber answers each request with the payload it received; the caller
 *   uses `nc.request`.
 * - kiln: `RpcClient.call` to a nact actor served with `bridgeActor` (request envelope, msgpack
 *   both ways, the actor's mailbox, the reply envelope, typed-error unwrapping).
 *
 * Each side runs a warm-up and then a few thousand sequential round trips, the two sides in
 * alternating rounds; caller and responder have their own NATS connections, as they would in two
 * processes. Printed: median and p99 of
 * both and the kiln/raw ratios, as JSON and as a human line.
 *
 * Run: `node --import tsx ops/bench/rpc.ts [--ops N] [--warmup N]`
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { spawn, start, stop, type Ref } from "nact";
import pino from "pino";
import {
  NatsServerProcess,
  Role,
  RpcClient,
  bridgeActor,
  connectNats,
  encode,
  okEnvelope,
  reply,
  subjects,
  type BridgedRequest,
} from "../../transport/index.ts";
import { percentile } from "./util.ts";

export interface RpcBenchOptions {
  /** Measured round trips per side. @default 5000 */
  ops?: number;
  /** Unmeasured round trips per side before measuring. @default 1000 */
  warmup?: number;
}

export interface RpcLatency {
  /** Milliseconds. */
  median: number;
  p99: number;
  mean: number;
  max: number;
  ops: number;
  /** Sequential round trips per second. */
  perSecond: number;
}

export interface RpcBenchReport {
  natsServer: string;
  payloadBytes: number;
  raw: RpcLatency;
  kiln: RpcLatency;
  /** kiln ÷ raw. */
  ratio: { median: number; p99: number };
}

/** The request arguments both sides carry (the raw side sends their msgpack encoding). */
const ARGS = { project: "home:bench:sub", package: "hello.world", rev: 42, md5: "0123456789abcdef0123456789abcdef" };

function stats(xs: number[]): RpcLatency {
  const total = xs.reduce((a, b) => a + b, 0);
  return {
    median: percentile(xs, 50),
    p99: percentile(xs, 99),
    mean: total / xs.length,
    max: Math.max(...xs),
    ops: xs.length,
    perSecond: xs.length / (total / 1000),
  };
}

/** Times `ops` sequential calls of `once`, after `warmup` unmeasured ones. */
async function timeCalls(ops: number, once: () => Promise<void>, into: number[]): Promise<void> {
  for (let i = 0; i < ops; i++) {
    const t = performance.now();
    await once();
    into.push(performance.now() - t);
  }
}

/**
 * Measures both sides in alternating rounds, so that drift (JIT, GC, a busy neighbour on the
 * machine) affects both alike.
 */
async function measure(
  ops: number,
  warmup: number,
  sides: Record<"raw" | "kiln", () => Promise<void>>
): Promise<Record<"raw" | "kiln", RpcLatency>> {
  const rounds = 5;
  const samples = { raw: [] as number[], kiln: [] as number[] };
  for (const once of Object.values(sides)) for (let i = 0; i < warmup; i++) await once();
  for (let r = 0; r < rounds; r++) {
    const n = Math.ceil(ops / rounds);
    await timeCalls(n, sides.raw, samples.raw);
    await timeCalls(n, sides.kiln, samples.kiln);
  }
  return { raw: stats(samples.raw), kiln: stats(samples.kiln) };
}

export async function runRpcBench(opts: RpcBenchOptions = {}): Promise<RpcBenchReport> {
  const ops = opts.ops ?? 5000;
  const warmup = opts.warmup ?? 1000;
  const log = pino({ level: "warn" });
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-rpc-"));
  const server = await NatsServerProcess.start({}, { dir });
  const system = start();
  try {
    const responder = await connectNats({ servers: server.url, name: "bench-responder", log });
    const caller = await connectNats({ servers: server.url, name: "bench-caller", log });
    try {
      // raw nats.js
      const payload = encode({ args: ARGS });
      const rawSub = responder.subscribe("bench.raw", { callback: (_err, msg) => msg.respond(msg.data) });
      // kiln: RpcClient → bridgeActor → nact actor → envelope back
      const actor = spawn(
        system,
        (_state: undefined, msg: BridgedRequest) => {
          reply(msg.replyTo, okEnvelope(msg.args));
          return undefined;
        },
        "echo"
      ) as Ref<BridgedRequest>;
      const kilnSub = bridgeActor(responder, actor, {
        subject: subjects.rpcAll(Role.Publisher),
        queue: Role.Publisher,
        prefixTokens: 3,
        log,
      });
      await responder.flush();
      const rpc = new RpcClient(caller);
      const subject = subjects.rpc(Role.Publisher, "bench.echo");

      const { raw, kiln } = await measure(ops, warmup, {
        raw: async () => {
          await caller.request("bench.raw", payload, { timeout: 5000 });
        },
        kiln: async () => {
          await rpc.call(subject, ARGS, { timeoutMs: 5000 });
        },
      });
      rawSub.unsubscribe();
      kilnSub.unsubscribe();
      const varz = await server.monitor<{ version: string }>("varz");
      return {
        natsServer: varz.version,
        payloadBytes: payload.length,
        raw,
        kiln,
        ratio: { median: kiln.median / raw.median, p99: kiln.p99 / raw.p99 },
      };
    } finally {
      await caller.close();
      await responder.close();
    }
  } finally {
    stop(system);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rep = await runRpcBench({ ops: arg("--ops"), warmup: arg("--warmup") });
  process.stdout.write(`${JSON.stringify(rep, null, 2)}\n`);
  const side = (label: string, s: RpcLatency): string =>
    `${label} median ${fmt(s.median)} p99 ${fmt(s.p99)} (${Math.round(s.perSecond)}/s)`;
  process.stdout.write(
    `rpc round trip, ${rep.raw.ops} sequential calls each (nats-server ${rep.natsServer}): ` +
      `${side("raw nats.js", rep.raw)}; ${side("kiln RpcClient→bridgeActor→nact", rep.kiln)}; ` +
      `kiln/raw ×${rep.ratio.median.toFixed(2)} median, ×${rep.ratio.p99.toFixed(2)} p99\n`
  );
}
