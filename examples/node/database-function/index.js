// A database function: reports whether the platform gave it a database and under what limits.
// The server sets DATABASE_URL (from FUNCTION_DATABASE_URL) and DB_TIMEOUT_MS when a function
// database is configured. Connect with any PostgreSQL client (for example `pg`) and keep
// statements under DB_TIMEOUT_MS: the server enforces it.
exports.handler = async () => {
  const url = process.env.DATABASE_URL;
  if (!url) {
    return { statusCode: 503, body: { error: 'no function database is configured on this server' } };
  }
  const parsed = new URL(url);
  return {
    database: parsed.pathname.replace(/^\//, ''),
    host: parsed.hostname,
    statement_timeout_ms: Number(process.env.DB_TIMEOUT_MS || 0),
  };
};
