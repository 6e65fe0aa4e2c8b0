import { z } from 'zod';
import { text } from '../text.ts';

/**
 * ODS codes (Organisation Data Service): upper-case letters and digits, normally 3–6 characters — trusts and ICBs 3
 * (RJ1, X09), trust sites 5 (RJ122), GP practices a letter and five digits (A81001), pharmacies F + 4 (FA123).
 * Input is trimmed and upper-cased first, so "rj1 " is accepted as RJ1.
 */
const ODS_CODE = /^[A-Z0-9]{3,6}$/;

export function normaliseOdsCode(raw: string): string {
  return raw.trim().toUpperCase();
}

export function isOdsCode(raw: string): boolean {
  return ODS_CODE.test(raw);
}

export const organisationTypes = [
  'national',
  'icb',
  'csu',
  'trust',
  'site',
  'gp_practice',
  'pharmacy',
  'care_home',
  'other',
] as const;
export type OrganisationType = (typeof organisationTypes)[number];

export interface Organisation {
  odsCode: string;
  name: string;
  type: OrganisationType;
  parentOdsCode: string | null;
  status: 'active' | 'closed';
  createdAt: string;
  updatedAt: string;
}

export const odsCodeSchema = z
  .string()
  .transform(normaliseOdsCode)
  .refine(isOdsCode, { message: 'must be an ODS code: 3 to 6 letters and digits, such as RJ1 or A81001' });

export const newOrganisationSchema = z.object({
  odsCode: odsCodeSchema,
  name: text(200),
  type: z.enum(organisationTypes).default('other'),
  parentOdsCode: z
    .string()
    .nullish()
    .transform((v) => (v == null || v.trim() === '' ? null : normaliseOdsCode(v)))
    .refine((v) => v == null || isOdsCode(v), { message: 'must be an ODS code' }),
});

export type NewOrganisation = z.output<typeof newOrganisationSchema>;
