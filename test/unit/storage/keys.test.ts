import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { RoleStore, keys, prefixRange, type Key } from "../../../storage/index.ts";

const log = pino({ level: "silent" });

/** Every key function with sample arguments and the array it must produce. */
const EXPECTED: [keyof typeof keys, Key, Key][] = [
  ["blob", ["ab".repeat(32)], ["blob", "ab".repeat(32)]],
  ["blobsAll", [], ["blob"]],
  ["md5", ["0123"], ["md5", "0123"]],
  ["outbox", [7], ["outbox", 7]],
  ["outboxAll", [], ["outbox"]],
  ["meta", ["schema"], ["meta", "schema"]],
  ["project", ["home:a"], ["prj", "home:a"]],
  ["projectsAll", [], ["prj"]],
  ["projectConfig", ["home:a", 3], ["prjconf", "home:a", 3]],
  ["projectConfigsOf", ["home:a"], ["prjconf", "home:a"]],
  ["projectMetaRevision", ["home:a", 2], ["prjmeta", "home:a", 2]],
  ["projectMetaRevisionsOf", ["home:a"], ["prjmeta", "home:a"]],
  ["packageMetaRevision", ["home:a", "hello", 4], ["pkgmeta", "home:a", "hello", 4]],
  ["packageMetaRevisionsOf", ["home:a", "hello"], ["pkgmeta", "home:a", "hello"]],
  ["package", ["home:a", "hello"], ["pkg", "home:a", "hello"]],
  ["packagesOf", ["home:a"], ["pkg", "home:a"]],
  ["revision", ["home:a", "hello", 12], ["rev", "home:a", "hello", 12]],
  ["revisionsOf", ["home:a", "hello"], ["rev", "home:a", "hello"]],
  ["user", ["alice"], ["user", "alice"]],
  ["usersAll", [], ["user"]],
  ["userKey", ["UABC"], ["userkey", "UABC"]],
  ["nonce", ["n1"], ["nonce", "n1"]],
  ["noncesAll", [], ["nonce"]],
  ["group", ["devs"], ["group", "devs"]],
  ["groupsAll", [], ["group"]],
  ["sourceRef", ["0123", "p", "k"], ["srcref", "0123", "p", "k"]],
  ["sourceRefsOf", ["0123"], ["srcref", "0123"]],
  ["serviceExpansion", ["p", "k", 3], ["svc", "p", "k", 3]],
  ["serviceExpansionsOf", ["p", "k"], ["svc", "p", "k"]],
  ["serviceRun", ["p", "k"], ["svcrun", "p", "k"]],
  ["serviceRunsAll", [], ["svcrun"]],
  ["packageState", ["p", "r", "k"], ["pkgstate", "p", "r", "k"]],
  ["packageStatesOf", ["p"], ["pkgstate", "p"]],
  ["packageStatesOf", ["p", "r"], ["pkgstate", "p", "r"]],
  ["repoState", ["p", "r"], ["repostate", "p", "r"]],
  ["jobSignature", ["j1"], ["jobsig", "j1"]],
  ["jobSignaturesAll", [], ["jobsig"]],
  ["jobSignatureIndex", ["p", "r", "k", "j1"], ["jobsigidx", "p", "r", "k", "j1"]],
  ["jobSignatureIndexOf", ["p"], ["jobsigidx", "p"]],
  ["jobSignatureIndexOf", ["p", "r"], ["jobsigidx", "p", "r"]],
  ["jobSignatureIndexOf", ["p", "r", "k"], ["jobsigidx", "p", "r", "k"]],
  ["jobSignatureIndexAll", [], ["jobsigidx"]],
  ["buildReason", ["p", "r", "k"], ["reason", "p", "r", "k"]],
  ["buildReasonsOf", ["p"], ["reason", "p"]],
  ["buildReasonsOf", ["p", "r"], ["reason", "p", "r"]],
  ["buildReasonsAll", [], ["reason"]],
  ["result", ["p", "r", "x86_64", "k"], ["result", "p", "r", "x86_64", "k"]],
  ["resultsOf", ["p"], ["result", "p"]],
  ["resultsOf", ["p", "r"], ["result", "p", "r"]],
  ["resultsOf", ["p", "r", "x86_64"], ["result", "p", "r", "x86_64"]],
  ["poolEntry", ["p", "r", "x86_64", "glibc"], ["pool", "p", "r", "x86_64", "glibc"]],
  ["poolOf", ["p", "r", "x86_64"], ["pool", "p", "r", "x86_64"]],
  ["poolOf", ["p"], ["pool", "p"]],
  ["buildHistory", ["p", "r", "x86_64", "k", 5], ["bhist", "p", "r", "x86_64", "k", 5]],
  ["buildHistoryOf", ["p", "r", "x86_64", "k"], ["bhist", "p", "r", "x86_64", "k"]],
  ["buildHistoryOf", ["p"], ["bhist", "p"]],
  ["relsync", ["p", "r", "k"], ["relsync", "p", "r", "k"]],
  ["relsyncOf", ["p", "r"], ["relsync", "p", "r"]],
  ["relsyncOf", ["p"], ["relsync", "p"]],
  ["jobHistory", ["p", "r", "x86_64", 9], ["jhist", "p", "r", "x86_64", 9]],
  ["jobHistoryOf", ["p", "r", "x86_64"], ["jhist", "p", "r", "x86_64"]],
  ["jobHistoryOf", ["p"], ["jhist", "p"]],
  ["binInfo", ["p", "r", "x86_64", "k"], ["bininfo", "p", "r", "x86_64", "k"]],
  ["binInfosOf", ["p"], ["bininfo", "p"]],
  ["binInfosOf", ["p", "r", "x86_64"], ["bininfo", "p", "r", "x86_64"]],
  ["resultImport", ["p", "r", "x86_64", "k", "i586"], ["import", "p", "r", "x86_64", "k", "i586"]],
  ["resultImportsOf", ["p"], ["import", "p"]],
  ["resultImportsOf", ["p", "r", "x86_64", "k"], ["import", "p", "r", "x86_64", "k"]],
  ["projectFlags", ["p"], ["prjflags", "p"]],
  ["projectFlagsAll", [], ["prjflags"]],
  ["packageFlags", ["p", "k"], ["pkgflags", "p", "k"]],
  ["packageFlagsOf", ["p"], ["pkgflags", "p"]],
  ["publishedArch", ["p", "r", "x86_64"], ["pubarch", "p", "r", "x86_64"]],
  ["publishedArchsOf", ["p"], ["pubarch", "p"]],
  ["publishedArchsOf", ["p", "r"], ["pubarch", "p", "r"]],
  ["publishedRepo", ["p", "r"], ["pubrepo", "p", "r"]],
  ["publishedReposOf", ["p"], ["pubrepo", "p"]],
  ["announcedState", ["p", "r", "x86_64"], ["pubstate", "p", "r", "x86_64"]],
  ["announcedStatesAll", [], ["pubstate"]],
  ["announcedStatesOf", ["p"], ["pubstate", "p"]],
  ["job", ["j1"], ["job", "j1"]],
  ["jobsAll", [], ["job"]],
  ["worker", ["w1"], ["worker", "w1"]],
  ["workersAll", [], ["worker"]],
  ["load", ["p", "r", "x86_64"], ["load", "p", "r", "x86_64"]],
  ["loadsAll", [], ["load"]],
];

/** The `["tag", a, b] → …` lines of the key grammar in storage/keys.ts's module doc. */
function documentedKeys(): Map<string, number> {
  const file = fileURLToPath(new URL("../../../storage/keys.ts", import.meta.url));
  const doc = readFileSync(file, "utf8").split("*/")[0]!;
  const out = new Map<string, number>();
  for (const m of doc.matchAll(/\[("[a-z0-9]+"(?:, [a-zA-Z0-9]+)*)\]\s+→/g)) {
    const parts = m[1]!.split(", ");
    out.set(JSON.parse(parts[0]!) as string, parts.length);
  }
  return out;
}

describe("storage/keys", () => {
  it("should produce the documented array for every key function", () => {
    for (const [name, args, expected] of EXPECTED) {
      const fn = keys[name] as (...a: (string | number)[]) => Key;
      assert.deepEqual(fn(...args), expected, `${name}(${args.join(", ")})`);
    }
    const tested = new Set(EXPECTED.map(([name]) => name));
    assert.deepEqual(
      Object.keys(keys).filter((k) => !tested.has(k as keyof typeof keys)),
      [],
      "key functions without an expectation"
    );
  });

  it("should match the grammar in the module doc (tags and lengths)", () => {
    const doc = documentedKeys();
    assert.ok(doc.size >= 20, `only ${doc.size} documented keys found`);
    const fullKeys = EXPECTED.filter(([name]) => !/All$|Of$/.test(name)).map(([, , k]) => k);
    for (const k of fullKeys) {
      const tag = k[0] as string;
      assert.ok(doc.has(tag), `key ${JSON.stringify(k)} is not documented`);
      assert.equal(k.length, doc.get(tag), `documented length of ${tag}`);
    }
    const produced = new Set(fullKeys.map((k) => k[0]));
    for (const tag of doc.keys()) assert.ok(produced.has(tag), `documented ${tag} has no key function`);
    // Prefix functions are proper prefixes of their full keys.
    for (const [name, , k] of EXPECTED.filter(([n]) => /All$|Of$/.test(n))) {
      const tag = k[0] as string;
      assert.ok(doc.has(tag), `${name}: ${tag} not documented`);
      assert.ok(k.length < doc.get(tag)!, `${name} is not a proper prefix`);
    }
  });

  it("should bound a prefix range by the prefix and the prefix followed by 0xff", () => {
    const r = prefixRange(["rev", "p", 1]);
    assert.deepEqual(r.start, ["rev", "p", 1]);
    assert.deepEqual(r.end.slice(0, 3), ["rev", "p", 1]);
    assert.deepEqual([...(r.end[3] as Buffer)], [0xff]);
  });

  describe("prefixRange in LMDB", () => {
    let dir: string;
    let store: RoleStore;

    beforeEach(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), "kiln-keys-"));
      store = RoleStore.open({ path: dir, log });
    });

    afterEach(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const put = async (ks: Key[]): Promise<void> => {
      await store.transact(() => {
        for (const k of ks) void store.db.put(k, { k });
      });
    };
    const under = (prefix: Key): Key[] => {
      const direct = [...store.db.getKeys(prefixRange(prefix) as never)] as Key[];
      const viaStore = [...store.scanKeys(prefix)];
      assert.deepEqual(viaStore, direct);
      return direct;
    };

    it("should include exactly the keys under a prefix", async () => {
      const inside: Key[] = [
        ["rev", "p", "k", -1],
        ["rev", "p", "k", 0],
        ["rev", "p", "k", 1],
        ["rev", "p", "k", 1.5],
        ["rev", "p", "k", 2],
        ["rev", "p", "k", 10],
        ["rev", "p", "k", 2 ** 40],
        ["rev", "p", "k", ""],
        ["rev", "p", "k", "a", "b"],
        ["rev", "p", "k", "z"],
        ["rev", "p", "k", "\u00ff"],
        ["rev", "p", "k", "\u{10ffff}"],
      ]; // in key order: numbers before strings, strings bytewise
      const outside: Key[] = [
        ["rev", "p", "kk", 1],
        ["rev", "p", "k\u00ff", 1],
        ["rev", "p", "k\u0000", 1],
        ["rev", "p", "k ", 1],
        ["rev", "p", "k:", 1],
        ["rev", "p", "j", 1],
        ["rev", "p", "l", 1],
        ["rev", "p", "K", 1],
        ["rev", "pk", 1],
        ["rev", "p:k", "k", 1],
        ["rev", "", "k", 1],
        ["rev2", "p", "k", 1],
        ["re", "p", "k", 1],
        ["pkg", "p", "k"],
      ];
      await put([...outside, ...inside]);
      assert.deepEqual(under(["rev", "p", "k"]), inside);
      assert.deepEqual(under(["rev", "p", "kk"]), [["rev", "p", "kk", 1]]);
      assert.deepEqual(under(["rev", "p", "k\u00ff"]), [["rev", "p", "k\u00ff", 1]]);
      assert.deepEqual(under(["rev", "p", "nothing"]), []);
      assert.equal(under(["rev"]).length, inside.length + outside.length - 3);
    });

    it("should bound prefixes that end in a number", async () => {
      await put([
        ["jhist", "p", "r", "a", 1],
        ["jhist", "p", "r", "a", 1, "x"],
        ["jhist", "p", "r", "a", 10],
        ["jhist", "p", "r", "a", 11, "x"],
        ["jhist", "p", "r", "a", 2],
      ]);
      assert.deepEqual(under(["jhist", "p", "r", "a", 1]), [
        ["jhist", "p", "r", "a", 1],
        ["jhist", "p", "r", "a", 1, "x"],
      ]);
      assert.deepEqual(under(["jhist", "p", "r", "a", 11]), [["jhist", "p", "r", "a", 11, "x"]]);
    });

    it("should cover the prefix keys of the grammar", async () => {
      await put([
        keys.revision("home:a", "hello", 1),
        keys.revision("home:a", "hello", 2),
        keys.revision("home:a", "hello.x", 1),
        keys.revision("home:a:b", "hello", 1),
        keys.result("p", "r", "x86_64", "k"),
        keys.result("p", "r", "x86_64_v3", "k"),
        keys.result("p", "r2", "x86_64", "k"),
      ]);
      assert.deepEqual(under(keys.revisionsOf("home:a", "hello")), [
        keys.revision("home:a", "hello", 1),
        keys.revision("home:a", "hello", 2),
      ]);
      assert.deepEqual(under(keys.resultsOf("p", "r", "x86_64")), [keys.result("p", "r", "x86_64", "k")]);
      assert.equal(under(keys.resultsOf("p", "r")).length, 2);
      assert.equal(under(keys.resultsOf("p")).length, 3);
    });

    it("should keep a package's signed jobs apart from those of similarly named packages, repositories and projects", async () => {
      const mine = [keys.jobSignatureIndex("p", "r", "k", "a1"), keys.jobSignatureIndex("p", "r", "k", "b2")];
      const others = [
        keys.jobSignatureIndex("p", "r", "k-devel", "c3"),
        keys.jobSignatureIndex("p", "r", "kk", "c4"),
        keys.jobSignatureIndex("p", "r2", "k", "c5"),
        keys.jobSignatureIndex("p:sub", "r", "k", "c6"),
        keys.jobSignature("a1"),
        keys.buildReason("p", "r", "k"),
      ];
      await put([...others, ...mine]);
      assert.deepEqual(under(keys.jobSignatureIndexOf("p", "r", "k")), mine);
      assert.equal(under(keys.jobSignatureIndexOf("p", "r")).length, 4);
      assert.equal(under(keys.jobSignatureIndexOf("p")).length, 5);
      assert.equal(under(keys.jobSignatureIndexAll()).length, 6);
      assert.deepEqual(under(keys.jobSignaturesAll()), [keys.jobSignature("a1")]);
      assert.deepEqual(under(keys.buildReasonsOf("p", "r")), [keys.buildReason("p", "r", "k")]);
      assert.deepEqual(under(keys.buildReasonsOf("p", "r2")), []);
      // The job id is the key's last element, so an entry names its job without reading the value.
      assert.equal(mine[1]![4], "b2");
    });

    it("should scan forwards and backwards with a limit", async () => {
      const revs = [1, 2, 3, 10, 11].map((n) => keys.revision("p", "k", n));
      await put([...revs, keys.revision("p", "kk", 1), keys.revision("p", "j", 99)]);
      assert.deepEqual(
        [...store.scan<{ k: Key }>(keys.revisionsOf("p", "k"))].map((e) => e.key),
        revs
      );
      assert.deepEqual(
        [...store.scan(keys.revisionsOf("p", "k"), { reverse: true })].map((e) => e.key),
        [...revs].reverse()
      );
      assert.deepEqual(
        [...store.scan(keys.revisionsOf("p", "k"), { reverse: true, limit: 2 })].map((e) => e.key),
        [keys.revision("p", "k", 11), keys.revision("p", "k", 10)]
      );
      assert.deepEqual(
        [...store.scan<{ k: Key }>(keys.revisionsOf("p", "k"), { limit: 1 })].map((e) => e.value),
        [{ k: keys.revision("p", "k", 1) }]
      );
    });
  });
});
