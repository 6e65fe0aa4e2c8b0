/**
 * The agent's error answers: AgentError (its own refusals, or a code passed on from the OpenCIS server), and the JSON
 * answer any failure becomes (a card's failure keeps its code, and the tries left where it says).
 */
import { type CardAgentErrorCode, errorCatalogue } from '../../domain/errors.ts';
import { Cis1AgentError } from '../cis1-agent.ts';
import { toCardError } from '../token.ts';

/** The agent's own refusals (catalogued in src/domain/errors.ts with the server's codes). */
export type AgentErrorCode = Extract<CardAgentErrorCode, `agent.${string}`>;

/** An error answered to the page: the agent's own codes, or a code passed on from the OpenCIS server. */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }

  static of(code: AgentErrorCode, message?: string): AgentError {
    const entry = errorCatalogue[code];
    return new AgentError(code, entry.status, message ?? entry.message);
  }
}

export interface ErrorAnswer {
  status: number;
  body: { error: { code: string; message: string; retriesLeft?: number } };
}

/** The status and JSON body answered for a failure. */
export function errorAnswer(err: unknown): ErrorAnswer {
  if (err instanceof AgentError || err instanceof Cis1AgentError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  }
  const card = toCardError(err);
  const error = { code: card.code, message: card.message };
  return {
    status: card.status,
    body: { error: card.retriesLeft === undefined ? error : { ...error, retriesLeft: card.retriesLeft } },
  };
}
