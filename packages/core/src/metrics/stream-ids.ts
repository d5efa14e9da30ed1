/** Orders two stream ids (`<ms>-<seq>`): negative, zero or positive like a comparator. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = BigInt(am!) - BigInt(bm!);
  if (ms !== 0n) return ms > 0n ? 1 : -1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq > 0n ? 1 : -1;
}
