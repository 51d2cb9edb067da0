// The page's calls to virtqemud's web API: JSON in and out, errors thrown with the server's code
// and message (a refused write is `PERMISSION_DENIED: ...`, HTTP 403).

/** GETs `path` as JSON. */
export async function getJson(path) {
  return answer(await fetch(path, { credentials: 'same-origin' }));
}

/** POSTs `body` (if any) as JSON to `path`. */
export async function postJson(path, body) {
  const init = { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' } };
  if (body !== undefined) init.body = JSON.stringify(body);
  return answer(await fetch(path, init));
}

async function answer(res) {
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = data.error;
    throw new Error(e ? `${e.code}: ${e.message}` : `HTTP ${res.status}`);
  }
  return data;
}
