// SPDX-License-Identifier: MIT
#include "cli.h"

int main(int argc, char **argv)
{
	return ls_cli_main(argc, argv);
}
