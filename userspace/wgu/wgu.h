/* SPDX-License-Identifier: MIT */
/* The userspace WireGuard engine's entry point:
 *
 *   lightscale wg-userspace IFNAME [--foreground]   serve IFNAME (daemonizes by default)
 *   lightscale wg-userspace --stats IFNAME [--json] print an engine's counters
 *
 * argv[0] is "wg-userspace". Returns the process exit status. */
#ifndef LSW_WGU_H
#define LSW_WGU_H

int wgu_cmd_main(int argc, char **argv);

#endif
