"""What every page shares: escaping of data (`_e`), the HTML document around a body, and the inline CSS
(light and dark, narrow screens). Pure.
"""

from __future__ import annotations

import html


def _e(value: object) -> str:
    """Text from data, safe in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def _document(title: str, body: str, *, refresh_s: int | None = None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}; url=/">\n' if refresh_s else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{refresh}<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{body}
</body>
</html>
"""


_CSS = """
:root{--bg:#f6f7f9;--fg:#1d232b;--muted:#5d6875;--card:#fff;--line:#dde2e8;--ok:#1f7a3f;--okbg:#e6f4ea;
--warn:#8a5a00;--warnbg:#fff4d6;--bad:#a8201a;--badbg:#fde8e7;--on:#2f6fb5;--up:#7b5cc4;--off:#6b7785;
--re:#1f8a8a;--accent:#2f6fb5}
@media (prefers-color-scheme:dark){:root{--bg:#12161b;--fg:#e4e8ed;--muted:#9aa5b1;--card:#1b2128;
--line:#2c343d;--okbg:#15301f;--ok:#7fd69b;--warnbg:#3a2e10;--warn:#f2c760;--badbg:#3d1a18;--bad:#ff8f87;
--accent:#7fb2ec}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif}
a{color:var(--accent)}
main{max-width:1100px;margin:0 auto;padding:12px}
main.narrow{max-width:420px;padding-top:10vh}
h1{font-size:1.6rem;margin:0 0 12px}
h2{font-size:1.15rem;margin:0 0 10px}
h3{font-size:.95rem;margin:0 0 6px;color:var(--muted)}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:8px 20px;padding:10px 16px;background:var(--card);
border-bottom:1px solid var(--line)}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:1.25rem}
.brand a{color:var(--fg);text-decoration:none}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:0;flex:1}
.facts div{display:flex;gap:6px;align-items:baseline}
.facts dt{color:var(--muted);font-size:.85rem}
.facts dd{margin:0;font-weight:600}
form.sync{display:flex;align-items:center;gap:10px}
button{font:inherit;padding:7px 16px;border-radius:6px;border:1px solid var(--accent);
background:var(--accent);color:#fff;cursor:pointer}
button.link{background:none;border:none;color:var(--accent);padding:0;text-decoration:underline}
form.inline{display:inline}
.check{font-size:.9rem;color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:12px 0}
.health{border-radius:10px;padding:14px 16px;margin:12px 0;border:2px solid}
.health h2{margin:0;font-size:1.3rem}
.health p{margin:6px 0 0;overflow-wrap:anywhere}
.health.healthy{background:var(--okbg);border-color:var(--ok);color:var(--ok)}
.health.guard{background:var(--warnbg);border-color:var(--warn);color:var(--warn)}
.health.failing{background:var(--badbg);border-color:var(--bad);color:var(--bad)}
.health.unknown{background:var(--card);border-color:var(--line)}
.big{font-size:1.1rem;margin:0 0 10px}
.big span{font-size:2rem;font-weight:700}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px 24px}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;color:var(--muted);font-size:.95rem;padding-bottom:4px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:.85rem;color:var(--muted);font-weight:600}
tfoot th,tfoot td{font-weight:700;border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums}
.when{white-space:nowrap}
.scroll{overflow-x:auto}
.detail{overflow-wrap:anywhere;min-width:12em}
.user{overflow-wrap:anywhere;min-width:10em}
.mono,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.small{font-size:.8rem;color:var(--muted)}
.count{display:inline-block;min-width:1.6em;padding:0 6px;border-radius:9px;background:var(--badbg);
color:var(--bad);text-align:center;font-size:.9rem}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:.8rem;font-weight:600;
background:var(--line);color:var(--fg)}
.badge.idle{background:var(--okbg);color:var(--ok)}
.badge.busy{background:var(--warnbg);color:var(--warn)}
.badge.failed,.badge.outcome-failed,.badge.outcome-error{background:var(--badbg);color:var(--bad)}
.badge.pending,.badge.outcome-guard,.badge.outcome-interrupted{background:var(--warnbg);color:var(--warn)}
.badge.outcome-ok{background:var(--okbg);color:var(--ok)}
.empty{color:var(--muted);font-style:italic}
.note{max-width:1100px;margin:8px auto 0;padding:8px 16px;color:var(--muted)}
.error{color:var(--bad)}
.chart{margin:0 0 10px}
.chart svg{width:100%;height:auto;max-height:230px;display:block}
.chart figcaption{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;color:var(--muted)}
.key{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px}
.bar.onboard,.swatch.onboard{fill:var(--on);background:var(--on)}
.bar.update,.swatch.update{fill:var(--up);background:var(--up)}
.bar.offboard,.swatch.offboard{fill:var(--off);background:var(--off)}
.bar.relink,.swatch.relink{fill:var(--re);background:var(--re)}
.bar.failed,.swatch.failed{fill:var(--bad);background:var(--bad)}
.bar.none,.swatch.none{fill:var(--ok);background:var(--ok)}
.bar.outcome-guard{fill:var(--warn)}
.bar.outcome-error,.bar.outcome-failed{fill:var(--bad)}
.bar.outcome-interrupted{fill:var(--muted)}
.axis{stroke:var(--line)}
.axis-label{font-size:10px;fill:var(--muted)}
label{display:block;margin:10px 0 4px;font-weight:600}
label.check{display:inline;margin:0;font-weight:400}
input[type=password]{width:100%;font:inherit;padding:8px;border:1px solid var(--line);border-radius:6px;
background:var(--bg);color:var(--fg)}
form button[type=submit]{margin-top:0}
.narrow button{margin-top:12px;width:100%}
pre.explain{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--bg);border:1px solid var(--line);
border-radius:6px;padding:12px;font-size:.85rem}
footer{max-width:1100px;margin:0 auto;padding:8px 12px 24px;display:flex;flex-wrap:wrap;gap:6px 18px;
color:var(--muted);font-size:.85rem}
@media (max-width:600px){.top{padding:8px 10px}main{padding:8px}.card{padding:10px}
th,td{padding:4px 5px}.facts{flex-basis:100%}
table.stack thead{display:none}
table.stack tr{display:block;padding:6px 0;border-bottom:1px solid var(--line)}
table.stack td{display:grid;grid-template-columns:6.5em minmax(0,1fr);gap:8px;border:none;padding:2px 0;
text-align:left;min-width:0}
table.stack td::before{content:attr(data-label);color:var(--muted);font-size:.85rem}}
"""
