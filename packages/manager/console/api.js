// The console's only ways to the manager: the public REST API and the event stream, with the API key
// the user entered once for this browser session.

const keyName = 'jobbers.apiKey';
const keyListeners = new Set();

export function apiKey() {
  return sessionStorage.getItem(keyName) ?? '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(keyName, key);
  else sessionStorage.removeItem(keyName);
  for (const listener of keyListeners) listener();
}

/** Called when the manager refused the key (or wants one): the app asks for it. */
export const authNeeded = { listeners: keyListeners, needed: false, refused: false };

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(`../v1${path}`, init);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    authNeeded.needed = true;
    authNeeded.refused = response.status === 403;
    for (const listener of keyListeners) listener();
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      data?.error?.code ?? 'HTTP',
      data?.error?.message ?? response.statusText,
    );
  }
  return data;
}

/** How often a page gets the transitions received meanwhile, as one batch: its renders stay few. */
const batchMs = 250;

/**
 * Follows GET /v1/events?<query> (fetch, so the key goes in a header as everywhere else), calling
 * onBatch with the transitions received, at most every 250 ms, and onState with 'live' |
 * 'reconnecting'. Reconnects with the last id seen. Returns the function that stops it.
 */
export function followEvents(query, onBatch, onState) {
  let stopped = false;
  let lastId;
  let controller;
  let batch = [];
  let timer;
  const onEvent = (event) => {
    batch.push(event);
    timer ??= setTimeout(() => {
      timer = undefined;
      const ready = batch;
      batch = [];
      if (!stopped) onBatch(ready);
    }, batchMs);
  };
  const run = async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await fetch(`../v1/events${query ? `?${query}` : ''}`, {
          headers: headers(lastId ? { 'last-event-id': lastId } : {}),
          signal: controller.signal,
        });
        if (response.status === 401 || response.status === 403) {
          authNeeded.needed = true;
          for (const listener of keyListeners) listener();
          throw new Error('not authorised');
        }
        if (!response.ok || !response.body) throw new Error(`event stream: ${response.status}`);
        onState('live');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let pending = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          pending += value;
          // Split once per chunk: slicing the rest after every event would copy it per event.
          const blocks = pending.split('\n\n');
          pending = blocks.pop() ?? '';
          for (const block of blocks) {
            let id;
            let data;
            let name = 'message';
            for (const line of block.split('\n')) {
              if (line.startsWith('id:')) id = line.slice(3).trim();
              else if (line.startsWith('data:')) data = line.slice(5).trim();
              else if (line.startsWith('event:')) name = line.slice(6).trim();
            }
            if (id) lastId = id;
            // Transitions only: progress reports (`event: progress`) change no count.
            if (data && name === 'message') onEvent(JSON.parse(data));
          }
        }
      } catch (error) {
        if (stopped) return;
        console.warn('event stream interrupted', error);
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  };
  void run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
  };
}
