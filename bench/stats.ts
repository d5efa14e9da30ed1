// Small statistics and formatting helpers for the bench report.

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100); NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function formatRate(perSecond: number): string {
  return Number.isFinite(perSecond) ? Math.round(perSecond).toLocaleString('en-US') : 'n/a';
}

export function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? ratio.toFixed(3) : 'n/a';
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}

/** Verdict against a target: the ratio reads as PASS/BELOW without hiding the number. */
export function verdict(pass: boolean): string {
  return pass ? 'meets target' : 'BELOW TARGET';
}

/** A small seeded generator (mulberry32): the same runs always give the same interval. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A 95% bootstrap interval of the median: the values resampled with replacement `resamples`
 * times, and the 2.5th and 97.5th percentiles of the resampled medians. Seeded, so it is
 * reproducible.
 */
export function medianInterval(values: readonly number[], resamples = 4000): { low: number; high: number } {
  if (values.length === 0) return { low: Number.NaN, high: Number.NaN };
  const random = seededRandom(0x5eed);
  const medians: number[] = [];
  const sample = new Array<number>(values.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < values.length; i++) sample[i] = values[Math.floor(random() * values.length)]!;
    medians.push(median(sample));
  }
  return { low: percentile(medians, 2.5), high: percentile(medians, 97.5) };
}

/**
 * Verdict on a ratio against a target when the runs are noisy: met only when the ratio of medians
 * and the whole 95% interval of the same-round median are at or above it, below only when both are
 * under it; otherwise the rounds do not settle it.
 */
export function settledVerdict(
  ratio: number,
  interval: { low: number; high: number },
  target: number,
): string {
  if (ratio >= target && interval.low >= target) return verdict(true);
  if (ratio < target && interval.high < target) return verdict(false);
  return `NOT SETTLED: the 95% interval of the same-round median spans ${target}; add --rounds`;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
    .join('\n');
}
