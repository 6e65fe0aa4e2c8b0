import { listCatalogue, loadCatalogue, readCatalogueFile } from '../../services/catalogue.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

export const rbacCommand: Command = {
  summary: 'Load a National RBAC catalogue version, or show the loaded one',
  help: `Usage: opencis rbac load FILE.json
       opencis rbac show

load  validates FILE (format of data/rbac/national-rbac-*.json) and loads it: new codes are added, renamed codes
      updated, codes the new version no longer lists are retired (never deleted). Loading a version already
      loaded does nothing; an older version than the loaded one is refused.
show  prints the loaded version and its job roles and activities.`,
  async run(args, io) {
    const { positionals } = parseOptions(args, {}, 2);
    const [verb, file] = positionals;
    if (verb === 'load') {
      if (!file) throw new UsageError('load needs a FILE');
      const parsed = await readCatalogueFile(file);
      const res = await withOperatorContext((ctx) => loadCatalogue(ctx, parsed));
      io.out(
        res.loaded ? `Loaded RBAC catalogue ${res.version}.` : `RBAC catalogue ${res.version} was already loaded.`,
      );
      return 0;
    }
    if (verb === 'show' && !file) {
      const cat = await withOperatorContext((ctx) => listCatalogue(ctx.repos));
      io.out(`RBAC catalogue ${cat.version ?? '(none loaded)'}`);
      for (const r of cat.jobRoles) io.out(`  ${r.roleCode}  ${r.name}`);
      for (const a of cat.activities)
        io.out(`  ${a.code}  ${a.name}${a.includes?.length ? ` (includes ${a.includes.join(', ')})` : ''}`);
      return 0;
    }
    throw new UsageError('expected "load FILE" or "show"');
  },
};
