// Tasks: search the listing by queue, type, state and submission time; a task's detail with retry and
// cancel. Both follow the event stream: states change and new tasks appear without a reload.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import {
  ErrorLine,
  isoFromLocal,
  StateBadge,
  time,
  useApi,
  useCatalog,
  useEventStream,
  useThrottled,
} from '../shared.js';

const states = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'];

function query(filters) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) if (value) params.set(name, value);
  return params.toString();
}

export function TaskFilters({ filters, onChange, withState = true, submitLabel = 'Search' }) {
  const catalog = useCatalog();
  const [draft, setDraft] = useState(filters);
  const field = (name) => (e) => setDraft({ ...draft, [name]: e.target.value });
  return html`<form
    class="filters"
    onSubmit=${(e) => {
      e.preventDefault();
      onChange(draft);
    }}
  >
    <label for="f-queue">Queue
      <select id="f-queue" value=${draft.queue ?? ''} onChange=${field('queue')}>
        <option value="">any</option>
        ${catalog.queues.map((q) => html`<option value=${q}>${q}</option>`)}
      </select>
    </label>
    <label for="f-task">Task type
      <select id="f-task" value=${draft.task ?? ''} onChange=${field('task')}>
        <option value="">any</option>
        ${catalog.tasks.map((t) => html`<option value=${t}>${t}</option>`)}
      </select>
    </label>
    ${
      withState
        ? html`<label for="f-state">State
            <select id="f-state" value=${draft.state ?? ''} onChange=${field('state')}>
              <option value="">any</option>
              ${states.map((s) => html`<option value=${s}>${s}</option>`)}
            </select>
          </label>`
        : null
    }
    <label for="f-after">Submitted after<input id="f-after" type="datetime-local" value=${draft.after ?? ''} onInput=${field('after')} /></label>
    <label for="f-before">Submitted before<input id="f-before" type="datetime-local" value=${draft.before ?? ''} onInput=${field('before')} /></label>
    <button type="submit">${submitLabel}</button>
  </form>`;
}

export function listQuery(filters) {
  return query({
    queue: filters.queue,
    task: filters.task,
    state: filters.state,
    after: isoFromLocal(filters.after),
    before: isoFromLocal(filters.before),
  });
}

export function TaskTable({ tasks, label }) {
  return html`<div class="scroll">
    <table aria-label=${label}>
      <thead><tr><th>id</th><th>task</th><th>queue</th><th>state</th><th class="num">attempts</th><th>submitted</th><th>finished</th></tr></thead>
      <tbody>
        ${tasks.map(
          (t) => html`<tr data-id=${t.id}>
            <td><a href=${`#/task/${encodeURIComponent(t.id)}`}>${t.id}</a></td>
            <td>${t.task}</td><td>${t.queue}</td><td><${StateBadge} state=${t.state} /></td>
            <td class="num">${t.attempts}</td><td>${time(t.createdAt)}</td><td>${time(t.finishedAt)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${tasks.length === 0 ? html`<p class="muted">No tasks match.</p>` : null}
  </div>`;
}

export function Tasks() {
  const [filters, setFilters] = useState({});
  const [cursor, setCursor] = useState(undefined);
  const path = `/tasks?${listQuery(filters)}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
  const page = useApi(path);
  // The page follows only what it shows, so a busy queue does not send it every transition: on the
  // first page, the tasks created (they reload the listing, at most once a second); and the
  // transitions of the rows shown, which change their states in place (a finished row reloads the
  // listing, for its finish time and attempts).
  const [states, setStates] = useState({});
  const reloadPage = useThrottled(() => void page.reload(), 1000);
  const created = new URLSearchParams(listQuery({ queue: filters.queue, task: filters.task }));
  created.set('transition', 'created');
  useEventStream(cursor ? null : created.toString(), reloadPage);
  // A stream follows at most 100 tasks (the page shows 50).
  const shownIds = (page.data?.tasks ?? [])
    .slice(0, 100)
    .map((t) => t.id)
    .sort();
  const ofShown = new URLSearchParams();
  for (const id of shownIds) ofShown.append('id', id);
  useEventStream(
    shownIds.length === 0 ? null : ofShown.toString(),
    (batch) => {
      // Only the rows shown keep a state: a long session does not collect every task it saw.
      const shown = new Set((page.data?.tasks ?? []).map((t) => t.id));
      const changes = batch.filter((e) => shown.has(e.taskId));
      if (changes.length === 0) return;
      if (changes.some((e) => e.state === 'completed' || e.state === 'failed')) reloadPage();
      setStates((known) => {
        const next = {};
        for (const id of shown) if (known[id]) next[id] = known[id];
        for (const e of changes) next[e.taskId] = e.state;
        return next;
      });
    },
    // Opened for new rows: what moved between the listing and the stream is read once more.
    reloadPage,
  );
  const shown = (page.data?.tasks ?? []).map((t) => {
    const state = states[t.id];
    return state && state !== 'removed' ? { ...t, state } : t;
  });
  return html`<main>
    <h2>Tasks</h2>
    <${TaskFilters}
      filters=${filters}
      onChange=${(f) => {
        setFilters(f);
        setCursor(undefined);
        setStates({});
      }}
    />
    <${ErrorLine} error=${page.error} />
    <div class="card"><${TaskTable} tasks=${shown} label="Tasks" /></div>
    <div class="actions">
      ${cursor ? html`<button class="secondary" type="button" onClick=${() => setCursor(undefined)}>First page</button>` : null}
      ${page.data?.nextCursor ? html`<button class="secondary" type="button" onClick=${() => setCursor(page.data.nextCursor)}>Next page</button>` : null}
    </div>
  </main>`;
}

export function TaskDetail({ id }) {
  const task = useApi(`/tasks/${encodeURIComponent(id)}`);
  const [message, setMessage] = useState(undefined);
  useEventStream(`id=${encodeURIComponent(id)}`, () => void task.reload());
  const act = async (what) => {
    try {
      await api('POST', `/tasks/${encodeURIComponent(id)}/${what}`);
      setMessage({ ok: `${what === 'retry' ? 'Retried' : 'Cancelled'}.` });
    } catch (error) {
      setMessage({ error });
    }
    void task.reload();
  };
  const t = task.data;
  return html`<main>
    <h2>Task ${id}</h2>
    <${ErrorLine} error=${task.error} />
    ${message?.ok ? html`<p class="notice" role="status">${message.ok}</p>` : html`<${ErrorLine} error=${message?.error} />`}
    ${
      t
        ? html`<div class="card">
            <div class="actions">
              <button type="button" disabled=${t.state !== 'failed'} onClick=${() => act('retry')}>Retry</button>
              <button type="button" class="danger" disabled=${!['waiting', 'prioritized', 'delayed'].includes(t.state)} onClick=${() => act('cancel')}>Cancel</button>
            </div>
            <dl class="detail">
              <dt>state</dt><dd><${StateBadge} state=${t.state} /></dd>
              <dt>task</dt><dd>${t.task}</dd>
              <dt>queue</dt><dd>${t.queue}</dd>
              <dt>attempts</dt><dd>${t.attempts} (retries allowed: ${t.retries})</dd>
              <dt>submitted</dt><dd>${time(t.createdAt)}</dd>
              <dt>started</dt><dd>${time(t.startedAt)}</dd>
              <dt>finished</dt><dd>${time(t.finishedAt)}</dd>
              <dt>last heartbeat</dt><dd>${time(t.lastHeartbeatAt)}</dd>
              <dt>trace id</dt><dd>${t.traceId ?? '–'}</dd>
              <dt>params</dt><dd><pre>${JSON.stringify(t.params, null, 2)}</pre></dd>
              ${t.result !== undefined ? html`<dt>result</dt><dd><pre>${JSON.stringify(t.result, null, 2)}</pre></dd>` : null}
              ${t.error ? html`<dt>error</dt><dd><pre class="error">${t.error.message}</pre></dd>` : null}
            </dl>
          </div>
          <div class="card scroll">
            <h3>Attempts</h3>
            <table aria-label="Attempts">
              <thead><tr><th class="num">attempt</th><th>worker</th><th>started</th></tr></thead>
              <tbody>
                ${(t.attemptsBy ?? []).map((a) => html`<tr><td class="num">${a.attempt}</td><td>${a.worker}</td><td>${time(a.startedAt)}</td></tr>`)}
              </tbody>
            </table>
          </div>`
        : task.error
          ? null
          : html`<p>Loading…</p>`
    }
  </main>`;
}
