import { ukDate } from '../domain/dates.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { assignRoleProfile, createPosition } from './access.ts';
import type { ServiceContext } from './context.ts';
import { createEnrolmentInvitation } from './enrolment.ts';
import { saveOrganisation } from './organisations.ts';
import { registerPerson } from './people.ts';

/**
 * Demonstration data: a small ICB with a trust, a site, a GP practice and a pharmacy; positions for clinical, admin
 * and RA work; and people with one, three and seven role profiles (the CIS2 role-selection cases). Every demo person
 * has an NI number with HMRC's example prefix QQ, which real records can never have.
 */
export const demoOrganisations = [
  { odsCode: 'X26', name: 'NHS England (demo)', type: 'national', parentOdsCode: null },
  { odsCode: 'QWO', name: 'Demo West Yorkshire Integrated Care Board', type: 'icb', parentOdsCode: 'X26' },
  { odsCode: 'RR8', name: 'Demo Teaching Hospitals NHS Trust', type: 'trust', parentOdsCode: 'QWO' },
  { odsCode: 'RR813', name: "Demo St James's University Hospital", type: 'site', parentOdsCode: 'RR8' },
  { odsCode: 'B86001', name: 'Demo Medical Practice', type: 'gp_practice', parentOdsCode: 'QWO' },
  { odsCode: 'FA123', name: 'Demo Pharmacy', type: 'pharmacy', parentOdsCode: 'QWO' },
  { odsCode: 'RAE', name: 'Demo Community Health NHS Trust', type: 'trust', parentOdsCode: 'QWO' },
] as const;

const demoPositions = [
  { ods: 'RR8', name: 'Ward nurse, ward 7', assignable: true, jobRoles: ['R8001'], activities: ['B0825'] },
  {
    ods: 'RR8',
    name: 'Consultant cardiologist',
    assignable: false,
    jobRoles: ['R8000', 'R0050'],
    activities: ['B0083'],
  },
  { ods: 'RR8', name: 'Registration Authority Manager', assignable: false, jobRoles: ['R5080'], activities: [] },
  { ods: 'RR8', name: 'Registration Authority Agent', assignable: false, jobRoles: ['R5090'], activities: [] },
  { ods: 'RR8', name: 'Ward clerk', assignable: true, jobRoles: ['R8010'], activities: [] },
  { ods: 'RR813', name: 'Phlebotomist', assignable: true, jobRoles: ['R8003'], activities: [] },
  { ods: 'B86001', name: 'General practitioner', assignable: false, jobRoles: ['R8000', 'R0260'], activities: [] },
  { ods: 'B86001', name: 'Receptionist', assignable: true, jobRoles: ['R8009'], activities: [] },
  { ods: 'FA123', name: 'Pharmacist', assignable: false, jobRoles: ['R8003'], activities: ['B0820'] },
  { ods: 'RAE', name: 'Community nurse', assignable: true, jobRoles: ['R8001'], activities: [] },
] as const;

const demoPeople = [
  {
    givenName: 'Alex',
    familyName: 'Morgan',
    dob: '1975-04-12',
    ni: 'QQ123456A',
    email: 'alex.morgan@demo.nhs.example',
    roles: [2],
    what: "RA Manager at Demo Teaching Hospitals (RR8): the demo's way into the RA console",
  },
  {
    givenName: 'Priya',
    familyName: 'Shah',
    dob: '1988-09-30',
    ni: 'QQ123456B',
    email: 'priya.shah@demo.nhs.example',
    roles: [3],
    what: 'RA Agent at RR8',
  },
  {
    givenName: 'Siobhán',
    familyName: "O'Brien",
    dob: '1990-02-14',
    ni: 'QQ123456C',
    email: 'siobhan.obrien@demo.nhs.example',
    roles: [0],
    what: 'ward nurse at RR8 (one role profile)',
  },
  {
    givenName: 'Tomasz',
    familyName: 'Nowak',
    dob: '1982-11-03',
    ni: 'QQ223456A',
    email: 'tomasz.nowak@demo.nhs.example',
    roles: [1, 6, 8],
    what: 'consultant, GP and pharmacist (three role profiles: a list at sign-in)',
  },
  {
    givenName: 'Zoë',
    familyName: 'Nguyễn',
    dob: '1979-06-21',
    ni: 'QQ223456B',
    email: 'zoe.nguyen@demo.nhs.example',
    roles: [0, 1, 4, 5, 7, 8, 9],
    what: 'seven role profiles (a list with search at sign-in)',
  },
] as const;

/** The demo's RA Manager (Alex Morgan), found by their demo NI number. */
const DEMO_RA_MANAGER_NI = 'QQ123456A';

export async function seedDemo(
  ctx: ServiceContext,
): Promise<{ people: { userId: string; name: string; roles: number }[] }> {
  for (const o of demoOrganisations) await saveOrganisation(ctx, o, { upsert: true });
  const positions = [];
  for (const p of demoPositions) positions.push(await createPosition(ctx, p.ods, p));
  const startDate = ukDate(ctx.clock.now());
  const out = [];
  for (const d of demoPeople) {
    const person = await registerPerson(ctx, {
      givenName: d.givenName,
      familyName: d.familyName,
      dateOfBirth: d.dob,
      niNumber: d.ni,
      email: d.email,
      identityAssuranceLevel: 3,
    });
    for (const r of d.roles) {
      await assignRoleProfile(ctx, { userId: person.userId, positionId: positions[r]!.positionId, startDate });
    }
    out.push({ userId: person.userId, name: `${d.givenName} ${d.familyName}`, roles: d.roles.length });
  }
  await ctx.repos.demo.markDemoInstallation(ctx.clock.now());
  return { people: out };
}

/**
 * Demo mode: DEMO_DATA on and this database seeded with the demo data. Only then does the demo's short way into the
 * RA console exist (a trusted virtual security key, a printed one-time link); a production database never has the row.
 */
export function isDemoInstallation(repos: Repositories): Promise<boolean> {
  return repos.demo.isDemoInstallation();
}

export interface DemoPerson {
  userId: string;
  name: string;
  what: string;
}

/** The demo people, as the start banner and README list them. */
export async function demoPeopleOf(repos: Repositories): Promise<DemoPerson[]> {
  const rows = await repos.demo.peopleWithNiNumbers(demoPeople.map((p) => p.ni));
  return demoPeople.flatMap((d) => {
    const r = rows.find((x) => x.niNumber === d.ni);
    return r ? [{ userId: r.userId, name: `${r.givenName} ${r.familyName}`, what: d.what }] : [];
  });
}

/** Whether the demo data is there already (its trust, RR8, exists). */
export function demoDataExists(ctx: ServiceContext): Promise<boolean> {
  return ctx.repos.demo.demoOrganisationExists('RR8');
}

/**
 * A fresh one-time link (24 hours, AAL3) for the demo RA Manager to register a security key — printed at every start
 * in demo mode, so a newcomer who lost their virtual key (DevTools forgets it) simply restarts. Refused outside demo
 * mode by the caller's check; null when the demo RA Manager is not there (or has left).
 */
export async function demoConsoleLink(ctx: ServiceContext, publicUrl: string): Promise<string | null> {
  const userId = await ctx.repos.demo.activePersonWithNiNumber(DEMO_RA_MANAGER_NI);
  if (!userId) return null;
  const token = await createEnrolmentInvitation(ctx, { userId, maxAal: 3, ttlHours: 24 });
  return `${publicUrl}/enrol/invite?t=${token}`;
}
