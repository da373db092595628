"""The preview page: the composited stream as MJPEG and live stats polled from /stats.json.

With several sources a menu switches between them (``?source=NAME`` on the stream and the stats).
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>streamseg preview</title>
<style>
  body { margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #eee; display: flex; gap: 16px;
         padding: 16px; flex-wrap: wrap; }
  #video { max-width: 100%; background: #000; display: block; }
  #panel { min-width: 240px; }
  table { border-collapse: collapse; }
  td { padding: 2px 8px 2px 0; }
  .bar { height: 10px; display: inline-block; vertical-align: middle; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<img id="video" src="/stream.mjpg" alt="composited stream">
<div id="panel">
  <h3 id="source">streamseg</h3>
  <select id="sources" hidden aria-label="source"></select>
  <table>
    <tr><td>state</td><td id="state" class="num">-</td></tr>
    <tr><td>fps</td><td id="fps" class="num">-</td></tr>
    <tr><td>latency</td><td id="latency" class="num">-</td></tr>
    <tr><td>frames</td><td id="frames" class="num">-</td></tr>
    <tr><td>dropped</td><td id="dropped" class="num">-</td></tr>
  </table>
  <h4>class distribution</h4>
  <table id="classes"></table>
</div>
<script>
// every text goes in through textContent: class names come from model metadata and may hold markup
function classRow(c) {
  const row = document.createElement("tr");
  row.insertCell().textContent = c.name;
  const share = row.insertCell();
  share.className = "num";
  share.textContent = (100 * c.fraction).toFixed(1) + "%";
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = Math.max(1, 120 * c.fraction) + "px";
  bar.style.background = c.color;
  row.insertCell().appendChild(bar);
  return row;
}
let chosen = new URLSearchParams(location.search).get("source") || "";
function query() {
  return chosen ? "?source=" + encodeURIComponent(chosen) : "";
}
function showSources(names, current) {
  const menu = document.getElementById("sources");
  menu.hidden = names.length < 2;
  if (menu.options.length !== names.length || [...menu.options].some((o, i) => o.value !== names[i])) {
    menu.replaceChildren(...names.map(name => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
  }
  menu.value = current || "";
}
document.getElementById("sources").addEventListener("change", event => {
  chosen = event.target.value;
  document.getElementById("video").src = "/stream.mjpg" + query();
});
async function refresh() {
  try {
    const s = await (await fetch("/stats.json" + query(), {cache: "no-store"})).json();
    showSources(s.sources || [], s.name);
    document.getElementById("source").textContent = s.source;
    document.getElementById("state").textContent = s.state;
    document.getElementById("fps").textContent = s.fps.toFixed(2);
    document.getElementById("latency").textContent = s.latency_ms.toFixed(0) + " ms";
    document.getElementById("frames").textContent = s.frames;
    document.getElementById("dropped").textContent = s.dropped;
    document.getElementById("classes").replaceChildren(...s.classes.map(classRow));
  } catch (err) {
    document.getElementById("state").textContent = "disconnected";
  }
}
refresh();
setInterval(refresh, 500);
</script>
</body>
</html>
"""
