// The status page served at GET /admin/: one self-contained HTML document (no CDN) that polls /admin/status.
export const dashboardHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Gateway status</title></head>
<body><h1>Gateway status</h1><pre id="out">loading…</pre>
<script>
async function tick(){try{const r=await fetch('status',{cache:'no-store'});document.getElementById('out').textContent=JSON.stringify(await r.json(),null,2);}catch(e){}}
tick();setInterval(tick,2000);
</script></body></html>
`;
