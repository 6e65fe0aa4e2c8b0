/**
 * A job role's own name for people to read: the National RBAC name is a quoted triple
 * (`"Clinical":"Clinical Provision":"Nurse Access Role"`, DOMAIN §4) — the last part names the role.
 */
export function jobRoleTitle(roleName: string): string {
  const parts = [...roleName.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  return parts.at(-1) || roleName;
}
