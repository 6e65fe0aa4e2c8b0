/**
 * The identity documents part of the console's forms (register, record a check, verify an application): five rows —
 * a photo ID, a proof of address, then any three more — each with the document type (from the catalogue in
 * src/domain/identity/documents.ts; its category follows from the type), the last 4 characters of its number and its dates. The
 * NHS Employers identity check standard is checked here too, so the RA sees every problem at once, by row.
 */
import { ukDate } from '../../domain/dates.ts';
import {
  checkIdentityDocuments,
  type DocumentCategory,
  documentCatalogue,
  documentTypes,
  type IdentityDocument,
  identityDocumentSchema,
  MINIMUM_DOCUMENTS,
} from '../../domain/identity/documents.ts';
import { dateField, dateValues, type FieldMap, type FormErrors, type FormValues, text } from './forms.ts';
import { categoryNames } from './labels.ts';

export const DOCUMENT_ROWS = 5;

interface Option {
  value: string;
  text: string;
}
type OptionOrGroup = Option | { group: string; options: Option[] };

function typesIn(category: DocumentCategory): Option[] {
  return documentTypes
    .filter((t) => (documentCatalogue[t].categories as readonly DocumentCategory[]).includes(category))
    .map((t) => ({ value: t, text: documentCatalogue[t].name }));
}

/** The rows the documents macro draws: the first two fixed to what the standard requires. */
export function documentRowsView(): { id: string; legend: string; options: OptionOrGroup[] }[] {
  const any: OptionOrGroup[] = [
    { value: '', text: 'Choose a document' },
    ...(['photo_id', 'address', 'other'] as const).map((c) => ({ group: categoryNames[c], options: typesIn(c) })),
  ];
  return Array.from({ length: DOCUMENT_ROWS }, (_, i) => ({
    id: `doc${i}`,
    legend:
      i === 0
        ? 'Document 1: photo ID'
        : i === 1
          ? 'Document 2: proof of address (issued in the last 3 months)'
          : `Document ${i + 1}${i === 2 ? '' : ' (optional)'}`,
    options:
      i === 0
        ? [{ value: '', text: 'Choose a photo ID' }, ...typesIn('photo_id')]
        : i === 1
          ? [{ value: '', text: 'Choose a proof of address' }, ...typesIn('address')]
          : any,
  }));
}

/** Form values for a list of documents (to show a form again). */
export function documentValues(documents: readonly IdentityDocument[]): Record<string, string> {
  const out: Record<string, string> = {};
  documents.slice(0, DOCUMENT_ROWS).forEach((d, i) => {
    out[`doc${i}-type`] = d.type;
    out[`doc${i}-lastChars`] = d.lastChars ?? '';
    Object.assign(out, dateValues(`doc${i}-issuedOn`, d.issuedOn), dateValues(`doc${i}-expiresOn`, d.expiresOn));
  });
  return out;
}

export interface ReadDocuments {
  documents: IdentityDocument[];
  /** For each document, the form row it came from (blank rows are skipped). */
  rowOf: number[];
}

/** Reads the rows, adding a form error for each problem (shape, dates, and the identity check standard). */
export function readDocuments(values: FormValues, errors: FormErrors, now: Date): ReadDocuments {
  const documents: IdentityDocument[] = [];
  const rowOf: number[] = [];
  let rowsWithType = 0;
  for (let i = 0; i < DOCUMENT_ROWS; i++) {
    const id = `doc${i}`;
    const type = text(values, `${id}-type`);
    const lastChars = text(values, `${id}-lastChars`);
    const issued = dateField(values, `${id}-issuedOn`);
    const expires = dateField(values, `${id}-expiresOn`);
    const label = `Document ${i + 1}`;
    if (!type) {
      if (lastChars || issued.kind !== 'empty' || expires.kind !== 'empty') {
        errors.add(`${id}-type`, `${label}: choose the document type`);
      }
      continue;
    }
    rowsWithType++;
    if (!(documentTypes as readonly string[]).includes(type)) {
      errors.add(`${id}-type`, `${label}: choose a document type from the list`);
      continue;
    }
    if (issued.kind === 'invalid') {
      errors.add(`${id}-issuedOn`, `${label}: the date of issue must be a real date`, `${id}-issuedOn-day`);
    }
    if (expires.kind === 'invalid') {
      errors.add(`${id}-expiresOn`, `${label}: the expiry date must be a real date`, `${id}-expiresOn-day`);
    }
    const category = documentCatalogue[type as keyof typeof documentCatalogue].categories[0];
    const parsed = identityDocumentSchema.safeParse({
      category,
      type,
      lastChars: lastChars || null,
      issuedOn: issued.kind === 'date' ? issued.value : null,
      expiresOn: expires.kind === 'date' ? expires.value : null,
    });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const f = documentField(String(issue.path[0] ?? 'type'), i);
        errors.add(f.id, `${label}: ${issue.message}`, f.target);
      }
      continue;
    }
    documents.push(parsed.data);
    rowOf.push(i);
  }
  const map = documentFieldMap(rowOf);
  // Rows with a problem of their own are not among `documents`, but they were given: "at least 3 documents are needed"
  // beside three entered documents would mislead (each bad row has its own message).
  for (const p of checkIdentityDocuments(documents, ukDate(now))) {
    if (p.field === 'documents' && /^at least \d+ documents/.test(p.message) && rowsWithType >= MINIMUM_DOCUMENTS)
      continue;
    const f = map(p.field);
    if (f) errors.add(f.id, `${f.label} ${p.message}`, f.target);
  }
  return { documents, rowOf };
}

function documentField(name: string, row: number): { id: string; label: string; target?: string } {
  const id = `doc${row}`;
  const label = `Document ${row + 1}:`;
  if (name === 'issuedOn' || name === 'expiresOn') return { id: `${id}-${name}`, label, target: `${id}-${name}-day` };
  if (name === 'lastChars') return { id: `${id}-lastChars`, label };
  return { id: `${id}-type`, label };
}

/** Maps the services' `documents.<i>.<field>` problems onto the form's rows. */
export function documentFieldMap(rowOf: readonly number[]): FieldMap {
  return (path) => {
    if (path === 'documents') return { id: 'documents', label: 'Documents:', target: 'doc0-type' };
    const m = /^documents\.(\d+)(?:\.(\w+))?$/.exec(path);
    if (!m) return undefined;
    const row = rowOf[Number(m[1])] ?? Number(m[1]);
    return documentField(m[2] ?? 'type', row);
  };
}

/** The documents as the summary pages show them. */
export function documentsView(documents: readonly IdentityDocument[]) {
  return documents.map((d) => ({
    category: categoryNames[d.category],
    type: documentCatalogue[d.type].name,
    lastChars: d.lastChars ?? '',
    issuedOn: d.issuedOn ?? '',
    expiresOn: d.expiresOn ?? '',
  }));
}
