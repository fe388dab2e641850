/**
 * Small helpers shared by the benchmark drivers.
 */
import { createHash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export function md5OfFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("md5");
    createReadStream(file)
      .on("data", (d) => h.update(d))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/**
 * The Node flags kiln's entry point runs with (its `#!/usr/bin/env -S node …` line), so that a
 * benchmark that measures a role in a child process measures it as `kiln up` runs it.
 */
export function kilnNodeFlags(): string[] {
  const entry = fileURLToPath(new URL("../../cli/bin/kiln.js", import.meta.url));
  const first = readFileSync(entry, "utf8").split("\n", 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (!m) throw new Error(`${entry}: first line is not "#!/usr/bin/env -S node …"`);
  return m[1]!.trim().split(/\s+/).filter(Boolean);
}
