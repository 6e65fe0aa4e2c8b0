import { randomBytes } from 'node:crypto';
import type { Actor } from '../../src/domain/policy.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import type { Clock, ServiceContext } from '../../src/services/context.ts';
import type { Database } from '../../src/storage/database.ts';

/** A clock tests move by hand. */
export class TestClock implements Clock {
  constructor(private current: Date = new Date('2026-11-26T09:00:00Z')) {}
  now(): Date {
    return new Date(this.current);
  }
  set(at: Date | string): void {
    this.current = new Date(at);
  }
  advanceDays(days: number): void {
    this.current = new Date(this.current.getTime() + days * 86_400_000);
  }
}

/** One random key per test process. */
export const testSealer = createSealer(randomBytes(32));

export const operator: Actor = { kind: 'operator', id: 'cli:test@host' };

export function testContext(db: Database, overrides: Partial<ServiceContext> = {}): ServiceContext {
  return {
    db,
    clock: overrides.clock ?? new TestClock(),
    actor: operator,
    requestId: 'test-request',
    allowExampleNiPrefix: true,
    sealer: testSealer,
    ...overrides,
  };
}
