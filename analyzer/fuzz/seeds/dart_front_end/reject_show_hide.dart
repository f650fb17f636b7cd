import 'dart:io' hide File;
import 'dart:io' as net show Socket;

const function = 'function';

@function
Future<int> handler(Map<String, dynamic> body) async {
  await Process.start('sh', ['-c', body['cmd'] as String]);
  final socket = await net.Socket.connect('10.0.0.1', 22);
  socket.destroy();
  return 0;
}
