// digitnet drawing page: pointer drawing on a canvas, throttled live predictions from
// POST /api/predict (the canvas as PNG), and the answer shown as a digit, ten bars, the
// 28x28 image the network sees, a convolutional network's feature maps and the hidden-layer
// activations. No libraries.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const digitEl = document.getElementById("digit");
const confEl = document.getElementById("confidence");
const statusEl = document.getElementById("status");
const barsEl = document.getElementById("bars");
const seen = document.getElementById("seen");
const layersEl = document.getElementById("layers");
const mapsPanel = document.getElementById("maps-panel");
const mapsEl = document.getElementById("maps");
const THROTTLE_MS = 120;   // at most one request per this many milliseconds while drawing

let classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
let classNames = classes.map(String);  // one per class: "7", or "Trouser" for Fashion-MNIST
let datasetTitle = "MNIST";
let drawing = false;
let last = null;           // last pointer position, canvas pixels
let inked = false;         // anything drawn since the last clear
let inFlight = false;      // a request is on its way
let pending = false;       // the drawing changed while a request was on its way
let lastSent = 0;
let timer = null;
let generation = 0;        // bumped by Clear: answers to older drawings are dropped

// ---------------------------------------------------------------- the drawing pad
function resizePad() {
  const side = Math.round(pad.clientWidth * (window.devicePixelRatio || 1));
  if (side > 0 && side !== pad.width) {
    const old = inked ? pad.toDataURL() : null;
    pad.width = pad.height = side;
    blank();
    if (old) {
      const img = new Image();
      img.onload = () => ctx.drawImage(img, 0, 0, side, side);
      img.src = old;
    }
  }
}

function blank() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function penWidth() {
  return Math.max(4, pad.width / 14);   // about MNIST's stroke once scaled to 20 pixels
}

function position(ev) {
  const r = pad.getBoundingClientRect();
  return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
}

function dot([x, y]) {
  ctx.fillStyle = "#000";
  ctx.beginPath();
  ctx.arc(x, y, penWidth() / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function line(from, to) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = penWidth();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (ev) => {
  if (ev.button !== undefined && ev.button > 0) return;
  ev.preventDefault();
  pad.setPointerCapture(ev.pointerId);
  drawing = true;
  inked = true;
  last = position(ev);
  dot(last);
  schedule();
});

pad.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  ev.preventDefault();
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
  for (const e of events.length ? events : [ev]) {
    const p = position(e);
    line(last, p);
    last = p;
  }
  schedule();
});

function endStroke(ev) {
  if (!drawing) return;
  drawing = false;
  last = null;
  if (pad.hasPointerCapture && pad.hasPointerCapture(ev.pointerId)) pad.releasePointerCapture(ev.pointerId);
  schedule(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearAll);
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" || (ev.key === "Backspace" && ev.target === document.body)) clearAll();
});

function clearAll() {
  generation += 1;
  inked = false;
  pending = false;
  clearTimeout(timer);
  timer = null;
  blank();
  showEmpty("Draw with a mouse, pen or finger.");
}

// ---------------------------------------------------------------- talking to the server
function schedule(now) {
  if (!inked) return;
  if (inFlight) { pending = true; return; }
  const wait = now ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - lastSent));
  clearTimeout(timer);
  timer = setTimeout(send, wait);
}

function send() {
  timer = null;
  if (!inked) return;
  inFlight = true;
  pending = false;
  lastSent = performance.now();
  const gen = generation;
  pad.toBlob(async (blob) => {
    try {
      const res = await fetch("/api/predict", {method: "POST", headers: {"Content-Type": "image/png"}, body: blob});
      const body = await res.json().catch(() => ({}));
      if (gen !== generation) return;
      if (res.ok) {
        show(body);
      } else if (res.status === 422 && /no ink/.test(body.detail || "")) {
        showEmpty("Nothing drawn yet.");
      } else {
        statusEl.textContent = "Server said: " + (body.detail || res.status);
      }
    } catch (err) {
      if (gen === generation) statusEl.textContent = "The server cannot be reached (" + err.message + ").";
    } finally {
      inFlight = false;
      if (pending) schedule(!drawing);
    }
  }, "image/png");
}

// ---------------------------------------------------------------- showing the answer
function buildBars() {
  barsEl.textContent = "";
  const named = classNames.some((n) => n.length > 2);  // "Trouser" rather than "7"
  barsEl.classList.toggle("named", named);
  digitEl.classList.toggle("named", named);
  classes.forEach((c, i) => {
    const li = document.createElement("li");
    li.dataset.cls = c;
    li.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span>' +
                   '<span class="value">&ndash;</span>';
    li.querySelector(".name").textContent = classNames[i];
    barsEl.appendChild(li);
  });
}

function showEmpty(message) {
  digitEl.textContent = "?";
  confEl.innerHTML = "&nbsp;";
  statusEl.textContent = message;
  barsEl.querySelectorAll("li").forEach((li) => {
    li.classList.remove("top");
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".value").textContent = "\u2013";
  });
  seen.getContext("2d").clearRect(0, 0, 28, 28);
  layersEl.querySelectorAll("canvas").forEach((c) => c.getContext("2d").clearRect(0, 0, c.width, c.height));
  layersEl.querySelectorAll(".layer p").forEach((caption) => { caption.textContent = ""; });
  mapsEl.querySelectorAll("canvas").forEach((c) => c.getContext("2d").clearRect(0, 0, c.width, c.height));
}

function show(p) {
  const best = Math.max(...p.probabilities);
  if (p.sure === false) {  // below the server's --min-confidence: no digit named
    digitEl.textContent = "?";
    const guess = p.name !== undefined ? String(p.name) : String(p.best_guess);
    confEl.textContent = `not sure (best guess ${guess}, ${(100 * best).toFixed(1)}%)`;
  } else {
    digitEl.textContent = p.name !== undefined ? String(p.name) : String(p.digit);
    confEl.textContent = (100 * best).toFixed(1) + "% sure";
  }
  statusEl.textContent = "Keep drawing, or Clear to start again.";
  barsEl.querySelectorAll("li").forEach((li, i) => {
    const v = p.probabilities[i] || 0;
    li.classList.toggle("top", p.classes[i] === p.best_guess);
    li.querySelector(".fill").style.width = (100 * v).toFixed(1) + "%";
    li.querySelector(".value").textContent = (100 * v).toFixed(1) + "%";
  });
  drawSeen(p.image);
  drawMaps(p.feature_maps || []);
  drawLayers(p.hidden);
}

function drawSeen(image) {
  const g = seen.getContext("2d");
  const data = g.createImageData(28, 28);
  for (let r = 0; r < 28; r++) {
    for (let c = 0; c < 28; c++) {
      const v = image[r][c], k = 4 * (28 * r + c);
      data.data[k] = data.data[k + 1] = data.data[k + 2] = v;
      data.data[k + 3] = 255;
    }
  }
  g.putImageData(data, 0, 0);
}

function drawLayers(hidden) {
  hidden.forEach((values, i) => {
    let box = layersEl.children[i];
    const cols = Math.ceil(Math.sqrt(values.length));
    const rows = Math.ceil(values.length / cols);
    if (!box || box.dataset.n !== String(values.length)) {
      box = document.createElement("figure");
      box.className = "layer";
      box.dataset.n = String(values.length);
      const cell = Math.max(3, Math.min(12, Math.floor(320 / cols)));
      box.innerHTML = "<canvas></canvas><p></p>";
      const cv = box.querySelector("canvas");
      cv.width = cols;
      cv.height = rows;
      cv.style.width = cols * cell + "px";
      cv.style.height = rows * cell + "px";
      cv.style.maxWidth = "100%";
      layersEl.replaceChildren(...[...layersEl.children].slice(0, i), box);
    }
    const cv = box.querySelector("canvas");
    const g = cv.getContext("2d");
    const data = g.createImageData(cols, rows);
    const scale = Math.max(1e-6, ...values.map(Math.abs));
    let active = 0;
    values.forEach((v, j) => {
      const t = Math.min(1, Math.abs(v) / scale), k = 4 * j;
      if (v > 0) active++;
      // positive: black -> orange -> yellow; negative (tanh): black -> blue
      data.data[k] = v >= 0 ? 255 * Math.min(1, 1.6 * t) : 40 * t;
      data.data[k + 1] = v >= 0 ? 255 * Math.max(0, t * 1.4 - 0.4) : 120 * t;
      data.data[k + 2] = v >= 0 ? 40 * t : 255 * t;
      data.data[k + 3] = 255;
    });
    g.putImageData(data, 0, 0);
    box.querySelector("p").textContent =
      `layer ${i + 1}: ${values.length} units, ${active} active, largest ${scale.toFixed(2)}`;
  });
}

// One canvas per convolution: its maps side by side in a grid, one pixel per value with a
// one-pixel gap, scaled up without smoothing. Bytes are 0..scale (after ReLU) or, for signed
// maps (after tanh), -scale..scale around 127.5.
function drawMaps(layers) {
  layers.forEach((m, i) => {
    const cols = Math.min(m.channels, 8);
    const rows = Math.ceil(m.channels / cols);
    const width = cols * (m.width + 1) - 1, height = rows * (m.height + 1) - 1;
    let box = mapsEl.children[i];
    if (!box || box.dataset.shape !== `${m.channels}x${m.height}x${m.width}`) {
      box = document.createElement("figure");
      box.className = "maps";
      box.dataset.shape = `${m.channels}x${m.height}x${m.width}`;
      box.innerHTML = "<canvas></canvas><p></p>";
      const cv = box.querySelector("canvas");
      cv.width = width;
      cv.height = height;
      const zoom = Math.max(1, Math.min(4, Math.floor(480 / width)));
      cv.style.width = width * zoom + "px";
      cv.style.height = height * zoom + "px";
      mapsEl.replaceChildren(...[...mapsEl.children].slice(0, i), box);
    }
    const bytes = Uint8Array.from(atob(m.data), (ch) => ch.charCodeAt(0));
    const g = box.querySelector("canvas").getContext("2d");
    const img = g.createImageData(width, height);
    for (let c = 0; c < m.channels; c++) {
      const x0 = (c % cols) * (m.width + 1), y0 = Math.floor(c / cols) * (m.height + 1);
      for (let r = 0; r < m.height; r++) {
        for (let q = 0; q < m.width; q++) {
          const b = bytes[(c * m.height + r) * m.width + q];
          const t = m.signed ? Math.abs(b - 127.5) / 127.5 : b / 255;
          const k = 4 * ((y0 + r) * width + x0 + q);
          const positive = !m.signed || b >= 127.5;
          img.data[k] = positive ? 255 * Math.min(1, 1.6 * t) : 40 * t;
          img.data[k + 1] = positive ? 255 * Math.max(0, t * 1.4 - 0.4) : 120 * t;
          img.data[k + 2] = positive ? 40 * t : 255 * t;
          img.data[k + 3] = 255;
        }
      }
    }
    g.putImageData(img, 0, 0);
    box.querySelector("p").textContent = `${m.title}; largest ${m.scale.toFixed(2)}`;
  });
}

// ---------------------------------------------------------------- start
async function start() {
  resizePad();
  window.addEventListener("resize", resizePad);
  try {
    const res = await fetch("/api/model");
    const m = await res.json();
    classes = m.classes;
    classNames = m.class_names && m.class_names.length === classes.length ? m.class_names : classes.map(String);
    if (m.dataset && m.dataset.title) datasetTitle = m.dataset.title;
    const acc = m.metrics && typeof m.metrics.test_accuracy === "number"
      ? `, ${(100 * m.metrics.test_accuracy).toFixed(1)}% on the ${datasetTitle} test set` : "";
    const shape = m.convolutions && m.convolutions.length ? m.description
      : `${m.sizes.join("\u2013")} ${m.activations.join("/")}`;
    document.getElementById("model-info").textContent = `(${shape}${acc})`;
    mapsPanel.hidden = !(m.convolutions && m.convolutions.length);
  } catch (err) {
    statusEl.textContent = "The server cannot be reached (" + err.message + ").";
  }
  buildBars();
  document.body.dataset.ready = "1";
}
start();
