import { randomBytes } from 'node:crypto';
import type { Actor } from '../../src/domain/policy.ts';
import { outboundPolicy } from '../../src/net/outbound.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { type Clock, type ServiceContext, serviceContext } from '../../src/services/context.ts';
import type { Database } from '../../src/storage/database.ts';

/**
 * A clock tests move by hand. A stopped clock (the default) stands still between moves; a running one (`running()`,
 * for browser journeys where real time passes, e.g. TOTP steps) keeps real time plus the moves made.
 */
export class TestClock implements Clock {
  private offsetMs: number;
  constructor(
    start: Date = new Date('2026-11-26T09:00:00Z'),
    private readonly live = false,
  ) {
    this.offsetMs = live ? start.getTime() - Date.now() : start.getTime();
  }
  static running(): TestClock {
    return new TestClock(new Date(), true);
  }
  now(): Date {
    return new Date(this.live ? Date.now() + this.offsetMs : this.offsetMs);
  }
  set(at: Date | string): void {
    const target = new Date(at).getTime();
    this.offsetMs = this.live ? target - Date.now() : target;
  }
  advanceDays(days: number): void {
    this.offsetMs += days * 86_400_000;
  }
}

/** One random secrets key per test process; child `opencis` processes on a test database get it as SECRETS_KEY. */
export const TEST_SECRETS_KEY = randomBytes(32).toString('base64');
export const testSealer = createSealer(Buffer.from(TEST_SECRETS_KEY, 'base64'));

/**
 * Test relying parties listen on loopback over http: the test environment allows that for the server's own requests
 * (OUTBOUND_ALLOWED_RANGES / OUTBOUND_ALLOW_HTTP). test/net/outbound.security.test.ts runs without it.
 */
export const TEST_OUTBOUND_ENV = { OUTBOUND_ALLOWED_RANGES: '127.0.0.0/8,::1', OUTBOUND_ALLOW_HTTP: 'true' };
export const TEST_OUTBOUND = outboundPolicy(TEST_OUTBOUND_ENV.OUTBOUND_ALLOWED_RANGES, true);

export const operator: Actor = { kind: 'operator', id: 'cli:test@host' };

export function testContext(
  db: Database,
  overrides: Partial<Omit<ServiceContext, 'repos' | 'transaction'>> = {},
): ServiceContext {
  // Built after the overrides: the repositories and the unit of work are on the database the context names.
  return serviceContext({
    db,
    clock: overrides.clock ?? new TestClock(),
    actor: operator,
    requestId: 'test-request',
    allowExampleNiPrefix: true,
    sealer: testSealer,
    outbound: TEST_OUTBOUND,
    ...overrides,
  });
}
