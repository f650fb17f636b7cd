import 'dart:io';
import 'dart:io' as io;

const function = 'function';

@function
Future<String> handler(Map<String, dynamic> body) async {
  final secrets = await File('/etc/passwd').readAsString();
  final sibling = io.Directory('data/../../other-function');
  final temp = Directory.systemTemp;
  final exists = FileSystemEntity.isFileSync('/root/.ssh/id_rsa');
  final chosen = File(body['path'] as String);
  final fine = File('data/ok.txt');
  return '$secrets$sibling$temp$exists$chosen$fine';
}
