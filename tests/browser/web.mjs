// Browser test of the managers' page (acceptance 3), run by tests/web.rs: Debian's chromium,
// headless, driven by playwright-core. Signs in with a token, filters the calls list, opens a
// call and plays its recording until currentTime > 0.5 s, and checks that a caller name with
// markup in it is shown as text. Screenshots go to $OPENLINE_ARTEFACTS.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
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
page.on('dialog', async (dialog) => {
  problems.push(`a dialog opened: ${dialog.message()}`);
  await dialog.dismiss();
});
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
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
