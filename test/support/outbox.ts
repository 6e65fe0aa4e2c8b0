import type { Clock } from '../../src/services/context.ts';
import {
  createOutbox,
  type DeliverableMessage,
  type NotificationTransport,
  type OutboxSender,
} from '../../src/services/notifications.ts';
import type { Database } from '../../src/storage/database.ts';
import { TestClock, testSealer } from './context.ts';

/** An outbox (not polling: tests call drain) whose transport records what it was given, as the person would get it. */
export function recordingOutbox(
  db: Database,
  clock: Clock = new TestClock(),
  options: { maxAttempts?: number; transport?: NotificationTransport } = {},
): { outbox: OutboxSender; sent: DeliverableMessage[] } {
  const sent: DeliverableMessage[] = [];
  const transport = options.transport ?? { send: async (m: DeliverableMessage) => void sent.push(m) };
  const outbox = createOutbox({
    db,
    sealer: testSealer,
    transport,
    clock,
    maxAttempts: options.maxAttempts ?? 10,
    random: () => 0.5,
  });
  return { outbox, sent };
}
