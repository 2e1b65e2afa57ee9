// Model instances panel: library frames collapsed behind a toggle, and the
// on-demand whole-heap summary (fetched from the signed endpoint, shown as text).
import { onPanelElements } from "./perf.js";

onPanelElements(".djdt-perf-stack", (list) => {
    const lib = list.querySelectorAll("li.djdt-perf-lib-frame");
    if (!lib.length) return;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `Show ${lib.length} library frames`;
    let shown = false;
    const apply = () => {
        for (const li of lib) li.classList.toggle("djdt-perf-hidden", !shown);
        button.textContent = `${shown ? "Hide" : "Show"} ${lib.length} library frames`;
    };
    button.addEventListener("click", () => {
        shown = !shown;
        apply();
    });
    apply();
    list.before(button);
});

onPanelElements(".djdt-perf-heap-button", (button) => {
    button.addEventListener("click", async () => {
        const out = button.closest(".djdt-perf-instances").querySelector(".djdt-perf-heap-result");
        out.textContent = "Summarising the heap...";
        button.disabled = true;
        try {
            const response = await fetch(button.dataset.heapUrl, { credentials: "same-origin" });
            const data = await response.json();
            out.textContent = "";
            if (data.error) {
                out.textContent = `${data.error} Fix: ${data.fix}`;
                return;
            }
            const note = document.createElement("p");
            note.textContent = `${data.objects.toLocaleString()} objects in ${data.seconds} s; ` +
                `${data.lazy_skipped} unevaluated lazy objects skipped.`;
            const table = document.createElement("table");
            table.className = "djdt-perf-table";
            const head = table.createTHead().insertRow();
            for (const h of ["Type", "Objects", "Size (bytes)"]) {
                const th = document.createElement("th");
                th.textContent = h;
                head.append(th);
            }
            const body = table.createTBody();
            for (const row of data.rows) {
                const tr = body.insertRow();
                tr.insertCell().textContent = row.type;
                tr.insertCell().textContent = row.count.toLocaleString();
                tr.insertCell().textContent = row.size.toLocaleString();
            }
            out.append(note, table);
        } catch (error) {
            out.textContent = `Heap summary failed: ${error}`;
        } finally {
            button.disabled = false;
        }
    });
});
