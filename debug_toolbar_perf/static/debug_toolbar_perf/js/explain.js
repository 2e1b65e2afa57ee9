// ExplainPanel: the EXPLAIN ANALYZE button of each query shape.
// The button carries only a value signed by the toolbar (request, panel, shape);
// the server reads the SQL and its parameters from the stored request. The POST carries
// a CSRF token (the endpoint is CSRF-protected), asked for on click from the toolbar's own
// endpoint so that the user's page is never given a cookie; the signed value is single-use.
import { onPanelElements } from "./perf.js";

onPanelElements("button.djdt-perf-analyze", (button) => {
    button.addEventListener("click", async () => {
        const out = button.closest(".djdt-perf-shape").querySelector(".djdt-perf-analyze-out");
        button.disabled = true;
        out.textContent = "Running EXPLAIN ANALYZE…";
        try {
            const csrf = await fetch(button.dataset.csrfUrl, { credentials: "same-origin" });
            const { token } = await csrf.json();
            const body = new URLSearchParams({ signed: button.dataset.signed });
            const response = await fetch(button.dataset.url, {
                method: "POST",
                body,
                credentials: "same-origin",
                headers: { [button.dataset.csrfHeader]: token },
            });
            const type = response.headers.get("Content-Type") || "";
            if (!type.includes("application/json")) {
                const text = response.status === 410 ? await response.text() : "";
                out.textContent = `EXPLAIN ANALYZE failed: HTTP ${response.status} ${text}`;
                return;
            }
            const data = await response.json();
            // Server-rendered with Django autoescaping: SQL and plan text are escaped.
            out.innerHTML = data.content;
        } catch (error) {
            out.textContent = `EXPLAIN ANALYZE failed: ${error}`;
        } finally {
            button.disabled = false;
        }
    });
});
