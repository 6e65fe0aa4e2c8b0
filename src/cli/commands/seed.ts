import { demoDataExists, seedDemo } from '../../services/demo.ts';
import { seedSynthetic } from '../../services/synthetic.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

export const seedCommand: Command = {
  summary: 'Seed demo data, or synthetic data at national scale',
  help: `Usage: opencis seed --demo
       opencis seed --synthetic N [--batch 20000]

--demo         demonstration organisations, positions and people (skipped if already there). NI numbers use the
               example prefix QQ, which real records never have.
--synthetic N  N synthetic people at national shape: about N/130 organisations (ICBs, trusts, sites, practices,
               pharmacies), two positions each, about 1.55 role profiles per person. For load and search benchmarks
               on an empty database; 1300000 gives 1.3 M people, 10 k organisations and 2 M role profiles.`,
  async run(args, io) {
    const { values } = parseOptions(args, {
      demo: { type: 'boolean' },
      synthetic: { type: 'string' },
      batch: { type: 'string' },
    });
    if (values.demo && values.synthetic === undefined) {
      return withOperatorContext(async (ctx) => {
        if (await demoDataExists(ctx)) {
          io.out('Demo data is already there.');
          return 0;
        }
        const res = await seedDemo({ ...ctx, allowExampleNiPrefix: true });
        io.out('Seeded demo data. Demo people:');
        for (const p of res.people)
          io.out(`  ${p.userId}  ${p.name} (${p.roles} role profile${p.roles === 1 ? '' : 's'})`);
        return 0;
      });
    }
    if (values.synthetic !== undefined && !values.demo) {
      const n = Number(values.synthetic);
      if (!Number.isInteger(n) || n < 1 || n > 5_000_000)
        throw new UsageError('--synthetic takes a whole number from 1 to 5000000');
      const batch = values.batch === undefined ? undefined : Number(values.batch);
      if (batch !== undefined && (!Number.isInteger(batch) || batch < 100 || batch > 200_000)) {
        throw new UsageError('--batch takes a whole number from 100 to 200000');
      }
      return withOperatorContext(async (ctx) => {
        const res = await seedSynthetic(ctx, n, { batchSize: batch, progress: (line) => io.out(line) });
        io.out(
          `Seeded ${res.people} people, ${res.organisations} organisations, ${res.positions} positions and ` +
            `${res.roleProfiles} role profiles in ${(res.ms / 1000).toFixed(1)} s.`,
        );
        return 0;
      });
    }
    throw new UsageError('give exactly one of --demo or --synthetic N');
  },
};
