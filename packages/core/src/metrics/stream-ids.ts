/**
 * Orders two stream ids (`<ms>-<seq>`): negative, zero or positive like a comparator. Both parts
 * are decimal integers without leading zeros, so a longer part is the larger one and parts of one
 * length compare as text: exact for any 64-bit id, with no number conversion.
 */
export function compareStreamIds(a: string, b: string): number {
  const aDash = a.indexOf('-');
  const bDash = b.indexOf('-');
  const byMs = comparePart(aDash === -1 ? a : a.slice(0, aDash), bDash === -1 ? b : b.slice(0, bDash));
  if (byMs !== 0) return byMs;
  return comparePart(aDash === -1 ? '0' : a.slice(aDash + 1), bDash === -1 ? '0' : b.slice(bDash + 1));
}

function comparePart(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
