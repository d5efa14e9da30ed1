// Durations written with units, as the CLIs take them (`500ms`, `30s`, `15m`, `12h`, `7d`, `2w`).

const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

export interface DurationSyntax {
  /** Whether a bare whole number is read as milliseconds (else a unit is required). @default false */
  bareNumberIsMs?: boolean;
}

/**
 * A whole number and a unit (ms, s, m, h, d, w) in milliseconds; undefined when malformed or too
 * large for an exact integer.
 */
export function parseDurationMs(text: string, syntax: DurationSyntax = {}): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!match) return undefined;
  const unit = match[2] as keyof typeof unitMs | undefined;
  if (!unit && !syntax.bareNumberIsMs) return undefined;
  const value = Number(match[1]) * unitMs[unit ?? 'ms'];
  return Number.isSafeInteger(value) ? value : undefined;
}
