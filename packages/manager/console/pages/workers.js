// Workers: every live worker, what it runs now and since when.
import { html } from 'htm/preact';
import { ErrorLine, time, useApi } from '../shared.js';

export function Workers() {
  const workers = useApi('/workers', 2000);
  const list = workers.data?.workers ?? [];
  return html`<main>
    <h2>Workers</h2>
    <${ErrorLine} error=${workers.error} />
    <div class="card scroll">
      <table aria-label="Workers">
        <thead><tr><th>worker</th><th>role</th><th>host:pid</th><th>queues</th><th class="num">concurrency</th><th>running now</th><th>last seen</th></tr></thead>
        <tbody>
          ${list.map(
            (w) => html`<tr data-worker=${w.id}>
              <td>${w.id}</td><td>${w.role}</td><td>${w.host}:${w.pid}</td><td>${w.queues.join(', ')}</td>
              <td class="num">${w.concurrency}</td>
              <td>
                ${w.running.length === 0 ? html`<span class="muted">idle</span>` : null}
                ${w.running.map(
                  (r) =>
                    html`<div data-running=${r.taskId}><a href=${`#/task/${encodeURIComponent(r.taskId)}`}>${r.task} ${r.taskId}</a> attempt ${r.attempt} since ${time(r.startedAt)}</div>`,
                )}
              </td>
              <td>${time(w.lastSeenAt)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${workers.data && list.length === 0 ? html`<p class="muted">No live workers.</p>` : null}
    </div>
  </main>`;
}
