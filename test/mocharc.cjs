// One mocha config for every layer; the npm scripts pick the spec globs.
module.exports = {
  "node-option": ["import=tsx"],
  extension: ["ts"],
  timeout: 60000,
  slow: 2000,
  reporter: "spec",
  "fail-zero": true,
};
