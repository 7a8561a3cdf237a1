// SPDX-License-Identifier: MIT
/* lightscale-wg: the userspace WireGuard engine on its own, for tests and for
 * wg-quick (WG_QUICK_USERSPACE_IMPLEMENTATION=lightscale-wg). */
#include "userspace/wgu/wgu.h"

int main(int argc, char **argv)
{
	static char name[] = "wg-userspace";

	argv[0] = name;
	return wgu_cmd_main(argc, argv);
}
