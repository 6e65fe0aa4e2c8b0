import type { z } from 'zod';
import { AppError, type ErrorCode } from '../domain/errors.ts';

export interface FieldProblem {
  field: string;
  message: string;
}

/** Parses input with a zod schema; on failure throws one catalogued error listing every field problem. */
export function parseInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  codeFor: (issue: z.core.$ZodIssue) => ErrorCode = () => 'request.invalid',
): z.output<S> {
  const res = schema.safeParse(input);
  if (res.success) return res.data;
  const problems: FieldProblem[] = res.error.issues.map((i) => ({
    field: i.path.map(String).join('.') || '(body)',
    message: i.message,
  }));
  throw new AppError(codeFor(res.error.issues[0]!), { problems });
}
