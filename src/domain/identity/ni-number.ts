/**
 * National Insurance number rules (HMRC NIM39110): two prefix letters, six digits, suffix A–D.
 * First letter not D, F, I, Q, U, V; second letter not D, F, I, O, Q, U, V; prefixes BG, GB, KN, NK, NT, TN, ZZ
 * are not allocated. QQ is HMRC's documented example prefix, so it is accepted only where demo data is allowed.
 */
const SHAPE = /^([A-Z]{2})([0-9]{6})([A-D])$/;
const BAD_FIRST = new Set(['D', 'F', 'I', 'Q', 'U', 'V']);
const BAD_SECOND = new Set(['D', 'F', 'I', 'O', 'Q', 'U', 'V']);
const UNALLOCATED = new Set(['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ']);

/** Removes spaces and upper-cases, as people write NI numbers as "QQ 12 34 56 C". */
export function normaliseNiNumber(raw: string): string {
  return raw.replace(/\s+/g, '').toUpperCase();
}

export function isValidNiNumber(raw: string, options: { allowExamplePrefix?: boolean } = {}): boolean {
  const ni = normaliseNiNumber(raw);
  const m = SHAPE.exec(ni);
  if (!m) return false;
  const prefix = m[1]!;
  if (prefix === 'QQ') return options.allowExamplePrefix === true;
  if (BAD_FIRST.has(prefix[0]!) || BAD_SECOND.has(prefix[1]!)) return false;
  return !UNALLOCATED.has(prefix);
}
