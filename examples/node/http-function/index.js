// An HTTP function (the seed's http-function): fetches a URL with a timeout and reports what came
// back, or why nothing did. Call it with {"url": "https://…"} (or ?url=…), and optionally
// {"timeout_ms": 1500}.
//
// The timeout stays inside the platform's deadline: the function answers 504 itself, with a
// message, instead of being stopped by the platform.
const DEFAULT_TIMEOUT_MS = 2000;
const MARGIN_MS = 200; // time kept to build the answer once the upstream gave up

exports.handler = async (body, context) => {
  const input = typeof body === 'object' && body !== null ? body : {};
  const url = input.url || context.query.url;
  if (!url || !/^https?:\/\//.test(url)) {
    return { statusCode: 400, body: { success: false, error: 'send {"url": "http://…" or "https://…"}' } };
  }
  const asked = Number(input.timeout_ms || DEFAULT_TIMEOUT_MS);
  const timeoutMs = Math.max(1, Math.min(asked, context.getRemainingTimeInMillis() - MARGIN_MS));
  const started = Date.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    return {
      success: true,
      url,
      status: response.status,
      contentType: response.headers.get('content-type'),
      bodyLength: Buffer.byteLength(text),
      elapsedMs: Date.now() - started,
    };
  } catch (error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') {
      console.error(`timed out after ${timeoutMs} ms: ${url}`);
      return { statusCode: 504, body: { success: false, error: 'timeout', message: `no answer from ${url} within ${timeoutMs} ms` } };
    }
    const cause = error.cause && (error.cause.code || error.cause.message);
    console.error(`request failed: ${url}: ${cause || error.message}`);
    return { statusCode: 502, body: { success: false, error: 'unreachable', message: `${url}: ${cause || error.message}` } };
  }
};
