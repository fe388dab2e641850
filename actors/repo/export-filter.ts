/**
 * ExportFilter: which scheduler archs a freshly built binary goes to (OBS `ExportFilter:` in the
 * project config, seed "new build repo handling").
 *
 * A build on one arch can produce binaries meant for another (the i586 build of a package makes
 * `foo-32bit-….x86_64.rpm` for x86_64). The filter decides, per binary file name, whether the
 * binary stays in the building arch's pool and to which other archs it is exported; the target
 * arch stores an exported binary with its package as `::import::<fromArch>::<file>`.
 *
 * Rules, as OBS's scheduler applies them:
 * - The project's filters replace the defaults entirely; with none defined, the per-arch
 *   {@link DEFAULT_EXPORT_FILTERS} apply, and an arch without defaults keeps everything local.
 * - Filters are keyed by their regex (a later definition of the same regex replaces the earlier
 *   one) and tried in *reverse* lexicographic order of the regex text; the first that matches the
 *   file's base name decides. Declaration order does not matter.
 * - A matching filter's arch list says where the binary goes: `.` or the building arch itself
 *   means "keep it here"; every other arch is an export target; an empty list discards it.
 * - No filter matching means: keep it here, export nowhere.
 * - Imported binaries (`::import::…`) are never re-exported and always stay.
 * - A filter whose regex does not compile, or that names an impossible arch, is ignored (and
 *   reported in {@link CompiledExportFilter.ignored}), as OBS ignores it.
 *
 * Regexes are written for Perl; they are compiled as JavaScript regular expressions, which agree
 * on everything a file-name filter reasonably uses. They come from a project maintainer and run
 * only against short file names.
 */

/** One `ExportFilter: <regex> <arch>...` line. */
export interface ExportFilterRule {
  regex: string;
  archs: readonly string[];
}

/** Where one binary goes. */
export interface ExportTargets {
  /** Whether the binary stays in the building arch's results and pool. */
  local: boolean;
  /** Other scheduler archs that get the binary as an import, sorted, without duplicates. */
  exportTo: string[];
}

/** A filter set compiled for one building arch. */
export interface CompiledExportFilter {
  readonly arch: string;
  /** The filters in the order they are tried. */
  readonly rules: readonly { regex: RegExp; source: string; archs: readonly string[] }[];
  /** Filters dropped because their regex or an arch was invalid. */
  readonly ignored: readonly { regex: string; reason: string }[];
  /** Decides where the binary file `filename` (a base name or a path) goes. */
  targets(filename: string): ExportTargets;
}

const debugFilters: readonly ExportFilterRule[] = [
  { regex: "-debuginfo-.*\\.rpm$", archs: [] },
  { regex: "-debugsource-.*\\.rpm$", archs: [] },
];

/**
 * OBS's built-in filters (`%default_exportfilters` in `BSSched/BuildResult.pm`), used when the
 * project defines none. Debug packages are discarded everywhere they are listed; the 32-bit
 * builds export the matching 64-bit baselibs binaries (sparc's discard is deliberate in OBS: the
 * sparcv9 target suits 64-bit baselibs better).
 */
export const DEFAULT_EXPORT_FILTERS: Readonly<Record<string, readonly ExportFilterRule[]>> = {
  i586: [
    { regex: "\\.x86_64\\.rpm$", archs: ["x86_64"] },
    { regex: "\\.ia64\\.rpm$", archs: ["ia64"] },
    ...debugFilters,
  ],
  x86_64: debugFilters,
  ppc: [{ regex: "\\.ppc64\\.rpm$", archs: ["ppc64"] }, ...debugFilters],
  ppc64: [{ regex: "\\.ppc\\.rpm$", archs: ["ppc"] }, ...debugFilters],
  sparc: [{ regex: "\\.sparc64\\.rpm$", archs: [] }, ...debugFilters],
  sparcv8: [{ regex: "\\.sparc64\\.rpm$", archs: [] }, ...debugFilters],
  sparcv9: [{ regex: "\\.sparc64\\.rpm$", archs: ["sparc64"] }, ...debugFilters],
  sparcv9v: [{ regex: "\\.sparc64v\\.rpm$", archs: ["sparc64v"] }, ...debugFilters],
  sparc64: [{ regex: "\\.sparcv9\\.rpm$", archs: ["sparcv9"] }, ...debugFilters],
  sparc64v: [{ regex: "\\.sparcv9v\\.rpm$", archs: ["sparcv9v"] }, ...debugFilters],
};

/** File-name prefix under which a package's result stores a binary imported from another arch. */
export const IMPORT_PREFIX = "::import::";

/** `::import::<fromArch>::<file>`: the name an imported binary is stored under. */
export function importFilename(fromArch: string, file: string): string {
  return `${IMPORT_PREFIX}${fromArch}::${file}`;
}

/** Splits an import file name; `undefined` for a local file. */
export function parseImportFilename(filename: string): { fromArch: string; file: string } | undefined {
  if (!filename.startsWith(IMPORT_PREFIX)) return undefined;
  const rest = filename.slice(IMPORT_PREFIX.length);
  const sep = rest.indexOf("::");
  if (sep <= 0) return undefined;
  return { fromArch: rest.slice(0, sep), file: rest.slice(sep + 2) };
}

function validArch(a: string): boolean {
  // OBS's verify_arch; "." is the filter's own word for "here".
  // eslint-disable-next-line no-control-regex
  return a === "." || (a.length > 0 && a.length <= 200 && !/[/:.\u0000-\u001f]/.test(a));
}

function baseName(filename: string): string {
  const slash = filename.lastIndexOf("/");
  return slash < 0 ? filename : filename.slice(slash + 1);
}

/**
 * Compiles a filter set for binaries built on `arch`. `filters` are the project's; when absent or
 * empty, OBS's defaults for `arch` apply.
 */
export function compileExportFilter(arch: string, filters?: readonly ExportFilterRule[]): CompiledExportFilter {
  const chosen = filters && filters.length > 0 ? filters : (DEFAULT_EXPORT_FILTERS[arch] ?? []);
  const byRegex = new Map<string, readonly string[]>();
  for (const f of chosen) byRegex.set(f.regex, f.archs);
  // Code-unit order equals Perl's byte order for the ASCII that file-name regexes are made of.
  const sources = [...byRegex.keys()].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  const rules: { regex: RegExp; source: string; archs: readonly string[] }[] = [];
  const ignored: { regex: string; reason: string }[] = [];
  for (const source of sources) {
    const archs = byRegex.get(source)!;
    const bad = archs.find((a) => !validArch(a));
    if (bad !== undefined) {
      ignored.push({ regex: source, reason: `invalid arch ${JSON.stringify(bad)}` });
      continue;
    }
    try {
      rules.push({ regex: new RegExp(source), source, archs });
    } catch (err) {
      ignored.push({ regex: source, reason: (err as Error).message });
    }
  }
  return {
    arch,
    rules,
    ignored,
    targets(filename: string): ExportTargets {
      const name = baseName(filename);
      if (name.startsWith(IMPORT_PREFIX)) return { local: true, exportTo: [] };
      const rule = rules.find((r) => r.regex.test(name));
      if (!rule) return { local: true, exportTo: [] };
      let local = false;
      const exportTo = new Set<string>();
      for (const a of rule.archs) {
        if (a === "." || a === arch) local = true;
        else exportTo.add(a);
      }
      return { local, exportTo: [...exportTo].sort() };
    },
  };
}

const compiledCache = new WeakMap<readonly ExportFilterRule[], Map<string, CompiledExportFilter>>();
const defaultCache = new Map<string, CompiledExportFilter>();

/**
 * Where the binary `filename`, built on `arch`, goes under the project's `filters` (OBS's
 * defaults when there are none). Compiled filter sets are cached per `filters` array, so callers
 * that keep the array get compilation once.
 *
 * Call it only for files that can enter a pool at all (a named, non-source binary): OBS never
 * exports source packages or files without a binary suffix, whatever the filters say.
 */
export function exportTargets(filename: string, arch: string, filters?: readonly ExportFilterRule[]): ExportTargets {
  let byArch: Map<string, CompiledExportFilter>;
  if (filters && filters.length > 0) {
    let m = compiledCache.get(filters);
    if (!m) {
      m = new Map();
      compiledCache.set(filters, m);
    }
    byArch = m;
  } else {
    byArch = defaultCache;
  }
  let compiled = byArch.get(arch);
  if (!compiled) {
    compiled = compileExportFilter(arch, filters);
    byArch.set(arch, compiled);
  }
  return compiled.targets(filename);
}
