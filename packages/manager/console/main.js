// The Jobbers console: overview, tasks, incidents, queues and workers, from the REST API and the
// live event stream. Hash routes (#/tasks, #/task/<id>, ...) keep every page linkable.
import { html, render } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, apiKey, authNeeded, setApiKey } from './api.js';
import { Incidents } from './pages/incidents.js';
import { Overview } from './pages/overview.js';
import { Queues } from './pages/queues.js';
import { TaskDetail, Tasks } from './pages/tasks.js';
import { Workers } from './pages/workers.js';
import { liveState } from './shared.js';

const pages = [
  ['overview', 'Overview'],
  ['tasks', 'Tasks'],
  ['incidents', 'Incidents'],
  ['queues', 'Queues'],
  ['workers', 'Workers'],
];

function currentRoute() {
  const [page = 'overview', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { page: page || 'overview', arg: rest.map(decodeURIComponent).join('/') };
}

function KeyForm({ onDone }) {
  const [key, setKey] = useState('');
  return html`<main>
    <div class="card">
      <h2>API key</h2>
      <p>This manager needs an API key. It is kept for this browser session only.</p>
      ${authNeeded.refused ? html`<p class="error" role="alert">That key was not accepted.</p>` : null}
      <form
        class="filters"
        onSubmit=${(e) => {
          e.preventDefault();
          authNeeded.needed = false;
          setApiKey(key.trim());
          onDone();
        }}
      >
        <label for="api-key">API key<input id="api-key" type="password" autocomplete="off" value=${key} onInput=${(e) => setKey(e.target.value)} /></label>
        <button type="submit">Use this key</button>
      </form>
    </div>
  </main>`;
}

function App() {
  const [route, setRoute] = useState(currentRoute());
  const [, redraw] = useState(0);
  const [live, setLive] = useState(liveState.value);
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    addEventListener('hashchange', onHash);
    const onKey = () => redraw((n) => n + 1);
    authNeeded.listeners.add(onKey);
    liveState.listeners.add(setLive);
    return () => {
      removeEventListener('hashchange', onHash);
      authNeeded.listeners.delete(onKey);
      liveState.listeners.delete(setLive);
    };
  }, []);
  const keyState = apiKey();

  if (authNeeded.needed) return html`<${KeyForm} onDone=${() => redraw((n) => n + 1)} />`;
  const { page, arg } = route;
  // The key is part of each page's identity: a new key mounts the page again (and its stream).
  const content = {
    overview: () => html`<${Overview} />`,
    tasks: () => html`<${Tasks} />`,
    task: () => html`<${TaskDetail} id=${arg} />`,
    incidents: () => html`<${Incidents} />`,
    queues: () => html`<${Queues} />`,
    workers: () => html`<${Workers} />`,
  }[page];
  return html`
    <header>
      <h1>Jobbers</h1>
      <nav aria-label="Pages">
        ${pages.map(
          ([id, label]) =>
            html`<a href=${`#/${id}`} aria-current=${page === id || (id === 'tasks' && page === 'task') ? 'page' : undefined}>${label}</a>`,
        )}
      </nav>
      <span class="live" role="status" data-live=${live}>${live === 'live' ? '● live' : live === 'polling' ? 'refreshed every few seconds' : `○ ${live}`}</span>
      ${keyState ? html`<button class="secondary" type="button" onClick=${() => setApiKey('')}>Forget key</button>` : null}
    </header>
    <div key=${keyState}>${content ? content() : html`<main><p class="error">No page "${page}".</p></main>`}</div>
  `;
}

addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof ApiError) console.warn(e.reason.message);
});
// A first call tells whether a key is needed before any page loads.
// A 401 asks for the key (api() does it); anything else is said, the pages then show their own errors.
api('GET', '/queues').catch((error) => console.warn(`first call to the API failed: ${error.message}`));
render(html`<${App} />`, document.getElementById('app'));
