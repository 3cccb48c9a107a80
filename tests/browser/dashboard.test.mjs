// The supervisor's dashboard in headless Chromium (Debian's /usr/bin/chromium), as a city
// supervisor would use it: log in, compare the repayment rate with the API's, drill down one
// level, download an Excel file and read a cell, switch to English, try another city.
//
//   DANBAO_URL=http://127.0.0.1:PORT DANBAO_USER=sup.nanchang DANBAO_PASSWORD='Demo password 2026' \
//   DANBAO_SHOTS=../../target/browser npm test
//
// Screenshots go to DANBAO_SHOTS (CI keeps them as artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import ExcelJS from 'exceljs';

const base = process.env.DANBAO_URL;
const user = process.env.DANBAO_USER ?? 'sup.nanchang';
const password = process.env.DANBAO_PASSWORD ?? 'Demo password 2026';
const city = process.env.DANBAO_CITY ?? '360100';
const otherCity = process.env.DANBAO_OTHER_CITY ?? '360200';
const shots = process.env.DANBAO_SHOTS ?? 'shots';
assert.ok(base, 'set DANBAO_URL');
mkdirSync(shots, { recursive: true });

let browser;
let page;
let apiRate;

before(async () => {
  const token = await fetch(`${base}/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user, password }),
  }).then((r) => r.json());
  const rr = await fetch(`${base}/v1/stats/repayment-rate`, {
    headers: { authorization: `Bearer ${token.access_token}` },
  }).then((r) => r.json());
  apiRate = rr.total.collection_rate;
  assert.ok(apiRate, 'the demo city has a repayment rate this year');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1366, height: 900 },
    locale: 'zh-CN',
  });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
});

test('a page without a session goes to the login page', async () => {
  const r = await page.goto(`${base}/dashboard`);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(r.status(), 200);
  await page.screenshot({ path: join(shots, 'login.png') });
});

test('the city supervisor logs in and sees the API\'s repayment rate', async () => {
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL('**/dashboard**'), page.click('button[type=submit]')]);
  const shown = (await page.textContent('#collection-rate .v')).trim();
  assert.equal(shown, `${apiRate}%`);
  await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true });
  await page.screenshot({ path: join(shots, 'dashboard-top.png') });
});

test('the regions table downloads as a real .xlsx with the filters on top', async () => {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#table-regions a.download'),
  ]);
  const file = join(shots, 'regions.xlsx');
  await download.saveAs(file);
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.readFile(file);
  const ws = wb.worksheets[0];
  assert.equal(ws.getCell('A2').value, '地区');
  assert.match(String(ws.getCell('B2').value), new RegExp(`\\(${city}\\)$`));
  // The header row, then the last row is the city's total: its collection rate is the API's.
  let head;
  ws.eachRow((row, n) => {
    if (head === undefined && row.getCell(3).value === '发放金额') head = n;
  });
  assert.ok(head, 'header row');
  const headers = ws.getRow(head).values;
  const rateCol = headers.indexOf('到期还贷率(%)');
  assert.ok(rateCol > 0);
  const total = ws.getRow(ws.rowCount);
  assert.equal(typeof total.getCell(rateCol).value, 'number');
  assert.equal(total.getCell(rateCol).value, Number(apiRate));
  assert.equal(total.getCell(rateCol).numFmt, '0.00');
  assert.equal(total.getCell(3).numFmt, '#,##0.00');
});

test('drilling down into a district shows its banks', async () => {
  // The sub-region with the most loans (a district with only a credit community shows zeros).
  const href = await page.$$eval('#table-regions tbody tr', (rows) => {
    let best = null;
    let most = -1;
    for (const r of rows) {
      const a = r.querySelector('a');
      const n = Number(r.cells[1].textContent.replace(/,/g, ''));
      if (a && n > most) {
        most = n;
        best = a.getAttribute('href');
      }
    }
    return best;
  });
  assert.ok(href, 'a sub-region to drill into');
  const link = page.locator(`#table-regions tbody a[href="${href}"]`);
  const district = (await link.textContent()).trim();
  await Promise.all([page.waitForURL(/region=\d{6}/), link.click()]);
  assert.match(await page.textContent('h1'), new RegExp(district));
  assert.match(await page.textContent('#table-regions h2'), /分银行/);
  await page.screenshot({ path: join(shots, 'district.png'), fullPage: true });
});

test('English, and on a tablet', async () => {
  await page.goto(`${base}/dashboard`);
  await Promise.all([page.waitForURL(/lang=en/), page.click('#lang-switch')]);
  assert.match(await page.textContent('#collection-rate h3'), /Collection rate/);
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.screenshot({ path: join(shots, 'dashboard-en-tablet.png') });
  await page.setViewportSize({ width: 1366, height: 900 });
});

test('another city is not found, and logout ends the session', async () => {
  const r = await page.goto(`${base}/dashboard?region=${otherCity}`);
  assert.equal(r.status(), 404);
  const x = await page.goto(`${base}/dashboard/xlsx/regions?region=${otherCity}`);
  assert.equal(x.status(), 404);
  await page.goto(`${base}/dashboard`);
  await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.click('header form button')]);
  await page.goto(`${base}/dashboard`);
  assert.equal(new URL(page.url()).pathname, '/');
});
