import { ukDate } from '../domain/dates.ts';
import { assignRoleProfile, createPosition } from './access.ts';
import type { ServiceContext } from './context.ts';
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
  },
  {
    givenName: 'Priya',
    familyName: 'Shah',
    dob: '1988-09-30',
    ni: 'QQ123456B',
    email: 'priya.shah@demo.nhs.example',
    roles: [3],
  },
  {
    givenName: 'Siobhán',
    familyName: "O'Brien",
    dob: '1990-02-14',
    ni: 'QQ123456C',
    email: 'siobhan.obrien@demo.nhs.example',
    roles: [0],
  },
  {
    givenName: 'Tomasz',
    familyName: 'Nowak',
    dob: '1982-11-03',
    ni: 'QQ223456A',
    email: 'tomasz.nowak@demo.nhs.example',
    roles: [1, 6, 8],
  },
  {
    givenName: 'Zoë',
    familyName: 'Nguyễn',
    dob: '1979-06-21',
    ni: 'QQ223456B',
    email: 'zoe.nguyen@demo.nhs.example',
    roles: [0, 1, 4, 5, 7, 8, 9],
  },
] as const;

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
  return { people: out };
}
