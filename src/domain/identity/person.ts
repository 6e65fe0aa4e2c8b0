import { z } from 'zod';
import { isCalendarDate } from '../dates.ts';
import { optionalText, text } from '../text.ts';
import { isValidNiNumber, normaliseNiNumber } from './ni-number.ts';

export const personStatuses = ['active', 'suspended', 'left', 'deceased'] as const;
export type PersonStatus = (typeof personStatuses)[number];

/** Identity assurance (DOMAIN §2): 3 face to face by an RA, 2 remote (Apply for Care ID), 1 not verified. */
export const identityAssuranceLevels = [1, 2, 3] as const;
export type IdentityAssuranceLevel = (typeof identityAssuranceLevels)[number];

export interface Person {
  userId: string;
  title: string | null;
  givenName: string;
  middleNames: string | null;
  familyName: string;
  preferredName: string | null;
  dateOfBirth: string;
  niNumber: string | null;
  email: string | null;
  mobile: string | null;
  status: PersonStatus;
  identityAssuranceLevel: IdentityAssuranceLevel;
  photoRef: string | null;
  createdAt: string;
  updatedAt: string;
  version: number;
}

/** Allowed status changes. "left" can be undone (re-joiner keeps the user ID); "deceased" is final. */
const transitions: Record<PersonStatus, readonly PersonStatus[]> = {
  active: ['suspended', 'left', 'deceased'],
  suspended: ['active', 'left', 'deceased'],
  left: ['active', 'deceased'],
  deceased: [],
};

export function canChangeStatus(from: PersonStatus, to: PersonStatus): boolean {
  return transitions[from].includes(to);
}

export interface NewPersonOptions {
  /** Today's date (YYYY-MM-DD), so the date-of-birth rule is testable. */
  today: string;
  allowExampleNiPrefix: boolean;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** The validated shape of a person record coming from outside (API, form, CSV, CLI). */
export function newPersonSchema(options: NewPersonOptions) {
  return z.object({
    title: optionalText(35),
    givenName: text(100),
    middleNames: optionalText(200),
    familyName: text(100),
    preferredName: optionalText(200),
    dateOfBirth: z
      .string()
      .trim()
      .superRefine((d, ctx) => {
        // one message, the first that applies
        const message = !isCalendarDate(d)
          ? 'must be a real date written YYYY-MM-DD'
          : d > options.today
            ? 'must not be in the future'
            : d < '1900-01-01'
              ? 'must be on or after 1900-01-01'
              : null;
        if (message) ctx.addIssue({ code: 'custom', message });
      }),
    niNumber: optionalText(20)
      .transform((v) => (v == null ? null : normaliseNiNumber(v)))
      .refine((v) => v == null || isValidNiNumber(v, { allowExamplePrefix: options.allowExampleNiPrefix }), {
        message: 'must be a valid National Insurance number such as AB123456C',
      }),
    email: optionalText(254)
      .transform((v) => (v == null ? null : v.toLowerCase()))
      .refine((v) => v == null || EMAIL.test(v), { message: 'must be an email address' }),
    mobile: optionalText(20)
      .transform((v) => (v == null ? null : v.replace(/[\s()-]/g, '')))
      .refine((v) => v == null || /^\+?[0-9]{7,15}$/.test(v), { message: 'must be a phone number' }),
    identityAssuranceLevel: z.union([z.literal(1), z.literal(2), z.literal(3)]).default(1),
    photoRef: optionalText(200),
  });
}

export type NewPerson = z.output<ReturnType<typeof newPersonSchema>>;
