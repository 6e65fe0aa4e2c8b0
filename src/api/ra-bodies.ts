import { z } from 'zod';
import { jsonSchemaOf } from '../http/openapi.ts';
import { personShapeInput } from '../services/people.ts';
import {
  applicationListSchema,
  approveSchema,
  checkSchema,
  datesSchema,
  decisionSchema,
  leaverSchema,
  nameSchema,
  reasonSchema,
  registerSchema,
  rejectSchema,
  requestListSchema,
  requestSchema,
  submissionSchema,
  verifySchema,
  withdrawSchema,
} from '../services/ra.ts';
import { withExamples } from '../services/validation.ts';

/**
 * The RA API's request schemas: the zod schemas its services parse, which Fastify validates each request against and
 * OpenAPI documents (src/http/validation.ts). A person's details inside a registration or an application are parsed
 * by the service with today's date (`validateNewPerson`): the route documents their shape (`personShapeInput`).
 */
const personJson = jsonSchemaOf(personShapeInput, 'input');
const withPerson = <S extends z.ZodObject>(schema: S, field: string): S =>
  schema.safeExtend({ [field]: (schema.shape[field] as z.ZodType).meta(personJson) }) as unknown as S;

export const searchBody = withExamples(
  z.object({
    userId: z.string().max(20).optional(),
    niNumber: z.string().max(20).optional(),
    email: z.string().max(254).optional(),
    familyName: z.string().max(100).optional(),
    givenName: z.string().max(100).optional(),
    dateOfBirth: z.string().max(10).optional(),
    limit: z.number().int().min(1).max(100).optional(),
    after: z.string().max(1000).nullish(),
  }),
  [{ familyName: 'Smith', givenName: 'Jane', dateOfBirth: '1980-04-01' }, { userId: '555073103100' }],
);
export const personBody = personShapeInput;
export const registerBody = withPerson(registerSchema, 'person');
export const checkBody = checkSchema;
export const nameBody = nameSchema;
export const reasonBody = reasonSchema;
export const leaverBody = leaverSchema;
export const datesBody = datesSchema;
export const applicationBody = withPerson(submissionSchema, 'applicant');
export const applicationQuery = applicationListSchema;
export const verifyBody = verifySchema;
export const rejectApplicationBody = rejectSchema;
export const accessRequestBody = withExamples(requestSchema, [
  { userId: '555073103100', positionId: '42', startDate: '2027-01-04', reason: 'Joins ward 7 as a nurse' },
]);
export const requestQuery = requestListSchema;
export const approveBody = approveSchema;
export const decisionBody = decisionSchema;
export const withdrawBody = withdrawSchema;
