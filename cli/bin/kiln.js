#!/usr/bin/env node
// Entry point of the `kiln` command: runs the TypeScript sources through tsx's loader.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../main.ts");
process.exitCode = await main(process.argv, process.env);
