import { z } from 'zod';

/**
 * The National RBAC catalogue (job roles, activities, areas of work, baseline policy) as a versioned data file.
 * NHS England updates the National RBAC Database several times a year; a new version is a new file under data/rbac,
 * loaded with `opencis rbac load FILE` (or at start): no code change.
 */
const jobRoleCode = z.string().regex(/^R[0-9]{4}$/, 'job role codes are R followed by 4 digits');
const activityCode = z.string().regex(/^B[0-9]{4}$/, 'activity codes are B followed by 4 digits');
const staffGroupCode = z.string().regex(/^S[0-9]{4}$/);
const subGroupCode = z.string().regex(/^G[0-9]{4}$/);
const aowPart = (letter: 'P' | 'Q' | 'T') => z.string().regex(new RegExp(`^${letter}[0-9]{4}$`));
const name = z.string().min(1).max(200);

export const catalogueFileSchema = z
  .object({
    source: z.string().max(2000).optional(),
    version: z.string().regex(/^[0-9A-Za-z._-]{1,40}$/),
    publishedOn: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
    jobRoles: z
      .array(
        z.object({
          code: jobRoleCode,
          name,
          staffGroup: z.object({ code: staffGroupCode, name }),
          subGroup: z.object({ code: subGroupCode, name }),
        }),
      )
      .min(1),
    activities: z.array(z.object({ code: activityCode, name, includes: z.array(activityCode).default([]) })).min(1),
    areasOfWork: z
      .array(
        z.object({
          code: aowPart('T'),
          name,
          area: z.object({ code: aowPart('P'), name }),
          subArea: z.object({ code: aowPart('Q'), name }),
        }),
      )
      .default([]),
    baseline: z.record(jobRoleCode, z.array(activityCode)).default({}),
  })
  .superRefine((cat, ctx) => {
    const activities = new Set(cat.activities.map((a) => a.code));
    const roles = new Set<string>();
    for (const r of cat.jobRoles) {
      if (roles.has(r.code)) ctx.addIssue({ code: 'custom', message: `job role ${r.code} is listed twice` });
      roles.add(r.code);
    }
    if (activities.size !== cat.activities.length)
      ctx.addIssue({ code: 'custom', message: 'an activity is listed twice' });
    for (const a of cat.activities) {
      for (const inc of a.includes) {
        if (!activities.has(inc))
          ctx.addIssue({ code: 'custom', message: `${a.code} includes unknown activity ${inc}` });
      }
    }
    for (const [role, acts] of Object.entries(cat.baseline)) {
      if (!roles.has(role)) ctx.addIssue({ code: 'custom', message: `baseline names unknown job role ${role}` });
      for (const a of acts) {
        if (!activities.has(a))
          ctx.addIssue({ code: 'custom', message: `baseline of ${role} names unknown activity ${a}` });
      }
    }
  });

export type CatalogueFile = z.output<typeof catalogueFileSchema>;

/** `S8001:G8002:R8008` — the three-part code CIS2 releases as `role_code`. */
export function roleCodeTriplet(role: CatalogueFile['jobRoles'][number]): string {
  return `${role.staffGroup.code}:${role.subGroup.code}:${role.code}`;
}

/** `"Support":"Support":"Admin/Clinical Support Access Role"` — the quoted three-part name CIS2 releases as `role_name`. */
export function roleNameTriplet(role: CatalogueFile['jobRoles'][number]): string {
  return `"${role.staffGroup.name}":"${role.subGroup.name}":"${role.name}"`;
}

/**
 * Expands activity inclusions transitively (B0825 Amend Patient Demographics includes B0820 View): a permission
 * check on B0820 must succeed for someone granted only B0825. Cycles in the data are tolerated.
 */
export function expandActivities(
  granted: Iterable<string>,
  includes: ReadonlyMap<string, readonly string[]>,
): Set<string> {
  const out = new Set<string>();
  const stack = [...granted];
  while (stack.length > 0) {
    const code = stack.pop()!;
    if (out.has(code)) continue;
    out.add(code);
    for (const inc of includes.get(code) ?? []) stack.push(inc);
  }
  return out;
}
