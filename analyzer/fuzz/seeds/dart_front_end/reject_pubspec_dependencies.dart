import 'package:process_run/shell.dart';

const function = 'function';

@function
int handler(Map<String, dynamic> body) => 1;
