import { readFileSync } from 'node:fs';
import {
  activeUpstreamProvider,
  listUpstreamIdps,
  registerUpstreamIdp,
  setUpstreamIdpStatus,
} from '../../services/upstream-idps.ts';
import { linkUpstreamAccount, unlinkUpstreamAccount, upstreamLinksOf } from '../../services/upstream-links.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

/** The client secret, from a file ("-": standard input), never from the command line (other users see that). */
function readSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --client-secret-file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const secret = text.split(/\r?\n/)[0]!.trim();
  if (!secret) throw new UsageError('--client-secret-file is empty');
  return secret;
}

export const idpCommand: Command = {
  summary: 'Upstream identity providers (NHSmail / Entra ID): register, list, disable, enable, link accounts',
  help: `Usage: opencis idp register --id ID --name NAME --issuer URL --client-id ID --client-secret-file FILE|-
                            --ods CODE [--ods CODE …] [--subject-claim sub|oid]
       opencis idp list
       opencis idp disable ID | enable ID
       opencis idp link USER_ID --idp ID --subject SUBJECT
       opencis idp links USER_ID
       opencis idp unlink USER_ID LINK_ID

register  an organisation's own OpenID Connect provider (NHSmail is Microsoft Entra ID: issuer
          https://login.microsoftonline.com/TENANT/v2.0) through which its people may sign in at AAL2 (CIS2's
          AAL2_NHSMAIL, amr NHSMAIL) once their account there is linked to their record. OpenCIS is registered at the
          provider with the redirect URI PUBLIC_URL/signin/upstream/callback; give its client ID and, in a file or on
          standard input, its client secret (kept sealed). --ods (repeatable): the organisations, with their
          subtrees, whose people may use it. --subject-claim: the ID token claim naming an account (default sub; for
          Entra ID use oid, which never changes).
list      the registered providers
disable   stops sign-ins through it at once (links are kept); enable restores it
link      links an account at the provider (its subject claim's value) to a person's record, as an RA would
links     a person's linked accounts; unlink removes one (sessions signed in through it end)

Exit codes: 0 done, 1 refused (invalid registration, unknown ID, not offered to the person's organisation), 2 usage
error.`,
  async run(args, io) {
    const { values, positionals } = parseOptions(
      args,
      {
        id: { type: 'string' },
        name: { type: 'string' },
        issuer: { type: 'string' },
        'client-id': { type: 'string' },
        'client-secret-file': { type: 'string' },
        ods: { type: 'string', multiple: true },
        'subject-claim': { type: 'string' },
        idp: { type: 'string' },
        subject: { type: 'string' },
      },
      3,
    );
    const [verb, first, second] = positionals;
    switch (verb) {
      case 'register': {
        if (first) throw new UsageError(`unexpected argument "${first}"`);
        for (const name of ['id', 'name', 'issuer', 'client-id', 'client-secret-file'] as const) {
          if (!values[name]) throw new UsageError(`register needs --${name}`);
        }
        if (!values.ods?.length) throw new UsageError('register needs at least one --ods');
        const claim = values['subject-claim'];
        if (claim !== undefined && claim !== 'sub' && claim !== 'oid')
          throw new UsageError('--subject-claim is sub or oid');
        const clientSecret = readSecret(values['client-secret-file']!);
        const idp = await withOperatorContext((ctx) =>
          registerUpstreamIdp(ctx, {
            idpId: values.id,
            name: values.name,
            issuer: values.issuer,
            clientId: values['client-id'],
            clientSecret,
            allowedOdsCodes: values.ods,
            ...(claim ? { subjectClaim: claim } : {}),
          }),
        );
        io.out(`idp            ${idp.idpId}`);
        io.out(`issuer         ${idp.issuer}`);
        io.out(`organisations  ${idp.allowedOdsCodes.join(' ')}`);
        io.out('Register this redirect URI at the provider: PUBLIC_URL/signin/upstream/callback');
        return 0;
      }
      case 'list': {
        if (first) throw new UsageError(`unexpected argument "${first}"`);
        const idps = await withOperatorContext((ctx) => listUpstreamIdps(ctx.repos));
        if (idps.length === 0) io.out('no upstream identity providers');
        for (const i of idps) {
          io.out(
            `${i.idpId}  ${i.status.padEnd(8)}  ${i.issuer}  ${i.subjectClaim}  ${i.allowedOdsCodes.join(',')}  ${i.name}`,
          );
        }
        return 0;
      }
      case 'disable':
      case 'enable': {
        if (!first) throw new UsageError(`${verb} needs an ID`);
        await withOperatorContext((ctx) =>
          setUpstreamIdpStatus(ctx, first, verb === 'disable' ? 'disabled' : 'active'),
        );
        io.out(`idp ${first} ${verb}d`);
        return 0;
      }
      case 'link': {
        if (!first) throw new UsageError('link needs a USER_ID');
        if (!values.idp || !values.subject) throw new UsageError('link needs --idp and --subject');
        const link = await withOperatorContext(async (ctx) =>
          linkUpstreamAccount(ctx, await activeUpstreamProvider(ctx, values.idp!), {
            userId: first,
            subject: values.subject,
          }),
        );
        io.out(`linked ${link.linkId}  ${link.idpId}  ${link.subject}`);
        return 0;
      }
      case 'links': {
        if (!first) throw new UsageError('links needs a USER_ID');
        const links = await withOperatorContext((ctx) => upstreamLinksOf(ctx.repos, first));
        if (links.length === 0) io.out('no linked accounts');
        for (const l of links) io.out(`${l.linkId}  ${l.idpId}  ${l.subject}  linked ${l.createdAt}`);
        return 0;
      }
      case 'unlink': {
        if (!first || !second) throw new UsageError('unlink needs a USER_ID and a LINK_ID');
        await withOperatorContext((ctx) => unlinkUpstreamAccount(ctx, first, second));
        io.out(`unlinked ${second}`);
        return 0;
      }
      default:
        throw new UsageError('expected register, list, disable, enable, link, links or unlink');
    }
  },
};
