// The request of an invocation frame (PROTOCOL.md's `event`), read the ways the shapes need it.
// Not a shape: the helpers every other-platform shape shares.
'use strict';

// The headers as sent: original case, one pair per occurrence. A frame without the list (an API
// call) has only the folded, lower-case map.
function requestHeaderPairs(request) {
  if (Array.isArray(request.header_list) && request.header_list.length) return request.header_list;
  return Object.entries(request.headers || {});
}

// Query pairs, decoded, repeats kept, in order.
function queryPairs(request) {
  if (request.raw_query) return [...new URLSearchParams(request.raw_query)];
  return Object.entries(request.query || {});
}

// The body's bytes.
function bodyBuffer(request) {
  if (request.body === null || request.body === undefined) return Buffer.alloc(0);
  return Buffer.from(request.body, request.body_is_base64 ? 'base64' : 'utf8');
}

// Node's `req.headers`: lower-case names, repeats joined (`cookie` with `; `, `set-cookie` kept
// as a list), as `http.IncomingMessage` builds it.
function nodeHeaders(request) {
  const headers = {};
  for (const [name, value] of requestHeaderPairs(request)) {
    const lower = name.toLowerCase();
    if (!(lower in headers)) headers[lower] = lower === 'set-cookie' ? [value] : value;
    else if (lower === 'set-cookie') headers[lower].push(value);
    else headers[lower] += lower === 'cookie' ? `; ${value}` : `, ${value}`;
  }
  return headers;
}

// `a=1; b=2` as `{a: '1', b: '2'}`; the first of a repeated name wins, as browsers send the most
// specific first.
function parseCookies(header) {
  const cookies = {};
  for (const part of String(header || '').split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    const name = part.slice(0, at).trim();
    if (!name || name in cookies) continue;
    let value = part.slice(at + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      cookies[name] = decodeURIComponent(value);
    } catch (_) {
      cookies[name] = value;
    }
  }
  return cookies;
}

// Express's `req.query` for simple keys: a repeated key becomes a list.
function queryObject(request) {
  const query = {};
  for (const [key, value] of queryPairs(request)) {
    if (!(key in query)) query[key] = value;
    else if (Array.isArray(query[key])) query[key].push(value);
    else query[key] = [query[key], value];
  }
  return query;
}

// The body as the platforms' body parsers hand it over: parsed JSON for a JSON content type (the
// text when it is not JSON), an object for a form when `forms`, a Buffer when `binary` says so
// (`'any'`: every type that is not text, JSON or a form; `'octet-stream'`: that type only), the
// text otherwise, and `empty` when there is no body.
function parseBody(contentType, raw, { empty, forms = true, binary = 'none' } = {}) {
  const type = String(contentType || '').split(';')[0].trim().toLowerCase();
  if (raw.length === 0) return empty;
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch (_) {
      return raw.toString('utf8');
    }
  }
  if (type === 'application/x-www-form-urlencoded' && forms) return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  if (binary === 'octet-stream' && type === 'application/octet-stream') return raw;
  if (binary === 'any' && !type.startsWith('text/') && type !== 'application/x-www-form-urlencoded') return raw;
  return raw.toString('utf8');
}

// An answer's body from what a handler gave: a Buffer as is, an object or list as JSON, anything
// else as text of `textType`; the content type added to `pairs` unless the handler set one.
function answerBody(value, pairs, textType) {
  const hasType = pairs.some(([name]) => name.toLowerCase() === 'content-type');
  if (Buffer.isBuffer(value)) return value;
  if (value !== null && typeof value === 'object') {
    if (!hasType) pairs.push(['content-type', 'application/json; charset=utf-8']);
    return Buffer.from(JSON.stringify(value));
  }
  const bytes = Buffer.from(value === undefined || value === null ? '' : String(value));
  if (!hasType && bytes.length) pairs.push(['content-type', textType]);
  return bytes;
}

// The reply frame's result for an answer given as status, headers and bytes: an envelope the
// platform reads (prewarm/src/envelope.rs), body in base64 so any bytes travel.
function envelope(status, headerPairs, body) {
  const multiValueHeaders = {};
  for (const [name, value] of headerPairs) {
    const lower = name.toLowerCase();
    (multiValueHeaders[lower] = multiValueHeaders[lower] || []).push(String(value));
  }
  return { statusCode: status, multiValueHeaders, body: body.toString('base64'), isBase64Encoded: true };
}

module.exports = {
  requestHeaderPairs, queryPairs, bodyBuffer, nodeHeaders, parseCookies, queryObject, parseBody, answerBody, envelope,
};
