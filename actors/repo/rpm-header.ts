/**
 * Reads what the repo role needs from an RPM's headers, natively and without rpm(8).
 *
 * An RPM file is a 96-byte lead, a signature header (padded to 8 bytes), the main header, then
 * the payload. Only the first three are read, with a handful of positioned reads: the payload is
 * never touched, whatever the file's size. Files come from workers, so they are untrusted: every
 * count, offset and length is checked against fixed limits and against the bytes actually
 * present before anything is allocated or decoded, and anything malformed, truncated or oversized
 * ends in an {@link InvalidInputError} that names the problem.
 *
 * The result is shaped the way obs-build's `Build::Rpm::query($file, evra => 1, conflicts => 1,
 * weakdeps => 1)` shapes it, because OBS's bininfo, the scheduler's dependency expansion and the
 * meta comparison are all defined on that shape:
 * - dependencies are `name`, or `name OP evr` with OP built from the sense bits in the order
 *   `<`, `>`, `=` (so `<=`, `>=`), appended only when a comparison bit is set and a version exists;
 * - `rpmlib(…)` and file (`/…`) provides and requires are dropped; conflicts, obsoletes and weak
 *   dependencies are kept as they are;
 * - a binary package whose provides do not end with its own `name = evr` gets it appended (rpm 3
 *   compatibility; modern rpm sorts the self-provide first, so it usually appears twice);
 * - `source` is the source package *name* derived from SOURCERPM, and source packages get the
 *   arch `src` (or `nosrc`);
 * - `hdrmd5` is the signature header's MD5 tag (OBS's name for it: it is rpm's legacy digest over
 *   header and payload), and `leadsigmd5` the MD5 of the lead plus padded signature header.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { InvalidInputError } from "../../transport/index.ts";

/** What kiln keeps of an RPM header; see the module comment for the exact formatting rules. */
export interface RpmHeaderInfo {
  name: string;
  /** Present exactly when the header has an EPOCH tag (also when it is 0). */
  epoch?: number;
  version: string;
  release: string;
  /** The package arch; `src` or `nosrc` for source packages, whatever their header says. */
  arch: string;
  isSource: boolean;
  /** The SOURCERPM tag as stored (`foo-1.0-1.src.rpm`); absent for source packages. */
  sourceRpm?: string;
  /**
   * The source package name (OBS's `source`): SOURCERPM without `-version-release.arch.rpm`, or
   * the package's own name when a binary package names no source. Absent for source packages.
   */
  source?: string;
  provides: string[];
  requires: string[];
  conflicts: string[];
  obsoletes: string[];
  recommends?: string[];
  suggests?: string[];
  supplements?: string[];
  enhances?: string[];
  /** Hex MD5 from the signature header; see {@link ReadRpmHeaderOptions} for packages without one. */
  hdrmd5: string;
  /** Hex MD5 of the lead and the padded signature header (OBS bininfo `leadsigmd5`). */
  leadsigmd5: string;
  buildTime?: number;
  /** Installed size in bytes (LONGSIZE, else SIZE). */
  size?: number;
  distUrl?: string;
}

/** Limits for untrusted files; the defaults accept every package rpm itself would write. */
export interface ReadRpmHeaderOptions {
  /**
   * Largest index entry count accepted in either header.
   * @default 65535 (rpm's own limit)
   */
  maxIndexEntries?: number;
  /**
   * Largest data store accepted in either header, in bytes.
   * @default 67108864 (64 MiB)
   */
  maxDataBytes?: number;
}

const DEFAULT_MAX_INDEX_ENTRIES = 65535;
const DEFAULT_MAX_DATA_BYTES = 64 * 1024 * 1024;

const LEAD_SIZE = 96;
const INTRO_SIZE = 16;
const ENTRY_SIZE = 16;
const LEAD_MAGIC = 0xedabeedb;
const HEADER_MAGIC = 0x8eade801;
/** Lead signature type "header-style signature", the only one rpm has written for decades. */
const SIGTYPE_HEADERSIG = 5;
const LEAD_TYPE_SOURCE = 1;

const TagType = {
  Null: 0,
  Char: 1,
  Int8: 2,
  Int16: 3,
  Int32: 4,
  Int64: 5,
  String: 6,
  Bin: 7,
  StringArray: 8,
  I18nString: 9,
} as const;

const SIGTAG_MD5 = 1004;

const Tag = {
  Name: 1000,
  Version: 1001,
  Release: 1002,
  Epoch: 1003,
  BuildTime: 1006,
  Size: 1009,
  Arch: 1022,
  SourceRpm: 1044,
  ProvideName: 1047,
  RequireFlags: 1048,
  RequireName: 1049,
  RequireVersion: 1050,
  NoSource: 1051,
  NoPatch: 1052,
  ConflictFlags: 1053,
  ConflictName: 1054,
  ConflictVersion: 1055,
  ObsoleteName: 1090,
  SourcePackage: 1106,
  ProvideFlags: 1112,
  ProvideVersion: 1113,
  ObsoleteFlags: 1114,
  ObsoleteVersion: 1115,
  DistUrl: 1123,
  OldSuggestsName: 1156,
  OldSuggestsVersion: 1157,
  OldSuggestsFlags: 1158,
  OldEnhancesName: 1159,
  OldEnhancesVersion: 1160,
  OldEnhancesFlags: 1161,
  LongSize: 5009,
  RecommendName: 5046,
  RecommendVersion: 5047,
  RecommendFlags: 5048,
  SuggestName: 5049,
  SuggestVersion: 5050,
  SuggestFlags: 5051,
  SupplementName: 5052,
  SupplementVersion: 5053,
  SupplementFlags: 5054,
  EnhanceName: 5055,
  EnhanceVersion: 5056,
  EnhanceFlags: 5057,
} as const;

const SENSE_LESS = 0x2;
const SENSE_GREATER = 0x4;
const SENSE_EQUAL = 0x8;
const SENSE_COMPARE = SENSE_LESS | SENSE_GREATER | SENSE_EQUAL;
/** In the pre-4.12 SUGGESTS/ENHANCES tags this bit told strong (recommends) from weak. */
const SENSE_STRONG = 0x8000000;

/** Random access to the bytes of a (possibly huge) file, without reading all of it. */
interface ByteSource {
  readonly label: string;
  readonly size: number;
  read(position: number, length: number): Promise<Uint8Array>;
}

function malformed(label: string, problem: string, data?: Record<string, unknown>): InvalidInputError {
  return new InvalidInputError(`${label}: not a valid rpm: ${problem}`, { data: { file: label, ...data } });
}

interface IndexEntry {
  type: number;
  offset: number;
  count: number;
}

/** One parsed header structure: the index (tag → entry) and its data store, all bounds-checked. */
class HeaderBlob {
  private readonly entries = new Map<number, IndexEntry>();
  private readonly text = new TextDecoder("utf-8");

  constructor(
    private readonly label: string,
    private readonly what: string,
    private readonly index: Uint8Array,
    private readonly data: Uint8Array
  ) {
    const view = new DataView(index.buffer, index.byteOffset, index.byteLength);
    for (let i = 0; i + ENTRY_SIZE <= index.byteLength; i += ENTRY_SIZE) {
      const tag = view.getUint32(i);
      const type = view.getUint32(i + 4);
      const offset = view.getUint32(i + 8);
      const count = view.getUint32(i + 12);
      if (type > TagType.I18nString) throw this.bad(`tag ${tag} has unknown type ${type}`);
      if (offset > data.byteLength) throw this.bad(`tag ${tag} points outside the data store`);
      // Later duplicates win, as in obs-build's reader.
      this.entries.set(tag, { type, offset, count });
    }
  }

  private bad(problem: string): InvalidInputError {
    return malformed(this.label, `${this.what}: ${problem}`);
  }

  has(tag: number): boolean {
    return this.entries.has(tag);
  }

  /** NUL-terminated string starting at `offset`; the terminator must lie inside the data store. */
  private cString(tag: number, offset: number): { value: string; next: number } {
    const end = this.data.indexOf(0, offset);
    if (end < 0) throw this.bad(`tag ${tag}: string runs past the data store`);
    return { value: this.text.decode(this.data.subarray(offset, end)), next: end + 1 };
  }

  strings(tag: number): string[] | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    if (e.type === TagType.String) return [this.cString(tag, e.offset).value];
    if (e.type !== TagType.StringArray && e.type !== TagType.I18nString) {
      throw this.bad(`tag ${tag} should hold strings but has type ${e.type}`);
    }
    // Every string takes at least its terminator, so a larger count cannot be honest; checking
    // first keeps a forged count from driving the loop or the allocation.
    if (e.count > this.data.byteLength - e.offset) throw this.bad(`tag ${tag}: count ${e.count} exceeds its data`);
    const out: string[] = new Array<string>(e.count);
    let pos = e.offset;
    for (let i = 0; i < e.count; i++) {
      const s = this.cString(tag, pos);
      out[i] = s.value;
      pos = s.next;
    }
    return out;
  }

  string(tag: number): string | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    const all = this.strings(tag)!;
    return all[0];
  }

  ints(tag: number): number[] | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    const width =
      e.type === TagType.Int32
        ? 4
        : e.type === TagType.Int16
          ? 2
          : e.type === TagType.Int8 || e.type === TagType.Char
            ? 1
            : e.type === TagType.Int64
              ? 8
              : 0;
    if (width === 0) throw this.bad(`tag ${tag} should hold integers but has type ${e.type}`);
    if (e.count > (this.data.byteLength - e.offset) / width) {
      throw this.bad(`tag ${tag}: ${e.count} integers do not fit in the data store`);
    }
    const view = new DataView(this.data.buffer, this.data.byteOffset + e.offset, e.count * width);
    const out: number[] = new Array<number>(e.count);
    for (let i = 0; i < e.count; i++) {
      const at = i * width;
      out[i] =
        width === 4
          ? view.getUint32(at)
          : width === 2
            ? view.getUint16(at)
            : width === 1
              ? view.getUint8(at)
              : Number(view.getBigUint64(at));
    }
    return out;
  }

  int(tag: number): number | undefined {
    return this.ints(tag)?.[0];
  }

  bin(tag: number): Uint8Array | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    if (e.type !== TagType.Bin) throw this.bad(`tag ${tag} should hold binary data but has type ${e.type}`);
    if (e.count > this.data.byteLength - e.offset) throw this.bad(`tag ${tag}: ${e.count} bytes exceed its data`);
    return this.data.subarray(e.offset, e.offset + e.count);
  }
}

interface Limits {
  maxIndexEntries: number;
  maxDataBytes: number;
}

function limitsOf(options: ReadRpmHeaderOptions | undefined): Limits {
  return {
    maxIndexEntries: options?.maxIndexEntries ?? DEFAULT_MAX_INDEX_ENTRIES,
    maxDataBytes: options?.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES,
  };
}

async function readExactly(src: ByteSource, position: number, length: number, what: string): Promise<Uint8Array> {
  if (position + length > src.size) {
    throw malformed(src.label, `truncated ${what} (needs ${position + length} bytes, file has ${src.size})`, {
      needed: position + length,
      size: src.size,
    });
  }
  const bytes = await src.read(position, length);
  if (bytes.byteLength !== length) throw malformed(src.label, `truncated ${what} (file shrank while being read)`);
  return bytes;
}

/**
 * Reads one header structure at `position`. The signature header's data store is padded to a
 * multiple of 8 bytes on disk; `stored` includes that padding, `raw` does not.
 */
async function readHeaderAt(
  src: ByteSource,
  position: number,
  what: string,
  limits: Limits,
  padData: boolean
): Promise<{ blob: HeaderBlob; raw: Uint8Array; stored: Uint8Array; end: number }> {
  const intro = await readExactly(src, position, INTRO_SIZE, `${what} intro`);
  const view = new DataView(intro.buffer, intro.byteOffset, intro.byteLength);
  if (view.getUint32(0) !== HEADER_MAGIC) throw malformed(src.label, `bad ${what} magic`);
  const entries = view.getUint32(8);
  const dataBytes = view.getUint32(12);
  if (entries > limits.maxIndexEntries) {
    throw malformed(src.label, `${what} has ${entries} index entries (limit ${limits.maxIndexEntries})`, { entries });
  }
  if (dataBytes > limits.maxDataBytes) {
    throw malformed(src.label, `${what} data store of ${dataBytes} bytes (limit ${limits.maxDataBytes})`, {
      dataBytes,
    });
  }
  const indexBytes = entries * ENTRY_SIZE;
  const storedData = padData ? (dataBytes + 7) & ~7 : dataBytes;
  // Both sizes are bounded now, and readExactly checks them against the file before allocating.
  const stored = await readExactly(src, position, INTRO_SIZE + indexBytes + storedData, what);
  const raw = stored.subarray(0, INTRO_SIZE + indexBytes + dataBytes);
  const index = raw.subarray(INTRO_SIZE, INTRO_SIZE + indexBytes);
  const data = raw.subarray(INTRO_SIZE + indexBytes);
  return { blob: new HeaderBlob(src.label, what, index, data), raw, stored, end: position + stored.byteLength };
}

function md5hex(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

/** Joins names with their sense flags and versions the way obs-build prints dependencies. */
function formatDeps(
  names: string[] | undefined,
  flags: number[] | undefined,
  versions: string[] | undefined
): string[] {
  if (!names) return [];
  const out: string[] = new Array<string>(names.length);
  for (let i = 0; i < names.length; i++) {
    const f = flags !== undefined && i < flags.length ? flags[i]! : 0;
    let dep = names[i]!;
    if (f & SENSE_COMPARE && versions !== undefined && i < versions.length) {
      dep += ` ${f & SENSE_LESS ? "<" : ""}${f & SENSE_GREATER ? ">" : ""}${f & SENSE_EQUAL ? "=" : ""} ${versions[i]}`;
    }
    out[i] = dep;
  }
  return out;
}

function notRpmlibOrFile(dep: string): boolean {
  return !dep.startsWith("rpmlib(") && !dep.startsWith("/");
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Pulls the fields out of the two parsed headers, applying obs-build's query rules. */
function interpret(label: string, leadType: number, sig: HeaderBlob, main: HeaderBlob, mainRaw: Uint8Array) {
  const name = main.string(Tag.Name);
  const version = main.string(Tag.Version);
  const release = main.string(Tag.Release);
  if (!name) throw malformed(label, "no NAME tag");
  if (version === undefined) throw malformed(label, "no VERSION tag");
  if (release === undefined) throw malformed(label, "no RELEASE tag");
  const epoch = main.int(Tag.Epoch);

  let sourceRpm = main.string(Tag.SourceRpm);
  // rpm itself reports "(none)" for a binary package (by its lead) that names no source.
  if (sourceRpm === undefined && leadType !== LEAD_TYPE_SOURCE && !main.has(Tag.SourcePackage)) sourceRpm = "(none)";
  const src = (sourceRpm ?? "").replace(/-[^-]*-[^-]*\.[^.]*\.rpm/, "");
  const isSource = src === "";

  const provides = formatDeps(
    main.strings(Tag.ProvideName),
    main.ints(Tag.ProvideFlags),
    main.strings(Tag.ProvideVersion)
  ).filter(notRpmlibOrFile);
  const requires = formatDeps(
    main.strings(Tag.RequireName),
    main.ints(Tag.RequireFlags),
    main.strings(Tag.RequireVersion)
  ).filter(notRpmlibOrFile);
  const conflicts = formatDeps(
    main.strings(Tag.ConflictName),
    main.ints(Tag.ConflictFlags),
    main.strings(Tag.ConflictVersion)
  );
  const obsoletes = formatDeps(
    main.strings(Tag.ObsoleteName),
    main.ints(Tag.ObsoleteFlags),
    main.strings(Tag.ObsoleteVersion)
  );

  const weak: Partial<Record<"recommends" | "suggests" | "supplements" | "enhances", string[]>> = {};
  const weakTags = [
    ["recommends", Tag.RecommendName, Tag.RecommendFlags, Tag.RecommendVersion],
    ["suggests", Tag.SuggestName, Tag.SuggestFlags, Tag.SuggestVersion],
    ["supplements", Tag.SupplementName, Tag.SupplementFlags, Tag.SupplementVersion],
    ["enhances", Tag.EnhanceName, Tag.EnhanceFlags, Tag.EnhanceVersion],
  ] as const;
  for (const [key, n, f, v] of weakTags) {
    if (main.has(n)) weak[key] = formatDeps(main.strings(n), main.ints(f), main.strings(v));
  }
  // Packages from rpm < 4.12 keep weak deps in two old tags, split by the "strong" bit; like
  // obs-build, these replace whatever the new tags gave.
  const oldWeak = [
    [Tag.OldSuggestsName, Tag.OldSuggestsFlags, Tag.OldSuggestsVersion, "recommends", "suggests"],
    [Tag.OldEnhancesName, Tag.OldEnhancesFlags, Tag.OldEnhancesVersion, "supplements", "enhances"],
  ] as const;
  for (const [n, f, v, strongKey, weakKey] of oldWeak) {
    if (!main.has(n)) continue;
    const flags = main.ints(f) ?? [];
    const deps = formatDeps(main.strings(n), flags, main.strings(v));
    const strong = deps.filter((_, i) => i < flags.length && (flags[i]! & SENSE_STRONG) !== 0);
    const plain = deps.filter((_, i) => !(i < flags.length && (flags[i]! & SENSE_STRONG) !== 0));
    if (strong.length > 0) weak[strongKey] = strong;
    if (plain.length > 0) weak[weakKey] = plain;
  }

  if (!isSource) {
    const self = new RegExp(`^${escapeRegExp(name)} =`);
    const n = provides.length;
    const hasSelf = (n > 0 && self.test(provides[n - 1]!)) || (n > 1 && self.test(provides[n - 2]!));
    if (!hasSelf) provides.push(`${name} = ${epoch ? `${epoch}:` : ""}${version}-${release}`);
  }

  let arch: string;
  if (isSource) {
    arch = main.has(Tag.NoSource) || main.has(Tag.NoPatch) ? "nosrc" : "src";
  } else {
    const a = main.string(Tag.Arch);
    if (!a) throw malformed(label, "no ARCH tag");
    arch = a;
  }

  const md5 = sig.has(SIGTAG_MD5) ? sig.bin(SIGTAG_MD5) : undefined;
  // rpm >= 6 no longer writes the MD5 digest; an MD5 of the main header still identifies the
  // build (the header holds every file's digest), so it stands in for the missing one.
  const hdrmd5 = md5 !== undefined && md5.byteLength === 16 ? Buffer.from(md5).toString("hex") : md5hex(mainRaw);

  const info: Omit<RpmHeaderInfo, "leadsigmd5"> = {
    name,
    version,
    release,
    arch,
    isSource,
    provides,
    requires,
    conflicts,
    obsoletes,
    ...weak,
    hdrmd5,
  };
  if (epoch !== undefined) info.epoch = epoch;
  if (!isSource) {
    if (sourceRpm !== undefined && sourceRpm !== "(none)") info.sourceRpm = sourceRpm;
    info.source = src === "(none)" ? name : src;
  }
  const buildTime = main.int(Tag.BuildTime);
  if (buildTime !== undefined) info.buildTime = buildTime;
  const size = main.int(Tag.LongSize) ?? main.int(Tag.Size);
  if (size !== undefined) info.size = size;
  const distUrl = main.string(Tag.DistUrl);
  if (distUrl !== undefined) info.distUrl = distUrl;
  return info;
}

async function readFrom(src: ByteSource, options?: ReadRpmHeaderOptions): Promise<RpmHeaderInfo> {
  const limits = limitsOf(options);
  const lead = await readExactly(src, 0, LEAD_SIZE, "lead");
  const leadView = new DataView(lead.buffer, lead.byteOffset, lead.byteLength);
  if (leadView.getUint32(0) !== LEAD_MAGIC) throw malformed(src.label, "bad lead magic");
  if (leadView.getUint16(78) !== SIGTYPE_HEADERSIG) {
    throw malformed(src.label, `unsupported signature type ${leadView.getUint16(78)}`);
  }
  const leadType = leadView.getUint16(6);
  const sig = await readHeaderAt(src, LEAD_SIZE, "signature header", limits, true);
  const main = await readHeaderAt(src, sig.end, "main header", limits, false);
  const leadsig = new Uint8Array(sig.end);
  leadsig.set(lead, 0);
  leadsig.set(sig.stored, LEAD_SIZE);
  return { ...interpret(src.label, leadType, sig.blob, main.blob, main.raw), leadsigmd5: md5hex(leadsig) };
}

/**
 * Reads the headers of the RPM at `path` (never its payload) and returns them in obs-build's
 * query shape.
 *
 * @throws InvalidInputError if the file is not a regular file, not an rpm, truncated, oversized
 *   or otherwise malformed. File system errors (missing file, permissions) are passed through.
 */
export async function readRpmHeader(path: string, options?: ReadRpmHeaderOptions): Promise<RpmHeaderInfo> {
  const fh = await open(path, "r");
  try {
    const st = await fh.stat();
    // A FIFO or device could block forever or never end.
    if (!st.isFile()) throw malformed(path, "not a regular file");
    return await readFrom(
      {
        label: path,
        size: st.size,
        async read(position, length) {
          const buf = new Uint8Array(length);
          let done = 0;
          while (done < length) {
            const { bytesRead } = await fh.read(buf, done, length - done, position + done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
          return done === length ? buf : buf.subarray(0, done);
        },
      },
      options
    );
  } finally {
    await fh.close();
  }
}

/**
 * Like {@link readRpmHeader}, for an rpm (or its leading part, at least up to the end of the
 * main header) already in memory.
 *
 * @throws InvalidInputError if the bytes are not a well-formed rpm header.
 */
export async function parseRpmHeader(
  bytes: Uint8Array,
  options?: ReadRpmHeaderOptions & { label?: string }
): Promise<RpmHeaderInfo> {
  return readFrom(
    {
      label: options?.label ?? "<buffer>",
      size: bytes.byteLength,
      read: (position, length) => Promise.resolve(bytes.subarray(position, position + length)),
    },
    options
  );
}
