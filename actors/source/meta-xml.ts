/**
 * Project and package `_meta`: the OBS XML documents that say who works on a project, which
 * repositories it builds for, and how its flags are set.
 *
 * Three layers:
 * - **Reading XML safely.** `_meta` comes from users, so it is parsed as hostile input: a size
 *   limit ({@link MAX_META_XML_BYTES}), no DOCTYPE (hence no entity definitions and no entity
 *   expansion — a "billion laughs" document is refused before any parsing), only XML's five
 *   predefined entities and character references, no processing instructions, only characters
 *   XML allows, and well-formedness checked by fast-xml-parser's validator.
 * - **Structure.** Elements and attributes are checked against what OBS's schema (`obs.rng`,
 *   `project.rng`, `package.rng`) allows for the parts kiln supports; anything else is refused by
 *   name rather than silently dropped, so nobody believes a setting took effect when it did not.
 * - **Normalisation.** {@link normaliseProjectMeta} / {@link normalisePackageMeta} check names,
 *   enumerations and duplicates and bring a meta into one canonical form; the renderers write that
 *   form with a fixed element order and indentation. Writing the normalised form again changes
 *   nothing: `render(parse(render(m))) === render(m)`.
 *
 * Checks that need other projects (does a path's project exist? do paths loop?) belong to the
 * source role; {@link findPathLoop} is the pure part of them.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { InvalidInputError, KilnError, TooLargeError } from "../../transport/index.ts";
import { FLAG_NAMES, FlagState } from "../common/flags.ts";
import type { FlagEntry, FlagName, Flags } from "../common/flags.ts";
import {
  quoteForMessage,
  validateArch,
  validateGroupName,
  validatePackageName,
  validateProjectName,
  validateRepositoryName,
  validateUserName,
} from "../common/names.ts";

export type { FlagEntry, Flags, FlagName } from "../common/flags.ts";

/** Largest `_meta` document accepted, in UTF-8 bytes. */
export const MAX_META_XML_BYTES = 1024 * 1024;

/** Roles a person or group can have in a project or package (OBS `local-role`). */
export const PersonRole = {
  Maintainer: "maintainer",
  Bugowner: "bugowner",
  Reviewer: "reviewer",
  Downloader: "downloader",
  Reader: "reader",
} as const;
export type PersonRole = (typeof PersonRole)[keyof typeof PersonRole];

/** Which packages are rebuilt when a package changes (OBS `rebuild-modes`; default transitive). */
export const RebuildMode = {
  Transitive: "transitive",
  Direct: "direct",
  Local: "local",
} as const;
export type RebuildMode = (typeof RebuildMode)[keyof typeof RebuildMode];

/** What a package waits for before it builds (OBS `block-modes`; default all). */
export const BlockMode = {
  All: "all",
  Local: "local",
  Never: "never",
} as const;
export type BlockMode = (typeof BlockMode)[keyof typeof BlockMode];

/** Whether packages reached through project links are built (OBS `linkedbuild-modes`; default off). */
export const LinkedBuildMode = {
  Off: "off",
  LocalDep: "localdep",
  AllDirect: "alldirect",
  AllDirectOrLocalDep: "alldirect_or_localdep",
  All: "all",
} as const;
export type LinkedBuildMode = (typeof LinkedBuildMode)[keyof typeof LinkedBuildMode];

/** Metadata formats of a download-on-demand repository. */
export const DownloadRepoType = {
  Rpmmd: "rpmmd",
  Susetags: "susetags",
  Deb: "deb",
  Arch: "arch",
  Mdk: "mdk",
  Registry: "registry",
  Apk: "apk",
} as const;
export type DownloadRepoType = (typeof DownloadRepoType)[keyof typeof DownloadRepoType];

/** `<person userid= role=/>`. */
export interface PersonEntry {
  userid: string;
  role: PersonRole;
}

/** `<group groupid= role=/>`. */
export interface GroupEntry {
  groupid: string;
  role: PersonRole;
}

/** `<path project= repository=/>`: one repository whose packages this repository builds against. */
export interface PathEntry {
  project: string;
  repository: string;
}

/** `<master url= sslfingerprint=/>` of a download-on-demand source. */
export interface DownloadMaster {
  url: string;
  sslfingerprint?: string;
}

/**
 * `<download arch= url= repotype=>`: an external repository used on demand for one architecture.
 * Kept as written for the download-on-demand feature; nothing reads it yet.
 */
export interface DownloadMeta {
  arch: string;
  url: string;
  repotype: DownloadRepoType;
  /** Comma-separated binary architectures to import. */
  archfilter?: string;
  master?: DownloadMaster;
  /** Armoured GPG public key(s), verbatim. */
  pubkey?: string;
}

/** One `<repository>` of a project. */
export interface RepositoryMeta {
  name: string;
  rebuild?: RebuildMode;
  block?: BlockMode;
  linkedbuild?: LinkedBuildMode;
  downloads: DownloadMeta[];
  /** The repository path, in order: earlier entries win. */
  paths: PathEntry[];
  archs: string[];
}

/** A project's `_meta`. */
export interface ProjectMeta {
  name: string;
  title: string;
  description: string;
  url?: string;
  persons: PersonEntry[];
  groups: GroupEntry[];
  flags: Flags;
  repositories: RepositoryMeta[];
}

/** A package's `_meta`. */
export interface PackageMeta {
  name: string;
  project: string;
  title: string;
  description: string;
  url?: string;
  persons: PersonEntry[];
  groups: GroupEntry[];
  flags: Flags;
}

// ---------------------------------------------------------------------------------------------
// Reading XML safely

/** An element of a parsed document; also read by the `_service` parser (actors/service). */
export interface XmlElement {
  name: string;
  attrs: Map<string, string>;
  children: XmlNode[];
}
export type XmlNode = XmlElement | { text: string };

export function isElement(node: XmlNode): node is XmlElement {
  return "name" in node;
}

// XML 1.0 `Char`: anything else cannot appear in a document, not even as a character reference.
const NON_XML_CHAR =
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const XML_SPACE = /^[ \t\r\n]*$/;
const WRAPPER = "kiln-document";
const MAX_XML_NAME = 64;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  allowBooleanAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  // Entities are decoded by decodeReferences(), which knows only XML's predefined ones.
  processEntities: false,
  htmlEntities: false,
  cdataPropName: "#cdata",
  commentPropName: false,
  ignoreDeclaration: false,
  ignorePiTags: false,
  maxNestedTags: 32,
});

function lineCol(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split("\n").length;
  const col = index - before.lastIndexOf("\n");
  return `line ${line}, column ${col}`;
}

/** Parses `xml` into an element tree with decoded text, refusing everything `_meta` has no use for. */
export function readXml(xml: unknown, what: string): XmlElement {
  if (typeof xml !== "string") throw new InvalidInputError(`${what}: the document must be a string`);
  // Cheap bound first: a string never has more UTF-16 units than its UTF-8 encoding has bytes.
  if (xml.length > MAX_META_XML_BYTES || Buffer.byteLength(xml, "utf8") > MAX_META_XML_BYTES) {
    throw new TooLargeError(`${what}: the document is larger than ${MAX_META_XML_BYTES} bytes`, {
      data: { limit: "meta-xml-bytes", max: MAX_META_XML_BYTES },
    });
  }
  let doc = xml.startsWith("\ufeff") ? xml.slice(1) : xml;
  const badChar = NON_XML_CHAR.exec(doc);
  if (badChar) {
    throw new InvalidInputError(
      `${what}: character U+${badChar[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} ` +
        `at ${lineCol(doc, badChar.index)} is not allowed in XML`
    );
  }
  const decl = /<!(?!--|\[CDATA\[)/.exec(doc);
  if (decl) {
    if (/^<!DOCTYPE/i.test(doc.slice(decl.index, decl.index + 9))) {
      throw new InvalidInputError(
        `${what}: DOCTYPE at ${lineCol(doc, decl.index)} is not allowed (no DTDs, no entity definitions)`
      );
    }
    throw new InvalidInputError(`${what}: markup declaration '<!' at ${lineCol(doc, decl.index)} is not allowed`);
  }
  // XML parsers hand applications LF line ends only (XML 1.0 §2.11).
  doc = doc.replace(/\r\n?/g, "\n");
  const valid = XMLValidator.validate(doc, { allowBooleanAttributes: false });
  if (valid !== true) {
    throw new InvalidInputError(
      `${what}: malformed XML at line ${valid.err.line}, column ${valid.err.col}: ${valid.err.msg}`
    );
  }
  const body = stripDeclaration(doc, what);
  let parsed: unknown;
  try {
    // The wrapper keeps text after the root element visible: the parser drops it at top level.
    parsed = parser.parse(`<${WRAPPER}>${body}</${WRAPPER}>`);
  } catch (err) {
    throw new InvalidInputError(`${what}: malformed XML: ${(err as Error).message}`, { cause: err });
  }
  const top = convertNodes(parsed, what, "document");
  if (top.length !== 1 || !isElement(top[0]!) || top[0].name !== WRAPPER) {
    throw new InvalidInputError(`${what}: malformed XML: content after the root element`);
  }
  let root: XmlElement | undefined;
  for (const node of top[0].children) {
    if (!isElement(node)) {
      if (!XML_SPACE.test(node.text)) throw new InvalidInputError(`${what}: text outside the root element`);
      continue;
    }
    if (root) throw new InvalidInputError(`${what}: more than one root element (<${root.name}> and <${node.name}>)`);
    root = node;
  }
  if (!root) throw new InvalidInputError(`${what}: no root element`);
  return root;
}

function stripDeclaration(doc: string, what: string): string {
  const m = /^<\?xml(\s[^?]*)?\?>/.exec(doc);
  if (!m) return doc;
  const attrRe = /\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/y;
  const tailRe = /\s*$/y;
  const text = m[1] ?? "";
  const seen = new Set<string>();
  let pos = 0;
  for (;;) {
    tailRe.lastIndex = pos;
    if (tailRe.test(text)) break;
    attrRe.lastIndex = pos;
    const a = attrRe.exec(text);
    if (!a) throw new InvalidInputError(`${what}: malformed XML declaration`);
    const [name, value] = [a[1]!, a[2] ?? a[3] ?? ""];
    const known =
      (name === "version" && value === "1.0") ||
      (name === "encoding" && /^(utf-?8|us-ascii)$/i.test(value)) ||
      (name === "standalone" && (value === "yes" || value === "no"));
    if (seen.has(name)) throw new InvalidInputError(`${what}: XML declaration repeats ${name}`);
    if (!known)
      throw new InvalidInputError(`${what}: XML declaration ${name}=${quoteForMessage(value)} is not supported`);
    seen.add(name);
    pos = attrRe.lastIndex;
  }
  return doc.slice(m[0].length);
}

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = Object.freeze({
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
});

/** Decodes character and predefined entity references; any other entity is an error. */
function decodeReferences(raw: string, what: string, where: string): string {
  if (!raw.includes("&")) return raw;
  return raw.replace(/&([#A-Za-z0-9_:.-]*)(;?)/g, (whole, ref: string, semi: string) => {
    if (semi !== ";") throw new InvalidInputError(`${what}: bare '&' in ${where} (write &amp;)`);
    // Own properties only: `&toString;` must not find Object.prototype.toString.
    if (Object.hasOwn(PREDEFINED_ENTITIES, ref)) return PREDEFINED_ENTITIES[ref]!;
    const num = /^#(?:([0-9]{1,7})|x([0-9a-fA-F]{1,6}))$/.exec(ref);
    if (num) {
      const cp = num[1] !== undefined ? parseInt(num[1], 10) : parseInt(num[2]!, 16);
      const ch = cp <= 0x10ffff ? String.fromCodePoint(cp) : "";
      if (ch === "" || (cp >= 0xd800 && cp <= 0xdfff) || NON_XML_CHAR.test(ch)) {
        throw new InvalidInputError(
          `${what}: character reference ${quoteForMessage(whole)} in ${where} is not an XML character`
        );
      }
      return ch;
    }
    throw new InvalidInputError(
      `${what}: entity reference ${quoteForMessage(whole)} in ${where} is not allowed (only &lt; &gt; &amp; &quot; &apos; and character references)`
    );
  });
}

function convertNodes(nodes: unknown, what: string, where: string): XmlNode[] {
  if (!Array.isArray(nodes)) throw new InvalidInputError(`${what}: malformed XML in ${where}`);
  const out: XmlNode[] = [];
  for (const node of nodes as Record<string, unknown>[]) {
    const keys = Object.keys(node).filter((k) => k !== ":@");
    if (keys.length !== 1) throw new InvalidInputError(`${what}: malformed XML in ${where}`);
    const key = keys[0]!;
    const value = node[key];
    // No element kiln knows has a long name; refusing long ones here keeps every later message short.
    if (key.length > MAX_XML_NAME) {
      throw new InvalidInputError(`${what}: element name ${quoteForMessage(key, 40)} in ${where} is too long`);
    }
    if (key === "#text") {
      out.push({ text: decodeReferences(String(value), what, `the text of ${where}`) });
    } else if (key === "#cdata") {
      // CDATA is literal: no references to decode.
      const parts = Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
      out.push({ text: parts.map((p) => String(p["#text"] ?? "")).join("") });
    } else if (key === "?xml") {
      throw new InvalidInputError(
        `${what}: an XML declaration is only allowed at the very start, found one in ${where}`
      );
    } else if (key.startsWith("?")) {
      throw new InvalidInputError(`${what}: processing instruction <${key}?> in ${where} is not allowed`);
    } else {
      const attrs = new Map<string, string>();
      const rawAttrs = (node[":@"] ?? {}) as Record<string, unknown>;
      for (const [name, rawValue] of Object.entries(rawAttrs)) {
        const text = String(rawValue);
        if (text.includes("<")) throw new InvalidInputError(`${what}: '<' in attribute ${name} of <${key}>`);
        // Attribute-value normalisation (XML 1.0 §3.3.3): literal white space becomes a space.
        attrs.set(name, decodeReferences(text.replace(/[\t\n]/g, " "), what, `attribute ${name} of <${key}>`));
      }
      out.push({
        name: key,
        attrs,
        children: convertNodes(value, what, key === WRAPPER ? "the document" : `<${key}>`),
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Structure: element tree → meta (names and values not yet checked)

class Reader {
  constructor(readonly what: string) {}

  fail(where: string, problem: string): never {
    throw new InvalidInputError(`${this.what}: ${problem} in ${where}`);
  }

  describe(el: XmlElement, parent?: string): string {
    const key = el.attrs.get("name");
    const self = key === undefined ? `<${el.name}>` : `<${el.name} name=${quoteForMessage(key, 40)}>`;
    return parent === undefined ? self : `${parent}/${self}`;
  }

  attrs(el: XmlElement, where: string, allowed: readonly string[]): void {
    for (const name of el.attrs.keys()) {
      if (!allowed.includes(name)) this.fail(where, `unknown attribute ${quoteForMessage(name, 40)} of <${el.name}>`);
    }
  }

  required(el: XmlElement, where: string, name: string): string {
    const v = el.attrs.get(name);
    if (v === undefined) this.fail(where, `<${el.name}> lacks the required attribute ${name}`);
    return v;
  }

  /** Child elements; text other than white space between them is an error. */
  elements(el: XmlElement, where: string): XmlElement[] {
    const out: XmlElement[] = [];
    for (const node of el.children) {
      if (isElement(node)) out.push(node);
      else if (!XML_SPACE.test(node.text)) this.fail(where, `unexpected text ${quoteForMessage(node.text.trim(), 40)}`);
    }
    return out;
  }

  /** The text of an element that may not have child elements. */
  text(el: XmlElement, where: string): string {
    let text = "";
    for (const node of el.children) {
      if (isElement(node)) this.fail(where, `unexpected element <${node.name}> inside <${el.name}>`);
      text += node.text;
    }
    return text;
  }

  empty(el: XmlElement, where: string): void {
    const children = this.elements(el, where);
    if (children.length > 0) this.fail(where, `<${el.name}> must be empty, found <${children[0]!.name}>`);
  }

  once(seen: Set<string>, el: XmlElement, where: string): void {
    if (seen.has(el.name)) this.fail(where, `element <${el.name}> appears more than once`);
    seen.add(el.name);
  }

  flagEntries(el: XmlElement, where: string): FlagEntry[] {
    this.attrs(el, where, []);
    const flagWhere = `${where}/<${el.name}>`;
    return this.elements(el, flagWhere).map((child) => this.flagEntry(child, flagWhere));
  }

  flagEntry(el: XmlElement, where: string): FlagEntry {
    if (el.name !== FlagState.Enable && el.name !== FlagState.Disable) {
      this.fail(where, `unknown element <${el.name}> (a flag holds <enable/> and <disable/>)`);
    }
    this.attrs(el, where, ["repository", "arch"]);
    this.empty(el, where);
    const entry: FlagEntry = { state: el.name };
    const repository = el.attrs.get("repository");
    const arch = el.attrs.get("arch");
    if (repository !== undefined) entry.repository = repository;
    if (arch !== undefined) entry.arch = arch;
    return entry;
  }

  person(el: XmlElement, where: string): PersonEntry {
    this.attrs(el, where, ["userid", "role"]);
    this.empty(el, where);
    return { userid: this.required(el, where, "userid"), role: this.required(el, where, "role") as PersonRole };
  }

  group(el: XmlElement, where: string): GroupEntry {
    this.attrs(el, where, ["groupid", "role"]);
    this.empty(el, where);
    return { groupid: this.required(el, where, "groupid"), role: this.required(el, where, "role") as PersonRole };
  }

  /** Handles the children common to project and package; false if `el` is none of them. */
  common(el: XmlElement, where: string, seen: Set<string>, meta: ProjectMeta | PackageMeta): boolean {
    const childWhere = `${where}/<${el.name}>`;
    switch (el.name) {
      case "title":
      case "description":
      case "url": {
        this.once(seen, el, where);
        this.attrs(el, childWhere, []);
        meta[el.name] = this.text(el, childWhere);
        return true;
      }
      case "person":
        meta.persons.push(this.person(el, where));
        return true;
      case "group":
        meta.groups.push(this.group(el, where));
        return true;
    }
    if ((FLAG_NAMES as readonly string[]).includes(el.name)) {
      this.once(seen, el, where);
      meta.flags[el.name as FlagName] = this.flagEntries(el, where);
      return true;
    }
    return false;
  }

  repository(el: XmlElement, parent: string): RepositoryMeta {
    const where = this.describe(el, parent);
    this.attrs(el, where, ["name", "rebuild", "block", "linkedbuild"]);
    const repo: RepositoryMeta = { name: this.required(el, where, "name"), downloads: [], paths: [], archs: [] };
    const rebuild = el.attrs.get("rebuild");
    const block = el.attrs.get("block");
    const linkedbuild = el.attrs.get("linkedbuild");
    if (rebuild !== undefined) repo.rebuild = rebuild as RebuildMode;
    if (block !== undefined) repo.block = block as BlockMode;
    if (linkedbuild !== undefined) repo.linkedbuild = linkedbuild as LinkedBuildMode;
    for (const child of this.elements(el, where)) {
      switch (child.name) {
        case "path":
          this.attrs(child, where, ["project", "repository"]);
          this.empty(child, where);
          repo.paths.push({
            project: this.required(child, where, "project"),
            repository: this.required(child, where, "repository"),
          });
          break;
        case "arch":
          this.attrs(child, where, []);
          repo.archs.push(this.text(child, `${where}/<arch>`));
          break;
        case "download":
          repo.downloads.push(this.download(child, where));
          break;
        default:
          this.fail(where, `unknown element <${child.name}>`);
      }
    }
    return repo;
  }

  download(el: XmlElement, parent: string): DownloadMeta {
    const arch = el.attrs.get("arch");
    const where = `${parent}/<download${arch === undefined ? "" : ` arch=${quoteForMessage(arch, 40)}`}>`;
    this.attrs(el, where, ["arch", "url", "repotype"]);
    const dod: DownloadMeta = {
      arch: this.required(el, where, "arch"),
      url: this.required(el, where, "url"),
      repotype: this.required(el, where, "repotype") as DownloadRepoType,
    };
    const seen = new Set<string>();
    for (const child of this.elements(el, where)) {
      const childWhere = `${where}/<${child.name}>`;
      switch (child.name) {
        case "archfilter":
        case "pubkey":
          this.once(seen, child, where);
          this.attrs(child, childWhere, []);
          dod[child.name] = this.text(child, childWhere);
          break;
        case "master": {
          this.once(seen, child, where);
          this.attrs(child, childWhere, ["url", "sslfingerprint"]);
          this.empty(child, childWhere);
          const master: DownloadMaster = { url: this.required(child, childWhere, "url") };
          const fingerprint = child.attrs.get("sslfingerprint");
          if (fingerprint !== undefined) master.sslfingerprint = fingerprint;
          dod.master = master;
          break;
        }
        default:
          this.fail(where, `unknown element <${child.name}>`);
      }
    }
    return dod;
  }
}

function checkRoot(r: Reader, root: XmlElement, expected: string): void {
  if (root.name !== expected) {
    throw new InvalidInputError(`${r.what}: the root element is <${root.name}>, expected <${expected}>`);
  }
}

/**
 * Parses, checks and normalises a project `_meta`. With `expectName`, the document's
 * `<project name=…>` must equal it. Throws {@link InvalidInputError} naming the element, attribute
 * or value at fault, or {@link TooLargeError} for a document over {@link MAX_META_XML_BYTES}.
 */
export function parseProjectMeta(xml: string, expectName?: string): ProjectMeta {
  const r: Reader = new Reader("project meta");
  const root = readXml(xml, r.what);
  checkRoot(r, root, "project");
  const where = r.describe(root);
  r.attrs(root, where, ["name"]);
  const meta: ProjectMeta = {
    name: r.required(root, where, "name"),
    title: "",
    description: "",
    persons: [],
    groups: [],
    flags: {},
    repositories: [],
  };
  if (expectName !== undefined && meta.name !== expectName) {
    throw new InvalidInputError(
      `project meta: <project name=${quoteForMessage(meta.name)}> does not match the project ${quoteForMessage(expectName)}`
    );
  }
  const seen = new Set<string>();
  for (const el of r.elements(root, where)) {
    if (r.common(el, where, seen, meta)) continue;
    if (el.name === "repository") meta.repositories.push(r.repository(el, where));
    else r.fail(where, `unknown element <${el.name}>`);
  }
  return normaliseProjectMeta(meta);
}

/**
 * Parses, checks and normalises a package `_meta`. `expect.name` must equal `<package name=…>`;
 * `expect.project` must equal `<package project=…>` and is used when the attribute is absent (as
 * in osc's template). The obsolete top-level `<enable/>`/`<disable/>` entries become build-flag
 * entries. Throws as {@link parseProjectMeta} does.
 */
export function parsePackageMeta(xml: string, expect: { project?: string; name?: string } = {}): PackageMeta {
  const r: Reader = new Reader("package meta");
  const root = readXml(xml, r.what);
  checkRoot(r, root, "package");
  const where = r.describe(root);
  r.attrs(root, where, ["name", "project"]);
  const name = r.required(root, where, "name");
  if (expect.name !== undefined && name !== expect.name) {
    throw new InvalidInputError(
      `package meta: <package name=${quoteForMessage(name)}> does not match the package ${quoteForMessage(expect.name)}`
    );
  }
  const projectAttr = root.attrs.get("project");
  if (projectAttr !== undefined && expect.project !== undefined && projectAttr !== expect.project) {
    throw new InvalidInputError(
      `package meta: <package project=${quoteForMessage(projectAttr)}> does not match the project ${quoteForMessage(expect.project)}`
    );
  }
  const project = projectAttr ?? expect.project;
  if (project === undefined) r.fail(where, "<package> lacks the required attribute project");
  const meta: PackageMeta = {
    name,
    project,
    title: "",
    description: "",
    persons: [],
    groups: [],
    flags: {},
  };
  const legacy: FlagEntry[] = [];
  const seen = new Set<string>();
  for (const el of r.elements(root, where)) {
    if (r.common(el, where, seen, meta)) continue;
    if (el.name === FlagState.Enable || el.name === FlagState.Disable) legacy.push(r.flagEntry(el, where));
    else r.fail(where, `unknown element <${el.name}>`);
  }
  if (legacy.length > 0) meta.flags.build = [...legacy, ...(meta.flags.build ?? [])];
  return normalisePackageMeta(meta);
}

// ---------------------------------------------------------------------------------------------
// Normalisation: names, enumerations, duplicates, canonical form

// BSVerify::verify_url: printable ASCII without space, or non-ASCII; and a scheme.
const URL_CHARS = /^[\u0021-\u007e\u0080-\u{10ffff}]+$/u;
const URL_SCHEME = /^[A-Za-z]+:/;
// BSVerify::verify_simple.
const SIMPLE_CHARS = /^[-+=.,0-9:%{}@#A-Z_a-z~\u0080-\u{10ffff}]+$/u;

function isXmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** Trims XML white space only (not U+00A0 and friends). A loop, as a `\s+$` regex is quadratic on long runs of spaces. */
function xmlTrim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isXmlSpace(s.charCodeAt(start))) start++;
  while (end > start && isXmlSpace(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

class Normaliser {
  constructor(readonly what: string) {}

  fail(where: string, problem: string): never {
    throw new InvalidInputError(`${this.what}: ${problem} in ${where}`);
  }

  /** Runs a names.ts validator, adding where the name was found to its message. */
  name(check: (v: unknown) => void, value: unknown, where: string, attr: string): string {
    try {
      check(value);
    } catch (err) {
      if (err instanceof KilnError) {
        throw new InvalidInputError(`${this.what}: attribute ${attr} in ${where}: ${err.message}`, { cause: err });
      }
      throw err;
    }
    return value as string;
  }

  str(value: unknown, where: string, field: string): string {
    if (typeof value !== "string") this.fail(where, `${field} must be a string`);
    if (NON_XML_CHAR.test(value)) this.fail(where, `${field} contains a character that XML cannot represent`);
    return value;
  }

  list<T>(value: unknown, where: string, field: string): T[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) this.fail(where, `${field} must be a list`);
    return value as T[];
  }

  oneOf<T extends string>(value: unknown, values: Record<string, T>, where: string, attr: string): T {
    const allowed = Object.values(values);
    if (typeof value !== "string" || !(allowed as string[]).includes(value)) {
      const shown = typeof value === "string" ? quoteForMessage(value, 40) : typeof value;
      this.fail(where, `attribute ${attr}=${shown} is not one of ${allowed.join(", ")}`);
    }
    return value as T;
  }

  url(value: unknown, where: string, attr: string): string {
    const url = this.str(value, where, `attribute ${attr}`);
    if (!URL_CHARS.test(url))
      this.fail(where, `attribute ${attr}=${quoteForMessage(url, 60)} contains white space or control characters`);
    if (!URL_SCHEME.test(url))
      this.fail(where, `attribute ${attr}=${quoteForMessage(url, 60)} does not start with a scheme`);
    return url;
  }

  /** Trimmed text of an optional element; empty means absent. */
  optText(value: unknown, where: string, field: string): string | undefined {
    if (value === undefined) return undefined;
    const text = xmlTrim(this.str(value, where, field));
    return text === "" ? undefined : text;
  }

  roles<T extends PersonEntry | GroupEntry>(value: unknown, where: string, kind: "person" | "group"): T[] {
    const idAttr = kind === "person" ? "userid" : "groupid";
    const check = kind === "person" ? validateUserName : validateGroupName;
    const seen = new Set<string>();
    return this.list<Record<string, unknown>>(value, where, `${kind}s`).map((raw) => {
      const entryWhere = `${where}/<${kind}>`;
      const id = this.name(check, raw?.[idAttr], entryWhere, idAttr);
      const role = this.oneOf(raw.role, PersonRole, `${where}/<${kind} ${idAttr}=${quoteForMessage(id, 40)}>`, "role");
      const key = `${id}\u0000${role}`;
      if (seen.has(key)) this.fail(where, `${kind} ${quoteForMessage(id)} has the role ${role} more than once`);
      seen.add(key);
      return (kind === "person" ? { userid: id, role } : { groupid: id, role }) as T;
    });
  }

  flags(value: unknown, where: string): Flags {
    if (value === undefined) return {};
    if (typeof value !== "object" || value === null || Array.isArray(value))
      this.fail(where, "flags must be an object");
    const raw = value as Record<string, unknown>;
    for (const key of Object.keys(raw)) {
      if (!(FLAG_NAMES as readonly string[]).includes(key))
        this.fail(where, `unknown flag ${quoteForMessage(key, 40)}`);
    }
    const flags: Flags = {};
    // Written in FLAG_NAMES order whatever order they came in, so equal metas compare equal.
    for (const name of FLAG_NAMES) {
      const entries = this.list<Record<string, unknown>>(raw[name], where, `flag ${name}`).map((e) =>
        this.flagEntry(e, `${where}/<${name}>`)
      );
      if (entries.length > 0) flags[name] = entries;
    }
    return flags;
  }

  flagEntry(raw: Record<string, unknown>, where: string): FlagEntry {
    if (typeof raw !== "object" || raw === null) this.fail(where, "a flag entry must be an object");
    const state = this.oneOf(raw.state, FlagState, where, "state");
    const entry: FlagEntry = { state };
    const entryWhere = `${where}/<${state}>`;
    if (raw.repository !== undefined)
      entry.repository = this.name(validateRepositoryName, raw.repository, entryWhere, "repository");
    if (raw.arch !== undefined) entry.arch = this.name(validateArch, raw.arch, entryWhere, "arch");
    return entry;
  }

  repository(raw: Record<string, unknown>, parent: string): RepositoryMeta {
    if (typeof raw !== "object" || raw === null) this.fail(parent, "a repository must be an object");
    const name = this.name(validateRepositoryName, raw.name, `${parent}/<repository>`, "name");
    const where = `${parent}/<repository name=${quoteForMessage(name, 40)}>`;
    const repo: RepositoryMeta = { name, downloads: [], paths: [], archs: [] };
    if (raw.rebuild !== undefined) repo.rebuild = this.oneOf(raw.rebuild, RebuildMode, where, "rebuild");
    if (raw.block !== undefined) repo.block = this.oneOf(raw.block, BlockMode, where, "block");
    if (raw.linkedbuild !== undefined)
      repo.linkedbuild = this.oneOf(raw.linkedbuild, LinkedBuildMode, where, "linkedbuild");

    const seenPaths = new Set<string>();
    for (const p of this.list<Record<string, unknown>>(raw.paths, where, "paths")) {
      const pathWhere = `${where}/<path>`;
      const project = this.name(validateProjectName, p?.project, pathWhere, "project");
      const repository = this.name(validateRepositoryName, p.repository, pathWhere, "repository");
      const key = `${project}/${repository}`;
      if (seenPaths.has(key)) this.fail(where, `path ${quoteForMessage(key)} is listed more than once`);
      seenPaths.add(key);
      repo.paths.push({ project, repository });
    }

    for (const a of this.list<unknown>(raw.archs, where, "archs")) {
      const arch = this.name(validateArch, typeof a === "string" ? xmlTrim(a) : a, `${where}/<arch>`, "arch");
      if (repo.archs.includes(arch)) this.fail(where, `arch ${quoteForMessage(arch)} is listed more than once`);
      repo.archs.push(arch);
    }

    const dodArchs = new Set<string>();
    for (const d of this.list<Record<string, unknown>>(raw.downloads, where, "downloads")) {
      const dod = this.download(d, where);
      if (!repo.archs.includes(dod.arch)) {
        this.fail(where, `<download arch=${quoteForMessage(dod.arch)}> is for an arch the repository does not build`);
      }
      if (dodArchs.has(dod.arch)) this.fail(where, `more than one <download> for arch ${quoteForMessage(dod.arch)}`);
      dodArchs.add(dod.arch);
      repo.downloads.push(dod);
    }
    return repo;
  }

  download(raw: Record<string, unknown>, parent: string): DownloadMeta {
    if (typeof raw !== "object" || raw === null) this.fail(parent, "a download must be an object");
    const arch = this.name(validateArch, raw.arch, `${parent}/<download>`, "arch");
    const where = `${parent}/<download arch=${quoteForMessage(arch, 40)}>`;
    const dod: DownloadMeta = {
      arch,
      url: this.url(raw.url, where, "url"),
      repotype: this.oneOf(raw.repotype, DownloadRepoType, where, "repotype"),
    };
    const archfilter = this.optText(raw.archfilter, where, "<archfilter>");
    if (archfilter !== undefined) dod.archfilter = archfilter;
    if (raw.master !== undefined) {
      const m = raw.master as Record<string, unknown>;
      if (typeof m !== "object" || m === null) this.fail(where, "master must be an object");
      const master: DownloadMaster = { url: this.url(m.url, `${where}/<master>`, "url") };
      if (m.sslfingerprint !== undefined) {
        const fp = this.str(m.sslfingerprint, `${where}/<master>`, "attribute sslfingerprint");
        if (!SIMPLE_CHARS.test(fp)) {
          this.fail(
            `${where}/<master>`,
            `attribute sslfingerprint=${quoteForMessage(fp, 60)} contains characters other than letters, digits and '-+=.,:%{}@#_~'`
          );
        }
        master.sslfingerprint = fp;
      }
      dod.master = master;
    }
    if (raw.pubkey !== undefined) {
      // Kept verbatim: it is key material, and its line structure matters to gpg.
      const pubkey = this.str(raw.pubkey, where, "<pubkey>");
      if (xmlTrim(pubkey) !== "") dod.pubkey = pubkey;
    }
    return dod;
  }
}

/**
 * Checks a project meta built in code (or decoded from elsewhere) and returns its normalised
 * form: names and enumerations checked, duplicates refused, titles and descriptions trimmed of
 * surrounding white space, empty flags dropped. Parsing already returns this form.
 */
export function normaliseProjectMeta(meta: ProjectMeta): ProjectMeta {
  const n: Normaliser = new Normaliser("project meta");
  const raw = meta as unknown as Record<string, unknown>;
  if (typeof raw !== "object" || raw === null) throw new InvalidInputError("project meta: must be an object");
  const name = n.name(validateProjectName, raw.name, "<project>", "name");
  const where = `<project name=${quoteForMessage(name, 40)}>`;
  const out: ProjectMeta = {
    name,
    title: xmlTrim(n.str(raw.title ?? "", where, "<title>")),
    description: xmlTrim(n.str(raw.description ?? "", where, "<description>")),
    persons: [],
    groups: [],
    flags: {},
    repositories: [],
  };
  const url = n.optText(raw.url, where, "<url>");
  if (url !== undefined) out.url = url;
  out.persons = n.roles<PersonEntry>(raw.persons, where, "person");
  out.groups = n.roles<GroupEntry>(raw.groups, where, "group");
  out.flags = n.flags(raw.flags, where);
  const seen = new Set<string>();
  for (const r of n.list<Record<string, unknown>>(raw.repositories, where, "repositories")) {
    const repo = n.repository(r, where);
    if (seen.has(repo.name)) n.fail(where, `repository ${quoteForMessage(repo.name)} is listed more than once`);
    seen.add(repo.name);
    out.repositories.push(repo);
  }
  return out;
}

/** Checks and normalises a package meta, as {@link normaliseProjectMeta} does for projects. */
export function normalisePackageMeta(meta: PackageMeta): PackageMeta {
  const n: Normaliser = new Normaliser("package meta");
  const raw = meta as unknown as Record<string, unknown>;
  if (typeof raw !== "object" || raw === null) throw new InvalidInputError("package meta: must be an object");
  const name = n.name(validatePackageName, raw.name, "<package>", "name");
  const project = n.name(validateProjectName, raw.project, "<package>", "project");
  const where = `<package name=${quoteForMessage(name, 40)}>`;
  const out: PackageMeta = {
    name,
    project,
    title: xmlTrim(n.str(raw.title ?? "", where, "<title>")),
    description: xmlTrim(n.str(raw.description ?? "", where, "<description>")),
    persons: [],
    groups: [],
    flags: {},
  };
  const url = n.optText(raw.url, where, "<url>");
  if (url !== undefined) out.url = url;
  out.persons = n.roles<PersonEntry>(raw.persons, where, "person");
  out.groups = n.roles<GroupEntry>(raw.groups, where, "group");
  out.flags = n.flags(raw.flags, where);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function escapeText(s: string): string {
  return s.replace(/[&<>\r]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&#13;"));
}

function escapeAttr(s: string): string {
  return s.replace(/[&<>"\t\n\r]/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      default:
        return `&#${c.charCodeAt(0)};`;
    }
  });
}

function attrList(attrs: readonly [string, string | undefined][]): string {
  let out = "";
  for (const [name, value] of attrs) if (value !== undefined) out += ` ${name}="${escapeAttr(value)}"`;
  return out;
}

class Writer {
  private lines: string[] = [];

  empty(depth: number, name: string, attrs: readonly [string, string | undefined][] = []): void {
    this.lines.push(`${"  ".repeat(depth)}<${name}${attrList(attrs)}/>`);
  }

  text(depth: number, name: string, text: string): void {
    const pad = "  ".repeat(depth);
    this.lines.push(text === "" ? `${pad}<${name}/>` : `${pad}<${name}>${escapeText(text)}</${name}>`);
  }

  open(depth: number, name: string, attrs: readonly [string, string | undefined][] = []): void {
    this.lines.push(`${"  ".repeat(depth)}<${name}${attrList(attrs)}>`);
  }

  close(depth: number, name: string): void {
    this.lines.push(`${"  ".repeat(depth)}</${name}>`);
  }

  toString(): string {
    return this.lines.join("\n") + "\n";
  }
}

function writeCommon(w: Writer, meta: ProjectMeta | PackageMeta): void {
  w.text(1, "title", meta.title);
  w.text(1, "description", meta.description);
  if (meta.url !== undefined) w.text(1, "url", meta.url);
  for (const p of meta.persons)
    w.empty(1, "person", [
      ["userid", p.userid],
      ["role", p.role],
    ]);
  for (const g of meta.groups)
    w.empty(1, "group", [
      ["groupid", g.groupid],
      ["role", g.role],
    ]);
  for (const name of FLAG_NAMES) {
    const entries = meta.flags[name];
    if (!entries || entries.length === 0) continue;
    w.open(1, name);
    for (const e of entries)
      w.empty(2, e.state, [
        ["repository", e.repository],
        ["arch", e.arch],
      ]);
    w.close(1, name);
  }
}

function writeRepository(w: Writer, repo: RepositoryMeta): void {
  const attrs: [string, string | undefined][] = [
    ["name", repo.name],
    ["rebuild", repo.rebuild],
    ["block", repo.block],
    ["linkedbuild", repo.linkedbuild],
  ];
  if (repo.downloads.length + repo.paths.length + repo.archs.length === 0) {
    w.empty(1, "repository", attrs);
    return;
  }
  w.open(1, "repository", attrs);
  for (const d of repo.downloads) {
    const dAttrs: [string, string | undefined][] = [
      ["arch", d.arch],
      ["url", d.url],
      ["repotype", d.repotype],
    ];
    if (d.archfilter === undefined && d.master === undefined && d.pubkey === undefined) {
      w.empty(2, "download", dAttrs);
      continue;
    }
    w.open(2, "download", dAttrs);
    if (d.archfilter !== undefined) w.text(3, "archfilter", d.archfilter);
    if (d.master !== undefined) {
      w.empty(3, "master", [
        ["url", d.master.url],
        ["sslfingerprint", d.master.sslfingerprint],
      ]);
    }
    if (d.pubkey !== undefined) w.text(3, "pubkey", d.pubkey);
    w.close(2, "download");
  }
  for (const p of repo.paths)
    w.empty(2, "path", [
      ["project", p.project],
      ["repository", p.repository],
    ]);
  for (const a of repo.archs) w.text(2, "arch", a);
  w.close(1, "repository");
}

/** Writes a project meta in normalised form (checking it first, as {@link normaliseProjectMeta}). */
export function renderProjectMeta(meta: ProjectMeta): string {
  const m = normaliseProjectMeta(meta);
  const w = new Writer();
  w.open(0, "project", [["name", m.name]]);
  writeCommon(w, m);
  for (const repo of m.repositories) writeRepository(w, repo);
  w.close(0, "project");
  return w.toString();
}

/** Writes a package meta in normalised form (checking it first, as {@link normalisePackageMeta}). */
export function renderPackageMeta(meta: PackageMeta): string {
  const m = normalisePackageMeta(meta);
  const w = new Writer();
  w.open(0, "package", [
    ["name", m.name],
    ["project", m.project],
  ]);
  writeCommon(w, m);
  w.close(0, "package");
  return w.toString();
}

// ---------------------------------------------------------------------------------------------
// Repository paths

/**
 * Follows the repository path of `project`/`repository` through every repository it reaches and
 * describes the first problem found: a path entry naming a project `getRepos` does not know, a
 * repository that project does not have, or a loop (a repository that reaches itself). Returns
 * undefined when the whole path graph is sound. `getRepos` returns a project's repositories, or
 * undefined if there is no such project; the caller passes the meta about to be stored for the
 * project being changed.
 */
export function findPathLoop(
  getRepos: (project: string) => readonly RepositoryMeta[] | undefined,
  project: string,
  repository: string
): string | undefined {
  const key = (p: string, r: string): string => `${p}/${r}`;
  const lookup = (p: string, r: string): RepositoryMeta | string => {
    const repos = getRepos(p);
    if (repos === undefined) return `project ${quoteForMessage(p)} does not exist`;
    return repos.find((x) => x.name === r) ?? `project ${quoteForMessage(p)} has no repository ${quoteForMessage(r)}`;
  };
  const start = lookup(project, repository);
  if (typeof start === "string") return start;

  // Iterative depth-first search: path graphs can be deep, and the call stack is not.
  const done = new Set<string>();
  const onStack = new Map<string, number>();
  const stack: { key: string; repo: RepositoryMeta; next: number }[] = [];
  const push = (p: string, repo: RepositoryMeta): void => {
    const k = key(p, repo.name);
    onStack.set(k, stack.length);
    stack.push({ key: k, repo, next: 0 });
  };
  push(project, start);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const edge = frame.repo.paths[frame.next++];
    if (edge === undefined) {
      stack.pop();
      onStack.delete(frame.key);
      done.add(frame.key);
      continue;
    }
    const k = key(edge.project, edge.repository);
    if (done.has(k)) continue;
    const at = onStack.get(k);
    if (at !== undefined) {
      const cycle = [...stack.slice(at).map((f) => f.key), k];
      return `repository path loop: ${cycle.join(" -> ")}`;
    }
    const target = lookup(edge.project, edge.repository);
    if (typeof target === "string") return `${target} (path of ${frame.key})`;
    push(edge.project, target);
  }
  return undefined;
}

/**
 * The expanded path of `project`/`repository` as OBS's scheduler and source server build it
 * (`expandsearchpath`): the repository itself, then its path entries in order, and then, again
 * and again, the path of whatever is last in the list so far. Only the last component is
 * followed: the paths of earlier entries are not part of the result (a project that builds
 * against `a/x` and `b/y` gets `b/y`'s base, not `a/x`'s). Each repository appears once, at its
 * first place; a repository is expanded at most once, which also ends loops. Repositories
 * `getRepos` does not know are kept and expand to nothing.
 */
export function expandRepositoryPath(
  getRepos: (project: string) => readonly RepositoryMeta[] | undefined,
  project: string,
  repository: string
): PathEntry[] {
  const pathOf = (p: string, r: string): readonly PathEntry[] => getRepos(p)?.find((x) => x.name === r)?.paths ?? [];
  const out: PathEntry[] = [];
  const listed = new Set<string>();
  const expanded = new Set<string>();
  const queue: PathEntry[] = [{ project, repository }, ...pathOf(project, repository)];
  for (let i = 0; i < queue.length; i++) {
    const e = queue[i]!;
    const k = `${e.project}\u0000${e.repository}`;
    if (!listed.has(k)) {
      listed.add(k);
      out.push({ project: e.project, repository: e.repository });
    }
    if (i !== queue.length - 1) continue;
    if (expanded.has(k)) break;
    expanded.add(k);
    queue.push(...pathOf(e.project, e.repository));
  }
  return out;
}
