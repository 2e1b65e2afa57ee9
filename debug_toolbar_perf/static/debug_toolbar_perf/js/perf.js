// Shared front-end plumbing for the perf panels.
//
// The toolbar loads panel scripts as ES modules once per page and dispatches
// `djdt.panel.render` on #djDebug each time a panel's HTML is inserted. The
// toolbar may live in a shadow root (DDT 7+) or in the document (DDT 6), and
// the module may load after the event already fired, so every widget is set up
// on load and on each event, idempotently (data-perf-ready marks done work).

export function debugRoot() {
    let root = document.getElementById("djDebugRoot");
    if (!root) return null;
    if (root.shadowRoot) root = root.shadowRoot;
    return root.querySelector("#djDebug");
}

const initialisers = new Map();

// Register `init(element)` for every element matching `selector` inside a
// perf panel. Runs now for what is already rendered and after each render.
export function onPanelElements(selector, init) {
    initialisers.set(selector, init);
    runAll();
}

// Read JSON embedded with Django's json_script filter (escaped, never executed).
export function readJSON(container, id) {
    const el = container.querySelector(`script[type="application/json"]#${id}`);
    return el ? JSON.parse(el.textContent) : null;
}

function runAll() {
    const root = debugRoot();
    if (!root) return;
    for (const [selector, init] of initialisers) {
        for (const el of root.querySelectorAll(`.djdt-perf ${selector}`)) {
            if (el.dataset.perfReady === selector) continue;
            el.dataset.perfReady = selector;
            try {
                init(el);
            } catch (error) {
                // Show the failure in the panel, not as a broken page.
                const note = document.createElement("div");
                note.className = "djdt-perf-error";
                note.textContent = `This view failed to draw: ${error}`;
                el.before(note);
                console.warn("debug_toolbar_perf:", error);
            }
        }
    }
}

function listen() {
    const root = debugRoot();
    if (!root || root.dataset.perfListening) return;
    root.dataset.perfListening = "1";
    root.addEventListener("djdt.panel.render", () => runAll());
}

// Collapsible blocks: <button data-perf-toggle="ID"> toggles #ID.
onPanelElements("[data-perf-toggle]", (button) => {
    button.addEventListener("click", () => {
        const root = debugRoot();
        const target = root.querySelector(`#${CSS.escape(button.dataset.perfToggle)}`);
        if (!target) return;
        const hidden = target.classList.toggle("djdt-perf-hidden");
        button.setAttribute("aria-expanded", hidden ? "false" : "true");
    });
});

// The Δ block: <select data-perf-compare-url> picks another stored request as the baseline;
// the endpoint answers with the block's HTML, rendered (and escaped) by the server.
onPanelElements("select[data-perf-compare-url]", (select) => {
    select.addEventListener("change", async () => {
        if (!select.value) return;
        const block = select.closest("[data-perf-compare]");
        const result = block.querySelector(".djdt-perf-compare-result");
        const url = `${select.dataset.perfCompareUrl}&baseline=${encodeURIComponent(select.value)}`;
        try {
            const response = await fetch(url, { credentials: "same-origin" });
            const body = await response.json();
            if (body.content !== undefined) result.innerHTML = body.content;
            else result.textContent = body.error || `The comparison failed (${response.status}).`;
        } catch (error) {
            result.textContent = `The comparison failed: ${error}`;
        }
    });
});

listen();
runAll();
