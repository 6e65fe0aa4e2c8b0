/**
 * Identity documents and the NHS Employers identity check standard (DOMAIN §5.1). Pure: no I/O; "today" is passed in.
 *
 * The standard asks for at least three documents: one photo ID, one confirmation of address issued in the last three
 * months, and one more from the list. OpenCIS records which documents were seen and the last four characters of each
 * document's number — never a scan and never the full number.
 */
import { z } from 'zod';
import { isCalendarDate } from '../dates.ts';

export const documentCategories = ['photo_id', 'address', 'other'] as const;
export type DocumentCategory = (typeof documentCategories)[number];

/** Document types and the categories each may count towards (NHS Employers identity check standard, lists 1–3). */
export const documentCatalogue = {
  // photographic personal identification
  passport: { name: 'Passport', categories: ['photo_id'] },
  photocard_driving_licence: { name: 'Photocard driving licence (full or provisional)', categories: ['photo_id'] },
  national_identity_card: { name: 'EU/EEA national identity card', categories: ['photo_id'] },
  biometric_residence_permit: { name: 'Biometric residence permit', categories: ['photo_id'] },
  armed_forces_id_card: { name: 'HM Armed Forces identity card', categories: ['photo_id'] },
  // confirmation of address (issued within the last three months)
  utility_bill: { name: 'Utility bill (gas, electricity, water, landline)', categories: ['address'] },
  bank_statement: { name: 'Bank or building society statement', categories: ['address'] },
  council_tax_statement: { name: 'Council tax statement', categories: ['address'] },
  mortgage_statement: { name: 'Mortgage statement', categories: ['address'] },
  hmrc_tax_notification: { name: 'HMRC tax notification', categories: ['address'] },
  tenancy_agreement: { name: 'Letter from a letting agent or landlord', categories: ['address'] },
  // further documents
  birth_certificate: { name: 'Full birth certificate', categories: ['other'] },
  adoption_certificate: { name: 'Adoption certificate', categories: ['other'] },
  marriage_certificate: { name: 'Marriage certificate', categories: ['other'] },
  civil_partnership_certificate: { name: 'Civil partnership certificate', categories: ['other'] },
  p45: { name: 'P45', categories: ['other'] },
  p60: { name: 'P60', categories: ['other'] },
  paper_driving_licence: { name: 'Paper driving licence (issued before 1998)', categories: ['other'] },
  firearms_certificate: { name: 'Firearms or shotgun certificate', categories: ['other'] },
  benefit_letter: { name: 'Benefits or pension letter', categories: ['other'] },
} as const satisfies Record<string, { name: string; categories: readonly DocumentCategory[] }>;

export type DocumentType = keyof typeof documentCatalogue;
export const documentTypes = Object.keys(documentCatalogue) as [DocumentType, ...DocumentType[]];

const calendarDate = z.string().trim().refine(isCalendarDate, { message: 'must be a real date written YYYY-MM-DD' });

/**
 * One document as recorded. `lastChars` is at most four letters or digits: a longer value is refused rather than cut,
 * so a full passport number typed by mistake is never stored.
 */
export const identityDocumentSchema = z.object({
  category: z.enum(documentCategories),
  type: z.enum(documentTypes),
  lastChars: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9]{1,4}$/, 'give only the last 4 letters or digits of the document number, never all of it')
    .transform((s) => s.toUpperCase())
    .nullish()
    .transform((s) => s ?? null),
  issuedOn: calendarDate.nullish().transform((s) => s ?? null),
  expiresOn: calendarDate.nullish().transform((s) => s ?? null),
});
export type IdentityDocument = z.output<typeof identityDocumentSchema>;

export const identityDocumentsSchema = z.array(identityDocumentSchema).max(10);

export interface DocumentProblem {
  field: string;
  message: string;
}

export const MINIMUM_DOCUMENTS = 3;
export const ADDRESS_PROOF_MONTHS = 3;

/** The calendar date `months` months before `day` (YYYY-MM-DD), clamped to the end of a shorter month. */
export function monthsBefore(day: string, months: number): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  const total = y * 12 + (m - 1) - months;
  const year = Math.floor(total / 12);
  const month = (total % 12) + 1;
  const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(Math.min(d, lastDay)).padStart(2, '0')}`;
}

/**
 * Checks a set of documents against the NHS Employers identity check standard on `today`. Returns every problem found
 * (an empty list means the documents meet the standard).
 */
export function checkIdentityDocuments(documents: readonly IdentityDocument[], today: string): DocumentProblem[] {
  const problems: DocumentProblem[] = [];
  const addressCutoff = monthsBefore(today, ADDRESS_PROOF_MONTHS);
  const seen = new Set<string>();
  let photoIds = 0;
  let addresses = 0;
  let counted = 0;
  documents.forEach((doc, i) => {
    const field = `documents.${i}`;
    const before = problems.length;
    const allowed: readonly DocumentCategory[] = documentCatalogue[doc.type].categories;
    if (!allowed.includes(doc.category)) {
      problems.push({ field: `${field}.type`, message: `a ${doc.type} does not count as ${doc.category}` });
    }
    if (doc.issuedOn && doc.issuedOn > today) {
      problems.push({ field: `${field}.issuedOn`, message: 'must not be in the future' });
    }
    if (doc.expiresOn && doc.issuedOn && doc.expiresOn < doc.issuedOn) {
      problems.push({ field: `${field}.expiresOn`, message: 'must be after the issue date' });
    }
    if (doc.expiresOn && doc.expiresOn < today) {
      problems.push({ field: `${field}.expiresOn`, message: 'the document has expired' });
    }
    if (doc.category === 'photo_id' && !doc.lastChars) {
      problems.push({ field: `${field}.lastChars`, message: 'record the last 4 characters of the photo ID number' });
    }
    if (doc.category === 'address') {
      if (!doc.issuedOn) {
        problems.push({ field: `${field}.issuedOn`, message: 'a proof of address needs its issue date' });
      } else if (doc.issuedOn < addressCutoff) {
        problems.push({
          field: `${field}.issuedOn`,
          message: `a proof of address must be issued within the last ${ADDRESS_PROOF_MONTHS} months (on or after ${addressCutoff})`,
        });
      }
    }
    const key = `${doc.type}|${doc.lastChars ?? ''}|${doc.issuedOn ?? ''}`;
    if (seen.has(key)) {
      problems.push({ field, message: 'the same document is listed twice' });
    }
    seen.add(key);
    if (problems.length > before) return;
    counted++;
    if (doc.category === 'photo_id') photoIds++;
    if (doc.category === 'address') addresses++;
  });
  if (photoIds === 0) {
    problems.push({ field: 'documents', message: 'at least one current photo ID is needed' });
  }
  if (addresses === 0) {
    problems.push({
      field: 'documents',
      message: `at least one proof of address issued in the last ${ADDRESS_PROOF_MONTHS} months is needed`,
    });
  }
  // Too few documents only when fewer were given: a document with a problem of its own is reported by that problem
  // (saying "at least 3 are needed" beside three entered documents misled RAs, issue #14).
  if (documents.length < MINIMUM_DOCUMENTS) {
    problems.push({ field: 'documents', message: `at least ${MINIMUM_DOCUMENTS} documents are needed` });
  } else if (counted < MINIMUM_DOCUMENTS && problems.length === 0) {
    problems.push({ field: 'documents', message: `at least ${MINIMUM_DOCUMENTS} acceptable documents are needed` });
  }
  return problems;
}

/** Evidence for a change of name (DOMAIN §2: name changes keep the user ID and need evidence). */
export const nameChangeEvidenceTypes = [
  'marriage_certificate',
  'civil_partnership_certificate',
  'decree_absolute',
  'dissolution_order',
  'deed_poll',
  'statutory_declaration',
  'gender_recognition_certificate',
  'passport',
  'photocard_driving_licence',
  'birth_certificate',
] as const;
export type NameChangeEvidenceType = (typeof nameChangeEvidenceTypes)[number];

export const nameChangeEvidenceSchema = z.object({
  type: z.enum(nameChangeEvidenceTypes),
  lastChars: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9]{1,4}$/, 'give only the last 4 letters or digits of the document number, never all of it')
    .transform((s) => s.toUpperCase())
    .nullish()
    .transform((s) => s ?? null),
});
