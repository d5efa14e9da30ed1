// Incidents: failed tasks with no retries left; a filter previews what a mass retry would take.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorLine, isoFromLocal, useApi, useEventStream, useThrottled } from '../shared.js';
import { listQuery, TaskFilters, TaskTable } from './tasks.js';

export function Incidents() {
  const [filters, setFilters] = useState({});
  const page = useApi(`/tasks?${listQuery({ ...filters, state: 'failed' })}&limit=500`);
  const [message, setMessage] = useState(undefined);
  const refresh = useThrottled(() => page.reload(), 1000);
  // Only the transitions that add or resolve an incident.
  const changes = new URLSearchParams(listQuery({ queue: filters.queue, task: filters.task }));
  changes.append('transition', 'failed');
  changes.append('transition', 'incident-resolved');
  useEventStream(changes.toString(), refresh);
  const tasks = page.data?.tasks ?? [];
  const retryAll = async () => {
    const body = {};
    if (filters.queue) body.queue = filters.queue;
    if (filters.task) body.task = filters.task;
    if (filters.after) body.after = isoFromLocal(filters.after);
    if (filters.before) body.before = isoFromLocal(filters.before);
    if (Object.keys(body).length === 0) body.all = true;
    try {
      const result = await api('POST', '/tasks/retry', body);
      setMessage({
        ok: `Retried ${result.retried} of ${result.matched} matching incidents${result.more ? '; more remain' : ''}.`,
      });
    } catch (error) {
      setMessage({ error });
    }
    void page.reload();
  };
  return html`<main>
    <h2>Incidents</h2>
    <${TaskFilters} filters=${filters} withState=${false} submitLabel="Preview" onChange=${(f) => {
      setFilters(f);
      setMessage(undefined);
    }} />
    <${ErrorLine} error=${page.error} />
    ${message?.ok ? html`<p class="notice" role="status">${message.ok}</p>` : html`<${ErrorLine} error=${message?.error} />`}
    <div class="actions">
      <span role="status" data-matched=${tasks.length}>${tasks.length}${page.data?.nextCursor ? '+' : ''} incidents match this filter.</span>
      <button type="button" disabled=${tasks.length === 0} onClick=${retryAll}>Retry all matching</button>
    </div>
    <div class="card"><${TaskTable} tasks=${tasks} label="Incidents" /></div>
  </main>`;
}
