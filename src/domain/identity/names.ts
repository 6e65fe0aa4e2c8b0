/**
 * Name normalisation for duplicate detection and search. Two records are the "same name" when their family and given
 * names match after folding case, accents and punctuation (O'Brien = OBRIEN = o brien; Zoë = ZOE). Non-Latin scripts
 * are kept as they are (王 stays 王) after Unicode NFKC, so they still match exactly.
 */
export function normaliseName(raw: string): string {
  return raw
    .normalize('NFKD')
    .replace(/\p{M}/gu, '') // combining marks: accents
    .normalize('NFKC')
    .toUpperCase()
    .replace(/[^\p{L}\p{N}]/gu, ''); // spaces, apostrophes, hyphens
}

/** The key used for the name + date-of-birth duplicate rule: family name and first given name. */
export function duplicateNameKey(familyName: string, givenName: string): string {
  const firstGiven = givenName.trim().split(/\s+/)[0] ?? '';
  return `${normaliseName(familyName)}|${normaliseName(firstGiven)}`;
}
