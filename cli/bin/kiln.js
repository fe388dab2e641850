#!/usr/bin/env -S node --max-semi-space-size=32
// The flag: a 32 MiB young generation. The scheduler's checks make many short-lived objects;
// with Node's default (16 MiB) a cold check of a distribution spends about a fifth of its time
// in minor collections. `npm start` passes the same flag; ops/bench reads it from this line.
// Entry point of the `kiln` command: runs the TypeScript sources through tsx's loader.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../main.ts");
process.exitCode = await main(process.argv, process.env);
