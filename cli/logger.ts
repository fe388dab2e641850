/**
 * The one pino root logger of a kiln process. Roles get child loggers from it.
 */
import pino, { type Logger } from "pino";

export function createRootLogger(level: string, name = "kiln"): Logger {
  // Logs go to stderr so that stdout stays the command's output (tables, JSON).
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}
