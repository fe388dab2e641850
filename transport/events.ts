/**
 * Events on the JetStream stream KILN_EVENTS (`kiln.evt.>`).
 *
 * Publishers put an event and wait for the stream's acknowledgement; the event's `id` is the
 * JetStream message id, so publishing the same event again after a crash is deduplicated by the
 * server. Consumers are durable pull consumers that handle one event at a time and acknowledge
 * (with confirmation) only after the handler finished: a consumer that was down resumes where it
 * stopped, and an acknowledged event is never delivered to it again. Anybody may also subscribe
 * to `kiln.evt.>` with a plain NATS client.
 */
import { randomUUID } from "node:crypto";
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from "nats";
import type { Logger } from "pino";
import { delay } from "./backoff.ts";
import { decode, encode } from "./codec.ts";
import { EVENT_STREAM, subjects } from "./subjects.ts";

/** Fields every event carries. Each role's protocol.ts defines its events on top of these. */
export interface EventBase {
  /** `noun.verb`, e.g. `source.committed`. */
  type: string;
  project: string;
  package?: string;
  /** Milliseconds since the epoch when the fact became true. */
  time: number;
  /** Unique per fact; republishing the same fact must reuse it (deduplication). */
  id: string;
}

export interface EventStreamOptions {
  /** Stream replicas; 1 on a single server, up to 3 in a JetStream cluster. @default 1 */
  replicas?: number;
  /** How long events are kept. @default 30 days */
  maxAgeMs?: number;
}

/** Creates the event stream, or leaves an existing one as it is. */
export async function ensureEventStream(jsm: JetStreamManager, opts: EventStreamOptions = {}): Promise<void> {
  const maxAgeNs = (opts.maxAgeMs ?? 30 * 24 * 3600_000) * 1_000_000;
  try {
    await jsm.streams.info(EVENT_STREAM);
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== "404") throw err;
  }
  try {
    await jsm.streams.add({
      name: EVENT_STREAM,
      subjects: [subjects.eventsAll()],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      max_age: maxAgeNs,
      num_replicas: opts.replicas ?? 1,
      duplicate_window: 2 * 60 * 1_000_000_000,
    });
  } catch (err) {
    // Another process created it between our info and add.
    const text = String((err as Error).message);
    if (!/already in use|stream name already/i.test(text)) throw err;
  }
}

/** An event before id and time are filled in (distributes over unions of events). */
export type EventDraft<E extends EventBase> = E extends EventBase
  ? Omit<E, "id" | "time"> & Partial<Pick<E, "id" | "time">>
  : never;

/** Fills in id and time when missing. */
export function makeEvent<E extends EventBase>(e: EventDraft<E>): E {
  const d = e as Omit<EventBase, "id" | "time"> & Partial<Pick<EventBase, "id" | "time">>;
  return { ...d, id: d.id ?? randomUUID(), time: d.time ?? Date.now() } as E;
}

/** Publishes to the stream and waits for its acknowledgement. */
export async function publishEvent(js: JetStreamClient, event: EventBase): Promise<void> {
  const subject = subjects.event(event.type, event.project, event.package);
  await js.publish(subject, encode(event), { msgID: event.id });
}

export interface ConsumeOptions<E extends EventBase> {
  /** Durable consumer name, e.g. `sched-x86_64`. */
  durable: string;
  /** One subject filter (nats-server 2.9 supports only one); default all events. */
  filterSubject?: string;
  /** Handles one event; resolve to acknowledge, throw to have it redelivered later. */
  handler: (event: E) => Promise<void>;
  log: Logger;
  /** Redeliveries before an event is given up (and logged). @default 20 */
  maxDeliver?: number;
  /** Events handed to the client at once; handled one by one. @default 64 */
  batch?: number;
}

export interface EventConsumer {
  /** Stops after the event being handled; unhandled events stay in the stream for next time. */
  stop(): Promise<void>;
  /** Resolves when the consumer loop ended. */
  done: Promise<void>;
}

/** Starts (creating if needed) a durable consumer and handles its events in order. */
export async function consumeEvents<E extends EventBase>(
  nc: NatsConnection,
  opts: ConsumeOptions<E>
): Promise<EventConsumer> {
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const maxDeliver = opts.maxDeliver ?? 20;
  const config = {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_deliver: maxDeliver,
    ack_wait: 60 * 1_000_000_000,
    ...(opts.filterSubject ? { filter_subject: opts.filterSubject } : {}),
  };
  try {
    await jsm.consumers.info(EVENT_STREAM, opts.durable);
  } catch (err) {
    if ((err as { code?: string }).code !== "404") throw err;
    await jsm.consumers.add(EVENT_STREAM, config);
  }
  const consumer = await js.consumers.get(EVENT_STREAM, opts.durable);
  const log = opts.log.child({ durable: opts.durable });
  let stopping = false;
  let messages: ConsumerMessages | undefined;
  const unhandled: JsMsg[] = [];

  /**
   * Naks what this instance received but did not handle, so that the next instance gets it at
   * once and before newer events; merely left unacknowledged, it would come back only after
   * ack_wait (60 s), behind them. The naks wait until the server dropped this instance's pull
   * request (its inbox is unsubscribed): a nak before that may be redelivered into that request.
   */
  const giveBack = async (): Promise<void> => {
    if (unhandled.length === 0) return;
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      const info = await jsm.consumers.info(EVENT_STREAM, opts.durable).catch(() => undefined);
      if (!info || info.num_waiting === 0) break;
      await delay(20);
    }
    for (const m of unhandled.splice(0)) m.nak();
    await nc.flush().catch(() => undefined);
  };

  const loop = async (): Promise<void> => {
    messages = await consumer.consume({ max_messages: opts.batch ?? 64 });
    for await (const m of messages) {
      if (stopping) {
        // Delivered to this instance but not handled: given back by stop().
        unhandled.push(m);
        continue;
      }
      let event: E;
      try {
        event = decode<E>(m.data);
      } catch (err) {
        log.error({ err, subject: m.subject, seq: m.seq }, "undecodable event dropped");
        m.term();
        continue;
      }
      try {
        await opts.handler(event);
        await m.ackAck().catch((err: unknown) => log.warn({ err, seq: m.seq }, "event ack not confirmed"));
      } catch (err) {
        const deliveries = m.info.redeliveryCount;
        if (deliveries >= maxDeliver) {
          log.error({ err, type: event.type, seq: m.seq, deliveries }, "event handler failed, giving up");
        } else {
          log.warn({ err, type: event.type, seq: m.seq, deliveries }, "event handler failed, will retry");
        }
        m.nak(Math.min(30_000, 250 * 2 ** Math.min(deliveries, 7)));
      }
    }
  };
  const done = loop().catch((err: unknown) => {
    if (!stopping) log.error({ err }, "event consumer ended");
  });
  return {
    async stop(): Promise<void> {
      stopping = true;
      if (messages) await messages.close().catch(() => undefined);
      await done;
      await giveBack();
    },
    done,
  };
}
