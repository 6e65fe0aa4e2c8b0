/**
 * 12-digit national identifiers (user ID, role profile ID, person-org ID).
 *
 * NHS CIS prints the 12-digit user ID on the smartcard and people read it out over the phone, so the last digit is a
 * Luhn check digit: one mistyped digit or a swap of two neighbours is caught before any search runs.
 * The first 11 digits come from a database sequence, which never hands out the same number twice (even when a
 * transaction rolls back), so an ID is never reused.
 */
export function luhnCheckDigit(digits: string): number {
  let sum = 0;
  // Luhn: double every second digit counting from the right of the payload (the check digit will sit to its right).
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/** Builds a 12-digit ID from an 11-digit sequence number (the sequences start at 10^10, see the migrations). */
export function nationalIdFromSequence(n: bigint | number | string): string {
  const value = BigInt(n);
  if (value < 10_000_000_000n || value >= 100_000_000_000n)
    throw new RangeError('sequence out of range for a 12-digit ID');
  const payload = value.toString();
  return payload + String(luhnCheckDigit(payload));
}

export function isNationalId(value: string): boolean {
  if (!/^[1-9][0-9]{11}$/.test(value)) return false;
  return luhnCheckDigit(value.slice(0, 11)) === value.charCodeAt(11) - 48;
}
