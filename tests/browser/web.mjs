// Browser test of the managers' page (acceptance 3), run by tests/web.rs: Debian's chromium,
// headless, driven by playwright-core. Signs in with a token, filters the calls list, opens a
// call and plays its recording until currentTime > 0.5 s, and checks that a caller name with
// markup in it is shown as text. Then broadcasts: the form shows the API's error, creates a
// campaign from a CSV and an audio file and reports the accepted count and the rejected row;
// the list shows state, "0 / 2" and outcomes in words; a campaign cancelled through the API
// turns to cancelled from the live event (no reload); the Cancel button cancels; the campaign's
// page lists its recipients. Screenshots go to $OPENLINE_ARTEFACTS.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('OPENLINE_URL');
const token = env('OPENLINE_TOKEN');
const number = env('OPENLINE_NUMBER');
const evilName = env('OPENLINE_EVIL_NAME');
const artefacts = env('OPENLINE_ARTEFACTS');
const audioPath = env('OPENLINE_AUDIO');
mkdirSync(artefacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
});
const problems = [];
let step = 0;
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const confirmations = [];
page.on('dialog', async (dialog) => {
  if (dialog.type() === 'confirm' && dialog.message().startsWith('Cancel the broadcast')) {
    confirmations.push(dialog.message());
    await dialog.accept();
    return;
  }
  problems.push(`a dialog opened: ${dialog.message()}`);
  await dialog.dismiss();
});
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
const expect = (what, actual, wanted) => {
  if (actual !== wanted) problems.push(`${what}: ${JSON.stringify(actual)}, wanted ${JSON.stringify(wanted)}`);
};
// The API with the token (as another manager's client would use it), for what the page should
// see happen elsewhere.
const api = async (method, path, body) => {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
};
const shot = (name) => page.screenshot({ path: join(artefacts, `${String(++step).padStart(2, '0')}-${name}.png`), fullPage: true });

try {
  await page.goto(base);
  await page.locator('#token').waitFor({ state: 'visible' });
  await shot('sign-in');
  await page.fill('#token', token);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#calls-table tbody tr').first().waitFor();
  await shot('calls');

  // The caller name with markup is there as text, and nothing ran.
  const names = await page.locator('.caller-name').allTextContents();
  if (!names.includes(evilName)) problems.push(`caller name not shown as text: ${JSON.stringify(names)}`);
  const injected = await page.evaluate(() => document.querySelectorAll('#view script, #view img').length);
  if (injected !== 0) problems.push(`${injected} injected elements in the page`);
  if (await page.evaluate(() => window.__openlineXss !== undefined)) problems.push('injected script ran');

  // Filter by number: only that call stays.
  await page.fill('#call-filters input[name=number]', number);
  await page.click('#call-filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#calls-table tbody tr').length === 1);
  const callers = await page.locator('#calls-table tbody tr .caller').allTextContents();
  if (!callers[0].includes(number)) problems.push(`filtered list shows ${JSON.stringify(callers)}`);
  await shot('filtered');

  // Open the call and play its recording.
  await page.click('#calls-table tbody tr');
  await page.locator('#player').waitFor();
  await page.evaluate(() => document.getElementById('player').play());
  await page.waitForFunction(() => document.getElementById('player').currentTime > 0.5, null, { timeout: 20000 });
  const played = await page.evaluate(() => document.getElementById('player').currentTime);
  console.log(`recording played to ${played.toFixed(2)} s`);
  await shot('call-playing');

  // The lead of that call, with the call on its timeline.
  await page.click('#call-person');
  await page.locator('#timeline li').first().waitFor();
  await shot('lead-timeline');

  // The filters accept a date range and disposition without errors.
  await page.goto(`${base}/#/calls?disposition=ivr&since_local=2000-01-01T00:00`);
  await page.locator('#calls-table').waitFor();
  const rows = await page.locator('#calls-table tbody tr').count();
  if (rows < 2) problems.push(`disposition/date filter shows ${rows} rows`);
  await page.goto(`${base}/#/calls?disposition=cancelled`);
  await page.locator('#no-calls').waitFor();
  await shot('filtered-empty');

  // ---- Broadcasts ----
  // One made elsewhere, through the API: the page lists it.
  const otherName = 'Autumn reminder';
  const other = await api('POST', '/api/v1/broadcasts', {
    name: otherName, message: { kind: 'sound', file: 'beep.wav' }, recipients: { numbers: ['+380441230009'] },
  });
  await page.click('#nav a[href="#/broadcasts"]');
  await page.locator('#broadcasts-table tbody tr').first().waitFor();
  const campaignRow = (name) => page.locator('#broadcasts-table tbody tr', { has: page.locator('a.broadcast-name', { hasText: name }) });
  const readRow = async (row) => ({
    state: await row.locator('[data-field=state]').textContent(),
    count: await row.locator('[data-field=count]').textContent(),
    outcomes: await row.locator('[data-field=outcomes]').textContent(),
    inFlight: await row.locator('[data-field=in-flight]').textContent(),
    eta: await row.locator('[data-field=eta]').textContent(),
    buttons: await row.locator('button').allTextContents(),
  });
  const otherRow = campaignRow(otherName);
  const otherBefore = await readRow(otherRow);
  expect('the other campaign before', JSON.stringify(otherBefore),
    JSON.stringify({ state: 'draft', count: '0 / 1', outcomes: 'none yet', inFlight: '0', eta: '—', buttons: ['Start', 'Cancel'] }));

  // The form: a name of spaces is refused with the API's own message.
  const csvLines = ['number,name', '+380441230001,Olena', '+380441230002,Taras', 'hello,Nobody'];
  const helloRow = csvLines.findIndex((line) => line.startsWith('hello')) + 1; // a CSV line, from 1
  await page.setInputFiles('#broadcast-form input[name=recipients]',
    { name: 'spring.csv', mimeType: 'text/csv', buffer: Buffer.from(`${csvLines.join('\n')}\n`) });
  await page.setInputFiles('#broadcast-form input[name=message]',
    { name: 'beep.wav', mimeType: 'audio/wav', buffer: readFileSync(audioPath) });
  await page.fill('#broadcast-form input[name=name]', '   ');
  await page.click('#broadcast-form button[type=submit]');
  await page.locator('#broadcast-form-error').waitFor();
  const formError = await page.locator('#broadcast-form-error').textContent();
  if (!formError.startsWith('name: ') || !formError.includes('200 characters')) problems.push(`form error shown: ${JSON.stringify(formError)}`);
  await shot('broadcast-form-error');

  // Created (not started): 2 accepted, the "hello" row rejected with its line and reason.
  const name = 'Spring sale <b>now</b>';
  await page.fill('#broadcast-form input[name=name]', name);
  await page.fill('#broadcast-form input[name=concurrency]', '2');
  await page.selectOption('#broadcast-form select[name=opt_out_digit]', '9');
  await page.click('#broadcast-form button[type=submit]');
  await page.locator('#accepted-count').waitFor();
  expect('accepted', await page.locator('#accepted-count').textContent(), '2');
  expect('rejected count', await page.locator('#rejected-count').textContent(), '1');
  expect('duplicates', await page.locator('#duplicate-count').textContent(), '0');
  const rejected = await page.locator('#rejected-rows tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)));
  if (rejected.length !== 1 || rejected[0][0] !== String(helloRow) || rejected[0][1] !== 'hello' || !rejected[0][2]) {
    problems.push(`rejected rows shown: ${JSON.stringify(rejected)}, wanted row ${helloRow} hello with a reason`);
  }
  const summary = await page.locator('#created-summary').textContent();
  if (!summary.includes(name) || !summary.includes('draft')) problems.push(`created summary: ${JSON.stringify(summary)}`);
  await campaignRow(name).waitFor();
  expect('markup in a campaign name', await page.evaluate(() => document.querySelectorAll('#view b').length), 0);
  const row = campaignRow(name);
  expect('the new campaign', JSON.stringify(await readRow(row)),
    JSON.stringify({ state: 'draft', count: '0 / 2', outcomes: '1 invalid number', inFlight: '0', eta: '—', buttons: ['Start', 'Cancel'] }));
  await shot('broadcast-created');

  // Cancelled elsewhere: the live event turns the row to cancelled, without a reload.
  await page.evaluate(() => { window.__openlineNoReload = true; });
  await api('POST', `/api/v1/broadcasts/${other.id}/cancel`);
  await page.waitForFunction((id) => {
    const node = document.querySelector(`tr[data-broadcast-id="${id}"] [data-field=state]`);
    return node && node.textContent === 'cancelled';
  }, other.id, { timeout: 15000 });
  expect('the other campaign after its event', JSON.stringify(await readRow(otherRow)),
    JSON.stringify({ state: 'cancelled', count: '0 / 1', outcomes: '1 cancelled', inFlight: '0', eta: '—', buttons: [] }));
  if (!(await page.evaluate(() => window.__openlineNoReload === true))) problems.push('the page reloaded for a live update');
  const live = await page.locator('#live-events li').allTextContents();
  if (!live.includes(`broadcast “${otherName}” cancelled`)) problems.push(`live list: ${JSON.stringify(live.slice(0, 5))}`);

  // The Cancel button, after a confirmation naming the campaign.
  await row.locator('button[data-action=cancel]').click();
  await page.waitForFunction(() => [...document.querySelectorAll('#broadcasts-table [data-field=state]')]
    .filter((n) => n.textContent === 'cancelled').length === 2);
  expect('confirmations', confirmations.length === 1 && confirmations[0].includes(name), true);
  expect('the new campaign cancelled', JSON.stringify(await readRow(row)),
    JSON.stringify({ state: 'cancelled', count: '0 / 2', outcomes: '2 cancelled, 1 invalid number', inFlight: '0', eta: '—', buttons: [] }));
  expect('an error after cancel', await page.locator('#broadcast-error').textContent(), '');
  await shot('broadcast-cancelled');

  // Its page: the recipients, in list order, as a person reads them.
  await row.locator('a.broadcast-name').click();
  await page.locator('#recipients-table tbody tr').nth(2).waitFor();
  expect('campaign heading', await page.locator('#broadcast h1').textContent(), `Broadcast: ${name}`);
  expect('campaign state', await page.locator('#broadcast [data-field=state]').textContent(), 'cancelled');
  const recipients = await page.locator('#recipients-table tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)));
  const [first, second, third] = recipients;
  expect('first recipient', JSON.stringify(first), JSON.stringify(['2', '+380441230001', 'Olena', 'done', '0', 'cancelled', '—', '—', '—']));
  expect('second recipient', JSON.stringify(second), JSON.stringify(['3', '+380441230002', 'Taras', 'done', '0', 'cancelled', '—', '—', '—']));
  if (!third || third[0] !== String(helloRow) || third[1] !== 'hello' || third[2] !== 'Nobody' || third[5] !== 'invalid number'
    || third[7] !== rejected[0][2]) {
    problems.push(`rejected recipient: ${JSON.stringify(third)}`);
  }
  const details = await page.locator('#broadcast-details').textContent();
  if (!details.includes('at most 3') || !details.includes('Opt-out digit9') || !details.includes('Calls at once2')) problems.push(`campaign details: ${details}`);
  if (!details.includes('an uploaded recording')) problems.push(`campaign message: ${details}`);
  await shot('broadcast-recipients');

  // A text message instead of audio (espeak-ng reads it; scripts/test.sh installs it).
  await page.click('#broadcast a[href="#/broadcasts"]');
  await page.locator('#broadcast-form').waitFor();
  await page.check('#broadcast-form input[name=message_kind][value=text]');
  expect('audio input hidden in text mode', await page.locator('#broadcast-form input[name=message]').isVisible(), false);
  const spoken = 'Our shop is open on Sunday.';
  await page.fill('#broadcast-form textarea[name=text]', spoken);
  await page.fill('#broadcast-form input[name=name]', 'Sunday opening');
  await page.setInputFiles('#broadcast-form input[name=recipients]',
    { name: 'one.csv', mimeType: 'text/csv', buffer: Buffer.from('+380441230003\n') });
  await page.click('#broadcast-form button[type=submit]');
  await page.locator('#accepted-count').waitFor();
  expect('accepted (text message)', await page.locator('#accepted-count').textContent(), '1');
  expect('rejected rows table without rejected rows', await page.locator('#rejected-rows').count(), 0);
  const sunday = campaignRow('Sunday opening');
  await sunday.waitFor();
  expect('the text campaign', JSON.stringify(await readRow(sunday)),
    JSON.stringify({ state: 'draft', count: '0 / 1', outcomes: 'none yet', inFlight: '0', eta: '—', buttons: ['Start', 'Cancel'] }));
  const sundayId = await sunday.getAttribute('data-broadcast-id');
  const stored = await api('GET', `/api/v1/broadcasts/${sundayId}`);
  expect('stored message', JSON.stringify(stored.settings.message), JSON.stringify({ kind: 'text', text: spoken }));
  await api('POST', `/api/v1/broadcasts/${sundayId}/cancel`);
} catch (error) {
  problems.push(`step ${step}: ${error.message}`);
  await shot('failure').catch(() => {});
} finally {
  await browser.close();
}

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('browser test passed');
