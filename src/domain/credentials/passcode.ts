/**
 * Smartcard passcode rules (DOMAIN §6): 6–8 digits, set by the holder, verified on the card — the server never sees
 * it. Passcodes anyone would guess first are refused (NIST SP 800-63B-4 §3.1.1.2: compare against commonly used
 * values): all one digit, ascending or descending runs, a repeated pair or triple, and a few well-known choices.
 */
export const PASSCODE_MIN = 6;
export const PASSCODE_MAX = 8;
/** Consecutive wrong passcodes that lock a card. */
export const PASSCODE_MAX_TRIES = 3;

const WELL_KNOWN = new Set([
  '121212',
  '123123',
  '112233',
  '696969',
  '131313',
  '12341234',
  '11223344',
  '2580',
  '147258',
  '159753',
  '123321',
  '654321',
  '102030',
]);

export type PasscodeProblem = 'not_digits' | 'wrong_length' | 'too_simple';

export function passcodeProblem(passcode: string): PasscodeProblem | null {
  if (!/^[0-9]+$/.test(passcode)) return 'not_digits';
  if (passcode.length < PASSCODE_MIN || passcode.length > PASSCODE_MAX) return 'wrong_length';
  if (isTooSimple(passcode)) return 'too_simple';
  return null;
}

function isTooSimple(p: string): boolean {
  if (WELL_KNOWN.has(p)) return true;
  if (/^(\d)\1+$/.test(p)) return true; // 000000
  const digits = [...p].map(Number);
  const steps = digits.slice(1).map((d, i) => (d - digits[i]! + 10) % 10);
  if (steps.every((s) => s === 1) || steps.every((s) => s === 9)) return true; // 123456, 987654, 890123
  for (const size of [2, 3, 4]) {
    if (p.length % size === 0 && p === p.slice(0, size).repeat(p.length / size)) return true; // 121212, 123123
  }
  return false;
}

export function describePasscodeProblem(problem: PasscodeProblem): string {
  switch (problem) {
    case 'not_digits':
      return 'The passcode must contain only the digits 0 to 9.';
    case 'wrong_length':
      return `The passcode must be ${PASSCODE_MIN} to ${PASSCODE_MAX} digits long.`;
    case 'too_simple':
      return 'That passcode is too easy to guess. Avoid repeated digits and runs such as 123456.';
  }
}
