import type { z } from 'zod';
import { AppError, type ErrorCode } from '../domain/errors.ts';

export interface FieldProblem {
  field: string;
  message: string;
}

type CodeFor = (issue: z.core.$ZodIssue) => ErrorCode;
const codes = new WeakMap<z.ZodType, CodeFor>();

/**
 * A schema whose refusals carry codes of their own (the first problem's field decides), wherever it is parsed: by the
 * service (`parseInput`) and by the route that declares it (src/http/validation.ts), so both refuse alike.
 */
export function inputSchema<S extends z.ZodType>(schema: S, codeFor: CodeFor): S {
  codes.set(schema, codeFor);
  return schema;
}

/** `schema` with OpenAPI examples, refusing as `schema` does. */
export function withExamples<S extends z.ZodType>(schema: S, examples: unknown[]): S {
  const out = schema.meta({ examples }) as S;
  const codeFor = codes.get(schema);
  return codeFor ? inputSchema(out, codeFor) : out;
}

/** Parses input with a zod schema; on failure throws one catalogued error listing every field problem. */
export function parseInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  codeFor: CodeFor = codes.get(schema) ?? (() => 'request.invalid'),
): z.output<S> {
  const res = schema.safeParse(input);
  if (res.success) return res.data;
  const problems: FieldProblem[] = res.error.issues.map((i) => ({
    field: i.path.map(String).join('.') || '(body)',
    message: i.message,
  }));
  throw new AppError(codeFor(res.error.issues[0]!), { problems });
}
