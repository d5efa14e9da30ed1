// jobbers-worker --processes N: keeps N worker processes running on one machine, so a plain VM
// needs no other process manager. A child that recycles (WORKER_TTL, exit 0) is replaced at once,
// one that dies is replaced after a backoff that grows while it keeps dying young. SIGTERM and
// SIGINT are forwarded to every child (a second one too: the children then give their tasks back
// at once); the supervisor exits when all children have exited.
import { type ChildProcess, fork } from 'node:child_process';
import type { Logger } from '@jobbers/core';

export interface SupervisorOptions {
  processes: number;
  /** The worker entry point each child runs. */
  script: string;
  /** The children's environment: every flag already folded into its variable. */
  env: NodeJS.ProcessEnv;
  /** Child i listens on metricsPort + i; 0 gives every child a free port. */
  metricsPort: number;
  logger: Logger;
}

interface Slot {
  index: number;
  child?: ChildProcess;
  startedAt: number;
  youngDeaths: number;
  restartTimer?: NodeJS.Timeout;
  /** Whether the last child of this slot exited 0 (undefined: none has exited). */
  lastExitClean?: boolean;
}

/** A child that dies sooner than this after starting counts as dying young. */
const youngMs = 10_000;
const maxRestartDelayMs = 30_000;

export class WorkerSupervisor {
  private readonly slots: Slot[];
  private stopping = false;
  private forwarded: NodeJS.Signals | undefined;
  private resolveDone!: (exitCode: number) => void;
  /** The supervisor's exit code, once every child has exited after stop(). */
  readonly done: Promise<number>;
  /** Children started so far, restarts included. */
  started = 0;

  constructor(private readonly options: SupervisorOptions) {
    this.slots = Array.from({ length: options.processes }, (_, index) => ({
      index,
      startedAt: 0,
      youngDeaths: 0,
    }));
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  start(): void {
    this.options.logger.info({ processes: this.options.processes }, 'supervising worker processes');
    for (const slot of this.slots) this.spawn(slot);
  }

  /** Forwards the signal to every child and starts no new one; a second call forwards again. */
  stop(signal: NodeJS.Signals): void {
    this.stopping = true;
    this.forwarded = signal;
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.child && slot.child.exitCode === null && slot.child.signalCode === null)
        slot.child.kill(signal);
    }
    this.finishIfAllExited();
  }

  private spawn(slot: Slot): void {
    const { env, metricsPort, script, logger } = this.options;
    const child = fork(script, [], {
      env: { ...env, WORKER_METRICS_PORT: String(metricsPort === 0 ? 0 : metricsPort + slot.index) },
      // Its own process group: a terminal's Ctrl-C reaches the children once, through stop().
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    slot.child = child;
    slot.startedAt = Date.now();
    this.started++;
    logger.info({ slot: slot.index, childPid: child.pid }, 'worker process started');
    child.once('exit', (code, signal) => this.exited(slot, child, code, signal));
    child.on('error', (error) => logger.error({ err: error, slot: slot.index }, 'worker process error'));
  }

  private exited(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const { logger } = this.options;
    slot.child = undefined;
    // A child still starting when the signal came dies of it before taking any task: a clean exit.
    slot.lastExitClean = code === 0 || (this.stopping && signal === this.forwarded);
    const pid = child.pid;
    if (this.stopping) {
      logger.info({ slot: slot.index, childPid: pid, code, signal }, 'worker process exited');
      this.finishIfAllExited();
      return;
    }
    if (code === 0) {
      slot.youngDeaths = 0;
      logger.info({ slot: slot.index, childPid: pid }, 'worker process recycled: starting a new one');
      this.spawn(slot);
      return;
    }
    const young = Date.now() - slot.startedAt < youngMs;
    slot.youngDeaths = young ? slot.youngDeaths + 1 : 0;
    const delayMs = young ? Math.min(maxRestartDelayMs, 250 * 2 ** (slot.youngDeaths - 1)) : 0;
    logger.warn(
      { slot: slot.index, childPid: pid, code, signal, restartInMs: delayMs },
      'worker process died: restarting',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.stopping) this.spawn(slot);
    }, delayMs);
  }

  private finishIfAllExited(): void {
    if (!this.stopping || this.slots.some((s) => s.child)) return;
    const clean = this.slots.every((s) => s.lastExitClean !== false);
    this.resolveDone(clean ? 0 : 1);
  }
}
