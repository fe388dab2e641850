/**
 * The project build configuration (prjconf, the `_config` of a project) as OBS reads it.
 *
 * A repository's effective config is the concatenation of the `_config` texts along its
 * repository path, the base distribution first and the project itself last, put together as the
 * OBS source server does it (`concatconfigs`): each layer is introduced by
 * `%define _repository <repo>` and, when they change, `%define _is_this_project 0|1` and
 * `%define _is_in_project 0|1`; a `Macros:` block at the end of a layer is moved to one combined
 * `Macros:` section at the end, and a layer with a closed (`:Macros`) block flushes the collected
 * macros in place. The text is then read as obs-build's `Build::read_config` reads it: it is first
 * run through the spec parser, so `%if`/`%else`/`%endif`, `%define`/`%global` and macros work,
 * `Macros:` … `:Macros` blocks are kept verbatim (they become {@link BuildConfig.macros}, the rpm
 * macros of every build and of spec parsing), and then the `Keyword: values` lines are applied in
 * order. List keywords add, `!x` removes `x`, `!*` clears; unknown keywords are ignored.
 *
 * kiln additions (obs-build 20210120 warns about both keywords and ignores them):
 * - a layer containing a `FromScratch:` line discards the layers before it. The decision is made
 *   on the text, per layer: a `FromScratch:` under a false `%if` still counts, and lines of the
 *   same layer before it are kept;
 * - `IgnoreRebuild:` is read as a list keyword.
 */
import { InvalidInputError } from "../../transport/index.ts";
import { MAX_RECIPE_CHARS, parseRecipeLines } from "./spec.ts";
import type { RecipeLine } from "./spec.ts";
import { MacroContext, STD_MACRO_LINES, defineFromLines, perlSplitLines, perlTrue, splitWords } from "./rpm-macros.ts";
import type { MacroLimits } from "./rpm-macros.ts";

/** The build configuration of one repository for one architecture. */
export interface BuildConfig {
  /** The architecture the config was read for. */
  arch: string;
  /** `Preinstall:` packages, unique, in order. */
  preinstall: string[];
  /** `VMinstall:` packages, unique, in order. */
  vminstall: string[];
  /** `Required:` packages (installed and part of the rebuild meta), unique, in order. */
  required: string[];
  /** `Support:` packages (installed, not part of the meta), unique, in order. */
  support: string[];
  /** `Keep:` packages, unique, in order. */
  keep: string[];
  /** `Runscripts:` packages, unique, in order. */
  runscripts: string[];
  /** `Prefer:` entries as written: `name`, `-name`, `origin:name`, `-origin:name`. */
  prefer: string[];
  /** `Ignore:` entries as written: `dep` or `pkg:dep[,dep2…]`. */
  ignore: string[];
  /** `Conflict:` entries as written: `a:b[,c…]`, or a single name. */
  conflict: string[];
  /**
   * `Substitute: a b c` → `{a: ["b", "c"]}`; values unique, a trailing `=` removed. Keys of this
   * and the other maps come from the config text: look them up with `Object.hasOwn`.
   */
  substitute: Record<string, string[]>;
  /** `FileProvides: /path pkg…` → `{"/path": ["pkg", …]}`. */
  fileProvides: Record<string, string[]>;
  ignoreRebuild: string[];
  expandFlags: string[];
  buildFlags: string[];
  publishFlags: string[];
  /** `ExportFilter: regex archs…`, one entry per regex, in the order OBS applies them. */
  exportFilter: { regex: string; archs: string[] }[];
  /** `Release:` template; obs-build's default is `<CI_CNT>.<B_CNT>`. */
  release?: string;
  /** Recipe type (`spec`, `dsc`, …), guessed from Preinstall when not set; `UNDEFINED` if unknown. */
  type?: string;
  /** Binary type (`rpm`, `deb`, …), derived from the type when not set; `UNDEFINED` if unknown. */
  binaryType?: string;
  /** `Repotype:` values; `rpm-md` when none is given (as the OBS scheduler defaults it). */
  repotype: string[];
  /** Raw `Constraint:` values, in order. */
  constraint: string[];
  /** `OptFlags: arch flags…` → `{arch: "flags…"}`. */
  optFlags: Record<string, string>;
  /** `HostArch:` (cross builds). */
  hostArch?: string;
  /** `Target:`/`ChangeTarget:` (cross builds); its cpu becomes `%_target_cpu`. */
  target?: string;
  /** `Patterntype:` values. */
  patterntype: string[];
  /** `Order: a:b …` entries (build order hints). */
  order: string[];
  /** `PublishFilter:` regexes. */
  publishFilter: string[];
  /** `BuildEngine:` (e.g. `mock`). */
  buildEngine?: string;
  /** `CiCntStart:`, `ReleasePrg:`, `ReleaseSuffix:`, `SingleExport:` as obs-build keeps them. */
  ciCntStart?: string;
  releasePrg?: string;
  releaseSuffix?: string;
  singleExport?: string;
  /**
   * The rpm macro text of the `Macros:` blocks, verbatim and in order (a block starting with a
   * `!` line replaces what came before): what a build puts into its rpm macros, and what
   * {@link ../spec.ts parseSpec} defines before reading a spec. `%define` lines of the config
   * itself only steer the config's own conditionals; obs-build does not keep them.
   */
  macros: string;
}

/** One `_config` along a repository path. */
export interface ConfigLayer {
  project: string;
  repository: string;
  text: string;
}

/** Options of {@link parseBuildConfig}. */
export interface ParseBuildConfigOptions {
  /** The scheduler architecture. */
  arch: string;
  /**
   * The build service's name; when given, `%vendor obs://<name>/<project>` is added to the
   * macros as the OBS source server does.
   */
  obsName?: string;
  /** Bounds on macro expansion. */
  limits?: Partial<MacroLimits>;
}

/**
 * Reads the effective build config of a repository from the `_config` texts along its path,
 * **base first**, the project itself last.
 *
 * @throws InvalidInputError when the text is too large or macro expansion exceeds its limits
 */
export function parseBuildConfig(layers: readonly ConfigLayer[], opts: ParseBuildConfigOptions): BuildConfig {
  const config = readBuildConfig(perlSplitLines(concatBuildConfig(layers, opts)), opts.arch, opts.limits);
  if (config.repotype.length === 0) config.repotype = ["rpm-md"];
  return config;
}

const WS = "[ \\t\\n\\r\\f\\v]";
const LINE_START = "(?:(?<![\\s\\S])|(?<=\\n))";
const LINE_END = "(?=\\n|(?![\\s\\S]))";
const HAS_CLOSE_RE = new RegExp(`${LINE_START}${WS}*:macros${WS}*${LINE_END}`, "i");
const UP_TO_CLOSE_RE = new RegExp(`^([\\s\\S]*${LINE_START}${WS}*:macros${WS}*${LINE_END})([\\s\\S]*?)$`, "i");
const TRAILING_BLOCK_RE = new RegExp(`^([\\s\\S]*\\n)?${WS}*macros:[^\\n]*\\n([\\s\\S]*)`, "i");
const FROM_SCRATCH_RE = new RegExp(`${LINE_START}${WS}*fromscratch:`, "i");

/**
 * The combined config text of a repository path (OBS source server `concatconfigs`), layers base
 * first. Layers with an empty text are skipped, as OBS skips projects without a `_config`.
 */
export function concatBuildConfig(layers: readonly ConfigLayer[], opts: { obsName?: string } = {}): string {
  if (layers.length === 0) throw new InvalidInputError("a build config needs at least one layer");
  const { project: projid, repository: repoid } = layers[layers.length - 1]!;
  let from = 0;
  layers.forEach((l, i) => {
    if (FROM_SCRATCH_RE.test(l.text)) from = i;
  });
  let config = `%define _project ${projid}\n`;
  let macros = "";
  if (opts.obsName !== undefined) macros += `%vendor obs://${opts.obsName}/${projid}\n`;
  macros += `%_project ${projid}\n`;
  let lastRepo = "";
  const distinfo = repoid === "standard" ? projid : `${projid} / ${repoid}`;
  let oldThis = -1;
  let oldIn = -1;
  for (const layer of layers.slice(from)) {
    const { project: p, repository: r } = layer;
    if (p === projid && r === repoid) macros += `\n%distribution ${distinfo}\n%_project ${projid}\n`;
    let c = layer.text;
    if (c === "") continue;
    config += `\n### from ${p}\n%define _repository ${r}\n`;
    const isThis = p === projid ? 1 : 0;
    const isIn = isThis || projid.startsWith(`${p}:`) ? 1 : 0;
    if (isThis !== oldThis) config += `%define _is_this_project ${isThis}\n`;
    if (isIn !== oldIn) config += `%define _is_in_project ${isIn}\n`;
    oldThis = isThis;
    oldIn = isIn;
    if (HAS_CLOSE_RE.test(c)) {
      // Several macro blocks, probably under %if: flush what was collected and keep them in place.
      macros += `\n### from ${p}\n\n%_repository ${r}\n`;
      config += `\nMacros:\n${macros}:Macros\n\n`;
      macros = "";
      lastRepo = r;
      const m = UP_TO_CLOSE_RE.exec(c);
      if (m) {
        config += m[1]!;
        c = m[2]!;
      } else {
        config += c;
        c = "";
      }
    }
    const trailing = TRAILING_BLOCK_RE.exec(c);
    if (trailing) {
      // A single macro block at the end is collected into the combined block at the very end.
      c = trailing[1] ?? "";
      macros += `\n### from ${p}\n%_repository ${r}\n${trailing[2]!}`;
      lastRepo = r;
    }
    config += c;
  }
  // OBS also adds %distribution here when the path does not start with the project itself;
  // kiln's path always ends with it, so the loop above has done that already.
  if (lastRepo !== repoid) macros += `\n### from ${projid}\n%_repository ${repoid}\n`;
  if (macros !== "") config += `\nMacros:\n${macros}`;
  return config;
}

const LIST_KEYWORDS = {
  "preinstall:": "preinstall",
  "vminstall:": "vminstall",
  "required:": "required",
  "support:": "support",
  "keep:": "keep",
  "prefer:": "prefer",
  "ignore:": "ignore",
  "conflict:": "conflict",
  "runscripts:": "runscripts",
  "expandflags:": "expandFlags",
  "buildflags:": "buildFlags",
  "publishflags:": "publishFlags",
  "ignorerebuild:": "ignoreRebuild",
} as const satisfies Record<string, keyof BuildConfig>;

type ListKey = (typeof LIST_KEYWORDS)[keyof typeof LIST_KEYWORDS];

/** Substitutes obs-build adds when the config names none for repository creation. */
const REPO_CREATION_DEFAULTS: Record<string, string[]> = {
  rpm: ["createrepo"],
  deb: ["dpkg-dev"],
  arch: ["pacman"],
};

function emptyConfig(arch: string): BuildConfig {
  return {
    arch,
    preinstall: [],
    vminstall: [],
    required: [],
    support: [],
    keep: [],
    runscripts: [],
    prefer: [],
    ignore: [],
    conflict: [],
    substitute: {},
    fileProvides: {},
    ignoreRebuild: [],
    expandFlags: [],
    buildFlags: [],
    publishFlags: [],
    exportFilter: [],
    release: "<CI_CNT>.<B_CNT>",
    repotype: [],
    constraint: [],
    optFlags: {},
    patterntype: [],
    order: [],
    publishFilter: [],
    singleExport: "",
    macros: "",
  };
}

/**
 * Sets an own property, so that names such as `__proto__` from a config are data, not a
 * prototype change. Readers of the maps should use `Object.hasOwn`.
 */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function unify(list: readonly string[]): string[] {
  return [...new Set(list)];
}

/**
 * Reads one config text, given as lines (obs-build `Build::read_config`), for `arch`. Use
 * {@link parseBuildConfig} for a repository path; this is the single-text reader underneath.
 *
 * @throws InvalidInputError when the text is too large or macro expansion exceeds its limits
 */
export function readBuildConfig(
  configLines: readonly string[],
  arch: string,
  limits?: Partial<MacroLimits>
): BuildConfig {
  let size = 0;
  for (const l of configLines) size += l.length + 1;
  if (size > MAX_RECIPE_CHARS) {
    throw new InvalidInputError("build config too large", { data: { limit: MAX_RECIPE_CHARS } });
  }
  // `Macros:` … `:Macros` blocks are verbatim: the parser only decides whether a %if drops them.
  const input: RecipeLine[] = [];
  for (let i = 0; i < configLines.length; i++) {
    const line = configLines[i]!;
    if (!/^[ \t\n\r\f\v]*macros:[ \t\n\r\f\v]*$/i.test(line)) {
      input.push(line);
      continue;
    }
    let block = "macros:\n";
    for (i++; i < configLines.length; i++) {
      const l = configLines[i]!;
      if (/^[ \t\n\r\f\v]*:macros[ \t\n\r\f\v]*$/i.test(l)) break;
      block += `${l}\n`;
    }
    input.push({ verbatim: block });
  }
  const ctx = new MacroContext(limits);
  defineFromLines(ctx, [...STD_MACRO_LINES, `%define _target_cpu ${arch}`, "%define _target_os linux"]);
  const parsed = parseRecipeLines(input, ctx, {
    fileProvides: {},
    buildFlavor: "",
    obsPackage: "@OBS_PACKAGE@",
    readConstraints: false,
    record: true,
  });

  const config = emptyConfig(arch);
  const exportFilter = new Map<string, string[]>();
  const order = new Map<string, true>();
  for (const l of parsed.lines) {
    if (l === null) continue;
    const words = splitWords(l);
    if (words.length === 0) continue;
    const keyword = words.shift()!.toLowerCase();
    if (keyword === "macros:") {
      const body = l.replace(/^[^\n]*\n/, "");
      if (body.startsWith("!\n")) config.macros = body.slice(2);
      else config.macros += body;
      continue;
    }
    if (Object.hasOwn(LIST_KEYWORDS, keyword)) {
      const key: ListKey = LIST_KEYWORDS[keyword as keyof typeof LIST_KEYWORDS];
      for (const w of words) {
        if (w === "!*") config[key] = [];
        else if (w.startsWith("!")) config[key] = config[key].filter((x) => `!${x}` !== w);
        else config[key].push(w);
      }
      continue;
    }
    switch (keyword) {
      case "substitute:":
      case "fileprovides:": {
        const map = keyword === "substitute:" ? config.substitute : config.fileProvides;
        const first = words.shift();
        if (first === undefined) break;
        if (first === "!*") {
          for (const k of Object.keys(map)) delete map[k];
        } else if (first.startsWith("!")) {
          if (Object.hasOwn(map, first.slice(1))) delete map[first.slice(1)];
        } else {
          setOwn(map, first, words);
        }
        break;
      }
      case "exportfilter:": {
        const first = words.shift();
        if (first !== undefined) exportFilter.set(first, words);
        break;
      }
      case "publishfilter:":
        config.publishFilter = words;
        break;
      case "optflags:": {
        const first = words.shift();
        if (first !== undefined) setOwn(config.optFlags, first, words.join(" "));
        break;
      }
      case "order:":
        for (const w of words) {
          if (w === "!*") order.clear();
          else if (w.startsWith("!")) order.delete(w.slice(1));
          else order.set(w, true);
        }
        break;
      case "repotype:":
        config.repotype = words;
        break;
      case "patterntype:":
        config.patterntype = words;
        break;
      case "type:":
        config.type = words[0];
        break;
      case "buildengine:":
        config.buildEngine = words[0];
        break;
      case "binarytype:":
        config.binaryType = words[0];
        break;
      case "release:":
        config.release = words[0];
        break;
      case "cicntstart:":
        config.ciCntStart = words[0];
        break;
      case "releaseprg:":
        config.releasePrg = words[0];
        break;
      case "releasesuffix:":
        config.releaseSuffix = words.join(" ");
        break;
      case "changetarget:":
      case "target:":
        config.target = words.join(" ");
        break;
      case "hostarch:":
        config.hostArch = words.join(" ");
        break;
      case "constraint:": {
        const c = words.join(" ");
        if (c === "!*") config.constraint = [];
        else config.constraint.push(c);
        break;
      }
      case "singleexport:":
        config.singleExport = words[0];
        break;
      default:
        // Unknown keywords, comments and leftover macro lines are ignored, as obs-build does.
        break;
    }
  }
  for (const key of ["preinstall", "vminstall", "required", "support", "keep", "runscripts"] as const) {
    config[key] = unify(config[key]);
  }
  config.repotype = unify(config.repotype);
  config.patterntype = unify(config.patterntype);
  config.order = [...order.keys()];
  // OBS applies export filters in reverse sorted order of their regexes.
  config.exportFilter = [...exportFilter.keys()]
    .sort()
    .reverse()
    .map((regex) => ({ regex, archs: exportFilter.get(regex)! }));

  if (!perlTrue(config.type)) {
    if (config.preinstall.includes("rpm")) config.type = "spec";
    else if (config.preinstall.includes("debianutils")) config.type = "dsc";
    else if (config.preinstall.includes("pacman")) config.type = "arch";
    else config.type = "UNDEFINED";
  }
  if (!perlTrue(config.binaryType)) {
    const type = config.type;
    let bt: string | undefined;
    if (type === "spec") bt = "rpm";
    if (type === "dsc" || type === "collax" || type === "livebuild") bt = "deb";
    if (type === "arch") bt = "arch";
    if (["snapcraft", "appimage", "docker", "fissile", "kiwi"].includes(type)) {
      if (config.preinstall.includes("rpm")) bt = "rpm";
      else if (config.preinstall.includes("debianutils")) bt = "deb";
      else if (config.preinstall.includes("pacman")) bt = "arch";
    }
    config.binaryType = perlTrue(bt) ? bt : "UNDEFINED";
  }
  const repoCreation = "system-packages:repo-creation";
  const defaults = Object.hasOwn(REPO_CREATION_DEFAULTS, config.binaryType)
    ? REPO_CREATION_DEFAULTS[config.binaryType]
    : undefined;
  if (!Object.hasOwn(config.substitute, repoCreation) && defaults)
    setOwn(config.substitute, repoCreation, [...defaults]);
  for (const [k, v] of Object.entries(config.substitute)) {
    setOwn(
      config.substitute,
      k,
      unify(v).map((s) => s.replace(/=$/, ""))
    );
  }
  return config;
}

/**
 * The value of a `BuildFlags: name:value` entry (the last one wins), `"1"` for a bare
 * `BuildFlags: name`, or undefined when the flag is not set.
 */
export function buildFlag(config: BuildConfig, name: string): string | undefined {
  return flagValue(config.buildFlags, name);
}

/** Like {@link buildFlag}, for `ExpandFlags:`. */
export function expandFlag(config: BuildConfig, name: string): string | undefined {
  return flagValue(config.expandFlags, name);
}

/** Like {@link buildFlag}, for `PublishFlags:`. */
export function publishFlag(config: BuildConfig, name: string): string | undefined {
  return flagValue(config.publishFlags, name);
}

function flagValue(flags: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (const f of flags) {
    const colon = f.indexOf(":");
    if (colon > 0) {
      if (f.slice(0, colon) === name) value = f.slice(colon + 1);
    } else if (f === name) {
      value = "1";
    }
  }
  return value;
}

/** The lookup sets obs-build derives from Prefer/Ignore/Conflict (`init_helper_hashes`). */
export interface ConfigHelpers {
  /** Prefer entries as a set (`pkg`, `-pkg`, `origin:pkg`, `-origin:pkg`). */
  prefer: Set<string>;
  /** Ignore entries: `dep` for global ones, `pkg:dep` for each dep of a `pkg:dep,dep2` entry. */
  ignore: Set<string>;
  /** Conflict pairs in both directions; a single-name entry maps to an empty list. */
  conflict: Map<string, string[]>;
}

/** Builds {@link ConfigHelpers} for the dependency expander. */
export function configHelpers(config: BuildConfig): ConfigHelpers {
  const prefer = new Set(config.prefer);
  const ignore = new Set<string>();
  for (const entry of config.ignore) {
    if (!entry.includes(":")) {
      ignore.add(entry);
      continue;
    }
    const [pkg, ...deps] = perlSplitFields(entry);
    for (const d of deps) ignore.add(`${pkg}:${d}`);
  }
  const conflict = new Map<string, string[]>();
  for (const entry of config.conflict) {
    const [a, ...others] = perlSplitFields(entry);
    const key = a ?? "";
    conflict.set(key, [...(conflict.get(key) ?? []), ...others]);
    for (const o of others) conflict.set(o, [...(conflict.get(o) ?? []), key]);
  }
  for (const [k, v] of conflict) conflict.set(k, unify(v));
  return { prefer, ignore, conflict };
}

/** Perl's `split(/[,:]/, s)`: empty fields kept except at the end. */
function perlSplitFields(s: string): string[] {
  const parts = s.split(/[,:]/);
  while (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}
