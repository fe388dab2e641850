import assert from "node:assert/strict";
import { toConf } from "../../../transport/index.ts";

describe("transport/nats-server", () => {
  describe("toConf", () => {
    it("should write scalars: strings quoted, numbers and booleans bare", () => {
      assert.equal(
        toConf({ host: "127.0.0.1", port: -1, debug: false, max_payload: 1048576 }),
        'host: "127.0.0.1"\nport: -1\ndebug: false\nmax_payload: 1048576\n'
      );
    });

    it("should escape quotes and backslashes inside strings", () => {
      assert.equal(toConf({ s: 'a "b" \\c' }), 's: "a \\"b\\" \\\\c"\n');
    });

    it("should write nested blocks with indentation", () => {
      assert.equal(
        toConf({
          jetstream: { store_dir: "/tmp/js", max_mem: 1024 },
          cluster: { name: "C1", listen: "127.0.0.1:-1", authorization: { user: "u", timeout: 2 } },
        }),
        [
          "jetstream: {",
          '  store_dir: "/tmp/js"',
          "  max_mem: 1024",
          "}",
          "cluster: {",
          '  name: "C1"',
          '  listen: "127.0.0.1:-1"',
          "  authorization: {",
          '    user: "u"',
          "    timeout: 2",
          "  }",
          "}",
          "",
        ].join("\n")
      );
    });

    it("should write arrays of scalars and of blocks", () => {
      assert.equal(
        toConf({ routes: ["nats://127.0.0.1:1", "nats://127.0.0.1:2"], ports: [1, 2], flags: [] }),
        'routes: ["nats://127.0.0.1:1", "nats://127.0.0.1:2"]\nports: [1, 2]\nflags: []\n'
      );
      assert.equal(
        toConf({ accounts: { A: { users: [{ user: "a", password: "p" }] } } }),
        [
          "accounts: {",
          "  A: {",
          "    users: [{",
          '      user: "a"',
          '      password: "p"',
          "    }]",
          "  }",
          "}",
          "",
        ].join("\n")
      );
    });

    it("should write an empty block", () => {
      assert.equal(toConf({ jetstream: {} }), "jetstream: {\n\n}\n");
    });
  });
});
