// Shape `node-http`: Node's `(req, res)`.
//
// Contract. The target is called with a real `http.IncomingMessage` and `http.ServerResponse`,
// as a Node server would call it:
// - `req.method`, `req.url` (the path below the function's URL, with the query, so a router sees
//   its own routes), `req.headers` (lower-case, as Node folds them), `req.rawHeaders` (as sent),
//   `req.socket.remoteAddress`; the body is the stream's data, so body parsers read it.
// - An Express or Connect app (`module.exports = app`), a Koa app, or any `(req, res)` function
//   (Google Cloud Functions, Vercel). A plain function also gets what those platforms add:
//   `req.body` parsed by content type (JSON, form, text; bytes otherwise), `req.rawBody`,
//   `req.query`, `req.cookies`, `req.get(name)`, and `res.status()`, `res.set()`, `res.type()`,
//   `res.send()`, `res.json()`, `res.sendStatus()`, `res.redirect()`, `res.cookie()`. An Express
//   app keeps its own.
// - The answer is what the response wrote once it ends (`res.end()`): status, headers, bytes. A
//   handler that throws (or rejects) before ending the response is the call's error (500).
'use strict';

const http = require('http');
const { Duplex } = require('stream');
const { requestHeaderPairs, bodyBuffer, nodeHeaders, parseCookies, queryObject, parseBody, envelope } = require('./request.cjs');

// The connection a response writes to: it keeps the bytes instead of sending them.
class CapturedSocket extends Duplex {
  constructor(remoteAddress) {
    super();
    this.chunks = [];
    this.remoteAddress = remoteAddress || '127.0.0.1';
    this.remotePort = 0;
    this.encrypted = false;
  }
  _read() {}
  _write(chunk, encoding, callback) {
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    callback();
  }
  setTimeout() { return this; }
  setNoDelay() { return this; }
  setKeepAlive() { return this; }
  ref() { return this; }
  unref() { return this; }
  address() { return { address: '127.0.0.1', family: 'IPv4', port: 0 }; }
}

// What Google Cloud Functions and Vercel add to a bare `(req, res)` function, written for this shape.
function decorate(req, res, request, raw) {
  req.rawBody = raw;
  req.body = parseBody(req.headers['content-type'], raw, { empty: req.headers['content-type'] ? {} : undefined, binary: 'any' });
  req.query = queryObject(request);
  req.cookies = parseCookies(req.headers.cookie);
  req.get = req.header = (name) => {
    const lower = String(name).toLowerCase();
    return lower === 'referer' || lower === 'referrer' ? req.headers.referer || req.headers.referrer : req.headers[lower];
  };
  res.status = (code) => {
    res.statusCode = code;
    return res;
  };
  res.set = res.header = (name, value) => {
    if (typeof name === 'object') for (const [key, each] of Object.entries(name)) res.setHeader(key, each);
    else res.setHeader(name, value);
    return res;
  };
  res.get = (name) => res.getHeader(name);
  res.type = (type) => res.set('content-type', type.includes('/') ? type : ({ json: 'application/json', html: 'text/html; charset=utf-8', text: 'text/plain; charset=utf-8' }[type] || type));
  res.json = (value) => {
    if (!res.hasHeader('content-type')) res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(value));
    return res;
  };
  res.send = (value) => {
    if (value === undefined || value === null) {
      res.end();
    } else if (Buffer.isBuffer(value)) {
      if (!res.hasHeader('content-type')) res.setHeader('content-type', 'application/octet-stream');
      res.end(value);
    } else if (typeof value === 'object') {
      res.json(value);
    } else {
      if (!res.hasHeader('content-type')) res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(String(value));
    }
    return res;
  };
  res.sendStatus = (code) => res.status(code).type('text').send(http.STATUS_CODES[code] || String(code));
  res.redirect = (status, url) => {
    if (url === undefined) [status, url] = [302, status];
    res.statusCode = status;
    res.setHeader('location', url);
    res.end();
    return res;
  };
  res.cookie = (name, value, options = {}) => {
    let line = `${name}=${encodeURIComponent(typeof value === 'object' ? `j:${JSON.stringify(value)}` : String(value))}`;
    line += `; Path=${options.path || '/'}`;
    if (options.maxAge !== undefined) line += `; Max-Age=${Math.floor(options.maxAge / 1000)}`;
    if (options.expires) line += `; Expires=${new Date(options.expires).toUTCString()}`;
    if (options.httpOnly) line += '; HttpOnly';
    if (options.secure) line += '; Secure';
    if (options.sameSite) line += `; SameSite=${options.sameSite === true ? 'Strict' : options.sameSite}`;
    const existing = res.getHeader('set-cookie');
    res.setHeader('set-cookie', existing ? [].concat(existing, line) : [line]);
    return res;
  };
  res.clearCookie = (name, options = {}) => res.cookie(name, '', { ...options, expires: new Date(1) });
}

// The body bytes of what the response wrote: after the header block, de-chunked when Node chose
// chunked encoding.
function writtenBody(res, written) {
  const end = written.indexOf('\r\n\r\n');
  let body = end < 0 ? Buffer.alloc(0) : written.subarray(end + 4);
  if (!res.chunkedEncoding) return body;
  const parts = [];
  while (body.length) {
    const line = body.indexOf('\r\n');
    if (line < 0) break;
    const size = parseInt(body.subarray(0, line).toString('latin1'), 16);
    if (!size) break;
    parts.push(body.subarray(line + 2, line + 2 + size));
    body = body.subarray(line + 2 + size + 2);
  }
  return Buffer.concat(parts);
}

// Headers the connection owns: the platform frames the answer itself.
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

// The headers of the block the response wrote (`writeHead(status, headers)` never stores them
// where `getHeaders()` looks).
function writtenHeaders(written) {
  const end = written.indexOf('\r\n\r\n');
  const lines = (end < 0 ? '' : written.subarray(0, end).toString('latin1')).split('\r\n').slice(1);
  const pairs = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (!CONNECTION_HEADERS.has(name.toLowerCase())) pairs.push([name, line.slice(colon + 1).trim()]);
  }
  return pairs;
}

function isExpressLike(target) {
  return typeof target === 'function' && typeof target.handle === 'function' && typeof target.use === 'function';
}

function invoke(target, frame) {
  const request = frame.event || {};
  const socket = new CapturedSocket(request.source_ip);
  const req = new http.IncomingMessage(socket);
  req.method = request.method || 'GET';
  req.url = `${request.path || '/'}${request.raw_query ? `?${request.raw_query}` : ''}`;
  req.httpVersion = '1.1';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.headers = nodeHeaders(request);
  req.rawHeaders = requestHeaderPairs(request).flat();
  const raw = bodyBuffer(request);
  if (raw.length) req.push(raw);
  req.push(null);
  req.complete = true;
  const res = new http.ServerResponse(req);
  res.useChunkedEncodingByDefault = false;
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  if (!isExpressLike(target)) decorate(req, res, request, raw);
  return new Promise((resolve, reject) => {
    let done = false;
    res.on('finish', () => {
      if (done) return;
      done = true;
      const written = Buffer.concat(socket.chunks);
      resolve(envelope(res.statusCode, writtenHeaders(written), writtenBody(res, written)));
    });
    const fail = (error) => {
      if (done) return;
      done = true;
      reject(error);
    };
    try {
      const returned = target(req, res);
      if (returned && typeof returned.then === 'function') returned.catch(fail);
    } catch (error) {
      fail(error);
    }
  });
}

module.exports = { invoke, isExpressLike };
