/** What a person is told about the authenticator they signed in with (services/assurance-explained.ts). */
import type { Queryable } from '../database.ts';

export interface WebauthnCredentialSummary {
  nickname: string;
  kind: string;
  backup_eligible: boolean;
  attestation_format: string;
  aaguid: string;
}

export async function webauthnCredentialSummary(
  q: Queryable,
  credentialId: string,
): Promise<WebauthnCredentialSummary | undefined> {
  const { rows } = await q.query<WebauthnCredentialSummary>(
    'SELECT nickname, kind, backup_eligible, attestation_format, aaguid FROM webauthn_credentials WHERE credential_id = $1',
    [credentialId],
  );
  return rows[0];
}
