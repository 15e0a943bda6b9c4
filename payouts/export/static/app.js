// Farmer status page: searches the published JSON shards and checks Merkle proofs with WebCrypto.
// Every value from the data is inserted with textContent (never innerHTML), so a hostile farm
// name is shown as text and never runs.
'use strict';

(() => {
  const HEX64 = /^[0-9a-f]{64}$/;
  const ADDRESS = /^G[A-Z2-7]{55}$/;
  const DIGITS = /^[0-9]{1,12}$/;
  const SVG = 'http://www.w3.org/2000/svg';
  const UNITS_PER_TFT = 10000000n;
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

  // ---- rendering ---------------------------------------------------------------------------

  function message(text, isError) {
    const box = $('message');
    box.textContent = text || '';
    box.className = isError ? 'error' : '';
  }

  function clearResults() {
    for (const id of ['choices', 'summary', 'chart', 'results']) $(id).hidden = true;
    $('choices').replaceChildren();
    $('summary').replaceChildren();
    $('chart-box').replaceChildren();
    $('entries').tBodies[0].replaceChildren();
  }

  function txCell(entry) {
    const cell = el('td', null, 'c-tx');
    const hash = entry.stellar_tx_hash;
    if (!hash || !HEX64.test(hash)) { cell.textContent = '—'; return cell; }
    const base = meta && meta.explorer_tx_base;
    if (base && /^https?:\/\//.test(base)) {
      const link = el('a', `${hash.slice(0, 12)}…`, 'hash');
      link.setAttribute('href', base + hash);
      link.setAttribute('rel', 'noopener noreferrer');
      link.setAttribute('target', '_blank');
      link.setAttribute('title', hash);
      cell.append(link);
    } else {
      cell.append(el('span', hash, 'hash'));
    }
    return cell;
  }

  function proofCell(entry) {
    const cell = el('td', null, 'c-proof');
    if (Array.isArray(entry.merkle_proof) && entry.memo) {
      const status = el('span', 'checking…', 'proof-pending');
      cell.append(status);
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
    } else if (entry.memo && entry.memo === entry.receipt_hash) {
      cell.textContent = 'memo = receipt hash';
    } else {
      cell.textContent = '—';
    }
    return cell;
  }

  function row(entry) {
    const tr = el('tr', null, `entry kind-${String(entry.entry_kind).replace(/[^a-z]/g, '')}`);
    const period = el('td', entry.period, 'c-period');
    if (entry.entry_kind && entry.entry_kind !== 'receipt') period.append(el('span', entry.entry_kind, 'note'));
    tr.append(period);

    const nodeCell = el('td', null, 'c-node');
    const nodeLink = el('a', entry.node_id);
    if (DIGITS.test(String(entry.node_id))) nodeLink.setAttribute('href', `#node=${entry.node_id}`);
    nodeCell.append(nodeLink);
    tr.append(nodeCell);

    const farm = el('td', null, 'c-farm');
    farm.append(el('span', entry.farm_name, 'farm-name'), el('span', `farm ${entry.farm_id}`, 'note'));
    tr.append(farm);

    tr.append(el('td', entry.uptime_percent != null ? `${entry.uptime_percent} %` : '—', 'num c-uptime'));

    const eligibility = el('td', null, 'c-eligibility');
    eligibility.append(el('span', entry.violation ? `${entry.eligibility} (${entry.violation})` : entry.eligibility));
    if (entry.reason) eligibility.append(el('span', entry.reason, 'note'));
    tr.append(eligibility);

    const amount = entry.amount_tft && entry.amount_tft !== '0.0000000' ? entry.amount_tft : entry.reward_tft;
    tr.append(el('td', amount, 'num c-tft'));

    const status = el('td', null, 'c-status');
    status.append(el('span', entry.status, `status status-${String(entry.status).replace(/[^a-z]/g, '')}`));
    if (entry.status_note) status.append(el('span', entry.status_note, 'note'));
    if (entry.what_to_fix) status.append(el('span', `To fix: ${entry.what_to_fix}`, 'fix'));
    tr.append(status);

    tr.append(txCell(entry));
    tr.append(el('td', entry.paid_at ? entry.paid_at.replace('T', ' ').replace('Z', '') : '—', 'c-paid'));
    const receipt = el('td', null, 'c-receipt');
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
      if (['calculated', 'approved', 'submitted', 'held'].includes(entry.status) && entry.entry_kind !== 'receipt-own') {
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

  // ---- searches ----------------------------------------------------------------------------

  async function searchNode(id) {
    const shard = await fetchJson(`data/nodes/${id}.json`);
    if (!shard) return message(`No entries for node ${id}.`, true);
    message(`Node ${id}: ${shard.entries.length} entries.`);
    showSummary(`Node ${id}`, shard.entries);
    showChart(shard.entries);
    showEntries(shard.entries);
  }

  async function showFarm(id) {
    const shard = await fetchJson(`data/farms/${id}.json`);
    if (!shard) return message(`No entries for farm ${id}.`, true);
    message(`Farm ${id}: ${shard.entries.length} entries.`);
    showSummary(`Farm ${id}: ${shard.farm_name}`, shard.entries);
    showEntries(shard.entries);
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

  async function run(kind, rawQuery) {
    clearResults();
    const query = rawQuery.trim();
    if (!query) return message('');
    const type = classify(kind, query);
    $('kind').value = kind;
    $('q').value = query;
    try {
      if (type === 'node') {
        if (!DIGITS.test(query)) return message('A node id is a number.', true);
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
    const match = /^#(auto|node|farm|address|receipt)=(.*)$/.exec(window.location.hash);
    if (!match) return;
    let query = '';
    try { query = decodeURIComponent(match[2]); } catch (error) { query = ''; }
    run(match[1], query);
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
