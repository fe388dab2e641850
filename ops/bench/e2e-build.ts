/**
 * Benchmark: a trivial package end to end through kiln (commit acknowledged → `succeeded` seen
 * by a client) against bare `rpmbuild -ba` of the same spec on the same machine, and where the
 * extra time goes (commit → job created → build started → rpmbuild → result stored → scheduler
 * saw it). kiln runs as `kiln up` starts it, with the default post-build hooks (build-compare
 * runs on every rebuild, rpmlint only when a project asks for it).
 *
 *   node --import tsx ops/bench/e2e-build.ts [--runs N]
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { parseStatisticsTimes } from "../../actors/index.ts";
import type { RepoApi, SchedulerApi, SourceApi, StoredResult } from "../../actors/index.ts";
import {
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  decode,
  readBlobBytes,
  subjects,
  uploadFile,
} from "../../transport/index.ts";
import { createRootLogger, loadIdentity } from "../../cli/index.ts";
import { startKilnUp } from "../../test/helpers/kiln.ts";
import { md5OfFile } from "./util.ts";

const SPEC = (n: number): string => `Name: trivial
Version: 1.0
Release: 1
Summary: trivial
License: MIT
BuildArch: noarch
%description
trivial build number ${n}
%install
mkdir -p %{buildroot}/usr/share/trivial
echo ${n} > %{buildroot}/usr/share/trivial/n
%files
/usr/share/trivial/n
`;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export async function runE2eBuildBench(runs = 5): Promise<Record<string, unknown>> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-e2e-"));
  // Bare rpmbuild.
  const bare: number[] = [];
  for (let i = 0; i < runs; i++) {
    const top = path.join(tmp, `bare-${i}`);
    mkdirSync(top, { recursive: true });
    writeFileSync(path.join(top, "trivial.spec"), SPEC(i));
    const t0 = performance.now();
    await execa("rpmbuild", ["-ba", "--define", `_topdir ${top}`, path.join(top, "trivial.spec")]);
    bare.push(performance.now() - t0);
  }

  const up = await startKilnUp({ workers: 1 });
  const log = createRootLogger("warn");
  const nc = await connectNats({ servers: up.natsUrl, name: "bench", log });
  const rpc = new RpcClient(nc, { signer: loadIdentity(path.join(up.dataDir, "admin.identity")) });
  const source = new RoleClient<SourceApi>(rpc, (t) => subjects.rpc(Role.Source, t));
  const repo = new RoleClient<RepoApi>(rpc, (t) => subjects.rpc(Role.Repo, t));
  const sched = new RoleClient<SchedulerApi>(rpc, (t) => subjects.sched("x86_64", t));
  const rows: Record<string, number>[] = [];
  try {
    await source.call("project.put-meta", {
      project: "bench",
      xml: `<project name="bench"><title/><description/><repository name="r"><arch>x86_64</arch></repository></project>`,
    });
    for (let i = 0; i < runs + 1; i++) {
      const dir = path.join(tmp, `kiln-${i}`);
      mkdirSync(dir, { recursive: true });
      const spec = path.join(dir, "trivial.spec");
      writeFileSync(spec, SPEC(1000 + i));
      const md5 = await md5OfFile(spec);
      const size = SPEC(1000 + i).length;
      const info = await uploadFile(source, spec, { md5, size });
      const builtSub = nc.subscribe(subjects.event("repo.built", "bench", "trivial"), { max: 1 });
      const built = (async () => {
        for await (const m of builtSub) return decode<{ srcmd5: string }>(m.data);
        throw new Error("repo.built subscription ended");
      })();
      const t0 = Date.now();
      const r = await source.call("package.commit", {
        project: "bench",
        package: "trivial",
        files: [{ name: "trivial.spec", md5: info.md5, size }],
      });
      if (!("revision" in r)) throw new Error("commit asked for files after upload");
      const committed = Date.now();
      let res: StoredResult | null = null;
      // Polling the roles every few ms from the start would load the machine being measured:
      // wait for the repo role's event, then ask the scheduler until it shows the result.
      await built;
      for (;;) {
        const rs = await sched.call("results.get", { project: "bench", package: "trivial" });
        const p = rs[0]?.packages[0];
        if (p && !rs[0]!.dirty && p.code === "succeeded") {
          res = await repo.call("result.get", {
            project: "bench",
            repository: "r",
            arch: "x86_64",
            package: "trivial",
          });
          if (res?.srcmd5 === r.revision.srcmd5) break;
        }
        if (p?.code === "failed") throw new Error("trivial build failed");
        await new Promise((s) => setTimeout(s, 2));
      }
      const done = Date.now();
      // `_statistics` is OBS's buildstatistics XML; `main` is the sandbox run (build root + rpmbuild).
      const times = res.statsSha256
        ? parseStatisticsTimes((await readBlobBytes(repo, res.statsSha256, 1 << 20)).toString())
        : {};
      const stats = { wallMs: times.main ?? 0 };
      // The first run warms caches (tsx, rpm macros, the worker cache): not counted.
      if (i === 0) continue;
      rows.push({
        total: done - committed,
        commitAck: committed - t0,
        toJob: res.readyTime - committed,
        toStart: res.startTime - res.readyTime,
        sandboxRpmbuild: stats.wallMs,
        workerOther: res.endTime - res.startTime - stats.wallMs,
        toSucceeded: done - res.endTime,
      });
    }
  } finally {
    await nc.drain();
    await up.stop();
    rmSync(up.dataDir, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
  const med = (k: string): number => median(rows.map((r) => r[k]!));
  const result = {
    runs,
    bareRpmbuildMs: Math.round(median(bare)),
    kilnEndToEndMs: med("total"),
    ratio: +(med("total") / median(bare)).toFixed(2),
    breakdownMedianMs: {
      commitAcknowledged: med("commitAck"),
      commitToJobCreated: med("toJob"),
      jobCreatedToBuildStart: med("toStart"),
      sandboxAndRpmbuild: med("sandboxRpmbuild"),
      workerFetchUploadEtc: med("workerOther"),
      resultToSucceededSeen: med("toSucceeded"),
    },
  };
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.argv[process.argv.indexOf("--runs") + 1]) || 5;
  const r = await runE2eBuildBench(runs);
  console.log(JSON.stringify(r, null, 2));
  console.log(
    `trivial package: kiln ${r.kilnEndToEndMs} ms end to end vs bare rpmbuild -ba ${r.bareRpmbuildMs} ms (ratio ${r.ratio}x)`
  );
}
