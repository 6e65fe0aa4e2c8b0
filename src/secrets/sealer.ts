import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AuditKeyring, auditKeyring } from '../domain/audit/chain.ts';

/**
 * Envelope encryption for secrets OpenCIS must keep but never show: CA private keys, card unblock secrets, TOTP
 * seeds. AES-256-GCM with a random 96-bit nonce per value and the value's purpose as associated data, so a sealed card
 * secret cannot be replayed as, say, a TOTP seed. The key-encryption key comes from SECRETS_KEY (base64, 32 bytes) or,
 * for a single-node install, a file `secrets.key` in DATA_DIR created with mode 0600 on first start.
 *
 * The sealer also holds the keys the audit trail is keyed with (src/secrets/audit-keys.ts): like the secrets key, they
 * are never in the database.
 */
export interface Sealer {
  seal(plaintext: Buffer | string, purpose: string): string;
  open(sealed: string, purpose: string): Buffer;
  /** A key derived for one purpose (HMAC-SHA-256 of the purpose): e.g. the OpenID Connect cookie-signing keys. */
  derive(purpose: string): Buffer;
  /** The audit keys (newest first): by default only the one derived from the secrets key. */
  readonly auditKeys: AuditKeyring;
}

const VERSION = 'v1';

/** The purpose the default audit key is derived for (`AUDIT_KEY_FILE`'s `secrets-key` line names the same key). */
export const AUDIT_KEY_PURPOSE = 'audit-trail';

export function deriveKey(key: Buffer, purpose: string): Buffer {
  return createHmac('sha256', key).update(`opencis-derive:${purpose}`).digest();
}

export function createSealer(key: Buffer, options: { auditKeys?: AuditKeyring } = {}): Sealer {
  if (key.length !== 32) throw new Error('the secrets key must be 32 bytes');
  return {
    auditKeys: options.auditKeys ?? auditKeyring([deriveKey(key, AUDIT_KEY_PURPOSE)]),
    seal(plaintext, purpose) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(Buffer.from(purpose));
      const body = Buffer.concat([
        cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext) : plaintext),
        cipher.final(),
      ]);
      return [
        VERSION,
        nonce.toString('base64url'),
        body.toString('base64url'),
        cipher.getAuthTag().toString('base64url'),
      ].join('.');
    },
    derive(purpose) {
      return deriveKey(key, purpose);
    },
    open(sealed, purpose) {
      const [version, nonce, body, tag] = sealed.split('.');
      if (version !== VERSION || !nonce || body === undefined || !tag) throw new Error('not a sealed value');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(nonce, 'base64url'));
      decipher.setAAD(Buffer.from(purpose));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]);
    },
  };
}

/** The key from SECRETS_KEY, else from (or newly into) DATA_DIR/secrets.key. */
export function loadSecretsKey(options: { secretsKey?: string; dataDir: string }): Buffer {
  if (options.secretsKey) {
    const key = Buffer.from(options.secretsKey, 'base64');
    if (key.length !== 32) throw new Error('SECRETS_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)');
    return key;
  }
  const path = join(options.dataDir, 'secrets.key');
  if (existsSync(path)) {
    const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new Error(`${path} does not hold a 32-byte base64 key`);
    return key;
  }
  mkdirSync(options.dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  return key;
}
