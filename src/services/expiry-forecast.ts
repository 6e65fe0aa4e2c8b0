import { alertThreshold, DAY_MS } from '../domain/credentials/expiry-spread.ts';
import { ukDate } from '../domain/dates.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/**
 * The expiry forecast: how many valid card certificates expire on each day of the coming months, and the days that
 * hold more than the alert share of the period's expiries (an expiry wave the RAs must prepare for: renewals invited
 * early, desk time booked). Read by the RA report, `opencis card forecast` and the alert metric.
 */
export interface ExpiryForecastDay {
  date: string;
  expiring: number;
  /** More than the alert threshold. */
  wave: boolean;
}

export interface ExpiryForecast {
  from: string;
  to: string;
  total: number;
  alertPercent: number;
  /** A day holding more than this many expiries is a wave. */
  threshold: number;
  peak: { date: string; expiring: number; percent: number } | null;
  /** Every day from `from` to `to`, quiet ones included. */
  days: ExpiryForecastDay[];
  waveDays: string[];
}

export interface ExpiryForecastOptions {
  /** How many days ahead (365: the next 12 months). */
  days: number;
  alertPercent: number;
  /** Only the certificates of people in these organisations (null: everyone's). */
  odsCodes?: readonly string[] | null;
}

export async function expiryForecast(
  repos: Repositories,
  now: Date,
  options: ExpiryForecastOptions,
): Promise<ExpiryForecast> {
  const until = new Date(now.getTime() + options.days * DAY_MS);
  const rows = await repos.certificates.expiriesPerDay(now, until, options.odsCodes ? [...options.odsCodes] : null);
  const counts = new Map(rows.map((r) => [r.day, Number(r.n)]));
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const threshold = alertThreshold(total, options.alertPercent);
  const from = ukDate(now);
  const to = ukDate(until);
  const days: ExpiryForecastDay[] = [];
  for (let day = from; day <= to; day = nextDay(day)) {
    const expiring = counts.get(day) ?? 0;
    days.push({ date: day, expiring, wave: expiring > threshold });
  }
  let peak: ExpiryForecast['peak'] = null;
  for (const d of days) {
    if (d.expiring > 0 && (!peak || d.expiring > peak.expiring)) {
      peak = { date: d.date, expiring: d.expiring, percent: Math.round((d.expiring / total) * 1000) / 10 };
    }
  }
  return {
    from,
    to,
    total,
    alertPercent: options.alertPercent,
    threshold,
    peak,
    days,
    waveDays: days.filter((d) => d.wave).map((d) => d.date),
  };
}

function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}
