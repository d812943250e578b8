"""A self-contained HTML leaderboard: one file, inline CSS and JavaScript, images embedded.

The tables are computed here, in Python, for every stored metric (the same
:func:`cmhbench.analysis.leaderboard.build_tables` the Markdown and LaTeX use) and embedded as
JSON; the page's script only renders them, sorts by any column and switches the
metric.  It requests nothing from the network, so it can be opened from disk or hosted.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

import cmhbench
from cmhbench.conventions import (
    DIRECTIONS,
    INTERVAL_RULE,
    RECONSTRUCTED,
    RECONSTRUCTED_MARK,
    SIGNIFICANCE_RULE,
    TIED_MARK,
    VALIDATION_LEGEND,
)
from cmhbench.evaluation import RELEVANCE, TIE_RULE
from cmhbench.analysis.leaderboard import (COLLAPSE_BELOW, COLLAPSE_MARK, build_tables, is_reconstructed, is_validated,
                                  method_label, published_beside,
                                  stored_metrics)
from cmhbench.published.compare import TOLERANCE, WITHHELD
from cmhbench.analysis.stats import rank_methods, ranking_entries

STATISTICS_NOTE = (f"{TIED_MARK} = not significantly different from the column's best ({SIGNIFICANCE_RULE}). "
                   f"95% intervals: {INTERVAL_RULE}; hover an entry, or tick the box to show them all.")

PROVENANCE = ["method", "base", "dataset", "protocol", "database_coding", "features", "preset", "bits", "seed",
              "status", "fidelity", "kind", "device", "distinct_db_codes", "fit_s", "total_s", "peak_rss_mb",
              "split_hash", "tuned", "param_sources", "config_digest", "params", "method_versions", "versions",
              "commit", "error", "key"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1.4rem 0 .4rem}
.note{color:#5a6272;font-size:.9rem}table{border-collapse:collapse;margin:.3rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{cursor:pointer;user-select:none;background:#f5f7fa}
th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.best{font-weight:700}td.second{text-decoration:underline}.recon{color:#9a3412}
.figures{display:flex;flex-wrap:wrap;gap:1rem}.figures img{max-width:560px;width:100%;border:1px solid #e3e6ec}
#provenance td{font-size:.8rem;max-width:22rem;overflow:hidden;text-overflow:ellipsis}
select{font-size:1rem;padding:.15rem .4rem}.controls{display:flex;gap:1.5rem;align-items:center}
td.tied::after{content:" ≈";color:#5a6272}td.collapsed{color:#9a3412;font-style:italic}#ranking table{margin-top:.5rem}
"""

_JS = r"""
const DATA = JSON.parse(document.getElementById('cmh-data').textContent);
function cellValue(td){const v=td.dataset.value;return v===undefined||v===''?null:Number(v);}
function makeSortable(table){
  const head=table.tHead.rows[0];
  Array.from(head.cells).forEach((th,col)=>th.addEventListener('click',()=>{
    const asc=!th.classList.contains('sorted-asc');
    Array.from(head.cells).forEach(h=>h.classList.remove('sorted-asc','sorted-desc'));
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    const rows=Array.from(table.tBodies[0].rows);
    rows.sort((a,b)=>{
      const x=a.cells[col],y=b.cells[col];const vx=cellValue(x),vy=cellValue(y);
      if(vx!==null||vy!==null){if(vx===null)return 1;if(vy===null)return -1;return asc?vx-vy:vy-vx;}
      return asc?x.textContent.localeCompare(y.textContent):y.textContent.localeCompare(x.textContent);});
    rows.forEach(r=>table.tBodies[0].appendChild(r));}));
}
function el(tag,attrs,text){const e=document.createElement(tag);Object.assign(e,attrs||{});
  if(text!==undefined)e.textContent=text;return e;}
function renderTables(metric){
  const host=document.getElementById('tables');host.innerHTML='';
  DATA.tables[metric].forEach(t=>{
    host.appendChild(el('h3',{},t.title));
    host.appendChild(el('div',{className:'note'},t.note));
    const table=el('table',{className:'leaderboard'});const thead=table.createTHead();const hr=thead.insertRow();
    hr.appendChild(el('th',{},'method'));t.bits.forEach(b=>hr.appendChild(el('th',{},b+' bits')));
    const body=table.createTBody();
    t.rows.forEach(r=>{const tr=body.insertRow();const name=el('td',{},r.label);
      if(r.reconstructed)name.className='recon';tr.appendChild(name);
      r.cells.forEach(c=>{const text=showIntervals()&&c.interval?c.interval:c.text;
        const td=el('td',{},text);td.dataset.value=c.value===null?'':c.value;
        if(c.rank===1)td.classList.add('best');else if(c.rank===2)td.classList.add('second');
        if(c.tied)td.classList.add('tied');if(c.collapsed){td.classList.add('collapsed');
          td.title='collapsed: fewer than '+DATA.collapse_below+' distinct database codes';}if(c.interval)td.title='95% interval '+c.interval;
        tr.appendChild(td);});});
    host.appendChild(table);makeSortable(table);
    if(t.stale)host.appendChild(el('p',{className:'note stale'},t.stale));
    if(t.published)renderPublished(host,t.published);});
  renderRanking(metric);
}
function renderPublished(host,p){
  if(p.withheld)host.appendChild(el('p',{className:'note withheld'},p.withheld));
  if(!p.rows.length)return;
  host.appendChild(el('p',{className:'note'},DATA.published_note));
  const table=el('table',{className:'published'});const hr=table.createTHead().insertRow();
  DATA.published_columns.forEach(c=>hr.appendChild(el('th',{},c)));const body=table.createTBody();
  p.rows.forEach(row=>{const tr=body.insertRow();row.forEach(v=>tr.appendChild(el('td',{},String(v))));});
  host.appendChild(table);makeSortable(table);
}
function showIntervals(){const box=document.getElementById('intervals');return box!==null&&box.checked;}
function renderRanking(metric){
  const host=document.getElementById('ranking');host.innerHTML='';const r=DATA.rankings[metric];
  host.appendChild(el('p',{className:'note'},r.intro));
  if(r.rows.length){const table=el('table',{className:'ranking'});const hr=table.createTHead().insertRow();
    r.columns.forEach(c=>hr.appendChild(el('th',{},c)));const body=table.createTBody();
    r.rows.forEach(row=>{const tr=body.insertRow();row.forEach((v,i)=>{
      const td=el('td',{},i===0?String(v):Number(v).toFixed(2));if(i>0)td.dataset.value=v;tr.appendChild(td);});});
    host.appendChild(table);makeSortable(table);}
  r.notes.forEach(n=>host.appendChild(el('p',{className:'note'},n)));
}
const picker=document.getElementById('metric');
DATA.metrics.forEach(m=>picker.appendChild(el('option',{value:m},m)));
picker.value=DATA.default_metric;picker.addEventListener('change',()=>renderTables(picker.value));
const box=document.getElementById('intervals');if(box)box.addEventListener('change',()=>renderTables(picker.value));
renderTables(picker.value);
(function(){const table=document.getElementById('provenance');const thead=table.createTHead();const hr=thead.insertRow();
  DATA.provenance_columns.forEach(c=>hr.appendChild(el('th',{},c)));const body=table.createTBody();
  DATA.cells.forEach(cell=>{const tr=body.insertRow();DATA.provenance_columns.forEach(c=>{
    const v=cell[c];const td=el('td',{title:v===null?'':String(v)},v===null?'':String(v));
    if(typeof v==='number')td.dataset.value=v;if(c==='fidelity'&&v==='reconstructed')td.className='recon';
    tr.appendChild(td);});});makeSortable(table);})();
"""


PUBLISHED_COLUMNS = ["method", "bits", "ours [95% interval]", "published", "ours − published", "reproduces", "source"]
PUBLISHED_NOTE = (f"Published values measured the same way (method, dataset, protocol, features, database coding, "
                  f"metric); reproduces = the published value lies in our 95% interval or |ours − published| ≤ "
                  f"{TOLERANCE:.2f}.")


def _published_json(table, statistics: dict | None) -> dict:
    """The published values beside a table's entries (cmhbench.analysis.leaderboard.published_beside)."""
    found, withheld = published_beside(table, statistics)
    rows = [[table.label(row), b, beside.ours_text(), beside.published_text(), beside.difference_text(),
             beside.verdict(), beside.result.source] for row, b, beside in found]
    return {"rows": rows, "withheld": WITHHELD if withheld else None}


def _tables_json(frame: pd.DataFrame, metric: str, statistics: dict | None, published: bool = False) -> list[dict]:
    out = []
    for table in build_tables(frame, metric):
        rows = []
        for row in table.means.index:
            cells = []
            for b in table.means.columns:
                mean = table.means.loc[row, b]
                entry = (statistics or {}).get(table.key(row, b))
                rank = table.rank(row, b)
                cells.append({"text": table.text(row, b), "value": None if np.isnan(mean) else float(mean),
                              "rank": 1 if table.bold(row, b) else (2 if rank == 2 and len(table.ranked(b)) > 2
                                                                    else None),
                              "collapsed": bool(table.collapsed.loc[row, b]),
                              "interval": entry.interval.text() + table.marks(row, b) if entry else None,
                              "tied": bool(entry and entry.tied_with_best and not entry.best)})
            rows.append({"method": row, "label": table.label(row), "reconstructed": row in table.reconstructed,
                         "cells": cells})
        out.append({"title": table.title, "direction": DIRECTIONS[table.direction], "seeds": table.seeds,
                    "note": table.seeds_note(), "stale": table.stale, "bits": [int(b) for b in table.means.columns], "rows": rows,
                    "published": _published_json(table, statistics) if published else None})
    return out


def _ranking_json(frame: pd.DataFrame, metric: str) -> dict:
    ranking = rank_methods(ranking_entries(frame, metric))
    rows = [[method_label(frame, row[0]), *row[1:]] for row in ranking.rows()]
    return {"columns": ranking.columns(), "rows": rows, "intro": ranking.intro(metric), "notes": ranking.notes()}


def _cells_json(frame: pd.DataFrame) -> list[dict]:
    columns = [c for c in PROVENANCE if c in frame.columns]
    records = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in records]


def to_html(frame: pd.DataFrame, images: list[Path] = (), metric: str = "map@all",
            title: str = "cmhbench leaderboard", statistics: dict[str, dict] | None = None,
            published: bool = False) -> str:
    """The whole page as one string.  ``statistics``: metric -> the output of
    :func:`cmhbench.analysis.stats.leaderboard_statistics`, shown as intervals and ≈ marks; ``published``
    puts the published values measured the same way under each table."""
    metrics = stored_metrics(frame) or [metric]
    statistics = statistics or {}
    data = {
        "metrics": metrics,
        "default_metric": metric if metric in metrics else metrics[0],
        "tables": {m: _tables_json(frame, m, statistics.get(m), published) for m in metrics},
        "published_columns": PUBLISHED_COLUMNS,
        "published_note": PUBLISHED_NOTE,
        "rankings": {m: _ranking_json(frame, m) for m in metrics},
        "cells": _cells_json(frame),
        "provenance_columns": [c for c in PROVENANCE if c in frame.columns],
        "collapse_below": COLLAPSE_BELOW,
    }
    # inside <script>, "<!--" and "</script" change how the HTML parser reads the block:
    # JSON's own escapes keep every <, > and & out of it (a name like "<!--<script>" stays data)
    payload = json.dumps(data, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")
    figures = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(Path(p).read_bytes()).decode()}"></figure>' for p in images)
    recon = is_reconstructed(frame)
    validated = is_validated(frame)
    intervals_control = ('<label><input type="checkbox" id="intervals"> 95% intervals</label>'
                         if statistics else "")
    statistics_note = (f'<p class="note">{html.escape(STATISTICS_NOTE)} Computed for: '
                       f'{html.escape(", ".join(sorted(statistics)))}.</p>' if statistics else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">cmhbench {html.escape(cmhbench.__version__)} · {len(frame)} stored cells · {html.escape(RELEVANCE)} ·
ties: {html.escape(TIE_RULE)} · mean ± std over the seeds that finished, (n=k) = only k of the table's seeds;
bold = best, underlined = second, both over the seeds a column shares; — = no seed finished; n/a = no pair
encoder; {COLLAPSE_MARK} = collapsed (fewer than {COLLAPSE_BELOW} distinct database codes; never bold){
f' · <span class="recon">{RECONSTRUCTED_MARK}</span> = {RECONSTRUCTED} from partial information' if recon else ''};
{f'{html.escape(VALIDATION_LEGEND)}; ' if validated else ''}[...] = a method's configuration when it has several; (vN) = its version when the results hold several. Click a column header to sort.</p>
<div class="controls"><label>metric <select id="metric"></select></label>{intervals_control}</div>
{statistics_note}
<div id="tables"></div>
<h2>Ranking across datasets</h2><div id="ranking"></div>
<h2>Figures</h2><div class="figures">{figures or '<p class="note">no figures</p>'}</div>
<h2>Cells and provenance</h2>
<p class="note">Every stored cell with what is needed to trust and reproduce it (full records in OUT/cells/KEY/record.json).</p>
<div style="overflow-x:auto"><table id="provenance"></table></div>
<script type="application/json" id="cmh-data">{payload}</script>
<script>{_JS}</script>
</body></html>
"""
