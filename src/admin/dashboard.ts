// The admin's `/`: one self-contained page (no network beyond its own origin, no
// library: inline SVG drawn by a small script) that reads GET /stats?history every
// second and shows, per pool, the front queue, waits, rates and the responses the
// front wrote itself by cause, and per backend its state, in-flight requests
// against slots, accept queue against backlog over the last minute, errors,
// process figures and the request it serves now. Scale ±1 and reload POST with
// the admin token, which the operator pastes (see tokenNote()); the page is never
// served with it, since anyone who can GET / could then read it.
import crypto from 'node:crypto';

const CSS = `
:root { --fg: #1d232b; --muted: #66707c; --line: #e3e7ec; --bg: #f6f7f9; --card: #fff; --warn: #fff4dc; --warn-line: #e0a100; --bad: #c0392b; --ok: #1a9850; --accent: #2f6fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 18px; padding: 10px 18px; background: #1d232b; color: #fff; }
header h1 { font-size: 18px; margin: 0; letter-spacing: .02em; }
header .meta { color: #c8d0da; font-size: 13px; }
#live { margin-left: auto; font-size: 13px; color: #c8d0da; } #live.ok::before { content: "● "; color: #4cd07d; } #live.stale::before { content: "● "; color: #ff6b5b; }
main { padding: 12px 18px 24px; max-width: 1600px; }
#controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 10px; margin: 4px 0 12px; }
#controls .procs { font-weight: 600; margin-right: 4px; }
button { font: inherit; padding: 5px 12px; border: 1px solid #b9c2cc; border-radius: 5px; background: #fff; cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); color: var(--accent); } button:disabled { opacity: .5; cursor: default; }
input[type=password] { font: 13px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; padding: 4px 6px; width: 18em; border: 1px solid #b9c2cc; border-radius: 4px; }
.hint { color: var(--muted); font-size: 12px; } #action-result { font-size: 13px; } #action-result.error { color: var(--bad); } #action-result.done { color: var(--ok); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; margin-bottom: 14px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; min-width: 0; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.card .sub { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.card.warn { background: var(--warn); border-color: var(--warn-line); }
h2 { font-size: 16px; margin: 18px 0 8px; } h2 .meta { color: var(--muted); font-weight: 400; font-size: 13px; }
.causes { display: grid; grid-template-columns: minmax(0, 1fr) max-content max-content; gap: 0 8px; font-size: 12px; font-variant-numeric: tabular-nums; margin-top: 2px; }
.causes span:first-child, .causes span[data-cause] { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.causes .num { text-align: right; } .card svg.spark { width: 100%; margin-top: 4px; }
#token-box { display: inline-flex; align-items: center; gap: 6px; margin: 0; } #token-box[hidden] { display: none; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; vertical-align: middle; }
th { font-weight: 600; font-size: 12px; color: var(--muted); background: #fafbfc; }
td.l, th.l { text-align: left; } tr:last-child td { border-bottom: 0; }
tr.hot td { background: var(--warn); }
.state { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; }
.state.ready { background: #e3f5ea; color: #17753f; } .state.busy { background: #e6effa; color: #24588f; }
.state.starting, .state.restarting, .state.draining { background: #fff1d6; color: #8a5a00; } .state.down { background: #fbe3e0; color: var(--bad); }
.small { color: var(--muted); font-size: 11px; } .bad { color: var(--bad); font-weight: 600; }
td.req { max-width: 280px; overflow: hidden; text-overflow: ellipsis; text-align: left; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
svg.spark { display: block; } svg.spark .area { fill: #d6e4f5; } svg.spark .line { fill: none; stroke: var(--accent); stroke-width: 1.3; }
svg.spark .limit { stroke: var(--bad); stroke-width: 1; stroke-dasharray: 3 2; } svg.spark.hot .area { fill: #ffd9a3; } svg.spark.hot .line { stroke: #c26a00; }
.aq { display: flex; align-items: center; gap: 8px; justify-content: flex-end; }
footer { color: var(--muted); font-size: 12px; margin-top: 14px; max-width: 1100px; }
@media (max-width: 700px) { main { padding: 8px; } .card .value { font-size: 18px; } }
`;

const HTML_HEAD = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>upfront</title>
<style>${CSS}</style>
</head>`;

const BODY = `<body>
<header><h1>upfront</h1><span class="meta" id="where"></span><span class="meta" id="uptime"></span><span id="live">connecting…</span></header>
<main>
<section id="controls">
  <span class="procs" id="procs">– processes</span>
  <button id="scale-down" type="button" title="POST /scale with one process less (it is drained first)">−1 process</button>
  <button id="scale-up" type="button" title="POST /scale with one process more">+1 process</button>
  <button id="reload" type="button" title="POST /reload: a rolling reload of every process">reload</button>
  <form id="token-box" hidden><label>admin token <input id="token" type="password" autocomplete="off" spellcheck="false" placeholder="paste the token"></label>
  <span class="hint" id="token-hint"></span></form>
  <span id="action-result" role="status"></span>
</section>
<section class="cards" id="summary"></section>
<div id="pools"></div>
<footer>Rates are over the last 10 s (the last minute in brackets); the lifetime counts are in /stats and /metrics.
The listen queue is every request waiting for a backend to take it: the front queue plus the backends' kernel accept queues.
The front queue is highlighted when it is not empty, a backend's row when its accept queue holds 80 % of its backlog.
Front-generated responses are the ones upfront wrote itself (queue full, timeout, shed...), never counted as a backend's 5xx.</footer>
</main>`;

/**
 * The page's script, type-checked here and serialized into the page. It may use
 * nothing from this module's scope.
 */
/* eslint-disable */
export function dashboardClient(): void {
  type Any = any;
  const TOKEN_KEY = 'upfront-admin-token';
  const byId = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;
  const SVG = 'http://www.w3.org/2000/svg';
  let needsToken = false;
  let procs = 0;
  let acting = false;
  let lastOk = 0;

  function h(tag: string, attrs: Record<string, string> | null, ...kids: Array<Node | string | null>): HTMLElement {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    for (const k of kids) if (k !== null) e.append(k);
    return e;
  }
  function num(n: number, digits = 0): string {
    return Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–';
  }
  function rate(n: number): string {
    return n >= 100 ? num(n) : n >= 10 ? num(n, 1) : num(n, 2);
  }
  function bytes(b: number): string {
    return b >= 1 << 30 ? `${num(b / (1 << 30), 2)} GiB` : `${num(b / (1 << 20), 1)} MiB`;
  }
  function ms(v: number): string {
    return v >= 1000 ? `${num(v / 1000, 2)} s` : `${num(v, v < 10 ? 2 : 1)} ms`;
  }
  function duration(sec: number): string {
    const d = Math.floor(sec / 86400), hh = Math.floor(sec / 3600) % 24, mm = Math.floor(sec / 60) % 60, ss = Math.floor(sec % 60);
    return d > 0 ? `${d}d ${hh}h` : hh > 0 ? `${hh}h ${mm}m` : mm > 0 ? `${mm}m ${ss}s` : `${ss}s`;
  }
  function card(label: string, value: string, sub: string, warn = false, extra: Node | null = null, id?: string): HTMLElement {
    const c = h('div', { class: warn ? 'card warn' : 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'sub' }, sub), extra);
    if (id) c.id = id;
    return c;
  }
  /** 60 points, oldest first, on 0..top; a dashed line at `limit`. */
  function spark(points: Array<number | null>, top: number, limit: number | null, hot: boolean, w = 120, hgt = 26): SVGSVGElement {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', hot ? 'spark hot' : 'spark');
    svg.setAttribute('width', String(w));
    svg.setAttribute('height', String(hgt));
    svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    const t = Math.max(1, top);
    const n = Math.max(1, points.length - 1);
    const xy: string[] = [];
    points.forEach((p, i) => {
      if (p === null) return;
      xy.push(`${((i / n) * w).toFixed(1)},${(hgt - 1 - (Math.min(p, t) / t) * (hgt - 2)).toFixed(1)}`);
    });
    if (xy.length > 0) {
      const first = xy[0].split(',')[0];
      const last = xy[xy.length - 1].split(',')[0];
      const area = document.createElementNS(SVG, 'polygon');
      area.setAttribute('class', 'area');
      area.setAttribute('points', `${first},${hgt} ${xy.join(' ')} ${last},${hgt}`);
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('class', 'line');
      line.setAttribute('points', xy.join(' '));
      svg.append(area, line);
    }
    if (limit !== null && limit <= t) {
      const y = (hgt - 1 - (limit / t) * (hgt - 2)).toFixed(1);
      const l = document.createElementNS(SVG, 'line');
      l.setAttribute('class', 'limit');
      l.setAttribute('x1', '0'); l.setAttribute('x2', String(w)); l.setAttribute('y1', y); l.setAttribute('y2', y);
      svg.append(l);
    }
    return svg;
  }
  function sumValues(o: Record<string, number> | undefined): number {
    let n = 0;
    if (o) for (const k of Object.keys(o)) n += o[k];
    return n;
  }

  function render(s: Any): void {
    byId('where').textContent = `${location.host} · pid ${s.front?.pid ?? '?'} · ${s.processManager} pm`;
    byId('uptime').textContent = `up ${duration(s.uptimeSec)}`;
    procs = s.children.length;
    byId('procs').textContent = `${procs} process${procs === 1 ? '' : 'es'}`;
    needsToken = typeof s.adminTokenFile === 'string';
    const box = byId('token-box');
    box.hidden = !needsToken;
    if (needsToken) byId('token-hint').textContent = `(POSTs need it: cat ${s.adminTokenFile}; kept in this tab only)`;
    (byId('scale-down') as HTMLButtonElement).disabled = acting || procs <= 1;
    (byId('scale-up') as HTMLButtonElement).disabled = acting || procs === 0;
    (byId('reload') as HTMLButtonElement).disabled = acting || procs === 0;

    const f10 = s.rates?.['10s'];
    const f60 = s.rates?.['1m'];
    const lq = s.listenQueue;
    const frontRate = f10 ? sumValues(f10.frontResponsesPerSec) : 0;
    const causes = h('div', { class: 'causes', id: 'causes' });
    for (const c of Object.keys(s.frontResponses)) {
      if ((s.frontResponses[c] ?? 0) === 0) continue;
      causes.append(h('span', { 'data-cause': c }, c), h('span', { class: 'num' }, `${rate(f10?.frontResponsesPerSec[c] ?? 0)}/s`),
        h('span', { class: 'num small', title: 'since start' }, num(s.frontResponses[c])));
    }
    if (causes.childElementCount === 0) causes.append(h('span', { class: 'small' }, 'none since start'));
    const poolReq = (w: string) => s.pools.reduce((a: number, p: Any) => a + (p.rates?.[w]?.requestsPerSec ?? 0), 0);
    byId('summary').replaceChildren(
      card('requests / s', rate(poolReq('10s')), `1 min ${rate(poolReq('1m'))} · new connections ${rate(f10?.acceptedConnPerSec ?? 0)}/s`, false, null, 'card-rps'),
      card('listen queue', num(lq.current), `front ${num(lq.frontQueue)} + accept queues ${num(lq.acceptQueues)} · max ${num(lq.max)} of ${num(lq.len)}`, lq.current > 0, null, 'card-listen'),
      card('front-generated / s', rate(frontRate), `1 min ${rate(f60 ? sumValues(f60.frontResponsesPerSec) : 0)} · by cause, per s and since start:`, frontRate > 0, causes, 'card-front'),
      card('upfront process', s.front ? `${num(s.front.cpuPercent, 1)} % CPU` : '–', s.front ? `RSS ${bytes(s.front.rssBytes)} · ${num(s.acceptedConn)} connections since start` : '', false, null, 'card-self'),
    );

    const pools = byId('pools');
    pools.replaceChildren(...s.pools.map((p: Any) => renderPool(p)));
  }

  function renderPool(p: Any): HTMLElement {
    const r10 = p.rates?.['10s'];
    const r60 = p.rates?.['1m'];
    const q = p.queue;
    const wrap = h('section', { class: 'pool', 'data-pool': p.name });
    wrap.append(h('h2', null, `pool ${p.name} `, h('span', { class: 'meta' }, `${p.policy} · overflow ${p.overflow} · ${p.backends.length} backend${p.backends.length === 1 ? '' : 's'}`)));
    const q5 = r10 ? r10.responsesPerSec['5xx'] : 0;
    wrap.append(h('div', { class: 'cards' },
      card('front queue', `${num(q.current)} / ${num(q.size)}`, `max ${num(q.max)} · full ${num(q.full)} · timeouts ${num(q.timeouts)}`, q.current > 0,
        p.queueHistory ? spark(p.queueHistory, Math.max(q.size * 0.1, ...p.queueHistory.map((v: number | null) => v ?? 0)), null, q.current > 0, 170, 28) : null, `queue-${p.name}`),
      card('queue wait p99', ms(r10?.queueWaitMs?.p99 ?? 0), `1 min ${ms(r60?.queueWaitMs?.p99 ?? 0)} · lifetime ${ms(q.waitMs.p99)} (p50 ${ms(q.waitMs.p50)})`, false, null, `wait-${p.name}`),
      card('requests / s', rate(r10?.requestsPerSec ?? 0), `1 min ${rate(r60?.requestsPerSec ?? 0)} · 2xx ${rate(r10?.responsesPerSec['2xx'] ?? 0)} · 4xx ${rate(r10?.responsesPerSec['4xx'] ?? 0)}`, false, null, `rps-${p.name}`),
      card('backend 5xx / s', rate(q5), `1 min ${rate(r60?.responsesPerSec['5xx'] ?? 0)} · EAGAIN ${rate(r10?.eagainPerSec ?? 0)}/s · all slots busy ${rate(r10?.slotsExhaustedPerSec ?? 0)}/s`, q5 > 0, null, `b5xx-${p.name}`),
    ));
    const head = h('tr', null, ...['backend', 'pid', 'state', 'in flight / slots', 'accept queue (60 s)', 'req/s', 'requests', 'EAGAIN/s', 'conn err/s', '5xx/s', 'p99', 'restarts', 'RSS', 'CPU', 'up', 'serving now']
      .map((t, i) => h('th', i < 3 || i === 15 ? { class: 'l' } : null, t)));
    const rows = p.backends.map((b: Any) => {
      const br = b.rates?.['10s'];
      const aq = b.acceptQueue;
      const aqHot = aq !== null && aq.backlog > 0 && aq.current >= 0.8 * aq.backlog;
      const slotsNote = b.slotsLearned !== null && b.slotsLearned !== b.slotsClaimed
        ? `learned ${b.slotsLearned}, said ${b.slotsClaimed}` : b.slotsLearned !== null ? 'learned' : b.slotsClaimed !== b.slots ? `said ${b.slotsClaimed}` : '';
      const inflight = h('td', null, `${b.inflight} / ${b.slots}`,
        b.pipelined > 0 ? h('div', { class: 'small' }, `${b.pipelined} pipelined`) : null,
        slotsNote ? h('div', { class: 'small' }, `slots ${slotsNote}`) : null);
      const aqCell = h('td', null);
      if (aq) {
        const points = (b.acceptQueueHistory ?? []) as Array<number | null>;
        aqCell.append(h('div', { class: 'aq' }, spark(points, aq.backlog, 0.8 * aq.backlog, aqHot),
          h('span', null, `${num(aq.current)} / ${num(aq.backlog)}`, h('div', { class: 'small' }, `max ${num(aq.max)}`))));
      } else aqCell.append('–');
      const eagain = br?.eagainPerSec ?? 0;
      const cur = b.current;
      const serving = h('td', { class: 'req', title: cur ? `${cur.method} ${cur.uri}` : b.last ? `last: ${b.last.method} ${b.last.uri}` : '' },
        cur ? `${cur.method} ${cur.uri} · ${ms(cur.durationMs)}` : h('span', { class: 'small' }, b.last ? `idle · last ${b.last.method} ${b.last.uri} (${ms(b.last.durationMs)})` : 'idle'));
      const tr = h('tr', { 'data-backend': b.id, class: aqHot ? 'hot' : '' },
        h('td', { class: 'l', title: b.address }, b.id),
        h('td', { class: 'l' }, b.pid === null ? '–' : String(b.pid)),
        h('td', { class: 'l' }, h('span', { class: `state ${b.state}` }, b.state), b.down ? h('div', { class: 'small bad' }, b.down.lastExit) : null),
        inflight, aqCell,
        h('td', null, rate(br?.requestsPerSec ?? 0)),
        h('td', { class: 'requests' }, num(b.requests)),
        h('td', eagain > 0 ? { class: 'bad' } : null, rate(eagain)),
        h('td', null, rate(br?.connectErrorsPerSec ?? 0)),
        h('td', (br?.responsesPerSec['5xx'] ?? 0) > 0 ? { class: 'bad' } : null, rate(br?.responsesPerSec['5xx'] ?? 0)),
        h('td', null, ms(br?.latencyMs?.p99 ?? 0)),
        h('td', null, num(b.restarts)),
        h('td', null, b.process ? bytes(b.process.rssBytes) : '–'),
        h('td', null, b.process ? `${num(b.process.cpuPercent, 1)} %` : '–'),
        h('td', null, b.process ? duration(b.process.uptimeSec) : '–'),
        serving);
      return tr;
    });
    wrap.append(h('div', { class: 'table-wrap' }, h('table', { class: 'backends' }, h('thead', null, head), h('tbody', null, ...rows))));
    return wrap;
  }

  function token(): string {
    return (byId('token') as HTMLInputElement).value.trim();
  }
  function say(text: string, kind: 'error' | 'done' | '' = ''): void {
    const e = byId('action-result');
    e.textContent = text;
    e.className = kind;
  }
  async function act(path: string, body: unknown, doing: string): Promise<void> {
    if (acting) return;
    if (needsToken && !token()) {
      say('paste the admin token first', 'error');
      (byId('token') as HTMLInputElement).focus();
      return;
    }
    acting = true;
    say(doing);
    try {
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (needsToken) headers.Authorization = `Bearer ${token()}`;
      const r = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store' });
      const text = await r.text();
      let answer: Any = null;
      try { answer = JSON.parse(text); } catch { /* a text answer */ }
      if (r.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        say('the admin token was refused (401): paste the one in the token file', 'error');
      } else if (!r.ok) {
        say(`${path} answered ${r.status}: ${answer?.error ?? text.trim()}`, 'error');
      } else if (path === '/scale') {
        say(`scaling from ${answer.from} to ${answer.to} processes`, 'done');
      } else {
        say(`reloaded: ${answer.replaced} process${answer.replaced === 1 ? '' : 'es'} replaced`, 'done');
      }
      if (r.ok && needsToken) sessionStorage.setItem(TOKEN_KEY, token());
    } catch (err) {
      say(`${path} failed: ${(err as Error).message}`, 'error');
    } finally {
      acting = false;
    }
  }

  async function poll(): Promise<void> {
    try {
      const r = await fetch('/stats?history', { cache: 'no-store' });
      if (!r.ok) throw new Error(`GET /stats answered ${r.status}`);
      render(await r.json());
      lastOk = Date.now();
      const live = byId('live');
      live.textContent = `live · ${new Date().toLocaleTimeString()}`;
      live.className = 'ok';
    } catch (err) {
      const live = byId('live');
      live.textContent = `no answer from the admin for ${Math.round((Date.now() - lastOk) / 1000)} s (${(err as Error).message})`;
      live.className = 'stale';
    } finally {
      setTimeout(poll, 1000);
    }
  }

  byId('token-box').addEventListener('submit', (ev) => ev.preventDefault());
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) (byId('token') as HTMLInputElement).value = saved;
  byId('scale-up').addEventListener('click', () => { void act('/scale', { procs: procs + 1 }, `scaling to ${procs + 1}…`); });
  byId('scale-down').addEventListener('click', () => { void act('/scale', { procs: procs - 1 }, `scaling to ${procs - 1}…`); });
  byId('reload').addEventListener('click', () => { void act('/reload', {}, 'reloading (new processes first, old ones drained)…'); });
  void poll();
}

function sha256(text: string): string {
  return `'sha256-${crypto.createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

export interface DashboardPage {
  html: string;
  /** Only this page's own script and style run; it talks to its own origin only, and cannot be framed. */
  csp: string;
}

let page: DashboardPage | null = null;

export function dashboardPage(): DashboardPage {
  if (page) return page;
  const script = `(${dashboardClient.toString()})();`;
  const html = `${HTML_HEAD}\n${BODY}\n<script>${script}</script>\n</body>\n</html>\n`;
  const csp = `default-src 'none'; script-src ${sha256(script)}; style-src ${sha256(CSS)}; connect-src 'self'; img-src 'self' data:; `
    + `base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
  page = { html, csp };
  return page;
}
