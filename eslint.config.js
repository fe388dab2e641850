// ESLint flat config: typescript-eslint with type information, so promise misuse is caught.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

const folders = ["actors", "transport", "storage", "sandbox", "cli"];

export default tseslint.config(
  { ignores: ["node_modules/**", "ops/examples/**", "test/fixtures/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-console": "error",
    },
  },
  // Cross-folder imports go through each folder's index.ts.
  ...folders.map((folder) => ({
    files: [`${folder}/**/*.ts`],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: folders
            .filter((f) => f !== folder)
            .map((f) => ({
              group: [`**/${f}/*`, `!**/${f}/index.ts`],
              message: `import from ${f}/index.ts, not from inside ${f}/`,
            })),
        },
      ],
    },
  })),
  {
    files: ["cli/**/*.ts", "ops/**/*.ts", "test/**/*.ts"],
    rules: { "no-console": "off" },
  },
  {
    files: ["**/*.js", "**/*.cjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { ...globals.node, ...globals.commonjs } },
  }
);
