// Farmer status page: every month, a farm's and a node-month's payouts, from the published JSON
// shards; Merkle proofs are checked with WebCrypto and a farm's CSV is built in the browser.
// Every value from the data is inserted with textContent (never innerHTML), so a hostile farm
// name is shown as text and never runs.
'use strict';

(() => {
  const HEX64 = /^[0-9a-f]{64}$/;
  const ADDRESS = /^G[A-Z2-7]{55}$/;
  const DIGITS = /^[0-9]{1,12}$/;
  const SVG = 'http://www.w3.org/2000/svg';
  const UNITS_PER_TFT = 10000000n;
  const PERIOD = /^[0-9]{4}-[0-9]{2}$/;
  const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
    'September', 'October', 'November', 'December'];
  let meta = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  async function fetchJson(path) {
    const response = await fetch(path, { cache: 'no-cache' });
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`could not load ${path} (HTTP ${response.status})`);
    return response.json();
  }

  function formatTft(units) {
    // integers of 10^-7 TFT, formatted without floats
    const value = BigInt(units);
    const sign = value < 0n ? '-' : '';
    const abs = value < 0n ? -value : value;
    return `${sign}${abs / UNITS_PER_TFT}.${(abs % UNITS_PER_TFT).toString().padStart(7, '0')}`;
  }

  // ---- Merkle proofs (RFC 6962 / RFC 9162 2.1.3.2), SHA-256 with WebCrypto -----------------

  function hexToBytes(hex) {
    const bytes = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
    return bytes;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function sha256(...parts) {
    const total = parts.reduce((n, part) => n + part.length, 0);
    const buffer = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) { buffer.set(part, offset); offset += part.length; }
    return new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  }

  // true: the receipt is a leaf of the tree whose root is the memo; false: it is not;
  // null: this browser cannot check (WebCrypto needs HTTPS or localhost)
  async function verifyInclusion(receiptHex, index, size, pathHex, rootHex) {
    if (!(window.crypto && crypto.subtle)) return null;
    if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) return false;
    if (!HEX64.test(receiptHex) || !HEX64.test(rootHex) || !pathHex.every((h) => HEX64.test(h))) return false;
    const LEAF = new Uint8Array([0]);
    const NODE = new Uint8Array([1]);
    let fn = index;
    let sn = size - 1;
    let result = await sha256(LEAF, hexToBytes(receiptHex));
    for (const siblingHex of pathHex) {
      const sibling = hexToBytes(siblingHex);
      if (sn === 0) return false;
      if ((fn & 1) === 1 || fn === sn) {
        result = await sha256(NODE, sibling, result);
        if ((fn & 1) === 0) {
          while ((fn & 1) === 0 && fn !== 0) { fn >>= 1; sn >>= 1; }
        }
      } else {
        result = await sha256(NODE, result, sibling);
      }
      fn >>= 1;
      sn >>= 1;
    }
    return sn === 0 && bytesToHex(result) === rootHex;
  }

  // ---- words and numbers -------------------------------------------------------------------

  function words(kind, key) {
    // the farmer's words from data/meta.json (payouts/export/wording.py); the raw value otherwise
    const table = meta && meta.wording && meta.wording[kind];
    const found = table && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : null;
    return found ? { short: String(found[0]), long: String(found[1]) } : { short: String(key), long: '' };
  }

  function runningWords() {
    return (meta && meta.wording && meta.wording.running_period) || 'this month has not ended yet';
  }

  function monthName(label) {
    if (!PERIOD.test(String(label))) return String(label);
    const [year, month] = String(label).split('-');
    return `${MONTHS[Number(month) - 1]} ${year}`;
  }

  function utcTime(iso) {
    // "2025-10-31T11:44:20Z" -> "Oct 31 11:44"
    const when = new Date(String(iso));
    if (Number.isNaN(when.getTime())) return '—';
    const pad = (n) => String(n).padStart(2, '0');
    return `${MONTHS[when.getUTCMonth()].slice(0, 3)} ${when.getUTCDate()}, ${when.getUTCFullYear()} ` +
      `${pad(when.getUTCHours())}:${pad(when.getUTCMinutes())}`;
  }

  function dates(start, end) {
    return `${utcTime(start)} – ${utcTime(end)} UTC`;
  }

  function formatUsd(musd) {
    // integer milli-USD -> "$12.345" (no floats)
    if (musd === null || musd === undefined || musd === '') return '—';
    const value = BigInt(musd);
    const sign = value < 0n ? '-' : '';
    const abs = value < 0n ? -value : value;
    return `${sign}$${abs / 1000n}.${(abs % 1000n).toString().padStart(3, '0')}`;
  }

  function millionths(value) {
    // 5461333 -> "5.461333", 3750000 -> "3.75" (CU/SU/NU are stored in millionths)
    if (value === null || value === undefined) return '—';
    const v = BigInt(value);
    const sign = v < 0n ? '-' : '';
    const abs = v < 0n ? -v : v;
    const fraction = (abs % 1000000n).toString().padStart(6, '0').replace(/0+$/, '');
    return `${sign}${abs / 1000000n}${fraction ? `.${fraction}` : ''}`;
  }

  function uptimeDays(entry) {
    const seconds = Number(entry.measured_uptime_s);
    const start = Date.parse(entry.period_start);
    const end = Date.parse(entry.period_end);
    if (!Number.isFinite(seconds) || !Number.isFinite(start) || !Number.isFinite(end)) return '—';
    const total = (end - start) / 86400000;
    return `${(seconds / 86400).toFixed(2)} of ${total.toFixed(2)} days (${entry.uptime_percent} %)`;
  }

  function hasPayment(entry) {
    return !String(entry.status_note || '').startsWith('nothing to pay');
  }

  function statusWord(entry) {
    if (!hasPayment(entry) && entry.eligibility !== 'ok') return { text: 'not rewarded', className: 'none' };
    if (!hasPayment(entry)) return { text: 'nothing to pay', className: 'none' };
    return { text: String(entry.status), className: String(entry.status).replace(/[^a-z]/g, '') };
  }

  // ---- rendering ---------------------------------------------------------------------------

  function message(text, isError) {
    const box = $('message');
    box.textContent = text || '';
    box.className = isError ? 'error' : '';
  }

  const SECTIONS = ['months', 'choices', 'summary', 'fixes', 'addresses', 'nodemonth', 'chart', 'results'];

  function clearResults() {
    for (const id of SECTIONS) $(id).hidden = true;
    for (const id of ['choices', 'summary', 'fixes', 'nodemonth']) $(id).replaceChildren();
    $('addresses-table').tBodies[0].replaceChildren();
    $('months-table').tBodies[0].replaceChildren();
    $('chart-box').replaceChildren();
    $('entries').tBodies[0].replaceChildren();
  }

  function cell(tag, text, className, label) {
    const node = el(tag, text, className);
    if (label) node.dataset.label = label;
    return node;
  }

  function addressNode(address) {
    if (!address) return el('span', 'no payout address set', 'missing');
    const code = el('code', address, 'address');
    code.setAttribute('title', String(address));
    return code;
  }

  function txLink(hash, short) {
    if (!hash || !HEX64.test(hash)) return el('span', '—');
    const base = meta && meta.explorer_tx_base;
    if (base && /^https?:\/\//.test(base)) {
      const link = el('a', short ? `${hash.slice(0, 12)}…` : hash, 'hash');
      link.setAttribute('href', base + hash);
      link.setAttribute('rel', 'noopener noreferrer');
      link.setAttribute('target', '_blank');
      link.setAttribute('title', hash);
      link.setAttribute('aria-label', `transaction ${hash}`);
      return link;
    }
    return el('span', hash, 'hash');
  }

  function txCell(entry) {
    const td = cell('td', null, 'c-tx', 'Transaction');
    td.append(txLink(entry.stellar_tx_hash, true));
    return td;
  }

  function proofNode(entry) {
    if (Array.isArray(entry.merkle_proof) && entry.memo) {
      const status = el('span', 'checking…', 'proof-pending');
      verifyInclusion(entry.receipt_hash, entry.merkle_leaf_index, entry.merkle_tree_size,
        entry.merkle_proof, entry.memo).then((ok) => {
        if (ok === null) {
          status.textContent = 'cannot check here (needs HTTPS)';
          status.className = 'proof-unknown';
        } else {
          status.textContent = ok ? 'proof verified' : 'proof does NOT match';
          status.className = ok ? 'proof-ok' : 'proof-bad';
        }
      }, () => { status.textContent = 'proof does NOT match'; status.className = 'proof-bad'; });
      return status;
    }
    if (entry.memo && entry.memo === entry.receipt_hash) return el('span', 'memo = receipt hash');
    return el('span', '—');
  }

  function proofCell(entry) {
    const td = cell('td', null, 'c-proof', 'Proof');
    td.append(proofNode(entry));
    return td;
  }

  function nodeMonthHref(entry) {
    if (!DIGITS.test(String(entry.node_id)) || !PERIOD.test(String(entry.period))) return null;
    return `#node=${entry.node_id}&period=${entry.period}`;
  }

  function statusCell(entry) {
    const td = cell('td', null, 'c-status', 'Status');
    const word = statusWord(entry);
    td.append(el('span', word.text, `status status-${word.className}`));
    if (entry.status_note) td.append(el('span', entry.status_note, 'note'));
    if (entry.what_to_fix) {
      td.append(el('span', `To fix: ${entry.what_to_fix}`, 'fix'));
      if (entry.payout_address) td.append(el('span', `on wallet ${entry.payout_address}`, 'fix-wallet note'));
    }
    return td;
  }

  function row(entry) {
    const tr = el('tr', null, `entry kind-${String(entry.entry_kind).replace(/[^a-z]/g, '')}`);
    const period = cell('td', null, 'c-period', 'Month');
    const href = nodeMonthHref(entry);
    const label = el(href ? 'a' : 'span', entry.period);
    if (href) {
      label.setAttribute('href', href);
      label.setAttribute('aria-label', `details of node ${entry.node_id} in ${monthName(entry.period)}`);
    }
    period.append(label, el('span', monthName(entry.period), 'note month-name'));
    if (entry.entry_kind && entry.entry_kind !== 'receipt') period.append(el('span', entry.entry_kind, 'note'));
    tr.append(period);

    const nodeCell = cell('td', null, 'c-node', 'Node');
    const nodeLink = el('a', entry.node_id);
    if (DIGITS.test(String(entry.node_id))) nodeLink.setAttribute('href', `#node=${entry.node_id}`);
    nodeCell.append(nodeLink);
    tr.append(nodeCell);

    const farm = cell('td', null, 'c-farm', 'Farm');
    farm.append(el('span', entry.farm_name, 'farm-name'), el('span', `farm ${entry.farm_id}`, 'note'));
    tr.append(farm);

    tr.append(cell('td', entry.uptime_percent != null ? `${entry.uptime_percent} %` : '—', 'num c-uptime', 'Uptime'));

    const eligibility = cell('td', null, 'c-eligibility', 'Eligibility');
    eligibility.append(el('span', words('eligibility', entry.eligibility).short, 'eligibility-words'));
    if (entry.reason) eligibility.append(el('span', entry.reason, 'note'));
    tr.append(eligibility);

    const amount = entry.amount_tft && entry.amount_tft !== '0.0000000' ? entry.amount_tft : entry.reward_tft;
    tr.append(cell('td', amount, 'num c-tft', 'TFT'));
    tr.append(statusCell(entry));
    tr.append(txCell(entry));
    tr.append(cell('td', entry.paid_at ? entry.paid_at.replace('T', ' ').replace('Z', '') : '—', 'c-paid', 'Paid at (UTC)'));
    const receipt = cell('td', null, 'c-receipt', 'Receipt');
    const hash = el('code', `${String(entry.receipt_hash).slice(0, 12)}…`, 'hash');
    hash.setAttribute('title', String(entry.receipt_hash));
    hash.dataset.hash = String(entry.receipt_hash);
    receipt.append(hash);
    tr.append(receipt);
    tr.append(proofCell(entry));
    return tr;
  }

  function showEntries(entries) {
    const body = $('entries').tBodies[0];
    const sorted = [...entries].sort((a, b) => (a.period < b.period ? 1 : a.period > b.period ? -1 : a.node_id - b.node_id));
    for (const entry of sorted) body.append(row(entry));
    $('results').hidden = sorted.length === 0;
  }

  function showSummary(title, entries) {
    let paid = 0n;
    let owed = 0n;
    for (const entry of entries) {
      if (entry.amount_tft_units === undefined || entry.amount_tft_units === null) continue;
      if (entry.status === 'paid' || (entry.status === 'corrected' && entry.paid_at)) paid += BigInt(entry.amount_tft_units);
      // each owed receipt once: the export says what an entry adds (a retried one adds nothing)
      if (entry.owed_tft_units !== undefined && entry.owed_tft_units !== null) owed += BigInt(entry.owed_tft_units);
      else if (['calculated', 'approved', 'submitted', 'held'].includes(entry.status) && hasPayment(entry)) {
        owed += BigInt(entry.amount_tft_units);
      }
    }
    const box = $('summary');
    box.append(el('h2', title));
    const list = el('dl');
    const add = (term, value) => list.append(el('dt', term), el('dd', value));
    add('entries', entries.length);
    add('paid', `${formatTft(paid)} TFT`);
    add('not paid yet', `${formatTft(owed)} TFT`);
    box.append(list);
    box.hidden = false;
    return box;
  }
  function showChart(entries) {
    // one point per period: the node's uptime and the TFT its receipt earned
    const byPeriod = new Map();
    for (const entry of entries) {
      if (entry.entry_kind !== 'receipt' || byPeriod.has(entry.period)) continue;
      byPeriod.set(entry.period, { uptime: Number(entry.uptime_percent), tft: Number(entry.reward_tft) });
    }
    const periods = [...byPeriod.keys()].sort();
    if (periods.length === 0) return;
    const W = 640; const H = 200; const left = 44; const right = 92; const top = 14; const bottom = 30;
    const plotW = W - left - right; const plotH = H - top - bottom;
    const maxTft = Math.max(...periods.map((p) => byPeriod.get(p).tft), 0) || 1;
    const x = (i) => left + (periods.length === 1 ? plotW / 2 : (plotW * i) / (periods.length - 1));
    const yUptime = (v) => top + plotH - (plotH * Math.min(Math.max(v, 0), 100)) / 100;
    const yTft = (v) => top + plotH - (plotH * Math.max(v, 0)) / maxTft;
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'uptime and TFT per period', id: 'history' });
    chart.append(svg('line', { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, class: 'axis' }));
    const labels = [[`100 %`, left - 6, yUptime(100), 'end'], ['0 %', left - 6, yUptime(0), 'end'],
      [`${maxTft.toFixed(2)} TFT`, left + plotW + 6, yTft(maxTft), 'start']];
    for (const [text, lx, ly, anchor] of labels) {
      const label = svg('text', { x: lx, y: ly + 4, 'text-anchor': anchor, class: 'axis-label' });
      label.textContent = text;
      chart.append(label);
    }
    const uptimeLine = periods.map((p, i) => `${x(i)},${yUptime(byPeriod.get(p).uptime)}`).join(' ');
    const tftLine = periods.map((p, i) => `${x(i)},${yTft(byPeriod.get(p).tft)}`).join(' ');
    chart.append(svg('polyline', { points: uptimeLine, class: 'line-uptime' }));
    chart.append(svg('polyline', { points: tftLine, class: 'line-tft' }));
    periods.forEach((period, i) => {
      const point = byPeriod.get(period);
      const up = svg('circle', { cx: x(i), cy: yUptime(point.uptime), r: 4, class: 'pt-uptime' });
      const upTitle = svg('title');
      upTitle.textContent = `${period}: uptime ${point.uptime} %`;
      up.append(upTitle);
      const tft = svg('circle', { cx: x(i), cy: yTft(point.tft), r: 4, class: 'pt-tft' });
      const tftTitle = svg('title');
      tftTitle.textContent = `${period}: ${point.tft} TFT`;
      tft.append(tftTitle);
      chart.append(up, tft);
      if (i === 0 || i === periods.length - 1 || periods.length <= 12) {
        const label = svg('text', { x: x(i), y: H - 8, 'text-anchor': 'middle', class: 'axis-label' });
        label.textContent = period;
        chart.append(label);
      }
    });
    $('chart-box').append(chart);
    $('chart').hidden = false;
  }

  // ---- the landing page: every month -------------------------------------------------------

  async function showMonths() {
    const months = (await fetchJson('data/periods.json')) || [];
    const body = $('months-table').tBodies[0];
    for (const month of [...months].reverse()) {
      const tr = el('tr', null, month.running ? 'month running' : 'month');
      tr.dataset.period = String(month.period);
      const name = cell('td', null, 'c-month', 'Month');
      name.append(el('span', monthName(month.period), 'month-name'), el('span', month.period, 'note'));
      tr.append(name, cell('td', dates(month.start, month.end), 'c-dates', 'Dates (UTC)'));
      if (month.running) {
        const note = cell('td', runningWords(), 'c-running', 'Status');
        note.colSpan = 4;
        tr.append(note);
      } else {
        tr.append(
          cell('td', String(month.nodes), 'num c-nodes', 'Nodes'),
          cell('td', `${formatTft(month.reward_tft_units)} TFT`, 'num c-rewarded', 'Rewarded'),
          cell('td', `${formatTft(month.paid_tft_units)} TFT`, 'num c-paid-total', 'Paid'),
          cell('td', `${formatTft(month.held_tft_units)} TFT`, `num c-held-total${month.held_count ? ' has-held' : ''}`, 'Held'),
        );
        const counts = el('span', `${month.rewarded_nodes} of ${month.nodes} nodes rewarded (${formatUsd(month.reward_musd)})`, 'note');
        tr.children[3].append(counts);
        if (month.held_count) tr.children[5].append(el('span', `${month.held_count} payments`, 'note'));
      }
      body.append(tr);
    }
    $('months').hidden = months.length === 0;
  }

  // ---- a farm: payout address per month, what to fix, CSV ----------------------------------

  function csvCell(value) {
    // as the CLI's farmer CSV: spreadsheet formulas neutralised with ', then RFC 4180 quoting
    let text = value === null || value === undefined ? '' : Array.isArray(value) ? value.join(' ') : String(value);
    if (typeof value === 'boolean') text = value ? 'true' : 'false';
    if (typeof value !== 'number' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;  // integers as they are
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function farmCsv(entries) {
    const fields = (meta && Array.isArray(meta.farmer_fields) && meta.farmer_fields.length) ? meta.farmer_fields
      : ['period', 'node_id', 'amount_tft', 'status', 'payout_address', 'stellar_tx_hash', 'receipt_hash'];
    const lines = [fields.map(csvCell).join(',')];
    for (const entry of entries) lines.push(fields.map((name) => csvCell(entry[name])).join(','));
    return `${lines.join('\r\n')}\r\n`;
  }

  function downloadButton(farmId, entries) {
    const button = el('button', 'Download this farm as CSV', 'download');
    button.type = 'button';
    button.id = 'download-csv';
    button.addEventListener('click', () => {
      const blob = new Blob([farmCsv(entries)], { type: 'text/csv;charset=utf-8' });
      const link = el('a');
      link.href = URL.createObjectURL(blob);
      link.download = `farm-${farmId}-payouts.csv`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    });
    return button;
  }

  function showAddresses(entries) {
    // one line per month and payout address: what happened to the money sent (or due) there
    const groups = new Map();
    for (const entry of entries) {
      if (!hasPayment(entry)) continue;
      const key = `${entry.period}|${entry.payout_address || ''}`;
      if (!groups.has(key)) groups.set(key, { period: entry.period, address: entry.payout_address || '', entries: [] });
      groups.get(key).entries.push(entry);
    }
    const body = $('addresses-table').tBodies[0];
    const sorted = [...groups.values()].sort((a, b) => (a.period < b.period ? 1 : a.period > b.period ? -1 : 0));
    for (const group of sorted) {
      const tr = el('tr', null, 'address-month');
      const month = cell('td', null, 'c-month', 'Month');
      month.append(el('span', monthName(group.period), 'month-name'), el('span', group.period, 'note'));
      const address = cell('td', null, 'c-address', 'Payout address');
      address.append(addressNode(group.address));
      const counts = new Map();
      for (const entry of group.entries) counts.set(entry.status, (counts.get(entry.status) || 0) + 1);
      const state = cell('td', [...counts].map(([status, n]) => `${n} ${words('status', status).short}`).join(', '), 'c-state', 'Payments');
      const fixes = [...new Set(group.entries.map((e) => e.what_to_fix).filter(Boolean))];
      const history = [...new Set(group.entries.filter((e) => e.status === 'retried' && e.hold_reason)
        .map((e) => e.status_note))];
      const fix = cell('td', null, 'c-fix', 'What to fix');
      if (fixes.length) for (const text of fixes) fix.append(el('span', text, 'fix'));
      else fix.append(el('span', 'nothing', 'note'));
      for (const text of history) fix.append(el('span', text, 'note'));
      tr.append(month, address, state, fix);
      body.append(tr);
    }
    $('addresses').hidden = sorted.length === 0;
  }

  function showFixes(entries) {
    // held or refused payments, by wallet: what to do on which wallet
    const byWallet = new Map();
    for (const entry of entries) {
      if (!['held', 'failed'].includes(entry.status) || !entry.what_to_fix) continue;
      const key = `${entry.payout_address || ''}|${entry.what_to_fix}`;
      if (!byWallet.has(key)) byWallet.set(key, { address: entry.payout_address, fix: entry.what_to_fix, units: 0n, count: 0, retry: entry.next_retry_period });
      const item = byWallet.get(key);
      item.units += BigInt(entry.amount_tft_units || 0);
      item.count += 1;
    }
    if (byWallet.size === 0) return;
    const box = $('fixes');
    box.append(el('h2', 'To get paid'));
    const list = el('ul');
    for (const item of byWallet.values()) {
      const li = el('li', null, 'fix-item');
      li.append(el('strong', item.fix, 'fix'), document.createTextNode(' — wallet: '), addressNode(item.address));
      li.append(el('span', `${item.count} payments held, ${formatTft(item.units)} TFT` +
        (item.retry ? `; the ${item.retry} run retries them once this is fixed` : ''), 'note'));
      list.append(li);
    }
    box.append(list);
    box.hidden = false;
  }

  // ---- a node in a month: what the minting explorer shows, and more ------------------------

  function detailList(rows) {
    const list = el('dl', null, 'details');
    for (const [term, value, className] of rows) {
      const dt = el('dt', term);
      const dd = el('dd', null, className || '');
      if (value instanceof Node) dd.append(value); else dd.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
      list.append(dt, dd);
    }
    return list;
  }

  function paymentBlock(entry, all) {
    const box = el('section', null, `payment kind-${String(entry.entry_kind).replace(/[^a-z]/g, '')}`);
    const kind = entry.entry_kind === 'retry' ? 'Retry' : entry.entry_kind === 'correction' ? 'Correction' : 'Payment';
    box.append(el('h3', kind));
    const word = statusWord(entry);
    const status = el('span', null);
    status.append(el('span', word.text, `status status-${word.className}`));
    if (entry.status_note) status.append(el('span', entry.status_note, 'note'));
    const rows = [
      ['Status', status],
      ['TFT', `${entry.amount_tft} TFT`, 'c-amount'],
      ['Payout address', addressNode(entry.payout_address), 'c-payout-address'],
    ];
    if (entry.what_to_fix) rows.push(['What to fix', `${entry.what_to_fix}${entry.payout_address ? ` (wallet ${entry.payout_address})` : ''}`, 'fix']);
    if (entry.entry_kind === 'retry') {
      const original = all.find((e) => e.receipt_hash === entry.retry_of);
      rows.push(['Old address', addressNode(original ? original.payout_address : ''), 'c-old-address']);
      rows.push(['New address', addressNode(entry.payout_address), 'c-new-address']);
      rows.push(['Retry of', entry.retry_of ? el('code', entry.retry_of, 'hash') : '—']);
    }
    if (entry.entry_kind === 'correction') {
      const original = all.find((e) => e.receipt_hash === entry.correction_of && e !== entry);
      const previous = original ? BigInt(original.amount_tft_units || original.reward_tft_units || 0) : 0n;
      const difference = BigInt(entry.amount_tft_units || 0);
      rows.push(['Previously', `${formatTft(previous)} TFT`, 'c-previous']);
      rows.push(['Actual', `${formatTft(previous + difference)} TFT`, 'c-actual']);
      rows.push(['Difference', `${difference >= 0n ? '+' : ''}${formatTft(difference)} TFT`, 'c-difference']);
    }
    rows.push(['Transaction', txLink(entry.stellar_tx_hash, false), 'c-tx']);
    rows.push(['Paid at', entry.paid_at ? `${entry.paid_at.replace('T', ' ').replace('Z', '')} UTC` : '—']);
    rows.push(['Paid by the run of', entry.paying_period || '—']);
    const receipt = el('code', entry.receipt_hash, 'hash');
    rows.push(['Receipt', receipt, 'c-receipt-hash']);
    rows.push(['Memo', entry.memo ? el('code', entry.memo, 'hash') : '—']);
    rows.push(['Proof', proofNode(entry), 'c-proof']);
    box.append(detailList(rows));
    return box;
  }

  async function showNodeMonth(id, period) {
    const shard = await fetchJson(`data/nodes/${id}.json`);
    const entries = shard ? shard.entries.filter((e) => e.period === period) : [];
    if (entries.length === 0 && meta && period === meta.running_period) {
      return message(`${monthName(period)}: ${runningWords()}; its receipts are calculated once it has ended.`);
    }
    if (entries.length === 0) return message(`No entries for node ${id} in ${period}.`, true);
    const receipt = entries.find((e) => e.entry_kind === 'receipt') || entries[0];
    message(`Node ${id} in ${monthName(period)}: ${entries.length} entries.`);
    const box = $('nodemonth');
    box.append(el('h2', `Node ${id} in ${monthName(period)}`));
    const back = el('a', `all months of node ${id}`);
    back.setAttribute('href', `#node=${id}`);
    const farm = el('a', `${receipt.farm_name} (farm ${receipt.farm_id})`);
    if (DIGITS.test(String(receipt.farm_id))) farm.setAttribute('href', `#farm=${receipt.farm_id}`);
    const eligibility = el('span');
    eligibility.append(el('span', words('eligibility', receipt.eligibility).short, 'eligibility-words'));
    if (receipt.reason) eligibility.append(el('span', receipt.reason, 'note'));
    const price = receipt.reference_price_musd ? `${formatUsd(receipt.reference_price_musd)}/TFT` : '—';
    box.append(detailList([
      ['Month', `${monthName(period)} (${period}): ${dates(receipt.period_start, receipt.period_end)}`, 'c-month'],
      ['Farm', farm],
      ['Node type', receipt.node_type, 'c-node-type'],
      ['Farming policy', receipt.farming_policy_id],
      ['Uptime', uptimeDays(receipt), 'c-uptime'],
      ['CU / SU / NU', `${millionths(receipt.cu_pm)} / ${millionths(receipt.su_pm)} / ${millionths(receipt.nu_pm)}`, 'c-units'],
      ['CRU / MRU / SRU / HRU', `${receipt.cru ?? '—'} / ${receipt.mru_gib ?? '—'} GiB / ${receipt.sru_gib ?? '—'} GiB / ${receipt.hru_gib ?? '—'} GiB`, 'c-resources'],
      ['Eligibility', eligibility, 'c-eligibility'],
      ['TFT farmed', `${receipt.reward_tft} TFT (${formatUsd(receipt.reward_musd)} at ${price})`, 'c-reward'],
      ['Payout address', addressNode(receipt.payout_address), 'c-payout-address'],
    ]));
    box.append(back);
    for (const entry of entries) if (hasPayment(entry)) box.append(paymentBlock(entry, entries));
    box.append(eventsBlock(shard, period));
    box.hidden = false;
    return undefined;
  }

  // ---- a node-month's uptime and power events (payouts/calculation/node_events.py) ----------

  function duration(seconds, rough) {
    // 45 -> "45 s", 200 -> "3 min 20 s" (rough: "3 min"), 2400 -> "40 min", 7300 -> "2 h 1 min",
    // 200000 -> "2 d 7 h"
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    if (s < 60) return `${s} s`;
    if (s < 7200) {
      if (rough || s % 60 === 0 || s >= 3600) return `${Math.round(s / 60)} min`;
      return `${Math.floor(s / 60)} min ${s % 60} s`;
    }
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function unixTime(seconds) {
    const when = new Date(Number(seconds) * 1000);
    const node = el('time', Number.isNaN(when.getTime()) ? '—' : `${utcTime(when.toISOString())} UTC`);
    if (!Number.isNaN(when.getTime())) node.setAttribute('datetime', when.toISOString());
    return node;
  }

  function outcomeNode(outcome) {
    const word = words('event', outcome);
    const node = el('span', null, `outcome outcome-${String(outcome).replace(/[^a-z_]/g, '')}`);
    node.append(el('span', word.short, 'outcome-word'));
    if (word.long) node.append(el('span', word.long, 'note'));
    return node;
  }

  function eventRow(item) {
    const tr = el('tr', null, `event event-${item.kind === 'range' ? 'range' : 'single'}`);
    const when = el('td', null, 'c-when');
    when.setAttribute('data-label', 'When (UTC)');
    let what;
    let uptime = '—';
    let gap = '—';
    if (item.kind === 'range') {
      when.append(unixTime(item.from));
      if (item.to !== item.from) when.append(el('span', ' to '), unixTime(item.to));
      what = item.reports ? `${Number(item.reports).toLocaleString('en-US')} reports` : 'power events';
      // past the list's length, the rest of the month is summed up by outcome, not in order
      if (item.rest) what = `${what} more, between the lines above`;
      if (item.gap_s) {
        const [low, high] = item.gap_s;
        const [a, b] = [duration(low, true), duration(high, true)];
        gap = a === b ? `every ~${a}` : `every ${a} – ${b}`;
      }
    } else {
      when.append(unixTime(item.t));
      what = item.kind === 'power' ? 'Power event' : 'Uptime report';
      if (item.kind === 'report') {
        uptime = duration(item.uptime_s);
        gap = item.gap_s === null || item.gap_s === undefined ? 'first read' : duration(item.gap_s);
      }
    }
    tr.append(when);
    tr.append(cell('td', what, 'c-event', 'Event'));
    tr.append(cell('td', uptime, 'c-reported num', 'Reported uptime'));
    tr.append(cell('td', gap, 'c-gap num', 'Since the previous report'));
    const outcome = el('td', null, 'c-outcome');
    outcome.setAttribute('data-label', 'What the calculation made of it');
    outcome.append(outcomeNode(item.outcome));
    tr.append(outcome);
    const credited = item.kind === 'power' && !item.credited_s ? '—' : duration(item.credited_s || 0);
    tr.append(cell('td', credited, 'c-credited num', 'Uptime credited'));
    return tr;
  }

  function eventsBlock(shard, period) {
    const box = el('section', null, 'events');
    box.setAttribute('aria-labelledby', 'events-title');
    const title = el('h3', 'Uptime and power events');
    title.id = 'events-title';
    box.append(title);
    const month = shard.events ? shard.events[period] : undefined;
    if (!month || month.unavailable) {
      const why = month && month.unavailable ? `: ${month.unavailable}` : '';
      box.append(el('p', `Events unavailable for this month${why}.`, 'events-unavailable'));
      return box;
    }
    const items = Array.isArray(month.items) ? month.items : [];
    box.append(el('p', `${Number(month.reports || 0).toLocaleString('en-US')} uptime reports read; ` +
      `measured uptime ${duration(month.measured_uptime_s)}. Runs of ordinary reports are shown as one line.`, 'note'));
    if (items.length === 0) return box;
    const table = el('table', null, 'event-list');
    const caption = el('caption', `Node ${shard.node_id}: events in ${monthName(period)}`, 'visually-hidden');
    const head = el('thead');
    const headRow = el('tr');
    for (const [name, className] of [['When (UTC)', ''], ['Event', ''], ['Reported uptime', 'num'],
      ['Since the previous report', 'num'], ['What the calculation made of it', ''], ['Uptime credited', 'num']]) {
      const th = el('th', name, className);
      th.setAttribute('scope', 'col');
      headRow.append(th);
    }
    head.append(headRow);
    const body = el('tbody');
    for (const item of items) body.append(eventRow(item));
    table.append(caption, head, body);
    box.append(table);
    return box;
  }

  // ---- searches ----------------------------------------------------------------------------

  async function searchNode(id) {
    const shard = await fetchJson(`data/nodes/${id}.json`);
    if (!shard) return message(`No entries for node ${id}.`, true);
    const running = meta && meta.running_period ? ` ${monthName(meta.running_period)}: ${runningWords()}.` : '';
    message(`Node ${id}: ${shard.entries.length} entries. Pick a month for its details.${running}`);
    showSummary(`Node ${id}`, shard.entries);
    showChart(shard.entries);
    showEntries(shard.entries);
    return undefined;
  }

  async function showFarm(id) {
    const shard = await fetchJson(`data/farms/${id}.json`);
    if (!shard) return message(`No entries for farm ${id}.`, true);
    message(`Farm ${id}: ${shard.entries.length} entries.`);
    const box = showSummary(`Farm ${id}: ${shard.farm_name}`, shard.entries);
    box.append(downloadButton(id, shard.entries));
    showFixes(shard.entries);
    showAddresses(shard.entries);
    showEntries(shard.entries);
    return undefined;
  }

  async function searchFarm(query) {
    if (DIGITS.test(query)) return showFarm(query);
    const farms = (await fetchJson('data/farms.json')) || [];
    const needle = query.toLowerCase();
    const found = farms.filter(([, name]) => String(name).toLowerCase().includes(needle)).slice(0, 50);
    if (found.length === 0) return message(`No farm named like "${query}".`, true);
    if (found.length === 1) return showFarm(found[0][0]);
    message(`${found.length} farms match; pick one.`);
    const box = $('choices');
    for (const [id, name] of found) {
      const button = el('button', `${name} (farm ${id})`);
      button.type = 'button';
      button.addEventListener('click', () => { window.location.hash = `farm=${id}`; });
      box.append(button);
    }
    box.hidden = false;
    return undefined;
  }

  async function searchAddress(address) {
    const index = await fetchJson(`data/addresses/${address}.json`);
    if (!index) return message(`No entries for address ${address}.`, true);
    const entries = [];
    for (const farmId of index.farms) {
      const shard = await fetchJson(`data/farms/${farmId}.json`);
      if (shard) entries.push(...shard.entries.filter((e) => e.payout_address === address));
    }
    message(`Address ${address}: ${entries.length} entries.`);
    showSummary(`Address ${address}`, entries);
    showEntries(entries);
    return undefined;
  }

  async function searchReceipt(hash) {
    const shard = await fetchJson(`data/receipts/${hash.slice(0, 2)}.json`);
    const nodes = shard && shard[hash];
    if (!nodes) return message(`No receipt or memo ${hash}.`, true);
    const entries = [];
    for (const nodeId of nodes) {
      const node = await fetchJson(`data/nodes/${nodeId}.json`);
      if (!node) continue;
      entries.push(...node.entries.filter((e) => [e.receipt_hash, e.memo, e.retry_of, e.correction_of].includes(hash)));
    }
    message(`Hash ${hash.slice(0, 12)}…: ${entries.length} entries.`);
    showEntries(entries);
    return undefined;
  }

  function classify(kind, query) {
    if (kind !== 'auto') return kind;
    if (ADDRESS.test(query)) return 'address';
    if (HEX64.test(query.toLowerCase())) return 'receipt';
    if (DIGITS.test(query)) return 'node';
    return 'farm';
  }

  async function run(kind, rawQuery, period) {
    clearResults();
    const query = rawQuery.trim();
    if (!query) { message(''); return showMonths(); }
    const type = classify(kind, query);
    $('kind').value = kind;
    $('q').value = query;
    try {
      if (type === 'node') {
        if (!DIGITS.test(query)) return message('A node id is a number.', true);
        if (period) {
          if (!PERIOD.test(period)) return message('A month looks like 2025-11.', true);
          return await showNodeMonth(query, period);
        }
        return await searchNode(query);
      }
      if (type === 'farm') return await searchFarm(query);
      if (type === 'address') {
        if (!ADDRESS.test(query)) return message('A Stellar address starts with G and has 56 characters.', true);
        return await searchAddress(query);
      }
      const hash = query.toLowerCase();
      if (!HEX64.test(hash)) return message('A receipt or memo hash has 64 hex digits.', true);
      return await searchReceipt(hash);
    } catch (error) {
      return message(String(error.message || error), true);
    }
  }

  function fromHash() {
    const match = /^#(auto|node|farm|address|receipt)=([^&]*)(?:&period=([0-9-]{7}))?$/.exec(window.location.hash);
    if (!match) {
      run('auto', '');
      return;
    }
    let query = '';
    try { query = decodeURIComponent(match[2]); } catch (error) { query = ''; }
    run(match[1], query, match[3] || null);
  }

  async function start() {
    try {
      meta = await fetchJson('data/meta.json');
    } catch (error) {
      meta = null;
    }
    if (meta) {
      const when = String(meta.generated_at || '').replace('T', ' ').replace('Z', ' UTC');
      $('meta').textContent = `Network: ${meta.network}. Published ${when}. ${meta.entries} entries.` +
        (meta.next_retry_period ? ` Held payments are retried by the ${meta.next_retry_period} run.` : '');
    }
    $('search').addEventListener('submit', (event) => {
      event.preventDefault();
      const target = `#${$('kind').value}=${encodeURIComponent($('q').value.trim())}`;
      if (window.location.hash === target) fromHash();
      else window.location.hash = target;
    });
    window.addEventListener('hashchange', fromHash);
    fromHash();
    document.body.dataset.ready = '1';
  }

  start();
})();
