import { readFileSync } from 'node:fs';
import { type AuditKeyring, auditKeyring } from '../domain/audit/chain.ts';
import { AUDIT_KEY_PURPOSE, deriveKey } from './sealer.ts';

/** The line of AUDIT_KEY_FILE that stands for the key derived from SECRETS_KEY (the default audit key). */
export const SECRETS_KEY_LINE = 'secrets-key';

/**
 * The audit keyring. Without AUDIT_KEY_FILE: the one key derived from the secrets key. With it: the file's keys, one per
 * line, newest first — a 32-byte key in base64 (`openssl rand -base64 32`), or `secrets-key` for the derived one (so
 * that what it signed before a move to a key file still verifies); blank lines and `#` comments are skipped. The first
 * key signs; the others only verify. Rotating: put the new key on the first line and keep the old ones below it.
 */
export function loadAuditKeyring(options: { auditKeyFile?: string; secretsKey: Buffer }): AuditKeyring {
  const derived = deriveKey(options.secretsKey, AUDIT_KEY_PURPOSE);
  if (!options.auditKeyFile) return auditKeyring([derived]);
  let text: string;
  try {
    text = readFileSync(options.auditKeyFile, 'utf8');
  } catch (err) {
    throw new Error(`AUDIT_KEY_FILE ${options.auditKeyFile} cannot be read: ${(err as NodeJS.ErrnoException).code}`);
  }
  return parseAuditKeyFile(text, derived, options.auditKeyFile);
}

export function parseAuditKeyFile(text: string, derived: Buffer, name = 'AUDIT_KEY_FILE'): AuditKeyring {
  const secrets: Buffer[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line === SECRETS_KEY_LINE) {
      secrets.push(derived);
      continue;
    }
    const key = /^[A-Za-z0-9+/]{43}=$/.test(line) ? Buffer.from(line, 'base64') : null;
    if (key?.length !== 32) {
      throw new Error(
        `${name} line ${i + 1}: expected a 32-byte base64 key (openssl rand -base64 32) or "${SECRETS_KEY_LINE}"`,
      );
    }
    secrets.push(key);
  }
  if (secrets.length === 0) throw new Error(`${name} holds no key`);
  try {
    return auditKeyring(secrets);
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}`);
  }
}
