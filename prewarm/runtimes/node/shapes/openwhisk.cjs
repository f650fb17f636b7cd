// Shape `openwhisk`: Node actions written for Apache OpenWhisk (web actions).
//
// Contract. `function main(params)` (exported or not), async or not:
// - `params`: the query's parameters, then the JSON body's (an object), merged; and OpenWhisk's
//   web-action fields `__ow_method` (lower-case), `__ow_headers` (lower-case), `__ow_path` (below
//   the function's URL), `__ow_query` and `__ow_body` (the raw body, base64 when not text).
// - The result: `{ statusCode, headers, body }` (any of them) is the answer; another object is
//   sent as JSON, as OpenWhisk sends a web action's result.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, envelope } = require('./request.cjs');

function params(request) {
  const headers = nodeHeaders(request);
  const merged = { ...queryObject(request) };
  const raw = bodyBuffer(request);
  if (raw.length && String(headers['content-type'] || '').includes('json')) {
    try {
      const body = JSON.parse(raw.toString('utf8'));
      if (body && typeof body === 'object' && !Array.isArray(body)) Object.assign(merged, body);
    } catch (_) {
      // Not JSON after all: only __ow_body carries it.
    }
  }
  merged.__ow_method = String(request.method || 'GET').toLowerCase();
  merged.__ow_headers = headers;
  merged.__ow_path = request.path === '/' ? '' : request.path || '';
  merged.__ow_query = request.raw_query || '';
  if (raw.length) merged.__ow_body = request.body_is_base64 ? request.body : raw.toString('utf8');
  return merged;
}

async function invoke(handler, frame) {
  const result = await handler(params(frame.event || {}));
  const webAnswer = result && typeof result === 'object' && !Array.isArray(result) &&
    ('statusCode' in result || 'body' in result || 'headers' in result) &&
    Object.keys(result).every((key) => ['statusCode', 'headers', 'body'].includes(key));
  if (!webAnswer) return result === undefined ? {} : result;
  const pairs = Object.entries(result.headers || {});
  const body = result.body;
  let bytes;
  if (body !== null && typeof body === 'object') {
    bytes = Buffer.from(JSON.stringify(body));
    if (!pairs.some(([name]) => name.toLowerCase() === 'content-type')) pairs.push(['content-type', 'application/json']);
  } else {
    bytes = Buffer.from(body === undefined ? '' : String(body));
    if (!pairs.some(([name]) => name.toLowerCase() === 'content-type') && bytes.length) pairs.push(['content-type', 'text/html; charset=utf-8']);
  }
  return envelope(result.statusCode || 200, pairs, bytes);
}

module.exports = { invoke };
