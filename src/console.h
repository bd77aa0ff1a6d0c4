/*
 * `herald console`: the admin console in a terminal, a client of a running
 * server over the native WebSocket protocol (docs/console.md).
 */
#ifndef HD_CONSOLE_H
#define HD_CONSOLE_H

/*
 * Runs the console with the arguments that follow `console` on the command
 * line: [--key KEY | --key-file FILE] [--json] [URL]. Interactive (line
 * editing, history) when stdin is a terminal, else it reads one command a
 * line from stdin. Returns the process exit status: 0, 1 at the first
 * failed command of a script or when the server cannot be reached or
 * refuses the key, 2 for a usage error. Prints results on stdout and
 * errors on stderr; never prints the key.
 */
int hd__console_main(int argc, char **argv);

#endif
