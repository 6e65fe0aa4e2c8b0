import { loadConfig } from '../../config.ts';
import { createEnrolmentInvitation } from '../../services/enrolment.ts';
import { removeTotp, totpAuthenticatorsOf } from '../../services/totp.ts';
import { removeWebauthnCredential, webauthnCredentialsOf } from '../../services/webauthn.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

export const authenticatorCommand: Command = {
  summary: 'Security keys, passkeys and authenticator apps: one-time enrolment links, list, remove',
  help: `Usage: opencis authenticator invite USER_ID [--aal 2|3]
       opencis authenticator list USER_ID
       opencis authenticator remove USER_ID ID

invite  prints a one-time link (valid 24 hours) where the person registers a security key or Windows Hello; with
        --aal 3 (default) a key with trusted attestation is AAL3, with --aal 2 only AAL2 keys may be added.
list    the person's WebAuthn credentials (webauthn:ID) and authenticator apps (totp:ID)
remove  removes one (ID as shown by list); sessions it opened end`,
  async run(args, io) {
    const { values, positionals } = parseOptions(args, { aal: { type: 'string' } }, 3);
    const [verb, userId, id] = positionals;
    if (!userId) throw new UsageError('a USER_ID is needed');
    switch (verb) {
      case 'invite': {
        const aal = values.aal === undefined ? 3 : Number(values.aal);
        if (aal !== 2 && aal !== 3) throw new UsageError('--aal is 2 or 3');
        const config = loadConfig();
        const token = await withOperatorContext((ctx) => createEnrolmentInvitation(ctx, { userId, maxAal: aal }));
        io.out(
          `One-time enrolment link (valid 24 hours; give it only to that person):\n  ${config.PUBLIC_URL}/enrol/invite?t=${token}`,
        );
        return 0;
      }
      case 'list': {
        const { keys, apps } = await withOperatorContext(async (ctx) => ({
          keys: await webauthnCredentialsOf(ctx, userId),
          apps: await totpAuthenticatorsOf(ctx, userId),
        }));
        if (keys.length + apps.length === 0) io.out('no authenticators');
        for (const k of keys) io.out(`webauthn:${k.credentialId}  ${k.kind}  AAL${k.aal}  ${k.nickname}`);
        for (const a of apps) io.out(`totp:${a.totpId}  authenticator app  AAL2  ${a.nickname}`);
        return 0;
      }
      case 'remove': {
        if (!id) throw new UsageError('remove needs an ID (see list)');
        await withOperatorContext(async (ctx) => {
          if (id.startsWith('webauthn:')) await removeWebauthnCredential(ctx, userId, id.slice(9));
          else if (id.startsWith('totp:')) await removeTotp(ctx, userId, id.slice(5));
          else throw new UsageError('the ID starts with webauthn: or totp:');
        });
        io.out(`removed ${id}`);
        return 0;
      }
      default:
        throw new UsageError('expected invite, list or remove');
    }
  },
};
