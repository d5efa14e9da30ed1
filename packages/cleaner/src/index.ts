export const cleanerStates = ['completed', 'failed', 'waiting', 'delayed'] as const;
