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

/* For the agent, to adopt an engine instead of starting one: 1 when a live
 * engine (ours or any other UAPI implementation) answers on
 * /var/run/wireguard/IFNAME.sock, 0 when none does. */
int wgu_engine_alive(const char *ifname);

#endif
