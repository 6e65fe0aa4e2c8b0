import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Clock } from '../services/context.ts';
import { type ExpiryForecast, expiryForecast } from '../services/expiry-forecast.ts';
import type { OutboxSender } from '../services/notifications.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/** How long one node reuses the expiry forecast it read for a scrape (Prometheus scrapes every 15–60 s). */
const READ_EVERY_MS = 30_000;

/**
 * Metrics of the service's operation: the notification outbox (queued and failed, cluster-wide from the table; sent,
 * retried and failed by this node) and the certificate expiry forecast with its expiry-wave alert. A scrape while the
 * database is unreachable keeps the last values: /metrics itself never fails.
 */
export function installOperationsMetrics(
  registry: Registry,
  deps: { repos: Repositories; clock: Clock; config: Config; outbox: OutboxSender },
): void {
  const sent = new Counter({
    name: 'opencis_notifications_sent_total',
    help: 'Messages this node delivered to the transport.',
    registers: [registry],
  });
  const retried = new Counter({
    name: 'opencis_notification_retries_total',
    help: 'Deliveries by this node that failed and will be retried.',
    registers: [registry],
  });
  const failed = new Counter({
    name: 'opencis_notifications_failed_total',
    help: 'Messages this node marked failed (refused, expired, or out of attempts).',
    registers: [registry],
  });
  deps.outbox.events.onSent = (n) => sent.inc(n);
  deps.outbox.events.onRetry = (n) => retried.inc(n);
  deps.outbox.events.onFailed = (n) => failed.inc(n);

  // Read at every scrape (two counts on partial indexes); an unreachable database keeps the last values.
  let outboxRead: { queued: number; failed: number } | undefined;
  new Gauge({
    name: 'opencis_notification_outbox',
    help: 'Messages in the outbox by state, across the cluster: queued (waiting or being retried) and failed.',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      try {
        outboxRead = await deps.repos.operations.outboxCounts();
      } catch {
        // the last values stand
      }
      if (outboxRead) {
        this.set({ state: 'queued' }, outboxRead.queued);
        this.set({ state: 'failed' }, outboxRead.failed);
      }
    },
  });

  let forecastRead: { at: number; forecast: ExpiryForecast } | undefined;
  const forecast = async (): Promise<ExpiryForecast | undefined> => {
    if (!forecastRead || Date.now() - forecastRead.at > READ_EVERY_MS) {
      try {
        forecastRead = {
          at: Date.now(),
          forecast: await expiryForecast(deps.repos, deps.clock.now(), {
            days: 365,
            alertPercent: deps.config.CARD_EXPIRY_ALERT_PERCENT,
          }),
        };
      } catch {
        // unreachable database: the last values stand
      }
    }
    return forecastRead?.forecast;
  };
  new Gauge({
    name: 'opencis_certificate_expiries_next_year',
    help: 'Valid card certificates expiring in the next 12 months.',
    registers: [registry],
    async collect() {
      const f = await forecast();
      if (f) this.set(f.total);
    },
  });
  new Gauge({
    name: 'opencis_certificate_expiry_peak_day',
    help: 'Certificates expiring on the busiest day of the next 12 months.',
    registers: [registry],
    async collect() {
      const f = await forecast();
      if (f) this.set(f.peak?.expiring ?? 0);
    },
  });
  new Gauge({
    name: 'opencis_certificate_expiry_wave_days',
    help: "Days in the next 12 months holding more than CARD_EXPIRY_ALERT_PERCENT of the period's expiries.",
    registers: [registry],
    async collect() {
      const f = await forecast();
      if (f) this.set(f.waveDays.length);
    },
  });
  new Gauge({
    name: 'opencis_certificate_expiry_wave_alert',
    help: 'Expiry-wave alert: 1 when a day in the next 12 months exceeds the CARD_EXPIRY_ALERT_PERCENT share, else 0.',
    registers: [registry],
    async collect() {
      const f = await forecast();
      if (f) this.set(f.waveDays.length > 0 ? 1 : 0);
    },
  });
}
