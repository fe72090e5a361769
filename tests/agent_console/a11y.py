"""A focused accessibility check run inside Chromium (no third-party engine): what each
console page must get right for keyboard and screen-reader users and low vision.

`audit(page)` returns a list of problems (empty when the page passes):
- the document has a language, one `main`, a `banner`, one `h1`, headings without gaps;
- every form control has an accessible name (label, aria-label or aria-labelledby);
- every button and link has a name; every image has alt text, every `svg[role=img]` a title;
- every id that a `for`, `aria-labelledby`, `aria-describedby` or `aria-controls` names
  exists, and ids are unique;
- text contrast against its real background is at least 4.5:1 (3:1 for large text), for
  every visible text, WCAG 2.1's formula;
- `focus_problems(page)`: tabbing through the page, each focused element shows a focus
  indicator (an outline or a box shadow) and is visible on screen.
"""

from __future__ import annotations

from playwright.async_api import Page

CHECK = r"""
() => {
  const problems = [];
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") +
    (el.getAttribute("name") ? "[name=" + el.getAttribute("name") + "]" : "");
  const inTemplate = (el) => !!el.closest("template");
  const all = (sel) => [...document.querySelectorAll(sel)].filter((el) => !inTemplate(el));
  const text = (el) => (el.textContent || "").replace(/\s+/g, " ").trim();
  const byIds = (ids) => ids.split(/\s+/).filter(Boolean).map((id) => document.getElementById(id));

  if (!document.documentElement.lang) problems.push("html has no lang");
  if (all("main").length !== 1) problems.push("pages need exactly one <main>");
  if (!all("header[role=banner], body > header").length) problems.push("no banner landmark");
  if (all("h1").length !== 1) problems.push("pages need exactly one h1, found " + all("h1").length);
  let last = 0;
  for (const h of all("h1, h2, h3, h4, h5, h6")) {
    if (h.closest("[hidden]")) continue;
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) problems.push("heading level jumps from h" + last + " to h" + level + ": " + text(h));
    last = level;
  }

  const seen = new Map();
  for (const el of all("[id]")) {
    if (seen.has(el.id)) problems.push("duplicate id " + el.id);
    seen.set(el.id, el);
  }
  for (const el of all("[for]")) if (!document.getElementById(el.getAttribute("for"))) problems.push("label for a missing id: " + el.getAttribute("for"));
  for (const attr of ["aria-labelledby", "aria-describedby", "aria-controls"]) {
    for (const el of all("[" + attr + "]")) {
      const missing = el.getAttribute(attr).split(/\s+/).filter((id) => id && !document.getElementById(id));
      if (missing.length) problems.push(describe(el) + " " + attr + " names missing id(s) " + missing.join(", "));
    }
  }

  const accessibleName = (el) => {
    if (el.getAttribute("aria-labelledby")) return byIds(el.getAttribute("aria-labelledby")).filter(Boolean).map(text).join(" ");
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label").trim();
    if (el.id) { const l = document.querySelector('label[for="' + CSS.escape(el.id) + '"]'); if (l && text(l)) return text(l); }
    const wrap = el.closest("label");
    if (wrap && text(wrap)) return text(wrap);
    if (el.title) return el.title;
    return "";
  };
  for (const el of all("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!accessibleName(el)) problems.push("form control without a label: " + describe(el));
  }
  for (const el of all("button, [role=button], [role=tab]")) {
    if (!text(el) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) problems.push("button without a name: " + describe(el));
  }
  for (const el of all("a[href]")) {
    if (!text(el) && !el.getAttribute("aria-label")) problems.push("link without a name: " + describe(el));
  }
  for (const el of all("img")) if (!el.hasAttribute("alt")) problems.push("image without alt: " + describe(el));
  for (const el of all("svg[role=img]")) {
    const named = el.getAttribute("aria-label") || (el.getAttribute("aria-labelledby") && byIds(el.getAttribute("aria-labelledby")).some((n) => n && text(n)));
    if (!named) problems.push("chart without a name: " + describe(el));
  }

  // Contrast (WCAG 2.1): every element with its own visible text.
  const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const blend = (top, under) => ({ r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1 });
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) color = blend(layer, color);
    return color;
  };
  const checked = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || checked.has(el) || inTemplate(el) || el.closest("svg, script, style, [hidden], .visually-hidden, option")) continue;
    checked.add(el);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === "hidden" || style.display === "none" || box.width <= 1 || box.height <= 1 || box.right < 0) continue;
    const fg = parse(style.color);
    if (!fg) continue;
    const bg = background(el);
    const a = lum(blend(fg, bg)), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) problems.push("contrast " + ratio.toFixed(2) + " < " + needed + " for '" + text(el).slice(0, 40) + "' (" + describe(el) + ")");
  }
  return problems;
}
"""

FOCUS = r"""
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
  const shadow = style.boxShadow && style.boxShadow !== "none";
  const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + (el.textContent || el.getAttribute("aria-label") || el.name || "").trim().slice(0, 30);
  const visible = box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0 && box.left < innerWidth + 1;
  return { name, indicated: outline || shadow, visible };
}
"""


async def audit(page: Page) -> list[str]:
    return list(await page.evaluate(CHECK))


async def focus_problems(page: Page, presses: int = 25) -> list[str]:
    """Tab through the page from the top; every stop must show where the focus is."""
    problems: list[str] = []
    await page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    await page.locator("body").focus()
    for _ in range(presses):
        await page.keyboard.press("Tab")
        state = await page.evaluate(FOCUS)
        if state is None:
            break
        if not state["indicated"]:
            problems.append(f"no visible focus indicator on {state['name']}")
        if not state["visible"]:
            problems.append(f"focused but off screen: {state['name']}")
    return problems
