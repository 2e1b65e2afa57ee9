// Icicle flame graph of the sampling profiler panel, drawn from the stored call tree.
//
// Data (json_script "djdt-perf-flame-data"): {functions: [[name, file, line, project]],
// nodes: [[parent, fn, total, self]] in preorder, node 0 = root}. Click a frame to
// zoom, search to highlight, hover for file:line and shares, and a toggle that
// folds library frames into their nearest project caller.
import { onPanelElements, readJSON } from "./perf.js";

const ROW = 18;
const PRUNED = -2;

function fromNodes(data) {
    const nodes = data.nodes.map(([parent, fn, total, self]) => ({
        parent, fn, total, self, children: [],
    }));
    const childSum = new Array(nodes.length).fill(0);
    for (const node of nodes) {
        if (node.parent >= 0) {
            nodes[node.parent].children.push(node);
            childSum[node.parent] += node.total;
        }
    }
    nodes.forEach((node, i) => {
        const rest = node.total - node.self - childSum[i];
        if (rest > 1e-6 && i > 0) {
            node.children.push({ fn: PRUNED, total: rest, self: rest, children: [] });
        }
    });
    return nodes[0];
}

// Paths with own weight: [[fn...], weight]
function paths(node, prefix, out) {
    const path = node.fn === -1 ? prefix : [...prefix, node.fn];
    const own = node.total - node.children.reduce((s, c) => s + c.total, 0);
    if (own > 1e-6 && path.length) out.push([path, own]);
    for (const child of node.children) paths(child, path, out);
    return out;
}

function fromPaths(list, keep) {
    const root = { fn: -1, total: 0, self: 0, children: [], index: new Map() };
    for (const [path, weight] of list) {
        let node = root;
        root.total += weight;
        for (const fn of path) {
            if (!keep(fn)) continue;
            let child = node.index.get(fn);
            if (!child) {
                child = { fn, total: 0, self: 0, children: [], index: new Map() };
                node.index.set(fn, child);
                node.children.push(child);
            }
            child.total += weight;
            node = child;
        }
        node.self += weight;
    }
    return root;
}

function label(functions, fn) {
    if (fn === PRUNED) return ["(pruned)", "", 0, false];
    if (fn < 0) return ["all samples", "", 0, false];
    return functions[fn];
}

function initFlame(container) {
    const data = readJSON(container, "djdt-perf-flame-data");
    if (!data || !data.nodes || !data.nodes.length) return;
    const functions = data.functions;
    const fullTree = fromNodes(data);
    const allPaths = paths(fullTree, [], []);
    const projectTree = fromPaths(allPaths, (fn) => fn === PRUNED || !!(functions[fn] || [])[3]);
    const total = fullTree.total || 1;
    const canvas = container.querySelector(".djdt-perf-flame-canvas");
    const tip = container.querySelector(".djdt-perf-flame-tip");
    const search = container.querySelector(".djdt-perf-flame-search");
    const hideLib = container.querySelector(".djdt-perf-flame-hide-lib");
    const reset = container.querySelector(".djdt-perf-flame-reset");
    const matchInfo = container.querySelector(".djdt-perf-flame-match");
    let zoom = null;

    function tree() {
        return hideLib.checked ? projectTree : fullTree;
    }

    function draw() {
        const top = zoom || tree();
        const query = search.value.trim().toLowerCase();
        canvas.replaceChildren();
        let maxDepth = 0;
        let matched = 0;
        const frag = document.createDocumentFragment();
        const visit = (node, depth, x, width, inMatch) => {
            if (width < 0.0005) return;
            const [name, file, line, project] = label(functions, node.fn);
            const isMatch = !!query && (String(name).toLowerCase().includes(query)
                || String(file).toLowerCase().includes(query));
            if (isMatch && !inMatch) matched += node.total;
            maxDepth = Math.max(maxDepth, depth);
            const el = document.createElement("div");
            el.className = "djdt-perf-frame " + (project ? "djdt-perf-frame-project" : "djdt-perf-frame-library");
            if (node.fn === PRUNED) el.classList.add("djdt-perf-frame-pruned");
            if (query) el.classList.add(isMatch ? "djdt-perf-frame-match" : "djdt-perf-frame-dim");
            el.style.left = `${x * 100}%`;
            el.style.width = `${width * 100}%`;
            el.style.top = `${depth * ROW}px`;
            el.textContent = name;
            el.tabIndex = 0;
            el.frameNode = node;
            frag.append(el);
            let cx = x;
            for (const child of node.children) {
                const cw = width * (child.total / (node.total || 1));
                visit(child, depth + 1, cx, cw, inMatch || isMatch);
                cx += cw;
            }
        };
        visit(top, 0, 0, 1, false);
        canvas.append(frag);
        canvas.style.height = `${(maxDepth + 1) * ROW}px`;
        matchInfo.textContent = query ? `${((100 * matched) / total).toFixed(1)}% of samples match` : "";
    }

    function describe(node) {
        const [name, file, line] = label(functions, node.fn);
        const where = file ? `${file}:${line}` : "";
        const pct = (v) => `${((100 * v) / total).toFixed(1)}%`;
        return `${name}\n${where}\nself ${pct(node.self)} (${Math.round(node.self)}) · total ${pct(node.total)} (${Math.round(node.total)})`;
    }

    canvas.addEventListener("click", (event) => {
        const el = event.target.closest(".djdt-perf-frame");
        if (!el) return;
        zoom = el.frameNode.fn === -1 ? null : el.frameNode;
        draw();
    });
    canvas.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target.frameNode) {
            zoom = event.target.frameNode;
            draw();
        }
    });
    canvas.addEventListener("mousemove", (event) => {
        const el = event.target.closest(".djdt-perf-frame");
        if (!el) {
            tip.hidden = true;
            return;
        }
        tip.textContent = describe(el.frameNode);
        tip.hidden = false;
        const box = container.getBoundingClientRect();
        tip.style.left = `${Math.min(event.clientX - box.left + 12, box.width - 320)}px`;
        tip.style.top = `${event.clientY - box.top + 16}px`;
    });
    canvas.addEventListener("mouseleave", () => {
        tip.hidden = true;
    });
    search.addEventListener("input", draw);
    hideLib.addEventListener("change", () => {
        zoom = null;
        draw();
    });
    reset.addEventListener("click", () => {
        zoom = null;
        draw();
    });
    draw();
}

onPanelElements(".djdt-perf-flame", initFlame);
