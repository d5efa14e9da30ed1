// Queues: counts per state and available per task type; pause and resume.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorLine, useApi } from '../shared.js';

const states = ['waiting', 'prioritized', 'delayed', 'active', 'paused', 'completed', 'failed'];

export function Queues() {
  const queues = useApi('/queues', 3000);
  const [error, setError] = useState(undefined);
  const toggle = async (queue) => {
    try {
      await api('POST', `/queues/${encodeURIComponent(queue.name)}/${queue.paused ? 'resume' : 'pause'}`);
      setError(undefined);
    } catch (e) {
      setError(e);
    }
    void queues.reload();
  };
  return html`<main>
    <h2>Queues</h2>
    <${ErrorLine} error=${queues.error ?? error} />
    <div class="card scroll">
      <table aria-label="Queues">
        <thead><tr><th>queue</th><th>status</th>${states.map((s) => html`<th class="num">${s}</th>`)}<th>available per task</th><th></th></tr></thead>
        <tbody>
          ${(queues.data?.queues ?? []).map(
            (q) => html`<tr data-queue=${q.name}>
              <td>${q.name}</td>
              <td data-field="status">${q.paused ? 'paused' : 'running'}</td>
              ${states.map((s) => html`<td class="num">${q.counts[s] ?? 0}</td>`)}
              <td>${Object.entries(q.available)
                .map(([task, n]) => `${task}: ${n}`)
                .join(', ')}</td>
              <td><button type="button" class=${q.paused ? '' : 'secondary'} onClick=${() => toggle(q)}>${q.paused ? `Resume ${q.name}` : `Pause ${q.name}`}</button></td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </main>`;
}
