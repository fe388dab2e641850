import assert from "node:assert/strict";
import {
  Role,
  SUBJECT_PREFIX,
  decodeToken,
  encodeToken,
  parseSubject,
  subjects,
  type ParsedSubject,
} from "../../../transport/index.ts";
import { mulberry32 as rng } from "../../helpers/rng.ts";

/** Characters chosen to collide with the escape syntax and the subject grammar. */
const ALPHABET = [..."aAzZ09_-.:~*> \t+/%", "~7E", "~7e", "é", "ß", "日本", "😀", "\u0000", "\u00ff", "\uFFFD"];

function randomName(r: () => number): string {
  const len = 1 + Math.floor(r() * 8);
  let s = "";
  for (let i = 0; i < len; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s;
}

const TRICKY = [
  "home:foo:bar",
  "a.b",
  "~",
  "~7E",
  "~~",
  "openSUSE:Factory",
  "home:user:branches:openSUSE.org:Factory",
  "日本語",
  "😀 emoji",
  "with space",
  "tab\there",
  "*",
  ">",
  "a.*.>",
  "x86_64",
  "UPPER-lower_09",
  "\u0000",
  "é".normalize("NFD"),
  "é".normalize("NFC"),
  "p".repeat(200),
  "a.b:".repeat(50),
];

/** A test title naming the code points of non-ASCII names (NFC and NFD look alike). */
function title(name: string): string {
  const short = name.length > 30 ? `${name.slice(0, 30)}... (${name.length} chars)` : name;
  return JSON.stringify(short).replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** A valid NATS subject for publishing: non-empty tokens without wildcards or whitespace. */
function assertValidSubject(subject: string, wildcardTail = false): void {
  const tokens = subject.split(".");
  tokens.forEach((t, i) => {
    assert.notEqual(t, "", `empty token in ${subject}`);
    assert.doesNotMatch(t, /\s/, `whitespace in token of ${subject}`);
    const last = i === tokens.length - 1;
    if (wildcardTail && (t === "*" || (last && t === ">"))) return;
    assert.doesNotMatch(t, /[*>]/, `wildcard in token ${t} of ${subject}`);
  });
  // Only printable ASCII: whatever the server or another client library does with bytes > 0x7f.
  assert.match(subject, /^[\x21-\x7e]+$/);
}

describe("transport/subjects", () => {
  describe("encodeToken/decodeToken", () => {
    for (const name of TRICKY) {
      it(`should round trip ${title(name)}`, () => {
        const token = encodeToken(name);
        assert.match(token, /^[A-Za-z0-9_~-]+$/);
        assert.equal(decodeToken(token), name);
      });
    }

    it("should keep safe characters and escape everything else as ~HH of UTF-8 bytes", () => {
      assert.equal(encodeToken("abc-XYZ_09"), "abc-XYZ_09");
      assert.equal(encodeToken("home:foo"), "home~3Afoo");
      assert.equal(encodeToken("a.b"), "a~2Eb");
      assert.equal(encodeToken("~"), "~7E");
      assert.equal(encodeToken("~7E"), "~7E7E");
      assert.equal(encodeToken("é"), "~C3~A9");
      assert.equal(encodeToken("😀"), "~F0~9F~98~80");
    });

    it("should give distinct tokens to many distinct generated names (seeded property)", () => {
      for (const seed of [1, 2, 3]) {
        const r = rng(seed);
        const byToken = new Map<string, string>();
        for (let i = 0; i < 5000; i++) {
          const name = randomName(r);
          const token = encodeToken(name);
          const seen = byToken.get(token);
          if (seen !== undefined) assert.equal(seen, name, `seed ${seed}: ${seen} and ${name} share ${token}`);
          byToken.set(token, name);
          assert.equal(decodeToken(token), name, `seed ${seed}: round trip of ${JSON.stringify(name)}`);
          assert.doesNotMatch(token, /[.*>\s]/);
        }
        assert.ok(byToken.size > 3000, `seed ${seed}: generator produced too few distinct names`);
      }
    });

    it("should refuse an empty name and a lone surrogate", () => {
      assert.throws(() => encodeToken(""), RangeError);
      // Both would otherwise become ~EF~BF~BD, the encoding of U+FFFD.
      assert.throws(() => encodeToken("\uD800"), /lone UTF-16 surrogate/);
      assert.throws(() => encodeToken("a\uDC00b"), /lone UTF-16 surrogate/);
      assert.equal(decodeToken(encodeToken("\uFFFD")), "\uFFFD");
    });

    it("should refuse tokens encodeToken cannot produce", () => {
      for (const bad of ["", "a.b", "a b", "~", "~7", "~7e", "~GG", "a*", ">", "~41", "~C3", "~FF", "é"]) {
        assert.throws(() => decodeToken(bad), RangeError, `decodeToken(${JSON.stringify(bad)})`);
      }
    });
  });

  describe("builders", () => {
    const names = [...TRICKY, ...Array.from({ length: 200 }, (_, i) => randomName(rng(100 + i)))];

    it("should build valid NATS subjects for every builder and name", () => {
      for (const role of Object.values(Role)) {
        assertValidSubject(subjects.rpc(role, "meta.get"));
        assertValidSubject(subjects.rpcAll(role), true);
      }
      assertValidSubject(subjects.ping());
      assertValidSubject(subjects.eventsAll(), true);
      assertValidSubject(subjects.eventFilter(), true);
      for (const name of names) {
        assertValidSubject(subjects.sched(name, "job.done"));
        assertValidSubject(subjects.schedAll(name), true);
        assertValidSubject(subjects.worker(name, "build.start"));
        assertValidSubject(subjects.workerAll(name), true);
        assertValidSubject(subjects.event("source.committed", name));
        assertValidSubject(subjects.event("source.committed", name, name));
        assertValidSubject(subjects.eventFilter({ project: name }), true);
        assertValidSubject(subjects.eventFilter({ type: "source.committed", project: name }), true);
        assertValidSubject(subjects.log(name));
      }
    });

    it("should produce the documented grammar", () => {
      assert.equal(subjects.rpc(Role.Source, "meta.get"), `${SUBJECT_PREFIX}.rpc.source.meta.get`);
      assert.equal(subjects.rpcAll(Role.Repo), "kiln.rpc.repo.>");
      assert.equal(subjects.sched("x86_64", "job.done"), "kiln.rpc.sched.x86_64.job.done");
      assert.equal(subjects.worker("w:1", "build.start"), "kiln.rpc.worker.w~3A1.build.start");
      assert.equal(subjects.event("source.committed", "home:a", "b.c"), "kiln.evt.source.committed.home~3Aa.b~2Ec");
      assert.equal(subjects.event("source.committed", "p"), "kiln.evt.source.committed.p");
      assert.equal(subjects.eventFilter(), "kiln.evt.*.*.>");
      assert.equal(subjects.eventFilter({ type: "job.done" }), "kiln.evt.job.done.>");
      assert.equal(subjects.eventFilter({ project: "a.b" }), "kiln.evt.*.*.a~2Eb.>");
      assert.equal(subjects.eventsAll(), "kiln.evt.>");
      assert.equal(subjects.log("job-1"), "kiln.log.job-1");
      assert.equal(subjects.ping(), "kiln.sys.ping");
    });

    it("should refuse message types that are not noun.verb", () => {
      for (const bad of ["get", "meta.", ".get", "Meta.get", "meta.get.x", "meta.*", "meta.>", "me ta.get", ""]) {
        assert.throws(() => subjects.rpc(Role.Source, bad), RangeError, bad);
        assert.throws(() => subjects.event(bad, "p"), RangeError, bad);
      }
      assert.throws(() => subjects.sched("", "job.done"), RangeError);
      assert.throws(() => subjects.event("source.committed", "p", ""), RangeError);
    });
  });

  describe("parseSubject", () => {
    it("should invert every builder", () => {
      const r = rng(7);
      const names = [...TRICKY, ...Array.from({ length: 300 }, () => randomName(r))];
      const cases: [string, ParsedSubject][] = [[subjects.ping(), { kind: "ping" }]];
      for (const role of Object.values(Role)) {
        cases.push([subjects.rpc(role, "meta.get"), { kind: "rpc", role, type: "meta.get" }]);
      }
      for (const name of names) {
        const other = names[Math.floor(r() * names.length)]!;
        cases.push(
          [subjects.sched(name, "job.done"), { kind: "sched", arch: name, type: "job.done" }],
          [subjects.worker(name, "build-x.start"), { kind: "worker", workerId: name, type: "build-x.start" }],
          [subjects.event("source.committed", name), { kind: "event", type: "source.committed", project: name }],
          [
            subjects.event("source.committed", name, other),
            { kind: "event", type: "source.committed", project: name, package: other },
          ],
          [subjects.log(name), { kind: "log", jobId: name }]
        );
      }
      for (const [subject, expected] of cases) assert.deepEqual(parseSubject(subject), expected, subject);
    });

    it("should throw on subjects the builders cannot produce", () => {
      const bad = [
        "",
        "kiln",
        "other.rpc.source.meta.get",
        "kiln.rpc.nosuchrole.meta.get",
        "kiln.rpc.source.meta",
        "kiln.rpc.source.meta.get.extra",
        "kiln.rpc.source..get",
        "kiln.rpc.source.META.get",
        "kiln.rpc.sched.x86_64.job",
        "kiln.rpc.sched.x~2.job.done",
        "kiln.rpc.worker.~41.build.start",
        "kiln.evt.source.committed",
        "kiln.evt.source.committed.p.q.r",
        "kiln.evt.source.committed.a b",
        "kiln.evt.*.*.p",
        "kiln.log",
        "kiln.log.a.b",
        "kiln.log.~zz",
        "kiln.sys.pong",
        "kiln.sys.ping.x",
        "kiln.nope.x",
      ];
      for (const s of bad) assert.throws(() => parseSubject(s), RangeError, JSON.stringify(s));
    });
  });
});
