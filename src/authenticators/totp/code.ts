import { timingSafeEqual } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { z } from 'zod';

/**
 * TOTP as a library (no database): the code an authenticator app shows, checked against its secret
 * (services/totp.ts keeps the sealed secrets and the last step used).
 */
/** RFC 6238 with the parameters every authenticator app supports: SHA-1, 6 digits, 30-second steps. */
const PERIOD_S = 30;
export const codeSchema = z.string().regex(/^[0-9]{6}$/);

export function totpFor(secret: OTPAuth.Secret, userId: string, issuer: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ issuer, label: userId, algorithm: 'SHA1', digits: 6, period: PERIOD_S, secret });
}

/**
 * The time step a code belongs to, if it is the code for the current step or one step either side (clock drift); null
 * otherwise. Two steps off is refused. Comparison is constant-time.
 */
export function matchingStep(secret: OTPAuth.Secret, code: string, now: Date): number | null {
  const step = Math.floor(now.getTime() / 1000 / PERIOD_S);
  const totp = new OTPAuth.TOTP({ algorithm: 'SHA1', digits: 6, period: PERIOD_S, secret });
  let found: number | null = null;
  for (const delta of [-1, 0, 1]) {
    const expected = Buffer.from(totp.generate({ timestamp: (step + delta) * PERIOD_S * 1000 }));
    if (timingSafeEqual(expected, Buffer.from(code.padEnd(6, 'x').slice(0, 6))) && found === null) found = step + delta;
  }
  return found;
}
