import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's SoftHSM2 PKCS#11 module: the "card" of the tests and benchmarks (`apt-get install softhsm2`). */
export const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/**
 * Points SoftHSM2 at a throwaway token directory of this process's own and returns it. Call it before PKCS#11 is first
 * initialised in the process (SoftHSM2 reads SOFTHSM2_CONF once): at the top of a test file, before starting an agent.
 */
export function useThrowawaySoftHsm(prefix: string, extraConf = ''): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'tokens'));
  writeFileSync(
    join(dir, 'softhsm2.conf'),
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n${extraConf}`,
  );
  process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
  return dir;
}

/** A blank card in the reader, as the card maker ships it: a fresh token with the transport SO PIN. */
export function initBlankToken(transportSoPin: string, label = 'OpenCIS card'): void {
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--so-pin', transportSoPin, '--pin', '00000000'],
    { env: process.env, stdio: 'ignore' },
  );
}
