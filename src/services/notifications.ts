import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Queryable } from '../storage/database.ts';

/**
 * Messages to people go through a transport chosen by configuration: a file (JSON lines, the default, for a mail or
 * SMS relay to pick up or for a developer to read) or, later, SMTP / an SMS gateway. The database keeps a record that a
 * message was sent, never its secret content (one-time codes exist only in the message itself).
 */
export interface OutgoingMessage {
  userId: string;
  channel: 'email' | 'mobile';
  to: string;
  template: string;
  subject: string;
  text: string;
}

export interface NotificationTransport {
  send(message: OutgoingMessage): Promise<void>;
}

export function fileTransport(path: string): NotificationTransport {
  let ready: Promise<unknown> | undefined;
  return {
    async send(message) {
      ready ??= mkdir(dirname(path), { recursive: true });
      await ready;
      await appendFile(path, `${JSON.stringify({ at: new Date().toISOString(), ...message })}\n`, { mode: 0o600 });
    },
  };
}

/** Records and sends one message. With a dedupe key, a message already sent under that key is not sent again. */
export async function notify(
  q: Queryable,
  transport: NotificationTransport,
  message: OutgoingMessage,
  at: Date,
  dedupeKey: string | null = null,
): Promise<boolean> {
  const { rows } = await q.query<{ notification_id: string }>(
    `INSERT INTO notifications (user_id, channel, template, dedupe_key, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (dedupe_key) DO NOTHING RETURNING notification_id`,
    [message.userId, message.channel, message.template, dedupeKey, at],
  );
  if (rows.length === 0) return false;
  await transport.send(message);
  await q.query('UPDATE notifications SET sent_at = $2 WHERE notification_id = $1', [rows[0]!.notification_id, at]);
  return true;
}
