import type { Logger } from 'pino';
import type { Sealer } from '../secrets/sealer.ts';
import type { Database } from '../storage/database.ts';
import { type Repositories, repositoriesOn, unitOfWork } from '../storage/repositories/index.ts';
import type { ClaimedNotificationRow } from '../storage/repositories/notifications.ts';
import { appendAudit } from './audit.ts';
import type { Clock } from './context.ts';

/**
 * Messages to people (one-time codes, unlock codes, certificate expiry warnings) go through a durable outbox: the
 * message is queued in the `notifications` table by the transaction that causes it, and sent afterwards through the
 * transport chosen by configuration (SMTP, GOV.UK Notify, or a file for development; notification-transports.ts).
 * A transport that is down delays nothing and loses nothing: a message is retried with backoff, and one that cannot
 * be delivered is marked `failed` (visible to the RA) after NOTIFICATIONS_MAX_ATTEMPTS, never retried forever. Its
 * content — which may hold a one-time code — is kept sealed only until it is sent or given up, then erased: the
 * database keeps that a message was sent, never what it said.
 */
export type Channel = 'email' | 'mobile';

export interface OutgoingMessage {
  userId: string;
  channel: Channel;
  to: string;
  template: string;
  subject: string;
  text: string;
}

/** What a transport sends: the message, and a reference naming its outbox row (Notify's `reference`). */
export interface DeliverableMessage extends OutgoingMessage {
  reference: string;
}

export interface NotificationTransport {
  /** The channels it can deliver (default both). A person's verified mobile is used only when SMS can be sent. */
  readonly channels?: ReadonlySet<Channel>;
  /**
   * Sends one message, answering `{ providerId }` when the provider names it; throws a DeliveryError (or any error:
   * temporary) when it could not.
   */
  send(message: DeliverableMessage): Promise<unknown>;
  close?(): Promise<void>;
}

/** A transport's refusal. `permanent`: retrying cannot help (an address the server rejects with 5xx, a 400). */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export interface QueueOptions {
  /** A message already queued under this key is not queued again (expiry warnings: one per certificate and threshold). */
  dedupeKey?: string | null;
  /** Not worth delivering after this (a one-time code that has expired): marked failed instead. */
  deliverBy?: Date | null;
}

/** What services see of the outbox: queue a message inside their transaction, then wake the sender once committed. */
export interface NotificationOutbox {
  readonly channels: ReadonlySet<Channel>;
  queue(repos: Repositories, message: OutgoingMessage, at: Date, options?: QueueOptions): Promise<boolean>;
  wake(): void;
}

export interface DeliveryCounts {
  sent: number;
  retried: number;
  failed: number;
}

export interface OutboxEvents {
  onSent?(n: number): void;
  onRetry?(n: number): void;
  onFailed?(n: number): void;
}

export interface OutboxSender extends NotificationOutbox {
  /** One pass: claims the messages due now and tries each once. */
  deliverDue(): Promise<DeliveryCounts>;
  /** Passes until nothing is due now (tests, and the CLI before it exits). */
  drain(): Promise<DeliveryCounts>;
  /** Polls for due messages (retries, messages queued by other nodes or the CLI) every `intervalMs`. */
  start(intervalMs?: number): void;
  /** Stops polling and waits for the pass in flight. */
  stop(): Promise<void>;
  events: OutboxEvents;
}

const PAYLOAD_PURPOSE = 'notification.payload';
const BATCH = 20;
/** Longest one send may hold a message before another node may take it over (transports time out well before). */
const LEASE_MS = 120_000;
const FIRST_RETRY_MS = 30_000;
const LONGEST_RETRY_MS = 3_600_000;

export const ALL_CHANNELS: ReadonlySet<Channel> = new Set(['email', 'mobile']);

/** Backoff before attempt n+1 after n failed attempts: 30 s, 1, 2, 4 … minutes, at most an hour, with ±20 % jitter. */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1), LONGEST_RETRY_MS);
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Queues one message (in the caller's transaction when q is one). Returns false when its dedupe key was used. */
export async function queueNotification(
  repos: Repositories,
  sealer: Sealer,
  message: OutgoingMessage,
  at: Date,
  options: QueueOptions = {},
): Promise<boolean> {
  const payload = sealer.seal(
    JSON.stringify({ to: message.to, subject: message.subject, text: message.text }),
    PAYLOAD_PURPOSE,
  );
  return repos.notifications.insertNotification({
    userId: message.userId,
    channel: message.channel,
    template: message.template,
    dedupeKey: options.dedupeKey ?? null,
    at,
    payloadSealed: payload,
    deliverBy: options.deliverBy ?? null,
  });
}

type ClaimedRow = ClaimedNotificationRow;

export interface OutboxOptions {
  db: Database;
  sealer: Sealer;
  transport: NotificationTransport;
  clock: Clock;
  maxAttempts: number;
  logger?: Logger;
  random?: () => number;
}

/** The outbox of one node: queues messages and delivers the due ones, however many nodes share the table. */
export function createOutbox(options: OutboxOptions): OutboxSender {
  const { db, sealer, transport, clock } = options;
  const repos = repositoriesOn(db);
  const transaction = unitOfWork(db);
  const channels = transport.channels ?? ALL_CHANNELS;
  const events: OutboxEvents = {};
  let pass: Promise<DeliveryCounts> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const system = {
    clock,
    actor: { kind: 'system' as const, id: 'system:notifications' },
    requestId: null,
    sealer: options.sealer,
  };

  async function claim(): Promise<ClaimedRow[]> {
    const now = clock.now();
    return repos.notifications.claimDueNotifications(now, new Date(now.getTime() + LEASE_MS), BATCH);
  }

  async function giveUp(row: ClaimedRow, reason: string): Promise<void> {
    await transaction(async (tx) => {
      await tx.notifications.markNotificationFailed(row.notification_id, clock.now(), reason);
      await appendAudit(tx, system, {
        action: 'notification.failed',
        targetType: 'person',
        targetId: row.user_id,
        before: null,
        after: { notificationId: String(row.notification_id), template: row.template, attempts: row.attempts },
        reason,
      });
    });
  }

  async function deliverOne(row: ClaimedRow, counts: DeliveryCounts): Promise<void> {
    if (row.deliver_by && new Date(row.deliver_by) <= clock.now()) {
      await giveUp(row, 'expired before it could be delivered');
      counts.failed++;
      return;
    }
    if (!channels.has(row.channel)) {
      await giveUp(row, `the configured transport cannot send to a ${row.channel === 'mobile' ? 'mobile' : 'mailbox'}`);
      counts.failed++;
      return;
    }
    let content: { to: string; subject: string; text: string };
    try {
      content = JSON.parse(sealer.open(row.payload_sealed, PAYLOAD_PURPOSE).toString('utf8'));
    } catch {
      // Sealed under a secrets key this node does not have: retrying would never open it.
      await giveUp(row, 'its content cannot be unsealed with this secrets key');
      counts.failed++;
      return;
    }
    try {
      const res = await transport.send({
        userId: row.user_id,
        channel: row.channel,
        template: row.template,
        ...content,
        reference: `opencis-${row.notification_id}`,
      });
      await repos.notifications.markNotificationSent(row.notification_id, clock.now(), providerIdOf(res));
      counts.sent++;
    } catch (err) {
      const reason = String((err as Error).message ?? err)
        .replace(/\s+/g, ' ')
        .slice(0, 500);
      const permanent = err instanceof DeliveryError && err.permanent;
      if (permanent || row.attempts >= options.maxAttempts) {
        await giveUp(row, permanent ? reason : `${reason} (after ${row.attempts} attempts)`);
        counts.failed++;
        options.logger?.warn({ notificationId: row.notification_id, reason }, 'notification failed');
        return;
      }
      await repos.notifications.scheduleNotificationRetry(
        row.notification_id,
        new Date(clock.now().getTime() + retryDelayMs(row.attempts, options.random)),
        reason,
      );
      counts.retried++;
      options.logger?.info({ notificationId: row.notification_id, reason }, 'notification delivery will be retried');
    }
  }

  async function deliverDue(): Promise<DeliveryCounts> {
    const counts: DeliveryCounts = { sent: 0, retried: 0, failed: 0 };
    for (const row of await claim()) await deliverOne(row, counts);
    if (counts.sent) events.onSent?.(counts.sent);
    if (counts.retried) events.onRetry?.(counts.retried);
    if (counts.failed) events.onFailed?.(counts.failed);
    return counts;
  }

  /** One pass at a time per node; a wake during a pass asks for another after it. */
  function runPass(): Promise<DeliveryCounts> {
    if (pass) {
      again = true;
      return pass;
    }
    pass = (async () => {
      const total: DeliveryCounts = { sent: 0, retried: 0, failed: 0 };
      try {
        do {
          again = false;
          const c = await deliverDue();
          total.sent += c.sent;
          total.retried += c.retried;
          total.failed += c.failed;
          // A full batch may have left more due messages behind it.
          if (c.sent + c.retried + c.failed >= BATCH) again = true;
        } while (again && !stopped);
      } finally {
        pass = undefined;
      }
      return total;
    })();
    return pass;
  }

  const background = () => {
    runPass().catch((err) =>
      options.logger?.warn({ err: { message: (err as Error).message } }, 'notification outbox pass failed'),
    );
  };

  return {
    channels,
    events,
    queue: (q, message, at, queueOptions) => queueNotification(q, sealer, message, at, queueOptions),
    wake() {
      if (!stopped) setImmediate(background);
    },
    deliverDue,
    async drain() {
      const total: DeliveryCounts = { sent: 0, retried: 0, failed: 0 };
      const add = (c: DeliveryCounts) => {
        total.sent += c.sent;
        total.retried += c.retried;
        total.failed += c.failed;
      };
      for (;;) {
        // A background pass (a wake) may hold some of the due messages: its counts are this drain's too.
        if (pass) add(await pass.catch(() => ({ sent: 0, retried: 0, failed: 0 })));
        const c = await deliverDue();
        add(c);
        if (c.sent + c.retried + c.failed === 0 && !pass) return total;
      }
    },
    start(intervalMs = 5_000) {
      stopped = false;
      if (timer) return;
      timer = setInterval(background, intervalMs);
      timer.unref();
      background();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await pass?.catch(() => {});
      await transport.close?.();
    },
  };
}

function providerIdOf(res: unknown): string | null {
  const id = (res as { providerId?: unknown } | undefined)?.providerId;
  return typeof id === 'string' && id !== '' ? id.slice(0, 200) : null;
}
