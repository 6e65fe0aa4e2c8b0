/** Calendar dates (YYYY-MM-DD) as the domain uses them: no time zone, no time of day. */
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

export function isCalendarDate(value: string): boolean {
  const m = ISO_DATE.exec(value);
  if (!m) return false;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  if (y < 1800 || mo < 1 || mo > 12 || d < 1) return false;
  const dt = new Date(Date.UTC(y, mo - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === mo - 1 && dt.getUTCDate() === d;
}

/** Today's date in the UK (Europe/London), which decides when a role profile starts and ends. */
// Creating a formatter costs about a millisecond; formatting with one is cheap. en-CA formats as YYYY-MM-DD.
const ukFormatter = new Intl.DateTimeFormat('en-CA', {
  timeZone: 'Europe/London',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
});

// The date in London changes only on a whole minute (its offsets from UTC are whole hours), so the last answer holds
// for the rest of its minute: a sign-in asks several times.
let lastMinute = Number.NaN;
let lastDate = '';

export function ukDate(at: Date): string {
  const minute = Math.floor(at.getTime() / 60_000);
  if (minute !== lastMinute) {
    lastDate = ukFormatter.format(at);
    lastMinute = minute;
  }
  return lastDate;
}

/** The later of two calendar dates (YYYY-MM-DD strings order as dates). */
export function laterDate(a: string, b: string): string {
  return a < b ? b : a;
}
