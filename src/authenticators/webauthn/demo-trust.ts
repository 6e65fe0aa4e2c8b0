import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AttestationRoots, parsePemBundle } from './attestation-trust.ts';

/**
 * Demo mode's one trusted key maker: Chromium's built-in virtual security key (DevTools → WebAuthn), so that a newcomer
 * reaches the RA console at AAL3 with nothing but the browser (issue #14). Its attestation private key is public, so
 * it is trusted only in demo mode — DEMO_DATA on and a database seeded with the demo data — and never otherwise
 * (data/demo/README.md).
 */
export const DEMO_AAGUID = '01020304-0506-0708-0102-030405060708';

const DEMO_ROOT_FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'data',
  'demo',
  'chromium-virtual-authenticator.pem',
);

/** The configured roots plus the demo's. */
export function withDemoRoot(roots: AttestationRoots): AttestationRoots {
  const demo = parsePemBundle(readFileSync(DEMO_ROOT_FILE, 'utf8'));
  return { roots: () => [...roots.roots(), ...demo] };
}
