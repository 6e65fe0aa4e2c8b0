/**
 * Expiry waves (the 2022 CIS incident: about 140,000 smartcard certificates issued in one campaign expired together,
 * and the RAs could not renew them in time). A certificate's end is moved to the least busy day within ± `spreadDays`
 * of its nominal end, so certificates issued together expire over a month instead of on one day: 10,000 issued at
 * once expire at most ⌈10,000 / 29⌉ = 345 a day with the default ± 14 days.
 */
export const DAY_MS = 86_400_000;

/** The nominal end moved by whole days, one entry per offset −spreadDays … +spreadDays. */
export function expiryCandidates(nominal: Date, spreadDays: number): Date[] {
  const out: Date[] = [];
  for (let offset = -spreadDays; offset <= spreadDays; offset++)
    out.push(new Date(nominal.getTime() + offset * DAY_MS));
  return out;
}

/**
 * Picks the candidate whose day holds the fewest expiries (`dayOf` names a candidate's day, `load` counts what
 * already expires on it); ties are broken at random so that equally quiet days fill evenly.
 */
export function leastBusyExpiry(
  candidates: readonly Date[],
  dayOf: (at: Date) => string,
  load: ReadonlyMap<string, number>,
  randomIndex: (n: number) => number,
): Date {
  let best: Date[] = [];
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const n = load.get(dayOf(c)) ?? 0;
    if (n < bestLoad) {
      bestLoad = n;
      best = [c];
    } else if (n === bestLoad) best.push(c);
  }
  if (best.length === 0) throw new Error('no candidate expiry');
  return best[randomIndex(best.length)]!;
}

/**
 * Days whose expiries exceed the alert share of the period's total. A day with at most `minimum` expiries is never a
 * wave: in a small deployment one day may hold a large share of very few certificates and the RA can still renew them.
 */
export function alertThreshold(total: number, alertPercent: number, minimum = 10): number {
  return Math.max(Math.floor((total * alertPercent) / 100), minimum);
}
