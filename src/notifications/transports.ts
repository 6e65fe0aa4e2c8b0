import { readFileSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import axios, { isAxiosError } from 'axios';
import nodemailer from 'nodemailer';
import { NotifyClient } from 'notifications-node-client';
import { type Config, ConfigError } from '../config.ts';
import {
  ALL_CHANNELS,
  type Channel,
  type DeliverableMessage,
  DeliveryError,
  type NotificationTransport,
} from '../services/notifications.ts';

/**
 * The transports the outbox sends through (services/notifications.ts), one chosen by NOTIFICATIONS_TRANSPORT: SMTP
 * (nodemailer), GOV.UK Notify (its official client, notifications-node-client — the service NHS England sends email
 * and text messages with), or a JSON-lines file for development. Each classifies a refusal as permanent (retrying
 * cannot help: the server rejected the address) or temporary (down, busy, timed out: the outbox retries).
 */
export function fileTransport(path: string): NotificationTransport {
  let ready: Promise<unknown> | undefined;
  return {
    channels: ALL_CHANNELS,
    async send(message) {
      ready ??= mkdir(dirname(path), { recursive: true });
      await ready;
      await appendFile(path, `${JSON.stringify({ at: new Date().toISOString(), ...message })}\n`, { mode: 0o600 });
    },
  };
}

export interface SmtpSettings {
  host: string;
  port?: number;
  security: 'starttls' | 'tls' | 'none';
  user?: string;
  password?: string;
  from: string;
  /** PEM of the CA certificates the server's certificate must chain to (default: the system's). */
  ca?: string;
}

const EMAIL_ONLY: ReadonlySet<Channel> = new Set(['email']);

export function smtpTransport(settings: SmtpSettings): NotificationTransport {
  const mailer = nodemailer.createTransport({
    host: settings.host,
    port: settings.port ?? (settings.security === 'tls' ? 465 : settings.security === 'none' ? 25 : 587),
    secure: settings.security === 'tls',
    // starttls: refuse to send when the server does not offer STARTTLS (no silent downgrade to clear text).
    requireTLS: settings.security === 'starttls',
    ignoreTLS: settings.security === 'none',
    ...(settings.user !== undefined ? { auth: { user: settings.user, pass: settings.password ?? '' } } : {}),
    tls: { minVersion: 'TLSv1.2', rejectUnauthorized: true, ...(settings.ca ? { ca: settings.ca } : {}) },
    pool: true,
    maxConnections: 3,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
  return {
    channels: EMAIL_ONLY,
    async send(message) {
      if (message.channel !== 'email') throw new DeliveryError('SMTP sends email only', true);
      try {
        const info = await mailer.sendMail({
          from: settings.from,
          to: message.to,
          subject: message.subject,
          text: message.text,
          headers: { 'X-OpenCIS-Reference': message.reference },
        });
        if (info.rejected.length > 0) throw new DeliveryError(`the mail server rejected the address`, true);
        return { providerId: info.messageId };
      } catch (err) {
        if (err instanceof DeliveryError) throw err;
        const e = err as Error & { responseCode?: number; code?: string };
        // 5xx is the server's final word on this message (550 no such mailbox); a failed login may be fixed by the
        // operator, and 4xx, timeouts and refused connections pass: all retried.
        const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500 && e.code !== 'EAUTH';
        throw new DeliveryError(`SMTP: ${e.code ?? 'error'} ${e.message}`, permanent);
      }
    },
    async close() {
      mailer.close();
    },
  };
}

export interface NotifySettings {
  apiKey: string;
  baseUrl: string;
  emailTemplateId: string;
  smsTemplateId?: string;
}

/**
 * GOV.UK Notify: every message through one generic template per channel, whose content is the personalisation
 * (`((subject))`, `((body))`). `reference` names the outbox row, so a message can be traced in Notify's records.
 */
export function notifyTransport(settings: NotifySettings): NotificationTransport {
  const client = new NotifyClient(settings.baseUrl, settings.apiKey);
  // The client sets no timeout of its own: a Notify that stops answering must not hold a message for ever.
  // (The client's types name axios's CommonJS declarations; the instance is the same.)
  client.setClient(axios.create({ timeout: 15_000 }) as unknown as Parameters<NotifyClient['setClient']>[0]);
  return {
    channels: settings.smsTemplateId ? ALL_CHANNELS : EMAIL_ONLY,
    async send(message: DeliverableMessage) {
      try {
        const res =
          message.channel === 'email'
            ? await client.sendEmail(settings.emailTemplateId, message.to, {
                personalisation: { subject: message.subject, body: message.text },
                reference: message.reference,
              })
            : settings.smsTemplateId
              ? await client.sendSms(settings.smsTemplateId, message.to, {
                  personalisation: { body: message.text },
                  reference: message.reference,
                })
              : undefined;
        if (!res) throw new DeliveryError('no Notify text message template (NOTIFY_SMS_TEMPLATE_ID)', true);
        return { providerId: String((res.data as { id?: unknown }).id ?? '') };
      } catch (err) {
        if (err instanceof DeliveryError) throw err;
        if (!isAxiosError(err)) throw new DeliveryError(`GOV.UK Notify: ${(err as Error).message}`, false);
        const status = err.response?.status;
        const errors = (err.response?.data as { errors?: { error?: string; message?: string }[] } | undefined)?.errors;
        const said = Array.isArray(errors) ? errors.map((e) => `${e.error}: ${e.message}`).join('; ') : err.message;
        // 400 is Notify's answer to this message (an invalid number, a missing personalisation); a 403 (token, key)
        // can be a clock or key to fix, and 429 and 5xx pass: retried.
        throw new DeliveryError(`GOV.UK Notify ${status ?? err.code ?? 'error'}: ${said}`, status === 400);
      }
    },
  };
}

function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`SMTP_CA_FILE: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(['SMTP_CA_FILE: holds no PEM certificate']);
  }
  return pem;
}

/** The transport the configuration names (loadConfig has checked the combinations). */
export function transportFromConfig(config: Config): NotificationTransport {
  switch (config.NOTIFICATIONS_TRANSPORT) {
    case 'smtp':
      return smtpTransport({
        host: config.SMTP_HOST!,
        port: config.SMTP_PORT,
        security: config.SMTP_SECURITY,
        user: config.SMTP_USER,
        password: config.SMTP_PASSWORD,
        from: config.SMTP_FROM!,
        ca: config.SMTP_CA_FILE ? readCaFile(config.SMTP_CA_FILE) : undefined,
      });
    case 'notify':
      return notifyTransport({
        apiKey: config.NOTIFY_API_KEY!,
        baseUrl: config.NOTIFY_BASE_URL.replace(/\/+$/, ''),
        emailTemplateId: config.NOTIFY_EMAIL_TEMPLATE_ID!,
        smsTemplateId: config.NOTIFY_SMS_TEMPLATE_ID,
      });
    default:
      return fileTransport(config.NOTIFICATIONS_FILE ?? join(config.DATA_DIR, 'outbox', 'notifications.jsonl'));
  }
}
