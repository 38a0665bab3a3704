// <localfeed-activities>: "what's on near here" from a Localfeed aggregator, for any website.
// One dependency-free ES module. Every piece of feed data is set with textContent and every
// link from a feed must be http(s): a feed is somebody else's text, never our markup.
//
// Attributes: src (the aggregator; default: where this script came from), near, radius,
// categories, audiences, accessibility (comma lists), day, free, has-space, limit,
// layout (list|cards), heading, controls, aff (Eventbrite tracking code), lang, counting ("off": no
// anonymous counts; none either with Global Privacy Control or Do Not Track, see docs/privacy.md).
// Theme: --localfeed-accent, --localfeed-on-accent, --localfeed-font, --localfeed-text,
// --localfeed-muted, --localfeed-background, --localfeed-focus, --localfeed-radius,
// --localfeed-heading-size; parts: heading, controls, label, status, list, item, name,
// booking, link, button (and more, retry, widen, print), located ("Showing activities near CR4 (Mitcham)").
// Each result has a "Pick" box: "Print these" and "Copy a link to these" make a shortlist (aggregator/shortlist.py).

const STRINGS = {
  en: {
    heading: "What's on nearby",
    loading: "Loading activities…",
    count: (shown, total, more) => {
      const of = `${more ? "more than " : ""}${total} ${total === 1 && !more ? "activity" : "activities"}`;
      return more || shown < total ? `Showing ${shown} of ${of}` : of;
    },
    empty: "Nothing found — try other filters",
    emptyNear: (km) => `Nothing within ${km} km`,
    widen: (km) => `Try ${km} km`,
    error: "Sorry, the activities could not be loaded.",
    near: (label) => `Showing activities near ${label}`,
    about: "about",
    retry: "Try again",
    more: "Show more",
    print: "Print this list",
    pick: "Pick",
    printPicks: "Print these",
    copyPicks: "Copy a link to these",
    noPicks: "Tick the activities you want first.",
    copied: (url) => `Link copied: ${url}`,
    copyThis: (url) => `Copy this link: ${url}`,
    postcode: "Postcode or town",
    radius: "Distance",
    category: "Activity",
    anyCategory: "Any activity",
    day: "Day",
    anyDay: "Any day",
    free: "Free only",
    search: "Search",
    by: "Run by",
    next: "next",
    km: (km) => `${km} km`,
    walk: (min) => `${min} min walk`,
    atPostcode: "at or near this postcode",
    freeCost: "Free",
    space: { spaces: "Spaces available", "waiting-list": "Waiting list", full: "Full" },
    spacesLeft: (n) => `${n} ${n === 1 ? "space" : "spaces"} left`,
    access: "Access",
    who: "Who it's for",
    firstVisit: "First visit",
    firstVisitMore: "What to expect on a first visit",
    booking: {
      eventbrite: "Book on Eventbrite",
      "book-ahead": "Book ahead",
      "drop-in": "Just turn up",
      "contact-first": "Contact first",
      referral: "By referral",
    },
    contact: "Contact",
    online: "Online",
    checked: (month) => `Last checked ${month}`,
    vouched: "Listed by",
    checkedBy: "Checked by",
    every: "Every",
    everyOther: "Every other",
    everyDay: "Every day",
    everyWeekday: "Every weekday",
    until: "until",
    nth: { 1: "First", 2: "Second", 3: "Third", 4: "Fourth", "-1": "Last" },
    ofMonth: "of the month",
    and: "and",
    days: { MO: "Monday", TU: "Tuesday", WE: "Wednesday", TH: "Thursday", FR: "Friday", SA: "Saturday", SU: "Sunday" },
  },
};
const LOCALES = { en: "en-GB" };
const RADII = [1, 2, 5, 10, 20, 50];
const DEFAULT_RADIUS = 5; // the API's, when no radius is given
const ZONE = "Europe/London";
const AT_POSTCODE_KM = 0.1; // nearer than this, "0.0 km · 0 min walk" would puzzle
const SHOWN_IN_FULL = 200; // longer first-visit text is folded under a summary
// Only well-formed contacts (the contract's patterns) become links.
const CONTACT = {
  "tel:": [/^[+(]?[0-9][0-9 ()-]{5,24}$/, (v) => v.replace(/\s/g, "")],
  "mailto:": [/^[^@\s<>"]+@[^@\s<>"]+\.[^@\s<>"]+$/, (v) => encodeURIComponent(v).replace("%40", "@")],
};
const vocabCache = new Map();

const CSS = `
:host{display:block;font-family:var(--localfeed-font,inherit);color:var(--localfeed-text,#1b1b1b);
background:var(--localfeed-background,#fff);--a:var(--localfeed-accent,#0b57a4);--m:var(--localfeed-muted,#4a4a4a);
--r:var(--localfeed-radius,6px);line-height:1.45}
:host([hidden]){display:none}
*{box-sizing:border-box}
h2{font-size:var(--localfeed-heading-size,1.4em);margin:0 0 .5em}
h3{font-size:1.15em;margin:0 0 .25em}
p{margin:.2em 0}
form{display:flex;flex-wrap:wrap;gap:.75em;align-items:flex-end;margin:0 0 1em}
label{display:flex;flex-direction:column;font-weight:600;gap:.2em}
label.check{flex-direction:row;align-items:center;min-height:44px}
input,select{font:inherit;min-height:44px;padding:.3em .5em;border:2px solid var(--m);border-radius:var(--r);
background:#fff;color:#1b1b1b}
input[type=checkbox]{min-height:24px;width:24px;height:24px;margin-right:.4em}
button,a.button{font:inherit;font-weight:600;min-height:44px;min-width:44px;padding:.5em 1em;border-radius:var(--r);
border:2px solid var(--a);background:var(--a);color:var(--localfeed-on-accent,#fff);cursor:pointer;
text-decoration:none;display:inline-flex;align-items:center}
button.secondary,a.button{background:transparent;color:var(--a)}
a{color:var(--a)}
:focus-visible{outline:3px solid var(--localfeed-focus,#b35900);outline-offset:2px}
ul.items{list-style:none;margin:0;padding:0;display:grid;gap:1em}
:host([layout=cards]) ul.items{grid-template-columns:repeat(auto-fill,minmax(16em,1fr))}
li.item{border:1px solid #8a8a8a;border-radius:var(--r);padding:1em;overflow-wrap:anywhere}
summary{cursor:pointer;font-weight:600;padding:.25em 0}
li.item:focus{outline:3px solid var(--localfeed-focus,#b35900)}
.meta{color:var(--m)}
.note{font-weight:600}
.actions{display:flex;flex-wrap:wrap;gap:.75em;margin-top:1em}
.status:empty,.located:empty,.picks:empty{display:none}
.error{border-left:4px solid #b00020;padding-left:.75em}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
@media print{form,button,a.button{display:none}li.item{break-inside:avoid}}
`;

/** Attribute names the element watches; a change reloads the list. */
const ATTRIBUTES = ["src", "near", "radius", "categories", "audiences", "accessibility", "day", "free",
  "has-space", "limit", "layout", "heading", "controls", "aff", "lang"];

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "part" || key.includes("-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c != null && c !== ""));
  return node;
}

/** A URL from a feed, or null unless it is http(s). */
function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "https:" || url.protocol === "http:" ? url : null;
  } catch {
    return null;
  }
}

const isEventbrite = (url) => /(^|\.)eventbrite\.[a-z.]+$/i.test(url.hostname);

function link(url, text, part = "link") {
  return el("a", { href: url.href, text, part });
}

class LocalfeedActivities extends HTMLElement {
  static observedAttributes = ATTRIBUTES;

  connectedCallback() {
    if (!this.shadowRoot) this.build();
    this.reload();
  }

  attributeChangedCallback() {
    if (this.shadowRoot && !this.pending) {
      // Several attributes set together reload once.
      this.pending = true;
      queueMicrotask(() => {
        this.pending = false;
        this.syncControls();
        this.reload();
      });
    }
  }

  get t() {
    return STRINGS[this.getAttribute("lang")] || STRINGS.en;
  }

  get locale() {
    return LOCALES[this.getAttribute("lang")] || LOCALES.en;
  }

  /** The aggregator: the `src` attribute, else the server this script came from. */
  get base() {
    return new URL(this.getAttribute("src") || new URL("..", import.meta.url).href, location.href).href
      .replace(/\/$/, "");
  }

  build() {
    const root = this.attachShadow({ mode: "open" });
    const t = this.t;
    this.headingEl = el("h2", { part: "heading", id: "h" });
    this.statusEl = el("p", { className: "status", role: "status", part: "status" });
    this.locatedEl = el("p", { className: "located meta", part: "located" });
    this.listEl = el("ul", { className: "items", part: "list", "aria-labelledby": "h" });
    this.footerEl = el("div", { className: "actions" });
    this.region = el("section", { "aria-labelledby": "h" }, this.headingEl);
    if (this.hasAttribute("controls")) this.region.append(this.buildControls());
    // Where "Print these" and "Copy a link to these" say what they did (or need).
    this.picksEl = el("p", { className: "picks", "aria-live": "polite", part: "status" });
    this.region.append(this.locatedEl, this.statusEl, this.listEl, this.footerEl, this.picksEl);
    root.append(el("style", { text: CSS }), this.region);
    addEventListener("pagehide", () => this.send());
    this.headingEl.textContent = this.getAttribute("heading") || t.heading;
  }

  buildControls() {
    const t = this.t;
    const option = (value, text) => el("option", { value, text });
    this.form = el("form", { part: "controls", role: "search", "aria-label": t.search });
    this.postcodeInput = el("input", { name: "near", size: 12 });
    this.radiusSelect = el("select", { name: "radius" }, ...RADII.map((km) => option(km, t.km(km))));
    this.categorySelect = el("select", { name: "categories" }, option("", t.anyCategory));
    this.daySelect = el("select", { name: "day" }, option("", t.anyDay),
      ...Object.entries(t.days).map(([code, name]) => option(code.toLowerCase(), name)));
    this.freeInput = el("input", { type: "checkbox", name: "free" });
    this.form.append(
      el("label", { part: "label" }, t.postcode, this.postcodeInput),
      el("label", { part: "label" }, t.radius, this.radiusSelect),
      el("label", { part: "label" }, t.category, this.categorySelect),
      el("label", { part: "label" }, t.day, this.daySelect),
      el("label", { className: "check", part: "label" }, this.freeInput, t.free),
      el("button", { type: "submit", text: t.search, part: "button" }),
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const set = (name, value) => (value ? this.setAttribute(name, value) : this.removeAttribute(name));
      set("near", this.postcodeInput.value.trim());
      set("radius", this.radiusSelect.value);
      set("categories", this.categorySelect.value);
      set("day", this.daySelect.value);
      set("free", this.freeInput.checked ? "true" : "");
    });
    this.syncControls();
    return this.form;
  }

  syncControls() {
    if (!this.form) return;
    const radius = this.getAttribute("radius");
    if (radius && ![...this.radiusSelect.options].some((o) => o.value === radius)) {
      this.radiusSelect.append(el("option", { value: radius, text: this.t.km(radius) }));
    }
    this.postcodeInput.value = this.getAttribute("near") || "";
    this.radiusSelect.value = radius || String(DEFAULT_RADIUS);
    this.categorySelect.value = (this.getAttribute("categories") || "").split(",")[0];
    this.daySelect.value = (this.getAttribute("day") || "").toLowerCase();
    this.freeInput.checked = ["", "true"].includes(this.getAttribute("free"));
  }

  /** The API query, in the API's own parameter names. */
  query() {
    const params = new URLSearchParams();
    const pairs = [["near", "near"], ["radius", "radius"], ["categories", "category"], ["audiences", "audience"],
      ["accessibility", "accessibility"], ["day", "day"], ["free", "free"], ["has-space", "has_space"],
      ["limit", "limit"]];
    for (const [attr, param] of pairs) {
      const value = this.getAttribute(attr);
      // A bare boolean attribute (<... free>) means yes.
      if (value) params.set(param, value);
      else if (value === "" && (attr === "free" || attr === "has-space")) params.set(param, "true");
    }
    return params;
  }

  vocab() {
    const base = this.base;
    if (!vocabCache.has(base)) {
      const request = fetch(`${base}/api/vocab.json`).then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
      vocabCache.set(base, request);
    }
    return vocabCache.get(base);
  }

  async reload() {
    this.listEl.replaceChildren();
    this.footerEl.replaceChildren();
    await this.load(null);
  }

  async load(cursor) {
    const t = this.t;
    const params = this.query();
    if (cursor) params.set("cursor", cursor);
    const generation = (this.generation = (this.generation || 0) + 1);
    this.region.setAttribute("aria-busy", "true");
    this.statusEl.className = "status";
    this.statusEl.textContent = t.loading;
    let body;
    let labels;
    try {
      // no-cache: revalidate (a cheap 304) so that a reload shows an edit made a moment ago.
      const response = await fetch(`${this.base}/api/activities?${params}`, {
        headers: { Accept: "application/json" },
        cache: "no-cache",
      });
      body = await response.json().catch(() => ({}));
      if (!response.ok) {
        // A place we could not find is said as the aggregator words it, with nothing to retry.
        throw Object.assign(new Error(body.error?.message || `${response.status} ${response.statusText}`),
          { place: response.status === 400 && body.error?.parameter === "near" });
      }
      labels = await this.vocab();
    } catch (error) {
      if (generation === this.generation) this.showError(error.message, error.place);
      return;
    }
    if (generation !== this.generation) return; // a newer query has started
    this.labels = labels;
    const located = body.query?.located;
    this.locatedEl.textContent = located ? t.near(located.label) : "";
    this.fillCategories();
    this.region.removeAttribute("aria-busy");
    const before = this.listEl.children.length;
    this.listEl.append(...body.items.map((item) => this.renderItem(item)));
    for (const item of body.items) this.count("shown", item.activity.id);
    const shown = this.listEl.children.length;
    if (shown) {
      this.statusEl.textContent = t.count(shown, body.total ?? shown, body.total_is_lower_bound);
      this.renderFooter(body.next_cursor);
    } else {
      this.renderEmpty();
    }
    if (cursor && shown > before) {
      // After "Show more", keyboard users carry on from the first new result.
      const first = this.listEl.children[before];
      first.tabIndex = -1;
      first.focus();
    }
  }

  /** "Nothing within 2 km — try 5 km", with a button that widens the search. */
  renderEmpty() {
    const t = this.t;
    const radius = Number(this.getAttribute("radius") || DEFAULT_RADIUS);
    const wider = this.getAttribute("near") && RADII.find((km) => km > radius);
    if (!this.getAttribute("near")) {
      this.statusEl.textContent = t.empty;
    } else if (wider) {
      this.statusEl.textContent = `${t.emptyNear(radius)} — ${t.widen(wider).toLowerCase()}`;
      this.footerEl.replaceChildren(el("button", {
        type: "button", className: "secondary", part: "button widen", text: t.widen(wider),
        onclick: () => this.setAttribute("radius", String(wider)),
      }));
    } else {
      this.statusEl.textContent = t.emptyNear(radius);
    }
  }

  showError(message, place) {
    const t = this.t;
    this.region.removeAttribute("aria-busy");
    this.locatedEl.textContent = "";
    this.statusEl.className = "status error";
    this.statusEl.textContent = place ? message : `${t.error} ${message}`;
    this.footerEl.replaceChildren(place ? "" : el("button", {
      type: "button", part: "button retry", text: t.retry, onclick: () => this.reload(),
    }));
  }

  renderFooter(nextCursor) {
    const t = this.t;
    const buttons = [];
    if (nextCursor) {
      buttons.push(el("button", {
        type: "button", part: "button more", text: t.more, onclick: () => {
          buttons[0].remove();
          this.load(nextCursor);
        },
      }));
    }
    const print = new URL(`${this.base}/embed/print`);
    print.search = this.query().toString();
    if (this.off) print.searchParams.set("counting", "off");
    buttons.push(el("a", { href: print.href, className: "button", part: "button print", text: t.print,
      target: "_blank" }));
    buttons.push(
      el("button", { type: "button", part: "button", text: t.printPicks, onclick: () => this.printPicks() }),
      el("button", { type: "button", className: "secondary", part: "button", text: t.copyPicks,
        onclick: () => this.copyPicks() }),
    );
    this.footerEl.replaceChildren(...buttons);
  }

  /** The ticked activities as `pick=` parameters: the shortlist lives in the address alone. */
  picks() {
    const params = new URLSearchParams();
    for (const box of this.listEl.querySelectorAll("input[name=pick]:checked")) params.append("pick", box.value);
    if (!params.has("pick")) this.picksEl.textContent = this.t.noPicks;
    return params;
  }

  printPicks() {
    const params = this.picks();
    if (this.off) params.set("counting", "off");
    if (params.has("pick")) open(`${this.base}/embed/print?${params}`, "_blank");
  }

  async copyPicks() {
    const t = this.t;
    const params = this.picks();
    if (!params.has("pick")) return;
    let url;
    try {
      const response = await fetch(`${this.base}/embed/link?${params}`, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error?.message || response.statusText);
      url = body.url;
      await navigator.clipboard.writeText(url);
      this.picksEl.textContent = t.copied(url);
    } catch (error) {
      // No clipboard here (or no permission): the link itself, to copy by hand.
      this.picksEl.textContent = url ? t.copyThis(url) : `${t.error} ${error.message}`;
    }
  }

  fillCategories() {
    const categories = this.labels.categories;
    if (!this.categorySelect || !categories || this.categorySelect.options.length > 1) return;
    for (const [id, label] of Object.entries(categories)) {
      this.categorySelect.append(el("option", { value: id, text: label }));
    }
    this.categorySelect.value = (this.getAttribute("categories") || "").split(",")[0];
  }

  label(kind, id) {
    return this.labels?.[kind]?.[id] || id.replace(/-/g, " ");
  }

  date(iso, options) {
    return new Intl.DateTimeFormat(this.locale, { timeZone: ZONE, ...options }).format(new Date(iso));
  }

  time(iso) {
    return this.date(iso, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  /** "Every Tuesday, 10:00–11:30", worded as schema.schedule.describe words it. */
  describe(entry) {
    const t = this.t;
    const codes = Object.keys(t.days).filter((code) => (entry.byDay || []).includes(code));
    const names = codes.map((code) => t.days[code]);
    const days = names.length > 1 ? `${names.slice(0, -1).join(", ")} ${t.and} ${names.at(-1)}` : names[0] || "";
    const pattern = codes.join();
    let when;
    if (entry.repeatFrequency === "P1M") when = `${t.nth[entry.byMonthWeek]} ${days} ${t.ofMonth}`;
    else if (entry.repeatFrequency === "P2W") when = `${t.everyOther} ${days}`;
    else if (pattern === "MO,TU,WE,TH,FR,SA,SU") when = t.everyDay;
    else if (pattern === "MO,TU,WE,TH,FR") when = t.everyWeekday;
    else when = `${t.every} ${days}`;
    const until = entry.endDate
      ? `, ${t.until} ${this.date(`${entry.endDate}T12:00:00Z`, { day: "numeric", month: "long", year: "numeric" })}`
      : "";
    return `${when}, ${entry.startTime}–${entry.endTime}${until}`;
  }

  whenText(activity, occurrences) {
    const t = this.t;
    const next = occurrences?.[0];
    const day = (iso) => this.date(iso, { weekday: "short", day: "numeric", month: "short" });
    if (activity.type === "Event" || !activity.schedule) {
      const start = next?.start || activity.startDate;
      const end = next?.end || activity.endDate;
      return `${day(start)}, ${this.time(start)}–${this.time(end)}`;
    }
    const text = activity.schedule.map((entry) => this.describe(entry)).join("; ");
    return next ? `${text} · ${t.next}: ${day(next.start)}` : text;
  }

  renderItem(item) {
    const t = this.t;
    const a = item.activity;
    const facts = [];
    const fact = (text, className = "") => text && facts.push(el("p", { text, className }));
    const place = a.location;
    const address = place && [place.name, place.address?.streetAddress, place.address?.addressLocality,
      place.address?.postalCode].filter(Boolean).join(", ");

    fact(`${t.by} ${a.organizer.name}`, "meta");
    fact(this.whenText(a, item.next_occurrences));
    fact(a.attendanceMode === "online" ? t.online : address);
    const km = item.distance_km;
    if (km != null && km < AT_POSTCODE_KM) {
      fact(t.atPostcode);
    } else if (km != null) {
      const parts = [(item.distance_approximate ? `${t.about} ` : "") + t.km(km.toFixed(1))];
      if (item.walking_minutes != null) parts.push(t.walk(item.walking_minutes));
      fact(parts.join(" · "));
    }
    const capacity = a.capacity || {};
    const space = capacity.status === "spaces" && capacity.remaining ? t.spacesLeft(capacity.remaining)
      : t.space[capacity.status];
    fact([this.cost(a.price), space].filter(Boolean).join(" · "));
    const access = place?.accessibility || [];
    if (access.length) fact(`${t.access}: ${access.map((id) => this.label("accessibility", id)).join(", ")}`);
    const who = a.audiences || [];
    if (who.length) fact(`${t.who}: ${who.map((id) => this.label("audiences", id)).join(", ")}`);
    fact(a.description);
    const first = a.firstVisit || "";
    if (first.length > SHOWN_IN_FULL) {
      facts.push(el("details", {}, el("summary", { text: t.firstVisitMore }), el("p", { text: first })));
    } else if (first) {
      fact(`${t.firstVisit}: ${first}`);
    }
    const c = a.contact || {};
    if (c.telephone || c.email) {
      const line = el("p", { text: `${t.contact}: ${c.name ? `${c.name}, ` : ""}` });
      const ways = [["tel:", c.telephone], ["mailto:", c.email]].filter((way) => way[1]);
      ways.forEach(([scheme, value], index) => {
        const [pattern, address] = CONTACT[scheme];
        line.append(index ? ", " : "", pattern.test(value.trim())
          ? this.counted(el("a", { href: scheme + address(value), text: value, part: "link" }), "contact", a.id)
          : value);
      });
      facts.push(line);
    }
    facts.push(this.booking(a.booking || {}, a.id));
    const freshness = item.freshness || {};
    const verified = freshness.lastVerified || a.lastVerified;
    if (verified && freshness.confirmedByOrganiser !== false) fact(t.checked(this.date(`${verified}T12:00:00Z`, { month: "long", year: "numeric" })), "meta");
    if (freshness.note && freshness.state !== "fresh") fact(freshness.note, "note");
    if (item.vouchedBy?.length) fact(`${t.checkedBy} ${item.vouchedBy.join(", ")}`, "meta");
    const sources = (item.sources || []).filter((s) => s.name);
    if (sources.length) {
      const line = el("p", { className: "meta", text: `${t.vouched} ` });
      // Each source's page for people on the aggregator, not its feed (which is for machines).
      sources.forEach((source, index) => {
        if (index) line.append(", ");
        line.append(Number.isInteger(source.id) ? link(new URL(`${this.base}/sources/${source.id}`), source.name)
          : source.name);
      });
      facts.push(line);
    }
    // The name opens the activity's own page (its id), where the id is one: counted as "opened".
    const page = safeUrl(a.id);
    const name = page && !page.hash ? this.counted(link(page, a.name), "opened", a.id) : a.name;
    const pick = el("label", { className: "check", part: "label" }, el("input", { type: "checkbox", name: "pick",
      value: a.id }), t.pick, el("span", { className: "vh", text: ` ${a.name}` }));
    return el("li", { className: "item", part: "item" }, el("h3", { part: "name" }, name), ...facts, pick);
  }

  // As schema.price.describe_price words it: the notes alone where there is no one amount.
  cost(price = {}) {
    let text;
    if (price.isFree || price.amount === 0) text = this.t.freeCost;
    else if (price.amount == null) return price.notes || "";
    else text = new Intl.NumberFormat(this.locale, { style: "currency", currency: price.currency || "GBP" })
      .format(price.amount);
    return price.notes ? `${text} (${price.notes})` : text;
  }

  booking(booking, id) {
    const t = this.t;
    const url = safeUrl(booking.url);
    const p = el("p", { part: "booking" });
    if (url && isEventbrite(url)) {
      const aff = this.getAttribute("aff");
      if (aff) url.searchParams.set("aff", aff);
      p.append(this.counted(link(url, t.booking.eventbrite), "booking", id));
    } else {
      const text = t.booking[booking.method] || "";
      p.append(url ? this.counted(link(url, text || url.hostname), "booking", id) : text);
    }
    return p;
  }

  // Anonymous counts (docs/privacy.md): a kind and an activity id, batched into one beacon; no
  // cookie, no identifier. Off with counting="off", Global Privacy Control or Do Not Track.
  get off() {
    const nav = navigator;
    return this.getAttribute("counting") === "off" || nav.globalPrivacyControl || nav.doNotTrack === "1";
  }

  counted(anchor, kind, id) {
    anchor.addEventListener("click", () => this.count(kind, id));
    return anchor;
  }

  count(kind, id) {
    if (this.off || !navigator.sendBeacon) return;
    (this.queued ||= []).push([kind, id]);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.send(), 1000);
  }

  send() {
    const events = this.queued || [];
    this.queued = [];
    while (events.length) {
      navigator.sendBeacon(`${this.base}/impact/events`, JSON.stringify({ events: events.splice(0, 100) }));
    }
  }
}

if (!customElements.get("localfeed-activities")) customElements.define("localfeed-activities", LocalfeedActivities);

export { LocalfeedActivities };
