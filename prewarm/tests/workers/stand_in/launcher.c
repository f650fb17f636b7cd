/* The stand-in `dart` of the tests: an ELF executable, as a Dart SDK's bin/dart is (the server
   refuses a `dart` that is a script and runs no Dart executable), which runs the stand-in script
   `dart.sh` beside it with the same arguments. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char script[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", script, sizeof script - sizeof "dart.sh");
    if (length < 0) {
        perror("readlink /proc/self/exe");
        return 127;
    }
    script[length] = '\0';
    strcpy(strrchr(script, '/') + 1, "dart.sh");
    char *args[argc + 2];
    args[0] = "sh";
    args[1] = script;
    for (int i = 1; i < argc; i++) {
        args[i + 1] = argv[i];
    }
    args[argc + 1] = NULL;
    execv("/bin/sh", args);
    perror("exec /bin/sh");
    return 127;
}
