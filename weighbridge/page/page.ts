// The operator's page (GET /): Chinese first, English under it. It polls /api/status every second
// and posts plates to /api/plate. No external scripts or fonts: the weighbridge-house PC may have no
// internet. Everything shown is set as text, never as HTML. Opened from another machine as
// /?token=… (the operator token, app.ts), it sends the token with each request.
export const PAGE_HTML = `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>地磅 Weighbridge</title>
<style>
  body { font-family: "Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC", sans-serif; margin: 1rem; background: #f4f5f7; color: #222; }
  h1 { font-size: 1.2rem; margin: 0 0 .5rem; }
  h2 { font-size: 1rem; margin: 0 0 .4rem; }
  .en { color: #667; font-size: .8em; font-weight: normal; }
  section { background: #fff; border-radius: 6px; padding: .8rem 1rem; margin-bottom: .8rem; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  #weight { font-size: 3.2rem; font-variant-numeric: tabular-nums; font-weight: bold; }
  .ok { color: #176b2c; } .bad { color: #b00020; } .warn { color: #8a5a00; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
  input[type=text] { font-size: 1.1rem; width: 9em; }
  button { font-size: 1rem; }
  #message { min-height: 1.2em; }
  #warnings { background: #fdecea; color: #b00020; font-weight: bold; }
  #warnings:empty { display: none; }
  #warnings div { margin: .2rem 0; }
</style>
</head>
<body>
<h1>地磅称重 <span class="en">Weighbridge agent</span> — <span id="device"></span></h1>

<section id="warnings"></section>

<section>
  <h2>当前重量 <span class="en">Current weight</span></h2>
  <div><span id="weight">—</span> kg <span id="bridge"></span></div>
  <div id="line"></div>
</section>

<section>
  <h2>车牌 <span class="en">Plate</span></h2>
  <form id="plate-form">
    <input type="text" id="plate" placeholder="苏E12345" autocomplete="off">
    <button type="submit">确定 <span class="en">OK</span></button>
    <span class="en">给磅上无车牌的车辆，否则给下一辆车 / for the truck on the bridge if it has none, else the next truck</span>
  </form>
  <div id="plates"></div>
  <div id="message"></div>
</section>

<section>
  <h2>待配对的称重 <span class="en">Weighings waiting for a plate or their second weighing</span></h2>
  <table><thead><tr><th>时间 <span class="en">time</span></th><th>重量 <span class="en">kg</span></th><th>车牌 <span class="en">plate</span></th><th>过期 <span class="en">expires</span></th></tr></thead><tbody id="open"></tbody></table>
  <div id="expired"></div>
</section>

<section>
  <h2>未发送的磅单 <span class="en">Tickets not yet sent</span></h2>
  <div id="broker"></div>
  <div id="queue"></div>
  <table><thead><tr><th>磅单号 <span class="en">ticket</span></th><th>时间 <span class="en">time</span></th><th>车牌 <span class="en">plate</span></th><th>毛重 <span class="en">gross</span></th><th>皮重 <span class="en">tare</span></th><th>净重 <span class="en">net</span></th></tr></thead><tbody id="tickets"></tbody></table>
</section>

<section>
  <h2>仪表数据 <span class="en">Indicator frames</span></h2>
  <div id="frames"></div>
</section>

<script>
const $ = (id) => document.getElementById(id);
const BRIDGE = { empty: '空磅 empty', settling: '车辆上磅，等待稳定 settling', weighed: '已称重，等待下磅 weighed, waiting for the truck to leave' };
const time = (iso) => iso ? new Date(iso).toLocaleString('zh-CN', { hour12: false }) : '—';
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function say(text, cls) { $('message').textContent = text; $('message').className = cls; }
const token = new URLSearchParams(location.search).get('token');
const auth = token ? { authorization: 'Bearer ' + token } : {};
const UNSAVED = ' (队列文件暂不可写，已暂存 kept in memory until the queue file can be written)';

async function post(path, body) {
  const response = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) });
  return response.json();
}

async function postPlate(plate, weighingId) {
  const body = { plate };
  if (weighingId !== undefined) body.weighing_id = weighingId;
  const answer = await post('/api/plate', body);
  if (!answer.ok) return say(answer.message, 'bad');
  const where = { weighing: '已记到称重 set on weighing ' + (answer.weighing_id ?? ''), pass: '给磅上车辆 for the truck on the bridge', next: '给下一辆车 for the next truck, until ' + time(answer.until) }[answer.placed];
  say(answer.plate + ': ' + where + (answer.ticket_id ? ' → 磅单 ticket ' + answer.ticket_id : '') + (answer.saved === false ? UNSAVED : ''), answer.saved === false ? 'warn' : 'ok');
  refresh();
}

async function voidWeighing(w) {
  if (!confirm('作废称重 void weighing ' + w.id + ' (' + w.kg + ' kg, ' + (w.plate ?? '无车牌 no plate') + ')?')) return;
  const answer = await post('/api/void', { weighing_id: w.id });
  say(answer.ok ? '已作废称重 voided weighing ' + w.id + (answer.saved === false ? UNSAVED : '') : answer.message, answer.ok ? 'ok' : 'bad');
  refresh();
}

$('plate-form').addEventListener('submit', (event) => {
  event.preventDefault();
  postPlate($('plate').value);
  $('plate').value = '';
});

function render(s) {
  $('device').textContent = s.device_id;
  $('warnings').replaceChildren(...s.warnings.map((w) => Object.assign(document.createElement('div'), { textContent: '⚠ ' + w })));
  $('weight').textContent = s.weight ? s.weight.kg.toLocaleString('zh-CN') : '—';
  $('bridge').textContent = BRIDGE[s.bridge] + (s.weight && s.weight.motion ? ' · 动态 motion' : '');
  $('line').textContent = (s.input.connected ? '仪表已连接 indicator connected: ' : '仪表未连接 indicator not connected: ') + s.input.line + (s.input.problem ? ' — ' + s.input.problem : '');
  $('line').className = s.input.connected ? 'ok' : 'bad';
  $('plates').textContent = '磅上车辆 on the bridge: ' + (s.plate_on_bridge ?? '—') + ' · 下一辆 next: ' + (s.plate_waiting ? s.plate_waiting.plate + ' (' + time(s.plate_waiting.until) + ')' : '—');

  const open = $('open');
  open.replaceChildren();
  for (const w of s.open_weighings) {
    const row = open.insertRow();
    cell(row, time(w.ts));
    cell(row, w.kg.toLocaleString('zh-CN'));
    const plateCell = row.insertCell();
    if (w.plate) plateCell.append(w.plate + ' 等第二次称重 waiting for 2nd weighing ');
    else plateCell.append(Object.assign(document.createElement('span'), { textContent: '需车牌 needs a plate ', className: 'warn' }));
    const form = document.createElement('form');
    const input = Object.assign(document.createElement('input'), { type: 'text', placeholder: w.plate ? '改 correct' : '苏E12345' });
    form.append(input, Object.assign(document.createElement('button'), { type: 'submit', textContent: '确定 OK' }));
    form.addEventListener('submit', (event) => { event.preventDefault(); postPlate(input.value, w.id); });
    const voidButton = Object.assign(document.createElement('button'), { type: 'button', textContent: '作废 void' });
    voidButton.addEventListener('click', () => voidWeighing(w));
    plateCell.append(form, voidButton);
    cell(row, time(w.expires_at));
  }
  $('expired').textContent = s.expired.length ? '已过期未配对 expired unpaired: ' + s.expired.map((w) => time(w.ts) + ' ' + w.kg + ' kg ' + (w.plate ?? '无车牌 no plate')).join('; ') : '';

  $('broker').textContent = s.broker.connected ? '服务器已连接 connected to ' + s.broker.url : '服务器未连接 not connected to ' + s.broker.url + (s.broker.problem ? ' — ' + s.broker.problem : '');
  $('broker').className = s.broker.connected ? 'ok' : 'bad';
  $('queue').textContent = '待发送 waiting: ' + s.queue.waiting + (s.queue.oldest_at ? ' · 最早 oldest: ' + time(s.queue.oldest_at) : '') + (s.queue.held_count ? ' · 暂不发送 held: ' + s.queue.held_count : '') + ' · 已发送 sent since start: ' + s.broker.sent;
  const tickets = $('tickets');
  tickets.replaceChildren();
  const held = new Map(s.queue.held.map((h) => [h.ticket_id, h.reason]));
  for (const t of s.queue.tickets) {
    const row = tickets.insertRow();
    if (t.problem) { cell(row, t.ticket_id, 'bad'); cell(row, t.problem, 'bad').colSpan = 5; continue; }
    for (const v of [t.ticket_id, time(t.ts), t.plate, t.gross_kg, t.tare_kg, t.net_kg]) cell(row, String(v));
    if (held.has(t.ticket_id)) cell(tickets.insertRow(), '暂不发送 held: ' + held.get(t.ticket_id), 'warn').colSpan = 6;
  }
  const skipped = Object.entries(s.input.frames.rejected).filter(([, n]) => n > 0).map(([k, n]) => k + ' ' + n).join(', ');
  $('frames').textContent = s.format + ': 有效帧 frames ' + s.input.frames.frames + ' · 跳过 skipped: ' + (skipped || '0') + ' · 杂散字节 stray bytes ' + s.input.frames.garbageBytes + ' · 最后数据 last data ' + time(s.input.last_data_at) + ' · 未稳定即下磅 left before steady ' + s.counts.unsteady_passes;
}

async function refresh() {
  try {
    render(await (await fetch('/api/status', { headers: auth })).json());
  } catch {
    $('line').textContent = '代理程序无响应 the agent does not answer';
    $('line').className = 'bad';
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
