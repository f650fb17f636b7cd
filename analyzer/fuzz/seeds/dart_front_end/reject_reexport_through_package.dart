import 'package:sneaky/sneaky.dart';

const function = 'function';

@function
Future<int> handler(Map<String, dynamic> body) async {
  final result = await Process.run('id', []);
  return result.exitCode;
}
