import { loadConfig } from '../../config.ts';
import { AppError } from '../../domain/errors.ts';
import { bootstrapRaManager, raManagers } from '../../services/bootstrap.ts';
import { isDemoInstallation } from '../../services/demo.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

export const bootstrapCommand: Command = {
  summary: 'Create the first RA Manager of a fresh install and print their one-time enrolment link',
  help: `Usage: opencis bootstrap --ods CODE --org-name NAME [--org-type trust] --given-name NAME --family-name NAME
                         --date-of-birth YYYY-MM-DD --email ADDRESS [--ni-number AB123456C]

Creates the organisation (if it does not exist), a "Registration Authority Manager" position there (job role R5080),
the person, their role profile from today, and prints a one-time link (valid 24 hours) where they register a security
key or Windows Hello at AAL3. Whoever runs this on the server vouches for the person's identity.
Refused once an RA Manager exists: further RA staff are appointed by RA Managers.`,
  async run(args, io) {
    const { values } = parseOptions(args, {
      ods: { type: 'string' },
      'org-name': { type: 'string' },
      'org-type': { type: 'string' },
      'given-name': { type: 'string' },
      'family-name': { type: 'string' },
      'date-of-birth': { type: 'string' },
      email: { type: 'string' },
      'ni-number': { type: 'string' },
    });
    const required = ['ods', 'org-name', 'given-name', 'family-name', 'date-of-birth', 'email'] as const;
    const missing = required.filter((k) => !values[k]);
    if (missing.length > 0) throw new UsageError(`missing ${missing.map((m) => `--${m}`).join(', ')}`);
    const config = loadConfig();
    const res = await withOperatorContext(async (ctx) => {
      try {
        return await bootstrapRaManager(
          ctx,
          {
            odsCode: values.ods!,
            orgName: values['org-name']!,
            orgType: values['org-type'],
            givenName: values['given-name']!,
            familyName: values['family-name']!,
            dateOfBirth: values['date-of-birth']!,
            email: values.email!,
            niNumber: values['ni-number'],
          },
          config.PUBLIC_URL,
        );
      } catch (err) {
        if (!(err instanceof AppError) || err.code !== 'bootstrap.ra_manager_exists') throw err;
        // Say whom to ask, and how to get in on demo data, rather than a bare refusal.
        const managers = (await raManagers(ctx)).map((m) => `  ${m.userId}  ${m.name}, ${m.orgName} (${m.odsCode})`);
        const demo = config.DEMO_DATA && (await isDemoInstallation(ctx.repos));
        io.err(
          [
            `opencis bootstrap: ${err.message} [${err.code}]`,
            'RA Managers now (user ID, name, organisation):',
            ...managers,
            demo
              ? 'This is the demo data: Alex Morgan is the demo RA Manager. Start the server (npm start) and follow the one-time link it prints (README, "Quick start").'
              : 'Ask one of them to appoint you in the RA console (/ra), or find them there with "Find a person".',
          ].join('\n'),
        );
        return null;
      }
    });
    if (!res) return 1;
    io.out(`RA Manager created: user ID ${res.userId}`);
    io.out(`One-time enrolment link (valid ${res.expiresInHours} hours; give it only to that person):`);
    io.out(`  ${res.link}`);
    return 0;
  },
};
