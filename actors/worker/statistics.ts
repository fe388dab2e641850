/**
 * `_statistics` of a build in OBS's `buildstatistics` format (what obs-build writes and the OBS
 * web UI reads): disk and peak memory use, the times of the build's phases, and what was
 * downloaded. Times are seconds with millisecond precision (OBS writes whole seconds; the unit
 * attribute is the same, so OBS readers still understand them).
 */

export interface BuildStatistics {
  /** Most of the build's writable tree in use. */
  diskBytes?: number;
  /** Peak memory of the build's processes (tmpfs pages included). */
  peakMemoryBytes?: number;
  times: {
    totalMs: number;
    /** Fetching sources, dependencies and their metas. */
    downloadMs: number;
    /** Pre-build hooks. */
    prebuildMs: number;
    /** The sandbox run: build root assembly and rpmbuild. */
    mainMs: number;
    /** Post-build hooks by name (`rpmlint` and `build-compare` get OBS's element names). */
    hooksMs: Record<string, number>;
  };
  download: { bytes: number; binaries: number; cacheHits: number };
}

const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);

const secs = (ms: number): string => (Math.max(0, ms) / 1000).toFixed(3);
const mib = (b: number): string => String(Math.ceil(b / (1024 * 1024)));

/** OBS names some phases differently from kiln's hook names. */
const PHASE_ELEMENT: Record<string, string> = { "build-compare": "buildcmp", rpmlint: "rpmlint" };

export function renderStatistics(s: BuildStatistics): string {
  const t = (name: string, ms: number): string =>
    `    <${name}>\n      <time unit="s">${secs(ms)}</time>\n    </${name}>`;
  const lines = ["<buildstatistics>"];
  if (s.diskBytes !== undefined) {
    lines.push(
      "  <disk>",
      "    <usage>",
      `      <size unit="M">${mib(s.diskBytes)}</size>`,
      "    </usage>",
      "  </disk>"
    );
  }
  if (s.peakMemoryBytes !== undefined) {
    lines.push(
      "  <memory>",
      "    <usage>",
      `      <size unit="M">${mib(s.peakMemoryBytes)}</size>`,
      "    </usage>",
      "  </memory>"
    );
  }
  lines.push("  <times>", t("total", s.times.totalMs), t("download", s.times.downloadMs));
  if (s.times.prebuildMs > 0) lines.push(t("prebuild", s.times.prebuildMs));
  lines.push(t("main", s.times.mainMs));
  for (const [name, ms] of Object.entries(s.times.hooksMs)) {
    const el = PHASE_ELEMENT[name];
    lines.push(el ? t(el, ms) : t(`hook name="${esc(name)}"`, ms).replace(/<\/hook name="[^"]*">/, "</hook>"));
  }
  lines.push(
    "  </times>",
    "  <download>",
    `    <size unit="k">${Math.ceil(s.download.bytes / 1024)}</size>`,
    `    <binaries>${s.download.binaries}</binaries>`,
    `    <cachehits>${s.download.cacheHits}</cachehits>`,
    "  </download>",
    "</buildstatistics>",
    ""
  );
  return lines.join("\n");
}

/** The phase times (ms) of a `_statistics` text, by element name (`total`, `main`, `buildcmp`, …). */
export function parseStatisticsTimes(xml: string): Record<string, number> {
  const out: Record<string, number> = {};
  const times = /<times>([\s\S]*?)<\/times>/.exec(xml)?.[1] ?? "";
  for (const m of times.matchAll(/<([a-z]+)(?: name="([^"]*)")?>\s*<time unit="s">([0-9.]+)<\/time>/g)) {
    out[m[2] ?? m[1]!] = Math.round(Number(m[3]) * 1000);
  }
  return out;
}
