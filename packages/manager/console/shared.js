// What the pages share: the live event bus, polling with reload, and formatting.
import { html } from 'htm/preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, followEvents } from './api.js';

/**
 * Whether the page shown follows the event stream: 'live' (every stream it opened is), 'reconnecting'
 * (one is), 'connecting' or 'polling' (it opened none).
 */
export const liveState = {
  value: 'polling',
  listeners: new Set(),
  streams: new Map(),
  /** Sets the state of one of the page's streams (undefined: it is closed). */
  set(stream, state) {
    if (state === undefined) this.streams.delete(stream);
    else this.streams.set(stream, state);
    const states = [...this.streams.values()];
    const value =
      states.length === 0
        ? 'polling'
        : states.includes('reconnecting')
          ? 'reconnecting'
          : states.includes('connecting')
            ? 'connecting'
            : 'live';
    if (value === this.value) return;
    this.value = value;
    for (const listener of this.listeners) listener(value);
  },
};

/**
 * Follows the event stream (GET /v1/events?<query>) while the page is shown, unless query is null;
 * onBatch gets the transitions received, a batch at most every 250 ms; onLive is called each time
 * the stream is (again) open.
 */
export function useEventStream(query, onBatch, onLive) {
  const current = useRef({ onBatch, onLive });
  current.current = { onBatch, onLive };
  useEffect(() => {
    if (query === null) return undefined;
    const stream = {};
    liveState.set(stream, 'connecting');
    const stop = followEvents(
      query,
      (batch) => current.current.onBatch(batch),
      (state) => {
        liveState.set(stream, state);
        if (state === 'live') current.current.onLive?.();
      },
    );
    return () => {
      stop();
      liveState.set(stream, undefined);
    };
  }, [query]);
}

/** Loads `path` now and every `everyMs` (0: once); `reload` loads again at once. */
export function useApi(path, everyMs = 0) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const load = useCallback(() => {
    if (!path) return Promise.resolve();
    return api('GET', path).then(
      (data) => setState({ data, error: undefined }),
      (error) => setState((s) => ({ data: s.data, error })),
    );
  }, [path]);
  useEffect(() => {
    void load();
    if (!everyMs) return undefined;
    const timer = setInterval(load, everyMs);
    return () => clearInterval(timer);
  }, [load, everyMs]);
  return { ...state, reload: load };
}

/** Calls `fn` at most once per `ms`, the last call winning. */
export function useThrottled(fn, ms) {
  const timer = useRef(undefined);
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = undefined;
      latest.current();
    }, ms);
  }, [ms]);
}

export function StateBadge({ state }) {
  return html`<span class=${`state state-${state}`} data-state=${state}>${state}</span>`;
}

export function ErrorLine({ error }) {
  return error
    ? html`<p class="error" role="alert">${error.code ? `${error.code}: ` : ''}${error.message}</p>`
    : null;
}

export function seconds(value) {
  if (value === null || value === undefined) return '–';
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

export function rate(value) {
  return value === null || value === undefined ? '–' : `${(value * 100).toFixed(1)}%`;
}

export function time(iso) {
  return iso ? new Date(iso).toLocaleString() : '–';
}

/** The queues and task types the manager knows, for filter menus. */
export function useCatalog() {
  const { data } = useApi('/queues');
  const queues = data?.queues ?? [];
  return {
    queues: queues.map((q) => q.name),
    tasks: [...new Set(queues.flatMap((q) => q.tasks))].sort(),
  };
}

/** A datetime-local value (local time) as RFC 3339 with a zone, or undefined. */
export function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : undefined;
}
