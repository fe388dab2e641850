import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { parseRpmHeader } from "../../../actors/repo/rpm-header.ts";
import { InvalidInputError } from "../../../transport/index.ts";

// Synthetic packages, written here byte by byte from the file format (lead, signature header
// padded to 8 bytes, main header), so every field and every kind of damage can be chosen.

const T = { Int32: 4, Int64: 5, String: 6, Bin: 7, StringArray: 8 } as const;

interface Entry {
  tag: number;
  type: number;
  value: string | string[] | number[] | Uint8Array;
  /** Overrides the count written to the index. */
  count?: number;
  /** Overrides the offset written to the index. */
  offset?: number;
}

const enc = new TextEncoder();

function header(entries: Entry[], opts: { magic?: number; entries?: number; dataBytes?: number } = {}): Uint8Array {
  const data: number[] = [];
  const index: number[][] = [];
  for (const e of entries) {
    let offset = data.length;
    let count: number;
    if (e.type === T.Int32) {
      while (data.length % 4) data.push(0);
      offset = data.length;
      const nums = e.value as number[];
      for (const n of nums) data.push((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
      count = nums.length;
    } else if (e.type === T.Int64) {
      while (data.length % 8) data.push(0);
      offset = data.length;
      const nums = e.value as number[];
      for (const n of nums) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(n));
        data.push(...b);
      }
      count = nums.length;
    } else if (e.type === T.Bin) {
      const bytes = e.value as Uint8Array;
      data.push(...bytes);
      count = bytes.length;
    } else {
      const strs = typeof e.value === "string" ? [e.value] : (e.value as string[]);
      for (const s of strs) data.push(...enc.encode(s), 0);
      count = strs.length;
    }
    index.push([e.tag, e.type, e.offset ?? offset, e.count ?? count]);
  }
  const out = Buffer.alloc(16 + index.length * 16 + data.length);
  out.writeUInt32BE(opts.magic ?? 0x8eade801, 0);
  out.writeUInt32BE(opts.entries ?? index.length, 8);
  out.writeUInt32BE(opts.dataBytes ?? data.length, 12);
  index.forEach((row, i) => row.forEach((v, j) => out.writeUInt32BE(v, 16 + i * 16 + j * 4)));
  Buffer.from(data).copy(out, 16 + index.length * 16);
  return out;
}

function lead(opts: { magic?: number; type?: number; sigType?: number } = {}): Uint8Array {
  const b = Buffer.alloc(96);
  b.writeUInt32BE(opts.magic ?? 0xedabeedb, 0);
  b.writeUInt8(3, 4);
  b.writeUInt16BE(opts.type ?? 0, 6);
  b.writeUInt16BE(opts.sigType ?? 5, 78);
  return b;
}

const MD5 = Uint8Array.from({ length: 16 }, (_, i) => i * 17);

function pkg(parts: { lead?: Uint8Array; sig?: Uint8Array; main: Uint8Array; payload?: Uint8Array }): Uint8Array {
  const sig = parts.sig ?? header([{ tag: 1004, type: T.Bin, value: MD5 }]);
  const pad = (8 - (sig.length % 8)) % 8;
  return Buffer.concat([parts.lead ?? lead(), sig, Buffer.alloc(pad), parts.main, parts.payload ?? Buffer.alloc(0)]);
}

/** NAME, VERSION, RELEASE, ARCH and SOURCERPM of a binary package, plus `extra`. */
function binaryMain(extra: Entry[] = [], opts: { sourceRpm?: string | null } = {}): Entry[] {
  const base: Entry[] = [
    { tag: 1000, type: T.String, value: "foo" },
    { tag: 1001, type: T.String, value: "1.0" },
    { tag: 1002, type: T.String, value: "1" },
    { tag: 1022, type: T.String, value: "x86_64" },
  ];
  if (opts.sourceRpm !== null) base.push({ tag: 1044, type: T.String, value: opts.sourceRpm ?? "foo-1.0-1.src.rpm" });
  return [...base, ...extra];
}

async function rejects(bytes: Uint8Array, pattern: RegExp, options?: Parameters<typeof parseRpmHeader>[1]) {
  await assert.rejects(parseRpmHeader(bytes, options), (err: unknown) => {
    assert.ok(err instanceof InvalidInputError, String(err));
    assert.match(err.message, pattern);
    return true;
  });
}

describe("actors/repo/rpm-header", () => {
  it("should format dependencies as obs-build does and drop rpmlib() and file dependencies", async () => {
    const main = header(
      binaryMain([
        { tag: 1047, type: T.StringArray, value: ["foo-virtual", "rpmlib(X)", "/usr/bin/foo", "foo-v"] },
        { tag: 1112, type: T.Int32, value: [0, 8, 0, 8] },
        { tag: 1113, type: T.StringArray, value: ["", "1", "", "2:3.0-1"] },
        { tag: 1049, type: T.StringArray, value: ["a", "b", "c", "d", "e", "f", "/bin/sh", "rpmlib(Y)"] },
        // <=, >=, <, >, = with a pre-requires bit, and a name without comparison
        { tag: 1048, type: T.Int32, value: [0x0a, 0x0c, 0x02, 0x04, 0x48, 0, 0, 0x0a] },
        { tag: 1050, type: T.StringArray, value: ["1", "2", "3", "4", "5", "", "", "4.0-1"] },
        { tag: 1054, type: T.StringArray, value: ["/etc/conflict", "old"] },
        { tag: 1053, type: T.Int32, value: [0, 0x02] },
        { tag: 1055, type: T.StringArray, value: ["", "2"] },
        { tag: 1090, type: T.StringArray, value: ["older"] },
      ])
    );
    const info = await parseRpmHeader(pkg({ main }));
    assert.deepEqual(info.provides, ["foo-virtual", "foo-v = 2:3.0-1", "foo = 1.0-1"]);
    assert.deepEqual(info.requires, ["a <= 1", "b >= 2", "c < 3", "d > 4", "e = 5", "f"]);
    // Conflicts and obsoletes keep file names; a missing flags tag means no comparison.
    assert.deepEqual(info.conflicts, ["/etc/conflict", "old < 2"]);
    assert.deepEqual(info.obsoletes, ["older"]);
    assert.equal(info.recommends, undefined);
    assert.equal(info.source, "foo");
    assert.equal(info.sourceRpm, "foo-1.0-1.src.rpm");
    assert.equal(info.isSource, false);
    assert.equal(info.arch, "x86_64");
  });

  it("should not append the self-provide when it is among the last two provides", async () => {
    const main = header(
      binaryMain([
        { tag: 1047, type: T.StringArray, value: ["foo", "foo(x86-64)"] },
        { tag: 1112, type: T.Int32, value: [8, 8] },
        { tag: 1113, type: T.StringArray, value: ["1.0-1", "1.0-1"] },
      ])
    );
    assert.deepEqual((await parseRpmHeader(pkg({ main }))).provides, ["foo = 1.0-1", "foo(x86-64) = 1.0-1"]);
  });

  it("should report an epoch of 0 but leave it out of the self-provide, and put a real one in", async () => {
    const zero = await parseRpmHeader(pkg({ main: header(binaryMain([{ tag: 1003, type: T.Int32, value: [0] }])) }));
    assert.equal(zero.epoch, 0);
    assert.deepEqual(zero.provides, ["foo = 1.0-1"]);
    const five = await parseRpmHeader(pkg({ main: header(binaryMain([{ tag: 1003, type: T.Int32, value: [5] }])) }));
    assert.equal(five.epoch, 5);
    assert.deepEqual(five.provides, ["foo = 5:1.0-1"]);
    const none = await parseRpmHeader(pkg({ main: header(binaryMain()) }));
    assert.equal("epoch" in none, false);
  });

  it("should take a binary package without SOURCERPM as its own source, and recognise source packages", async () => {
    const orphan = await parseRpmHeader(pkg({ main: header(binaryMain([], { sourceRpm: null })) }));
    assert.equal(orphan.isSource, false);
    assert.equal(orphan.source, "foo");
    assert.equal(orphan.sourceRpm, undefined);

    const src = await parseRpmHeader(
      pkg({ lead: lead({ type: 1 }), main: header(binaryMain([], { sourceRpm: null })) })
    );
    assert.equal(src.isSource, true);
    assert.equal(src.arch, "src");
    assert.equal(src.source, undefined);
    assert.deepEqual(src.provides, []);

    const nosrc = await parseRpmHeader(
      pkg({
        lead: lead({ type: 1 }),
        main: header(binaryMain([{ tag: 1051, type: T.Int32, value: [0] }], { sourceRpm: null })),
      })
    );
    assert.equal(nosrc.arch, "nosrc");
  });

  it("should split the pre-4.12 weak dependency tags by their strong bit", async () => {
    const main = header(
      binaryMain([
        { tag: 1156, type: T.StringArray, value: ["strong", "weak"] },
        { tag: 1158, type: T.Int32, value: [0x8000000, 0] },
        { tag: 1157, type: T.StringArray, value: ["", ""] },
        { tag: 1159, type: T.StringArray, value: ["sup"] },
        { tag: 1161, type: T.Int32, value: [0x8000000 | 0x0c] },
        { tag: 1160, type: T.StringArray, value: ["2"] },
      ])
    );
    const info = await parseRpmHeader(pkg({ main }));
    assert.deepEqual(info.recommends, ["strong"]);
    assert.deepEqual(info.suggests, ["weak"]);
    assert.deepEqual(info.supplements, ["sup >= 2"]);
    assert.equal(info.enhances, undefined);
  });

  it("should take hdrmd5 from the signature header and leadsigmd5 over lead and padded signature", async () => {
    const sig = header([
      { tag: 1004, type: T.Bin, value: MD5 },
      { tag: 1000, type: T.Int32, value: [12345] },
    ]);
    const main = header(binaryMain([{ tag: 5009, type: T.Int64, value: [2 ** 40] }]));
    const bytes = pkg({ sig, main, payload: Buffer.from("payload bytes") });
    const info = await parseRpmHeader(bytes);
    assert.equal(info.hdrmd5, Buffer.from(MD5).toString("hex"));
    const sigEnd = 96 + Math.ceil(sig.length / 8) * 8;
    assert.equal(info.leadsigmd5, createHash("md5").update(bytes.subarray(0, sigEnd)).digest("hex"));
    assert.equal(info.size, 2 ** 40);
  });

  it("should fall back to the MD5 of the main header when the signature has no MD5", async () => {
    const main = header(binaryMain());
    const info = await parseRpmHeader(pkg({ sig: header([]), main }));
    assert.equal(info.hdrmd5, createHash("md5").update(main).digest("hex"));
  });

  it("should read the headers without the payload and ignore what follows them", async () => {
    const main = header(binaryMain());
    const bare = await parseRpmHeader(pkg({ main }));
    const withPayload = await parseRpmHeader(pkg({ main, payload: Buffer.alloc(4096, 0xff) }));
    assert.deepEqual(withPayload, bare);
  });

  describe("with malformed input", () => {
    const good = () => header(binaryMain());

    it("should refuse a bad lead magic", async () => {
      await rejects(pkg({ lead: lead({ magic: 0x1f8b0800 }), main: good() }), /bad lead magic/);
    });

    it("should refuse an old signature type", async () => {
      await rejects(pkg({ lead: lead({ sigType: 1 }), main: good() }), /signature type 1/);
    });

    it("should refuse bad header magic in either header", async () => {
      await rejects(pkg({ sig: header([], { magic: 0x8eade800 }), main: good() }), /bad signature header magic/);
      await rejects(pkg({ main: header(binaryMain(), { magic: 0 }) }), /bad main header magic/);
    });

    it("should refuse huge index counts and data sizes before allocating anything", async () => {
      await rejects(pkg({ sig: header([], { entries: 0xffffffff }), main: good() }), /4294967295 index entries/);
      await rejects(pkg({ main: header(binaryMain(), { entries: 0x10000000 }) }), /index entries \(limit 65535\)/);
      await rejects(pkg({ main: header(binaryMain(), { dataBytes: 0xffffffff }) }), /data store of 4294967295 bytes/);
      await rejects(pkg({ main: good() }), /index entries \(limit 2\)/, { maxIndexEntries: 2 });
      await rejects(pkg({ main: good() }), /limit 16\)/, { maxDataBytes: 16 });
    });

    it("should refuse counts within the limits that the file does not back", async () => {
      await rejects(pkg({ main: header(binaryMain(), { entries: 60000 }) }), /truncated main header/);
      await rejects(pkg({ sig: header([], { dataBytes: 1 << 20 }), main: good() }), /truncated signature header/);
    });

    it("should refuse every truncation of lead and headers", async () => {
      const bytes = pkg({ main: good() });
      for (let cut = 0; cut < bytes.length; cut += 7) {
        await rejects(bytes.subarray(0, cut), /truncated/);
      }
      await rejects(bytes.subarray(0, bytes.length - 1), /truncated/);
    });

    it("should refuse unknown types and offsets outside the data store", async () => {
      await rejects(pkg({ main: header(binaryMain([{ tag: 4000, type: 12, value: "x" }])) }), /unknown type 12/);
      await rejects(
        pkg({ main: header(binaryMain([{ tag: 4000, type: T.String, value: "x", offset: 1 << 20 }])) }),
        /outside the data store/
      );
    });

    it("should refuse strings without their terminator and counts larger than their data", async () => {
      const unterminated = Buffer.from(header([{ tag: 1000, type: T.String, value: "foo" }]));
      unterminated[unterminated.length - 1] = 0x41;
      await rejects(pkg({ main: unterminated }), /string runs past the data store/);
      await rejects(
        pkg({ main: header(binaryMain([{ tag: 1047, type: T.StringArray, value: ["a"], count: 1e9 }])) }),
        /count 1000000000 exceeds its data/
      );
      await rejects(
        pkg({ main: header(binaryMain([{ tag: 1112, type: T.Int32, value: [1], count: 0x40000000 }])) }),
        /do not fit in the data store/
      );
      await rejects(
        pkg({ sig: header([{ tag: 1004, type: T.Bin, value: MD5, count: 1 << 30 }]), main: good() }),
        /exceed its data/
      );
    });

    it("should refuse tags of the wrong type", async () => {
      await rejects(pkg({ main: header([{ tag: 1000, type: T.Int32, value: [1] }]) }), /should hold strings/);
      await rejects(
        pkg({ main: header(binaryMain([{ tag: 1112, type: T.String, value: "8" }])) }),
        /should hold integers/
      );
    });

    it("should refuse packages without name, version, release or arch", async () => {
      const without = (tag: number) => header(binaryMain().filter((e) => e.tag !== tag));
      await rejects(pkg({ main: without(1000) }), /no NAME/);
      await rejects(pkg({ main: without(1001) }), /no VERSION/);
      await rejects(pkg({ main: without(1002) }), /no RELEASE/);
      await rejects(pkg({ main: without(1022) }), /no ARCH/);
    });
  });
});
