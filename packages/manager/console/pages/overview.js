// Overview: per queue and task type, the numbers now, the last 5 minutes and the last hour as charts.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { ErrorLine, rate, seconds, useApi } from '../shared.js';

function Chart({ title, at, series }) {
  const box = useRef(null);
  const plot = useRef(null);
  const labels = series.map((s) => s.label).join(',');
  const data = [at.map((ms) => ms / 1000), ...series.map((s) => s.values)];
  useEffect(() => {
    if (!box.current) return undefined;
    plot.current = new uPlot(
      {
        width: Math.max(260, box.current.clientWidth || 300),
        height: 120,
        legend: { show: true },
        axes: [{}, { size: 40 }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, spanGaps: true }))],
      },
      data,
      box.current,
    );
    return () => plot.current?.destroy();
  }, [labels]);
  // New points only redraw the plot.
  useEffect(() => {
    plot.current?.setData(data);
  }, [JSON.stringify(data)]);
  return html`<figure class="chart" aria-label=${title}><h4>${title}</h4><div ref=${box}></div></figure>`;
}

export function Overview() {
  // Polled: the numbers are aggregates, which the event stream would only say to reload.
  const stats = useApi('/stats', 5000);
  const tasks = stats.data?.tasks ?? [];
  return html`<main>
    <h2>Overview</h2>
    <${ErrorLine} error=${stats.error} />
    <div class="card scroll">
      <table aria-label="Queues and task types">
        <thead>
          <tr>
            <th>queue</th><th>task</th><th class="num">available</th><th class="num">backlog age</th><th class="num">running</th>
            <th class="num">incidents</th><th class="num">created/min</th><th class="num">completed/min</th>
            <th class="num">in queue p50</th><th class="num">in queue p95</th><th class="num">execution p95</th>
            <th class="num">retries</th><th class="num">timeouts</th>
          </tr>
        </thead>
        <tbody>
          ${tasks.map(
            (t) => html`<tr data-task=${t.task}>
              <td>${t.queue}</td><td>${t.task}</td>
              <td class="num" data-field="available">${t.available}</td>
              <td class="num">${seconds(t.backlogAgeSeconds)}</td>
              <td class="num" data-field="running">${t.running}</td>
              <td class="num" data-field="incidents">${t.incidents}</td>
              <td class="num">${t.createdPerMinute}</td>
              <td class="num" data-field="completedPerMinute">${t.completedPerMinute}</td>
              <td class="num">${seconds(t.timeInQueueP50Seconds)}</td>
              <td class="num">${seconds(t.timeInQueueP95Seconds)}</td>
              <td class="num">${seconds(t.executionP95Seconds)}</td>
              <td class="num">${rate(t.retryRate)}</td>
              <td class="num">${rate(t.timeoutRate)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${stats.data ? html`<p class="muted">Rates and quantiles over the last ${Math.max(1, Math.round((stats.data.at - stats.data.windowStart) / 60000))} min; charts: the last hour, per minute.</p>` : html`<p>Loading…</p>`}
    </div>
    ${tasks.map(
      (t) => html`<section class="card" aria-label=${`${t.queue} ${t.task}`}>
        <h3>${t.queue} · ${t.task}</h3>
        <div class="charts">
          <${Chart} title="available" at=${t.history.at} series=${[{ label: 'available', color: '#1f5fbf', values: t.history.available }]} />
          <${Chart}
            title="created vs completed per minute"
            at=${t.history.at}
            series=${[
              { label: 'created', color: '#8a4baf', values: t.history.createdPerMinute },
              { label: 'completed', color: '#067647', values: t.history.completedPerMinute },
            ]}
          />
          <${Chart}
            title="p95 seconds"
            at=${t.history.at}
            series=${[
              { label: 'in queue', color: '#b54708', values: t.history.timeInQueueP95Seconds },
              { label: 'execution', color: '#1f5fbf', values: t.history.executionP95Seconds },
            ]}
          />
        </div>
      </section>`,
    )}
  </main>`;
}
