/**
 * Build constraints (obs-backend.md §6.2, OBS `BSDispatcher/Constraints.pm` semantics): parse a
 * package's `_constraints` XML, recipe `#!BuildConstraint:` lines and prjconf `Constraint:` lines
 * into one {@link Constraints} shape, merge them with OBS's precedence (recipe > `_constraints` >
 * prjconf), apply `overwrite` blocks for an (arch, package), match a worker against the result and
 * explain why no worker fits.
 *
 * ```ts
 * const c = constraintsForJob({ prjconf: job.constraints.prjconf, file: xml, recipe: lines }, job);
 * const m = workerSatisfies(worker, c, job.arch); // { ok: false, blocking: "hardware:memoryperjob" }
 * ```
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { InvalidInputError, TooLargeError } from "../../transport/index.ts";
import { parseEvr, rpmvercmp } from "../common/rpm-version.ts";
import { canBuildArch, type WorkerCapabilities } from "./worker-info.ts";

// ---------------------------------------------------------------------------------------------
// The shape

/** A label, cpu flag or sandbox that must be present, or (`exclude`) must not be. */
export interface Selector {
  readonly value: string;
  readonly exclude: boolean;
}

/** Size units of `<size unit=…>`; OBS reads a size without unit as bytes. */
export const SizeUnit = { B: "B", K: "K", M: "M", G: "G", T: "T", P: "P" } as const;
export type SizeUnit = (typeof SizeUnit)[keyof typeof SizeUnit];

/** A size as written (`<size unit="G">16</size>`); {@link sizeToMb} normalises it. */
export interface SizeValue {
  readonly amount: number;
  readonly unit: SizeUnit;
}

export interface LinuxConstraint {
  readonly flavor?: string;
  /** Kernel version bounds, compared with rpm's version comparison. */
  readonly version?: { readonly min?: string; readonly max?: string };
}

export interface HardwareConstraint {
  readonly cpuFlags?: readonly Selector[];
  readonly processors?: number;
  readonly jobs?: number;
  readonly disk?: SizeValue;
  /** Memory plus swap of the worker. */
  readonly memory?: SizeValue;
  /** Multiplied by the worker's build slots, against memory plus swap. */
  readonly memoryperjob?: SizeValue;
  /** RAM only. */
  readonly physicalmemory?: SizeValue;
}

/** The requirements proper, without `overwrite` blocks. Absent parts constrain nothing. */
export interface ConstraintSet {
  readonly hostlabels?: readonly Selector[];
  readonly sandbox?: Selector;
  readonly linux?: LinuxConstraint;
  readonly hardware?: HardwareConstraint;
}

/**
 * An `overwrite` block: its requirements replace the base ones for matching (arch, package).
 * Without `conditions` it never applies (as in OBS); an empty list does not restrict.
 */
export interface Overwrite {
  readonly conditions?: { readonly arch: readonly string[]; readonly package: readonly string[] };
  readonly set: ConstraintSet;
}

/** Parsed constraints of one source, or merged ones. */
export interface Constraints extends ConstraintSet {
  readonly overwrites?: readonly Overwrite[];
}

/** The constraints that constrain nothing. */
export const NO_CONSTRAINTS: Constraints = Object.freeze({});

/** OBS's default set of sandboxes that `<sandbox>secure</sandbox>` accepts. */
export const DEFAULT_SECURE_SANDBOXES: ReadonlySet<string> = new Set(["xen", "kvm", "zvm"]);

/** What OBS makes of an include and an exclude sandbox that contradict each other: no worker has it. */
export const UNMERGEABLE_SANDBOX = "cannot_merge_sandbox";

/** Default byte limit of a `_constraints` file (real ones are a few hundred bytes). */
export const MAX_CONSTRAINTS_BYTES = 64 * 1024;

const MB_PER_UNIT: Readonly<Record<SizeUnit, number>> = {
  B: 1 / (1024 * 1024),
  K: 1 / 1024,
  M: 1,
  G: 1024,
  T: 1024 * 1024,
  P: 1024 * 1024 * 1024,
};

/** A size in MiB (workers report their hardware in MiB). */
export function sizeToMb(s: SizeValue): number {
  return s.amount * MB_PER_UNIT[s.unit];
}

/** Whether `c` constrains anything (overwrite blocks not counted: they need an arch and package). */
export function isUnconstrained(c: ConstraintSet): boolean {
  return c.hostlabels === undefined && c.sandbox === undefined && c.linux === undefined && c.hardware === undefined;
}

// ---------------------------------------------------------------------------------------------
// Element schema shared by the XML and the line parser (the content of OBS's BSXML constraints dtd)

interface SchemaNode {
  readonly attrs: readonly string[];
  readonly content: boolean;
  readonly children: ReadonlyMap<string, SchemaChild>;
}
type SchemaChild =
  | { readonly kind: "leaf"; readonly repeat: boolean }
  | { readonly kind: "node"; readonly repeat: boolean; readonly node: SchemaNode };

const leaf = (repeat = false): SchemaChild => ({ kind: "leaf", repeat });
const node = (n: SchemaNode, repeat = false): SchemaChild => ({ kind: "node", repeat, node: n });
const schema = (children: [string, SchemaChild][], attrs: string[] = [], content = false): SchemaNode => ({
  attrs,
  content,
  children: new Map(children),
});

const SELECTOR = schema([], ["exclude"], true);
const SIZE_HOLDER = schema([["size", node(schema([], ["unit"], true))]]);
const BODY: [string, SchemaChild][] = [
  ["hostlabel", node(SELECTOR, true)],
  ["sandbox", node(SELECTOR)],
  [
    "linux",
    node(
      schema([
        [
          "version",
          node(
            schema([
              ["min", leaf()],
              ["max", leaf()],
            ])
          ),
        ],
        ["flavor", leaf()],
      ])
    ),
  ],
  [
    "hardware",
    node(
      schema([
        ["cpu", node(schema([["flag", node(SELECTOR, true)]]))],
        ["processors", leaf()],
        ["jobs", leaf()],
        ["disk", node(SIZE_HOLDER)],
        ["memory", node(SIZE_HOLDER)],
        ["memoryperjob", node(SIZE_HOLDER)],
        ["physicalmemory", node(SIZE_HOLDER)],
      ])
    ),
  ],
];
const ROOT = schema([
  ...BODY,
  [
    "overwrite",
    node(
      schema([
        [
          "conditions",
          node(
            schema([
              ["arch", leaf(true)],
              ["package", leaf(true)],
            ])
          ),
        ],
        ...BODY,
      ]),
      true
    ),
  ],
]);

/** A parsed element before value checks: OBS's XML::Structured hash, with Maps (no prototype keys). */
interface SNode {
  readonly attrs: Map<string, string>;
  content?: string;
  readonly kids: Map<string, string | string[] | SNode | SNode[]>;
}
const newNode = (): SNode => ({ attrs: new Map(), kids: new Map() });

// ---------------------------------------------------------------------------------------------
// _constraints XML

/** Options of {@link parseConstraintsXml}. */
export interface ParseXmlOptions {
  /** Refuse larger input (default {@link MAX_CONSTRAINTS_BYTES}). */
  maxBytes?: number;
}

const xmlParser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // Entities are never expanded: the file is untrusted, and DOCTYPEs are refused before parsing.
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 16,
});

type OrderedItem = Record<string, unknown>;

/**
 * Parses a package's `_constraints` file. The file is untrusted: it must be at most
 * `maxBytes`, well-formed, without DOCTYPE or entity references, and use only the elements and
 * attributes of OBS's constraints schema; sizes and counts are validated.
 *
 * @throws TooLargeError when the file is larger than allowed.
 * @throws InvalidInputError naming the offending element or value otherwise.
 */
export function parseConstraintsXml(xml: string, opts: ParseXmlOptions = {}): Constraints {
  const limit = opts.maxBytes ?? MAX_CONSTRAINTS_BYTES;
  const size = Buffer.byteLength(xml, "utf8");
  if (size > limit) {
    throw new TooLargeError(`_constraints is ${size} bytes, more than the limit of ${limit}`, { data: { limit } });
  }
  if (/<!DOCTYPE/i.test(xml)) throw new InvalidInputError("_constraints: a DOCTYPE declaration is not allowed");
  if (/<!ENTITY/i.test(xml)) throw new InvalidInputError("_constraints: entity declarations are not allowed");
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new InvalidInputError(
      `_constraints is not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`
    );
  }
  let items: OrderedItem[];
  try {
    items = xmlParser.parse(xml) as OrderedItem[];
  } catch (err) {
    throw new InvalidInputError(`_constraints is not well-formed XML: ${(err as Error).message}`);
  }
  const roots = items.filter((i) => !("#text" in i));
  if (items.some((i) => "#text" in i)) throw new InvalidInputError("_constraints: text outside the root element");
  if (roots.length !== 1) throw new InvalidInputError("_constraints must have exactly one root element");
  const root = roots[0]!;
  const rootName = tagOf(root);
  if (rootName !== "constraints") {
    throw new InvalidInputError(`_constraints: the root element must be <constraints>, not <${rootName}>`);
  }
  const top = newNode();
  fillFromXml(top, ROOT, "constraints", root);
  return toConstraints(top, "_constraints");
}

function tagOf(item: OrderedItem): string {
  const name = Object.keys(item).find((k) => k !== ":@");
  if (name === undefined) throw new InvalidInputError("_constraints: malformed element");
  return name;
}

function noEntity(value: string, where: string): string {
  if (value.includes("&")) throw new InvalidInputError(`_constraints: <${where}> contains an entity reference`);
  return value;
}

/** Text and attributes of an ordered-parser element, checked against the schema. */
function elementParts(
  item: OrderedItem,
  name: string,
  allowedAttrs: readonly string[]
): { attrs: Map<string, string>; text: string[]; elements: OrderedItem[] } {
  const attrs = new Map<string, string>();
  const rawAttrs = item[":@"] as Record<string, unknown> | undefined;
  for (const [a, v] of Object.entries(rawAttrs ?? {})) {
    if (!allowedAttrs.includes(a))
      throw new InvalidInputError(`_constraints: <${name}> has an unknown attribute '${a}'`);
    attrs.set(a, noEntity(String(v), name));
  }
  const text: string[] = [];
  const elements: OrderedItem[] = [];
  for (const child of item[name] as OrderedItem[]) {
    if ("#text" in child) {
      const t = String(child["#text"]);
      if (t.trim() !== "") text.push(noEntity(t, name));
    } else elements.push(child);
  }
  return { attrs, text, elements };
}

function fillFromXml(into: SNode, s: SchemaNode, name: string, item: OrderedItem): void {
  const { attrs, text, elements } = elementParts(item, name, s.attrs);
  for (const [a, v] of attrs) into.attrs.set(a, v);
  if (text.length > 0) {
    if (!s.content) throw new InvalidInputError(`_constraints: <${name}> must not contain text`);
    into.content = text.join("").trim();
  }
  for (const el of elements) {
    const childName = tagOf(el);
    const child = s.children.get(childName);
    if (child === undefined) throw new InvalidInputError(`_constraints: unknown element <${childName}> in <${name}>`);
    if (!child.repeat && into.kids.has(childName)) {
      throw new InvalidInputError(`_constraints: <${childName}> may appear only once in <${name}>`);
    }
    if (child.kind === "leaf") {
      const parts = elementParts(el, childName, []);
      if (parts.elements.length > 0) throw new InvalidInputError(`_constraints: <${childName}> has no sub-elements`);
      const value = parts.text.join("").trim();
      if (child.repeat) {
        const list = (into.kids.get(childName) as string[] | undefined) ?? [];
        list.push(value);
        into.kids.set(childName, list);
      } else into.kids.set(childName, value);
      continue;
    }
    const sub = newNode();
    fillFromXml(sub, child.node, childName, el);
    if (child.repeat) {
      const list = (into.kids.get(childName) as SNode[] | undefined) ?? [];
      list.push(sub);
      into.kids.set(childName, list);
    } else into.kids.set(childName, sub);
  }
}

// ---------------------------------------------------------------------------------------------
// Constraint lines (OBS list2struct): `hardware:disk:size unit=G 16`

const LINE_PREFIX = /^\s*(?:#!BuildConstraint:|Constraint:)\s*/i;

/** The `#!BuildConstraint:` lines of a recipe, without the prefix. */
export function extractRecipeConstraintLines(recipe: string): string[] {
  const out: string[] = [];
  for (const line of recipe.split("\n")) {
    const m = /^\s*#!BuildConstraint:\s*(.*?)\s*$/i.exec(line);
    if (m && m[1] !== "") out.push(m[1]!);
  }
  return out;
}

/**
 * The `Constraint:` lines of a project config, without the keyword. Expects the config after
 * conditional (`%if`) evaluation, as the scheduler hands it on.
 */
export function extractPrjconfConstraintLines(prjconf: string): string[] {
  const out: string[] = [];
  for (const line of prjconf.split("\n")) {
    const m = /^\s*constraint\s*:\s*(.*?)\s*$/i.exec(line);
    if (m && m[1] !== "") out.push(m[1]!);
  }
  return out;
}

/**
 * Parses constraint lines into {@link Constraints}, with OBS list2struct semantics: the first word
 * is the element path (`hardware:memory:size`), then `attr=value` words, then the value. Later
 * lines override single values and add to lists (hostlabels, cpu flags: one entry per word).
 * Path suffixes: `name=` deletes the element, `name+` adds a new list entry (or refuses an
 * existing single one), `name!` modifies the last list entry (or replaces a value list).
 * A `#!BuildConstraint:` or `Constraint:` prefix is accepted and dropped.
 *
 * @throws InvalidInputError naming the line and the problem.
 */
export function parseConstraintLines(lines: readonly string[]): Constraints {
  const top = newNode();
  for (const raw of lines) {
    const words = raw.replace(LINE_PREFIX, "").split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    try {
      applyLine(top, words);
    } catch (err) {
      if (err instanceof InvalidInputError) {
        throw new InvalidInputError(`constraint line '${raw.trim()}': ${err.message}`, { cause: err });
      }
      throw err;
    }
  }
  return toConstraints(top, "constraint lines");
}

function applyLine(top: SNode, words: string[]): void {
  const [path, ...args] = words as [string, ...string[]];
  const steps = path.split(":");
  let at = top;
  let s = ROOT;
  let endName = "constraints";
  // Set when the path ends in a list element: each remaining word becomes an entry of its own.
  let listRef: SNode[] | undefined;
  for (let i = 0; i < steps.length; i++) {
    let name = steps[i]!;
    const last = i === steps.length - 1;
    let mode: "set" | "add" | "del" | "mod" = "set";
    if (name.endsWith("+")) mode = "add";
    else if (name.endsWith("=")) mode = "del";
    else if (name.endsWith("!")) mode = "mod";
    if (mode !== "set") name = name.slice(0, -1);
    // Inner path steps continue the last list entry unless told to start a new one.
    const modify = mode === "mod" || (mode === "set" && !last);
    const child = s.children.get(name);
    if (child === undefined) throw new InvalidInputError(`unknown element '${name}'`);
    if (mode === "del") {
      at.kids.delete(name);
      if (last && args.length === 0) return;
    }
    if (child.kind === "leaf") {
      if (!last) throw new InvalidInputError(`element '${name}' has no sub-elements`);
      if (args.length > 0 && args[0]!.includes("="))
        throw new InvalidInputError(`element '${name}' takes no attributes`);
      if (child.repeat) {
        if (modify) at.kids.delete(name);
        const list = (at.kids.get(name) as string[] | undefined) ?? [];
        list.push(...args);
        at.kids.set(name, list);
      } else {
        if (mode !== "add") at.kids.delete(name);
        if (at.kids.has(name)) throw new InvalidInputError(`element '${name}' may appear only once`);
        at.kids.set(name, args.join(" "));
      }
      return;
    }
    let next: SNode;
    if (child.repeat) {
      const list = (at.kids.get(name) as SNode[] | undefined) ?? [];
      next = (modify ? list.pop() : undefined) ?? newNode();
      list.push(next);
      at.kids.set(name, list);
      listRef = list;
    } else {
      const existing = at.kids.get(name) as SNode | undefined;
      if (existing !== undefined && mode === "add")
        throw new InvalidInputError(`element '${name}' may appear only once`);
      next = existing ?? newNode();
      at.kids.set(name, next);
      listRef = undefined;
    }
    at = next;
    s = child.node;
    endName = name;
  }
  // A line restates the attributes of the element it ends in.
  for (const a of s.attrs) at.attrs.delete(a);
  let k = 0;
  for (; k < args.length; k++) {
    const m = /^([^=]*)=(.*)$/s.exec(args[k]!);
    if (!m) break;
    const [, a, v] = m as unknown as [string, string, string];
    if (!s.attrs.includes(a)) throw new InvalidInputError(`element '${endName}' has no attribute '${a}'`);
    if (at.attrs.has(a)) throw new InvalidInputError(`attribute '${a}' of '${endName}' given twice`);
    at.attrs.set(a, v);
  }
  const rest = args.slice(k);
  if (rest.length === 0) return;
  if (!s.content) throw new InvalidInputError(`element '${endName}' takes no value`);
  if (listRef === undefined) {
    at.content = rest.join(" ");
    return;
  }
  at.content = rest[0];
  for (const w of rest.slice(1)) listRef.push({ attrs: new Map(at.attrs), content: w, kids: new Map() });
}

// ---------------------------------------------------------------------------------------------
// Parsed elements → Constraints, with value checks

function toConstraints(top: SNode, source: string): Constraints {
  const body = toSet(top, source);
  const ow = top.kids.get("overwrite") as SNode[] | undefined;
  if (ow === undefined || ow.length === 0) return body;
  const overwrites = ow.map((o, i): Overwrite => {
    const where = `${source}: overwrite #${i + 1}`;
    const cond = o.kids.get("conditions") as SNode | undefined;
    const set = toSet(o, where);
    if (cond === undefined) return { set };
    const list = (k: string): string[] => {
      const values = (cond.kids.get(k) as string[] | undefined) ?? [];
      for (const v of values) if (v === "") throw new InvalidInputError(`${where}: empty <${k}> in <conditions>`);
      return values;
    };
    return { conditions: { arch: list("arch"), package: list("package") }, set };
  });
  return { ...body, overwrites };
}

function toSet(n: SNode, where: string): ConstraintSet {
  const out: { -readonly [K in keyof ConstraintSet]: ConstraintSet[K] } = {};
  const labels = n.kids.get("hostlabel") as SNode[] | undefined;
  if (labels !== undefined && labels.length > 0) out.hostlabels = labels.map((l) => toSelector(l, "hostlabel", where));
  const sandbox = n.kids.get("sandbox") as SNode | undefined;
  if (sandbox !== undefined) out.sandbox = toSelector(sandbox, "sandbox", where);
  const linux = n.kids.get("linux") as SNode | undefined;
  if (linux !== undefined) {
    const l: { flavor?: string; version?: { min?: string; max?: string } } = {};
    const flavor = text(linux, "flavor", where);
    if (flavor !== undefined) l.flavor = flavor;
    const version = linux.kids.get("version") as SNode | undefined;
    if (version !== undefined) {
      const v: { min?: string; max?: string } = {};
      const min = text(version, "min", where);
      const max = text(version, "max", where);
      if (min !== undefined) v.min = min;
      if (max !== undefined) v.max = max;
      if (min !== undefined || max !== undefined) l.version = v;
    }
    if (l.flavor !== undefined || l.version !== undefined) out.linux = l;
  }
  const hw = n.kids.get("hardware") as SNode | undefined;
  if (hw !== undefined) {
    const h: { -readonly [K in keyof HardwareConstraint]: HardwareConstraint[K] } = {};
    const cpu = hw.kids.get("cpu") as SNode | undefined;
    const flags = cpu?.kids.get("flag") as SNode[] | undefined;
    if (flags !== undefined && flags.length > 0) h.cpuFlags = flags.map((f) => toSelector(f, "flag", where));
    for (const k of ["processors", "jobs"] as const) {
      const v = text(hw, k, where);
      if (v === undefined) continue;
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
        throw new InvalidInputError(`${where}: <${k}> must be a whole number, not '${v}'`);
      }
      h[k] = Number(v);
    }
    for (const k of ["disk", "memory", "memoryperjob", "physicalmemory"] as const) {
      const holder = hw.kids.get(k) as SNode | undefined;
      if (holder !== undefined) h[k] = toSize(holder, k, where);
    }
    if (Object.keys(h).length > 0) out.hardware = h;
  }
  return out;
}

function text(n: SNode, k: string, where: string): string | undefined {
  const v = n.kids.get(k) as string | undefined;
  if (v === undefined) return undefined;
  if (v === "") throw new InvalidInputError(`${where}: <${k}> is empty`);
  return v;
}

function toSelector(n: SNode, name: string, where: string): Selector {
  const value = n.content ?? "";
  if (value === "") throw new InvalidInputError(`${where}: <${name}> is empty`);
  const ex = n.attrs.get("exclude");
  if (ex !== undefined && ex !== "true" && ex !== "false") {
    throw new InvalidInputError(`${where}: exclude of <${name}> must be 'true' or 'false', not '${ex}'`);
  }
  return { value, exclude: ex === "true" };
}

function toSize(holder: SNode, name: string, where: string): SizeValue {
  const size = holder.kids.get("size") as SNode | undefined;
  if (size === undefined) throw new InvalidInputError(`${where}: <${name}> needs a <size>`);
  const raw = size.content ?? "";
  if (!/^\d+(\.\d+)?$/.test(raw))
    throw new InvalidInputError(`${where}: size of <${name}> must be a number, not '${raw}'`);
  const unit = size.attrs.get("unit") ?? SizeUnit.B;
  if (!Object.hasOwn(SizeUnit, unit)) {
    throw new InvalidInputError(`${where}: unknown size unit '${unit}' in <${name}> (use B, K, M, G, T or P)`);
  }
  return { amount: Number(raw), unit: unit as SizeUnit };
}

// ---------------------------------------------------------------------------------------------
// Merging and overwrite blocks

/** Options of merging and matching. */
export interface ConstraintOptions {
  /** Sandboxes that satisfy `secure` (default {@link DEFAULT_SECURE_SANDBOXES}). */
  secureSandboxes?: ReadonlySet<string>;
}

function mergeSandbox(base: Selector | undefined, over: Selector | undefined, secure: ReadonlySet<string>) {
  if (over === undefined) return base;
  if (base === undefined || base.exclude === over.exclude) return over;
  const [inc, exc] = base.exclude ? [over, base] : [base, over];
  // OBS cannot express "secure but not kvm": the contradiction leaves a sandbox no worker has.
  if (inc.value === exc.value || (inc.value === "secure" && secure.has(exc.value))) {
    return { value: UNMERGEABLE_SANDBOX, exclude: false };
  }
  return inc;
}

function mergeTwo(base: Constraints, over: Constraints, secure: ReadonlySet<string>): Constraints {
  const out: { -readonly [K in keyof Constraints]: Constraints[K] } = {};
  const labels = concat(base.hostlabels, over.hostlabels);
  if (labels) out.hostlabels = labels;
  const sandbox = mergeSandbox(base.sandbox, over.sandbox, secure);
  if (sandbox) out.sandbox = sandbox;
  const linux = overlayLinux(base.linux, over.linux);
  if (linux) out.linux = linux;
  const hw = overlayHardware(base.hardware, over.hardware, concat(base.hardware?.cpuFlags, over.hardware?.cpuFlags));
  if (hw) out.hardware = hw;
  const ow = concat(base.overwrites, over.overwrites);
  if (ow) out.overwrites = ow;
  return out;
}

function concat<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): readonly T[] | undefined {
  if (a === undefined || a.length === 0) return b;
  if (b === undefined || b.length === 0) return a;
  return [...a, ...b];
}

function overlayLinux(base: LinuxConstraint | undefined, over: LinuxConstraint | undefined) {
  if (over === undefined) return base;
  if (base === undefined) return over;
  const l: { flavor?: string; version?: { min?: string; max?: string } } = {};
  const flavor = over.flavor ?? base.flavor;
  if (flavor !== undefined) l.flavor = flavor;
  const min = over.version?.min ?? base.version?.min;
  const max = over.version?.max ?? base.version?.max;
  if (min !== undefined || max !== undefined) {
    l.version = {};
    if (min !== undefined) l.version.min = min;
    if (max !== undefined) l.version.max = max;
  }
  return l;
}

function overlayHardware(
  base: HardwareConstraint | undefined,
  over: HardwareConstraint | undefined,
  cpuFlags: readonly Selector[] | undefined
): HardwareConstraint | undefined {
  if (over === undefined && base === undefined) return undefined;
  const h: { -readonly [K in keyof HardwareConstraint]: HardwareConstraint[K] } = {};
  if (cpuFlags !== undefined && cpuFlags.length > 0) h.cpuFlags = cpuFlags;
  for (const k of ["processors", "jobs"] as const) {
    const v = over?.[k] ?? base?.[k];
    if (v !== undefined) h[k] = v;
  }
  for (const k of ["disk", "memory", "memoryperjob", "physicalmemory"] as const) {
    const v = over?.[k] ?? base?.[k];
    if (v !== undefined) h[k] = v;
  }
  return h;
}

/**
 * Merges constraint sources, lowest precedence first — call as
 * `mergeConstraints(prjconf, constraintsFile, recipe)`. Later single values (sandbox, linux
 * flavor and version bounds, processors, jobs, sizes) override earlier ones; hostlabels, cpu
 * flags and overwrite blocks append. An include and an exclude sandbox combine as OBS does.
 * Undefined sources are skipped.
 */
export function mergeConstraints(...sources: (Constraints | undefined)[]): Constraints {
  return mergeWith({}, sources);
}

/** {@link mergeConstraints} with options (the secure sandbox set). */
export function mergeWith(opts: ConstraintOptions, sources: readonly (Constraints | undefined)[]): Constraints {
  const secure = opts.secureSandboxes ?? DEFAULT_SECURE_SANDBOXES;
  let out: Constraints = NO_CONSTRAINTS;
  for (const s of sources) if (s !== undefined) out = out === NO_CONSTRAINTS ? s : mergeTwo(out, s, secure);
  return out;
}

/** The (arch, package) a job builds, for `overwrite` conditions. */
export interface OverwriteTarget {
  readonly arch: string;
  readonly package: string;
}

/** Whether an overwrite block applies: listed arch, and package by full name or up to its first `.`. */
export function overwriteApplies(o: Overwrite, target: OverwriteTarget): boolean {
  const c = o.conditions;
  if (c === undefined) return false;
  if (c.arch.length > 0 && !c.arch.includes(target.arch)) return false;
  if (c.package.length > 0) {
    const short = target.package.split(".", 1)[0]!;
    if (!c.package.some((p) => p === target.package || p === short)) return false;
  }
  return true;
}

/**
 * Applies the overwrite blocks of `c` that match `target`, in order, and returns constraints
 * without overwrite blocks. A block's single values replace the base ones, and a list it states
 * (hostlabels, cpu flags) replaces the base list.
 */
export function applyOverwrites(c: Constraints, target: OverwriteTarget): Constraints {
  const { overwrites, ...base } = c;
  if (overwrites === undefined || overwrites.length === 0) return c;
  let out: ConstraintSet = base;
  for (const o of overwrites) {
    if (!overwriteApplies(o, target)) continue;
    const s = o.set;
    const next: { -readonly [K in keyof ConstraintSet]: ConstraintSet[K] } = { ...out };
    if (s.hostlabels !== undefined) next.hostlabels = s.hostlabels;
    if (s.sandbox !== undefined) next.sandbox = s.sandbox;
    const linux = overlayLinux(out.linux, s.linux);
    if (linux !== undefined) next.linux = linux;
    const hw = overlayHardware(out.hardware, s.hardware, s.hardware?.cpuFlags ?? out.hardware?.cpuFlags);
    if (hw !== undefined) next.hardware = hw;
    out = next;
  }
  return out;
}

/** Constraint sources of a job, by where they come from. */
export interface ConstraintSources {
  readonly prjconf?: Constraints;
  readonly file?: Constraints;
  readonly recipe?: Constraints;
}

/**
 * The constraints a job is matched with: each source's overwrite blocks applied for `target`
 * (OBS applies the `_constraints` ones before merging, so the recipe still wins over them), then
 * merged prjconf < `_constraints` < recipe.
 */
export function effectiveConstraints(
  sources: ConstraintSources,
  target: OverwriteTarget,
  opts: ConstraintOptions = {}
): Constraints {
  const layers = [sources.prjconf, sources.file, sources.recipe].map((c) =>
    c === undefined ? undefined : applyOverwrites(c, target)
  );
  return mergeWith(opts, layers);
}

/**
 * Parses and resolves the constraint sources a job carries: prjconf `Constraint:` lines, the
 * package's `_constraints` XML and the recipe's `#!BuildConstraint:` lines.
 *
 * @throws InvalidInputError (or TooLargeError for an oversized file) naming the bad source.
 */
export function constraintsForJob(
  raw: { readonly prjconf?: readonly string[]; readonly file?: string; readonly recipe?: readonly string[] },
  target: OverwriteTarget,
  opts: ConstraintOptions & ParseXmlOptions = {}
): Constraints {
  const sources: { -readonly [K in keyof ConstraintSources]: ConstraintSources[K] } = {};
  if (raw.prjconf !== undefined && raw.prjconf.length > 0) sources.prjconf = parseConstraintLines(raw.prjconf);
  if (raw.file !== undefined && raw.file.trim() !== "") sources.file = parseConstraintsXml(raw.file, opts);
  if (raw.recipe !== undefined && raw.recipe.length > 0) sources.recipe = parseConstraintLines(raw.recipe);
  return effectiveConstraints(sources, target, opts);
}

// ---------------------------------------------------------------------------------------------
// Matching

/** Whether a worker can take a job, and if not, the first requirement it fails. */
export type MatchResult = { readonly ok: true } | { readonly ok: false; readonly blocking: string };

const OK: MatchResult = Object.freeze({ ok: true });

/**
 * One requirement, named as in OBS's mismatch hints (`part` / `part:sub`). `test` is only called
 * when `present` holds.
 */
interface Check {
  readonly part: "hardware" | "hostlabel" | "linux" | "sandbox";
  readonly sub?: string;
  /** The name {@link workerSatisfies} reports (finer than OBS's hint for the version bounds). */
  readonly blocking: string;
  present(c: ConstraintSet): boolean;
  test(w: WorkerCapabilities, c: ConstraintSet, secure: ReadonlySet<string>): boolean;
}

/**
 * Kernel versions compare as OBS's `Build::Rpm::verscmp`: split into epoch, version and release,
 * each compared with rpm's rules; a missing release sorts before any release.
 */
function kernelVersionCompare(a: string, b: string): number {
  const x = parseEvr(a);
  const y = parseEvr(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return rpmvercmp(x.version, y.version) || rpmvercmp(x.release ?? "", y.release ?? "");
}

const hasSelectors = (list: readonly Selector[] | undefined, have: readonly string[]): boolean =>
  (list ?? []).every((s) => have.includes(s.value) !== s.exclude);

// Ordered as OBS's oracle tests them; the first failing one is the `blocking` name.
const CHECKS: readonly Check[] = [
  {
    part: "hostlabel",
    blocking: "hostlabel",
    present: (c) => c.hostlabels !== undefined,
    test: (w, c) => hasSelectors(c.hostlabels, w.hostLabels),
  },
  {
    part: "sandbox",
    blocking: "sandbox",
    present: (c) => c.sandbox !== undefined,
    test: (w, c, secure) => {
      const s = c.sandbox!;
      if (s.exclude) return s.value !== w.sandbox;
      return s.value === "secure" ? secure.has(w.sandbox) : s.value === w.sandbox;
    },
  },
  {
    part: "linux",
    sub: "flavor",
    blocking: "linux:flavor",
    present: (c) => c.linux?.flavor !== undefined,
    test: (w, c) => c.linux!.flavor === (w.linux.flavor ?? ""),
  },
  {
    part: "linux",
    sub: "version",
    blocking: "linux:version:min",
    present: (c) => c.linux?.version?.min !== undefined,
    test: (w, c) => kernelVersionCompare(c.linux!.version!.min!, w.linux.version) <= 0,
  },
  {
    part: "linux",
    sub: "version",
    blocking: "linux:version:max",
    present: (c) => c.linux?.version?.max !== undefined,
    test: (w, c) => kernelVersionCompare(c.linux!.version!.max!, w.linux.version) >= 0,
  },
  {
    part: "hardware",
    sub: "processors",
    blocking: "hardware:processors",
    present: (c) => Boolean(c.hardware?.processors),
    test: (w, c) => c.hardware!.processors! <= w.processors,
  },
  {
    part: "hardware",
    sub: "jobs",
    blocking: "hardware:jobs",
    present: (c) => Boolean(c.hardware?.jobs),
    test: (w, c) => c.hardware!.jobs! <= w.jobs,
  },
  {
    part: "hardware",
    sub: "disk",
    blocking: "hardware:disk",
    present: (c) => c.hardware?.disk !== undefined,
    test: (w, c) => sizeToMb(c.hardware!.disk!) <= w.diskMb,
  },
  {
    part: "hardware",
    sub: "memory",
    blocking: "hardware:memory",
    present: (c) => c.hardware?.memory !== undefined,
    test: (w, c) => sizeToMb(c.hardware!.memory!) <= w.memoryMb + w.swapMb,
  },
  {
    part: "hardware",
    sub: "memoryperjob",
    blocking: "hardware:memoryperjob",
    present: (c) => c.hardware?.memoryperjob !== undefined,
    // A worker that reports no slots counts as one, as in OBS.
    test: (w, c) => sizeToMb(c.hardware!.memoryperjob!) * (w.jobs || 1) <= w.memoryMb + w.swapMb,
  },
  {
    part: "hardware",
    sub: "physicalmemory",
    blocking: "hardware:physicalmemory",
    present: (c) => c.hardware?.physicalmemory !== undefined,
    test: (w, c) => sizeToMb(c.hardware!.physicalmemory!) <= w.memoryMb,
  },
  {
    part: "hardware",
    sub: "cpu",
    blocking: "hardware:cpu",
    present: (c) => c.hardware?.cpuFlags !== undefined,
    test: (w, c) => hasSelectors(c.hardware!.cpuFlags, w.cpuFlags),
  },
];

/**
 * Whether `worker` can build a job of `arch` with constraints `c` (OBS's oracle plus the arch
 * check): all hostlabels present (excluded ones absent), sandbox equal or in the secure set,
 * linux flavor equal and version within min/max (rpm comparison), processors, jobs and disk at
 * least the requirement, memory ≤ memory+swap, memoryperjob × slots ≤ memory+swap,
 * physicalmemory ≤ memory, cpu flags present (excluded ones absent). Overwrite blocks still in
 * `c` are ignored: apply them first ({@link effectiveConstraints}).
 *
 * @returns `{ok: true}`, or the first failing requirement (`arch`, `hostlabel`, `sandbox`,
 *   `linux:flavor`, `linux:version:min`, `linux:version:max`, `hardware:<element>`).
 */
export function workerSatisfies(
  worker: WorkerCapabilities,
  c: Constraints | undefined,
  arch: string,
  opts: ConstraintOptions = {}
): MatchResult {
  if (!canBuildArch(worker, arch)) return { ok: false, blocking: "arch" };
  if (c === undefined) return OK;
  const secure = opts.secureSandboxes ?? DEFAULT_SECURE_SANDBOXES;
  for (const check of CHECKS) {
    if (check.present(c) && !check.test(worker, c, secure)) return { ok: false, blocking: check.blocking };
  }
  return OK;
}

/** A worker as {@link explainNoWorker} sees it. */
export interface WorkerStatus {
  readonly caps: WorkerCapabilities;
  readonly state: "idle" | "building" | "down";
  /** The job already failed on this worker for host reasons (OBS badhost). */
  readonly badhost?: boolean;
}

/** Why a constrained job is not dispatched. */
export type NoWorkerExplanation =
  | {
      /** No worker, in any state, fits: the job fails with `package build was not possible: <detail>`. */
      readonly type: "constraints.none";
      readonly detail: string;
      /** The requirements no worker meets, in OBS's hint form and order. */
      readonly hints: readonly string[];
    }
  | {
      /** Some workers fit but are busy or down: `detail` goes to the job's dispatch details. */
      readonly type: "constraints.waiting";
      readonly detail: string;
      readonly compliant: number;
      readonly down: number;
      readonly bad: number;
      /**
       * More than 5 usable compliant workers and more than half of all qualify: OBS then skips
       * the report and checks again only after 4 hours.
       */
      readonly plenty: boolean;
    };

const STATE_RANK = { idle: 0, building: 1, down: 2 } as const;

/**
 * Checks every worker (idle, building and down) that can build `arch` against `c`, as OBS's
 * `checkconstraints` does for a job no idle worker took. OBS calls it only for jobs with
 * constraints (or badhost entries); an unconstrained job just waits.
 */
export function explainNoWorker(
  workers: readonly WorkerStatus[],
  c: Constraints | undefined,
  arch: string,
  opts: ConstraintOptions = {}
): NoWorkerExplanation {
  const secure = opts.secureSandboxes ?? DEFAULT_SECURE_SANDBOXES;
  // A worker listed twice (idle and building) counts once, in its most available state.
  const byId = new Map<string, WorkerStatus>();
  for (const w of workers) {
    if (!canBuildArch(w.caps, arch)) continue;
    const seen = byId.get(w.caps.workerId);
    if (seen === undefined || STATE_RANK[w.state] < STATE_RANK[seen.state]) byId.set(w.caps.workerId, w);
  }
  const all = [...byId.values()];
  const present = c === undefined ? [] : CHECKS.filter((k) => k.present(c));
  const passes = (w: WorkerCapabilities, checks: readonly Check[]) => checks.every((k) => k.test(w, c!, secure));
  let compliant = 0;
  let down = 0;
  let bad = 0;
  for (const w of all) {
    if (!passes(w.caps, present)) continue;
    compliant++;
    if (w.state === "down") down++;
    else if (w.badhost === true) bad++;
  }
  if (compliant > 0) {
    const good = compliant - down - bad;
    let detail = `waiting for ${compliant} compliant workers`;
    if (down > 0) detail += ` (${down} of them down)`;
    if (bad > 0) detail += ` (${bad} of them bad)`;
    return { type: "constraints.waiting", detail, compliant, down, bad, plenty: good > 5 && good > all.length / 2 };
  }
  const hints = mismatchHints(
    all.map((w) => w.caps),
    present,
    passes
  );
  const detail =
    hints.length > 0 ? `no compliant workers (constraints mismatch hint: ${hints.join(" ")})` : "no compliant workers";
  return { type: "constraints.none", detail, hints };
}

// OBS walks the constraint's top-level elements and, for hardware and linux, their children, in
// sorted order, and names each one that no worker meets on its own.
function mismatchHints(
  workers: readonly WorkerCapabilities[],
  present: readonly Check[],
  passes: (w: WorkerCapabilities, checks: readonly Check[]) => boolean
): string[] {
  const hints: string[] = [];
  const parts = [...new Set(present.map((k) => k.part))].sort();
  for (const part of parts) {
    const checks = present.filter((k) => k.part === part);
    if (workers.some((w) => passes(w, checks))) continue;
    const subs = [...new Set(checks.map((k) => k.sub).filter((s): s is string => s !== undefined))].sort();
    const subHints = subs.filter((sub) => {
      const subChecks = checks.filter((k) => k.sub === sub);
      return !workers.some((w) => passes(w, subChecks));
    });
    if (subHints.length > 0) hints.push(...subHints.map((sub) => `${part}:${sub}`));
    else hints.push(part);
  }
  return hints;
}
