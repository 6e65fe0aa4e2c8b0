import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { cardLoginMessage } from '../../src/domain/credentials/card-login.ts';

/**
 * A key pair standing in for the key on a card, for tests of the server's side of the card protocol. The end-to-end
 * tests use the real card agent and a SoftHSM2 token instead.
 */
export class SoftwareCardKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  constructor() {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }
  spkiBase64(): string {
    return this.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  }
  sign(origin: string, challenge: string): string {
    return sign('sha256', cardLoginMessage(origin, challenge), {
      key: this.privateKey,
      dsaEncoding: 'ieee-p1363',
    }).toString('base64url');
  }
}
