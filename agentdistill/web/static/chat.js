// The chat page: start a turn (POST), follow its Server-Sent Events, stop it. Every piece of model or user text
// reaches the DOM as text (el(), append(string), textContent), never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("chat-form");
  const messages = $("messages");
  const state = { thread: form.dataset.thread || "", turn: null, source: null, view: null };
  const SETTINGS_KEY = "agentdistill.chat.settings";
  const SETTINGS = ["agent", "model", "kb", "catalog", "materials"];

  // The last settings sent from this browser come back after a reload; a thread's own agent wins over them.
  function restoreSettings() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}") || {};
    } catch (err) {
      return;
    }
    for (const name of SETTINGS) {
      if (typeof saved[name] !== "string" || (name === "agent" && form.dataset.owner)) continue;
      if (name === "agent" && !Array.from($("agent").options).some((o) => o.value === saved.agent)) continue;
      $(name).value = saved[name];
    }
  }

  function saveSettings() {
    const values = {};
    for (const name of SETTINGS) values[name] = $(name).value;
    try {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(values));
    } catch (err) {
      // storage disabled: the defaults come back after a reload
    }
  }

  function setStatus(text, kind) {
    $("status").textContent = text || "";
    $("status").className = kind || "muted";
  }

  function running(on) {
    $("send").disabled = on;
    $("stop").disabled = !on;
  }

  // Show the source field (KB, catalog, materials dir) of the chosen agent only.
  function showFields() {
    const agent = $("agent").value;
    for (const label of form.querySelectorAll("label[data-agents]")) {
      label.hidden = !label.dataset.agents.split(" ").includes(agent);
    }
  }

  function scrollDown(node) {
    node.scrollIntoView({ block: "end" });
  }

  function setThread(thread) {
    state.thread = thread;
    $("thread-id").textContent = thread || "new";
    history.replaceState(null, "", thread ? "/chat?thread=" + encodeURIComponent(thread) : "/chat");
    for (const link of document.querySelectorAll("#threads a.thread")) {
      link.classList.toggle("current", link.dataset.threadId === thread);
    }
  }

  // A new thread appears at the top of the list once its first answer is in.
  function listThread(thread, agent, question) {
    if (!thread) return;
    const existing = Array.from(document.querySelectorAll("#threads a.thread")).find((a) => a.dataset.threadId === thread);
    if (existing) {
      existing.parentNode.prepend(existing);
      return;
    }
    const link = el("a", null, "thread current", { href: "/chat?thread=" + encodeURIComponent(thread), "data-thread-id": thread, title: question });
    link.append(el("span", question, "first"), el("span", agent + " · 1 turn · now", "about"));
    const empty = document.querySelector("#threads .empty");
    if (empty) empty.remove();
    $("threads").prepend(link);
  }

  // An assistant bubble: streamed text in segments, each tool call after the text that led to it, then the answer.
  function assistantView() {
    const node = el("div", null, "message assistant");
    const view = { node, segment: null, streamed: false, answer: el("div", null, "answer"), meta: el("div", null, "meta") };
    node.append(view.answer, view.meta);
    messages.append(node);
    return view;
  }

  function segment(view) {
    if (!view.segment) {
      view.segment = el("div", null, "stream");
      view.node.insertBefore(view.segment, view.answer);
    }
    return view.segment;
  }

  function addToken(view, text) {
    segment(view).append(text); // a Text node: markup in a token stays text
    view.streamed = true;
    scrollDown(view.node);
  }

  function argsText(args) {
    return Object.entries(args || {}).map(([k, v]) => k + "=" + JSON.stringify(v)).join(", ");
  }

  function addStep(view, step) {
    if (step.kind === "model") {
      // A model that does not stream: show what it wrote when its call is recorded.
      if (!view.streamed && step.completion) segment(view).append(step.completion);
      view.streamed = false;
      if (step.error) view.node.insertBefore(el("div", "model call failed: " + step.error, "error"), view.answer);
      view.segment = null;
      return;
    }
    const details = el("details", null, "step " + step.kind + (step.error ? " error" : ""));
    if (step.kind === "tool") {
      details.append(el("summary", "→ " + step.tool + "(" + argsText(step.args) + ")"), el("pre", step.observation || ""));
    } else {
      details.append(el("summary", "· " + step.role), el("pre", JSON.stringify(step.data, null, 2)));
    }
    view.node.insertBefore(details, view.answer);
    view.segment = null;
    scrollDown(view.node);
  }

  function showAnswer(view, data) {
    const ok = data.status === "ok";
    if (data.answer) {
      for (const part of view.node.querySelectorAll(".stream")) part.remove(); // the answer replaces the stream
    }
    // Without an answer (stopped, out of steps) what the model wrote so far stays in view.
    view.answer.textContent = data.answer || (ok ? "" : "(no answer)");
    const bits = [];
    if (!ok) bits.push("[" + data.status + "] " + (data.error || "no answer"));
    if (data.steps !== undefined) bits.push(data.steps + " model calls · " + data.tool_calls + " tool calls · " + (data.latency_s || 0).toFixed(1) + " s");
    view.meta.textContent = bits.join(" | ");
    if (data.run_id) {
      view.meta.append(" ");
      view.meta.append(el("a", "run " + data.run_id.slice(0, 12), "run", { href: "/trajectories/" + encodeURIComponent(data.run_id) }));
    }
    if (!ok) view.meta.classList.add("error");
    scrollDown(view.node);
  }

  function endTurn(text, kind) {
    if (state.source) state.source.close();
    state.source = null;
    state.turn = null;
    running(false);
    setStatus(text, kind);
  }

  function follow(turnId, view, asked) {
    const source = new EventSource("/api/chat/turns/" + encodeURIComponent(turnId) + "/events");
    state.source = source;
    source.addEventListener("token", (e) => addToken(view, JSON.parse(e.data).text));
    source.addEventListener("step", (e) => addStep(view, JSON.parse(e.data).step));
    source.addEventListener("answer", (e) => {
      const data = JSON.parse(e.data);
      showAnswer(view, data);
      if (data.status !== "interrupted") listThread(data.thread, asked.agent, asked.question);
      endTurn(data.status === "interrupted" ? "stopped" : "", data.status === "ok" ? "muted" : "error");
    });
    source.addEventListener("error", (e) => {
      if (!e.data) {
        // A dropped connection: EventSource reconnects by itself and resumes after the last event it got.
        if (source.readyState === EventSource.CLOSED) endTurn("lost the connection to the server", "error");
        return;
      }
      const data = JSON.parse(e.data);
      view.answer.textContent = "";
      view.meta.textContent = "error: " + data.message;
      view.meta.classList.add("error");
      endTurn("the turn failed", "error");
    });
  }

  function markInvalid(field) {
    for (const node of form.querySelectorAll(".invalid")) node.classList.remove("invalid");
    const input = field && form.elements[field];
    if (input && input.classList) {
      input.classList.add("invalid");
      input.focus();
    }
  }

  async function send(event) {
    event.preventDefault();
    if (state.turn) return;
    const question = $("question").value.trim();
    if (!question) {
      markInvalid("question");
      setStatus("type a message first", "error");
      return;
    }
    const body = { thread: state.thread, agent: $("agent").value, model: $("model").value, question };
    for (const name of ["kb", "catalog", "materials"]) {
      if (!$(name).closest("label").hidden) body[name] = $(name).value;
    }
    running(true);
    setStatus("starting (the first turn of an agent loads its model)…", "muted");
    let response, data;
    try {
      response = await adFetch("/api/chat/turns", { method: "POST", body });
      data = await response.json();
    } catch (err) {
      running(false);
      setStatus("could not reach the server: " + err, "error");
      return;
    }
    if (!response.ok) {
      running(false);
      markInvalid(data.field);
      setStatus(data.error || "the server refused the turn (" + response.status + ")", "error");
      return;
    }
    markInvalid(null);
    saveSettings();
    $("question").value = "";
    const asked = el("div", null, "message user");
    asked.append(el("div", question, "text"));
    messages.append(asked);
    const view = assistantView();
    state.turn = data.turn_id;
    setThread(data.thread);
    setStatus("answering…", "muted");
    follow(data.turn_id, view, body);
  }

  async function stop() {
    if (!state.turn) return;
    setStatus("stopping at the next token or step…", "muted");
    const response = await adFetch("/api/chat/turns/" + encodeURIComponent(state.turn) + "/stop", { method: "POST" });
    if (!response.ok) setStatus("could not stop the turn (" + response.status + ")", "error");
  }

  function newThread() {
    if (state.turn) return;
    messages.replaceChildren();
    setThread("");
    setStatus("new thread: your next message starts it", "muted");
    $("question").focus();
  }

  form.addEventListener("submit", send);
  $("stop").addEventListener("click", stop);
  $("new-thread").addEventListener("click", newThread);
  $("agent").addEventListener("change", showFields);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  restoreSettings();
  showFields();
  if (messages.lastElementChild) scrollDown(messages.lastElementChild);
})();
