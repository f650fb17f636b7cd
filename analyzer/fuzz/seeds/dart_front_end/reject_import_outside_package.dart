import '../../../opt/secrets/keys.dart';
import 'build/generated.dart';

const function = 'function';

@function
int handler(Map<String, dynamic> body) => 1;
