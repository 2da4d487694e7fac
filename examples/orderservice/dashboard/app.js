// The order service dashboard: places orders through POST /process_order,
// lists them live from /orders/feed, and follows the selected one through
// /orders/{id}/stream. Plain JavaScript, no build step, no dependencies.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // ---- helpers ----------------------------------------------------------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // clock formats a timestamp as local time, to the millisecond if ms.
  function clock(ts, ms) {
    const d = new Date(ts);
    if (isNaN(d)) return "";
    const pad = (n, w) => String(n).padStart(w, "0");
    const hms = `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}`;
    return ms ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
  }

  function money(v) {
    return typeof v === "number" ? v.toFixed(2) : String(v);
  }

  // cents reads a decimal such as "999.99" exactly, or returns null.
  function cents(text) {
    const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(text.trim());
    if (!m) return null;
    return Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0"));
  }

  function idempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // jsonNumber writes a field the way it was typed when it is a plain JSON
  // number, so that prices reach the server as exact decimals; anything
  // else goes as a string, and the server says what is wrong with it.
  function jsonNumber(text) {
    const t = text.trim();
    return /^-?\d+(\.\d+)?$/.test(t) ? t : JSON.stringify(t);
  }

  // ---- the form ---------------------------------------------------------

  const form = $("order-form");
  const items = $("items");
  const result = $("form-result");

  function addItem(name, price, qty) {
    const row = $("item-row").content.firstElementChild.cloneNode(true);
    if (name !== undefined) {
      row.querySelector(".item-name").value = name;
      row.querySelector(".item-price").value = price;
      row.querySelector(".item-qty").value = qty;
    }
    row.querySelector(".remove").addEventListener("click", () => {
      row.remove();
      updateTotal();
    });
    items.appendChild(row);
    updateTotal();
  }

  function updateTotal() {
    let total = 0;
    for (const row of items.querySelectorAll(".item")) {
      const c = cents(row.querySelector(".item-price").value);
      const q = Number(row.querySelector(".item-qty").value);
      if (c === null || !Number.isInteger(q)) {
        $("form-total").textContent = "—";
        return;
      }
      total += c * q;
    }
    $("form-total").textContent = `${Math.floor(total / 100)}.${String(total % 100).padStart(2, "0")}`;
  }

  const hints = {
    "": () => "The order runs normally.",
    refused: (s) => `The ${s} service refuses this order: no retry, and the undo starts with the steps before ${s}.`,
    unavailable: (s) => `Every ${s} attempt fails: the engine retries with backoff, gives up, then undoes ${s} too, since it may have taken effect.`,
  };

  function updateHint() {
    const step = $("fail-step").value;
    $("fail-mode").disabled = !step;
    $("fail-hint").textContent = step ? hints[$("fail-mode").value](step) : hints[""]();
  }

  function requestBody() {
    const customer = {
      name: $("customer-name").value,
      email: $("customer-email").value,
      address: $("customer-address").value,
    };
    const lines = Array.from(items.querySelectorAll(".item"), (row) =>
      `{"name":${JSON.stringify(row.querySelector(".item-name").value)},` +
      `"price":${jsonNumber(row.querySelector(".item-price").value)},` +
      `"quantity":${jsonNumber(row.querySelector(".item-qty").value)}}`);
    return `{"customer_data":${JSON.stringify(customer)},"items":[${lines.join(",")}]}`;
  }

  function showResult(kind, parts) {
    result.className = `result ${kind}`;
    result.replaceChildren(...parts);
  }

  async function placeOrder(event) {
    event.preventDefault();
    const button = $("place-order");
    button.disabled = true;
    let url = "/process_order";
    const step = $("fail-step").value;
    if (step) {
      url += `?fail_step=${encodeURIComponent(step)}&fail_mode=${encodeURIComponent($("fail-mode").value)}`;
    }
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() },
        body: requestBody(),
      });
      const body = await res.json();
      if (!body.success) {
        delete result.dataset.orderId;
        showResult("error", [`${res.status}: ${body.error}`]);
        return;
      }
      result.dataset.orderId = body.order_id;
      showResult("ok", ["Order ", el("code", "", body.order_id), body.duplicate ? " was already submitted." : " accepted."]);
      select(body.order_id);
    } catch (err) {
      delete result.dataset.orderId;
      showResult("error", [`Request failed: ${err}`]);
    } finally {
      button.disabled = false;
    }
  }

  // ---- the order list ---------------------------------------------------

  const orders = new Map(); // order_id → status, from the feed
  const maxListed = 50;
  let selected = null;

  function upsert(o) {
    const known = orders.get(o.order_id);
    if (known && Date.parse(known.updated_at) > Date.parse(o.updated_at)) return; // older news
    orders.set(o.order_id, o);
  }

  function statusPill(status) {
    const s = el("span", "status", status);
    s.dataset.status = status;
    return s;
  }

  function renderOrders() {
    const list = Array.from(orders.values())
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at))
      .slice(0, maxListed);
    const rows = list.map((o) => {
      const tr = document.createElement("tr");
      tr.dataset.orderId = o.order_id;
      tr.dataset.status = o.status;
      if (o.order_id === selected) tr.classList.add("selected");
      const id = el("td", "id", o.order_id.slice(0, 8));
      id.title = o.order_id;
      const status = el("td");
      status.appendChild(statusPill(o.status));
      if (o.error) status.title = o.error;
      tr.append(id, el("td", "", o.customer ? o.customer.name : ""), el("td", "num", money(o.total_amount)),
        status, el("td", "when", clock(o.updated_at, false)));
      tr.addEventListener("click", () => select(o.order_id));
      return tr;
    });
    $("order-list").replaceChildren(...rows);
    $("orders-empty").hidden = rows.length > 0;
    $("order-count").textContent = rows.length ? String(orders.size) : "";
    if (selected && orders.has(selected) && !timelineEnded) {
      setTimelineStatus(orders.get(selected).status);
    }
  }

  function connectFeed() {
    const feed = new EventSource("/orders/feed");
    feed.addEventListener("orders", (e) => {
      for (const o of JSON.parse(e.data).orders) upsert(o);
      renderOrders();
    });
    feed.addEventListener("order", (e) => {
      upsert(JSON.parse(e.data));
      renderOrders();
    });
    // On error EventSource reconnects by itself, and the feed starts again
    // with the list.
  }

  // ---- the timeline and the diagram -------------------------------------

  const forwardStep = {
    ORDER_VALIDATED: "validate",
    PAYMENT_PROCESSED: "payment",
    INVENTORY_RESERVED: "inventory",
    ORDER_SHIPPED: "shipping",
  };
  const undoStep = {
    PAYMENT_REFUNDED: "payment",
    INVENTORY_RELEASED: "inventory",
    SHIPMENT_CANCELED: "shipping",
  };

  let stream = null;
  let seen = new Set();
  let timelineEnded = false;

  function setTimelineStatus(status) {
    const pill = $("timeline-status");
    pill.hidden = false;
    pill.textContent = status;
    pill.dataset.status = status;
  }

  function node(name) {
    return document.querySelector(`#diagram [data-node="${CSS.escape(name)}"]`);
  }

  function mark(name, ...classes) {
    const n = node(name);
    if (n) n.classList.add(...classes);
  }

  function markDiagram(ev) {
    if (ev.event_type === "ORDER_CREATED") mark("start", "done");
    else if (ev.event_type === "ORDER_COMPLETED") mark("completed", "done", "end");
    else if (ev.event_type === "ORDER_CANCELED") mark("compensated", "done", "end");
    else if (forwardStep[ev.event_type]) mark(`step:${forwardStep[ev.event_type]}`, ev.success ? "done" : "failed");
    else if (undoStep[ev.event_type]) mark(`undo:${undoStep[ev.event_type]}`, ev.success ? "done" : "failed");
  }

  function clearDiagram() {
    for (const n of document.querySelectorAll("#diagram .node")) n.classList.remove("done", "failed", "end");
  }

  function describeData(data) {
    if (!data) return "";
    return Object.keys(data).sort().filter((k) => data[k] !== "").map((k) => {
      const v = data[k];
      return `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`;
    }).join("  ·  ");
  }

  function appendEvent(ev) {
    const failed = !ev.success;
    const li = el("li", `event ${ev.compensation ? "compensation" : "forward"}${failed ? " failed" : ""}`);
    li.dataset.type = ev.event_type;
    li.dataset.seq = ev.seq;
    const icon = el("span", "icon", failed ? "✕" : ev.compensation ? "↩" : "✓");
    const head = el("div");
    head.append(el("span", "type", ev.event_type), el("span", "service", ev.service));
    if (ev.compensation) head.append(el("span", "badge", "compensation"));
    if (failed) head.append(el("span", "badge", "failed"));
    li.append(icon, head, el("span", "time", clock(ev.timestamp, true)));
    const data = describeData(ev.data);
    if (data) li.append(el("div", "data", data));
    $("events").appendChild(li);
    $("timeline-empty").hidden = true;
  }

  function select(id) {
    if (stream) stream.close();
    selected = id;
    seen = new Set();
    timelineEnded = false;
    $("events").replaceChildren();
    $("timeline-empty").hidden = false;
    $("timeline-order").textContent = id;
    $("timeline").dataset.orderId = id;
    clearDiagram();
    const known = orders.get(id);
    setTimelineStatus(known ? known.status : "pending");
    renderOrders();

    const es = new EventSource(`/orders/${encodeURIComponent(id)}/stream`);
    stream = es;
    es.onmessage = (e) => {
      const ev = JSON.parse(e.data);
      if (seen.has(ev.seq)) return; // a reconnect may repeat what we have
      seen.add(ev.seq);
      appendEvent(ev);
      markDiagram(ev);
    };
    es.addEventListener("end", (e) => {
      const end = JSON.parse(e.data);
      timelineEnded = true;
      setTimelineStatus(end.status);
      es.close(); // the order has settled: nothing more will come
    });
  }

  // ---- health -----------------------------------------------------------

  async function pollHealth() {
    const box = $("health");
    try {
      const res = await fetch("/health");
      const h = await res.json();
      box.dataset.state = res.ok ? h.state : "down";
      $("health-text").textContent = `${h.state} · ${h.in_flight} in flight`;
      box.title = (h.reasons || []).join("\n") || "GET /health";
    } catch (err) {
      box.dataset.state = "down";
      $("health-text").textContent = "unreachable";
    }
  }

  // ---- start ------------------------------------------------------------

  async function loadDiagram() {
    const res = await fetch("/saga.svg");
    $("diagram").innerHTML = await res.text();
  }

  form.addEventListener("submit", placeOrder);
  form.addEventListener("input", updateTotal);
  $("add-item").addEventListener("click", () => addItem());
  $("fail-step").addEventListener("change", updateHint);
  $("fail-mode").addEventListener("change", updateHint);
  addItem("laptop", "999.99", "1");
  updateHint();
  loadDiagram().catch((err) => showResult("error", [`Could not load the diagram: ${err}`]));
  connectFeed();
  pollHealth();
  setInterval(pollHealth, 3000);
})();
