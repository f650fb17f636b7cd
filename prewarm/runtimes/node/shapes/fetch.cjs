// Shape `fetch`: handlers that take a Web `Request` and give a `Response`.
//
// Contract. The target is one of:
// - an object with a `fetch(request, env, ctx)` method (Cloudflare Workers' `export default {
//   fetch }`): `env` holds the function's environment variables, `ctx.waitUntil(promise)` keeps
//   the call open until the promise settles, `ctx.passThroughOnException()` does nothing;
// - a function `(request, context)` (Netlify's `export default async (req, context) => …`):
//   `context` has `requestId`, `ip`, `params` (`{}`), `cookies.get/set/delete`, `json(value)`,
//   `waitUntil(promise)`;
// - a module with one export per method, `GET(request)`, `POST(request)`… (Vercel and Next.js
//   route handlers): a method without an export answers 405 with `Allow`, `HEAD` falls back to
//   `GET`.
// `request.url` is `http(s)://HOST/PATH?QUERY` with PATH the path below the function's URL (the
// whole path on the function's own host), so a router sees its own routes. The answer is the
// `Response` (or a promise of one), its body read to the end; a value that is not a `Response` is
// sent as JSON, as the platform's own handlers are. A thrown error is the call's error (500).
'use strict';

const { requestHeaderPairs, bodyBuffer, nodeHeaders, parseCookies, envelope } = require('./request.cjs');

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

function webRequest(request) {
  const headers = new Headers();
  for (const [name, value] of requestHeaderPairs(request)) {
    try {
      headers.append(name, value);
    } catch (_) {
      // A name or value the Fetch standard refuses is left out, as a browser would.
    }
  }
  const proto = (headers.get('x-forwarded-proto') || 'http').split(',')[0].trim();
  const host = headers.get('host') || 'localhost';
  const url = `${proto}://${host}${request.path || '/'}${request.raw_query ? `?${request.raw_query}` : ''}`;
  const method = request.method || 'GET';
  const body = method === 'GET' || method === 'HEAD' ? undefined : bodyBuffer(request);
  return new Request(url, { method, headers, body: body && body.length ? body : undefined, duplex: 'half' });
}

// Netlify's context: what has a meaning here.
function netlifyContext(frame, request, setCookies, pending) {
  const cookies = parseCookies(nodeHeaders(request).cookie);
  return {
    requestId: frame.id,
    ip: request.source_ip || '',
    params: {},
    geo: {},
    site: { name: process.env.FUNCTION_NAME || '' },
    account: {},
    deploy: { id: process.env.FUNCTION_VERSION || '' },
    server: { region: 'local' },
    cookies: {
      get: (name) => cookies[name],
      set: (cookie, value) => {
        const options = typeof cookie === 'object' ? cookie : { name: cookie, value };
        let line = `${options.name}=${encodeURIComponent(options.value)}`;
        if (options.path) line += `; Path=${options.path}`;
        if (options.maxAge !== undefined) line += `; Max-Age=${options.maxAge}`;
        if (options.expires) line += `; Expires=${new Date(options.expires).toUTCString()}`;
        if (options.httpOnly) line += '; HttpOnly';
        if (options.secure) line += '; Secure';
        if (options.sameSite) line += `; SameSite=${options.sameSite}`;
        setCookies.push(line);
      },
      delete: (name) => setCookies.push(`${typeof name === 'object' ? name.name : name}=; Max-Age=0`),
    },
    json: (value, init) => Response.json(value, init),
    waitUntil: (promise) => pending.push(promise),
    next: () => new Response('Not Found', { status: 404 }),
  };
}

function isResponse(value) {
  return value instanceof Response ||
    (value && typeof value === 'object' && typeof value.status === 'number' && value.headers && typeof value.arrayBuffer === 'function');
}

async function invoke(target, frame) {
  const request = frame.event || {};
  const pending = [];
  const setCookies = [];
  const incoming = webRequest(request);
  let answer;
  if (target && typeof target.fetch === 'function') {
    const env = { ...process.env };
    const ctx = { waitUntil: (promise) => pending.push(promise), passThroughOnException: () => {} };
    answer = await target.fetch(incoming, env, ctx);
  } else if (typeof target === 'function') {
    answer = await target(incoming, netlifyContext(frame, request, setCookies, pending));
  } else {
    const method = (request.method || 'GET').toUpperCase();
    const routeHandler = target[method] || (method === 'HEAD' ? target.GET : undefined);
    if (typeof routeHandler !== 'function') {
      const allowed = METHODS.filter((name) => typeof target[name] === 'function');
      answer = new Response(JSON.stringify({ error: 'method_not_allowed', message: `${method} is not handled: this function exports ${allowed.join(', ')}` }),
        { status: 405, headers: { allow: allowed.join(', '), 'content-type': 'application/json' } });
    } else {
      answer = await routeHandler.call(target, incoming, { params: Promise.resolve({}) });
    }
  }
  await Promise.allSettled(pending);
  if (!isResponse(answer)) {
    return answer === undefined ? { statusCode: 204 } : answer;
  }
  const pairs = [];
  answer.headers.forEach((value, name) => {
    if (name !== 'set-cookie') pairs.push([name, value]);
  });
  const cookies = typeof answer.headers.getSetCookie === 'function' ? answer.headers.getSetCookie() : [];
  for (const cookie of [...cookies, ...setCookies]) pairs.push(['set-cookie', cookie]);
  const body = request.method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await answer.arrayBuffer());
  return envelope(answer.status, pairs, body);
}

module.exports = { invoke, METHODS, isResponse };
