/* cli/cmd_create: `create MODEL -f Modelfile` as a client of the server (placeholder). */
#include "cli/cli.h"

int cmd_create(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_fail("create is not implemented yet");
}
