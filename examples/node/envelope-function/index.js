// An envelope function: answers with its own status, headers and body (the Lambda envelope).
exports.handler = async (body, request) => {
  if (request.method === 'GET') {
    const who = request.query.name || 'world';
    return {
      statusCode: 200,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: `Hello, ${who}! You asked for ${request.path}\n`,
    };
  }
  if (typeof body !== 'object' || body === null) {
    return { statusCode: 400, body: { error: 'send a JSON object' } };
  }
  return { statusCode: 201, headers: { 'x-handled-by': 'node' }, body: JSON.stringify({ received: body }) };
};
