// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Per-app routing (userspace/perapp.c): a cgroup/sock_create program attached to one
 * cgroup marks every IPv4/IPv6 socket that a process of that cgroup (or a descendant)
 * creates with the app route's fwmark; an ip rule on that mark sends the socket's
 * traffic to the table of the chosen exit node. The socket's mark is set before the
 * first route lookup (connect, sendto), so the choice holds from the first packet. A
 * process that sets SO_MARK itself overrides it.
 *
 * One loaded copy per app route: the mark is a read-only setting (.rodata) given by
 * the loader. Sockets marked are counted in .bss (lightscale app-route list shows it).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 ls_app_mark = 0;

__u64 ls_app_sockets = 0;

SEC("cgroup/sock_create")
int ls_perapp_mark(struct bpf_sock *sk)
{
	if (ls_app_mark) {
		sk->mark = ls_app_mark;
		__sync_fetch_and_add(&ls_app_sockets, 1);
	}
	return 1; /* allow: this program only marks */
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
