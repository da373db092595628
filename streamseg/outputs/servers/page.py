"""The preview page: the composited stream as MJPEG and live stats polled from /stats.json.

With several sources a menu switches between them (``?source=NAME`` on the stream and the stats). Regions of
interest are drawn over the picture (an SVG in normalized coordinates), lit while they have an event on.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>streamseg preview</title>
<style>
  body { margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #eee; display: flex; gap: 16px;
         padding: 16px; flex-wrap: wrap; }
  #view { position: relative; max-width: 100%; align-self: flex-start; }
  #video { max-width: 100%; background: #000; display: block; }
  #regions { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
  #regions polygon { fill: rgba(255, 255, 0, 0.08); stroke: #ff0; stroke-width: 2px;
                     vector-effect: non-scaling-stroke; }
  #regions polygon.active { fill: rgba(255, 40, 40, 0.35); stroke: #f33; }
  #panel { min-width: 240px; }
  table { border-collapse: collapse; }
  td { padding: 2px 8px 2px 0; }
  .bar { height: 10px; display: inline-block; vertical-align: middle; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<div id="view">
<img id="video" src="/stream.mjpg" alt="composited stream">
<svg id="regions" viewBox="0 0 1 1" preserveAspectRatio="none" aria-label="regions"></svg>
</div>
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
function showRegions(regions) {
  const svg = document.getElementById("regions");
  svg.replaceChildren(...regions.map(r => {
    const shape = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    shape.setAttribute("points", r.points.map(p => p[0] + "," + p[1]).join(" "));
    shape.setAttribute("class", r.active ? "active" : "");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = r.name + (r.active ? " (event)" : "");
    shape.appendChild(title);
    return shape;
  }));
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
    showRegions(s.regions || []);
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
