/**
 * `npm run bench`: runs every benchmark driver in ops/bench/, each in its own process (so each
 * peak-RSS figure is its own), and prints their figures. `npm run bench -- scheduler rpc` runs
 * only the named drivers.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Driver → what it measures (the issue it answers). */
const DRIVERS: [string, string][] = [
  ["rpc", "transport round trip vs raw nats.js (issue 2)"],
  ["e2e-build", "trivial package end to end vs bare rpmbuild (issues 2, 5)"],
  ["source", "commits, listing, memory of the source role (issue 3)"],
  ["expand", "dependency expansion vs obs-build's Perl expander (issue 4)"],
  ["scheduler", "scheduler check at distribution scale (issue 4)"],
  ["dispatch-order", "fair queue ordering and constraint matching (issue 5)"],
  ["workers", "build overhead, dispatch throughput, latency, scale-out (issue 5)"],
  ["pool", "build pool computation (issue 6)"],
  ["repo", "pool reconstruction, result storage, publishing (issue 6)"],
];

const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
let failed = 0;
for (const [name, what] of DRIVERS) {
  if (wanted.length && !wanted.includes(name)) continue;
  const file = path.join(here, `${name}.ts`);
  if (!existsSync(file)) {
    console.log(`\n== ${name}: (driver not present)`);
    continue;
  }
  console.log(`\n== ${name}: ${what}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", file], {
    stdio: "inherit",
    timeout: 60 * 60_000,
  });
  if (r.status !== 0) {
    failed++;
    console.log(`-- ${name} failed (exit ${r.status ?? r.signal})`);
  } else console.log(`-- ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
process.exitCode = failed ? 1 : 0;
