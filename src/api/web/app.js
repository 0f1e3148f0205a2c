// Openline managers' page: a small hash-routed client of /api/v1 with the session cookie.
// Everything from the server goes into the page as text (textContent, never innerHTML), so caller
// names and other SIP-supplied text cannot inject markup.
'use strict';

const state = { csrf: null, role: null, extension: null, socket: null };

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
  if (body !== undefined) {
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
