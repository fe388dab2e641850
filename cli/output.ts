/**
 * Output of client commands: aligned tables for people, JSON for scripts, progress on stderr.
 */

/** Prints rows as an aligned table with a header. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join("  ")
          .trimEnd()
      )
      .join("\n") + "\n"
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(
    JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v), 2) +
      "\n"
  );
}

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : text + "\n");
}

/** A progress line on stderr, rewritten in place when stderr is a terminal. */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
}

export function progressDone(text?: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text ? text + "\n" : ""}`);
  else if (text) process.stderr.write(text + "\n");
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.round(m / 60);
  return h < 48 ? `${h}h` : `${Math.round(h / 24)}d`;
}

/** `1 file`, `2 files`: a count with its noun. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
