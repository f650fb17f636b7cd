// A database function: counts its visits in the PostgreSQL database the platform provides.
// The server sets DATABASE_URL (from FUNCTION_DATABASE_URL) and DB_TIMEOUT_MS for every function
// when a function database is configured; statements must finish within DB_TIMEOUT_MS.
import 'dart:io' show Platform;

import 'package:postgres/postgres.dart';

const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  final url = Platform.environment['DATABASE_URL'];
  if (url == null) {
    return {
      'statusCode': 503,
      'body': {'error': 'no function database is configured on this server'},
    };
  }
  final uri = Uri.parse(url);
  final credentials = uri.userInfo.split(':');
  final timeout = int.parse(Platform.environment['DB_TIMEOUT_MS'] ?? '5000');
  final connection = await Connection.open(
    Endpoint(
      host: uri.host,
      port: uri.hasPort ? uri.port : 5432,
      database: uri.path.replaceFirst('/', ''),
      username: credentials.first,
      password: credentials.length > 1 ? Uri.decodeComponent(credentials[1]) : null,
    ),
    settings: ConnectionSettings(
      sslMode: SslMode.disable,
      queryTimeout: Duration(milliseconds: timeout),
    ),
  );
  try {
    await connection.execute(
        'CREATE TABLE IF NOT EXISTS visits (id SERIAL PRIMARY KEY, at TIMESTAMPTZ DEFAULT now())');
    await connection.execute('INSERT INTO visits DEFAULT VALUES');
    final result = await connection.execute('SELECT count(*) FROM visits');
    return {'visits': result.first.first};
  } finally {
    await connection.close();
  }
}
