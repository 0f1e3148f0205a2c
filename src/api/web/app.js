// Openline managers' page: a small hash-routed client of /api/v1 with the session cookie.
// Everything from the server goes into the page as text (textContent, never innerHTML), so caller
// names and other SIP-supplied text cannot inject markup.
'use strict';

const state = {
  csrf: null, role: null, extension: null, socket: null,
  // Broadcasts on screen by id: their live counts (from the API, then from broadcast_progress
  // events) and the pace seen in those events, for the ETA.
  campaigns: new Map(),
  // Ids of campaigns an event named that the list did not have (the list is re-read once each).
  unknownCampaigns: new Set(),
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'onclick' || k === 'onchange' || k === 'onsubmit') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '—');
const fmtDuration = (ms) => (ms === null || ms === undefined ? '—' : `${Math.round(ms / 1000)} s`);
const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: 'same-origin' };
  if (body instanceof FormData) {
    options.body = body; // the browser writes the multipart Content-Type with its boundary
  } else if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  if (method !== 'GET' && state.csrf) options.headers['X-CSRF-Token'] = state.csrf;
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401 && path !== '/api/v1/session') {
    showSignIn();
    throw new Error('signed out');
  }
  if (!response.ok) {
    throw new Error((data && data.error && data.error.message) || response.statusText);
  }
  return data;
}

function show(...nodes) {
  const view = $('view');
  view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  view.hidden = false;
}

function showError(error) {
  show(el('p', { class: 'error', role: 'alert' }, error.message || String(error)));
}

function showSignIn() {
  $('nav').hidden = true;
  $('view').hidden = true;
  $('live').hidden = true;
  $('sign-in').hidden = false;
  $('token').focus();
}

function signedIn(session) {
  state.csrf = session.csrf;
  state.role = session.role;
  state.extension = session.extension;
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('who').textContent = session.extension ? `${session.role} ${session.extension}` : session.role;
  $('nav-broadcasts').hidden = session.role === 'operator';
  connectEvents();
  route();
}

// ---- calls -------------------------------------------------------------------------------

const DISPOSITIONS = ['', 'answered', 'ivr', 'voicemail', 'queue', 'cancelled', 'rejected', 'failed', 'system'];

function hashQuery() {
  const hash = location.hash.slice(1);
  const i = hash.indexOf('?');
  return new URLSearchParams(i >= 0 ? hash.slice(i + 1) : '');
}

function localToIso(value) {
  return value ? new Date(value).toISOString() : '';
}

async function callsPage() {
  const q = hashQuery();
  const field = (name, label, type, value) =>
    el('label', {}, label, el('input', { name, type: type || 'text', value: value || '' }));
  const select = (name, label, options, value) =>
    el('label', {}, label, el('select', { name },
      options.map((o) => el('option', { value: o, selected: o === value ? 'selected' : null }, o || 'any'))));
  const form = el('form', { class: 'filters', id: 'call-filters' },
    field('since', 'From', 'datetime-local', q.get('since_local')),
    field('until', 'To', 'datetime-local', q.get('until_local')),
    field('number', 'Number', 'text', q.get('number')),
    field('queue', 'Queue', 'text', q.get('queue')),
    field('operator', 'Operator', 'text', q.get('operator')),
    select('rating', 'Rating', ['', '1', '2', '3', '4', '5'], q.get('rating') || ''),
    select('disposition', 'Disposition', DISPOSITIONS, q.get('disposition') || ''),
    el('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    for (const [k, v] of data.entries()) {
      if (!v) continue;
      if (k === 'since' || k === 'until') next.set(`${k}_local`, v);
      else next.set(k, v);
    }
    location.hash = `#/calls?${next}`;
  });
  const api_q = new URLSearchParams();
  for (const k of ['number', 'queue', 'operator', 'rating', 'disposition']) if (q.get(k)) api_q.set(k, q.get(k));
  if (q.get('since_local')) api_q.set('since', localToIso(q.get('since_local')));
  if (q.get('until_local')) api_q.set('until', localToIso(q.get('until_local')));
  api_q.set('limit', '200');
  const page = await api('GET', `/api/v1/calls?${api_q}`);
  const rows = page.calls.map((c) => el('tr', {
    class: 'row', 'data-call-id': c.id, onclick: () => { location.hash = `#/call/${encodeURIComponent(c.id)}`; },
  },
  el('td', {}, el('a', { href: `#/call/${encodeURIComponent(c.id)}` }, fmtTime(c.started_at))),
  el('td', {}, c.direction),
  el('td', { class: 'caller' }, c.caller_name ? el('div', { class: 'caller-name' }, c.caller_name) : null, el('div', {}, c.caller)),
  el('td', {}, c.callee),
  el('td', {}, fmtDuration(c.duration_ms)),
  el('td', {}, text(c.disposition)),
  el('td', {}, text(c.operator)),
  el('td', {}, c.recording_id ? '▶ recording' : '')));
  show(el('h1', {}, 'Calls'), form,
    el('table', { id: 'calls-table' },
      el('thead', {}, el('tr', {}, ['Started', 'Direction', 'Caller', 'Callee', 'Duration', 'Disposition', 'Operator', ''].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)),
    rows.length ? null : el('p', { class: 'muted', id: 'no-calls' }, 'No calls match.'));
}

async function callPage(id) {
  const c = await api('GET', `/api/v1/calls/${encodeURIComponent(id)}`);
  const person = c.person
    ? el('a', { href: `#/${c.person.kind}/${encodeURIComponent(c.person.id)}`, id: 'call-person' }, `${c.person.kind} ${c.person.id}`)
    : '—';
  const player = c.recording_id
    ? el('audio', { id: 'player', controls: 'controls', preload: 'metadata', src: `/api/v1/recordings/${encodeURIComponent(c.recording_id)}` })
    : el('p', { class: 'muted' }, 'No recording.');
  show(el('h1', {}, 'Call'),
    el('dl', { id: 'call-details' }, [
      ['Id', c.id], ['Direction', c.direction], ['Caller', c.caller], ['Caller name', text(c.caller_name)],
      ['Callee', c.callee], ['Started', fmtTime(c.started_at)], ['Answered', fmtTime(c.answered_at)],
      ['Ended', fmtTime(c.ended_at)], ['Duration', fmtDuration(c.duration_ms)], ['Disposition', text(c.disposition)],
      ['Flow path', c.flow_path && c.flow_path.length ? c.flow_path.join(' → ') : '—'],
      ['Queue', text(c.queue)], ['Operator', text(c.operator)], ['Rating', text(c.rating)],
    ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    el('p', {}, 'CRM: ', person),
    el('h2', {}, 'Recording'), player,
    el('h2', {}, 'Legs'),
    el('table', {}, el('tbody', {}, (c.legs || []).map((l) => el('tr', {},
      el('td', {}, l.sip_call_id), el('td', {}, l.transport), el('td', {}, text(l.remote_addr)), el('td', {}, text(l.final_status)))))));
}

// ---- CRM ---------------------------------------------------------------------------------

async function peoplePage(kind) {
  const q = hashQuery();
  const form = el('form', { class: 'filters' },
    el('label', {}, 'Number', el('input', { name: 'number', value: q.get('number') || '' })),
    el('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const number = new FormData(form).get('number');
    location.hash = `#/${kind}s${number ? `?number=${encodeURIComponent(number)}` : ''}`;
  });
  const query = q.get('number') ? `?number=${encodeURIComponent(q.get('number'))}` : '';
  const page = await api('GET', `/api/v1/${kind}s${query}`);
  show(el('h1', {}, kind === 'lead' ? 'Leads' : 'Contacts'), form,
    el('table', {}, el('tbody', {}, page.items.map((p) => el('tr', {
      class: 'row', onclick: () => { location.hash = `#/${kind}/${encodeURIComponent(p.id)}`; },
    },
    el('td', {}, el('a', { href: `#/${kind}/${encodeURIComponent(p.id)}` }, text(p.name || p.title))),
    el('td', {}, p.phones.join(', ')), el('td', {}, p.emails.join(', ')), el('td', {}, fmtTime(p.created_at)))))));
}

async function personPage(kind, id) {
  const p = await api('GET', `/api/v1/${kind}s/${encodeURIComponent(id)}`);
  const t = await api('GET', `/api/v1/${kind}s/${encodeURIComponent(id)}/timeline`);
  const actions = el('p', {});
  if (kind === 'lead' && state.role !== 'operator') {
    actions.append(el('button', { type: 'button', id: 'convert', onclick: async () => {
      try { await api('POST', `/api/v1/leads/${encodeURIComponent(id)}/convert`); location.hash = `#/contact/${encodeURIComponent(id)}`; } catch (e) { showError(e); }
    } }, 'Convert to contact'));
  }
  if (state.role === 'admin') {
    actions.append(el('button', { type: 'button', id: 'erase', onclick: async () => {
      if (!window.confirm('Erase this person, their timeline and recordings?')) return;
      try { await api('DELETE', `/api/v1/${kind}s/${encodeURIComponent(id)}`); location.hash = `#/${kind}s`; } catch (e) { showError(e); }
    } }, 'Erase (GDPR)'));
  }
  const entries = t.entries.map((e) => el('li', { 'data-entry-id': e.id },
    el('div', {}, el('strong', {}, fmtTime(e.at)), ' ', e.kind, ' · ', text(e.data && e.data.direction), ' · ',
      text(e.data && e.data.number), ' · ', text(e.data && e.data.disposition), ' · ', fmtDuration(e.data && e.data.duration_ms)),
    e.call_id ? el('a', { href: `#/call/${encodeURIComponent(e.call_id)}` }, 'Open call') : null,
    e.recording_id ? el('audio', { controls: 'controls', preload: 'none', src: `/api/v1/recordings/${encodeURIComponent(e.recording_id)}` }) : null));
  show(el('h1', {}, `${kind === 'lead' ? 'Lead' : 'Contact'}: `, text(p.name || p.title)),
    el('dl', {}, [['Title', text(p.title)], ['Company', text(p.company)], ['Phones', p.phones.join(', ') || '—'],
      ['E-mails', p.emails.join(', ') || '—'], ['Responsible', text(p.responsible)], ['Source', p.source],
      ['Created', fmtTime(p.created_at)]].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    actions, el('h2', {}, 'Timeline'),
    entries.length ? el('ul', { class: 'timeline', id: 'timeline' }, entries) : el('p', { class: 'muted' }, 'Nothing yet.'));
}

// ---- broadcasts --------------------------------------------------------------------------

// Outcome codes in the order they are listed, with their words for one and for several.
const OUTCOME_WORDS = {
  human: ['answered', 'answered'],
  machine: ['answering machine', 'answering machines'],
  opted_out: ['opted out', 'opted out'],
  busy: ['busy', 'busy'],
  no_answer: ['no answer', 'no answer'],
  rejected: ['rejected', 'rejected'],
  failed: ['failed', 'failed'],
  do_not_call: ['on the do-not-call list', 'on the do-not-call list'],
  cancelled: ['cancelled', 'cancelled'],
  invalid_number: ['invalid number', 'invalid numbers'],
};
const OUTCOME_ORDER = Object.keys(OUTCOME_WORDS);
const BROADCAST_ACTIONS = { draft: ['start', 'cancel'], running: ['pause', 'cancel'], paused: ['resume', 'cancel'] };
const ACTION_LABELS = { start: 'Start', pause: 'Pause', resume: 'Resume', cancel: 'Cancel' };
const AMD_WORDS = { off: 'off', hangup: 'hang up on machines', leave_message: 'leave the message on machines' };

function outcomeWord(code, n) {
  const words = OUTCOME_WORDS[code];
  return words ? words[n === 1 ? 0 : 1] : String(code).replace(/_/g, ' ');
}

function outcomesInWords(outcomes) {
  const rank = (code) => (OUTCOME_ORDER.includes(code) ? OUTCOME_ORDER.indexOf(code) : OUTCOME_ORDER.length);
  const parts = Object.entries(outcomes || {})
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([code, n]) => `${n} ${outcomeWord(code, n)}`);
  return parts.length ? parts.join(', ') : 'none yet';
}

function fmtSecs(secs) {
  if (secs === null || secs === undefined) return '—';
  if (secs < 60) return `${secs} s`;
  const min = Math.round(secs / 60);
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

function fmtEta(s) {
  if (s.state !== 'running' || s.eta_secs === null || s.eta_secs === undefined) return '—';
  return s.eta_secs < 60 ? 'under a minute' : `about ${fmtSecs(s.eta_secs)}`;
}

// The bar counts the numbers that can be called: rows with an invalid number were never going
// to be, and a cancelled campaign's uncalled numbers are not progress.
function callCounts(s) {
  const outcomes = s.outcomes || {};
  const invalid = outcomes.invalid_number || 0;
  const callable = Math.max(0, s.total - invalid);
  const finished = Math.max(0, s.done - invalid - (outcomes.cancelled || 0));
  return { callable, finished };
}

// A campaign from the API as the page keeps it (the pace seen in events is kept across reads).
function rememberCampaign(c) {
  const p = c.progress || {};
  const before = state.campaigns.get(c.id);
  const s = {
    id: c.id, name: c.name, state: c.state, total: p.total || 0, pending: p.pending || 0,
    calling: p.calling || 0, done: p.done || 0, in_flight: p.in_flight ?? p.calling ?? 0, outcomes: p.outcomes || {},
    eta_secs: c.eta_secs === undefined ? null : c.eta_secs, pace: before ? before.pace : [],
  };
  state.campaigns.set(c.id, s);
  return s;
}

// The ETA from the pace of the last five minutes of events (as the API reckons it).
function notePace(s, at) {
  const t = Date.parse(at) || Date.now();
  s.pace.push([t, s.done]);
  while (s.pace.length > 2 && t - s.pace[0][0] > 300000) s.pace.shift();
  const [t0, done0] = s.pace[0];
  const remaining = s.pending + s.calling;
  const elapsed = (t - t0) / 1000;
  if (remaining === 0 || s.state !== 'running') s.eta_secs = null;
  else if (elapsed >= 10 && s.done > done0) s.eta_secs = Math.ceil(remaining * elapsed / (s.done - done0));
  else if (elapsed >= 60) s.eta_secs = null;
}

// Writes a campaign's live parts into every element marked with its data-field inside `root`.
function paintCampaign(root, s) {
  const field = (name) => root.querySelector(`[data-field="${name}"]`);
  const { callable, finished } = callCounts(s);
  const stateNode = field('state');
  if (stateNode) {
    stateNode.textContent = s.state;
    stateNode.className = `state state-${s.state}`;
  }
  const bar = field('bar');
  if (bar) {
    bar.max = Math.max(callable, 1);
    bar.value = finished;
    bar.textContent = `${finished} / ${callable}`;
  }
  const put = (name, value) => { const node = field(name); if (node) node.textContent = value; };
  put('count', `${finished} / ${callable}`);
  put('outcomes', outcomesInWords(s.outcomes));
  put('in-flight', String(s.in_flight));
  put('eta', fmtEta(s));
  const actions = field('actions');
  if (actions && actions.dataset.state !== s.state) {
    actions.dataset.state = s.state;
    actions.replaceChildren(...(BROADCAST_ACTIONS[s.state] || []).map((action) => el('button', {
      type: 'button', 'data-action': action,
      onclick: (event) => { event.stopPropagation(); controlBroadcast(s.id, action, event.currentTarget); },
    }, ACTION_LABELS[action])));
  }
}

function paintEverywhere(s) {
  for (const root of document.querySelectorAll(`[data-broadcast-id="${CSS.escape(s.id)}"]`)) paintCampaign(root, s);
}

async function controlBroadcast(id, action, button) {
  const s = state.campaigns.get(id);
  const name = s ? s.name : id;
  if (action === 'cancel'
    && !window.confirm(`Cancel the broadcast “${name}”? Numbers not called yet will not be called.`)) return;
  const root = button.closest('[data-broadcast-id]');
  const alert = $('broadcast-error');
  if (alert) alert.textContent = '';
  const buttons = [...button.parentNode.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  try {
    paintEverywhere(rememberCampaign(await api('POST', `/api/v1/broadcasts/${encodeURIComponent(id)}/${action}`)));
    if (root) root.dispatchEvent(new CustomEvent('broadcast-changed', { bubbles: true }));
  } catch (e) {
    if (e.message === 'signed out') return;
    if (alert) alert.textContent = `${name}: ${e.message}`;
    try { paintEverywhere(rememberCampaign(await api('GET', `/api/v1/broadcasts/${encodeURIComponent(id)}`))); } catch (_) { /* the message is shown */ }
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// A broadcast_progress event: the counts of a campaign on screen change in place.
function broadcastProgress(event) {
  const s = state.campaigns.get(event.broadcast_id);
  if (!s) {
    // A campaign made elsewhere since the list was read: read the list again, once.
    const tbody = document.querySelector('#broadcasts-table tbody');
    if (tbody && !state.unknownCampaigns.has(event.broadcast_id)) {
      state.unknownCampaigns.add(event.broadcast_id);
      loadBroadcasts(tbody, null).catch(() => {});
    }
    return;
  }
  const before = s.state;
  for (const k of ['state', 'total', 'pending', 'calling', 'done', 'in_flight']) {
    if (event[k] !== undefined && event[k] !== null) s[k] = event[k];
  }
  s.outcomes = event.outcomes || {};
  notePace(s, event.at);
  paintEverywhere(s);
  if (before !== s.state) {
    const list = $('live-events');
    list.prepend(el('li', {}, `broadcast “${s.name}” ${s.state}`));
    while (list.children.length > 50) list.lastChild.remove();
  }
}

function broadcastRow(c) {
  const s = rememberCampaign(c);
  const href = `#/broadcast/${encodeURIComponent(c.id)}`;
  const row = el('tr', { class: 'row', 'data-broadcast-id': c.id, onclick: () => { location.hash = href; } },
    el('td', {}, el('a', { href, class: 'broadcast-name' }, c.name), el('div', { class: 'muted' }, fmtTime(c.created_at))),
    el('td', {}, el('span', { 'data-field': 'state' })),
    el('td', { class: 'progress' }, el('progress', { 'data-field': 'bar' }), ' ', el('span', { 'data-field': 'count' })),
    el('td', { 'data-field': 'outcomes' }),
    el('td', { 'data-field': 'in-flight' }),
    el('td', { 'data-field': 'eta' }),
    el('td', { class: 'actions', 'data-field': 'actions' }));
  paintCampaign(row, s);
  return row;
}

// Reads a page of campaigns into `tbody` (the first page replaces what is there).
async function loadBroadcasts(tbody, before) {
  const q = new URLSearchParams({ limit: '50' });
  if (before) q.set('before', before);
  const page = await api('GET', `/api/v1/broadcasts?${q}`);
  const rows = page.items.map(broadcastRow);
  if (before) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  const empty = $('no-broadcasts');
  if (empty) empty.hidden = tbody.children.length > 0;
  const more = $('older-broadcasts');
  if (more) {
    more.hidden = !page.next_before;
    more.dataset.before = page.next_before || '';
  }
}

function createdReport(c) {
  const r = c.recipients || { accepted: 0, rejected: [], duplicates: [], leads_created: 0 };
  const href = `#/broadcast/${encodeURIComponent(c.id)}`;
  const nodes = [
    el('p', { id: 'created-summary' }, `“${c.name}” was created `,
      c.state === 'running' ? 'and calling has started.' : 'as a draft: press Start in the list to call.', ' ',
      el('a', { href }, 'Open it')),
    el('dl', { id: 'created-counts' },
      el('dt', {}, 'Numbers accepted'), el('dd', { id: 'accepted-count' }, String(r.accepted)),
      el('dt', {}, 'Rows rejected'), el('dd', { id: 'rejected-count' }, String(r.rejected.length)),
      el('dt', {}, 'Repeated numbers (called once)'), el('dd', { id: 'duplicate-count' }, String(r.duplicates.length)),
      el('dt', {}, 'New leads in the CRM'), el('dd', {}, String(r.leads_created))),
  ];
  if (r.rejected.length) {
    nodes.push(el('h3', {}, 'Rejected rows — these will not be called'),
      el('table', { id: 'rejected-rows' },
        el('thead', {}, el('tr', {}, ['Row', 'Number', 'Reason'].map((h) => el('th', {}, h)))),
        el('tbody', {}, r.rejected.map((x) => el('tr', {},
          el('td', {}, String(x.row)), el('td', {}, text(x.number)), el('td', {}, x.error))))));
  }
  if (r.duplicates.length) {
    nodes.push(el('h3', {}, 'Repeated numbers'),
      el('table', { id: 'duplicate-rows' },
        el('thead', {}, el('tr', {}, ['Row', 'Number', 'Same number as row'].map((h) => el('th', {}, h)))),
        el('tbody', {}, r.duplicates.map((x) => el('tr', {},
          el('td', {}, String(x.row)), el('td', {}, text(x.number)), el('td', {}, String(x.first_row)))))));
  }
  return nodes;
}

function broadcastForm(result, onCreated) {
  const input = (name, attrs) => el('input', { name, ...attrs });
  const csv = input('recipients', { type: 'file', accept: '.csv,text/csv,text/plain', required: 'required' });
  const audio = input('message', { type: 'file', accept: 'audio/*,.wav,.mp3,.ogg,.flac', required: 'required' });
  const textArea = el('textarea', { name: 'text', rows: 3, disabled: 'disabled' });
  const audioMode = input('message_kind', { type: 'radio', value: 'audio', checked: 'checked' });
  const textMode = input('message_kind', { type: 'radio', value: 'text' });
  const audioLabel = el('label', {}, 'Audio file', audio);
  const textLabel = el('label', { hidden: 'hidden' }, 'Text to read out', textArea);
  const showMode = () => {
    const isText = textMode.checked;
    audioLabel.hidden = isText;
    audio.disabled = isText;
    audio.required = !isText;
    textLabel.hidden = !isText;
    textArea.disabled = !isText;
    textArea.required = isText;
  };
  audioMode.addEventListener('change', showMode);
  textMode.addEventListener('change', showMode);
  const submit = el('button', { type: 'submit' }, 'Create broadcast');
  const form = el('form', { id: 'broadcast-form', class: 'create' },
    el('label', {}, 'Name', input('name', { required: 'required', maxlength: 200 })),
    el('label', {}, 'Recipients (CSV: number, name, timezone)', csv),
    el('fieldset', {}, el('legend', {}, 'Message'),
      el('label', { class: 'inline' }, audioMode, 'Audio file'),
      el('label', { class: 'inline' }, textMode, 'Text read by text-to-speech'),
      audioLabel, textLabel),
    el('label', {}, 'Calls at once', input('concurrency', { type: 'number', min: 1, max: 1000, step: 1, placeholder: '10' })),
    el('label', {}, 'New calls per second', input('cps', { type: 'number', min: 0.2, max: 1000, step: 'any', placeholder: 'the trunk’s limit' })),
    el('label', {}, 'Opt-out digit', el('select', { name: 'opt_out_digit' },
      ['', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#'].map((d) => el('option', { value: d }, d || 'none')))),
    el('label', {}, 'Trunk', input('trunk', { placeholder: 'the only one' })),
    el('label', { class: 'inline' }, input('start', { type: 'checkbox' }), 'Start calling now'),
    el('div', {}, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const campaign = { name: data.get('name'), start: data.get('start') === 'on' };
    if (data.get('concurrency')) campaign.concurrency = Number(data.get('concurrency'));
    if (data.get('cps')) campaign.cps = Number(data.get('cps'));
    if (data.get('opt_out_digit')) campaign.opt_out_digit = data.get('opt_out_digit');
    const trunk = String(data.get('trunk') || '').trim();
    if (trunk) campaign.trunk = trunk;
    if (textMode.checked) campaign.message = { kind: 'text', text: data.get('text') };
    const body = new FormData();
    body.append('campaign', JSON.stringify(campaign));
    if (!textMode.checked) body.append('message', audio.files[0]);
    body.append('recipients', csv.files[0]);
    submit.disabled = true;
    result.replaceChildren(el('p', { class: 'muted' }, 'Uploading…'));
    try {
      const created = await api('POST', '/api/v1/broadcasts', body);
      result.replaceChildren(...createdReport(created));
      form.reset();
      showMode();
      await onCreated(created);
    } catch (e) {
      if (e.message !== 'signed out') {
        result.replaceChildren(el('p', { class: 'error', role: 'alert', id: 'broadcast-form-error' }, e.message));
      }
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function broadcastsPage() {
  const tbody = el('tbody', {});
  const table = el('table', { id: 'broadcasts-table' },
    el('thead', {}, el('tr', {}, ['Name', 'State', 'Called', 'Outcomes', 'In flight', 'ETA', ''].map((h) => el('th', {}, h)))),
    tbody);
  const older = el('button', { type: 'button', id: 'older-broadcasts', hidden: 'hidden' }, 'Show older');
  older.addEventListener('click', async () => {
    try { await loadBroadcasts(tbody, older.dataset.before); } catch (e) { $('broadcast-error').textContent = e.message; }
  });
  const result = el('div', { id: 'broadcast-result', class: 'report', 'aria-live': 'polite' });
  const form = broadcastForm(result, () => loadBroadcasts(tbody, null));
  state.unknownCampaigns.clear();
  show(el('h1', {}, 'Broadcasts'),
    el('p', { id: 'broadcast-error', class: 'error', role: 'alert' }),
    table,
    el('p', { class: 'muted', id: 'no-broadcasts', hidden: 'hidden' }, 'No broadcasts yet.'),
    el('p', {}, older),
    el('h2', {}, 'New broadcast'), form, result);
  await loadBroadcasts(tbody, null);
}

function recipientRow(r) {
  const number = r.e164 || r.raw_number;
  const outcome = r.outcome ? `${outcomeWord(r.outcome, 1)}${r.sip_status ? ` (${r.sip_status})` : ''}` : '—';
  return el('tr', { 'data-position': r.position },
    el('td', {}, String(r.position)),
    el('td', {}, text(number), r.e164 && r.raw_number !== r.e164 ? el('div', { class: 'muted' }, r.raw_number) : null),
    el('td', {}, text(r.name)),
    el('td', {}, r.state),
    el('td', {}, String(r.attempts)),
    el('td', {}, outcome),
    el('td', {}, text(r.digit)),
    el('td', {}, text(r.error)),
    el('td', {}, r.state === 'pending' ? fmtTime(r.next_attempt_at) : '—'));
}

function describeSettings(c) {
  const s = c.settings;
  if (!s) return [['Settings', '—']];
  const m = s.message || {};
  let message = `text: ${m.text}`;
  if (m.kind === 'audio') message = String(m.file).startsWith('broadcasts/') ? 'an uploaded recording' : `audio: ${m.file}`;
  const retries = [['busy', s.retry_busy_secs], ['no answer', s.retry_no_answer_secs], ['failed', s.retry_failed_secs],
    ['machine', s.retry_machine_secs]]
    .map(([what, secs]) => (secs === null || secs === undefined ? `${what}: not again` : `${what}: after ${fmtSecs(secs)}`));
  return [
    ['Message', message],
    ['Calling hours', `${Object.entries(s.window || {}).map(([days, hours]) => `${days} ${hours}`).join(', ') || '—'} (${s.timezone || 'each number’s own time zone'})`],
    ['Calls per number', `at most ${s.max_attempts}; ${retries.join(', ')}`],
    ['Rings for', fmtSecs(s.max_ring_secs)],
    ['Answering machines', AMD_WORDS[s.amd] || text(s.amd)],
    ['Opt-out digit', text(s.opt_out_digit)],
    ['After the message', text(s.answer_flow)],
  ];
}

async function broadcastPage(id) {
  const c = await api('GET', `/api/v1/broadcasts/${encodeURIComponent(id)}`);
  const s = rememberCampaign(c);
  const digits = Object.entries((c.progress && c.progress.digits) || {}).map(([d, n]) => `${d}: ${n}`).join(', ');
  const details = el('section', { id: 'broadcast', 'data-broadcast-id': c.id },
    el('p', {}, el('a', { href: '#/broadcasts' }, '← All broadcasts')),
    el('h1', {}, 'Broadcast: ', c.name),
    el('p', { id: 'broadcast-error', class: 'error', role: 'alert' }),
    el('p', { class: 'actions' }, el('span', { 'data-field': 'state' }), ' ', el('span', { 'data-field': 'actions' })),
    el('dl', { id: 'broadcast-details' }, [
      ['Called', [el('progress', { 'data-field': 'bar' }), ' ', el('span', { 'data-field': 'count' })]],
      ['Outcomes', el('span', { 'data-field': 'outcomes' })],
      ['In flight', el('span', { 'data-field': 'in-flight' })],
      ['ETA', el('span', { 'data-field': 'eta' })],
      ['Calls made', String((c.progress && c.progress.attempts) || 0)],
      ['Digits pressed', digits || '—'],
      ['Trunk', c.trunk], ['Caller id', text(c.caller_id)],
      ['Calls at once', String(c.concurrency)], ['New calls per second', String(c.cps)],
      ...describeSettings(c),
      ['Created', `${fmtTime(c.created_at)} by ${text(c.created_by)}`],
      ['Started', fmtTime(c.started_at)], ['Finished', fmtTime(c.finished_at)],
    ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
  paintCampaign(details, s);

  const tbody = el('tbody', {});
  const more = el('button', { type: 'button', id: 'more-recipients', hidden: 'hidden' }, 'Show more');
  let after = null;
  const load = async (reset) => {
    const q = new URLSearchParams({ limit: '100' });
    if (!reset && after !== null) q.set('after', String(after));
    const page = await api('GET', `/api/v1/broadcasts/${encodeURIComponent(id)}/recipients?${q}`);
    const rows = page.items.map(recipientRow);
    if (reset) tbody.replaceChildren(...rows);
    else tbody.append(...rows);
    // Pages go by position (the last row's), so that is where the next one starts.
    const last = page.items[page.items.length - 1];
    after = last ? last.position : after;
    more.hidden = page.next_after === null || page.next_after === undefined;
  };
  const reload = () => load(true).catch((e) => { $('broadcast-error').textContent = e.message; });
  more.addEventListener('click', () => load(false).catch((e) => { $('broadcast-error').textContent = e.message; }));
  details.addEventListener('broadcast-changed', reload);
  await load(true);
  show(details,
    el('h2', {}, 'Recipients ', el('button', { type: 'button', id: 'refresh-recipients', onclick: reload }, 'Refresh')),
    el('table', { id: 'recipients-table' },
      el('thead', {}, el('tr', {}, ['Row', 'Number', 'Name', 'State', 'Calls', 'Outcome', 'Digit', 'Error', 'Next call'].map((h) => el('th', {}, h)))),
      tbody),
    el('p', {}, more));
}

// ---- operators and live events ------------------------------------------------------------

async function operatorsPage() {
  const operators = await api('GET', '/api/v1/operators');
  const rows = operators.map((o) => {
    const select = el('select', { 'data-ext': o.extension },
      ['online', 'away', 'offline'].map((s) => el('option', { value: s, selected: s === o.status ? 'selected' : null }, s)));
    select.addEventListener('change', async () => {
      try { await api('PUT', `/api/v1/operators/${encodeURIComponent(o.extension)}/status`, { status: select.value }); } catch (e) { showError(e); }
    });
    return el('tr', {}, el('td', {}, o.extension), el('td', {}, o.name), el('td', {}, select));
  });
  show(el('h1', {}, 'Operators'), el('table', { id: 'operators' }, el('tbody', {}, rows)),
    el('p', { class: 'muted' }, 'Queue status and ratings per operator appear here once queues and ratings exist.'));
}

function connectEvents() {
  if (state.socket) return;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/api/v1/events`);
  state.socket = socket;
  $('live').hidden = false;
  socket.addEventListener('message', (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch (_) { return; }
    if (event.type === 'ready') return;
    if (event.type === 'broadcast_progress') {
      broadcastProgress(event);
      return;
    }
    const line = [event.type, event.caller, event.callee, event.extension, event.status, event.disposition]
      .filter(Boolean).join(' ');
    const list = $('live-events');
    list.prepend(el('li', {}, line));
    while (list.children.length > 50) list.lastChild.remove();
    if (event.type === 'operator_status') {
      const select = document.querySelector(`select[data-ext="${CSS.escape(event.extension)}"]`);
      if (select) select.value = event.status;
    }
  });
  socket.addEventListener('close', () => { state.socket = null; setTimeout(() => { if (state.role) connectEvents(); }, 5000); });
}

// ---- routing and start --------------------------------------------------------------------

async function route() {
  const path = location.hash.slice(1).split('?')[0] || '/calls';
  const [, section, id] = path.split('/');
  try {
    if (section === 'call' && id) await callPage(decodeURIComponent(id));
    else if ((section === 'lead' || section === 'contact') && id) await personPage(section, decodeURIComponent(id));
    else if (section === 'leads') await peoplePage('lead');
    else if (section === 'contacts') await peoplePage('contact');
    else if (section === 'operators') await operatorsPage();
    else if (section === 'broadcasts') await broadcastsPage();
    else if (section === 'broadcast' && id) await broadcastPage(decodeURIComponent(id));
    else await callsPage();
  } catch (e) {
    if (e.message !== 'signed out') showError(e);
  }
}

document.addEventListener('DOMContentLoaded', async () => {
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('sign-in-error').textContent = '';
    try {
      const session = await api('POST', '/api/v1/session', { token: $('token').value });
      $('token').value = '';
      signedIn(session);
    } catch (e) {
      $('sign-in-error').textContent = 'That token was not accepted.';
    }
  });
  $('sign-out').addEventListener('click', async () => {
    try { await api('DELETE', '/api/v1/session'); } catch (_) { /* signed out anyway */ }
    state.role = null;
    state.csrf = null;
    if (state.socket) state.socket.close();
    showSignIn();
  });
  window.addEventListener('hashchange', () => { if (state.role) route(); });
  try {
    signedIn(await api('GET', '/api/v1/session'));
  } catch (_) {
    showSignIn();
  }
});
